"""Existing OpenAI instrumentations, unchanged, exporting over OTLP/HTTP to gunicorn.

Each instrumentation runs in its own process (tests/integration/instrumented_app.py):
they patch the openai module globally, and a fresh interpreter is the only isolation
that cannot leak between tests. The app calls a local fake OpenAI server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price

from tests.integration import fake_openai
from tests.integration.instrumented_app import EMBED_INPUT, QUESTION, SYSTEM
from tests.integration.support import BASE_DIR, child_env
from tracing.models import Span, Trace

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _run_app(instrumentation: str, url: str, key: str) -> dict:
    env = child_env()
    for name in ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "OTEL_SEMCONV_STABILITY_OPT_IN",
                 "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS", "TRACELOOP_TRACE_CONTENT"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-m", "tests.integration.instrumented_app", instrumentation, url, key],
        cwd=str(BASE_DIR), env=env, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, f"app exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no result line:\n{result.stdout}\n{result.stderr}"
    outcome = json.loads(lines[-1])
    assert outcome["flushed"] == {"traces": True, "logs": True}
    assert outcome["fake_requests"] == 3
    outcome["stderr"] = result.stderr
    return outcome


def _price(model: str, input_tokens: int, output_tokens: int = 0) -> Decimal:
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    return calc_price(usage, model_ref=model, provider_id="openai").total_price


def _only_span(project, call: list[dict], outcome: dict) -> Span:
    assert len(call) == 1, f"expected one span per call, got {call}"
    ids = call[0]
    span = Span.objects.filter(project=project, trace_id=ids["trace_id"], span_id=ids["span_id"]).first()
    assert span is not None, f"span {ids} not stored; app stderr:\n{outcome['stderr'][-3000:]}"
    return span


def _describe(span: Span) -> str:
    return json.dumps({"attributes": span.attributes, "messages": span.messages}, default=str)[:6000]


def _check_chat(project, span: Span, usage: dict) -> None:
    info = _describe(span)
    assert span.kind == "llm", info
    assert span.provider == "openai", info
    assert span.model.startswith("gpt-4o-mini"), info
    assert (span.input_tokens, span.output_tokens) == (usage["prompt_tokens"], usage["completion_tokens"]), info
    contents = [(m.get("role"), m.get("content")) for m in span.messages]
    assert ("system", SYSTEM) in contents, info
    assert ("user", QUESTION) in contents, info
    assert ("assistant", fake_openai.ANSWER) in contents, info
    roles = [role for role, _ in contents]
    assert roles.index("user") < roles.index("assistant"), info
    expected = _price("gpt-4o-mini", usage["prompt_tokens"], usage["completion_tokens"])
    assert span.cost_usd == pytest.approx(expected, rel=Decimal("1e-6")), info
    assert span.cost_source == "computed"

    trace = Trace.objects.get(project=project, trace_id=span.trace_id)
    assert trace.span_count == 1
    assert QUESTION in (trace.input or ""), f"trace input {trace.input!r}"
    assert fake_openai.ANSWER in (trace.output or ""), f"trace output {trace.output!r}"
    assert (trace.input_tokens, trace.output_tokens) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert trace.cost_usd == pytest.approx(expected, rel=Decimal("1e-6"))
    assert trace.model.startswith("gpt-4o-mini")


def _check_embedding(project, span: Span) -> None:
    info = _describe(span)
    assert span.kind == "embedding", info
    assert span.provider == "openai", info
    assert span.model == fake_openai.EMBEDDING_MODEL, info
    assert span.input_tokens == fake_openai.EMBEDDING_USAGE["prompt_tokens"], info


@pytest.mark.parametrize("instrumentation", ["openinference", "openllmetry", "openai-v2-events", "openai-v2-span"])
def test_instrumentation_exports_are_mapped(live_server_url, ingest_key, instrumentation):
    outcome = _run_app(instrumentation, live_server_url, ingest_key.secret_key)
    calls = outcome["calls"]
    project = ingest_key.project

    _check_chat(project, _only_span(project, calls["chat"], outcome), fake_openai.CHAT_USAGE)
    _check_chat(project, _only_span(project, calls["stream"], outcome), fake_openai.STREAM_USAGE)
    if instrumentation == "openai-v2-events":
        # The content reached the span through /v1/logs, not through its attributes.
        chat = Span.objects.get(project=project, span_id=calls["chat"][0]["span_id"])
        assert not any(k.startswith("gen_ai.input.messages") for k in chat.attributes), _describe(chat)
    embedding = _only_span(project, calls["embedding"], outcome)
    _check_embedding(project, embedding)
    if not instrumentation.startswith("openai-v2"):  # v2 records no embedding input text
        assert EMBED_INPUT in (embedding.input or "") or EMBED_INPUT in json.dumps(embedding.attributes)
