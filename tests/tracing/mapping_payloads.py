"""Spans as real instrumentations emit them, one builder per dialect.

Attribute names and value shapes follow the installed instrumentations
(openinference-instrumentation-openai, opentelemetry-instrumentation-openai (OpenLLMetry),
opentelemetry-instrumentation-openai-v2 / opentelemetry-util-genai) and the Langfuse v3
SDK. Shared by tests/tracing/test_mapping.py and bench/mapping.py.
"""

from __future__ import annotations

import json
from typing import Any

from tracing.otlp.types import RawEvent, RawSpan

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def raw_span(
    attributes: dict[str, Any],
    *,
    name: str = "span",
    resource: dict[str, Any] | None = None,
    events: list[RawEvent] | None = None,
    span_id: str = "00f067aa0ba902b7",
) -> RawSpan:
    return RawSpan(
        trace_id=TRACE_ID,
        span_id=span_id,
        parent_span_id=None,
        name=name,
        otel_kind=3,
        start_ns=1_750_000_000_000_000_000,
        end_ns=1_750_000_001_200_000_000,
        status_code=1,
        status_message=None,
        attributes=attributes,
        events=events or [],
        resource=resource if resource is not None else {"service.name": "support-bot"},
        scope_name=None,
        scope_version=None,
    )


WEATHER_TOOL_ARGS = '{"city": "Paris"}'


def openinference_openai_chat() -> RawSpan:
    """openinference-instrumentation-openai: chat completion that calls a tool."""
    request = {
        "messages": [
            {"role": "system", "content": "You are a weather bot."},
            {"role": "user", "content": "What's the weather in Paris?"},
        ],
        "model": "gpt-4o-mini",
        "temperature": 0.2,
        "max_tokens": 256,
    }
    response = {
        "id": "chatcmpl-AbC123",
        "object": "chat.completion",
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {"role": "assistant", "content": None},
            }
        ],
    }
    return raw_span(
        {
            "openinference.span.kind": "LLM",
            "llm.provider": "openai",
            "llm.system": "openai",
            "llm.model_name": "gpt-4o-mini-2024-07-18",
            "input.value": json.dumps(request),
            "input.mime_type": "application/json",
            "output.value": json.dumps(response),
            "output.mime_type": "application/json",
            "llm.invocation_parameters": '{"model": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 256}',
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": "You are a weather bot.",
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.content": "What's the weather in Paris?",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_Xy12",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "get_weather",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": WEATHER_TOOL_ARGS,
            "llm.tools.0.tool.json_schema": '{"type": "function", "function": {"name": "get_weather"}}',
            "llm.token_count.prompt": 85,
            "llm.token_count.completion": 18,
            "llm.token_count.total": 103,
            "llm.token_count.prompt_details.cache_read": 64,
            "llm.token_count.completion_details.reasoning": 0,
            "llm.finish_reason": "tool_calls",
            "session.id": "sess-42",
            "user.id": "user-7",
            "tag.tags": ["prod", "weather"],
            "metadata": '{"tier": "pro", "experiment": {"arm": "b"}}',
            "llm.prompt_template.template": "Weather in {city}?",
            "llm.prompt_template.variables": '{"city": "Paris"}',
            "llm.prompt_template.version": "v3",
        },
        name="ChatCompletion",
        resource={
            "service.name": "weather-api",
            "openinference.project.name": "weather",
        },
    )


REFUND_QUESTION = "What is the refund window?"
REFUND_ANSWER = "You can return an item within 30 days of delivery."


def refund_chat_request() -> dict[str, Any]:
    """A Chat Completions request: a system prompt, an earlier turn, the question."""
    return {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You answer questions about our shop."},
            {"role": "user", "content": "Hi, I bought a kettle last week."},
            {"role": "assistant", "content": "Thanks! How can I help?"},
            {"role": "user", "content": REFUND_QUESTION},
        ],
        "temperature": 0.2,
    }


