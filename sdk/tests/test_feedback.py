from __future__ import annotations

import json
import logging
import time

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spyglass


def _init(host: str) -> None:
    spyglass.init(
        host=host,
        public_key="pk-public",
        secret_key="sk-secret",
        export_timeout=0.5,
        tracer_provider=TracerProvider(),
        span_exporter=InMemorySpanExporter(),
    )


def test_feedback_and_events_are_posted_with_the_public_key(sink):
    _init(sink.url)
    spyglass.feedback("a" * 32, "thumbs", 1, comment="helpful")

    @spyglass.observe(name="chat")
    def chat() -> str | None:
        spyglass.event(None, "copy")  # None: use the current trace
        return spyglass.current_trace_id()

    trace_id = chat()
    assert spyglass.flush(timeout=10)
    requests = sink.wait_for(2)
    assert [r["path"] for r in requests] == ["/api/v1/feedback", "/api/v1/feedback"]
    for r in requests:
        assert r["headers"]["x-spyglass-public-key"] == "pk-public"
        assert "sk-secret" not in json.dumps(r["headers"])
    bodies = [json.loads(r["body"]) for r in requests]
    assert bodies[0] == {
        "trace_id": "a" * 32,
        "kind": "feedback",
        "name": "thumbs",
        "value": 1,
        "comment": "helpful",
    }
    assert bodies[1] == {
        "trace_id": trace_id,
        "kind": "event",
        "name": "copy",
        "value": None,
        "comment": None,
    }


def test_feedback_with_server_down_never_raises_and_warns_once(closed_port_url, caplog):
    _init(closed_port_url)
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    for i in range(20):
        spyglass.feedback("b" * 32, "stars", i)
        spyglass.event("b" * 32, "regenerate")
    assert time.monotonic() - started < 5  # enqueue only; generous bound
    spyglass.flush(timeout=10)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "feedback" in warnings[0].getMessage()


def test_feedback_without_configuration_is_a_quiet_no_op(traced, caplog):
    traced()  # no host / public key
    spyglass.feedback("c" * 32, "thumbs", 0)
    spyglass.feedback("c" * 32, "thumbs", 0)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
