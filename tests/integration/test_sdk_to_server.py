"""The SDK against the running server: what an app records shows up in the REST API."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime

import pytest
import spyglass

from tracing.cost import span_cost

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def api_get(url: str, secret_key: str) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {secret_key}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_sdk_traces_are_visible_through_the_trace_api(world, live_server):
    spyglass.init(host=live_server.url, secret_key=world.key.secret_key, public_key=world.key.public_key,
                  service_name="sdk-it", environment="staging")

    @spyglass.observe(kind="chain")
    def answer(question: str) -> str:
        with spyglass.llm_span(model="gpt-4o-mini", provider="openai",
                               messages=[{"role": "user", "content": question}]) as llm:
            llm.set_output("Open Settings > Security.")
            llm.set_usage(input_tokens=1000, output_tokens=200)
        return "Open Settings > Security."

    with spyglass.context(user_id="u-7", session_id="s-7", tags=["beta"], metadata={"plan": "pro"}):
        answer("How do I reset my password?")
        trace_id = spyglass.current_trace_id()
    assert spyglass.flush(timeout=30)

    listed = api_get(f"{live_server.url}/api/v1/traces?user_id=u-7&metadata.plan=pro", world.key.secret_key)
    assert len(listed["data"]) == 1
    trace = api_get(f"{live_server.url}/api/v1/traces/{listed['data'][0]['trace_id']}", world.key.secret_key)
    assert trace_id is None or trace["trace_id"] == trace_id
    assert trace["model"] == "gpt-4o-mini"
    assert (trace["input_tokens"], trace["output_tokens"]) == (1000, 200)
    expected = span_cost(provider="openai", model="gpt-4o-mini", input_tokens=1000, output_tokens=200,
                         cached_tokens=None, cache_creation_tokens=None, at=datetime.now(UTC))
    assert trace["cost_usd"] == pytest.approx(float(expected))
    assert (trace["user_id"], trace["session_id"]) == ("u-7", "s-7")
    assert trace["metadata"]["plan"] == "pro" and "beta" in trace["tags"]
    assert trace["environment"] == "staging" and trace["name"].endswith("answer")
    assert {s["kind"] for s in trace["spans"]} == {"chain", "llm"}
    spyglass.shutdown()
