"""Real OTLP request bodies for tests and benchmarks, built from one neutral description.

A span is a plain dict (only trace_id, span_id and name are required):

    {"trace_id": "<32 hex>", "span_id": "<16 hex>", "parent": "<16 hex>" | None,
     "name": "chat gpt-4o", "kind": 3,                      # OTLP SpanKind enum value
     "start": <unix ns>, "end": <unix ns>,
     "attributes": {...}, "events": [{"name", "time", "attributes"}],
     "status": 0 | 1 | 2 | (code, message), "resource": {...}, "scope": ("name", "version")}

and the same list encodes to both OTLP/HTTP dialects:

    traces_protobuf(spans)  -> bytes of ExportTraceServiceRequest
    traces_json(spans)      -> bytes of OTLP/JSON (hex ids, lowerCamelCase, int64 as strings,
                               enums as integers, bytes as base64)

Ids are hex strings in the description. The JSON encoder copies them verbatim, so a test
can send a malformed id on purpose; the protobuf encoder needs valid hex ("" = absent).

Attribute values map to AnyValue by Python type: str, bool, int, float, bytes, list
(ArrayValue), dict (KeyValueList). Spans sharing a resource go in one ResourceSpans.

Log records (for POST /v1/logs) work the same way through logs_protobuf / logs_json:

    {"trace_id", "span_id", "time", "event_name", "body", "attributes", "resource"}

`llm_trace(dialect)` builds a realistic 4-span RAG trace (chain root, retriever with three
documents, tool call, LLM call) in the attribute names of one instrumentation dialect,
together with what a correct mapping must make of it.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from typing import Any

import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

# 2025-01-15T00:00:00Z: fixed, so prices (which depend on the date) are reproducible.
BASE_NS = 1_736_899_200 * 10**9
MS = 10**6

DEFAULT_SCOPE = ("tests.otlp_payloads", "1.0")

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

# OTLP SpanKind values.
SPAN_KIND_INTERNAL = 1
SPAN_KIND_SERVER = 2
SPAN_KIND_CLIENT = 3


def new_trace_id() -> str:
    return secrets.token_hex(16)


def new_span_id() -> str:
    return secrets.token_hex(8)


def span(
    name: str,
    *,
    trace_id: str,
    span_id: str | None = None,
    parent: str | None = None,
    start: int = BASE_NS,
    end: int | None = None,
    attributes: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A span description with sensible defaults (a fresh span id, 1 ms long)."""
    return {
        "trace_id": trace_id,
        "span_id": span_id if span_id is not None else new_span_id(),
        "parent": parent,
        "name": name,
        "start": start,
        "end": end if end is not None else start + MS,
        "attributes": attributes or {},
        **extra,
    }


# ---------------------------------------------------------------- grouping


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _grouped(items: list[dict[str, Any]]) -> list[tuple[dict, list[tuple[tuple[str, str], list[dict]]]]]:
    """[(resource, [(scope, [item, ...]), ...]), ...] keeping first-seen order."""
    resources: dict[Any, tuple[dict, dict[tuple[str, str], list[dict]]]] = {}
    for item in items:
        resource = item.get("resource") or {}
        scopes = resources.setdefault(_freeze(resource), (resource, {}))[1]
        scopes.setdefault(tuple(item.get("scope") or DEFAULT_SCOPE), []).append(item)
    return [(resource, list(scopes.items())) for resource, scopes in resources.values()]


def _status(item: dict[str, Any]) -> tuple[int, str]:
    status = item.get("status", 0)
    if isinstance(status, tuple):
        return status
    return status, ""


# ---------------------------------------------------------------- protobuf


def _pb_any(value: Any) -> common_pb2.AnyValue:
    any_value = common_pb2.AnyValue()
    if isinstance(value, bool):  # before int: bool is an int subclass
        any_value.bool_value = value
    elif isinstance(value, int):
        any_value.int_value = value
    elif isinstance(value, float):
        any_value.double_value = value
    elif isinstance(value, str):
        any_value.string_value = value
    elif isinstance(value, bytes):
        any_value.bytes_value = value
    elif isinstance(value, (list, tuple)):
        any_value.array_value.values.extend(_pb_any(v) for v in value)
    elif isinstance(value, dict):
        any_value.kvlist_value.values.extend(_pb_attrs(value))
    elif value is not None:
        raise TypeError(f"no AnyValue for {type(value).__name__}")
    return any_value


