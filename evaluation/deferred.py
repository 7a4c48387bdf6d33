"""Groundedness runs in a task of its own, on the `grounding` queue.

Why: it is the most expensive evaluator (a MiniLM pass over every context sentence of
every trace: ~155 ms a RAG trace against ~103 ms for all the others together in
bench/e2e_scoring.py, and 1.8 s before head 3), so inside the scoring task it held the
cheap scores of every trace behind it; at high ingest rates they arrived minutes late. Now the scoring task writes
the cheap scores at once and, per trace, decides what happens to groundedness:

- nothing to check (no answer or no context): the note is written inline, no model runs;
- outside the project's `sample_rate`: a "not sampled" note (deterministic by trace id,
  as the LLM judge samples), so the share that was checked is visible, never implied;
- the grounding queue already holds SPYGLASS_GROUNDING_MAX_BACKLOG messages: a "skipped"
  note instead of a backlog that grows without bound and serves hour-old results;
- otherwise "queued": the `traces_ground` task replaces the note with the score. The
  sweep re-sends traces whose note stays "queued" (a message lost with the broker).
"""

from __future__ import annotations

import logging

from django.conf import settings

from evaluation.evaluators.base import EvalResult, TraceTexts
from evaluation.sampling import trace_sampled

logger = logging.getLogger(__name__)

QUEUE = "grounding"
EVALUATOR = "groundedness"
NOTE_QUEUED = "queued for the grounding worker"
# How the other notes start (the settings page counts them).
NOT_SAMPLED = "not sampled"
SKIPPED = "skipped"


def has_work(t: TraceTexts) -> bool:
    """Whether groundedness would run the model on this trace (an answer and a context)."""
    return bool(t.output.strip()) and any(c.strip() for c in t.context)


def not_sampled_note(rate: float) -> str:
    return f"{NOT_SAMPLED}: {rate:.0%} of traces are checked"


def skipped_note(limit: int) -> str:
    return f"{SKIPPED}: {limit} batches were already waiting for the grounding worker"


def queue_full() -> bool:
    """Whether the grounding queue is at its limit (False when the broker can't tell)."""
    from evaluation.sweep import queue_backlog

    limit = settings.SPYGLASS_GROUNDING_MAX_BACKLOG
    if limit <= 0:
        return False
    backlog = queue_backlog(QUEUE)
    return backlog is not None and backlog >= limit


def give_way(app) -> bool:
    """Whether a grounding task should step back: this worker also serves the scoring
    queue and messages wait there (the cheap scores of new traces come first). A worker
    started for `grounding` alone has nobody to give way to; a broker that can't tell
    gets no deference."""
    from evaluation.sweep import scoring_backlog

    if "scoring" not in (app.amqp.queues.consume_from or {}):
        return False
    return bool(scoring_backlog())


def plan(texts: list[TraceTexts], config: dict, *, defer: bool) -> tuple[dict[str, EvalResult], list[str]]:
    """Outcomes decided without the model, by trace id, and the trace ids to queue.

    Traces in neither run groundedness inline (in this task). A queued or skipped trace
    keeps its previous score until the grounding task writes a new one (`keep_previous`).
    """
    rate = float(config.get("sample_rate", 1.0))
    decided: dict[str, EvalResult] = {}
    queued: list[str] = []
    full: bool | None = None  # asked of the broker once per batch, and only if needed
    for t in texts:
        if not has_work(t):
            continue
        if not trace_sampled(t.trace_id, rate):
            decided[t.trace_id] = EvalResult(note=not_sampled_note(rate))
        elif defer:
            full = queue_full() if full is None else full
            if full:
                decided[t.trace_id] = EvalResult(note=skipped_note(settings.SPYGLASS_GROUNDING_MAX_BACKLOG),
                                                 keep_previous=True)
            else:
                decided[t.trace_id] = EvalResult(note=NOTE_QUEUED, keep_previous=True)
                queued.append(t.trace_id)
    if full:
        logger.warning("grounding queue at its limit: groundedness skipped for %d traces",
                       sum(1 for r in decided.values() if r.note.startswith(SKIPPED)))
    return decided, queued


def enqueue(trace_pks: list[int]) -> None:
    """Send `trace_pks` to the grounding task; a broker error is left to the sweep."""
    from kombu.exceptions import OperationalError

    from evaluation.tasks import SWEEP_BATCH, traces_ground

    try:
        for start in range(0, len(trace_pks), SWEEP_BATCH):
            traces_ground.delay(trace_pks[start : start + SWEEP_BATCH])
    except (OperationalError, OSError):
        logger.warning("could not queue groundedness for %d traces; the sweep will resend them", len(trace_pks))
