from __future__ import annotations

import json

import pytest
from opentelemetry.trace import StatusCode
from sdk_helpers import attrs, json_attr

import spyglass


def test_llm_span_records_genai_and_openinference_attributes(traced):
    t = traced()
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    with spyglass.llm_span(
        model="gpt-4o", provider="openai", messages=messages, params={"temperature": 0.2, "max_tokens": 50}
    ) as llm:
        llm.set_response(model="gpt-4o-2024-08-06", id="resp-1")
        llm.set_output("Hello!", finish_reasons=["stop"])
        llm.set_usage(input_tokens=12, output_tokens=3, cache_read_input_tokens=4)

    span = t.span("chat gpt-4o")
    a = attrs(span)
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o"
    assert a["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert a["gen_ai.request.temperature"] == 0.2
    assert a["gen_ai.request.max_tokens"] == 50
    assert a["gen_ai.usage.input_tokens"] == 12
    assert a["gen_ai.usage.output_tokens"] == 3
    assert a["gen_ai.usage.cache_read.input_tokens"] == 4
    assert list(a["gen_ai.response.finish_reasons"]) == ["stop"]
    assert a["llm.token_count.prompt"] == 12
    assert a["llm.token_count.total"] == 15
    assert a["openinference.span.kind"] == "LLM"
    assert json_attr(span, "gen_ai.input.messages") == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Hi"}]},
    ]
    assert json_attr(span, "gen_ai.output.messages") == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Hello!"}], "finish_reason": "stop"}
    ]
    assert a["output.value"] == "Hello!"
    assert json.loads(a["llm.invocation_parameters"]) == {"temperature": 0.2, "max_tokens": 50}


def test_tool_calls_are_converted_to_parts(traced):
    t = traced()
    messages = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    with spyglass.llm_span(model="m", messages=messages):
        pass
    converted = json_attr(t.span("chat m"), "gen_ai.input.messages")
    assert converted[0]["parts"] == [
        {"type": "tool_call", "id": "c1", "name": "weather", "arguments": {"city": "Oslo"}}
    ]
    assert converted[1]["parts"] == [{"type": "tool_call_response", "id": "c1", "response": "sunny"}]


def test_error_inside_llm_span_is_recorded(traced):
    t = traced()
    with pytest.raises(TimeoutError), spyglass.llm_span(model="m"):
        raise TimeoutError("provider timeout")
    span = t.span("chat m")
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)["error.type"] == "TimeoutError"


def test_mask_applies_to_inputs_outputs_and_message_contents(traced):
    def mask(value):
        if isinstance(value, str):
            return value.replace("alice@example.com", "[EMAIL]")
        if isinstance(value, dict):
            return {k: mask(v) for k, v in value.items()}
        return value

    t = traced(mask=mask)

    @spyglass.observe(name="lookup")
    def lookup(email: str) -> str:
        return f"found {email}"

    lookup("alice@example.com")
    with spyglass.llm_span(
        model="m", messages=[{"role": "user", "content": "I am alice@example.com"}]
    ) as llm:
        llm.set_output("Hi alice@example.com")
    for span in t.spans():
        for value in attrs(span).values():
            assert "alice@example.com" not in str(value)
    assert json.loads(attrs(t.span("lookup"))["input.value"]) == {"email": "[EMAIL]"}
    assert attrs(t.span("chat m"))["output.value"] == "Hi [EMAIL]"


def test_failing_mask_never_leaks_the_raw_value(traced):
    def mask(value):
        raise RuntimeError("mask bug")

    t = traced(mask=mask)

    @spyglass.observe(name="pii")
    def pii(ssn: str) -> str:
        return ssn

    assert pii("123-45-6789") == "123-45-6789"
    a = attrs(t.span("pii"))
    assert "123-45-6789" not in a["input.value"] + a["output.value"]
