"""Semantic-convention mapping: one RawSpan from any LLM dialect -> one NormalizedSpan.

Dialects (see /work/shared/reference/otel-ingest.md): OTel GenAI current and deprecated,
OpenLLMetry/Traceloop, OpenInference, Langfuse SDK attributes, plus resource attributes.

Design:
- Each NormalizedSpan field has a table of candidate keys in priority order; the first
  usable value wins. Span attributes always beat resource attributes.
- Flattened, indexed keys (``gen_ai.prompt.3.content``, ``llm.input_messages.0.message.role``,
  ``retrieval.documents.2.document.id``) and prefixed maps (``traceloop.association.
  properties.*``) are bucketed in ONE pass over the attribute keys, because this runs per
  span on the ingest hot path and a scan per field would be O(fields x keys).
- input/output are what a reader wants, the question and the answer: a request or
  response body stored there as JSON (OpenInference's input.value/output.value) is read
  through the span's messages or the body's own shape. The raw attributes, JSON bodies
  included, are stored verbatim beside the mapping (tracing_span.attributes).
- Nothing here raises on attribute content: wrong types coerce or become None, and each
  field group runs under its own guard so one surprise cannot drop the whole span.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from tracing.otlp.types import NormalizedSpan, RawSpan

logger = logging.getLogger(__name__)

__all__ = ["messages_from_log_events", "normalize_span"]

# Token counts above this are junk (and would overflow a bigint column).
_MAX_COUNT = 10**15
# Costs above this are junk; the cost column holds 10 integer digits.
_MAX_COST = Decimal(10**9)
# Indexes with more digits than this are junk; ignoring them bounds the work per span.
_MAX_INDEX_DIGITS = 5
_MAX_JSON_DEPTH = 32

# Column widths of tracing_span, so an over-long id never fails the whole batch insert.
_LIMITS = {
    "provider": 128,
    "model": 256,
    "finish_reason": 64,
    "session_id": 256,
    "user_id": 256,
    "tag": 200,
    "trace_name": 512,
    "prompt_name": 256,
    "prompt_version": 64,
    "environment": 128,
    "release": 128,
    "service_name": 256,
    "tool_name": 256,
}

# ---------------------------------------------------------------------------------------
# Candidate keys per field, in priority order.
# ---------------------------------------------------------------------------------------

_PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
# The response model names the snapshot actually served (better for pricing).
_MODEL_KEYS = (
    "gen_ai.response.model",
    "llm.response.model_name",
    "gen_ai.request.model",
    "llm.model_name",
    "llm.request.model_name",
    "langfuse.observation.model.name",
    "embedding.model_name",
    "reranker.model_name",
)
_INPUT_TOKEN_KEYS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
)
_OUTPUT_TOKEN_KEYS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
)
_CACHED_TOKEN_KEYS = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "llm.token_count.prompt_details.cache_read",
)
_CACHE_CREATION_TOKEN_KEYS = (
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "gen_ai.usage.cache_write.input_tokens",
    "llm.token_count.prompt_details.cache_write",
)
_REASONING_TOKEN_KEYS = (
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens",
    "llm.usage.reasoning_tokens",
    "llm.token_count.completion_details.reasoning",
)
_TOTAL_TOKEN_KEYS = (
    "gen_ai.usage.total_tokens",
    "llm.usage.total_tokens",
    "llm.token_count.total",
)

_INPUT_TEXT_KEYS = (
    "input.value",
    "traceloop.entity.input",
    "langfuse.observation.input",
    "gen_ai.tool.call.arguments",
    "gen_ai.retrieval.query.text",
    "gen_ai.prompt",
)
_OUTPUT_TEXT_KEYS = (
    "output.value",
    "traceloop.entity.output",
    "langfuse.observation.output",
    "gen_ai.tool.call.result",
    "gen_ai.completion",
)
_FINISH_REASON_KEYS = (
    "gen_ai.response.finish_reasons",
    "gen_ai.response.finish_reason",
    "llm.finish_reason",
    "llm.response.finish_reason",
)
_SESSION_KEYS = ("session.id", "gen_ai.conversation.id", "langfuse.session.id")
_USER_KEYS = ("user.id", "langfuse.user.id", "enduser.id", "gen_ai.user", "llm.user")
_TAG_KEYS = ("tag.tags", "langfuse.trace.tags")
_TRACE_NAME_KEYS = ("langfuse.trace.name", "traceloop.workflow.name")
_PROMPT_NAME_KEYS = (
    "spyglass.prompt.name",
    "langfuse.observation.prompt.name",
    "gen_ai.prompt.name",
    "traceloop.prompt.key",
)
_PROMPT_VERSION_KEYS = (
    "spyglass.prompt.version",
    "langfuse.observation.prompt.version",
    "llm.prompt_template.version",
    "traceloop.prompt.version",
    "traceloop.prompt.version_name",
)
_PROMPT_TEMPLATE_KEYS = ("llm.prompt_template.template", "traceloop.prompt.template")
_PROMPT_VARIABLE_KEYS = (
    "llm.prompt_template.variables",
    "traceloop.prompt.template_variables",
)
_TOOL_NAME_KEYS = ("gen_ai.tool.name", "tool.name")
_ENVIRONMENT_KEYS = (
    "langfuse.environment",
    "deployment.environment.name",
    "deployment.environment",
)
# An explicit release beats the service version from the resource.
_RELEASE_KEYS = ("langfuse.release", "langfuse.version", "service.version")
_SERVICE_NAME_KEYS = ("service.name",)

# Legacy params that live outside gen_ai.request.* (OpenLLMetry ``llm.*`` variants).
_LEGACY_PARAM_KEYS = (
    ("llm.top_k", "top_k"),
    ("llm.frequency_penalty", "frequency_penalty"),
    ("llm.presence_penalty", "presence_penalty"),
    ("llm.chat.stop_sequences", "stop_sequences"),
    ("llm.request.max_tokens", "max_tokens"),
)

# ---------------------------------------------------------------------------------------
# Kind tables. Keys are lowercase; "unknown" never decides, the cascade continues.
# ---------------------------------------------------------------------------------------

_KIND_BY_OPENINFERENCE = {
    "llm": "llm",
    "embedding": "embedding",
    "chain": "chain",
    "retriever": "retriever",
    "reranker": "reranker",
    "tool": "tool",
    "agent": "agent",
    "guardrail": "guardrail",
    "evaluator": "evaluator",
    "prompt": "chain",
}
_KIND_BY_LANGFUSE = {
    "generation": "llm",
    "span": "chain",
    "chain": "chain",
    "agent": "agent",
    "tool": "tool",
    "retriever": "retriever",
    "embedding": "embedding",
    "evaluator": "evaluator",
    "guardrail": "guardrail",
}
_KIND_BY_TRACELOOP = {
    "workflow": "chain",
    "task": "chain",
    "agent": "agent",
    "tool": "tool",
}
_KIND_BY_GENAI_OPERATION = {
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
_KIND_BY_LLM_REQUEST_TYPE = {
    "chat": "llm",
    "completion": "llm",
    "embedding": "embedding",
    "rerank": "reranker",
}
_KIND_SOURCES = (
    ("openinference.span.kind", _KIND_BY_OPENINFERENCE),
    ("langfuse.observation.type", _KIND_BY_LANGFUSE),
    ("traceloop.span.kind", _KIND_BY_TRACELOOP),
    ("gen_ai.operation.name", _KIND_BY_GENAI_OPERATION),
    ("llm.request.type", _KIND_BY_LLM_REQUEST_TYPE),
)

# ---------------------------------------------------------------------------------------
# One-pass bucketing of indexed and prefixed keys.
# ---------------------------------------------------------------------------------------

# Bucketed key families: (head, bucket name, indexed?). A head is the key's first two
# dotted segments, or three where two are not specific enough.
_PREFIXES = (
    ("gen_ai.prompt.", "ol_in", True),
    ("gen_ai.completion.", "ol_out", True),
    ("llm.input_messages.", "oi_in", True),
    ("llm.output_messages.", "oi_out", True),
    ("retrieval.documents.", "docs", True),
    ("reranker.output_documents.", "rerank_docs", True),
    ("gen_ai.request.", "request", False),
    ("traceloop.association.properties.", "tl_props", False),
    ("langfuse.trace.metadata.", "lf_meta", False),
    ("langfuse.observation.metadata.", "lf_meta", False),
)
_BY_HEAD = {prefix: (bucket, indexed) for prefix, bucket, indexed in _PREFIXES}
# Two-segment heads whose families are told apart by the third segment.
_THREE_SEGMENT_HEADS = frozenset(
    prefix.rsplit(".", 2)[0] + "." for prefix in _BY_HEAD if prefix.count(".") == 3
)


_NOT_BUCKETED = ("", None, "")
# Attribute names repeat across spans, so each is parsed once. Junk names could grow
# this without bound; the cap turns that into an occasional re-parse, never a leak.
_KEY_CACHE: dict[str, tuple[str, int | None, str]] = {}
_KEY_CACHE_MAX = 50_000


def _parse_key(key: Any) -> tuple[str, int | None, str]:
    """(bucket, index or None, field) for a bucketed key, else _NOT_BUCKETED."""
    if type(key) is not str:
        return _NOT_BUCKETED
    parsed = _NOT_BUCKETED
    end = key.find(".", key.find(".") + 1) + 1
    head = key[:end] if end else ""
    if head in _THREE_SEGMENT_HEADS:
        end = key.find(".", end) + 1
        head = key[:end] if end else ""
    family = _BY_HEAD.get(head)
    if family is not None:
        bucket, indexed = family
        rest = key[end:]
        if not indexed:
            if rest:
                parsed = (bucket, None, rest)
        else:
            index, _, field = rest.partition(".")
            # isascii: "²".isdigit() is True but int("²") fails.
            if (
                field
                and index.isascii()
                and index.isdigit()
                and len(index) <= _MAX_INDEX_DIGITS
            ):
                parsed = (bucket, int(index), field)
    if len(_KEY_CACHE) >= _KEY_CACHE_MAX:
        _KEY_CACHE.clear()
    _KEY_CACHE[key] = parsed
    return parsed


class _View:
    """Attributes of one span plus the buckets filled by the single key pass."""

    __slots__ = ("attrs", "indexed", "prefixed", "resource")

    def __init__(self, attrs: dict[str, Any], resource: dict[str, Any]) -> None:
        self.attrs = attrs
        self.resource = resource
        self.indexed: dict[str, dict[int, dict[str, Any]]] = {}
        self.prefixed: dict[str, dict[str, Any]] = {}
        cache = _KEY_CACHE
        for key, value in attrs.items():
            parsed = cache.get(key)
            if parsed is None:
                parsed = _parse_key(key)
            if parsed is _NOT_BUCKETED:
                continue
            bucket, index, field = parsed
            if index is None:
                self.prefixed.setdefault(bucket, {})[field] = value
            else:
                self.indexed.setdefault(bucket, {}).setdefault(index, {})[field] = value

    def first(
        self,
        keys: Iterable[str],
        coerce: Callable[[Any], Any],
        *,
        resource: bool = False,
    ) -> Any:
        """The first candidate key whose value coerces to something usable."""
        for source in (self.attrs, self.resource) if resource else (self.attrs,):
            for key in keys:
                value = source.get(key)
                if value is not None:
                    result = coerce(value)
                    if result is not None:
                        return result
        return None

    def rows(self, bucket: str) -> list[dict[str, Any]]:
        """An indexed bucket's rows in index order; gaps in the index are skipped."""
        rows = self.indexed.get(bucket)
        if not rows:
            return []
        return [rows[index] for index in sorted(rows)]


