"""Dashboard pages: the overview (a project's landing page), cost, and the CSV of any
chart's query. Saved dashboards are in dashboards/saved_views.py.

Every view goes through projects.pages.project_page (404 outside your projects). The
window and the trace filter live in the URL in the explorer's language, so a dashboard
view can be shared and each chart links to the explorer on exactly its traces.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from dashboards import selectors
from dashboards.charts import (
    ChartSpec,
    PageCounts,
    Series,
    Window,
    auto_interval,
    chart_render,
    explorer_url,
    format_value,
)
from dashboards.metrics import METADATA_PREFIX, SCORE_PREFIX, _dimension_problem
from explorer.filters import RANGES, FilterError, TraceFilter
from projects.auth import ProjectAccess
from projects.models import Role
from projects.pages import project_page
from scores import names

PAGE_RANGES = (("24h", "24 hours"), ("7d", "7 days"), ("30d", "30 days"))
DEFAULT_RANGE = "7d"
# Parameters the pages read themselves beside the trace filter.
PAGE_PARAMS = frozenset({"key"})

EVALUATORS = ("hallucination", "toxicity_input", "toxicity_output", "pii_input", "pii_output", "prompt_injection")
SIGNALS = ("rephrase", "regenerate", "abandon", "escalate")


@dataclass
class PageState:
    """The URL's window and filter, or the errors that stopped it (a form error each)."""

    window: Window | None
    errors: dict[str, list[str]]
    params: list[tuple[str, str]]  # the filter (and window) to carry in links
    extra: dict[str, str]


def page_state(request: HttpRequest, *, now: datetime | None = None) -> PageState:
    """Parse from / to / range and the explorer's filters (its form aliases too: meta=key=value,
    comma-separated tag, range=custom). Bounded windows only: a chart needs one."""
    now = now or timezone.now()
    errors: dict[str, list[str]] = {}
    extra = {key: request.GET.get(key, "").strip() for key in PAGE_PARAMS}
    try:
        parsed = TraceFilter.parse(request.GET, allow=PAGE_PARAMS, aliases=True)
    except FilterError as exc:
        return PageState(None, exc.errors, [], extra)
    if parsed.search_mode == "semantic":
        errors["mode"] = ["semantic search ranks traces and is not a dashboard filter; use words"]
    if parsed.range == "all":
        errors["range"] = ["dashboards need a bounded window: 24h, 7d, 30d or a custom from/to"]
    if errors:
        return PageState(None, errors, [], extra)
    if parsed.range:
        start, end, key = now - RANGES[parsed.range], now, parsed.range
    elif parsed.start_from or parsed.start_to:
        end = parsed.start_to or now
        start = parsed.start_from or end - RANGES[DEFAULT_RANGE]
        key = "custom"
        if start >= end:
            return PageState(None, {"from": [f"must be before to ({start:%Y-%m-%d %H:%M} >= {end:%Y-%m-%d %H:%M})"]},
                             [], extra)
    else:
        start, end, key = now - RANGES[DEFAULT_RANGE], now, DEFAULT_RANGE
    trace_filter = replace(parsed, start_from=None, start_to=None, range=None)
    window = Window(start=start, end=end, interval=auto_interval(start, end), filter=trace_filter, range_key=key)
    return PageState(window, {}, parsed.to_query(), extra)


def _query_without(params: list[tuple[str, str]], *drop: str) -> str:
    return urlencode([(k, v) for k, v in params if k not in drop])


def page_context(request: HttpRequest, access: ProjectAccess, state: PageState) -> dict[str, Any]:
    window = state.window
    filter_only = _query_without(state.params, "from", "to", "range")
    context: dict[str, Any] = {
        "state": state,
        "window": window,
        "errors": state.errors,
        "ranges": PAGE_RANGES,
        "range_links": [(key, label, "?" + "&".join(x for x in (f"range={key}", filter_only,
                                                                _extra_query(state)) if x))
                        for key, label in PAGE_RANGES],
        "filter_query": urlencode(state.params),
        "data": request.GET,
        "meta_pairs": [],
        "score_conditions": [],
        "tags": "",
        # Members may save any chart of these pages to a dashboard (prefilled builder).
        "can_save": access.can(Role.MEMBER),
    }
    if window is not None:
        f = window.filter
        context.update(has_filter=not f.is_empty(), meta_pairs=list(f.metadata),
                       score_conditions=[str(c) for c in f.scores],
                       tags=", ".join(f.tags), active_range=window.range_key,
                       custom_from=f"{window.start:%Y-%m-%dT%H:%M}", custom_to=f"{window.end:%Y-%m-%dT%H:%M}",
                       explore_url=_explore(access, state))
    return context


