"""Traces and spans, normalized from every OTel LLM dialect.

Spans are keyed by (project, trace_id, span_id) — the OTel ids as lowercase hex — and
joined to their trace by the same natural key rather than a surrogate foreign key:
ingest can then write spans and trace rows independently (children before parents,
several batches, duplicates) and a future Citus deployment can co-locate both tables
by project_id.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import Q

from projects.models import Project


class SpanKind(models.TextChoices):
    LLM = "llm"
    CHAIN = "chain"
    RETRIEVER = "retriever"
    TOOL = "tool"
    AGENT = "agent"
    EMBEDDING = "embedding"
    RERANKER = "reranker"
    GUARDRAIL = "guardrail"
    EVALUATOR = "evaluator"
    UNKNOWN = "unknown"


class Status(models.TextChoices):
    UNSET = "unset"
    OK = "ok"
    ERROR = "error"


class Trace(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    trace_id = models.CharField(max_length=32)
    name = models.CharField(max_length=512, blank=True, default="")
    session_id = models.CharField(max_length=256, null=True, blank=True)
    user_id = models.CharField(max_length=256, null=True, blank=True)
    environment = models.CharField(max_length=128, null=True, blank=True)
    release = models.CharField(max_length=128, null=True, blank=True)
    service_name = models.CharField(max_length=256, null=True, blank=True)
    tags = ArrayField(models.CharField(max_length=200), default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    start_time = models.DateTimeField()
    end_time = models.DateTimeField()
    latency_ms = models.FloatField(default=0)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.UNSET)
    span_count = models.IntegerField(default=0)
    error_count = models.IntegerField(default=0)
    root_span_id = models.CharField(max_length=16, null=True, blank=True)
    input = models.TextField(null=True, blank=True)
    output = models.TextField(null=True, blank=True)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    total_tokens = models.BigIntegerField(default=0)
    # Sum of the spans whose cost is known; unpriced_spans counts LLM spans whose model
    # has no price, so a partial total is never presented as complete.
    cost_usd = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    unpriced_spans = models.IntegerField(default=0)
    model = models.CharField(max_length=256, null=True, blank=True)
    prompt_name = models.CharField(max_length=256, null=True, blank=True)
    prompt_version = models.CharField(max_length=64, null=True, blank=True)
    # Where each "first span" value above stands in its order (tracing/aggregates.py), so a
    # batch of new spans merges into this row without re-reading the trace's stored spans.
    # NULL (rows from before it existed, or not written by ingest): the next batch
    # recomputes the row from all its spans instead.
    fold_state = models.JSONField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "trace_id"], name="trace_unique_otel_id")]
        indexes = [
            models.Index(fields=["project", "-start_time", "-id"], name="trace_project_time"),
            models.Index(fields=["project", "session_id", "start_time"], name="trace_project_session"),
            models.Index(fields=["project", "user_id", "-start_time"], name="trace_project_user"),
            models.Index(fields=["project", "model", "-start_time"], name="trace_project_model"),
            models.Index(fields=["project", "name", "-start_time"], name="trace_project_name"),
            models.Index(
                fields=["project", "prompt_name", "prompt_version", "-start_time"], name="trace_project_prompt"
            ),
            GinIndex(fields=["tags"], name="trace_tags_gin"),
            GinIndex(fields=["metadata"], name="trace_metadata_gin", opclasses=["jsonb_path_ops"]),
            # The scoring sweep looks for recently changed traces across all projects
            # (evaluation/sweep.py); without this it scanned the whole table each minute.
            models.Index(fields=["updated_at"], name="trace_updated_at"),
        ]

    def __str__(self) -> str:
        return f"{self.trace_id} {self.name}"


class Span(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    trace_id = models.CharField(max_length=32)
    span_id = models.CharField(max_length=16)
    parent_span_id = models.CharField(max_length=16, null=True, blank=True)
    name = models.CharField(max_length=512, blank=True, default="")
    kind = models.CharField(max_length=16, choices=SpanKind.choices, default=SpanKind.UNKNOWN)
    otel_kind = models.SmallIntegerField(default=0)
    start_time = models.DateTimeField()
    end_time = models.DateTimeField()
    latency_ms = models.FloatField(default=0)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.UNSET)
    status_message = models.TextField(null=True, blank=True)
    provider = models.CharField(max_length=128, null=True, blank=True)
    model = models.CharField(max_length=256, null=True, blank=True)
    input_tokens = models.BigIntegerField(null=True, blank=True)
    output_tokens = models.BigIntegerField(null=True, blank=True)
    cached_tokens = models.BigIntegerField(null=True, blank=True)
    cache_creation_tokens = models.BigIntegerField(null=True, blank=True)
    reasoning_tokens = models.BigIntegerField(null=True, blank=True)
    total_tokens = models.BigIntegerField(null=True, blank=True)
    cost_usd = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    cost_source = models.CharField(max_length=16, null=True, blank=True)  # "span" | "computed"
    input = models.TextField(null=True, blank=True)
    output = models.TextField(null=True, blank=True)
    messages = models.JSONField(default=list, blank=True)
    documents = models.JSONField(default=list, blank=True)
    params = models.JSONField(default=dict, blank=True)
    finish_reason = models.CharField(max_length=64, null=True, blank=True)
    session_id = models.CharField(max_length=256, null=True, blank=True)
    user_id = models.CharField(max_length=256, null=True, blank=True)
    tags = ArrayField(models.CharField(max_length=200), default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    trace_name = models.CharField(max_length=512, null=True, blank=True)
    prompt_name = models.CharField(max_length=256, null=True, blank=True)
    prompt_version = models.CharField(max_length=64, null=True, blank=True)
    environment = models.CharField(max_length=128, null=True, blank=True)
    release = models.CharField(max_length=128, null=True, blank=True)
    service_name = models.CharField(max_length=256, null=True, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    resource = models.JSONField(default=dict, blank=True)
    events = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "trace_id", "span_id"], name="span_unique_otel_id"),
        ]
        indexes = [
            models.Index(fields=["project", "model", "start_time"], name="span_project_model"),
            # The cost page's unpriced spans (dashboards.selectors.unpriced_spans): few rows.
            models.Index(fields=["project", "trace_id"], name="span_unpriced",
                         condition=Q(cost_usd__isnull=True) & (Q(input_tokens__gt=0) | Q(output_tokens__gt=0))),
        ]

    def __str__(self) -> str:
        return f"{self.span_id} {self.name}"


class SpanLogEvent(models.Model):
    """An OTLP log record tied to a span (GenAI message events of some instrumentations).

    Kept on its own so a log that arrives before its span is not lost: the span's
    messages are rebuilt from these rows whenever either side lands.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    trace_id = models.CharField(max_length=32)
    span_id = models.CharField(max_length=16)
    event_name = models.CharField(max_length=256, blank=True, default="")
    time = models.DateTimeField()
    body = models.JSONField(null=True, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    # Hash of the record's content: a re-sent log batch is stored once.
    fingerprint = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "trace_id", "span_id", "fingerprint"], name="log_event_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_name} on {self.span_id}"


class MaskingSettings(models.Model):
    """Which secrets a project masks at ingest (tracing/masking.py); no row means
    masking.DEFAULT_KINDS, and a row with nothing chosen means masking is off."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="masking_settings")
    kinds = ArrayField(models.CharField(max_length=32), default=list, blank=True)
    custom = models.JSONField(default=list, blank=True)  # [{"name": "order_id", "pattern": "ORD-\\d+"}]
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"masking for {self.project_id}: {', '.join(self.kinds) or 'none'}"


class IngestCounter(models.Model):
    """Spans and trace updates stored per project, ever: the ingest-rate counters of
    /metrics (a rate is their increase over time). Kept in the database so every web
    process reports the same totals; bumped once per batch after its commit."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, primary_key=True, related_name="+")
    spans = models.BigIntegerField(default=0)
    # Traces stored or changed, one per trace per batch: a trace streamed in 10 batches counts 10.
    trace_updates = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"project {self.project_id}: {self.spans} spans"
