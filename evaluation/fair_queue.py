"""Fair scoring across projects: the cheap-score backlog, taken one project at a time.

Ingest announces changed traces; `traces_enqueue` files them under their project, and
the worker's `scoring_drain` task calls `turn_take` again and again: each call serves
the project with work that was served least recently, at most `turn_batch` traces of
it, oldest first. With projects A (20,000 waiting) and B (50 new), turns go A, B, A, B…
so B's traces wait a few turns, not for A's whole backlog.

The queue is a Postgres table, not a broker queue: it works the same with Redis or
RabbitMQ as the broker, two workers never take the same trace (SKIP LOCKED), and what a
worker took but never scored (killed mid-batch) is found by the scoring sweep, which
looks for traces without a current score, not for messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Min

from evaluation.models import ScoringQueueItem


def traces_enqueue(*, project_id: int, trace_pks: list[int]) -> None:
    """File traces for cheap scoring; a trace already waiting keeps its place."""
    if not trace_pks:
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO evaluation_scoringqueueitem (project_id, trace_pk, enqueued_at) "
            "SELECT %s, pk, now() FROM unnest(%s::bigint[]) AS pk ON CONFLICT (trace_pk) DO NOTHING",
            [project_id, sorted(set(trace_pks))],
        )
        cursor.execute(
            "INSERT INTO evaluation_scoringturn (project_id, served_at) VALUES (%s, NULL) "
            "ON CONFLICT (project_id) DO NOTHING",
            [project_id],
        )


# One statement: pick the least recently served project that has work (skipping one
# another worker is picking right now), mark it served, and take its oldest traces.
_TURN_SQL = """
WITH turn AS (
    SELECT t.project_id FROM evaluation_scoringturn t
    WHERE EXISTS (SELECT 1 FROM evaluation_scoringqueueitem q WHERE q.project_id = t.project_id)
    ORDER BY t.served_at ASC NULLS FIRST, t.project_id
    LIMIT 1
    FOR UPDATE OF t SKIP LOCKED
), served AS (
    UPDATE evaluation_scoringturn t SET served_at = clock_timestamp()
    FROM turn WHERE t.project_id = turn.project_id
    RETURNING t.project_id
)
DELETE FROM evaluation_scoringqueueitem q
WHERE q.id IN (
    SELECT q2.id FROM evaluation_scoringqueueitem q2 JOIN served ON q2.project_id = served.project_id
    ORDER BY q2.id LIMIT %s
    FOR UPDATE OF q2 SKIP LOCKED
)
RETURNING q.project_id, q.trace_pk
"""


def turn_take(*, batch: int | None = None) -> tuple[int, list[int]] | None:
    """The next project's turn: (project id, trace row ids), or None when nothing waits."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_TURN_SQL, [batch or settings.SPYGLASS_SCORING_TURN_BATCH])
        rows = cursor.fetchall()
    if not rows:
        return None
    return rows[0][0], sorted(pk for _, pk in rows)


@dataclass(frozen=True)
class Backlog:
    project_id: int
    waiting: int
    oldest: datetime


def backlog() -> list[Backlog]:
    """Traces waiting per project and since when, largest first (settings page, /metrics)."""
    rows = (ScoringQueueItem.objects.values("project_id")
            .annotate(waiting=Count("id"), oldest=Min("enqueued_at")).order_by("-waiting"))
    return [Backlog(r["project_id"], r["waiting"], r["oldest"]) for r in rows]


def waiting_total() -> int:
    return ScoringQueueItem.objects.count()


def project_backlog(project_id: int) -> tuple[int, datetime | None, int]:
    """This project's waiting traces, the oldest one's enqueue time, and all projects' total."""
    mine = ScoringQueueItem.objects.filter(project_id=project_id).aggregate(waiting=Count("id"),
                                                                             oldest=Min("enqueued_at"))
    return mine["waiting"], mine["oldest"], waiting_total()
