"""REST API of the prompt registry.

GET  /api/v1/prompts                       list (keyset on name)
GET  /api/v1/prompts/<name>                one version: ?version=N | ?label=L | default
POST /api/v1/prompts/<name>/versions       new immutable version (creates the prompt)
POST /api/v1/prompts/<name>/labels         move a label

Reads need the viewer role, writes the member role (a secret key acts as a member).
The fetch endpoint is what SDKs poll, so it answers If-None-Match with 304 and no body.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import PROJECT_PARAM, ErrorSerializer
from projects.auth import project_access
from projects.models import Role
from prompts import selectors, services
from prompts.models import PromptType, PromptVersion

TAGS = ["prompts"]
NAME_PARAM = OpenApiParameter(
    "name", OpenApiTypes.STR, OpenApiParameter.PATH, description="Prompt name, unique in the project."
)
ERRORS = {
    401: OpenApiResponse(ErrorSerializer, description="No, unknown or revoked API key, and no session."),
    403: OpenApiResponse(ErrorSerializer, description="Your role in the project does not allow this."),
    404: OpenApiResponse(ErrorSerializer, description="No such prompt, version or label."),
}


def version_payload(resolved: selectors.Resolved) -> dict[str, Any]:
    v: PromptVersion = resolved.version
    return {
        "name": resolved.prompt.name,
        "type": resolved.prompt.type,
        "version": v.version,
        "labels": resolved.labels,
        "template": v.template,
        "config": v.config,
        "variables": v.variables,
        "commit_message": v.commit_message,
        "author": v.author_name,
        "created_at": v.created_at.isoformat(),
        "tags": resolved.prompt.tags,
    }


def _etag(payload: dict[str, Any]) -> str:
    # Hash of the exact body: versions are immutable, but the labels in the body move,
    # so an ETag of the version number alone would hide a label move from a poller.
    body = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = [tag.strip() for tag in if_none_match.split(",")]
    # Weak comparison (RFC 9110 13.1.2): W/"x" matches "x" for If-None-Match.
    return "*" in candidates or any(tag.removeprefix("W/") == etag for tag in candidates)


class VersionSerializer(serializers.Serializer):
    """A prompt version as served to clients (and SDKs)."""

    name = serializers.CharField()
    type = serializers.ChoiceField(choices=PromptType.choices)
    version = serializers.IntegerField()
    labels = serializers.ListField(child=serializers.CharField())
    template = serializers.JSONField(help_text='A string (text) or a list of {"role", "content"} (chat).')
    config = serializers.JSONField()
    variables = serializers.ListField(child=serializers.CharField())
    commit_message = serializers.CharField()
    author = serializers.CharField()
    created_at = serializers.DateTimeField()
    tags = serializers.ListField(child=serializers.CharField())


class FetchParams(serializers.Serializer):
    label = serializers.CharField(required=False, max_length=64)
    version = serializers.IntegerField(required=False, min_value=1)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = set(self.initial_data) - {"label", "version", "project"}
        if unknown:
            raise serializers.ValidationError(f"Unknown parameter(s): {', '.join(sorted(unknown))}.")
        if "label" in attrs and "version" in attrs:
            raise serializers.ValidationError("Pass either label or version, not both.")
        return attrs


class VersionCreateSerializer(serializers.Serializer):
    type = serializers.ChoiceField(
        choices=PromptType.choices, required=False, help_text="Needed only to create; inferred from the template."
    )
    template = serializers.JSONField(help_text='A string (text) or a list of {"role", "content"} (chat).')
    config = serializers.JSONField(required=False, default=dict)
    commit_message = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    labels = serializers.ListField(child=serializers.CharField(max_length=64), required=False, default=list)
    base_version = serializers.IntegerField(
        required=False,
        min_value=0,
        allow_null=True,
        help_text="The version your edit started from (0 = new prompt). If the prompt has moved on, 409.",
    )
    description = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    tags = serializers.ListField(child=serializers.CharField(max_length=100), required=False)


class LabelMoveSerializer(serializers.Serializer):
    label = serializers.CharField(max_length=64)
    version = serializers.IntegerField(min_value=1)


class LabelMovedSerializer(serializers.Serializer):
    label = serializers.CharField()
    version = serializers.IntegerField()
    previous_version = serializers.IntegerField(allow_null=True)
    moved = serializers.BooleanField(help_text="False when the label already pointed there.")


class PromptListItemSerializer(serializers.Serializer):
    name = serializers.CharField(source="prompt.name")
    type = serializers.CharField(source="prompt.type")
    description = serializers.CharField(source="prompt.description")
    tags = serializers.ListField(source="prompt.tags", child=serializers.CharField())
    latest_version = serializers.IntegerField(source="prompt.latest_version")
    labels = serializers.DictField(child=serializers.IntegerField(), help_text="label -> version")
    traffic_7d = serializers.IntegerField(help_text="Traces naming this prompt in the last 7 days.")
    last_used = serializers.DateTimeField(allow_null=True)
    updated_at = serializers.DateTimeField(source="prompt.updated_at")


class PromptListResponseSerializer(serializers.Serializer):
    results = PromptListItemSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class PromptListView(APIView):
    @extend_schema(
        operation_id="prompts_list",
        summary="List prompts",
        description="Prompts by name, with their labels and traffic. Pass `next_cursor` back as `cursor`.",
        parameters=[
            OpenApiParameter("cursor", OpenApiTypes.STR, description="From the previous page's next_cursor."),
            OpenApiParameter("limit", OpenApiTypes.INT, description="1-200, default 50."),
            PROJECT_PARAM,
        ],
        responses={200: PromptListResponseSerializer, **ERRORS},
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        access = project_access(request, required_role=Role.VIEWER)
        try:
            limit = int(request.query_params.get("limit", 50))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 200:
            raise serializers.ValidationError({"limit": "must be an integer from 1 to 200."})
        rows, next_cursor = selectors.prompts_list(
            project=access.project, after=request.query_params.get("cursor") or None, limit=limit
        )
        return Response(
            PromptListResponseSerializer({"results": rows, "next_cursor": next_cursor}).data
        )


class PromptFetchView(APIView):
    @extend_schema(
        operation_id="prompts_retrieve",
        summary="Fetch a prompt version",
        description=(
            "By `version`, or by `label` (`latest` = the newest version). With neither: the "
            "version labelled `production` if that label exists, otherwise the newest. Send "
            "the previous response's `ETag` as `If-None-Match` to get 304 when nothing changed "
            "(the ETag covers the labels too, so a label move is seen)."
        ),
        parameters=[NAME_PARAM, FetchParams, PROJECT_PARAM],
        responses={
            200: VersionSerializer,
            304: OpenApiResponse(description="Unchanged since the ETag you sent."),
            400: OpenApiResponse(ErrorSerializer, description="Both label and version, or a bad value."),
            **ERRORS,
        },
        tags=TAGS,
    )
    def get(self, request: Request, name: str) -> Response:
        access = project_access(request, required_role=Role.VIEWER)
        params = FetchParams(data=request.query_params)
        params.is_valid(raise_exception=True)
        resolved = selectors.prompt_resolve(
            project=access.project,
            name=name,
            label=params.validated_data.get("label"),
            version=params.validated_data.get("version"),
        )
        payload = version_payload(resolved)
        etag = _etag(payload)
        headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
        if _matches(request.headers.get("If-None-Match"), etag):
            return Response(status=304, headers=headers)
        return Response(payload, headers=headers)


class VersionCreateView(APIView):
    @extend_schema(
        operation_id="prompts_versions_create",
        summary="Create a prompt version",
        description=(
            "Appends an immutable version (the first one creates the prompt; `type` is "
            "inferred from the template when omitted). Optional `labels` are moved to it in "
            "the same transaction. With `base_version`, a prompt that moved past it answers "
            "409 `stale_version`. A malformed template (e.g. an unclosed `{{`) answers 400 "
            "`bad_template` naming the line and column."
        ),
        parameters=[NAME_PARAM, PROJECT_PARAM],
        request=VersionCreateSerializer,
        responses={
            201: VersionSerializer,
            400: OpenApiResponse(ErrorSerializer, description="Invalid name, template, config or labels."),
            409: OpenApiResponse(ErrorSerializer, description="base_version is not the latest version."),
            **ERRORS,
        },
        tags=TAGS,
    )
    def post(self, request: Request, name: str) -> Response:
        access = project_access(request, required_role=Role.MEMBER)
        body = VersionCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        version = services.prompt_version_create(
            project=access.project,
            name=name,
            template=data["template"],
            prompt_type=data.get("type"),
            config=data["config"],
            commit_message=data["commit_message"],
            base_version=data.get("base_version"),
            labels=data["labels"],
            description=data.get("description"),
            tags=data.get("tags"),
            actor=services.Actor.from_access(access),
        )
        resolved = selectors.prompt_resolve(project=access.project, name=name, version=version.version)
        return Response(version_payload(resolved), status=201)


class LabelMoveView(APIView):
    @extend_schema(
        operation_id="prompts_labels_move",
        summary="Move a label to a version",
        description="Creates the label if new. Rolling back is moving it back. `latest` cannot be moved.",
        parameters=[NAME_PARAM, PROJECT_PARAM],
        request=LabelMoveSerializer,
        responses={200: LabelMovedSerializer, 400: OpenApiResponse(ErrorSerializer), **ERRORS},
        tags=TAGS,
    )
    def post(self, request: Request, name: str) -> Response:
        access = project_access(request, required_role=Role.MEMBER)
        body = LabelMoveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        label, number = body.validated_data["label"], body.validated_data["version"]
        event = services.prompt_label_move(
            project=access.project, name=name, label=label, version=number, actor=services.Actor.from_access(access)
        )
        return Response(
            {
                "label": label,
                "version": number,
                "previous_version": event.from_version if event else number,
                "moved": event is not None,
            }
        )
