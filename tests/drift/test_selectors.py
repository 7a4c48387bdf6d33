"""drift/selectors.py on real rows: a planted topic (with a new model, slower answers and
more hallucinations) is found; an unchanged window is not flagged."""

from __future__ import annotations

import math
import random
from collections import Counter
from datetime import timedelta

import pytest

from drift import selectors, stats
from tests.drift.conftest import BASELINE, CURRENT, GPU, add_traces


def features(report) -> dict:
    return {f.name: f for f in report.features}


def test_planted_topic_is_found_with_its_terms_and_example_traces(planted, world):
    report = selectors.drift_report(project=world.project, baseline=BASELINE, current=CURRENT)

    assert (report.baseline_traces, report.current_traces) == (120, 120)
    assert report.embedding.auc > stats.AUC_DRIFT and report.embedding.status == "drift"
    assert len(report.topics) == 1
    topic = report.topics[0]
    assert topic.size == 40 and topic.share == pytest.approx(1 / 3)
    assert "gpu" in topic.terms
    topic_ids = {t.trace_id for t in planted.topic}
    assert topic.examples and all(e["trace_id"] in topic_ids for e in topic.examples)
    assert all(e["input"] in GPU for e in topic.examples)
    # Checked against the whole baseline window through pgvector: nothing near.
    assert topic.nearest_baseline_distance > stats.FAR_DISTANCE


def test_planted_window_flags_model_latency_and_hallucination(planted, world):
    found = features(selectors.drift_report(project=world.project, baseline=BASELINE, current=CURRENT))

    model = found["model"]
    # Baseline: 120 gpt-4o-mini; current: 80 gpt-4o-mini + 40 gpt-4o (a category the
    # baseline never had gets share EPSILON).
    e = stats.EPSILON
    expected = (2 / 3 - 1) * math.log(2 / 3) + (1 / 3 - e) * math.log((1 / 3) / e)
    assert model.psi == pytest.approx(expected) and model.status == "alert"
    assert model.current["shares"] == {"gpt-4o-mini": pytest.approx(2 / 3), "gpt-4o": pytest.approx(1 / 3)}

    latency = found["latency_ms"]
    assert latency.status == "alert" and latency.test == "ks" and latency.p_value < 1e-6
    assert latency.baseline["n"] == 120 and 900 < latency.baseline["p50"] < 1100
    assert 1350 < latency.current["p50"] < 1650

    hallucination = found["hallucination_rate"]
    assert hallucination.kind == "rate" and hallucination.test == "chi2"
    assert hallucination.baseline["rate"] == pytest.approx(12 / 120)
    assert hallucination.current["rate"] == pytest.approx(36 / 120)
    assert hallucination.p_value < 0.001
    # PSI of yes/no shares .1/.9 -> .3/.7: (.2) ln 3 + (-.2) ln(7/9) = 0.2197 + 0.0503
    assert hallucination.psi == pytest.approx(0.2 * math.log(3) - 0.2 * math.log(7 / 9))
    assert hallucination.psi == pytest.approx(0.2700, abs=1e-4)
    assert hallucination.status == "alert"


def test_unchanged_window_is_not_flagged(unchanged, world):
    report = selectors.drift_report(project=world.project, baseline=BASELINE, current=CURRENT)

    assert report.embedding.auc == pytest.approx(0.5, abs=0.05) and report.embedding.status == "ok"
    assert report.topics == []
    found = features(report)
    for name in ("input_chars", "latency_ms", "model", "environment", "metadata.plan", "hallucination_rate"):
        assert found[name].status == "ok", (name, found[name])
    assert found["thumbs_up_rate"].status == "insufficient"  # no thumbs at all


def test_only_the_project_and_the_windows_are_read(planted, world):
    add_traces(world.other_project, CURRENT, list(GPU) * 3, rng=random.Random(1), model="x", latency=1,
               flagged=set())
    later = selectors.Window(CURRENT.end, CURRENT.end + timedelta(days=7))
    add_traces(world.project, later, list(GPU), rng=random.Random(2), model="y", latency=1, flagged=set())

    report = selectors.drift_report(project=world.project, baseline=BASELINE, current=CURRENT)

    assert (report.baseline_traces, report.current_traces) == (120, 120)
    assert set(features(report)["model"].current["shares"]) == {"gpt-4o-mini", "gpt-4o"}


def test_large_windows_are_sampled_to_the_limit(planted, world):
    sample = selectors.window_sample(project=world.project, window=CURRENT, limit=50, embeddings=20)
    assert sample.traces == 120
    assert 25 <= sample.sampled <= 75  # a hash cut at 0.95 x 50 / 120 of the traces
    assert 10 <= len(sample.embeddings.trace_ids) <= 20  # 1.2 x 20 / 120 of the traces, cut to 20
    # The same traces on every call.
    again = selectors.window_sample(project=world.project, window=CURRENT, limit=50)
    assert sample.numeric["latency_ms"].tolist() == again.numeric["latency_ms"].tolist()


def test_rare_categories_fold_into_other():
    b = Counter({f"v{i}": 10 for i in range(25)})
    c = Counter({"v0": 5, "new": 1})
    fb, fc = selectors.fold_rare(b, c)
    assert len(fb) == selectors.TOP_CATEGORIES + 1 and fb[selectors.OTHER] == 50
    assert fc == Counter({"v0": 5, selectors.OTHER: 1})


def test_topic_examples_are_distinct_inputs(planted, world):
    [topic] = selectors.drift_report(project=world.project, baseline=BASELINE, current=CURRENT).topics
    inputs = [e["input"] for e in topic.examples]
    assert len(inputs) == stats.EXAMPLES and len(set(inputs)) == len(inputs)
