"""Browser: a member filters the explorer, builds a dataset from the filter through the
explorer's link, and exports it; the export is parsed back."""

from __future__ import annotations

import json
import time

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import login
from tests.helpers import ingest_trace

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_build_a_dataset_from_the_filtered_explorer_and_export_it(page, world):
    now = time.time_ns()
    for i in range(4):
        ingest_trace(world.project, input=f"pro question {i}", output=f"pro answer {i}",
                     start_ns=now - (i + 1) * 60 * 10**9, attributes={"metadata": '{"plan": "pro"}'})
    for i in range(2):
        ingest_trace(world.project, input=f"free question {i}", output="free answer",
                     start_ns=now - (i + 10) * 60 * 10**9, attributes={"metadata": '{"plan": "free"}'})

    login(page, "member", "pw-member")
    page.goto(f"/p/{world.project.slug}/traces/")
    expect(page.locator("table.traces tbody tr")).to_have_count(6)
    page.click("details.more-filters summary")
    page.fill("#f-meta", "plan=pro")
    page.press("#f-meta", "Enter")
    page.wait_for_url("**plan%3Dpro**")
    expect(page.locator("table.traces tbody tr")).to_have_count(4)

    # The link was re-rendered with the results: it carries the filter just applied.
    page.click("#add-to-dataset")
    page.wait_for_url(lambda url: "/datasets/add/?" in url and "metadata.plan=pro" in url)
    expect(page.locator("#preview")).to_contain_text("4 traces match")
    page.fill("#new_name", "pro-golden")
    page.fill("#limit", "3")
    page.click("#bulk-add button[type=submit]")
    page.wait_for_url("**/datasets/pro-golden/")
    expect(page.get_by_text("Version 1: 3 item(s) added.")).to_be_visible()
    items = page.locator("#items tbody tr")
    expect(items).to_have_count(3)
    assert "free" not in page.locator("#items").inner_text()
    page.screenshot(path="/tmp/datasets-detail.png", full_page=True)

    with page.expect_download() as download_info:
        page.click("#export-openai_jsonl")
    path = download_info.value.path()
    lines = [json.loads(line) for line in open(path, encoding="utf-8").read().splitlines()]
    assert sorted(line["messages"][0]["content"] for line in lines) == [f"pro question {i}" for i in range(3)]
    assert all(line["messages"][-1] == {"role": "assistant", "content": line["messages"][0]["content"]
                                        .replace("question", "answer")} for line in lines)
