"""Charts of the dashboard pages: a ChartSpec (one or more metrics queries) -> a ChartView
(plotly figure, click-through links, CSV links, or an empty state that says why).

Every number comes from dashboards.metrics.metrics_query, the query the API and alerts
run, so a chart, its CSV and GET /api/v1/metrics agree by construction. Each point
carries the explorer URL of the traces behind it (same filter language, narrowed to the
point's group and time bucket); static/dashboards/charts.js follows it on click.

Figures are plain plotly JSON dicts rather than plotly.graph_objects: an overview draws
about twenty charts, and building validated Figure objects cost more than its queries.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

from django.urls import get_script_prefix, reverse
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from dashboards import selectors
from dashboards.metrics import INTERVAL_STEP, METADATA_PREFIX, OTHER, SCORE_PREFIX, MetricsQuery, Point
from explorer.filters import ScoreCondition, TraceFilter
from projects.models import Project
from scores import names

CHART_TYPES = {"line": "Line", "stacked_bar": "Stacked bar", "bar": "Bar", "number": "Number", "table": "Table",
               "histogram": "Histogram"}  # fmt: skip
# Okabe-Ito: colour-blind safe, the same palette as the prompt pages.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
OTHER_COLOUR = "#999999"
MEASURE_LABELS = {"traces": "Traces", "users": "Users", "sessions": "Sessions", "latency_ms": "Latency",
                  "cost_usd": "Cost", "input_tokens": "Input tokens", "output_tokens": "Output tokens",
                  "total_tokens": "Tokens", "errors": "Errors"}  # fmt: skip
DIMENSION_LABELS = {"model": "model", "prompt": "prompt version", "environment": "environment", "release": "release",
                    "name": "trace name", "user_id": "user", "tag": "tag"}  # fmt: skip
NO_VALUE = "(none)"


@dataclass(frozen=True)
class Series:
    """One metrics query of a chart (a chart with several, e.g. p50/p95/p99, has one
    line or bar per series)."""

    measure: str
    agg: str
    label: str = ""


@dataclass(frozen=True)
class ChartSpec:
    key: str  # unique on the page; DOM ids derive from it
    title: str
    series: tuple[Series, ...]
    chart: str = "line"  # a CHART_TYPES key
    group_by: tuple[str, ...] = ()  # only with one series
    top: int | None = 10
    interval: str | None = "auto"  # "auto": from the window; None: one value per group
    filter: TraceFilter | None = None  # narrows the page's filter (saved charts)
    ci: str | None = None  # "wilson" (rates) or "t" (means): 95% intervals as error bars
    horizontal: bool = False
    hide_other: bool = False  # e.g. top users: the folded rest would dwarf every bar
    keep: int | None = None  # bars: only the `keep` largest values (metrics' top ranks groups by n)
    help: str = ""


@dataclass(frozen=True)
class Window:
    """The page's time window and trace filter (from the URL)."""

    start: datetime
    end: datetime
    interval: str  # the automatic bucket for this window
    filter: TraceFilter  # without from/to/range
    range_key: str  # 24h / 7d / 30d / custom


def auto_interval(start: datetime, end: datetime) -> str:
    """Hours up to two days, days up to 90, then weeks: 24-90 points on a line."""
    span = end - start
    if span <= timedelta(days=2):
        return "hour"
    return "day" if span <= timedelta(days=90) else "week"


@dataclass
class ChartView:
    spec: ChartSpec
    dom_id: str
    figure: dict | None = None
    empty: str | None = None  # why there is nothing to draw
    error: str | None = None  # the query was refused (a saved chart over a too-long window)
    csv_links: list[tuple[str, str]] = field(default_factory=list)  # (label, url)
    explore_url: str = ""
    number: dict | None = None  # chart == "number": value, unit, n, interval, url
    table: list[dict] | None = None  # chart == "table": rows
    columns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    approximate: bool = False
    save_query: str = ""  # the chart builder's fields, to save this chart to a dashboard

    @property
    def figure_id(self) -> str:
        return f"fig-{self.dom_id}"


