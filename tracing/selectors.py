"""Reads of single traces and spans that other apps need (the explorer's richer
queries live in explorer/selectors.py)."""

from __future__ import annotations

from config.errors import NotFound
from projects.models import Project
from tracing.models import MaskingSettings, Span, Trace


def trace_get(*, project: Project, trace_id: str) -> Trace | None:
    """One trace header (no input/output), or None."""
    return Trace.objects.filter(project=project, trace_id=trace_id).defer("input", "output").first()


def span_get(*, project: Project, trace_id: str, span_id: str) -> Span:
    """One span of a trace (index span_unique_otel_id); NotFound otherwise."""
    span = Span.objects.filter(project=project, trace_id=trace_id, span_id=span_id).first()
    if span is None:
        raise NotFound(f"No span {span_id} in trace {trace_id}.")
    return span


def masking_settings_get(*, project: Project) -> dict:
    """What the project masks at ingest: {"kinds", "custom", "default"}; `default` is true
    while the project has never saved its own choice (DEFAULT_KINDS apply)."""
    from tracing.masking import DEFAULT_KINDS

    row = MaskingSettings.objects.filter(project=project).first()
    if row is None:
        return {"kinds": list(DEFAULT_KINDS), "custom": [], "default": True}
    return {"kinds": list(row.kinds), "custom": list(row.custom), "default": False}
