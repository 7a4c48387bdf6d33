"""Formatting of estimates and intervals for the prompt pages."""

from __future__ import annotations

from django import template
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from prompts.stats import Estimate

register = template.Library()


def _no_data() -> str:
    return mark_safe('<span class="muted">no data</span>')  # constant markup, nothing interpolated


@register.filter
def rate_ci(estimate: Estimate | None) -> str:
    """72.0% with "[65.1–78.0] n=120" beneath; "no data" when there is none."""
    if estimate is None or not estimate.has_data:
        return _no_data()
    return format_html(
        '{}%<br><small class="ci" title="95% Wilson interval; n = observations">[{}–{}] n={}</small>',
        f"{100 * estimate.value:.1f}",
        f"{100 * estimate.low:.1f}",
        f"{100 * estimate.high:.1f}",
        f"{estimate.n:,}",
    )


@register.filter
def mean_ci(estimate: Estimate | None, digits: int = 1) -> str:
    """Mean with its t interval beneath; digits as the filter argument."""
    if estimate is None or not estimate.has_data:
        return _no_data()
    digits = int(digits)
    value = f"{estimate.value:,.{digits}f}"
    if estimate.low is None:
        return format_html('{}<br><small class="ci">n={}</small>', value, estimate.n)
    return format_html(
        '{}<br><small class="ci" title="95% t interval; n = observations">[{}–{}] n={}</small>',
        value,
        f"{estimate.low:,.{digits}f}",
        f"{estimate.high:,.{digits}f}",
        f"{estimate.n:,}",
    )


@register.filter
def number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return _no_data()
    return f"{value:,.{int(digits)}f}"


@register.filter
def signed(value: float | None, digits: int = 1) -> str:
    if value is None:
        return ""
    return f"{value:+,.{int(digits)}f}"
