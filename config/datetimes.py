"""The one parser of datetimes given by users: query strings (the trace filter, metrics,
slices, drift, scores, dashboards, exports) and the API fields declared as ISO-8601.

Every datetime a user gives goes through `parse_user_datetime`, so all endpoints agree
on what they accept and none can hand PostgreSQL a value it refuses (a 500):

- ISO 8601 / RFC 3339, or a plain date, or the browser's datetime-local
  ("2025-03-01T12:00"); naive values mean UTC.
- Any UTC offset Python reads (RFC 3339 allows hours 00-23) is honoured and the value
  is converted to UTC here. PostgreSQL refuses offsets beyond ±15:59 in a literal, so
  an aware value passed through unchanged was a 500 (`to=2026-01-01T00:00:00-20:13`).
- Only instants from EARLIEST to LATEST are accepted. Spans can only carry times from
  1970 on (OTLP's unsigned nanoseconds), so the bounds lose nothing; they leave room
  for window arithmetic ("7 days before `to`", "28 days before `from`"), which near
  year 1 or 9999 overflowed Python's datetime (another 500).

Errors are ValueError with a message that quotes the value; callers add the parameter.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)  # exclusive

# "2025-01-31T10:00:00+02:00" typed unencoded into a URL arrives with a space instead of
# "+" (form decoding): restore it rather than reject a time the user wrote right.
_SPACE_FOR_PLUS = re.compile(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}(?::?\d{2})?)$")
# fromisoformat is lenient about what it reads, not about how much: a 10 MB value is
# refused before parsing (the longest ISO form with fractions and offset is ~35 chars).
_MAX_LENGTH = 64

EXAMPLE = "e.g. 2025-01-31T09:30:00Z, 2025-01-31T09:30:00+02:00 or 2025-01-31"


def parse_user_datetime(text: str) -> datetime:
    """An aware UTC datetime from `text`, or ValueError saying what is wrong with it."""
    value = text.strip()
    if len(value) > _MAX_LENGTH:
        raise ValueError(f"not an ISO-8601 datetime ({EXAMPLE}): {text[:_MAX_LENGTH]!r}…")
    value = _SPACE_FOR_PLUS.sub(r"\1+\2", value)
    if "T" not in value and " " in value:
        value = value.replace(" ", "T", 1)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not an ISO-8601 datetime ({EXAMPLE}): {text!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+05:00 is before year 1 in UTC
        parsed = None
    if parsed is None or not EARLIEST <= parsed < LATEST:
        raise ValueError(
            f"{text!r} is out of range: give a time from {EARLIEST:%Y-%m-%d} up to {LATEST:%Y-%m-%d} (UTC)"
        )
    return parsed
