"""Request bodies of any framing, read completely or refused: never read as empty.

Node's OTLP exporters (and any client that streams its body) send
`Transfer-Encoding: chunked` with no Content-Length. Django's WSGIRequest reads
CONTENT_LENGTH bytes, and 0 when the header is missing, so such a body used to look
empty: a protobuf export decoded as a valid empty request and was acknowledged with
nothing stored. This middleware runs before any view reads the body and

- leaves a body with a Content-Length to Django, after checking it against the view's
  limit (413 before a byte is read);
- buffers a chunked body when the WSGI server has de-chunked it and marks its end
  (`wsgi.input_terminated`, set by gunicorn, which `make run` uses): it reads in
  blocks and answers 413 as soon as the view's limit is passed, without holding the
  rest in memory;
- refuses a chunked body the server cannot terminate (e.g. `manage.py runserver`)
  with 411, since reading it would either block or yield raw chunk framing.

Views declare their limit and error format with `body_limit`; every other view gets
`SPYGLASS_MAX_BODY_BYTES` and the API's JSON error shape.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import orjson
from django.conf import settings
from django.core.handlers.wsgi import LimitedStream
from django.http import HttpRequest, HttpResponse

from config.errors import error_body

# Block size when draining a chunked body: large enough for few reads per request,
# small enough that a body over the limit is refused after one block too many.
_READ_BLOCK = 256 * 1024

ErrorRenderer = Callable[[HttpRequest, int, str], HttpResponse]


def json_error(request: HttpRequest, status: int, message: str) -> HttpResponse:
    code = {411: "length_required", 413: "too_large"}.get(status, "invalid")
    return HttpResponse(orjson.dumps(error_body(code, message)), status=status, content_type="application/json")


def body_limit(max_bytes: Callable[[], int], *, error: ErrorRenderer | None = None) -> Callable:
    """Give a view its own body cap (read when a request comes, so tests can override
    settings) and its own error format (OTLP answers in google.rpc.Status)."""

    def decorate(view: Callable) -> Callable:
        view.body_max_bytes = max_bytes  # type: ignore[attr-defined]
        if error is not None:
            view.body_error = error  # type: ignore[attr-defined]
        return view

    return decorate


def _declared(view: Callable, name: str) -> Any:
    # DRF's as_view() wraps the class; a decorator may sit on either.
    found = getattr(view, name, None)
    if found is None and hasattr(view, "cls"):
        found = getattr(view.cls, name, None)
    return found


def _chunked(request: HttpRequest) -> bool:
    coding = request.META.get("HTTP_TRANSFER_ENCODING", "").strip().lower()
    return bool(coding) and coding != "identity"


class BodyTooLarge(Exception):
    pass


def read_terminated(stream: Any, limit: int) -> bytes:
    """Read a de-chunked WSGI input to its end, stopping once `limit` is passed."""
    buffer = io.BytesIO()
    while True:
        block = stream.read(_READ_BLOCK)
        if not block:
            return buffer.getvalue()
        buffer.write(block)
        if buffer.tell() > limit:
            raise BodyTooLarge


class RequestBodyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view: Callable, args: Any, kwargs: Any) -> HttpResponse | None:
        limit_of = _declared(view, "body_max_bytes")
        limit = limit_of() if limit_of else settings.SPYGLASS_MAX_BODY_BYTES
        render: ErrorRenderer = _declared(view, "body_error") or json_error
        if not _chunked(request):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return render(request, 400, "Content-Length is not a number.")
            if length > limit:
                return render(request, 413, f"Body exceeds the {limit}-byte limit.")
            return None
        if not request.META.get("wsgi.input_terminated"):
            return render(
                request,
                411,
                "A chunked body needs a server that terminates the input (e.g. gunicorn, as "
                "`make run` uses); send a Content-Length, or serve Spyglass with gunicorn.",
            )
        try:
            body = read_terminated(request.META["wsgi.input"], limit)
        except BodyTooLarge:
            return render(request, 413, f"Body exceeds the {limit}-byte limit.")
        # Django and DRF both read through the request's stream, bounded by
        # CONTENT_LENGTH: give them the buffered body with its now-known length.
        request.META["CONTENT_LENGTH"] = str(len(body))
        request._stream = LimitedStream(io.BytesIO(body), len(body))
        return None
