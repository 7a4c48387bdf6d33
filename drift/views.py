"""The drift page: /p/<slug>/drift/ (viewer role), the same report as GET /api/v1/drift."""

from __future__ import annotations

from datetime import UTC

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from drift import charts, selectors, stats
from drift.windows import PARAMS, DriftParamsError, parse_windows
from projects.auth import ProjectAccess
from projects.models import Role
from projects.pages import project_page

SHARES_SHOWN = 3


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "USD":
        return f"${value:,.5f}"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def _summary(feature: selectors.Feature, side: dict) -> str:
    """What a window looks like for this feature, in a few words."""
    if side.get("n", 0) == 0:
        return "no data"
    if feature.kind == "numeric":
        return f"median {_number(side['p50'], feature.unit)}, p95 {_number(side['p95'], feature.unit)}"
    if feature.kind == "rate":
        return f"{side['rate']:.1%} of {side['n']:,}"
    top = list(side["shares"].items())[:SHARES_SHOWN]
    more = len(side["shares"]) - len(top)
    return ", ".join(f"{k} {v:.0%}" for k, v in top) + (f" (+{more} more)" if more > 0 else "")


def _local(moment) -> str:
    """A datetime-local field value (UTC, to the second)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


@project_page(Role.VIEWER)
def drift_page(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    values = {key: request.GET.get(key, "") for key in PARAMS}
    try:
        baseline, current = parse_windows(request.GET, now=timezone.now())
    except DriftParamsError as exc:
        return render(request, "drift/drift.html", {"values": values, "errors": exc.errors, "report": None},
                      status=400)
    report = selectors.drift_report(project=access.project, baseline=baseline, current=current)
    rows = [{"f": f, "baseline": _summary(f, f.baseline), "current": _summary(f, f.current)}
            for f in report.features]
    flagged = [f for f in report.features if f.status in (stats.WARN, stats.ALERT)]
    return render(request, "drift/drift.html", {
        "values": {"baseline_from": _local(baseline.start), "baseline_to": _local(baseline.end),
                   "from": _local(current.start), "to": _local(current.end)},
        "errors": {},
        "report": report,
        "rows": rows,
        "flagged": flagged,
        "auc_threshold": stats.AUC_DRIFT,
        "far_distance": stats.FAR_DISTANCE,
        "figure": charts.psi_figure(report.features),
        "sample_sizes": {"features": f"{selectors.FEATURE_SAMPLE:,}", "embeddings": f"{selectors.EMBEDDING_SAMPLE:,}"},
    })
