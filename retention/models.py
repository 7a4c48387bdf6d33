"""How long each project keeps its traces, and what the last retention run deleted.

Both tables are keyed by the project itself (no identity column), so they distribute
by project_id like every tenant table.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from projects.models import Project

# 100 years: longer is "keep forever" said another way, and a bigger number would
# overflow the cutoff date.
MAX_DAYS = 36500


class RetentionMode(models.TextChoices):
    DEFAULT = "default", "Instance default"
    DAYS = "days", "Delete after a number of days"
    FOREVER = "forever", "Keep forever"


class RetentionPolicy(models.Model):
    """A project's own choice; no row (or mode=default) follows SPYGLASS_RETENTION_DAYS."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, primary_key=True, related_name="+")
    mode = models.CharField(max_length=8, choices=RetentionMode.choices, default=RetentionMode.DEFAULT)
    days = models.PositiveIntegerField(null=True, blank=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # Days go with mode=days and only with it, so a row never says two things.
            models.CheckConstraint(
                condition=(Q(mode=RetentionMode.DAYS) & Q(days__gte=1) & Q(days__lte=MAX_DAYS))
                | (~Q(mode=RetentionMode.DAYS) & Q(days__isnull=True)),
                name="retention_days_with_mode",
            ),
        ]

    def __str__(self) -> str:
        return f"retention of {self.project_id}: {self.mode} {self.days or ''}".strip()


class RetentionRun(models.Model):
    """The last (non dry) run of retention on a project: one row per project, replaced."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, primary_key=True, related_name="+")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    days = models.PositiveIntegerField()
    cutoff = models.DateTimeField()
    traces = models.BigIntegerField(default=0)
    # Rows deleted per table ({"tracing_span": 1200, ...}).
    rows = models.JSONField(default=dict)
    batches = models.IntegerField(default=0)
    # False when the run's time budget ended before every old trace was gone; the next
    # run carries on.
    complete = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"retention run on {self.project_id} at {self.started_at}: {self.traces} traces"
