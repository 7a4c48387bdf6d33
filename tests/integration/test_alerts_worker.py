"""Alerts through a real Celery worker: the beat's task `alerts.tasks.alerts_evaluate`
sent to the broker, the worker evaluates the committed rule, queues one delivery task per
channel after commit, and a failing target is retried (backoff) while the other target
already has its signed message."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from alerts.models import AlertDelivery, AlertState
from alerts.services import RuleSpec, channel_add, rule_create
from tests.alerts.test_channels import Receiver
from tests.factories import TraceFactory
from tests.integration.support import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_worker_evaluates_and_delivers_with_retries(celery_worker, ingest_key, private_redis_url):
    from celery import Celery
    from django.test import override_settings

    receiver = Receiver()
    receiver.scripts["/flaky"] = [503, 200]
    try:
        project = ingest_key.project
        for _ in range(3):
            TraceFactory(project=project, start_time=timezone.now() - timedelta(minutes=1), user_id="u1")
        rule = rule_create(project=project, spec=RuleSpec(
            name="worker rule", measure="traces", agg="count", group_by="user_id", alert_threshold=2,
            window_seconds=300))
        # The receiver is on 127.0.0.1 (the worker allows it too: integration_env).
        with override_settings(SPYGLASS_ALERTS_ALLOW_PRIVATE_TARGETS=True):
            channel_add(rule=rule, kind="webhook", target=receiver.url + "/flaky")
            channel_add(rule=rule, kind="webhook", target=receiver.url + "/ok")

        # What beat does every minute: send the task by name to the worker's broker.
        sender = Celery("alerts-beat", broker=private_redis_url)
        entry = settings.CELERY_BEAT_SCHEDULE["alerts-evaluate"]
        sender.send_task(entry["task"], queue="default")

        wait_until(lambda: len(receiver.requests["/ok"]) == 1, timeout=120, what="the webhook at /ok",
                   proc=celery_worker.process)
        assert len(receiver.requests["/flaky"]) >= 1  # its first try failed; the retry waits its backoff
        wait_until(lambda: len(receiver.requests["/flaky"]) == 2, timeout=120, what="the retry of /flaky",
                   proc=celery_worker.process)
        celery_worker.wait_idle()

        assert AlertState.objects.get(rule=rule).state == "alert"
        for path in ("/ok", "/flaky"):
            headers, raw = receiver.requests[path][-1]
            expected = "sha256=" + hmac.new(rule.secret.encode(), raw, hashlib.sha256).hexdigest()
            assert headers["X-Spyglass-Signature"] == expected
            assert json.loads(raw)["group"] == {"user_id": "u1"}
        assert sorted(AlertDelivery.objects.values_list("status", "attempts")) == [("sent", 1), ("sent", 2)]
    finally:
        receiver.close()
