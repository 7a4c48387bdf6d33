"""The admin-only LLM-judge settings page (/p/<slug>/settings/judge): role matrix, saving,
and the key shown masked, never in full."""

from __future__ import annotations

import pytest
from django.test import Client

from evaluation import judge
from evaluation.models import JudgeSettings
from tests.helpers import ROLE_USERS

API_KEY = "sk-live-abcdefghijklmnopqrstuvwxyz0123456789WXYZ"


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def url(world) -> str:
    return f"/p/{world.project.slug}/settings/judge"


def form(**overrides) -> dict:
    data = {
        "enabled": "on", "base_url": "https://llm.example.com/v1", "model": "gpt-4o-mini", "api_key": API_KEY,
        "sample_rate": "0.1", "daily_budget_usd": "2.5", "cost_per_call_usd": "",
        "rubrics": ["hallucination", "toxicity"], "timeout_seconds": "20",
    }  # fmt: skip
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


@pytest.mark.parametrize(("who", "status"), list(zip(ROLE_USERS, (200, 403, 403, 403, 404), strict=True)))
def test_only_admins_open_the_page(world, who, status):
    assert browser(getattr(world, who)).get(url(world)).status_code == status


@pytest.mark.parametrize(("who", "status"), list(zip(ROLE_USERS, (302, 403, 403, 403, 404), strict=True)))
def test_only_admins_save(world, who, status):
    response = browser(getattr(world, who)).post(url(world), form())
    assert response.status_code == status
    assert JudgeSettings.objects.filter(project=world.project).exists() == (status == 302)


def test_saved_settings_show_the_key_masked_never_in_full(world):
    owner = browser(world.owner)
    owner.post(url(world), form())

    html = owner.get(url(world)).content.decode()

    row = JudgeSettings.objects.get(project=world.project)
    assert row.enabled and row.model == "gpt-4o-mini" and row.rubrics == ["hallucination", "toxicity"]
    assert row.sample_rate == 0.1 and str(row.daily_budget_usd) == "2.5000"
    assert judge.decrypt_secret(row.api_key_encrypted) == API_KEY
    assert API_KEY not in html and API_KEY[:12] not in html
    assert "••••••••WXYZ" in html


def test_a_blank_key_keeps_the_stored_key_and_clearing_removes_it(world):
    owner = browser(world.owner)
    owner.post(url(world), form())
    assert owner.post(url(world), form(api_key="", model="other-model")).status_code == 302
    row = JudgeSettings.objects.get(project=world.project)
    assert row.model == "other-model" and judge.decrypt_secret(row.api_key_encrypted) == API_KEY

    owner.post(url(world), form(api_key="", enabled=None, clear_api_key="on"))
    row.refresh_from_db()
    assert row.api_key_encrypted == "" and not row.enabled


def test_enabling_without_a_key_shows_the_problem(world):
    response = browser(world.owner).post(url(world), form(api_key=""))
    assert response.status_code == 400
    assert "needs a base URL, a model and an API key" in response.content.decode()
    assert not JudgeSettings.objects.filter(project=world.project).exists()


def test_bad_values_are_refused_by_the_form(world):
    response = browser(world.owner).post(url(world), form(sample_rate="1.5", rubrics=["vibes"]))
    assert response.status_code == 400
    assert not JudgeSettings.objects.filter(project=world.project).exists()


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        ("ftp://llm.example.com/v1", "must be an http:// or https:// URL"),
        ("ftps://llm.example.com/v1", "must be an http:// or https:// URL"),
        ("https://user:sk-secret-in-url@llm.example.com/v1", "must not hold credentials"),
    ],
)
def test_base_url_must_be_http_or_https_without_credentials(world, base_url, message):
    response = browser(world.owner).post(url(world), form(base_url=base_url))
    assert response.status_code == 400
    html = response.content.decode()
    assert "base_url" in html and message in html
    assert not JudgeSettings.objects.filter(project=world.project).exists()


def test_timeout_is_bounded_and_connecting_gets_five_seconds(world, monkeypatch):
    assert browser(world.owner).post(url(world), form(timeout_seconds="121")).status_code == 400
    with pytest.raises(judge.ValidationFailed, match="timeout_seconds"):
        judge.judge_settings_save(project=world.project, user=None, enabled=False, base_url="", model="",
                                  sample_rate=1, daily_budget_usd=judge.Decimal(1), rubrics=[], timeout_seconds=300)
    assert browser(world.owner).post(url(world), form(timeout_seconds="60")).status_code == 302

    seen = {}

    def factory(**kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop here: only the client's settings are under test")

    from tests.helpers import ingest_trace

    trace = ingest_trace(world.project)
    JudgeSettings.objects.filter(project=world.project).update(sample_rate=1)
    with pytest.raises(RuntimeError, match="stop here"):
        judge.judge_traces(project=world.project, trace_ids=[trace.trace_id], client_factory=factory)
    assert seen["timeout"].read == 60 and seen["timeout"].connect == 5
    assert seen["api_key"] == API_KEY and seen["max_retries"] == 0