# ------------------------------------------------------------------------ labels and units


def measure_label(measure: str, agg: str) -> str:
    if measure.startswith(SCORE_PREFIX):
        name = measure[len(SCORE_PREFIX):]
        known = names.known(name)
        base = known.label if known else name
    else:
        base = MEASURE_LABELS.get(measure, measure)
    if measure == "errors":
        return "Error rate" if agg == "rate" else "Error traces"
    if agg == "rate":
        return f"{base} rate"
    if agg in ("count",) and measure in ("traces", "users", "sessions"):
        return base
    return f"{base}, {agg}"


def display_unit(unit: str) -> str:
    """Shares are shown as percentages; everything else in the metric's own unit."""
    return "%" if unit == "share" else unit


def _scale(unit: str) -> float:
    return 100.0 if unit == "share" else 1.0


def _fmt(unit: str) -> str:
    if unit == "USD":
        return ",.4f"
    if unit in ("share", "stars", "score"):
        return ",.2f"
    return ",.0f" if unit in ("ms", "tokens", "traces", "users", "sessions", "scores") else ",.3g"


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    scaled = value * _scale(unit)
    if unit == "USD":
        return f"${scaled:,.4f}" if abs(scaled) < 100 else f"${scaled:,.2f}"
    return f"{scaled:{_fmt(unit)}}{' %' if unit == 'share' else ''}"


def dimension_label(dim: str) -> str:
    if dim.startswith(METADATA_PREFIX):
        return f"metadata {dim[len(METADATA_PREFIX):]}"
    return DIMENSION_LABELS.get(dim, dim)


def group_label(group: dict[str, str | None]) -> str:
    return " · ".join(NO_VALUE if value is None else value for value in group.values()) or "all"


# ------------------------------------------------------------------------ click-through


def explore_filter(base: TraceFilter, *, group: dict[str, str | None], measure: str) -> TraceFilter | None:
    """The explorer filter of the traces behind one point: the page's filter, narrowed
    to the point's group and (for score and error measures) to traces that have the
    score or the error. None when the group cannot be expressed as a filter ("other",
    or a missing value: the filter language has no "is empty")."""
    out = base
    for dim, value in group.items():
        if value is None or value == OTHER:
            return None
        if dim == "prompt":
            name, sep, version = value.rpartition("@")
            out = replace(out, prompt=name, prompt_version=version) if sep else replace(out, prompt=value)
        elif dim == "tag":
            out = replace(out, tags=tuple(sorted({*out.tags, value})))
        elif dim.startswith(METADATA_PREFIX):
            meta = dict(out.metadata)
            meta[dim[len(METADATA_PREFIX):]] = value
            out = replace(out, metadata=tuple(sorted(meta.items())))
        else:
            out = replace(out, **{dim: value})
    if measure.startswith(SCORE_PREFIX):
        condition = ScoreCondition(measure[len(SCORE_PREFIX):])
        out = replace(out, scores=tuple(sorted({*out.scores, condition}, key=str)))
    elif measure == "errors":
        out = replace(out, status="error")
    return out


def explorer_url(project: Project, trace_filter: TraceFilter | None, start: datetime, end: datetime) -> str | None:
    if trace_filter is None:
        return None
    # Naive UTC ("2025-03-03T01:00:00", which the filter language reads as UTC): the form
    # the explorer's datetime-local inputs show, so its form keeps the window when edited.
    window = urlencode([("from", _naive_utc(start)), ("to", _naive_utc(end, ceil=True))])
    rest = _filter_query(replace(trace_filter, start_from=None, start_to=None, range=None))
    base = _trace_list_path(project.slug, get_script_prefix())
    return f"{base}?{window}&{rest}" if rest else f"{base}?{window}"


