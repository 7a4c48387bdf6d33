"""``instrument_openai()``: trace the official ``openai`` client without code changes.

We wrap the ``create`` methods of the chat-completions and embeddings resources (sync and
async) on the classes, so every client instance, existing or future, is covered. The
caller's request is never modified: usage for streams is recorded only when the caller
asked for it (``stream_options={"include_usage": True}``).

If another OpenAI instrumentation (OpenInference, OpenLLMetry, the official
opentelemetry-instrumentation-openai-v2) is active, we step aside at call time so the
same request is not recorded twice; our SpanProcessor still adds Spyglass context to
their spans.
"""

from __future__ import annotations

import functools
import importlib
import sys
import weakref
from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from . import _attributes as A
from ._llm import LLMSpan, start_llm_span
from ._setup import get_tracer

_TARGETS = (
    ("openai.resources.chat.completions", "Completions", "chat", False),
    ("openai.resources.chat.completions", "AsyncCompletions", "chat", True),
    ("openai.resources.embeddings", "Embeddings", "embeddings", False),
    ("openai.resources.embeddings", "AsyncEmbeddings", "embeddings", True),
)
_FOREIGN_INSTRUMENTATIONS = (
    "openinference.instrumentation.openai",
    "opentelemetry.instrumentation.openai_v2",
    "opentelemetry.instrumentation.openai",
)
_CHAT_PARAMS = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "frequency_penalty",
    "presence_penalty",
    "seed",
    "stop",
    "n",
    "reasoning_effort",
    "response_format",
    "tool_choice",
    "stream",
)
_MARK = "__spyglass_original__"
_patched: list[tuple[type, Callable[..., Any]]] = []
_active = False


def _foreign_instrumentation_active() -> bool:
    # Instrumentors are singletons (BaseInstrumentor.__new__); only look at modules that
    # are already imported so this check costs a few dict lookups per call.
    for module_name in _FOREIGN_INSTRUMENTATIONS:
        module = sys.modules.get(module_name)
        instrumentor_cls = getattr(module, "OpenAIInstrumentor", None) if module else None
        instance = getattr(instrumentor_cls, "_instance", None)
        if instance is not None and getattr(instance, "_is_instrumented_by_opentelemetry", False):
            return True
    return False


def _should_record() -> bool:
    if not _active or get_tracer() is None:
        return False
    if otel_context.get_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY):
        return False
    return not _foreign_instrumentation_active()


def _given(value: Any) -> bool:
    # openai marks "not passed" with Omit/NotGiven sentinels.
    return value is not None and type(value).__name__ not in ("Omit", "NotGiven")


def _server_attributes(resource: Any) -> dict[str, Any]:
    try:
        url = resource._client.base_url
        attrs: dict[str, Any] = {A.SERVER_ADDRESS: str(url.host)}
        if url.port:
            attrs[A.SERVER_PORT] = int(url.port)
        return attrs
    except Exception:
        return {}


def _start(resource: Any, operation: str, kwargs: dict[str, Any]) -> LLMSpan:
    model = kwargs.get("model")
    messages = kwargs.get("messages")
    handle = start_llm_span(
        model=str(model) if _given(model) else None,
        provider="openai",
        operation=operation,
        # Never iterate a generator the caller handed us: it is theirs to consume.
        messages=messages if isinstance(messages, list | tuple) else None,
        params={k: kwargs[k] for k in _CHAT_PARAMS if k in kwargs and _given(kwargs[k])},
        attributes=_server_attributes(resource),
    )
    if operation == "embeddings" and _given(kwargs.get("input")):
        handle.set_input(kwargs["input"])
    return handle


