"""Hourly rollups: how dashboards stay fast at millions of spans.

    rollups_refresh()                          the beat task's work (every minute)
    rollup_config_set(project=, metadata_keys=)   choose the metadata keys rolled up
    rollup_rows(project=, query=, start=, end=)   rows for metrics_query, or None
    rollup_rows_many(project=, query=, aggs=, ...)  several percentiles from one read

What is stored (dashboards/models.py): per project × UTC hour × model × prompt (name,
version) × environment, and once more per value of each chosen metadata key, the exact
trace count, error count, sums / min / max of latency, cost and tokens, and log-bucketed
histograms of latency and cost; per score name the count, sum, min, max, the count of
values >= 0.5, the evaluator's flag decisions and the traces that have the score.

Kept current: each run rebuilds every hour that holds a trace or score whose updated_at is
newer than the previous run's start (minus OVERLAP, for transactions that committed late)
plus the hours the database triggers of migration 0001 marked (a trace moved to another
hour by an earlier late span, deleted traces and scores). Rebuilding an hour is delete +
re-aggregate from the raw rows in one transaction, so re-sent and late spans end with the
rollup equal to the raw aggregate, whatever order they came in.

Answering: metrics_query reads rollups for the whole hours of its window before the hour
in which the last run started, and raw rows for the rest (a partial first hour, the newest
minutes); both are folded to the same partial aggregates, so counts, sums, averages,
minima, maxima and rates are identical to the raw answer (up to float summation order) and
percentiles are within HIST_ERROR (relative) of it. Queries the rollups cannot answer
(users / sessions, score percentiles, other dimensions or filters) go to the raw tables.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction

from dashboards.models import RollupConfig, RollupState
from explorer.filters import TraceFilter, metadata_candidates
from projects.models import Project
from scores import names

# Histogram bins: value x > 0 falls in bin k = 1 + floor(ln(x / HIST_MIN) / ln(HIST_GAMMA)),
# [HIST_MIN·γ^(k-1), HIST_MIN·γ^k); x < 0 in -k of |x|; 0 in bin 0. A bin is answered by
# the value 2·lo·hi/(lo+hi), within (γ-1)/(γ+1) of anything in it; percentile_cont's
# interpolation between two such values keeps that relative bound for non-negative data.
HIST_GAMMA = 1.02
HIST_MIN = 1e-9  # below this (1e-9 ms, 1e-9 USD) the bound does not hold; nothing real is
HIST_ERROR = (HIST_GAMMA - 1) / (HIST_GAMMA + 1)  # 0.0099: under 1 %

# Changed rows are looked up from (previous run's start - OVERLAP): an ingest
# transaction's now() is its start, and it may commit a little later than that.
OVERLAP = timedelta(minutes=5)
# Hours rebuilt per statement (one transaction each).
HOURS_PER_BATCH = 48
DAYS_PER_BATCH = 7
LOCK_KEY = 0x5079_6C61_7373  # pg advisory lock: one refresh at a time

# Each chosen metadata key adds a copy of the `full` rows split by its value.
MAX_METADATA_KEYS = 5
ROLLUP_DIMENSIONS = ("model", "prompt", "environment")  # plus metadata.<chosen key>
_FILTER_FIELDS = ("model", "environment", "prompt", "prompt_version")
_TRACE_TABLE = "tracing_trace"
_SCORE_TABLE = "scores_score"


def hist_key_sql(x: str) -> str:
    """SQL of the histogram bin of expression x (float8); NULL stays NULL."""
    return (f"(CASE WHEN {x} IS NULL THEN NULL WHEN {x} = 0 THEN 0 ELSE sign({x})::int * "
            f"(1 + greatest(0, floor(ln(abs({x}) / {HIST_MIN!r}) / ln({HIST_GAMMA!r}))))::int END)")


def hist_value(key: int) -> float:
    """The value answered for a bin (see HIST_GAMMA)."""
    if key == 0:
        return 0.0
    lo = HIST_MIN * HIST_GAMMA ** (abs(key) - 1)
    hi = lo * HIST_GAMMA
    return math.copysign(2 * lo * hi / (lo + hi), key)


# ------------------------------------------------------------------------ building

_DIMS = "hour, level, model, prompt_name, prompt_version, environment, meta_key, meta_value"
# Each trace is rolled up at several levels, so a query reads the coarsest rows that hold
# its dimensions: `all` (the hour alone), `model`, `prompt`, `environment`, `full` (all
# three, and once per chosen metadata key too) and `meta` (a chosen key's value alone).
# A dimension a level does not split by is NULL there; `level` tells it from a real NULL.
LEVELS = {"all": (), "model": ("model",), "prompt": ("prompt",), "environment": ("environment",),
          "full": ("model", "prompt", "environment")}
_EXPAND_FROM = """CROSS JOIN (VALUES ('all', false, false, false), ('model', true, false, false),
        ('prompt', false, true, false), ('environment', false, false, true), ('full', true, true, true),
        ('meta', false, false, false)) AS lv(level, by_model, by_prompt, by_env)
    CROSS JOIN unnest(%(keys)s::text[]) AS mk(key)"""
_EXPAND_COLS = """lv.level, CASE WHEN lv.by_model THEN t.model END AS model,
           CASE WHEN lv.by_prompt THEN t.prompt_name END AS prompt_name,
           CASE WHEN lv.by_prompt THEN t.prompt_version END AS prompt_version,
           CASE WHEN lv.by_env THEN t.environment END AS environment,
           mk.key AS meta_key, CASE WHEN mk.key = '' THEN NULL ELSE t.metadata ->> mk.key END AS meta_value"""
_EXPAND_WHERE = "AND CASE lv.level WHEN 'full' THEN true WHEN 'meta' THEN mk.key <> '' ELSE mk.key = '' END"
_MEASURES = ("input_tokens", "output_tokens", "total_tokens")

_TRACE_BUILD_SQL = f"""
WITH t AS (
    SELECT date_trunc('hour', t.start_time, 'UTC') AS hour, {_EXPAND_COLS},
           t.status, t.latency_ms, t.cost_usd, t.input_tokens, t.output_tokens, t.total_tokens,
           {hist_key_sql("t.latency_ms")} AS lk, {hist_key_sql("t.cost_usd::float8")} AS ck
    FROM {_TRACE_TABLE} t {_EXPAND_FROM}
    WHERE t.project_id = %(project)s AND t.start_time >= %(lo)s AND t.start_time < %(hi)s
      AND date_trunc('hour', t.start_time, 'UTC') = ANY(%(hours)s::timestamptz[]) {_EXPAND_WHERE}
), g AS (
    -- One pass, two groupings: per latency bin and per cost bin (GROUPING tells them apart).
    SELECT {_DIMS}, lk, ck, GROUPING(lk, ck) AS gs, count(*) AS c,
           count(*) FILTER (WHERE status = 'error') AS e,
           sum(latency_ms) AS ls, min(latency_ms) AS lmin, max(latency_ms) AS lmax,
           count(cost_usd) AS cn, sum(cost_usd) AS cs, min(cost_usd) AS cmin, max(cost_usd) AS cmax,
           {", ".join(f"sum({m}) AS {m}_s, min({m}) AS {m}_mn, max({m}) AS {m}_mx" for m in _MEASURES)}
    FROM t GROUP BY GROUPING SETS (({_DIMS}, lk), ({_DIMS}, ck))
)
INSERT INTO dashboards_tracerollup (project_id, {_DIMS}, traces, errors, latency_sum, latency_min, latency_max,
    cost_n, cost_sum, cost_min, cost_max,
    {", ".join(f"{m}_sum, {m}_min, {m}_max" for m in _MEASURES)}, latency_hist, cost_hist)
