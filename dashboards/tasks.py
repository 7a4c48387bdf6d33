"""Celery tasks of the dashboards app (thin)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="dashboards.tasks.rollups_refresh", ignore_result=True, expires=25)
def rollups_refresh() -> int:
    """Beat, every 30 s: re-aggregate the hourly rollups of every hour changed since the
    last run (dashboards/rollups.py). Returns the hours rebuilt."""
    from dashboards.rollups import rollups_refresh as refresh

    return refresh().hours
