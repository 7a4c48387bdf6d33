"""`{% trace_evaluations trace as ev %}`: evaluator results for the include template,
so the trace page needs no change to its view to show them."""

from __future__ import annotations

from django import template

from evaluation.selectors import TraceEvaluations
from evaluation.selectors import trace_evaluations as _select

register = template.Library()


@register.simple_tag(takes_context=True)
def trace_evaluations(context, trace) -> TraceEvaluations:
    # The trace page has already loaded every score of the trace as `scores`.
    loaded = context.get("scores")
    return _select(project_id=trace.project_id, trace_id=trace.trace_id, output=trace.output or "",
                   scores=list(loaded) if loaded is not None else None)
