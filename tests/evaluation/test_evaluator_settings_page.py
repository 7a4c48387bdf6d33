"""The admin-only evaluator settings page (/p/<slug>/settings/evaluators): role matrix,
saving switches and options all-or-nothing, the scoring health summary, and re-scoring."""

from __future__ import annotations

import time

import pytest

from config import errors
from evaluation.evaluators import registry
from evaluation.models import EvaluatorSettings
from evaluation.runner import traces_score_batch
from scores.models import Score, Source
from tests.helpers import ROLE_USERS, ingest_trace
from tests.helpers import session_client as browser

pytestmark = pytest.mark.django_db


def recent_trace(project, **kwargs):
    """A trace that started a minute ago (re-scoring and the health box look at recent ones)."""
    return ingest_trace(project, start_ns=time.time_ns() - 60 * 10**9, **kwargs)


def url(world, tail: str = "") -> str:
    return f"/p/{world.project.slug}/settings/evaluators{tail}"


def form(**overrides) -> dict:
    data = {
        "embeddings_enabled": "on", "embeddings_spans": "on", "embeddings_max_spans": "8",
        "groundedness_enabled": "on", "groundedness_threshold": "",
        "toxicity_enabled": "on", "toxicity_threshold": "0.7",
        "pii_enabled": "on", "pii_kinds": ["email", "credit_card"],
        "injection_enabled": "on", "injection_threshold": "0.5",
    }  # fmt: skip
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


@pytest.mark.parametrize(("who", "status"), list(zip(ROLE_USERS, (200, 403, 403, 403, 404), strict=True)))
def test_only_admins_open_the_page(world, who, status):
    assert browser(getattr(world, who)).get(url(world)).status_code == status


@pytest.mark.parametrize(("who", "status"), list(zip(ROLE_USERS, (302, 403, 403, 403, 404), strict=True)))
def test_only_admins_save(world, who, status):
    response = browser(getattr(world, who)).post(url(world), form(toxicity_enabled=None))
    assert response.status_code == status
    assert registry.evaluator_config(world.project)["toxicity"]["enabled"] == (status != 302)


@pytest.mark.parametrize(("who", "status"), list(zip(ROLE_USERS, (302, 403, 403, 403, 404), strict=True)))
def test_only_admins_rescore(world, who, status, monkeypatch):
    from evaluation import tasks

    sent = []
    monkeypatch.setattr(tasks.project_rescore, "delay", lambda *args: sent.append(args))
    recent_trace(world.project)
    assert browser(getattr(world, who)).post(url(world, "/rescore"), {"days": "1"}).status_code == status
    assert len(sent) == (1 if status == 302 else 0)


def test_saved_options_change_what_the_worker_writes(world):
    browser(world.owner).post(url(world), form(pii_kinds=["credit_card"], toxicity_enabled=None))
    config = registry.evaluator_config(world.project)
    assert config["pii"]["kinds"] == ["credit_card"] and config["toxicity"]["threshold"] == 0.7
    assert config["groundedness"]["threshold"] is None  # blank keeps the shipped threshold

    trace = recent_trace(world.project, input="Mail me at jane@example.com")
    traces_score_batch([trace.pk])
    scores = {s.name: s for s in Score.objects.filter(trace_id=trace.trace_id, source=Source.EVALUATOR)}
    assert "toxicity_input" not in scores  # switched off
    assert scores["pii_input"].value == 0  # emails are no longer looked for

    page = browser(world.owner).get(url(world)).content.decode()
    assert 'name="toxicity_enabled"' in page and 'name="toxicity_enabled" checked' not in page
    assert "1 trace: <strong>1</strong> scored" in page


def test_bad_option_rejects_the_whole_form_with_a_clear_error(world):
    response = browser(world.owner).post(url(world), form(toxicity_threshold="1.5", embeddings_max_spans="-1",
                                                         injection_enabled=None))
    assert response.status_code == 400
    page = response.content.decode()
    assert "less than or equal to 1" in page and "greater than or equal to 0" in page
    assert not EvaluatorSettings.objects.filter(project=world.project).exists()  # nothing half-saved


