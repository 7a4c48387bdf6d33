"""The real OTLP/HTTP exporter against local sinks: payload, auth, and outages."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import TracerProvider

import spyglass


def _decode(body: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    return request


def _span_attrs(span) -> dict:
    out = {}
    for kv in span.attributes:
        value = kv.value
        kind = value.WhichOneof("value")
        out[kv.key] = (
            list(v.string_value for v in value.array_value.values)
            if kind == "array_value"
            else getattr(value, kind)
        )
    return out


def _spans(requests: list[dict]) -> list:
    found = []
    for req in requests:
        for resource_spans in _decode(req["body"]).resource_spans:
            for scope_spans in resource_spans.scope_spans:
                found.extend(scope_spans.spans)
    return found


def test_spans_reach_the_server_as_protobuf_with_the_secret_key(sink):
    sink.body = ExportTraceServiceResponse().SerializeToString()
    sink.content_type = "application/x-protobuf"
    spyglass.init(
        host=sink.url + "/",
        public_key="pk-test",
        secret_key="sk-test",
        environment="staging",
        release="1.2.3",
        tracer_provider=TracerProvider(),
    )

    @spyglass.observe(name="answer")
    def answer(q: str) -> str:
        return "42"

    with spyglass.context(user_id="u-export"):
        answer("meaning of life")
    assert spyglass.flush(timeout=10)

    requests = sink.wait_for(1)
    assert requests[0]["path"] == "/v1/traces"
    assert requests[0]["headers"]["authorization"] == "Bearer sk-test"
    assert requests[0]["headers"]["content-type"] == "application/x-protobuf"
    (span,) = _spans(requests)
    assert span.name == "answer"
    a = _span_attrs(span)
    assert a["user.id"] == "u-export"
    assert a["output.value"] == "42"
    # we joined a provider we did not create, so resource facts ride on the span
    assert a["deployment.environment.name"] == "staging"
    assert a["service.version"] == "1.2.3"


@pytest.mark.parametrize("failure", ["server_down", "http_500", "slow_server"])
def test_backend_failure_never_slows_or_breaks_the_app_and_warns_once(failure, sink, closed_port_url, caplog):
    host = sink.url
    if failure == "server_down":
        host = closed_port_url
    elif failure == "http_500":
        sink.status = 500
    else:
        sink.delay = 5.0  # answers after the export timeout below
    spyglass.init(host=host, secret_key="sk", export_timeout=0.5, tracer_provider=TracerProvider())

    @spyglass.observe(name="request_handler")
    def handler(i: int) -> int:
        with spyglass.llm_span(model="m") as llm:
            llm.set_usage(input_tokens=i, output_tokens=i)
        return i

    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    for _round in range(3):
        for i in range(100):
            assert handler(i) == i
        spyglass.flush(timeout=5.0)  # bounded even while the exporter hangs
    elapsed = time.monotonic() - started

    # Generous bound: 300 traced calls plus three bounded flushes on a noisy machine.
    assert elapsed < 30
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [f"{r.name}: {r.getMessage()}" for r in warnings]
    assert warnings[0].name == "spyglass"
    assert "could not export spans" in warnings[0].getMessage()


def test_export_recovers_after_an_outage(sink, caplog):
    sink.status = 500
    spyglass.init(host=sink.url, secret_key="sk", export_timeout=1.0, tracer_provider=TracerProvider())
    exporter = spyglass._setup.state.processor._export.span_exporter
    exporter._cooldown = 0.0  # skip the circuit's cool-down so the test needs no sleeping

    @spyglass.observe(name="op")
    def op() -> None:
        pass

    caplog.set_level(logging.INFO, logger="spyglass")
    op()
    spyglass.flush()
    exporter._open_until = 0.0
    sink.status = 200
    op()
    spyglass.flush()
    messages = [r.getMessage() for r in caplog.records if r.name == "spyglass"]
    assert any("could not export" in m for m in messages)
    assert any("works again" in m for m in messages)


def test_process_exit_flushes_spans_from_any_instrumentation(sink, tmp_path):
    sink.body = ExportTraceServiceResponse().SerializeToString()
    script = tmp_path / "app.py"
    script.write_text(
        textwrap.dedent(
            """
            import spyglass
            from opentelemetry import trace

            spyglass.init(service_name="exit-test")

            @spyglass.observe(name="job")
            def job():
                with trace.get_tracer("plain.otel").start_as_current_span("db query"):
                    pass

            with spyglass.context(session_id="s-exit"):
                job()
            # no flush: the atexit hook must send the spans
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPYGLASS_", "OTEL_"))}
    env.update(SPYGLASS_HOST=sink.url, SPYGLASS_SECRET_KEY="sk-exit")
    subprocess.run([sys.executable, str(script)], env=env, check=True, timeout=60)
    requests = sink.wait_for(1)
    assert requests[0]["headers"]["authorization"] == "Bearer sk-exit"
    request = _decode(requests[0]["body"])
    resource = {kv.key: kv.value.string_value for kv in request.resource_spans[0].resource.attributes}
    assert resource["service.name"] == "exit-test"
    spans = {s.name: s for s in _spans(requests)}
    assert set(spans) == {"job", "db query"}
    assert _span_attrs(spans["db query"])["session.id"] == "s-exit"
    assert spans["db query"].parent_span_id == spans["job"].span_id
