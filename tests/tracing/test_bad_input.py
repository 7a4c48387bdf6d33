"""Hostile and careless input through the real OTLP receiver (POST /v1/traces, /v1/logs),
in both encodings: each case is stored sanitised, or rejected with a message naming
what was wrong, and nothing valid in the same batch is lost.

Cases covered elsewhere: NUL bytes, wrongly typed attributes, values nested 250 deep,
int64 overflow, bytes values (test_otlp_receiver.py); secrets (test_masking.py).
"""

from __future__ import annotations

import json

import orjson
import pytest
from django.test import Client

from tests import otlp_payloads as otlp
from tests.otlp_payloads import JSON, PROTOBUF
from tests.tracing.test_otlp_receiver import bearer, error_body, partial_success, post
from tracing.limits import DROPPED_ATTRIBUTES, MAX_KEY_CHARS, Bounds, truncation_marker
from tracing.models import Span, SpanLogEvent, Trace
from tracing.otlp.types import RawEvent, RawSpan

pytestmark = pytest.mark.django_db

ENCODINGS = [PROTOBUF, JSON]


@pytest.fixture(params=ENCODINGS, ids=["protobuf", "json"])
def content_type(request) -> str:
    return request.param


def send(world, body: bytes, content_type: str, path: str = "/v1/traces"):
    return post(Client(), path, body, auth=bearer(world.key.secret_key), content_type=content_type)


def stored(world, trace_id: str) -> dict[str, Span]:
    return {s.name: s for s in Span.objects.filter(project=world.project, trace_id=trace_id)}


# ---------------------------------------------------------------- oversized values


def test_a_20_mb_input_value_is_truncated_on_span_and_trace_and_the_client_is_told(world, settings, content_type):
    trace_id = otlp.new_trace_id()
    huge = "x" * (20 * 1024 * 1024)
    root = otlp.span("answer", trace_id=trace_id, attributes={"input.value": huge, "output.value": "ok"})
    spans = [root, otlp.span("sibling", trace_id=trace_id, parent=root["span_id"], start=otlp.BASE_NS + otlp.MS,
                             attributes={"input.value": "small"})]

    response = send(world, otlp.encode_traces(spans, content_type), content_type)

    assert response.status_code == 200
    rejected, message = partial_success(response)
    limit = settings.SPYGLASS_MAX_ATTRIBUTE_CHARS
    assert rejected == 0 and f"1 value(s) longer than {limit:,} characters were truncated" in message
    expected = "x" * limit + truncation_marker(len(huge), limit)
    rows = stored(world, trace_id)
    assert rows["answer"].input == expected and rows["answer"].attributes["input.value"] == expected
    assert rows["sibling"].input == "small"  # the rest of the batch is untouched
    trace = Trace.objects.get(project=world.project, trace_id=trace_id)
    assert len(trace.input) == len(expected) and trace.input.endswith(truncation_marker(len(huge), limit))


def test_oversized_json_messages_stay_messages(world, settings, content_type):
    """gen_ai.input.messages is JSON text; cut at a character count it no longer parses
    and every message in it was lost. Its longest strings are cut instead."""
    settings.SPYGLASS_MAX_ATTRIBUTE_CHARS = 5000
    trace_id = otlp.new_trace_id()
    long_question = "why " * 10_000  # 40,000 characters
    messages = [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": long_question}]},
    ]
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                  "gen_ai.input.messages": json.dumps(messages)}
    body = otlp.encode_traces([otlp.span("chat gpt-4o", trace_id=trace_id, attributes=attributes)], content_type)

    response = send(world, body, content_type)

    assert response.status_code == 200 and "truncated" in partial_success(response)[1]
    row = Span.objects.get(project=world.project, trace_id=trace_id)
    kept = orjson.loads(row.attributes["gen_ai.input.messages"])  # still JSON
    assert len(row.attributes["gen_ai.input.messages"]) <= 5000
    assert [(m["role"], m["content"][:9]) for m in row.messages] == [("system", "Be brief."), ("user", "why why w")]
    user = row.messages[1]["content"]
    assert user.startswith("why why") and "…[truncated by Spyglass: 40,000 characters, kept" in user
    assert kept[0]["parts"][0]["content"] == "Be brief."  # short strings are kept whole


