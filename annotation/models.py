"""Annotation: comments on traces and queues that hand reviewers one trace at a time.

Who works on what lives in QueueReview rows (one per item and reviewer) with a lock
expiry, so a reviewer who closes the tab does not hold an item forever. The judgements
themselves are Scores (source=annotation) in the scores app.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from projects.models import Project
from scores.models import ScoreConfig


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
            # A queue holds a trace once. The key is the trace alone, also in pairwise
            # mode: a reviewer's judgement is stored on the item's trace (one annotation per
            # reviewer, trace and config), so the same trace against a second partner would
            # overwrite the first verdict rather than add one.
            models.UniqueConstraint(fields=["queue", "trace_id"], name="queue_item_unique_trace"),
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


class Correction(models.Model):
    """A reviewer's corrected answer for a trace: what the answer should have been.

    One per reviewer and trace (a reviewer edits theirs). When the trace goes into a
    dataset, the newest correction can become the item's expected output.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    trace_id = models.CharField(max_length=32)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    text = models.TextField()
    # The queue the correction was written in, for the queue's results (None: elsewhere).
    queue = models.ForeignKey(AnnotationQueue, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "trace_id", "author"], name="correction_unique_author"),
        ]
        indexes = [models.Index(fields=["project", "trace_id", "-updated_at"], name="correction_trace_newest")]

    def __str__(self) -> str:
        return f"correction of {self.trace_id} by {self.author_id}"