SELECT %(project)s, {_DIMS}, sum(c) FILTER (WHERE gs = 1), sum(e) FILTER (WHERE gs = 1),
    sum(ls) FILTER (WHERE gs = 1), min(lmin), max(lmax),
    sum(cn) FILTER (WHERE gs = 1), sum(cs) FILTER (WHERE gs = 1), min(cmin), max(cmax),
    {", ".join(f"sum({m}_s) FILTER (WHERE gs = 1), min({m}_mn), max({m}_mx)" for m in _MEASURES)},
    jsonb_object_agg(lk, c) FILTER (WHERE gs = 1),
    coalesce(jsonb_object_agg(ck, c) FILTER (WHERE gs = 2 AND ck IS NOT NULL), '{{}}'::jsonb)
FROM g GROUP BY {_DIMS}
"""

_SCORE_BUILD_SQL = f"""
INSERT INTO dashboards_scorerollup (project_id, {_DIMS}, name, n_all, n, sum, min, max, n_true, flag_n, flag_true,
    traces_with)
SELECT %(project)s, {_DIMS}, name, count(*), count(value), sum(value), min(value), max(value),
       count(*) FILTER (WHERE value >= 0.5), count(flag), count(*) FILTER (WHERE flag), count(DISTINCT trace_id)
FROM (
    SELECT date_trunc('hour', t.start_time, 'UTC') AS hour, {_EXPAND_COLS},
           s.name, s.value, s.trace_id,
           -- metrics._plan's flag rule: the evaluator's stored decision, else the registry threshold.
           CASE WHEN jsonb_typeof(s.metadata -> 'flagged') = 'boolean' THEN (s.metadata ->> 'flagged')::boolean
                ELSE s.value >= coalesce(th.threshold, CASE WHEN left(s.name, %(jlen)s) = %(jprefix)s
                                                            AND length(s.name) > %(jlen)s THEN 0.5 END) END AS flag
    FROM {_TRACE_TABLE} t
    JOIN {_SCORE_TABLE} s ON s.project_id = t.project_id AND s.trace_id = t.trace_id
    {_EXPAND_FROM}
    LEFT JOIN unnest(%(th_names)s::text[], %(th_values)s::float8[]) AS th(name, threshold) ON th.name = s.name
    WHERE t.project_id = %(project)s AND t.start_time >= %(lo)s AND t.start_time < %(hi)s
      AND date_trunc('hour', t.start_time, 'UTC') = ANY(%(hours)s::timestamptz[]) {_EXPAND_WHERE}
) x
GROUP BY {_DIMS}, name
"""


_ACTOR_BUILD_SQL = f"""
INSERT INTO dashboards_actorrollup (project_id, hour, kind, actor, traces, errors, cost_n, cost_sum, latency_sum,
    input_tokens_sum, output_tokens_sum, total_tokens_sum)
SELECT %(project)s, date_trunc('hour', t.start_time, 'UTC'), k.kind,
       CASE k.kind WHEN 'user' THEN t.user_id ELSE t.session_id END, count(*),
       count(*) FILTER (WHERE t.status = 'error'), count(t.cost_usd), sum(t.cost_usd), sum(t.latency_ms),
       sum(t.input_tokens), sum(t.output_tokens), sum(t.total_tokens)