def refund_chat_response() -> dict[str, Any]:
    """The chat.completion body the openai client returns for refund_chat_request()."""
    return {
        "id": "chatcmpl-Rf42",
        "object": "chat.completion",
        "created": 1750000001,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": REFUND_ANSWER,
                    "refusal": None,
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 41, "completion_tokens": 12, "total_tokens": 53},
        "system_fingerprint": "fp_rf",
    }


def _openinference_refund_messages() -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for n, message in enumerate(refund_chat_request()["messages"]):
        attributes[f"llm.input_messages.{n}.message.role"] = message["role"]
        attributes[f"llm.input_messages.{n}.message.content"] = message["content"]
    attributes["llm.output_messages.0.message.role"] = "assistant"
    attributes["llm.output_messages.0.message.content"] = REFUND_ANSWER
    return attributes


def openinference_python_chat_json(*, messages: bool = True) -> RawSpan:
    """openinference-instrumentation-openai (Python): the request as json.dumps of the
    params, the response as the pydantic model's compact JSON, both application/json.
    messages=False is OPENINFERENCE_HIDE_INPUT_MESSAGES / _OUTPUT_MESSAGES: the bodies
    stay, the flattened llm.*_messages go."""
    return raw_span(
        {
            "openinference.span.kind": "LLM",
            "llm.provider": "openai",
            "llm.system": "openai",
            "llm.model_name": "gpt-4o-mini-2024-07-18",
            "input.value": json.dumps(refund_chat_request(), ensure_ascii=False),
            "input.mime_type": "application/json",
            "output.value": json.dumps(refund_chat_response(), separators=(",", ":")),
            "output.mime_type": "application/json",
            "llm.invocation_parameters": '{"model": "gpt-4o-mini", "temperature": 0.2}',
            **(_openinference_refund_messages() if messages else {}),
            "llm.token_count.prompt": 41,
            "llm.token_count.completion": 12,
            "llm.token_count.total": 53,
        },
        name="ChatCompletion",
    )


def openinference_js_chat_json(
    *, mime_type: bool = True, messages: bool = True
) -> RawSpan:
    """@arizeai/openinference-instrumentation-openai: JSON.stringify of the request body
    and of the ChatCompletion result. mime_type=False is what emitters that drop
    input/output.mime_type send."""
    attributes: dict[str, Any] = {
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o-mini-2024-07-18",
        "input.value": json.dumps(refund_chat_request(), separators=(",", ":")),
        "input.mime_type": "application/json",
        "llm.invocation_parameters": '{"model":"gpt-4o-mini","temperature":0.2}',
        "llm.system": "openai",
        "llm.provider": "openai",
        **(_openinference_refund_messages() if messages else {}),
        "output.value": json.dumps(refund_chat_response(), separators=(",", ":")),
        "output.mime_type": "application/json",
        "llm.token_count.prompt": 41,
        "llm.token_count.completion": 12,
        "llm.token_count.total": 53,
    }
    if not mime_type:
        del attributes["input.mime_type"], attributes["output.mime_type"]
    return raw_span(attributes, name="OpenAI Chat Completions")


def openinference_multimodal_chat() -> RawSpan:
    """OpenInference message with structured contents (text + image) and a cost."""
    return raw_span(
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o",
            "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.contents.0.message_content.type": "text",
            "llm.input_messages.0.message.contents.0.message_content.text": "What is in this picture?",
            "llm.input_messages.0.message.contents.1.message_content.type": "image",
            "llm.input_messages.0.message.contents.1.message_content.image.image.url": "https://x/cat.png",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": "A cat.",
            "llm.cost.prompt": 0.0004,
            "llm.cost.completion": 0.0001,
        },
        name="ChatCompletion",
    )


