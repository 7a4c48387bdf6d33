"""Which traces still need scoring (for the periodic sweep and `score_backfill`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import F, OuterRef, Q, Subquery

from feedback.models import TraceScoring
from tracing.models import Trace

SWEEP_LIMIT = 5000
# Only recent traces are swept: a trace older than this that was never scored is a
# case for `score_backfill`, and the bound keeps the query from scanning all history.
LOOKBACK = timedelta(days=2)


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
