"""Retention: delete each project's traces that started before its window, with
everything that hangs off them (retention/tables.py says what, table by table).

Never one huge transaction: each transaction takes at most `batch` of the project's
oldest traces (FOR UPDATE SKIP LOCKED, so a trace that ingest is writing right now is
left to the next batch rather than waited for) and deletes their rows in every table,
then the traces. Ingest that touches one of those traces waits for one batch at most.
A late span of a deleted trace simply makes a new trace row, which the next run deletes.
Dashboards' rollups stay consistent without work here: deleting traces and scores marks
their hours dirty (database triggers of dashboards migration 0001) and the rollups task
re-aggregates those hours from what remains.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone

from annotation.models import QueueItem, QueueReview
from config.errors import ValidationFailed
from projects.models import Project
from retention.models import MAX_DAYS, RetentionMode, RetentionPolicy, RetentionRun
from retention.selectors import effective_days
from retention.tables import BY_TRACE_ID, BY_TRACE_PK, OWN_CLOCK, OwnClock
from tracing.models import Span, Trace

logger = logging.getLogger(__name__)

# pg advisory lock: one retention run at a time across workers and the command.
LOCK_KEY = 0x5E7E_4710
_NEVER = datetime.min.replace(tzinfo=UTC)


def _table(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


@dataclass
class RetentionResult:
    project_id: int
    slug: str
    days: int
    cutoff: datetime
    traces: int = 0
    rows: dict[str, int] = field(default_factory=dict)  # db table -> rows deleted (or that would be)
    batches: int = 0
    complete: bool = True
    dry_run: bool = False
    seconds: float = 0.0

    def add(self, model: type[models.Model], n: int) -> None:
        if n:
            key = model._meta.db_table
            self.rows[key] = self.rows.get(key, 0) + n

    def log_line(self) -> str:
        rows = " ".join(f"{table}={n}" for table, n in sorted(self.rows.items())) or "nothing"
        return (f"retention{' (dry run)' if self.dry_run else ''} project={self.slug} days={self.days} "
                f"cutoff={self.cutoff.isoformat()} traces={self.traces} batches={self.batches} "
                f"complete={self.complete} seconds={self.seconds:.1f} rows: {rows}")


def retention_policy_save(*, project: Project, mode: str, days: int | None, user=None) -> RetentionPolicy:
    """Set a project's retention: the instance default, `days` days, or keep forever."""
    if mode not in RetentionMode.values:
        raise ValidationFailed(f"mode: expected one of {', '.join(RetentionMode.values)}, got {mode!r}",
                               detail={"mode": mode})
    if mode == RetentionMode.DAYS:
        if days is None or isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
            raise ValidationFailed(f"days: a whole number of days from 1 to {MAX_DAYS} is needed with mode=days, "
                                   f"got {days!r}", detail={"days": days})
    elif days is not None:
        raise ValidationFailed(f"days: only with mode=days (mode={mode} keeps no number of days)",
                               detail={"days": days})
    policy, _ = RetentionPolicy.objects.update_or_create(
        project=project, defaults={"mode": mode, "days": days, "updated_by": user})
    return policy


def _delete_trace_batch(cursor, *, project_id: int, cutoff: datetime, batch: int, result: RetentionResult) -> int:
    """Up to `batch` of the project's oldest traces before `cutoff` and all their rows
    (the caller holds the transaction). Returns the traces deleted."""
    cursor.execute(
        f"SELECT id, trace_id FROM {_table(Trace)} WHERE project_id = %s AND start_time < %s "
        "ORDER BY start_time, id LIMIT %s FOR UPDATE SKIP LOCKED",
        [project_id, cutoff, batch],
    )
    found = cursor.fetchall()
    if not found:
        return 0
    pks, trace_ids = [pk for pk, _ in found], [tid for _, tid in found]
    # Scores before traces: their delete trigger finds the hours to re-aggregate through
    # the trace rows (the traces' own trigger marks the same hours too).
    for model in BY_TRACE_ID:
        cursor.execute(f"DELETE FROM {_table(model)} WHERE project_id = %s AND trace_id = ANY(%s)",
                       [project_id, trace_ids])
        result.add(model, cursor.rowcount)
    items = (f"SELECT id FROM {_table(QueueItem)} WHERE project_id = %s "
             "AND (trace_id = ANY(%s) OR pair_trace_id = ANY(%s))")
    cursor.execute(f"DELETE FROM {_table(QueueReview)} WHERE item_id IN ({items})",
                   [project_id, trace_ids, trace_ids])
    result.add(QueueReview, cursor.rowcount)
    cursor.execute(f"DELETE FROM {_table(QueueItem)} WHERE id IN ({items})", [project_id, trace_ids, trace_ids])
    result.add(QueueItem, cursor.rowcount)
    for model in BY_TRACE_PK:
        cursor.execute(f"DELETE FROM {_table(model)} WHERE project_id = %s AND trace_pk = ANY(%s)",
                       [project_id, pks])
        result.add(model, cursor.rowcount)
    cursor.execute(f"DELETE FROM {_table(Trace)} WHERE id = ANY(%s)", [pks])
    result.add(Trace, cursor.rowcount)
    return cursor.rowcount


