"""REST API for scores: GET/POST /api/v1/scores (secret key or session)."""

from __future__ import annotations

from typing import Any

from django.http import QueryDict
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import EMPTY_MESSAGE, ERRORS, PROJECT_PARAM, ErrorSerializer, IsoDateTimeField
from projects.auth import project_access
from projects.models import Role
from scores import selectors, services
from scores.models import Score, Source
from tracing.api import normalize_span_id, normalize_trace_id


class AnyValueField(serializers.JSONField):
    """A JSON number, boolean, string or null; the score config decides what is valid."""


class ScoreInputSerializer(serializers.Serializer):
    id = serializers.UUIDField(required=False, help_text="Optional client id: posting the same id again updates.")
    trace_id = serializers.CharField(max_length=64)
    span_id = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=64)
    name = serializers.CharField(max_length=100)
    value = AnyValueField(required=False, allow_null=True, help_text="Number, boolean or category label.")
    data_type = serializers.ChoiceField(
        choices=["numeric", "categorical", "boolean", "text"],
        required=False,
        help_text="Only for names without a score config; inferred from the value otherwise.",
    )
    comment = serializers.CharField(required=False, allow_blank=True, max_length=10_000, default="")
    source = serializers.ChoiceField(
        choices=Source.values,
        required=False,
        help_text="Secret key: api (default), evaluator, implicit or end_user. Session: annotation.",
    )
    metadata = serializers.DictField(required=False, default=dict)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs["trace_id"] = normalize_trace_id(attrs["trace_id"])
        attrs["span_id"] = normalize_span_id(attrs.get("span_id"))
        value = attrs.get("value")
        if isinstance(value, list | dict):
            raise serializers.ValidationError({"value": ["must be a number, boolean, string or null"]})
        return attrs


class ScoreSerializer(serializers.Serializer):
    """A score as returned by the API (and inside a trace's `scores`)."""

    id = serializers.UUIDField()
    trace_id = serializers.CharField()
    span_id = serializers.CharField(allow_null=True)
    name = serializers.CharField()
    value = serializers.FloatField(allow_null=True, help_text="Numeric value; booleans are 0/1.")
    string_value = serializers.CharField(allow_null=True, help_text="Category label for categorical scores.")
    data_type = serializers.CharField()
    source = serializers.CharField()
    author = serializers.CharField(allow_null=True, help_text="Username of the reviewer, for annotations.")
    comment = serializers.CharField()
    queue_id = serializers.IntegerField(allow_null=True)
    metadata = serializers.DictField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class ScoreListResponseSerializer(serializers.Serializer):
    data = ScoreSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class ScoreFilterSerializer(serializers.Serializer):
    trace_id = serializers.CharField(required=False, max_length=64, error_messages={"blank": EMPTY_MESSAGE})
    span_id = serializers.CharField(required=False, max_length=64, error_messages={"blank": EMPTY_MESSAGE})
    name = serializers.CharField(required=False, max_length=100, error_messages={"blank": EMPTY_MESSAGE})
    source = serializers.ChoiceField(choices=Source.values, required=False)
    author = serializers.CharField(required=False, max_length=150, help_text="Reviewer username.")
    queue_id = serializers.IntegerField(required=False, min_value=1)
    from_ = IsoDateTimeField(required=False, help_text="Scores created at or after (ISO-8601).")
    to = IsoDateTimeField(required=False, help_text="Scores created before (ISO-8601).")
    limit = serializers.IntegerField(
        required=False, default=selectors.LIST_LIMIT_DEFAULT, min_value=1, max_value=selectors.LIST_LIMIT_MAX
    )
    cursor = serializers.CharField(required=False, max_length=200)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        known = set(self.fields) | {"project"}
        unknown = {
            k: [f"unknown query parameter; expected one of {', '.join(sorted(known))}"] for k in data if k not in known
        }
        repeated = {
            k: ["given more than once"]
            for k in data
            if isinstance(data, QueryDict) and len(data.getlist(k)) > 1 and k not in unknown
        }
        try:
            validated = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({**exc.detail, **unknown, **repeated}) from None
        if unknown or repeated:
            raise serializers.ValidationError({**unknown, **repeated})
        return validated

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("trace_id"):
            attrs["trace_id"] = normalize_trace_id(attrs["trace_id"])
        if attrs.get("span_id"):
            attrs["span_id"] = normalize_span_id(attrs["span_id"])
        if attrs.get("cursor"):
            try:
                attrs["cursor"] = selectors.ScoreCursor.decode(attrs["cursor"])
            except ValueError as exc:
                raise serializers.ValidationError({"cursor": [str(exc)]}) from None
        start, end = attrs.get("from"), attrs.get("to")
        if start and end and start > end:
            raise serializers.ValidationError({"from": ["is after to"]})
        return attrs

    def filters(self) -> selectors.ScoreFilters:
        d = self.validated_data
        return selectors.ScoreFilters(
            trace_id=d.get("trace_id"),
            span_id=d.get("span_id"),
            name=d.get("name"),
            source=d.get("source"),
            author=d.get("author"),
            queue_id=d.get("queue_id"),
            created_from=d.get("from"),
            created_to=d.get("to"),
        )


