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


# Answers any operation can give, whatever its own declaration says: the role check
# (403; outsiders get 404, declared everywhere), bad input (400: unknown or malformed
# parameters are refused, not ignored), and for operations with a body the limits of
# config/request_body.py (413 over SPYGLASS_MAX_BODY_BYTES; 411 for a chunked body a
# server cannot terminate). schemathesis found them answered but undocumented.
_COMMON_ERRORS = {
    "400": "Invalid parameters or body; `error.detail` names each problem.",
    "403": "Your role in the project does not allow this.",
}
_BODY_ERRORS = {
    "411": "A chunked body on a server that cannot terminate it; send a Content-Length.",
    "413": "The body is larger than SPYGLASS_MAX_BODY_BYTES.",
}


def document_common_errors(result: dict, generator: Any, request: Any, public: bool) -> dict:
    """drf-spectacular postprocessing hook: add the answers above where an operation
    does not declare them itself."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            extra = {**_COMMON_ERRORS, **(_BODY_ERRORS if "requestBody" in operation else {})}
            for status, description in extra.items():
                responses.setdefault(status, {"description": description, "content": error})
    return result
