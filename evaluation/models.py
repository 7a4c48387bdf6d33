"""Evaluation state: what the background evaluators and the LLM judge did to each trace
(TraceScoring, JudgeCall), the vectors they computed (TraceEmbedding), and each
project's settings for them. Their verdicts are Scores in the scores app.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from pgvector.django import HnswIndex, VectorField

from projects.models import Project


class JudgeSettings(models.Model):
    """A project's optional LLM-as-judge: any OpenAI-compatible endpoint.

    The API key is stored encrypted (evaluation.judge.encrypt_secret, a key derived from
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

    class Meta:
        constraints = [
            # A share of traces. Outside [0, 1] the settings page would show a rate the
            # sampler cannot honour, and NaN would sample nothing without a word (every
            # comparison with it is false); the page and judge_settings_save check first.
            models.CheckConstraint(
                condition=models.Q(sample_rate__gte=0, sample_rate__lte=1), name="judge_sample_rate_0_to_1"
            ),
        ]

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


class ScoringStatus(models.TextChoices):
    PENDING = "pending"
    SCORED = "scored"
    FAILED = "failed"
    # Left unscored by the project's backlog policy (evaluation/backlog.py); the note
    # under "backlog" says why. Done as far as the sweep is concerned.
    SKIPPED = "skipped"


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
    the defaults in evaluation.evaluators.registry, so a new evaluator needs no data
    migration and a project with no row gets every default.
    """

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="+")
    config = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "evaluator settings"

    def __str__(self) -> str:
        return f"evaluators of {self.project_id}"


class ScoringQueueItem(models.Model):
    """A trace waiting for its cheap scores (evaluation/fair_queue.py).

    The backlog lives here rather than in the broker's one FIFO queue so the worker can
    take it project by project in turn: a flood from one project then delays another
    project's traces by one turn, not by the whole flood. A trace is queued once
    (re-announced while waiting, it keeps its place).

    A worker's turn claims its rows (`claimed_by` = the drain message's task id) and
    deletes them once their scores are stored: a worker killed mid-batch leaves them
    claimed, and the redelivered message (same task id) takes the same batch again.
    """

    id = models.BigAutoField(primary_key=True)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    trace_pk = models.BigIntegerField(unique=True)
    enqueued_at = models.DateTimeField(auto_now_add=True)
    # Taken before the project's other traces: traces the backlog policy must never
    # drop that were cut from beyond its cap, or came back after a late thumbs-down.
    priority = models.BooleanField(default=False)
    claimed_by = models.CharField(max_length=64, blank=True, db_default="")  # raw INSERTs too
    claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["project", "id"], name="scoring_queue_project_id")]

    def __str__(self) -> str:
        return f"trace {self.trace_pk} of project {self.project_id}"


class ScoringTurn(models.Model):
    """When a project was last served by the scoring worker: the least recently served
    project with work goes next (round robin without a central rotation to keep)."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, primary_key=True, related_name="+")
    served_at = models.DateTimeField(null=True, blank=True)
    # Traces the backlog policy left unscored, ever: a counter for /metrics, kept on the
    # row a turn already locks, so counting costs no extra lock.
    skipped_total = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"project {self.project_id} served {self.served_at}"


class BacklogMode(models.TextChoices):
    ALL = "all", "Score every trace (default)"
    SAMPLE = "sample", "Score a deterministic sample"
    NEWEST_FIRST = "newest_first", "Newest first, skip the oldest beyond the cap"
    OLDEST_FIRST = "oldest_first", "Oldest first, skip the newest beyond the cap"


class BacklogPolicy(models.Model):
    """What a project's cheap scoring does while more than `threshold` of its traces
    wait (evaluation/backlog.py). Traces with negative end-user feedback, an error, or a
    place in an annotation queue are scored whatever the mode. No row = mode `all`."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, primary_key=True, related_name="+")
    mode = models.CharField(max_length=16, choices=BacklogMode.choices, default=BacklogMode.ALL)
    threshold = models.PositiveIntegerField(default=1000)
    sample_rate = models.FloatField(default=0.1)
    cap = models.PositiveIntegerField(default=1000)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(sample_rate__gte=0, sample_rate__lte=1),
                                   name="backlog_sample_rate_0_to_1"),
            models.CheckConstraint(condition=models.Q(cap__gte=1), name="backlog_cap_positive"),
        ]

    def __str__(self) -> str:
        return f"backlog policy of project {self.project_id}: {self.mode}"
