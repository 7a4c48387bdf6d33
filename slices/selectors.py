"""Bias slices: quality, feedback and cost per user segment, with honest statistics.

    SliceQuery.parse(params, now=...)               -> SliceQuery (400 naming each bad parameter)
    slices_report(project=..., query=...)           -> SliceReport

One row per slice of a dimension (metadata.<key>, user_cohort, environment, model,
prompt, release), or per cell of two dimensions (locale × plan). The window and the
filters are the metrics layer's (dashboards/metrics.py: MetricsQuery.parse, the
explorer's filter language, traces_sql, statement_timeout), so a slices URL and a chart
URL filter the same traces.

Speed: every count comes from ONE statement: the filtered traces, each joined to its
row of scores_traceoutcome (its thumbs, rating, hallucination, toxicity, signals and any
feedback as counts, kept by triggers on the scores table: scores/models.py TraceOutcome;
pivoting the window's scores per trace here was most of the page's time), then
`count(*) FILTER (WHERE ...)` per slice × time bucket (hash-aggregated, no sort),
plus the praised-but-unsupported counts per prompt version × bucket. Counts are
additive: a slice's row is the sum of its bucket rows (_slice_rows), and "the rest of
the traffic" is the total minus the slice, with no second query. The bucket rows also
carry their traces' latencies and id hashes, from which numpy computes each slice's exact
latency percentiles (as percentile_cont) and its Mann-Whitney sample (LATENCY_SAMPLE
traces, picked by a hash of the trace id: random-like, yet the same on every reload); the
rest's sample is drawn from the other slices' samples in proportion to their traffic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import numpy as np
from django.http import QueryDict

from config.errors import ValidationFailed
from dashboards.metrics import (
    METADATA_PREFIX,
    MetricsError,
    MetricsQuery,
    dimension_sql,
    statement_timeout,
    traces_sql,
)
from explorer.filters import TraceFilter
from projects.models import Project
from scores import names
from scores.models import Score, Source, TraceOutcome
from slices import stats
from tracing.models import Trace

FIXED_DIMENSIONS = ("environment", "model", "prompt", "release", "user_cohort")
TOP_DEFAULT, TOP2_DEFAULT, TOP_MAX = 10, 5, 50
LATENCY_SAMPLE = 400
WORK_MEM = "64MB"
# Planner settings for the report's statement:
# - enable_nestloop off: every join here is big-to-big (traces to their scores), a hash
#   join is always right. With stale or missing statistics (a fresh table, a burst of
#   ingest) the planner may estimate one row and pick a nested loop that re-runs the score
#   pivot per trace, turning 1 s into minutes.
# - enable_sort off: the per slice × bucket aggregate must be hashed. The planner guesses
#   a tenth of the rows as groups (it cannot know how many values a metadata key has) and,
#   with array_agg's per-group memory, prefers sorting every trace of the window by slice,
#   which cost ~0.7 s at 250,000 traces; there are a few hundred groups. (The top-k
#   sorts of a few hundred rows stay: nothing else can answer them.)
# - work_mem: the statement hashes a few hundred thousand narrow rows; with the 4 MB
#   default the hash tables spill to disk.
PLANNER = {"enable_nestloop": "off", "enable_sort": "off", "work_mem": WORK_MEM}
# Parameters this module reads; everything else is a trace filter (or an error).
OWN_PARAMS = frozenset({"dimension", "dimension2", "top", "top2", "min_n"})
PASSTHROUGH = frozenset({"project", "format"})
# Sentinels for "the trace has no value" and "folded into other"; \x01 cannot be typed
# into a metadata value by accident.
NONE, OTHER = "\x01none", "\x01other"

# metric -> (label, kind, higher_is_better, unit); higher_is_better None = descriptive.
METRICS: dict[str, tuple[str, str, bool | None, str]] = {
    "feedback_exposure": ("feedback exposure", stats.RATE, None, "share"),
    "thumbs_up_rate": ("thumbs-up rate", stats.RATE, True, "share"),
    "mean_rating": ("mean rating", stats.MEAN, True, "stars"),
    "hallucination_rate": ("hallucination rate", stats.RATE, False, "share"),
    "toxicity_rate": ("toxicity rate", stats.RATE, False, "share"),
    "error_rate": ("error rate", stats.RATE, False, "share"),
    "rephrase_rate": ("rephrase rate", stats.RATE, False, "share"),
    "regenerate_rate": ("regenerate rate", stats.RATE, False, "share"),
    "abandon_rate": ("abandon rate", stats.RATE, False, "share"),
    "escalate_rate": ("escalate rate", stats.RATE, False, "share"),
    "latency_p50": ("median latency", stats.QUANTILE, False, "ms"),
    "latency_p95": ("p95 latency", stats.QUANTILE, False, "ms"),
    "cost_per_trace": ("cost per trace", stats.MEAN, False, "USD"),
    "praised_unsupported": ("praised but unsupported", stats.RATE, False, "share"),
}
SIGNALS = {"rephrase_rate": names.REPHRASE, "regenerate_rate": names.REGENERATE, "abandon_rate": names.ABANDON,
           "escalate_rate": names.ESCALATE}
TOXICITY = names.TOXICITY_OUTPUT  # the answer's toxicity: the model's doing, not the user's


class SliceError(ValidationFailed):
    def __init__(self, errors: dict[str, list[str]]):
        message = "; ".join(f"{key}: {' '.join(problems)}" for key, problems in errors.items())
        super().__init__(message, detail=errors)
        self.errors = errors


@dataclass(frozen=True)
class SliceQuery:
    dimensions: tuple[str, ...]  # one or two
    start: datetime
    end: datetime
    filter: TraceFilter = field(default_factory=TraceFilter)
    tops: tuple[int, ...] = (TOP_DEFAULT,)
    min_n: int = stats.MIN_N

    @classmethod
    def parse(cls, params: QueryDict | Mapping[str, Any], *, now: datetime) -> SliceQuery:
        """dimension (required), dimension2, top, top2, min_n, from / to / range and every
        explorer filter. Raises SliceError naming each bad parameter."""
        values = _as_lists(params)
        errors: dict[str, list[str]] = {}

        def fail(key: str, message: str) -> None:
            errors.setdefault(key, []).append(message)

        single: dict[str, str | None] = {}
        for key in OWN_PARAMS:
            items = values.get(key, [])
            if len(items) > 1:
                fail(key, "given more than once")
            value = items[0].strip() if items else None
            single[key] = value or None
            if value == "" and key != "dimension2":
                fail(key, "must not be empty (leave the parameter out for the default)")
        dims: list[str] = []
        if single["dimension"] is None:
            if "dimension" not in errors:
                fail("dimension", "is required: metadata.<key> (e.g. metadata.locale) or one of "
                                  + ", ".join(FIXED_DIMENSIONS))
        elif problem := dimension_problem(single["dimension"]):
            fail("dimension", problem)
        else:
            dims.append(single["dimension"])
        if single["dimension2"] is not None:
            if problem := dimension_problem(single["dimension2"]):
                fail("dimension2", problem)
            elif single["dimension2"] == single["dimension"]:
                fail("dimension2", "must differ from dimension")
            else:
                dims.append(single["dimension2"])
        tops = []
        for key, default in (("top", TOP_DEFAULT), ("top2", TOP2_DEFAULT)):
            raw = single[key]
            if raw is None:
                tops.append(default)
            elif raw.isdigit() and 1 <= int(raw) <= TOP_MAX:
                tops.append(int(raw))
            else:
                fail(key, f"must be an integer from 1 to {TOP_MAX}; got {raw!r}")
        min_n = stats.MIN_N
        if single["min_n"] is not None:
            raw = single["min_n"]
            if raw.isdigit() and 5 <= int(raw) <= 100_000:
                min_n = int(raw)
            else:
                fail("min_n", f"must be an integer from 5 to 100000; got {raw!r}")
        # The window and the filter: the metrics layer's own parser (the same defaults,
        # the same 400s), asked for a plain trace count.
        rest = {k: v for k, v in values.items() if k not in OWN_PARAMS and k not in PASSTHROUGH}
        rest["measure"] = ["traces"]
        metrics_query = None
        try:
            metrics_query = MetricsQuery.parse(rest, now=now, max_hourly_window=timedelta(days=366))
        except MetricsError as exc:
            for key, problems in exc.errors.items():
                for problem in problems:
                    fail(key, problem)
        if errors or metrics_query is None:
            raise SliceError(errors)
        return cls(dimensions=tuple(dims), start=metrics_query.start, end=metrics_query.end,
                   filter=metrics_query.filter, tops=tuple(tops[:len(dims)]), min_n=min_n)

    def to_query(self) -> list[tuple[str, str]]:
        pairs = [("dimension", self.dimensions[0])]
        if len(self.dimensions) > 1:
            pairs.append(("dimension2", self.dimensions[1]))
        pairs += [("from", self.start.isoformat()), ("to", self.end.isoformat())]
        if self.tops[0] != TOP_DEFAULT:
            pairs.append(("top", str(self.tops[0])))
        if len(self.tops) > 1 and self.tops[1] != TOP2_DEFAULT:
            pairs.append(("top2", str(self.tops[1])))
        if self.min_n != stats.MIN_N:
            pairs.append(("min_n", str(self.min_n)))
        return pairs + self.filter.to_query()


def dimension_problem(dim: str) -> str | None:
    if dim in FIXED_DIMENSIONS:
        return None
    if dim.startswith(METADATA_PREFIX):
        key = dim[len(METADATA_PREFIX):]
        if not key:
            return "metadata.<key> needs a key, e.g. metadata.locale"
        if len(key) > 200:
            return "metadata keys have at most 200 characters"
        return None
    return f"{dim!r} is not a dimension; expected metadata.<key> or one of {', '.join(FIXED_DIMENSIONS)}"


# ------------------------------------------------------------------ the report


@dataclass(frozen=True)
class Slice:
    key: tuple[str | None, ...]  # one value per dimension; None = not set, "other" = folded
    folded: tuple[bool, ...]
    n: int
    share: float
    cells: dict[str, stats.Cell]
    explorer_query: list[tuple[str, str]] | None  # None: the explorer cannot filter to it

    def label(self, dimensions: tuple[str, ...]) -> str:
        return " × ".join(f"{_dim_label(d)} {_value_label(v, f)}"
                          for d, v, f in zip(dimensions, self.key, self.folded, strict=True))

    def as_dict(self, dimensions: tuple[str, ...]) -> dict[str, Any]:
        return {dim: ("other" if folded else value)
                for dim, value, folded in zip(dimensions, self.key, self.folded, strict=True)}


@dataclass(frozen=True)
class TrendPoint:
    time: datetime
    series: str  # the slice label, or "prompt name@version"
    metric: str
    value: float | None
    n: int


@dataclass(frozen=True)
class SliceReport:
    query: SliceQuery
    total: int
    slices: list[Slice]
    findings: list[str]
    raw_satisfaction: stats.Weighted
    weighted_satisfaction: stats.Weighted
    trends: list[TrendPoint]
    prompt_trends: list[TrendPoint]
    interval: str
    tested_cells: int


def _dim_label(dim: str) -> str:
    return dim[len(METADATA_PREFIX):] if dim.startswith(METADATA_PREFIX) else dim.replace("_", " ")


def _value_label(value: str | None, folded: bool) -> str:
    if folded:
        return "(other)"
    return "(not set)" if value is None else value


def slices_report(*, project: Project, query: SliceQuery, pivot: str = "outcomes") -> SliceReport:
    """pivot="scores" computes the same report from the scores themselves instead of
    scores_traceoutcome: the reference for tests and bench/slices.py, not for pages."""
    interval = "hour" if query.end - query.start <= timedelta(days=2) else "day"
    sql, params = _report_sql(project=project, query=query, interval=interval, pivot=pivot)
    with statement_timeout() as cursor:
        # Planner settings for this one statement (transaction-local; read and set in one
        # round trip, put back after): see PLANNER.
        names_ = list(PLANNER)
        cursor.execute("SELECT " + ", ".join(["current_setting(%s)"] * len(names_)) + ", "
                       + ", ".join(["set_config(%s, %s, true)"] * len(names_)),
                       [*names_, *(x for pair in PLANNER.items() for x in pair)])
        previous = cursor.fetchone()[:len(names_)]
        cursor.execute(sql, params)
        columns = [c.name for c in cursor.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
        cursor.execute("SELECT " + ", ".join(["set_config(%s, %s, true)"] * len(names_)),
                       [x for pair in zip(names_, previous, strict=True) for x in pair])
    by_bucket = [r for r in rows if r["grp"] == 1]
    by_prompt = [r for r in rows if r["grp"] == 2]
    main = _slice_rows(by_bucket, query)
    return _assemble(query=query, main=main, by_bucket=by_bucket, by_prompt=by_prompt, interval=interval)


def _slice_rows(by_bucket: list[dict], query: SliceQuery) -> list[dict]:
    """One row per slice from its per-bucket rows: counts and sums added up (they are
    additive), the exact latency percentiles (linear interpolation between order
    statistics, as percentile_cont) and the latency sample (the LATENCY_SAMPLE traces
    with the lowest hash of the trace id, in hash order) from the slice's latencies.

    Why here and not in SQL: ordered aggregates (percentile_cont, array_agg ORDER BY)
    forced a sort of every trace of the window by slice, which cost as much as the
    score pivot; the per-bucket rows are hash-aggregated and numpy sorts each slice's
    latencies once."""
    groups: dict[tuple[str, ...], list[dict]] = {}
    for r in by_bucket:
        groups.setdefault(_groups(r, query), []).append(r)
    out = []
    for parts in groups.values():
        row = {"g1": parts[0]["g1"], "g2": parts[0]["g2"]}
        for k in _COUNTS:
            row[k] = sum(int(r[k]) for r in parts)
        for k in _SUMS:
            row[k] = sum(float(r[k]) for r in parts)
        latencies = np.concatenate([_array_values(r["latencies"], ">f8") for r in parts])
        hashes = np.concatenate([_array_values(r["hashes"], ">i4") for r in parts])
        if latencies.size:
            row["p50"], row["p95"] = (float(v) for v in np.percentile(latencies, [50, 95]))
            row["sample"] = _lowest_hash_sample(latencies, hashes)
        else:
            row["p50"] = row["p95"] = None
            row["sample"] = []
        out.append(row)
    return out


def _lowest_hash_sample(latencies: np.ndarray, hashes: np.ndarray) -> list[float]:
    """The latencies of the LATENCY_SAMPLE traces with the lowest hashes, in hash order.
    Ties of the hash (rare) are broken by the latency, so the sample is the same on every
    reload whatever order the rows came in. Only the candidates (hash at most the k-th
    smallest) are sorted, not the whole slice."""
    k = min(LATENCY_SAMPLE, latencies.size)
    if k < latencies.size:
        candidates = np.flatnonzero(hashes <= np.partition(hashes, k - 1)[k - 1])
        latencies, hashes = latencies[candidates], hashes[candidates]
    return latencies[np.lexsort((latencies, hashes))[:k]].tolist()


def _array_values(data: bytes | memoryview | None, dtype: str) -> np.ndarray:
    """The elements of a one-dimensional, NULL-free Postgres array in its binary form
    (array_send): a 20-byte header (dimensions, flags, element type, length, lower bound),
    then each element as a 4-byte length and its big-endian value. Sent this way because
    parsing 250,000 numbers from an array's text form cost more than the query saved."""
    if data is None or len(data) <= 12:  # NULL, or an empty array (header only)
        return np.zeros(0)
    items = np.frombuffer(data, dtype=np.dtype([("length", ">i4"), ("value", dtype)]), offset=20)
    return items["value"].astype(float if dtype.endswith("f8") else np.int64)