FROM {_TRACE_TABLE} t CROSS JOIN (VALUES ('user'), ('session')) AS k(kind)
WHERE t.project_id = %(project)s AND t.start_time >= %(lo)s AND t.start_time < %(hi)s
  AND date_trunc('hour', t.start_time, 'UTC') = ANY(%(hours)s::timestamptz[])
GROUP BY 2, 3, 4
"""


# Daily trace rollups: the hourly rows of each UTC day merged, at level "day:<level>"
# with `hour` = the day's start; rebuilt from the hourly rows whenever one of its hours is.
DAY_PREFIX = "day:"
_GK = "jsonb_build_array(r.level, r.model, r.prompt_name, r.prompt_version, r.environment, r.meta_key, r.meta_value)"
_DAY_SUM_EXPRS = ["sum(traces)", "sum(errors)", "sum(latency_sum)", "min(latency_min)", "max(latency_max)",
                  "sum(cost_n)", "sum(cost_sum)", "min(cost_min)", "max(cost_max)",
                  *(f"{agg}({m}_{part})" for m in _MEASURES for agg, part in (("sum", "sum"), ("min", "min"),
                                                                             ("max", "max")))]
_DAY_SUMS = ", ".join(f"{expr} AS a{i}" for i, expr in enumerate(_DAY_SUM_EXPRS))
_DAY_SUM_COLS = ", ".join(f"s.a{i}" for i in range(len(_DAY_SUM_EXPRS)))
_DAY_BUILD_SQL = f"""
WITH src AS (
    SELECT date_trunc('day', r.hour, 'UTC') AS day, {_GK} AS gk, r.*
    FROM dashboards_tracerollup r
    WHERE r.project_id = %(project)s AND r.hour >= %(lo)s AND r.hour < %(hi)s AND left(r.level, 4) <> 'day:'
      AND date_trunc('day', r.hour, 'UTC') = ANY(%(days)s::timestamptz[])
), sums AS (
    SELECT day, gk, {_DAY_SUMS} FROM src GROUP BY day, gk
), lh AS (
    SELECT day, gk, jsonb_object_agg(k, c) AS hist FROM (
        SELECT day, gk, kv.key AS k, sum(kv.value::bigint) AS c FROM src, jsonb_each_text(src.latency_hist) kv
        GROUP BY 1, 2, 3) x GROUP BY 1, 2
), ch AS (
    SELECT day, gk, jsonb_object_agg(k, c) AS hist FROM (
        SELECT day, gk, kv.key AS k, sum(kv.value::bigint) AS c FROM src, jsonb_each_text(src.cost_hist) kv
        GROUP BY 1, 2, 3) x GROUP BY 1, 2
)
INSERT INTO dashboards_tracerollup (project_id, {_DIMS}, traces, errors, latency_sum, latency_min, latency_max,
    cost_n, cost_sum, cost_min, cost_max,
    {", ".join(f"{m}_sum, {m}_min, {m}_max" for m in _MEASURES)}, latency_hist, cost_hist)
SELECT %(project)s, s.day, 'day:' || (s.gk ->> 0), s.gk ->> 1, s.gk ->> 2, s.gk ->> 3, s.gk ->> 4, s.gk ->> 5,
       s.gk ->> 6, {_DAY_SUM_COLS}, coalesce(lh.hist, '{{}}'::jsonb), coalesce(ch.hist, '{{}}'::jsonb)
