"""Writes for scores, score configs, end-user feedback, comments and annotation queues.

Every public function owns its transaction. Values are validated against the score
config of the same name (if the project has one) and failures raise ValidationFailed
naming the field and the problem, which the API turns into a 400.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from config.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from feedback.models import (
    AnnotationQueue,
    Comment,
    DataType,
    InteractionEvent,
    QueueItem,
    QueueMode,
    QueueReview,
    ReviewStatus,
    Score,
    ScoreConfig,
    Source,
)
from projects.models import Membership, Project, Role, role_at_least

# How long a claimed queue item stays reserved for its reviewer without activity. Long
# enough to read a long trace, short enough that a closed tab frees the item soon.
CLAIM_TTL = timedelta(minutes=10)

MAX_QUEUE_ITEMS = 2000
MAX_COMMENT_CHARS = 10_000
MAX_EVENT_TEXT_CHARS = 50_000

PAIRWISE_CONFIG = "preferred"

# (name, data_type, min, max, categories, description) — created with every project.
DEFAULT_CONFIGS: tuple[tuple[str, str, float | None, float | None, list[str], str], ...] = (
    ("helpfulness", DataType.NUMERIC, 1, 5, [], "1 = useless, 5 = fully solves the user's request."),
    ("factual_accuracy", DataType.NUMERIC, 1, 5, [], "1 = mostly wrong or invented, 5 = every claim is correct."),
    ("relevance", DataType.NUMERIC, 1, 5, [], "1 = off-topic, 5 = answers exactly what was asked."),
    ("safety", DataType.BOOLEAN, None, None, [], "Yes = safe to show a user (no harmful, toxic or leaked content)."),
    (
        PAIRWISE_CONFIG,
        DataType.CATEGORICAL,
        None,
        None,
        ["A", "B", "tie"],
        "Which of two answers to the same input is better (pairwise comparison).",
    ),
    ("user_thumbs", DataType.BOOLEAN, None, None, [], "End user's thumbs: yes = up, no = down."),
    ("user_rating", DataType.NUMERIC, 1, 5, [], "End user's star rating."),
)

# Names the browser snippet and SDK users reach for first, mapped to the default configs.
FEEDBACK_ALIASES = {"thumbs": "user_thumbs", "thumb": "user_thumbs", "stars": "user_rating", "rating": "user_rating"}

_TRUE_WORDS = {"true", "yes", "up", "1", "y", "thumbs_up", "👍"}
_FALSE_WORDS = {"false", "no", "down", "0", "n", "thumbs_down", "👎"}


# --- score configs --------------------------------------------------------------------


@transaction.atomic
def score_configs_create_defaults(*, project: Project) -> list[ScoreConfig]:
    """Create the default configs a project starts with; existing names are left alone."""
    existing = set(ScoreConfig.objects.filter(project=project).values_list("name", flat=True))
    created = [
        ScoreConfig(
            project=project,
            name=name,
            data_type=data_type,
            min_value=low,
            max_value=high,
            categories=list(categories),
            description=description,
        )
        for name, data_type, low, high, categories, description in DEFAULT_CONFIGS
        if name not in existing
    ]
    return ScoreConfig.objects.bulk_create(created)


@transaction.atomic
def score_config_create(
    *,
    project: Project,
    name: str,
    data_type: str,
    min_value: float | None = None,
    max_value: float | None = None,
    categories: Iterable[str] = (),
    description: str = "",
) -> ScoreConfig:
    name = name.strip()
    if not name or len(name) > 100:
        raise ValidationFailed("name: must be 1 to 100 characters.", detail={"name": "invalid"})
    if data_type not in DataType.values or data_type == DataType.TEXT:
        raise ValidationFailed(
            f"data_type: {data_type!r} is not one of numeric, categorical, boolean.", detail={"data_type": "invalid"}
        )
    cats = [c.strip() for c in categories if c and c.strip()]
    if data_type == DataType.NUMERIC:
        if min_value is None or max_value is None or min_value >= max_value:
            raise ValidationFailed(
                "min_value/max_value: a numeric config needs min_value < max_value.", detail={"max_value": "invalid"}
            )
        cats = []
    else:
        min_value = max_value = None
    if data_type == DataType.CATEGORICAL and len(cats) < 2:
        raise ValidationFailed("categories: a categorical config needs at least two.", detail={"categories": "invalid"})
    if len(set(cats)) != len(cats) or any(len(c) > 200 for c in cats):
        raise ValidationFailed(
            "categories: must be distinct, at most 200 characters each.", detail={"categories": "invalid"}
        )
    if data_type == DataType.BOOLEAN:
        cats = []
    if ScoreConfig.objects.filter(project=project, name=name).exists():
        raise Conflict(f"A score config named {name!r} already exists.", detail={"name": "taken"})
    return ScoreConfig.objects.create(
        project=project,
        name=name,
        data_type=data_type,
        min_value=min_value,
        max_value=max_value,
        categories=cats,
        description=description.strip(),
    )


@transaction.atomic
def score_config_set_archived(*, project: Project, config_id: int, archived: bool) -> ScoreConfig:
    """Archive (or restore) a config: archived ones keep their scores readable, take no new ones."""
    updated = ScoreConfig.objects.filter(project=project, pk=config_id).update(is_archived=archived)
    if not updated:
        raise NotFound("No such score config in this project.")
    return ScoreConfig.objects.get(pk=config_id)


# --- values ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NormalizedValue:
    data_type: str
    value: float | None
    string_value: str | None


def _as_bool(raw: Any, where: str) -> float:
    if isinstance(raw, bool):
        return 1.0 if raw else 0.0
    if isinstance(raw, int | float) and raw in (0, 1):
        return float(raw)
    if isinstance(raw, str) and raw.strip().lower() in _TRUE_WORDS | _FALSE_WORDS:
        return 1.0 if raw.strip().lower() in _TRUE_WORDS else 0.0
    raise ValidationFailed(
        f"value: {raw!r} is not a boolean for {where} (use true/false, 1/0, up/down).", detail={"value": "invalid"}
    )


def _as_number(raw: Any, where: str) -> float:
    if isinstance(raw, bool):
        raise ValidationFailed(f"value: {where} is numeric; got a boolean.", detail={"value": "invalid"})
    if isinstance(raw, int | float):
        number = float(raw)
    elif isinstance(raw, str):
        try:
            number = float(raw.strip())
        except ValueError:
            raise ValidationFailed(
                f"value: {raw!r} is not a number for {where}.", detail={"value": "invalid"}
            ) from None
    else:
        raise ValidationFailed(f"value: {where} is numeric; got {type(raw).__name__}.", detail={"value": "invalid"})
    if not math.isfinite(number):
        raise ValidationFailed(f"value: must be a finite number for {where}.", detail={"value": "invalid"})
    return number


def value_normalize(
    *, config: ScoreConfig | None, raw: Any, data_type: str | None = None, name: str = ""
) -> NormalizedValue:
    """Check `raw` against `config` (or infer its type without one) and split it into columns.

    Raises ValidationFailed whose message names the problem: out of range, unknown
    category, wrong type.
    """
    if config is not None:
        where = f"score config {config.name!r}"
        if data_type is not None and data_type != config.data_type:
            raise ValidationFailed(
                f"data_type: {config.name!r} is {config.data_type}, not {data_type}.", detail={"data_type": "mismatch"}
            )
        if raw is None:
            raise ValidationFailed(f"value: required for {where}.", detail={"value": "required"})
        if config.data_type == DataType.BOOLEAN:
            return NormalizedValue(DataType.BOOLEAN, _as_bool(raw, where), None)
        if config.data_type == DataType.NUMERIC:
            number = _as_number(raw, where)
            low, high = config.min_value, config.max_value
            if (low is not None and number < low) or (high is not None and number > high):
                raise ValidationFailed(
                    f"value: {number:g} is outside {config.name!r}'s range {low:g}–{high:g}.",
                    detail={"value": "out_of_range", "min": low, "max": high},
                )
            return NormalizedValue(DataType.NUMERIC, number, None)
        label = str(raw) if not isinstance(raw, bool) else ("true" if raw else "false")
        if label not in config.categories:
            raise ValidationFailed(
                f"value: {label!r} is not a category of {config.name!r}; expected one of "
                + ", ".join(config.categories)
                + ".",
                detail={"value": "unknown_category", "categories": config.categories},
            )
        return NormalizedValue(DataType.CATEGORICAL, None, label)

    # No config: the type comes from the caller, or from the JSON value itself.
    where = f"score {name!r}"
    if data_type is None:
        if raw is None:
            data_type = DataType.TEXT
        elif isinstance(raw, bool):
            data_type = DataType.BOOLEAN
        elif isinstance(raw, int | float):
            data_type = DataType.NUMERIC
        elif isinstance(raw, str):
            data_type = DataType.CATEGORICAL
        else:
            raise ValidationFailed(
                f"value: must be a number, boolean or string, not {type(raw).__name__}.", detail={"value": "invalid"}
            )
    if data_type == DataType.TEXT:
        if raw is not None:
            raise ValidationFailed(
                "value: a text score carries its words in `comment`; leave value null.", detail={"value": "invalid"}
            )
        return NormalizedValue(DataType.TEXT, None, None)
    if raw is None:
        raise ValidationFailed(f"value: required for a {data_type} {where}.", detail={"value": "required"})
    if data_type == DataType.BOOLEAN:
        return NormalizedValue(DataType.BOOLEAN, _as_bool(raw, where), None)
    if data_type == DataType.NUMERIC:
        return NormalizedValue(DataType.NUMERIC, _as_number(raw, where), None)
    label = str(raw)
    if not label or len(label) > 200:
        raise ValidationFailed("value: a category label must be 1 to 200 characters.", detail={"value": "invalid"})
    return NormalizedValue(DataType.CATEGORICAL, None, label)


def _config_for(project: Project, name: str) -> ScoreConfig | None:
    config = ScoreConfig.objects.filter(project=project, name=name).first()
    if config is not None and config.is_archived:
        raise ValidationFailed(
            f"name: score config {name!r} is archived and takes no new scores.", detail={"name": "archived"}
        )
    return config


# --- scores ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreWrite:
    score: Score
    created: bool


@transaction.atomic
def score_upsert(
    *,
    project: Project,
    trace_id: str,
    name: str,
    value: Any,
    source: str,
    span_id: str | None = None,
    comment: str = "",
    author: AbstractBaseUser | None = None,
    score_id: uuid.UUID | None = None,
    data_type: str | None = None,
    queue: AnnotationQueue | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> ScoreWrite:
    """Create or update one score.

    Idempotency: a client-supplied `score_id` updates the score with that id (it must be
    in this project and on the same trace). Annotations are also unique per
    (trace, span, config, author): annotating again updates the reviewer's judgement.
    """
    if source == Source.ANNOTATION and author is None:
        raise ValidationFailed("source: annotations need a signed-in reviewer.", detail={"source": "invalid"})
    config = _config_for(project, name)
    normalized = value_normalize(config=config, raw=value, data_type=data_type, name=name)
    fields = {
        "value": normalized.value,
        "string_value": normalized.string_value,
        "data_type": normalized.data_type,
        "comment": comment or "",
        "config": config,
        "metadata": dict(metadata or {}),
    }
    if queue is not None:
        fields["queue"] = queue

    existing: Score | None = None
    if score_id is not None:
        existing = Score.objects.select_for_update().filter(pk=score_id).first()
        if existing is not None and (existing.project_id != project.pk or existing.trace_id != trace_id):
            # Not "not found": the id is taken, and the caller must pick another.
            raise Conflict(f"Score id {score_id} already belongs to another trace.", detail={"id": "taken"})
        if existing is not None and (existing.name != name or existing.source != source):
            raise Conflict(
                f"Score id {score_id} is a {existing.source} score named {existing.name!r}.", detail={"id": "taken"}
            )
    if existing is None and source == Source.ANNOTATION:
        existing = (
            Score.objects.select_for_update()
            .filter(project=project, trace_id=trace_id, span_id=span_id, name=name, author=author, source=source)
            .first()
        )
    if existing is not None:
        for field, new in fields.items():
            setattr(existing, field, new)
        existing.save()
        return ScoreWrite(existing, created=False)
    score = Score(
        id=score_id or uuid.uuid4(),
        project=project,
        trace_id=trace_id,
        span_id=span_id,
        name=name,
        source=source,
        author=author,
        **fields,
    )
    try:
        # A savepoint, so a concurrent insert of the same id or annotation turns into an
        # update below instead of aborting the caller's transaction.
        with transaction.atomic():
            score.save(force_insert=True)
    except IntegrityError:
        return score_upsert(
            project=project,
            trace_id=trace_id,
            name=name,
            value=value,
            source=source,
            span_id=span_id,
            comment=comment,
            author=author,
            score_id=score_id,
            data_type=data_type,
            queue=queue,
            metadata=metadata,
        )
    return ScoreWrite(score, created=True)


@transaction.atomic
def score_delete(*, project: Project, score_id: uuid.UUID, author: AbstractBaseUser) -> None:
    """A reviewer withdraws one of their own annotations."""
    deleted, _ = Score.objects.filter(project=project, pk=score_id, author=author, source=Source.ANNOTATION).delete()
    if not deleted:
        raise NotFound("No such annotation of yours.")


# --- end-user feedback ----------------------------------------------------------------


@transaction.atomic
def feedback_record(
    *,
    project: Project,
    trace_id: str,
    kind: str,
    name: str,
    value: Any = None,
    comment: str = "",
    span_id: str | None = None,
    tags: Iterable[str] = (),
    text: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    client_id: uuid.UUID | None = None,
) -> Score | InteractionEvent:
    """Store what an end user said (kind=feedback → Score) or did (kind=event → InteractionEvent).

    The trace need not exist yet: rows are keyed by the trace id, so feedback that
    beats its spans to the server shows up once they land.
    """
    meta = dict(metadata or {})
    tags = [str(t)[:100] for t in tags]
    if kind == "feedback":
        name = FEEDBACK_ALIASES.get(name, name)
        if tags:
            meta["tags"] = tags
        if value is None and not comment and not tags:
            raise ValidationFailed("value: feedback needs a value, a comment or tags.", detail={"value": "required"})
        return score_upsert(
            project=project,
            trace_id=trace_id,
            span_id=span_id,
            name=name,
            value=value,
            comment=comment,
            source=Source.END_USER,
            score_id=client_id,
            metadata=meta,
        ).score
    if kind != "event":
        raise ValidationFailed(f"kind: {kind!r} is not one of feedback, event.", detail={"kind": "invalid"})

    number: float | None = None
    if name == "edit":
        # The edited text is the point of an edit event; accept it in `text` or `value`.
        if text is None and isinstance(value, str):
            text, value = value, None
        if not text:
            raise ValidationFailed("text: an edit event needs the edited text.", detail={"text": "required"})
    if name == "dwell_ms":
        number = _as_number(value, "dwell_ms")
        if number < 0:
            raise ValidationFailed("value: dwell_ms must not be negative.", detail={"value": "invalid"})
    elif isinstance(value, bool):
        number = 1.0 if value else 0.0
    elif isinstance(value, int | float):
        number = _as_number(value, f"event {name!r}")
    elif isinstance(value, str):
        text = text if text is not None else value
    elif isinstance(value, dict):
        meta.update(value)
    elif value is not None:
        raise ValidationFailed("value: must be a number, boolean, string or object.", detail={"value": "invalid"})
    if text is not None and len(text) > MAX_EVENT_TEXT_CHARS:
        raise ValidationFailed(f"text: at most {MAX_EVENT_TEXT_CHARS} characters.", detail={"text": "too_long"})
    if tags:
        meta["tags"] = tags
    if comment:
        meta["comment"] = comment
    event_fields = {
        "trace_id": trace_id,
        "span_id": span_id,
        "name": name,
        "value": number,
        "text": text,
        "metadata": meta,
    }
    if client_id is not None:
        # A retried request (network blip, page unload) records the event once.
        event, created = InteractionEvent.objects.get_or_create(
            pk=client_id, defaults={"project": project, **event_fields}
        )
        if not created and (event.project_id != project.pk or event.trace_id != trace_id):
            raise Conflict(f"Event id {client_id} already belongs to another trace.", detail={"id": "taken"})
        return event
    return InteractionEvent.objects.create(project=project, **event_fields)


# --- comments -------------------------------------------------------------------------


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


# --- annotation queues ----------------------------------------------------------------


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
    """Create a queue over `items` ((trace_id, pair_trace_id or None), in review order)."""
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
    candidates = (
        QueueItem.objects.filter(queue=queue, done_count__lt=queue.reviews_per_item)
        .exclude(Exists(finished_by_me))
        .annotate(others=_active_claims(now, reviewer))
        .filter(done_count__lt=queue.reviews_per_item - F("others"))
        .order_by("position")
    )
    passed: list[int] = []
    # First pass skips rows another reviewer is claiming right now, so reviewers never
    # queue up behind each other. Rows skipped that way may still have room (several
    # reviews per item), so before answering "nothing left" a second pass waits for
    # those locks — claim transactions are a few milliseconds long.
    for skip_locked in (True, False):
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
) -> QueueItem:
    """Record the reviewer's scores for an item (config id → raw value) and mark it done.

    Every queue config needs a value; a re-submit updates the scores without counting
    the item twice.
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
            queue=queue,
            metadata=metadata,
        )
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


