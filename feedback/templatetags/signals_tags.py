"""Template helpers for templates/feedback/_signals.html (included by the trace page).

Like the annotation panel, the include loads its own data from `access` and `trace`, so
the tracing app's view needs no knowledge of signals.
"""

from __future__ import annotations

from typing import Any

from django import template

from feedback import selectors

register = template.Library()

# Evidence keys shown as "why", in this order; the rest stays in the raw JSON.
_EVIDENCE_KEYS = (
    "detector", "phrase", "language", "message", "previous", "next", "cosine", "threshold", "distance",
    "similarity", "edited", "events", "values", "idle_minutes", "threshold_minutes", "last_activity",
)  # fmt: skip


@register.simple_tag(takes_context=True)
def trace_signals(context: Any, access: Any, trace: Any) -> selectors.TraceSignals:
    # Reuse the scores the trace page already loaded, when it did.
    return selectors.trace_signals(project=access.project, trace_id=trace.trace_id, scores=context.get("scores"))


@register.filter
def evidence_items(metadata: dict[str, Any] | None) -> list[tuple[str, Any]]:
    metadata = metadata or {}
    return [(key, metadata[key]) for key in _EVIDENCE_KEYS if metadata.get(key) not in (None, "", [])]
