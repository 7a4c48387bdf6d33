"""Reads for annotation: a trace's feedback panel, queue candidates, progress, the
review page's context, results and ratings (for agreement)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Exists, F, OuterRef, Q
from django.db.models.functions import MD5

from annotation.models import AnnotationQueue, Comment, Correction, QueueItem, QueueReview, ReviewStatus
from config.errors import NotFound
from evaluation.evidence import ContextPiece, context_pieces, spans_by_trace
from evaluation.selectors import TraceEvaluations, trace_evaluations
from explorer.filters import TraceFilter
from feedback.models import InteractionEvent
from projects.models import Membership, Project, Role, role_at_least
from scores import names
from scores.models import Score, ScoreConfig, Source
from scores.selectors import score_configs, scores_for_trace
from tracing.models import Span, Trace

# Configs the trace panel does not offer to reviewers: end users give these, and
# `preferred` only means something next to a second answer (pairwise queues).
PANEL_EXCLUDED_CONFIGS = frozenset({names.USER_THUMBS.name, names.USER_RATING.name, names.PREFERRED.name})


def in_a_queue(project: OuterRef, trace_id: OuterRef) -> Exists:
    """Whether the outer query's trace is an item of an annotation queue (either answer
    of a pairwise item); the backlog policy never skips such a trace."""
    return Exists(QueueItem.objects.filter(project_id=project).filter(Q(trace_id=trace_id)
                                                                      | Q(pair_trace_id=trace_id)))


@dataclass
class CommentThread:
    comment: Comment
    replies: list[Comment] = field(default_factory=list)


@dataclass
class TraceFeedback:
    """Everything the annotation panel shows for one trace."""

    trace_id: str
    configs: list[ScoreConfig]
    scores: list[Score]
    events: list[InteractionEvent]
    threads: list[CommentThread]
    spans: list[tuple[str, str]]  # (span_id, name) for "annotate a span"
    mine: dict[tuple[str | None, str], Score]  # (span_id, config name) -> my annotation

    def my_value(self, config: ScoreConfig, span_id: str | None = None) -> str | None:
        score = self.mine.get((span_id, config.name))
        if score is None:
            return None
        if score.string_value is not None:
            return score.string_value
        return f"{score.value:g}" if score.value is not None else None


def trace_feedback(
    *, project: Project, trace_id: str, user: AbstractBaseUser | None, scores: list[Score] | None = None
) -> TraceFeedback:
    """Configs, scores, events, comments and spans of a trace: five bounded queries, four
    when the caller already holds the trace's scores (the trace page does)."""
    if scores is None:
        scores = scores_for_trace(project=project, trace_id=trace_id)
    comments = list(
        Comment.objects.filter(project=project, trace_id=trace_id).select_related("author").order_by("created_at", "id")
    )
    threads: dict[int, CommentThread] = {}
    for c in comments:
        if c.parent_id is None:
            threads[c.pk] = CommentThread(c)
    for c in comments:
        if c.parent_id is not None and c.parent_id in threads:
            threads[c.parent_id].replies.append(c)
    mine = {
        (s.span_id, s.name): s
        for s in scores
        if user is not None and s.source == Source.ANNOTATION and s.author_id == user.pk
    }
    return TraceFeedback(
        trace_id=trace_id,
        configs=list(score_configs(project=project).exclude(name__in=PANEL_EXCLUDED_CONFIGS)),
        scores=scores,
        events=list(InteractionEvent.objects.filter(project=project, trace_id=trace_id).order_by("created_at")[:200]),
        threads=list(threads.values()),
        spans=list(
            Span.objects.filter(project=project, trace_id=trace_id)
            .order_by("start_time", "span_id")
            .values_list("span_id", "name")[:500]
        ),
        mine=mine,
    )


def queue_candidates(
    *,
    project: Project,
    filters: TraceFilter,
    sample: str = "newest",
    limit: int = 50,
) -> list[str]:
    """Trace ids for a new queue: the explorer's trace filter (score conditions
    included), newest first or a uniform random sample of `limit`."""
    qs = filters.apply(project)
    qs = qs.order_by("?") if sample == "random" else qs.order_by("-start_time", "-id")
    return list(qs.values_list("trace_id", flat=True)[:limit])


