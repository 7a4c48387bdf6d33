"""Scores: every judgement of a trace or span — end user, reviewer, evaluator, implicit
signal or API — is one Score row, so pages and dashboards treat them alike.

Scores, events and comments reference traces by the OTel trace id (like spans), not by
a foreign key: feedback may arrive before its trace, and is linked simply by the trace
landing.

Annotation queues hand reviewers one trace at a time. Who works on what lives in
QueueReview rows (one per item and reviewer) with a lock expiry, so a reviewer who
closes the tab does not hold an item forever.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from pgvector.django import HnswIndex, VectorField

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
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="score_config_unique_name")]
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
    # The queue a reviewer was working when giving this score (exports, agreement).
    queue = models.ForeignKey(
        "AnnotationQueue", null=True, blank=True, on_delete=models.SET_NULL, related_name="scores"
    )
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


class InteractionEvent(models.Model):
    """What an end user did with an answer: copy, regenerate, edit, abandon, dwell, escalate.

    Not a Score: an event is an observation, not a judgement. The implicit-feedback
    signals turn sequences of these into `source=implicit` scores.
    """

    KNOWN = ("copy", "regenerate", "edit", "abandon", "dwell_ms", "escalate")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    trace_id = models.CharField(max_length=32)
    span_id = models.CharField(max_length=16, null=True, blank=True)
    name = models.CharField(max_length=100)
    value = models.FloatField(null=True, blank=True)  # dwell_ms and other numeric events
    text = models.TextField(null=True, blank=True)  # the edited text of an `edit`
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["project", "trace_id"], name="event_project_trace"),
            models.Index(fields=["project", "name", "-created_at"], name="event_project_name_time"),
        ]

    def __str__(self) -> str:
        return f"{self.name} on {self.trace_id}"


class Comment(models.Model):
    """A note on a trace (or one of its spans); replies point at their parent."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    trace_id = models.CharField(max_length=32)
    span_id = models.CharField(max_length=16, null=True, blank=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="replies")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["project", "trace_id", "created_at"], name="comment_project_trace")]

    def __str__(self) -> str:
        return f"comment {self.pk} on {self.trace_id}"


class QueueMode(models.TextChoices):
    SINGLE = "single", "One trace at a time"
    PAIRWISE = "pairwise", "Pairwise (A vs B)"


class AnnotationQueue(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    mode = models.CharField(max_length=16, choices=QueueMode.choices, default=QueueMode.SINGLE)
    score_configs = models.ManyToManyField(ScoreConfig, related_name="queues")
    # Empty = every reviewer (or higher) of the project may work the queue.
    assignees = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    reviews_per_item = models.PositiveSmallIntegerField(default=1)
    # How the items were chosen, for the queue page ("thumbs down, last 7 days").
    source_filter = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class QueueItem(models.Model):
    queue = models.ForeignKey(AnnotationQueue, on_delete=models.CASCADE, related_name="items")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    trace_id = models.CharField(max_length=32)
    # Pairwise mode: the other answer to the same input (shown as B).
    pair_trace_id = models.CharField(max_length=32, null=True, blank=True)
    position = models.PositiveIntegerField()
    # Completed reviews; kept on the row so claiming is one indexed query.
    done_count = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["queue", "position"], name="queue_item_unique_position"),
        ]

    def __str__(self) -> str:
        return f"#{self.position} {self.trace_id}"


class ReviewStatus(models.TextChoices):
    CLAIMED = "claimed"
    DONE = "done"
    SKIPPED = "skipped"


class QueueReview(models.Model):
    """One reviewer's work on one item: a claim with an expiry, then done or skipped."""

    item = models.ForeignKey(QueueItem, on_delete=models.CASCADE, related_name="reviews")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=8, choices=ReviewStatus.choices, default=ReviewStatus.CLAIMED)
    locked_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "reviewer"], name="queue_review_unique_reviewer"),
        ]
        indexes = [models.Index(fields=["item", "status", "locked_until"], name="queue_review_item_status")]

    def __str__(self) -> str:
        return f"{self.reviewer_id} on item {self.item_id}: {self.status}"


