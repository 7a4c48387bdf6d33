"""Browser: a member fills the per-user cost example (static/alerts/alerts.js under the
strict CSP), creates the rule, adds a channel; the overview loads the rule's state with htmx."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from alerts.models import AlertRule
from tests.e2e.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_member_creates_the_example_rule_and_the_overview_shows_it(page, world):
    login(page, "member", "pw-member")
    page.goto(f"/p/{world.project.slug}/alerts/new/")
    page.click("#use-example")
    expect(page.locator("#id_group_by")).to_have_value("user_id")
    expect(page.locator("#id_window_seconds")).to_have_value("24h")
    page.click("#rule-form button[type=submit]")

    expect(page.locator("h1")).to_contain_text("Cost per user, rolling 24 h")
    expect(page.locator("#secret-value")).to_contain_text("whsec_")
    page.select_option("#id_kind", "email")
    page.fill("#id_target", "oncall@example.com")
    page.click("#channel-form button[type=submit]")
    expect(page.locator("#channel-list")).to_contain_text("oncall@example.com")
    rule = AlertRule.objects.get(project=world.project)
    assert (rule.measure, rule.agg, rule.window_seconds, rule.alert_threshold) == ("cost_usd", "sum", 86400, 5.0)

    page.goto(f"/p/{world.project.slug}/overview/")
    expect(page.locator("#alert-states")).to_contain_text("Cost per user, rolling 24 h")
    expect(page.locator("#alert-states .alert-state").first).to_have_text("OK")
