"""Fair scoring across projects: the cheap-score backlog, taken one project at a time.

Ingest announces changed traces; `traces_enqueue` files them under their project, and
the worker's `scoring_drain` task calls `turn_take` again and again: each call serves
the project with work that was served least recently, at most `turn_batch` traces of
it, oldest first. With projects A (20,000 waiting) and B (50 new), turns go A, B, A, B…
so B's traces wait a few turns, not for A's whole backlog.

The queue is a Postgres table, not a broker queue: it works the same with Redis or
RabbitMQ as the broker, and two workers never take the same trace (SKIP LOCKED).

A turn claims its rows under the drain message's task id and `turn_done` deletes them
after the scores are stored. A worker killed mid-batch (SIGKILL, OOM, a lost machine)
leaves its rows claimed; the broker redelivers the unacknowledged message (`acks_late`)
and its task, with the same id, takes the same rows again before anything else
(tests/integration/test_faults.py). Deleting the rows when taking them, as this queue
first did, lost such a batch until the sweep noticed minutes later. A claim older than
CLAIM_LEASE belongs to a task that is dead (past the hard time limit) whose message will
not come back soon: any worker may take those rows, and the sweep sees them as unscored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Min, Q
from django.utils import timezone

from evaluation.backlog import ORDERED, Policy, candidates_load, overflow_decide, policy_for
from evaluation.models import BacklogMode, ScoringQueueItem


def traces_enqueue(*, project_id: int, trace_pks: list[int], priority: bool = False) -> None:
    """File traces for cheap scoring; a trace already waiting keeps its place. `priority`
    (traces the backlog policy must never drop) puts them at the head of their project's
    turns, also when they were already waiting."""
    if not trace_pks:
        return
    # Changed while a worker scores it: free it again (same place), so the new spans are
    # scored too; that worker's turn_done leaves a row it no longer holds.
    on_conflict = ("SET priority = true, claimed_by = '', claimed_at = NULL" if priority else
                   "SET claimed_by = '', claimed_at = NULL WHERE evaluation_scoringqueueitem.claimed_at IS NOT NULL")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO evaluation_scoringqueueitem (project_id, trace_pk, enqueued_at, priority) "
            f"SELECT %s, pk, now(), %s FROM unnest(%s::bigint[]) AS pk ON CONFLICT (trace_pk) DO UPDATE {on_conflict}",
            [project_id, priority, sorted(set(trace_pks))],
        )
        cursor.execute(
            "INSERT INTO evaluation_scoringturn (project_id, served_at, skipped_total) VALUES (%s, NULL, 0) "
            "ON CONFLICT (project_id) DO NOTHING",
            [project_id],
        )


# Longer than scoring_drain's hard time limit (evaluation.tasks.SCORING_TASK_OPTIONS, 300 s)
# and the global one (CELERY_TASK_TIME_LIMIT): a claim this old has no live task behind it.
CLAIM_LEASE = timedelta(seconds=max(360, settings.CELERY_TASK_TIME_LIMIT) + 30)

# What a worker killed mid-batch had claimed under this task id: its redelivery resumes it.
_RESUME_SQL = """
UPDATE evaluation_scoringqueueitem SET claimed_at = clock_timestamp()
WHERE claimed_by = %(claimant)s
RETURNING project_id, trace_pk
"""

# Pick the least recently served project with rows free to take (skipping one another
# worker is picking right now) and mark it served. Its row stays locked until the turn's
# transaction ends, so the turn's other statements see the project as theirs.
_PICK_SQL = """
WITH turn AS (
    SELECT t.project_id FROM evaluation_scoringturn t
    WHERE EXISTS (SELECT 1 FROM evaluation_scoringqueueitem q WHERE q.project_id = t.project_id
                  AND (q.claimed_at IS NULL OR q.claimed_at < %(stale)s))
    ORDER BY t.served_at ASC NULLS FIRST, t.project_id
    LIMIT 1
    FOR UPDATE OF t SKIP LOCKED
)
UPDATE evaluation_scoringturn t SET served_at = clock_timestamp()
FROM turn WHERE t.project_id = turn.project_id
RETURNING t.project_id
"""

_FREE = "q2.project_id = %(project)s AND (q2.claimed_at IS NULL OR q2.claimed_at < %(stale)s)"

# The project's free rows beyond the policy's cap, in the turn's order: they leave the
# queue (skipped, or back at its head if protected).
_CUT_SQL = f"""
DELETE FROM evaluation_scoringqueueitem q
WHERE q.id IN (
    SELECT q2.id FROM evaluation_scoringqueueitem q2 WHERE {_FREE}
    ORDER BY q2.priority DESC, q2.id {{direction}} OFFSET %(cap)s
    FOR UPDATE OF q2 SKIP LOCKED
)
RETURNING q.trace_pk
"""

# Claim the turn's batch: protected traces first, then in the policy's order.
_CLAIM_SQL = f"""
UPDATE evaluation_scoringqueueitem q SET claimed_by = %(claimant)s, claimed_at = clock_timestamp()
WHERE q.id IN (
    SELECT q2.id FROM evaluation_scoringqueueitem q2 WHERE {_FREE}
    ORDER BY q2.priority DESC, q2.id {{direction}} LIMIT %(batch)s
    FOR UPDATE OF q2 SKIP LOCKED
)
RETURNING q.trace_pk
"""


@dataclass(frozen=True)
class Turn:
    project_id: int
    trace_pks: list[int]  # claimed for this turn, to be scored or skipped (backlog.turn_run)
    waiting: int  # the project's free traces in the queue when the turn began
    policy: Policy
    claimant: str  # who holds the claim (turn_done releases it)
    # Cut from beyond the policy's cap (ordered modes under a backlog): row id -> why
    # skipped. The protected ones among the cut went back to the head of the queue.
    skipped: dict[int, str] = field(default_factory=dict)


def turn_take(*, claimant: str | None = None, batch: int | None = None) -> Turn | None:
    """The next project's turn, or None when nothing waits.

    `claimant` (the drain task's id) owns the rows until `turn_done`; if it already holds
    rows (its message was redelivered after the worker died), those come back first.
    Within a project, traces the backlog policy must not drop come first, then the rest
    oldest first (newest first under `newest_first`); under an ordered policy's backlog
    the queue is cut to its cap here, in the same transaction.
    """
    claimant = claimant or uuid.uuid4().hex
    params = {"claimant": claimant, "stale": timezone.now() - CLAIM_LEASE,
              "batch": batch or settings.SPYGLASS_SCORING_TURN_BATCH}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_RESUME_SQL, params)
        rows = cursor.fetchall()
        if rows:  # a claim is one turn, so one project (turn_done ends it before the next)
            project_id = rows[0][0]
            policy = policy_for(project_id)
            return Turn(project_id=project_id, trace_pks=sorted(pk for _, pk in rows),
                        waiting=_free_count(cursor, project_id, params["stale"]) + len(rows), policy=policy,
                        claimant=claimant)
        cursor.execute(_PICK_SQL, params)
        row = cursor.fetchone()
        if row is None:
            return None
        project_id = params["project"] = row[0]
        policy = policy_for(project_id)
        waiting = _free_count(cursor, project_id, params["stale"])
        direction = "DESC" if policy.mode == BacklogMode.NEWEST_FIRST else "ASC"
        skipped: dict[int, str] = {}
        if policy.applies(waiting) and policy.mode in ORDERED and waiting > policy.cap:
            cursor.execute(_CUT_SQL.format(direction=direction), {**params, "cap": policy.cap})
            cut = overflow_decide(policy, waiting=waiting,
                                  overflow=candidates_load(sorted(r[0] for r in cursor.fetchall())))
            traces_enqueue(project_id=project_id, trace_pks=cut.score, priority=True)
            skipped = cut.skip
        cursor.execute(_CLAIM_SQL.format(direction=direction), params)
        pks = sorted(r[0] for r in cursor.fetchall())
    return Turn(project_id=project_id, trace_pks=pks, waiting=waiting, policy=policy, claimant=claimant,
                skipped=skipped)


def _free_count(cursor, project_id: int, stale: datetime) -> int:
    cursor.execute("SELECT count(*) FROM evaluation_scoringqueueitem WHERE project_id = %s "
                   "AND (claimed_at IS NULL OR claimed_at < %s)", [project_id, stale])
    return cursor.fetchone()[0]


def turn_done(*, claimant: str, trace_pks: list[int]) -> None:
    """The turn's scores are stored: its rows leave the queue (unless re-queued meanwhile)."""
    ScoringQueueItem.objects.filter(claimed_by=claimant, trace_pk__in=trace_pks).delete()


def _takeable() -> Q:
    return Q(claimed_at__isnull=True) | Q(claimed_at__lt=timezone.now() - CLAIM_LEASE)


@dataclass(frozen=True)
class Backlog:
    project_id: int
    waiting: int
    oldest: datetime


def backlog() -> list[Backlog]:
    """Traces waiting per project and since when, largest first (settings page, /metrics)."""
    rows = (ScoringQueueItem.objects.filter(_takeable()).values("project_id")
            .annotate(waiting=Count("id"), oldest=Min("enqueued_at")).order_by("-waiting"))
    return [Backlog(r["project_id"], r["waiting"], r["oldest"]) for r in rows]


def waiting_total() -> int:
    """Traces waiting or being scored; a claim past its lease counts as neither (its task
    is dead), so the sweep, which waits while this is above zero, goes on to find them."""
    return ScoringQueueItem.objects.exclude(claimed_at__lt=timezone.now() - CLAIM_LEASE).count()


def project_backlog(project_id: int) -> tuple[int, datetime | None, int]:
    """This project's waiting traces, the oldest one's enqueue time, and all projects' total."""
    mine = ScoringQueueItem.objects.filter(_takeable(), project_id=project_id).aggregate(
        waiting=Count("id"), oldest=Min("enqueued_at"))
    return mine["waiting"], mine["oldest"], ScoringQueueItem.objects.filter(_takeable()).count()
