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

from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Min

from evaluation.backlog import ORDERED, Policy, candidates_load, overflow_decide, policy_for
from evaluation.models import BacklogMode, ScoringQueueItem


def traces_enqueue(*, project_id: int, trace_pks: list[int], priority: bool = False) -> None:
    """File traces for cheap scoring; a trace already waiting keeps its place. `priority`
    (traces the backlog policy must never drop) puts them at the head of their project's
    turns, also when they were already waiting."""
    if not trace_pks:
        return
    on_conflict = "DO UPDATE SET priority = true" if priority else "DO NOTHING"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO evaluation_scoringqueueitem (project_id, trace_pk, enqueued_at, priority) "
            f"SELECT %s, pk, now(), %s FROM unnest(%s::bigint[]) AS pk ON CONFLICT (trace_pk) {on_conflict}",
            [project_id, priority, sorted(set(trace_pks))],
        )
        cursor.execute(
            "INSERT INTO evaluation_scoringturn (project_id, served_at, skipped_total) VALUES (%s, NULL, 0) "
            "ON CONFLICT (project_id) DO NOTHING",
            [project_id],
        )


# Pick the least recently served project that has work (skipping one another worker is
# picking right now) and mark it served. The row stays locked until the turn's
# transaction ends, so the turn's other statements see the project as theirs.
_PICK_SQL = """
WITH turn AS (
    SELECT t.project_id FROM evaluation_scoringturn t
    WHERE EXISTS (SELECT 1 FROM evaluation_scoringqueueitem q WHERE q.project_id = t.project_id)
    ORDER BY t.served_at ASC NULLS FIRST, t.project_id
    LIMIT 1
    FOR UPDATE OF t SKIP LOCKED
)
UPDATE evaluation_scoringturn t SET served_at = clock_timestamp()
FROM turn WHERE t.project_id = turn.project_id
RETURNING t.project_id
"""

# Take (delete and return) the project's traces in the turn's order, `LIMIT` of them
# after skipping `OFFSET`: the turn's batch (offset 0), or everything beyond the cap.
_TAKE_SQL = """
DELETE FROM evaluation_scoringqueueitem q
WHERE q.id IN (
    SELECT q2.id FROM evaluation_scoringqueueitem q2 WHERE q2.project_id = %s
    ORDER BY q2.priority DESC, q2.id {direction}
    LIMIT %s OFFSET %s
    FOR UPDATE OF q2 SKIP LOCKED
)
RETURNING q.trace_pk
"""


@dataclass(frozen=True)
class Turn:
    project_id: int
    trace_pks: list[int]  # this turn's traces, to be scored or skipped (backlog.decide)
    waiting: int  # the project's traces in the queue when the turn began
    policy: Policy
    # Cut from beyond the policy's cap (ordered modes under a backlog): skipped, except
    # the protected ones, which went back to the head of the queue.
    skipped: dict[int, str] = field(default_factory=dict)


def turn_take(*, batch: int | None = None) -> Turn | None:
    """The next project's turn, or None when nothing waits.

    Within a project, traces the policy must not drop come first, then the rest oldest
    first (newest first under `newest_first`). Under an ordered policy's backlog the
    queue is cut to its cap here, in the same transaction.
    """
    batch = batch or settings.SPYGLASS_SCORING_TURN_BATCH
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_PICK_SQL)
        row = cursor.fetchone()
        if row is None:
            return None
        project_id = row[0]
        policy = policy_for(project_id)
        cursor.execute("SELECT count(*) FROM evaluation_scoringqueueitem WHERE project_id = %s", [project_id])
        waiting = cursor.fetchone()[0]
        direction = "DESC" if policy.mode == BacklogMode.NEWEST_FIRST else "ASC"
        skipped: dict[int, str] = {}
        if policy.applies(waiting) and policy.mode in ORDERED and waiting > policy.cap:
            cursor.execute(_TAKE_SQL.format(direction=direction), [project_id, None, policy.cap])
            overflow = overflow_decide(policy, waiting=waiting,
                                       overflow=candidates_load(sorted(r[0] for r in cursor.fetchall())))
            traces_enqueue(project_id=project_id, trace_pks=overflow.score, priority=True)
            skipped = overflow.skip
        cursor.execute(_TAKE_SQL.format(direction=direction), [project_id, batch, 0])
        pks = sorted(r[0] for r in cursor.fetchall())
    return Turn(project_id=project_id, trace_pks=pks, waiting=waiting, policy=policy, skipped=skipped)


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
