"""Reads of the dashboards app. The metrics layer itself lives in dashboards/metrics.py
(one query for every chart, page, alert and slice); views import it from here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import Count

from dashboards.metrics import (
    AGGS,
    GROUP_DIMENSIONS,
    INTERVALS,
    MEASURES,
    Dimension,
    MetricsError,
    MetricsQuery,
    MetricsResult,
    MetricsTimeout,
    Point,
    metadata_dimensions,
    metric_dimensions,
    metrics_queries,
    metrics_query,
    statement_timeout,
    traces_sql,
)
from dashboards.models import Chart, SavedDashboard
from explorer.filters import TraceFilter
from projects.models import Project
from scores import names
from scores.models import Score
from tracing.cost import pricing_provider_id
from tracing.models import Span

__all__ = [
    "AGGS", "GROUP_DIMENSIONS", "INTERVALS", "MEASURES", "Dimension", "MetricsError", "MetricsQuery",
    "MetricsResult", "MetricsTimeout", "Point", "metadata_dimensions", "metric_dimensions",
    "metrics_queries", "metrics_query",
]


# ------------------------------------------------------------------------ page reads
# What the overview and cost pages need beside metrics_query. Each reads the same
# filtered traces (metrics.traces_sql, the explorer's one filter -> SQL path), so a
# number here covers exactly the traces a chart beside it counts.



# Signals that say an answer did not help (scores/names.py: implicit, lower is better).
NEGATIVE_SIGNALS = tuple(s.name for s in names.SIGNALS if s.higher_is_better is False)


def score_spread(*, project: Project, name: str, trace_filter: TraceFilter, start: datetime, end: datetime,
                 interval: str | None) -> dict[datetime | None, float | None]:
    """Sample standard deviation of a score's values per time bucket (None without
    interval): what a t interval around metrics_query's mean needs. Same scores as the
    metrics layer (trace- and span-level, any source)."""
    traces, params = traces_sql(project=project, trace_filter=trace_filter, start=start, end=end)
    bucket = f"date_trunc('{interval}', t.start_time, 'UTC')" if interval else "NULL::timestamptz"
    sql = (f"SELECT {bucket}, stddev_samp(s.value) FROM ({traces}) AS t JOIN {Score._meta.db_table} s "
           "ON s.project_id = %s AND s.trace_id = t.trace_id AND s.name = %s GROUP BY 1")
    with statement_timeout() as cursor:
        cursor.execute(sql, [*params, project.pk, name])
        return {row[0]: None if row[1] is None else float(row[1]) for row in cursor.fetchall()}


@dataclass(frozen=True)
class SuccessCost:
    traces: int
    successful: int  # thumbs-up, or no thumbs-down and no negative signal
    cost: Decimal | None  # all traces' cost in the window
    per_success: Decimal | None


def cost_per_successful_answer(*, project: Project, trace_filter: TraceFilter, start: datetime,
                               end: datetime) -> SuccessCost:
    """The window's whole cost divided by its successful answers: a trace counts as
    successful when an end user gave it a thumbs-up, or when nothing says it failed (no
    thumbs-down and none of the negative implicit signals). Failed answers still cost
    money, so they stay in the numerator: that is the price of one good answer."""
    traces, params = traces_sql(project=project, trace_filter=trace_filter, start=start, end=end)
    table = Score._meta.db_table
    # The verdicts per trace from one hash aggregate over the project's thumbs and negative
    # signals (a few % of traces), hash-joined to the window's traces: two EXISTS probes
    # per trace took 5x longer over a month. NULL values count on neither side, as in EXISTS.
    sql = f"""
    SELECT count(*), count(*) FILTER (WHERE coalesce(v.up, false) OR NOT coalesce(v.bad, false)), sum(t.cost_usd)
    FROM ({traces}) AS t
    LEFT JOIN (SELECT s.trace_id, bool_or(s.name = %s AND s.value >= 0.5) AS up,
                      bool_or((s.name = %s AND s.value < 0.5) OR s.name = ANY(%s)) AS bad
               FROM {table} s WHERE s.project_id = %s AND (s.name = %s OR s.name = ANY(%s))
               GROUP BY s.trace_id) AS v ON v.trace_id = t.trace_id"""
    thumbs = names.USER_THUMBS.name
    negative = list(NEGATIVE_SIGNALS)
    args = [*params, thumbs, thumbs, negative, project.pk, thumbs, negative]
    with statement_timeout() as cursor:
        cursor.execute(sql, args)
        total, successful, cost = cursor.fetchone()
    per = None if not successful or cost is None else (cost / successful)
    return SuccessCost(traces=total, successful=successful, cost=cost, per_success=per)


@dataclass(frozen=True)
class UnpricedModel:
    model: str | None
    provider: str | None
    spans: int
    input_tokens: int
    output_tokens: int
    reason: str


UNPRICED_LIMIT = 20


def unpriced_spans(*, project: Project, trace_filter: TraceFilter, start: datetime,
                   end: datetime) -> tuple[int, list[UnpricedModel]]:
    """Spans of the window's traces that used tokens but have no cost, by model and
    provider (most spans first), each with why it has no price. Their tokens count in
    the token charts; their cost is missing from every cost figure. The condition is the
    partial index span_unpriced's, word for word, so the index serves it."""
    traces, params = traces_sql(project=project, trace_filter=trace_filter, start=start, end=end)
    sql = f"""
    SELECT s.model, s.provider, count(*), coalesce(sum(s.input_tokens), 0), coalesce(sum(s.output_tokens), 0)
    FROM ({traces}) AS t JOIN {Span._meta.db_table} s ON s.project_id = %s AND s.trace_id = t.trace_id
    WHERE s.cost_usd IS NULL AND (s.input_tokens > 0 OR s.output_tokens > 0)
    GROUP BY 1, 2 ORDER BY 3 DESC, 1 NULLS LAST"""
    with statement_timeout() as cursor:
        cursor.execute(sql, [*params, project.pk])
        rows = cursor.fetchall()
    out = [UnpricedModel(model, provider, n, int(i), int(o), _unpriced_reason(model, provider))
           for model, provider, n, i, o in rows]
    return sum(r.spans for r in out), out[:UNPRICED_LIMIT]