# An overview links every point of every chart (about 700 links): reversing the URL and
# encoding the same filter for each cost more than some of its queries. Both are pure
# functions of their (hashable) arguments; the script prefix is part of the key.
@lru_cache(maxsize=256)
def _trace_list_path(slug: str, script_prefix: str) -> str:
    return reverse("trace-list", kwargs={"project_slug": slug})


@lru_cache(maxsize=1024)
def _filter_query(trace_filter: TraceFilter) -> str:
    return urlencode(trace_filter.to_query())


def _naive_utc(moment: datetime, *, ceil: bool = False) -> str:
    """Whole seconds; an exclusive end rounds up so no trace of the window is cut off."""
    moment = moment.astimezone(UTC).replace(tzinfo=None)
    if ceil and moment.microsecond:
        moment += timedelta(seconds=1)
    return moment.replace(microsecond=0).isoformat()


def csv_url(project: Project, query: MetricsQuery) -> str:
    base = reverse("dashboards-csv", kwargs={"project_slug": project.slug})
    return f"{base}?{urlencode(query.to_query())}"


# ------------------------------------------------------------------------ rendering


class PageCounts:
    """Traces in the window with and without the page's filter, read only when a chart
    is empty (to say why) and at most once per page."""

    def __init__(self, project: Project, window: Window):
        self.project, self.window = project, window
        self._all: int | None = None
        self._filtered: int | None = None

    def count(self, trace_filter: TraceFilter) -> int:
        query = MetricsQuery(measure="traces", agg="count", start=self.window.start, end=self.window.end,
                             filter=trace_filter)
        return sum(p.n for p in selectors.metrics_query(project=self.project, query=query).data)

    @property
    def all(self) -> int:
        if self._all is None:
            self._all = self.count(TraceFilter())
        return self._all

    @property
    def filtered(self) -> int:
        if self._filtered is None:
            self._filtered = self.all if self.window.filter.is_empty() else self.count(self.window.filter)
        return self._filtered


def empty_reason(spec: ChartSpec, counts: PageCounts, chart_filter: TraceFilter) -> str:
    """Why a chart has nothing to draw, in the user's terms."""
    window = counts.window
    span = f"{window.start:%Y-%m-%d %H:%M} – {window.end:%Y-%m-%d %H:%M} UTC"
    if counts.all == 0:
        return f"No traces in this window ({span}). Pick a longer range, or check that traces are being sent."
    if counts.filtered == 0 or (chart_filter != window.filter and counts.count(chart_filter) == 0):
        return (f"The filter excludes every trace in this window ({counts.all:,} traces without it). "
                "Loosen or clear the filter.")
    measures = {s.measure for s in spec.series}
    score_names = sorted(m[len(SCORE_PREFIX):] for m in measures if m.startswith(SCORE_PREFIX))
    if score_names:
        by_source: dict[str | None, list[str]] = {}
        for name in score_names:
            known = names.known(name)
            by_source.setdefault(known.source if known else None, []).append(name)
        why = []
        for source, listed in by_source.items():
            what = ", ".join(listed)
            if source == names.EVALUATOR:
                why.append(f"{what}: not computed yet for these traces (the evaluator is off in Evaluator "
                           "settings, or still working through its backlog)")
            elif source == names.END_USER:
                why.append(f"{what}: no end user has given this feedback on these traces")
            elif source == names.ANNOTATION:
                why.append(f"{what}: no reviewer has annotated these traces")
            else:
                why.append(f"{what}: no score of this name on these traces")
        return "No scores in this window — " + "; ".join(why) + "."
    if "cost_usd" in measures:
        return ("None of these traces has a cost: their models have no known price (see unpriced spans on the "
                "Cost page).")
    if "users" in measures:
        return "None of these traces carries a user id (send user.id / session attributes to count users)."
    if "sessions" in measures:
        return "None of these traces carries a session id."
    return "No values for this metric in this window."


