"""Channels (alerts/channels.py, alerts.tasks.alert_deliver) against a real local HTTP
receiver: signed webhook bodies, retries with backoff on a failing target while another
target still gets its message, Slack's format, email through the locmem backend, test sends."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import mail

from alerts.evaluation import rule_evaluate
from alerts.models import AlertDelivery, DeliveryStatus
from alerts.services import channel_add, rule_secret_rotate, rule_test_send
from alerts.tasks import alert_deliver
from tests.alerts.conftest import NOW, rule, trace


class Receiver:
    """A webhook receiver on 127.0.0.1 in a thread. Each path answers from its script of
    status codes (the last one repeats); every request is recorded with its headers."""

    def __init__(self):
        self.requests: dict[str, list[tuple[dict, bytes]]] = defaultdict(list)
        self.scripts: dict[str, list[int]] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                path = self.path
                receiver.requests[path].append((dict(self.headers), body))
                script = receiver.scripts.get(path, [200])
                status = script[min(len(receiver.requests[path]), len(script)) - 1]
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"nope")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(autouse=True)
def _fast_retries(settings):
    settings.SPYGLASS_ALERTS_ALLOW_PRIVATE_TARGETS = True  # the receiver is on 127.0.0.1
    settings.SPYGLASS_ALERTS_RETRIES = 3
    settings.SPYGLASS_ALERTS_RETRY_BACKOFF_SECONDS = 0
    settings.SPYGLASS_ALERTS_HTTP_TIMEOUT_SECONDS = 2
    settings.SPYGLASS_BASE_URL = "https://spyglass.example.com"


def fire(world, channels: list[tuple[str, str]]):
    """A rule over the sample traces that fires on its first evaluation (3 traces in the
    window, > 2), with the given channels; returns (rule, delivery ids)."""
    p = world.project
    for m in (-1, -2, -3):
        trace(p, m, user="u1", model="gpt-4o")
    r = rule(p, name="Too many traces", filters="model=gpt-4o", group_by="user_id", min_observations=1)
    for kind, target in channels:
        channel_add(rule=r, kind=kind, target=target)
    return r, rule_evaluate(r, now=NOW)


def deliver_all(ids: list[int]) -> None:
    # What the worker does with each queued message (eager: retries run at once).
    for delivery_id in ids:
        alert_deliver.apply(args=[delivery_id])


def test_webhook_body_is_signed_with_the_rules_secret(world, receiver):
    r, ids = fire(world, [("webhook", receiver.url + "/hook")])
    deliver_all(ids)

    [(headers, raw)] = receiver.requests["/hook"]
    expected = "sha256=" + hmac.new(r.secret.encode(), raw, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Spyglass-Signature"], expected)
    assert headers["Content-Type"] == "application/json"
    body = json.loads(raw)
    assert body["rule"]["name"] == "Too many traces" and body["group"] == {"user_id": "u1"}
    assert (body["state"], body["previous_state"], body["value"], body["n"]) == ("alert", "ok", 3.0, 3)
    assert (body["threshold"], body["operator"], body["window"]) == (2.0, ">", "5m")
    link = urlsplit(body["explorer_url"])
    assert link.netloc == "spyglass.example.com" and link.path == f"/p/{world.project.slug}/traces/"
    query = parse_qs(link.query)
    assert query["model"] == ["gpt-4o"] and query["user_id"] == ["u1"]
    assert query["from"] == ["2025-03-03T11:55:00+00:00"] and query["to"] == ["2025-03-03T12:00:00+00:00"]
    assert AlertDelivery.objects.get(pk=ids[0]).status == DeliveryStatus.SENT


def test_a_rotated_secret_signs_what_is_sent_after_it(world, receiver):
    r, ids = fire(world, [("webhook", receiver.url + "/hook")])
    old = r.secret
    new = rule_secret_rotate(rule=r)
    deliver_all(ids)

    [(headers, raw)] = receiver.requests["/hook"]
    assert new != old
    assert headers["X-Spyglass-Signature"] == "sha256=" + hmac.new(new.encode(), raw, hashlib.sha256).hexdigest()


def test_a_failing_target_is_retried_while_another_gets_its_message(world, receiver):
    receiver.scripts["/flaky"] = [500, 503, 200]
    receiver.scripts["/down"] = [502]
    _, ids = fire(world, [("webhook", receiver.url + "/down"), ("webhook", receiver.url + "/flaky"),
                          ("webhook", receiver.url + "/ok")])
    deliver_all(ids)

    assert len(receiver.requests["/ok"]) == 1
    assert len(receiver.requests["/flaky"]) == 3
    assert len(receiver.requests["/down"]) == 4  # the first try and SPYGLASS_ALERTS_RETRIES = 3 retries
    # Every retry sends the same signed body.
    assert len({raw for _, raw in receiver.requests["/down"]}) == 1
    got = {d.channel.target.rsplit("/", 1)[1]: (d.status, d.attempts) for d in AlertDelivery.objects.filter(pk__in=ids)}
    assert got == {"down": ("failed", 4), "flaky": ("sent", 3), "ok": ("sent", 1)}
    down = next(d for d in AlertDelivery.objects.filter(pk__in=ids) if d.channel.target.endswith("/down"))
    assert "HTTP 502" in down.last_error


def test_a_client_error_is_not_retried(world, receiver):
    receiver.scripts["/gone"] = [404]
    _, ids = fire(world, [("webhook", receiver.url + "/gone")])
    deliver_all(ids)

    assert len(receiver.requests["/gone"]) == 1
    assert AlertDelivery.objects.get(pk=ids[0]).status == DeliveryStatus.FAILED


def test_a_refused_connection_is_retried_then_failed(world):
    from tests.integration.support import closed_port

    _, ids = fire(world, [("webhook", f"http://127.0.0.1:{closed_port()}/hook")])
    deliver_all(ids)

    delivery = AlertDelivery.objects.get(pk=ids[0])
    assert (delivery.status, delivery.attempts) == ("failed", 4)
    assert "ConnectError" in delivery.last_error


def test_a_sent_delivery_is_not_sent_twice(world, receiver):
    _, ids = fire(world, [("webhook", receiver.url + "/hook")])
    deliver_all(ids)
    deliver_all(ids)  # a redelivered message

    assert len(receiver.requests["/hook"]) == 1


def test_slack_format(world, receiver):
    _, ids = fire(world, [("slack", receiver.url + "/services/T000/B000/XXXX")])
    deliver_all(ids)

    [(headers, raw)] = receiver.requests["/services/T000/B000/XXXX"]
    body = json.loads(raw)
    assert "X-Spyglass-Signature" not in headers
    assert body["text"] == ("ALERT: Too many traces [user_id=u1] — count(traces) = 3 traces over 5m "
                            "(threshold > 2, was ok)")
    assert body["blocks"][0] == {"type": "section", "text": {"type": "mrkdwn", "text": f"*{body['text']}*"}}
    context = body["blocks"][1]["elements"][0]["text"]
    assert context.startswith("<https://spyglass.example.com/p/") and "|Open the traces>" in context


def test_email_through_djangos_backend(world):
    _, ids = fire(world, [("email", "oncall@example.com")])
    deliver_all(ids)

    [message] = mail.outbox
    assert message.to == ["oncall@example.com"]
    assert message.subject.startswith("[Spyglass] ALERT: Too many traces [user_id=u1]")
    assert "Value: 3.0 traces from 3 observations" in message.body
    assert "https://spyglass.example.com/p/" in message.body


def test_send_test_reaches_every_channel_marked_as_a_test(world, receiver, django_capture_on_commit_callbacks):
    r = rule(world.project, name="Cost per user", measure="cost_usd", agg="sum", group_by="user_id",
             alert_threshold=5.0, window_seconds=86400)
    channel_add(rule=r, kind="webhook", target=receiver.url + "/hook")
    channel_add(rule=r, kind="email", target="pm@example.com")

    with django_capture_on_commit_callbacks() as callbacks:
        ids = rule_test_send(rule=r)
    assert len(callbacks) == 1
    deliver_all(ids)

    [(_, raw)] = receiver.requests["/hook"]
    body = json.loads(raw)
    assert body["test"] is True and body["event_id"] is None and body["group"] == {"user_id": "example"}
    assert mail.outbox[0].subject.startswith("[Spyglass] [TEST] ALERT: Cost per user")