def openllmetry_chat_with_tools() -> RawSpan:
    """traceloop-sdk / opentelemetry-instrumentation-openai before the move to
    gen_ai.input.messages: flattened gen_ai.prompt.N / gen_ai.completion.N."""
    return raw_span(
        {
            "llm.request.type": "chat",
            "gen_ai.system": "OpenAI",
            "gen_ai.request.model": "gpt-4o",
            "llm.headers": "None",
            "llm.is_streaming": False,
            "gen_ai.openai.api_base": "https://api.openai.com/v1/",
            "gen_ai.request.temperature": 0.7,
            "gen_ai.request.max_tokens": 500,
            "llm.frequency_penalty": 0.5,
            "gen_ai.prompt.0.role": "system",
            "gen_ai.prompt.0.content": "You are a travel agent.",
            "gen_ai.prompt.1.role": "user",
            "gen_ai.prompt.1.content": "Book me a flight to Rome and a hotel.",
            "gen_ai.prompt.2.role": "assistant",
            "gen_ai.prompt.2.tool_calls.0.id": "call_1",
            "gen_ai.prompt.2.tool_calls.0.name": "search_flights",
            "gen_ai.prompt.2.tool_calls.0.arguments": '{"to": "FCO"}',
            "gen_ai.prompt.3.role": "tool",
            "gen_ai.prompt.3.content": '[{"flight": "AZ611"}]',
            "gen_ai.prompt.3.tool_call_id": "call_1",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.response.id": "chatcmpl-9x",
            "gen_ai.openai.system_fingerprint": "fp_1",
            "llm.usage.total_tokens": 180,
            "gen_ai.usage.completion_tokens": 30,
            "gen_ai.usage.prompt_tokens": 150,
            "gen_ai.usage.cache_read_input_tokens": 0,
            "gen_ai.completion.0.finish_reason": "tool_calls",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.tool_calls.0.id": "call_2",
            "gen_ai.completion.0.tool_calls.0.name": "book_flight",
            "gen_ai.completion.0.tool_calls.0.arguments": '{"flight": "AZ611"}',
            "gen_ai.completion.0.tool_calls.1.id": "call_3",
            "gen_ai.completion.0.tool_calls.1.name": "search_hotels",
            "gen_ai.completion.0.tool_calls.1.arguments": '{"city": "Rome"}',
            "traceloop.workflow.name": "trip_planner",
            "traceloop.association.properties.session_id": "sess-9",
            "traceloop.association.properties.user_id": "alice",
            "traceloop.association.properties.tenant": "acme",
            "traceloop.prompt.managed": True,
            "traceloop.prompt.key": "travel-agent",
            "traceloop.prompt.version": 3,
            "traceloop.prompt.version_hash": "c0ffee",
            "traceloop.prompt.template": "Book {{ what }}",
            "traceloop.prompt.template_variables": '{"what": "a flight"}',
        },
        name="openai.chat",
    )


def openllmetry_workflow() -> RawSpan:
    """A traceloop @workflow span: no model, entity input/output as JSON strings."""
    return raw_span(
        {
            "traceloop.span.kind": "workflow",
            "traceloop.workflow.name": "trip_planner",
            "traceloop.entity.name": "trip_planner",
            "traceloop.entity.input": '{"args": ["Rome"], "kwargs": {}}',
            "traceloop.entity.output": '"Booked AZ611"',
            "traceloop.association.properties.session_id": "sess-9",
        },
        name="trip_planner.workflow",
    )


def openai_v2_chat_span() -> RawSpan:
    """opentelemetry-instrumentation-openai-v2: content is not on the span."""
    return raw_span(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.request.temperature": 0.0,
            "gen_ai.request.seed": 42,
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.response.id": "chatcmpl-B1",
            "gen_ai.response.finish_reasons": ("stop",),
            "gen_ai.usage.input_tokens": 24,
            "gen_ai.usage.output_tokens": 9,
            "server.address": "api.openai.com",
        },
        name="chat gpt-4o-mini",
    )


