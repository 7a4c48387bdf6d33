"""Celery tasks of the alerts app (thin): the evaluation tick and one delivery task per
channel, so a failing or slow target never holds up another."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings


@shared_task(name="alerts.tasks.alerts_evaluate", ignore_result=True, expires=55)
def alerts_evaluate() -> int:
    """Beat, every minute: evaluate every enabled rule (alerts/evaluation.py). Returns
    the number of rules evaluated."""
    from alerts.evaluation import alerts_evaluate as evaluate

    return evaluate().evaluated


@shared_task(bind=True, name="alerts.tasks.alert_deliver", ignore_result=True, acks_late=True,
             max_retries=None, soft_time_limit=60, time_limit=90)
def alert_deliver(self, delivery_id: int) -> bool:
    """Send one delivery; on a transient failure retry with exponential backoff
    (SPYGLASS_ALERTS_RETRY_BACKOFF_SECONDS × 2^n, SPYGLASS_ALERTS_RETRIES times)."""
    from alerts.channels import DeliveryFailed
    from alerts.services import delivery_send

    retries = settings.SPYGLASS_ALERTS_RETRIES
    try:
        return delivery_send(delivery_id=delivery_id, final=self.request.retries >= retries)
    except DeliveryFailed as exc:
        raise self.retry(countdown=settings.SPYGLASS_ALERTS_RETRY_BACKOFF_SECONDS * 2 ** self.request.retries,
                         exc=exc) from None


def deliveries_enqueue(ids: list[int]) -> None:
    """One task per delivery (called after commit)."""
    for delivery_id in ids:
        alert_deliver.delay(delivery_id)
