"""Alert targets: no server-side request forgery (private, loopback and link-local
addresses refused unless allowed), secrets encrypted at rest, and the migration that
encrypted the rows already stored."""

from __future__ import annotations

import logging
import socket

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from alerts.channels import DeliveryFailed, _pinned, channel_send, target_address_problem
from alerts.models import AlertChannel, AlertRule
from alerts.services import channel_add
from config.errors import ValidationFailed
from tests.alerts.conftest import rule

SLACK = "https://hooks.slack.com/services/T1/B2/slack-path-secret"


@pytest.fixture
def guarded(settings):
    settings.SPYGLASS_ALERTS_ALLOW_PRIVATE_TARGETS = False
    return settings


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/hook", "http://localhost/hook", "http://10.0.0.5/hook", "http://192.168.1.20/hook",
    "http://172.16.0.1/hook", "http://169.254.169.254/latest/meta-data/", "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook", "http://0.0.0.0/hook", "http://100.64.0.1/hook", "http://[fe80::1]/hook",
])
def test_private_loopback_and_link_local_targets_are_refused(guarded, url):
    assert "private, loopback or link-local" in target_address_problem(url)


def test_a_public_address_is_accepted_and_the_setting_allows_private_ones(guarded):
    assert target_address_problem("https://93.184.215.14/hook") is None
    guarded.SPYGLASS_ALERTS_ALLOW_PRIVATE_TARGETS = True
    assert target_address_problem("http://127.0.0.1:8080/hook") is None


@pytest.mark.django_db
def test_a_private_target_is_a_form_error_and_is_never_contacted(world, guarded):
    r = rule(world.project)
    with pytest.raises(ValidationFailed, match="private, loopback or link-local"):
        channel_add(rule=r, kind="webhook", target="http://169.254.169.254/latest/meta-data/")
    assert not AlertChannel.objects.exists()
    # Added while allowed (or before the guard existed), refused at delivery, not retried.
    guarded.SPYGLASS_ALERTS_ALLOW_PRIVATE_TARGETS = True
    channel = channel_add(rule=r, kind="webhook", target="http://127.0.0.1:9/hook")
    guarded.SPYGLASS_ALERTS_ALLOW_PRIVATE_TARGETS = False
    with pytest.raises(DeliveryFailed) as failed:
        channel_send(channel, {"test": True}, r.secret)
    assert not failed.value.transient and "refused" in str(failed.value)


def test_delivery_connects_to_the_address_it_checked(guarded, monkeypatch):
    """DNS rebinding: a name that answers a public address to the check and a private one
    to the connection must not reach the private one. The request goes to the checked
    address, with the URL's name in Host and TLS."""
    answers = iter([[(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 443))],
                    [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 443))]])
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: next(answers))
    url, headers, extensions = _pinned("https://hooks.example.com/services/x?y=1")
    assert url == "https://93.184.215.14/services/x?y=1"
    assert headers == {"Host": "hooks.example.com"} and extensions == {"sni_hostname": "hooks.example.com"}


def _tables_holding(needle: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        found = []
        for (table,) in cursor.fetchall():
            cursor.execute(f'SELECT count(*) FROM "{table}" t WHERE t::text LIKE %s', [f"%{needle}%"])
            if cursor.fetchone()[0]:
                found.append(table)
    return found


@pytest.mark.django_db
def test_signing_secrets_and_channel_urls_are_encrypted_at_rest(world):
    r = rule(world.project)
    channel_add(rule=r, kind="slack", target=SLACK)
    stored = AlertRule.objects.get(pk=r.pk)
    assert stored.secret.startswith("whsec_") and AlertChannel.objects.get().target == SLACK
    assert _tables_holding("slack-path-secret") == [] and _tables_holding(stored.secret) == []
    assert AlertChannel.objects.get().target_hint == "https://hooks.slack.com/service…"


@pytest.mark.django_db
def test_a_value_encrypted_under_another_key_is_reported_not_guessed(world, settings):
    r = rule(world.project)
    channel = channel_add(rule=r, kind="slack", target=SLACK)
    settings.SPYGLASS_SECRETS_KEY = "a different key"
    channel = AlertChannel.objects.get(pk=channel.pk)
    assert channel.target is None and "unreadable" in channel.target_hint
    with pytest.raises(DeliveryFailed, match="cannot be decrypted") as failed:
        channel_send(channel, {"test": True}, AlertRule.objects.get(pk=r.pk).secret)
    assert not failed.value.transient


@pytest.mark.django_db(transaction=True)
def test_migration_encrypts_the_rows_already_stored(world):
    executor = MigrationExecutor(connection)
    before = executor.loader.project_state([("alerts", "0001_initial")]).apps
    executor.migrate([("alerts", "0001_initial")])
    try:
        OldRule, OldChannel = before.get_model("alerts", "AlertRule"), before.get_model("alerts", "AlertChannel")
        old_rule = OldRule.objects.create(project_id=world.project.pk, name="old", measure="traces", agg="count",
                                          window_seconds=300, alert_threshold=1, secret="whsec_old-plain-secret")
        OldChannel.objects.create(rule=old_rule, kind="slack", target=SLACK)
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
    migrated = AlertRule.objects.get(pk=old_rule.pk)
    assert migrated.secret == "whsec_old-plain-secret" and migrated.channels.get().target == SLACK
    assert _tables_holding("old-plain-secret") == [] and _tables_holding("slack-path-secret") == []


@pytest.mark.django_db
def test_a_channel_url_never_reaches_the_logs(world, caplog):
    from tests.alerts.test_channels import Receiver

    caplog.set_level(logging.DEBUG)
    receiver = Receiver()
    try:
        receiver.scripts["/services/T1/B2/log-path-secret"] = [500]
        r = rule(world.project)
        channel = channel_add(rule=r, kind="slack", target=receiver.url + "/services/T1/B2/log-path-secret")
        body = {"test": True, "group": {}, "value": 1.0, "unit": "", "rule": {"agg": "count", "measure": "traces",
                "name": "r"}, "state": "alert", "previous_state": "ok", "window": "5m", "operator": ">",
                "threshold": 0.0, "explorer_url": "x", "rule_url": "y", "n": 1}
        with pytest.raises(DeliveryFailed) as failed:
            channel_send(channel, body, r.secret)
    finally:
        receiver.close()
    assert len(receiver.requests["/services/T1/B2/log-path-secret"]) == 1  # it was sent, and failed
    assert "log-path-secret" not in str(failed.value)
    assert "log-path-secret" not in caplog.text
