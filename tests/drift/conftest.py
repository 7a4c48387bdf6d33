"""Two windows of support-bot traffic with real input embeddings (all-MiniLM-L6-v2).

`planted`: the current week repeats the baseline's support questions and adds a third
of GPU questions (a new topic), answered by a new model, slower, and hallucinating
more: 12 of 120 baseline traces flagged, 36 of 120 current ones (16 of the 80 support
questions, 20 of the 40 GPU ones).
`unchanged`: the current week draws from the same questions, model, latencies and
hallucination rate as the baseline.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from drift.selectors import Window
from evaluation.embeddings import embed_texts
from evaluation.models import TraceEmbedding
from scores.models import Score
from tracing.models import Trace

T0 = datetime(2025, 3, 1, tzinfo=UTC)
BASELINE = Window(T0, T0 + timedelta(days=28))
CURRENT = Window(T0 + timedelta(days=28), T0 + timedelta(days=35))
PARAMS = {"baseline_from": BASELINE.start.isoformat(), "baseline_to": BASELINE.end.isoformat(),
          "from": CURRENT.start.isoformat(), "to": CURRENT.end.isoformat()}

SUPPORT = (
    "How do I reset my password?",
    "When am I billed and how much is Pro?",
    "Can I get a refund for my monthly plan?",
    "How can I export my data?",
    "What are the API rate limits on the free plan?",
    "Do you support SMS for two-factor authentication?",
    "How do I delete my account?",
    "How much does an extra seat cost on Pro?",
    "Where do I find my invoices?",
    "The password reset link expired, what now?",
    "Can I talk to a human?",
    "How do I change the email on my account?",
)
GPU = (
    "Which GPU instances support CUDA 12?",
    "Can I rent an NVIDIA H100 GPU by the hour?",
    "Why is my GPU quota zero in eu-west?",
    "How do I install CUDA drivers on a GPU instance?",
    "Is there a GPU instance with 80 GB of VRAM?",
    "My GPU training job is stuck at 0% utilisation",
    "Do GPU instances come with cuDNN preinstalled?",
    "How much does an A100 GPU cost per hour?",
)


@dataclass
class Made:
    baseline: list[Trace]
    current: list[Trace]
    topic: list[Trace]  # the planted GPU traces (in current)


def add_traces(project, window: Window, texts: list[str], *, rng: random.Random, model: str, latency: float,
               flagged: set[int]) -> list[Trace]:
    """One trace per text, spread over the window, with its input embedding and a
    hallucination score (flagged for the indices in `flagged`)."""
    span = (window.end - window.start) / len(texts)
    traces = []
    for i, text in enumerate(texts):
        start = window.start + span * i + timedelta(seconds=rng.randint(0, 600))
        ms = max(50.0, rng.gauss(latency, latency / 10))
        traces.append(Trace(
            project=project, trace_id=secrets.token_hex(16), name="support-turn", start_time=start,
            end_time=start + timedelta(milliseconds=ms), latency_ms=ms, input=text,
            output="Here is what the help center says.", input_tokens=len(text) // 4, output_tokens=9,
            total_tokens=len(text) // 4 + 9, model=model, environment="production",
            metadata={"plan": "pro" if i % 3 == 0 else "free"},
        ))
    Trace.objects.bulk_create(traces)
    vectors = embed_texts(texts)
    TraceEmbedding.objects.bulk_create([
        TraceEmbedding(project=project, trace_id=t.trace_id, span_id="", kind="input", embedding=v.tolist())
        for t, v in zip(traces, vectors, strict=True)
    ])
    Score.objects.bulk_create([
        Score(project=project, trace_id=t.trace_id, name="hallucination", value=0.9 if i in flagged else 0.1,
              data_type="numeric", source="evaluator", metadata={"flagged": i in flagged})
        for i, t in enumerate(traces)
    ])
    return traces


def support_texts(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(SUPPORT) for _ in range(n)]


@pytest.fixture
def planted(world) -> Made:
    return plant(world)


def plant(world) -> Made:
    """The planted world (also used by tests/e2e/test_drift.py)."""
    rng = random.Random(11)
    baseline = add_traces(world.project, BASELINE, support_texts(rng, 120), rng=rng, model="gpt-4o-mini",
                          latency=1000, flagged=set(range(0, 120, 10)))
    texts = support_texts(rng, 80) + [GPU[i % len(GPU)] for i in range(40)]
    order = list(range(120))
    rng.shuffle(order)  # the topic arrives spread over the week, not in a block
    shuffled = [texts[i] for i in order]
    current = add_traces(world.project, CURRENT, shuffled, rng=rng, model="gpt-4o-mini", latency=1500,
                         flagged={k for k, i in enumerate(order) if (i >= 80 and i % 2) or (i < 80 and i % 5 == 0)})
    topic = [t for t in current if t.input in GPU]
    for t in topic:
        t.model = "gpt-4o"
    Trace.objects.bulk_update(topic, ["model"])
    return Made(baseline, current, topic)


@pytest.fixture
def unchanged(world) -> Made:
    rng = random.Random(12)
    baseline = add_traces(world.project, BASELINE, support_texts(rng, 120), rng=rng, model="gpt-4o-mini",
                          latency=1000, flagged=set(range(0, 120, 10)))
    current = add_traces(world.project, CURRENT, support_texts(rng, 120), rng=rng, model="gpt-4o-mini",
                         latency=1000, flagged=set(range(5, 120, 10)))
    return Made(baseline, current, [])
