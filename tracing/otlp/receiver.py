"""OTLP/HTTP receiver views: POST /v1/traces and POST /v1/logs.

Answers follow the OTLP spec (not the REST API's error shape): the response has the
request's encoding, errors are google.rpc.Status, a partly bad batch is a 200 with
partial_success, and 200 is sent only after the transaction has committed.
"""

from __future__ import annotations

import logging

import orjson
from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from config.db_faults import RETRY_AFTER_SECONDS, database_fault, log_fault
from config.request_body import body_limit
from projects.auth import KeyAuthError, api_key_from_authorization
from tracing.otlp import decode
from tracing.services import log_records_ingest, spans_ingest_salvaging

logger = logging.getLogger(__name__)

# gRPC status codes used in google.rpc.Status bodies.
_GRPC_CODE = {400: 3, 401: 16, 405: 12, 411: 3, 413: 8, 415: 3, 429: 8, 500: 13, 503: 14}


def _error(status: int, message: str, encoding: str) -> HttpResponse:
    code = _GRPC_CODE.get(status, 2)
    if encoding == decode.PROTOBUF:
        body = status_pb2.Status(code=code, message=message).SerializeToString()
        response = HttpResponse(body, status=status, content_type="application/x-protobuf")
    else:
        response = HttpResponse(
            orjson.dumps({"code": code, "message": message}), status=status, content_type="application/json"
        )
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="spyglass"'
    if status in (429, 503):
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _error_in_request_encoding(request: HttpRequest, status: int, message: str) -> HttpResponse:
    """An error before the content type was validated: in the client's encoding if
    it named one we know (body framing and size errors too), else JSON."""
    try:
        encoding = decode.encoding_for(request.content_type)
    except decode.BodyError:
        encoding = decode.JSON
    return _error(status, message, encoding)


def _success(encoding: str, rejected: int, message: str | None, *, logs: bool) -> HttpResponse:
    if encoding == decode.PROTOBUF:
        response_message = ExportLogsServiceResponse() if logs else ExportTraceServiceResponse()
        if rejected or message:
            partial = response_message.partial_success
            if logs:
                partial.rejected_log_records = rejected
            else:
                partial.rejected_spans = rejected
            partial.error_message = message or ""
        return HttpResponse(response_message.SerializeToString(), content_type="application/x-protobuf")
    body: dict = {}
    if rejected or message:
        field = "rejectedLogRecords" if logs else "rejectedSpans"
        # int64 fields are strings in OTLP/JSON.
        body["partialSuccess"] = {field: str(rejected), "errorMessage": message or ""}
    return HttpResponse(orjson.dumps(body), content_type="application/json")


def _receive(request: HttpRequest, *, logs: bool) -> HttpResponse:
    if request.method != "POST":
        # Checked before the content type: a GET usually has none, and is still a 405.
        response = _error_in_request_encoding(request, 405, "Use POST.")
        response["Allow"] = "POST"
        return response
    try:
        encoding = decode.encoding_for(request.content_type)
    except decode.BodyError as exc:
        return _error(exc.status, exc.message, decode.JSON)
    # The wire size was checked (and a chunked body read) by config.request_body.
    limit = settings.OTLP_MAX_BODY_BYTES
    try:
        key = api_key_from_authorization(request.headers.get("Authorization"))
    except KeyAuthError as exc:
        return _error(401, str(exc), encoding)
    except DatabaseError as exc:
        # Looking the key up also records its last use: a read-only database fails here.
        return _database_error(exc, encoding, stored=False)

    try:
        body = decode.decompress(request.body, request.headers.get("Content-Encoding"), limit=limit)
        decoded = (decode.decode_logs if logs else decode.decode_traces)(body, encoding)
    except decode.BodyError as exc:
        return _error(exc.status, exc.message, encoding)

    try:
        if logs:
            decoded.warnings.extend(log_records_ingest(project=key.project, records=decoded.logs))
        else:
            salvaged = spans_ingest_salvaging(project=key.project, spans=decoded.spans)
            for problem in salvaged.problems:
                decoded.reject(problem)
            decoded.warnings.extend(salvaged.notes)
    except DatabaseError as exc:
        return _database_error(exc, encoding, stored=True)
    return _success(encoding, decoded.rejected, _message(decoded), logs=logs)


def _database_error(exc: DatabaseError, encoding: str, *, stored: bool) -> HttpResponse:
    """503 + Retry-After, never a 500: nothing was committed, so the client's retry is
    safe (spans are inserted ON CONFLICT DO NOTHING). A known fault (stopped, read-only,
    disk full) is one log line that names it; anything else keeps its traceback."""
    fault = database_fault(exc)
    what = "OTLP batch not stored" if stored else "OTLP request refused before reading it"
    if fault is None:
        logger.exception(what)
        return _error(503, "Storage error; nothing was stored, retry later.", encoding)
    log_fault(fault, exc, what)
    return _error(503, f"{fault[0].upper()}{fault[1:]}; nothing was stored, retry later.", encoding)


def _message(decoded: decode.Decoded) -> str | None:
    """The first rejection, then what was stored differently from how it arrived. OTLP
    lets a server send partial_success with nothing rejected "to convey warnings"."""
    parts = [decoded.first_error] if decoded.first_error else []
    parts.extend(decoded.warnings)
    return "; ".join(parts) or None


def _otlp_limit() -> int:
    return settings.OTLP_MAX_BODY_BYTES


@csrf_exempt
@body_limit(_otlp_limit, error=_error_in_request_encoding)
def otlp_traces(request: HttpRequest) -> HttpResponse:
    return _receive(request, logs=False)


@csrf_exempt
@body_limit(_otlp_limit, error=_error_in_request_encoding)
def otlp_logs(request: HttpRequest) -> HttpResponse:
    return _receive(request, logs=True)
