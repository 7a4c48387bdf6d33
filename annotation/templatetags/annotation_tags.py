"""Template helpers for the annotation panel that other apps' pages include.

The trace page (tracing app) includes templates/annotation/_trace_panel.html with only
`access` and `trace` in its context; the panel loads its own data through
`trace_feedback`, so the tracing view does not need to know about feedback.
"""

from __future__ import annotations

from typing import Any

from django import template

from annotation import selectors

register = template.Library()


@register.simple_tag(takes_context=True)
def trace_feedback(context: template.Context, access: Any, trace: Any) -> selectors.TraceFeedback:
    request = context.get("request")
    user = getattr(request, "user", None) if request is not None else None
    # The trace page has already loaded the trace's scores; reuse them instead of a query.
    return selectors.trace_feedback(
        project=access.project, trace_id=trace.trace_id, user=user, scores=context.get("scores")
    )


@register.simple_tag
def my_value(fb: selectors.TraceFeedback, config: Any, span_id: str | None = None) -> str:
    return fb.my_value(config, span_id) or ""


@register.filter
def can(access: Any, role: str) -> bool:
    return bool(access) and access.can(role)