_COUNTS = ("n", "errors", "exposed", "votes", "ups", "rating_n", "hall_n", "hall_x", "tox_n", "tox_x",
           "rephrase_x", "regenerate_x", "abandon_x", "escalate_x", "pu_n", "pu_x", "cost_n")
_SUMS = ("rating_sum", "rating_sq", "cost_sum", "cost_sq")


def _assemble(*, query: SliceQuery, main: list[dict], by_bucket: list[dict], by_prompt: list[dict],
              interval: str) -> SliceReport:
    totals = {k: sum(int(r[k]) for r in main) for k in _COUNTS}
    sums = {k: sum(float(r[k]) for r in main) for k in _SUMS}
    total = totals["n"]
    main.sort(key=lambda r: (any(g == OTHER for g in _groups(r, query)), -int(r["n"]), _groups(r, query)))
    samples = [list(r["sample"] or []) for r in main]
    raw_rows = _cells(main, totals=totals, sums=sums, samples=samples)
    evaluated = stats.page_evaluate(raw_rows, min_n=query.min_n)
    slices: list[Slice] = []
    for r, cells in zip(main, evaluated, strict=True):
        groups = _groups(r, query)
        key = tuple(None if g in (NONE, OTHER) else g for g in groups)
        folded = tuple(g == OTHER for g in groups)
        slices.append(Slice(key=key, folded=folded, n=int(r["n"]), share=int(r["n"]) / total if total else 0.0,
                            cells={c.metric: c for c in cells},
                            explorer_query=_explorer_query(query, groups)))
    findings = [finding(s.label(query.dimensions), cell) for s in slices for cell in s.cells.values()
                if cell.flagged]
    raw_low, raw_high = stats.wilson(totals["ups"], totals["votes"])
    raw = stats.Weighted(totals["ups"] / totals["votes"] if totals["votes"] else None, raw_low, raw_high,
                         totals["votes"], 1.0 if totals["votes"] else 0.0)
    weighted = stats.post_stratified_rate([(int(r["ups"]), int(r["votes"]), int(r["n"])) for r in main])
    labels = {_groups(r, query): s.label(query.dimensions) for r, s in zip(main, slices, strict=True)}
    trends = []
    for r in sorted(by_bucket, key=lambda r: r["bucket"]):
        series = labels.get(_groups(r, query))
        if series is None:
            continue
        trends += _trend_points(r, series)
    prompt_trends = []
    for r in sorted(by_prompt, key=lambda r: r["bucket"]):
        if r["prompt"] is None or not int(r["pu_n"]):
            continue
        prompt_trends.append(TrendPoint(r["bucket"], r["prompt"], "praised_unsupported",
                                        int(r["pu_x"]) / int(r["pu_n"]), int(r["pu_n"])))
    tested = sum(1 for row in evaluated for c in row if c.tested)
    return SliceReport(query=query, total=total, slices=slices, findings=findings, raw_satisfaction=raw,
                       weighted_satisfaction=weighted, trends=trends, prompt_trends=prompt_trends,
                       interval=interval, tested_cells=tested)


