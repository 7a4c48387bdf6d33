"""The OTLP/HTTP receiver end to end: request -> auth -> decode -> mapping -> stored rows.

Everything goes through Django's test client with real OTLP bodies (tests.otlp_payloads),
so the assertions hold for what an exporter actually sends. Ingest answers only after
commit; tests that depend on on_commit hooks or on concurrent connections use
`transactional_db`.
"""

from __future__ import annotations

import base64
import gzip
import random
import threading
import zlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest
from django.db import OperationalError, connection
from django.test import Client
from django.utils import timezone
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from config.errors import NotFound
from explorer.selectors import trace_detail
from projects.models import ApiKey
from projects.services import api_key_revoke
from tests import otlp_payloads as otlp
from tests.otlp_payloads import JSON, MS, PROTOBUF
from tracing import tasks
from tracing.cost import span_cost
from tracing.models import Span, SpanLogEvent, Trace

ENCODINGS = [PROTOBUF, JSON]

# Trace columns that ingest computes; equal inputs must give equal values for all of them.
AGGREGATE_FIELDS = [
    f.name for f in Trace._meta.get_fields() if f.name not in ("id", "project", "trace_id", "created_at", "updated_at")
]


# ---------------------------------------------------------------- helpers


def bearer(secret: str) -> str:
    return f"Bearer {secret}"


def basic(public: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{public}:{secret}".encode()).decode()


def post(client: Client, path: str, body: bytes, *, auth: str | None, content_type: str = PROTOBUF,
         encoding: str | None = None):
    headers = {}
    if auth is not None:
        headers["HTTP_AUTHORIZATION"] = auth
    if encoding is not None:
        headers["HTTP_CONTENT_ENCODING"] = encoding
    return client.post(path, data=body, content_type=content_type, **headers)


def send_spans(client: Client, spans: list[dict], secret: str, content_type: str = PROTOBUF):
    response = post(client, "/v1/traces", otlp.encode_traces(spans, content_type), auth=bearer(secret),
                    content_type=content_type)
    assert response.status_code == 200, response.content
    return response


def send_logs(client: Client, records: list[dict], secret: str, content_type: str = PROTOBUF):
    response = post(client, "/v1/logs", otlp.encode_logs(records, content_type), auth=bearer(secret),
                    content_type=content_type)
    assert response.status_code == 200, response.content
    return response


def send_body(client: Client, body: bytes, secret: str, content_type: str):
    response = post(client, "/v1/traces", body, auth=bearer(secret), content_type=content_type)
    assert response.status_code == 200, response.content
    return response


def partial_success(response, *, logs: bool = False) -> tuple[int, str]:
    """(rejected count, error message) from a 200 answer in either encoding."""
    if response["Content-Type"].startswith(PROTOBUF):
        message = ExportLogsServiceResponse() if logs else ExportTraceServiceResponse()
        message.ParseFromString(response.content)
        partial = message.partial_success
        return (partial.rejected_log_records if logs else partial.rejected_spans), partial.error_message
    body = orjson.loads(response.content)
    partial = body.get("partialSuccess", {})
    count = partial.get("rejectedLogRecords" if logs else "rejectedSpans", "0")
    assert isinstance(count, str), "int64 fields are strings in OTLP/JSON"
    return int(count), partial.get("errorMessage", "")


def error_body(response) -> tuple[int, str]:
    """(gRPC code, message) of an error answer in either encoding."""
    if response["Content-Type"].startswith(PROTOBUF):
        status = status_pb2.Status()
        status.ParseFromString(response.content)
        return status.code, status.message
    body = orjson.loads(response.content)
    return body["code"], body["message"]


def with_trace_id(spans: list[dict], trace_id: str) -> list[dict]:
    return [{**s, "trace_id": trace_id} for s in spans]


def aggregates(trace: Trace) -> dict:
    return {name: getattr(trace, name) for name in AGGREGATE_FIELDS}


def span_rows(project, trace_id: str) -> dict[str, Span]:
    return {s.span_id: s for s in Span.objects.filter(project=project, trace_id=trace_id)}


def message_triples(messages: list[dict]) -> list[tuple[str, str, str]]:
    return [(m["role"], m["source"], m["content"]) for m in messages]


def llm_span(trace_id: str, *, model: str = otlp.MODEL, provider: str = "openai", start: int = otlp.BASE_NS,
             **attributes) -> dict:
    """One OTel GenAI chat span with token usage and no content."""
    return otlp.span(
        f"chat {model}",
        trace_id=trace_id,
        start=start,
        end=start + 900 * MS,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
            "gen_ai.usage.input_tokens": 1200,
            "gen_ai.usage.output_tokens": 300,
            **attributes,
        },
    )


@pytest.fixture(params=ENCODINGS, ids=["protobuf", "json"])
def content_type(request) -> str:
    return request.param


# ---------------------------------------------------------------- dialects


@pytest.mark.parametrize("dialect", otlp.DIALECTS)
def test_dialect_spans_are_mapped(client, world, dialect, content_type):
    trace = otlp.llm_trace(dialect)

    send_spans(client, trace.spans, world.key.secret_key, content_type)

    rows = span_rows(world.project, trace.trace_id)
    assert len(rows) == 4
    for role, expected in trace.expected_spans.items():
        row = rows[trace.span_ids[role]]
        for name, value in expected.items():
            actual = getattr(row, name)
            if name == "messages":
                actual = message_triples(actual)
            elif name == "documents":
                actual = [{"id": d["id"], "content": d["content"], "score": d["score"]} for d in actual]
            assert actual == value, f"{dialect} {role}.{name}"
        # Resource attributes reach every span; a span's own attribute beats them.
        assert row.service_name == otlp.SERVICE_NAME
        assert row.environment == expected.get("environment", trace.expected_trace["environment"])
        assert row.release == expected.get("release", otlp.SERVICE_VERSION)
        assert row.parent_span_id == (None if role == "root" else trace.span_ids["root"])


