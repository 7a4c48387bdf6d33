"""Celery tasks of the retention app (thin)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings


@shared_task(name="retention.tasks.retention_apply", ignore_result=True, acks_late=True,
             expires=600)
def retention_apply() -> int:
    """Beat, every SPYGLASS_RETENTION_EVERY_SECONDS: delete what every project keeps no
    longer, for at most SPYGLASS_RETENTION_RUN_SECONDS (the next run carries on).
    Idempotent: a redelivered message finds less or nothing to delete. Returns the traces deleted."""
    from retention.services import retention_apply as apply

    # The budget stays inside the task's soft time limit, so a run ends between batches,
    # never killed in the middle of one.
    budget = min(settings.SPYGLASS_RETENTION_RUN_SECONDS, settings.CELERY_TASK_SOFT_TIME_LIMIT * 0.8)
    results = apply(budget_seconds=budget) or []
    return sum(r.traces for r in results)