def _pb_attrs(attributes: dict[str, Any]) -> list[common_pb2.KeyValue]:
    return [common_pb2.KeyValue(key=key, value=_pb_any(value)) for key, value in attributes.items()]


def _pb_id(hex_id: str | None) -> bytes:
    return bytes.fromhex(hex_id) if hex_id else b""


def traces_request(spans: list[dict[str, Any]]) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for resource, scopes in _grouped(spans):
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.extend(_pb_attrs(resource))
        for (scope_name, scope_version), items in scopes:
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.name = scope_name
            scope_spans.scope.version = scope_version
            for item in items:
                code, message = _status(item)
                pb_span = scope_spans.spans.add(
                    trace_id=_pb_id(item["trace_id"]),
                    span_id=_pb_id(item["span_id"]),
                    parent_span_id=_pb_id(item.get("parent")),
                    name=item["name"],
                    kind=item.get("kind", SPAN_KIND_INTERNAL),
                    start_time_unix_nano=item.get("start", BASE_NS),
                    end_time_unix_nano=item.get("end", item.get("start", BASE_NS) + MS),
                    status=trace_pb2.Status(code=code, message=message),
                )
                pb_span.attributes.extend(_pb_attrs(item.get("attributes") or {}))
                for event in item.get("events") or []:
                    pb_event = pb_span.events.add(name=event["name"], time_unix_nano=event.get("time", BASE_NS))
                    pb_event.attributes.extend(_pb_attrs(event.get("attributes") or {}))
    return request


def traces_protobuf(spans: list[dict[str, Any]]) -> bytes:
    return traces_request(spans).SerializeToString()


def logs_request(records: list[dict[str, Any]]) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    for resource, scopes in _grouped(records):
        resource_logs = request.resource_logs.add()
        resource_logs.resource.attributes.extend(_pb_attrs(resource))
        for (scope_name, scope_version), items in scopes:
            scope_logs = resource_logs.scope_logs.add()
            scope_logs.scope.name = scope_name
            scope_logs.scope.version = scope_version
            for item in items:
                record = scope_logs.log_records.add(
                    time_unix_nano=item.get("time", BASE_NS),
                    observed_time_unix_nano=item.get("time", BASE_NS),
                    severity_number=logs_pb2.SEVERITY_NUMBER_INFO,
                    trace_id=_pb_id(item.get("trace_id")),
                    span_id=_pb_id(item.get("span_id")),
                    event_name=item.get("event_name") or "",
                )
                if item.get("body") is not None:
                    record.body.CopyFrom(_pb_any(item["body"]))
                record.attributes.extend(_pb_attrs(item.get("attributes") or {}))
    return request


def logs_protobuf(records: list[dict[str, Any]]) -> bytes:
    return logs_request(records).SerializeToString()


# ---------------------------------------------------------------- OTLP/JSON


