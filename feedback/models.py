"""Scores: every judgement of a trace or span — end user, reviewer, evaluator, implicit
signal or API — is one Score row, so pages and dashboards treat them alike.

Scores reference traces by the OTel trace id (like spans), not by a foreign key:
feedback may arrive before its trace, and is linked simply by the trace landing.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from projects.models import Project


class DataType(models.TextChoices):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    BOOLEAN = "boolean"


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
    comment = models.TextField(blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["project", "trace_id"], name="score_project_trace"),
            models.Index(fields=["project", "name", "-created_at"], name="score_project_name_time"),
            models.Index(fields=["project", "source", "name"], name="score_project_source"),
        ]

    def __str__(self) -> str:
        return f"{self.name}={self.value if self.string_value is None else self.string_value}"
