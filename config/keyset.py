"""Opaque keyset-pagination cursors shared by every list (API and pages).

A cursor is the sort key of the last row of a page, packed as URL-safe base64 of
`part:part`. Callers give the regular expression the decoded text must match, so a
cursor from another list (or a hand-edited one) is refused with one clear error instead
of silently paging from the wrong place.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NOT_A_CURSOR = "not a cursor returned by this API"


def cursor_encode(*parts: object) -> str:
    raw = ":".join(str(part) for part in parts).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_decode(token: str, pattern: str) -> tuple[str, ...]:
    """The groups of `pattern` matched against the decoded cursor; ValueError otherwise."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError(NOT_A_CURSOR) from None
    match = re.fullmatch(pattern, raw)
    if not match:
        raise ValueError(NOT_A_CURSOR)
    return match.groups()


def micros_from_datetime(value: datetime) -> int:
    # Integer microseconds are exact for Postgres timestamptz; an ISO string would
    # round-trip too, but is longer and invites clients to parse it.
    return (value - _EPOCH) // timedelta(microseconds=1)


def datetime_from_micros(text: str) -> datetime:
    try:
        return _EPOCH + timedelta(microseconds=int(text))
    except OverflowError:
        raise ValueError(NOT_A_CURSOR) from None


# Building blocks for patterns.
MICROS = r"(-?\d{1,19})"
BIGINT_ID = r"(\d{1,19})"