class SessionSignalState(models.Model):
    """Where implicit-feedback signals of one session stand.

    The abandon signal can only be decided once a session has been idle long enough,
    which no ingest event announces; the periodic sweep finds sessions that are still
    open and idle through this row (indexed), instead of scanning every trace.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    session_id = models.CharField(max_length=256)
    last_activity_at = models.DateTimeField()
    computed_at = models.DateTimeField()
    # True once computed after the session went idle (abandon decided); new traces or
    # a recompute with fresh activity open it again.
    closed = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "session_id"], name="session_signal_state_unique"),
        ]
        indexes = [
            models.Index(
                fields=["last_activity_at"], name="session_signal_open", condition=Q(closed=False)
            ),
        ]

    def __str__(self) -> str:
        return f"signals of session {self.session_id}"


class JudgeSettings(models.Model):
    """A project's optional LLM-as-judge: any OpenAI-compatible endpoint.

    The API key is stored encrypted (feedback.judge.encrypt_secret, a key derived from
    SECRET_KEY); only its last four characters are kept in clear, for the masked display.
    """

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="+")
    enabled = models.BooleanField(default=False)
    base_url = models.URLField(max_length=500, blank=True, default="")
    model = models.CharField(max_length=200, blank=True, default="")
    api_key_encrypted = models.TextField(blank=True, default="")
    api_key_last4 = models.CharField(max_length=4, blank=True, default="")
    sample_rate = models.FloatField(default=0.05)
    daily_budget_usd = models.DecimalField(max_digits=12, decimal_places=4, default=1)
    # When set, every call counts this much (self-hosted or unpriced models); otherwise
    # the response's token usage is priced with genai-prices.
    cost_per_call_usd = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    rubrics = models.JSONField(default=list, blank=True)
    timeout_seconds = models.FloatField(default=30)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:  # never the key
        return f"judge settings of project {self.project_id}"

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key_encrypted)

    @property
    def api_key_masked(self) -> str:
        return f"••••••••{self.api_key_last4}" if self.api_key_encrypted else ""


class JudgeCallStatus(models.TextChoices):
    OK = "ok"
    FAILED = "failed"


class JudgeCall(models.Model):
    """One request to the judge endpoint: what it cost and whether it gave a verdict.

    The day's spend (the budget cap) is the sum of these rows; failures stay visible
    on the settings page instead of vanishing into a worker log.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    trace_id = models.CharField(max_length=32)
    rubric = models.CharField(max_length=64)
    status = models.CharField(max_length=8, choices=JudgeCallStatus.choices)
    error = models.TextField(blank=True, default="")
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    input_tokens = models.IntegerField(null=True, blank=True)
    output_tokens = models.IntegerField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["project", "-created_at"], name="judge_call_project_time")]

    def __str__(self) -> str:
        return f"judge {self.rubric} on {self.trace_id}: {self.status}"


# --- offline evaluators (issue 6) -------------------------------------------------------
# Kept in their own tables, not as columns on tracing_trace: that table is the hottest
# write path (every ingest batch updates its rows), and vectors/status churn there would
# bloat it and its indexes.


class ScoringStatus(models.TextChoices):
    PENDING = "pending"
    SCORED = "scored"
    FAILED = "failed"


class TraceScoring(models.Model):
    """Where a trace stands with the offline evaluators.

    A trace with no row, or whose `trace_updated_at` is older than the trace's
    `updated_at` (more spans arrived since), still needs scoring: that is what the
    periodic sweep looks for when a message was lost (broker down at ingest).
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    trace_id = models.CharField(max_length=32)
    status = models.CharField(max_length=8, choices=ScoringStatus.choices, default=ScoringStatus.PENDING)
    error = models.TextField(blank=True, default="")
    # The Trace.updated_at these results are for (set when scoring starts from a load).
    trace_updated_at = models.DateTimeField(null=True, blank=True)
    scored_at = models.DateTimeField(null=True, blank=True)
    versions = models.JSONField(default=dict, blank=True)  # evaluator name -> version
    # Outcomes without a score, e.g. {"groundedness": "no context"}.
    notes = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "trace_id"], name="trace_scoring_unique")]
        indexes = [models.Index(fields=["project", "status"], name="trace_scoring_status")]

    def __str__(self) -> str:
        return f"{self.trace_id} {self.status}"


class EmbeddingKind(models.TextChoices):
    INPUT = "input"
    OUTPUT = "output"


class TraceEmbedding(models.Model):
    """all-MiniLM-L6-v2 vector of a trace's (or one LLM span's) input or output.

    `span_id` is "" for the trace's own input/output; an LLM call inside an agent or
    chain whose text differs from the trace's gets rows of its own, so semantic search
    also finds a trace by what happened in its middle.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    trace_id = models.CharField(max_length=32)
    # "" rather than NULL: the unique constraint below must treat trace rows as equal.
    span_id = models.CharField(max_length=16, default="", blank=True)
    kind = models.CharField(max_length=8, choices=EmbeddingKind.choices)
    embedding = VectorField(dimensions=384)
    model = models.CharField(max_length=64, default="all-MiniLM-L6-v2")
    created_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "trace_id", "span_id", "kind"], name="trace_embedding_unique")
        ]
        indexes = [
            HnswIndex(
                name="trace_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
        ]

    def __str__(self) -> str:
        return f"{self.trace_id}{'/' + self.span_id if self.span_id else ''} {self.kind}"


class EvaluatorSettings(models.Model):
    """Per-project switches and options of the offline evaluators.

    `config` maps evaluator name -> {"enabled": bool, ...options}; missing keys take
    the defaults in feedback.evaluators.registry, so a new evaluator needs no data
    migration and a project with no row gets every default.
    """

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="+")
    config = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "evaluator settings"

    def __str__(self) -> str:
        return f"evaluators of {self.project_id}"