def _json_any(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}  # int64 is a string in OTLP/JSON
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode()}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [_json_any(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": _json_attrs(value)}}
    if value is None:
        return {}
    raise TypeError(f"no AnyValue for {type(value).__name__}")


def _json_attrs(attributes: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": key, "value": _json_any(value)} for key, value in attributes.items()]


def _json_resource(resource: dict[str, Any]) -> dict[str, Any]:
    return {"attributes": _json_attrs(resource)}


def traces_document(spans: list[dict[str, Any]]) -> dict[str, Any]:
    resource_spans = []
    for resource, scopes in _grouped(spans):
        scope_spans = []
        for (scope_name, scope_version), items in scopes:
            json_spans = []
            for item in items:
                code, message = _status(item)
                start = item.get("start", BASE_NS)
                json_span: dict[str, Any] = {
                    "traceId": item["trace_id"],
                    "spanId": item["span_id"],
                    "name": item["name"],
                    "kind": item.get("kind", SPAN_KIND_INTERNAL),
                    "startTimeUnixNano": str(start),
                    "endTimeUnixNano": str(item.get("end", start + MS)),
                    "attributes": _json_attrs(item.get("attributes") or {}),
                    "events": [
                        {
                            "timeUnixNano": str(event.get("time", BASE_NS)),
                            "name": event["name"],
                            "attributes": _json_attrs(event.get("attributes") or {}),
                        }
                        for event in item.get("events") or []
                    ],
                    "status": {"code": code, **({"message": message} if message else {})},
                }
                if item.get("parent"):
                    json_span["parentSpanId"] = item["parent"]
                json_spans.append(json_span)
            scope_spans.append({"scope": {"name": scope_name, "version": scope_version}, "spans": json_spans})
        resource_spans.append({"resource": _json_resource(resource), "scopeSpans": scope_spans})
    return {"resourceSpans": resource_spans}


def traces_json(spans: list[dict[str, Any]]) -> bytes:
    return orjson.dumps(traces_document(spans))


def logs_document(records: list[dict[str, Any]]) -> dict[str, Any]:
    resource_logs = []
    for resource, scopes in _grouped(records):
        scope_logs = []
        for (scope_name, scope_version), items in scopes:
            json_records = []
            for item in items:
                time_ns = str(item.get("time", BASE_NS))
                record: dict[str, Any] = {
                    "timeUnixNano": time_ns,
                    "observedTimeUnixNano": time_ns,
                    "severityNumber": logs_pb2.SEVERITY_NUMBER_INFO,
                    "attributes": _json_attrs(item.get("attributes") or {}),
                }
                if item.get("event_name"):
                    record["eventName"] = item["event_name"]
                if item.get("body") is not None:
                    record["body"] = _json_any(item["body"])
                if item.get("trace_id"):
                    record["traceId"] = item["trace_id"]
                if item.get("span_id"):
                    record["spanId"] = item["span_id"]
                json_records.append(record)
            scope_logs.append({"scope": {"name": scope_name, "version": scope_version}, "logRecords": json_records})
        resource_logs.append({"resource": _json_resource(resource), "scopeLogs": scope_logs})
    return {"resourceLogs": resource_logs}


def logs_json(records: list[dict[str, Any]]) -> bytes:
    return orjson.dumps(logs_document(records))


def encode_traces(spans: list[dict[str, Any]], content_type: str) -> bytes:
    return traces_protobuf(spans) if content_type == PROTOBUF else traces_json(spans)


def encode_logs(records: list[dict[str, Any]], content_type: str) -> bytes:
    return logs_protobuf(records) if content_type == PROTOBUF else logs_json(records)


# ---------------------------------------------------------------- a realistic LLM trace

QUESTION = "Can I get a refund for order A-1042? It arrived damaged."
SYSTEM_PROMPT = "You are Acme's support assistant. Answer from the policy excerpts only."
ANSWER = (
    "Yes. Order A-1042 was delivered 3 days ago, within the 30-day window, and damaged items "
    "are refunded in full. I have opened refund request R-77 for you."
)
DOCUMENTS = [
    {"id": "kb-101", "content": "Refunds are granted within 30 days of delivery.", "score": 0.91},
    {"id": "kb-207", "content": "Damaged items are refunded in full, shipping included.", "score": 0.87},
    {"id": "kb-350", "content": "Gift cards cannot be refunded.", "score": 0.42},
]
TOOL_NAME = "get_order_status"
TOOL_ARGUMENTS = '{"order_id": "A-1042"}'
TOOL_RESULT = '{"status": "delivered", "delivered_days_ago": 3}'
MODEL = "gpt-4o-2024-08-06"
PROVIDER = "openai"
INPUT_TOKENS = 812  # includes the cached ones, as OTel GenAI counts them
CACHED_TOKENS = 256
OUTPUT_TOKENS = 64
SESSION_ID = "sess-4711"
USER_ID = "user-ada"
TAGS = ["beta", "rag"]
METADATA = {"tenant": "acme", "plan": "pro"}
PROMPT_NAME = "support-answer"
PROMPT_VERSION = "3"
PROMPT_TEMPLATE = "Answer {question} using {context}."
ENVIRONMENT = "production"
SERVICE_NAME = "support-bot"
SERVICE_VERSION = "1.4.2"
RESOURCE = {
    "service.name": SERVICE_NAME,
    "service.version": SERVICE_VERSION,
    "deployment.environment.name": ENVIRONMENT,
    "telemetry.sdk.language": "python",
    "telemetry.sdk.name": "opentelemetry",
}
# Offsets (ms from the trace start) of the four spans; the LLM answer ends last.
TIMELINE = {"root": (0, 2000), "retriever": (100, 400), "tool": (450, 800), "llm": (850, 1900)}

DIALECTS = ("genai", "openllmetry", "openinference", "langfuse")


@dataclass
class LlmTrace:
    """A 4-span trace in one dialect and what the mapping must make of it.

    `expected_spans` is keyed by role (root, retriever, tool, llm), holding the Span
    fields this dialect can express; `expected_trace` holds Trace aggregate fields.
    Message lists are compared as (role, source, content) triples.
    """

    dialect: str
    trace_id: str
    span_ids: dict[str, str]
    spans: list[dict[str, Any]]
    expected_spans: dict[str, dict[str, Any]] = field(default_factory=dict)
    expected_trace: dict[str, Any] = field(default_factory=dict)

    def span(self, role: str) -> dict[str, Any]:
        return next(s for s in self.spans if s["span_id"] == self.span_ids[role])


EXPECTED_MESSAGES = [("system", "input", SYSTEM_PROMPT), ("user", "input", QUESTION), ("assistant", "output", ANSWER)]


def _genai(ids: dict[str, str]) -> tuple[dict[str, dict], dict[str, Any], dict[str, Any]]:
    """OTel GenAI semantic conventions, current (gen_ai.provider.name, *.messages JSON)."""
    identity = {"gen_ai.conversation.id": SESSION_ID, "user.id": USER_ID}
    attributes = {
        "root": {"gen_ai.operation.name": "invoke_workflow", **identity},
        "retriever": {
            "gen_ai.operation.name": "retrieval",
            "gen_ai.data_source.id": "kb-policies",
            "gen_ai.retrieval.query.text": QUESTION,
            "gen_ai.retrieval.documents": orjson.dumps(DOCUMENTS).decode(),
            **identity,
        },
        "tool": {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": TOOL_NAME,
            "gen_ai.tool.type": "function",
            "gen_ai.tool.call.id": "call_8f2",
            "gen_ai.tool.call.arguments": TOOL_ARGUMENTS,
            "gen_ai.tool.call.result": TOOL_RESULT,
            **identity,
        },
        "llm": {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": PROVIDER,
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": MODEL,
            "gen_ai.response.id": "chatcmpl-AB12",
            "gen_ai.request.temperature": 0.2,
            "gen_ai.request.max_tokens": 512,
            "gen_ai.usage.input_tokens": INPUT_TOKENS,
            "gen_ai.usage.output_tokens": OUTPUT_TOKENS,
            "gen_ai.usage.cache_read.input_tokens": CACHED_TOKENS,
            "gen_ai.response.finish_reasons": ["stop"],
            "gen_ai.system_instructions": orjson.dumps([{"type": "text", "content": SYSTEM_PROMPT}]).decode(),
            "gen_ai.input.messages": orjson.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": QUESTION}]}]
            ).decode(),
            "gen_ai.output.messages": orjson.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": ANSWER}], "finish_reason": "stop"}]
            ).decode(),
            "server.address": "api.openai.com",
            **identity,
        },
    }
    names = {"root": "invoke_workflow support", "retriever": "retrieval kb-policies",
             "tool": f"execute_tool {TOOL_NAME}", "llm": "chat gpt-4o"}
    expected = {
        "root": {"kind": "chain", "session_id": SESSION_ID, "user_id": USER_ID},
        "retriever": {"kind": "retriever", "input": QUESTION, "documents": DOCUMENTS},
        "tool": {"kind": "tool", "input": TOOL_ARGUMENTS, "output": TOOL_RESULT},
        "llm": {"kind": "llm", "provider": PROVIDER, "model": MODEL, "input_tokens": INPUT_TOKENS,
                "output_tokens": OUTPUT_TOKENS, "cached_tokens": CACHED_TOKENS,
                "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS, "messages": EXPECTED_MESSAGES,
                "finish_reason": "stop", "session_id": SESSION_ID, "user_id": USER_ID},
    }
    trace = {"name": names["root"], "status": "unset", "tags": [], "metadata": {}, "prompt_name": None,
             "prompt_version": None, "release": SERVICE_VERSION}
    return {role: {"name": names[role], "attributes": attributes[role]} for role in ids}, expected, trace


def _openllmetry(ids: dict[str, str]) -> tuple[dict[str, dict], dict[str, Any], dict[str, Any]]:
    """Traceloop SDK / OpenLLMetry: deprecated GenAI (gen_ai.prompt.N.*) + traceloop.*."""
    association = {
        "traceloop.association.properties.session_id": SESSION_ID,
        "traceloop.association.properties.user_id": USER_ID,
        "traceloop.association.properties.tenant": METADATA["tenant"],
        "traceloop.association.properties.plan": METADATA["plan"],
    }
    workflow = {"traceloop.workflow.name": "support_answer", **association}
    attributes = {
        "root": {
            "traceloop.span.kind": "workflow",
            "traceloop.entity.name": "support_answer",
            "traceloop.entity.input": orjson.dumps({"args": [QUESTION], "kwargs": {}}).decode(),
            "traceloop.entity.output": orjson.dumps(ANSWER).decode(),
            **workflow,
        },
        "retriever": {
            "traceloop.span.kind": "task",
            "traceloop.entity.name": "retrieve_documents",
            "traceloop.entity.input": orjson.dumps({"args": [QUESTION], "kwargs": {"k": 3}}).decode(),
            "traceloop.entity.output": orjson.dumps([d["content"] for d in DOCUMENTS]).decode(),
            **workflow,
        },
        "tool": {
            "traceloop.span.kind": "tool",
            "traceloop.entity.name": TOOL_NAME,
            "traceloop.entity.input": TOOL_ARGUMENTS,
            "traceloop.entity.output": TOOL_RESULT,
            **workflow,
        },
        "llm": {
            "llm.request.type": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": MODEL,
            "gen_ai.request.temperature": 0.2,
            "llm.is_streaming": False,
            "gen_ai.usage.prompt_tokens": INPUT_TOKENS,
            "gen_ai.usage.completion_tokens": OUTPUT_TOKENS,
            "gen_ai.usage.cache_read_input_tokens": CACHED_TOKENS,
            "llm.usage.total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
            "gen_ai.prompt.0.role": "system",
            "gen_ai.prompt.0.content": SYSTEM_PROMPT,
            "gen_ai.prompt.1.role": "user",
            "gen_ai.prompt.1.content": QUESTION,
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": ANSWER,
            "gen_ai.completion.0.finish_reason": "stop",
            "traceloop.prompt.key": PROMPT_NAME,
            "traceloop.prompt.version": int(PROMPT_VERSION),
            "traceloop.prompt.template": PROMPT_TEMPLATE,
            "traceloop.prompt.template_variables": orjson.dumps({"question": QUESTION}).decode(),
            **workflow,
        },
    }
    names = {"root": "support_answer.workflow", "retriever": "retrieve_documents.task",
             "tool": f"{TOOL_NAME}.tool", "llm": "openai.chat"}
    expected = {
        # OpenLLMetry has no retrieval-document attributes: the retriever is a plain task.
        "root": {"kind": "chain", "session_id": SESSION_ID, "user_id": USER_ID, "metadata": METADATA,
                 "trace_name": "support_answer"},
        "retriever": {"kind": "chain", "documents": []},
        "tool": {"kind": "tool", "input": TOOL_ARGUMENTS, "output": TOOL_RESULT},
        "llm": {"kind": "llm", "provider": PROVIDER, "model": MODEL, "input_tokens": INPUT_TOKENS,
                "output_tokens": OUTPUT_TOKENS, "cached_tokens": CACHED_TOKENS,
                "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS, "messages": EXPECTED_MESSAGES,
                "finish_reason": "stop", "prompt_name": PROMPT_NAME, "prompt_version": PROMPT_VERSION,
                "session_id": SESSION_ID, "user_id": USER_ID, "metadata": METADATA},
    }
    trace = {"name": "support_answer", "status": "ok", "tags": [], "metadata": METADATA,
             "prompt_name": PROMPT_NAME, "prompt_version": PROMPT_VERSION, "release": SERVICE_VERSION,
             "input": attributes["root"]["traceloop.entity.input"],
             "output": attributes["root"]["traceloop.entity.output"]}
    spans = {role: {"name": names[role], "attributes": attributes[role], "status": 1} for role in ids}
    return spans, expected, trace


def _openinference(ids: dict[str, str]) -> tuple[dict[str, dict], dict[str, Any], dict[str, Any]]:
    """Arize OpenInference (openinference-instrumentation-*, Phoenix)."""
    # using_attributes() puts session/user/tags/metadata on every span of the context.
    context = {
        "session.id": SESSION_ID,
        "user.id": USER_ID,
        "tag.tags": TAGS,
        "metadata": orjson.dumps(METADATA).decode(),
    }
    documents: dict[str, Any] = {}
    for n, doc in enumerate(DOCUMENTS):
        documents[f"retrieval.documents.{n}.document.id"] = doc["id"]
        documents[f"retrieval.documents.{n}.document.content"] = doc["content"]
        documents[f"retrieval.documents.{n}.document.score"] = doc["score"]
    request = {"model": "gpt-4o", "temperature": 0.2,
               "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": QUESTION}]}
    attributes = {
        "root": {
            "openinference.span.kind": "CHAIN",
            "input.value": QUESTION,
            "input.mime_type": "text/plain",
            "output.value": ANSWER,
            "output.mime_type": "text/plain",
            **context,
        },
        "retriever": {
            "openinference.span.kind": "RETRIEVER",
            "input.value": QUESTION,
            **documents,
            **context,
        },
        "tool": {
            "openinference.span.kind": "TOOL",
            "tool.name": TOOL_NAME,
            "tool.description": "Look up an order's delivery status.",
            "tool.parameters": TOOL_ARGUMENTS,
            "input.value": TOOL_ARGUMENTS,
            "input.mime_type": "application/json",
            "output.value": TOOL_RESULT,
            "output.mime_type": "application/json",
            **context,
        },
        "llm": {
            "openinference.span.kind": "LLM",
            "llm.provider": PROVIDER,
            "llm.system": "openai",
            "llm.model_name": MODEL,
            "llm.invocation_parameters": orjson.dumps({"temperature": 0.2}).decode(),
            "input.value": orjson.dumps(request).decode(),
            "input.mime_type": "application/json",
            "output.value": ANSWER,
            "output.mime_type": "text/plain",
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": SYSTEM_PROMPT,
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.content": QUESTION,
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": ANSWER,
            "llm.token_count.prompt": INPUT_TOKENS,
            "llm.token_count.completion": OUTPUT_TOKENS,
            "llm.token_count.total": INPUT_TOKENS + OUTPUT_TOKENS,
            "llm.token_count.prompt_details.cache_read": CACHED_TOKENS,
            "llm.prompt_template.template": PROMPT_TEMPLATE,
            "llm.prompt_template.variables": orjson.dumps({"question": QUESTION}).decode(),
            "llm.prompt_template.version": PROMPT_VERSION,
            **context,
        },
    }
    names = {"root": "SupportChain", "retriever": "VectorStoreRetriever", "tool": TOOL_NAME, "llm": "ChatCompletion"}
    identity = {"session_id": SESSION_ID, "user_id": USER_ID, "tags": TAGS}
    metadata = {**METADATA, "openinference.project.name": "support"}
    expected = {
        "root": {"kind": "chain", "input": QUESTION, "output": ANSWER, "metadata": metadata, **identity},
        "retriever": {"kind": "retriever", "input": QUESTION, "documents": DOCUMENTS},
        "tool": {"kind": "tool", "input": TOOL_ARGUMENTS, "output": TOOL_RESULT},
        "llm": {"kind": "llm", "provider": PROVIDER, "model": MODEL, "input_tokens": INPUT_TOKENS,
                "output_tokens": OUTPUT_TOKENS, "cached_tokens": CACHED_TOKENS,
                "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS, "messages": EXPECTED_MESSAGES,
                "output": ANSWER, "prompt_version": PROMPT_VERSION, "params": {"temperature": 0.2},
                **identity},
    }
    trace = {"name": names["root"], "status": "ok", "tags": TAGS, "metadata": metadata, "prompt_name": None,
             "prompt_version": PROMPT_VERSION, "release": SERVICE_VERSION}
    spans = {role: {"name": names[role], "attributes": attributes[role], "status": 1} for role in ids}
    return spans, expected, trace