# --- implicit-feedback signals ------------------------------------------------------------

# SessionSignalState, signals and the embedder are imported here rather than at the top:
# this section was added by the signals work and keeps its dependencies next to it.
from feedback import signals as _signals  # noqa: E402
from feedback.models import SessionSignalState  # noqa: E402


def signal_score_id(project: Project, trace_id: str, name: str) -> uuid.UUID:
    # Deterministic per (trace, signal): recomputing a session updates the same rows,
    # and a stale signal can be deleted by id without touching implicit scores that
    # clients posted themselves through the API.
    return uuid.uuid5(uuid.NAMESPACE_URL, f"spyglass:{project.pk}:{trace_id}:implicit:{name}")


def _default_embedder(texts: list[str]) -> Any:
    from feedback.evaluators.embeddings import embed_texts

    return embed_texts(texts)


def signals_params() -> _signals.SignalParams:
    from django.conf import settings

    minutes = getattr(settings, "SPYGLASS_SIGNALS_ABANDON_MINUTES", 30)
    return _signals.SignalParams(abandon_after=timedelta(minutes=minutes))


@dataclass(frozen=True)
class SessionSignalsResult:
    session_id: str
    signals: list[_signals.Signal]
    removed: int
    closed: bool


@transaction.atomic
def session_signals_compute(
    *,
    project: Project,
    session_id: str,
    now: Any = None,
    embed: _signals.Embedder | None = None,
    params: _signals.SignalParams | None = None,
) -> SessionSignalsResult:
    """Recompute one session's implicit signals and store them as `source=implicit` scores.

    Idempotent: the same data gives the same rows (deterministic ids, upserts), and a
    signal that no longer holds — the user copied the answer after all, a late turn
    makes the old last turn no longer the last — is deleted.
    """
    from django.db import connection

    from tracing.models import Trace

    now = now or timezone.now()
    params = params or signals_params()
    # Serialise work on one session: two workers (an ingest batch and the abandon sweep)
    # computing it at once could otherwise interleave, and the one that read older data
    # could commit last. The lock is held only for this transaction.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"signals:{project.pk}:{session_id}"])
    rows = list(
        Trace.objects.filter(project=project, session_id=session_id)
        .order_by("start_time", "id")
        .values("trace_id", "start_time", "end_time", "input", "output")
    )
    trace_ids = [r["trace_id"] for r in rows]
    turns = [
        _signals.Turn(
            trace_id=r["trace_id"],
            start_time=r["start_time"],
            end_time=r["end_time"],
            user_message=_signals.user_message_of(r["input"]),
            answer=r["output"] or "",
        )
        for r in rows
    ]
    events = [
        _signals.Event(trace_id=e.trace_id, name=e.name, created_at=e.created_at, value=e.value, text=e.text)
        for e in InteractionEvent.objects.filter(project=project, trace_id__in=trace_ids)
    ]
    positive = frozenset(
        trace_id
        for trace_id, name, value in Score.objects.filter(
            project=project, trace_id__in=trace_ids, source=Source.END_USER, name__in=("user_thumbs", "user_rating")
        ).values_list("trace_id", "name", "value")
        if value is not None and ((name == "user_thumbs" and value >= 0.5) or (name == "user_rating" and value >= 4))
    )
    computed = _signals.session_signals(
        turns, events, embed=embed or _default_embedder, now=now, params=params, positive_trace_ids=positive
    )
    kept = set()
    for signal in computed:
        score_id = signal_score_id(project, signal.trace_id, signal.name)
        kept.add(score_id)
        score_upsert(
            project=project,
            trace_id=signal.trace_id,
            name=signal.name,
            value=signal.value,
            source=Source.IMPLICIT,
            score_id=score_id,
            metadata={"signal": signal.name, "session_id": session_id, **signal.evidence},
        )
    possible = {signal_score_id(project, t, name) for t in trace_ids for name in _signals.SIGNAL_NAMES}
    removed, _ = Score.objects.filter(project=project, pk__in=possible - kept).delete()

    last_activity = _signals.last_activity(turns, events)
    closed = last_activity is not None and now - last_activity >= params.abandon_after
    if last_activity is not None:
        SessionSignalState.objects.update_or_create(
            project=project,
            session_id=session_id,
            defaults={"last_activity_at": last_activity, "computed_at": now, "closed": closed},
        )
    return SessionSignalsResult(session_id=session_id, signals=computed, removed=removed, closed=closed)


def sessions_due_for_close(*, now: Any = None, limit: int = 1000) -> list[tuple[int, str]]:
    """(project id, session id) of open sessions idle past the abandon threshold."""
    now = now or timezone.now()
    cutoff = now - signals_params().abandon_after
    return list(
        SessionSignalState.objects.filter(closed=False, last_activity_at__lte=cutoff)
        .order_by("last_activity_at")
        .values_list("project_id", "session_id")[:limit]
    )
