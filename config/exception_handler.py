"""DRF exception handler: one JSON error shape {"error": {"code", "message", "detail"}}.

Kept apart from config.errors so services can raise domain errors without importing
DRF (which imports the authentication classes, which import the services: a cycle).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from config.errors import DomainError, error_body


def _flatten_detail(detail: Any) -> str:
    if isinstance(detail, dict):
        parts = [f"{field}: {_flatten_detail(value)}" for field, value in detail.items()]
        return "; ".join(parts)
    if isinstance(detail, list):
        return " ".join(_flatten_detail(item) for item in detail)
    return str(detail)


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, DomainError):
        return Response(error_body(exc.code, exc.message, exc.detail), status=exc.status)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, drf_exceptions.ValidationError):
        code, message = "invalid", _flatten_detail(exc.detail)
    elif isinstance(exc, drf_exceptions.APIException):
        code, message = exc.default_code, _flatten_detail(exc.detail)
    else:  # Http404 / PermissionDenied from Django
        code = "not_found" if response.status_code == 404 else "forbidden"
        message = _flatten_detail(response.data.get("detail", "")) if isinstance(response.data, dict) else ""
    response.data = error_body(code, message, exc.detail if isinstance(exc, drf_exceptions.ValidationError) else None)
    return response


def api_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: API clients get the one error shape, not the HTML page.

    A URL under /api/ that matches no route (e.g. a prompt name with a '/' in it, which
    names cannot have) answered Django's HTML 404 page, which a client cannot parse."""
    if request.path.startswith("/api/"):
        body = error_body("not_found", f"No API endpoint or object at {request.path}; see /api/v1/docs/.")
        return JsonResponse(body, status=404)
    return page_not_found(request, exception)
