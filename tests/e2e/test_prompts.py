"""Browser: a member creates a version and moves the production label; screenshots of the
prompt page and the A/B comparison go to /tmp for a human look."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.e2e.conftest import login
from tests.prompts.conftest import add_score, add_version, ingest_trace

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _traffic(project, version: int, *, count: int, latency: float, thumbs_up: float, seed: int) -> None:
    rng = random.Random(seed)
    now = timezone.now()
    for i in range(count):
        start = now - timedelta(days=6 * i / count, minutes=rng.randint(0, 50))
        trace_id = ingest_trace(
            project,
            prompt=("support-answer", version),
            start=start,
            latency_ms=rng.gauss(latency, latency * 0.2),
            error=rng.random() < 0.03,
            tokens=(rng.randint(300, 500), rng.randint(60, 140)),
        )
        add_score(project, trace_id, "user_thumbs", 1.0 if rng.random() < thumbs_up else 0.0, "end_user")
        if rng.random() < 0.15:
            add_score(project, trace_id, "rephrase", 1.0, "implicit")


def test_member_creates_a_version_and_moves_the_label(page, world):
    add_version(world.project, "support-answer", "Answer {{question}} politely.", labels=["production"],
                commit_message="first draft")
    add_version(world.project, "support-answer", "Answer {{question}} briefly, citing {{source}}.",
                commit_message="cite sources")
    _traffic(world.project, 1, count=60, latency=900, thumbs_up=0.70, seed=1)
    _traffic(world.project, 2, count=60, latency=700, thumbs_up=0.86, seed=2)

    login(page, "member", "pw-member")
    base = f"/p/{world.project.slug}/prompts/support-answer/"
    page.goto(base + "versions/new/")
    page.fill("#id_template", "Answer {{question}} briefly and kindly, citing {{source}}.")
    page.fill("#id_commit_message", "kinder tone")
    page.click("button[type=submit]:has-text('Save as v3')")
    page.wait_for_url(f"**{base}")
    assert page.get_by_text("Saved support-answer v3.").is_visible()

    page.fill("#id_label", "production")
    page.select_option("#id_version", "3")
    page.click("#label-form button[type=submit]")
    page.wait_for_url(f"**{base}")
    assert page.get_by_text("Moved production from v1 to v3.").is_visible()
    history = page.locator("table").last
    assert "v1" in history.inner_text() and "member" in history.inner_text()

    page.wait_for_selector("#metrics-chart .main-svg")
    page.screenshot(path="/tmp/prompt_page.png", full_page=True)

    page.goto(base + "compare/?a=1&b=2&range=7d")
    page.wait_for_selector("#metrics-chart .main-svg")
    assert page.get_by_text("B's thumbs-up rate is").is_visible()
    page.screenshot(path="/tmp/prompt_compare.png", full_page=True)


def test_viewer_sees_no_write_controls(page, world):
    add_version(world.project, "support-answer", "Hi {{name}}")
    login(page, "viewer", "pw-viewer")
    page.goto(f"/p/{world.project.slug}/prompts/support-answer/")
    assert page.locator("#label-form").count() == 0
    assert page.get_by_role("link", name="New version").count() == 0
    page.goto(f"/p/{world.project.slug}/prompts/support-answer/versions/1/")
    page.fill("input[name='var:name']", "Ada")
    page.click("button:has-text('Render')")
    page.wait_for_selector("#preview pre")
    assert page.locator("#preview").inner_text().strip() == "Hi Ada"
