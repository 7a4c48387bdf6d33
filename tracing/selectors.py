"""Reads for traces and spans. Every function takes the project and scopes by it."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Q, QuerySet
from django.db.models.functions import Left

from config.errors import NotFound
from projects.models import Project
from tracing.models import Span, Trace

# How much of a trace's input/output the list returns. One character more is fetched so
# the serializer can tell a truncated preview from a value that happens to fit.
PREVIEW_CHARS = 500

LIST_LIMIT_DEFAULT = 50
LIST_LIMIT_MAX = 500

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A JSON number exactly as JSON spells it; Python's int()/float() would also accept
# "1_000", "nan" or " 7 ", none of which jsonb could ever contain.
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")


@dataclass(frozen=True)
class TraceFilters:
    """Validated filters of the trace list; None / empty means "don't filter"."""

    start_from: datetime | None = None  # inclusive
    start_to: datetime | None = None  # exclusive
    session_id: str | None = None
    user_id: str | None = None
    model: str | None = None
    environment: str | None = None
    status: str | None = None
    name: str | None = None
    tags: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TraceCursor:
    """Position after the last row of a page, in (start_time desc, id desc) order."""

    start_time: datetime
    id: int

    def encode(self) -> str:
        # Integer microseconds are exact for Postgres timestamptz; an ISO string would
        # round-trip too, but is longer and invites clients to parse it.
        micros = (self.start_time - _EPOCH) // timedelta(microseconds=1)
        raw = f"{micros}:{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> TraceCursor:
        """Parse a cursor made by `encode`; ValueError for anything else."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise ValueError("not a cursor returned by this API") from None
        micros, sep, pk = raw.partition(":")
        if not sep or not re.fullmatch(r"-?\d{1,19}", micros) or not re.fullmatch(r"\d{1,19}", pk):
            raise ValueError("not a cursor returned by this API")
        try:
            start_time = _EPOCH + timedelta(microseconds=int(micros))
        except OverflowError:
            raise ValueError("not a cursor returned by this API") from None
        return cls(start_time=start_time, id=int(pk))


@dataclass(frozen=True)
class TracePage:
    traces: list[Trace]
    next_cursor: str | None


@dataclass(frozen=True)
class TraceDetail:
    trace: Trace
    spans: list[Span]
    scores: list[Any]


def metadata_candidates(value: str) -> list[Any]:
    """The JSON values a `metadata.<key>=<value>` query string may stand for.

    Query strings carry only text, while metadata values are typed JSON: `?metadata.
    retries=3` should find {"retries": 3} as well as {"retries": "3"}. The string always
    matches; a JSON number also matches as that number, `true`/`false` as booleans.
    `null` matches only the string "null", so a typo can't turn into "key is missing".
    """
    candidates: list[Any] = [value]
    if _JSON_NUMBER.fullmatch(value):
        number = float(value)
        # jsonb compares numbers by value (3 = 3.0), but keep ints as ints so huge
        # integers are not rounded through a float.
        candidates.append(int(value) if re.fullmatch(r"-?\d+", value) else number)
    elif value in ("true", "false"):
        candidates.append(value == "true")
    return candidates


def _filtered(project: Project, filters: TraceFilters) -> QuerySet[Trace]:
    qs = Trace.objects.filter(project=project)
    if filters.start_from is not None:
        qs = qs.filter(start_time__gte=filters.start_from)
    if filters.start_to is not None:
        qs = qs.filter(start_time__lt=filters.start_to)
    exact = {
        "session_id": filters.session_id,
        "user_id": filters.user_id,
        "model": filters.model,
        "environment": filters.environment,
        "status": filters.status,
        "name": filters.name,
    }
    qs = qs.filter(**{column: value for column, value in exact.items() if value is not None})
    if filters.tags:
        # `@>` on the array: served by the GIN index trace_tags_gin.
        qs = qs.filter(tags__contains=list(filters.tags))
    for key, value in filters.metadata.items():
        # One `@>` per candidate type, OR-ed: each is served by the jsonb_path_ops GIN
        # index (a `metadata->>key = value` comparison would not be).
        match = Q()
        for candidate in metadata_candidates(value):
            match |= Q(metadata__contains={key: candidate})
        qs = qs.filter(match)
    return qs


def traces_list(
    *,
    project: Project,
    filters: TraceFilters,
    limit: int = LIST_LIMIT_DEFAULT,
    cursor: TraceCursor | None = None,
) -> TracePage:
    """One page of the project's traces, newest first, in a single query.

    Keyset pagination on (start_time desc, id desc), the order of the index
    trace_project_time: the id breaks ties between traces that started in the same
    microsecond, so pages never overlap or skip rows, and a deep page costs the same
    as the first one (no OFFSET scan).
    """
    qs = _filtered(project, filters)
    if cursor is not None:
        # `start_time <= t` bounds the index range scan; the OR only resolves ties at t.
        qs = qs.filter(
            Q(start_time__lte=cursor.start_time)
            & (Q(start_time__lt=cursor.start_time) | Q(id__lt=cursor.id))
        )
    qs = (
        qs.order_by("-start_time", "-id")
        # Inputs/outputs can be megabytes; cut them in the database rather than ship
        # whole documents to Python for a list of previews.
        .defer("input", "output")
        .annotate(
            input_preview=Left("input", PREVIEW_CHARS + 1),
            output_preview=Left("output", PREVIEW_CHARS + 1),
        )
    )
    # One extra row tells whether there is a next page without a COUNT query.
    rows = list(qs[: limit + 1])
    traces = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = traces[-1]
        next_cursor = TraceCursor(start_time=last.start_time, id=last.pk).encode()
    return TracePage(traces=traces, next_cursor=next_cursor)


def scores_for_trace(*, project: Project, trace: Trace) -> list[Any]:
    """Scores attached to a trace.

    Hook for the Score model (a later issue): replace the body with one query on
    feedback.Score filtered by project and trace. Until then a trace has no scores,
    and the detail endpoint already returns `"scores": []` so clients can rely on it.
    """
    return []


def trace_detail(*, project: Project, trace_id: str) -> TraceDetail:
    """A trace with all its spans (flat, in start order) and its scores.

    `trace_id` is lowercase hex. Another project's trace is "not found", exactly like a
    missing one, so ids of other tenants cannot be probed.
    """
    trace = Trace.objects.filter(project=project, trace_id=trace_id).first()
    if trace is None:
        raise NotFound(f"No trace {trace_id} in project {project.slug}.")
    # Spans join by the natural key (no FK); project_id first keeps this on the unique
    # index span_unique_otel_id. On equal start times the longer span (usually the
    # parent) comes first; span_id makes the order total.
    spans = list(
        Span.objects.filter(project=project, trace_id=trace_id).order_by("start_time", "-end_time", "span_id")
    )
    return TraceDetail(trace=trace, spans=spans, scores=scores_for_trace(project=project, trace=trace))