# ---------------------------------------------------------------------------------------
# Coercions: never raise, return None for anything unusable.
# ---------------------------------------------------------------------------------------


def _as_str(value: Any) -> str | None:
    kind = type(value)
    if kind is str:
        text = value
    elif kind is int or kind is float:
        text = str(value)
    else:
        return None
    if "\x00" in text:  # Postgres text and jsonb reject NUL
        text = text.replace("\x00", "")
    return text or None


def _limited(field: str) -> Callable[[Any], str | None]:
    limit = _LIMITS[field]

    def coerce(value: Any) -> str | None:
        text = _as_str(value)
        if text is None:
            return None
        text = text.strip()
        return text[:limit] or None

    return coerce


# Prebuilt per field: building the closure per lookup would cost on the hot path.
_SHORT = {field: _limited(field) for field in _LIMITS}


def _as_int(value: Any) -> int | None:
    kind = type(value)
    if kind is int:
        number = value
    elif kind is float:
        if not math.isfinite(value):
            return None
        number = int(value)
    elif kind is str:
        text = value.strip()
        if not text or len(text) > 40:
            return None
        try:
            number = int(text)
        except ValueError:
            number_f = _as_float(text)
            if number_f is None:
                return None
            number = int(number_f)
    else:
        return None
    return number if 0 <= number <= _MAX_COUNT else None