def _groups(row: dict, query: SliceQuery) -> tuple[str, ...]:
    return (row["g1"], row["g2"])[:len(query.dimensions)]


def _trend_points(r: dict, series: str) -> list[TrendPoint]:
    out = []
    for metric, x, n in (("hallucination_rate", "hall_x", "hall_n"), ("thumbs_up_rate", "ups", "votes"),
                         ("praised_unsupported", "pu_x", "pu_n")):
        count = int(r[n])
        out.append(TrendPoint(r["bucket"], series, metric, int(r[x]) / count if count else None, count))
    return out


def _rest_sample(samples: list[list[float]], rows: list[dict], i: int) -> list[float]:
    """A bounded sample of everything but slice i: from each other slice's (random-order)
    sample, a part proportional to its traffic."""
    rest_n = sum(int(r["n"]) for j, r in enumerate(rows) if j != i)
    out: list[float] = []
    if rest_n <= 0:
        return out
    for j, r in enumerate(rows):
        if j == i:
            continue
        take = max(1, round(LATENCY_SAMPLE * int(r["n"]) / rest_n))
        out += samples[j][:take]
    return out


def _cells(rows: list[dict], *, totals: dict[str, int], sums: dict[str, float],
           samples: list[list[float]]) -> list[list[stats.Cell]]:
    """The cells of every slice: rates metric by metric over all slices at once
    (stats.rate_cells), the rest per slice; returned one row (list) per slice."""
    ns = [int(r["n"]) for r in rows]
    columns: list[list[stats.Cell]] = []

    def rate(metric: str, x: str, of: str | None) -> None:
        counts = [int(r[of]) for r in rows] if of else ns
        total = totals[of] if of else totals["n"]
        hits = [int(r[x]) for r in rows]
        columns.append(stats.rate_cells(metric, successes=hits, n=counts, rest_successes=[totals[x] - h for h in hits],
                                        rest_n=[total - c for c in counts], higher_is_better=METRICS[metric][2]))

    def mean(metric: str, prefix: str) -> None:
        column = []
        for r in rows:
            count = int(r[f"{prefix}_n"])
            column.append(stats.mean_cell(
                metric, total=float(r[f"{prefix}_sum"]), squares=float(r[f"{prefix}_sq"]), n=count,
                rest_total=sums[f"{prefix}_sum"] - float(r[f"{prefix}_sum"]),
                rest_squares=sums[f"{prefix}_sq"] - float(r[f"{prefix}_sq"]),
                rest_n=totals[f"{prefix}_n"] - count, higher_is_better=METRICS[metric][2]))
        columns.append(column)

    rate("feedback_exposure", "exposed", None)
    rate("thumbs_up_rate", "ups", "votes")
    mean("mean_rating", "rating")
    rate("hallucination_rate", "hall_x", "hall_n")
    rate("toxicity_rate", "tox_x", "tox_n")
    rate("error_rate", "errors", None)
    for metric in SIGNALS:
        x = metric.replace("_rate", "_x")
        if totals[x] == 0:
            # No such signal anywhere on the page: the signal job may not run for this
            # project, and "0% everywhere" would be a claim the data cannot make.
            columns.append([stats.Cell(metric, stats.RATE, False, None) for _ in rows])
        else:
            rate(metric, x, None)
    rest_samples = [_rest_sample(samples, rows, i) for i in range(len(rows))]
    for metric, q, key, test in (("latency_p50", 0.5, "p50", True), ("latency_p95", 0.95, "p95", False)):
        columns.append([stats.quantile_cell(metric, q=q, value=None if r[key] is None else float(r[key]), n=n,
                                            sample=samples[i], rest_sample=rest_samples[i], rest_n=totals["n"] - n,
                                            higher_is_better=False, test=test)
                        for i, (r, n) in enumerate(zip(rows, ns, strict=True))])
    mean("cost_per_trace", "cost")
    rate("praised_unsupported", "pu_x", "pu_n")
    return [list(row) for row in zip(*columns, strict=True)] if rows else []