def _delete_own_clock_batch(cursor, *, rule: OwnClock, project_id: int, cutoff: datetime, batch: int,
                            result: RetentionResult) -> int:
    table, column = _table(rule.model), connection.ops.quote_name(rule.column)
    cursor.execute(f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE project_id = %s "
                   f"AND {column} < %s LIMIT %s)", [project_id, cutoff, batch])
    result.add(rule.model, cursor.rowcount)
    return cursor.rowcount


def _dry_run_counts(*, project_id: int, cutoff: datetime, result: RetentionResult) -> None:
    """What a run would delete, from counts (spans from the traces' span_count)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*), coalesce(sum(span_count), 0) FROM {_table(Trace)} "
                       "WHERE project_id = %s AND start_time < %s", [project_id, cutoff])
        traces, spans = cursor.fetchone()
        result.traces = traces
        result.add(Trace, traces)
        result.add(Span, int(spans))
        for rule in OWN_CLOCK:
            cursor.execute(f"SELECT count(*) FROM {_table(rule.model)} WHERE project_id = %s AND "
                           f"{connection.ops.quote_name(rule.column)} < %s", [project_id, cutoff])
            result.add(rule.model, cursor.fetchone()[0])


def retention_apply_project(
    *, project: Project, days: int, now: datetime | None = None, batch: int | None = None,
    deadline: float | None = None, dry_run: bool = False, on_batch: Callable[[int], None] | None = None,
) -> RetentionResult:
    """Delete what of `project` is older than `days` days, in transactions of `batch`
    traces (SPYGLASS_RETENTION_BATCH_TRACES), until nothing is left or time.monotonic()
    passes `deadline`. Records the run (unless dry) and logs one line."""
    t0 = time.monotonic()
    started = timezone.now()
    cutoff = (now or started) - timedelta(days=days)
    batch = batch or settings.SPYGLASS_RETENTION_BATCH_TRACES
    result = RetentionResult(project_id=project.pk, slug=project.slug, days=days, cutoff=cutoff, dry_run=dry_run)
    if dry_run:
        _dry_run_counts(project_id=project.pk, cutoff=cutoff, result=result)
    else:
        steps = [("traces", None), *(("own", rule) for rule in OWN_CLOCK)]
        for kind, rule in steps:
            while True:
                if deadline is not None and time.monotonic() > deadline:
                    result.complete = False
                    break
                with transaction.atomic(), connection.cursor() as cursor:
                    if kind == "traces":
                        n = _delete_trace_batch(cursor, project_id=project.pk, cutoff=cutoff, batch=batch,
                                                result=result)
                        result.traces += n
                    else:
                        n = _delete_own_clock_batch(cursor, rule=rule, project_id=project.pk, cutoff=cutoff,
                                                    batch=batch, result=result)
                if not n:
                    break
                result.batches += 1
                if on_batch is not None and kind == "traces":
                    on_batch(n)
            if not result.complete:
                break
    result.seconds = time.monotonic() - t0
    if not dry_run:
        RetentionRun.objects.update_or_create(project=project, defaults={
            "started_at": started, "finished_at": timezone.now(), "days": days, "cutoff": cutoff,
            "traces": result.traces, "rows": result.rows, "batches": result.batches, "complete": result.complete})
    logger.info(result.log_line())
    return result


def retention_apply(
    *, project: Project | None = None, now: datetime | None = None, budget_seconds: float | None = None,
    dry_run: bool = False, batch: int | None = None,
) -> list[RetentionResult] | None:
    """Apply every project's retention (or one project's). Projects whose last run is
    oldest go first, so a project with a huge backlog that uses up a run's time budget
    cannot starve the others. None when another run holds the lock."""
    deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY])
        if not cursor.fetchone()[0]:
            logger.info("retention: another run holds the lock; skipped")
            return None
    try:
        projects = Project.objects.all() if project is None else Project.objects.filter(pk=project.pk)
        policies = {p.project_id: p for p in RetentionPolicy.objects.filter(project__in=projects)}
        last = dict(RetentionRun.objects.filter(project__in=projects).values_list("project_id", "started_at"))
        order = sorted(projects, key=lambda p: (p.pk in last, last.get(p.pk) or _NEVER, p.pk))
        results = []
        for each in order:
            days = effective_days(policies.get(each.pk))
            if days is None:
                continue
            if deadline is not None and time.monotonic() > deadline:
                break
            results.append(retention_apply_project(project=each, days=days, now=now, batch=batch,
                                                   deadline=deadline, dry_run=dry_run))
        return results
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])
