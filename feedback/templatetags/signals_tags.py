"""Template helpers for templates/feedback/_signals.html: the evidence of implicit
signals, listed in the trace page's "Scores & feedback" section."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()

# Evidence keys shown as "why", in this order; the rest stays in the raw JSON.
_EVIDENCE_KEYS = (
    "detector", "phrase", "language", "message", "previous", "next", "cosine", "threshold", "distance",
    "similarity", "edited", "events", "values", "idle_minutes", "threshold_minutes", "last_activity",
)  # fmt: skip


@register.filter
def evidence_items(metadata: dict[str, Any] | None) -> list[tuple[str, Any]]:
    metadata = metadata or {}
    return [(key, metadata[key]) for key in _EVIDENCE_KEYS if metadata.get(key) not in (None, "", [])]