def _explorer_query(query: SliceQuery, groups: tuple[str, ...]) -> list[tuple[str, str]] | None:
    """The explorer filter for exactly this slice's traces, or None when the explorer's
    language cannot say it (a folded group, a missing value, a user cohort)."""
    pairs = [("from", query.start.isoformat()), ("to", query.end.isoformat()), *query.filter.to_query()]
    for dim, value in zip(query.dimensions, groups, strict=True):
        if value in (NONE, OTHER) or dim in ("user_cohort",):
            return None
        if dim.startswith(METADATA_PREFIX):
            pairs.append((dim, value))
        elif dim == "prompt":
            name, _, version = value.partition("@")
            pairs.append(("prompt", name))
            if version:
                pairs.append(("prompt_version", version))
        else:
            pairs.append((dim, value))
    return pairs


def explorer_url(project: Project, pairs: list[tuple[str, str]]) -> str:
    return f"/p/{project.slug}/traces/?{urlencode(pairs)}"


# ------------------------------------------------------------------ findings


def format_value(metric: str, value: float | None) -> str:
    if value is None:
        return "–"
    unit = METRICS[metric][3]
    if unit == "share":
        return f"{100 * value:.1f}%"
    if unit == "ms":
        return f"{value:,.0f} ms"
    if unit == "USD":
        return f"${value:.4f}"
    return f"{value:.2f}"