def _as_float(value: Any) -> float | None:
    kind = type(value)
    if kind is float:
        number = value
    elif kind is int:
        number = float(value) if abs(value) < 1e300 else math.inf
    elif kind is str:
        if len(value) > 64:
            return None
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _as_decimal(value: Any) -> Decimal | None:
    kind = type(value)
    if kind is bool or kind not in (int, float, str):
        return None
    if kind is str and len(value) > 64:
        return None
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite() or number < 0 or number >= _MAX_COST:
        return None
    return number


def _as_list(value: Any) -> list[Any] | None:
    """A list from an OTLP array or a JSON-encoded array string."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if type(value) is str and value[:1] == "[":
        parsed = _loads(value)
        if isinstance(parsed, list):
            return parsed
    return None


def _as_dict(value: Any) -> dict[str, Any] | None:
    """A dict from an OTLP key-value list or a JSON-encoded object string."""
    if isinstance(value, dict):
        return value
    if type(value) is str and value[:1] == "{":
        parsed = _loads(value)
        if isinstance(parsed, dict):
            return parsed
    return None


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except (orjson.JSONDecodeError, ValueError, TypeError):
        return None


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, ValueError):
        return str(value)


def _as_text(value: Any) -> str | None:
    """Plain input/output: strings verbatim, structured values as JSON text."""
    if value is None:
        return None
    if type(value) is str:
        return _as_str(value)
    if isinstance(value, (dict, list, tuple)):
        return _as_str(_dumps(_jsonable(value)))
    if isinstance(value, bool):
        return "true" if value else "false"
    return _as_str(value)


def _jsonable(value: Any, depth: int = 0) -> Any:
    """Make a value safe for a jsonb column: no NaN/inf, no NUL, str keys, bounded depth."""
    kind = type(value)
    if kind is str:
        return value.replace("\x00", "") if "\x00" in value else value
    if kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if depth >= _MAX_JSON_DEPTH:
        return None
    if isinstance(value, dict):
        return {
            _as_str(key) or "": _jsonable(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_jsonable(item, depth + 1) for item in value]
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return _as_str(str(value))


def _json_value(value: Any) -> Any:
    """Metadata values: JSON-encoded objects/arrays are decoded, everything made jsonb-safe."""
    if type(value) is str and value[:1] in ("{", "["):
        parsed = _loads(value)
        if parsed is not None:
            return _jsonable(parsed)
    return _jsonable(value)


# ---------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------


def _role(value: Any, default: str) -> str:
    role = _as_str(value)
    if role is None:
        return default
    role = role.strip().lower()
    # Gemini calls the assistant "model".
    return "assistant" if role == "model" else (role[:32] or default)


def _tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    if arguments is None:
        args = ""
    elif type(arguments) is str:
        args = _as_str(arguments) or ""
    else:
        args = _dumps(_jsonable(arguments))
    return {"id": _as_str(call_id), "name": _as_str(name), "arguments": args}


def _part_placeholder(part: dict[str, Any]) -> str:
    kind = _as_str(part.get("modality")) or _as_str(part.get("type")) or "unknown"
    if kind in ("image_url", "input_image"):
        kind = "image"
    elif kind in ("input_audio", "audio_url"):
        kind = "audio"
    return f"[{kind[:32]}]"


def _content_text(value: Any) -> str:
    """Message content as one string: text parts joined by newlines, others summarised."""
    if value is None:
        return ""
    if type(value) is str:
        if value[:2] == "[{":
            # OpenLLMetry stores multimodal OpenAI content as a JSON list of parts.
            parts = _loads(value)
            if (
                isinstance(parts, list)
                and parts
                and all(isinstance(p, dict) and "type" in p for p in parts)
            ):
                return _parts_text(parts)
        return _as_str(value) or ""
    if isinstance(value, (list, tuple)):
        return _parts_text(value)
    return _as_text(value) or ""


def _parts_text(parts: Iterable[Any]) -> str:
    texts: list[str] = []
    for part in parts:
        if type(part) is str:
            texts.append(part)
        elif isinstance(part, dict):
            kind = part.get("type")
            if kind in ("text", "input_text", "output_text", "refusal") or (
                kind is None and "text" in part
            ):
                text = part.get("content") if "content" in part else part.get("text")
                texts.append(_as_str(text) or "")
            elif kind == "reasoning":
                continue  # model thinking is not message content
            else:
                texts.append(_part_placeholder(part))
    return "\n".join(texts).replace("\x00", "")


def _message_from_parts(role: str, parts: Any, source: str) -> dict[str, Any]:
    """One OTel GenAI message ({role, parts:[...]}) in our normalized shape."""
    message: dict[str, Any] = {"role": role, "content": "", "source": source}
    if type(parts) is str:
        message["content"] = _as_str(parts) or ""
        return message
    if not isinstance(parts, (list, tuple)):
        return message
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for part in parts:
        if type(part) is str:
            texts.append(part)
            continue
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind in ("text", "refusal"):
            texts.append(_as_str(part.get("content")) or "")
        elif kind == "tool_call":
            tool_calls.append(
                _tool_call(part.get("id"), part.get("name"), part.get("arguments"))
            )
        elif kind == "tool_call_response":
            call_id = _as_str(part.get("id"))
            if call_id:
                message["tool_call_id"] = call_id
            response = part.get("response")
            texts.append(
                response.replace("\x00", "")
                if type(response) is str
                else (_as_text(response) or "")
            )
        elif kind == "reasoning":
            continue
        else:
            texts.append(_part_placeholder(part))
    message["content"] = "\n".join(texts)
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def _genai_messages(value: Any, source: str) -> list[dict[str, Any]]:
    """gen_ai.input.messages / gen_ai.output.messages (JSON string or structured list)."""
    items = _as_list(value)
    if not items:
        return []
    default_role = "user" if source == "input" else "assistant"
    messages = []
    for item in items:
        if not isinstance(item, dict):
            continue
        role = _role(item.get("role"), default_role)
        if "parts" in item:
            message = _message_from_parts(role, item.get("parts"), source)
        else:  # lenient: a plain {role, content} chat message
            message = {
                "role": role,
                "content": _content_text(item.get("content")),
                "source": source,
            }
        name = _as_str(item.get("name"))
        if name:
            message["name"] = name
        finish = _as_str(item.get("finish_reason"))
        if finish:
            message["finish_reason"] = finish[: _LIMITS["finish_reason"]]
        messages.append(message)
    return messages


def _system_instructions(value: Any) -> list[dict[str, Any]]:
    """gen_ai.system_instructions: a list of parts (or, leniently, a plain string)."""
    if type(value) is str and value[:1] != "[":
        text = _as_str(value)
        return [{"role": "system", "content": text, "source": "input"}] if text else []
    parts = _as_list(value)
    if not parts:
        return []
    if all(isinstance(p, dict) and "parts" in p for p in parts):
        return _genai_messages(parts, "input")
    return [_message_from_parts("system", parts, "input")]


def _indexed_tool_calls(
    fields: dict[str, Any], prefix: str, name_key: str, args_key: str, id_key: str
) -> list:
    """Tool calls flattened under ``<prefix>M.<sub>`` in one message's fields."""
    calls: dict[int, dict[str, Any]] = {}
    for key, value in fields.items():
        if not key.startswith(prefix):
            continue
        index, _, sub = key[len(prefix) :].partition(".")
        if (
            sub
            and index.isascii()
            and index.isdigit()
            and len(index) <= _MAX_INDEX_DIGITS
        ):
            calls.setdefault(int(index), {})[sub] = value
    return [
        _tool_call(call.get(id_key), call.get(name_key), call.get(args_key))
        for _, call in sorted(calls.items())
    ]