def test_service_rejects_bad_values_with_their_name(world):
    with pytest.raises(errors.ValidationFailed, match=r"pii.kinds: passport not among"):
        registry.evaluator_settings_replace(project=world.project, config={"pii": {"kinds": ["passport"]}})
    with pytest.raises(errors.ValidationFailed, match=r"embeddings.max_spans: must be a whole number"):
        registry.evaluator_settings_update(project=world.project, name="embeddings", options={"max_spans": 2.5})
    with pytest.raises(errors.ValidationFailed, match=r"injection.threshold"):
        registry.evaluator_settings_update(project=world.project, name="injection", options={"threshold": None})
    with pytest.raises(errors.ValidationFailed, match=r"toxicity.enabled: must be true or false"):
        registry.evaluator_settings_replace(project=world.project, config={"toxicity": {"enabled": "yes"}})
    assert not EvaluatorSettings.objects.filter(project=world.project).exists()


def test_rescore_is_one_message_that_pages_this_projects_recent_traces_off_the_live_queue(world, monkeypatch):
    from evaluation import services, tasks

    paging, scored, judged = [], [], []
    monkeypatch.setattr(tasks.project_rescore, "delay", lambda *args: paging.append(args))
    monkeypatch.setattr(tasks.traces_score, "apply_async", lambda args, queue: scored.append((args[0], queue)))
    monkeypatch.setattr(tasks.traces_judge, "delay", lambda *args: judged.append(args))
    monkeypatch.setattr(services, "RESCORE_BATCH", 2)
    mine = [recent_trace(world.project) for _ in range(3)]
    recent_trace(world.other_project)

    response = browser(world.owner).post(url(world, "/rescore"), {"days": "1"}, follow=True)
    assert "Queued 3 traces for re-scoring" in response.content.decode()
    assert len(paging) == 1 and scored == []  # the web request sends one message, no batches

    assert tasks.project_rescore.run(*paging[0]) == 3
    assert [queue for _, queue in scored] == ["default", "default"]  # batches of 2, newest first
    assert sorted(pk for batch, _ in scored for pk in batch) == sorted(t.pk for t in mine)


def test_rescore_rejects_a_bad_range(world):
    response = browser(world.owner).post(url(world, "/rescore"), {"days": "365"})
    assert response.status_code == 400
    assert "less than or equal to 90" in response.content.decode()


def test_settings_page_links_to_scoring_settings(world):
    page = browser(world.owner).get(f"/p/{world.project.slug}/settings/").content.decode()
    assert url(world) in page and f"/p/{world.project.slug}/settings/judge" in page


def test_groundedness_sample_rate_is_saved_validated_and_blank_means_every_trace(world):
    browser(world.owner).post(url(world), form(groundedness_sample_rate="0.25"))
    assert registry.evaluator_config(world.project)["groundedness"]["sample_rate"] == 0.25
    response = browser(world.owner).post(url(world), form(groundedness_sample_rate="2"))
    assert response.status_code == 400 and "less than or equal to 1" in response.content.decode()
    assert registry.evaluator_config(world.project)["groundedness"]["sample_rate"] == 0.25
    browser(world.owner).post(url(world), form(groundedness_sample_rate=""))
    assert registry.evaluator_config(world.project)["groundedness"]["sample_rate"] == 1.0
    with pytest.raises(errors.ValidationFailed, match=r"groundedness.sample_rate: must be a number from 0 to 1"):
        registry.evaluator_settings_update(project=world.project, name="groundedness", options={"sample_rate": "all"})


def test_health_box_counts_groundedness_waiting_unsampled_and_skipped(world, monkeypatch,
                                                                     django_capture_on_commit_callbacks):
    from evaluation import sweep, tasks

    monkeypatch.setattr(tasks.traces_ground, "delay", lambda pks: None)
    monkeypatch.setattr(sweep, "queue_backlog", lambda queue: 0)
    rag = {"retrieval.documents.0.document.content": "Refunds are accepted within 30 days of purchase."}
    traces = [recent_trace(world.project, attributes=rag) for _ in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        traces_score_batch([t.pk for t in traces], defer=True)
    page = browser(world.owner).get(url(world)).content.decode()
    assert "Groundedness:\n      3 waiting in its queue, 0 not sampled" in page
    assert "add workers" not in page


def test_health_box_shows_the_fair_queue_backlog(world):
    from evaluation.fair_queue import traces_enqueue

    traces_enqueue(project_id=world.project.pk, trace_pks=[1, 2, 3])
    traces_enqueue(project_id=world.other_project.pk, trace_pks=[4, 5])
    page = browser(world.owner).get(url(world)).content.decode()
    assert "Waiting for cheap scores: <strong>3</strong> traces\n      of this project, the oldest since" in page
    assert "5 across all projects" in page
