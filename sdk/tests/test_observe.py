from __future__ import annotations

import asyncio

import pytest
from opentelemetry.trace import StatusCode
from sdk_helpers import attrs, json_attr

import spyglass


def test_sync_function_records_arguments_and_result(traced):
    t = traced()

    @spyglass.observe
    def add(a: int, b: int = 2) -> dict:
        return {"sum": a + b}

    assert add(1, b=3) == {"sum": 4}
    span = t.span("test_sync_function_records_arguments_and_result.<locals>.add")
    assert json_attr(span, "input.value") == {"a": 1, "b": 3}
    assert json_attr(span, "output.value") == {"sum": 4}
    assert attrs(span)["output.mime_type"] == "application/json"
    assert attrs(span)["openinference.span.kind"] == "CHAIN"


def test_decorator_with_arguments_sets_name_and_kind(traced):
    t = traced()

    @spyglass.observe(name="search", kind="tool")
    def search(query: str) -> str:
        return "result"

    search("cats")
    span = t.span("search")
    a = attrs(span)
    assert a["openinference.span.kind"] == "TOOL"
    assert a["gen_ai.operation.name"] == "execute_tool"
    assert a["gen_ai.tool.name"] == "search"
    assert a["output.value"] == "result"
    assert a["output.mime_type"] == "text/plain"


def test_method_input_omits_self(traced):
    t = traced()

    class Bot:
        @spyglass.observe(name="reply")
        def reply(self, text: str) -> str:
            return text.upper()

    assert Bot().reply("hi") == "HI"
    assert json_attr(t.span("reply"), "input.value") == {"text": "hi"}


def test_async_function_is_traced(traced):
    t = traced()

    @spyglass.observe(name="fetch")
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    assert asyncio.run(fetch(21)) == 42
    assert attrs(t.span("fetch"))["output.value"] == "42"


def test_nested_calls_form_a_tree(traced):
    t = traced()

    @spyglass.observe(name="inner")
    def inner() -> int:
        return 1

    @spyglass.observe(name="outer")
    def outer() -> int:
        return inner() + 1

    outer()
    spans = {s.name: s for s in t.spans()}
    assert spans["inner"].parent.span_id == spans["outer"].context.span_id
    assert spans["inner"].context.trace_id == spans["outer"].context.trace_id


def test_exception_is_recorded_and_reraised(traced):
    t = traced()

    @spyglass.observe(name="fails")
    def fails() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        fails()
    span = t.span("fails")
    assert span.status.status_code is StatusCode.ERROR
    assert "ValueError" in span.status.description
    assert [e.name for e in span.events] == ["exception"]
    assert attrs(span)["error.type"] == "ValueError"


def test_async_exception_is_recorded(traced):
    t = traced()

    @spyglass.observe(name="afails")
    async def afails() -> None:
        raise KeyError("k")

    with pytest.raises(KeyError):
        asyncio.run(afails())
    assert t.span("afails").status.status_code is StatusCode.ERROR


def test_generator_span_covers_iteration_and_joins_string_output(traced):
    t = traced()

    @spyglass.observe(name="child")
    def child() -> str:
        return "c"

    @spyglass.observe(name="tokens")
    def tokens(n: int):
        for i in range(n):
            child()
            yield f"t{i} "
        return "done"

    assert list(tokens(3)) == ["t0 ", "t1 ", "t2 "]
    spans = t.spans()
    gen_span = next(s for s in spans if s.name == "tokens")
    assert attrs(gen_span)["output.value"] == "t0 t1 t2 "
    children = [s for s in spans if s.name == "child"]
    assert len(children) == 3
    assert all(c.parent.span_id == gen_span.context.span_id for c in children)


def test_generator_closed_early_still_ends_span(traced):
    t = traced()

    @spyglass.observe(name="numbers")
    def numbers():
        yield from range(100)

    gen = numbers()
    assert next(gen) == 0
    assert next(gen) == 1
    gen.close()
    assert json_attr(t.span("numbers"), "output.value") == [0, 1]


