"""API pieces for referring to traces, shared by every app's API; the masking settings API."""

from __future__ import annotations

import re

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import ERRORS, PROJECT_PARAM, ErrorSerializer
from projects.auth import project_access
from projects.models import Role
from tracing.selectors import masking_settings_get
from tracing.services import masking_settings_save

_TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")


def normalize_trace_id(value: str) -> str:
    """The lowercase hex id stored for a trace; ValidationError unless 32 hex characters."""
    if not _TRACE_ID.fullmatch(value):
        shown = value if len(value) <= 64 else value[:64] + "..."
        raise serializers.ValidationError({"trace_id": [f"expected 32 hex characters, got {shown!r}"]})
    return value.lower()


_SPAN_ID = re.compile(r"[0-9a-fA-F]{16}")


def normalize_span_id(value: str | None) -> str | None:
    """The lowercase hex id of a span, None for none; ValidationError unless 16 hex characters."""
    if value in (None, ""):
        return None
    if not _SPAN_ID.fullmatch(value):
        raise serializers.ValidationError({"span_id": [f"expected 16 hex characters, got {value[:40]!r}"]})
    return value.lower()


class MaskingRuleSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="1-40 letters, digits or underscores; matches become [NAME].")
    pattern = serializers.CharField(help_text="RE2 syntax (no backreferences or lookaround), 1-500 characters.")


class MaskingSerializer(serializers.Serializer):
    kinds = serializers.ListField(
        child=serializers.CharField(), allow_empty=True,
        help_text="Built-in detectors to apply: email, api_key, iban, card, phone. Empty turns them off.",
    )
    custom = MaskingRuleSerializer(many=True, required=False, default=list)


class MaskingResponseSerializer(MaskingSerializer):
    default = serializers.BooleanField(help_text="True while the project has never saved its own choice.")


class MaskingView(APIView):
    """GET /api/v1/masking (viewers, secret keys); POST replaces the settings (admins)."""

    @extend_schema(
        operation_id="masking_get",
        summary="What this project masks at ingest",
        parameters=[PROJECT_PARAM],
        responses={200: MaskingResponseSerializer, **ERRORS},
        tags=["privacy"],
    )
    def get(self, request: Request) -> Response:
        access = project_access(request, required_role=Role.VIEWER)
        return Response(masking_settings_get(project=access.project))

    @extend_schema(
        operation_id="masking_replace",
        summary="Replace what this project masks at ingest (admins)",
        description="Applies to data received from now on. A custom pattern RE2 cannot compile, or one "
                    "that matches empty text, is a 400 naming the rule. See the README, \"Privacy\".",
        parameters=[PROJECT_PARAM],
        request=MaskingSerializer,
        responses={200: MaskingResponseSerializer,
                   400: OpenApiResponse(ErrorSerializer, description="A detector or rule is invalid; it is named."),
                   **ERRORS},
        tags=["privacy"],
    )
    def post(self, request: Request) -> Response:
        access = project_access(request, required_role=Role.ADMIN)
        body = MaskingSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        masking_settings_save(project=access.project, kinds=body.validated_data["kinds"],
                              custom=[dict(rule) for rule in body.validated_data["custom"]])
        return Response(masking_settings_get(project=access.project))