def openai_v2_log_events() -> list[tuple[str, Any, dict]]:
    """The log records openai-v2 emits with content capture on, time-sorted."""
    system = {"gen_ai.system": "openai"}
    return [
        ("gen_ai.system.message", {"content": "You are terse."}, system),
        ("gen_ai.user.message", {"content": "Weather in Oslo?"}, system),
        (
            "gen_ai.assistant.message",
            {
                "tool_calls": [
                    {
                        "id": "call_w1",
                        "type": "function",
                        "function": {
                            "name": "get_weather",
                            "arguments": '{"city": "Oslo"}',
                        },
                    }
                ]
            },
            system,
        ),
        ("gen_ai.tool.message", {"content": "-3C, snow", "id": "call_w1"}, system),
        (
            "gen_ai.choice",
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "Snowy, -3C."},
            },
            system,
        ),
    ]


def operation_details_event() -> tuple[str, Any, dict]:
    """util-genai's single gen_ai.client.inference.operation.details event (structured)."""
    return (
        "gen_ai.client.inference.operation.details",
        None,
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system_instructions": [{"type": "text", "content": "Be brief."}],
            "gen_ai.input.messages": [
                {"role": "user", "parts": [{"type": "text", "content": "2+2?"}]}
            ],
            "gen_ai.output.messages": [
                {
                    "role": "assistant",
                    "parts": [{"type": "text", "content": "4"}],
                    "finish_reason": "stop",
                }
            ],
        },
    )


def genai_current_structured() -> RawSpan:
    """OTel GenAI current conventions with structured (KeyValueList/ArrayValue) messages."""
    return raw_span(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-3-5-sonnet-20241022",
            "gen_ai.response.model": "claude-3-5-sonnet-20241022",
            "gen_ai.request.max_tokens": 1024,
            "gen_ai.request.top_k": 40,
            "gen_ai.request.stop_sequences": ["\n\nHuman:"],
            "gen_ai.conversation.id": "conv-77",
            "gen_ai.usage.input_tokens": 1200,
            "gen_ai.usage.cache_read.input_tokens": 1000,
            "gen_ai.usage.cache_creation.input_tokens": 100,
            "gen_ai.usage.output_tokens": 150,
            "gen_ai.usage.reasoning.output_tokens": 40,
            "gen_ai.response.finish_reasons": ["end_turn"],
            "gen_ai.system_instructions": [
                {"type": "text", "content": "You are a careful analyst."}
            ],
            "gen_ai.input.messages": [
                {
                    "role": "user",
                    "parts": [
                        {"type": "text", "content": "Summarise this chart."},
                        {
                            "type": "uri",
                            "modality": "image",
                            "mime_type": "image/png",
                            "uri": "https://x/c.png",
                        },
                    ],
                },
                {
                    "role": "assistant",
                    "parts": [
                        {
                            "type": "tool_call",
                            "id": "toolu_1",
                            "name": "fetch_data",
                            "arguments": {"q": "sales"},
                        }
                    ],
                },
                {
                    "role": "tool",
                    "parts": [
                        {
                            "type": "tool_call_response",
                            "id": "toolu_1",
                            "response": "[1, 2, 3]",
                        }
                    ],
                },
            ],
            "gen_ai.output.messages": [
                {
                    "role": "assistant",
                    "parts": [
                        {"type": "reasoning", "content": "Sales rise..."},
                        {"type": "text", "content": "Sales grew steadily."},
                    ],
                    "finish_reason": "stop",
                }
            ],
        },
        name="chat claude-3-5-sonnet",
        resource={
            "service.name": "analyst",
            "deployment.environment.name": "production",
            "service.version": "2.1.0",
        },
    )


def genai_current_json_strings() -> RawSpan:
    """The same conventions as recent OpenLLMetry emits them: JSON-encoded strings."""
    return raw_span(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 40,
            "gen_ai.usage.output_tokens": 12,
            "gen_ai.usage.total_tokens": 52,
            "gen_ai.input.messages": json.dumps(
                [
                    {
                        "role": "system",
                        "parts": [{"content": "Be kind.", "type": "text"}],
                    },
                    {
                        "role": "user",
                        "parts": [{"content": "Hi there", "type": "text"}],
                    },
                ]
            ),
            "gen_ai.output.messages": json.dumps(
                [
                    {
                        "role": "assistant",
                        "parts": [
                            {
                                "type": "tool_call",
                                "name": "lookup",
                                "id": "call_9",
                                "arguments": {"k": 1},
                            }
                        ],
                        "finish_reason": "tool_call",
                    }
                ]
            ),
        },
        name="openai.chat",
    )