@pytest.mark.parametrize("dialect", otlp.DIALECTS)
def test_dialect_trace_aggregate_is_computed(client, world, dialect, content_type):
    trace = otlp.llm_trace(dialect)

    send_spans(client, trace.spans, world.key.secret_key, content_type)

    row = Trace.objects.get(project=world.project, trace_id=trace.trace_id)
    for name, value in trace.expected_trace.items():
        assert getattr(row, name) == value, f"{dialect} trace.{name}"
    assert row.start_time == otlp_time(otlp.BASE_NS)
    assert row.error_count == 0
    assert row.unpriced_spans == 0
    assert row.cost_usd == Span.objects.get(project=world.project, span_id=trace.span_ids["llm"]).cost_usd
    assert row.cost_usd > 0


def otlp_time(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // 10**9, tz=UTC) + timedelta(microseconds=ns % 10**9 // 1000)


def test_span_timing_and_status_are_stored(client, world, content_type):
    trace_id = otlp.new_trace_id()
    failing = otlp.span("fetch", trace_id=trace_id, start=otlp.BASE_NS + 1_500, end=otlp.BASE_NS + 251 * MS + 1_500,
                        status=(2, "upstream timed out"), kind=otlp.SPAN_KIND_CLIENT)

    send_spans(client, [failing], world.key.secret_key, content_type)

    row = Span.objects.get(project=world.project, span_id=failing["span_id"])
    assert (row.status, row.status_message, row.otel_kind) == ("error", "upstream timed out", otlp.SPAN_KIND_CLIENT)
    assert row.latency_ms == pytest.approx(251.0)
    assert row.start_time.microsecond == 1  # ns are truncated to us, never rounded through a float
    trace = Trace.objects.get(project=world.project, trace_id=trace_id)
    assert (trace.status, trace.error_count, trace.span_count) == ("error", 1, 1)


# ---------------------------------------------------------------- cost


def test_cost_is_computed_from_genai_prices(client, world):
    trace = otlp.llm_trace("openinference")

    send_spans(client, trace.spans, world.key.secret_key)

    row = Span.objects.get(project=world.project, span_id=trace.span_ids["llm"])
    expected = span_cost(
        provider=otlp.PROVIDER,
        model=otlp.MODEL,
        input_tokens=otlp.INPUT_TOKENS,
        output_tokens=otlp.OUTPUT_TOKENS,
        cached_tokens=otlp.CACHED_TOKENS,
        cache_creation_tokens=None,
        at=row.start_time,
    )
    assert expected is not None and expected > 0
    assert (row.cost_usd, row.cost_source) == (expected, "computed")
    trace_row = Trace.objects.get(project=world.project, trace_id=trace.trace_id)
    assert (trace_row.cost_usd, trace_row.unpriced_spans) == (expected, 0)


def test_cost_sent_by_the_span_is_used(client, world, content_type):
    trace_id = otlp.new_trace_id()
    priced = llm_span(trace_id, **{"llm.cost.total": 0.0123})

    send_spans(client, [priced], world.key.secret_key, content_type)

    row = Span.objects.get(project=world.project, span_id=priced["span_id"])
    assert (row.cost_usd, row.cost_source) == (Decimal("0.0123"), "span")
    assert Trace.objects.get(project=world.project, trace_id=trace_id).cost_usd == Decimal("0.0123")


def test_unknown_model_has_no_cost_and_is_counted_unpriced(client, world):
    trace_id = otlp.new_trace_id()
    known = llm_span(trace_id, model="gpt-4o")
    unknown = llm_span(trace_id, model="acme-llm-9000", start=otlp.BASE_NS + 1000 * MS)

    send_spans(client, [known, unknown], world.key.secret_key)

    rows = span_rows(world.project, trace_id)
    assert rows[unknown["span_id"]].cost_usd is None
    assert rows[unknown["span_id"]].cost_source is None
    known_cost = rows[known["span_id"]].cost_usd
    assert known_cost > 0
    trace = Trace.objects.get(project=world.project, trace_id=trace_id)
    # The total covers the priced span only, and says that one span is missing from it.
    assert (trace.cost_usd, trace.unpriced_spans) == (known_cost, 1)


def test_trace_of_unknown_models_only_has_null_cost(client, world):
    trace_id = otlp.new_trace_id()

    send_spans(client, [llm_span(trace_id, model="acme-llm-9000")], world.key.secret_key)

    trace = Trace.objects.get(project=world.project, trace_id=trace_id)
    assert (trace.cost_usd, trace.unpriced_spans) == (None, 1)


# ---------------------------------------------------------------- out of order, duplicates


def reference_aggregates(client, world, spans: list[dict]) -> dict:
    """The aggregates of `spans` sent in one batch, under a trace id of their own."""
    reference_id = otlp.new_trace_id()
    send_spans(client, with_trace_id(spans, reference_id), world.key.secret_key)
    return aggregates(Trace.objects.get(project=world.project, trace_id=reference_id))


def test_children_before_parent_give_same_trace(client, world):
    trace = otlp.llm_trace("openinference")
    expected = reference_aggregates(client, world, trace.spans)
    root, children = trace.spans[0], trace.spans[1:]

    send_spans(client, children, world.key.secret_key)
    send_spans(client, [root], world.key.secret_key)

    assert aggregates(Trace.objects.get(project=world.project, trace_id=trace.trace_id)) == expected


def test_trace_sent_twice_is_stored_once(client, world, content_type):
    trace = otlp.llm_trace("genai")

    send_spans(client, trace.spans, world.key.secret_key, content_type)
    first = aggregates(Trace.objects.get(project=world.project, trace_id=trace.trace_id))
    response = send_spans(client, trace.spans, world.key.secret_key, content_type)

    # A re-sent batch is a success for the client (nothing to retry), not a rejection.
    assert partial_success(response) == (0, "")
    assert Span.objects.filter(project=world.project, trace_id=trace.trace_id).count() == 4
    assert Trace.objects.filter(project=world.project, trace_id=trace.trace_id).count() == 1
    assert aggregates(Trace.objects.get(project=world.project, trace_id=trace.trace_id)) == first


def test_duplicate_span_in_one_batch_is_stored_once(client, world, content_type):
    trace = otlp.llm_trace("openinference")
    llm = trace.span("llm")

    response = send_spans(client, [*trace.spans, llm], world.key.secret_key, content_type)

    assert partial_success(response) == (0, "")
    assert Span.objects.filter(project=world.project, span_id=llm["span_id"]).count() == 1
    row = Trace.objects.get(project=world.project, trace_id=trace.trace_id)
    assert (row.span_count, row.input_tokens, row.output_tokens) == (4, otlp.INPUT_TOKENS, otlp.OUTPUT_TOKENS)


def test_resent_span_is_stored_once(client, world):
    trace = otlp.llm_trace("openllmetry")
    send_spans(client, trace.spans, world.key.secret_key)

    send_spans(client, [trace.span("llm")], world.key.secret_key)

    assert Span.objects.filter(project=world.project, trace_id=trace.trace_id).count() == 4
    assert Span.objects.filter(project=world.project, span_id=trace.span_ids["llm"]).count() == 1
    row = Trace.objects.get(project=world.project, trace_id=trace.trace_id)
    assert (row.span_count, row.total_tokens) == (4, otlp.INPUT_TOKENS + otlp.OUTPUT_TOKENS)


@pytest.mark.parametrize("dialect", otlp.DIALECTS)
def test_shuffled_batches_give_same_trace(client, world, dialect):
    trace = otlp.llm_trace(dialect)
    expected = reference_aggregates(client, world, trace.spans)
    spans = list(trace.spans)
    random.Random(7).shuffle(spans)

    for batch in (spans[2:], spans[:1], spans[1:2]):
        send_spans(client, batch, world.key.secret_key)

    assert aggregates(Trace.objects.get(project=world.project, trace_id=trace.trace_id)) == expected


def test_interleaved_traces_in_one_batch_are_kept_apart(client, world):
    first, second = otlp.llm_trace("genai"), otlp.llm_trace("openinference")
    expected = {t.trace_id: reference_aggregates(client, world, t.spans) for t in (first, second)}
    mixed = [s for pair in zip(first.spans, second.spans, strict=True) for s in pair]

    send_spans(client, mixed, world.key.secret_key)

    for trace_id, values in expected.items():
        assert aggregates(Trace.objects.get(project=world.project, trace_id=trace_id)) == values


# ---------------------------------------------------------------- concurrency


def test_concurrent_batches_of_one_trace_are_both_aggregated(transactional_db, world, settings):
    trace = otlp.llm_trace("openinference")
    batches = [[span] for span in trace.spans]  # four requests racing on one trace row
    # The four threads stand for four web processes: one process would shed two of them
    # (config/inflight.py), which is not what this test is about.
    settings.SPYGLASS_MAX_INGEST_INFLIGHT = len(batches)
    barrier = threading.Barrier(len(batches))
    statuses: list[int] = []
    errors: list[BaseException] = []

    def post_batch(spans: list[dict]) -> None:
        try:
            barrier.wait(timeout=10)
            response = post(Client(), "/v1/traces", otlp.traces_protobuf(spans), auth=bearer(world.key.secret_key))
            statuses.append(response.status_code)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()  # each thread has its own connection; don't leak it

    threads = [threading.Thread(target=post_batch, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors, errors
    assert statuses == [200] * len(batches)
    row = Trace.objects.get(project=world.project, trace_id=trace.trace_id)
    assert row.span_count == 4
    assert (row.input_tokens, row.output_tokens) == (otlp.INPUT_TOKENS, otlp.OUTPUT_TOKENS)
    assert row.latency_ms == 2000
    assert (row.name, row.input, row.output) == ("SupportChain", otlp.QUESTION, otlp.ANSWER)


# ---------------------------------------------------------------- compression


def test_gzip_body_is_accepted(client, world, content_type):
    trace = otlp.llm_trace("genai")
    body = gzip.compress(otlp.encode_traces(trace.spans, content_type))

    response = post(client, "/v1/traces", body, auth=bearer(world.key.secret_key), content_type=content_type,
                    encoding="gzip")

    assert response.status_code == 200, response.content
    assert Span.objects.filter(project=world.project, trace_id=trace.trace_id).count() == 4


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS], ids=["zlib-wrapped", "raw"])
def test_deflate_body_is_accepted(client, world, wbits):
    trace = otlp.llm_trace("openinference")
    compressor = zlib.compressobj(wbits=wbits)
    body = compressor.compress(otlp.traces_protobuf(trace.spans)) + compressor.flush()

    response = post(client, "/v1/traces", body, auth=bearer(world.key.secret_key), encoding="deflate")

    assert response.status_code == 200, response.content
    assert Span.objects.filter(project=world.project, trace_id=trace.trace_id).count() == 4


# ---------------------------------------------------------------- error answers


def test_undecodable_protobuf_is_400_with_status_body(client, world):
    response = post(client, "/v1/traces", b"\xff\xff\xff\xff not a protobuf", auth=bearer(world.key.secret_key))

    assert response.status_code == 400
    assert response["Content-Type"] == PROTOBUF
    code, message = error_body(response)
    assert code == 3  # INVALID_ARGUMENT
    assert "ExportTraceServiceRequest" in message


def test_invalid_json_is_400_with_code_and_message(client, world):
    response = post(client, "/v1/traces", b'{"resourceSpans": [', auth=bearer(world.key.secret_key),
                    content_type=JSON)

    assert response.status_code == 400
    assert response["Content-Type"] == JSON
    body = orjson.loads(response.content)
    assert set(body) == {"code", "message"}
    assert body["code"] == 3 and "not valid JSON" in body["message"]


def test_json_that_is_not_an_object_is_400(client, world):
    response = post(client, "/v1/traces", b"[1, 2]", auth=bearer(world.key.secret_key), content_type=JSON)

    assert response.status_code == 400


@pytest.mark.parametrize("media", ["text/plain", "application/grpc", "application/x-www-form-urlencoded"])
def test_unsupported_content_type_is_415(client, world, media):
    response = post(client, "/v1/traces", b"{}", auth=bearer(world.key.secret_key), content_type=media)

    assert response.status_code == 415
    assert media in error_body(response)[1]


def test_unsupported_content_encoding_is_415(client, world, content_type):
    body = zlib.compress(otlp.encode_traces(otlp.llm_trace("genai").spans, content_type))

    response = post(client, "/v1/traces", body, auth=bearer(world.key.secret_key), content_type=content_type,
                    encoding="br")

    assert response.status_code == 415
    assert "br" in error_body(response)[1]


@pytest.mark.parametrize("mangle", [lambda b: b"\x1f\x8b" + b"garbage" * 5, lambda b: b[: len(b) // 2]],
                         ids=["garbage", "truncated"])
def test_corrupt_gzip_is_400(client, world, mangle):
    body = mangle(gzip.compress(otlp.traces_protobuf(otlp.llm_trace("genai").spans)))

    response = post(client, "/v1/traces", body, auth=bearer(world.key.secret_key), encoding="gzip")

    assert response.status_code == 400
    assert "gzip" in error_body(response)[1]
    assert not Span.objects.filter(project=world.project).exists()


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_body_over_the_cap_after_decompression_is_413(client, world, settings, coding):
    settings.OTLP_MAX_BODY_BYTES = 64 * 1024
    # A small bomb: a few hundred bytes that inflate to 1 MiB.
    bomb = gzip.compress(b"\x00" * 1024 * 1024) if coding == "gzip" else zlib.compress(b"\x00" * 1024 * 1024)
    assert len(bomb) < settings.OTLP_MAX_BODY_BYTES

    response = post(client, "/v1/traces", bomb, auth=bearer(world.key.secret_key), encoding=coding)

    assert response.status_code == 413
    assert "limit" in error_body(response)[1]


def test_body_over_the_cap_by_content_length_is_413(client, world, settings, content_type):
    settings.OTLP_MAX_BODY_BYTES = 2048
    spans = [otlp.span(f"span-{n}", trace_id=otlp.new_trace_id(), attributes={"pad": "x" * 100}) for n in range(30)]
    body = otlp.encode_traces(spans, content_type)
    assert len(body) > 2048

    response = post(client, "/v1/traces", body, auth=bearer(world.key.secret_key), content_type=content_type)

    assert response.status_code == 413
    assert error_body(response)[1] == "Body exceeds the 2048-byte limit."
    assert not Span.objects.filter(project=world.project).exists()


def test_declared_content_length_over_the_cap_is_413_before_reading(client, world, settings):
    settings.OTLP_MAX_BODY_BYTES = 2048
    body = otlp.traces_protobuf(otlp.llm_trace("genai").spans)

    response = client.post("/v1/traces", data=body, content_type=PROTOBUF, CONTENT_LENGTH="5000000",
                           HTTP_AUTHORIZATION=bearer(world.key.secret_key))

    assert response.status_code == 413
    assert not Span.objects.exists()


def test_body_at_the_cap_after_decompression_is_accepted(client, world, settings):
    body = otlp.traces_protobuf(otlp.llm_trace("genai").spans)
    settings.OTLP_MAX_BODY_BYTES = len(body)

    response = post(client, "/v1/traces", gzip.compress(body), auth=bearer(world.key.secret_key), encoding="gzip")

    assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    "auth",
    [
        None,
        "",
        "Bearer",
        "Bearer   ",
        "Token sk-sg-whatever",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon-here").decode(),
        "Bearer sk-sg-not-a-key-we-issued",
    ],
    ids=["missing", "empty", "bearer-without-secret", "bearer-blank", "unknown-scheme", "basic-not-base64",
         "basic-without-colon", "unknown-key"],
)
def test_unusable_key_is_401(client, world, auth, content_type):
    body = otlp.encode_traces(otlp.llm_trace("genai").spans, content_type)

    response = post(client, "/v1/traces", body, auth=auth, content_type=content_type)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert error_body(response)[0] == 16  # UNAUTHENTICATED
    assert not Span.objects.exists()


def test_revoked_key_is_401(client, world):
    api_key_revoke(project=world.project, key_id=world.key.key.pk)

    response = post(client, "/v1/traces", otlp.traces_protobuf(otlp.llm_trace("genai").spans),
                    auth=bearer(world.key.secret_key))

    assert response.status_code == 401
    assert "revoked" in error_body(response)[1]
    assert not Span.objects.exists()


def test_basic_auth_with_matching_public_key_is_accepted(client, world):
    trace = otlp.llm_trace("langfuse")

    response = post(client, "/v1/traces", otlp.traces_protobuf(trace.spans),
                    auth=basic(world.key.public_key, world.key.secret_key))

    assert response.status_code == 200, response.content
    assert Trace.objects.filter(project=world.project, trace_id=trace.trace_id).exists()


def test_basic_auth_with_another_projects_public_key_is_401(client, world):
    response = post(client, "/v1/traces", otlp.traces_protobuf(otlp.llm_trace("langfuse").spans),
                    auth=basic(world.other_key.public_key, world.key.secret_key))

    assert response.status_code == 401
    assert not Span.objects.exists()


@pytest.mark.parametrize("path", ["/v1/traces", "/v1/logs"])
@pytest.mark.parametrize("content_type_header", [None, PROTOBUF], ids=["no-content-type", "protobuf"])
def test_get_is_405(client, world, path, content_type_header):
    headers = {"HTTP_AUTHORIZATION": bearer(world.key.secret_key)}
    if content_type_header:
        headers["CONTENT_TYPE"] = content_type_header

    response = client.get(path, **headers)

    assert response.status_code == 405
    assert response["Allow"] == "POST"


def test_database_unavailable_is_503_with_retry_after(client, world, monkeypatch, content_type):
    # The database is the third-party boundary here: a real outage surfaces from the
    # ingest service as OperationalError, which is exactly what this stand-in raises.
    def unavailable(**kwargs):
        raise OperationalError("could not connect to server: Connection refused")

    monkeypatch.setattr("tracing.otlp.receiver.spans_ingest_salvaging", unavailable)

    response = post(client, "/v1/traces", otlp.encode_traces(otlp.llm_trace("genai").spans, content_type),
                    auth=bearer(world.key.secret_key), content_type=content_type)

    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert error_body(response)[0] == 14  # UNAVAILABLE


def test_database_unavailable_for_logs_is_503(client, world, monkeypatch):
    # Same third-party boundary as above, on the logs path.
    def unavailable(**kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr("tracing.otlp.receiver.log_records_ingest", unavailable)
    records = otlp.genai_message_logs(trace_id=otlp.new_trace_id(), span_id=otlp.new_span_id())

    response = post(client, "/v1/logs", otlp.logs_protobuf(records), auth=bearer(world.key.secret_key))

    assert response.status_code == 503
    assert "Retry-After" in response


# ---------------------------------------------------------------- partial success


def invalid_spans(trace_id: str, *, content_type: str) -> list[dict]:
    """One span per way a span can be unusable; the zero trace id comes first."""
    spans = [
        otlp.span("zero trace id", trace_id="0" * 32),
        otlp.span("missing span id", trace_id=trace_id, span_id=""),
        otlp.span("end before start", trace_id=trace_id, start=otlp.BASE_NS, end=otlp.BASE_NS - 1),
        otlp.span("short parent id", trace_id=trace_id, parent="abcd1234"),
    ]
    if content_type == JSON:
        spans.append(otlp.span("garbage id", trace_id=trace_id, span_id="not-an-id!"))
    return spans


def test_partly_invalid_batch_stores_the_valid_spans(client, world, content_type):
    trace = otlp.llm_trace("openinference")
    invalid = invalid_spans(trace.trace_id, content_type=content_type)
    spans = [trace.spans[0], *invalid, *trace.spans[1:]]

    response = send_spans(client, spans, world.key.secret_key, content_type)

    rejected, message = partial_success(response)
    assert rejected == len(invalid)
    assert "trace_id" in message and "zero trace id" in message
    assert set(span_rows(world.project, trace.trace_id)) == set(trace.span_ids.values())
    assert Trace.objects.get(project=world.project, trace_id=trace.trace_id).span_count == 4
    assert not Trace.objects.filter(project=world.project, trace_id="0" * 32).exists()


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ({"span_id": ""}, "span_id"),
        ({"start": otlp.BASE_NS, "end": otlp.BASE_NS - MS}, "before"),
        ({"parent": "abcd1234"}, "parent"),
        ({"start": 0, "end": 0}, "start_time"),
    ],
    ids=["missing-span-id", "end-before-start", "short-parent", "no-start"],
)
def test_each_invalid_span_is_rejected_with_its_reason(client, world, content_type, bad, problem):
    trace_id = otlp.new_trace_id()
    good = otlp.span("good", trace_id=trace_id)
    wrong = {**otlp.span("bad", trace_id=trace_id), **bad}

    response = send_spans(client, [wrong, good], world.key.secret_key, content_type)

    rejected, message = partial_success(response)
    assert rejected == 1 and problem in message
    assert list(span_rows(world.project, trace_id)) == [good["span_id"]]


def test_json_id_that_is_neither_hex_nor_base64_is_rejected(client, world):
    trace_id = otlp.new_trace_id()
    good = otlp.span("good", trace_id=trace_id)
    wrong = otlp.span("bad", trace_id="not-a-trace-id!")

    response = send_spans(client, [wrong, good], world.key.secret_key, JSON)

    rejected, message = partial_success(response)
    assert rejected == 1 and "neither hex nor base64" in message
    assert list(span_rows(world.project, trace_id)) == [good["span_id"]]


def test_json_base64_ids_are_accepted(client, world):
    # Plain proto3 JSON (e.g. MessageToJson) encodes bytes as base64, not hex.
    trace_id, span_id = otlp.new_trace_id(), otlp.new_span_id()
    document = otlp.traces_document([otlp.span("b64", trace_id=trace_id, span_id=span_id)])
    json_span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    json_span["traceId"] = base64.b64encode(bytes.fromhex(trace_id)).decode()
    json_span["spanId"] = base64.b64encode(bytes.fromhex(span_id)).decode()

    response = post(client, "/v1/traces", orjson.dumps(document), auth=bearer(world.key.secret_key),
                    content_type=JSON)

    assert response.status_code == 200
    assert partial_success(response) == (0, "")
    assert Span.objects.filter(project=world.project, trace_id=trace_id, span_id=span_id).exists()


def test_span_the_database_refuses_costs_only_itself(client, world, monkeypatch):
    # Defence in depth: decoder and mapping clean every value we know Postgres refuses,
    # so to exercise the span-by-span retry (spans_ingest_salvaging) one span's row is
    # made unstorable (a kind wider than its varchar column). The retry runs on a
    # connection whose span_stage temp table was created in the rolled-back transaction.
    from tracing import services

    real_row = services._span_row

    def row_with_poison(project_id, raw, norm, now):
        row = real_row(project_id, raw, norm, now)
        if raw.name == "poison":
            row = (*row[:5], "x" * 100, *row[6:])
        return row

    monkeypatch.setattr(services, "_span_row", row_with_poison)
    trace = otlp.llm_trace("openinference")
    poison = otlp.span("poison", trace_id=trace.trace_id, parent=trace.span_ids["root"])

    response = send_spans(client, [*trace.spans, poison], world.key.secret_key, JSON)

    rejected, message = partial_success(response)
    assert rejected == 1 and poison["span_id"] in message and "refused" in message
    assert set(span_rows(world.project, trace.trace_id)) == set(trace.span_ids.values())
    assert Trace.objects.get(project=world.project, trace_id=trace.trace_id).span_count == 4


def test_out_of_range_enums_fall_back_to_unspecified(client, world):
    trace = otlp.llm_trace("openinference")
    odd = {**otlp.span("odd-kind", trace_id=trace.trace_id, parent=trace.span_ids["root"]), "kind": 10**6}

    response = send_spans(client, [*trace.spans, odd], world.key.secret_key, JSON)

    assert response.status_code == 200 and partial_success(response) == (0, "")
    assert Span.objects.get(project=world.project, span_id=odd["span_id"]).otel_kind == 0


@pytest.mark.parametrize(
    "document",
    [
        {"resourceSpans": [5, {"resource": [1], "scopeSpans": [7, {"scope": "x", "spans": [3]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "x",
            "startTimeUnixNano": "1000", "endTimeUnixNano": "2000", "events": 5, "status": [1]}]}]}]},
    ],
    ids=["containers-not-objects", "fields-not-objects"],
)
def test_malformed_json_structure_is_never_a_server_error(client, world, document):
    response = post(client, "/v1/traces", orjson.dumps(document), auth=bearer(world.key.secret_key),
                    content_type=JSON)

    assert response.status_code == 200, response.content


