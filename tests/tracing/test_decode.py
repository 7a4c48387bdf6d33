"""tracing.otlp.decode, and the payload builders the receiver tests rely on.

The builders are checked against the protobuf library's own JSON parser, so a test that
passes with tests.otlp_payloads passes with what a real OTLP exporter sends.
"""

from __future__ import annotations

import base64
import copy

import orjson
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests import otlp_payloads as otlp
from tracing.otlp import decode


def _hex_ids_to_base64(document: dict, keys: tuple[str, ...]) -> dict:
    """OTLP/JSON ids are hex; the generic proto3 JSON parser expects base64."""
    document = copy.deepcopy(document)

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in keys and isinstance(value, str):
                    node[key] = base64.b64encode(bytes.fromhex(value)).decode()
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(document)
    return document


@pytest.mark.parametrize("dialect", otlp.DIALECTS)
def test_json_builder_is_the_protobuf_request_in_otlp_json(dialect):
    spans = otlp.llm_trace(dialect).spans
    spans[0]["events"] = [{"name": "exception", "time": otlp.BASE_NS, "attributes": {"exception.type": "E"}}]
    document = otlp.traces_document(spans)

    parsed = json_format.ParseDict(
        _hex_ids_to_base64(document, ("traceId", "spanId", "parentSpanId")), ExportTraceServiceRequest()
    )

    assert parsed == otlp.traces_request(spans)


def test_json_builder_follows_the_otlp_json_rules():
    trace = otlp.llm_trace("genai")
    span = otlp.traces_document(trace.spans)["resourceSpans"][0]["scopeSpans"][0]["spans"][-1]

    assert span["traceId"] == trace.trace_id  # hex, not base64
    assert span["parentSpanId"] == trace.span_ids["root"]
    assert isinstance(span["startTimeUnixNano"], str)  # 64-bit integers as strings
    assert span["kind"] == otlp.SPAN_KIND_CLIENT  # enums as integers
    tokens = next(a for a in span["attributes"] if a["key"] == "gen_ai.usage.input_tokens")
    assert tokens["value"] == {"intValue": str(otlp.INPUT_TOKENS)}


def test_logs_json_builder_is_the_protobuf_request_in_otlp_json():
    records = otlp.genai_message_logs(trace_id=otlp.new_trace_id(), span_id=otlp.new_span_id())

    parsed = json_format.ParseDict(
        _hex_ids_to_base64(otlp.logs_document(records), ("traceId", "spanId")), ExportLogsServiceRequest()
    )

    assert parsed == otlp.logs_request(records)


@pytest.mark.parametrize("dialect", otlp.DIALECTS)
def test_both_encodings_decode_to_the_same_spans(dialect):
    spans = otlp.llm_trace(dialect).spans
    spans[1]["attributes"] = {**spans[1]["attributes"], "blob": b"\x00\x01", "nested": {"a": [1, 2.5, True]}}

    from_protobuf = decode.decode_traces(otlp.traces_protobuf(spans), decode.PROTOBUF)
    from_json = decode.decode_traces(otlp.traces_json(spans), decode.JSON)

    assert from_protobuf.rejected == from_json.rejected == 0
    assert from_protobuf.spans == from_json.spans
    assert from_protobuf.spans[1].attributes["blob"] == "0001"
    assert from_protobuf.spans[1].attributes["nested"] == {"a": [1, 2.5, True]}


@pytest.mark.parametrize("event_name_in", ["field", "attribute"])
def test_both_encodings_decode_to_the_same_log_records(event_name_in):
    records = otlp.genai_message_logs(trace_id=otlp.new_trace_id(), span_id=otlp.new_span_id(),
                                      event_name_in=event_name_in)

    from_protobuf = decode.decode_logs(otlp.logs_protobuf(records), decode.PROTOBUF)
    from_json = decode.decode_logs(otlp.logs_json(records), decode.JSON)

    assert from_protobuf.logs == from_json.logs
    assert [r.event_name for r in from_json.logs] == ["gen_ai.system.message", "gen_ai.user.message", "gen_ai.choice"]


def test_json_accepts_snake_case_and_numeric_int64():
    trace_id, span_id = otlp.new_trace_id(), otlp.new_span_id()
    body = orjson.dumps({"resource_spans": [{"scope_spans": [{"spans": [{
        "trace_id": trace_id, "span_id": span_id, "name": "snake",
        "start_time_unix_nano": otlp.BASE_NS, "end_time_unix_nano": otlp.BASE_NS + 5,
        "attributes": [{"key": "n", "value": {"int_value": 7}}],
    }]}]}]})

    decoded = decode.decode_traces(body, decode.JSON)

    assert [(s.trace_id, s.span_id, s.end_ns, s.attributes) for s in decoded.spans] == [
        (trace_id, span_id, otlp.BASE_NS + 5, {"n": 7})
    ]


@pytest.mark.parametrize(
    "document",
    [
        {"resourceSpans": [5]},
        {"resourceSpans": [{"resource": [1], "scopeSpans": [7, {"scope": "x", "spans": [3]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "x",
            "startTimeUnixNano": "1", "endTimeUnixNano": "2", "events": 5, "status": [1]}]}]}]},
    ],
    ids=["resource-spans-not-objects", "resource-and-scope-not-objects", "events-and-status-not-objects"],
)
def test_malformed_json_structure_never_crashes(document):
    decoded = decode.decode_traces(orjson.dumps(document), decode.JSON)

    assert all(s.events == [] for s in decoded.spans)


def test_json_timestamps_beyond_fixed64_reject_the_span():
    span = otlp.span("far future", trace_id=otlp.new_trace_id(), start=2**64, end=2**64 + 1)

    decoded = decode.decode_traces(otlp.traces_json([span]), decode.JSON)

    assert decoded.rejected == 1 and "range" in decoded.first_error


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/x-protobuf", decode.PROTOBUF),
        ("application/protobuf", decode.PROTOBUF),
        ("application/json; charset=utf-8", decode.JSON),
        ("Application/JSON", decode.JSON),
    ],
)
def test_encoding_for_content_types(content_type, expected):
    assert decode.encoding_for(content_type) == expected
