"""OTLP/HTTP request bodies (protobuf or JSON) -> RawSpan / RawLogRecord.

Both encodings end in the same plain-Python shapes, so the mapping layer never knows
which one arrived. Invalid spans are not fatal: they are collected as rejections with
a message naming the first problem, and the valid ones go on (OTLP partial success).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracing.otlp.types import RawEvent, RawLogRecord, RawSpan

PROTOBUF = "protobuf"
JSON = "json"

_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_UINT64_MAX = 2**64 - 1  # fixed64 timestamps
# JSON attribute values nest without limit (protobuf's parser stops at 100 messages);
# deeper values are cut so that storing them (orjson, jsonb) cannot fail the batch.
_MAX_VALUE_DEPTH = 64


class BodyError(Exception):
    """The request body cannot be used at all; `status` is the HTTP answer."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Decoded:
    spans: list[RawSpan] = field(default_factory=list)
    logs: list[RawLogRecord] = field(default_factory=list)
    rejected: int = 0
    first_error: str | None = None
    # What was stored differently from how it arrived (sanitised, not rejected): told to
    # the client in partial_success even when nothing was rejected, as OTLP allows.
    warnings: list[str] = field(default_factory=list)

    def reject(self, message: str) -> None:
        self.rejected += 1
        if self.first_error is None:
            self.first_error = message


def encoding_for(content_type: str | None) -> str:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in ("application/x-protobuf", "application/protobuf"):
        return PROTOBUF
    if media == "application/json":
        return JSON
    raise BodyError(
        415, f"Unsupported Content-Type {media or '(none)'!r}; use application/x-protobuf or application/json."
    )


def decompress(body: bytes, content_encoding: str | None, *, limit: int) -> bytes:
    """Undo gzip/deflate, refusing to inflate past `limit` bytes (zip bombs)."""
    coding = (content_encoding or "identity").strip().lower()
    if coding in ("", "identity"):
        if len(body) > limit:
            raise BodyError(413, f"Body of {len(body)} bytes exceeds the {limit}-byte limit.")
        return body
    if coding == "gzip":
        wbits = 16 + zlib.MAX_WBITS
    elif coding == "deflate":
        wbits = zlib.MAX_WBITS  # zlib-wrapped, as the Python exporter sends; raw deflate retried below
    else:
        raise BodyError(415, f"Unsupported Content-Encoding {coding!r}; use gzip, deflate or none.")
    try:
        return _inflate(body, wbits, limit)
    except zlib.error as exc:
        if coding == "deflate":
            try:
                return _inflate(body, -zlib.MAX_WBITS, limit)
            except zlib.error:
                pass
        raise BodyError(400, f"Body is not valid {coding} data: {exc}.") from None