def test_all_invalid_batch_is_200_with_everything_rejected(client, world, content_type):
    invalid = invalid_spans(otlp.new_trace_id(), content_type=content_type)

    response = send_spans(client, invalid, world.key.secret_key, content_type)

    assert partial_success(response)[0] == len(invalid)
    assert not Span.objects.exists()


def test_full_success_has_no_partial_success(client, world, content_type):
    response = send_spans(client, otlp.llm_trace("genai").spans, world.key.secret_key, content_type)

    assert response["Content-Type"].startswith(content_type)
    if content_type == PROTOBUF:
        message = ExportTraceServiceResponse()
        message.ParseFromString(response.content)
        assert not message.HasField("partial_success")
    else:
        assert orjson.loads(response.content) == {}


# ---------------------------------------------------------------- hostile attribute content


def nested_kvlist(depth: int) -> dict:
    value: dict = {"leaf": "bottom"}
    for level in range(depth):
        value = {f"level{level}": value}
    return value


def test_nul_bytes_never_reject_a_span(client, world, content_type):
    trace_id = otlp.new_trace_id()
    poisoned = otlp.span(
        "nul\x00name",
        trace_id=trace_id,
        status=(2, "bad\x00status"),
        attributes={
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt\x00-4o",
            "input.value": "hello\x00world",
            "session.id": "sess\x00ion",
            "tag.tags": ["a\x00b", "ok"],
            "metadata": '{"k\\u0000": "v\\u0000"}',
            "weird\x00key": "x\x00y",
            "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.content": "hi\x00there",
            "nested": {"deep\x00": ["v\x00", {"k": "\x00"}]},
        },
        events=[{"name": "ev\x00ent", "time": otlp.BASE_NS, "attributes": {"m\x00": "\x00"}}],
    )

    response = send_spans(client, [poisoned], world.key.secret_key, content_type)

    assert partial_success(response) == (0, "")
    row = Span.objects.get(project=world.project, span_id=poisoned["span_id"])
    assert (row.name, row.model, row.input, row.session_id) == ("nulname", "gpt-4o", "helloworld", "session")
    assert row.status_message == "badstatus"
    assert "\x00" not in orjson.dumps([row.attributes, row.events, row.messages, row.metadata]).decode()


