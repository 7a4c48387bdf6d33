"""Which traces still need scoring (for the periodic sweep and `score_backfill`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Exists, F, OuterRef, Q, Subquery

from evaluation.models import TraceScoring
from tracing.models import Trace

SWEEP_LIMIT = 5000
# Only recent traces are swept: a trace older than this that was never scored is a
# case for `score_backfill`, and the bound keeps the query from scanning all history.
LOOKBACK = timedelta(days=2)


def queue_backlog(queue: str) -> int | None:
    """Messages waiting on `queue`, or None when the broker can't tell.

    A passive declare answers on every broker kombu speaks (Redis, RabbitMQ) and creates
    nothing; a queue that was never declared has no backlog.
    """
    from kombu.exceptions import ChannelError, OperationalError

    from config.celery import app

    try:
        with app.connection_for_read() as connection:
            return connection.default_channel.queue_declare(queue=queue, passive=True).message_count
    except ChannelError:
        return 0
    except (OperationalError, OSError):
        return None


def scoring_backlog() -> int | None:
    """Messages waiting on the `scoring` queue (None: the broker can't tell)."""
    return queue_backlog("scoring")


def traces_needing_scoring(*, now: datetime | None = None, limit: int = SWEEP_LIMIT) -> list[int]:
    """Row ids of traces with no scoring result, or one older than their last change.

    Traces changed in the last SPYGLASS_SCORING_SWEEP_GRACE seconds are skipped: their
    own message is most likely still in the queue, and scoring them twice is wasted work.
    """
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(seconds=settings.SPYGLASS_SCORING_SWEEP_GRACE)
    scored_for = TraceScoring.objects.filter(project=OuterRef("project"), trace_id=OuterRef("trace_id")).values(
        "trace_updated_at"
    )[:1]
    return list(
        Trace.objects.filter(updated_at__lte=cutoff, updated_at__gte=now - LOOKBACK)
        .annotate(scored_for=Subquery(scored_for))
        .filter(Q(scored_for__isnull=True) | Q(scored_for__lt=F("updated_at")))
        .order_by("updated_at")
        .values_list("pk", flat=True)[:limit]
    )


def traces_awaiting_grounding(*, now: datetime | None = None, limit: int = SWEEP_LIMIT) -> list[int]:
    """Row ids of traces whose groundedness was queued but never written: the grounding
    message was lost (broker restarted without persistence) or its task died. Only rows
    older than the sweep grace count, so a message still in flight is left alone."""
    from evaluation.deferred import EVALUATOR, NOTE_QUEUED

    now = now or datetime.now(UTC)
    waiting = TraceScoring.objects.filter(
        project=OuterRef("project"), trace_id=OuterRef("trace_id"), notes__contains={EVALUATOR: NOTE_QUEUED},
        scored_at__lte=now - timedelta(seconds=settings.SPYGLASS_SCORING_SWEEP_GRACE),
    )
    return list(
        Trace.objects.filter(updated_at__gte=now - LOOKBACK)
        .filter(Exists(waiting))
        .order_by("updated_at")
        .values_list("pk", flat=True)[:limit]
    )
