"""A small "customer app": the real openai client, one OTel instrumentation, OTLP to Spyglass.

Run in its own process by test_instrumentations (instrumentors patch the openai module
globally, so one process per instrumentation is the only clean isolation):

    python -m tests.integration.instrumented_app INSTRUMENTATION SPYGLASS_URL SECRET_KEY

It starts the fake OpenAI server, makes a chat call, a streamed chat call and an
embeddings call, flushes, and prints one JSON line: for each call, the spans it made.
"""

from __future__ import annotations

import json
import os
import sys

FLUSH_MS = 60_000
QUESTION = "What is the capital of France?"
SYSTEM = "You are a terse geography tutor."
EMBED_INPUT = "capital cities of Europe"


def _instrumentor(name: str):
    if name == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor

        return OpenAIInstrumentor()
    if name == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor

        return OpenAIInstrumentor()
    if name.startswith("openai-v2"):
        # openai-v2 2.4 always takes opentelemetry-util-genai's "latest experimental"
        # path, where the documented legacy value "true" means NO content (it logs a
        # warning): content goes out as log events with event_only, or as span
        # attributes with span_only. Must be set before instrumenting.
        mode = {"openai-v2-events": "event_only", "openai-v2-span": "span_only"}[name]
        os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
        os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = mode
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        return OpenAIInstrumentor()
    raise SystemExit(f"unknown instrumentation {name!r}")


def main(name: str, spyglass_url: str, secret_key: str) -> int:
    import openai
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from tests.integration.fake_openai import FakeOpenAIServer

    headers = {"Authorization": f"Bearer {secret_key}"}
    resource = Resource.create({"service.name": f"app-{name}"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
        endpoint=f"{spyglass_url}/v1/traces", headers=headers, compression=Compression.Gzip, timeout=60)))
    # Only to learn the ids of what was sent; the server's rows are what the test checks.
    recorded = InMemorySpanExporter()
    tracer_provider.add_span_processor(SimpleSpanProcessor(recorded))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(
        endpoint=f"{spyglass_url}/v1/logs", headers=headers, timeout=60)))

    instrumentor = _instrumentor(name)
    instrumentor.instrument(tracer_provider=tracer_provider, logger_provider=logger_provider)
    calls: dict[str, list[dict]] = {}
    try:
        with FakeOpenAIServer() as fake:
            client = openai.OpenAI(base_url=fake.base_url, api_key="test", max_retries=0, timeout=30)
            messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]

            def record(call: str, action) -> None:
                before = len(recorded.get_finished_spans())
                action()
                calls[call] = [
                    {"trace_id": format(s.context.trace_id, "032x"), "span_id": format(s.context.span_id, "016x"),
                     "name": s.name}
                    for s in recorded.get_finished_spans()[before:]
                ]

            def chat() -> None:
                response = client.chat.completions.create(model="gpt-4o-mini", messages=messages, temperature=0.2)
                assert response.choices[0].message.content, response

            def stream() -> None:
                chunks = client.chat.completions.create(
                    model="gpt-4o-mini", messages=messages, stream=True, stream_options={"include_usage": True}
                )
                text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
                assert text, "the stream carried no content"

            def embed() -> None:
                response = client.embeddings.create(model="text-embedding-3-small", input=EMBED_INPUT)
                assert response.data[0].embedding, response

            record("chat", chat)
            record("stream", stream)
            record("embedding", embed)
            fake_requests = len(fake.requests)
        flushed = {"traces": tracer_provider.force_flush(FLUSH_MS), "logs": logger_provider.force_flush(FLUSH_MS)}
    finally:
        instrumentor.uninstrument()
        tracer_provider.shutdown()
        logger_provider.shutdown()
    print(json.dumps({"calls": calls, "flushed": flushed, "fake_requests": fake_requests}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
