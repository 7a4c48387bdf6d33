"""Writes for comments and annotation queues: create a queue from a trace filter, claim
items with an expiring lock, submit reviews (as annotation Scores), skip.

Every public function owns its transaction; failures raise typed domain errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotation.models import AnnotationQueue, Comment, Correction, QueueItem, QueueMode, QueueReview, ReviewStatus
from config.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from evaluation.backlog import traces_rescue
from projects.models import Membership, Project, Role, role_at_least
from scores.models import Score, ScoreConfig, Source
from scores.services import PAIRWISE_CONFIG, score_upsert
from tracing.masking import project_masker

# How long a claimed queue item stays reserved for its reviewer without activity. Long
# enough to read a long trace, short enough that a closed tab frees the item soon.
CLAIM_TTL = timedelta(minutes=10)


MAX_QUEUE_ITEMS = 2000


MAX_COMMENT_CHARS = 10_000

# A corrected answer is a whole answer (it becomes a dataset's expected output), so it
# may be long; the same cap as a dataset item's text.
MAX_CORRECTION_CHARS = 1_000_000


def correction_save(
    *, project: Project, trace_id: str, author: AbstractBaseUser, text: str, queue: AnnotationQueue | None = None
) -> Correction | None:
    """Set the reviewer's corrected answer for a trace; blank text removes it.

    Leading and trailing whitespace is kept inside the answer but a text of only
    whitespace counts as blank (a reviewer clearing the box).
    """
    if len(text) > MAX_CORRECTION_CHARS:
        raise ValidationFailed(
            f"correction: at most {MAX_CORRECTION_CHARS} characters.", detail={"correction": "too_long"}
        )
    if not text.strip():
        Correction.objects.filter(project=project, trace_id=trace_id, author=author).delete()
        return None
    # Typed by a person, so it gets the project's ingest masking like score comments:
    # a reviewer pasting the customer's card number must not store it.
    masker = project_masker(project.pk)
    if masker:
        text = masker.text(text)
    correction, _ = Correction.objects.update_or_create(
        project=project, trace_id=trace_id, author=author, defaults={"text": text, "queue": queue}
    )
    return correction


@transaction.atomic
def comment_create(
    *,
    project: Project,
    trace_id: str,
    author: AbstractBaseUser,
    body: str,
    span_id: str | None = None,
    parent_id: int | None = None,
) -> Comment:
    body = body.strip()
    if not body:
        raise ValidationFailed("body: a comment must not be empty.", detail={"body": "required"})
    if len(body) > MAX_COMMENT_CHARS:
        raise ValidationFailed(f"body: at most {MAX_COMMENT_CHARS} characters.", detail={"body": "too_long"})
    parent = None
    if parent_id is not None:
        parent = Comment.objects.filter(project=project, trace_id=trace_id, pk=parent_id).first()
        if parent is None:
            raise NotFound("The comment you reply to is not on this trace.")
        # Replies to replies attach to the thread's first comment: one level of
        # threading reads well; deeper trees become unreadable in a side panel.
        if parent.parent_id is not None:
            parent = Comment.objects.get(pk=parent.parent_id)
    if parent is not None:
        span_id = parent.span_id  # a reply is about what its thread is about
    return Comment.objects.create(
        project=project, trace_id=trace_id, span_id=span_id, parent=parent, author=author, body=body
    )


def _reviewers_of(project: Project, user_ids: Iterable[int]) -> list[int]:
    ids = set(user_ids)
    found = {m.user_id: m.role for m in Membership.objects.filter(project=project, user_id__in=ids)}
    bad = [uid for uid in ids if uid not in found or not role_at_least(found[uid], Role.REVIEWER)]
    if bad:
        raise ValidationFailed(
            "assignees: every assignee must be a reviewer (or higher) of this project.", detail={"assignees": bad}
        )
    return sorted(ids)


@transaction.atomic
def queue_create(
    *,
    project: Project,
    name: str,
    created_by: AbstractBaseUser,
    items: list[tuple[str, str | None]],
    config_ids: Iterable[int],
    mode: str = QueueMode.SINGLE,
    description: str = "",
    assignee_ids: Iterable[int] = (),
    reviews_per_item: int = 1,
    source_filter: Mapping[str, Any] | None = None,
) -> AnnotationQueue:
    """Create a queue over `items` ((trace_id, pair_trace_id or None), in review order).

    A queue holds a trace once (unique per queue and trace): a repeated trace is skipped,
    keeping its first place and pair, and the positions stay 1..n.
    """
    name = name.strip()
    if not name:
        raise ValidationFailed("name: a queue needs a name.", detail={"name": "required"})
    if mode not in QueueMode.values:
        raise ValidationFailed(
            f"mode: {mode!r} is not one of {', '.join(QueueMode.values)}.", detail={"mode": "invalid"}
        )
    if not 1 <= reviews_per_item <= 10:
        raise ValidationFailed("reviews_per_item: must be between 1 and 10.", detail={"reviews_per_item": "invalid"})
    configs = list(ScoreConfig.objects.filter(project=project, pk__in=list(config_ids), is_archived=False))
    if mode == QueueMode.PAIRWISE and not any(c.name == PAIRWISE_CONFIG for c in configs):
        preferred = ScoreConfig.objects.filter(project=project, name=PAIRWISE_CONFIG, is_archived=False).first()
        if preferred is None:
            raise ValidationFailed(
                f"score_configs: pairwise mode records {PAIRWISE_CONFIG!r}, which this project lacks.",
                detail={"score_configs": "missing_preferred"},
            )
        configs.append(preferred)
    if not configs:
        raise ValidationFailed("score_configs: choose at least one score config.", detail={"score_configs": "required"})
    first_of_trace: dict[str, str | None] = {}
    for trace_id, pair in items:
        first_of_trace.setdefault(trace_id, pair)
    items = list(first_of_trace.items())
    if not items:
        raise ValidationFailed("filter: no traces match; the queue would be empty.", detail={"filter": "empty"})
    if len(items) > MAX_QUEUE_ITEMS:
        raise ValidationFailed(f"filter: at most {MAX_QUEUE_ITEMS} items per queue.", detail={"filter": "too_many"})
    if mode == QueueMode.PAIRWISE and any(pair is None for _, pair in items):
        raise ValidationFailed("items: every pairwise item needs two traces.", detail={"items": "unpaired"})
    assignees = _reviewers_of(project, assignee_ids)
    queue = AnnotationQueue.objects.create(
        project=project,
        name=name,
        description=description.strip(),
        mode=mode,
        reviews_per_item=reviews_per_item,
        source_filter=dict(source_filter or {}),
        created_by=created_by,
    )
    queue.score_configs.set(configs)
    queue.assignees.set(assignees)
    QueueItem.objects.bulk_create(
        QueueItem(queue=queue, project=project, trace_id=trace_id, pair_trace_id=pair, position=i + 1)
        for i, (trace_id, pair) in enumerate(items)
    )
    # Traces in a queue are never left unscored by the backlog policy, also when it
    # skipped them before they were queued.
    queued = sorted({t for trace_id, pair in items for t in (trace_id, pair) if t})
    transaction.on_commit(lambda: traces_rescue(project_id=project.pk, trace_ids=queued))
    return queue


def queue_check_reviewer(*, queue: AnnotationQueue, user: AbstractBaseUser, role: str) -> None:
    """Raise PermissionDenied unless `user` may work `queue`."""
    if not role_at_least(role, Role.REVIEWER):
        raise PermissionDenied("Reviewing needs the reviewer role.")
    assigned = list(queue.assignees.values_list("pk", flat=True))
    if assigned and user.pk not in assigned:
        raise PermissionDenied("This queue is assigned to other reviewers.")


def _active_claims(now: Any, reviewer: AbstractBaseUser) -> Subquery:
    """Per item: completed reviews are on the row; this counts other live claims."""
    return Coalesce(
        Subquery(
            QueueReview.objects.filter(item=OuterRef("pk"), status=ReviewStatus.CLAIMED, locked_until__gt=now)
            .exclude(reviewer=reviewer)
            .values("item")
            .annotate(n=Count("*"))
            .values("n")[:1],
            output_field=IntegerField(),
        ),
        Value(0),
    )


def _claim(item: QueueItem, reviewer: AbstractBaseUser, now: Any) -> None:
    QueueReview.objects.update_or_create(
        item=item,
        reviewer=reviewer,
        defaults={"project_id": item.project_id, "status": ReviewStatus.CLAIMED, "locked_until": now + CLAIM_TTL},
    )


@transaction.atomic
def queue_claim_next(*, queue: AnnotationQueue, reviewer: AbstractBaseUser) -> QueueItem | None:
    """The next item for `reviewer`, reserved for CLAIM_TTL; None when nothing is left.

    An item is available while (completed reviews + other reviewers' live claims) <
    reviews_per_item and this reviewer has not finished or skipped it. The candidate row
    is locked with FOR UPDATE SKIP LOCKED: two reviewers claiming at the same instant
    lock different rows, so neither can take an item the other is taking — the second
    one's count check also sees the first one's committed claim.
    """
    now = timezone.now()
    # Resume the reviewer's own live claim first (reload, back button, second tab).
    mine = (
        QueueItem.objects.filter(
            queue=queue, reviews__reviewer=reviewer, reviews__status=ReviewStatus.CLAIMED, reviews__locked_until__gt=now
        )
        .order_by("position")
        .first()
    )
    if mine is not None:
        _claim(mine, reviewer, now)
        return mine
    finished_by_me = QueueReview.objects.filter(
        item=OuterRef("pk"), reviewer=reviewer, status__in=[ReviewStatus.DONE, ReviewStatus.SKIPPED]
    )
    open_items = (
        QueueItem.objects.filter(queue=queue, done_count__lt=queue.reviews_per_item)
        .exclude(Exists(finished_by_me))
        .order_by("position")
    )
    with_room = open_items.annotate(others=_active_claims(now, reviewer)).filter(
        done_count__lt=queue.reviews_per_item - F("others")
    )
    passed: list[int] = []
    # First pass skips rows another reviewer is claiming right now, so reviewers never
    # queue up behind each other. Rows skipped that way may still have room (several
    # reviews per item), so before answering "nothing left" a second pass waits for
    # those locks — claim transactions are a few milliseconds long. The second pass must
    # not filter on the claim count: after waiting, PostgreSQL re-checks the row's new
    # version against the subquery's old snapshot, so a reviewer who has just turned a
    # claim into a review counts twice and the item looks full (a CI run lost a review
    # that way). _has_room counts afresh under the lock instead.
    for skip_locked, candidates in ((True, with_room), (False, open_items)):
        while True:
            candidate = (
                candidates.exclude(pk__in=passed).select_for_update(skip_locked=skip_locked, of=("self",)).first()
            )
            if candidate is None:
                break
            # The filter above ran on the statement's snapshot: a claim committed between
            # that snapshot and our row lock is invisible to it (Postgres re-checks only
            # the locked row's own columns). Every claimer holds this row lock while it
            # writes its claim, so a fresh count now sees them all.
            if _has_room(queue, candidate, reviewer, now):
                _claim(candidate, reviewer, now)
                return candidate
            passed.append(candidate.pk)
    return None


def _has_room(queue: AnnotationQueue, item: QueueItem, reviewer: AbstractBaseUser, now: Any) -> bool:
    done = QueueItem.objects.filter(pk=item.pk).values_list("done_count", flat=True).get()
    others = (
        QueueReview.objects.filter(item=item, status=ReviewStatus.CLAIMED, locked_until__gt=now)
        .exclude(reviewer=reviewer)
        .count()
    )
    return done + others < queue.reviews_per_item


@transaction.atomic
def queue_claim_item(*, queue: AnnotationQueue, item_id: int, reviewer: AbstractBaseUser) -> QueueItem:
    """Open one item directly (link, j/k): the reviewer's own items always; others only
    while there is room for another review. Raises Conflict when it is taken."""
    now = timezone.now()
    item = QueueItem.objects.select_for_update().filter(queue=queue, pk=item_id).first()
    if item is None:
        raise NotFound("No such item in this queue.")
    review = QueueReview.objects.filter(item=item, reviewer=reviewer).first()
    if review is not None and review.status in (ReviewStatus.DONE, ReviewStatus.SKIPPED):
        return item  # revisiting your own work never needs a lock
    if not _has_room(queue, item, reviewer, now):
        raise Conflict("Another reviewer is working on this item.", code="taken")
    _claim(item, reviewer, now)
    return item


@transaction.atomic
def queue_item_submit(
    *,
    queue: AnnotationQueue,
    item_id: int,
    reviewer: AbstractBaseUser,
    values: Mapping[int, Any],
    comment: str = "",
    correction: str | None = None,
) -> QueueItem:
    """Record the reviewer's scores for an item (config id → raw value) and mark it done.

    Every queue config needs a value; a re-submit updates the scores without counting
    the item twice. `correction` (None: leave as is) sets or clears the reviewer's
    corrected answer for the item's trace.
    """
    item = QueueItem.objects.select_for_update().filter(queue=queue, pk=item_id).first()
    if item is None:
        raise NotFound("No such item in this queue.")
    review = QueueReview.objects.select_for_update().filter(item=item, reviewer=reviewer).first()
    if review is None:
        raise Conflict("Claim the item before submitting (open it from the queue).", code="not_claimed")
    configs = list(queue.score_configs.all())
    missing = [c.name for c in configs if values.get(c.pk) in (None, "")]
    if missing:
        raise ValidationFailed(
            "scores: give a value for " + ", ".join(missing) + ".",
            detail={"scores": {name: "required" for name in missing}},
        )
    for config in configs:
        raw = values[config.pk]
        if config.name == PAIRWISE_CONFIG and queue.mode == QueueMode.PAIRWISE:
            metadata = {"pair_trace_id": item.pair_trace_id, "queue_item": item.pk}
        else:
            metadata = {"queue_item": item.pk}
        score_upsert(
            project=queue.project,
            trace_id=item.trace_id,
            name=config.name,
            value=raw,
            source=Source.ANNOTATION,
            author=reviewer,
            comment=comment,
            queue_id=queue.pk,
            metadata=metadata,
        )
    if correction is not None:
        correction_save(project=queue.project, trace_id=item.trace_id, author=reviewer, text=correction, queue=queue)
    if review.status != ReviewStatus.DONE:
        review.status = ReviewStatus.DONE
        review.locked_until = None
        review.save(update_fields=["status", "locked_until", "updated_at"])
        QueueItem.objects.filter(pk=item.pk).update(done_count=F("done_count") + 1)
        item.refresh_from_db(fields=["done_count"])
    return item


@transaction.atomic
def queue_item_skip(*, queue: AnnotationQueue, item_id: int, reviewer: AbstractBaseUser) -> None:
    """Pass an item on: it leaves this reviewer's list and is free for others at once."""
    item = QueueItem.objects.filter(queue=queue, pk=item_id).first()
    if item is None:
        raise NotFound("No such item in this queue.")
    review = QueueReview.objects.filter(item=item, reviewer=reviewer).first()
    if review is not None and review.status == ReviewStatus.DONE:
        return  # already reviewed; skipping afterwards changes nothing
    QueueReview.objects.update_or_create(
        item=item,
        reviewer=reviewer,
        defaults={"project_id": item.project_id, "status": ReviewStatus.SKIPPED, "locked_until": None},
    )


def queue_release_expired(*, now: Any = None) -> int:
    """Drop stale claims (housekeeping; claiming already ignores expired ones)."""
    now = now or timezone.now()
    deleted, _ = QueueReview.objects.filter(status=ReviewStatus.CLAIMED, locked_until__lte=now).delete()
    return deleted


@transaction.atomic
def trace_annotate(
    *,
    project: Project,
    trace_id: str,
    author: AbstractBaseUser,
    values: Mapping[int, Any],
    comment: str = "",
    span_id: str | None = None,
) -> list[Score]:
    """A reviewer's scores for a trace (or one span) from the trace page's panel.

    `values` maps config id -> raw form value; blank values are left out. All or
    nothing: one invalid value rejects the whole form, so the page never shows half a
    judgement.
    """
    configs = {c.pk: c for c in ScoreConfig.objects.filter(project=project, pk__in=list(values))}
    given = {cid: raw for cid, raw in values.items() if raw not in (None, "")}
    if not given:
        raise ValidationFailed("scores: choose at least one value.", detail={"scores": "required"})
    unknown = [cid for cid in given if cid not in configs]
    if unknown:
        raise ValidationFailed("scores: unknown score config.", detail={"scores": unknown})
    return [
        score_upsert(
            project=project,
            trace_id=trace_id,
            span_id=span_id,
            name=configs[cid].name,
            value=raw,
            comment=comment,
            source=Source.ANNOTATION,
            author=author,
        ).score
        for cid, raw in given.items()
    ]
