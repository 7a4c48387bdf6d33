"""dashboards/rollups.py: the same metrics queries answered from the hourly rollups and
from the raw tables agree (percentiles within HIST_ERROR), and late, re-sent, moved and
deleted data ends with rollups equal to the raw aggregates after the refresh."""

from __future__ import annotations

import math
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from dashboards.metrics import MetricsQuery, metrics_queries, metrics_query
from dashboards.models import TraceRollup
from dashboards.rollups import HIST_ERROR, LEVELS, hist_key_sql, hist_value, rollup_config_set, rollups_refresh
from scores.models import Score
from tests.dashboards.conftest import END, T0
from tracing.models import Trace
from tracing.otlp.types import RawSpan
from tracing.services import spans_ingest

HOURLY_MAX = timedelta(days=14)

QUERIES = [
    {"measure": "traces"},
    {"measure": "traces", "interval": "hour"},
    {"measure": "traces", "group_by": "model", "interval": "hour"},
    {"measure": "traces", "group_by": "model,environment", "top": "1"},
    {"measure": "traces", "group_by": "prompt"},
    {"measure": "traces", "group_by": "metadata.locale", "top": "2", "interval": "day"},
    {"measure": "errors", "agg": "rate", "group_by": "environment"},
    {"measure": "errors", "agg": "count", "interval": "hour"},
    *({"measure": "latency_ms", "agg": agg, "group_by": "model"} for agg in ("count", "sum", "avg", "min", "max")),
    *({"measure": "cost_usd", "agg": agg} for agg in ("count", "sum", "avg", "min", "max")),
    {"measure": "cost_usd", "agg": "sum", "group_by": "metadata.locale", "environment": "prod"},
    {"measure": "total_tokens", "agg": "sum", "group_by": "prompt", "interval": "hour"},
    {"measure": "input_tokens", "agg": "max", "model": "gpt-4o"},
    {"measure": "latency_ms", "agg": "avg", "group_by": "model", "environment": "prod"},
    {"measure": "traces", "group_by": "environment", "prompt": "support", "prompt_version": "1"},
    {"measure": "cost_usd", "agg": "sum", "group_by": "metadata.locale", "model": "gpt-4o"},
    {"measure": "output_tokens", "agg": "avg", "metadata.locale": "de-DE"},
    *({"measure": "latency_ms", "agg": p, "interval": "hour"} for p in ("p50", "p90", "p95", "p99")),
    {"measure": "latency_ms", "agg": "p95", "group_by": "metadata.locale", "top": "2"},
    {"measure": "cost_usd", "agg": "p50", "group_by": "model"},
    {"measure": "score:user_thumbs", "agg": "rate", "group_by": "model"},
    {"measure": "score:user_thumbs", "agg": "count", "interval": "hour"},
    {"measure": "score:hallucination", "agg": "rate", "group_by": "environment"},
    {"measure": "score:hallucination", "agg": "avg"},
    {"measure": "score:rephrase", "agg": "rate", "group_by": "model", "interval": "hour"},
    {"measure": "score:user_rating", "agg": "avg", "group_by": "metadata.locale"},
    {"measure": "score:user_rating", "agg": "max"},
    {"measure": "score:preferred", "agg": "count"},
    {"measure": "users"},
    {"measure": "users", "interval": "hour"},
    {"measure": "sessions", "interval": "day"},
    {"measure": "users", "interval": "week"},
    {"measure": "latency_ms", "agg": "p95", "group_by": "model", "interval": "week"},
    {"measure": "cost_usd", "agg": "sum", "group_by": "model", "interval": "day"},
    {"measure": "cost_usd", "agg": "sum", "group_by": "user_id", "top": "2"},
    {"measure": "traces", "group_by": "user_id", "interval": "hour"},
    {"measure": "errors", "agg": "rate", "group_by": "user_id"},
    {"measure": "total_tokens", "agg": "avg", "group_by": "user_id", "top": "1"},
]
# Not answerable from rollups: the raw path answers, and says so.
RAW_ONLY = [
    {"measure": "users", "model": "gpt-4o"},
    {"measure": "sessions", "group_by": "model"},
    {"measure": "cost_usd", "agg": "max", "group_by": "user_id"},
    {"measure": "traces", "group_by": "tag"},
    {"measure": "traces", "group_by": "metadata.tier"},  # not a chosen key
    {"measure": "traces", "user_id": "u1"},
    {"measure": "score:user_rating", "agg": "p50"},
    {"measure": "traces", "metadata.locale": "3"},  # numbers match by JSON value, not text
]


