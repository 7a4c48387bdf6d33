"""REST API: POST/GET /api/v1/scores (secret key or session) and POST /api/v1/feedback
(the browser-safe public-key endpoint for end users).

Views validate input, call one service or selector and serialize.
"""

from __future__ import annotations

import math
import re
from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import ErrorSerializer
from config.errors import error_body
from feedback import ratelimit, services
from projects.models import ApiKey, hash_secret
from scores.api import AnyValueField
from tracing.api import normalize_span_id, normalize_trace_id

_EVENT_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,100}")


# --- scores ---------------------------------------------------------------------------


# --- end-user feedback (public key) ---------------------------------------------------


class FeedbackInputSerializer(serializers.Serializer):
    trace_id = serializers.CharField(max_length=64)
    kind = serializers.ChoiceField(choices=["feedback", "event"], default="feedback")
    name = serializers.CharField(max_length=100)
    value = AnyValueField(required=False, allow_null=True)
    comment = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=10_000)
    span_id = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=64)
    tags = serializers.ListField(child=serializers.CharField(max_length=100), required=False, max_length=20)
    text = serializers.CharField(required=False, allow_null=True, max_length=services.MAX_EVENT_TEXT_CHARS)
    metadata = serializers.DictField(required=False, default=dict)
    id = serializers.UUIDField(required=False, help_text="Optional client id: a retried request is stored once.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs["trace_id"] = normalize_trace_id(attrs["trace_id"])
        attrs["span_id"] = normalize_span_id(attrs.get("span_id"))
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
            "text; `tags`), one per trace/span and name: a later one replaces it (200). "
            "`kind=event` stores an interaction event: `copy`, `regenerate`, `edit` "
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
        written = services.feedback_record(
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
        row = written.row
        # 200: an earlier row was updated (a retried id, or the end user's new thumbs
        # replacing their old one on this trace); its id is the one returned.
        return Response(
            {"id": str(row.pk), "kind": data["kind"], "trace_id": row.trace_id}, status=201 if written.created else 200
        )