def _bare(metric: str, value: float | None) -> str:
    return format_value(metric, value).rstrip("%").replace(" ms", "")


def finding(label: str, cell: stats.Cell) -> str:
    """'locale de-DE: hallucination rate 14.2% [11.0–18.1] vs 6.0% for others, p = 0.003
    after correction, ratio 0.42'."""
    interval = ""
    if cell.low is not None and cell.high is not None:
        interval = f" [{_bare(cell.metric, cell.low)}–{_bare(cell.metric, cell.high)}]"
    p = cell.p_adjusted
    p_text = "p < 0.001" if p is not None and p < 0.001 else f"p = {p:.3f}"
    return (f"{label}: {METRICS[cell.metric][0]} {format_value(cell.metric, cell.value)}{interval} vs "
            f"{format_value(cell.metric, cell.rest)} for others, {p_text} after correction, "
            f"ratio {cell.ratio_to_best:.2f}")


# ------------------------------------------------------------------ SQL


def _flag_sql(score: names.ScoreName) -> str:
    # The evaluator's stored decision (its threshold may be a project setting); the
    # registry threshold only for scores stored without one (as dashboards/metrics.py).
    return ("CASE WHEN jsonb_typeof(s.metadata -> 'flagged') = 'boolean' THEN (s.metadata ->> 'flagged')::boolean "
            f"ELSE s.value >= {float(score.flag_threshold)!r} END")


