from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

from opentelemetry import baggage
from sdk_helpers import attrs

import spyglass


def test_context_values_land_on_every_span_inside(traced):
    t = traced()

    @spyglass.observe(name="step")
    def step() -> None:
        pass

    with spyglass.context(user_id="u1", session_id="s1", tags=["beta"], metadata={"plan": "pro"}):
        step()
    step()  # outside: no context
    inside, outside = sorted(t.spans(), key=lambda s: s.start_time)
    a = attrs(inside)
    assert a["user.id"] == "u1"
    assert a["session.id"] == "s1"
    assert a["gen_ai.conversation.id"] == "s1"
    assert list(a["tag.tags"]) == ["beta"]
    assert json.loads(a["metadata"]) == {"plan": "pro"}
    assert "user.id" not in attrs(outside)


def test_nested_contexts_merge_inner_wins(traced):
    t = traced()

    @spyglass.observe(name="leaf")
    def leaf() -> None:
        pass

    with spyglass.context(user_id="outer", tags=["a", "b"], metadata={"x": 1, "y": 1}):  # noqa: SIM117
        with spyglass.context(user_id="inner", tags=["b", "c"], metadata={"y": 2}):
            leaf()
    a = attrs(t.span("leaf"))
    assert a["user.id"] == "inner"
    assert list(a["tag.tags"]) == ["a", "b", "c"]
    assert json.loads(a["metadata"]) == {"x": 1, "y": 2}


def test_spans_from_a_plain_otel_tracer_get_context(traced):
    t = traced()
    foreign = t.provider.get_tracer("some.other.instrumentation")
    with spyglass.context(user_id="u2", session_id="s2"), foreign.start_as_current_span("http GET"):
        pass
    a = attrs(t.span("http GET"))
    assert a["user.id"] == "u2" and a["session.id"] == "s2"


def test_context_is_applied_to_the_span_already_open(traced):
    t = traced()

    @spyglass.observe(name="handler")
    def handler(user: str) -> None:
        with spyglass.context(user_id=user):
            pass

    handler("late-user")
    assert attrs(t.span("handler"))["user.id"] == "late-user"


def test_prompt_is_recorded_with_name_and_version(traced):
    t = traced()
    foreign = t.provider.get_tracer("x")
    with (
        spyglass.context(prompt={"name": "support-answer", "version": 3}),
        foreign.start_as_current_span("llm"),
    ):
        pass
    a = attrs(t.span("llm"))
    assert a["spyglass.prompt.name"] == "support-answer"
    assert a["spyglass.prompt.version"] == "3"
    assert a["llm.prompt_template.version"] == "3"


def test_user_and_session_go_to_baggage(traced):
    traced()
    with spyglass.context(user_id="u3", session_id="s3"):
        assert baggage.get_baggage("user.id") == "u3"
        assert baggage.get_baggage("session.id") == "s3"
    assert baggage.get_baggage("user.id") is None


def test_bind_context_carries_context_into_threads(traced):
    t = traced()

    @spyglass.observe(name="in_thread")
    def in_thread(i: int) -> int:
        return i

    @spyglass.observe(name="parent")
    def parent() -> None:
        with spyglass.context(user_id="threaded"), ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(spyglass.bind_context(in_thread), range(8)))

    parent()
    spans = t.spans()
    root = next(s for s in spans if s.name == "parent")
    workers = [s for s in spans if s.name == "in_thread"]
    assert len(workers) == 8
    for span in workers:
        assert attrs(span)["user.id"] == "threaded"
        assert span.parent.span_id == root.context.span_id


def test_asyncio_tasks_inherit_context(traced):
    t = traced()

    @spyglass.observe(name="task")
    async def task(i: int) -> int:
        await asyncio.sleep(0)
        return i

    async def main() -> None:
        with spyglass.context(session_id="async-session"):
            await asyncio.gather(*(asyncio.create_task(task(i)) for i in range(5)))
            await asyncio.to_thread(spyglass.observe(name="to_thread")(lambda: None))

    asyncio.run(main())
    spans = [s for s in t.spans() if s.name in ("task", "to_thread")]
    assert len(spans) == 6
    assert all(attrs(s)["session.id"] == "async-session" for s in spans)


def test_current_trace_id_is_hex_inside_a_span_and_none_outside(traced):
    t = traced()
    assert spyglass.current_trace_id() is None
    seen = {}

    @spyglass.observe(name="op")
    def op() -> None:
        seen["id"] = spyglass.current_trace_id()

    op()
    assert seen["id"] == format(t.span("op").context.trace_id, "032x")