def _record_usage(handle: LLMSpan, usage: Any) -> None:
    if usage is None:
        return
    prompt_details = getattr(usage, "prompt_tokens_details", None)
    completion_details = getattr(usage, "completion_tokens_details", None)
    handle.set_usage(
        input_tokens=getattr(usage, "prompt_tokens", None),
        output_tokens=getattr(usage, "completion_tokens", None),
        total_tokens=getattr(usage, "total_tokens", None),
        cache_read_input_tokens=getattr(prompt_details, "cached_tokens", None),
        reasoning_tokens=getattr(completion_details, "reasoning_tokens", None),
    )


def _record_completion(handle: LLMSpan, result: Any) -> None:
    choices = getattr(result, "choices", None)
    if choices is None:
        return  # e.g. with_raw_response: an HTTP response object, nothing to read safely
    handle.set_response(model=getattr(result, "model", None), id=getattr(result, "id", None))
    reasons = [c.finish_reason for c in choices if getattr(c, "finish_reason", None)]
    handle.set_output(messages=[c.message for c in choices], finish_reasons=reasons or None)
    _record_usage(handle, getattr(result, "usage", None))


def _record_embeddings(handle: LLMSpan, result: Any) -> None:
    handle.set_response(model=getattr(result, "model", None))
    usage = getattr(result, "usage", None)
    handle.set_usage(input_tokens=getattr(usage, "prompt_tokens", None))
    data = getattr(result, "data", None) or []
    vector = getattr(data[0], "embedding", None) if data else None
    if isinstance(vector, list):
        handle.set_attribute(A.GEN_AI_EMBEDDING_DIMENSIONS, len(vector))


class _StreamRecorder:
    """Accumulates streamed chunks into one output; ends the span exactly once."""

    def __init__(self, handle: LLMSpan) -> None:
        self.handle = handle
        self.choices: dict[int, dict[str, Any]] = {}
        self.model: str | None = None
        self.id: str | None = None
        self.usage: Any = None
        self.done = False

    def add(self, chunk: Any) -> None:
        try:
            self.model = getattr(chunk, "model", None) or self.model
            self.id = getattr(chunk, "id", None) or self.id
            if getattr(chunk, "usage", None) is not None:
                self.usage = chunk.usage
            for choice in getattr(chunk, "choices", None) or ():
                acc = self.choices.setdefault(choice.index, {"role": "assistant", "text": [], "tools": {}})
                delta = choice.delta
                if delta is not None:
                    if delta.content:
                        acc["text"].append(delta.content)
                    for call in getattr(delta, "tool_calls", None) or ():
                        tool = acc["tools"].setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                        tool["id"] = call.id or tool["id"]
                        if call.function is not None:
                            tool["name"] += call.function.name or ""
                            tool["arguments"] += call.function.arguments or ""
                if choice.finish_reason:
                    acc["finish_reason"] = choice.finish_reason
        except Exception:  # an unexpected chunk shape must not break the caller's loop
            pass

    def finish(self, error: BaseException | None = None) -> None:
        if self.done:
            return
        self.done = True
        handle = self.handle
        try:
            if error is not None:
                handle.record_error(error)
            handle.set_response(model=self.model, id=self.id)
            messages, reasons = [], []
            for index in sorted(self.choices):
                acc = self.choices[index]
                message: dict[str, Any] = {"role": acc["role"], "content": "".join(acc["text"])}
                if acc["tools"]:
                    message["tool_calls"] = [
                        {"id": t["id"], "function": {"name": t["name"], "arguments": t["arguments"]}}
                        for _, t in sorted(acc["tools"].items())
                    ]
                messages.append(message)
                if acc.get("finish_reason"):
                    reasons.append(acc["finish_reason"])
            if messages:
                handle.set_output(messages=messages, finish_reasons=reasons or None)
            _record_usage(handle, self.usage)
        finally:
            handle.end()


