"""Bounds on one span's data, applied before mapping so every derived field is bounded too.

An oversized attribute (a 20 MB `input.value`) is cut with a marker rather than refused:
the rest of the span is worth keeping, and the client must not retry a batch forever.
The marker says how much was cut, so nobody mistakes a truncated prompt for the real one.

A value that is JSON text (`gen_ai.input.messages`, OpenInference's JSON `input.value`)
stays JSON: its longest strings are cut, each with the marker, until the whole fits, so
the messages are still read from it. Cut at a character count, it would no longer parse
and every message in it would be lost.

Bounding is idempotent (a value already cut is left alone), and counts what it changed
so that the receiver can tell the client (OTLP partial success with a warning).
"""

from __future__ import annotations

import re
from itertools import islice
from typing import Any

import orjson
from django.conf import settings

from tracing.otlp.types import RawLogRecord, RawSpan

DROPPED_ATTRIBUTES = "spyglass.dropped_attributes_count"
DROPPED_EVENTS = "spyglass.dropped_events_count"
_OWN_KEYS = (DROPPED_ATTRIBUTES, DROPPED_EVENTS)
# Attribute keys are names, not content: a longer one is cut (a 2 MB key was stored whole).
MAX_KEY_CHARS = 1024
_MARKER = re.compile(r"…\[truncated by Spyglass: [\d,]+ characters, kept [\d,]+\]")
_MARKER_MAX = 80  # longest marker (two 12-digit counts), for the JSON size estimate
# Below this many characters per string, cutting a JSON document's strings keeps too
# little of each to be worth its structure: the text is cut like any other.
_MIN_JSON_STRING_CHARS = 100


def truncation_marker(original: int, kept: int) -> str:
    return f"…[truncated by Spyglass: {original:,} characters, kept {kept:,}]"


def _cut(text: str, keep: int) -> str:
    return text[:keep] + truncation_marker(len(text), keep)


def _is_cut(text: str, keep: int) -> bool:
    return _MARKER.fullmatch(text, keep) is not None


def _strings(value: Any) -> list[str]:
    found: list[str] = []
    stack = [value]
    while stack:  # iterative: JSON may nest a thousand levels deep
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return found


def _cut_strings(value: Any, keep: int) -> Any:
    if isinstance(value, str):
        return _cut(value, keep) if len(value) > keep else value
    if isinstance(value, list):
        return [_cut_strings(item, keep) for item in value]
    if isinstance(value, dict):
        return {key: _cut_strings(item, keep) for key, item in value.items()}
    return value


class Bounds:
    def __init__(self) -> None:
        self.chars = settings.SPYGLASS_MAX_ATTRIBUTE_CHARS
        self.attributes = settings.SPYGLASS_MAX_SPAN_ATTRIBUTES
        self.events = settings.SPYGLASS_MAX_SPAN_EVENTS
        self.cut_values = 0
        self.cut_keys = 0
        self.dropped_attributes = 0
        self.dropped_events = 0

    def text(self, value: str) -> str:
        if len(value) <= self.chars or _is_cut(value, self.chars):
            return value
        self.cut_values += 1
        if value[:1] in "[{" and (shrunk := self._json_text(value)) is not None:
            return shrunk
        return _cut(value, self.chars)

    def _json_text(self, value: str) -> str | None:
        """JSON text over the limit with its longest strings cut so the whole fits, or
        None when it is not JSON (or too much of it is structure rather than text)."""
        try:
            document = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(document, dict | list):
            return None
        lengths = sorted((len(s) for s in _strings(document)), reverse=True)
        excess = len(value) - self.chars

        def saved(keep: int) -> int:  # characters saved by cutting every string to `keep`
            total = 0
            for length in lengths:
                if length <= keep:
                    break
                total += length - keep - _MARKER_MAX
            return total

        low, high = 0, lengths[0] if lengths else 0  # the largest `keep` that saves enough
        while low < high:
            middle = (low + high + 1) // 2
            if saved(middle) >= excess:
                low = middle
            else:
                high = middle - 1
        if low < _MIN_JSON_STRING_CHARS or saved(low) < excess:
            return None
        try:
            shrunk = orjson.dumps(_cut_strings(document, low)).decode()
        except (RecursionError, TypeError):
            return None
        return shrunk if len(shrunk) <= self.chars else None

    def key(self, key: str) -> str:
        if len(key) <= MAX_KEY_CHARS or _is_cut(key, MAX_KEY_CHARS):
            return key
        self.cut_keys += 1
        return _cut(key, MAX_KEY_CHARS)

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(item) for item in islice(value, self.attributes)]
        if isinstance(value, dict):
            return {self.key(key): self.value(item) for key, item in islice(value.items(), self.attributes)}
        return value

    def attributes_of(self, attributes: dict[str, Any]) -> dict[str, Any]:
        """The first `attributes` entries (clients send the important keys first in practice),
        with how many were dropped recorded beside them. Our own counters are set aside
        first, so that bounding twice neither drops nor overwrites them."""
        own = {key: attributes[key] for key in _OWN_KEYS if key in attributes}
        source = {k: v for k, v in attributes.items() if k not in own} if own else attributes
        bounded = self.value(source)
        dropped = len(source) - len(bounded)  # past the count, or keys that collided once cut
        bounded.update(own)
        if dropped > 0:
            previous = own.get(DROPPED_ATTRIBUTES)
            bounded[DROPPED_ATTRIBUTES] = dropped + (previous if type(previous) is int else 0)
            self.dropped_attributes += dropped
        return bounded

    def span(self, raw: RawSpan) -> None:
        raw.name = self.value(raw.name)
        if raw.status_message:
            raw.status_message = self.value(raw.status_message)
        raw.attributes = self.attributes_of(raw.attributes)
        raw.resource = self.attributes_of(raw.resource)
        if len(raw.events) > self.events:
            raw.attributes[DROPPED_EVENTS] = len(raw.events) - self.events
            self.dropped_events += len(raw.events) - self.events
            raw.events = raw.events[: self.events]
        for event in raw.events:
            event.name = self.value(event.name)
            event.attributes = self.attributes_of(event.attributes)

    def log_record(self, record: RawLogRecord) -> None:
        record.body = self.value(record.body)
        record.attributes = self.attributes_of(record.attributes)
        record.resource = self.attributes_of(record.resource)

    def notes(self) -> list[str]:
        """What was cut or dropped, for the client (empty when nothing was)."""
        notes = []
        if self.cut_values:
            notes.append(f"{self.cut_values:,} value(s) longer than {self.chars:,} characters were truncated "
                         "(marked '…[truncated by Spyglass: …]')")
        if self.cut_keys:
            notes.append(f"{self.cut_keys:,} attribute key(s) longer than {MAX_KEY_CHARS:,} characters were "
                         "truncated")
        if self.dropped_attributes:
            notes.append(f"{self.dropped_attributes:,} attribute(s) beyond {self.attributes:,} per span, event or "
                         f"resource were dropped (counted in {DROPPED_ATTRIBUTES})")
        if self.dropped_events:
            notes.append(f"{self.dropped_events:,} event(s) beyond {self.events:,} per span were dropped "
                         f"(counted in {DROPPED_EVENTS})")
        return notes
