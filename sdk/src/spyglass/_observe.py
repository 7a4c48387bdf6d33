"""``@observe``: one span per call of a function, coroutine or generator.

Arguments and results are recorded as ``input.value`` / ``output.value`` (masked, JSON
safe, truncated). Generators keep their span open until they are exhausted or closed,
and the span is made current only while the generator body runs, so spans started inside
it nest correctly without leaking into the consumer's code between items.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from . import _attributes as A
from ._masking import apply_mask
from ._serialize import to_attribute, to_jsonable
from ._setup import get_mask, get_tracer, max_field_chars

F = TypeVar("F", bound=Callable[..., Any])

_MAX_STREAM_ITEMS = 1_000
_SKIP_PARAMS = frozenset({"self", "cls"})


def set_value(span: Span, key: str, mime_key: str, value: Any) -> None:
    """Record an input/output value: mask, make JSON-safe, truncate. Never raises."""
    try:
        data = apply_mask(get_mask(), to_jsonable(value))
        text, mime = to_attribute(data, max_field_chars())
        span.set_attribute(key, text)
        span.set_attribute(mime_key, mime)
    except Exception:
        pass


def record_error(span: Span, exc: BaseException) -> None:
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    span.set_attribute(A.ERROR_TYPE, type(exc).__qualname__)


def _call_arguments(sig: inspect.Signature | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if sig is None:
        return {"args": list(args), "kwargs": kwargs}
    try:
        bound = sig.bind_partial(*args, **kwargs)
    except TypeError:
        return {"args": list(args), "kwargs": kwargs}
    out: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        if name in _SKIP_PARAMS:
            continue
        param = sig.parameters[name]
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        else:
            out[name] = value
    return out


def _stream_output(items: list[Any]) -> Any:
    # Token streams read best joined; anything else is kept as the list of items.
    if items and all(isinstance(i, str) for i in items):
        return "".join(items)
    return items


class _Observer:
    def __init__(
        self, fn: Callable[..., Any], name: str | None, kind: str, capture_input: bool, capture_output: bool
    ):
        self.fn = fn
        self.name = name or getattr(fn, "__qualname__", None) or getattr(fn, "__name__", "call")
        self.kind = kind
        self.capture_input = capture_input
        self.capture_output = capture_output
        try:
            self.sig: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):
            self.sig = None
        attrs: dict[str, Any] = {A.OI_SPAN_KIND: kind.upper(), A.SPYGLASS_KIND: kind}
        if kind in A.KIND_TO_OPERATION:
            attrs[A.GEN_AI_OPERATION] = A.KIND_TO_OPERATION[kind]
        if kind == "tool":
            attrs[A.GEN_AI_TOOL_NAME] = attrs[A.TOOL_NAME] = self.name
        if kind == "agent":
            attrs[A.GEN_AI_AGENT_NAME] = self.name
        self.static_attrs = attrs

    def start(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Span | None:
        tracer = get_tracer()
        if tracer is None:
            return None
        try:
            span = tracer.start_span(self.name, attributes=self.static_attrs)
        except Exception:
            return None
        if self.capture_input and span.is_recording():
            set_value(span, A.INPUT_VALUE, A.INPUT_MIME, _call_arguments(self.sig, args, kwargs))
        return span

    def finish(self, span: Span, result: Any) -> None:
        if self.capture_output and span.is_recording():
            set_value(span, A.OUTPUT_VALUE, A.OUTPUT_MIME, result)
        span.end()


def _wrap(obs: _Observer) -> Callable[..., Any]:
    fn = obs.fn
    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def async_gen_wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
            span = obs.start(args, kwargs)
            agen = fn(*args, **kwargs)
            ctx = trace.set_span_in_context(span) if span is not None else None
            items: list[Any] = []
            method: Any = agen.asend
            arg: Any = None
            try:
                while True:
                    token = otel_context.attach(ctx) if ctx is not None else None
                    try:
                        item = await method(arg)
                    except StopAsyncIteration:
                        break
                    finally:
                        if token is not None:
                            otel_context.detach(token)
                    if span is not None and len(items) < _MAX_STREAM_ITEMS:
                        items.append(item)
                    try:
                        arg = yield item
                        method = agen.asend
                    except GeneratorExit:
                        await agen.aclose()
                        raise
                    except BaseException as exc:
                        method, arg = agen.athrow, exc
            except GeneratorExit:
                if span is not None:
                    obs.finish(span, _stream_output(items))
                raise
            except BaseException as exc:
                if span is not None:
                    record_error(span, exc)
                    span.end()
                raise
            if span is not None:
                obs.finish(span, _stream_output(items))

        return async_gen_wrapper

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            span = obs.start(args, kwargs)
            gen = fn(*args, **kwargs)
            if span is None:
                return (yield from gen)
            ctx = trace.set_span_in_context(span)
            items: list[Any] = []
            method: Any = gen.send
            arg: Any = None
            try:
                while True:
                    token = otel_context.attach(ctx)
                    try:
                        item = method(arg)
                    except StopIteration as stop:
                        result = stop.value
                        break
                    finally:
                        otel_context.detach(token)
                    if len(items) < _MAX_STREAM_ITEMS:
                        items.append(item)
                    try:
                        arg = yield item
                        method = gen.send
                    except GeneratorExit:
                        gen.close()
                        raise
                    except BaseException as exc:
                        method, arg = gen.throw, exc
            except GeneratorExit:
                obs.finish(span, _stream_output(items))
                raise
            except BaseException as exc:
                record_error(span, exc)
                span.end()
                raise
            obs.finish(span, _stream_output(items))
            return result

        return gen_wrapper

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            span = obs.start(args, kwargs)
            if span is None:
                return await fn(*args, **kwargs)
            token = otel_context.attach(trace.set_span_in_context(span))
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                record_error(span, exc)
                span.end()
                raise
            finally:
                otel_context.detach(token)
            obs.finish(span, result)
            return result

        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        span = obs.start(args, kwargs)
        if span is None:
            return fn(*args, **kwargs)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            record_error(span, exc)
            span.end()
            raise
        finally:
            otel_context.detach(token)
        obs.finish(span, result)
        return result

    return wrapper


@overload
def observe(fn: F, /) -> F: ...


@overload
def observe(
    *,
    name: str | None = None,
    kind: str = "chain",
    capture_input: bool = True,
    capture_output: bool = True,
) -> Callable[[F], F]: ...


def observe(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    kind: str = "chain",
    capture_input: bool = True,
    capture_output: bool = True,
) -> Any:
    """Trace every call of the decorated function as a span.

    Works bare (``@observe``) or with options (``@observe(kind="tool")``) on sync and
    async functions and generators. ``kind`` is one of chain, llm, tool, retriever,
    agent, embedding, reranker, guardrail, evaluator (any string is accepted).
    Exceptions are recorded on the span and re-raised unchanged.
    """

    def decorate(func: F) -> F:
        return _wrap(_Observer(func, name, kind.lower(), capture_input, capture_output))  # type: ignore[return-value]

    if fn is not None:
        return decorate(fn)  # type: ignore[arg-type]
    return decorate