def _langfuse(ids: dict[str, str]) -> tuple[dict[str, dict], dict[str, Any], dict[str, Any]]:
    """Langfuse SDK attributes (langfuse.trace.*, langfuse.observation.*)."""
    release = "2025.01.2"
    trace_level = {
        "langfuse.trace.name": "support-answer",
        "langfuse.user.id": USER_ID,
        "langfuse.session.id": SESSION_ID,
        "langfuse.trace.tags": TAGS,
        "langfuse.trace.metadata.tenant": METADATA["tenant"],
        "langfuse.trace.metadata.plan": METADATA["plan"],
        "langfuse.environment": "staging",
        "langfuse.release": release,
    }
    chat_input = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": QUESTION}]
    attributes = {
        "root": {
            "langfuse.observation.type": "span",
            "langfuse.observation.input": orjson.dumps(QUESTION).decode(),
            "langfuse.observation.output": orjson.dumps(ANSWER).decode(),
            **trace_level,
        },
        "retriever": {
            "langfuse.observation.type": "retriever",
            "langfuse.observation.input": QUESTION,
            "langfuse.observation.output": orjson.dumps(DOCUMENTS).decode(),
            "langfuse.environment": "staging",
        },
        "tool": {
            "langfuse.observation.type": "tool",
            "langfuse.observation.input": TOOL_ARGUMENTS,
            "langfuse.observation.output": TOOL_RESULT,
            "langfuse.environment": "staging",
        },
        "llm": {
            "langfuse.observation.type": "generation",
            "langfuse.observation.model.name": MODEL,
            "langfuse.observation.model.parameters": orjson.dumps({"temperature": 0.2}).decode(),
            "langfuse.observation.input": orjson.dumps(chat_input).decode(),
            "langfuse.observation.output": orjson.dumps({"role": "assistant", "content": ANSWER}).decode(),
            # Langfuse's "input" excludes the cache reads it prices separately.
            "langfuse.observation.usage_details": orjson.dumps(
                {"input": INPUT_TOKENS - CACHED_TOKENS, "output": OUTPUT_TOKENS,
                 "cache_read_input_tokens": CACHED_TOKENS}
            ).decode(),
            "langfuse.observation.prompt.name": PROMPT_NAME,
            "langfuse.observation.prompt.version": int(PROMPT_VERSION),
            "langfuse.environment": "staging",
        },
    }
    names = {"root": "support-answer", "retriever": "retrieve", "tool": TOOL_NAME, "llm": "generate-answer"}
    expected = {
        "root": {"kind": "chain", "session_id": SESSION_ID, "user_id": USER_ID, "tags": TAGS,
                 "metadata": METADATA, "trace_name": "support-answer", "environment": "staging",
                 "release": release},
        "retriever": {"kind": "retriever", "input": QUESTION},
        "tool": {"kind": "tool", "input": TOOL_ARGUMENTS, "output": TOOL_RESULT},
        "llm": {"kind": "llm", "model": MODEL, "input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS,
                "cached_tokens": CACHED_TOKENS, "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
                "messages": EXPECTED_MESSAGES, "prompt_name": PROMPT_NAME, "prompt_version": PROMPT_VERSION,
                "params": {"temperature": 0.2}, "environment": "staging"},
    }
    trace = {"name": "support-answer", "status": "unset", "tags": TAGS, "metadata": METADATA,
             "prompt_name": PROMPT_NAME, "prompt_version": PROMPT_VERSION, "environment": "staging",
             "release": release, "input": attributes["root"]["langfuse.observation.input"],
             "output": attributes["root"]["langfuse.observation.output"]}
    return {role: {"name": names[role], "attributes": attributes[role]} for role in ids}, expected, trace


