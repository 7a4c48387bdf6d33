"""Celery tasks of the feedback app (thin: ids in, a service call, nothing else):
implicit-feedback signals per session, on queue `signals`."""

from __future__ import annotations

import logging
from collections import defaultdict

from celery import shared_task
from django.db import OperationalError

logger = logging.getLogger(__name__)

# Model and service imports are inside the tasks: importing this module (the worker
# does at start-up) must not need the app registry ready.

# A session batch of at most this many ids per message: one slow session never holds
# hundreds of others hostage behind it on a redelivery.
SESSIONS_PER_MESSAGE = 200


@shared_task(
    name="feedback.tasks.sessions_signals",
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def sessions_signals(project_id: int, session_ids: list[str]) -> int:
    """Recompute implicit signals of these sessions (idempotent upserts)."""
    from feedback.services import session_signals_compute
    from projects.models import Project

    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return 0  # deleted since the message was sent
    for session_id in session_ids:
        session_signals_compute(project=project, session_id=session_id)
    return len(session_ids)


@shared_task(name="feedback.tasks.sessions_close_idle", acks_late=True, ignore_result=True)
def sessions_close_idle() -> int:
    """Beat: recompute sessions that went idle, so their last answer's abandon is decided."""
    from feedback.services import sessions_due_for_close

    by_project: dict[int, list[str]] = defaultdict(list)
    for project_id, session_id in sessions_due_for_close():
        by_project[project_id].append(session_id)
    for project_id, session_ids in by_project.items():
        for start in range(0, len(session_ids), SESSIONS_PER_MESSAGE):
            sessions_signals.delay(project_id, session_ids[start : start + SESSIONS_PER_MESSAGE])
    return sum(len(s) for s in by_project.values())