def test_token_counts_beyond_int64_never_reject_a_span(client, world, content_type):
    trace_id = otlp.new_trace_id()
    huge = 10**30
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o",
        # protobuf int_value is int64: larger numbers arrive as strings or doubles.
        "gen_ai.usage.input_tokens": str(huge),
        "gen_ai.usage.output_tokens": float(huge),
        "llm.usage.total_tokens": 2**63 - 1,
        "gen_ai.usage.cache_read.input_tokens": -5,
    }
    spans = [otlp.span("chat", trace_id=trace_id, attributes=attributes)]

    response = send_spans(client, spans, world.key.secret_key, content_type)

    assert partial_success(response) == (0, "")
    row = Span.objects.get(project=world.project, span_id=spans[0]["span_id"])
    assert (row.input_tokens, row.output_tokens, row.cached_tokens) == (None, None, None)
    assert Trace.objects.get(project=world.project, trace_id=trace_id).span_count == 1


def test_json_int_value_beyond_int64_never_rejects_a_span(client, world):
    trace_id = otlp.new_trace_id()
    document = otlp.traces_document([llm_span(trace_id)])
    attributes = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]
    for attribute in attributes:
        if attribute["key"] == "gen_ai.usage.input_tokens":
            attribute["value"] = {"intValue": "9" * 40}
    attributes.append({"key": "big.number", "value": {"intValue": "BIG"}})
    # JSON numbers have no size limit, but orjson cannot write one this big: splice it in.
    body = orjson.dumps(document).replace(b'"BIG"', b"1" + b"0" * 30)

    response = send_body(client, body, world.key.secret_key, JSON)

    assert partial_success(response) == (0, "")
    row = Span.objects.get(project=world.project, trace_id=trace_id)
    assert row.input_tokens is None and row.output_tokens == 300
    # Kept as text (a jsonb number this big would fail the batch); orjson reads it as a double.
    assert float(row.attributes["big.number"]) == pytest.approx(1e30)


