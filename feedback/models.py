"""End users' feedback beyond scores: interaction events (copy, regenerate, edit, ...)
and where each session's implicit-feedback signals stand.

Explicit feedback (thumbs, ratings, comments) is stored as Scores (source=end_user) in
the scores app; implicit signals as Scores with source=implicit. Events reference
traces by the OTel trace id: feedback may arrive before its trace.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

from projects.models import Project


class InteractionEvent(models.Model):
    """What an end user did with an answer: copy, regenerate, edit, abandon, dwell, escalate.

    Not a Score: an event is an observation, not a judgement. The implicit-feedback
    signals turn sequences of these into `source=implicit` scores.
    """

    KNOWN = ("copy", "regenerate", "edit", "abandon", "dwell_ms", "escalate")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    trace_id = models.CharField(max_length=32)
    span_id = models.CharField(max_length=16, null=True, blank=True)
    name = models.CharField(max_length=100)
    value = models.FloatField(null=True, blank=True)  # dwell_ms and other numeric events
    text = models.TextField(null=True, blank=True)  # the edited text of an `edit`
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["project", "trace_id"], name="event_project_trace"),
            models.Index(fields=["project", "name", "-created_at"], name="event_project_name_time"),
        ]

    def __str__(self) -> str:
        return f"{self.name} on {self.trace_id}"


class SessionSignalState(models.Model):
    """Where implicit-feedback signals of one session stand.

    The abandon signal can only be decided once a session has been idle long enough,
    which no ingest event announces; the periodic sweep finds sessions that are still
    open and idle through this row (indexed), instead of scanning every trace.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    session_id = models.CharField(max_length=256)
    last_activity_at = models.DateTimeField()
    computed_at = models.DateTimeField()
    # True once computed after the session went idle (abandon decided); new traces or
    # a recompute with fresh activity open it again.
    closed = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "session_id"], name="session_signal_state_unique"),
        ]
        indexes = [
            models.Index(
                fields=["last_activity_at"], name="session_signal_open", condition=Q(closed=False)
            ),
        ]

    def __str__(self) -> str:
        return f"signals of session {self.session_id}"


# --- offline evaluators (issue 6) -------------------------------------------------------
# Kept in their own tables, not as columns on tracing_trace: that table is the hottest
# write path (every ingest batch updates its rows), and vectors/status churn there would
# bloat it and its indexes.