_BUILDERS = {"genai": _genai, "openllmetry": _openllmetry, "openinference": _openinference, "langfuse": _langfuse}


def llm_trace(dialect: str, *, trace_id: str | None = None, base_ns: int = BASE_NS,
              resource: dict[str, Any] | None = None) -> LlmTrace:
    """The 4-span RAG trace in `dialect` (one of DIALECTS), root first in the list."""
    trace_id = trace_id or new_trace_id()
    ids = {role: new_span_id() for role in TIMELINE}
    parts, expected_spans, expected_trace = _BUILDERS[dialect](ids)
    resource = dict(RESOURCE if resource is None else resource)
    if dialect == "openinference":
        resource["openinference.project.name"] = "support"
    spans = []
    for role, (start_ms, end_ms) in TIMELINE.items():
        part = parts[role]
        spans.append(
            {
                "trace_id": trace_id,
                "span_id": ids[role],
                "parent": None if role == "root" else ids["root"],
                "name": part["name"],
                "kind": SPAN_KIND_CLIENT if role == "llm" else SPAN_KIND_INTERNAL,
                "start": base_ns + start_ms * MS,
                "end": base_ns + end_ms * MS,
                "attributes": part["attributes"],
                "status": part.get("status", 0),
                "resource": resource,
                "scope": (f"tests.{dialect}", "0.1"),
            }
        )
    start_ms, end_ms = TIMELINE["root"]
    trace = {
        "name": expected_trace.pop("name"),
        "latency_ms": float(end_ms - start_ms),
        "span_count": 4,
        "input_tokens": INPUT_TOKENS,
        "output_tokens": OUTPUT_TOKENS,
        "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
        "model": MODEL,
        "session_id": SESSION_ID,
        "user_id": USER_ID,
        "environment": ENVIRONMENT,
        "service_name": SERVICE_NAME,
        "input": QUESTION,
        "output": ANSWER,
        "root_span_id": ids["root"],
        **expected_trace,
    }
    return LlmTrace(dialect, trace_id, ids, spans, expected_spans, trace)


