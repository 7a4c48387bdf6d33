"""The metrics layer: the one query every chart, page, alert and slice reads.

    MetricsQuery.parse(params, now=..., max_hourly_window=...)  ->  MetricsQuery
    metrics_query(project=..., query=...)                       ->  MetricsResult
    metrics_queries(project=..., queries=[...])                 ->  list[MetricsResult]
    metric_dimensions(project=..., start=..., end=...)          ->  list[Dimension]
    metadata_dimensions(project=..., start=..., end=...)        ->  list[Dimension]

A query is a measure (traces, users, latency_ms, score:<name>, ...), an aggregation
(count, avg, p95, rate, ...), up to two group_by dimensions with the top N groups kept
and the rest folded into "other", an optional time bucket (hour, day, week) and a trace
filter in the explorer's language (explorer/filters.py), so a chart's click-through opens
the explorer on exactly the traces behind a point.

Semantics (README, "Dashboards: metrics API"):
- A trace is the unit: it belongs to the bucket (UTC) of its start_time, and a score
  belongs to its trace's bucket.
- Trace measures aggregate over traces whose value is not null; `n` is that number.
  users / sessions are exact distinct counts of non-null ids.
- errors: count = error traces, rate = their share of traces.
- score:<name>: numeric aggregations over the scores' values (trace- and span-level,
  any source); `rate` depends on the kind of score (scores/names.py): the share of
  boolean scores >= 0.5, the share of evaluator scores flagged (their stored decision,
  else value >= the registry threshold), or for implicit signals (written only when
  they happen) the share of traces that have one.
- `value` is None when n == 0 (never NaN), except `count`, which is 0.

Numbers come from the raw tables here (exact); dashboards/rollups.py answers the same
queries from hourly rollups where it can, and `MetricsResult.source` says which.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.http import QueryDict

from config.errors import DomainError, ValidationFailed
from explorer.filters import RANGES, FilterError, TraceFilter
from projects.models import Project
from scores import names
from scores.models import Score

MEASURES = ("traces", "users", "sessions", "latency_ms", "cost_usd", "input_tokens", "output_tokens",
            "total_tokens", "errors")  # plus "score:<name>"
SCORE_PREFIX = "score:"
AGGS = ("count", "sum", "avg", "min", "max", "p50", "p90", "p95", "p99", "rate")
PERCENTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
GROUP_DIMENSIONS = ("model", "prompt", "environment", "release", "name", "user_id", "tag")  # plus "metadata.<key>"
METADATA_PREFIX = "metadata."
INTERVALS = ("hour", "day", "week")
INTERVAL_STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}
OTHER = "other"

MAX_GROUP_BY = 2
TOP_DEFAULT = 10
TOP_MAX = 100
# Words that mean "no folding" in `top`.
TOP_ALL = ("all", "none")
# Dimensions whose values are typically unbounded (one per end user, one per request id):
# asking for every group would be a runaway query and an unreadable chart.
HIGH_CARDINALITY = ("user_id",)
# top=all still stops here: beyond, the answer is a 400 asking for top.
MAX_GROUPS = 1000
# Points in one answer (buckets × groups): past this a chart is unreadable anyway.
MAX_POINTS = 200_000
DEFAULT_WINDOW = timedelta(days=7)
SCORE_NAME_MAX = 100
# Parameters read by this module (beside the trace filter's) and by project_access.
QUERY_PARAMS = frozenset({"measure", "agg", "group_by", "top", "interval"})
PASSTHROUGH_PARAMS = frozenset({"project"})

# The empty filter (frozen, so one shared instance is safe as a default).
NO_FILTER = TraceFilter()
_NUMERIC_AGGS = ("count", "sum", "avg", "min", "max", *PERCENTILES)
_TRACE_COLUMNS = {
    "latency_ms": "t.latency_ms",
    "cost_usd": "t.cost_usd",
    "input_tokens": "t.input_tokens",
    "output_tokens": "t.output_tokens",
    "total_tokens": "t.total_tokens",
}
_UNITS = {"traces": "traces", "users": "users", "sessions": "sessions", "latency_ms": "ms", "cost_usd": "USD",
          "input_tokens": "tokens", "output_tokens": "tokens", "total_tokens": "tokens"}


class MetricsError(ValidationFailed):
    """Bad metrics parameters; `detail` maps each parameter to its problems (a 400)."""

    def __init__(self, errors: dict[str, list[str]]):
        message = "; ".join(f"{key}: {' '.join(problems)}" for key, problems in errors.items())
        super().__init__(message, detail=errors)
        self.errors = errors


class MetricsTimeout(DomainError):
    """The database cancelled the query at the statement timeout."""

    status = 503
    code = "query_timeout"


# ------------------------------------------------------------------------ measures


@dataclass(frozen=True)
class ScoreKind:
    """How the aggregations of one score name are read (from scores/names.py)."""

    kind: str  # "categorical" | "boolean" | "flagged" | "signal" | "numeric" | "unregistered"
    aggs: tuple[str, ...]
    unit: str
    flag_threshold: float | None = None
    rate_means: str = ""


def score_kind(name: str) -> ScoreKind:
    known = names.known(name)
    if known is None:
        return ScoreKind("unregistered", AGGS, "score", rate_means="share of scores with value >= 0.5")
    unit = known.unit or "score"
    if known.sparse:
        aggs = ("count", "rate") if known.data_type == names.BOOLEAN else (*_NUMERIC_AGGS, "rate")
        return ScoreKind("signal", aggs, unit, rate_means="share of traces that have the signal")
    if known.data_type == names.CATEGORICAL:
        return ScoreKind("categorical", ("count",), "scores")
    if known.data_type == names.BOOLEAN:
        return ScoreKind("boolean", ("count", "sum", "avg", "min", "max", "rate"), unit,
                         rate_means="share of scores with value >= 0.5 (yes)")
    if known.flag_threshold is not None:
        return ScoreKind("flagged", AGGS, unit, known.flag_threshold,
                         rate_means=f"share of scores flagged by the evaluator (else value >= {known.flag_threshold})")
    return ScoreKind("numeric", _NUMERIC_AGGS, unit)


def measure_aggs(measure: str) -> tuple[str, ...]:
    """The aggregations that fit a measure (the 400 for p95 of traces lists them)."""
    if measure in ("traces", "users", "sessions"):
        return ("count",)
    if measure == "errors":
        return ("count", "rate")
    if measure in _TRACE_COLUMNS:
        return _NUMERIC_AGGS
    return score_kind(measure[len(SCORE_PREFIX):]).aggs


def default_agg(measure: str) -> str:
    if measure in ("traces", "users", "sessions"):
        return "count"
    if measure == "errors":
        return "rate"
    if measure in _TRACE_COLUMNS:
        return "avg"
    aggs = measure_aggs(measure)
    return "rate" if aggs == ("count", "rate") else ("avg" if "avg" in aggs else "count")


def measure_unit(measure: str, agg: str) -> str:
    if agg == "rate":
        return "share"
    if measure.startswith(SCORE_PREFIX):
        return "scores" if agg == "count" else score_kind(measure[len(SCORE_PREFIX):]).unit
    if measure == "errors" or (agg == "count" and measure in _TRACE_COLUMNS):
        return "traces"
    return _UNITS[measure]


def _measure_problem(measure: str) -> str | None:
    if measure in MEASURES:
        return None
    if measure.startswith(SCORE_PREFIX):
        name = measure[len(SCORE_PREFIX):]
        if not name.strip() or name != name.strip():
            return "score:<name> needs a score name without surrounding spaces, e.g. score:user_thumbs"
        if len(name) > SCORE_NAME_MAX:
            return f"score names have at most {SCORE_NAME_MAX} characters"
        return None
    return f"{measure!r} is not a measure; expected one of {', '.join(MEASURES)} or score:<name>"


def _dimension_problem(dim: str) -> str | None:
    if dim in GROUP_DIMENSIONS:
        return None
    if dim.startswith(METADATA_PREFIX):
        key = dim[len(METADATA_PREFIX):]
        if not key:
            return "metadata.<key> needs a key, e.g. metadata.locale"
        if len(key) > 200:
            return "metadata keys have at most 200 characters"
        return None
    return f"{dim!r} is not a dimension; expected one of {', '.join(GROUP_DIMENSIONS)} or metadata.<key>"


# ------------------------------------------------------------------------ the query


@dataclass(frozen=True)
class MetricsQuery:
    measure: str
    agg: str
    start: datetime  # aware, UTC, inclusive
    end: datetime  # aware, UTC, exclusive
    group_by: tuple[str, ...] = ()  # at most 2
    top: int | None = TOP_DEFAULT  # groups kept per dimension by total n; the rest folded into "other"
    interval: str | None = None
    filter: TraceFilter = NO_FILTER  # its own from/to/range are intersected with start/end

    @classmethod
    def parse(cls, params: QueryDict | Mapping[str, Any], *, now: datetime,
              max_hourly_window: timedelta) -> MetricsQuery:
        """Validate GET /api/v1/metrics parameters: measure, agg, group_by (repeatable or a
        comma list), top (1..100 or `all`), interval, from / to / range, and every trace
        filter parameter. Raises MetricsError naming each bad parameter."""
        values = _as_lists(params)
        errors: dict[str, list[str]] = {}

        def fail(key: str, message: str) -> None:
            errors.setdefault(key, []).append(message)

        single: dict[str, str | None] = {}
        for key in ("measure", "agg", "top", "interval"):
            items = values.get(key, [])
            if len(items) > 1:
                fail(key, "given more than once")
            value = items[0].strip() if items else None
            if value == "":
                fail(key, "must not be empty (leave the parameter out for the default)")
                value = None
            single[key] = value

        measure = single["measure"]
        if measure is None:
            if "measure" not in errors:
                fail("measure", f"is required: one of {', '.join(MEASURES)} or score:<name>")
        elif problem := _measure_problem(measure):
            fail("measure", problem)
            measure = None

        agg = single["agg"]
        if agg is not None and agg not in AGGS:
            fail("agg", f"{agg!r} is not one of {', '.join(AGGS)}")
            agg = None
        elif agg is None and measure is not None:
            agg = default_agg(measure)

        group_by: list[str] = []
        for raw in values.get("group_by", []):
            for dim in (part.strip() for part in raw.split(",")):
                if not dim:
                    fail("group_by", "must not be empty")
                elif problem := _dimension_problem(dim):
                    fail("group_by", problem)
                elif dim in group_by:
                    fail("group_by", f"{dim} is given twice")
                else:
                    group_by.append(dim)

        top: int | None = TOP_DEFAULT
        raw_top = single["top"]
        if raw_top is not None:
            if raw_top.lower() in TOP_ALL:
                top = None
            elif raw_top.isdigit() and 1 <= int(raw_top) <= TOP_MAX:
                top = int(raw_top)
            else:
                fail("top", f"must be an integer from 1 to {TOP_MAX}, or all; got {raw_top!r}")

        interval = single["interval"]
        if interval is not None and interval not in INTERVALS:
            fail("interval", f"{interval!r} is not one of {', '.join(INTERVALS)}")
            interval = None

        trace_filter = TraceFilter()
        start = end = None
        try:
            parsed = TraceFilter.parse(params, allow=QUERY_PARAMS | PASSTHROUGH_PARAMS)
        except FilterError as exc:
            for key, problems in exc.errors.items():
                for problem in problems:
                    fail(key, problem)
        else:
            if parsed.search_mode == "semantic":
                fail("mode", "semantic search ranks traces and is not a filter; metrics use mode=text")
            start, end = _window(parsed, now=now, fail=fail)
            trace_filter = replace(parsed, start_from=None, start_to=None, range=None)

        if measure is None or agg is None or start is None or end is None or errors:
            if not errors:  # pragma: no cover - every None above comes with an error
                fail("measure", "invalid")
            raise MetricsError(errors)
        query = cls(measure=measure, agg=agg, start=start, end=end, group_by=tuple(group_by), top=top,
                    interval=interval, filter=trace_filter)
        query.check(max_hourly_window=max_hourly_window)
        return query

    def check(self, *, max_hourly_window: timedelta) -> None:
        """Raise MetricsError unless the query is one metrics_query answers: how
        programmatic callers (alerts, pages) get the same 400s as the API."""
        errors = _query_problems(self, max_hourly_window=max_hourly_window)
        if errors:
            raise MetricsError(errors)

    @property
    def score_name(self) -> str | None:
        return self.measure[len(SCORE_PREFIX):] if self.measure.startswith(SCORE_PREFIX) else None

    def to_query(self) -> list[tuple[str, str]]:
        """The query as (parameter, value) pairs; parse() reads them back to an equal query."""
        pairs = [("measure", self.measure), ("agg", self.agg), ("from", self.start.isoformat()),
                 ("to", self.end.isoformat())]
        pairs.extend(("group_by", dim) for dim in self.group_by)
        if self.top != TOP_DEFAULT:
            pairs.append(("top", "all" if self.top is None else str(self.top)))
        if self.interval:
            pairs.append(("interval", self.interval))
        pairs.extend(self.filter.to_query())
        return pairs

    def as_dict(self) -> dict[str, Any]:
        """JSON-able, normalised parameters (the API echoes them as `query`)."""
        out: dict[str, Any] = {"measure": self.measure, "agg": self.agg, "from": self.start.isoformat(),
                               "to": self.end.isoformat(), "group_by": list(self.group_by), "top": self.top,
                               "interval": self.interval, "filter": self.filter.as_dict()}
        return out


def _window(parsed: TraceFilter, *, now: datetime, fail) -> tuple[datetime | None, datetime | None]:
    """from / to / range -> [start, end): `to` defaults to now and `from` to 7 days before
    `to`; range=all is refused (a chart needs a bounded window)."""
    if parsed.range == "all":
        fail("range", "metrics need a bounded window: use 15m, 1h, 24h, 7d, 30d or from/to")
        return None, None
    if parsed.range:
        return now - RANGES[parsed.range], now
    end = parsed.start_to or now
    start = parsed.start_from or end - DEFAULT_WINDOW
    if start >= end:
        fail("from", f"must be before to ({start.isoformat()} >= {end.isoformat()})")
        return None, None
    return start, end


def parse_window(params: QueryDict | Mapping[str, Any], *, now: datetime) -> tuple[datetime, datetime]:
    """Only from / to / range (GET /api/v1/metrics/dimensions), with the metrics defaults."""
    errors: dict[str, list[str]] = {}

    def fail(key: str, message: str) -> None:
        errors.setdefault(key, []).append(message)

    values = _as_lists(params)
    for key in values:
        if key not in ("from", "to", "range", *PASSTHROUGH_PARAMS):
            fail(key, "unknown query parameter; expected from, to or range")
    start = end = None
    try:
        parsed = TraceFilter.parse({k: v for k, v in values.items() if k in ("from", "to", "range")})
    except FilterError as exc:
        for key, problems in exc.errors.items():
            errors.setdefault(key, []).extend(problems)
    else:
        start, end = _window(parsed, now=now, fail=fail)
    if errors or start is None or end is None:
        raise MetricsError(errors)
    return start, end


def _query_problems(query: MetricsQuery, *, max_hourly_window: timedelta) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}

    def fail(key: str, message: str) -> None:
        errors.setdefault(key, []).append(message)

    if problem := _measure_problem(query.measure):
        fail("measure", problem)
    elif query.agg not in AGGS:
        fail("agg", f"{query.agg!r} is not one of {', '.join(AGGS)}")
    elif query.agg not in (fits := measure_aggs(query.measure)):
        what = query.measure
        if query.score_name is not None:
            what = f"{query.measure} ({score_kind(query.score_name).kind} score)"
        fail("agg", f"{query.agg} does not fit {what}; use one of {', '.join(fits)}")
    if len(query.group_by) > MAX_GROUP_BY:
        fail("group_by", f"at most {MAX_GROUP_BY} dimensions; got {len(query.group_by)}")
    for dim in query.group_by:
        if problem := _dimension_problem(dim):
            fail("group_by", problem)
    if len(set(query.group_by)) != len(query.group_by):
        fail("group_by", "a dimension is given twice")
    if query.top is not None and not 1 <= query.top <= TOP_MAX:
        fail("top", f"must be from 1 to {TOP_MAX}, or all")
    if query.top is None:
        for dim in query.group_by:
            if dim in HIGH_CARDINALITY:
                fail("group_by", f"{dim} has a value per end user; give top (1..{TOP_MAX}) to keep the largest "
                                 "groups and fold the rest into other")
    if query.interval is not None and query.interval not in INTERVALS:
        fail("interval", f"{query.interval!r} is not one of {', '.join(INTERVALS)}")
    start, end = query.start, query.end
    if start.tzinfo is None or end.tzinfo is None:
        fail("from", "start and end must be timezone-aware")
    elif start >= end:
        fail("from", f"must be before to ({start.isoformat()} >= {end.isoformat()})")
    elif query.interval == "hour" and end - start > max_hourly_window:
        days = max_hourly_window / timedelta(days=1)
        fail("interval", f"hour covers at most {days:g} days; this window is {(end - start) / timedelta(days=1):.1f} "
                         "days: use interval=day or a shorter window")
    elif query.interval in INTERVAL_STEP and not errors:
        buckets = len(bucket_starts(start, end, query.interval))
        groups = 1 if query.top is None else (query.top + 1) ** len(query.group_by)
        if buckets * groups > MAX_POINTS:
            fail("top", f"{buckets} buckets × up to {groups} groups would be more than {MAX_POINTS:,} points: "
                        "lower top, drop a group_by or use a coarser interval")
    return errors


@dataclass(frozen=True)
class Point:
    time: datetime | None  # bucket start (UTC) when interval is set, else None
    group: dict[str, str | None]  # e.g. {"metadata.locale": "de-DE"}; "other" for folded; None = missing value
    value: float | None  # None when n == 0 (never NaN); count is 0 then
    n: int  # observations behind the value (traces, scores, users...)


@dataclass(frozen=True)
class MetricsResult:
    query: MetricsQuery
    data: list[Point]  # ordered by time, then group (groups by n desc, "other" last)
    unit: str  # "traces", "users", "ms", "USD", "tokens", "share", or the score's unit
    source: str  # "rollup", "raw", or "rollup+raw"
    approximate: bool  # True when percentiles came from histograms
    # Where the numbers were cut: the window actually read (the query's, intersected
    # with its filter's own from/to/range).
    start: datetime | None = None
    end: datetime | None = None
    notes: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Dimension:
    name: str  # "model", ..., or "metadata.<key>"
    distinct: int  # distinct non-null values in the window
    traces: int = 0  # traces in the window that carry a value


# ------------------------------------------------------------------------ time buckets


def bucket_floor(moment: datetime, interval: str) -> datetime:
    """The UTC bucket a moment falls in: hours, days, ISO weeks (Monday 00:00 UTC)."""
    moment = moment.astimezone(UTC)
    if interval == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "day":
        return day
    return day - timedelta(days=day.weekday())


def bucket_starts(start: datetime, end: datetime, interval: str) -> list[datetime]:
    """Every bucket that overlaps [start, end); the first and last may be partial."""
    step = INTERVAL_STEP[interval]
    first = bucket_floor(start, interval)
    count = max(0, math.ceil((end - first) / step))
    return [first + i * step for i in range(count)]


# ------------------------------------------------------------------------ SQL


@dataclass(frozen=True)
class _Plan:
    """The SQL pieces for one measure × agg over the base rows (columns bucket, g1, g2, x)."""

    x: str  # per-row expression
    value: str  # aggregate over x
    n: str  # observations behind the value
    joins_scores: bool = False
    x_params: tuple[Any, ...] = ()


def _plan(query: MetricsQuery, project: Project) -> _Plan:
    measure, agg = query.measure, query.agg
    if measure == "traces":
        return _Plan("1", "count(*)", "count(*)")
    if measure in ("users", "sessions"):
        column = "t.user_id" if measure == "users" else "t.session_id"
        return _Plan(column, "count(DISTINCT x)", "count(DISTINCT x)")
    if measure == "errors":
        if agg == "count":
            return _Plan("(t.status = 'error')", "count(*) FILTER (WHERE x)", "count(*)")
        return _Plan("(t.status = 'error')", "avg(x::int)::float8", "count(*)")
    if measure in _TRACE_COLUMNS:
        return _Plan(_TRACE_COLUMNS[measure], _numeric_agg(agg), "count(x)")
    name = query.score_name
    kind = score_kind(name)
    if agg == "rate" and kind.kind == "signal":
        # Signals exist only where they happened: the share is over the group's traces.
        exists = (f"EXISTS (SELECT 1 FROM {Score._meta.db_table} s WHERE s.project_id = %s "
                  "AND s.trace_id = t.trace_id AND s.name = %s)")
        return _Plan(exists, "avg(x::int)::float8", "count(*)", x_params=(project.pk, name))
    if agg == "count":
        return _Plan("s.value", "count(*)", "count(*)", joins_scores=True)
    if agg == "rate":
        if kind.kind == "flagged":
            # The evaluator's own decision (its threshold may be a project setting);
            # the registry's threshold only for scores stored without one.
            x = ("CASE WHEN jsonb_typeof(s.metadata -> 'flagged') = 'boolean' "
                 "THEN (s.metadata ->> 'flagged')::boolean "
                 f"ELSE s.value >= {float(kind.flag_threshold)!r} END")
            return _Plan(x, "avg(x::int)::float8", "count(x)", joins_scores=True)
        return _Plan("(s.value >= 0.5)", "avg(x::int)::float8", "count(x)", joins_scores=True)
    return _Plan("s.value", _numeric_agg(agg), "count(x)", joins_scores=True)


def _numeric_agg(agg: str) -> str:
    if agg in PERCENTILES:
        return f"percentile_cont({PERCENTILES[agg]}) WITHIN GROUP (ORDER BY x::float8)"
    return {"count": "count(x)", "sum": "sum(x)::float8", "avg": "avg(x)::float8", "min": "min(x)::float8",
            "max": "max(x)::float8"}[agg]


def dimension_sql(dim: str) -> tuple[str, list[Any]]:
    """SQL (over trace alias t, tag alias tg) of a group_by dimension's value as text."""
    if dim == "prompt":
        return "t.prompt_name || coalesce('@' || t.prompt_version, '')", []
    if dim == "name":
        return "nullif(t.name, '')", []
    if dim == "tag":
        return "tg.tag", []
    if dim.startswith(METADATA_PREFIX):
        return "t.metadata ->> %s", [dim[len(METADATA_PREFIX):]]
    return f"t.{dim}", []


