"""Browser: the overview, cost and a saved dashboard draw their plotly charts, and clicking a
bar opens the trace explorer filtered to that bar's group. Screenshots go to /tmp."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from dashboards.services import chart_add, dashboard_create
from scores.services import score_upsert
from tests.e2e.conftest import login
from tests.factories import TraceFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# prompt version -> (traces, model, cost each)
TRAFFIC = {("support", "2"): (5, "gpt-4o", "0.02"), ("support", "1"): (3, "gpt-4o-mini", "0.01")}


@pytest.fixture
def traffic(world):
    now = timezone.now()
    made = {}
    i = 0
    for (prompt, version), (count, model, cost) in TRAFFIC.items():
        for _ in range(count):
            i += 1
            trace = TraceFactory(project=world.project, start_time=now - timedelta(hours=i), model=model,
                                 cost_usd=Decimal(cost), prompt_name=prompt, prompt_version=version,
                                 user_id=f"user-{i % 3}", session_id=f"s-{i}", environment="production",
                                 metadata={"locale": "de-DE" if i % 2 else "en-US"})
            made[trace.trace_id] = (prompt, version)
            score_upsert(project=world.project, trace_id=trace.trace_id, name="user_thumbs", value=float(i % 4 != 0),
                         source="end_user", data_type="boolean")
    return made


def click_first_bar(page, chart_id: str) -> None:
    """Hover then click the middle of the chart's first bar, as a mouse would (plotly
    picks the point under the pointer on its drag layer, not on the bar element)."""
    expect(page.locator(f"#{chart_id}")).to_have_attribute("data-rendered", "true")
    # Panels loaded after the page (the overview's alert states) move the charts: let
    # them land before taking coordinates.
    expect(page.get_by_text("Loading alert states")).to_have_count(0)
    bar = page.locator(f"#{chart_id} g.point path").first
    expect(bar).to_be_visible()
    bar.scroll_into_view_if_needed()  # mouse coordinates are the viewport's
    box = bar.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    expect(page.locator(f"#{chart_id} .hoverlayer .hovertext")).to_be_visible()  # the pointer is on the bar
    page.mouse.click(x, y)


def test_overview_draws_charts_and_a_bar_opens_the_filtered_explorer(page, world, traffic):
    login(page, "viewer", "pw-viewer")
    page.goto(f"/p/{world.project.slug}/")  # the project root is the overview
    page.wait_for_url("**/overview/")
    expect(page.locator("#card-chart-n-traces .big-number")).to_have_text("8")
    expect(page.locator("#chart-traces .main-svg").first).to_be_visible()
    expect(page.locator("#chart-latency")).to_have_attribute("data-rendered", "true")
    page.screenshot(path="/tmp/dashboards-overview.png", full_page=True)

    # Cost by prompt version: the first bar is support@2 (most traces).
    click_first_bar(page, "chart-cost-prompt")
    page.wait_for_url(re.compile(r"/traces/\?"))
    query = parse_qs(urlsplit(page.url).query)
    assert query["prompt"] == ["support"] and query["prompt_version"] == ["2"] and "from" in query
    expect(page.locator("table.traces tbody tr")).to_have_count(5)
    # The explorer's own form holds the bucket, so editing a filter there keeps the window.
    expect(page.locator("#f-from")).to_have_value(query["from"][0])
    expect(page.locator("#f-to")).to_have_value(query["to"][0])


def test_cost_page_bar_by_model_opens_the_explorer(page, world, traffic):
    login(page, "viewer", "pw-viewer")
    page.goto(f"/p/{world.project.slug}/cost/?range=7d&key=locale")
    expect(page.locator("#total-cost")).to_have_text("$0.1300")  # 5 x .02 + 3 x .01
    expect(page.locator("#chart-by-meta")).to_have_attribute("data-rendered", "true")
    page.screenshot(path="/tmp/dashboards-cost.png", full_page=True)

    click_first_bar(page, "chart-by-model")
    page.wait_for_url(re.compile(r"/traces/\?"))
    assert parse_qs(urlsplit(page.url).query)["model"] == ["gpt-4o"]
    expect(page.locator("table.traces tbody tr")).to_have_count(5)


def test_member_builds_a_saved_chart_and_its_bar_opens_the_explorer(page, world, traffic):
    board = dashboard_create(project=world.project, name="Markets", user=world.member)
    chart_add(dashboard=board, title="Traces by locale", measure="traces", agg="count",
              group_by=["metadata.locale"], top=10, interval="", filters=[], chart_type="bar")

    login(page, "member", "pw-member")
    page.goto(f"/p/{world.project.slug}/dashboards/")
    page.get_by_role("link", name="Markets").click()
    page.get_by_role("link", name="Add chart").click()
    page.fill("#id_title", "Cost by model")
    page.fill("#id_measure", "cost_usd")
    page.select_option("#id_agg", "sum")
    page.fill("#id_group_by_1", "model")
    page.select_option("#id_interval", "")
    page.select_option("#id_chart_type", "bar")
    page.click("#chart-form button[type=submit]")
    page.wait_for_url(re.compile(rf"/dashboards/{board.pk}/$"))
    expect(page.locator(".chart-card h2")).to_have_text(["Traces by locale", "Cost by model"])
    page.screenshot(path="/tmp/dashboards-saved.png", full_page=True)

    # Traces by locale: de-DE has 4 of 8 (odd i), en-US 4; ties sort by value: de-DE first.
    chart_id = page.locator(".chart-card .plot").first.get_attribute("id")
    click_first_bar(page, chart_id)
    page.wait_for_url(re.compile(r"/traces/\?"))
    assert parse_qs(urlsplit(page.url).query)["metadata.locale"] == ["de-DE"]
    expect(page.locator("table.traces tbody tr")).to_have_count(4)
