"""Traces on both sides of a retention window, each with a row in every table that
hangs off a trace, and a census of those rows."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from annotation.models import AnnotationQueue, Comment, QueueItem, QueueReview
from evaluation.models import JudgeCall, ScoringQueueItem, TraceEmbedding, TraceScoring
from feedback.models import InteractionEvent, SessionSignalState
from scores.models import Score, TraceOutcome
from tests.helpers import ingest_trace
from tracing.models import Span, SpanLogEvent, Trace

# A fixed "now", so the window's edges are exact.
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_positions = itertools.count(1)


def ns(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def trace_at(project, start: datetime, *, spans: int = 3, reviewer=None) -> Trace:
    """A trace ingested through the production path, starting at `start`, plus one row in
    every table keyed to it (scores, events, embeddings, evaluator state, comments, a
    queue item with a review, the scoring queue, a judge call, the session's signal state)."""
    trace = ingest_trace(project, start_ns=ns(start), spans=spans)
    assert trace.start_time == start
    root = trace.root_span_id
    SpanLogEvent.objects.create(project=project, trace_id=trace.trace_id, span_id=root,
                                event_name="gen_ai.user.message", time=start, body={"content": "hi"},
                                fingerprint=trace.trace_id)
    Score.objects.create(project=project, trace_id=trace.trace_id, name="hallucination", value=0.1,
                         data_type="numeric", source="evaluator")
    Score.objects.create(project=project, trace_id=trace.trace_id, span_id=root, name="user_thumbs", value=1,
                         data_type="boolean", source="end_user")
    InteractionEvent.objects.create(project=project, trace_id=trace.trace_id, name="copy")
    TraceScoring.objects.create(project=project, trace_id=trace.trace_id, status="scored")
    TraceEmbedding.objects.create(project=project, trace_id=trace.trace_id, kind="input",
                                  embedding=[1.0] + [0.0] * 383)
    parent = Comment.objects.create(project=project, trace_id=trace.trace_id, body="look")
    Comment.objects.create(project=project, trace_id=trace.trace_id, parent=parent, body="seen")
    queue, _ = AnnotationQueue.objects.get_or_create(project=project, name="review")
    item = QueueItem.objects.create(queue=queue, project=project, trace_id=trace.trace_id, position=next(_positions))
    if reviewer is not None:
        QueueReview.objects.create(item=item, project=project, reviewer=reviewer, status="done")
    ScoringQueueItem.objects.create(project=project, trace_pk=trace.pk)
    JudgeCall.objects.create(project=project, trace_id=trace.trace_id, rubric="helpfulness", status="ok",
                             created_at=start)
    SessionSignalState.objects.create(project=project, session_id=f"s-{trace.trace_id}", last_activity_at=start,
                                      computed_at=start)
    return trace


def census(project, trace_id: str, trace_pk: int) -> dict[str, int]:
    """Rows of every table that belong to this trace."""
    of = {"project": project, "trace_id": trace_id}
    return {
        "trace": Trace.objects.filter(pk=trace_pk).count(),
        "span": Span.objects.filter(**of).count(),
        "log_event": SpanLogEvent.objects.filter(**of).count(),
        "score": Score.objects.filter(**of).count(),
        "outcome": TraceOutcome.objects.filter(**of).count(),
        "event": InteractionEvent.objects.filter(**of).count(),
        "scoring": TraceScoring.objects.filter(**of).count(),
        "embedding": TraceEmbedding.objects.filter(**of).count(),
        "comment": Comment.objects.filter(**of).count(),
        "queue_item": QueueItem.objects.filter(**of).count(),
        "queue_review": QueueReview.objects.filter(item__trace_id=trace_id, project=project).count(),
        "scoring_queue": ScoringQueueItem.objects.filter(trace_pk=trace_pk).count(),
        "judge_call": JudgeCall.objects.filter(**of).count(),
        "signal_state": SessionSignalState.objects.filter(project=project, session_id=f"s-{trace_id}").count(),
    }


FULL = {"trace": 1, "span": 3, "log_event": 1, "score": 2, "outcome": 1, "event": 1, "scoring": 1, "embedding": 1,
        "comment": 2,
        "queue_item": 1, "queue_review": 1, "scoring_queue": 1, "judge_call": 1, "signal_state": 1}
GONE = dict.fromkeys(FULL, 0)


@pytest.fixture
def now() -> datetime:
    return NOW