def _extra_query(state: PageState) -> str:
    return urlencode([(k, v) for k, v in state.extra.items() if v])


def _explore(access: ProjectAccess, state: PageState) -> str:
    window = state.window
    return explorer_url(access.project, window.filter, window.start, window.end) or ""


def charts_render(access: ProjectAccess, window: Window, specs: list[ChartSpec]) -> list:
    counts = PageCounts(access.project, window)
    return [chart_render(project=access.project, spec=spec, window=window, counts=counts) for spec in specs]


# ------------------------------------------------------------------------ overview


def _score(name: str) -> str:
    return SCORE_PREFIX + name


def overview_specs() -> list[ChartSpec]:
    thumbs, rating = names.USER_THUMBS.name, names.USER_RATING.name
    evaluators = [names.REGISTRY[n] for n in EVALUATORS]
    signals = [names.REGISTRY[n] for n in SIGNALS]
    return [
        ChartSpec("n-traces", "Traces", (Series("traces", "count"),), chart="number"),
        ChartSpec("n-users", "Users", (Series("users", "count"),), chart="number"),
        ChartSpec("n-cost", "Cost", (Series("cost_usd", "sum"),), chart="number"),
        ChartSpec("n-errors", "Error rate", (Series("errors", "rate"),), chart="number"),
        ChartSpec("n-thumbs", "Thumbs-up rate", (Series(_score(thumbs), "rate"),), chart="number", ci="wilson",
                  help="Share of end users' thumbs votes that are up, with its 95% Wilson interval."),
        ChartSpec("n-rating", "Mean rating", (Series(_score(rating), "avg"),), chart="number", ci="t",
                  help="Mean star rating (1-5), with its 95% t interval."),
        ChartSpec("traces", "Traces", (Series("traces", "count"),)),
        ChartSpec("users", "Users", (Series("users", "count"),),
                  help="Distinct end users per bucket (a user active in two buckets counts in both)."),
        ChartSpec("sessions", "Sessions", (Series("sessions", "count"),)),
        ChartSpec("latency", "Latency percentiles",
                  (Series("latency_ms", "p50", "p50"), Series("latency_ms", "p95", "p95"),
                   Series("latency_ms", "p99", "p99"))),
        ChartSpec("cost-model", "Cost by model", (Series("cost_usd", "sum"),), chart="stacked_bar",
                  group_by=("model",), top=8),
        ChartSpec("tokens-model", "Tokens by model", (Series("total_tokens", "sum"),), chart="stacked_bar",
                  group_by=("model",), top=8),
        ChartSpec("cost-prompt", "Cost by prompt version", (Series("cost_usd", "sum"),), chart="bar",
                  group_by=("prompt",), top=10, interval=None),
        ChartSpec("tokens-prompt", "Tokens by prompt version", (Series("total_tokens", "sum"),), chart="bar",
                  group_by=("prompt",), top=10, interval=None),
        ChartSpec("errors", "Error rate", (Series("errors", "rate"),),
                  help="Share of traces whose status is error."),
        ChartSpec("thumbs", "Thumbs-up rate", (Series(_score(thumbs), "rate"),), ci="wilson",
                  help="Error bars: 95% Wilson interval per bucket; hover for n (votes)."),
        ChartSpec("rating", "Mean rating", (Series(_score(rating), "avg"),), ci="t",
                  help="Error bars: 95% t interval per bucket; hover for n (ratings)."),
        ChartSpec("evaluators", "Evaluator flag rates",
                  tuple(Series(_score(s.name), "rate", s.label) for s in evaluators), chart="bar", interval=None,
                  help="Share of scored traces each evaluator flagged, with 95% Wilson intervals; n = scores."),
        ChartSpec("signals", "Implicit signals",
                  tuple(Series(_score(s.name), "rate", s.label) for s in signals), chart="bar", interval=None,
                  help="Share of traces after which the user did this (derived from what they did next)."),
        ChartSpec("top-users", "Top users by cost", (Series("cost_usd", "sum"),), chart="bar",
                  group_by=("user_id",), top=100, interval=None, horizontal=True, hide_other=True, keep=10,
                  help="The 10 costliest of the 100 users with the most priced traces."),
    ]