def _unpriced_reason(model: str | None, provider: str | None) -> str:
    if not model:
        return "the span reports tokens but no model name, so there is nothing to price"
    provider_id = pricing_provider_id(provider)
    if provider_id is not None and provider_id.startswith("\x00"):  # tracing.cost's "unknown provider"
        return (f"provider {provider!r} is not in the price list; Spyglass does not price by model name alone "
                "there, so a self-hosted model is never billed at a cloud price")
    return "the genai-prices database has no price for this model (a custom, fine-tuned or very new model)"


@dataclass(frozen=True)
class Projection:
    month_start: datetime
    month_end: datetime
    month_to_date: float  # USD
    last_7_days: float  # USD
    days_left: float
    projected: float  # USD


def cost_projection(*, project: Project, trace_filter: TraceFilter, now: datetime | None = None) -> Projection:
    """Month-end cost = cost so far this UTC month + the last 7 days' average daily cost
    × the days left in the month (both through metrics_query, with the page's filter)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    month_end = (month_start + timedelta(days=32)).replace(day=1)

    def cost(start: datetime, end: datetime) -> float:
        if start >= end:
            return 0.0
        query = MetricsQuery(measure="cost_usd", agg="sum", start=start, end=end, filter=trace_filter)
        return sum(p.value or 0.0 for p in metrics_query(project=project, query=query).data)

    mtd = cost(month_start, now)
    week = cost(now - timedelta(days=7), now)
    days_left = (month_end - now) / timedelta(days=1)
    return Projection(month_start, month_end, mtd, week, days_left, mtd + week / 7 * days_left)


# ------------------------------------------------------------------------ saved dashboards


def dashboards_for(*, project: Project):
    """The project's dashboards with their chart counts, by name."""
    return SavedDashboard.objects.filter(project=project).annotate(chart_count=Count("charts")).order_by("name")


def dashboard_get(*, project: Project, dashboard_id: int):
    """One dashboard of this project, or None (another project's id is not found)."""
    return SavedDashboard.objects.filter(project=project, pk=dashboard_id).first()


def charts_of(*, dashboard: SavedDashboard) -> list[Chart]:
    return list(dashboard.charts.all())


def metric_dimensions_recent(*, project: Project, days: int = 30) -> list[Dimension]:
    """What the chart builder offers to group by: the dimensions of the last `days`."""
    now = datetime.now(UTC)
    return metric_dimensions(project=project, start=now - timedelta(days=days), end=now)