def _dimension_column(dim: str) -> tuple[str, list[Any]]:
    if dim == "user_cohort":
        # The ISO week of the user's first trace in the project (any time, not only the
        # window): "users who joined in week W".
        return "to_char(date_trunc('week', fs.first_seen, 'UTC'), 'IYYY-\"W\"IW')", []
    return dimension_sql(dim)


# The outcome columns of one trace, as the reference pivot names them, and how they
# read from its scores_traceoutcome counts (a count of zero: no such score; a trace
# without a row: NULL everywhere, as a trace without scores in the pivot).
OUTCOME_COLUMNS = ("thumbs", "rating", "hall", "tox", *(m.replace("_rate", "") for m in SIGNALS), "feedback")
_OUTCOMES_FROM_COUNTS = ",\n         ".join([
    "CASE WHEN p.thumbs_n > 0 THEN p.thumbs_sum / p.thumbs_n END AS thumbs",
    "CASE WHEN p.rating_n > 0 THEN p.rating_sum / p.rating_n END AS rating",
    "CASE WHEN p.hall_x > 0 THEN true WHEN p.hall_n > 0 THEN false END AS hall",
    "CASE WHEN p.tox_x > 0 THEN true WHEN p.tox_n > 0 THEN false END AS tox",
    *(f"CASE WHEN p.{m.replace('_rate', '')}_n > 0 THEN true END AS {m.replace('_rate', '')}" for m in SIGNALS),
    "p.feedback_n > 0 AS feedback",
])


