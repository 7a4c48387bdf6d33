"""Reads for scores, feedback, comments and annotation queues. Every function is scoped
to a project (directly or through a queue that belongs to one)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q

# The trace list's filter builder: queues are "a trace filter, frozen", so they must
# mean exactly what the same filter means in the explorer and the API.
from projects.models import Project
from scores.models import Score, Source

# --- scores ---------------------------------------------------------------------------


# --- the trace page's panel -------------------------------------------------------------


# --- building queues ------------------------------------------------------------------


# --- queues ---------------------------------------------------------------------------


# --- implicit-feedback signals and judge verdicts on the trace page -------------------------


@dataclass(frozen=True)
class TraceSignals:
    signals: list[Score]
    judge: list[Score]


def trace_signals(*, project: Project, trace_id: str, scores: list[Score] | None = None) -> TraceSignals:
    """Implicit signals (with their evidence) and LLM-judge verdicts of one trace.

    Filters `scores` in memory when the caller already loaded the trace's scores.
    """
    if scores is None:
        scores = list(
            Score.objects.filter(project=project, trace_id=trace_id)
            .filter(Q(source=Source.IMPLICIT) | Q(source=Source.EVALUATOR, name__startswith="judge_"))
        )
    scores = sorted(
        (s for s in scores
         if s.source == Source.IMPLICIT or (s.source == Source.EVALUATOR and s.name.startswith("judge_"))),
        key=lambda s: (s.name, s.created_at),
    )
    return TraceSignals(
        signals=[s for s in scores if s.source == Source.IMPLICIT],
        judge=[s for s in scores if s.source == Source.EVALUATOR],
    )
