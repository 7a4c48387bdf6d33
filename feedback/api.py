"""REST API: POST/GET /api/v1/scores (secret key or session) and POST /api/v1/feedback
(the browser-safe public-key endpoint for end users).

Views validate input, call one service or selector and serialize.
"""

from __future__ import annotations

import math
import re
from typing import Any

from django.conf import settings
from django.http import QueryDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import error_body
from feedback import ratelimit, selectors, services
from feedback.models import InteractionEvent, Score, Source
from projects.auth import project_access
from projects.models import ApiKey, Role, hash_secret
from tracing.api import ERRORS, PROJECT_PARAM
from tracing.serializers import EMPTY_MESSAGE, ErrorSerializer, IsoDateTimeField, normalize_trace_id

_SPAN_ID = re.compile(r"[0-9a-fA-F]{16}")
_EVENT_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,100}")


def _span_id(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    if not _SPAN_ID.fullmatch(value):
        raise serializers.ValidationError({"span_id": [f"expected 16 hex characters, got {value[:40]!r}"]})
    return value.lower()


class _AnyValue(serializers.JSONField):
    """A JSON number, boolean, string or null; the score config decides what is valid."""


# --- scores ---------------------------------------------------------------------------


class ScoreInputSerializer(serializers.Serializer):
    id = serializers.UUIDField(required=False, help_text="Optional client id: posting the same id again updates.")
    trace_id = serializers.CharField(max_length=64)
    span_id = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=64)
    name = serializers.CharField(max_length=100)
    value = _AnyValue(required=False, allow_null=True, help_text="Number, boolean or category label.")
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
        attrs["span_id"] = _span_id(attrs.get("span_id"))
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
            attrs["span_id"] = _span_id(attrs["span_id"])
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
            "updates it)."
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


# --- end-user feedback (public key) ---------------------------------------------------


