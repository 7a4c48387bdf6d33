"""Shed ingest load: at most N OTLP requests at work per web process, the rest 503 at once.

Under sustained overload a server that queues everything answers later and later,
its clients time out and resend, and it spends its time on batches nobody waits for
any more. OTLP exporters retry 503 after `Retry-After`, so refusing early is cheap for
both sides. This middleware runs before any body is buffered: a refused request's body is never decoded nor
held (a chunked one is not buffered), so a process holds at most N bodies of at most
OTLP_MAX_BODY_BYTES each, however many clients come. It is read off the socket in
blocks and dropped, though: gunicorn answers such a request with `Connection:
keep-alive` but cannot parse the client's next request behind a large unread body,
so the client's next send on that connection broke (a bench run saw one broken pipe
per 503; a WSGI app cannot send `Connection: close`).

The limit is per process (`SPYGLASS_MAX_INGEST_INFLIGHT`) and only applies to the OTLP
receivers: pages and the REST API are clicked by people, whose browsers would not retry
a 503 (a dashboard's charts load in parallel), so they queue as before. With gunicorn's
sync workers a process only ever has one request at work; `make run` serves with
threads (`WEB_THREADS`), so that a process has threads to refuse with while N work.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from google.rpc import status_pb2

from config.db_faults import RETRY_AFTER_SECONDS

INGEST_PATHS = ("/v1/traces", "/v1/logs")
_DISCARD_BLOCK = 256 * 1024
_GRPC_UNAVAILABLE = 14
MESSAGE = "Spyglass is overloaded; nothing was stored, retry later."


class _Gate:
    """A counter, not a semaphore: the limit is read per request, so tests can change it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_flight = 0

    def enter(self, limit: int) -> bool:
        with self._lock:
            if self.in_flight >= limit:
                return False
            self.in_flight += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1


_gate = _Gate()


def _discard_body(request: HttpRequest) -> None:
    """Read the body to its end (at most the ingest cap) without keeping it."""
    chunked = request.META.get("HTTP_TRANSFER_ENCODING", "").strip().lower() not in ("", "identity")
    if chunked and not request.META.get("wsgi.input_terminated"):
        return  # unframed: the server closes the connection anyway
    # Django's request reads up to Content-Length; a de-chunked input up to its end.
    stream = request.META["wsgi.input"] if chunked else request
    left = settings.OTLP_MAX_BODY_BYTES
    try:
        while left > 0:
            block = stream.read(min(_DISCARD_BLOCK, left))
            if not block:
                return
            left -= len(block)
    except OSError:  # the client went away: nothing to keep alive
        return


def _overloaded(request: HttpRequest) -> HttpResponse:
    _discard_body(request)
    # The receivers' error shape (google.rpc.Status in the request's encoding), written
    # here because config's base modules import no app.
    if request.content_type == "application/x-protobuf":
        body = status_pb2.Status(code=_GRPC_UNAVAILABLE, message=MESSAGE).SerializeToString()
        response = HttpResponse(body, status=503, content_type="application/x-protobuf")
    else:
        response = HttpResponse(orjson.dumps({"code": _GRPC_UNAVAILABLE, "message": MESSAGE}), status=503,
                                content_type="application/json")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class IngestInFlightLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path not in INGEST_PATHS:
            return self.get_response(request)
        if not _gate.enter(settings.SPYGLASS_MAX_INGEST_INFLIGHT):
            return _overloaded(request)
        try:
            return self.get_response(request)
        finally:
            _gate.leave()
