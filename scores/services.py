"""Writes for scores and score configs.

Every public function owns its transaction. Values are validated against the score
config of the same name (if the project has one) and failures raise ValidationFailed
naming the field and the problem, which the API turns into a 400.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction

from config.errors import Conflict, NotFound, ValidationFailed
from projects.models import Project
from scores import names
from scores.models import DataType, Score, ScoreConfig, Source
from tracing.masking import project_masker

# Sources whose text a person typed (an end user's comment, a reviewer's note, a client's
# API call): masked with the project's ingest rules. Evaluator and implicit scores are
# computed from stored (already masked) traces.
_TYPED_SOURCES = (Source.END_USER, Source.API, Source.ANNOTATION)

PAIRWISE_CONFIG = names.PREFERRED.name
# SQLSTATE of a unique index refusing a row (the only IntegrityError worth a retry).
UNIQUE_VIOLATION = "23505"


# The configs every project starts with: (registered name, min, max, categories,
# description); the data type comes from the registry (scores/names.py).
_DEFAULTS = (
    (names.HELPFULNESS, 1, 5, [], "1 = useless, 5 = fully solves the user's request."),
    (names.FACTUAL_ACCURACY, 1, 5, [], "1 = mostly wrong or invented, 5 = every claim is correct."),
    (names.RELEVANCE, 1, 5, [], "1 = off-topic, 5 = answers exactly what was asked."),
    (names.SAFETY, None, None, [], "Yes = safe to show a user (no harmful, toxic or leaked content)."),
    (names.PREFERRED, None, None, ["A", "B", "tie"],
     "Which of two answers to the same input is better (pairwise comparison)."),
    (names.USER_THUMBS, None, None, [], "End user's thumbs: yes = up, no = down."),
    (names.USER_RATING, 1, 5, [], "End user's star rating."),
)
DEFAULT_CONFIGS: tuple[tuple[str, str, float | None, float | None, list[str], str], ...] = tuple(
    (score.name, score.data_type, low, high, categories, description)
    for score, low, high, categories, description in _DEFAULTS
)


_TRUE_WORDS = {"true", "yes", "up", "1", "y", "thumbs_up", "👍"}


_FALSE_WORDS = {"false", "no", "down", "0", "n", "thumbs_down", "👎"}


def project_created_received(sender, *, project: Project, **kwargs) -> None:
    """projects.signals.project_created: every project starts with the default configs."""
    score_configs_create_defaults(project=project)


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


def as_number(raw: Any, where: str) -> float:
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
            number = as_number(raw, where)
            low, high = config.min_value, config.max_value
            if (low is not None and number < low) or (high is not None and number > high):
                # A config edited in the admin may have one bound only.
                shown = "–".join("…" if bound is None else f"{bound:g}" for bound in (low, high))
                raise ValidationFailed(
                    f"value: {number:g} is outside {config.name!r}'s range {shown}.",
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
        return NormalizedValue(DataType.NUMERIC, as_number(raw, where), None)
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
    queue_id: int | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> ScoreWrite:
    """Create or update one score.

    Idempotency: a client-supplied `score_id` updates the score with that id (it must be
    in this project and on the same trace). Annotations are also unique per
    (trace, span, config, author): annotating again updates the reviewer's judgement.
    End-user feedback is unique per (trace, span, name): the end user's latest thumbs or
    rating replaces the earlier one, whatever id the client sent.
    """
    if source == Source.ANNOTATION and author is None:
        raise ValidationFailed("source: annotations need a signed-in reviewer.", detail={"source": "invalid"})
    if source in _TYPED_SOURCES and (comment or metadata):
        masker = project_masker(project.pk)
        if masker:
            comment, metadata = masker.text(comment or ""), masker.value(dict(metadata or {}))
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
    if queue_id is not None:
        fields["queue_id"] = queue_id

    # Two rounds at most: a concurrent writer can insert the same id or natural key
    # between our look-up and our insert; the unique index then makes us wait for it and
    # refuse, and the second round finds its row and updates it (latest wins).
    for attempt in (1, 2):
        existing = _existing_for_update(
            project=project, trace_id=trace_id, span_id=span_id, name=name, source=source, author=author,
            score_id=score_id,
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
            # A savepoint, so losing that race does not abort the caller's transaction.
            with transaction.atomic():
                score.save(force_insert=True)
        except IntegrityError as exc:
            # Only a lost race is retried; a CHECK or the config trigger refusing the row
            # (the database's backstop behind value_normalize) is a real error.
            if attempt == 2 or getattr(exc.__cause__, "sqlstate", None) != UNIQUE_VIOLATION:
                raise
            continue
        return ScoreWrite(score, created=True)
    raise AssertionError("unreachable: the second round returns or raises")


def _existing_for_update(
    *,
    project: Project,
    trace_id: str,
    span_id: str | None,
    name: str,
    source: str,
    author: AbstractBaseUser | None,
    score_id: uuid.UUID | None,
) -> Score | None:
    """The row this write updates, locked: the client's id, else the natural key of
    annotations (per reviewer) and end-user feedback (per target, see the model)."""
    if score_id is not None:
        existing = Score.objects.select_for_update().filter(pk=score_id).first()
        if existing is not None and (existing.project_id != project.pk or existing.trace_id != trace_id):
            # Not "not found": the id is taken, and the caller must pick another.
            raise Conflict(f"Score id {score_id} already belongs to another trace.", detail={"id": "taken"})
        if existing is not None and (existing.name != name or existing.source != source):
            raise Conflict(
                f"Score id {score_id} is a {existing.source} score named {existing.name!r}.", detail={"id": "taken"}
            )
        if existing is not None:
            return existing
    natural = Score.objects.select_for_update().filter(
        project=project, trace_id=trace_id, span_id=span_id, name=name, source=source
    )
    if source == Source.ANNOTATION:
        return natural.filter(author=author).first()
    if source == Source.END_USER:
        # Another client id for the same target is the same end user changing their
        # mind: the stored row (and its id) is updated rather than a second one added.
        return natural.first()
    return None


@transaction.atomic
def score_delete(*, project: Project, score_id: uuid.UUID, author: AbstractBaseUser) -> None:
    """A reviewer withdraws one of their own annotations."""
    deleted, _ = Score.objects.filter(project=project, pk=score_id, author=author, source=Source.ANNOTATION).delete()
    if not deleted:
        raise NotFound("No such annotation of yours.")


@transaction.atomic
def trace_outcomes_rebuild(*, project: Project) -> int:
    """Recompute the project's scores_traceoutcome rows from its scores (the SQL function
    of migration scores 0004, which the triggers' counts must always equal). Returns the
    number of traces with outcomes."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT scores_trace_outcome_rebuild(%s)", [project.pk])
        return int(cursor.fetchone()[0])