def test_bytes_values_are_stored_as_hex(client, world, content_type):
    trace_id = otlp.new_trace_id()
    spans = [otlp.span("blob", trace_id=trace_id, attributes={"payload": b"\x00\xff\xfe binary", "list": [b"\x01"]})]

    send_spans(client, spans, world.key.secret_key, content_type)

    row = Span.objects.get(project=world.project, trace_id=trace_id)
    assert row.attributes["payload"] == b"\x00\xff\xfe binary".hex()
    assert row.attributes["list"] == ["01"]


def json_with_deep_value(trace_id: str, levels: int, wrap: str) -> bytes:
    """An OTLP/JSON body whose span has one attribute nested `levels` deep, written as
    text: JSON has no depth limit of its own, but orjson refuses to write this."""
    document = otlp.traces_document([otlp.span("deep", trace_id=trace_id, attributes={"deep": "PLACEHOLDER"})])
    value = '{"stringValue":"bottom"}'
    for _ in range(levels):
        value = wrap.replace("INNER", value)
    return orjson.dumps(document).replace(b'{"stringValue":"PLACEHOLDER"}', value.encode())


def test_deeply_nested_kvlists_never_reject_a_span(client, world):
    trace_id = otlp.new_trace_id()
    # protobuf stops at 100 nested messages (3 per kvlist level), so no protobuf client
    # can even build a value deeper than 30 levels.
    body = otlp.traces_protobuf([otlp.span("deep", trace_id=trace_id, attributes={"deep": nested_kvlist(30)})])

    response = send_body(client, body, world.key.secret_key, PROTOBUF)

    assert partial_success(response) == (0, "")
    assert Span.objects.get(project=world.project, trace_id=trace_id).attributes["deep"]["level29"]


