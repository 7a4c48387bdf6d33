"""The bias-slices page, /p/<project_slug>/slices/ (viewer role): a dimension picker, the
table with flagged cells highlighted and explained, trend charts, CSV export and
click-through to the explorer. Reads only; every number comes from slices/selectors.py."""

from __future__ import annotations

import csv
from datetime import timedelta

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from dashboards.selectors import metric_dimensions
from projects.auth import ProjectAccess
from projects.models import Role
from projects.pages import project_page
from slices import charts, selectors
from slices.selectors import FIXED_DIMENSIONS, METRICS, SliceError

PAGE_RANGES = ("24h", "7d", "30d")
DEFAULT_RANGE = "30d"
PICKER_WINDOW = timedelta(days=7)
# The page's own parameters, beside SliceQuery's.
PAGE_PARAMS = ("format",)


@project_page(Role.VIEWER)
def slices_page(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    params = {key: request.GET.getlist(key) for key in request.GET if key not in PAGE_PARAMS}
    # Blank form inputs mean "not chosen" on a page (the API refuses them).
    params = {key: values for key, values in params.items() if any(v.strip() for v in values)}
    if not ({"from", "to", "range"} & params.keys()):
        params["range"] = [DEFAULT_RANGE]
    now = timezone.now()
    # The picker lists the metadata keys of the last 7 days: listing them reads every
    # trace's metadata in the window, and 30 days of a large project would cost as much
    # as the report itself. A key chosen by URL is kept even if it is older.
    dimensions = [d.name for d in metric_dimensions(project=access.project, start=now - PICKER_WINDOW, end=now)
                  if d.name.startswith("metadata.")]
    params.setdefault("dimension", ["metadata.locale" if "metadata.locale" in dimensions else "model"])
    for key in ("dimension", "dimension2"):
        chosen = params.get(key, [""])[0]
        if chosen.startswith("metadata.") and chosen not in dimensions:
            dimensions.append(chosen)
    context = {
        "dimension_choices": [*dimensions, *FIXED_DIMENSIONS],
        "chosen": {key: values[0] for key, values in params.items()},
        "ranges": PAGE_RANGES,
        "metrics": [(name, label) for name, (label, *_rest) in METRICS.items()],
        "filters": [(k, v) for k, values in params.items() if k not in ("dimension", "dimension2", "range", "from",
                                                                       "to") for v in values],
    }
    try:
        query = selectors.SliceQuery.parse(params, now=now)
    except SliceError as exc:
        context["errors"] = exc.errors
        return render(request, "slices/slices.html", context, status=400)
    report = selectors.slices_report(project=access.project, query=query)
    if request.GET.get("format") == "csv":
        return _csv(report)
    rows = []
    for s in report.slices:
        rows.append({
            "label": s.label(query.dimensions),
            "values": [_value(v, f) for v, f in zip(s.key, s.folded, strict=True)],
            "n": s.n,
            "share": s.share,
            "explorer": selectors.explorer_url(access.project, s.explorer_query) if s.explorer_query else None,
            "cells": [(name, s.cells[name], selectors.format_value(name, s.cells[name].value),
                       _interval(name, s.cells[name])) for name in METRICS],
        })
    context.update({
        "report": report,
        "query": query,
        "rows": rows,
        "csv_query": _csv_query(query),
        "figure": charts.trends_figure(report) if report.trends or report.prompt_trends else None,
    })
    return render(request, "slices/slices.html", context)


def _value(value: str | None, folded: bool) -> str:
    return "(other)" if folded else ("(not set)" if value is None else value)


def _interval(metric: str, cell) -> str:
    if cell.low is None or cell.high is None:
        return ""
    return f"{selectors.format_value(metric, cell.low)} – {selectors.format_value(metric, cell.high)}"


def _csv_query(query: selectors.SliceQuery) -> str:
    from urllib.parse import urlencode

    return urlencode([*query.to_query(), ("format", "csv")])


def _csv(report: selectors.SliceReport) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="slices.csv"'
    writer = csv.writer(response)
    dims = list(report.query.dimensions)
    writer.writerow([*dims, "traces", "share", "metric", "value", "ci_low", "ci_high", "n", "rest", "test",
                     "p_value", "p_adjusted", "ratio_to_best", "flagged"])
    for s in report.slices:
        values = [_value(v, f) for v, f in zip(s.key, s.folded, strict=True)]
        for name, c in s.cells.items():
            writer.writerow([*values, s.n, f"{s.share:.6f}", name, _num(c.value), _num(c.low), _num(c.high), c.n,
                             _num(c.rest), c.test, _num(c.p_value), _num(c.p_adjusted), _num(c.ratio_to_best),
                             "yes" if c.flagged else "no"])
    return response


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"
