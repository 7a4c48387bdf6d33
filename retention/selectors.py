"""Reads of retention: a project's window (its own or the instance default) and its last run."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from projects.models import Project
from retention.models import RetentionMode, RetentionPolicy, RetentionRun


def effective_days(policy: RetentionPolicy | None) -> int | None:
    """Days a project keeps its traces under this policy row (None: for ever)."""
    if policy is None or policy.mode == RetentionMode.DEFAULT:
        return settings.SPYGLASS_RETENTION_DAYS
    if policy.mode == RetentionMode.FOREVER:
        return None
    return policy.days


def retention_policy_get(*, project: Project) -> dict[str, Any]:
    """The project's choice, what is in force, and the instance default, for the page and API."""
    policy = RetentionPolicy.objects.filter(project=project).first()
    return {
        "mode": policy.mode if policy else RetentionMode.DEFAULT.value,
        "days": policy.days if policy else None,
        "effective_days": effective_days(policy),
        "default_days": settings.SPYGLASS_RETENTION_DAYS,
    }


def retention_last_run(*, project: Project) -> RetentionRun | None:
    return RetentionRun.objects.filter(project=project).first()