def chart_render(*, project: Project, spec: ChartSpec, window: Window, counts: PageCounts) -> ChartView:
    """Run the chart's queries and build what the template draws."""
    chart_filter = _merge(window.filter, spec.filter)
    view = ChartView(spec=spec, dom_id=f"chart-{spec.key}")
    interval = window.interval if spec.interval == "auto" else spec.interval
    if spec.chart in ("number", "histogram", "table") and spec.interval == "auto":
        interval = None
    view.explore_url = explorer_url(project, chart_filter, window.start, window.end) or ""
    view.save_query = _save_query(spec, chart_filter)
    queries = [MetricsQuery(measure=series.measure, agg=series.agg, start=window.start, end=window.end,
                            group_by=spec.group_by, top=spec.top, interval=interval, filter=chart_filter)
               for series in spec.series]
    try:
        # One call for all series: the latency chart's three percentiles share one read.
        answers = selectors.metrics_queries(project=project, queries=queries)
    except (selectors.MetricsError, selectors.MetricsTimeout) as exc:
        view.error = exc.message
        return view
    results = []
    for series, query, result in zip(spec.series, queries, answers, strict=True):
        results.append((series, result))
        label = series.label or measure_label(series.measure, series.agg)
        view.csv_links.append((label, csv_url(project, query)))
        view.approximate |= result.approximate
    if all(p.n == 0 for _, r in results for p in r.data):
        view.empty = empty_reason(spec, counts, chart_filter)
        return view
    builder = _BUILDERS[spec.chart]
    builder(view, project=project, spec=spec, window=window, chart_filter=chart_filter, results=results,
            interval=interval)
    return view


def _save_query(spec: ChartSpec, chart_filter: TraceFilter) -> str:
    """The builder's fields for this chart ("Save to a dashboard"); charts of one query only."""
    if len(spec.series) != 1:
        return ""
    series = spec.series[0]
    fields = {"title": spec.title, "measure": series.measure, "agg": series.agg,
              "group_by_1": spec.group_by[0] if spec.group_by else "",
              "group_by_2": spec.group_by[1] if len(spec.group_by) > 1 else "",
              "top": str(spec.top or ""), "interval": spec.interval or "",
              "filters": urlencode(chart_filter.to_query()), "chart_type": spec.chart}
    return urlencode(fields)


def _merge(page: TraceFilter, extra: TraceFilter | None) -> TraceFilter:
    """The page filter narrowed by a saved chart's own filter (the chart's wins per field)."""
    if extra is None or extra.is_empty():
        return page
    merged = page
    for name in ("name", "session_id", "user_id", "model", "environment", "release", "status", "prompt",
                 "prompt_version", "search"):
        if getattr(extra, name) is not None:
            merged = replace(merged, **{name: getattr(extra, name)})
    meta = dict(page.metadata) | dict(extra.metadata)
    return replace(merged, tags=tuple(sorted({*page.tags, *extra.tags})), metadata=tuple(sorted(meta.items())),
                   scores=tuple(sorted({*page.scores, *extra.scores}, key=str)),
                   has_feedback=extra.has_feedback if extra.has_feedback is not None else page.has_feedback)


def _bucket_end(time: datetime | None, interval: str | None, window: Window) -> tuple[datetime, datetime]:
    if time is None or interval is None:
        return window.start, window.end
    return max(time, window.start), min(time + INTERVAL_STEP[interval], window.end)


def _point_url(project: Project, chart_filter: TraceFilter, measure: str, point: Point, interval: str | None,
               window: Window) -> str | None:
    start, end = _bucket_end(point.time, interval, window)
    return explorer_url(project, explore_filter(chart_filter, group=point.group, measure=measure), start, end)


def _interval(point: Point, unit: str, ci: str | None, spread: dict | None) -> tuple[float, float] | None:
    """A 95% interval around a point's value: Wilson for rates, t for means."""
    if point.value is None or point.n == 0 or ci is None:
        return None
    if ci == "wilson":
        successes = round(point.value * point.n)
        low, high = proportion_confint(successes, point.n, alpha=0.05, method="wilson")
        return float(low), float(high)
    if ci == "t" and spread is not None:
        return t_interval(mean=point.value, n=point.n, sd=spread.get(point.time))
    return None


