"""Writes of the dashboards app: saved dashboards and their charts.

Views validate input (dashboards/forms.py, which also checks the chart's metrics query);
these own the transaction and turn a duplicate name into a typed Conflict."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import Max

from config.errors import Conflict
from dashboards.models import Chart, SavedDashboard
from projects.models import Project


@transaction.atomic
def dashboard_create(*, project: Project, name: str, description: str = "", user=None) -> SavedDashboard:
    try:
        with transaction.atomic():
            return SavedDashboard.objects.create(project=project, name=name, description=description,
                                                 created_by=user)
    except IntegrityError:
        raise Conflict(f"A dashboard named {name!r} already exists in this project.",
                       detail={"name": ["already exists"]}) from None


@transaction.atomic
def dashboard_delete(*, dashboard: SavedDashboard) -> None:
    dashboard.delete()


@transaction.atomic
def chart_add(*, dashboard: SavedDashboard, title: str, measure: str, agg: str, group_by: list[str], top: int,
              interval: str, filters: list[list[str]], chart_type: str, user=None) -> Chart:
    """Append a chart (last position). The row lock on the dashboard serialises two
    members adding charts at once, so positions stay distinct."""
    SavedDashboard.objects.select_for_update().filter(pk=dashboard.pk).first()
    last = dashboard.charts.aggregate(last=Max("position"))["last"]
    return Chart.objects.create(project_id=dashboard.project_id, dashboard=dashboard, title=title, measure=measure,
                                agg=agg, group_by=group_by, top=top, interval=interval, filters=filters,
                                chart_type=chart_type, position=0 if last is None else last + 1, created_by=user)


@transaction.atomic
def chart_delete(*, chart: Chart) -> None:
    chart.delete()