PAIR_FIELDS = ("prompt_version", "model", "release", "environment", "name")


def queue_pair_candidates(
    *,
    project: Project,
    filters: TraceFilter,
    split_field: str,
    value_a: str,
    value_b: str,
    limit: int = 50,
) -> list[tuple[str, str]]:
    """Pairs (A, B) of traces with the same input, A having `split_field`=value_a and B
    value_b (e.g. two prompt versions); the newest trace of each side per input."""
    if split_field not in PAIR_FIELDS:
        raise ValueError(f"split_field must be one of {', '.join(PAIR_FIELDS)}")
    base = filters.apply(project).exclude(input__isnull=True).exclude(input="")
    # Compare inputs by hash: inputs can be megabytes; equality on md5 is index-free
    # but ships 32 characters per row instead of the whole text.
    side_a = (
        base.filter(**{split_field: value_a})
        .annotate(h=MD5("input"))
        .order_by("h", "-start_time")
        .distinct("h")
        .values_list("h", "trace_id")
    )
    by_input = dict(side_a[:5000])
    if not by_input:
        return []
    side_b = (
        base.filter(**{split_field: value_b})
        .annotate(h=MD5("input"))
        .filter(h__in=list(by_input))
        .order_by("h", "-start_time")
        .distinct("h")
        .values_list("h", "trace_id")
    )
    pairs = [(by_input[h], trace_b) for h, trace_b in side_b[:limit]]
    return pairs


def queues_list(*, project: Project) -> list[AnnotationQueue]:
    """Queues of the project with item counts (two aggregates, one query)."""
    return list(
        AnnotationQueue.objects.filter(project=project)
        .annotate(
            total=Count("items", distinct=True),
            complete=Count("items", distinct=True, filter=Q(items__done_count__gte=F("reviews_per_item"))),
        )
        .order_by("-created_at", "-id")
    )


def queue_get(*, project: Project, queue_id: int) -> AnnotationQueue:
    queue = AnnotationQueue.objects.filter(project=project, pk=queue_id).first()
    if queue is None:
        raise NotFound("No such annotation queue in this project.")
    return queue


@dataclass(frozen=True)
class ReviewerProgress:
    username: str
    done: int
    skipped: int
    in_progress: int


@dataclass(frozen=True)
class QueueProgress:
    total: int
    complete: int  # items with all the reviews the queue asks for
    reviews_done: int
    reviews_needed: int
    reviewers: list[ReviewerProgress]

    @property
    def percent(self) -> int:
        return round(100 * self.reviews_done / self.reviews_needed) if self.reviews_needed else 100


def queue_progress(*, queue: AnnotationQueue) -> QueueProgress:
    items = QueueItem.objects.filter(queue=queue)
    total = items.count()
    complete = items.filter(done_count__gte=queue.reviews_per_item).count()
    per: dict[str, dict[str, int]] = defaultdict(lambda: {"done": 0, "skipped": 0, "claimed": 0})
    rows = QueueReview.objects.filter(item__queue=queue).values("reviewer__username", "status").annotate(n=Count("id"))
    for row in rows:
        per[row["reviewer__username"]][row["status"]] += row["n"]
    reviewers = [
        ReviewerProgress(username=name, done=c["done"], skipped=c["skipped"], in_progress=c["claimed"])
        for name, c in sorted(per.items())
    ]
    needed = total * queue.reviews_per_item
    done = sum(min(d, queue.reviews_per_item) for d in items.values_list("done_count", flat=True))
    return QueueProgress(total=total, complete=complete, reviews_done=done, reviews_needed=needed, reviewers=reviewers)


def queue_reviewer_candidates(*, project: Project) -> list[AbstractBaseUser]:
    """People who may be assigned to a queue: reviewers and above."""
    roles = [r for r in Role.values if role_at_least(r, Role.REVIEWER)]
    ids = Membership.objects.filter(project=project, role__in=roles).values("user_id")
    return list(get_user_model().objects.filter(pk__in=ids).order_by("username"))