def t_interval(*, mean: float, n: int, sd: float | None) -> tuple[float, float] | None:
    """Student's t 95% interval of a mean from n observations with sample sd."""
    if sd is None or n < 2 or math.isnan(sd):
        return None
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return mean - half, mean + half


def _layout(spec: ChartSpec, *, x_title: str, y_title: str, unit: str, barmode: str | None = None,
            height: int = 300) -> dict:
    layout: dict[str, Any] = {
        "height": height,
        "margin": {"l": 70, "r": 20, "t": 10, "b": 60},
        "template": "plotly_white",
        "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12},
        "hovermode": "closest",
        "showlegend": True,
        "legend": {"orientation": "h", "y": -0.25},
        "xaxis": {"title": {"text": x_title}, "automargin": True},
        "yaxis": {"title": {"text": y_title}, "rangemode": "tozero", "automargin": True},
    }
    if unit == "share":
        layout["yaxis"]["ticksuffix"] = " %"
    if unit == "USD":
        layout["yaxis"]["tickprefix"] = "$"
    if barmode:
        layout["barmode"] = barmode
    if spec.horizontal:
        layout["xaxis"], layout["yaxis"] = layout["yaxis"], layout["xaxis"]
        layout["yaxis"]["autorange"] = "reversed"
        layout["margin"]["l"] = 120
    return layout


def _y_title(spec: ChartSpec, results: list) -> str:
    unit = results[0][1].unit
    if len(results) == 1:
        series = results[0][0]
        label = series.label or measure_label(series.measure, series.agg)
        # "Traces", not "Traces (traces)".
        return label if label.lower() == display_unit(unit).lower() else f"{label} ({display_unit(unit)})"
    return f"{spec.title} ({display_unit(unit)})"


def _hover(label: str, unit: str, *, with_time: bool, interval: str | None) -> str:
    time = ""
    if with_time:
        time = "%{x|%Y-%m-%d}" if interval in ("day", "week") else "%{x|%Y-%m-%d %H:%M}"
        time += " UTC<br>"
    suffix = " %" if unit == "share" else f" {unit}"
    return (f"{label}<br>{time}%{{y:{_fmt(unit)}}}{suffix}<br>n = %{{customdata[1]:,}}"
            "%{customdata[2]}<extra></extra>")


def _series_groups(result) -> dict[str, list[Point]]:
    groups: dict[str, list[Point]] = {}
    for point in result.data:
        groups.setdefault(group_label(point.group), []).append(point)
    return groups


def _spread(project: Project, series: Series, spec: ChartSpec, chart_filter: TraceFilter, window: Window,
            interval: str | None) -> dict | None:
    if spec.ci != "t" or not series.measure.startswith(SCORE_PREFIX) or spec.group_by:
        return None
    return selectors.score_spread(project=project, name=series.measure[len(SCORE_PREFIX):],
                                  trace_filter=chart_filter, start=window.start, end=window.end, interval=interval)


def _ci_text(interval: tuple[float, float] | None, unit: str) -> str:
    if interval is None:
        return ""
    low, high = (v * _scale(unit) for v in interval)
    return f"<br>95% CI {low:{_fmt(unit)}} – {high:{_fmt(unit)}}"


