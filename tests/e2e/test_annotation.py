"""A reviewer finishes an annotation queue with the keyboard only (Playwright, Chromium)."""

from __future__ import annotations

import re

import pytest

from annotation.models import QueueReview, ReviewStatus
from annotation.services import queue_create
from scores.models import Score, Source
from tests.e2e.conftest import login
from tests.factories import TraceFactory
from tests.helpers import config

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CONVERSATIONS = [
    (
        "Can I return shoes I wore once?",
        "Yes — unworn or lightly worn shoes can be returned within 30 days with the receipt.",
    ),
    ("Where is my order 88412?", "Order 88412 left our warehouse yesterday and should arrive on Thursday."),
    ("Do you ship to Norway?", "We ship to all EU countries. Norway is not in the EU, so we cannot ship there yet."),
    ("Cancel my subscription", "I can't cancel subscriptions, but you can do it under Account → Billing."),
]


def test_reviewer_finishes_a_queue_with_the_keyboard(world, page):
    traces = [
        TraceFactory(project=world.project, name="support-answer", input=q, output=a, model="gpt-4o-mini", spans=3)
        for q, a in CONVERSATIONS
    ]
    queue = queue_create(
        project=world.project,
        name="Thumbs down — last 7 days",
        created_by=world.owner,
        items=[(t.trace_id, None) for t in traces],
        config_ids=[config(world.project, "helpfulness").pk, config(world.project, "safety").pk],
    )
    login(page, "reviewer", "pw-reviewer")
    page.goto(f"/p/{world.project.slug}/annotate/{queue.pk}/")
    page.click("#start-review")

    # Item 1: 4 on helpfulness moves the focus to safety, 1 = yes, Enter submits.
    page.wait_for_selector("text=Item 1")
    assert page.locator("fieldset.score.active legend").inner_text() == "helpfulness"
    page.keyboard.press("4")
    assert page.locator("fieldset.score.active legend").inner_text() == "safety"
    page.keyboard.press("1")
    page.screenshot(path="/tmp/reviewer_flow.png", full_page=True)
    page.keyboard.press("Enter")

    # Item 2
    page.wait_for_selector("text=Item 2")
    page.keyboard.press("2")
    page.keyboard.press("0")
    page.keyboard.press("Enter")

    # Item 3: k back to item 2 (its answers kept), j forward again, then review it.
    page.wait_for_selector("text=Item 3")
    page.keyboard.press("k")
    page.wait_for_selector("text=Item 2")
    assert page.locator("text=reviewed").count() >= 1
    assert page.locator("input[name^=score_][value='2']").first.is_checked()
    page.keyboard.press("j")
    page.wait_for_selector("text=Item 3")
    page.keyboard.press("5")
    page.keyboard.press("1")
    page.keyboard.press("Enter")

    # Item 4: skip with s.
    page.wait_for_selector("text=Item 4")
    page.keyboard.press("s")

    page.wait_for_selector("#queue-finished")
    assert re.search(r"3 / 4 reviews", page.inner_text("#queue-finished"))
    page.screenshot(path="/tmp/reviewer_done.png")

    given = {
        (s.trace_id, s.name): s.value for s in Score.objects.filter(source=Source.ANNOTATION, author=world.reviewer)
    }
    assert given == {
        (traces[0].trace_id, "helpfulness"): 4.0, (traces[0].trace_id, "safety"): 1.0,
        (traces[1].trace_id, "helpfulness"): 2.0, (traces[1].trace_id, "safety"): 0.0,
        (traces[2].trace_id, "helpfulness"): 5.0, (traces[2].trace_id, "safety"): 1.0,
    }  # fmt: skip
    statuses = dict(QueueReview.objects.values_list("item__position", "status"))
    assert statuses == {1: ReviewStatus.DONE, 2: ReviewStatus.DONE, 3: ReviewStatus.DONE, 4: ReviewStatus.SKIPPED}
