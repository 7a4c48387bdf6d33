"""Celery tasks of the evaluation app (thin: ids in, a service call, nothing else).

Queues: `scoring` (cheap evaluators), `grounding` (groundedness), `judge` (the LLM
judge, network-bound), `default` (the sweep and re-score paging).
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as KombuOperationalError

logger = logging.getLogger(__name__)

# Only errors a retry can cure: the database or the broker being briefly unreachable.
# A bug in an evaluator is recorded on the trace (TraceScoring.error), not retried.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, KombuOperationalError)
SCORING_TASK_OPTIONS = {
    "acks_late": True,
    "ignore_result": True,
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 6,
    # A batch is at most a few hundred traces (~1 s each at worst with long contexts);
    # past this something is stuck, and the sweep re-enqueues the traces later.
    "soft_time_limit": 240,
    "time_limit": 300,
}
SWEEP_BATCH = 50


@shared_task(name="evaluation.tasks.traces_score", **SCORING_TASK_OPTIONS)
def traces_score(trace_pks: list[int]) -> int:
    """Run the enabled evaluators on these traces (idempotent upserts); groundedness
    goes on to the grounding queue (evaluation/deferred.py)."""
    from evaluation.runner import traces_score_batch

    return traces_score_batch(trace_pks, defer=True)


@shared_task(bind=True, name="evaluation.tasks.scoring_drain", **SCORING_TASK_OPTIONS)
def scoring_drain(self) -> int:
    """Score the fair queue's turns (evaluation/fair_queue.py) for up to
    SPYGLASS_SCORING_DRAIN_SECONDS, then hand over to a fresh message if work remains,
    so the worker's other queues (pipeline, grounding, signals) get their turns too.
    Every ingest batch sends one; a message that finds nothing waiting just ends.

    Each turn is claimed under this message's task id and released once stored: if the
    worker dies mid-turn, the redelivered message (same id) scores that turn first."""
    import time
    import uuid

    from django.conf import settings

    from evaluation.backlog import turn_run
    from evaluation.fair_queue import turn_done, turn_take
    from evaluation.sweep import queue_backlog

    consumes = set(scoring_drain.app.amqp.queues.consume_from or {})
    claimant = self.request.id or uuid.uuid4().hex  # no id: called in-process
    deadline = time.monotonic() + settings.SPYGLASS_SCORING_DRAIN_SECONDS
    scored = 0
    while time.monotonic() < deadline:
        turn = turn_take(claimant=claimant)
        if turn is None:
            return scored
        scored += turn_run(turn)  # as the project's backlog policy says (evaluation/backlog.py)
        turn_done(claimant=claimant, trace_pks=turn.trace_pks)
        # Ingest's announcements come first: until one is handled, its traces are not in
        # the fair queue at all, and a small project would wait behind a flood after all.
        if "pipeline" in consumes and queue_backlog("pipeline"):
            break
    # Work is left: hand over to a fresh message, unless one is already waiting.
    if not queue_backlog("scoring"):
        scoring_drain.delay()
    return scored


@shared_task(bind=True, name="evaluation.tasks.traces_ground", **SCORING_TASK_OPTIONS)
def traces_ground(self, trace_pks: list[int]) -> int:
    """Groundedness of these traces, queued by the scoring task (queue `grounding`).

    Gives way to the scoring queue: a worker serving both takes them in turn, so one
    slow grounding batch per cheap one would hold every trace's first scores back. While
    scoring messages wait, this one goes to the back of its queue, untouched, and the
    worker's next turn takes a scoring message. Returns the traces grounded (0 if it gave way).
    """
    from evaluation.deferred import give_way
    from evaluation.runner import traces_score_batch

    if give_way(self.app):
        traces_ground.apply_async((trace_pks,), queue="grounding")
        return 0
    return traces_score_batch(trace_pks, only={"groundedness"})


@shared_task(name="evaluation.tasks.scoring_sweep", acks_late=True, ignore_result=True)
def scoring_sweep() -> int:
    """Beat, every minute: announce traces that were never scored (or changed since),
    and re-send groundedness that was queued but never written.

    Covers messages lost while the broker was down at ingest, and traces whose task
    died. A recovered trace is announced like a fresh one (tracing.signals), so it gets
    implicit signals and the judge as well as scores. Batches of SWEEP_BATCH keep one
    bad trace from holding many hostage.
    """
    from evaluation import deferred, services
    from evaluation.sweep import traces_awaiting_grounding, traces_needing_scoring

    return (_sweep_into("scoring", traces_needing_scoring, services.traces_recovered_announce)
            + _sweep_into(deferred.QUEUE, traces_awaiting_grounding, traces_ground.delay)
            + _rescue_skipped())


def _rescue_skipped() -> int:
    """Traces the backlog policy skipped that must be scored after all (a thumbs-down or
    an annotation queue since): back to the head of their project's queue. Not held back
    by a backlog like the rest of the sweep: re-filing a waiting trace adds nothing."""
    from evaluation.backlog import traces_skipped_protected
    from evaluation.fair_queue import traces_enqueue

    found = traces_skipped_protected()
    for project_id, pks in found.items():
        traces_enqueue(project_id=project_id, trace_pks=pks, priority=True)
    if found:
        scoring_drain.delay()
    return sum(len(pks) for pks in found.values())


def _sweep_into(queue: str, find, send) -> int:
    """Hand the traces `find()` returns to `send` in batches, unless `queue` still holds
    messages: then "not done yet" mostly means "not reached yet", and re-enqueueing would
    feed a backlog with copies of itself (seen in bench/e2e_scoring.py). Lost messages
    are caught once the queue has drained."""
    from evaluation import sweep

    backlog = sweep.queue_backlog(queue)
    if queue == "scoring" and not backlog:
        from evaluation.fair_queue import waiting_total

        backlog = waiting_total()
    if backlog:
        logger.info("%s sweep skipped: %d messages still queued", queue, backlog)
        return 0
    pks = find()
    for start in range(0, len(pks), SWEEP_BATCH):
        send(pks[start : start + SWEEP_BATCH])
    return len(pks)


@shared_task(
    name="evaluation.tasks.traces_judge",
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
)
def traces_judge(project_id: int, trace_ids: list[str]) -> int:
    """LLM-as-judge verdicts for the sampled ones of these traces (skips existing ones).

    On queue `judge`: its calls wait on a remote endpoint (and back off on 429/5xx),
    which must not hold up a worker that serves the scoring queues."""
    from evaluation.judge import judge_traces
    from projects.models import Project

    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return 0
    return judge_traces(project=project, trace_ids=trace_ids).scores


@shared_task(name="evaluation.tasks.project_rescore", acks_late=True, ignore_result=True)
def project_rescore(project_id: int, since: str) -> int:
    """Re-score a project's traces started since `since` (ISO 8601), paging through them
    here: one message from the settings page, not thousands from a web request."""
    from datetime import datetime

    from evaluation.services import project_rescore_run
    from projects.models import Project

    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return 0
    return project_rescore_run(project=project, since=datetime.fromisoformat(since))
