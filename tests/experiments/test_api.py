"""Experiments API: create (pinning dataset and prompt versions), list, detail, cancel;
roles; unknown names 404; bad bodies 400 naming the field."""

from __future__ import annotations

import pytest

from experiments import runner
from experiments.models import Experiment, Status
from prompts.services import Actor, prompt_label_move, prompt_version_create
from tests.experiments.support import connect, make_dataset, make_prompt
from tests.helpers import key_client, session_client
from tests.integration.fake_openai import FakeOpenAIServer

URL = "/api/v1/experiments"
BODY = {"dataset": "golden", "prompt": "qa", "model": "echo", "evaluators": ["exact_match"]}


@pytest.fixture
def ready(world):
    with FakeOpenAIServer() as fake:
        connect(world.project, fake.base_url)
        make_dataset(world.project)
        make_prompt(world.project)
        yield fake


def test_create_pins_versions_and_detail_shows_progress_and_results(world, api, ready):
    prompt_version_create(project=world.project, name="qa", template="Answer: {{input}}",
                          actor=Actor(user=None, name="t"), base_version=1)
    prompt_label_move(project=world.project, name="qa", label="staging", version=1, actor=Actor(user=None, name="t"))
    response = api.post(URL, {**BODY, "prompt_label": "staging"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["prompt_version"], body["dataset_version"], body["total"]) == ("queued", 1, 1, 3)
    runner.experiment_execute(body["id"])
    detail = api.get(f"{URL}/{body['id']}").json()
    assert (detail["status"], detail["done"], detail["failed"]) == ("done", 3, 0)
    assert [r["output"] for r in detail["results"]] == ["Q: alpha", "Q: beta", "Q: gamma"]
    assert detail["metrics"] == [{"name": "exact_match", "kind": "pass_fail", "n": 3, "mean": 1.0,
                                  "low": pytest.approx(0.4385, abs=1e-3), "high": 1.0, "higher_is_better": True}]
    page = api.get(f"{URL}/{body['id']}", {"limit": 2}).json()
    assert len(page["results"]) == 2 and page["next_cursor"] == page["results"][1]["item_id"]
    assert [e["id"] for e in api.get(URL).json()["experiments"]] == [body["id"]]


@pytest.mark.parametrize("change, status, field", [
    ({"dataset": "nope"}, 404, None),
    ({"prompt": "nope"}, 404, None),
    ({"prompt_label": "nope"}, 404, None),
    ({"prompt_version": 9}, 404, None),
    ({"dataset_version": 7}, 404, None),
    ({"concurrency": 0}, 400, "concurrency"),
    ({"evaluators": ["bogus"]}, 400, "evaluators[0]"),
    ({"params": {"temperature": 0, "evil": 1}}, 400, "params"),
    ({"split": "test"}, 400, "split"),
    ({"colour": "red"}, 400, "colour"),
    ({"prompt": None}, 400, "prompt"),
    ({"cost_cap_usd": "1"}, 400, "cost_per_call_usd"),  # echo has no price
])
def test_bad_requests(world, api, ready, change, status, field):
    response = api.post(URL, {**BODY, **change}, format="json")
    assert response.status_code == status, response.content
    if field:
        assert response.json()["error"]["message"].startswith(field + ":")
    assert not Experiment.objects.exists()


def test_no_connection_is_a_400_naming_it(world, api):
    make_dataset(world.project)
    make_prompt(world.project)
    response = api.post(URL, BODY, format="json")
    assert response.status_code == 400 and response.json()["error"]["message"].startswith("connection:")


def test_viewers_read_members_write_and_other_projects_see_nothing(world, api, ready):
    exp_id = api.post(URL, BODY, format="json").json()["id"]
    viewer, member = session_client(world.viewer), session_client(world.member)
    assert viewer.get(f"{URL}/{exp_id}").status_code == 200
    assert viewer.post(URL, BODY, format="json").status_code == 403
    assert viewer.post(f"{URL}/{exp_id}/cancel").status_code == 403
    assert member.post(URL, BODY, format="json").status_code == 201
    other = key_client(world.other_key.secret_key)
    assert other.get(f"{URL}/{exp_id}").status_code == 404
    assert other.post(f"{URL}/{exp_id}/cancel").status_code == 404
    assert other.get(URL).json()["experiments"] == []


def test_cancelling_a_queued_run_stops_it_before_any_call(world, api, ready):
    exp_id = api.post(URL, BODY, format="json").json()["id"]
    body = api.post(f"{URL}/{exp_id}/cancel").json()
    assert body["status"] == "cancelled" and body["stop_reason"] == "cancelled"
    runner.experiment_execute(exp_id)
    assert Experiment.objects.get(pk=exp_id).status == Status.CANCELLED and not ready.requests


def test_sdk_run_results_are_validated_and_scored_on_the_server(world, api, ready):
    body = api.post(URL, {"kind": "sdk", "dataset": "golden", "evaluators": ["exact_match"],
                          "custom_evaluators": ["polite"]}, format="json").json()
    assert body["status"] == "running" and body["prompt"] is None
    post = f"{URL}/{body['id']}/results"
    items = api.get("/api/v1/datasets/golden/items").json()["items"]
    bad = [({"results": [{"item_id": 999999, "output": "x"}]}, "results[0].item_id"),
           ({"results": [{"item_id": items[0]["id"], "output": "x", "scores": {"rude": 1}}]}, "results[0].scores"),
           ({"results": [{"item_id": items[0]["id"], "output": 5}]}, "results[0].output"),
           ({"results": [], "finished": "yes"}, "finished")]
    for payload, field in bad:
        response = api.post(post, payload, format="json")
        assert response.status_code == 400 and response.json()["error"]["message"].startswith(field), payload
    assert session_client(world.viewer).post(post, {"results": []}, format="json").status_code == 403
    good = api.post(post, {"results": [{"item_id": items[0]["id"], "output": "Q: alpha", "scores": {"polite": 0.5},
                                        "trace_id": "ab" * 16, "latency_ms": 12}], "finished": True},
                    format="json")
    assert good.status_code == 200 and good.json()["status"] == "done" and good.json()["done"] == 1
    detail = api.get(f"{URL}/{body['id']}").json()
    assert detail["results"][0]["scores"] == {"exact_match": 1.0, "polite": 0.5}
    assert detail["results"][0]["trace_id"] == "ab" * 16
    assert api.post(post, {"results": []}, format="json").status_code == 409  # finished
    prompt_run = api.post(URL, BODY, format="json").json()["id"]
    assert api.post(f"{URL}/{prompt_run}/results", {"results": []}, format="json").status_code == 409