@dataclass
class ReviewContext:
    item: QueueItem
    trace: Trace | None
    pair_trace: Trace | None
    spans: list[Span]
    configs: list[ScoreConfig]
    values: dict[int, str]  # config id -> my current value (form string)
    comment: str
    prev_id: int | None
    next_id: int | None
    status: str | None
    position: int
    total: int
    # What the answer should rest on, the groundedness verdict and the end user's own
    # feedback: beside the answer, so judging accuracy needs no second tab.
    context: list[ContextPiece] = field(default_factory=list)
    context_more: int = 0  # pieces left out of `context` (see REVIEW_CONTEXT_PIECES)
    evaluations: TraceEvaluations | None = None
    user_feedback: list[Score] = field(default_factory=list)
    correction: str = ""  # the reviewer's own corrected answer
    other_corrections: list[Correction] = field(default_factory=list)


# The review page shows at most this many context pieces, each cut to this many
# characters: a RAG trace with 50 long documents must not make a page nobody scrolls.
REVIEW_CONTEXT_PIECES = 20
REVIEW_CONTEXT_CHARS = 4000


def _form_value(score: Score) -> str:
    if score.string_value is not None:
        return score.string_value
    return f"{score.value:g}" if score.value is not None else ""


def review_context(*, queue: AnnotationQueue, item: QueueItem, reviewer: AbstractBaseUser) -> ReviewContext:
    """What the reviewer page shows for one item, and where j/k lead.

    k goes to the reviewer's previous item (by position) that they reviewed or skipped;
    j to their next such item, or — past the last one — to "claim the next".
    """
    project = queue.project
    traces = {
        t.trace_id: t
        for t in Trace.objects.filter(
            project=project, trace_id__in=[item.trace_id, item.pair_trace_id or item.trace_id]
        )
    }
    spans = list(
        Span.objects.filter(project=project, trace_id=item.trace_id)
        .only("span_id", "parent_span_id", "name", "kind", "latency_ms", "status", "model")
        .order_by("start_time", "span_id")[:200]
    )
    configs = list(queue.score_configs.all())
    mine = Score.objects.filter(
        project=project,
        trace_id=item.trace_id,
        span_id__isnull=True,
        author=reviewer,
        source=Source.ANNOTATION,
        name__in=[c.name for c in configs],
    )
    by_name = {s.name: s for s in mine}
    values = {c.pk: _form_value(by_name[c.name]) for c in configs if c.name in by_name}
    comment = next((s.comment for s in by_name.values() if s.comment), "")
    visited = QueueReview.objects.filter(
        item__queue=queue, reviewer=reviewer, status__in=[ReviewStatus.DONE, ReviewStatus.SKIPPED]
    )
    prev_id = (
        visited.filter(item__position__lt=item.position)
        .order_by("-item__position")
        .values_list("item_id", flat=True)
        .first()
    )
    next_id = (
        visited.filter(item__position__gt=item.position)
        .order_by("item__position")
        .values_list("item_id", flat=True)
        .first()
    )
    status = QueueReview.objects.filter(item=item, reviewer=reviewer).values_list("status", flat=True).first()
    trace = traces.get(item.trace_id)
    evidence = _review_evidence(project, trace, reviewer) if trace is not None else {}
    return ReviewContext(
        item=item,
        trace=traces.get(item.trace_id),
        pair_trace=traces.get(item.pair_trace_id) if item.pair_trace_id else None,
        spans=spans,
        configs=configs,
        values=values,
        comment=comment,
        prev_id=prev_id,
        next_id=next_id,
        status=status,
        position=item.position,
        total=QueueItem.objects.filter(queue=queue).count(),
        **evidence,
    )


