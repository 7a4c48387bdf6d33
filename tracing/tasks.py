"""Celery tasks of the tracing app (thin: ids in, a service call, nothing else)."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as KombuOperationalError


@shared_task(
    name="tracing.tasks.traces_changed",
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OperationalError, InterfaceError, KombuOperationalError),
    retry_backoff=5,
    max_retries=6,
)
def traces_changed(project_id: int, trace_pks: list[int]) -> int:
    """Ingest stored these traces: announce them to every app that reacts (queue `pipeline`)."""
    from tracing import signals
    from tracing.services import traces_changed_announce

    traces_changed_announce(project_id=project_id, trace_pks=trace_pks, reason=signals.INGEST)
    return len(trace_pks)