def test_generator_exception_is_recorded(traced):
    t = traced()

    @spyglass.observe(name="broken_gen")
    def broken_gen():
        yield 1
        raise RuntimeError("mid-stream")

    with pytest.raises(RuntimeError):
        list(broken_gen())
    assert t.span("broken_gen").status.status_code is StatusCode.ERROR


def test_generator_send_and_return_value_pass_through(traced):
    traced()

    @spyglass.observe
    def echo():
        received = yield "ready"
        yield f"got {received}"
        return "finished"

    gen = echo()
    assert next(gen) == "ready"
    assert gen.send("x") == "got x"
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert stop.value.value == "finished"


def test_async_generator_is_traced(traced):
    t = traced()

    @spyglass.observe(name="inner_async")
    async def inner_async() -> int:
        return 1

    @spyglass.observe(name="agen")
    async def agen(n: int):
        for i in range(n):
            await inner_async()
            yield i

    async def consume() -> list[int]:
        return [i async for i in agen(3)]

    assert asyncio.run(consume()) == [0, 1, 2]
    spans = t.spans()
    gen_span = next(s for s in spans if s.name == "agen")
    assert json_attr(gen_span, "output.value") == [0, 1, 2]
    assert all(s.parent.span_id == gen_span.context.span_id for s in spans if s.name == "inner_async")


def test_async_generator_exception_is_recorded(traced):
    t = traced()

    @spyglass.observe(name="abroken")
    async def abroken():
        yield 1
        raise RuntimeError("boom")

    async def consume() -> None:
        async for _ in abroken():
            pass

    with pytest.raises(RuntimeError):
        asyncio.run(consume())
    assert t.span("abroken").status.status_code is StatusCode.ERROR


def test_large_values_are_truncated(traced):
    t = traced(max_field_chars=100)

    @spyglass.observe(name="big")
    def big(text: str) -> str:
        return text

    big("x" * 10_000)
    a = attrs(t.span("big"))
    assert len(a["output.value"]) < 200
    assert "truncated" in a["output.value"]
    assert a["input.mime_type"] == "text/plain"  # a cut JSON document is no longer JSON


def test_unserialisable_values_do_not_break_the_call(traced):
    t = traced()

    class Weird:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    @spyglass.observe(name="weird")
    def weird(x: object) -> object:
        return x

    value = Weird()
    assert weird(value) is value
    assert "unserialisable" in attrs(t.span("weird"))["output.value"]


def test_capture_flags_skip_input_and_output(traced):
    t = traced()

    @spyglass.observe(name="secret", capture_input=False, capture_output=False)
    def secret(password: str) -> str:
        return password

    secret("hunter2")
    a = attrs(t.span("secret"))
    assert "input.value" not in a and "output.value" not in a


def test_sample_rate_zero_exports_nothing(traced):
    t = traced(sample_rate=0.0)

    @spyglass.observe
    def work() -> int:
        return 1

    for _ in range(20):
        assert work() == 1
    assert t.spans() == []


def test_disabled_sdk_keeps_decorators_working_without_spans(traced):
    t = traced(enabled=False)

    @spyglass.observe
    def work(x: int) -> int:
        return x + 1

    @spyglass.observe
    def gen():
        yield 1

    @spyglass.observe
    async def awork() -> int:
        return 5

    assert work(1) == 2
    assert list(gen()) == [1]
    assert asyncio.run(awork()) == 5
    with spyglass.llm_span(model="m") as llm:
        llm.set_usage(input_tokens=1)
    assert spyglass.flush() is True
    assert t.exporter.get_finished_spans() == ()


def test_disabled_via_environment(traced, monkeypatch):
    monkeypatch.setenv("SPYGLASS_ENABLED", "false")
    t = traced()

    @spyglass.observe
    def work() -> int:
        return 1

    work()
    assert t.exporter.get_finished_spans() == ()
