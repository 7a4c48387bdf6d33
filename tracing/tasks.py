"""Celery tasks of the tracing app (thin: ids in, a service call, nothing else)."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="tracing.tasks.traces_score", acks_late=True, ignore_result=True)
def traces_score(trace_pks: list[int]) -> int:
    """Hook point for background scoring of newly stored or changed traces.

    Ingest enqueues one message per batch (after commit). The evaluators arrive with
    the scoring issue; until then the task records that the hand-off works.
    """
    logger.info("scoring requested for %d traces", len(trace_pks))
    return len(trace_pks)
