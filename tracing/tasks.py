"""Celery tasks of the tracing app (thin: ids in, a service call, nothing else)."""

from __future__ import annotations

import logging

from celery import shared_task

from feedback.tasks import SCORING_TASK_OPTIONS

logger = logging.getLogger(__name__)


@shared_task(name="tracing.tasks.traces_score", **SCORING_TASK_OPTIONS)
def traces_score(trace_pks: list[int]) -> int:
    """Score newly stored or changed traces; ingest enqueues one message per batch.

    The name stays what ingest (and messages already queued) call; the work is the
    offline evaluators' runner, the same as feedback.tasks.traces_score. Then the
    follow-ups: implicit signals of the traces' sessions and the sampled LLM judge.
    """
    from feedback.evaluators.runner import traces_score_batch
    from feedback.tasks import traces_followups_enqueue

    logger.info("scoring requested for %d traces", len(trace_pks))
    scored = traces_score_batch(trace_pks, defer=True)
    traces_followups_enqueue(trace_pks)
    return scored
