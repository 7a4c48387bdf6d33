"""Reads for the trace page: a trace's evaluator scores with evidence and its status."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, F, Max, OuterRef, Q, Subquery

from evaluation.deferred import NOT_SAMPLED, NOTE_QUEUED, SKIPPED
from evaluation.models import TraceScoring
from scores import names
from scores.models import Score, Source
from tracing.models import Trace


@dataclass
class TraceEvaluations:
    status: str  # pending | scored | failed
    error: str = ""
    scored_at: Any = None
    notes: dict[str, str] = field(default_factory=dict)
    scores: dict[str, Score] = field(default_factory=dict)
    # The output cut into [(text, unsupported?)] so the template can highlight it.
    output_segments: list[tuple[str, bool]] = field(default_factory=list)


def _segments(output: str, unsupported: list[dict]) -> list[tuple[str, bool]]:
    spans = sorted((u["start"], u["end"]) for u in unsupported if 0 <= u.get("start", -1) < u.get("end", -1))
    out, pos = [], 0
    for start, end in spans:
        if start < pos:
            continue
        if start > pos:
            out.append((output[pos:start], False))
        out.append((output[start:end], True))
        pos = end
    if pos < len(output):
        out.append((output[pos:], False))
    return out


def trace_evaluations(
    *, project_id: int, trace_id: str, output: str = "", scores: list[Score] | None = None
) -> TraceEvaluations:
    """Status and evaluator scores of one trace; pass `scores` when the page already
    loaded the trace's scores, to save a query."""
    row = TraceScoring.objects.filter(project_id=project_id, trace_id=trace_id).first()
    if scores is None:
        scores = list(Score.objects.filter(project_id=project_id, trace_id=trace_id, source=Source.EVALUATOR))
    scores = {s.name: s for s in scores if s.source == Source.EVALUATOR and s.span_id is None}
    result = TraceEvaluations(status=row.status if row else "pending", scores=scores)
    if row is not None:
        result.error, result.scored_at, result.notes = row.error, row.scored_at, row.notes
    hallucination = scores.get(names.HALLUCINATION.name)
    if hallucination is not None and output:
        result.output_segments = _segments(output, hallucination.metadata.get("unsupported", []))
    return result


@dataclass
class ScoringHealth:
    """How far scoring has got with one project's recent traces (the settings page)."""

    traces: int
    scored: int
    failed: int
    pending: int
    last_error: str = ""
    last_scored_at: Any = None
    # Groundedness outcomes without a score (feedback/evaluators/deferred.py).
    grounding_queued: int = 0
    grounding_not_sampled: int = 0
    grounding_skipped: int = 0


def project_scoring_health(*, project_id: int, since) -> ScoringHealth:
    """Counts of traces started since `since` by scoring status (four small queries).

    A trace counts as pending when it has no result yet or changed after its last one
    (more spans arrived), the same rule the sweep uses.
    """
    status = TraceScoring.objects.filter(project_id=project_id, trace_id=OuterRef("trace_id"))
    counts = (
        Trace.objects.filter(project_id=project_id, start_time__gte=since)
        .annotate(s=Subquery(status.values("status")[:1]), at=Subquery(status.values("trace_updated_at")[:1]))
        .aggregate(
            traces=Count("id"),
            scored=Count("id", filter=Q(s="scored", at__gte=F("updated_at"))),
            failed=Count("id", filter=Q(s="failed", at__gte=F("updated_at"))),
        )
    )
    latest = (
        TraceScoring.objects.filter(project_id=project_id).aggregate(at=Max("scored_at"))["at"]
    )
    failed = (
        TraceScoring.objects.filter(project_id=project_id, status="failed").order_by("-scored_at")
        .values_list("error", flat=True).first()
    )
    grounding = TraceScoring.objects.filter(project_id=project_id, scored_at__gte=since).aggregate(
        queued=Count("id", filter=Q(notes__groundedness=NOTE_QUEUED)),
        not_sampled=Count("id", filter=Q(notes__groundedness__startswith=NOT_SAMPLED)),
        skipped=Count("id", filter=Q(notes__groundedness__startswith=SKIPPED)),
    )
    return ScoringHealth(
        traces=counts["traces"], scored=counts["scored"], failed=counts["failed"],
        pending=counts["traces"] - counts["scored"] - counts["failed"],
        last_error=(failed or "")[:500], last_scored_at=latest, grounding_queued=grounding["queued"],
        grounding_not_sampled=grounding["not_sampled"], grounding_skipped=grounding["skipped"],
    )