@pytest.mark.parametrize(
    "wrap",
    ['{"kvlistValue":{"values":[{"key":"k","value":INNER}]}}', '{"arrayValue":{"values":[INNER]}}'],
    ids=["kvlist", "array"],
)
def test_deeply_nested_json_values_never_reject_a_span(client, world, wrap):
    trace_id = otlp.new_trace_id()

    response = send_body(client, json_with_deep_value(trace_id, 250, wrap), world.key.secret_key, JSON)

    assert partial_success(response) == (0, "")
    assert "deep" in Span.objects.get(project=world.project, trace_id=trace_id).attributes


def test_wrongly_typed_attributes_never_reject_a_span(client, world, content_type):
    trace_id = otlp.new_trace_id()
    attributes = {
        "openinference.span.kind": 42,
        "llm.model_name": ["not", "a", "string"],
        "llm.token_count.prompt": "many",
        "llm.token_count.completion": True,
        "session.id": {"a": 1},
        "tag.tags": "x,y",
        "metadata": "{not json",
        "retrieval.documents.0.document.score": "high",
        "llm.input_messages.x.message.role": "user",
        "llm.cost.total": "NaN",
    }
    spans = [otlp.span("odd", trace_id=trace_id, attributes=attributes)]

    response = send_spans(client, spans, world.key.secret_key, content_type)

    assert partial_success(response) == (0, "")
    row = Span.objects.get(project=world.project, trace_id=trace_id)
    assert (row.model, row.input_tokens, row.session_id, row.cost_usd) == (None, None, None, None)
    assert row.tags == ["x", "y"]


