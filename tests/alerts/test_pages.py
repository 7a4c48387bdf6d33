"""Alert pages (alerts/views.py): members create and edit, viewers read, outsiders get
404; bad input is a form error naming the field; secrets are shown once, then hinted."""

from __future__ import annotations

import pytest
from django.test import Client

from alerts.models import AlertChannel, AlertRule, AlertState
from alerts.services import channel_add
from tests.alerts.conftest import NOW, rule

GOOD = {"name": "Cost per user", "measure": "cost_usd", "agg": "sum", "filters": "environment=production",
        "group_by": "user_id", "window_seconds": "24h", "operator": ">", "warning_threshold": "2",
        "alert_threshold": "5", "min_observations": "1", "no_data": "ok", "cooldown_seconds": "1h", "enabled": "on"}


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def url(world, suffix: str = "") -> str:
    return f"/p/{world.project.slug}/alerts/{suffix}"


def test_member_creates_a_rule_and_sees_the_secret_once(world):
    client = login(world.member)
    response = client.post(url(world, "new/"), GOOD)

    r = AlertRule.objects.get(project=world.project)
    assert response.status_code == 302 and response["Location"] == url(world, f"{r.pk}/")
    assert (r.measure, r.agg, r.group_by, r.window_seconds, r.cooldown_seconds) == ("cost_usd", "sum", "user_id",
                                                                                  86400, 3600)
    assert (r.warning_threshold, r.alert_threshold, r.no_data, r.filters) == (2.0, 5.0, "ok", "environment=production")
    assert r.created_by == world.member
    first = client.get(url(world, f"{r.pk}/")).content.decode()
    assert f'<code id="secret-value">{r.secret}</code>' in first
    again = client.get(url(world, f"{r.pk}/")).content.decode()
    assert r.secret not in again and r.secret_hint in again


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"measure": "latency"}, "measure", "not a measure"),
    ({"agg": "p95", "measure": "traces"}, "agg", "does not fit traces"),
    ({"group_by": "colour"}, "group_by", "not a dimension"),
    ({"group_by": "model,user_id"}, "group_by", "one dimension"),
    ({"filters": "range=24h"}, "filters", "window sets the time"),
    ({"filters": "score=hallucination>>1"}, "filters", "score"),
    ({"window_seconds": "1m"}, "window_seconds", "5 minutes to 7 days"),
    ({"window_seconds": "8d"}, "window_seconds", "5 minutes to 7 days"),
    ({"window_seconds": "soon"}, "window_seconds", "duration"),
    ({"warning_threshold": "9"}, "warning_threshold", "below the alert threshold"),
    ({"alert_threshold": "lots"}, "alert_threshold", "number"),
    ({"min_observations": "-1"}, "min_observations", "greater than or equal to 0"),
    ({"name": ""}, "name", "required"),
])
def test_bad_input_is_a_form_error_on_its_field(world, change, field, words):
    response = login(world.member).post(url(world, "new/"), {**GOOD, **change})

    assert response.status_code == 400
    errors = response.context["form"].errors
    assert field in errors and words in " ".join(errors[field]), errors
    assert not AlertRule.objects.exists()


def test_member_edits_a_rule(world):
    r = rule(world.project, name="before")
    client = login(world.member)
    response = client.post(url(world, f"{r.pk}/"), {**GOOD, "name": "after", "window_seconds": "5m"})

    assert response.status_code == 302
    r.refresh_from_db()
    assert (r.name, r.window_seconds, r.measure) == ("after", 300, "cost_usd")


