"""Reads of the dashboards app. The metrics layer itself lives in dashboards/metrics.py
(one query for every chart, page, alert and slice); views import it from here."""

from __future__ import annotations

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
    metric_dimensions,
    metrics_query,
)

__all__ = [
    "AGGS", "GROUP_DIMENSIONS", "INTERVALS", "MEASURES", "Dimension", "MetricsError", "MetricsQuery",
    "MetricsResult", "MetricsTimeout", "Point", "metric_dimensions", "metrics_query",
]
