"""Property tests over the OTLP decoders and what ingest derives from their output.

For any body — well-formed requests with arbitrary values, OTLP-shaped JSON with
arbitrary leaves, and random mutations of real protobuf bodies — decoding either
succeeds (every span then maps, bounds and serialises into a row without an error) or
raises BodyError with a 4xx status and a message. Through the real receiver: never a
5xx. Example counts are bounded so the file runs in seconds.
"""

from __future__ import annotations

import base64
import json
import math
from datetime import UTC, datetime

import pytest
from django.test import Client
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests import otlp_payloads as otlp
from tracing import services
from tracing.limits import Bounds
from tracing.otlp import decode
from tracing.otlp.mapping import normalize_span

U64 = 2**64 - 1
# Attribute keys that steer the mapping, so random values reach its parsers too.
MAPPED_KEYS = [
    "input.value", "output.value", "gen_ai.request.model", "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens", "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.prompt.0.content",
    "gen_ai.prompt.0.role", "llm.input_messages.0.message.content", "llm.token_count.prompt", "llm.cost.total",
    "openinference.span.kind", "session.id", "user.id", "tag.tags", "metadata", "langfuse.trace.name",
    "retrieval.documents.0.document.content", "gen_ai.operation.name", "traceloop.entity.input",
    "llm.prompt_template.variables", "gen_ai.request.temperature", "deployment.environment",
]

texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
json_texts = st.sampled_from(['{"role": "user", "content": "hi"}', '[{"role": "user", "parts": []}]', "[1, {]",
                              '{"a": [null, 1e400]}', "[]", "{}"])
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1),
                    st.floats(), texts, json_texts, st.binary(max_size=20))
attribute_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
attributes = st.dictionaries(st.one_of(st.sampled_from(MAPPED_KEYS), texts), attribute_values, max_size=8)
ids = st.one_of(st.binary(min_size=0, max_size=20).map(bytes.hex), st.just("00" * 16), st.just("00" * 8))
times = st.one_of(st.integers(min_value=0, max_value=U64), st.just(otlp.BASE_NS))


@st.composite
def span_descriptions(draw) -> dict:
    start = draw(times)
    return {
        "trace_id": draw(st.one_of(st.just("ab" * 16), ids)),
        "span_id": draw(st.one_of(st.just("cd" * 8), ids)),
        "parent": draw(st.one_of(st.none(), ids)),
        "name": draw(texts),
        "kind": draw(st.integers(min_value=0, max_value=2**31 - 1)),
        "start": start,
        "end": draw(st.one_of(st.just(min(start + 1000, U64)), times)),
        "attributes": draw(attributes),
        "status": (draw(st.integers(min_value=0, max_value=5)), draw(texts)),
        "resource": draw(st.dictionaries(texts, attribute_values, max_size=3)),
        "events": draw(st.lists(st.fixed_dictionaries({"name": texts, "time": times, "attributes": attributes}),
                                max_size=2)),
    }


def _protobuf(spans: list[dict]) -> bytes:
    # The protobuf builder needs ids as hex it can turn into bytes (any length).
    return otlp.traces_protobuf(spans)


def _json_safe(spans: list[dict]) -> bytes:
    # orjson cannot write NaN (OTLP/JSON spells it "NaN"); the builder writes floats as numbers.
    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        return value
    return otlp.traces_json([{**s, "attributes": clean(s["attributes"]), "resource": clean(s["resource"]),
                              "events": [{**e, "attributes": clean(e["attributes"])} for e in s["events"]]}
                             for s in spans])


def _ingest_rows(decoded: decode.Decoded) -> None:
    """Everything ingest does to a decoded span before the database: bound, map, build
    the row (cost, JSON columns). None of it may raise."""
    now = datetime.now(UTC)
    bounds = Bounds()
    for raw in decoded.spans:
        bounds.span(raw)
        row = services._span_row(1, raw, normalize_span(raw), now)
        assert len(row) == len(services.SPAN_COLUMNS)
    for record in decoded.logs:
        bounds.log_record(record)
        services._json(record.body)
        services._json(record.attributes)


def _decode_or_4xx(body: bytes, encoding: str, *, logs: bool = False) -> decode.Decoded | None:
    try:
        decoded = (decode.decode_logs if logs else decode.decode_traces)(body, encoding)
    except decode.BodyError as exc:
        assert 400 <= exc.status < 500 and exc.message
        return None
    assert decoded.rejected == 0 or decoded.first_error
    return decoded


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.lists(span_descriptions(), min_size=1, max_size=3))
def test_any_protobuf_request_decodes_and_maps_without_error(spans):
    decoded = _decode_or_4xx(_protobuf(spans), decode.PROTOBUF)
    assert decoded is not None  # a request the official classes wrote is always readable
    assert len(decoded.spans) + decoded.rejected == len(spans)
    _ingest_rows(decoded)