def _review_evidence(project: Project, trace: Trace, reviewer: AbstractBaseUser) -> dict[str, Any]:
    pieces = context_pieces(trace, spans_by_trace(project, [trace.trace_id])[trace.trace_id])
    shown = [
        ContextPiece(p.kind, p.label, _cut(p.text, REVIEW_CONTEXT_CHARS), p.span_id)
        for p in pieces[:REVIEW_CONTEXT_PIECES]
    ]
    corrections = list(trace_corrections(project=project, trace_id=trace.trace_id).select_related("author"))
    mine = next((c.text for c in corrections if c.author_id == reviewer.pk), "")
    return {
        "context": shown,
        "context_more": max(0, len(pieces) - len(shown)),
        "evaluations": trace_evaluations(project_id=project.pk, trace_id=trace.trace_id, output=trace.output or ""),
        "user_feedback": list(
            Score.objects.filter(project=project, trace_id=trace.trace_id, source=Source.END_USER)
            .order_by("-updated_at")[:20]
        ),
        "correction": mine,
        "other_corrections": [c for c in corrections if c.author_id != reviewer.pk],
    }


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f" … [{len(text) - limit:,} more characters]"


def trace_corrections(*, project: Project | int, trace_id: str):
    """A trace's corrected answers, newest first."""
    return Correction.objects.filter(project=project, trace_id=trace_id).order_by("-updated_at", "-id")


def queue_reviewed_trace_ids(*, queue: AnnotationQueue, only_corrected: bool = False) -> list[str]:
    """Trace ids of the queue's items with at least one completed review, in queue order;
    with `only_corrected`, only those whose trace has a corrected answer."""
    items = QueueItem.objects.filter(queue=queue, reviews__status=ReviewStatus.DONE)
    if only_corrected:
        items = items.filter(trace_id__in=Correction.objects.filter(project_id=queue.project_id)
                             .values("trace_id"))
    return list(dict.fromkeys(items.order_by("position").values_list("trace_id", flat=True)))


def newest_corrections(*, project: Project | int, trace_ids: list[str]) -> dict[str, str]:
    """trace id -> the newest corrected answer of that trace (by any reviewer)."""
    rows = (
        Correction.objects.filter(project=project, trace_id__in=trace_ids)
        .order_by("trace_id", "-updated_at", "-id")
        .distinct("trace_id")
        .values_list("trace_id", "text")
    )
    return dict(rows)


@dataclass(frozen=True)
class ResultRow:
    position: int
    trace_id: str
    pair_trace_id: str | None
    reviewer: str
    status: str
    config: str
    value: float | None
    string_value: str | None
    comment: str
    reviewed_at: datetime


def queue_results(*, queue: AnnotationQueue) -> list[ResultRow]:
    """One row per (item, reviewer, config) of completed reviews, in queue order."""
    reviews = list(
        QueueReview.objects.filter(item__queue=queue, status=ReviewStatus.DONE)
        .select_related("item", "reviewer")
        .order_by("item__position", "reviewer__username")
    )
    config_names = list(queue.score_configs.values_list("name", flat=True))
    scores = Score.objects.filter(
        project=queue.project,
        source=Source.ANNOTATION,
        span_id__isnull=True,
        name__in=config_names,
        trace_id__in={r.item.trace_id for r in reviews},
        author_id__in={r.reviewer_id for r in reviews},
    )
    by_key = {(s.trace_id, s.author_id, s.name): s for s in scores}
    rows = []
    for review in reviews:
        for name in config_names:
            score = by_key.get((review.item.trace_id, review.reviewer_id, name))
            if score is None:
                continue
            rows.append(
                ResultRow(
                    position=review.item.position,
                    trace_id=review.item.trace_id,
                    pair_trace_id=review.item.pair_trace_id,
                    reviewer=review.reviewer.get_username(),
                    status=review.status,
                    config=name,
                    value=score.value,
                    string_value=score.string_value,
                    comment=score.comment,
                    reviewed_at=score.updated_at,
                )
            )
    return rows


def queue_ratings(*, queue: AnnotationQueue) -> dict[str, dict[int, dict[str, Any]]]:
    """config name -> item position -> reviewer -> value (number or label), done reviews only."""
    ratings: dict[str, dict[int, dict[str, Any]]] = defaultdict(lambda: defaultdict(dict))
    for row in queue_results(queue=queue):
        ratings[row.config][row.position][row.reviewer] = (
            row.string_value if row.string_value is not None else row.value
        )
    return ratings