@project_page(Role.VIEWER)
def overview(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    state = page_state(request)
    context = page_context(request, access, state)
    if state.window is None:
        return render(request, "dashboards/overview.html", context, status=400)
    charts = charts_render(access, state.window, overview_specs())
    context["numbers"] = [c for c in charts if c.spec.chart == "number"]
    context["charts"] = [c for c in charts if c.spec.chart != "number"]
    return render(request, "dashboards/overview.html", context)


# ------------------------------------------------------------------------ cost


def cost_specs(metadata_key: str | None) -> list[ChartSpec]:
    cost = (Series("cost_usd", "sum"),)
    specs = [
        ChartSpec("cost-time", "Cost over time by model", cost, chart="stacked_bar", group_by=("model",), top=8),
        ChartSpec("by-model", "By model", cost, chart="bar", group_by=("model",), top=15, interval=None),
        ChartSpec("by-prompt", "By prompt version", cost, chart="bar", group_by=("prompt",), top=15, interval=None),
        ChartSpec("by-user", "By user (top 15)", cost, chart="bar", group_by=("user_id",), top=100, interval=None,
                  horizontal=True, hide_other=True, keep=15,
                  help="The 15 costliest of the 100 users with the most priced traces."),
        ChartSpec("by-env", "By environment", cost, chart="bar", group_by=("environment",), top=10, interval=None),
    ]
    if metadata_key:
        specs.append(ChartSpec("by-meta", f"By metadata {metadata_key}", cost, chart="bar",
                               group_by=(METADATA_PREFIX + metadata_key,), top=20, interval=None))
    return specs


@project_page(Role.VIEWER)
def cost(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    state = page_state(request)
    key = state.extra.get("key") or ""
    if key and (problem := _dimension_problem(METADATA_PREFIX + key)):
        state.errors["key"] = [problem]
        state.window = None
    context = page_context(request, access, state)
    context["metadata_key"] = key
    if state.window is None:
        return render(request, "dashboards/cost.html", context, status=400)
    window = state.window
    project = access.project
    dims = selectors.metadata_dimensions(project=project, start=window.start, end=window.end)
    context["metadata_keys"] = [(d.name[len(METADATA_PREFIX):], d.distinct) for d in dims]
    if key and key not in {k for k, _ in context["metadata_keys"]}:
        context["metadata_keys"].append((key, 0))  # chosen from a link; not seen in this window
    charts = charts_render(access, window, cost_specs(key or None))
    context["charts"] = [c for c in charts if c.spec.key != "by-meta"]
    context["meta_chart"] = next((c for c in charts if c.spec.key == "by-meta"), None)
    success = selectors.cost_per_successful_answer(project=project, trace_filter=window.filter,
                                                   start=window.start, end=window.end)
    context["success"] = success
    context["per_success"] = format_value(None if success.per_success is None else float(success.per_success),
                                          "USD")
    context["total_cost"] = format_value(None if success.cost is None else float(success.cost), "USD")
    context["unpriced_total"], context["unpriced"] = selectors.unpriced_spans(
        project=project, trace_filter=window.filter, start=window.start, end=window.end)
    projection = selectors.cost_projection(project=project, trace_filter=window.filter)
    context["projection"] = projection
    context["projection_text"] = {
        "mtd": format_value(projection.month_to_date, "USD"),
        "week": format_value(projection.last_7_days, "USD"),
        "daily": format_value(projection.last_7_days / 7, "USD"),
        "projected": format_value(projection.projected, "USD"),
    }
    return render(request, "dashboards/cost.html", context)


# ------------------------------------------------------------------------ CSV


@project_page(Role.VIEWER)
def chart_csv(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    """Any chart's data: the metrics API's parameters in, the same query's points out as
    CSV (one row per time bucket and group)."""
    try:
        query = selectors.MetricsQuery.parse(
            request.GET, now=timezone.now(),
            max_hourly_window=timedelta(days=settings.SPYGLASS_METRICS_MAX_HOURLY_DAYS))
        result = selectors.metrics_query(project=access.project, query=query)
    except selectors.MetricsError as exc:
        return HttpResponse(f"Bad chart query: {exc.message}\n", status=400, content_type="text/plain")
    except selectors.MetricsTimeout as exc:
        return HttpResponse(f"{exc.message}\n", status=503, content_type="text/plain")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    measure = query.measure.replace(":", "-")
    response["Content-Disposition"] = f'attachment; filename="spyglass-{measure}-{query.agg}.csv"'
    writer = csv.writer(response)
    writer.writerow(["time", *query.group_by, "value", "n", "unit"])
    for point in result.data:
        writer.writerow([point.time.isoformat() if point.time else "", *(
            "" if v is None else v for v in point.group.values()), "" if point.value is None else repr(point.value),
            point.n, result.unit])
    return response