def answer(project, params, *, rollups: bool, start=T0, end=END):
    params = {"from": start.isoformat(), "to": end.isoformat(), **params}
    query = MetricsQuery.parse(params, now=END, max_hourly_window=HOURLY_MAX)
    with override_settings(SPYGLASS_ROLLUPS_ENABLED=rollups):
        return metrics_query(project=project, query=query)


def assert_same(raw, rolled, *, percentile: bool):
    assert [(p.time, p.group, p.n) for p in rolled.data] == [(p.time, p.group, p.n) for p in raw.data]
    for a, b in zip(raw.data, rolled.data, strict=True):
        if a.value is None or b.value is None:
            assert a.value == b.value
        else:
            tolerance = HIST_ERROR * abs(a.value) + 1e-12 if percentile else 1e-9 * max(1.0, abs(a.value))
            assert math.isclose(a.value, b.value, abs_tol=tolerance), (a, b)


@pytest.fixture
def rolled(world, sample):
    rollup_config_set(project=world.project, metadata_keys=["locale"])
    rollups_refresh()
    return sample


@pytest.mark.parametrize("params", QUERIES, ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()))
@pytest.mark.parametrize("window", ["whole hours", "partial hours"])
def test_rollups_answer_like_the_raw_tables(world, rolled, params, window):
    start, end = (T0, END) if window == "whole hours" else (T0 + timedelta(minutes=15), END - timedelta(minutes=40))
    raw = answer(world.project, params, rollups=False, start=start, end=end)
    rolled_answer = answer(world.project, params, rollups=True, start=start, end=end)
    assert raw.source == "raw" and rolled_answer.source == "rollup+raw"
    assert_same(raw, rolled_answer, percentile=params.get("agg", "").startswith("p"))


@pytest.mark.parametrize("params", RAW_ONLY, ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()))
def test_what_rollups_cannot_answer_goes_to_the_raw_tables(world, rolled, params):
    assert answer(world.project, params, rollups=True).source == "raw"


PERCENTILE_SETS = [
    {"measure": "latency_ms", "interval": "hour"},
    {"measure": "latency_ms", "group_by": "model", "top": "1", "interval": "day"},
    {"measure": "cost_usd", "group_by": "metadata.locale,environment", "top": "2"},
]


@pytest.mark.parametrize("params", PERCENTILE_SETS, ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()))
@pytest.mark.parametrize("rollups", [True, False], ids=["rollups", "raw"])
def test_percentiles_read_together_equal_each_read_alone(world, rolled, params, rollups):
    # A partial first and last hour, so the raw edges are folded in too.
    params = {"from": (T0 + timedelta(minutes=15)).isoformat(), "to": (END - timedelta(minutes=40)).isoformat(),
              **params}
    aggs = ("p99", "p50", "p95")
    queries = [MetricsQuery.parse({**params, "agg": agg}, now=END, max_hourly_window=HOURLY_MAX) for agg in aggs]
    # A query of another kind in between keeps its place.
    queries.insert(1, MetricsQuery.parse({**params, "measure": "traces"}, now=END, max_hourly_window=HOURLY_MAX))
    with override_settings(SPYGLASS_ROLLUPS_ENABLED=rollups):
        together = metrics_queries(project=world.project, queries=queries)
        alone = [metrics_query(project=world.project, query=q) for q in queries]
    assert [r.query for r in together] == queries
    for a, b in zip(alone, together, strict=True):
        assert b.source == a.source == ("rollup+raw" if rollups else "raw")
        assert [(p.time, p.group, p.value, p.n) for p in b.data] == [(p.time, p.group, p.value, p.n) for p in a.data]
    if params["measure"] == "latency_ms":  # enough values per group that p50 < p95 < p99 somewhere
        assert len({tuple(p.value for p in r.data) for r in together}) == 4


def test_without_a_refresh_the_raw_tables_answer(world, sample):
    assert answer(world.project, {"measure": "traces"}, rollups=True).source == "raw"


