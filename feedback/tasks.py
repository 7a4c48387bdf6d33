"""Celery tasks of the feedback app (thin: ids in, a service call, nothing else).

Scoring (offline evaluators, `traces_score` and its sweep) lives here too; the
implicit-signals and LLM-judge tasks are the section at the end of this file.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from celery import shared_task
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as KombuOperationalError

logger = logging.getLogger(__name__)

# --- offline evaluators (queue `scoring`) ------------------------------------------------

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


@shared_task(name="feedback.tasks.traces_score", **SCORING_TASK_OPTIONS)
def traces_score(trace_pks: list[int]) -> int:
    """Run the enabled evaluators on these traces (idempotent upserts); groundedness
    goes on to the grounding queue (feedback.evaluators.deferred)."""
    from feedback.evaluators.runner import traces_score_batch

    return traces_score_batch(trace_pks, defer=True)


@shared_task(bind=True, name="feedback.tasks.traces_ground", **SCORING_TASK_OPTIONS)
def traces_ground(self, trace_pks: list[int]) -> int:
    """Groundedness of these traces, queued by the scoring task (queue `grounding`).

    Gives way to the scoring queue: a worker serving both takes them in turn, so one
    slow grounding batch per cheap one would hold every trace's first scores back. While
    scoring messages wait, this one goes to the back of its queue, untouched, and the
    worker's next turn takes a scoring message. Returns the traces grounded (0 if it gave way).
    """
    from feedback.evaluators.deferred import give_way
    from feedback.evaluators.runner import traces_score_batch

    if give_way(self.app):
        traces_ground.apply_async((trace_pks,), queue="grounding")
        return 0
    return traces_score_batch(trace_pks, only={"groundedness"})


@shared_task(name="feedback.tasks.scoring_sweep", acks_late=True, ignore_result=True)
def scoring_sweep() -> int:
    """Beat, every minute: enqueue traces that were never scored (or changed since).

    Covers messages lost while the broker was down at ingest, and traces whose task
    died. Batches of SWEEP_BATCH keep one bad trace from holding many hostage.
    """
    from feedback.evaluators import deferred
    from feedback.evaluators.sweep import traces_awaiting_grounding, traces_needing_scoring

    return (_sweep_into("scoring", traces_needing_scoring, traces_score)
            + _sweep_into(deferred.QUEUE, traces_awaiting_grounding, traces_ground))


def _sweep_into(queue: str, find, task) -> int:
    """Send the traces `find()` returns to `task` in batches, unless `queue` still holds
    messages: then "not done yet" mostly means "not reached yet", and re-enqueueing would
    feed a backlog with copies of itself (seen in bench/e2e_scoring.py). Lost messages
    are caught once the queue has drained."""
    from feedback.evaluators import sweep

    backlog = sweep.queue_backlog(queue)
    if backlog:
        logger.info("%s sweep skipped: %d messages still queued", queue, backlog)
        return 0
    pks = find()
    for start in range(0, len(pks), SWEEP_BATCH):
        task.delay(pks[start : start + SWEEP_BATCH])
    return len(pks)


# --- implicit-feedback signals (queue `signals`) and the LLM judge (queue `scoring`) ----------
# Model and service imports are inside the tasks: importing this module (the worker
# does at start-up) must not need the app registry ready.

# A session batch of at most this many ids per message: one slow session never holds
# hundreds of others hostage behind it on a redelivery.
SESSIONS_PER_MESSAGE = 200


@shared_task(
    name="feedback.tasks.sessions_signals",
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def sessions_signals(project_id: int, session_ids: list[str]) -> int:
    """Recompute implicit signals of these sessions (idempotent upserts)."""
    from feedback.services import session_signals_compute
    from projects.models import Project

    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return 0  # deleted since the message was sent
    for session_id in session_ids:
        session_signals_compute(project=project, session_id=session_id)
    return len(session_ids)


@shared_task(name="feedback.tasks.sessions_close_idle", acks_late=True, ignore_result=True)
def sessions_close_idle() -> int:
    """Beat: recompute sessions that went idle, so their last answer's abandon is decided."""
    from feedback.services import sessions_due_for_close

    by_project: dict[int, list[str]] = defaultdict(list)
    for project_id, session_id in sessions_due_for_close():
        by_project[project_id].append(session_id)
    for project_id, session_ids in by_project.items():
        for start in range(0, len(session_ids), SESSIONS_PER_MESSAGE):
            sessions_signals.delay(project_id, session_ids[start : start + SESSIONS_PER_MESSAGE])
    return sum(len(s) for s in by_project.values())


@shared_task(
    name="feedback.tasks.traces_judge",
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
)
def traces_judge(project_id: int, trace_ids: list[str]) -> int:
    """LLM-as-judge verdicts for the sampled ones of these traces (skips existing ones)."""
    from feedback.judge import judge_traces
    from projects.models import Project

    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return 0
    return judge_traces(project=project, trace_ids=trace_ids).scores


def traces_followups_enqueue(trace_pks: list[int]) -> None:
    """After traces are stored (or scored): one `sessions_signals` message per project
    for the sessions those traces belong to, and one `traces_judge` message per project
    whose judge is enabled, with only the sampled traces.

    Called with the trace row ids of one ingest batch (an ingest batch is one project),
    so each batch becomes at most one signals message and one judge message.
    """
    from feedback.judge import judge_sampled
    from feedback.models import JudgeSettings
    from tracing.models import Trace

    sessions: dict[int, set[str]] = defaultdict(set)
    traces: dict[int, list[str]] = defaultdict(list)
    for project_id, trace_id, session_id in Trace.objects.filter(pk__in=trace_pks).values_list(
        "project_id", "trace_id", "session_id"
    ):
        traces[project_id].append(trace_id)
        if session_id:
            sessions[project_id].add(session_id)
    for project_id, session_ids in sessions.items():
        sessions_signals.delay(project_id, sorted(session_ids))
    judged = JudgeSettings.objects.filter(project_id__in=list(traces), enabled=True).values_list(
        "project_id", "sample_rate"
    )
    for project_id, rate in judged:
        sampled = [t for t in traces[project_id] if judge_sampled(t, rate)]
        if sampled:
            traces_judge.delay(project_id, sampled)
