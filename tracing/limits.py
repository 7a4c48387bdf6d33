"""Bounds on one span's data, applied before mapping so every derived field is bounded too.

An oversized attribute (a 20 MB `input.value`) is cut with a marker rather than refused:
the rest of the span is worth keeping, and the client must not retry a batch forever.
The marker says how much was cut, so nobody mistakes a truncated prompt for the real one.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

from django.conf import settings

from tracing.otlp.types import RawLogRecord, RawSpan

DROPPED_ATTRIBUTES = "spyglass.dropped_attributes_count"
DROPPED_EVENTS = "spyglass.dropped_events_count"


def truncation_marker(original: int, kept: int) -> str:
    return f"…[truncated by Spyglass: {original:,} characters, kept {kept:,}]"


class Bounds:
    def __init__(self) -> None:
        self.chars = settings.SPYGLASS_MAX_ATTRIBUTE_CHARS
        self.attributes = settings.SPYGLASS_MAX_SPAN_ATTRIBUTES
        self.events = settings.SPYGLASS_MAX_SPAN_EVENTS

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            if len(value) > self.chars:
                return value[: self.chars] + truncation_marker(len(value), self.chars)
            return value
        if isinstance(value, list):
            return [self.value(item) for item in islice(value, self.attributes)]
        if isinstance(value, dict):
            return {key: self.value(item) for key, item in islice(value.items(), self.attributes)}
        return value

    def attributes_of(self, attributes: dict[str, Any]) -> dict[str, Any]:
        """The first `attributes` entries (clients send the important keys first in practice),
        with how many were dropped recorded beside them."""
        bounded = self.value(attributes)
        dropped = len(attributes) - len(bounded)
        if dropped > 0:
            bounded[DROPPED_ATTRIBUTES] = dropped
        return bounded

    def span(self, raw: RawSpan) -> None:
        raw.name = self.value(raw.name)
        if raw.status_message:
            raw.status_message = self.value(raw.status_message)
        raw.attributes = self.attributes_of(raw.attributes)
        raw.resource = self.attributes_of(raw.resource)
        if len(raw.events) > self.events:
            raw.attributes[DROPPED_EVENTS] = len(raw.events) - self.events
            raw.events = raw.events[: self.events]
        for event in raw.events:
            event.name = self.value(event.name)
            event.attributes = self.attributes_of(event.attributes)

    def log_record(self, record: RawLogRecord) -> None:
        record.body = self.value(record.body)
        record.attributes = self.attributes_of(record.attributes)
        record.resource = self.attributes_of(record.resource)
