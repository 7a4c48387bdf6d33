"""The shapes that flow through the OTLP pipeline: decode -> RawSpan -> map -> NormalizedSpan."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass(slots=True)
class RawEvent:
    name: str
    time_ns: int
    attributes: dict[str, Any]


@dataclass(slots=True)
class RawSpan:
    """One OTLP span with ids as lowercase hex and attributes as plain Python values.

    Attribute values: str, bool, int, float, bytes (hex-encoded to str by the decoder),
    list (OTLP ArrayValue) or dict (OTLP KeyValueList). Keys are kept verbatim
    (dotted, e.g. "gen_ai.prompt.0.content"); nothing is un-flattened here.
    """

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    otel_kind: int  # OTLP SpanKind enum value (0 unspecified .. 5 consumer)
    start_ns: int
    end_ns: int
    status_code: int  # 0 unset, 1 ok, 2 error
    status_message: str | None
    attributes: dict[str, Any]
    events: list[RawEvent]
    resource: dict[str, Any]
    scope_name: str | None = None
    scope_version: str | None = None


@dataclass(slots=True)
class RawLogRecord:
    trace_id: str | None
    span_id: str | None
    time_ns: int
    event_name: str | None  # LogRecord.event_name, or the "event.name" attribute
    body: Any
    attributes: dict[str, Any]
    resource: dict[str, Any]


@dataclass(slots=True)
class NormalizedSpan:
    """What the mapping layer extracts from any dialect; one row of tracing_span."""

    kind: str = "unknown"  # tracing.models.SpanKind values
    provider: str | None = None
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    cache_creation_tokens: int | None = None
    reasoning_tokens: int | None = None
    total_tokens: int | None = None
    cost_usd: Decimal | None = None  # only when the span itself reports a cost
    input: str | None = None
    output: str | None = None
    # [{"role", "content", "source": "input"|"output", optional "tool_calls":
    #   [{"id", "name", "arguments"}], "tool_call_id", "name", "finish_reason"}]
    messages: list[dict[str, Any]] = field(default_factory=list)
    # [{"id", "content", "score", "metadata"}]
    documents: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    finish_reason: str | None = None
    session_id: str | None = None
    user_id: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    trace_name: str | None = None  # an explicit trace name (e.g. langfuse.trace.name)
    prompt_name: str | None = None
    prompt_version: str | None = None
    # llm.prompt_template.template / traceloop.prompt.template, and their variables
    prompt_template: str | None = None
    prompt_variables: dict[str, Any] = field(default_factory=dict)
    tool_name: str | None = None  # gen_ai.tool.name / tool.name on tool spans
    environment: str | None = None
    release: str | None = None
    service_name: str | None = None
