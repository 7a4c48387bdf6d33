"""Small hand-built OTLP requests (protobuf and OTLP/JSON) for integration tests."""

from __future__ import annotations

import os
import time
from typing import Any

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


def new_trace_id() -> str:
    return os.urandom(16).hex()


def new_span_id() -> str:
    return os.urandom(8).hex()


def _any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=str(value))


def llm_span_request(*, trace_id: str | None = None, span_id: str | None = None, input_tokens: int = 10,
                     output_tokens: int = 5, model: str = "gpt-4o-mini", service: str = "integration") -> bytes:
    """One OTel-GenAI chat span as a serialized ExportTraceServiceRequest."""
    return llm_batch_request(trace_ids=[trace_id or new_trace_id()], span_id=span_id, input_tokens=input_tokens,
                             output_tokens=output_tokens, model=model, service=service)


def llm_batch_request(*, trace_ids: list[str], span_id: str | None = None, input_tokens: int = 10,
                      output_tokens: int = 5, model: str = "gpt-4o-mini", service: str = "integration") -> bytes:
    """One OTel-GenAI chat span per trace id, all in one ExportTraceServiceRequest."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(KeyValue(key="service.name", value=_any_value(service)))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "tests.integration"
    for trace_id in trace_ids:
        _add_llm_span(scope_spans, trace_id, span_id or new_span_id(), input_tokens, output_tokens, model)
    return request.SerializeToString()


def _add_llm_span(scope_spans, trace_id: str, span_id: str, input_tokens: int, output_tokens: int,
                  model: str) -> None:
    now = time.time_ns()
    span = scope_spans.spans.add()
    span.trace_id = bytes.fromhex(trace_id)
    span.span_id = bytes.fromhex(span_id)
    span.name = f"chat {model}"
    span.kind = 3  # CLIENT
    span.start_time_unix_nano = now - 250_000_000
    span.end_time_unix_nano = now
    span.status.code = 1
    for key, value in {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
    }.items():
        span.attributes.append(KeyValue(key=key, value=_any_value(value)))


def _json_attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        # OTLP/JSON encodes int64 as a string.
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": str(value)}}


def openinference_json_request(*, trace_id: str, root_id: str, llm_id: str, question: str, answer: str,
                               input_tokens: int, output_tokens: int) -> bytes:
    """OTLP/JSON: a CHAIN root with an OpenInference LLM child (hex ids, camelCase keys)."""
    now = time.time_ns()

    def span(span_id: str, parent: str, name: str, start: int, end: int, attrs: dict[str, Any]) -> dict:
        return {
            "traceId": trace_id,
            "spanId": span_id,
            "parentSpanId": parent,
            "name": name,
            "kind": 1,
            "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(end),
            "attributes": [_json_attr(k, v) for k, v in attrs.items()],
            "status": {"code": 1},
        }

    root = span(root_id, "", "answer_question", now - 900_000_000, now, {
        "openinference.span.kind": "CHAIN",
        "input.value": question,
        "output.value": answer,
        "session.id": "sess-json",
        "user.id": "user-json",
    })
    llm = span(llm_id, root_id, "ChatCompletion", now - 800_000_000, now - 100_000_000, {
        "openinference.span.kind": "LLM",
        "llm.provider": "openai",
        "llm.model_name": "gpt-4o-mini",
        "llm.token_count.prompt": input_tokens,
        "llm.token_count.completion": output_tokens,
        "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.content": question,
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": answer,
    })
    body = {
        "resourceSpans": [{
            "resource": {"attributes": [_json_attr("service.name", "json-client")]},
            "scopeSpans": [{"scope": {"name": "tests.integration.json"}, "spans": [llm, root]}],
        }]
    }
    return orjson.dumps(body)
