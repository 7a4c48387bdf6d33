"""Hourly rollups the metrics layer answers from (dashboards/rollups.py).

One TraceRollup row per project × UTC hour × model × prompt (name, version) ×
environment × (metadata key, value), and one ScoreRollup row per the same cell × score
name. `meta_key = ""` rows cover every trace once; for each metadata key a project
chose (RollupConfig), the same traces are rolled up a second time split by that key's
value, so `group_by=metadata.<key>` reads rollups too.

Counts and sums are exact; percentiles come from log-bucketed histograms (relative
error <= 1 %, see rollups.HIST_GAMMA).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models

from projects.models import Project


class RollupConfig(models.Model):
    """The metadata keys a project's dashboards group by often enough to roll up."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="+")
    metadata_keys = ArrayField(models.CharField(max_length=200), default=list, blank=True)
    # The keys the stored rollups hold: differs from metadata_keys until the beat task
    # has rebuilt the project's hours, and until then queries use only keys in both.
    built_keys = ArrayField(models.CharField(max_length=200), default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"rollup keys of project {self.project_id}"


class RollupState(models.Model):
    """One row (pk=1): how far the beat task has rolled up."""

    # The database's now() when the last complete run started scanning for changes:
    # every hour before this hour's start is answered from rollups.
    watermark = models.DateTimeField(null=True, blank=True)
    last_run_seconds = models.FloatField(default=0)
    last_hours = models.IntegerField(default=0)

    def __str__(self) -> str:
        return f"rollups up to {self.watermark}"


class RollupDirtyHour(models.Model):
    """Hours whose rollups must be rebuilt though no row there has a newer updated_at:
    a trace that moved to an earlier hour (a late span started before it), deleted traces
    and scores, a changed RollupConfig. Written by database triggers (migration 0001) and
    services; append-only (no unique key, so concurrent ingests never wait on each other)."""

    project_id = models.BigIntegerField()
    hour = models.DateTimeField()

    def __str__(self) -> str:
        return f"dirty {self.project_id} {self.hour}"


class TraceRollup(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    level = models.CharField(max_length=16, default="full")  # rollups.LEVELS
    model = models.CharField(max_length=256, null=True)
    prompt_name = models.CharField(max_length=256, null=True)
    prompt_version = models.CharField(max_length=64, null=True)
    environment = models.CharField(max_length=128, null=True)
    meta_key = models.CharField(max_length=200, default="")
    meta_value = models.TextField(null=True)
    traces = models.IntegerField()
    errors = models.IntegerField()
    latency_sum = models.FloatField()
    latency_min = models.FloatField()
    latency_max = models.FloatField()
    cost_n = models.IntegerField()
    cost_sum = models.DecimalField(max_digits=30, decimal_places=10, null=True)
    cost_min = models.DecimalField(max_digits=20, decimal_places=10, null=True)
    cost_max = models.DecimalField(max_digits=20, decimal_places=10, null=True)
    input_tokens_sum = models.BigIntegerField()
    input_tokens_min = models.BigIntegerField()
    input_tokens_max = models.BigIntegerField()
    output_tokens_sum = models.BigIntegerField()
    output_tokens_min = models.BigIntegerField()
    output_tokens_max = models.BigIntegerField()
    total_tokens_sum = models.BigIntegerField()
    total_tokens_min = models.BigIntegerField()
    total_tokens_max = models.BigIntegerField()
    latency_hist = models.JSONField(default=dict)  # {bin: count}, bins in rollups.hist_key
    cost_hist = models.JSONField(default=dict)

    class Meta:
        indexes = [models.Index(fields=["project", "level", "meta_key", "hour"], name="trace_rollup_project_hour")]

    def __str__(self) -> str:
        return f"{self.project_id} {self.hour} {self.model}"


class ScoreRollup(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    level = models.CharField(max_length=16, default="full")  # rollups.LEVELS
    model = models.CharField(max_length=256, null=True)
    prompt_name = models.CharField(max_length=256, null=True)
    prompt_version = models.CharField(max_length=64, null=True)
    environment = models.CharField(max_length=128, null=True)
    meta_key = models.CharField(max_length=200, default="")
    meta_value = models.TextField(null=True)
    name = models.CharField(max_length=100)
    n_all = models.IntegerField()  # scores
    n = models.IntegerField()  # scores with a value
    sum = models.FloatField(null=True)
    min = models.FloatField(null=True)
    max = models.FloatField(null=True)
    n_true = models.IntegerField()  # value >= 0.5
    flag_n = models.IntegerField()  # scores with a flag decision (stored, else the registry threshold)
    flag_true = models.IntegerField()
    traces_with = models.IntegerField()  # distinct traces having the score (implicit-signal rates)

    class Meta:
        indexes = [
            models.Index(fields=["project", "name", "level", "meta_key", "hour"], name="score_rollup_project_hour"),
        ]

    def __str__(self) -> str:
        return f"{self.project_id} {self.hour} {self.name}"


class ActorRollup(models.Model):
    """Per project × hour × end user (kind "user") or session (kind "session"): exact
    distinct users / sessions over any window, and per-user cost, tokens and errors."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    kind = models.CharField(max_length=8)  # "user" | "session"
    actor = models.CharField(max_length=256, null=True)  # user_id / session_id; NULL: traces without one
    traces = models.IntegerField()
    errors = models.IntegerField()
    cost_n = models.IntegerField()
    cost_sum = models.DecimalField(max_digits=30, decimal_places=10, null=True)
    latency_sum = models.FloatField()
    input_tokens_sum = models.BigIntegerField()
    output_tokens_sum = models.BigIntegerField()
    total_tokens_sum = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["project", "kind", "hour"], name="actor_rollup_project_hour")]

    def __str__(self) -> str:
        return f"{self.project_id} {self.hour} {self.kind} {self.actor}"


# ------------------------------------------------------------------------ saved dashboards


class SavedDashboard(models.Model):
    """A named set of charts in a project (viewers see it, members edit it)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="dashboard_unique_name")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ChartType(models.TextChoices):
    LINE = "line", "Line"
    STACKED_BAR = "stacked_bar", "Stacked bar"
    BAR = "bar", "Bar"
    NUMBER = "number", "Number"
    TABLE = "table", "Table"
    HISTOGRAM = "histogram", "Histogram"


class Chart(models.Model):
    """One saved metrics query and how to draw it. The time window is the dashboard
    page's (so one dashboard answers for 24 h or 30 d); `filters` are the chart's own
    trace filter, stored as the filter language's canonical (parameter, value) pairs."""

    INTERVAL_AUTO = "auto"  # follow the page's window (hours, days or weeks)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    dashboard = models.ForeignKey(SavedDashboard, on_delete=models.CASCADE, related_name="charts")
    title = models.CharField(max_length=200)
    measure = models.CharField(max_length=120)
    agg = models.CharField(max_length=8)
    group_by = ArrayField(models.CharField(max_length=210), size=2, default=list, blank=True)
    top = models.PositiveSmallIntegerField(default=10)
    interval = models.CharField(max_length=8, blank=True, default=INTERVAL_AUTO)  # "auto", hour/day/week, "" = none
    filters = models.JSONField(default=list, blank=True)
    chart_type = models.CharField(max_length=16, choices=ChartType.choices, default=ChartType.LINE)
    position = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "id"]
        indexes = [models.Index(fields=["dashboard", "position"], name="chart_dashboard_position")]

    def __str__(self) -> str:
        return self.title