def test_histogram_bins_keep_the_stated_bound(db):
    from django.db import connection

    values = [0.0, 1e-6, 0.5, 1.0, 3.7, 99.99, 1234.5, 8e5, -2.5]
    with connection.cursor() as cursor:
        for value in values:
            cursor.execute(f"SELECT {hist_key_sql('v')} FROM (SELECT %s::float8 AS v) x", [value])
            key = cursor.fetchone()[0]
            assert abs(hist_value(key) - value) <= HIST_ERROR * abs(value) + 1e-15, (value, key)


# --- late, re-sent, moved and deleted data -----------------------------------------------------

BASE = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)


def span(trace_id, start, ms, *, model="gpt-4o", error=False, span_id=None, parent=None, env="prod", locale="de",
         user="u1"):
    start_ns = int(start.timestamp() * 1e9)
    return RawSpan(
        trace_id=trace_id, span_id=span_id or secrets.token_hex(8), parent_span_id=parent, name="answer",
        otel_kind=1, start_ns=start_ns, end_ns=start_ns + int(ms * 1e6), status_code=2 if error else 1,
        status_message=None, events=[], resource={"deployment.environment": env},
        attributes={"gen_ai.request.model": model, "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 20,
                    "metadata.locale": locale, "langfuse.trace.metadata.locale": locale, "user.id": user,
                    "session.id": f"s-{user}"},
    )  # fmt: skip


CHECKS = [
    {"measure": "traces", "interval": "hour", "group_by": "model"},
    {"measure": "errors", "agg": "rate", "interval": "hour"},
    {"measure": "latency_ms", "agg": "sum", "interval": "hour", "group_by": "environment"},
    {"measure": "total_tokens", "agg": "sum", "interval": "hour"},
    {"measure": "cost_usd", "agg": "count", "interval": "hour"},
    {"measure": "latency_ms", "agg": "p50", "interval": "hour"},
    {"measure": "score:user_thumbs", "agg": "rate", "interval": "hour"},
    {"measure": "users", "interval": "hour"},
    {"measure": "cost_usd", "agg": "sum", "group_by": "user_id"},
    # Whole days come from the daily rows.
    {"measure": "latency_ms", "agg": "p95"},
    {"measure": "traces", "group_by": "model", "interval": "day"},
    {"measure": "errors", "agg": "count"},
    {"measure": "total_tokens", "agg": "max", "group_by": "environment", "interval": "week"},
]


def assert_rollups_equal_raw(project):
    rollups_refresh()
    for params in CHECKS:
        start, end = BASE - timedelta(hours=30), BASE + timedelta(hours=30)
        raw = answer(project, params, rollups=False, start=start, end=end)
        rolled = answer(project, params, rollups=True, start=start, end=end)
        assert rolled.source == "rollup+raw", params
        assert_same(raw, rolled, percentile=params.get("agg", "").startswith("p"))


def stored_traces(project) -> int:
    """Traces in the rollups, the same at every level (each level holds every trace once)."""
    totals = {level: sum(TraceRollup.objects.filter(project=project, meta_key="", level=level)
                         .values_list("traces", flat=True)) for level in LEVELS}
    assert len(set(totals.values())) == 1, totals
    return totals["all"]


def test_late_spans_resent_batches_moves_and_deletes_end_with_rollups_equal_to_raw(world):
    from scores.services import score_upsert

    project = world.project
    a, b, c = (secrets.token_hex(16) for _ in range(3))
    root_a = secrets.token_hex(8)
    first = [span(a, BASE + timedelta(minutes=5), 800, span_id=root_a),
             span(b, BASE + timedelta(minutes=50), 300, model="llama", env="staging", user="u2"),
             span(c, BASE + timedelta(hours=1, minutes=2), 1200, error=True)]
    spans_ingest(project=project, spans=first)
    score_upsert(project=project, trace_id=a, name="user_thumbs", value=1, source="end_user", data_type="boolean")
    assert_rollups_equal_raw(project)
    assert stored_traces(project) == 3

    # The same batch again (an SDK retry): nothing doubles.
    spans_ingest(project=project, spans=first)
    assert_rollups_equal_raw(project)
    assert stored_traces(project) == 3

    # A late child span of trace a, with more tokens and a longer end.
    spans_ingest(project=project, spans=[span(a, BASE + timedelta(minutes=6), 5000, parent=root_a)])
    assert_rollups_equal_raw(project)

    # A late span of trace c that started in the hour before: c moves from 11:00 to 10:00.
    spans_ingest(project=project, spans=[span(c, BASE + timedelta(minutes=40), 100, model="llama")])
    assert Trace.objects.get(project=project, trace_id=c).start_time.hour == 10
    assert_rollups_equal_raw(project)

    # A score changes its value, another is deleted, a trace is deleted.
    score_upsert(project=project, trace_id=a, name="user_thumbs", value=0, source="end_user", data_type="boolean")
    score_upsert(project=project, trace_id=b, name="user_thumbs", value=1, source="end_user", data_type="boolean")
    assert_rollups_equal_raw(project)
    Score.objects.filter(project=project, trace_id=b).delete()
    Trace.objects.filter(project=project, trace_id=a).delete()
    assert_rollups_equal_raw(project)
    assert stored_traces(project) == 2