def _openllmetry_message(fields: dict[str, Any], source: str) -> dict[str, Any]:
    """gen_ai.prompt.N.* / gen_ai.completion.N.* (deprecated GenAI, OpenLLMetry)."""
    default_role = "user" if source == "input" else "assistant"
    message = {
        "role": _role(fields.get("role"), default_role),
        "content": _content_text(fields.get("content")),
        "source": source,
    }
    tool_calls = _indexed_tool_calls(fields, "tool_calls.", "name", "arguments", "id")
    if "function_call.name" in fields:  # pre-tools OpenAI function calling
        tool_calls.append(
            _tool_call(
                None,
                fields["function_call.name"],
                fields.get("function_call.arguments"),
            )
        )
    if tool_calls:
        message["tool_calls"] = tool_calls
    _copy_optional(message, fields, "tool_call_id", "tool_call_id")
    _copy_optional(message, fields, "name", "name")
    _copy_optional(message, fields, "finish_reason", "finish_reason")
    return message


def _openinference_message(fields: dict[str, Any], source: str) -> dict[str, Any]:
    """llm.input_messages.N.message.* / llm.output_messages.N.message.* (OpenInference)."""
    default_role = "user" if source == "input" else "assistant"
    content = fields.get("message.content")
    if content is None:
        content = _openinference_contents(fields)
    message = {
        "role": _role(fields.get("message.role"), default_role),
        "content": _content_text(content),
        "source": source,
    }
    tool_calls = _indexed_tool_calls(
        fields,
        "message.tool_calls.",
        "tool_call.function.name",
        "tool_call.function.arguments",
        "tool_call.id",
    )
    if "message.function_call_name" in fields:
        tool_calls.append(
            _tool_call(
                None,
                fields["message.function_call_name"],
                fields.get("message.function_call_arguments_json"),
            )
        )
    if tool_calls:
        message["tool_calls"] = tool_calls
    _copy_optional(message, fields, "message.tool_call_id", "tool_call_id")
    _copy_optional(message, fields, "message.name", "name")
    _copy_optional(message, fields, "message.finish_reason", "finish_reason")
    return message


def _openinference_contents(fields: dict[str, Any]) -> list[dict[str, Any]] | None:
    """message.contents.M.message_content.{type,text,image.image.url} as a parts list."""
    contents: dict[int, dict[str, Any]] = {}
    prefix = "message.contents."
    for key, value in fields.items():
        if not key.startswith(prefix):
            continue
        index, _, sub = key[len(prefix) :].partition(".")
        if (
            sub
            and index.isascii()
            and index.isdigit()
            and len(index) <= _MAX_INDEX_DIGITS
        ):
            contents.setdefault(int(index), {})[sub] = value
    if not contents:
        return None
    parts = []
    for _, content in sorted(contents.items()):
        kind = _as_str(content.get("message_content.type")) or (
            "text" if "message_content.text" in content else "unknown"
        )
        parts.append({"type": kind, "content": content.get("message_content.text")})
    return parts