class FeedbackInputSerializer(serializers.Serializer):
    trace_id = serializers.CharField(max_length=64)
    kind = serializers.ChoiceField(choices=["feedback", "event"], default="feedback")
    name = serializers.CharField(max_length=100)
    value = _AnyValue(required=False, allow_null=True)
    comment = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=10_000)
    span_id = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=64)
    tags = serializers.ListField(child=serializers.CharField(max_length=100), required=False, max_length=20)
    text = serializers.CharField(required=False, allow_null=True, max_length=services.MAX_EVENT_TEXT_CHARS)
    metadata = serializers.DictField(required=False, default=dict)
    id = serializers.UUIDField(required=False, help_text="Optional client id: a retried request is stored once.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs["trace_id"] = normalize_trace_id(attrs["trace_id"])
        attrs["span_id"] = _span_id(attrs.get("span_id"))
        if not _EVENT_NAME.fullmatch(attrs["name"]):
            raise serializers.ValidationError({"name": ["letters, digits and _ . : - only, at most 100"]})
        if len(str(attrs["metadata"])) > 10_000:
            raise serializers.ValidationError({"metadata": ["at most 10 kB"]})
        return attrs


class FeedbackResponseSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    kind = serializers.CharField()
    trace_id = serializers.CharField()


def _cors_origin(request: Request) -> str | None:
    """The Origin to echo back, if CORS allows it (None: not a cross-origin browser call)."""
    origin = request.headers.get("Origin")
    allowed = settings.SPYGLASS_FEEDBACK_CORS_ORIGINS
    if origin and ("*" in allowed or origin in allowed):
        return origin
    return None


def _client_address(request: Request) -> str:
    # REMOTE_ADDR, not X-Forwarded-For: the header is client-controlled unless a trusted
    # proxy rewrites it, and a limiter keyed on it could be dodged by inventing values.
    return request.META.get("REMOTE_ADDR") or "unknown"


def _origin_refused(request: Request) -> Response:
    origin = request.headers["Origin"]
    message = f"Origin {origin!r} may not send feedback; add it to SPYGLASS_FEEDBACK_CORS_ORIGINS."
    return Response(error_body("origin_not_allowed", message), status=403)


class _Unauthorized(Exception):
    pass


def _public_key(request: Request) -> ApiKey:
    header_key = request.headers.get("X-Spyglass-Public-Key", "").strip()
    authorization = request.headers.get("Authorization", "").strip()
    scheme, _, credential = authorization.partition(" ")
    if authorization and scheme.lower() != "bearer":
        raise _Unauthorized(
            "This endpoint takes the project's public key: 'Authorization: Bearer pk-sg-...' or X-Spyglass-Public-Key."
        )
    candidate = header_key or credential.strip()
    if not candidate:
        raise _Unauthorized(
            "Missing public key: send X-Spyglass-Public-Key: pk-sg-... (or Authorization: Bearer pk-sg-...)."
        )
    if candidate.startswith("sk-") or ApiKey.objects.filter(secret_hash=hash_secret(candidate)).exists():
        raise _Unauthorized(
            "This is a secret key. End-user feedback takes the PUBLIC key (pk-sg-...): the "
            "secret key must never be shipped to browsers. Rotate it if it was."
        )
    key = ApiKey.objects.select_related("project").filter(public_key=candidate).first()
    if key is None:
        raise _Unauthorized("Unknown public key.")
    if key.revoked_at is not None:
        raise _Unauthorized(f"Public key {key.public_key} was revoked.")
    return key


class FeedbackView(APIView):
    """End users' feedback and interaction events, authenticated with the public key only.

    Runs no DRF authentication: the default classes would treat a public key in
    `Authorization: Bearer` as an unknown secret key (and sessions would require CSRF).
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        origin = _cors_origin(request)
        if origin:
            response["Access-Control-Allow-Origin"] = origin
            response["Access-Control-Expose-Headers"] = "Retry-After"
        # Caches must not serve one origin's CORS answer to another.
        response["Vary"] = "Origin"
        return response

    @extend_schema(exclude=True)
    def options(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        origin = _cors_origin(request)
        if request.headers.get("Origin") and origin is None:
            return _origin_refused(request)
        response = Response(status=204)
        response["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response["Access-Control-Allow-Headers"] = "Content-Type, X-Spyglass-Public-Key, Authorization"
        response["Access-Control-Max-Age"] = "600"
        return response

    @extend_schema(
        operation_id="feedback_create",
        summary="Record end-user feedback or an interaction event (public key)",
        description=(
            "Browser-safe: authenticate with the project's PUBLIC key in "
            "`X-Spyglass-Public-Key` (or `Authorization: Bearer pk-sg-...`); a secret key is "
            "refused. `kind=feedback` stores a score with source end_user (`thumbs`/`user_thumbs`: "
            "true/false/up/down; `stars`/`user_rating`: 1–5; any name with a `comment` for free "
            "text; `tags`). `kind=event` stores an interaction event: `copy`, `regenerate`, `edit` "
            "(edited text in `text` or `value`), `abandon`, `dwell_ms` (number), `escalate`, or "
            "your own name. The trace need not exist yet. Rate-limited per key and per client "
            "address: 429 with Retry-After."
        ),
        auth=[],
        parameters=[
            OpenApiParameter(
                "X-Spyglass-Public-Key", OpenApiTypes.STR, OpenApiParameter.HEADER, description="pk-sg-..."
            )
        ],
        request=FeedbackInputSerializer,
        responses={
            201: FeedbackResponseSerializer,
            200: FeedbackResponseSerializer,
            400: OpenApiResponse(ErrorSerializer),
            401: OpenApiResponse(ErrorSerializer, description="Missing, unknown or secret key."),
            403: OpenApiResponse(ErrorSerializer, description="Browser origin not allowed by CORS settings."),
            429: OpenApiResponse(ErrorSerializer, description="Too many requests; see Retry-After."),
        },
        tags=["feedback"],
    )
    def post(self, request: Request) -> Response:
        if request.headers.get("Origin") and _cors_origin(request) is None:
            return _origin_refused(request)
        try:
            key = _public_key(request)
        except _Unauthorized as exc:
            response = Response(error_body("not_authenticated", str(exc)), status=401)
            response["WWW-Authenticate"] = 'Bearer realm="spyglass-feedback"'
            return response
        wait = ratelimit.take(
            [
                ratelimit.Bucket(f"ip:{_client_address(request)}", settings.SPYGLASS_FEEDBACK_IP_PER_MINUTE),
                ratelimit.Bucket(f"key:{key.public_key}", settings.SPYGLASS_FEEDBACK_KEY_PER_MINUTE),
            ]
        )
        if wait is not None:
            seconds = max(1, math.ceil(wait))
            response = Response(
                error_body(
                    "rate_limited",
                    f"Too much feedback from this client; retry in {seconds} s.",
                    {"retry_after": seconds},
                ),
                status=429,
            )
            response["Retry-After"] = str(seconds)
            return response
        body = FeedbackInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        existed = data.get("id") is not None and (
            Score.objects.filter(pk=data["id"]).exists() or InteractionEvent.objects.filter(pk=data["id"]).exists()
        )
        row = services.feedback_record(
            project=key.project,
            trace_id=data["trace_id"],
            kind=data["kind"],
            name=data["name"],
            value=data.get("value"),
            comment=data.get("comment") or "",
            span_id=data["span_id"],
            tags=data.get("tags") or (),
            text=data.get("text"),
            metadata=data["metadata"],
            client_id=data.get("id"),
        )
        return Response(
            {"id": str(row.pk), "kind": data["kind"], "trace_id": row.trace_id}, status=200 if existed else 201
        )
