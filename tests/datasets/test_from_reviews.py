"""Reviewers feed datasets: a corrected answer becomes the expected output (from the trace
page, the API, a filter add) and a queue's results go into a dataset in one step."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from annotation.services import correction_save, queue_claim_next, queue_create, queue_item_submit
from datasets.models import Dataset, DatasetItem
from tests.helpers import config, ingest_trace, session_client

pytestmark = pytest.mark.django_db
URL = "/api/v1/datasets"


def reviewed_queue(world, n=3):
    """A queue of n traces, all reviewed by the reviewer; the first one corrected."""
    traces = [ingest_trace(world.project, input=f"question {i}", output=f"answer {i}") for i in range(n)]
    helpfulness = config(world.project, "helpfulness")
    queue = queue_create(project=world.project, name="Bad answers", created_by=world.owner,
                         items=[(t.trace_id, None) for t in traces], config_ids=[helpfulness.pk])
    for _ in range(n):
        item = queue_claim_next(queue=queue, reviewer=world.reviewer)
        queue_item_submit(queue=queue, item_id=item.pk, reviewer=world.reviewer, values={helpfulness.pk: "1"},
                          correction="corrected 0" if item.trace_id == traces[0].trace_id else None)
    return queue, traces


def expected_by_trace(name="golden"):
    return dict(DatasetItem.objects.filter(dataset__name=name).values_list("source_trace_id", "expected_output"))


def test_trace_page_add_uses_the_correction_when_ticked(world):
    trace = ingest_trace(world.project, output="wrong answer")
    correction_save(project=world.project, trace_id=trace.trace_id, author=world.reviewer, text="right answer")
    client = Client()
    client.force_login(world.member)
    url = f"/p/{world.project.slug}/datasets/add-trace/{trace.trace_id}/"
    page = client.get(url).content.decode()
    assert "right answer" in page and 'id="use-correction" checked' in page and "reviewer" in page
    response = client.post(url, {"new_name": "golden", "use_correction": "on"}, follow=True)
    assert "take a reviewer" in response.content.decode()
    assert expected_by_trace() == {trace.trace_id: "right answer"}
    client.post(url, {"new_name": "raw"})  # unticked: the trace's own answer
    assert expected_by_trace("raw") == {trace.trace_id: "wrong answer"}


def test_api_trace_ids_and_filter_take_corrections_unless_told_not_to(world, api):
    now = time.time_ns()
    corrected = ingest_trace(world.project, output="bad", start_ns=now)
    plain = ingest_trace(world.project, input="other", start_ns=now)
    correction_save(project=world.project, trace_id=corrected.trace_id, author=world.reviewer, text="good")
    api.post(URL, {"name": "golden"}, format="json")
    body = api.post(f"{URL}/golden/items", {"trace_ids": [corrected.trace_id, plain.trace_id]}, format="json").json()
    assert body["added"] == 2 and body["corrected"] == 1
    assert expected_by_trace() == {corrected.trace_id: "good", plain.trace_id: plain.output}
    api.post(URL, {"name": "raw"}, format="json")
    api.post(f"{URL}/raw/items", {"trace_ids": [corrected.trace_id], "use_corrections": False}, format="json")
    assert expected_by_trace("raw") == {corrected.trace_id: "bad"}
    api.post(URL, {"name": "filtered"}, format="json")
    body = api.post(f"{URL}/filtered/items", {"filter": {"range": "30d"}}, format="json").json()
    assert body["corrected"] == 1 and expected_by_trace("filtered")[corrected.trace_id] == "good"
    bad = api.post(f"{URL}/raw/items", {"trace_ids": [plain.trace_id], "use_corrections": "yes"}, format="json")
    assert bad.status_code == 400 and "use_corrections" in bad.json()["error"]["message"]


def test_api_adds_a_queues_results(world, api):
    queue, traces = reviewed_queue(world)
    api.post(URL, {"name": "golden"}, format="json")
    body = api.post(f"{URL}/golden/items", {"queue_id": queue.pk, "only_corrected": True}, format="json").json()
    assert (body["added"], body["corrected"]) == (1, 1)
    assert expected_by_trace() == {traces[0].trace_id: "corrected 0"}
    body = api.post(f"{URL}/golden/items", {"queue_id": queue.pk}, format="json").json()
    assert (body["added"], body["duplicates_skipped"]) == (2, 1)
    assert expected_by_trace() == {traces[0].trace_id: "corrected 0", traces[1].trace_id: "answer 1",
                                   traces[2].trace_id: "answer 2"}
    other = session_client(world.outsider)
    assert other.post(f"{URL}/golden/items?project={world.other_project.slug}",
                      {"queue_id": queue.pk}, format="json").status_code == 404
    assert api.post(f"{URL}/golden/items", {"queue_id": "1"}, format="json").status_code == 400


def test_queue_page_adds_reviewed_items_and_refuses_an_empty_queue_without_creating_a_dataset(world):
    queue, traces = reviewed_queue(world, n=2)
    client = Client()
    client.force_login(world.member)
    detail = client.get(f"/p/{world.project.slug}/annotate/{queue.pk}/").content.decode()
    assert f"/datasets/add-queue/{queue.pk}/" in detail
    url = f"/p/{world.project.slug}/datasets/add-queue/{queue.pk}/"
    page = client.get(url).content.decode()
    assert "<strong>2</strong> reviewed traces" in page and "<strong>1</strong> with a reviewer" in page
    response = client.post(url, {"new_name": "golden", "use_corrections": "on"})
    assert response.status_code == 302
    assert expected_by_trace() == {traces[0].trace_id: "corrected 0", traces[1].trace_id: "answer 1"}

    empty = queue_create(project=world.project, name="Fresh", created_by=world.owner,
                         items=[(traces[0].trace_id, None)], config_ids=[config(world.project, "helpfulness").pk])
    response = client.post(f"/p/{world.project.slug}/datasets/add-queue/{empty.pk}/", {"new_name": "never"})
    assert response.status_code == 400 and "No reviewed item yet" in response.content.decode()
    assert not Dataset.objects.filter(name="never").exists()


def test_viewers_and_reviewers_cannot_add_a_queue(world):
    queue, _ = reviewed_queue(world, n=1)
    for user in (world.viewer, world.reviewer):
        client = Client()
        client.force_login(user)
        assert client.get(f"/p/{world.project.slug}/datasets/add-queue/{queue.pk}/").status_code == 403
        detail = client.get(f"/p/{world.project.slug}/annotate/{queue.pk}/").content.decode()
        assert "add-queue" not in detail
