"""API pieces for referring to traces, shared by every app's API."""

from __future__ import annotations

import re

from rest_framework import serializers

_TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")


def normalize_trace_id(value: str) -> str:
    """The lowercase hex id stored for a trace; ValidationError unless 32 hex characters."""
    if not _TRACE_ID.fullmatch(value):
        shown = value if len(value) <= 64 else value[:64] + "..."
        raise serializers.ValidationError({"trace_id": [f"expected 32 hex characters, got {shown!r}"]})
    return value.lower()


_SPAN_ID = re.compile(r"[0-9a-fA-F]{16}")


def normalize_span_id(value: str | None) -> str | None:
    """The lowercase hex id of a span, None for none; ValidationError unless 16 hex characters."""
    if value in (None, ""):
        return None
    if not _SPAN_ID.fullmatch(value):
        raise serializers.ValidationError({"span_id": [f"expected 16 hex characters, got {value[:40]!r}"]})
    return value.lower()
