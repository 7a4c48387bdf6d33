"""Experiment pages: the list and start form, the run page and its htmx progress, cancel,
and the comparison of two runs (verdict, diff, regressions linked to traces)."""

from __future__ import annotations

import pytest
from django.test import Client

from experiments import runner
from experiments.models import Experiment, Status
from experiments.services import ExperimentSpec, experiment_create
from prompts.services import Actor, prompt_version_create
from tests.experiments.support import connect, make_dataset, make_prompt
from tests.integration.fake_openai import FakeOpenAIServer


def page_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def ready(world):
    with FakeOpenAIServer() as fake:
        connect(world.project, fake.base_url)
        make_dataset(world.project, inputs=["alpha", "beta", "gamma", "delta"])
        make_prompt(world.project)  # v1 "Q: {{input}}" = the expected outputs
        prompt_version_create(project=world.project, name="qa", template="Answer: {{input}}",
                              actor=Actor(user=None, name="t"), base_version=1)
        yield fake


def _run(world, version: int) -> Experiment:
    exp = experiment_create(project=world.project, spec=ExperimentSpec(
        dataset="golden", prompt="qa", prompt_version=version, model="echo", evaluators=["exact_match"]))
    runner.experiment_execute(exp.pk)
    return exp


def test_member_starts_a_run_from_the_form_and_a_viewer_cannot(world, ready):
    url = f"/p/{world.project.slug}/experiments/"
    form = {"dataset": "golden", "prompt": "qa", "model": "echo", "concurrency": "2", "evaluators": ["exact_match"],
            "regex": "^Q"}
    assert page_client(world.viewer).post(url, form).status_code == 403
    response = page_client(world.member).post(url, form)
    exp = Experiment.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/experiments/{exp.pk}/")
    assert exp.evaluators == [{"name": "exact_match"}, {"name": "regex", "pattern": "^Q"}]
    bad = page_client(world.member).post(url, {**form, "prompt_label": "nope"})
    assert bad.status_code == 400 and b"no label" in bad.content


def test_run_page_polls_while_running_and_stops_when_done(world, ready):
    exp = experiment_create(project=world.project, spec=ExperimentSpec(dataset="golden", prompt="qa", model="echo"))
    url = f"/p/{world.project.slug}/experiments/{exp.pk}/"
    viewer = page_client(world.viewer)
    partial = viewer.get(url, HTTP_HX_REQUEST="true")
    assert b'hx-trigger="every 2s"' in partial.content and b"0 of 4 items" in partial.content
    runner.experiment_execute(exp.pk)
    partial = viewer.get(url, HTTP_HX_REQUEST="true")
    assert b"hx-trigger" not in partial.content and b"4 of 4 items (100%)" in partial.content
    full = viewer.get(url)
    assert full.status_code == 200 and full.content.count(b"/traces/") >= 4


def test_cancel_from_the_page_needs_a_member(world, ready):
    exp = experiment_create(project=world.project, spec=ExperimentSpec(dataset="golden", prompt="qa", model="echo"))
    url = f"/p/{world.project.slug}/experiments/{exp.pk}/cancel/"
    assert page_client(world.viewer).post(url).status_code == 403
    assert page_client(world.member).post(url).status_code == 302
    assert Experiment.objects.get(pk=exp.pk).status == Status.CANCELLED


def test_comparison_shows_verdict_diff_and_regressions(world, ready):
    good, worse = _run(world, 1), _run(world, 2)
    response = page_client(world.viewer).get(f"/p/{world.project.slug}/experiments/compare/",
                                             {"a": good.pk, "b": worse.pk})
    body = response.content.decode()
    assert response.status_code == 200
    # 4 of 4 items went from pass to fail: McNemar exact p = 2 / 16 = 0.125, not significant.
    assert "No significant difference between A and B on any metric" in body and "4 items got worse" in body
    assert "<del>Q:</del><ins>Answer:</ins>" in body
    assert body.count("B&#x27;s trace") == 4 or body.count("B's trace") == 4
    other = page_client(world.outsider).get(f"/p/{world.other_project.slug}/experiments/compare/",
                                            {"a": good.pk, "b": worse.pk})
    assert other.status_code == 404  # another project's run ids are not found
