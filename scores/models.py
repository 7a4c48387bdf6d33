"""Scores: every judgement of a trace or span (end user, reviewer, evaluator, implicit
signal or API) is one Score row, so pages and dashboards treat them alike.

Scores reference traces by the OTel trace id (like spans), not by a foreign key:
feedback may arrive before its trace, and is linked simply by the trace landing.
Score names that Spyglass itself writes are listed once, in scores/names.py.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from projects.models import Project


class DataType(models.TextChoices):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    BOOLEAN = "boolean"
    # Free text from an end user ("what went wrong?"): the words are in `comment`.
    TEXT = "text"


class Source(models.TextChoices):
    END_USER = "end_user"
    ANNOTATION = "annotation"
    EVALUATOR = "evaluator"
    IMPLICIT = "implicit"
    API = "api"


class ScoreConfig(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    data_type = models.CharField(max_length=16, choices=DataType.choices)
    min_value = models.FloatField(null=True, blank=True)
    max_value = models.FloatField(null=True, blank=True)
    categories = models.JSONField(default=list, blank=True)  # e.g. ["A", "B", "tie"]
    description = models.TextField(blank=True, default="")
    is_archived = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="score_config_unique_name"),
            # An empty or inverted range would refuse every score (or, for the admin's
            # hand edits, make "out of range" meaningless).
            models.CheckConstraint(
                condition=Q(min_value__isnull=True) | Q(max_value__isnull=True) | Q(min_value__lt=F("max_value")),
                name="score_config_min_below_max",
            ),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_likert(self) -> bool:
        """A small integer scale (1–5, 0–10): rendered as buttons with number shortcuts."""
        return (
            self.data_type == DataType.NUMERIC
            and self.min_value is not None
            and self.max_value is not None
            and float(self.min_value).is_integer()
            and float(self.max_value).is_integer()
            and 0 <= self.max_value - self.min_value <= 10
        )

    def options(self) -> list[tuple[str, str, str]]:
        """(form value, label, keyboard key) for the choices a reviewer clicks.

        Keys: the value itself on a Likert scale (1–5), 0/1 for no/yes, and 1..n for
        categories in their configured order. Empty for open numeric ranges.
        """
        if self.data_type == DataType.BOOLEAN:
            return [("0", "No", "0"), ("1", "Yes", "1")]
        if self.data_type == DataType.CATEGORICAL:
            return [(c, c, str(i + 1) if i < 9 else "") for i, c in enumerate(self.categories)]
        if self.is_likert:
            low, high = int(self.min_value), int(self.max_value)
            return [(str(v), str(v), str(v) if 0 <= v <= 9 else "") for v in range(low, high + 1)]
        return []


class Score(models.Model):
    # Client-suppliable id: re-posting the same id updates instead of duplicating.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    trace_id = models.CharField(max_length=32)
    span_id = models.CharField(max_length=16, null=True, blank=True)
    name = models.CharField(max_length=100)
    value = models.FloatField(null=True, blank=True)  # numeric and boolean (0/1)
    string_value = models.CharField(max_length=200, null=True, blank=True)  # categorical label
    data_type = models.CharField(max_length=16, choices=DataType.choices)
    source = models.CharField(max_length=16, choices=Source.choices)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    config = models.ForeignKey(ScoreConfig, null=True, blank=True, on_delete=models.SET_NULL)
    # The annotation queue a reviewer was working when giving this score (exports,
    # agreement). An id, not a foreign key: annotation sits above scores, and scores
    # must not depend on it.
    queue_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    comment = models.TextField(blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # One judgement per reviewer, target and config: annotating again (from the
            # trace page or another queue) updates it, so agreement never counts a
            # reviewer twice.
            models.UniqueConstraint(
                fields=["project", "trace_id", "span_id", "name", "author"],
                condition=Q(source="annotation"),
                nulls_distinct=False,
                name="score_one_annotation_per_author",
            ),
            # One end-user judgement per target and name: a trace belongs to one end user
            # (its user_id), so "the same end user" is the trace itself; a second thumbs or
            # rating on it replaces the first (latest wins) instead of inflating the rates
            # of the users and prompt pages. A span of the trace is a separate target.
            models.UniqueConstraint(
                fields=["project", "trace_id", "span_id", "name"],
                condition=Q(source="end_user"),
                nulls_distinct=False,
                name="score_one_end_user_per_target",
            ),
            # The columns must agree with data_type, whatever wrote the row (the services
            # check values first and answer 400; these catch bulk writes and hand edits).
            # The config's range and categories live in another table: the constraint
            # trigger score_fits_config (migration scores 0003) checks those.
            models.CheckConstraint(condition=Q(data_type__in=DataType.values), name="score_data_type_known"),
            models.CheckConstraint(
                condition=~Q(data_type=DataType.BOOLEAN) | (Q(value__isnull=False) & Q(value__in=[0.0, 1.0])),
                name="score_boolean_is_0_or_1",
            ),
            # Postgres orders NaN above +Infinity, so this range also refuses NaN.
            models.CheckConstraint(
                condition=~Q(data_type=DataType.NUMERIC)
                | (Q(value__isnull=False) & Q(value__gt=float("-inf")) & Q(value__lt=float("inf"))),
                name="score_numeric_is_finite",
            ),
            models.CheckConstraint(
                condition=~Q(data_type=DataType.CATEGORICAL) | Q(string_value__isnull=False),
                name="score_categorical_has_label",
            ),
            models.CheckConstraint(
                condition=~Q(data_type=DataType.TEXT) | Q(value__isnull=True, string_value__isnull=True),
                name="score_text_has_no_value",
            ),
        ]
        indexes = [
            models.Index(fields=["project", "trace_id"], name="score_project_trace"),
            models.Index(fields=["project", "name", "-created_at"], name="score_project_name_time"),
            models.Index(fields=["project", "source", "name"], name="score_project_source"),
            models.Index(fields=["project", "-created_at", "-id"], name="score_project_time"),
        ]

    def __str__(self) -> str:
        return f"{self.name}={self.display_value}"

    @property
    def display_value(self) -> str:
        if self.data_type == DataType.BOOLEAN and self.value is not None:
            return "yes" if self.value >= 0.5 else "no"
        if self.string_value is not None:
            return self.string_value
        if self.value is None:
            return ""
        return f"{self.value:g}"


class TraceOutcome(models.Model):
    """The scores of one trace that the slices page reads, folded into one narrow row:
    counts and sums per outcome, so the page scans these rows instead of grouping every
    score of the window per trace (the pivot was most of its time at 250,000 traces).

    Kept by the database, not by the services: statement-level triggers on scores_score
    (migration scores 0004) add each inserted score's counts and subtract each deleted
    one's, so bulk_create, queryset deletes, cascades, COPY and hand-run SQL all keep the
    table right, which no set of service calls could promise. Adding counts commutes, so
    concurrent writers to one trace need no lock beyond the row's own (a recompute from
    the scores would need one: each writer's snapshot misses the other's uncommitted
    score). `manage.py trace_outcomes_rebuild` recomputes it from the scores.

    A count of zero means "no such score": hallucinated is true when hall_x > 0, false
    when only hall_n > 0, unknown otherwise (what bool_or over the scores gives). Which
    scores count, and the flag rule, are the slices page's (slices/selectors.py); the
    names and thresholds are those of scores/names.py, written into the trigger.
    """

    pk = models.CompositePrimaryKey("project_id", "trace_id")
    # No index of its own: the primary key (project_id, trace_id) serves every lookup.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    trace_id = models.CharField(max_length=32)
    # user_thumbs (any source): how many, and the sum of their values (0/1).
    thumbs_n = models.IntegerField(default=0)
    thumbs_sum = models.FloatField(default=0)
    rating_n = models.IntegerField(default=0)
    rating_sum = models.FloatField(default=0)
    # hallucination / toxicity_output: scores with a known decision, and how many flagged.
    hall_n = models.IntegerField(default=0)
    hall_x = models.IntegerField(default=0)
    tox_n = models.IntegerField(default=0)
    tox_x = models.IntegerField(default=0)
    # implicit signals: how many were written (each row means "it happened").
    rephrase_n = models.IntegerField(default=0)
    regenerate_n = models.IntegerField(default=0)
    abandon_n = models.IntegerField(default=0)
    escalate_n = models.IntegerField(default=0)
    # any explicit end-user feedback (source end_user, whatever its name)
    feedback_n = models.IntegerField(default=0)

    def __str__(self) -> str:
        return f"outcome of {self.trace_id}"