_TRACE_VALUES = ("project_id", "trace_id", "start_time", "latency_ms", "cost_usd", "input_tokens", "output_tokens",
                 "total_tokens", "status", "user_id", "session_id", "model", "prompt_name", "prompt_version",
                 "environment", "release", "name", "tags", "metadata")


def traces_sql(*, project: Project, trace_filter: TraceFilter, start: datetime, end: datetime) -> tuple[str, list]:
    """The filtered traces of the window as SQL (the explorer's one filter -> SQL path)."""
    sql, params, (i_start, i_end) = _traces_sql_template(project.pk, replace(trace_filter, start_from=None,
                                                                             start_to=None, range=None))
    if i_start < 0:  # pragma: no cover - the window did not come out as two plain parameters
        return _traces_sql_compile(project.pk, trace_filter, start, end)
    params = list(params)
    params[i_start], params[i_end] = start, end
    return sql, params


# Stand-ins for the window while a filter's SQL is compiled once and kept: compiling the
# queryset cost about 1 ms, paid for every raw edge of every chart (60 per overview).
_START_MARK = datetime(1001, 1, 1, 0, 0, 0, 1001, tzinfo=UTC)
_END_MARK = datetime(1001, 1, 2, 0, 0, 0, 1002, tzinfo=UTC)