@FAST
@given(st.lists(span_descriptions(), min_size=1, max_size=3))
def test_any_json_request_decodes_and_maps_without_error(spans):
    decoded = _decode_or_4xx(_json_safe(spans), decode.JSON)
    assert decoded is not None
    assert len(decoded.spans) + decoded.rejected == len(spans)
    _ingest_rows(decoded)


@FAST
@given(st.lists(span_descriptions(), min_size=1, max_size=2), st.data())
def test_mutated_protobuf_bodies_decode_or_are_a_4xx(spans, data):
    body = bytearray(_protobuf(spans))
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        at = data.draw(st.integers(min_value=0, max_value=max(len(body) - 1, 0)))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip" and body:
            body[at] ^= data.draw(st.integers(min_value=1, max_value=255))
        elif action == "cut":
            del body[at:]
        else:
            body[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    decoded = _decode_or_4xx(bytes(body), decode.PROTOBUF)
    if decoded is not None:
        _ingest_rows(decoded)
    decoded_logs = _decode_or_4xx(bytes(body), decode.PROTOBUF, logs=True)
    if decoded_logs is not None:
        _ingest_rows(decoded_logs)


# OTLP-shaped JSON whose every field may hold anything.
any_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), texts),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=10,
)


def _maybe(value) -> st.SearchStrategy:
    return st.one_of(st.just(value), any_json)


@st.composite
def otlp_shaped_json(draw) -> dict:
    value = draw(st.one_of(
        st.fixed_dictionaries({}, optional={"stringValue": any_json, "intValue": any_json, "doubleValue": any_json,
                                            "boolValue": any_json, "bytesValue": any_json,
                                            "arrayValue": st.fixed_dictionaries({"values": st.lists(any_json)}),
                                            "kvlistValue": any_json}),
        any_json))
    span = draw(st.fixed_dictionaries({}, optional={
        "traceId": _maybe("ab" * 16), "spanId": _maybe("cd" * 8), "parentSpanId": _maybe(""),
        "name": _maybe("x"), "kind": _maybe(1), "startTimeUnixNano": _maybe("1000"),
        "endTimeUnixNano": _maybe("2000"), "status": _maybe({"code": 2, "message": "m"}),
        "attributes": _maybe([{"key": draw(st.sampled_from(MAPPED_KEYS)), "value": value}]),
        "events": _maybe([{"name": "e", "timeUnixNano": "5", "attributes": []}]),
    }))
    return {"resourceSpans": [{"resource": draw(_maybe({"attributes": []})),
                               "scopeSpans": [{"scope": draw(_maybe({"name": "s"})), "spans": [span]}]}],
            "resourceLogs": [{"scopeLogs": [{"logRecords": [{
                "traceId": draw(_maybe("ab" * 16)), "spanId": draw(_maybe("cd" * 8)),
                "timeUnixNano": draw(_maybe("7")), "body": value, "attributes": draw(_maybe([]))}]}]}]}


@FAST
@given(otlp_shaped_json())
def test_otlp_shaped_json_with_any_leaves_decodes_or_is_a_4xx(document):
    body = json.dumps(document).encode()  # numbers beyond 64 bits too, which orjson cannot write
    for logs in (False, True):
        decoded = _decode_or_4xx(body, decode.JSON, logs=logs)
        if decoded is not None:
            _ingest_rows(decoded)


@FAST
@given(st.binary(max_size=200))
def test_random_bytes_are_a_4xx_or_an_empty_request(body):
    for encoding in (decode.PROTOBUF, decode.JSON):
        for logs in (False, True):
            decoded = _decode_or_4xx(body, encoding, logs=logs)
            if decoded is not None:
                _ingest_rows(decoded)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=64), st.sampled_from(["gzip", "deflate", "br", "identity", ""]))
def test_decompression_of_any_body_is_a_4xx_or_bytes(body, coding):
    try:
        out = decode.decompress(body, coding, limit=1024)
    except decode.BodyError as exc:
        assert 400 <= exc.status < 500 and exc.message
    else:
        assert len(out) <= 1024


# ---------------------------------------------------------------- through the receiver


@pytest.mark.django_db
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(spans=st.lists(span_descriptions(), min_size=1, max_size=3), encoding=st.sampled_from(["pb", "json"]),
       mutate=st.booleans())
def test_the_receiver_never_answers_5xx(world, spans, encoding, mutate):
    body = _protobuf(spans) if encoding == "pb" else _json_safe(spans)
    if mutate:
        body = body[: len(body) // 2] + base64.b64encode(body[len(body) // 2:])
    assume(len(body) < 200_000)
    content_type = otlp.PROTOBUF if encoding == "pb" else otlp.JSON
    response = Client().post("/v1/traces", body, content_type=content_type,
                             HTTP_AUTHORIZATION=f"Bearer {world.key.secret_key}")
    assert response.status_code in (200, 400), response.content[:300]
