"""Browser tests of the trace explorer and settings: a person with a keyboard and a mouse.

Data is committed (live_server serves another thread), created through the ingest path.
Screenshots of the trace list and a trace go to /tmp for a human look.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from scores.models import DataType, Score, Source
from tests import otlp_payloads as otlp
from tests.e2e.conftest import login
from tests.explorer.test_pages import chat_trace, ingest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def explorer_data(world):
    now = timezone.now()
    rag = otlp.llm_trace("genai", base_ns=int((now - timedelta(minutes=30)).timestamp()) * 10**9)
    ingest(world.project, rag.spans)
    questions = [
        ("Wie bekomme ich eine Rückerstattung?", "Innerhalb von 30 Tagen.", "user-de", "sess-de"),
        ("Как оформить возврат?", "В течение 30 дней.", "user-ru", "sess-ru"),
        ("注文の返金はできますか?", "はい、30日以内なら可能です。", "user-ja", "sess-ja"),
        ("Where is my parcel?", "It ships tomorrow.", "user-en", "sess-en"),
    ]
    ids = {}
    for i, (question, answer, user, session) in enumerate(questions):
        ids[user] = chat_trace(
            world.project, start=now - timedelta(minutes=20 - i), question=question, answer=answer, user=user,
            session=session, latency_ms=400 + 300 * i, error=(i == 1), children=2,
        )  # fmt: skip
    Score.objects.create(project=world.project, trace_id=rag.trace_id, name="helpfulness", value=4,
                         data_type=DataType.NUMERIC, source=Source.EVALUATOR)  # fmt: skip
    Score.objects.create(project=world.project, trace_id=rag.trace_id, name="user_thumbs", value=1,
                         data_type=DataType.BOOLEAN, source=Source.END_USER)  # fmt: skip
    return rag, ids


def test_explore_filter_open_trace_expand_span_open_session(page, world, explorer_data):
    rag, _ids = explorer_data
    login(page, "owner", "pw-owner")
    page.goto(f"/p/{world.project.slug}/traces/")
    assert page.locator("table.traces tbody tr").count() == 5
    page.screenshot(path="/tmp/explorer-trace-list.png", full_page=True)

    # Filter by user with the keyboard: type, Enter; htmx swaps the results and the URL.
    # Status reads "ok" unless the trace failed (the German question's trace errored).
    statuses = page.locator("table.traces tbody .status").all_text_contents()
    assert sorted(statuses) == ["error", "ok", "ok", "ok", "ok"]

    page.fill("#f-user", "user-ja")
    page.press("#f-user", "Enter")
    page.wait_for_url("**user_id=user-ja**")
    expect(page.locator("table.traces tbody tr")).to_have_count(1)
    assert "name=" not in page.url  # empty filters stay out of shared URLs

    # Full-text search across languages.
    page.fill("#f-user", "")
    page.fill("#f-q", "Rückerstattung")
    page.press("#f-q", "Enter")
    page.wait_for_url("**q=R**")
    expect(page.locator("table.traces tbody tr")).to_have_count(1)
    assert "user-de" in page.locator("table.traces tbody").inner_text()

    # Back to all, open the RAG trace.
    page.goto(f"/p/{world.project.slug}/traces/?session_id={otlp.SESSION_ID}")
    page.click("a.row-link")
    page.wait_for_url(f"**/traces/{rag.trace_id}/**")
    assert page.locator(".wf-row").count() == 4
    assert "helpfulness" in page.locator(".scores").inner_text()

    # Expand the LLM span from the keyboard: focus its row and press Enter.
    llm_row = page.locator(f'.wf-row[data-span="{rag.span_ids["llm"]}"]')
    llm_row.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(f'#span-panel article[data-span="{rag.span_ids["llm"]}"]')
    panel = page.locator("#span-panel")
    assert "messages" in panel.inner_text().lower() and otlp.ANSWER in panel.inner_text()
    assert llm_row.get_attribute("aria-current") == "true"
    page.screenshot(path="/tmp/explorer-trace-detail.png", full_page=True)

    # Retriever documents, raw attributes as collapsible JSON.
    page.click(f'.wf-row[data-span="{rag.span_ids["retriever"]}"]')
    page.wait_for_selector(f'#span-panel article[data-span="{rag.span_ids["retriever"]}"]')
    assert "kb-207" in panel.inner_text()
    page.click("#span-panel details.raw summary")
    assert "gen_ai.operation.name" in panel.locator("details.raw pre").first.inner_text()

    # Copy as JSON fetches the API's JSON of this trace.
    page.click("#copy-json")
    expect(page.locator("#copy-json")).to_have_attribute("data-copied", re.compile("trace_id"))
    copied = page.locator("#copy-json").get_attribute("data-copied")
    assert f'"trace_id": "{rag.trace_id}"' in copied and '"spans"' in copied

    # Open the session from the trace header.
    page.click(f'.trace-head a[href$="/sessions/{otlp.SESSION_ID}/"]')
    page.wait_for_url(f"**/sessions/{otlp.SESSION_ID}/")
    assert otlp.QUESTION in page.locator(".bubble.user").first.inner_text()


def test_create_and_revoke_a_key(page, world):
    login(page, "owner", "pw-owner")
    page.goto(f"/p/{world.project.slug}/settings/")
    page.fill("#key-name", "ci runner")
    page.click("text=Create key")
    page.wait_for_selector("#new-secret")
    secret = page.locator("#secret-value").inner_text()
    assert secret.startswith("sk-sg-")

    page.reload()
    assert page.locator("#new-secret").count() == 0
    assert secret not in page.content()

    row = page.locator("tr", has_text="ci runner")
    row.get_by_role("button", name="Revoke").click()
    page.wait_for_selector(".messages li")
    assert "revoked" in page.locator("tr", has_text="ci runner").inner_text().lower()


def test_viewer_is_denied_the_settings_page(page, world):
    login(page, "viewer", "pw-viewer")
    response = page.goto(f"/p/{world.project.slug}/settings/")
    assert response.status == 403
    # ...but reads traces.
    assert page.goto(f"/p/{world.project.slug}/traces/").status == 200


def test_switch_an_evaluator_off_from_the_settings_page(page, world):
    from evaluation.evaluators import registry

    login(page, "owner", "pw-owner")
    page.goto(f"/p/{world.project.slug}/settings/")
    page.get_by_role("link", name="Evaluators").click()
    page.wait_for_url("**/settings/evaluators")
    page.get_by_label("Toxicity").uncheck()
    page.locator("#ev-injection").get_by_label("Flag at or above").fill("0.8")
    page.get_by_label("iban").uncheck()
    page.get_by_role("button", name="Save").click()
    page.wait_for_selector(".messages li")
    assert "saved" in page.locator(".messages").inner_text().lower()
    assert not page.get_by_label("Toxicity").is_checked()  # the page shows what is stored
    config = registry.evaluator_config(world.project)
    assert config["toxicity"]["enabled"] is False and config["injection"]["threshold"] == 0.8
    assert "iban" not in config["pii"]["kinds"] and "email" in config["pii"]["kinds"]


def test_flagged_chip_leads_folded_scores_open_from_the_keyboard_and_annotating_refreshes_scores(page, world):
    trace_id = chat_trace(world.project, start=timezone.now() - timedelta(minutes=5), root_status=0)
    for name, value, data_type, metadata in [
        ("hallucination", 0.82, DataType.NUMERIC, {"flagged": True, "threshold": 0.5}),
        ("pii_input", 0, DataType.BOOLEAN, {}),
        ("pii_output", 0, DataType.BOOLEAN, {}),
        ("prompt_injection", 0, DataType.NUMERIC, {"flagged": False}),
    ]:
        Score.objects.create(project=world.project, trace_id=trace_id, name=name, value=value,
                             data_type=data_type, source=Source.EVALUATOR, metadata=metadata)  # fmt: skip
    login(page, "reviewer", "pw-reviewer")
    page.goto(f"/p/{world.project.slug}/traces/")

    cell = page.locator("table.traces tbody td.col-scores").first
    assert cell.locator(".badge").first.inner_text().endswith("hallucination 0.82")
    assert not cell.get_by_text("pii_input").is_visible()  # folded
    # Tab to "+3" and open it with Enter, as a keyboard user would.
    summary = cell.locator("details.more-scores summary")
    assert summary.inner_text().startswith("+3")
    summary.focus()
    page.keyboard.press("Enter")
    assert cell.get_by_text("pii_input").is_visible()
    assert page.locator("table.traces tbody .status").first.text_content() == "ok"

    # The trace page lists every score once, grouped by source; annotating from the
    # panel adds the reviewer's score to that list without a reload.
    page.click("a.row-link")
    page.wait_for_url(f"**/traces/{trace_id}/**")
    scores = page.locator("#trace-scores")
    assert scores.locator("#scores-evaluator").get_by_text("hallucination").count() == 1
    assert "No annotations yet" in scores.locator("#scores-annotation").inner_text()
    page.locator("fieldset.score", has_text="helpfulness").get_by_text("2", exact=True).click()
    page.get_by_role("button", name="Save scores").click()
    page.wait_for_selector("#scores-annotation code:text('helpfulness')")
    annotation = page.locator("#scores-annotation").inner_text()
    assert "helpfulness" in annotation and "reviewer" in annotation
    assert page.locator("#trace-scores").count() == 1
    page.screenshot(path="/tmp/explorer-trace-scores.png", full_page=True)
