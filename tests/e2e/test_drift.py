"""Browser: a viewer opens the drift page on a week with a planted GPU topic, sees the
flagged features, the embedding verdict and the new topic, and follows an example
trace into the explorer. Screenshot to /tmp for a human look."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from playwright.sync_api import expect

from tests.drift.conftest import PARAMS, plant
from tests.e2e.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_viewer_finds_the_planted_topic_and_flagged_features(page, world):
    plant(world)
    login(page, "viewer", "pw-viewer")
    page.goto(f"/p/{world.project.slug}/drift/?{urlencode(PARAMS)}")

    expect(page.get_by_role("heading", name="Drift", exact=True)).to_be_visible()
    model = page.locator('tr[data-feature="model"]')
    expect(model.locator(".status")).to_have_text("alert")
    expect(page.locator('tr[data-feature="hallucination_rate"] .status')).to_have_text("alert")
    expect(page.locator("#h-embedding + p .status")).to_have_text("drift")
    topic = page.locator("li.topic")
    expect(topic).to_have_count(1)
    expect(topic.locator("strong")).to_contain_text("gpu")
    # plotly drew the PSI chart from the embedded JSON (no inline script).
    expect(page.locator("#drift-chart .main-svg").first).to_be_visible()
    page.screenshot(path="/tmp/spyglass-drift.png", full_page=True)

    example = topic.locator(".examples a").first
    text = example.inner_text()
    example.click()
    page.wait_for_url(f"**/p/{world.project.slug}/traces/**")
    expect(page.get_by_text(text[:30]).first).to_be_visible()


def test_bad_window_shows_the_error_next_to_the_field(page, world):
    login(page, "viewer", "pw-viewer")
    page.goto(f"/p/{world.project.slug}/drift/")
    page.fill("#d-from", "2025-03-02T00:00:00")
    page.fill("#d-to", "2025-03-01T00:00:00")
    page.get_by_role("button", name="Compare").click()
    expect(page.locator("#e-from")).to_contain_text("must be before to")
    expect(page.locator("#d-from")).to_have_attribute("aria-invalid", "true")