DAYS = [  # (hours after T0, latency, cost, model, env, locale): traces over four days
    (26, 150, "0.02", "gpt-4o", "prod", "de-DE"), (30.5, 900, None, "llama", "staging", "en-US"),
    (49, 75, "0.01", "gpt-4o", "prod", "de-DE"), (50, 3000, "0.30", "gpt-4o-mini", "prod", "fr-FR"),
    (71.5, 420, "0.05", "gpt-4o", "staging", "de-DE"), (95, 60, "0.00", "llama", "prod", None),
]


@pytest.mark.parametrize("params", [
    {"measure": "traces", "interval": "day", "group_by": "model"},
    {"measure": "latency_ms", "agg": "p50"},
    {"measure": "latency_ms", "agg": "p99", "interval": "day", "group_by": "environment"},
    {"measure": "cost_usd", "agg": "avg", "group_by": "metadata.locale"},
    {"measure": "cost_usd", "agg": "min", "model": "gpt-4o"},
    {"measure": "errors", "agg": "rate", "interval": "week"},
    {"measure": "score:user_thumbs", "agg": "rate", "interval": "day"},
    {"measure": "users", "interval": "day"},
], ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()))
def test_whole_days_from_daily_rows_answer_like_the_raw_tables(world, sample, params):
    from tests.dashboards.conftest import make_trace, score

    for hours, latency, cost, model, env, locale in DAYS:
        trace = make_trace(world.project, int(hours * 60), latency, cost, model, env, f"u{int(hours) % 3}", None, "ok",
                           [], {"locale": locale} if locale else {}, None)
        score(world.project, trace, "user_thumbs", int(hours) % 2, "end_user", "boolean")
    rollup_config_set(project=world.project, metadata_keys=["locale"])
    rollups_refresh()
    assert TraceRollup.objects.filter(project=world.project, level="day:all").count() == 5
    start, end = T0 + timedelta(minutes=30), T0 + timedelta(hours=97, minutes=10)
    raw = answer(world.project, params, rollups=False, start=start, end=end)
    rolled = answer(world.project, params, rollups=True, start=start, end=end)
    assert rolled.source == "rollup+raw"
    assert_same(raw, rolled, percentile=params.get("agg", "").startswith("p"))


def test_a_project_choosing_a_metadata_key_is_rebuilt_for_it(world, sample):
    rollups_refresh()
    params = {"measure": "traces", "group_by": "metadata.locale"}
    assert answer(world.project, params, rollups=True).source == "raw"
    rollup_config_set(project=world.project, metadata_keys=["locale"])
    rollups_refresh()
    raw, rolled = answer(world.project, params, rollups=False), answer(world.project, params, rollups=True)
    assert rolled.source == "rollup+raw"
    assert_same(raw, rolled, percentile=False)


def test_a_second_refresh_with_nothing_new_rebuilds_nothing_old(world, sample):
    rollups_refresh()
    # Everything last changed long ago (the refresh looks back OVERLAP from its last start).
    Trace.objects.update(updated_at=datetime(2025, 1, 1, tzinfo=UTC))
    Score.objects.update(updated_at=datetime(2025, 1, 1, tzinfo=UTC))
    assert rollups_refresh().hours == 0


def test_rollup_keys_command_sets_and_shows_the_keys(world):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("rollup_keys", world.project.slug, "locale", "customer", stdout=out)
    call_command("rollup_keys", world.project.slug, stdout=out)
    assert "customer, locale (built so far: none)" in out.getvalue()
    rollups_refresh()
    out = StringIO()
    call_command("rollup_keys", world.project.slug, stdout=out)
    assert out.getvalue().strip() == f"{world.project.slug}: customer, locale"
