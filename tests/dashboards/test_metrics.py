"""dashboards/metrics.py: values against aggregates worked out by hand on the sample in
conftest.py (its table is the arithmetic's source)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from django.http import QueryDict

from dashboards.metrics import (
    _TRACE_VALUES,
    MetricsError,
    MetricsQuery,
    MetricsTimeout,
    Point,
    bucket_starts,
    metric_dimensions,
    metrics_query,
    statement_timeout,
    traces_sql,
)
from explorer.filters import TraceFilter
from tests.dashboards.conftest import END, T0
from tests.factories import TraceFactory

HOURLY_MAX = timedelta(days=14)


def run(project, **params) -> list[Point]:
    return result(project, **params).data


def result(project, **params):
    params.setdefault("from", T0.isoformat())
    params.setdefault("to", END.isoformat())
    query = MetricsQuery.parse(params, now=END, max_hourly_window=HOURLY_MAX)
    return metrics_query(project=project, query=query)


def single(project, **params) -> tuple[float | None, int]:
    (point,) = run(project, **params)
    assert point.time is None and point.group == {}
    return point.value, point.n


def by_group(points: list[Point], dim: str) -> dict:
    return {p.group[dim]: (p.value if p.value is None else round(p.value, 6), p.n) for p in points}


# --- trace measures -------------------------------------------------------------------------


def test_traces_users_and_sessions_are_counted_in_the_window_of_one_project(world, sample):
    assert single(world.project, measure="traces") == (6, 6)
    assert single(world.project, measure="users") == (3, 3)  # u1, u2, u3; t4 has none
    assert single(world.project, measure="sessions") == (4, 4)


@pytest.mark.parametrize(("agg", "expected"), [
    ("count", 6), ("sum", 2600), ("avg", 2600 / 6), ("min", 100), ("max", 1000),
    # percentile_cont over 100 200 300 400 600 1000: position p*(n-1), linear between neighbours.
    ("p50", 350), ("p90", 800), ("p95", 900), ("p99", 980),
])
def test_latency_aggregations(world, sample, agg, expected):
    value, n = single(world.project, measure="latency_ms", agg=agg)
    assert value == pytest.approx(expected)
    assert n == 6


def test_cost_leaves_out_unpriced_traces(world, sample):
    assert single(world.project, measure="cost_usd", agg="sum") == (pytest.approx(0.22), 5)
    assert single(world.project, measure="cost_usd", agg="avg") == (pytest.approx(0.044), 5)
    assert single(world.project, measure="cost_usd", agg="count") == (5, 5)


def test_tokens_sum_and_max(world, sample):
    minutes = [10, 20, 65, 90, 180, 190]
    assert single(world.project, measure="input_tokens", agg="sum") == (10 * sum(minutes), 6)
    assert single(world.project, measure="output_tokens", agg="max") == (190, 6)
    assert single(world.project, measure="total_tokens", agg="avg")[0] == pytest.approx(11 * sum(minutes) / 6)


def test_errors_count_and_rate(world, sample):
    assert single(world.project, measure="errors", agg="count") == (2, 6)
    assert single(world.project, measure="errors", agg="rate") == (pytest.approx(2 / 6), 6)


def test_default_aggregations_fit_the_measure(world, sample):
    assert result(world.project, measure="errors").query.agg == "rate"
    assert result(world.project, measure="latency_ms").query.agg == "avg"
    assert result(world.project, measure="score:rephrase").query.agg == "rate"
    assert result(world.project, measure="score:preferred").query.agg == "count"


# --- score measures -------------------------------------------------------------------------


def test_boolean_score_rate_is_the_share_of_yes(world, sample):
    assert single(world.project, measure="score:user_thumbs", agg="rate") == (0.75, 4)
    assert single(world.project, measure="score:user_thumbs", agg="count") == (4, 4)


def test_evaluator_rate_reads_the_stored_decision_before_the_threshold(world, sample):
    # t1 .7 stored "not flagged" (its project threshold was .8); t2 .9 has no decision, so
    # the registry's .5 applies; t3 .1 and t4 .2 were flagged under low thresholds.
    # Decision-first: t2, t3, t4 = 3/4. Value >= .5 alone would say 2/4.
    assert single(world.project, measure="score:hallucination", agg="rate") == (0.75, 4)


def test_evaluator_numeric_aggregations(world, sample):
    assert single(world.project, measure="score:hallucination", agg="avg") == (pytest.approx(1.9 / 4), 4)
    assert single(world.project, measure="score:hallucination", agg="p50") == (pytest.approx(0.45), 4)
    assert single(world.project, measure="score:hallucination", agg="max") == (pytest.approx(0.9), 4)


def test_signal_rate_is_a_share_of_traces_not_of_scores(world, sample):
    # rephrase exists on t1 and t2 only: 2 of 6 traces (a share of scores would be 1.0).
    assert single(world.project, measure="score:rephrase", agg="rate") == (pytest.approx(2 / 6), 6)
    assert single(world.project, measure="score:rephrase", agg="count") == (2, 2)
    points = run(world.project, measure="score:rephrase", agg="rate", group_by="model")
    assert by_group(points, "model") == {"gpt-4o": (round(2 / 3, 6), 3), "llama": (0.0, 2), "gpt-4o-mini": (0.0, 1)}


def test_span_level_scores_count_with_their_trace(world, sample):
    assert single(world.project, measure="score:user_rating", agg="avg") == (pytest.approx(11 / 3), 3)


def test_unknown_score_name_has_no_data(world, sample):
    assert single(world.project, measure="score:no_such_score", agg="avg") == (None, 0)
    assert single(world.project, measure="score:no_such_score", agg="count") == (0, 0)


def test_categorical_score_counts(world, sample):
    assert single(world.project, measure="score:preferred", agg="count") == (1, 1)


def test_result_states_its_unit_and_source(world, sample):
    units = {("latency_ms", "p95"): "ms", ("cost_usd", "sum"): "USD", ("total_tokens", "avg"): "tokens",
             ("errors", "rate"): "share", ("errors", "count"): "traces", ("users", "count"): "users",
             ("score:user_thumbs", "rate"): "share", ("score:user_rating", "avg"): "stars",
             ("score:hallucination", "count"): "scores"}
    for (measure, agg), unit in units.items():
        res = result(world.project, measure=measure, agg=agg)
        assert (res.unit, res.source, res.approximate) == (unit, "raw", False), (measure, agg)


# --- groups ----------------------------------------------------------------------------------


def test_group_by_model_orders_groups_by_n(world, sample):
    points = run(world.project, measure="latency_ms", agg="avg", group_by="model")
    assert [p.group["model"] for p in points] == ["gpt-4o", "llama", "gpt-4o-mini"]
    assert by_group(points, "model") == {"gpt-4o": (round(1300 / 3, 6), 3), "llama": (450.0, 2),
                                         "gpt-4o-mini": (400.0, 1)}


def test_other_recomputes_the_aggregate_over_the_folded_rows(world, sample):
    points = run(world.project, measure="latency_ms", agg="avg", group_by="model", top=1)
    # other = t3, t4, t6: (300 + 400 + 600) / 3, not the mean of llama's 450 and mini's 400.
    assert by_group(points, "model") == {"gpt-4o": (round(1300 / 3, 6), 3), "other": (round(1300 / 3, 6), 3)}
    assert [p.group["model"] for p in points] == ["gpt-4o", "other"]
    p50 = run(world.project, measure="latency_ms", agg="p50", group_by="model", top=1)
    assert by_group(p50, "model")["other"] == (400.0, 3)


def test_missing_values_form_their_own_group(world, sample):
    points = run(world.project, measure="traces", group_by="prompt")
    assert by_group(points, "prompt") == {None: (4.0, 4), "support@1": (1.0, 1), "support@2": (1.0, 1)}


def test_a_trace_counts_in_each_of_its_tags(world, sample):
    points = run(world.project, measure="traces", group_by="tag")
    assert [p.group["tag"] for p in points] == ["a", "b", None]
    assert by_group(points, "tag") == {"a": (3.0, 3), "b": (2.0, 2), None: (2.0, 2)}


def test_group_by_metadata_key_uses_the_value_as_text(world, sample):
    points = run(world.project, measure="traces", group_by="metadata.tier")
    assert by_group(points, "metadata.tier") == {None: (4.0, 4), "gold": (1.0, 1), "3": (1.0, 1)}
    locale = run(world.project, measure="errors", agg="rate", group_by="metadata.locale")
    assert by_group(locale, "metadata.locale") == {"de-DE": (round(1 / 3, 6), 3), "en-US": (0.0, 1),
                                                   "fr-FR": (0.0, 1), None: (1.0, 1)}


def test_users_by_group_are_distinct_per_group(world, sample):
    points = run(world.project, measure="users", group_by="model")
    assert by_group(points, "model") == {"gpt-4o": (2.0, 2), "llama": (2.0, 2), "gpt-4o-mini": (0.0, 0)}


def test_two_dimensions_fold_each_dimension_by_its_own_top(world, sample):
    points = run(world.project, measure="traces", group_by="model,environment", top=1)
    got = {(p.group["model"], p.group["environment"]): p.n for p in points}
    # model keeps gpt-4o (3 traces), environment keeps prod (4 traces).
    assert got == {("gpt-4o", "prod"): 3, ("other", "other"): 2, ("other", "prod"): 1}
    assert (points[0].group["model"], points[0].group["environment"]) == ("gpt-4o", "prod")


def test_group_by_user_id_with_top(world, sample):
    points = run(world.project, measure="cost_usd", agg="sum", group_by="user_id", top=2)
    # u1 and u3 have two traces each; other = t3 (unpriced) + t4 (0.04).
    assert by_group(points, "user_id") == {"u1": (0.03, 2), "u3": (0.15, 2), "other": (0.04, 1)}


def test_score_measure_grouped_by_a_trace_dimension(world, sample):
    points = run(world.project, measure="score:user_thumbs", agg="rate", group_by="environment")
    assert by_group(points, "environment") == {"prod": (0.5, 2), "staging": (1.0, 2)}


# --- time buckets ----------------------------------------------------------------------------


def test_hourly_buckets_fill_empty_hours(world, sample):
    points = run(world.project, measure="traces", interval="hour")
    assert [p.time for p in points] == [T0 + timedelta(hours=h) for h in range(4)]
    assert [(p.value, p.n) for p in points] == [(2, 2), (2, 2), (0, 0), (2, 2)]
    latency = run(world.project, measure="latency_ms", agg="avg", interval="hour")
    assert [p.value for p in latency] == [150, 350, None, 800]


def test_buckets_with_groups_fill_every_group(world, sample):
    points = run(world.project, measure="traces", interval="hour", group_by="model")
    series = {}
    for p in points:
        series.setdefault(p.group["model"], []).append(p.n)
    assert series == {"gpt-4o": [2, 0, 0, 1], "llama": [0, 1, 0, 1], "gpt-4o-mini": [0, 1, 0, 0]}
    assert [p.time for p in points[:3]] == [T0] * 3  # ordered by time, then group


def test_day_and_week_buckets_are_utc_calendar_aligned(world, sample):
    start = T0 + timedelta(hours=12)  # mid-day, mid-week buckets start before the window
    assert bucket_starts(start, start + timedelta(days=2), "day") == [T0, T0 + timedelta(days=1),
                                                                       T0 + timedelta(days=2)]
    assert bucket_starts(T0 + timedelta(days=3), T0 + timedelta(days=9), "week") == [T0, T0 + timedelta(days=7)]
    points = run(world.project, measure="traces", interval="day", **{"from": (T0 - timedelta(days=1)).isoformat()})
    assert [(p.time, p.n) for p in points] == [(T0 - timedelta(days=1), 1), (T0, 6)]


def test_no_data_still_answers_every_bucket(world):
    points = run(world.project, measure="latency_ms", agg="p95", interval="hour")
    assert [(p.value, p.n) for p in points] == [(None, 0)] * 4
    assert run(world.project, measure="traces", group_by="model") == []


# --- filters and windows ---------------------------------------------------------------------


def test_trace_filters_are_the_explorers(world, sample):
    assert single(world.project, measure="traces", environment="prod") == (4, 4)
    assert single(world.project, measure="traces", tag="a") == (3, 3)
    assert single(world.project, measure="traces", **{"metadata.locale": "de-DE"}) == (3, 3)
    assert single(world.project, measure="traces", score="hallucination>0.5") == (2, 2)
    assert single(world.project, measure="traces", prompt="support", prompt_version="2") == (1, 1)


def test_window_is_start_inclusive_end_exclusive(world, sample):
    at_t2 = (T0 + timedelta(minutes=20)).isoformat()
    assert single(world.project, measure="traces", **{"from": at_t2}) == (5, 5)
    assert single(world.project, measure="traces", to=at_t2) == (1, 1)


def test_a_filters_own_window_is_intersected_with_the_querys(world, sample):
    base = MetricsQuery.parse({"measure": "traces", "from": T0.isoformat(), "to": END.isoformat()}, now=END,
                              max_hourly_window=HOURLY_MAX)
    narrowed = replace(base, filter=TraceFilter(start_from=T0 + timedelta(hours=1)))
    (point,) = metrics_query(project=world.project, query=narrowed).data
    assert point.n == 4
    outside = replace(base, filter=TraceFilter(start_to=T0 - timedelta(days=1)))
    (point,) = metrics_query(project=world.project, query=outside).data
    assert point.n == 0


def test_range_is_relative_to_now(world, sample):
    query = MetricsQuery.parse({"measure": "traces", "range": "1h"}, now=END, max_hourly_window=HOURLY_MAX)
    assert (query.start, query.end) == (END - timedelta(hours=1), END)
    assert metrics_query(project=world.project, query=query).data[0].n == 2


def test_default_window_is_the_last_7_days():
    query = MetricsQuery.parse({"measure": "traces"}, now=END, max_hourly_window=HOURLY_MAX)
    assert (query.start, query.end) == (END - timedelta(days=7), END)


def test_parse_reads_repeated_and_comma_separated_group_by():
    params = QueryDict("measure=traces&group_by=model&group_by=metadata.locale")
    assert MetricsQuery.parse(params, now=END, max_hourly_window=HOURLY_MAX).group_by == ("model", "metadata.locale")
    params = QueryDict("measure=traces&group_by=model,tag")
    assert MetricsQuery.parse(params, now=END, max_hourly_window=HOURLY_MAX).group_by == ("model", "tag")


def test_to_query_reads_back_to_the_same_query():
    params = QueryDict("measure=score:hallucination&agg=p95&group_by=model&top=3&interval=day&tag=a"
                       "&metadata.locale=de-DE&from=2025-03-01T00:00:00Z&to=2025-03-08T00:00:00Z")
    query = MetricsQuery.parse(params, now=END, max_hourly_window=HOURLY_MAX)
    again = QueryDict(mutable=True)
    for key, value in query.to_query():
        again.appendlist(key, value)
    assert MetricsQuery.parse(again, now=END, max_hourly_window=HOURLY_MAX) == query


# --- guards ----------------------------------------------------------------------------------


def test_programmatic_queries_are_checked_like_parsed_ones(world):
    bad = MetricsQuery(measure="traces", agg="p95", start=T0, end=END)
    with pytest.raises(MetricsError) as caught:
        metrics_query(project=world.project, query=bad)
    assert "agg" in caught.value.errors


def test_top_all_with_too_many_groups_asks_for_top(world, sample, monkeypatch):
    monkeypatch.setattr("dashboards.metrics.MAX_GROUPS", 2)
    with pytest.raises(MetricsError) as caught:
        run(world.project, measure="traces", group_by="model", top="all")
    assert "top" in caught.value.errors
    assert len(run(world.project, measure="traces", group_by="environment", top="all")) == 2


def test_statement_timeout_cancels_a_runaway_query(db):
    with pytest.raises(MetricsTimeout) as caught, statement_timeout(50) as cursor:
        cursor.execute("SELECT pg_sleep(2)")
    assert caught.value.status == 503
    from django.db import connection

    with connection.cursor() as cursor:  # the connection (and the test's transaction) still work
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "0"


# --- dimensions ------------------------------------------------------------------------------


def test_dimensions_list_metadata_keys_with_distinct_counts(world, sample):
    dims = {d.name: (d.distinct, d.traces) for d in metric_dimensions(project=world.project, start=T0, end=END)}
    assert dims["metadata.locale"] == (3, 5)
    assert dims["metadata.tier"] == (2, 2)
    assert dims["model"] == (3, 6)
    assert dims["tag"] == (2, 4)
    assert dims["user_id"] == (3, 5)
    assert dims["prompt"] == (2, 2)
    assert list(dims)[:7] == ["model", "prompt", "environment", "release", "name", "user_id", "tag"]


def test_dimensions_count_a_json_null_metadata_value_as_a_trace_but_not_a_value(world, sample):
    TraceFactory(project=world.project, start_time=T0 + timedelta(minutes=1), metadata={"tier": None})
    dims = {d.name: (d.distinct, d.traces) for d in metric_dimensions(project=world.project, start=T0, end=END)}
    assert dims["metadata.tier"] == (2, 3)


@pytest.mark.parametrize("query", ["", "model=gpt-4o&tag=a&metadata.locale=de-DE", "score=user_thumbs>=1&q=refund",
                                   "feedback=no&status=error&prompt=support&prompt_version=1"])
def test_traces_sql_kept_per_filter_equals_a_fresh_compile(world, query):
    # traces_sql compiles a filter once and puts each window into the kept parameters.
    trace_filter = TraceFilter.parse(QueryDict(query))
    for start, end in ((T0, END), (T0 + timedelta(minutes=7), END - timedelta(hours=1))):
        window = replace(trace_filter, start_from=start, start_to=end)
        expected = window.apply(world.project).values(*_TRACE_VALUES).query.sql_with_params()
        assert plain(traces_sql(project=world.project, trace_filter=trace_filter, start=start, end=end)) == plain(
            expected)
    # Kept per project: another project's SQL reads its own rows.
    expected = replace(trace_filter, start_from=T0, start_to=END).apply(world.other_project).values(
        *_TRACE_VALUES).query.sql_with_params()
    other = traces_sql(project=world.other_project, trace_filter=trace_filter, start=T0, end=END)
    assert plain(other) == plain(expected) != plain(traces_sql(project=world.project, trace_filter=trace_filter,
                                                               start=T0, end=END))


def plain(sql_params) -> tuple:
    # psycopg's Jsonb wrapper has no equality; compare what it wraps.
    sql, params = sql_params
    return sql, [getattr(p, "obj", p) for p in params]