def test_long_attribute_keys_are_cut(world, content_type):
    trace_id = otlp.new_trace_id()
    key = "k" * 2_000_000
    body = otlp.encode_traces([otlp.span("wide", trace_id=trace_id, attributes={key: "v", "input.value": "q"})],
                              content_type)

    response = send(world, body, content_type)

    assert response.status_code == 200 and "1 attribute key(s) longer than 1,024" in partial_success(response)[1]
    row = Span.objects.get(project=world.project, trace_id=trace_id)
    assert max(len(k) for k in row.attributes) < MAX_KEY_CHARS + 100 and row.input == "q"


def test_100000_attributes_over_json_keep_the_first_ones_and_say_so(world, settings):
    settings.SPYGLASS_MAX_SPAN_ATTRIBUTES = 10_000
    trace_id = otlp.new_trace_id()
    attributes = {"input.value": "hello", **{f"extra.{i}": i for i in range(100_000)}}
    body = otlp.traces_json([otlp.span("wide", trace_id=trace_id, attributes=attributes)])

    response = send(world, body, JSON)

    assert response.status_code == 200
    assert "90,001 attribute(s) beyond 10,000" in partial_success(response)[1]
    row = Span.objects.get(project=world.project, trace_id=trace_id)
    assert row.input == "hello" and row.attributes[DROPPED_ATTRIBUTES] == 90_001


def test_bounding_twice_changes_nothing(settings):
    """The salvage path and log events may bound a value again: the marker, the JSON
    shrink and the dropped counters must survive a second pass unchanged."""
    settings.SPYGLASS_MAX_ATTRIBUTE_CHARS = 1000
    settings.SPYGLASS_MAX_SPAN_ATTRIBUTES = 100
    settings.SPYGLASS_MAX_SPAN_EVENTS = 10
    attributes = {f"a{i}": i for i in range(150)}
    attributes["a0"] = "z" * 5000
    attributes["a1"] = json.dumps([{"content": "y" * 5000}, {"content": "short"}])
    raw = RawSpan(trace_id="ab" * 16, span_id="cd" * 8, parent_span_id=None, name="n" * 3000, otel_kind=1,
                  start_ns=1, end_ns=2, status_code=0, status_message=None, attributes=attributes,
                  events=[RawEvent(name="e", time_ns=1, attributes={}) for _ in range(20)], resource={})
    Bounds().span(raw)
    once = (raw.name, dict(raw.attributes), len(raw.events))
    again = Bounds()
    again.span(raw)
    assert (raw.name, raw.attributes, len(raw.events)) == once
    assert again.notes() == []
    assert raw.attributes[DROPPED_ATTRIBUTES] == 50 and raw.attributes["spyglass.dropped_events_count"] == 10
    assert orjson.loads(raw.attributes["a1"])[1]["content"] == "short"


# ---------------------------------------------------------------- encodings


def test_invalid_utf8_in_protobuf_strings_is_replaced_not_fatal(world):
    """proto3 parsers refuse the whole message for one bad string; Go and C++ clients can
    send one. Before: a 400 that lost every valid span of the batch."""
    trace_id = otlp.new_trace_id()
    spans = [
        otlp.span("good", trace_id=trace_id, attributes={"input.value": "fine"}),
        otlp.span("BADNAME", trace_id=trace_id, status=(2, "BADSTAT"),
                  attributes={"input.value": "BADVALU", "BADKEYX": "v"},
                  events=[{"name": "BADEVNT", "attributes": {}}]),
    ]
    body = otlp.traces_protobuf(spans)
    for marker in (b"BADNAME", b"BADSTAT", b"BADVALU", b"BADKEYX", b"BADEVNT"):
        body = body.replace(marker, marker[:3] + b"\xff" + marker[4:])  # same length: framing intact

    response = send(world, body, PROTOBUF)

    assert response.status_code == 200, error_body(response)
    assert partial_success(response) == (0, "5 string value(s) held invalid UTF-8; stored with U+FFFD in place "
                                            "of the bad bytes")
    rows = stored(world, trace_id)
    assert rows["good"].input == "fine"
    bad = rows["BAD\ufffdAME"]
    assert (bad.input, bad.status_message, bad.events[0]["name"]) == ("BAD\ufffdALU", "BAD\ufffdTAT", "BAD\ufffdVNT")
    assert bad.attributes["BAD\ufffdEYX"] == "v"