FROM sums s LEFT JOIN lh USING (day, gk) LEFT JOIN ch USING (day, gk)
"""


def rollup_days_rebuild(*, project_id: int, days: list[datetime]) -> None:
    """Re-merge the daily trace rollups of these UTC days from their hourly rows."""
    if not days:
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM dashboards_tracerollup WHERE project_id = %s AND left(level, 4) = 'day:' "
                       "AND hour = ANY(%s::timestamptz[])", [project_id, days])
        cursor.execute(_DAY_BUILD_SQL, {"project": project_id, "days": days, "lo": min(days),
                                        "hi": max(days) + timedelta(days=1)})


def _thresholds() -> tuple[list[str], list[float]]:
    flagged = [(s.name, s.flag_threshold) for s in names.REGISTRY.values() if s.flag_threshold is not None]
    return [n for n, _ in flagged], [float(t) for _, t in flagged]


def rollup_hours_rebuild(*, project_id: int, hours: list[datetime], keys: list[str]) -> None:
    """Delete and re-aggregate these hours of one project (one transaction)."""
    if not hours:
        return
    th_names, th_values = _thresholds()
    params = {"project": project_id, "keys": ["", *keys], "hours": hours, "lo": min(hours),
              "hi": max(hours) + timedelta(hours=1), "th_names": th_names, "th_values": th_values,
              "jprefix": names.JUDGE_PREFIX, "jlen": len(names.JUDGE_PREFIX)}
    with transaction.atomic(), connection.cursor() as cursor:
        # Daily rows (a midnight `hour` too) stay until their day is re-merged, right after.
        for table, extra in (("dashboards_tracerollup", " AND left(level, 4) <> 'day:'"),
                             ("dashboards_scorerollup", ""), ("dashboards_actorrollup", "")):
            cursor.execute(f"DELETE FROM {table} WHERE project_id = %s AND hour = ANY(%s::timestamptz[]){extra}",
                           [project_id, hours])
        cursor.execute(_TRACE_BUILD_SQL, params)
        cursor.execute(_SCORE_BUILD_SQL, params)
        cursor.execute(_ACTOR_BUILD_SQL, params)


_CHANGED_SQL = f"""
SELECT project_id, date_trunc('hour', start_time, 'UTC') FROM {_TRACE_TABLE} WHERE updated_at > %(since)s
UNION
SELECT t.project_id, date_trunc('hour', t.start_time, 'UTC')
FROM {_SCORE_TABLE} s JOIN {_TRACE_TABLE} t ON t.project_id = s.project_id AND t.trace_id = s.trace_id
WHERE s.updated_at > %(since)s
UNION
SELECT project_id, hour FROM dashboards_rollupdirtyhour WHERE id <= %(dirty_max)s
"""


@dataclass
class RefreshResult:
    hours: int
    projects: int
    seconds: float
    skipped: bool = False


def rollups_refresh() -> RefreshResult:
    """Rebuild every hour changed since the last run (all hours on the first run), then
    move the watermark. One run at a time (an advisory lock); a run that dies leaves the
    watermark where it was, so the next one redoes its work."""
    t0 = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY])
        if not cursor.fetchone()[0]:
            return RefreshResult(0, 0, 0.0, skipped=True)
    try:
        return _refresh(t0)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])


def _refresh(t0: float) -> RefreshResult:
    state, _ = RollupState.objects.get_or_create(pk=1)
    with connection.cursor() as cursor:
        cursor.execute("SELECT now(), coalesce(max(id), 0) FROM dashboards_rollupdirtyhour")
        started, dirty_max = cursor.fetchone()
        since = datetime(1970, 1, 1, tzinfo=UTC) if state.watermark is None else state.watermark - OVERLAP
        cursor.execute(_CHANGED_SQL, {"since": since, "dirty_max": dirty_max})
        changed = cursor.fetchall()
    by_project: dict[int, set[datetime]] = {}
    for project_id, hour in changed:
        by_project.setdefault(project_id, set()).add(hour)
    # A project whose chosen metadata keys changed is rebuilt whole.
    for config in RollupConfig.objects.all():
        if sorted(config.metadata_keys) != sorted(config.built_keys):
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT DISTINCT date_trunc('hour', start_time, 'UTC') FROM {_TRACE_TABLE} "
                               "WHERE project_id = %s", [config.project_id])
                by_project.setdefault(config.project_id, set()).update(h for (h,) in cursor.fetchall())
    live = set(Project.objects.filter(pk__in=list(by_project)).values_list("pk", flat=True))
    keys_of = {c.project_id: list(c.metadata_keys) for c in RollupConfig.objects.filter(project_id__in=live)}
    total = 0
    for project_id in sorted(live):
        hours = sorted(by_project[project_id])
        keys = keys_of.get(project_id, [])
        for i in range(0, len(hours), HOURS_PER_BATCH):
            rollup_hours_rebuild(project_id=project_id, hours=hours[i:i + HOURS_PER_BATCH], keys=keys)
        days = sorted({day_floor(hour) for hour in hours})
        for i in range(0, len(days), DAYS_PER_BATCH):
            rollup_days_rebuild(project_id=project_id, days=days[i:i + DAYS_PER_BATCH])
        total += len(hours)
        RollupConfig.objects.filter(project_id=project_id).update(built_keys=keys)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM dashboards_rollupdirtyhour WHERE id <= %s", [dirty_max])
        seconds = time.perf_counter() - t0
        RollupState.objects.filter(pk=1).update(watermark=started, last_run_seconds=seconds, last_hours=total)
    return RefreshResult(total, len(live), seconds)


def rollup_config_set(*, project: Project, metadata_keys: list[str]) -> RollupConfig:
    """Choose the metadata keys a project's rollups split by (the next refresh rebuilds)."""
    keys = sorted({k.strip() for k in metadata_keys if k.strip()})
    config, _ = RollupConfig.objects.get_or_create(project=project)
    config.metadata_keys = keys
    config.save(update_fields=["metadata_keys", "updated_at"])
    return config


# ------------------------------------------------------------------------ answering


def rollup_status(project: Project) -> tuple[datetime | None, frozenset[str]]:
    """The watermark and the metadata keys rolled up for this project, in one round trip
    (it is paid by every metrics query). Keys count only once built and still wanted."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT (SELECT watermark FROM dashboards_rollupstate WHERE id = 1), "
                       "(SELECT ARRAY(SELECT unnest(metadata_keys) INTERSECT SELECT unnest(built_keys)) "
                       " FROM dashboards_rollupconfig WHERE project_id = %s)", [project.pk])
        watermark, keys = cursor.fetchone()
    return watermark, frozenset(keys or ())


def _safe_metadata_value(value: str) -> bool:
    # metadata.<k>=v matches JSON values by containment (a number also as a number);
    # the rollup holds `->>` text, equal to that only for plain strings.
    return metadata_candidates(value) == [value] and not value.startswith(("{", "[", '"')) and value != "null"


def rollup_level(query, *, chosen: frozenset[str]) -> tuple[str, str] | None:
    """(level, metadata key or "") of the coarsest rollup rows holding every dimension the
    query groups or filters by, or None if rollups can't answer it."""
    from dashboards.metrics import METADATA_PREFIX, PERCENTILES

    measure, agg = query.measure, query.agg
    if measure in ("users", "sessions"):
        return None
    if agg in PERCENTILES and measure not in ("latency_ms", "cost_usd"):
        return None
    keys: set[str] = set()
    needed: set[str] = set()
    for dim in query.group_by:
        if dim.startswith(METADATA_PREFIX):
            keys.add(dim[len(METADATA_PREFIX):])
        elif dim in ROLLUP_DIMENSIONS:
            needed.add(dim)
        else:
            return None
    f: TraceFilter = query.filter
    # The window was already cut from the filter's own from/to/range (effective_window).
    rest = replace(f, **{name: None for name in _FILTER_FIELDS}, metadata=(), start_from=None, start_to=None,
                   range=None)
    if rest != TraceFilter():
        return None
    for name in _FILTER_FIELDS:
        if getattr(f, name) is not None:
            needed.add("prompt" if name == "prompt_version" else name)
    for key, value in f.metadata:
        if not _safe_metadata_value(value):
            return None
        keys.add(key)
    if len(keys) > 1 or not keys <= chosen:
        return None
    meta_key = keys.pop() if keys else ""
    if meta_key:
        return ("meta" if not needed else "full"), meta_key
    # LEVELS runs from coarse to fine: the first that holds every needed dimension.
    return next(name for name, dims in LEVELS.items() if needed <= set(dims)), ""