def _wrap_sync_stream(stream: Any, handle: LLMSpan) -> Any:
    inner = getattr(stream, "_iterator", None)
    if inner is None:  # unknown openai internals: keep the span, skip the output
        handle.end()
        return stream
    recorder = _StreamRecorder(handle)

    def iterate() -> Any:
        try:
            for chunk in inner:
                recorder.add(chunk)
                yield chunk
        except Exception as exc:
            recorder.finish(exc)
            raise
        finally:
            recorder.finish()

    original_close = stream.close

    def close() -> None:
        try:
            original_close()
        finally:
            recorder.finish()

    stream._iterator = iterate()
    stream.close = close
    # A stream that is never iterated nor closed still ends its span when collected.
    weakref.finalize(stream, recorder.finish)
    return stream


def _wrap_async_stream(stream: Any, handle: LLMSpan) -> Any:
    inner = getattr(stream, "_iterator", None)
    if inner is None:
        handle.end()
        return stream
    recorder = _StreamRecorder(handle)

    async def iterate() -> Any:
        try:
            async for chunk in inner:
                recorder.add(chunk)
                yield chunk
        except Exception as exc:
            recorder.finish(exc)
            raise
        finally:
            recorder.finish()

    original_close = stream.close

    async def close() -> None:
        try:
            await original_close()
        finally:
            recorder.finish()

    stream._iterator = iterate()
    stream.close = close
    weakref.finalize(stream, recorder.finish)
    return stream


def _is_stream(result: Any) -> bool:
    return hasattr(result, "_iterator") and hasattr(result, "response") and not hasattr(result, "choices")


def _finish(operation: str, handle: LLMSpan, result: Any, is_async: bool) -> Any:
    try:
        if operation == "chat" and _is_stream(result):
            return (_wrap_async_stream if is_async else _wrap_sync_stream)(result, handle)
        if operation == "chat":
            _record_completion(handle, result)
        else:
            _record_embeddings(handle, result)
    except Exception:
        pass
    handle.end()
    return result


def _make_wrapper(original: Callable[..., Any], operation: str, is_async: bool) -> Callable[..., Any]:
    if is_async:

        @functools.wraps(original)
        async def async_create(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not _should_record():
                return await original(self, *args, **kwargs)
            handle = _start(self, operation, kwargs)
            token = otel_context.attach(trace.set_span_in_context(handle.span))
            try:
                result = await original(self, *args, **kwargs)
            except BaseException as exc:
                handle.record_error(exc)
                handle.end()
                raise
            finally:
                otel_context.detach(token)
            return _finish(operation, handle, result, True)

        setattr(async_create, _MARK, original)
        return async_create

    @functools.wraps(original)
    def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not _should_record():
            return original(self, *args, **kwargs)
        handle = _start(self, operation, kwargs)
        token = otel_context.attach(trace.set_span_in_context(handle.span))
        try:
            result = original(self, *args, **kwargs)
        except BaseException as exc:
            handle.record_error(exc)
            handle.end()
            raise
        finally:
            otel_context.detach(token)
        return _finish(operation, handle, result, False)

    setattr(create, _MARK, original)
    return create


def instrument_openai() -> bool:
    """Trace chat completions (incl. streaming) and embeddings of the ``openai`` package.

    Returns False (and changes nothing) when ``openai`` is not installed. Idempotent.
    """
    global _active
    if _patched:
        _active = True
        return True
    try:
        for module_name, class_name, operation, is_async in _TARGETS:
            cls = getattr(importlib.import_module(module_name), class_name)
            original = cls.__dict__["create"]
            if getattr(original, _MARK, None) is not None:
                continue
            cls.create = _make_wrapper(original, operation, is_async)
            _patched.append((cls, original))
    except (ImportError, AttributeError, KeyError):
        uninstrument_openai()
        return False
    _active = True
    return True


def uninstrument_openai() -> None:
    """Undo :func:`instrument_openai`."""
    global _active
    _active = False
    while _patched:
        cls, original = _patched.pop()
        current = cls.__dict__.get("create")
        if current is not None and getattr(current, _MARK, None) is original:
            cls.create = original
        # If someone wrapped on top of us, leave their wrapper: our layer is inert
        # because _active is False.