def _copy_optional(
    message: dict[str, Any], fields: dict[str, Any], key: str, target: str
) -> None:
    value = _as_str(fields.get(key))
    if value:
        message[target] = (
            value[: _LIMITS["finish_reason"]] if target == "finish_reason" else value
        )


def _chat_json_messages(value: Any, source: str) -> list[dict[str, Any]]:
    """A Langfuse observation input/output holding OpenAI-style chat JSON."""
    parsed = _as_list(value)
    if parsed is None:
        single = _as_dict(value)
        parsed = [single] if single is not None else None
    if not parsed or not all(isinstance(m, dict) and "role" in m for m in parsed):
        return []
    default_role = "user" if source == "input" else "assistant"
    messages = []
    for item in parsed:
        message = {
            "role": _role(item.get("role"), default_role),
            "content": _content_text(item.get("content")),
            "source": source,
        }
        calls = item.get("tool_calls")
        if isinstance(calls, list):
            message["tool_calls"] = [
                _openai_tool_call(call) for call in calls if isinstance(call, dict)
            ]
        messages.append(message)
    return messages


def _openai_tool_call(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function")
    if not isinstance(function, dict):
        function = {}
    return _tool_call(call.get("id"), function.get("name"), function.get("arguments"))


def _span_messages(view: _View) -> list[dict[str, Any]]:
    attrs = view.attrs
    # OTel GenAI current (also what recent OpenLLMetry and util-genai emit).
    messages = _system_instructions(attrs.get("gen_ai.system_instructions"))
    messages += _genai_messages(attrs.get("gen_ai.input.messages"), "input")
    messages += _genai_messages(attrs.get("gen_ai.output.messages"), "output")
    if messages:
        return messages
    messages = [_openinference_message(f, "input") for f in view.rows("oi_in")]
    messages += [_openinference_message(f, "output") for f in view.rows("oi_out")]
    if messages:
        return messages
    messages = [_openllmetry_message(f, "input") for f in view.rows("ol_in")]
    messages += [_openllmetry_message(f, "output") for f in view.rows("ol_out")]
    if messages:
        return messages
    if _langfuse_generation(attrs):
        messages = _chat_json_messages(attrs.get("langfuse.observation.input"), "input")
        messages += _chat_json_messages(
            attrs.get("langfuse.observation.output"), "output"
        )
    return messages


def _langfuse_generation(attrs: dict[str, Any]) -> bool:
    return attrs.get("langfuse.observation.type") == "generation"


# ---------------------------------------------------------------------------------------
# GenAI log events (opentelemetry-instrumentation-openai-v2, opentelemetry-util-genai)
# ---------------------------------------------------------------------------------------

_EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
_DETAILS_EVENT = "gen_ai.client.inference.operation.details"
_MESSAGE_EVENTS = frozenset((*_EVENT_ROLES, "gen_ai.choice", _DETAILS_EVENT))


def messages_from_log_events(
    events: list[tuple[str, Any, dict]],
) -> list[dict[str, Any]]:
    """Normalized messages from GenAI log events, given as (event_name, body, attributes)
    tuples sorted by time. Unknown events are ignored; nothing raises on odd bodies."""
    messages: list[dict[str, Any]] = []
    for event in events:
        try:
            name, body, attributes = event
            messages.extend(
                _event_messages(
                    name, body, attributes if isinstance(attributes, dict) else {}
                )
            )
        except Exception:  # one odd record must not lose the others
            logger.debug("skipped an unparseable GenAI log event", exc_info=True)
    return messages


def _event_messages(
    name: Any, body: Any, attributes: dict[str, Any]
) -> list[dict[str, Any]]:
    if name == _DETAILS_EVENT:
        messages = _system_instructions(attributes.get("gen_ai.system_instructions"))
        messages += _genai_messages(attributes.get("gen_ai.input.messages"), "input")
        messages += _genai_messages(attributes.get("gen_ai.output.messages"), "output")
        return messages
    if name == "gen_ai.choice":
        return [_choice_message(body)]
    role = _EVENT_ROLES.get(name)
    if role is None:
        return []
    body = body if isinstance(body, dict) else {}
    # The body's role wins: the spec lets e.g. a system event carry role "developer".
    message = {
        "role": _role(body.get("role"), role),
        "content": _content_text(body.get("content")),
        "source": "input",
    }
    calls = body.get("tool_calls")
    if isinstance(calls, list):
        tool_calls = [
            _openai_tool_call(call) for call in calls if isinstance(call, dict)
        ]
        if tool_calls:
            message["tool_calls"] = tool_calls
    if role == "tool":
        call_id = _as_str(body.get("id"))
        if call_id:
            message["tool_call_id"] = call_id
    return [message]


def _choice_message(body: Any) -> dict[str, Any]:
    body = body if isinstance(body, dict) else {}
    inner = body.get("message")
    inner = inner if isinstance(inner, dict) else {}
    message = {
        "role": _role(inner.get("role"), "assistant"),
        "content": _content_text(inner.get("content")),
        "source": "output",
    }
    calls = inner.get("tool_calls")
    if isinstance(calls, list):
        tool_calls = [
            _openai_tool_call(call) for call in calls if isinstance(call, dict)
        ]
        if tool_calls:
            message["tool_calls"] = tool_calls
    finish = _as_str(body.get("finish_reason"))
    if finish:
        message["finish_reason"] = finish[: _LIMITS["finish_reason"]]
    return message


# ---------------------------------------------------------------------------------------
# Field groups. Each fills part of the NormalizedSpan; normalize_span runs them in order.
# ---------------------------------------------------------------------------------------


def _fill_model(span: NormalizedSpan, view: _View) -> None:
    span.provider = view.first(_PROVIDER_KEYS, _SHORT["provider"])
    span.model = view.first(_MODEL_KEYS, _SHORT["model"])


def _fill_tokens(span: NormalizedSpan, view: _View) -> None:
    span.input_tokens = view.first(_INPUT_TOKEN_KEYS, _as_int)
    span.output_tokens = view.first(_OUTPUT_TOKEN_KEYS, _as_int)
    span.cached_tokens = view.first(_CACHED_TOKEN_KEYS, _as_int)
    span.cache_creation_tokens = view.first(_CACHE_CREATION_TOKEN_KEYS, _as_int)
    span.reasoning_tokens = view.first(_REASONING_TOKEN_KEYS, _as_int)
    span.total_tokens = view.first(_TOTAL_TOKEN_KEYS, _as_int)
    if span.input_tokens is None and span.output_tokens is None:
        _fill_langfuse_usage(span, view.attrs.get("langfuse.observation.usage_details"))
    if (
        span.total_tokens is None
        and span.input_tokens is not None
        and span.output_tokens is not None
    ):
        span.total_tokens = span.input_tokens + span.output_tokens


def _fill_langfuse_usage(span: NormalizedSpan, value: Any) -> None:
    usage = _as_dict(value)
    if not usage:
        return
    # Langfuse's "input" excludes cache reads/writes (they are priced as separate usage
    # types); our input_tokens includes them, as OTel GenAI's does.
    cached = _as_int(usage.get("cache_read_input_tokens")) or _as_int(
        usage.get("input_cached_tokens")
    )
    creation = _as_int(usage.get("cache_creation_input_tokens"))
    base = _as_int(usage.get("input"))
    if base is not None:
        span.input_tokens = base + (cached or 0) + (creation or 0)
    span.output_tokens = _as_int(usage.get("output"))
    span.cached_tokens = (
        span.cached_tokens if span.cached_tokens is not None else cached
    )
    if span.cache_creation_tokens is None:
        span.cache_creation_tokens = creation
    if span.total_tokens is None:
        span.total_tokens = _as_int(usage.get("total"))


def _fill_cost(span: NormalizedSpan, view: _View) -> None:
    attrs = view.attrs
    total = _as_decimal(attrs.get("llm.cost.total"))
    if total is None:
        parts = [
            _as_decimal(attrs.get("llm.cost.prompt")),
            _as_decimal(attrs.get("llm.cost.completion")),
        ]
        known = [part for part in parts if part is not None]
        total = sum(known, Decimal(0)) if known else None
    if total is None:
        details = _as_dict(attrs.get("langfuse.observation.cost_details"))
        if details:
            total = _as_decimal(details.get("total"))
            if total is None:
                known = [
                    cost
                    for cost in map(_as_decimal, details.values())
                    if cost is not None
                ]
                total = sum(known, Decimal(0)) if known else None
    span.cost_usd = total


def _fill_messages(span: NormalizedSpan, view: _View, events: list[Any]) -> None:
    span.messages = _span_messages(view)
    if not span.messages and events:
        # Some instrumentations put message events on the span instead of in logs.
        tuples = [
            (event.name, None, event.attributes)
            for event in events
            if getattr(event, "name", None) in _MESSAGE_EVENTS
            and isinstance(getattr(event, "attributes", None), dict)
        ]
        if tuples:
            span.messages = messages_from_log_events(tuples)


def _fill_documents(span: NormalizedSpan, view: _View) -> None:
    rows = view.rows("docs") or view.rows("rerank_docs")
    if rows:
        span.documents = [_document(row) for row in rows]
        return
    items = _as_list(view.attrs.get("gen_ai.retrieval.documents"))
    if items:
        span.documents = [
            _document(item, prefix="") for item in items if isinstance(item, dict)
        ]


def _document(fields: dict[str, Any], prefix: str = "document.") -> dict[str, Any]:
    metadata = fields.get(prefix + "metadata")
    return {
        "id": _as_str(fields.get(prefix + "id")),
        "content": _content_text(fields.get(prefix + "content")) or None,
        "score": _as_float(fields.get(prefix + "score")),
        "metadata": _json_value(metadata) if metadata is not None else {},
    }


def _fill_params(span: NormalizedSpan, view: _View) -> None:
    params: dict[str, Any] = {}
    for key in ("llm.invocation_parameters", "langfuse.observation.model.parameters"):
        invocation = _as_dict(view.attrs.get(key))
        if invocation:
            params.update(invocation)
    for attr_key, name in _LEGACY_PARAM_KEYS:
        value = view.attrs.get(attr_key)
        if value is not None:
            params[name] = value
    for name, value in view.prefixed.get("request", {}).items():
        # gen_ai.request.model is the model, not a parameter; dotted rests are
        # flattened structures (e.g. OpenLLMetry's functions.N.name), not params.
        if name != "model" and "." not in name:
            params[name] = value
    cleaned = ((str(key), _jsonable(value)) for key, value in params.items())
    span.params = {key: value for key, value in cleaned if value is not None}


def _fill_identity(span: NormalizedSpan, view: _View) -> None:
    props = view.prefixed.get("tl_props", {})
    span.session_id = view.first(_SESSION_KEYS, _SHORT["session_id"]) or _SHORT[
        "session_id"
    ](props.get("session_id"))
    span.user_id = view.first(_USER_KEYS, _SHORT["user_id"]) or _SHORT["user_id"](
        props.get("user_id")
    )
    span.trace_name = view.first(_TRACE_NAME_KEYS, _SHORT["trace_name"])
    span.environment = view.first(
        _ENVIRONMENT_KEYS, _SHORT["environment"], resource=True
    )
    span.release = view.first(_RELEASE_KEYS, _SHORT["release"], resource=True)
    span.service_name = view.first(
        _SERVICE_NAME_KEYS, _SHORT["service_name"], resource=True
    )


def _fill_tags(span: NormalizedSpan, view: _View) -> None:
    tags: list[str] = []
    for key in _TAG_KEYS:
        value = view.attrs.get(key)
        items = _as_list(value)
        if items is None and type(value) is str:
            items = value.split(",")  # "a,b" is how some SDKs flatten tags
        for item in items or ():
            tag = _SHORT["tag"](item)
            if tag and tag not in tags:
                tags.append(tag)
    span.tags = tags


def _fill_metadata(span: NormalizedSpan, view: _View) -> None:
    metadata: dict[str, Any] = {}
    project = view.first(("openinference.project.name",), _as_str, resource=True)
    if project:
        metadata["openinference.project.name"] = project
    for key, value in view.prefixed.get("tl_props", {}).items():
        if key not in ("session_id", "user_id"):
            metadata[key] = _json_value(value)
    for key in ("langfuse.trace.metadata", "langfuse.observation.metadata", "metadata"):
        value = view.attrs.get(key)
        if value is None:
            continue
        parsed = _json_value(value)
        if isinstance(parsed, dict):
            metadata.update(parsed)
        elif parsed is not None:
            metadata[key] = parsed
    for key, value in view.prefixed.get("lf_meta", {}).items():
        metadata[key] = _json_value(value)
    span.metadata = metadata


def _fill_prompt(span: NormalizedSpan, view: _View) -> None:
    span.prompt_name = view.first(_PROMPT_NAME_KEYS, _SHORT["prompt_name"])
    span.prompt_version = view.first(_PROMPT_VERSION_KEYS, _SHORT["prompt_version"])
    span.prompt_template = view.first(_PROMPT_TEMPLATE_KEYS, _as_str)
    for key in _PROMPT_VARIABLE_KEYS:
        variables = _as_dict(view.attrs.get(key))
        if variables:
            span.prompt_variables = _jsonable(variables)
            break


def _fill_tool(span: NormalizedSpan, view: _View) -> None:
    span.tool_name = view.first(_TOOL_NAME_KEYS, _SHORT["tool_name"])


def _fill_io(span: NormalizedSpan, view: _View) -> None:
    span.input = _io_text(view, _INPUT_TEXT_KEYS, span.messages, "input")
    span.output = _io_text(view, _OUTPUT_TEXT_KEYS, span.messages, "output")


def _io_text(
    view: _View, keys: Iterable[str], messages: list[dict[str, Any]], source: str
) -> str | None:
    """A span's input or output as a reader wants it: the question, or the answer.

    Plain text is kept verbatim. LLM instrumentations (OpenInference above all) put the
    whole request or response body there as JSON; that becomes the last user message or
    the answer, from the span's parsed messages or else from the body itself. The raw
    JSON is not lost: the span's ``attributes`` column stores every attribute verbatim.
    """
    for key in keys:
        value = view.attrs.get(key)
        if value is None:
            continue
        text = _as_text(value)
        if text is not None:
            declared = _declared_json(view.attrs, key)
            return _readable_io(value, text, declared, messages, source)
    return _messages_text(messages, source)


def _readable_io(
    value: Any,
    text: str,
    declared_json: bool | None,
    messages: list[dict[str, Any]],
    source: str,
) -> str:
    if declared_json is False:
        return text  # declared plain text stays verbatim, even when it parses as JSON
    body = None
    if declared_json is None:
        # Undeclared text is JSON only if it parses: "{city} weather?" is plain text.
        body = _json_body(value, text)
        if body is None:
            return text
    readable = _messages_text(messages, source)
    if readable is None:
        # Declared JSON is parsed only when the messages cannot answer: long-context
        # request bodies run to megabytes, and this runs per span on the ingest path.
        if body is None:
            body = _json_body(value, text)
        readable = _body_text(body, source)
    return readable or text


def _messages_text(messages: list[dict[str, Any]], source: str) -> str | None:
    if source == "input":
        return _input_from_messages(messages)
    return _output_from_messages(messages)


def _body_text(body: dict[str, Any] | list[Any] | None, source: str) -> str | None:
    """The question or answer in a request or response body, if it is recognisable."""
    if body is None:
        return None
    if source == "input":
        return _input_from_messages(_request_messages(body))
    return _output_from_messages(_response_messages(body))


# Only these keys come with a mime type (OpenInference); the others are sniffed.
_MIME_TYPE_KEYS = {"input.value": "input.mime_type", "output.value": "output.mime_type"}


def _declared_json(attrs: dict[str, Any], key: str) -> bool | None:
    """Whether the value's mime type says JSON; None when it has no mime type."""
    mime_key = _MIME_TYPE_KEYS.get(key)
    mime = _as_str(attrs.get(mime_key)) if mime_key else None
    mime = mime.partition(";")[0].strip().lower() if mime else None
    if not mime:
        return None
    return mime == "application/json" or mime.endswith("+json")


def _json_body(value: Any, text: str) -> dict[str, Any] | list[Any] | None:
    """The JSON object or array an input/output value holds; None for anything else."""
    if isinstance(value, (dict, list, tuple)):  # a structured OTLP value
        return list(value) if isinstance(value, tuple) else value
    if text[:64].lstrip()[:1] not in ("{", "["):
        return None
    body = _loads(text)
    return body if isinstance(body, (dict, list)) else None


def _request_messages(body: dict[str, Any] | list[Any]) -> list[dict[str, Any]]:
    """Input messages of a recognisable request body, else [].

    Chat Completions and Anthropic Messages ``messages``; with a ``model`` beside them,
    the Responses API ``input`` (a string or items), legacy Completions ``prompt`` and
    an embeddings ``input`` of one text; a batch of texts has no one question. A chain's
    or tool's own JSON (``{"question": ...}``, ``{"input": ...}`` without a model, a
    bare list) matches none of these.
    """
    if not isinstance(body, dict):
        return []
    if isinstance(body.get("messages"), list):
        return _chat_json_messages(body["messages"], "input")
    if "model" not in body:
        return []
    prompt = body.get("input", body.get("prompt"))
    if isinstance(prompt, list) and len(prompt) == 1 and type(prompt[0]) is str:
        prompt = prompt[0]
    if type(prompt) is str:
        text = _as_str(prompt)
        return [{"role": "user", "content": text, "source": "input"}] if text else []
    if isinstance(prompt, list):
        # Responses items: messages carry a role; tool calls and their outputs do not.
        items = [i for i in prompt if isinstance(i, dict) and "role" in i]
        return _chat_json_messages(items, "input")
    return []


def _response_messages(body: dict[str, Any] | list[Any]) -> list[dict[str, Any]]:
    """Output messages of a recognisable response body, else [].

    Chat Completions ``choices[0].message`` and legacy Completions ``choices[0].text``
    (the first choice, as for finish_reason), the Responses API ``output`` items and
    an Anthropic Messages response.
    """
    if not isinstance(body, dict):
        return []
    choices = body.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        choice = choices[0]
        if isinstance(choice.get("message"), dict):
            return [_choice_message(choice)]
        text = _as_str(choice.get("text"))
        if not text:
            return []
        return [{"role": "assistant", "content": text, "source": "output"}]
    items = body.get("output")
    if body.get("object") == "response" and isinstance(items, list):
        texts = [
            _content_text(item.get("content"))
            for item in items
            if isinstance(item, dict) and item.get("type") == "message"
        ]
        calls = [
            _tool_call(item.get("call_id"), item.get("name"), item.get("arguments"))
            for item in items
            if isinstance(item, dict) and item.get("type") == "function_call"
        ]
        return [_answer_message(texts, calls)]
    parts = body.get("content")
    if body.get("type") == "message" and isinstance(parts, list):
        texts = [
            _as_str(part.get("text")) or ""
            for part in parts
            if isinstance(part, dict) and part.get("type") == "text"
        ]
        calls = [
            _tool_call(part.get("id"), part.get("name"), part.get("input"))
            for part in parts
            if isinstance(part, dict) and part.get("type") == "tool_use"
        ]
        return [_answer_message(texts, calls)]
    return []


def _answer_message(
    texts: list[str], tool_calls: list[dict[str, Any]]
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "\n".join(text for text in texts if text),
        "source": "output",
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def _input_from_messages(messages: list[dict[str, Any]]) -> str | None:
    for message in reversed(messages):
        if (
            message["source"] == "input"
            and message["role"] == "user"
            and message["content"]
        ):
            return message["content"]
    return None


def _output_from_messages(messages: list[dict[str, Any]]) -> str | None:
    for message in messages:
        if message["source"] != "output":
            continue
        if message["content"]:
            return message["content"]
        calls = message.get("tool_calls")
        if calls:
            return "\n".join(
                f"{call['name'] or 'tool'}({call['arguments']})" for call in calls
            )
    return None


def _fill_finish_reason(span: NormalizedSpan, view: _View) -> None:
    reason = view.first(_FINISH_REASON_KEYS, _first_string)
    if reason is None:
        reason = next(
            (
                m["finish_reason"]
                for m in span.messages
                if m["source"] == "output" and "finish_reason" in m
            ),
            None,
        )
    span.finish_reason = reason[: _LIMITS["finish_reason"]] if reason else None


def _first_string(value: Any) -> str | None:
    """finish_reasons is an array attribute (one per choice); the first choice decides."""
    if isinstance(value, (list, tuple)):
        return next((s for s in map(_as_str, value) if s), None)
    return _as_str(value)


def _fill_kind(span: NormalizedSpan, view: _View) -> None:
    for key, table in _KIND_SOURCES:
        value = view.attrs.get(key)
        if type(value) is str:
            kind = table.get(value.strip().lower())
            if kind:
                span.kind = kind
                return
    span.kind = _inferred_kind(span, view)


def _inferred_kind(span: NormalizedSpan, view: _View) -> str:
    """No kind attribute: infer from what the span carries."""
    has_usage = span.input_tokens is not None or span.output_tokens is not None
    if span.model and (has_usage or span.messages):
        return "llm"
    if span.tool_name:
        return "tool"
    if span.documents:
        return "retriever"
    return "unknown"


# Order matters: kind and io read fields filled before them.
_STEPS: tuple[Callable[[NormalizedSpan, _View], None], ...] = (
    _fill_model,
    _fill_tokens,
    _fill_cost,
    _fill_documents,
    _fill_params,
    _fill_identity,
    _fill_tags,
    _fill_metadata,
    _fill_prompt,
    _fill_tool,
)
_LATE_STEPS: tuple[Callable[[NormalizedSpan, _View], None], ...] = (
    _fill_io,
    _fill_finish_reason,
    _fill_kind,
)


def normalize_span(raw: RawSpan) -> NormalizedSpan:
    """Map one span's attributes, whatever their dialect, onto a NormalizedSpan.

    Never raises on attribute content: a malformed attribute costs at most its own
    field group, never the span.
    """
    attrs = raw.attributes if isinstance(raw.attributes, dict) else {}
    resource = raw.resource if isinstance(raw.resource, dict) else {}
    span = NormalizedSpan()
    try:
        view = _View(attrs, resource)
    except Exception:
        logger.exception(
            "span %s: attribute bucketing failed", getattr(raw, "span_id", "?")
        )
        view = _View({}, resource)
    for step in _STEPS:
        _guarded(step, span, view, raw)
    try:
        _fill_messages(span, view, raw.events if isinstance(raw.events, list) else [])
    except Exception:
        logger.exception(
            "span %s: message mapping failed", getattr(raw, "span_id", "?")
        )
        span.messages = []
    for step in _LATE_STEPS:
        _guarded(step, span, view, raw)
    return span


def _guarded(
    step: Callable[[NormalizedSpan, _View], None],
    span: NormalizedSpan,
    view: _View,
    raw: RawSpan,
) -> None:
    try:
        step(span, view)
    except Exception:
        # A mapping bug must not reject a span the client will never re-send.
        logger.exception(
            "span %s: %s failed", getattr(raw, "span_id", "?"), step.__name__
        )
