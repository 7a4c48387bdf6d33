"""Datasets: named, versioned collections of test cases and fine-tuning examples.

Versions are cheap and immutable. An item row is never edited: it carries the version
that added it (`added_in`) and, once removed or replaced, the version that dropped it
(`removed_in`). Version v of a dataset is the items with added_in <= v and (removed_in
is NULL or removed_in > v), so adding 10 items to a dataset of 100,000 writes 10 rows
and one version row, and every older version stays readable as it was. An experiment
or export pins (dataset, version number).

Splits (train / test) are not stored per item: a version records a split spec (test
fraction, optional metadata key to stratify by, seed) and each item's split is a
deterministic function of the version's items (datasets/selectors.py), so re-splitting
is one new version row, not a rewrite of every item.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from projects.models import Project


class Dataset(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    # The newest version number (0: created, nothing added yet). Bumped under the row
    # lock taken by every write (datasets/services.py), so versions never collide.
    current_version = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="dataset_unique_name")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DatasetVersion(models.Model):
    """One immutable state of a dataset: what changed, and the split in force."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="versions")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    number = models.PositiveIntegerField()
    # Items visible in this version, kept so lists and pages need no count(*).
    item_count = models.PositiveIntegerField(default=0)
    added = models.PositiveIntegerField(default=0)
    removed = models.PositiveIntegerField(default=0)
    # What made the version: {"kind": "items" | "traces" | "filter" | "upload" | "remove" | "split", ...}
    change = models.JSONField(default=dict, blank=True)
    # {"test_fraction": 0.2, "stratify_by": "plan" | None, "seed": "..."}; {} = no split.
    split = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["dataset", "number"], name="dataset_version_unique_number")]
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"{self.dataset_id} v{self.number}"


class DatasetItem(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="items")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    added_in = models.PositiveIntegerField()
    removed_in = models.PositiveIntegerField(null=True, blank=True)
    # A text, or chat messages [{"role": ..., "content": ...}, ...].
    input = models.JSONField()
    expected_output = models.TextField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # Where the item came from in production, if it did (joined to traces and scores by
    # the OTel ids, like every other table).
    source_trace_id = models.CharField(max_length=32, null=True, blank=True)
    source_span_id = models.CharField(max_length=16, null=True, blank=True)
    # sha256 of the canonical input: "duplicates of the same input are skipped".
    input_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # Reading a version: the live-range condition on one dataset, in id order.
            models.Index(fields=["dataset", "added_in", "id"], name="dataset_item_version"),
            # Duplicate check against the current items only.
            models.Index(fields=["dataset", "input_hash"], condition=Q(removed_in__isnull=True),
                         name="dataset_item_live_hash"),
        ]

    def __str__(self) -> str:
        return f"item {self.pk} of {self.dataset_id}"


def in_version(number: int) -> Q:
    """Items of version `number` (see the module docstring)."""
    return Q(added_in__lte=number) & (Q(removed_in__isnull=True) | Q(removed_in__gt=number))
