"""Formatting for the trace explorer: durations, money, token counts, JSON."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from django import template

register = template.Library()


@register.filter
def duration(ms: float | None) -> str:
    """850 ms, 1.25 s, 2m 05s — precise where it matters, short where it doesn't."""
    if ms is None:
        return "—"
    ms = float(ms)
    if ms < 1:
        return f"{ms:.2f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    minutes, seconds = divmod(int(ms // 1000), 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


@register.filter
def usd(value: Decimal | float | None) -> str:
    """$0.0123 with enough digits that a cheap call does not read as $0.00."""
    if value is None:
        return "—"
    value = float(value)
    if value == 0:
        return "$0"
    if value < 0.0001:
        return f"${value:.6f}"
    if value < 1:
        return f"${value:.4f}"
    return f"${value:,.2f}"


@register.filter
def tokens(value: int | None) -> str:
    """12,345 or 1.2M: a column of token counts stays narrow."""
    if value is None:
        return "—"
    value = int(value)
    if value >= 10_000_000:
        return f"{value / 1_000_000:.0f}M"
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    return f"{value:,}"


@register.filter
def pretty_json(value: Any) -> str:
    """Indented JSON (keys in stored order) for raw attributes, params and events."""
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str).decode()
    except TypeError:
        return repr(value)


@register.filter
def outcome(row: Any) -> str:
    """"error" for a trace (or span) that failed, "ok" for every other.

    The stored status is OTel's: UNSET unless the app set one, and instrumentations are
    told to leave it unset on success, so nearly every trace read "UNSET". A reader asks
    "did it fail?"; the stored value stays in the API, the `status` filter and the
    chip's tooltip. A trace is an error when any of its spans is (error_count > 0).
    """
    if getattr(row, "error_count", 0) or getattr(row, "status", None) == "error":
        return "error"
    return "ok"


@register.filter
def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


@register.filter
def is_multiline(value: Any) -> bool:
    return isinstance(value, str) and ("\n" in value or len(value) > 120)


@register.filter
def get_item(mapping: dict, key: Any) -> Any:
    return mapping.get(key) if mapping else None


@register.simple_tag(takes_context=True)
def query_with(context: template.Context, **changes: Any) -> str:
    """The current query string with some parameters replaced (None removes them).

    Keeps every filter, so sort links, pagination and "next trace" carry the view.
    """
    params = context["request"].GET.copy()
    for key, value in changes.items():
        params.pop(key, None)
        if value not in (None, ""):
            params[key] = value
    encoded = params.urlencode()
    return "?" + encoded if encoded else "?"


_TEXT_KEYS = ("content", "text", "question", "query", "input", "message", "prompt", "answer", "output")


def _message_text(message: Any) -> str | None:
    if isinstance(message, str):
        return message
    if isinstance(message, dict):
        content = message.get("content")
        if isinstance(content, list):  # [{"type": "text", "text": ...}, ...] parts
            parts = [p.get("text") or p.get("content") for p in content if isinstance(p, dict)]
            return "\n".join(p for p in parts if isinstance(p, str)) or None
        for key in _TEXT_KEYS:
            if isinstance(message.get(key), str):
                return message[key]
    return None


@register.filter
def turn_text(value: str | None, role: str = "user") -> str:
    """What a person said (input) or was told (output) in one trace of a conversation.

    Instrumentations store inputs as plain text, as a chat message list, or as a
    function's arguments ({"args": [...], "kwargs": {...}}); pull the human-readable
    text out of the common shapes and fall back to the raw value.
    """
    if not value:
        return ""
    text = value.strip()
    if text[:1] not in ("[", "{", '"') or len(text) > 200_000:
        return value
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return value
    if isinstance(data, str):
        return data
    if isinstance(data, dict) and isinstance(data.get("messages"), list):
        data = data["messages"]
    if isinstance(data, dict) and isinstance(data.get("args"), list) and data["args"]:
        return _message_text(data["args"][0]) or value
    if isinstance(data, list):
        wanted = [m for m in data if isinstance(m, dict) and m.get("role") == role]
        found = _message_text((wanted or data)[-1]) if (wanted or data) else None
        return found or value
    return _message_text(data) or value


@register.filter
def is_text(value: Any) -> bool:
    return isinstance(value, str)