KEY_SOURCES = {Source.API, Source.EVALUATOR, Source.IMPLICIT, Source.END_USER}


class ScoreListView(APIView):
    @extend_schema(
        operation_id="scores_list",
        summary="List scores",
        description=(
            "Scores of the project, newest first, with keyset pagination (`next_cursor` → "
            "`cursor`). Filters combine with AND; unknown parameters are a 400."
        ),
        parameters=[ScoreFilterSerializer, PROJECT_PARAM],
        responses={200: ScoreListResponseSerializer, 400: OpenApiResponse(ErrorSerializer), **ERRORS},
        tags=["scores"],
    )
    def get(self, request: Request) -> Response:
        access = project_access(request, required_role=Role.VIEWER)
        params = ScoreFilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        page = selectors.scores_list(
            project=access.project,
            filters=params.filters(),
            limit=params.validated_data["limit"],
            cursor=params.validated_data.get("cursor"),
        )
        return Response({"data": [selectors.score_as_dict(s) for s in page.scores], "next_cursor": page.next_cursor})

    @extend_schema(
        operation_id="scores_create",
        summary="Create or update a score",
        description=(
            "Values are checked against the project's score config of the same `name` "
            "(range, categories, type); names without a config are accepted with the type "
            "of their value. Send an `id` (UUID) to make retries idempotent: the same id "
            "updates the score (200) instead of creating another (201). With a session, "
            "the score is your annotation (one per trace/span and config; posting again "
            "updates it). `end_user` scores are one per trace/span and name too: the end "
            "user's latest verdict replaces the earlier one (200)."
        ),
        parameters=[PROJECT_PARAM],
        request=ScoreInputSerializer,
        responses={
            200: ScoreSerializer,
            201: ScoreSerializer,
            400: OpenApiResponse(ErrorSerializer, description="Invalid value for its config, or bad field."),
            403: OpenApiResponse(ErrorSerializer, description="Viewers cannot write scores."),
            409: OpenApiResponse(ErrorSerializer, description="The id belongs to another score."),
            **ERRORS,
        },
        tags=["scores"],
    )
    def post(self, request: Request) -> Response:
        access = project_access(request, required_role=Role.REVIEWER)
        body = ScoreInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if access.api_key is not None:
            source = data.get("source", Source.API)
            if source not in KEY_SOURCES:
                allowed = ", ".join(sorted(KEY_SOURCES))
                message = f"with an API key use one of {allowed}; annotations need a reviewer's session"
                raise serializers.ValidationError({"source": [message]})
            author = None
        else:
            source = data.get("source", Source.ANNOTATION)
            if source != Source.ANNOTATION:
                raise serializers.ValidationError({"source": ["a signed-in user's scores are annotations"]})
            author = access.user
        result = services.score_upsert(
            project=access.project,
            trace_id=data["trace_id"],
            span_id=data["span_id"],
            name=data["name"],
            value=data.get("value"),
            data_type=data.get("data_type"),
            comment=data["comment"],
            source=source,
            author=author,
            score_id=data.get("id"),
            metadata=data["metadata"],
        )
        score = Score.objects.select_related("author").get(pk=result.score.pk)
        return Response(selectors.score_as_dict(score), status=201 if result.created else 200)
