"""Browser: a viewer opens the bias-slices page and finds the planted flagged cell, its
finding, the trend chart (drawn by static/slices/slices.js under the strict CSP) and the
click-through to the explorer."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import login
from tests.slices.conftest import WINDOW, planted  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_viewer_finds_the_flagged_cell(page, world, planted):  # noqa: F811
    login(page, "viewer", "pw-viewer")
    page.goto(f"/p/{world.project.slug}/slices/?dimension=metadata.locale&from={WINDOW['from']}&to={WINDOW['to']}"
              .replace("+", "%2B"))

    flagged = page.locator("td.flagged[data-metric='hallucination_rate']")
    expect(flagged).to_have_count(1)
    expect(flagged).to_contain_text("30.0%")
    row = page.locator("tr", has=flagged)
    expect(row.locator("th")).to_contain_text("locale ja-JP")
    expect(page.locator(".findings li").first).to_contain_text("locale ja-JP: hallucination rate 30.0%")
    expect(page.locator("#slices-chart .main-svg").first).to_be_visible()  # plotly drew the figure

    row.locator("th a").click()
    expect(page).to_have_url(re.compile(r"/traces/\?.*metadata\.locale=ja-JP"))