# ---------------------------------------------------------------- GenAI log events


def genai_message_logs(*, trace_id: str, span_id: str, time: int = BASE_NS, event_name_in: str = "field",
                       question: str = QUESTION, answer: str = ANSWER) -> list[dict[str, Any]]:
    """The log records opentelemetry-instrumentation-openai-v2 emits for one chat call
    with content capture on: a system and a user message event, then a choice event.

    `event_name_in="attribute"` puts the name in the `event.name` attribute, as SDKs
    before LogRecord.event_name existed do.
    """
    events = [
        ("gen_ai.system.message", {"content": SYSTEM_PROMPT}),
        ("gen_ai.user.message", {"content": question}),
        ("gen_ai.choice", {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}),
    ]
    records = []
    for n, (name, body) in enumerate(events):
        attributes: dict[str, Any] = {"gen_ai.system": "openai"}
        record: dict[str, Any] = {
            "trace_id": trace_id,
            "span_id": span_id,
            "time": time + n * MS,
            "body": body,
            "resource": {"service.name": SERVICE_NAME},
            "scope": ("opentelemetry.instrumentation.openai_v2", "2.4b0"),
        }
        if event_name_in == "field":
            record["event_name"] = name
        else:
            attributes["event.name"] = name
        record["attributes"] = attributes
        records.append(record)
    return records
