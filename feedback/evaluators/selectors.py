"""Reads for the trace page: a trace's evaluator scores with evidence and its status."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from feedback.models import Score, Source, TraceScoring


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
    hallucination = scores.get("hallucination")
    if hallucination is not None and output:
        result.output_segments = _segments(output, hallucination.metadata.get("unsupported", []))
    return result
