"""Traces link to versions at read time, and per-version metrics come out right."""

from __future__ import annotations

from datetime import timedelta

import pytest
import spyglass
from django.utils import timezone

from prompts import selectors
from tests.prompts.conftest import add_score, add_version, ingest_trace
from tracing.models import Trace


def test_sdk_prompt_attributes_land_in_the_trace_columns(world):
    fetched = spyglass.Prompt(name="support-answer", version=3, type="text", template="Hi {{name}}")
    trace_id = ingest_trace(world.project, prompt=fetched)
    trace = Trace.objects.get(project=world.project, trace_id=trace_id)
    assert (trace.prompt_name, trace.prompt_version) == ("support-answer", "3")


def test_a_version_registered_after_its_traces_still_links(world):
    early = [ingest_trace(world.project, prompt=("late", 1)) for _ in range(2)]
    ingest_trace(world.project, prompt=("late", 2))
    ingest_trace(world.other_project, prompt=("late", 1))  # same name elsewhere: never shown
    add_version(world.project, "late", "registered afterwards")
    prompt = selectors.prompt_get(project=world.project, name="late")
    linked = selectors.prompt_version_traces(project=world.project, prompt=prompt, version=1)
    assert sorted(t.trace_id for t in linked) == sorted(early)


def test_version_metrics_match_hand_computed_values(world):
    add_version(world.project, "p", "one")
    add_version(world.project, "p", "two")
    now = timezone.now()
    v1 = [
        ingest_trace(world.project, prompt=("p", 1), latency_ms=ms, error=(ms == 400), start=now - timedelta(hours=2))
        for ms in (100, 200, 300, 400)
    ]
    for ms in (50, 150, 250):
        ingest_trace(world.project, prompt=("p", 2), latency_ms=ms, start=now - timedelta(hours=2))
    ingest_trace(world.project, prompt=("p", 1), latency_ms=9999, start=now - timedelta(days=40))  # outside range
    for trace_id, value in zip(v1, (1, 1, 0), strict=False):
        add_score(world.project, trace_id, "user_thumbs", value, "end_user")
    add_score(world.project, v1[0], "user_rating", 4, "end_user")
    add_score(world.project, v1[1], "user_rating", 2, "end_user")
    add_score(world.project, v1[2], "rephrase", 1, "implicit")
    add_score(world.project, v1[2], "hallucination", 0.5, "annotation")  # wrong source: ignored

    prompt = selectors.prompt_get(project=world.project, name="p")
    metrics = selectors.version_metrics(
        project=world.project, prompt=prompt, versions=[1, 2], window=selectors.time_range("30d")
    )
    m1, m2 = metrics[1], metrics[2]
    assert m1.traces == 4 and m2.traces == 3
    # percentile_cont: p50 of 100..400 = 250; p95 at rank 0.95 * 3 = 2.85 -> 300 + .85 * 100
    assert (m1.latency_p50, m1.latency_p95) == (pytest.approx(250), pytest.approx(385))
    assert (m2.latency_p50, m2.latency_p95) == (pytest.approx(150), pytest.approx(240))
    assert m1.error_rate.value == pytest.approx(0.25) and m1.error_rate.n == 4
    assert m1.tokens.value == pytest.approx(15)
    # thumbs 2 of 3: Wilson [.2076596, .9385081]
    assert (m1.thumbs_up.value, m1.thumbs_up.low, m1.thumbs_up.high) == (
        pytest.approx(2 / 3), pytest.approx(0.2076596, abs=1e-6), pytest.approx(0.9385081, abs=1e-6)
    )
    # ratings 4 and 2: mean 3, sd sqrt(2), t(.975, 1) = 12.7062 -> 3 +- 12.7062 * 1 = [-9.7062, 15.7062]
    assert m1.rating.value == pytest.approx(3) and m1.rating.low == pytest.approx(-9.7062047, abs=1e-5)
    # rephrase: 1 of the 4 traces -> Wilson [.0455873, .6993582]
    assert m1.rephrase.value == pytest.approx(0.25) and m1.rephrase.low == pytest.approx(0.0455873, abs=1e-6)
    assert not m1.hallucination.has_data and not m1.toxicity.has_data
    assert not m2.thumbs_up.has_data and not m2.rephrase.has_data


def test_toxicity_written_by_the_evaluator_reaches_the_comparison(world):
    # The comparison once read a score named "toxicity" that no evaluator writes (they
    # write toxicity_input / toxicity_output): every version showed "no data".
    from evaluation.runner import traces_score_batch

    add_version(world.project, "p", "one")
    answers = ("You can get a refund within 30 days.", "Shut up, you idiot, read the manual.")
    trace_ids = [ingest_trace(world.project, prompt=("p", 1), output=answer) for answer in answers]
    traces_score_batch(list(Trace.objects.filter(trace_id__in=trace_ids).values_list("pk", flat=True)))

    prompt = selectors.prompt_get(project=world.project, name="p")
    m1 = selectors.version_metrics(project=world.project, prompt=prompt, versions=[1],
                                   window=selectors.time_range("30d"))[1]
    assert m1.toxicity.has_data and m1.toxicity.n == 2
    assert 0 < m1.toxicity.value < 1  # the mean of a polite and a rude answer's toxicity


def test_comparison_needs_thirty_per_arm(world):
    add_version(world.project, "p", "one")
    add_version(world.project, "p", "two")
    for _ in range(3):
        ingest_trace(world.project, prompt=("p", 1))
        ingest_trace(world.project, prompt=("p", 2))
    prompt = selectors.prompt_get(project=world.project, name="p")
    comparison = selectors.version_comparison(
        project=world.project, prompt=prompt, a=1, b=2, window=selectors.time_range("7d")
    )
    latency = comparison.rows[0]
    assert not latency.enough_data
    assert "A has 3 and B has 3 traces" in latency.verdict and "27 more for A and 27 more for B" in latency.verdict