def _build_time(view: ChartView, *, project, spec, window, chart_filter, results, interval) -> None:
    """line / stacked_bar / bar with a time axis: one trace per series x group."""
    if interval is None:  # a saved line chart without interval: one value per group
        _build_bars(view, project=project, spec=spec, window=window, chart_filter=chart_filter, results=results,
                    interval=None)
        return
    traces = []
    kind = "bar" if spec.chart in ("bar", "stacked_bar") else "scatter"
    unit = results[0][1].unit
    colour = 0
    for series, result in results:
        spread = _spread(project, series, spec, chart_filter, window, interval)
        for label, points in _series_groups(result).items():
            name = label if len(results) == 1 else (series.label or measure_label(series.measure, series.agg))
            if len(results) > 1 and spec.group_by:
                name = f"{name} · {label}"
            scale = _scale(result.unit)
            intervals = [_interval(p, result.unit, spec.ci, spread) for p in points]
            trace: dict[str, Any] = {
                "type": kind,
                "name": name,
                "x": [p.time.isoformat() for p in points],
                "y": [None if p.value is None else p.value * scale for p in points],
                "customdata": [[_point_url(project, chart_filter, series.measure, p, interval, window), p.n,
                                _ci_text(ci, result.unit)] for p, ci in zip(points, intervals, strict=True)],
                "hovertemplate": _hover(name, display_unit(result.unit), with_time=True, interval=interval),
                "marker": {"color": OTHER_COLOUR if label == OTHER else PALETTE[colour % len(PALETTE)]},
            }
            if kind == "scatter":
                trace.update(mode="lines+markers", connectgaps=False,
                             line={"color": trace["marker"]["color"], "width": 2})
            if any(intervals):
                trace["error_y"] = {
                    "type": "data", "symmetric": False, "thickness": 1,
                    "array": [None if ci is None else ci[1] * scale - p.value * scale for p, ci in
                              zip(points, intervals, strict=True)],
                    "arrayminus": [None if ci is None else p.value * scale - ci[0] * scale for p, ci in
                                   zip(points, intervals, strict=True)],
                }
            traces.append(trace)
            colour += label != OTHER
    x_title = f"time (UTC, per {interval})"
    barmode = "stack" if spec.chart == "stacked_bar" else ("group" if kind == "bar" else None)
    layout = _layout(spec, x_title=x_title, y_title=_y_title(spec, results), unit=unit, barmode=barmode)
    if spec.ci and unit == "stars":
        # A t interval from two ratings spans far beyond 1-5; keep the axis on the scale.
        layout["yaxis"]["range"] = [0, 5.5]
    elif spec.ci and unit == "share":
        layout["yaxis"]["range"] = [0, 102]
    view.figure = {"data": traces, "layout": layout}


def _build_bars(view: ChartView, *, project, spec, window, chart_filter, results, interval) -> None:
    """bar without a time axis: one bar per group (one series) or per series."""
    if interval is not None:
        _build_time(view, project=project, spec=spec, window=window, chart_filter=chart_filter, results=results,
                    interval=interval)
        return
    unit = results[0][1].unit
    xs, ys, custom, colours, ups, downs = [], [], [], [], [], []
    for i, (series, result) in enumerate(results):
        spread = _spread(project, series, spec, chart_filter, window, None)
        points = result.data
        if spec.keep:
            points = sorted((p for p in points if p.value is not None), key=lambda p: -p.value)
            points = [p for p in points if not (spec.hide_other and OTHER in p.group.values())][:spec.keep]
        for point in points:
            if point.n == 0 and spec.group_by:
                continue  # a group with traces but no value here (e.g. a user whose traces are unpriced)
            if spec.hide_other and OTHER in point.group.values():
                continue
            label = group_label(point.group) if len(results) == 1 else (series.label or measure_label(
                series.measure, series.agg))
            scale = _scale(result.unit)
            ci = _interval(point, result.unit, spec.ci or ("wilson" if series.agg == "rate" else None), spread)
            xs.append(label)
            ys.append(None if point.value is None else point.value * scale)
            custom.append([_point_url(project, chart_filter, series.measure, point, None, window), point.n,
                           _ci_text(ci, result.unit)])
            colours.append(OTHER_COLOUR if label == OTHER else PALETTE[(i if len(results) > 1 else len(xs) - 1)
                                                                       % len(PALETTE)])
            ups.append(None if ci is None or point.value is None else ci[1] * scale - point.value * scale)
            downs.append(None if ci is None or point.value is None else point.value * scale - ci[0] * scale)
    x_title = (" · ".join(dimension_label(d) for d in spec.group_by) if len(results) == 1 and spec.group_by
               else "metric")
    trace: dict[str, Any] = {
        "type": "bar", "x": xs, "y": ys, "customdata": custom, "marker": {"color": colours}, "name": spec.title,
        "hovertemplate": f"%{{x}}<br>%{{y:{_fmt(unit)}}}{' %' if unit == 'share' else ' ' + unit}"
                         "<br>n = %{customdata[1]:,}%{customdata[2]}<extra></extra>",
    }
    if any(u is not None for u in ups):
        trace["error_y"] = {"type": "data", "symmetric": False, "array": ups, "arrayminus": downs, "thickness": 1}
    if spec.horizontal:
        trace.update(x=ys, y=xs, orientation="h",
                     hovertemplate=f"%{{y}}<br>%{{x:{_fmt(unit)}}}{' %' if unit == 'share' else ' ' + unit}"
                                   "<br>n = %{customdata[1]:,}%{customdata[2]}<extra></extra>")
        trace.pop("error_y", None)
    layout = _layout(spec, x_title=x_title, y_title=_y_title(spec, results), unit=unit)
    layout["showlegend"] = False
    view.figure = {"data": [trace], "layout": layout}


