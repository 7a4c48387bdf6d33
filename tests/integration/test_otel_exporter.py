"""The real OTLP/HTTP exporters (traces and logs) against gunicorn, end to end to Postgres."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from genai_prices import Usage, calc_price
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

from tests.integration.payloads import new_span_id, new_trace_id, openinference_json_request
from tests.integration.support import post_otlp
from tracing.models import Span, Trace

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

QUESTION = "How do I reset my password?"
ANSWER = "Open Settings, choose Security, then Reset password."
FLUSH_MS = 60_000


def _expected_cost(input_tokens: int, output_tokens: int) -> Decimal:
    # Priced independently of tracing.cost, straight from genai-prices.
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    return calc_price(usage, model_ref="gpt-4o-mini", provider_id="openai").total_price


def _provider(url: str, key: str, compression: Compression) -> TracerProvider:
    provider = TracerProvider(
        resource=Resource.create({"service.name": "exporter-test", "deployment.environment.name": "ci"})
    )
    exporter = OTLPSpanExporter(
        endpoint=f"{url}/v1/traces",
        headers={"Authorization": f"Bearer {key}"},
        compression=compression,
        timeout=60,
    )
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=512))
    return provider


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip], ids=["plain", "gzip"])
def test_sdk_exporter_nested_llm_trace_is_stored_with_aggregates(live_server_url, ingest_key, compression):
    provider = _provider(live_server_url, ingest_key.secret_key, compression)
    tracer = provider.get_tracer("tests.integration.exporter")
    try:
        with tracer.start_as_current_span("support-answer") as root:
            root.set_attributes({
                "openinference.span.kind": "CHAIN",
                "input.value": QUESTION,
                "session.id": "sess-42",
                "user.id": "user-7",
            })
            with tracer.start_as_current_span("search-kb") as retriever:
                retriever.set_attributes({
                    "openinference.span.kind": "RETRIEVER",
                    "input.value": QUESTION,
                    "retrieval.documents.0.document.id": "kb-1",
                    "retrieval.documents.0.document.content": "Passwords are reset under Settings > Security.",
                    "retrieval.documents.0.document.score": 0.91,
                    "retrieval.documents.1.document.id": "kb-2",
                    "retrieval.documents.1.document.content": "Two-factor codes expire after 30 seconds.",
                    "retrieval.documents.1.document.score": 0.42,
                })
            with tracer.start_as_current_span("chat gpt-4o-mini") as llm:
                llm.set_attributes({
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.response.model": "gpt-4o-mini",
                    "gen_ai.usage.input_tokens": 812,
                    "gen_ai.usage.output_tokens": 64,
                    "gen_ai.input.messages": orjson.dumps(
                        [{"role": "user", "parts": [{"type": "text", "content": QUESTION}]}]
                    ).decode(),
                    "gen_ai.output.messages": orjson.dumps(
                        [{"role": "assistant", "parts": [{"type": "text", "content": ANSWER}],
                          "finish_reason": "stop"}]
                    ).decode(),
                })
                llm.set_status(Status(StatusCode.OK))
            with tracer.start_as_current_span("lookup_account") as tool:
                tool.set_attributes({"openinference.span.kind": "TOOL", "tool.name": "lookup_account"})
                tool.set_status(Status(StatusCode.ERROR, "account service timed out"))
            with tracer.start_as_current_span("chat gpt-4o-mini retry") as llm2:
                llm2.set_attributes({
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.usage.input_tokens": 1000,
                    "gen_ai.usage.output_tokens": 200,
                })
            root.set_attribute("output.value", ANSWER)
        trace_id = format(root.get_span_context().trace_id, "032x")
        ids = {
            name: format(span.get_span_context().span_id, "016x")
            for name, span in {"root": root, "retriever": retriever, "llm": llm, "tool": tool, "llm2": llm2}.items()
        }
        assert provider.force_flush(FLUSH_MS), "the exporter did not finish within the flush timeout"
    finally:
        provider.shutdown()

    # force_flush returned after the 200, and 200 means committed: no polling needed.
    trace = Trace.objects.get(project=ingest_key.project, trace_id=trace_id)
    assert trace.span_count == 5
    assert trace.error_count == 1
    assert trace.status == "error"
    assert trace.name == "support-answer"
    assert trace.root_span_id == ids["root"]
    assert trace.input == QUESTION
    assert trace.output == ANSWER
    assert trace.session_id == "sess-42"
    assert trace.user_id == "user-7"
    assert trace.service_name == "exporter-test"
    assert trace.environment == "ci"
    assert trace.model == "gpt-4o-mini"
    assert trace.input_tokens == 812 + 1000
    assert trace.output_tokens == 64 + 200
    assert trace.total_tokens == 812 + 64 + 1000 + 200
    expected_cost = _expected_cost(812, 64) + _expected_cost(1000, 200)
    assert trace.cost_usd == pytest.approx(expected_cost, rel=Decimal("1e-6"))
    assert trace.unpriced_spans == 0

    spans = {s.span_id: s for s in Span.objects.filter(project=ingest_key.project, trace_id=trace_id)}
    assert set(spans) == set(ids.values())
    assert spans[ids["root"]].parent_span_id is None
    assert {spans[ids[n]].parent_span_id for n in ("retriever", "llm", "tool", "llm2")} == {ids["root"]}
    kinds = {name: spans[span_id].kind for name, span_id in ids.items()}
    assert kinds == {"root": "chain", "retriever": "retriever", "llm": "llm", "tool": "tool", "llm2": "llm"}
    llm_row = spans[ids["llm"]]
    assert (llm_row.provider, llm_row.model) == ("openai", "gpt-4o-mini")
    assert (llm_row.input_tokens, llm_row.output_tokens) == (812, 64)
    assert llm_row.cost_usd == pytest.approx(_expected_cost(812, 64), rel=Decimal("1e-6"))
    assert llm_row.cost_source == "computed"
    assert [(m["role"], m["content"]) for m in llm_row.messages] == [("user", QUESTION), ("assistant", ANSWER)]
    documents = spans[ids["retriever"]].documents
    assert [d["id"] for d in documents] == ["kb-1", "kb-2"]
    assert documents[0]["score"] == pytest.approx(0.91)
    assert spans[ids["tool"]].status == "error"
    assert spans[ids["tool"]].status_message == "account service timed out"


def test_sdk_exporter_resend_is_deduplicated(live_server_url, ingest_key):
    """The exporter retries on timeouts; the same spans twice must be stored once."""
    provider = _provider(live_server_url, ingest_key.secret_key, Compression.Gzip)
    tracer = provider.get_tracer("tests.integration.exporter")
    exporter = OTLPSpanExporter(
        endpoint=f"{live_server_url}/v1/traces", headers={"Authorization": f"Bearer {ingest_key.secret_key}"}
    )
    finished = []
    try:
        with tracer.start_as_current_span("root") as root:
            with tracer.start_as_current_span("chat") as llm:
                llm.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
                                    "gen_ai.provider.name": "openai", "gen_ai.usage.input_tokens": 100,
                                    "gen_ai.usage.output_tokens": 10})
            finished.append(llm)
        finished.append(root)
        assert provider.force_flush(FLUSH_MS)
        # The same ReadableSpans again, straight through a second exporter.
        assert exporter.export(finished).name == "SUCCESS"
    finally:
        exporter.shutdown()
        provider.shutdown()
    trace_id = format(root.get_span_context().trace_id, "032x")
    trace = Trace.objects.get(project=ingest_key.project, trace_id=trace_id)
    assert Span.objects.filter(project=ingest_key.project, trace_id=trace_id).count() == 2
    assert (trace.span_count, trace.input_tokens, trace.output_tokens) == (2, 100, 10)


def test_otlp_json_post_is_stored(live_server_url, ingest_key):
    trace_id, root_id, llm_id = new_trace_id(), new_span_id(), new_span_id()
    body = openinference_json_request(trace_id=trace_id, root_id=root_id, llm_id=llm_id, question=QUESTION,
                                      answer=ANSWER, input_tokens=300, output_tokens=40)
    response = post_otlp(live_server_url, body, key=ingest_key.secret_key, json=True, gzip_body=True)
    assert response.status == 200, response.body
    assert response.header("content-type").startswith("application/json")
    assert orjson.loads(response.body).get("partialSuccess") in (None, {})

    trace = Trace.objects.get(project=ingest_key.project, trace_id=trace_id)
    assert (trace.span_count, trace.name, trace.root_span_id) == (2, "answer_question", root_id)
    assert (trace.input, trace.output) == (QUESTION, ANSWER)
    assert (trace.session_id, trace.user_id, trace.service_name) == ("sess-json", "user-json", "json-client")
    assert (trace.input_tokens, trace.output_tokens) == (300, 40)
    assert trace.cost_usd == pytest.approx(_expected_cost(300, 40), rel=Decimal("1e-6"))
    llm = Span.objects.get(project=ingest_key.project, trace_id=trace_id, span_id=llm_id)
    assert (llm.kind, llm.provider, llm.model, llm.parent_span_id) == ("llm", "openai", "gpt-4o-mini", root_id)
    assert [(m["role"], m["content"]) for m in llm.messages] == [("user", QUESTION), ("assistant", ANSWER)]


def test_wrong_key_is_refused_and_nothing_is_stored(live_server_url, ingest_key):
    trace_id = new_trace_id()
    body = openinference_json_request(trace_id=trace_id, root_id=new_span_id(), llm_id=new_span_id(),
                                      question=QUESTION, answer=ANSWER, input_tokens=1, output_tokens=1)
    response = post_otlp(live_server_url, body, key="sk-sg-not-a-key", json=True)
    assert response.status == 401
    assert response.header("www-authenticate")
    assert "Unknown API key" in orjson.loads(response.body)["message"]
    assert not Span.objects.filter(trace_id=trace_id).exists()


@pytest.mark.parametrize("logs_first", [False, True], ids=["span-first", "logs-first"])
def test_log_exporter_genai_events_become_span_messages(live_server_url, ingest_key, logs_first):
    """Content that arrives only as GenAI log events (openai-v2 style) lands on the span."""
    headers = {"Authorization": f"Bearer {ingest_key.secret_key}"}
    resource = Resource.create({"service.name": "log-events-test"})
    tracer_provider = TracerProvider(resource=resource)
    span_exporter = OTLPSpanExporter(endpoint=f"{live_server_url}/v1/traces", headers=headers, timeout=60)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    logger_provider = LoggerProvider(resource=resource)
    log_exporter = OTLPLogExporter(endpoint=f"{live_server_url}/v1/logs", headers=headers, timeout=60,
                                   compression=Compression.Gzip)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
    tracer = tracer_provider.get_tracer("tests.integration.logs")
    logger = logger_provider.get_logger("tests.integration.logs")
    try:
        with tracer.start_as_current_span("chat gpt-4o-mini") as span:
            span.set_attributes({
                "gen_ai.operation.name": "chat",
                "gen_ai.system": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 20,
                "gen_ai.usage.output_tokens": 12,
            })
            # No context= given: the SDK takes trace/span ids from the current span.
            logger.emit(event_name="gen_ai.user.message", body={"content": QUESTION},
                        attributes={"gen_ai.system": "openai"})
            logger.emit(event_name="gen_ai.choice",
                        body={"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": ANSWER}},
                        attributes={"gen_ai.system": "openai"})
        # Either order must end in the same row.
        first, second = (logger_provider, tracer_provider) if logs_first else (tracer_provider, logger_provider)
        assert first.force_flush(FLUSH_MS)
        assert second.force_flush(FLUSH_MS)
    finally:
        tracer_provider.shutdown()
        logger_provider.shutdown()

    trace_id = format(span.get_span_context().trace_id, "032x")
    span_id = format(span.get_span_context().span_id, "016x")
    row = Span.objects.get(project=ingest_key.project, trace_id=trace_id, span_id=span_id)
    assert row.kind == "llm"
    assert [(m["role"], m["content"]) for m in row.messages] == [("user", QUESTION), ("assistant", ANSWER)]
    assert (row.input, row.output) == (QUESTION, ANSWER)
    trace = Trace.objects.get(project=ingest_key.project, trace_id=trace_id)
    assert (trace.input, trace.output) == (QUESTION, ANSWER)
