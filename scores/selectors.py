"""Reads of scores and score configs: a trace's scores, the keyset-paged score list."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

from config import keyset
from projects.models import Project
from scores.models import Score, ScoreConfig

LIST_LIMIT_DEFAULT = 50


LIST_LIMIT_MAX = 500


def score_as_dict(score: Score) -> dict[str, Any]:
    """The API shape of a score (also embedded in GET /api/v1/traces/<id>)."""
    return {
        "id": str(score.id),
        "trace_id": score.trace_id,
        "span_id": score.span_id,
        "name": score.name,
        "value": score.value,
        "string_value": score.string_value,
        "data_type": score.data_type,
        "source": score.source,
        "author": score.author.get_username() if score.author_id else None,
        "comment": score.comment,
        "queue_id": score.queue_id,
        "metadata": score.metadata,
        "created_at": score.created_at.isoformat().replace("+00:00", "Z"),
        "updated_at": score.updated_at.isoformat().replace("+00:00", "Z"),
    }


def scores_for_trace(*, project: Project, trace_id: str) -> list[Score]:
    """All scores of a trace and its spans, oldest first, authors joined (one query)."""
    return list(
        Score.objects.filter(project=project, trace_id=trace_id).select_related("author").order_by("created_at", "id")
    )


@dataclass(frozen=True)
class ScoreFilters:
    trace_id: str | None = None
    span_id: str | None = None
    name: str | None = None
    source: str | None = None
    author: str | None = None  # username
    queue_id: int | None = None
    created_from: datetime | None = None  # inclusive
    created_to: datetime | None = None  # exclusive


@dataclass(frozen=True)
class ScoreCursor:
    """Position after the last row of a page in (created_at desc, id desc) order."""

    created_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        return keyset.cursor_encode(keyset.micros_from_datetime(self.created_at), self.id.hex)

    @classmethod
    def decode(cls, token: str) -> ScoreCursor:
        micros, hex_id = keyset.cursor_decode(token, f"{keyset.MICROS}:([0-9a-f]{{32}})")
        return cls(created_at=keyset.datetime_from_micros(micros), id=uuid.UUID(hex_id))


@dataclass(frozen=True)
class ScorePage:
    scores: list[Score]
    next_cursor: str | None


def scores_list(
    *, project: Project, filters: ScoreFilters, limit: int = LIST_LIMIT_DEFAULT, cursor: ScoreCursor | None = None
) -> ScorePage:
    """One page of scores, newest first, keyset-paginated on the score_project_time index."""
    qs = Score.objects.filter(project=project)
    exact = {
        "trace_id": filters.trace_id,
        "span_id": filters.span_id,
        "name": filters.name,
        "source": filters.source,
        "author__username": filters.author,
        "queue_id": filters.queue_id,
    }
    qs = qs.filter(**{k: v for k, v in exact.items() if v is not None})
    if filters.created_from is not None:
        qs = qs.filter(created_at__gte=filters.created_from)
    if filters.created_to is not None:
        qs = qs.filter(created_at__lt=filters.created_to)
    if cursor is not None:
        qs = qs.filter(
            Q(created_at__lte=cursor.created_at) & (Q(created_at__lt=cursor.created_at) | Q(id__lt=cursor.id))
        )
    rows = list(qs.select_related("author").order_by("-created_at", "-id")[: limit + 1])
    scores = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = ScoreCursor(created_at=scores[-1].created_at, id=scores[-1].id).encode()
    return ScorePage(scores=scores, next_cursor=next_cursor)


def score_configs(*, project: Project, include_archived: bool = False) -> QuerySet[ScoreConfig]:
    qs = ScoreConfig.objects.filter(project=project)
    return qs if include_archived else qs.filter(is_archived=False)
