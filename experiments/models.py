"""Experiments: a prompt version (or the SDK's own code) run over a pinned dataset version.

An Experiment names exactly what ran: the dataset version (and split), the prompt
version a label resolved to when the run started, the model and the evaluators. Each
item's call is an ordinary trace tagged `experiment:<id>` (so the explorer, scoring and
the judge see it like production traffic); ExperimentResult keeps the per-item output,
latency, cost, error and evaluator results the run and comparison pages read.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from datasets.models import Dataset, DatasetItem
from projects.models import Project
from prompts.models import Prompt, PromptVersion

TAG_PREFIX = "experiment:"


class Status(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    CANCELLED = "cancelled"
    DONE = "done"
    FAILED = "failed"


FINISHED = (Status.CANCELLED, Status.DONE, Status.FAILED)


class Kind(models.TextChoices):
    PROMPT = "prompt"  # the server calls the model with a registry prompt
    SDK = "sdk"  # spyglass.run_experiment: the user's code ran the items, results are posted


class StopReason(models.TextChoices):
    NONE = ""
    COST_CAP = "cost_cap"
    CANCELLED = "cancelled"
    ERROR = "error"


class Experiment(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200, blank=True, default="")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.PROMPT)
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    dataset_version = models.PositiveIntegerField()
    split = models.CharField(max_length=8, null=True, blank=True)
    prompt = models.ForeignKey(Prompt, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Pinned when the run starts (a label asked for is resolved then and kept in
    # prompt_label): moving the label later does not change what this run was.
    prompt_version = models.ForeignKey(PromptVersion, null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+")
    prompt_label = models.CharField(max_length=64, blank=True, default="")
    model = models.CharField(max_length=200, blank=True, default="")
    # Sent with every call: temperature, max_tokens, ... (validated in services).
    params = models.JSONField(default=dict, blank=True)
    # [{"name": "exact_match"}, {"name": "regex", "pattern": "..."}, ...] (experiments/evaluators.py)
    evaluators = models.JSONField(default=list, blank=True)
    concurrency = models.PositiveSmallIntegerField(default=4)
    rate_limit_per_minute = models.PositiveIntegerField(null=True, blank=True)
    cost_cap_usd = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    # For models genai-prices does not know (self-hosted, fakes): what one call costs.
    cost_per_call_usd = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)

    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    stop_reason = models.CharField(max_length=12, choices=StopReason.choices, blank=True, default="")
    # Set by the cancel service, read by the runner between items (no task revocation:
    # a revoked acks_late task would be redelivered on a worker restart).
    cancel_requested = models.BooleanField(default=False)
    total = models.PositiveIntegerField(default=0)
    done_count = models.PositiveIntegerField(default=0)  # items with a result, failed ones included
    failed_count = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    error = models.TextField(blank=True, default="")

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["project", "-id"], name="experiment_project_recent")]

    def __str__(self) -> str:
        return f"experiment {self.pk}"

    @property
    def tag(self) -> str:
        return f"{TAG_PREFIX}{self.pk}"

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def progress_percent(self) -> int:
        return int(100 * self.done_count / self.total) if self.total else (100 if self.finished else 0)


class ExperimentResult(models.Model):
    """One dataset item's outcome in one run. Unique per (experiment, item): a redelivered
    task skips items that already have a row."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="results")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    item = models.ForeignKey(DatasetItem, on_delete=models.CASCADE, related_name="+")
    trace_id = models.CharField(max_length=32, blank=True, default="")
    output = models.TextField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    input_tokens = models.IntegerField(null=True, blank=True)
    output_tokens = models.IntegerField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=1)
    error = models.TextField(blank=True, default="")
    # Evaluator name -> value (booleans as 0/1), and name -> evidence (why).
    scores = models.JSONField(default=dict, blank=True)
    evidence = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["item_id"]
        constraints = [models.UniqueConstraint(fields=["experiment", "item"], name="experiment_result_unique_item")]

    def __str__(self) -> str:
        return f"result of item {self.item_id} in experiment {self.experiment_id}"
