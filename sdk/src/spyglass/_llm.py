"""``llm_span``: record one model call with the OTel GenAI attribute names.

Messages are accepted in the OpenAI chat shape (``{"role", "content", "tool_calls"}``) or
already in the GenAI parts shape (``{"role", "parts": [...]}``) and exported as
``gen_ai.input.messages`` / ``gen_ai.output.messages`` JSON strings in the parts shape.
OpenInference twins (``llm.model_name``, ``llm.token_count.*``, ``input.value`` ...) are
added so tools that only speak OpenInference still see the essentials.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind

from . import _attributes as A
from ._context import prompt_attributes
from ._masking import apply_mask
from ._observe import record_error, set_value
from ._serialize import dumps, to_jsonable, truncate
from ._setup import get_mask, get_tracer, max_field_chars

_TEXT_KEYS = ("content", "arguments", "response")


def _parse_json(text: Any) -> Any:
    if isinstance(text, str):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _content_parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, list):
        parts: list[dict[str, Any]] = []
        for item in content:
            if isinstance(item, str):
                parts.append({"type": "text", "content": item})
            elif isinstance(item, dict):
                kind = item.get("type")
                if kind in ("text", "input_text", "output_text"):
                    parts.append({"type": "text", "content": item.get("text", item.get("content", ""))})
                elif kind == "image_url":
                    image = item.get("image_url") or {}
                    url = image.get("url") if isinstance(image, dict) else image
                    parts.append({"type": "uri", "modality": "image", "uri": url})
                elif kind == "refusal":
                    parts.append({"type": "refusal", "content": item.get("refusal", "")})
                else:
                    parts.append(
                        {"type": str(kind or "unknown"), **{k: v for k, v in item.items() if k != "type"}}
                    )
        return parts
    return [{"type": "text", "content": str(content)}]


def to_genai_message(message: Any) -> dict[str, Any]:
    """One message (OpenAI chat shape, GenAI shape or a pydantic object) -> GenAI parts shape."""
    msg = to_jsonable(message)
    if not isinstance(msg, dict):
        return {"role": "user", "parts": [{"type": "text", "content": str(msg)}]}
    if "parts" in msg:
        return msg
    role = msg.get("role") or "user"
    parts = _content_parts(msg.get("content"))
    if msg.get("refusal"):
        parts.append({"type": "refusal", "content": msg["refusal"]})
    for call in msg.get("tool_calls") or ():
        fn = call.get("function") or {}
        parts.append(
            {
                "type": "tool_call",
                "id": call.get("id"),
                "name": fn.get("name", call.get("name")),
                "arguments": _parse_json(fn.get("arguments", call.get("arguments"))),
            }
        )
    if role == "tool":
        parts = [
            {"type": "tool_call_response", "id": msg.get("tool_call_id"), "response": msg.get("content")}
        ]
    out: dict[str, Any] = {"role": role, "parts": parts}
    if msg.get("name"):
        out["name"] = msg["name"]
    if msg.get("finish_reason"):
        out["finish_reason"] = msg["finish_reason"]
    return out


def _mask_message(message: dict[str, Any]) -> dict[str, Any]:
    mask = get_mask()
    if mask is None:
        return message
    parts = []
    for part in message.get("parts") or ():
        part = dict(part)
        for key in _TEXT_KEYS:
            if part.get(key) is not None:
                part[key] = apply_mask(mask, part[key])
        parts.append(part)
    return {**message, "parts": parts}


def _messages_json(messages: Sequence[Any]) -> tuple[list[dict[str, Any]], str]:
    converted = [_mask_message(to_genai_message(m)) for m in messages]
    text, _ = truncate(dumps(converted), max_field_chars())
    return converted, text


def _message_text(message: Mapping[str, Any]) -> str:
    return "".join(str(p.get("content", "")) for p in message.get("parts") or () if p.get("type") == "text")


class LLMSpan:
    """Handle yielded by :func:`llm_span`; every setter is a cheap no-op when not recording."""

    def __init__(self, span: Span) -> None:
        self.span = span

    @property
    def recording(self) -> bool:
        return self.span.is_recording()

    def set_attribute(self, key: str, value: Any) -> None:
        if self.recording:
            self.span.set_attribute(key, value)

    def set_input_messages(self, messages: Sequence[Any]) -> None:
        """Record the prompt (a list of chat messages)."""
        if not self.recording:
            return
        try:
            _, text = _messages_json(messages)
            self.span.set_attribute(A.GEN_AI_INPUT_MESSAGES, text)
            self.span.set_attribute(A.INPUT_VALUE, text)
            self.span.set_attribute(A.INPUT_MIME, "application/json")
        except Exception:
            pass

    def set_input(self, value: Any) -> None:
        """Record a non-chat input (a completion prompt, texts to embed ...)."""
        if self.recording:
            set_value(self.span, A.INPUT_VALUE, A.INPUT_MIME, value)

    def set_params(self, params: Mapping[str, Any]) -> None:
        """Record request parameters (temperature, max_tokens, top_p, stop, seed ...)."""
        if not self.recording or not params:
            return
        try:
            clean = {k: to_jsonable(v) for k, v in params.items() if v is not None}
            for key, value in clean.items():
                attr = A.GEN_AI_REQUEST_PARAMS.get(key)
                if attr is None:
                    continue
                if key == "stop" and isinstance(value, str):
                    value = [value]
                if isinstance(value, bool | int | float | str) or (
                    isinstance(value, list) and all(isinstance(v, str) for v in value)
                ):
                    self.span.set_attribute(attr, value)
            self.span.set_attribute(A.LLM_INVOCATION_PARAMETERS, dumps(clean))
        except Exception:
            pass

    def set_output(
        self,
        text: str | None = None,
        *,
        messages: Sequence[Any] | None = None,
        finish_reasons: Sequence[str] | None = None,
    ) -> None:
        """Record the completion as plain ``text`` or as output ``messages``."""
        if not self.recording:
            return
        try:
            if messages is None and text is not None:
                messages = [{"role": "assistant", "content": text}]
            if messages is not None:
                converted, payload = _messages_json(messages)
                if finish_reasons:
                    for msg, reason in zip(converted, finish_reasons, strict=False):
                        msg.setdefault("finish_reason", reason)
                    payload, _ = truncate(dumps(converted), max_field_chars())
                self.span.set_attribute(A.GEN_AI_OUTPUT_MESSAGES, payload)
                plain = "\n".join(_message_text(m) for m in converted)
                self.span.set_attribute(A.OUTPUT_VALUE, truncate(plain, max_field_chars())[0])
                self.span.set_attribute(A.OUTPUT_MIME, "text/plain")
            if finish_reasons:
                self.span.set_attribute(A.GEN_AI_FINISH_REASONS, [str(r) for r in finish_reasons])
        except Exception:
            pass

    def set_usage(
        self,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cache_read_input_tokens: int | None = None,
        cache_creation_input_tokens: int | None = None,
        reasoning_tokens: int | None = None,
        total_tokens: int | None = None,
    ) -> None:
        """Record token usage. ``input_tokens`` includes cached tokens (GenAI convention)."""
        if not self.recording:
            return
        pairs = (
            (input_tokens, (A.GEN_AI_INPUT_TOKENS, A.LLM_TOKENS_PROMPT)),
            (output_tokens, (A.GEN_AI_OUTPUT_TOKENS, A.LLM_TOKENS_COMPLETION)),
            (cache_read_input_tokens, (A.GEN_AI_CACHE_READ_TOKENS, A.LLM_TOKENS_CACHE_READ)),
            (cache_creation_input_tokens, (A.GEN_AI_CACHE_CREATION_TOKENS,)),
            (reasoning_tokens, (A.GEN_AI_REASONING_TOKENS, A.LLM_TOKENS_REASONING)),
        )
        for value, keys in pairs:
            if isinstance(value, int):
                for key in keys:
                    self.span.set_attribute(key, value)
        if total_tokens is None and isinstance(input_tokens, int) and isinstance(output_tokens, int):
            total_tokens = input_tokens + output_tokens
        if isinstance(total_tokens, int):
            self.span.set_attribute(A.LLM_TOKENS_TOTAL, total_tokens)

    def set_response(
        self, *, model: str | None = None, id: str | None = None, finish_reasons: Sequence[str] | None = None
    ) -> None:
        """Record what the provider answered with (the resolved model name, response id)."""
        if not self.recording:
            return
        if model:
            self.span.set_attribute(A.GEN_AI_RESPONSE_MODEL, model)
            self.span.set_attribute(A.LLM_MODEL_NAME, model)
        if id:
            self.span.set_attribute(A.GEN_AI_RESPONSE_ID, id)
        if finish_reasons:
            self.span.set_attribute(A.GEN_AI_FINISH_REASONS, [str(r) for r in finish_reasons])

    def record_error(self, exc: BaseException) -> None:
        if self.recording:
            record_error(self.span, exc)

    def end(self) -> None:
        self.span.end()


_OPERATION_TO_KIND = {"embeddings": "EMBEDDING", "retrieval": "RETRIEVER", "execute_tool": "TOOL"}


def start_llm_span(
    *,
    model: str | None = None,
    provider: str | None = None,
    operation: str = "chat",
    messages: Sequence[Any] | None = None,
    params: Mapping[str, Any] | None = None,
    name: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    prompt: Any = None,
) -> LLMSpan:
    """Start (but do not make current) an LLM span; the caller must call ``.end()``."""
    tracer = get_tracer()
    if tracer is None:
        return LLMSpan(INVALID_SPAN)
    attrs: dict[str, Any] = {
        A.GEN_AI_OPERATION: operation,
        A.OI_SPAN_KIND: _OPERATION_TO_KIND.get(operation, "LLM"),
        A.SPYGLASS_KIND: _OPERATION_TO_KIND.get(operation, "LLM").lower(),
    }
    if provider:
        attrs[A.GEN_AI_PROVIDER] = provider
        attrs[A.LLM_PROVIDER] = provider
    if model:
        attrs[A.GEN_AI_REQUEST_MODEL] = model
        attrs[A.LLM_MODEL_NAME] = model
    if prompt is not None:
        attrs.update(prompt_attributes(prompt))
    if attributes:
        attrs.update(attributes)
    span_name = name or (f"{operation} {model}" if model else operation)
    try:
        span = tracer.start_span(span_name, kind=SpanKind.CLIENT, attributes=attrs)
    except Exception:
        return LLMSpan(INVALID_SPAN)
    handle = LLMSpan(span)
    if messages is not None:
        handle.set_input_messages(messages)
    if params:
        handle.set_params(params)
    return handle


@contextmanager
def llm_span(
    *,
    model: str | None = None,
    provider: str | None = None,
    operation: str = "chat",
    messages: Sequence[Any] | None = None,
    params: Mapping[str, Any] | None = None,
    name: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    prompt: Any = None,
) -> Iterator[LLMSpan]:
    """Record one LLM call as a span named ``"{operation} {model}"``.

    Use the yielded :class:`LLMSpan` to add output, usage and response details. An
    exception inside the block is recorded as the span's error and re-raised.
    ``prompt`` (a fetched :class:`spyglass.Prompt`, or anything ``context(prompt=)``
    accepts) links this span, and so its trace, to that prompt version.
    """
    handle = start_llm_span(
        model=model,
        provider=provider,
        operation=operation,
        messages=messages,
        params=params,
        name=name,
        attributes=attributes,
        prompt=prompt,
    )
    token = None
    if handle.span is not INVALID_SPAN:
        token = otel_context.attach(trace.set_span_in_context(handle.span))
    try:
        yield handle
    except BaseException as exc:
        handle.record_error(exc)
        raise
    finally:
        if token is not None:
            otel_context.detach(token)
        handle.end()
