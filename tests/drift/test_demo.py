"""The demo data plants a topic that appears only in the last days (GPU questions): the
drift report over the default windows finds it, and nothing like it before."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from demo import scenario
from drift import selectors
from drift.windows import parse_windows
from evaluation.embeddings import embed_texts
from evaluation.models import TraceEmbedding
from tracing.models import Trace

GPU_INPUTS = {q for q, _, _ in scenario.GPU_QUESTIONS}


@pytest.mark.django_db(transaction=True)
def test_demo_plants_a_recent_gpu_topic_that_the_drift_report_finds(world):
    call_command("seed_demo", "--project", world.project.slug, "--traces", "400", "--days", "30", stdout=StringIO())
    traces = list(Trace.objects.filter(project=world.project).values_list("trace_id", "input", "start_time"))
    cutoff = timezone.now() - timedelta(days=scenario.NEW_TOPIC_DAYS)
    gpu = [(t, start) for t, text, start in traces if text in GPU_INPUTS]
    assert len(gpu) >= 15 and all(start >= cutoff for _, start in gpu)
    # The scorers store each trace's input embedding; done directly here (same model).
    vectors = embed_texts([text or "" for _, text, _ in traces])
    TraceEmbedding.objects.bulk_create([
        TraceEmbedding(project=world.project, trace_id=t, span_id="", kind="input", embedding=v.tolist())
        for (t, _, _), v in zip(traces, vectors, strict=True)
    ])

    baseline, current = parse_windows({}, now=timezone.now())
    report = selectors.drift_report(project=world.project, baseline=baseline, current=current)

    assert report.embedding.status == "drift", report.embedding
    assert len(report.topics) == 1, [t.label for t in report.topics]
    topic = report.topics[0]
    assert "gpu" in topic.terms
    assert {e["input"] for e in topic.examples} <= GPU_INPUTS