# ---------------------------------------------------------------- isolation


def test_same_ids_in_two_projects_stay_separate(client, world):
    trace = otlp.llm_trace("openinference")
    other_spans = [{**s, "name": f"other {s['name']}"} for s in trace.spans]

    send_spans(client, trace.spans, world.key.secret_key)
    send_spans(client, other_spans, world.other_key.secret_key)

    mine = trace_detail(project=world.project, trace_id=trace.trace_id)
    theirs = trace_detail(project=world.other_project, trace_id=trace.trace_id)
    assert mine.trace.pk != theirs.trace.pk
    assert (mine.trace.name, theirs.trace.name) == ("SupportChain", "other SupportChain")
    assert [s.project_id for s in mine.spans] == [world.project.pk] * 4
    assert all(s.name.startswith("other ") for s in theirs.spans)
    assert Span.objects.filter(trace_id=trace.trace_id).count() == 8


def test_another_projects_trace_is_not_found(client, world):
    trace = otlp.llm_trace("genai")
    send_spans(client, trace.spans, world.other_key.secret_key)

    with pytest.raises(NotFound):
        trace_detail(project=world.project, trace_id=trace.trace_id)
    assert not Span.objects.filter(project=world.project).exists()


# ---------------------------------------------------------------- logs (GenAI message events)


def content_free_llm_span(trace_id: str) -> dict:
    """What opentelemetry-instrumentation-openai-v2 puts on the span: usage, no content."""
    return llm_span(trace_id, **{"gen_ai.response.model": otlp.MODEL, "gen_ai.response.finish_reasons": ["stop"]})


@pytest.mark.parametrize("event_name_in", ["field", "attribute"])
def test_log_events_before_span_fill_its_messages(client, world, content_type, event_name_in):
    trace_id = otlp.new_trace_id()
    llm = content_free_llm_span(trace_id)
    records = otlp.genai_message_logs(trace_id=trace_id, span_id=llm["span_id"], event_name_in=event_name_in)

    send_logs(client, records, world.key.secret_key, content_type)
    send_spans(client, [llm], world.key.secret_key, content_type)

    row = Span.objects.get(project=world.project, span_id=llm["span_id"])
    assert message_triples(row.messages) == otlp.EXPECTED_MESSAGES
    assert (row.input, row.output) == (otlp.QUESTION, otlp.ANSWER)
    trace = Trace.objects.get(project=world.project, trace_id=trace_id)
    assert (trace.input, trace.output) == (otlp.QUESTION, otlp.ANSWER)


@pytest.mark.parametrize("event_name_in", ["field", "attribute"])
def test_log_events_after_span_fill_its_messages(client, world, content_type, event_name_in):
    trace_id = otlp.new_trace_id()
    llm = content_free_llm_span(trace_id)
    send_spans(client, [llm], world.key.secret_key, content_type)
    assert Trace.objects.get(project=world.project, trace_id=trace_id).input is None

    records = otlp.genai_message_logs(trace_id=trace_id, span_id=llm["span_id"], event_name_in=event_name_in)
    response = send_logs(client, records, world.key.secret_key, content_type)

    assert partial_success(response, logs=True) == (0, "")
    row = Span.objects.get(project=world.project, span_id=llm["span_id"])
    assert message_triples(row.messages) == otlp.EXPECTED_MESSAGES
    assert (row.input, row.output) == (otlp.QUESTION, otlp.ANSWER)
    trace = Trace.objects.get(project=world.project, trace_id=trace_id)
    assert (trace.input, trace.output) == (otlp.QUESTION, otlp.ANSWER)