def langfuse_generation() -> RawSpan:
    """Langfuse Python SDK v3 generation (its own OTel attributes)."""
    return raw_span(
        {
            "langfuse.observation.type": "generation",
            "langfuse.observation.model.name": "gpt-4o",
            "langfuse.observation.model.parameters": '{"temperature": 0.1, "max_tokens": 300}',
            "langfuse.observation.usage_details": '{"input": 100, "output": 20, "cache_read_input_tokens": 50}',
            "langfuse.observation.cost_details": '{"input": 0.0003125, "output": 0.0002, "total": 0.0005125}',
            "langfuse.observation.input": '[{"role": "user", "content": "Hi"}]',
            "langfuse.observation.output": '{"role": "assistant", "content": "Hello!"}',
            "langfuse.observation.prompt.name": "greeter",
            "langfuse.observation.prompt.version": 2,
            "langfuse.observation.metadata.step": "answer",
            "langfuse.observation.metadata.retries": 1,
            "langfuse.trace.name": "greeting-flow",
            "user.id": "u-1",
            "session.id": "s-1",
            "langfuse.trace.tags": ["greeting", "v2"],
            "langfuse.trace.metadata.plan": "pro",
            "langfuse.trace.metadata.flags": '{"beta": true}',
            "langfuse.environment": "staging",
            "langfuse.release": "v1.4.0",
            "langfuse.version": "1.4.0-rc1",
        },
        name="generate-greeting",
        resource={
            "service.name": "greeter",
            "deployment.environment": "production",
            "service.version": "9.9.9",
        },
    )


def retriever_with_documents() -> RawSpan:
    """OpenInference retriever span with three documents."""
    return raw_span(
        {
            "openinference.span.kind": "RETRIEVER",
            "input.value": "refund policy for damaged items",
            "retrieval.documents.0.document.id": "doc-1",
            "retrieval.documents.0.document.content": "Damaged items are refunded in full.",
            "retrieval.documents.0.document.score": 0.92,
            "retrieval.documents.0.document.metadata": '{"source": "policy.md", "page": 3}',
            "retrieval.documents.1.document.id": "doc-2",
            "retrieval.documents.1.document.content": "Refunds take 5 business days.",
            "retrieval.documents.1.document.score": 0.81,
            "retrieval.documents.2.document.id": "doc-3",
            "retrieval.documents.2.document.content": "Contact support for returns.",
            "retrieval.documents.2.document.score": "0.55",
        },
        name="retrieve",
    )


def genai_tool_execution() -> RawSpan:
    """OTel GenAI execute_tool span."""
    return raw_span(
        {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "get_weather",
            "gen_ai.tool.type": "function",
            "gen_ai.tool.call.id": "call_Xy12",
            "gen_ai.tool.call.arguments": WEATHER_TOOL_ARGS,
            "gen_ai.tool.call.result": '{"temp_c": 18}',
        },
        name="execute_tool get_weather",
    )


def openinference_tool() -> RawSpan:
    return raw_span(
        {
            "openinference.span.kind": "TOOL",
            "tool.name": "calculator",
            "tool.description": "Adds numbers",
            "tool.parameters": '{"type": "object", "properties": {"a": {"type": "number"}}}',
            "input.value": '{"a": 1, "b": 2}',
            "input.mime_type": "application/json",
            "output.value": "3",
        },
        name="calculator",
    )


BENCH_PAYLOADS = (
    openinference_openai_chat,
    openllmetry_chat_with_tools,
    openai_v2_chat_span,
    genai_current_structured,
    genai_current_json_strings,
    langfuse_generation,
    retriever_with_documents,
    genai_tool_execution,
)