def test_viewer_reads_but_cannot_edit(world):
    r = rule(world.project, name="watch")
    AlertState.objects.create(rule=r, group_key="", state="alert", value=3, n=3, since=NOW, evaluated_at=NOW)
    client = login(world.viewer)

    listing = client.get(url(world))
    assert listing.status_code == 200
    assert "watch" in listing.content.decode() and "New rule" not in listing.content.decode()
    page = client.get(url(world, f"{r.pk}/"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "rule-form" not in html and "Send test" not in html and r.secret_hint not in html
    assert client.get(url(world, "history/")).status_code == 200
    assert client.get(url(world, "states/")).status_code == 200

    assert client.get(url(world, "new/")).status_code == 403
    assert client.post(url(world, f"{r.pk}/"), {**GOOD, "name": "hacked"}).status_code == 403
    assert client.post(url(world, f"{r.pk}/channels/"), {"kind": "email", "target": "x@example.com"}).status_code == 403
    assert client.post(url(world, f"{r.pk}/test/")).status_code == 403
    assert client.post(url(world, f"{r.pk}/secret/")).status_code == 403
    assert client.post(url(world, f"{r.pk}/delete/")).status_code == 403
    r.refresh_from_db()
    assert r.name == "watch" and not AlertChannel.objects.exists()


@pytest.mark.parametrize("path", ["", "new/", "history/", "states/", "{id}/"])
def test_outsider_gets_404(world, path):
    r = rule(world.project)
    assert login(world.outsider).get(url(world, path.format(id=r.pk))).status_code == 404


def test_another_projects_rule_is_404_inside_mine(world):
    theirs = rule(world.other_project)
    client = login(world.owner)
    assert client.get(url(world, f"{theirs.pk}/")).status_code == 404
    assert client.post(url(world, f"{theirs.pk}/delete/")).status_code == 404
    assert AlertRule.objects.filter(pk=theirs.pk).exists()


@pytest.mark.parametrize(("kind", "target", "words"), [
    ("webhook", "file:///etc/passwd", "only http:// and https://"),
    ("slack", "gopher://example.com/x", "only http:// and https://"),
    ("webhook", "http://", "needs a host"),
    ("email", "not-an-address", "valid email"),
    ("pager", "http://example.com", "valid choice"),
])
def test_bad_channels_are_form_errors(world, kind, target, words):
    r = rule(world.project)
    response = login(world.member).post(url(world, f"{r.pk}/channels/"), {"kind": kind, "target": target})

    assert response.status_code == 400
    errors = response.context["channel_form"].errors
    assert words in " ".join(e for problems in errors.values() for e in problems), errors
    assert not AlertChannel.objects.exists()


def test_channel_urls_are_never_shown_in_full(world):
    r = rule(world.project)
    secret_url = "https://hooks.slack.com/services/T0001/B0002/very-secret-token"
    client = login(world.member)
    assert client.post(url(world, f"{r.pk}/channels/"), {"kind": "slack", "target": secret_url}).status_code == 302

    html = client.get(url(world, f"{r.pk}/")).content.decode()
    i = html.find("very-secret-token")
    assert i == -1, html[i - 300:i + 50]
    assert "https://hooks.slack.com/service…" in html


def test_send_test_queues_one_delivery_per_channel(world, django_capture_on_commit_callbacks):
    r = rule(world.project)
    channel_add(rule=r, kind="email", target="a@example.com")
    channel_add(rule=r, kind="webhook", target="http://127.0.0.1:9/x")
    with django_capture_on_commit_callbacks() as callbacks:
        response = login(world.member).post(url(world, f"{r.pk}/test/"))
    assert response.status_code == 302
    assert r.channels.filter(deliveries__body__test=True).count() == 2 and len(callbacks) == 1


def test_states_fragment_lists_firing_groups(world):
    r = rule(world.project, name="Cost per user", group_by="user_id")
    AlertState.objects.create(rule=r, group_key='{"user_id": "u7"}', group={"user_id": "u7"}, state="alert",
                              value=7.5, n=4, since=NOW, evaluated_at=NOW)
    html = login(world.viewer).get(url(world, "states/")).content.decode()
    assert 'class="alert-state state-alert">ALERT' in html and "Cost per user" in html and "u7: 7.5" in html
    assert "<html" not in html  # a fragment, not a page


def test_history_rejects_a_bad_cursor(world):
    response = login(world.viewer).get(url(world, "history/"), {"before": "abc"})
    assert response.status_code == 400 and "before: must be an event id" in response.content.decode()


def test_list_query_count_does_not_grow_with_rules(world, django_assert_max_num_queries):
    for i in range(15):
        rule(world.project, name=f"r{i}")
    client = login(world.viewer)
    with django_assert_max_num_queries(12):
        assert client.get(url(world)).status_code == 200


def test_overview_loads_the_alert_states_with_htmx(world):
    html = login(world.viewer).get(f"/p/{world.project.slug}/overview/").content.decode()
    assert f'hx-get="/p/{world.project.slug}/alerts/states/" hx-trigger="load"' in html