def test_span_messages_from_attributes_win_over_log_events(client, world):
    trace = otlp.llm_trace("openinference")
    llm = trace.span("llm")
    records = otlp.genai_message_logs(trace_id=trace.trace_id, span_id=llm["span_id"], question="from logs",
                                      answer="log answer")

    send_spans(client, trace.spans, world.key.secret_key)
    send_logs(client, records, world.key.secret_key)

    row = Span.objects.get(project=world.project, span_id=llm["span_id"])
    assert message_triples(row.messages) == otlp.EXPECTED_MESSAGES


def test_resent_log_batch_is_stored_once(client, world, content_type):
    trace_id = otlp.new_trace_id()
    llm = content_free_llm_span(trace_id)
    records = otlp.genai_message_logs(trace_id=trace_id, span_id=llm["span_id"])

    send_logs(client, records, world.key.secret_key, content_type)
    send_logs(client, records, world.key.secret_key, content_type)
    send_spans(client, [llm], world.key.secret_key, content_type)

    assert SpanLogEvent.objects.filter(project=world.project, trace_id=trace_id).count() == len(records)
    row = Span.objects.get(project=world.project, span_id=llm["span_id"])
    assert message_triples(row.messages) == otlp.EXPECTED_MESSAGES


def test_logs_without_span_ids_are_accepted_and_dropped(client, world, content_type):
    records = otlp.genai_message_logs(trace_id="", span_id="")
    records.append({"body": "plain application log line", "attributes": {"logger": "app"}})

    response = send_logs(client, records, world.key.secret_key, content_type)

    assert partial_success(response, logs=True) == (0, "")
    assert not SpanLogEvent.objects.exists()


def test_log_events_stay_in_their_project(client, world):
    trace_id = otlp.new_trace_id()
    llm = content_free_llm_span(trace_id)
    send_logs(client, otlp.genai_message_logs(trace_id=trace_id, span_id=llm["span_id"]), world.other_key.secret_key)

    send_spans(client, [llm], world.key.secret_key)

    assert Span.objects.get(project=world.project, span_id=llm["span_id"]).messages == []


def test_logs_need_a_valid_key(client, world):
    records = otlp.genai_message_logs(trace_id=otlp.new_trace_id(), span_id=otlp.new_span_id())

    response = post(client, "/v1/logs", otlp.logs_protobuf(records), auth=bearer("sk-sg-nope"))

    assert response.status_code == 401
    assert not SpanLogEvent.objects.exists()


def test_undecodable_logs_body_is_400(client, world):
    response = post(client, "/v1/logs", b"\xff\xff\xff", auth=bearer(world.key.secret_key))

    assert response.status_code == 400
    assert "ExportLogsServiceRequest" in error_body(response)[1]


# ---------------------------------------------------------------- post-ingest announcement, key usage


@pytest.fixture
def scoring_calls(monkeypatch, world) -> list[list[int]]:
    """The trace row ids of each `traces_changed` message ingest sends (one project)."""
    calls: list[list[int]] = []

    def record(project_id, trace_pks):
        assert project_id == world.project.pk
        calls.append(list(trace_pks))

    monkeypatch.setattr(tasks.traces_changed, "delay", record)
    return calls


def test_scoring_is_enqueued_once_per_batch_after_commit(transactional_db, world, scoring_calls):
    first, second = otlp.llm_trace("genai"), otlp.llm_trace("openinference")

    send_spans(Client(), [*first.spans, *second.spans], world.key.secret_key)

    expected = Trace.objects.filter(project=world.project, trace_id__in=[first.trace_id, second.trace_id])
    assert len(scoring_calls) == 1
    assert sorted(scoring_calls[0]) == sorted(expected.values_list("pk", flat=True))


def test_scoring_is_enqueued_for_a_trace_that_changed(transactional_db, world, scoring_calls):
    trace = otlp.llm_trace("genai")
    send_spans(Client(), trace.spans[:2], world.key.secret_key)

    send_spans(Client(), trace.spans[2:], world.key.secret_key)

    pk = Trace.objects.get(project=world.project, trace_id=trace.trace_id).pk
    assert scoring_calls == [[pk], [pk]]


def test_duplicate_batch_enqueues_no_scoring(transactional_db, world, scoring_calls):
    trace = otlp.llm_trace("openllmetry")
    send_spans(Client(), trace.spans, world.key.secret_key)
    scoring_calls.clear()

    send_spans(Client(), trace.spans, world.key.secret_key)

    assert scoring_calls == []


def test_scoring_is_not_enqueued_before_commit(world, scoring_calls, client):
    # Under `db` the test transaction never commits, so on_commit hooks never run:
    # the task cannot see rows that might still roll back.
    send_spans(client, otlp.llm_trace("genai").spans, world.key.secret_key)

    assert scoring_calls == []


def test_broker_outage_does_not_fail_an_ingest(transactional_db, world, monkeypatch):
    def broker_down(project_id, trace_pks):
        raise ConnectionError("redis unreachable")

    monkeypatch.setattr(tasks.traces_changed, "delay", broker_down)
    trace = otlp.llm_trace("genai")

    send_spans(Client(), trace.spans, world.key.secret_key)

    assert Span.objects.filter(project=world.project, trace_id=trace.trace_id).count() == 4


def test_ingest_sets_key_last_used_at(client, world):
    assert world.key.key.last_used_at is None
    before = timezone.now()

    send_spans(client, otlp.llm_trace("genai").spans, world.key.secret_key)

    last_used = ApiKey.objects.get(pk=world.key.key.pk).last_used_at
    assert last_used is not None and last_used >= before