def test_protobuf_that_is_not_protobuf_is_still_a_400(world):
    response = send(world, b"\x0a\xff\xff\xff\xff\x0f garbage", PROTOBUF)

    assert response.status_code == 400
    assert "not a valid ExportTraceServiceRequest protobuf" in error_body(response)[1]


def test_invalid_utf8_in_a_json_body_is_replaced_not_fatal(world):
    trace_id = otlp.new_trace_id()
    body = otlp.traces_json([otlp.span("good", trace_id=trace_id), otlp.span("BADNAME", trace_id=trace_id)])

    response = send(world, body.replace(b"BADNAME", b"BAD\xc3\x28AME"), JSON)

    assert response.status_code == 200
    assert partial_success(response) == (0, "the body held invalid UTF-8; stored with U+FFFD in place of the "
                                            "bad bytes")
    assert set(stored(world, trace_id)) == {"good", "BAD\ufffd(AME"}


def test_lone_surrogate_escapes_in_json_are_replaced(world):
    trace_id = otlp.new_trace_id()
    body = otlp.traces_json([otlp.span("SURROGATE", trace_id=trace_id, attributes={"input.value": "SURROGATE"})])

    response = send(world, body.replace(b"SURROGATE", b"half \\ud83d"), JSON)

    assert response.status_code == 200 and "lone surrogate" in partial_success(response)[1]
    row = Span.objects.get(project=world.project, trace_id=trace_id)
    assert row.name == row.input == "half \ufffd"


def test_nan_and_infinity_written_by_pythons_json_are_stored_as_null(world):
    """json.dumps writes NaN/Infinity (not JSON); orjson refused the whole body."""
    trace_id = otlp.new_trace_id()
    document = otlp.traces_document([otlp.span("chat", trace_id=trace_id, attributes={
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
        "gen_ai.request.temperature": 0.5, "gen_ai.usage.input_tokens": 10, "ratio": 0.25, "edge": -0.75})])
    body = json.dumps(document).replace("0.5", "NaN").replace("0.25", "Infinity").replace("-0.75", "-Infinity")
    assert "NaN" in body and "-Infinity" in body

    response = send(world, body.encode(), JSON)

    assert response.status_code == 200 and partial_success(response) == (0, "")
    row = Span.objects.get(project=world.project, trace_id=trace_id)
    assert (row.attributes["ratio"], row.attributes["edge"], row.input_tokens) == (None, None, 10)
    assert "temperature" not in row.params or row.params["temperature"] is None


def test_nan_and_infinity_doubles_never_become_numbers(world, content_type):
    trace_id = otlp.new_trace_id()
    nan, inf = float("nan"), float("inf")
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                  "gen_ai.usage.input_tokens": nan, "gen_ai.usage.output_tokens": inf, "gen_ai.usage.cost": inf,
                  "llm.cost.total": nan, "gen_ai.request.temperature": nan, "other": -inf}
    if content_type == JSON:  # OTLP/JSON spells them as strings
        document = otlp.traces_document([otlp.span("chat", trace_id=trace_id, attributes={})])
        json_span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
        spelled = {nan: "NaN", inf: "Infinity", -inf: "-Infinity"}
        json_span["attributes"] = [{"key": k, "value": {"doubleValue": spelled.get(v, v)}} if isinstance(v, float)
                                   else {"key": k, "value": {"stringValue": v}} for k, v in attributes.items()]
        body = orjson.dumps(document)
    else:
        body = otlp.traces_protobuf([otlp.span("chat", trace_id=trace_id, attributes=attributes)])

    response = send(world, body, content_type)

    assert response.status_code == 200 and partial_success(response) == (0, "")
    row = Span.objects.get(project=world.project, trace_id=trace_id)
    assert (row.input_tokens, row.output_tokens, row.cost_usd) == (None, None, None)
    assert row.attributes["other"] is None
    # Everything that reads the span still answers valid JSON (NaN is not JSON).
    api = Client(HTTP_AUTHORIZATION=bearer(world.key.secret_key))
    for url in (f"/api/v1/traces/{trace_id}", "/api/v1/traces", "/api/v1/metrics?measure=cost_usd&agg=sum"):
        answer = api.get(url)
        assert answer.status_code == 200, url
        orjson.loads(answer.content)