@lru_cache(maxsize=256)
def _traces_sql_template(project_id: int, trace_filter: TraceFilter) -> tuple[str, tuple, tuple[int, int]]:
    """SQL and parameters of the filter with the window's marks, and where the marks are."""
    sql, params = _traces_sql_compile(project_id, trace_filter, _START_MARK, _END_MARK)
    starts = [i for i, p in enumerate(params) if isinstance(p, datetime) and p == _START_MARK]
    ends = [i for i, p in enumerate(params) if isinstance(p, datetime) and p == _END_MARK]
    where = (starts[0], ends[0]) if len(starts) == 1 and len(ends) == 1 else (-1, -1)
    return sql, tuple(params), where


def _traces_sql_compile(project_id: int, trace_filter: TraceFilter, start: datetime,
                        end: datetime) -> tuple[str, list]:
    window = replace(trace_filter, start_from=start, start_to=end, range=None)
    # Only the project's id is read (project_id = %s here and in score subqueries).
    sql, params = window.apply(Project(pk=project_id)).values(*_TRACE_VALUES).query.sql_with_params()
    return sql, list(params)


def _raw_sql(*, project: Project, query: MetricsQuery, start: datetime, end: datetime,
             top: int) -> tuple[str, list[Any]]:
    plan = _plan(query, project)
    traces, params = traces_sql(project=project, trace_filter=query.filter, start=start, end=end)
    bucket = f"date_trunc('{query.interval}', t.start_time, 'UTC')" if query.interval else "NULL::timestamptz"
    dims: list[str] = []
    dim_params: list[Any] = []
    for dim in query.group_by:
        sql, extra = dimension_sql(dim)
        dims.append(sql)
        dim_params += extra
    joins = ""
    if "tag" in query.group_by:
        # A trace with several tags counts in each tag's group; one without, in None.
        joins += " LEFT JOIN LATERAL unnest(t.tags) AS tg(tag) ON true"
    join_params: list[Any] = []
    if plan.joins_scores:
        joins += f" JOIN {Score._meta.db_table} s ON s.project_id = %s AND s.trace_id = t.trace_id AND s.name = %s"
        join_params = [project.pk, query.score_name]
    columns = [f"{bucket} AS bucket", *(f"{d} AS g{i + 1}" for i, d in enumerate(dims)), f"{plan.x} AS x"]
    base = f"SELECT {', '.join(columns)} FROM ({traces}) AS t{joins}"
    # Parameter order follows the text: select list (dims, x), then FROM (traces, joins).
    base_params = [*dim_params, *plan.x_params, *params, *join_params]
    if not query.group_by:
        sql = f"SELECT b.bucket, {plan.value} AS value, {plan.n} AS n FROM ({base}) AS b GROUP BY b.bucket"
        return sql, base_params
    ctes = [f"base AS ({base})"]
    fold_params: list[Any] = []
    folded_cols, outer_cols, keep_joins = [], [], []
    for i in range(1, len(query.group_by) + 1):
        # The groups kept per dimension: the `top` values with the largest n over the
        # whole window; ties by value so the choice is stable.
        ctes.append(f"k{i} AS (SELECT g{i} FROM base GROUP BY g{i} ORDER BY {plan.n} DESC, g{i} NULLS LAST "
                    "LIMIT %s)")
        fold_params.append(top)
        # NULL (no value) can be a kept group too; `=` never matches it, so it is
        # looked up on its own (an init plan, evaluated once).
        keep_joins.append(f"LEFT JOIN k{i} ON k{i}.g{i} = b.g{i}")
        folded_cols.append(f"CASE WHEN b.g{i} IS NULL THEN NOT EXISTS (SELECT 1 FROM k{i} WHERE k{i}.g{i} IS NULL) "
                           f"ELSE k{i}.g{i} IS NULL END AS o{i}")
        outer_cols += [f"CASE WHEN f.o{i} THEN NULL ELSE f.g{i} END", f"f.o{i}"]
    group_cols = ", ".join(f"b.g{i}" for i in range(1, len(query.group_by) + 1))
    ctes.append(f"folded AS (SELECT b.bucket, {group_cols}, b.x, {', '.join(folded_cols)} FROM base b "
                f"{' '.join(keep_joins)})")
    positions = ", ".join(str(i) for i in range(1, 2 + len(outer_cols)))
    sql = (f"WITH {', '.join(ctes)} SELECT f.bucket, {', '.join(outer_cols)}, "
           f"{plan.value} AS value, {plan.n} AS n "
           f"FROM folded f GROUP BY {positions}")
    return sql, [*base_params, *fold_params]


