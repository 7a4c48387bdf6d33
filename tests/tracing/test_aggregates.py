"""Trace aggregates folded batch by batch equal the full recompute from all stored spans.

Ingest folds only the spans a batch stored into the trace row (tracing/aggregates.py);
traces_recompute() rebuilds the row from every stored span and is the reference. The
property test splits random traces into random batches, in random orders, with spans
re-sent (identical, or with changed content) in the same or a later batch, and checks
that the row ingest built is exactly the row the reference writes. The other tests pin
the cases by hand-computed values.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO

import orjson
import pytest
from django.core.management import call_command
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracing.aggregates import traces_recompute
from tracing.models import Trace
from tracing.otlp.types import RawSpan
from tracing.services import spans_ingest

BASE_NS = 1_750_000_000 * 10**9
SECOND = 10**9
FIELDS = [f.name for f in Trace._meta.get_fields() if f.name not in ("id", "project", "created_at", "updated_at")]
_trace_numbers = itertools.count(1)


def _row(project_id: int, trace_id: str) -> dict:
    return Trace.objects.filter(project_id=project_id, trace_id=trace_id).values(*FIELDS).get()


def _recomputed(project_id: int, trace_id: str) -> dict:
    with connection.cursor() as cursor:
        traces_recompute(cursor, project_id=project_id, trace_ids=[trace_id])
    return _row(project_id, trace_id)


def raw_span(trace_id: str, span_id: str, *, parent: str | None = None, name: str = "step", start: float = 0,
             end: float = 1, status: int = 1, **attributes) -> RawSpan:
    """A span whose mapped fields come from plain attributes (see tracing/otlp/mapping.py)."""
    return RawSpan(
        trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=name, otel_kind=1,
        start_ns=BASE_NS + int(start * SECOND), end_ns=BASE_NS + int(end * SECOND), status_code=status,
        status_message=None, attributes=attributes, events=[],
        resource={},
    )


# ---------------------------------------------------------------- random traces

_SPAN_IDS = [f"{n:016x}" for n in (0x0A, 0x1B, 0x2C, 0x3D, 0x4E, 0x5F, 0x60, 0x71, 0x82, 0x93)]


@st.composite
def span_contents(draw, span_id: str, span_ids: list[str]) -> dict:
    """Everything a span may carry that feeds an aggregate, drawn from small sets so that
    ties (equal start times, equal token counts) and shared metadata keys are common."""
    attrs: dict = {"openinference.span.kind": draw(st.sampled_from(["LLM", "CHAIN", "TOOL", "AGENT"]))}
    optional = {
        "gen_ai.request.model": st.sampled_from(["gpt-4o-mini", "claude-3-haiku", "my-local-model"]),
        "gen_ai.usage.input_tokens": st.integers(0, 50),
        "gen_ai.usage.output_tokens": st.integers(0, 50),
        "llm.usage.total_tokens": st.integers(0, 120),
        "llm.cost.total": st.sampled_from([0.001, 0.25, 1.5]),
        "session.id": st.sampled_from(["s1", "s2"]),
        "user.id": st.sampled_from(["u1", "u2"]),
        "langfuse.trace.name": st.sampled_from(["named-a", "named-b"]),
        "deployment.environment.name": st.sampled_from(["prod", "staging"]),
        "langfuse.release": st.sampled_from(["r1", "r2"]),
        "service.name": st.sampled_from(["api", "worker"]),
        "spyglass.prompt.name": st.sampled_from(["p1", "p2"]),
        "spyglass.prompt.version": st.sampled_from(["1", "2"]),
        "input.value": st.sampled_from(["question one", "question two"]),
        "output.value": st.sampled_from(["answer one", "answer two"]),
        "tag.tags": st.lists(st.sampled_from(["beta", "Alpha", "gamma", "b"]), min_size=1, max_size=3),
        "metadata": st.dictionaries(st.sampled_from(["k1", "k2", "k3"]),
                                    st.one_of(st.integers(0, 3), st.none(), st.text("xy", max_size=2)),
                                    min_size=1, max_size=3),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            value = draw(strategy)
            attrs[key] = orjson.dumps(value).decode() if key in ("tag.tags", "metadata") else value
    root = draw(st.integers(0, 3)) == 0
    others = [s for s in span_ids if s != span_id] + ["ffffffffffffffff"]  # a parent never sent
    start = draw(st.integers(0, 4))
    return {
        "parent": None if root else draw(st.sampled_from(others)),
        "name": draw(st.sampled_from(["agent", "llm call", "tool", "Agent"])),
        "start": start,
        "end": start + draw(st.integers(0, 3)),
        "status": draw(st.integers(0, 2)),
        "attributes": attrs,
    }


@st.composite
def streamed_traces(draw):
    """(span contents by id, batches): each batch a list of (span id, variant)."""
    count = draw(st.integers(1, len(_SPAN_IDS)))
    span_ids = draw(st.permutations(_SPAN_IDS))[:count]
    spans = {span_id: draw(span_contents(span_id, span_ids)) for span_id in span_ids}
    # A re-send with changed content: the first copy stored wins, the other is ignored.
    changed = {span_id: draw(span_contents(span_id, span_ids)) for span_id in span_ids}
    order = draw(st.permutations(span_ids))
    sends = [(span_id, "first") for span_id in order]
    for _ in range(draw(st.integers(0, 4))):
        position = draw(st.integers(0, len(sends)))
        sends.insert(position, (draw(st.sampled_from(span_ids)), draw(st.sampled_from(["first", "changed"]))))
    cuts = sorted(draw(st.lists(st.integers(1, len(sends)), max_size=5, unique=True)))
    batches = [sends[a:b] for a, b in itertools.pairwise([0, *cuts, len(sends)]) if sends[a:b]]
    return {"first": spans, "changed": changed}, batches


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=streamed_traces())
def test_folded_trace_equals_full_recompute(world, case):
    contents, batches = case
    trace_id = f"{next(_trace_numbers):032x}"
    for batch in batches:
        spans_ingest(project=world.project, spans=[
            raw_span(trace_id, span_id, **contents[variant][span_id]["attributes"],
                     **{k: v for k, v in contents[variant][span_id].items() if k != "attributes"})
            for span_id, variant in batch
        ])
    folded = _row(world.project.pk, trace_id)
    assert folded["fold_state"] is not None
    assert folded == _recomputed(world.project.pk, trace_id)


# ---------------------------------------------------------------- cases by hand


def test_late_root_span_renames_the_trace_and_sets_its_input(world):
    trace_id = "a" * 32
    spans_ingest(project=world.project, spans=[
        raw_span(trace_id, "0000000000000002", parent="0000000000000001", name="child", start=2, end=3,
                 **{"input.value": "child input"}),
    ])
    row = _row(world.project.pk, trace_id)
    assert (row["name"], row["input"], row["root_span_id"], row["span_count"]) == ("child", "child input", None, 1)
    spans_ingest(project=world.project, spans=[
        raw_span(trace_id, "0000000000000001", name="root", start=1, end=5, **{"input.value": "root input"}),
    ])
    row = _row(world.project.pk, trace_id)
    assert (row["name"], row["input"], row["root_span_id"]) == ("root", "root input", "0000000000000001")
    assert (row["span_count"], row["latency_ms"]) == (2, 4000.0)
    assert row["start_time"] == datetime.fromtimestamp(1_750_000_001, tz=UTC)


def test_resent_spans_are_counted_once_and_keep_their_first_content(world):
    trace_id = "b" * 32
    llm = {"openinference.span.kind": "LLM", "gen_ai.request.model": "gpt-4o-mini",
           "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5, "llm.cost.total": 0.5}
    first = [raw_span(trace_id, f"{n:016x}", start=n, end=n + 1, **llm) for n in (1, 2)]
    spans_ingest(project=world.project, spans=first)
    changed = {**llm, "gen_ai.usage.input_tokens": 1000, "llm.cost.total": 9.0, "metadata": '{"k": 1}'}
    spans_ingest(project=world.project, spans=[
        raw_span(trace_id, f"{1:016x}", start=1, end=1 + 1, **llm),  # identical re-send
        raw_span(trace_id, f"{2:016x}", start=0, end=9, status=2, **changed),  # same id, new content
        raw_span(trace_id, f"{3:016x}", start=3, end=4, **llm),
        raw_span(trace_id, f"{3:016x}", start=3, end=4, **llm),  # twice in one batch
    ])
    row = _row(world.project.pk, trace_id)
    assert (row["span_count"], row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (3, 30, 15, 45)
    assert row["cost_usd"] == Decimal("1.5")
    assert (row["error_count"], row["status"], row["metadata"], row["latency_ms"]) == (0, "ok", {}, 3000.0)
    assert row == _recomputed(world.project.pk, trace_id)


def test_metadata_keys_merge_with_the_root_span_winning(world):
    trace_id = "c" * 32
    spans_ingest(project=world.project, spans=[
        raw_span(trace_id, f"{2:016x}", parent=f"{1:016x}", start=1, metadata='{"plan": "free", "step": 1}'),
    ])
    spans_ingest(project=world.project, spans=[
        raw_span(trace_id, f"{3:016x}", parent=f"{1:016x}", start=0, metadata='{"step": 0, "tool": "x"}'),
    ])
    assert _row(world.project.pk, trace_id)["metadata"] == {"plan": "free", "step": 0, "tool": "x"}
    spans_ingest(project=world.project, spans=[raw_span(trace_id, f"{1:016x}", start=5, metadata='{"plan": "pro"}')])
    row = _row(world.project.pk, trace_id)
    assert row["metadata"] == {"plan": "pro", "step": 0, "tool": "x"}
    assert row == _recomputed(world.project.pk, trace_id)


def test_trace_without_fold_state_is_recomputed_by_its_next_batch(world):
    trace_id = "d" * 32
    spans_ingest(project=world.project, spans=[raw_span(trace_id, f"{n:016x}", start=n, end=n + 1) for n in (1, 2)])
    # As a row written before fold_state existed: wrong counts, no state.
    Trace.objects.filter(trace_id=trace_id).update(fold_state=None, span_count=99, name="stale")
    spans_ingest(project=world.project, spans=[raw_span(trace_id, f"{3:016x}", name="root", start=0, end=1)])
    row = _row(world.project.pk, trace_id)
    assert (row["span_count"], row["name"]) == (3, "root")
    assert row["fold_state"] is not None


def test_recompute_traces_command_repairs_rows(world):
    trace_id = "e" * 32
    spans_ingest(project=world.project, spans=[raw_span(trace_id, f"{n:016x}", start=n, end=n + 1) for n in (1, 2)])
    good = _row(world.project.pk, trace_id)
    Trace.objects.filter(trace_id=trace_id).update(fold_state=None, span_count=7, tags=["x"])
    out, err = StringIO(), StringIO()
    call_command("recompute_traces", "--project", world.project.slug, stdout=out, stderr=err)
    assert _row(world.project.pk, trace_id) == good
    assert "1 trace" in out.getvalue()


def test_recompute_traces_command_names_an_unknown_project(world):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--project"):
        call_command("recompute_traces", "--project", "no-such-project", stdout=StringIO(), stderr=StringIO())