def test_json_that_cannot_be_read_even_leniently_is_a_400(world):
    body = otlp.traces_json([otlp.span("x", trace_id=otlp.new_trace_id())])

    for broken in (body[:-5], b"[" * 100_000 + b"]" * 100_000, b'{"resourceSpans": [NaN'):
        response = send(world, broken, JSON)
        assert response.status_code == 400
        assert error_body(response)[1].startswith("Body is not valid JSON:")


# ---------------------------------------------------------------- timestamps and ids


def test_timestamps_far_in_the_past_or_future_are_stored_and_readable(world, content_type):
    trace_id = otlp.new_trace_id()
    u64 = 2**64 - 1
    spans = [otlp.span("epoch", trace_id=trace_id, start=1, end=2),
             otlp.span("year 2554", trace_id=trace_id, start=u64 - 10, end=u64,
                       events=[{"name": "late", "time": u64}]),
             otlp.span("normal", trace_id=trace_id)]

    response = send(world, otlp.encode_traces(spans, content_type), content_type)

    assert response.status_code == 200 and partial_success(response) == (0, "")
    rows = stored(world, trace_id)
    assert rows["epoch"].start_time.year == 1970 and rows["year 2554"].end_time.year == 2554
    trace = Trace.objects.get(project=world.project, trace_id=trace_id)
    assert trace.start_time.year == 1970 and trace.end_time.year == 2554
    web = Client()
    web.force_login(world.owner)
    slug = world.project.slug
    for url in (f"/p/{slug}/traces/", f"/p/{slug}/traces/{trace_id}/", f"/p/{slug}/overview/",
                f"/api/v1/traces/{trace_id}"):
        assert web.get(url).status_code == 200, url


@pytest.mark.parametrize(("change", "problem"), [
    ({"start": -5}, "start_time_unix_nano must not be negative"),
    ({"start": 2**64, "end": 2**64 + 1}, "beyond the fixed64 range"),
], ids=["negative", "beyond-u64"])
def test_json_timestamps_out_of_range_reject_only_their_span(world, change, problem):
    trace_id = otlp.new_trace_id()
    spans = [{**otlp.span("bad", trace_id=trace_id), **change}, otlp.span("good", trace_id=trace_id)]

    response = send(world, otlp.traces_json(spans), JSON)

    rejected, message = partial_success(response)
    assert rejected == 1 and problem in message
    assert set(stored(world, trace_id)) == {"good"}


@pytest.mark.parametrize(("ids", "problem"), [
    ({"trace_id": "ab" * 8}, "trace_id"),  # 8 bytes
    ({"trace_id": "ab" * 20}, "trace_id"),  # 20 bytes
    ({"span_id": "cd" * 16}, "span_id"),  # 16 bytes
    ({"span_id": "cd" * 4}, "span_id"),
    ({"parent": "ef" * 16}, "parent"),
], ids=["trace-8", "trace-20", "span-16", "span-4", "parent-16"])
def test_ids_of_the_wrong_length_reject_only_their_span(world, content_type, ids, problem):
    trace_id = otlp.new_trace_id()
    bad = {**otlp.span("bad", trace_id=trace_id), **ids}
    good = otlp.span("good", trace_id=trace_id)

    response = send(world, otlp.encode_traces([bad, good], content_type), content_type)

    rejected, message = partial_success(response)
    assert rejected == 1 and (problem in message or "bytes" in message), message
    assert set(stored(world, trace_id)) == {"good"}


def test_log_records_with_ids_of_the_wrong_length_are_rejected_not_a_503(world, content_type):
    """A 20-byte trace id in a protobuf log record reached the varchar(32) column: the
    whole batch failed with a 503 that the exporter retries for ever."""
    trace_id, span_id = otlp.new_trace_id(), otlp.new_span_id()
    records = [
        {"trace_id": "ab" * 20, "span_id": span_id, "event_name": "gen_ai.user.message", "body": {"content": "x"}},
        {"trace_id": trace_id, "span_id": "cd" * 3, "event_name": "gen_ai.user.message", "body": {"content": "y"}},
        {"trace_id": trace_id, "span_id": span_id, "event_name": "gen_ai.user.message", "body": {"content": "ok"}},
    ]

    response = send(world, otlp.encode_logs(records, content_type), content_type, path="/v1/logs")

    assert response.status_code == 200
    rejected, message = partial_success(response, logs=True)
    assert rejected == 2 and "trace" in message.lower()
    assert list(SpanLogEvent.objects.filter(project=world.project).values_list("trace_id", "span_id")) == [
        (trace_id, span_id)]