def hour_ceil(moment: datetime) -> datetime:
    floor = moment.replace(minute=0, second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(hours=1)


def day_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def day_ceil(moment: datetime) -> datetime:
    floor = day_floor(moment)
    return floor if floor == moment else floor + timedelta(days=1)


def hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _sources(query, project: Project, level: str, meta_key: str, h0: datetime, h1: datetime,
             edges: list[tuple[datetime, datetime]], percentile: bool) -> tuple[str, list[Any]]:
    """UNION ALL of stored rollup rows in [h0, h1) and raw trace rows of the edge windows,
    as (hour, model, prompt_name, prompt_version, environment, meta_value, n, s, mn, mx, t)
    or, for percentiles, (hour, ..., meta_value, k, c)."""
    from dashboards.metrics import SCORE_PREFIX, score_kind, traces_sql

    measure, agg = query.measure, query.agg
    dims = "r.hour, r.model, r.prompt_name, r.prompt_version, r.environment, r.meta_value"
    raw_dims = ("date_trunc('hour', t.start_time, 'UTC') AS hour, t.model, t.prompt_name, t.prompt_version, "
                "t.environment, (t.metadata ->> %s) AS meta_value")
    f = query.filter
    filters, filter_params = [], []
    for field_name, column in (("model", "model"), ("environment", "environment"), ("prompt", "prompt_name"),
                               ("prompt_version", "prompt_version")):
        value = getattr(f, field_name)
        if value is not None:
            filters.append(f" AND r.{column} = %s")
            filter_params.append(value)
    for _key, value in f.metadata:
        filters.append(" AND r.meta_value = %s")
        filter_params.append(value)

    def where(lvl: str, lo: datetime, hi: datetime) -> tuple[str, list[Any]]:
        return ("r.project_id = %s AND r.level = %s AND r.meta_key = %s AND r.hour >= %s AND r.hour < %s"
                + "".join(filters)), [project.pk, lvl, meta_key, lo, hi, *filter_params]

    # Trace rollups: whole UTC days from the daily rows (24 times fewer), unless the
    # query buckets by hour; the hours around them from the hourly rows.
    d0, d1 = day_ceil(h0), day_floor(h1)
    if query.interval == "hour" or d1 <= d0:
        trace_ranges = [(level, h0, h1)]
    else:
        trace_ranges = [(r_level, lo, hi) for r_level, lo, hi in ((level, h0, d0), (DAY_PREFIX + level, d0, d1),
                                                                  (level, d1, h1)) if lo < hi]
    parts: list[str] = []
    params: list[Any] = []
    score_name = measure[len(SCORE_PREFIX):] if measure.startswith(SCORE_PREFIX) else None
    kind = score_kind(score_name) if score_name is not None else None

    # Stored rows.
    for r_level, lo, hi in trace_ranges:
        trace_where, trace_params = where(r_level, lo, hi)
        if percentile:
            column = "latency_hist" if measure == "latency_ms" else "cost_hist"
            parts.append(f"SELECT {dims}, kv.key::int AS k, kv.value::bigint AS c FROM dashboards_tracerollup r, "
                         f"jsonb_each_text(r.{column}) AS kv WHERE {trace_where}")
        elif score_name is None:
            n, s, mn, mx, t = _trace_columns(measure)
            parts.append(f"SELECT {dims}, {n} AS n, {s} AS s, {mn} AS mn, {mx} AS mx, {t} AS t "
                         f"FROM dashboards_tracerollup r WHERE {trace_where}")
        elif kind.kind == "signal" and agg == "rate":
            parts.append(f"SELECT {dims}, r.traces AS n, NULL::numeric AS s, NULL::numeric AS mn, "
                         f"NULL::numeric AS mx, 0 AS t FROM dashboards_tracerollup r WHERE {trace_where}")
        else:
            continue
        params += trace_params
    score_where, score_params = where(level, h0, h1)
    if score_name is not None and kind.kind == "signal" and agg == "rate":
        parts.append(f"SELECT {dims}, 0, NULL::numeric, NULL::numeric, NULL::numeric, r.traces_with "
                     f"FROM dashboards_scorerollup r WHERE {score_where} AND r.name = %s")
        params += [*score_params, score_name]
    elif score_name is not None:
        n, t = _score_columns(kind, agg)
        parts.append(f"SELECT {dims}, {n} AS n, r.sum::numeric AS s, r.min::numeric AS mn, r.max::numeric AS mx, "
                     f"{t} AS t FROM dashboards_scorerollup r WHERE {score_where} AND r.name = %s")
        params += [*score_params, score_name]

    # Raw rows of the edges, through the explorer's filter -> SQL path.
    for start, end in edges:
        traces, tparams = traces_sql(project=project, trace_filter=f, start=start, end=end)
        if percentile:
            x = "t.latency_ms" if measure == "latency_ms" else "t.cost_usd::float8"
            parts.append(f"SELECT {raw_dims}, {hist_key_sql(x)} AS k, 1::bigint AS c FROM ({traces}) AS t "
                         f"WHERE {x} IS NOT NULL")
            params += [meta_key, *tparams]
        elif score_name is None:
            n, s, mn, mx, t = _trace_raw_columns(measure)
            parts.append(f"SELECT {raw_dims}, {n}, {s}, {mn}, {mx}, {t} FROM ({traces}) AS t")
            params += [meta_key, *tparams]
        elif kind.kind == "signal" and agg == "rate":
            parts.append(f"SELECT {raw_dims}, 1, NULL::numeric, NULL::numeric, NULL::numeric, "
                         f"(EXISTS (SELECT 1 FROM {_SCORE_TABLE} s WHERE s.project_id = %s AND s.trace_id = t.trace_id "
                         f"AND s.name = %s))::int FROM ({traces}) AS t")
            params += [meta_key, project.pk, score_name, *tparams]
        else:
            n, t = _score_raw_columns(kind, agg)
            parts.append(f"SELECT {raw_dims}, {n}, s.value::numeric, s.value::numeric, s.value::numeric, {t} "
                         f"FROM ({traces}) AS t JOIN {_SCORE_TABLE} s ON s.project_id = %s "
                         f"AND s.trace_id = t.trace_id AND s.name = %s")
            params += [meta_key, *tparams, project.pk, score_name]
    return " UNION ALL ".join(parts), params


def _trace_columns(measure: str) -> tuple[str, str, str, str, str]:
    if measure == "traces":
        return "r.traces", "NULL::numeric", "NULL::numeric", "NULL::numeric", "0"
    if measure == "errors":
        return "r.traces", "NULL::numeric", "NULL::numeric", "NULL::numeric", "r.errors"
    if measure == "latency_ms":
        return "r.traces", "r.latency_sum::numeric", "r.latency_min::numeric", "r.latency_max::numeric", "0"
    if measure == "cost_usd":
        return "r.cost_n", "r.cost_sum", "r.cost_min", "r.cost_max", "0"
    return "r.traces", f"r.{measure}_sum::numeric", f"r.{measure}_min::numeric", f"r.{measure}_max::numeric", "0"


def _trace_raw_columns(measure: str) -> tuple[str, str, str, str, str]:
    if measure in ("traces", "errors"):
        return "1", "NULL::numeric", "NULL::numeric", "NULL::numeric", "(t.status = 'error')::int"
    if measure == "cost_usd":
        return "(t.cost_usd IS NOT NULL)::int", "t.cost_usd", "t.cost_usd", "t.cost_usd", "0"
    return "1", f"t.{measure}::numeric", f"t.{measure}::numeric", f"t.{measure}::numeric", "0"


def _score_columns(kind, agg: str) -> tuple[str, str]:
    if agg == "count":
        return "r.n_all", "0"
    if agg == "rate" and kind.kind == "flagged":
        return "r.flag_n", "r.flag_true"
    return "r.n", "r.n_true"


def _score_raw_columns(kind, agg: str) -> tuple[str, str]:
    if agg == "count":
        return "1", "0"
    if agg == "rate" and kind.kind == "flagged":
        flag = ("(CASE WHEN jsonb_typeof(s.metadata -> 'flagged') = 'boolean' "
                "THEN (s.metadata ->> 'flagged')::boolean "
                f"ELSE s.value >= {float(kind.flag_threshold)!r} END)")
        return f"({flag} IS NOT NULL)::int", f"coalesce({flag}, false)::int"
    return "(s.value IS NOT NULL)::int", "coalesce(s.value >= 0.5, false)::int"


def _value_sql(measure: str, agg: str) -> str:
    if agg == "count":
        return "sum(c.t)" if measure == "errors" else "sum(c.n)"
    if agg == "sum":
        return "sum(c.s)::float8"
    if agg == "avg":
        return "(sum(c.s) / nullif(sum(c.n), 0))::float8"
    if agg == "min":
        return "min(c.mn)::float8"
    if agg == "max":
        return "max(c.mx)::float8"
    return "(sum(c.t)::numeric / nullif(sum(c.n), 0))::float8"  # rate


# A stored hour's UTC bucket, equal to the raw side's date_trunc(interval, t, 'UTC') (weeks
# start on Monday; 2000-01-03 was one). date_bin is plain arithmetic; date_trunc with a time
# zone converts every row, which cost a fifth of a distinct-users query over a month.
_BUCKET_SQL = {"hour": "r.hour", "day": "date_bin('1 day', r.hour, '2000-01-03 00:00+00')",
               "week": "date_bin('7 days', r.hour, '2000-01-03 00:00+00')"}


def rollup_rows(*, project: Project, query, start: datetime, end: datetime, top: int,
                now: datetime | None = None) -> tuple[list[tuple], bool] | None:
    """Rows in _raw_sql's shape (bucket, [g, folded]..., value, n) from rollups plus raw
    edges, and whether any rollup was read; None when rollups can't answer the query."""
    del now
    answered = rollup_rows_many(project=project, query=query, aggs=(query.agg,), start=start, end=end, top=top)
    return None if answered is None else (answered[0][0], answered[1])


def rollup_rows_many(*, project: Project, query, aggs: tuple[str, ...], start: datetime, end: datetime,
                     top: int) -> tuple[list[list[tuple]], bool] | None:
    """rollup_rows for the query under each of `aggs` (one, or several percentiles), one
    list of rows per agg. Percentiles share one read of the histograms: the overview's
    p50 / p95 / p99 cost one query, not three."""
    from dashboards.metrics import PERCENTILES, dimension_sql

    if len(aggs) > 1 and not all(agg in PERCENTILES for agg in aggs):
        raise ValueError(f"only percentiles share a read, got {aggs}")
    watermark, chosen = rollup_status(project)
    if watermark is None:
        return None
    h0 = hour_ceil(start)
    h1 = min(hour_floor(end), hour_floor(watermark))
    if h1 <= h0:
        return None
    edges = [(a, b) for a, b in ((start, h0), (h1, end)) if a < b]
    bucket = _BUCKET_SQL[query.interval] if query.interval else "NULL::timestamptz"
    actor = _actor_kind(query)
    if actor is not None:
        src, params = _actor_sources(query, project, actor, h0, h1, edges)
        if not query.group_by:  # distinct users / sessions
            # Distinct (bucket, actor) pairs by a hash aggregate, then counted: faster than
            # count(DISTINCT), which sorts every stored row. NULL is no actor, as there.
            sql = (f"SELECT d.bucket, count(*), count(*) FROM (SELECT {bucket} AS bucket, r.actor FROM ({src}) AS r "
                   "WHERE r.actor IS NOT NULL GROUP BY 1, 2) AS d GROUP BY 1")
            return [_execute(sql, params)], True
        return [_folded_rows(query, src, params, ["r.actor"], bucket, top, quantiles=())], True
    found = rollup_level(query, chosen=chosen)
    if found is None:
        return None
    level, meta_key = found
    percentile = query.agg in PERCENTILES
    src, params = _sources(query, project, level, meta_key, h0, h1, edges, percentile)
    dims: list[str] = []
    for dim in query.group_by:
        if dim.startswith("metadata."):
            dims.append("r.meta_value")
        else:
            sql, _ = dimension_sql(dim)
            dims.append(sql.replace("t.", "r."))
    if not percentile:
        return [_folded_rows(query, src, params, dims, bucket, top, quantiles=())], True
    rows = _folded_rows(query, src, params, dims, bucket, top, quantiles=tuple(PERCENTILES[a] for a in aggs))
    # One value column per quantile: split into each agg's (bucket, [g, folded]..., value, n).
    return [[(*row[:-1 - len(aggs)], row[-1 - len(aggs) + i], row[-1]) for row in rows]
            for i in range(len(aggs))], True


def _folded_rows(query, src: str, params: list[Any], dims: list[str], bucket: str, top: int, *,
                 quantiles: tuple[float, ...]) -> list[tuple]:
    """Partial aggregates of `src` per bucket and group, the top groups kept and the rest
    folded into other (as _raw_sql does), finished into (bucket, [g, folded]..., value, n);
    with `quantiles` (src holds histogram bins) one value column per quantile."""
    g = len(dims)
    percentile = bool(quantiles)
    if percentile:
        cells = (f"SELECT {bucket} AS bucket, {''.join(f'{d} AS g{i + 1}, ' for i, d in enumerate(dims))}"
                 f"r.k, sum(r.c) AS c FROM ({src}) AS r GROUP BY {', '.join(str(i) for i in range(1, g + 3))}")
        weight = "sum(c.c)"
    else:
        cells = (f"SELECT {bucket} AS bucket, {''.join(f'{d} AS g{i + 1}, ' for i, d in enumerate(dims))}"
                 "sum(r.n) AS n, sum(r.s) AS s, min(r.mn) AS mn, max(r.mx) AS mx, sum(r.t) AS t "
                 f"FROM ({src}) AS r GROUP BY {', '.join(str(i) for i in range(1, g + 2))}")
        weight = "sum(c.n)"
    ctes = [f"cells AS ({cells})"]
    fold_params: list[Any] = []
    outer: list[str] = []
    joins: list[str] = []
    for i in range(1, g + 1):
        ctes.append(f"k{i} AS (SELECT c.g{i} FROM cells c GROUP BY c.g{i} ORDER BY {weight} DESC, "
                    f"c.g{i} NULLS LAST LIMIT %s)")
        fold_params.append(top)
        joins.append(f"LEFT JOIN k{i} ON k{i}.g{i} = c.g{i}")
        outer.append(f"CASE WHEN c.g{i} IS NULL THEN NOT EXISTS (SELECT 1 FROM k{i} WHERE k{i}.g{i} IS NULL) "
                     f"ELSE k{i}.g{i} IS NULL END AS o{i}")
    key_cols = ["f.bucket AS bucket"]
    for i in range(1, g + 1):
        key_cols += [f"CASE WHEN f.o{i} THEN NULL ELSE f.g{i} END AS g{i}", f"f.o{i} AS o{i}"]
    ctes.append(f"folded AS (SELECT c.*{''.join(', ' + o for o in outer)} FROM cells c {' '.join(joins)})")
    positions = ", ".join(str(i) for i in range(1, 2 + 2 * g))
    if percentile:
        names_ = ["bucket", *(f"{c}{i}" for i in range(1, g + 1) for c in ("g", "o"))]
        part = ", ".join(f"h.{c}" for c in names_)
        keys = ", ".join(f"w.{c}" for c in names_)
        # Without groups nothing is folded: the cells are already one row per (bucket, bin).
        h = ("h AS (SELECT c.bucket, c.k, c.c FROM cells c)" if g == 0 else
             f"h AS (SELECT {', '.join(key_cols)}, f.k, sum(f.c) AS c FROM folded f GROUP BY {positions}, f.k)")
        picks = "".join("min(w.k) FILTER (WHERE w.cum > floor(%s * (w.total - 1))), "
                        "min(w.k) FILTER (WHERE w.cum > ceil(%s * (w.total - 1))), " for _ in quantiles)
        sql = (f"WITH {', '.join(ctes if g else ctes[:1])}, {h}, "
               f"w AS (SELECT h.*, sum(h.c) OVER (PARTITION BY {part} ORDER BY h.k) AS cum, "
               f"sum(h.c) OVER (PARTITION BY {part}) AS total FROM h) "
               f"SELECT {keys}, {picks}min(w.total) "
               f"FROM w GROUP BY {positions}")
        rows = _execute(sql, [*params, *fold_params, *(q for q in quantiles for _ in (0, 1))])
        out = []
        for row in rows:
            keys_, total = row[:-1 - 2 * len(quantiles)], int(row[-1])
            values = []
            for i, q in enumerate(quantiles):
                k_lo, k_hi = row[len(keys_) + 2 * i], row[len(keys_) + 2 * i + 1]
                pos = q * (total - 1)
                frac = pos - math.floor(pos)
                lo, hi = hist_value(k_lo), hist_value(k_hi)
                values.append(lo + (hi - lo) * frac)
            out.append((*keys_, *values, total))
        return out
    value = _value_sql(query.measure, query.agg).replace("c.", "f.")
    sql = (f"WITH {', '.join(ctes)} SELECT {', '.join(key_cols)}, {value} AS value, sum(f.n) AS n "
           f"FROM folded f GROUP BY {positions}")
    return _execute(sql, [*params, *fold_params])


_ACTOR_MEASURES = {  # measure -> stored (n, s, t) over dashboards_actorrollup
    "traces": ("r.traces", "NULL::numeric", "0"),
    "errors": ("r.traces", "NULL::numeric", "r.errors"),
    "cost_usd": ("r.cost_n", "r.cost_sum", "0"),
    "latency_ms": ("r.traces", "r.latency_sum::numeric", "0"),
    "input_tokens": ("r.traces", "r.input_tokens_sum::numeric", "0"),
    "output_tokens": ("r.traces", "r.output_tokens_sum::numeric", "0"),
    "total_tokens": ("r.traces", "r.total_tokens_sum::numeric", "0"),
}


def _actor_kind(query) -> str | None:
    """"user" / "session" when the per-user and per-session rollups answer the query:
    distinct users or sessions, or a trace measure's count / sum / avg / rate per user_id;
    no filter (a filtered count needs the traces themselves)."""
    f: TraceFilter = query.filter
    if replace(f, start_from=None, start_to=None, range=None) != TraceFilter():
        return None
    if query.measure in ("users", "sessions") and not query.group_by:
        return "user" if query.measure == "users" else "session"
    if query.group_by == ("user_id",) and query.measure in _ACTOR_MEASURES and query.agg in ("count", "sum", "avg",
                                                                                               "rate"):
        return "user"
    return None


def _actor_sources(query, project: Project, kind: str, h0: datetime, h1: datetime,
                   edges: list[tuple[datetime, datetime]]) -> tuple[str, list[Any]]:
    """(hour, actor, n, s, mn, mx, t) rows: stored per-user / per-session rows in [h0, h1)
    and raw traces of the edges."""
    from dashboards.metrics import traces_sql

    n, s, t = _ACTOR_MEASURES.get(query.measure, ("r.traces", "NULL::numeric", "0"))
    parts = [f"SELECT r.hour, r.actor, {n} AS n, {s} AS s, NULL::numeric AS mn, NULL::numeric AS mx, {t} AS t "
             "FROM dashboards_actorrollup r WHERE r.project_id = %s AND r.kind = %s AND r.hour >= %s AND r.hour < %s"]
    params: list[Any] = [project.pk, kind, h0, h1]
    column = "t.user_id" if kind == "user" else "t.session_id"
    raw_n, raw_s, _, _, raw_t = _trace_raw_columns(query.measure if query.measure in _ACTOR_MEASURES else "traces")
    for start, end in edges:
        traces, tparams = traces_sql(project=project, trace_filter=query.filter, start=start, end=end)
        parts.append(f"SELECT date_trunc('hour', t.start_time, 'UTC'), {column}, {raw_n}, {raw_s}, NULL::numeric, "
                     f"NULL::numeric, {raw_t} FROM ({traces}) AS t")
        params += tparams
    return " UNION ALL ".join(parts), params


def _execute(sql: str, params: list[Any]) -> list[tuple]:
    from dashboards.metrics import statement_timeout

    with statement_timeout() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()