@contextmanager
def statement_timeout(ms: int | None = None) -> Iterator[Any]:
    """A cursor whose statements the database cancels after `ms` (default: the setting),
    answered as MetricsTimeout (503), never a 500. The previous setting is put back, so
    a caller's surrounding transaction keeps its own."""
    ms = settings.SPYGLASS_METRICS_STATEMENT_TIMEOUT_MS if ms is None else ms
    try:
        if not connection.in_atomic_block:
            # Our own transaction: SET LOCAL ends with it, nothing to put back (two
            # round trips fewer, which is most of a small query's time).
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL statement_timeout = {int(ms)}")
                yield cursor
            return
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('statement_timeout')")
            previous = cursor.fetchone()[0]
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [f"{int(ms)}ms"])
            yield cursor
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [previous])
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) == "57014":  # query_canceled
            raise MetricsTimeout(
                f"The metrics query ran past the {ms / 1000:g} s limit and was cancelled: narrow the window, "
                "the filter or group_by, or use a coarser interval."
            ) from None
        raise


def effective_window(query: MetricsQuery, *, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The query's window intersected with its filter's own from/to/range."""
    start, end = query.start, query.end
    f_start, f_end = query.filter.window(now or datetime.now(UTC))
    if f_start is not None:
        start = max(start, f_start)
    if f_end is not None:
        end = min(end, f_end)
    return start, max(start, end)


def metrics_query(*, project: Project, query: MetricsQuery) -> MetricsResult:
    """Answer a metrics query for one project: from the hourly rollups where they can
    answer it (dashboards/rollups.py: whole processed hours, raw rows for the rest),
    else from the raw tables. `source` says which; `approximate` is True when a
    percentile came from histograms (within rollups.HIST_ERROR, relative)."""
    return _answer(project, [query])[0]


def metrics_queries(*, project: Project, queries: list[MetricsQuery]) -> list[MetricsResult]:
    """metrics_query for each query, in order. Queries that differ only in their
    percentile (a chart's p50 / p95 / p99 lines) are answered from one read of the
    rollups' histograms; each answer equals its own metrics_query."""
    batches: dict[MetricsQuery, list[int]] = {}
    for i, query in enumerate(queries):
        key = replace(query, agg="p50") if query.agg in PERCENTILES else query
        batches.setdefault(key, []).append(i)
    out: list[MetricsResult | None] = [None] * len(queries)
    for indices in batches.values():
        if len(indices) > 1 and queries[indices[0]].agg in PERCENTILES:
            answers = _answer(project, [queries[i] for i in indices])
        else:
            answers = [_answer(project, [queries[i]])[0] for i in indices]
        for i, result in zip(indices, answers, strict=True):
            out[i] = result
    return out  # type: ignore[return-value]  # every slot is filled


def _answer(project: Project, queries: list[MetricsQuery]) -> list[MetricsResult]:
    """One query, or several that differ only in their percentile."""
    for query in queries:
        query.check(max_hourly_window=timedelta(days=settings.SPYGLASS_METRICS_MAX_HOURLY_DAYS))
    first = queries[0]
    start, end = effective_window(first)
    rows_per: list[list[tuple]] = [[] for _ in queries]
    source, approximate = "raw", False
    if start < end:
        top = MAX_GROUPS if first.top is None else first.top
        answered = None
        if settings.SPYGLASS_ROLLUPS_ENABLED:
            from dashboards.rollups import rollup_rows_many  # rollups import this module

            answered = rollup_rows_many(project=project, query=first, aggs=tuple(q.agg for q in queries),
                                        start=start, end=end, top=top)
        if answered is not None:
            rows_per, _ = answered
            source, approximate = "rollup+raw", first.agg in PERCENTILES
        else:
            for i, query in enumerate(queries):
                sql, params = _raw_sql(project=project, query=query, start=start, end=end, top=top)
                with statement_timeout() as cursor:
                    cursor.execute(sql, params)
                    rows_per[i] = cursor.fetchall()
        if first.top is None and any(any(row[2:2 + 2 * len(first.group_by):2]) for rows in rows_per
                                     for row in rows):
            raise MetricsError({"top": [f"more than {MAX_GROUPS} groups: give top (1..{TOP_MAX}) to fold the rest "
                                        "into other"]})
    return [MetricsResult(query=query, data=points_from_rows(query, rows, start=start, end=end),
                          unit=measure_unit(query.measure, query.agg), source=source, approximate=approximate,
                          start=start, end=end) for query, rows in zip(queries, rows_per, strict=True)]


def points_from_rows(query: MetricsQuery, rows: list[tuple], *, start: datetime, end: datetime) -> list[Point]:
    """Rows (bucket, [g_i, folded_i]..., value, n) -> ordered Points, empty buckets filled.

    Empty buckets: every group that has data anywhere in the window gets a point in every
    bucket, n = 0 and value None (count: 0), so a line chart shows a gap or a zero
    instead of joining distant points; without group_by the single series is filled even
    when there is no data at all."""
    dims = query.group_by
    cells: dict[tuple, dict[datetime | None, Point]] = defaultdict(dict)
    totals: dict[tuple, int] = defaultdict(int)
    for row in rows:
        bucket = row[0]
        key: list[tuple[str | None, bool]] = []
        for i in range(len(dims)):
            value, folded = row[1 + 2 * i], row[2 + 2 * i]
            key.append((None, True) if folded else (value, False))
        value, n = row[-2], int(row[-1] or 0)
        if value is not None:
            value = float(value)
            if math.isnan(value) or math.isinf(value):
                value = None
        if n == 0:
            value = 0.0 if query.agg == "count" else None
        group_key = tuple(key)
        cells[group_key][bucket] = Point(bucket, _group_dict(dims, group_key), value, n)
        totals[group_key] += n
    if not dims and not cells:
        cells[()] = {}
        totals[()] = 0
    buckets: list[datetime | None] = bucket_starts(start, end, query.interval) if query.interval else [None]
    empty_value = 0.0 if query.agg == "count" else None
    order = sorted(totals, key=lambda k: (any(folded for _, folded in k), -totals[k], _sort_text(k)))
    points: list[Point] = []
    for bucket in buckets:
        for key in order:
            point = cells[key].get(bucket)
            points.append(point or Point(bucket, _group_dict(dims, key), empty_value, 0))
    if len(points) > MAX_POINTS:
        raise MetricsError({"top": [f"more than {MAX_POINTS:,} points: lower top, drop a group_by or use a "
                                    "coarser interval"]})
    return points


def _group_dict(dims: tuple[str, ...], key: tuple) -> dict[str, str | None]:
    return {dim: (OTHER if folded else value) for dim, (value, folded) in zip(dims, key, strict=True)}


def _sort_text(key: tuple) -> tuple:
    return tuple((value is None, value or "") for value, _ in key)


# ------------------------------------------------------------------------ dimensions

_FIXED_DISTINCT_SQL = """
SELECT count(*),
       count(DISTINCT t.model), count(t.model),
       count(DISTINCT t.prompt_name || coalesce('@' || t.prompt_version, '')), count(t.prompt_name),
       count(DISTINCT t.environment), count(t.environment),
       count(DISTINCT t.release), count(t.release),
       count(DISTINCT nullif(t.name, '')), count(nullif(t.name, '')),
       count(DISTINCT t.user_id), count(t.user_id)
FROM ({traces}) AS t
"""
_TAGS_SQL = "SELECT count(DISTINCT tg.tag), count(DISTINCT t.trace_id) FROM ({traces}) AS t, unnest(t.tags) AS tg(tag)"
# Distinct values per key through a hash aggregate over (key, value) rather than
# count(DISTINCT), which sorts every pair: 2-3x faster over a month of traces. count(v.value)
# skips JSON null, as count(DISTINCT) does.
_METADATA_SQL = """
SELECT v.key, count(v.value), sum(v.n)::bigint
FROM (SELECT kv.key, kv.value, count(*) AS n FROM ({traces}) AS t, jsonb_each_text(t.metadata) AS kv
      GROUP BY kv.key, kv.value) AS v
GROUP BY v.key ORDER BY sum(v.n) DESC, v.key LIMIT %s
"""
MAX_METADATA_KEYS = 200


def metric_dimensions(*, project: Project, start: datetime, end: datetime) -> list[Dimension]:
    """The fixed dimensions, then the metadata keys seen in the window (most used first,
    at most 200) with their distinct-value counts: what a chart can be grouped by."""
    traces, params = traces_sql(project=project, trace_filter=TraceFilter(), start=start, end=end)
    out: list[Dimension] = []
    with statement_timeout() as cursor:
        cursor.execute(_FIXED_DISTINCT_SQL.format(traces=traces), params)
        row = cursor.fetchone()
        fixed = [d for d in GROUP_DIMENSIONS if d != "tag"]
        for i, dim in enumerate(fixed):
            out.append(Dimension(dim, row[1 + 2 * i], row[2 + 2 * i]))
        cursor.execute(_TAGS_SQL.format(traces=traces), params)
        distinct_tags, tagged = cursor.fetchone()
        out.append(Dimension("tag", distinct_tags, tagged))
    return out + metadata_dimensions(project=project, start=start, end=end)


def metadata_dimensions(*, project: Project, start: datetime, end: datetime) -> list[Dimension]:
    """The metadata keys seen in the window (most used first, at most 200) with their
    distinct-value counts: metric_dimensions without the fixed dimensions (the cost
    page's key picker needs only these)."""
    traces, params = traces_sql(project=project, trace_filter=TraceFilter(), start=start, end=end)
    with statement_timeout() as cursor:
        cursor.execute(_METADATA_SQL.format(traces=traces), [*params, MAX_METADATA_KEYS])
        return [Dimension(METADATA_PREFIX + key, distinct, n) for key, distinct, n in cursor.fetchall()]


def _as_lists(params: QueryDict | Mapping[str, Any]) -> dict[str, list[str]]:
    if isinstance(params, QueryDict):
        return {key: params.getlist(key) for key in params}
    out: dict[str, list[str]] = {}
    for key, value in params.items():
        items = value if isinstance(value, list | tuple) else [value]
        out[key] = [str(item) for item in items]
    return out


__all__ = [
    "AGGS", "GROUP_DIMENSIONS", "INTERVALS", "MEASURES", "OTHER", "Dimension", "MetricsError", "MetricsQuery",
    "MetricsResult", "MetricsTimeout", "Point", "metadata_dimensions", "metric_dimensions", "metrics_queries",
    "metrics_query",
]
