"""The slices report from scores_traceoutcome equals the report from the scores pivoted
per trace (the reference path, slices_report(pivot="scores")), on random data.

Each seed writes random traces and a random mix of the scores the page reads and those
it does not: several thumbs on one trace (trace and span level, any source), ratings,
hallucination and toxicity with and without the evaluator's stored decision and with
values on both sides of the threshold, signals, other end-user feedback, scores of other
names; then overwrites, renames, moves and deletes some of them (so the triggers'
subtracting paths are in play). The two reports must agree on every slice, every number
of every cell (1e-9), the findings and the trend points, for one and two dimensions,
the fixed dimensions and a filter.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from scores.models import Score
from slices.selectors import SliceQuery, slices_report
from tests.factories import TraceFactory
from tracing.models import Trace

T0 = datetime(2025, 3, 3, tzinfo=UTC)
END = T0 + timedelta(days=10)
LOCALES = ["en-US", "de-DE", "ja-JP", "fr-FR", "pt-BR"]
NAMES = ["user_thumbs", "user_rating", "hallucination", "toxicity_output", "rephrase", "regenerate", "abandon",
         "escalate", "helpfulness", "user_comment", "toxicity_input"]
SCENARIOS = [
    {"dimension": "metadata.locale"},
    {"dimension": "metadata.locale", "dimension2": "metadata.plan"},
    {"dimension": "model", "min_n": "5"},
    {"dimension": "user_cohort"},
    {"dimension": "prompt", "environment": "production"},
]


def _score(rng: random.Random, project, trace_id: str) -> Score:
    name = rng.choice(NAMES)
    source = rng.choice(["end_user", "evaluator", "api", "implicit", "annotation"])
    span = rng.choice([None, None, f"{rng.randrange(4):016x}"])
    metadata = {}
    if name in ("hallucination", "toxicity_output", "toxicity_input"):
        value, data_type = rng.choice([0.0, 0.2, 0.4999, 0.5, 0.7, 1.0]), "numeric"
        if rng.random() < 0.6:
            metadata = {"flagged": rng.random() < 0.4}
        elif rng.random() < 0.2:
            metadata = {"flagged": "yes"}  # not a boolean: the threshold decides
    elif name == "user_rating":
        value, data_type = float(rng.randint(1, 5)) + rng.choice([0, 0.5, 0.1]), "numeric"
    elif name == "user_comment":
        value, data_type = None, "text"
    else:
        value, data_type = float(rng.random() < 0.6), "boolean"
    if source in ("end_user", "annotation"):
        # One end-user (or one reviewer's) score per (trace, span, name): the table's unique rules.
        span = f"{rng.randrange(1 << 60):016x}"
    return Score(project=project, trace_id=trace_id, span_id=span, name=name, value=value, data_type=data_type,
                 source=source, metadata=metadata)


def _populate(project, seed: int) -> None:
    rng = random.Random(seed)
    traces = []
    for i in range(rng.randint(250, 400)):
        start = T0 + timedelta(minutes=rng.randrange(10 * 24 * 60))
        latency = rng.choice([100, 250, 900, 4000]) + i % 7
        traces.append(TraceFactory.build(
            project=project, start_time=start, end_time=start + timedelta(milliseconds=latency), latency_ms=latency,
            status="error" if rng.random() < 0.1 else "ok", cost_usd=Decimal(rng.choice(["0.001", "0.0042", "0"])),
            model=rng.choice(["gpt-4o", "gpt-4o-mini", "claude"]), user_id=f"u{rng.randrange(40)}",
            environment=rng.choice(["production", "staging"]), prompt_name="answer",
            prompt_version=rng.choice(["1", "2", None]),
            metadata={"locale": rng.choice(LOCALES), **({"plan": rng.choice("ab")} if rng.random() < 0.8 else {})}))
    Trace.objects.bulk_create(traces)
    ids = [t.trace_id for t in traces] + [f"{n:032x}" for n in range(5)]  # some scores before their trace
    scores = [_score(rng, project, rng.choice(ids)) for _ in range(len(traces) * 3)]
    Score.objects.bulk_create(scores)
    # Overwrites, renames, moves and deletes.
    sample = rng.sample(scores, len(scores) // 4)
    third = len(sample) // 3
    Score.objects.filter(pk__in=[s.pk for s in sample[:third] if s.data_type == "numeric"]).update(value=0.55)
    Score.objects.filter(pk__in=[s.pk for s in sample[:third] if s.data_type == "boolean"]).update(value=1.0)
    with connection.cursor() as cursor:
        moved = [str(s.pk) for s in sample[third:2 * third] if s.source not in ("end_user", "annotation")]
        cursor.execute("UPDATE scores_score SET trace_id = %s, name = CASE WHEN name = 'helpfulness' THEN "
                       "'escalate' ELSE name END WHERE id::text = ANY(%s)", [rng.choice(ids), moved])
    Score.objects.filter(pk__in=[s.pk for s in sample[2 * third:]]).delete()


def _close(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))
    return a == b


def _assert_same(new, old) -> None:
    assert [s.key for s in new.slices] == [s.key for s in old.slices]
    assert [s.n for s in new.slices] == [s.n for s in old.slices]
    assert new.findings == old.findings
    for s_new, s_old in zip(new.slices, old.slices, strict=True):
        for metric, cell in s_new.cells.items():
            for field_name, value in vars(cell).items():
                assert _close(value, getattr(s_old.cells[metric], field_name)), (s_new.key, metric, field_name)
    for a, b in ((new.raw_satisfaction, old.raw_satisfaction), (new.weighted_satisfaction, old.weighted_satisfaction)):
        assert all(_close(x, y) for x, y in zip(vars(a).values(), vars(b).values(), strict=True))
    for attr in ("trends", "prompt_trends"):
        key = lambda p: (p.time, p.series, p.metric)  # noqa: E731 - order within a bucket was never defined
        new_points, old_points = sorted(getattr(new, attr), key=key), sorted(getattr(old, attr), key=key)
        assert [key(p) for p in new_points] == [key(p) for p in old_points]
        assert all(_close(p.value, q.value) and p.n == q.n for p, q in zip(new_points, old_points, strict=True))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_outcome_table_report_equals_score_pivot_report(world, seed):
    _populate(world.project, seed)
    for params in SCENARIOS:
        query = SliceQuery.parse({"from": T0.isoformat(), "to": END.isoformat(), **params}, now=END)
        new = slices_report(project=world.project, query=query)
        old = slices_report(project=world.project, query=query, pivot="scores")
        assert new.total > 0 and any(c.value is not None for s in new.slices for c in s.cells.values())
        _assert_same(new, old)