def _build_number(view: ChartView, *, project, spec, window, chart_filter, results, interval) -> None:
    series, result = results[0]
    point = next((p for p in result.data if p.n), result.data[0])
    spread = _spread(project, series, spec, chart_filter, window, None)
    ci = _interval(point, result.unit, spec.ci or ("wilson" if series.agg == "rate" else None), spread)
    view.number = {
        "value": format_value(point.value, result.unit),
        "unit": display_unit(result.unit),
        "n": point.n,
        "ci": None if ci is None else (format_value(ci[0], result.unit), format_value(ci[1], result.unit)),
        "url": _point_url(project, chart_filter, series.measure, point, None, window),
    }


def _build_table(view: ChartView, *, project, spec, window, chart_filter, results, interval) -> None:
    series, result = results[0]
    view.columns = (["time (UTC)"] if interval else []) + [dimension_label(d) for d in spec.group_by] + [
        f"{measure_label(series.measure, series.agg)} ({display_unit(result.unit)})", "n"]
    view.table = [
        {"time": p.time, "groups": [NO_VALUE if v is None else v for v in p.group.values()],
         "value": format_value(p.value, result.unit), "n": p.n,
         "url": _point_url(project, chart_filter, series.measure, p, interval, window)}
        for p in result.data if p.n or not interval
    ]


def _build_histogram(view: ChartView, *, project, spec, window, chart_filter, results, interval) -> None:
    """The distribution of the query's values across its groups (e.g. cost per user)."""
    series, result = results[0]
    values = [p.value * _scale(result.unit) for p in result.data if p.value is not None and p.n
              and OTHER not in p.group.values()]
    what = " · ".join(dimension_label(d) for d in spec.group_by) or "bucket"
    unit = display_unit(result.unit)
    trace = {"type": "histogram", "x": values, "name": spec.title, "marker": {"color": PALETTE[0]},
             "hovertemplate": f"%{{x}} {unit}<br>%{{y}} {what} values<extra></extra>"}
    layout = _layout(spec, x_title=f"{measure_label(series.measure, series.agg)} per {what} ({unit})",
                     y_title=f"number of {what} values", unit="")
    layout["showlegend"] = False
    view.figure = {"data": [trace], "layout": layout}
    if not values or all(math.isnan(v) for v in values):
        view.figure = None
        view.empty = "Only the folded 'other' group has values: raise top or drop the filter."


_BUILDERS: dict[str, Callable[..., None]] = {
    "line": _build_time,
    "stacked_bar": _build_time,
    "bar": _build_bars,
    "number": _build_number,
    "table": _build_table,
    "histogram": _build_histogram,
}
