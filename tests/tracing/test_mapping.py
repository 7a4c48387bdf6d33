"""tracing/otlp/mapping.py: every dialect lands on the same NormalizedSpan."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import otlp_payloads as otlp
from tests.tracing import mapping_payloads as payloads
from tracing.models import Span, Trace
from tracing.otlp.mapping import messages_from_log_events, normalize_span
from tracing.otlp.types import NormalizedSpan, RawEvent

WEATHER_CALL = {
    "id": "call_Xy12",
    "name": "get_weather",
    "arguments": '{"city": "Paris"}',
}


def test_openinference_openai_chat_maps_every_field():
    raw = payloads.openinference_openai_chat()
    span = normalize_span(raw)

    assert span.kind == "llm"
    assert (span.provider, span.model) == ("openai", "gpt-4o-mini-2024-07-18")
    assert (span.input_tokens, span.output_tokens, span.total_tokens) == (85, 18, 103)
    assert (span.cached_tokens, span.cache_creation_tokens, span.reasoning_tokens) == (
        64,
        None,
        0,
    )
    assert span.cost_usd is None
    # input.value / output.value hold the request and response JSON: the span reads as
    # the question and the answer (here a tool call); the JSON stays in the attributes.
    assert span.input == "What's the weather in Paris?"
    assert span.output == 'get_weather({"city": "Paris"})'
    assert span.messages == [
        {"role": "system", "content": "You are a weather bot.", "source": "input"},
        {"role": "user", "content": "What's the weather in Paris?", "source": "input"},
        {
            "role": "assistant",
            "content": "",
            "source": "output",
            "tool_calls": [WEATHER_CALL],
        },
    ]
    assert span.params == {
        "model": "gpt-4o-mini",
        "temperature": 0.2,
        "max_tokens": 256,
    }
    assert span.finish_reason == "tool_calls"
    assert (span.session_id, span.user_id) == ("sess-42", "user-7")
    assert span.tags == ["prod", "weather"]
    assert span.metadata == {
        "tier": "pro",
        "experiment": {"arm": "b"},
        "openinference.project.name": "weather",
    }
    assert span.prompt_template == "Weather in {city}?"
    assert span.prompt_variables == {"city": "Paris"}
    assert (span.prompt_name, span.prompt_version) == (None, "v3")
    assert span.service_name == "weather-api"
    assert (span.environment, span.release, span.trace_name, span.tool_name) == (
        None,
        None,
        None,
        None,
    )
    assert span.documents == []


def test_openinference_structured_contents_join_text_and_summarise_images():
    span = normalize_span(payloads.openinference_multimodal_chat())

    assert span.messages[0] == {
        "role": "user",
        "content": "What is in this picture?\n[image]",
        "source": "input",
    }
    assert span.input == "What is in this picture?\n[image]"
    assert span.output == "A cat."
    assert span.kind == "llm"


def test_openinference_cost_is_prompt_plus_completion_when_no_total():
    span = normalize_span(payloads.openinference_multimodal_chat())

    assert span.cost_usd == Decimal("0.0005")


def test_openinference_cost_total_wins_over_parts():
    span = normalize_span(
        payloads.raw_span(
            {"llm.cost.total": "0.25", "llm.cost.prompt": 1, "llm.cost.completion": 1}
        )
    )

    assert span.cost_usd == Decimal("0.25")


# input.value / output.value holding whole request / response bodies (issue 12).

REFUND_IO = (payloads.REFUND_QUESTION, payloads.REFUND_ANSWER)


@pytest.mark.parametrize("messages", [True, False], ids=["messages", "no-messages"])
def test_openinference_python_json_bodies_read_as_question_and_answer(messages):
    span = normalize_span(payloads.openinference_python_chat_json(messages=messages))

    # The last user turn, not the earlier one; the answer, not the chat.completion JSON.
    assert (span.input, span.output) == REFUND_IO
    assert span.kind == "llm"


@pytest.mark.parametrize("mime_type", [True, False], ids=["mime", "no-mime"])
@pytest.mark.parametrize("messages", [True, False], ids=["messages", "no-messages"])
def test_openinference_js_json_bodies_read_as_question_and_answer(mime_type, messages):
    raw = payloads.openinference_js_chat_json(mime_type=mime_type, messages=messages)

    span = normalize_span(raw)

    assert (span.input, span.output) == REFUND_IO


BODY_SHAPES = {
    "chat-multimodal": (
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "developer", "content": "Describe images."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is in this picture?"},
                        {"type": "image_url", "image_url": {"url": "https://x/c.png"}},
                    ],
                },
            ],
        },
        {
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "A cat."},
                    "finish_reason": "stop",
                }
            ],
        },
        ("What is in this picture?\n[image]", "A cat."),
    ),
    "chat-tool-calls": (
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "What's the weather in Paris?"}],
            "tools": [{"type": "function", "function": {"name": "get_weather"}}],
        },
        {
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_Xy12",
                                "type": "function",
                                "function": {
                                    "name": "get_weather",
                                    "arguments": '{"city": "Paris"}',
                                },
                            }
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ],
        },
        ("What's the weather in Paris?", 'get_weather({"city": "Paris"})'),
    ),
    "responses-string": (
        {"model": "gpt-4.1", "instructions": "Be brief.", "input": "Capital of Peru?"},
        {
            "object": "response",
            "output": [
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [
                        {"type": "output_text", "text": "Lima.", "annotations": []}
                    ],
                },
            ],
        },
        ("Capital of Peru?", "Lima."),
    ),
    "responses-items": (
        {
            "model": "gpt-4.1",
            "input": [
                {"role": "user", "content": "Weather in Oslo?"},
                {
                    "type": "function_call_output",
                    "call_id": "call_1",
                    "output": "-3C",
                },
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "And in Rome?"}],
                },
            ],
        },
        {
            "object": "response",
            "output": [
                {
                    "type": "function_call",
                    "call_id": "call_2",
                    "name": "get_weather",
                    "arguments": '{"city": "Rome"}',
                }
            ],
        },
        ("And in Rome?", 'get_weather({"city": "Rome"})'),
    ),
    "legacy-completions": (
        {"model": "gpt-3.5-turbo-instruct", "prompt": ["Say hi"], "max_tokens": 5},
        {
            "object": "text_completion",
            "choices": [{"index": 0, "text": "Hi!", "finish_reason": "stop"}],
        },
        ("Say hi", "Hi!"),
    ),
    "anthropic-messages": (
        {
            "model": "claude-sonnet-4-5",
            "system": "Be brief.",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "2+2?"}]}
            ],
        },
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "text", "text": "4"}],
            "stop_reason": "end_turn",
        },
        ("2+2?", "4"),
    ),
    "anthropic-tool-use": (
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 256,
            "messages": [{"role": "user", "content": "Weather in Oslo?"}],
        },
        {
            "type": "message",
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Oslo"},
                }
            ],
            "stop_reason": "tool_use",
        },
        ("Weather in Oslo?", 'get_weather({"city":"Oslo"})'),
    ),
}


@pytest.mark.parametrize(
    "mime_type", ["application/json", None], ids=["mime", "no-mime"]
)
@pytest.mark.parametrize("shape", BODY_SHAPES)
def test_request_and_response_bodies_without_messages_read_as_question_and_answer(
    shape, mime_type
):
    request, response, expected = BODY_SHAPES[shape]
    attributes = {
        "openinference.span.kind": "LLM",
        "input.value": json.dumps(request),
        "output.value": json.dumps(response),
    }
    if mime_type:
        attributes |= {"input.mime_type": mime_type, "output.mime_type": mime_type}

    span = normalize_span(payloads.raw_span(attributes))

    assert (span.input, span.output) == expected


def test_structured_request_and_response_values_read_as_question_and_answer():
    # An OTLP KeyValueList instead of a JSON string: the same body, already decoded.
    request, response, expected = BODY_SHAPES["chat-multimodal"]

    span = normalize_span(
        payloads.raw_span({"input.value": request, "output.value": response})
    )

    assert (span.input, span.output) == expected


def test_embedding_request_of_one_text_reads_as_that_text_and_a_batch_stays_verbatim():
    def embedding_input(texts):
        body = json.dumps({"model": "text-embedding-3-small", "input": texts})
        attributes = {"input.value": body, "input.mime_type": "application/json"}
        return body, normalize_span(payloads.raw_span(attributes)).input

    assert embedding_input("refund policy")[1] == "refund policy"
    assert embedding_input(["refund policy"])[1] == "refund policy"
    body, read = embedding_input(["refund policy", "return policy"])
    assert read == body


PLAIN_JSON = {
    "chain-kwargs": (
        {"openinference.span.kind": "CHAIN", "input.mime_type": "application/json"},
        '{"question": "What is the refund window?", "k": 3}',
        '{"answer": "30 days", "sources": ["policy.md"]}',
    ),
    "chain-input-key-without-model": (
        {"openinference.span.kind": "CHAIN"},
        '{"input": "What is the refund window?", "chat_history": []}',
        '{"output": [{"type": "message", "text": "30 days"}]}',
    ),
    "choices-that-are-not-completions": (
        {"openinference.span.kind": "TOOL"},
        '["refund", "return"]',
        '{"choices": ["refund", "return"], "object": "list"}',
    ),
    "tool-arguments-shaped-like-a-message": (
        {"openinference.span.kind": "TOOL", "tool.name": "post_message"},
        '{"role": "user", "content": "Your order shipped."}',
        '{"role": "assistant", "content": "posted"}',
    ),
    "declared-text-holding-a-chat-body": (
        {"input.mime_type": "text/plain", "output.mime_type": "text/plain"},
        json.dumps({"messages": [{"role": "user", "content": "verbatim"}]}),
        json.dumps({"choices": [{"message": {"content": "verbatim"}}]}),
    ),
    "llm-text-that-only-starts-like-json": (
        {
            "openinference.span.kind": "LLM",
            "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.content": "Paris weather?",
            "llm.output_messages.0.message.content": "Sunny.",
        },
        "{city} weather?",
        "[sunny] as usual",
    ),
}


@pytest.mark.parametrize("case", PLAIN_JSON)
def test_json_that_is_not_a_chat_body_stays_verbatim(case):
    extra, input_text, output_text = PLAIN_JSON[case]

    span = normalize_span(
        payloads.raw_span(
            {**extra, "input.value": input_text, "output.value": output_text}
        )
    )

    assert (span.input, span.output) == (input_text, output_text)


INGESTED_SHAPES = {
    # openinference-instrumentation-openai alone: the LLM span is the root.
    "python-root": (payloads.openinference_python_chat_json, False),
    # The Node emitter's shape: an app span without input/output around the LLM span.
    "js-child-no-mime": (
        lambda: payloads.openinference_js_chat_json(mime_type=False),
        True,
    ),
}


@pytest.mark.parametrize("shape", INGESTED_SHAPES)
def test_ingested_json_bodies_give_the_trace_question_and_answer_previews(
    client, world, shape
):
    build, with_parent = INGESTED_SHAPES[shape]
    raw = build()
    trace_id = otlp.new_trace_id()
    llm = otlp.span("ChatCompletion", trace_id=trace_id, attributes=raw.attributes)
    spans = [llm]
    if with_parent:
        parent = otlp.span(
            "support-chat",
            trace_id=trace_id,
            start=otlp.BASE_NS - otlp.MS,
            end=otlp.BASE_NS + 2 * otlp.MS,
            attributes={"session.id": "sess-1"},
        )
        llm["parent"] = parent["span_id"]
        spans.append(parent)

    response = client.post(
        "/v1/traces",
        data=otlp.encode_traces(spans, otlp.PROTOBUF),
        content_type=otlp.PROTOBUF,
        HTTP_AUTHORIZATION=f"Bearer {world.key.secret_key}",
    )

    assert response.status_code == 200, response.content
    trace = Trace.objects.get(project=world.project, trace_id=trace_id)
    assert (trace.input, trace.output) == REFUND_IO
    row = Span.objects.get(project=world.project, span_id=llm["span_id"])
    assert (row.input, row.output) == REFUND_IO
    # The raw request and response JSON stay on the span, in its stored attributes.
    for key in ("input.value", "output.value"):
        assert row.attributes[key] == raw.attributes[key]


def test_openllmetry_chat_maps_every_field():
    span = normalize_span(payloads.openllmetry_chat_with_tools())

    assert span.kind == "llm"
    assert (span.provider, span.model) == ("OpenAI", "gpt-4o-2024-08-06")
    assert (
        span.input_tokens,
        span.output_tokens,
        span.total_tokens,
        span.cached_tokens,
    ) == (150, 30, 180, 0)
    assert span.input == "Book me a flight to Rome and a hotel."
    assert span.params == {
        "temperature": 0.7,
        "max_tokens": 500,
        "frequency_penalty": 0.5,
    }
    assert span.finish_reason == "tool_calls"
    assert (span.session_id, span.user_id) == ("sess-9", "alice")
    assert span.metadata == {"tenant": "acme"}
    assert span.trace_name == "trip_planner"
    assert (span.prompt_name, span.prompt_version) == ("travel-agent", "3")
    assert span.prompt_template == "Book {{ what }}"
    assert span.prompt_variables == {"what": "a flight"}
    assert span.service_name == "support-bot"


def test_openllmetry_completion_tool_calls_are_normalised():
    span = normalize_span(payloads.openllmetry_chat_with_tools())

    assert span.messages[-1] == {
        "role": "assistant",
        "content": "",
        "source": "output",
        "finish_reason": "tool_calls",
        "tool_calls": [
            {"id": "call_2", "name": "book_flight", "arguments": '{"flight": "AZ611"}'},
            {"id": "call_3", "name": "search_hotels", "arguments": '{"city": "Rome"}'},
        ],
    }
    # No text output: the output preview summarises the calls.
    assert (
        span.output
        == 'book_flight({"flight": "AZ611"})\nsearch_hotels({"city": "Rome"})'
    )


def test_openllmetry_prompt_history_keeps_tool_calls_and_tool_results():
    span = normalize_span(payloads.openllmetry_chat_with_tools())

    assert span.messages[:4] == [
        {"role": "system", "content": "You are a travel agent.", "source": "input"},
        {
            "role": "user",
            "content": "Book me a flight to Rome and a hotel.",
            "source": "input",
        },
        {
            "role": "assistant",
            "content": "",
            "source": "input",
            "tool_calls": [
                {"id": "call_1", "name": "search_flights", "arguments": '{"to": "FCO"}'}
            ],
        },
        {
            "role": "tool",
            "content": '[{"flight": "AZ611"}]',
            "source": "input",
            "tool_call_id": "call_1",
        },
    ]


def test_openllmetry_multimodal_prompt_content_json_is_flattened_to_text():
    content = json.dumps(
        [
            {"type": "text", "text": "Describe"},
            {"type": "image_url", "image_url": {"url": "x"}},
        ]
    )
    span = normalize_span(
        payloads.raw_span(
            {"gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": content}
        )
    )

    assert span.messages == [
        {"role": "user", "content": "Describe\n[image]", "source": "input"}
    ]


def test_openllmetry_workflow_span_is_a_chain_with_entity_io():
    span = normalize_span(payloads.openllmetry_workflow())

    assert span.kind == "chain"
    assert span.input == '{"args": ["Rome"], "kwargs": {}}'
    assert span.output == '"Booked AZ611"'
    assert span.session_id == "sess-9"
    assert span.trace_name == "trip_planner"
    assert span.model is None
    assert span.messages == []


def test_openai_v2_span_without_content_maps_usage_and_finish_reason():
    span = normalize_span(payloads.openai_v2_chat_span())

    assert span.kind == "llm"
    assert (span.provider, span.model) == ("openai", "gpt-4o-mini-2024-07-18")
    assert (span.input_tokens, span.output_tokens, span.total_tokens) == (24, 9, 33)
    assert span.finish_reason == "stop"
    assert span.params == {"temperature": 0.0, "seed": 42}
    assert span.messages == []
    assert (span.input, span.output) == (None, None)


def test_openai_v2_log_events_become_normalized_messages():
    messages = messages_from_log_events(payloads.openai_v2_log_events())

    assert messages == [
        {"role": "system", "content": "You are terse.", "source": "input"},
        {"role": "user", "content": "Weather in Oslo?", "source": "input"},
        {
            "role": "assistant",
            "content": "",
            "source": "input",
            "tool_calls": [
                {
                    "id": "call_w1",
                    "name": "get_weather",
                    "arguments": '{"city": "Oslo"}',
                }
            ],
        },
        {
            "role": "tool",
            "content": "-3C, snow",
            "source": "input",
            "tool_call_id": "call_w1",
        },
        {
            "role": "assistant",
            "content": "Snowy, -3C.",
            "source": "output",
            "finish_reason": "stop",
        },
    ]


def test_log_events_without_captured_content_keep_the_turn_structure():
    events = [
        ("gen_ai.user.message", None, {}),
        (
            "gen_ai.choice",
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant"}},
            {},
        ),
    ]

    assert messages_from_log_events(events) == [
        {"role": "user", "content": "", "source": "input"},
        {
            "role": "assistant",
            "content": "",
            "source": "output",
            "finish_reason": "stop",
        },
    ]


def test_inference_operation_details_event_becomes_normalized_messages():
    messages = messages_from_log_events([payloads.operation_details_event()])

    assert messages == [
        {"role": "system", "content": "Be brief.", "source": "input"},
        {"role": "user", "content": "2+2?", "source": "input"},
        {
            "role": "assistant",
            "content": "4",
            "source": "output",
            "finish_reason": "stop",
        },
    ]


def test_log_events_ignore_unknown_events_and_junk_records():
    events = [
        ("gen_ai.evaluation.result", {"x": 1}, {}),
        ("gen_ai.user.message", ["not", "a", "dict"], None),
        42,
    ]

    assert messages_from_log_events(events) == [
        {"role": "user", "content": "", "source": "input"}
    ]


def test_message_events_attached_to_the_span_fill_messages():
    name, _, attributes = payloads.operation_details_event()
    raw = payloads.openai_v2_chat_span()
    raw.events = [RawEvent(name=name, time_ns=1, attributes=attributes)]

    span = normalize_span(raw)

    assert [m["content"] for m in span.messages] == ["Be brief.", "2+2?", "4"]
    assert (span.input, span.output) == ("2+2?", "4")


def test_genai_current_structured_messages_map_every_field():
    span = normalize_span(payloads.genai_current_structured())

    assert span.kind == "llm"
    assert (span.provider, span.model) == ("anthropic", "claude-3-5-sonnet-20241022")
    # gen_ai.usage.input_tokens already includes cached tokens: nothing is added.
    assert (span.input_tokens, span.cached_tokens, span.cache_creation_tokens) == (
        1200,
        1000,
        100,
    )
    assert (span.output_tokens, span.reasoning_tokens, span.total_tokens) == (
        150,
        40,
        1350,
    )
    assert span.messages == [
        {"role": "system", "content": "You are a careful analyst.", "source": "input"},
        {
            "role": "user",
            "content": "Summarise this chart.\n[image]",
            "source": "input",
        },
        {
            "role": "assistant",
            "content": "",
            "source": "input",
            "tool_calls": [
                {"id": "toolu_1", "name": "fetch_data", "arguments": '{"q":"sales"}'}
            ],
        },
        {
            "role": "tool",
            "content": "[1, 2, 3]",
            "source": "input",
            "tool_call_id": "toolu_1",
        },
        # reasoning parts are not message content
        {
            "role": "assistant",
            "content": "Sales grew steadily.",
            "source": "output",
            "finish_reason": "stop",
        },
    ]
    assert span.input == "Summarise this chart.\n[image]"
    assert span.output == "Sales grew steadily."
    assert span.params == {
        "max_tokens": 1024,
        "top_k": 40,
        "stop_sequences": ["\n\nHuman:"],
    }
    # The span-level finish_reasons attribute beats the per-message one.
    assert span.finish_reason == "end_turn"
    assert span.session_id == "conv-77"
    assert (span.environment, span.release, span.service_name) == (
        "production",
        "2.1.0",
        "analyst",
    )
    assert span.cost_usd is None


def test_genai_current_json_string_messages_parse_like_structured_ones():
    span = normalize_span(payloads.genai_current_json_strings())

    assert span.messages == [
        {"role": "system", "content": "Be kind.", "source": "input"},
        {"role": "user", "content": "Hi there", "source": "input"},
        {
            "role": "assistant",
            "content": "",
            "source": "output",
            "finish_reason": "tool_call",
            "tool_calls": [{"id": "call_9", "name": "lookup", "arguments": '{"k":1}'}],
        },
    ]
    assert (span.input, span.output) == ("Hi there", 'lookup({"k":1})')
    assert span.total_tokens == 52
    assert span.finish_reason == "tool_call"


def test_langfuse_generation_maps_every_field():
    span = normalize_span(payloads.langfuse_generation())

    assert span.kind == "llm"
    assert (span.provider, span.model) == (None, "gpt-4o")
    # Langfuse's "input" excludes cache reads; ours includes them.
    assert (
        span.input_tokens,
        span.cached_tokens,
        span.output_tokens,
        span.total_tokens,
    ) == (150, 50, 20, 170)
    assert span.cost_usd == Decimal("0.0005125")
    # The observation input/output hold chat JSON: shown as the question and answer.
    assert (span.input, span.output) == ("Hi", "Hello!")
    assert span.messages == [
        {"role": "user", "content": "Hi", "source": "input"},
        {"role": "assistant", "content": "Hello!", "source": "output"},
    ]
    assert span.params == {"temperature": 0.1, "max_tokens": 300}
    assert (span.prompt_name, span.prompt_version) == ("greeter", "2")
    assert span.trace_name == "greeting-flow"
    assert (span.user_id, span.session_id) == ("u-1", "s-1")
    assert span.tags == ["greeting", "v2"]
    assert span.metadata == {
        "plan": "pro",
        "flags": {"beta": True},
        "step": "answer",
        "retries": 1,
    }
    # Span attributes win over resource attributes.
    assert (span.environment, span.release, span.service_name) == (
        "staging",
        "v1.4.0",
        "greeter",
    )


def test_langfuse_prefixed_user_and_session_ids_are_read():
    span = normalize_span(
        payloads.raw_span({"langfuse.user.id": "u-2", "langfuse.session.id": "s-2"})
    )

    assert (span.user_id, span.session_id) == ("u-2", "s-2")


def test_langfuse_observation_types_map_to_kinds():
    kinds = {
        value: normalize_span(
            payloads.raw_span({"langfuse.observation.type": value})
        ).kind
        for value in (
            "generation",
            "span",
            "agent",
            "tool",
            "retriever",
            "embedding",
            "evaluator",
            "guardrail",
            "event",
        )
    }

    assert kinds == {
        "generation": "llm",
        "span": "chain",
        "agent": "agent",
        "tool": "tool",
        "retriever": "retriever",
        "embedding": "embedding",
        "evaluator": "evaluator",
        "guardrail": "guardrail",
        "event": "unknown",
    }


def test_retriever_documents_are_mapped_in_order_with_scores_and_metadata():
    span = normalize_span(payloads.retriever_with_documents())

    assert span.kind == "retriever"
    assert span.input == "refund policy for damaged items"
    assert span.documents == [
        {
            "id": "doc-1",
            "content": "Damaged items are refunded in full.",
            "score": 0.92,
            "metadata": {"source": "policy.md", "page": 3},
        },
        {
            "id": "doc-2",
            "content": "Refunds take 5 business days.",
            "score": 0.81,
            "metadata": {},
        },
        {
            "id": "doc-3",
            "content": "Contact support for returns.",
            "score": 0.55,
            "metadata": {},
        },
    ]


def test_genai_tool_span_maps_name_arguments_and_result():
    span = normalize_span(payloads.genai_tool_execution())

    assert span.kind == "tool"
    assert span.tool_name == "get_weather"
    assert span.input == '{"city": "Paris"}'
    assert span.output == '{"temp_c": 18}'
    assert span.messages == [] and span.model is None


def test_openinference_tool_span_uses_input_value_not_the_parameter_schema():
    span = normalize_span(payloads.openinference_tool())

    assert (span.kind, span.tool_name) == ("tool", "calculator")
    assert (span.input, span.output) == ('{"a": 1, "b": 2}', "3")


def test_resource_attributes_fill_environment_release_and_service():
    resource = {
        "service.name": "api",
        "service.version": "1.2.3",
        "deployment.environment": "prod",
    }

    span = normalize_span(payloads.raw_span({}, resource=resource))

    assert (span.service_name, span.release, span.environment) == (
        "api",
        "1.2.3",
        "prod",
    )


def test_span_attributes_win_over_resource_attributes():
    resource = {
        "service.name": "api",
        "deployment.environment.name": "prod",
        "service.version": "1",
    }
    attributes = {"deployment.environment.name": "canary", "langfuse.release": "2"}

    span = normalize_span(payloads.raw_span(attributes, resource=resource))

    assert (span.environment, span.release, span.service_name) == ("canary", "2", "api")


def test_genai_operation_names_map_to_kinds():
    expected = {
        "chat": "llm",
        "text_completion": "llm",
        "generate_content": "llm",
        "embeddings": "embedding",
        "retrieval": "retriever",
        "execute_tool": "tool",
        "invoke_agent": "agent",
        "create_agent": "agent",
        "invoke_workflow": "chain",
    }
    kinds = {
        op: normalize_span(payloads.raw_span({"gen_ai.operation.name": op})).kind
        for op in expected
    }

    assert kinds == expected


def test_openllmetry_request_types_and_span_kinds_map_to_kinds():
    request_types = {
        "chat": "llm",
        "completion": "llm",
        "embedding": "embedding",
        "rerank": "reranker",
    }
    span_kinds = {
        "workflow": "chain",
        "task": "chain",
        "agent": "agent",
        "tool": "tool",
    }

    assert {
        k: normalize_span(payloads.raw_span({"llm.request.type": k})).kind
        for k in request_types
    } == request_types
    assert {
        k: normalize_span(payloads.raw_span({"traceloop.span.kind": k})).kind
        for k in span_kinds
    } == span_kinds


def test_openinference_span_kinds_map_to_kinds_and_prompt_is_a_chain():
    values = [
        "LLM",
        "EMBEDDING",
        "CHAIN",
        "RETRIEVER",
        "RERANKER",
        "TOOL",
        "AGENT",
        "GUARDRAIL",
        "EVALUATOR",
    ]
    kinds = [
        normalize_span(payloads.raw_span({"openinference.span.kind": v})).kind
        for v in values
    ]

    assert kinds == [v.lower() for v in values]
    assert (
        normalize_span(payloads.raw_span({"openinference.span.kind": "PROMPT"})).kind
        == "chain"
    )
    assert (
        normalize_span(payloads.raw_span({"openinference.span.kind": "UNKNOWN"})).kind
        == "unknown"
    )


def test_span_with_model_and_usage_but_no_kind_attribute_is_an_llm_span():
    span = normalize_span(
        payloads.raw_span(
            {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 3}
        )
    )

    assert span.kind == "llm"


def test_span_without_any_llm_attribute_is_unknown():
    assert normalize_span(payloads.raw_span({"http.method": "GET"})).kind == "unknown"


def test_numeric_strings_are_coerced_and_junk_numbers_become_none():
    span = normalize_span(
        payloads.raw_span(
            {
                "gen_ai.usage.input_tokens": "12",
                "gen_ai.usage.output_tokens": "abc",
                "gen_ai.usage.cache_read.input_tokens": -5,
                "gen_ai.usage.reasoning.output_tokens": float("nan"),
                "llm.cost.total": "not-a-number",
            }
        )
    )

    assert (
        span.input_tokens,
        span.output_tokens,
        span.cached_tokens,
        span.reasoning_tokens,
    ) == (12, None, None, None)
    assert span.total_tokens is None  # output unknown, so no derived total
    assert span.cost_usd is None


def test_a_bad_value_falls_through_to_the_next_candidate_key():
    span = normalize_span(
        payloads.raw_span(
            {"gen_ai.usage.input_tokens": "abc", "llm.token_count.prompt": 7}
        )
    )

    assert span.input_tokens == 7


def test_gaps_and_huge_indexes_in_flattened_messages_are_tolerated():
    span = normalize_span(
        payloads.raw_span(
            {
                "gen_ai.prompt.0.role": "user",
                "gen_ai.prompt.0.content": "first",
                "gen_ai.prompt.7.role": "user",
                "gen_ai.prompt.7.content": "after a gap",
                "gen_ai.prompt.99999999999999999999.content": "huge index",
                "gen_ai.prompt.x.content": "not an index",
                "gen_ai.prompt.².content": "unicode digit",
            }
        )
    )

    assert [m["content"] for m in span.messages] == ["first", "after a gap"]
    assert span.input == "after a gap"


def test_wrong_typed_attributes_do_not_drop_the_rest_of_the_span():
    span = normalize_span(
        payloads.raw_span(
            {
                "gen_ai.request.model": ["not", "a", "string"],
                "gen_ai.input.messages": "{not json",
                "gen_ai.output.messages": 12,
                "tag.tags": {"a": 1},
                "metadata": "[1, 2",
                "llm.invocation_parameters": "garbage",
                "retrieval.documents.0.document.score": "high",
                "session.id": "sess-ok",
                "gen_ai.usage.input_tokens": 5,
            }
        )
    )

    assert span.model is None
    assert span.session_id == "sess-ok"
    assert span.input_tokens == 5
    assert span.documents == [
        {"id": None, "content": None, "score": None, "metadata": {}}
    ]
    assert span.metadata == {"metadata": "[1, 2"}


def test_over_long_identifiers_are_truncated_to_their_column_width():
    span = normalize_span(
        payloads.raw_span(
            {"session.id": "s" * 1000, "gen_ai.request.model": "m" * 1000}
        )
    )

    assert len(span.session_id) == 256
    assert len(span.model) == 256


def test_nul_characters_and_non_finite_floats_never_reach_the_database():
    span = normalize_span(
        payloads.raw_span(
            {
                "input.value": "a\x00b",
                "gen_ai.request.temperature": float("inf"),
                "langfuse.trace.metadata.x": "y\x00",
            }
        )
    )

    assert span.input == "ab"
    assert span.params == {}
    assert span.metadata == {"x": "y"}


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(
        [
            "[",
            "{",
            "[{",
            '{"a":',
            "[1,",
            "12",
            "abc",
            "NaN",
            "1e400",
            '[{"type":"text"}]',
        ]
    ),
)
_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.text(max_size=8), st.integers()), children, max_size=4
        ),
    ),
    max_leaves=12,
)
_known_keys = st.sampled_from(
    [
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.response.finish_reasons",
        "gen_ai.usage.input_tokens",
        "gen_ai.request.model",
        "gen_ai.request.temperature",
        "gen_ai.retrieval.documents",
        "gen_ai.prompt.0.content",
        "gen_ai.prompt.1.tool_calls.0.arguments",
        "gen_ai.completion.0.role",
        "llm.input_messages.0.message.contents.0.message_content.text",
        "llm.output_messages.3.message.tool_calls.0.tool_call.function.arguments",
        "llm.invocation_parameters",
        "llm.cost.total",
        "llm.token_count.prompt",
        "retrieval.documents.0.document.metadata",
        "traceloop.association.properties.session_id",
        "langfuse.observation.usage_details",
        "langfuse.observation.cost_details",
        "langfuse.observation.input",
        "langfuse.observation.type",
        "langfuse.trace.tags",
        "langfuse.trace.metadata.x",
        "openinference.span.kind",
        "metadata",
        "tag.tags",
        "input.value",
    ]
)
_keys = st.one_of(
    _known_keys, st.text(max_size=40), _known_keys.map(lambda k: k + ".9")
)


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    attributes=st.dictionaries(_keys, _values, max_size=12),
    resource=st.dictionaries(_keys, _values, max_size=3),
)
def test_arbitrary_attributes_never_raise(attributes, resource):
    span = normalize_span(payloads.raw_span(attributes, resource=resource))

    assert isinstance(span, NormalizedSpan)
    assert span.kind in {
        "llm",
        "chain",
        "retriever",
        "tool",
        "agent",
        "embedding",
        "reranker",
        "guardrail",
        "evaluator",
        "unknown",
    }
    for message in span.messages:
        assert isinstance(message["content"], str)
        assert message["source"] in ("input", "output")
    assert span.input is None or isinstance(span.input, str)


@settings(max_examples=200, deadline=None, database=None)
@given(
    events=st.lists(
        st.tuples(
            st.one_of(
                st.sampled_from(
                    sorted(
                        {
                            "gen_ai.system.message",
                            "gen_ai.user.message",
                            "gen_ai.assistant.message",
                            "gen_ai.tool.message",
                            "gen_ai.choice",
                            "gen_ai.client.inference.operation.details",
                        }
                    )
                ),
                st.text(max_size=10),
            ),
            _values,
            st.dictionaries(_keys, _values, max_size=4),
        ),
        max_size=5,
    )
)
def test_arbitrary_log_events_never_raise(events):
    messages = messages_from_log_events(events)

    assert all(isinstance(m["content"], str) for m in messages)