def _inflate(body: bytes, wbits: int, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(body, limit + 1)
    if len(out) > limit or inflater.unconsumed_tail:
        raise BodyError(413, f"Decompressed body exceeds the {limit}-byte limit.")
    if not inflater.eof:
        raise zlib.error("truncated stream")
    return out


# ---------------------------------------------------------------- protobuf


def _pb_value(value: Any) -> Any:
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        return value.double_value
    if which == "bool_value":
        return value.bool_value
    if which == "array_value":
        return [_pb_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _pb_value(kv.value) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return value.bytes_value.hex()
    return None


def _pb_attrs(attributes: Any) -> dict[str, Any]:
    return {kv.key: _pb_value(kv.value) for kv in attributes}


def _check_ids(trace_id: str, span_id: str, parent: str, name: str) -> str | None:
    if len(trace_id) != 32 or trace_id == _ZERO_TRACE:
        return f"span {name!r}: trace_id must be 16 non-zero bytes"
    if len(span_id) != 16 or span_id == _ZERO_SPAN:
        return f"span {name!r} in trace {trace_id}: span_id must be 8 non-zero bytes"
    if parent and len(parent) != 16:
        return f"span {span_id}: parent_span_id must be 8 bytes or empty"
    return None


def _log_ids_problem(trace_id: str, span_id: str) -> str | None:
    if trace_id and len(trace_id) != 32:
        return f"log record: trace_id must be 16 bytes or empty, got {len(trace_id) // 2}"
    if span_id and len(span_id) != 16:
        return f"log record: span_id must be 8 bytes or empty, got {len(span_id) // 2}"
    return None


def _check_times(start: int, end: int, span_id: str) -> str | None:
    if start < 0:
        return f"span {span_id}: start_time_unix_nano must not be negative"
    if start == 0:
        return f"span {span_id}: start_time_unix_nano is missing"
    if end > _UINT64_MAX:
        return f"span {span_id}: end_time_unix_nano is beyond the fixed64 range"
    if end < start:
        return f"span {span_id}: end_time_unix_nano is before start_time_unix_nano"
    return None


# ---- invalid UTF-8 in protobuf string fields
#
# proto3 parsers refuse a whole message when one string field holds invalid UTF-8 (a Go
# or C++ client can send that; Python cannot). Refusing it would lose every valid span of
# the batch, so a refused body is parsed again with every string field declared as bytes
# (a copy of the OTLP descriptors in a private pool), the bad bytes are replaced by
# U+FFFD, and the repaired message is parsed normally. Only refused bodies pay for this.


def _strings_as_bytes(message: descriptor_pb2.DescriptorProto, converted: set[str], prefix: str) -> None:
    name = f"{prefix}.{message.name}"
    for fld in message.field:
        if fld.type == FieldDescriptor.TYPE_STRING:
            fld.type = FieldDescriptor.TYPE_BYTES
            converted.add(f"{name}.{fld.name}")
    for nested in message.nested_type:
        _strings_as_bytes(nested, converted, name)


@functools.cache
def _lenient(request_class: type[Message]) -> tuple[type[Message], frozenset[str]]:
    """The request class with string fields as bytes, and the full names of those fields."""
    pool = descriptor_pool.DescriptorPool()
    converted: set[str] = set()
    added: set[str] = set()

    def add(file: Any) -> None:
        if file.name in added:
            return
        for dependency in file.dependencies:
            add(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        for message in proto.message_type:
            _strings_as_bytes(message, converted, proto.package)
        pool.Add(proto)
        added.add(file.name)

    add(request_class.DESCRIPTOR.file)
    lenient = message_factory.GetMessageClass(pool.FindMessageTypeByName(request_class.DESCRIPTOR.full_name))
    return lenient, frozenset(converted)


def _repair_utf8(message: Message, converted: frozenset[str]) -> int:
    """Replace invalid UTF-8 in the (former) string fields of `message`, recursively;
    returns how many values were repaired."""
    repaired = 0
    for fld, value in message.ListFields():
        if fld.type == FieldDescriptor.TYPE_MESSAGE:
            for child in value if fld.is_repeated else [value]:
                repaired += _repair_utf8(child, converted)
        elif fld.full_name in converted:
            items = list(value) if fld.is_repeated else [value]
            fixed = [item.decode("utf-8", "replace").encode() for item in items]
            if fixed != items:
                repaired += sum(a != b for a, b in zip(fixed, items, strict=True))
                if fld.is_repeated:
                    del value[:]
                    value.extend(fixed)
                else:
                    setattr(message, fld.name, fixed[0])
    return repaired


def _parse_protobuf(request: Message, body: bytes, out: Decoded) -> None:
    what = type(request).DESCRIPTOR.name
    try:
        request.ParseFromString(body)
        return
    except DecodeError as exc:
        error = exc
    lenient_class, converted = _lenient(type(request))
    lenient = lenient_class()
    try:
        lenient.ParseFromString(body)
    except DecodeError:
        raise BodyError(400, f"Body is not a valid {what} protobuf: {error}.") from None
    repaired = _repair_utf8(lenient, converted)
    try:
        request.ParseFromString(lenient.SerializeToString())
    except DecodeError:
        raise BodyError(400, f"Body is not a valid {what} protobuf: {error}.") from None
    if repaired:
        out.warnings.append(f"{repaired} string value(s) held invalid UTF-8; stored with U+FFFD in place of the "
                            "bad bytes")


def decode_traces_protobuf(body: bytes) -> Decoded:
    request = ExportTraceServiceRequest()
    out = Decoded()
    _parse_protobuf(request, body, out)
    for resource_spans in request.resource_spans:
        resource = _pb_attrs(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope_name = scope_spans.scope.name or None
            scope_version = scope_spans.scope.version or None
            for span in scope_spans.spans:
                trace_id = span.trace_id.hex()
                span_id = span.span_id.hex()
                parent = span.parent_span_id.hex()
                problem = _check_ids(trace_id, span_id, parent, span.name) or _check_times(
                    span.start_time_unix_nano, span.end_time_unix_nano, span_id
                )
                if problem:
                    out.reject(problem)
                    continue
                out.spans.append(
                    RawSpan(
                        trace_id=trace_id,
                        span_id=span_id,
                        parent_span_id=parent or None,
                        name=span.name,
                        otel_kind=span.kind if 0 <= span.kind < len(_SPAN_KINDS) else 0,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        status_code=span.status.code if 0 <= span.status.code < len(_STATUS_CODES) else 0,
                        status_message=span.status.message or None,
                        attributes=_pb_attrs(span.attributes),
                        events=[
                            RawEvent(name=e.name, time_ns=e.time_unix_nano, attributes=_pb_attrs(e.attributes))
                            for e in span.events
                        ],
                        resource=resource,
                        scope_name=scope_name,
                        scope_version=scope_version,
                    )
                )
    return out


def decode_logs_protobuf(body: bytes) -> Decoded:
    request = ExportLogsServiceRequest()
    out = Decoded()
    _parse_protobuf(request, body, out)
    for resource_logs in request.resource_logs:
        resource = _pb_attrs(resource_logs.resource.attributes)
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                trace_id, span_id = record.trace_id.hex(), record.span_id.hex()
                # Checked like JSON's: a 20-byte id used to reach the varchar(32) column and
                # fail the whole batch with a 503 the client would retry for ever.
                if problem := _log_ids_problem(trace_id, span_id):
                    out.reject(problem)
                    continue
                attributes = _pb_attrs(record.attributes)
                out.logs.append(
                    RawLogRecord(
                        trace_id=trace_id or None,
                        span_id=span_id or None,
                        time_ns=record.time_unix_nano or record.observed_time_unix_nano,
                        event_name=record.event_name or _str_or_none(attributes.get("event.name")),
                        body=_pb_value(record.body) if record.HasField("body") else None,
                        attributes=attributes,
                        resource=resource,
                    )
                )
    return out


# ---------------------------------------------------------------- JSON


def _get(obj: dict, camel: str, snake: str | None = None, default: Any = None) -> Any:
    # OTLP/JSON uses lowerCamelCase, but proto3 JSON parsers also accept field names.
    if not isinstance(obj, dict):  # a malformed body must give a 400/partial success, not a crash
        return default
    if camel in obj:
        return obj[camel]
    if snake is not None and snake in obj:
        return obj[snake]
    return default


def _json_int(value: Any) -> int:
    # 64-bit integers may arrive as JSON strings or numbers.
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise ValueError("boolean where an integer was expected")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return int(str(value))


_SPAN_KINDS = ("SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER", "SPAN_KIND_CLIENT",
               "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER")
_STATUS_CODES = ("STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR")


def _json_enum(value: Any, names: tuple[str, ...]) -> int:
    """OTLP/JSON enums are integers; names (proto3 JSON style) are accepted too.

    Values outside the enum become 0 (unspecified/unset): a future enum member must
    not cost the span.
    """
    if isinstance(value, str) and value in names:
        return names.index(value)
    number = _json_int(value)
    return number if 0 <= number < len(names) else 0


def _json_value(value: Any, depth: int = 0) -> Any:
    if not isinstance(value, dict) or depth > _MAX_VALUE_DEPTH:
        return None
    for key, snake in (("stringValue", "string_value"), ("boolValue", "bool_value"), ("doubleValue", "double_value")):
        if key in value or snake in value:
            raw = _get(value, key, snake)
            if key == "doubleValue" and isinstance(raw, str):  # "NaN", "Infinity"
                try:
                    return float(raw)
                except ValueError:
                    return None
            return raw
    if "intValue" in value or "int_value" in value:
        try:
            number = _json_int(_get(value, "intValue", "int_value"))
        except (TypeError, ValueError):
            return None
        # Not an int64: keep the digits as text; a Python int this big cannot be stored.
        return number if _INT64_MIN <= number <= _INT64_MAX else str(number)
    if "arrayValue" in value or "array_value" in value:
        array = _get(value, "arrayValue", "array_value") or {}
        values = array.get("values") if isinstance(array, dict) else None
        return [_json_value(v, depth + 1) for v in (values if isinstance(values, list) else [])]
    if "kvlistValue" in value or "kvlist_value" in value:
        kvlist = _get(value, "kvlistValue", "kvlist_value") or {}
        return _json_attrs(kvlist.get("values") if isinstance(kvlist, dict) else None, depth + 1)
    if "bytesValue" in value or "bytes_value" in value:
        try:
            return base64.b64decode(_get(value, "bytesValue", "bytes_value")).hex()
        except (binascii.Error, TypeError, ValueError):
            return None
    return None


def _json_attrs(attributes: Any, depth: int = 0) -> dict[str, Any]:
    if not isinstance(attributes, list):
        return {}
    result: dict[str, Any] = {}
    for kv in attributes:
        if isinstance(kv, dict) and isinstance(kv.get("key"), str):
            result[kv["key"]] = _json_value(kv.get("value"), depth)
    return result


def _json_id(value: Any, size: int, what: str) -> str:
    """OTLP/JSON ids are hex; accept base64 (plain proto3 JSON) as a courtesy."""
    if not value:
        return ""
    try:
        return _json_id_bytes(value, size)
    except ValueError as exc:
        raise ValueError(f"{what} {exc}") from None


def _json_id_bytes(value: Any, size: int) -> str:
    if not isinstance(value, str):
        raise ValueError("is not a string")
    if len(value) == size * 2:
        try:
            bytes.fromhex(value)
            return value.lower()
        except ValueError:
            pass
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{value[:40]!r} is neither hex nor base64") from None
    if len(raw) != size:
        raise ValueError(f"{value[:40]!r} is not {size} bytes")
    return raw.hex()


def _json_body(body: bytes, what: str, out: Decoded) -> dict:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        document = _json_body_lenient(body, exc, out)
    if not isinstance(document, dict):
        raise BodyError(400, f"Body must be a JSON object ({what}).")
    return document


def _json_body_lenient(body: bytes, error: orjson.JSONDecodeError, out: Decoded) -> Any:
    """A body orjson refused, read the way common clients write it: Python's json.dumps
    writes NaN and Infinity (not JSON, but what a hand-rolled exporter sends), and a
    client may put invalid UTF-8 (or an escaped lone surrogate) in a string. These are
    stored (bad bytes as U+FFFD, NaN as null); anything else is the 400 orjson describes."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("utf-8", "replace")
        out.warnings.append("the body held invalid UTF-8; stored with U+FFFD in place of the bad bytes")
    try:
        return _without_surrogates(json.loads(text), out)
    except (ValueError, RecursionError):
        raise BodyError(400, f"Body is not valid JSON: {error}.") from None


def _without_surrogates(value: Any, out: Decoded) -> Any:
    # "\ud800" is valid JSON but no valid text: neither orjson nor PostgreSQL can store it.
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            if not any("surrogate" in w for w in out.warnings):
                out.warnings.append("a string held a lone surrogate escape; stored as U+FFFD")
            return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
        return value
    if isinstance(value, list):
        return [_without_surrogates(item, out) for item in value]
    if isinstance(value, dict):
        return {_without_surrogates(k, out): _without_surrogates(v, out) for k, v in value.items()}
    return value


def _list(obj: Any, camel: str, snake: str) -> list:
    value = _get(obj, camel, snake) if isinstance(obj, dict) else None
    return value if isinstance(value, list) else []


def _iter_json_spans(document: dict) -> Iterator[tuple[dict, dict, dict]]:
    for resource_spans in _list(document, "resourceSpans", "resource_spans"):
        resource = _json_attrs(_get(_get(resource_spans, "resource"), "attributes"))
        for scope_spans in _list(resource_spans, "scopeSpans", "scope_spans"):
            scope = _get(scope_spans, "scope") or {}
            for span in _list(scope_spans, "spans", "spans"):
                yield resource, scope, span


def decode_traces_json(body: bytes) -> Decoded:
    out = Decoded()
    document = _json_body(body, "an ExportTraceServiceRequest", out)
    for resource, scope, span in _iter_json_spans(document):
        if not isinstance(span, dict):
            out.reject("span entry is not a JSON object")
            continue
        name = span.get("name") if isinstance(span.get("name"), str) else ""
        try:
            trace_id = _json_id(_get(span, "traceId", "trace_id"), 16, "traceId")
            span_id = _json_id(_get(span, "spanId", "span_id"), 8, "spanId")
            parent = _json_id(_get(span, "parentSpanId", "parent_span_id"), 8, "parentSpanId")
            start = _json_int(_get(span, "startTimeUnixNano", "start_time_unix_nano"))
            end = _json_int(_get(span, "endTimeUnixNano", "end_time_unix_nano"))
            kind = _json_enum(span.get("kind"), _SPAN_KINDS)
            status = span.get("status") or {}
            status_code = _json_enum(status.get("code"), _STATUS_CODES) if isinstance(status, dict) else 0
        except (TypeError, ValueError) as exc:
            out.reject(f"span {name!r}: {exc}")
            continue
        problem = _check_ids(trace_id, span_id, parent, name) or _check_times(start, end, span_id)
        if problem:
            out.reject(problem)
            continue
        events = []
        for event in _list(span, "events", "events"):
            if isinstance(event, dict):
                try:
                    time_ns = _json_int(_get(event, "timeUnixNano", "time_unix_nano"))
                except (TypeError, ValueError):
                    time_ns = 0
                events.append(
                    RawEvent(
                        name=str(event.get("name") or ""),
                        time_ns=time_ns,
                        attributes=_json_attrs(event.get("attributes")),
                    )
                )
        message = status.get("message") if isinstance(status, dict) else None
        out.spans.append(
            RawSpan(
                trace_id=trace_id,
                span_id=span_id,
                parent_span_id=parent or None,
                name=name,
                otel_kind=kind,
                start_ns=start,
                end_ns=end,
                status_code=status_code,
                status_message=message if isinstance(message, str) and message else None,
                attributes=_json_attrs(span.get("attributes")),
                events=events,
                resource=resource,
                scope_name=scope.get("name") or None if isinstance(scope, dict) else None,
                scope_version=scope.get("version") or None if isinstance(scope, dict) else None,
            )
        )
    return out


def decode_logs_json(body: bytes) -> Decoded:
    out = Decoded()
    document = _json_body(body, "an ExportLogsServiceRequest", out)
    for resource_logs in _list(document, "resourceLogs", "resource_logs"):
        resource = _json_attrs(_get(_get(resource_logs, "resource"), "attributes"))
        for scope_logs in _list(resource_logs, "scopeLogs", "scope_logs"):
            for record in _list(scope_logs, "logRecords", "log_records"):
                if not isinstance(record, dict):
                    out.reject("log record is not a JSON object")
                    continue
                try:
                    trace_id = _json_id(_get(record, "traceId", "trace_id"), 16, "traceId")
                    span_id = _json_id(_get(record, "spanId", "span_id"), 8, "spanId")
                    time_ns = _json_int(_get(record, "timeUnixNano", "time_unix_nano")) or _json_int(
                        _get(record, "observedTimeUnixNano", "observed_time_unix_nano")
                    )
                    if not 0 <= time_ns <= _UINT64_MAX:
                        raise ValueError("timeUnixNano is outside the fixed64 range")
                except (TypeError, ValueError) as exc:
                    out.reject(f"log record: {exc}")
                    continue
                attributes = _json_attrs(record.get("attributes"))
                event_name = _get(record, "eventName", "event_name") or attributes.get("event.name")
                out.logs.append(
                    RawLogRecord(
                        trace_id=trace_id or None,
                        span_id=span_id or None,
                        time_ns=time_ns,
                        event_name=_str_or_none(event_name),
                        body=_json_value(record.get("body")),
                        attributes=attributes,
                        resource=resource,
                    )
                )
    return out


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def decode_traces(body: bytes, encoding: str) -> Decoded:
    return decode_traces_protobuf(body) if encoding == PROTOBUF else decode_traces_json(body)


def decode_logs(body: bytes, encoding: str) -> Decoded:
    return decode_logs_protobuf(body) if encoding == PROTOBUF else decode_logs_json(body)
