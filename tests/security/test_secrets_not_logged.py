"""API keys never reach the logs: accepted, revoked, unknown, or sent to the wrong
endpoint (the judge's key has its own test in tests/evaluation/test_judge.py)."""

from __future__ import annotations

import json
import logging
import time

from django.test import Client

from projects.services import api_key_create, api_key_revoke
from tests.helpers import key_client


def _otlp() -> str:
    now = time.time_ns()
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "ab" * 16, "spanId": "cd" * 8, "name": "x", "startTimeUnixNano": str(now),
        "endTimeUnixNano": str(now + 1000)}]}]}]})


def test_no_secret_or_public_key_appears_in_any_log_record(world, caplog):
    caplog.set_level(logging.DEBUG)
    revoked = api_key_create(project=world.project, name="old")
    api_key_revoke(project=world.project, key_id=revoked.key.pk)
    unknown = "sk-sg-" + "Q" * 40
    for secret, expected in ((world.key.secret_key, 200), (revoked.secret_key, 401), (unknown, 401)):
        response = key_client(secret).post("/v1/traces", _otlp(), content_type="application/json")
        assert response.status_code == expected
        assert key_client(secret).get("/api/v1/traces/" + "00" * 16).status_code in (401, 404)
    # A secret key on the public endpoint is refused (and must not be echoed to the log).
    feedback = {"trace_id": "ab" * 16, "name": "thumbs", "value": True}
    assert Client(HTTP_X_SPYGLASS_PUBLIC_KEY=world.key.secret_key).post(
        "/api/v1/feedback", feedback, content_type="application/json").status_code == 401
    assert caplog.records, "the refusals are logged (django.request), so the check below means something"
    for secret in (world.key.secret_key, revoked.secret_key, unknown):
        assert secret not in caplog.text and secret[6:] not in caplog.text
