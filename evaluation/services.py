"""Writes of the evaluation app that are not scores themselves: what happens when
traces change (score them, send the sampled ones to the LLM judge) and re-scoring.

The scores are written by evaluation/runner.py (evaluators) and evaluation/judge.py.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime

from django.db.models import Q

from evaluation.judge import judge_sampled
from evaluation.models import JudgeSettings
from projects.models import Project
from tracing import signals
from tracing.models import Trace
from tracing.services import traces_changed_announce

logger = logging.getLogger(__name__)

# One click re-scores at most this many traces; more is a job for `score_backfill`,
# which shows progress in a terminal.
RESCORE_LIMIT = 100_000
RESCORE_BATCH = 50


def traces_changed_received(sender, *, project_id: int, trace_pks: list[int], reason: str, **kwargs) -> None:
    """tracing.signals.traces_changed: score the traces and judge the sampled ones.

    Cheap evaluators: the traces join their project's place in the fair queue and a
    `scoring_drain` message wakes a worker (groundedness follows on its own queue). A
    re-score goes to the `default` queue so that a big one shares the worker with fresh
    traces instead of parking them behind thousands of old ones. `score_backfill` has
    already run the evaluators in-process, so only the judge is left to do.
    """
    from evaluation.fair_queue import traces_enqueue
    from evaluation.tasks import scoring_drain, traces_score

    if reason == signals.RESCORE:
        traces_score.apply_async((trace_pks,), queue="default")
    elif reason != signals.BACKFILL:
        traces_enqueue(project_id=project_id, trace_pks=trace_pks)
        scoring_drain.delay()
    judge_enqueue(project_id=project_id, trace_pks=trace_pks)


def judge_enqueue(*, project_id: int, trace_pks: list[int]) -> int:
    """Send the traces the project's judge samples to the `judge` queue; returns how many."""
    from evaluation.tasks import traces_judge

    rate = (
        JudgeSettings.objects.filter(project_id=project_id, enabled=True).values_list("sample_rate", flat=True).first()
    )
    if rate is None:
        return 0
    trace_ids = Trace.objects.filter(project_id=project_id, pk__in=trace_pks).values_list("trace_id", flat=True)
    sampled = sorted(t for t in trace_ids if judge_sampled(t, rate))
    if sampled:
        traces_judge.delay(project_id, sampled)
    return len(sampled)


def traces_recovered_announce(trace_pks: list[int]) -> None:
    """The sweep found these traces unscored: announce them per project, as ingest does."""
    by_project: dict[int, list[int]] = defaultdict(list)
    for pk, project_id in Trace.objects.filter(pk__in=trace_pks).values_list("pk", "project_id"):
        by_project[project_id].append(pk)
    for project_id, pks in by_project.items():
        traces_changed_announce(project_id=project_id, trace_pks=pks, reason=signals.SWEEP)


def project_rescore_start(*, project: Project, since: datetime) -> int:
    """Queue a re-score of `project`'s traces started at or after `since`; returns how
    many traces it will cover (at most RESCORE_LIMIT, newest first)."""
    from evaluation.tasks import project_rescore

    count = Trace.objects.filter(project=project, start_time__gte=since)[:RESCORE_LIMIT].count()
    if count:
        project_rescore.delay(project.pk, since.isoformat())
    return count


def project_rescore_run(*, project: Project, since: datetime) -> int:
    """Announce the traces for re-scoring in batches, newest first, paging by keyset
    (start_time, id) so neither memory nor a message grows with the project."""
    done = 0
    after: tuple[datetime, int] | None = None
    base = Trace.objects.filter(project=project, start_time__gte=since).order_by("-start_time", "-id")
    while done < RESCORE_LIMIT:
        page = base
        if after is not None:
            page = page.filter(Q(start_time__lt=after[0]) | Q(start_time=after[0], id__lt=after[1]))
        rows = list(page.values_list("pk", "start_time")[: min(RESCORE_BATCH, RESCORE_LIMIT - done)])
        if not rows:
            break
        traces_changed_announce(project_id=project.pk, trace_pks=[pk for pk, _ in rows], reason=signals.RESCORE)
        done += len(rows)
        after = (rows[-1][1], rows[-1][0])
    logger.info("re-score of project %s: %d traces announced", project.pk, done)
    return done
