"""Prompt registry: prompts, immutable versions, movable labels and their history.

A version is never updated after it is written: what ran in production under
"support-answer v3" must stay exactly what v3 was. Labels are the only mutable part, and
every move is recorded as a PromptLabelEvent, so a rollback is just another move.

Traces are linked to versions by (project, prompt_name, prompt_version) at read time
(see prompts.selectors), not by a foreign key: a trace may name a version that is
registered later, and ingest never has to look prompts up on its hot path.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models

from projects.models import Project

# "latest" always means the newest version; storing it as a label would let it go stale.
LATEST = "latest"
PRODUCTION = "production"


class PromptType(models.TextChoices):
    TEXT = "text", "Text"
    CHAT = "chat", "Chat"


class Prompt(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=128)
    type = models.CharField(max_length=8, choices=PromptType.choices, default=PromptType.TEXT)
    description = models.TextField(blank=True, default="")
    tags = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    # Denormalized newest version number: read on every list row and checked under the
    # row lock when a new version is created (the stale-edit check).
    latest_version = models.IntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="prompt_unique_name")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PromptVersion(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="versions")
    version = models.IntegerField()
    # A string (text prompts) or a list of {"role", "content"} messages (chat prompts).
    template = models.JSONField()
    config = models.JSONField(default=dict, blank=True)
    variables = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    commit_message = models.TextField(blank=True, default="")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Who wrote it, as shown: a username or "api-key:pk-sg-..." (kept if the user is deleted).
    author_name = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["prompt", "version"], name="prompt_version_unique"),
            models.CheckConstraint(condition=models.Q(version__gte=1), name="prompt_version_positive"),
            # Redundant as a key (id is unique already), but it is what a composite foreign
            # key needs to point at: PromptLabel (version_id, prompt_id) references it, so a
            # label can only point at a version of its own prompt (migration prompts 0002).
            models.UniqueConstraint(fields=["id", "prompt"], name="prompt_version_id_prompt"),
        ]
        ordering = ["-version"]

    def __str__(self) -> str:
        return f"{self.prompt.name} v{self.version}"


class PromptLabel(models.Model):
    """Where a label points now. One row per (prompt, label); moved by one locked update."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(max_length=64)
    version = models.ForeignKey(PromptVersion, on_delete=models.PROTECT, related_name="labels")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["prompt", "name"], name="prompt_label_unique")]
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.prompt.name}@{self.name}"


class PromptLabelEvent(models.Model):
    """One label move: who moved it, from which version (None: newly created) to which."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="label_events")
    label = models.CharField(max_length=64)
    from_version = models.IntegerField(null=True, blank=True)
    to_version = models.IntegerField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["prompt", "-created_at", "-id"], name="prompt_label_event_time")]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.label}: v{self.from_version} -> v{self.to_version}"