def _report_sql(*, project: Project, query: SliceQuery, interval: str,
                pivot: str = "outcomes") -> tuple[str, list[Any]]:
    """The report's statement. pivot="outcomes" reads each trace's outcomes from
    scores_traceoutcome (what the page runs); pivot="scores" pivots the scores (the
    reference the outcome table must agree with)."""
    traces, trace_params = traces_sql(project=project, trace_filter=query.filter, start=query.start, end=query.end)
    dims = list(query.dimensions)
    columns, dim_params = [], []
    for dim in dims:
        sql, extra = _dimension_column(dim)
        columns.append(f"coalesce(({sql})::text, %s)")
        dim_params += [*extra, NONE]
    g2 = columns[1] if len(columns) > 1 else "''"
    cohort_join, cohort_params = "", []
    if "user_cohort" in dims:
        cohort_join = (f" LEFT JOIN (SELECT user_id, min(start_time) AS first_seen FROM {Trace._meta.db_table} "
                       "WHERE project_id = %s AND user_id IS NOT NULL GROUP BY user_id) fs ON fs.user_id = t.user_id")
        cohort_params = [project.pk]
    score_names = [names.USER_THUMBS.name, names.USER_RATING.name, names.HALLUCINATION.name, TOXICITY.name,
                   *(s.name for s in SIGNALS.values())]
    signal_cols = ", ".join(f"bool_or(true) FILTER (WHERE s.name = '{s.name}') AS {m.replace('_rate', '')}"
                            for m, s in SIGNALS.items())
    # Additive counts and sums (the rest of the traffic is the total minus the slice).
    counts = [
        ("n", "count(*)"),
        ("errors", "count(*) FILTER (WHERE f.err)"),
        ("exposed", "count(*) FILTER (WHERE f.feedback)"),
        ("votes", "count(f.thumbs)"),
        ("ups", "count(*) FILTER (WHERE f.thumbs >= 0.5)"),
        ("rating_n", "count(f.rating)"),
        ("rating_sum", "coalesce(sum(f.rating), 0)"),
        ("rating_sq", "coalesce(sum(f.rating * f.rating), 0)"),
        ("hall_n", "count(f.hall)"),
        ("hall_x", "count(*) FILTER (WHERE f.hall)"),
        ("tox_n", "count(f.tox)"),
        ("tox_x", "count(*) FILTER (WHERE f.tox)"),
        *((m.replace("_rate", "_x"), f"count(*) FILTER (WHERE f.{m.replace('_rate', '')})") for m in SIGNALS),
        ("pu_n", "count(*) FILTER (WHERE f.thumbs >= 0.5 AND f.hall IS NOT NULL)"),
        ("pu_x", "count(*) FILTER (WHERE f.thumbs >= 0.5 AND f.hall)"),
        ("cost_n", "count(f.cost)"),
        ("cost_sum", "coalesce(sum(f.cost), 0)"),
        ("cost_sq", "coalesce(sum(f.cost * f.cost), 0)"),
    ]
    slice_counts = ", ".join(f"{expr} AS {alias}" for alias, expr in counts)
    # The prompt-version rows need only the praised-but-unsupported counts.
    prompt_counts = ", ".join(expr if alias in ("pu_n", "pu_x") else "NULL" for alias, expr in counts)
    # With one dimension g2 is the same constant on every row: no second top-k pass over
    # the window's traces (a hash aggregate of 250,000 rows for nothing).
    two = len(dims) > 1
    k2 = "\nk2 AS (SELECT g2 FROM base GROUP BY g2 ORDER BY count(*) DESC, g2 LIMIT %s)," if two else ""
    fold2 = "CASE WHEN b.g2 IN (SELECT g2 FROM k2) THEN b.g2 ELSE %s END" if two else "b.g2"
    outcome_cols = ", ".join(f"p.{c}" for c in OUTCOME_COLUMNS)
    head = f"""
WITH base AS MATERIALIZED (
  SELECT {columns[0]} AS g1, {g2} AS g2, t.trace_id, hashtext(t.trace_id) AS h,
         date_trunc('{interval}', t.start_time, 'UTC') AS bucket,
         t.prompt_name || coalesce('@' || t.prompt_version, '') AS prompt,
         t.latency_ms, t.cost_usd::float8 AS cost, (t.status = 'error') AS err\x02outcomes
  FROM ({traces}) AS t{cohort_join}\x02join
),
k1 AS (SELECT g1 FROM base GROUP BY g1 ORDER BY count(*) DESC, g1 LIMIT %s),{k2}"""
    fold = f"""
  SELECT CASE WHEN b.g1 IN (SELECT g1 FROM k1) THEN b.g1 ELSE %s END AS g1,
         {fold2} AS g2,
         b.h, b.bucket, b.prompt, b.latency_ms, b.cost, b.err,"""
    if pivot == "outcomes":
        # Each trace's outcomes from its scores_traceoutcome row (one narrow row, kept
        # by triggers), joined while the traces are read: no per-score work at all.
        # (Markers, not str.format: the filter's SQL may hold braces, e.g. '{}' arrays.)
        sql = head.replace("\x02outcomes", ",\n         " + _OUTCOMES_FROM_COUNTS).replace(
            "\x02join", f" LEFT JOIN {TraceOutcome._meta.db_table} p"
                        " ON p.project_id = t.project_id AND p.trace_id = t.trace_id") + f"""
f AS NOT MATERIALIZED ({fold}
         {', '.join(f"b.{c}" for c in OUTCOME_COLUMNS)}
  FROM base b
)"""
        # f is read once (inlined into the slice aggregate); the prompt rows need no
        # fold and read base. Materializing f cost ~10% of the statement.
        prompt_from = "base f"
        pivot_params: list[Any] = []
    else:
        # The reference path: the same outcomes pivoted from the scores themselves, what
        # the triggers' counts must always equal (tests/slices/test_outcome_equivalence.py;
        # bench/slices.py times both).
        sql = head.replace("\x02outcomes", "").replace("\x02join", "") + f"""
piv AS MATERIALIZED (
  SELECT s.trace_id,
         avg(s.value) FILTER (WHERE s.name = %s) AS thumbs,
         avg(s.value) FILTER (WHERE s.name = %s) AS rating,
         bool_or({_flag_sql(names.HALLUCINATION)}) FILTER (WHERE s.name = %s) AS hall,
         bool_or({_flag_sql(TOXICITY)}) FILTER (WHERE s.name = %s) AS tox,
         {signal_cols},
         bool_or(s.source = %s) AS feedback
  FROM {Score._meta.db_table} s
  WHERE s.project_id = %s AND (s.name = ANY(%s) OR s.source = %s)
    AND s.trace_id IN (SELECT trace_id FROM base)
  GROUP BY s.trace_id
),
f AS MATERIALIZED ({fold}
         {outcome_cols}
  FROM base b LEFT JOIN piv p ON p.trace_id = b.trace_id
)"""
        prompt_from = "f"
        pivot_params = [names.USER_THUMBS.name, names.USER_RATING.name, names.HALLUCINATION.name, TOXICITY.name,
                        Source.END_USER, project.pk, score_names, Source.END_USER]
    sql += f"""
SELECT 1 AS grp, f.g1, f.g2, f.bucket, NULL::text AS prompt, {slice_counts},
       array_send(array_agg(f.latency_ms)) AS latencies, array_send(array_agg(f.h)) AS hashes
FROM f GROUP BY f.g1, f.g2, f.bucket
UNION ALL
SELECT 2, NULL, NULL, f.bucket, f.prompt, {prompt_counts}, NULL, NULL
FROM {prompt_from} GROUP BY f.prompt, f.bucket
"""
    params = [
        *dim_params, *trace_params, *cohort_params,
        query.tops[0], *([query.tops[1] if len(query.tops) > 1 else 1] if two else []),
        *pivot_params,
        OTHER, *([OTHER] if two else []),
    ]
    return sql, params


def _as_lists(params: QueryDict | Mapping[str, Any]) -> dict[str, list[str]]:
    if isinstance(params, QueryDict):
        return {key: params.getlist(key) for key in params}
    out: dict[str, list[str]] = {}
    for key, value in params.items():
        items = value if isinstance(value, list | tuple) else [value]
        out[key] = [str(item) for item in items]
    return out
