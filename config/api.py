"""What every REST API view shares: the secret-key scheme in the OpenAPI schema, the
`project` parameter of session auth, the one error shape, and the datetime field."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema_field
from rest_framework import serializers

from config.datetimes import parse_user_datetime

EMPTY_MESSAGE = "must not be empty (leave the parameter out to not filter)"


@extend_schema_field(OpenApiTypes.DATETIME)
class IsoDateTimeField(serializers.Field):
    """An ISO-8601 datetime, read by the one parser every endpoint shares
    (config/datetimes.py): naive values are UTC, any offset is converted to UTC, and a
    time out of the accepted range is a 400 naming the field."""

    def to_internal_value(self, data: Any) -> datetime:
        try:
            return parse_user_datetime(str(data))
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def to_representation(self, value: datetime) -> str:
        return value.isoformat()


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    detail = serializers.JSONField(allow_null=True)


class ErrorSerializer(serializers.Serializer):
    """The one error shape of the API (config.errors)."""

    error = ErrorBodySerializer()


class SecretKeyAuthScheme(OpenApiAuthenticationExtension):
    """OpenAPI security schemes for projects.auth.SecretKeyAuthentication.

    Registered on import; it lives here because this is the first API module. Move it
    to projects/ when a second app grows an API.
    """

    target_class = "projects.auth.SecretKeyAuthentication"
    name: ClassVar[list[str]] = ["secretKey", "publicSecretKeyPair"]

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[str]]]:
        # Either scheme alone authenticates (OR), hence one requirement per scheme.
        return [{"secretKey": []}, {"publicSecretKeyPair": []}]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, str]]:
        return [
            {
                "type": "http",
                "scheme": "bearer",
                "description": "Authorization: Bearer <secret key> (sk-sg-...).",
            },
            {
                "type": "http",
                "scheme": "basic",
                "description": "Basic auth with username <public key> and password <secret key>.",
            },
        ]


PROJECT_PARAM = OpenApiParameter(
    "project",
    OpenApiTypes.STR,
    OpenApiParameter.QUERY,
    description=(
        "Project slug, for session (browser) auth when you belong to several projects. "
        "Ignored with a secret key, which always means the key's own project."
    ),
)


ERRORS = {
    401: OpenApiResponse(ErrorSerializer, description="No, unknown or revoked API key, and no session."),
    404: OpenApiResponse(ErrorSerializer, description="Project (session auth) or trace not found."),
}
