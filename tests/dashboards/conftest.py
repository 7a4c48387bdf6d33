"""A small, hand-countable set of traces and scores for the metrics tests.

    trace start    latency cost  model       env     user session status tags metadata               prompt
    t1    T0+0:10  100     0.01  gpt-4o      prod    u1   s1      ok     a, b locale=de-DE tier=gold support@1
    t2    T0+0:20  200     0.02  gpt-4o      prod    u1   s2      error  a    locale=de-DE           support@2
    t3    T0+1:05  300     -     llama       staging u2   s3      ok          locale=en-US
    t4    T0+1:30  400     0.04  gpt-4o-mini prod    -    -       ok     b    locale=fr-FR tier=3
    t5    T0+3:00  1000    0.10  gpt-4o      prod    u3   -       error
    t6    T0+3:10  600     0.05  llama       staging u3   s4      ok     a    locale=de-DE

Scores: user_thumbs t1=1 t2=0 t3=1 t6=1; hallucination t1=.7 (flagged: false) t2=.9 (no
decision stored) t3=.1 (flagged: true) t4=.2 (flagged: true); rephrase on t1 and t2;
user_rating t1=4, a span of t1=2, t6=5; preferred=A on t1.
Plus a trace an hour before the window and one in another project (both must never count).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from scores.services import score_upsert
from tests.factories import TraceFactory
from tracing.models import Trace

T0 = datetime(2025, 3, 3, 0, 0, tzinfo=UTC)  # a Monday
END = T0 + timedelta(hours=4)


@dataclass
class Sample:
    traces: dict[str, Trace]


ROWS = {
    # name: (offset minutes, latency, cost, model, env, user, session, status, tags, metadata, prompt)
    "t1": (10, 100, "0.01", "gpt-4o", "prod", "u1", "s1", "ok", ["a", "b"], {"locale": "de-DE", "tier": "gold"},
           ("support", "1")),
    "t2": (20, 200, "0.02", "gpt-4o", "prod", "u1", "s2", "error", ["a"], {"locale": "de-DE"}, ("support", "2")),
    "t3": (65, 300, None, "llama", "staging", "u2", "s3", "ok", [], {"locale": "en-US"}, None),
    "t4": (90, 400, "0.04", "gpt-4o-mini", "prod", None, None, "ok", ["b"], {"locale": "fr-FR", "tier": 3}, None),
    "t5": (180, 1000, "0.10", "gpt-4o", "prod", "u3", None, "error", [], {}, None),
    "t6": (190, 600, "0.05", "llama", "staging", "u3", "s4", "ok", ["a"], {"locale": "de-DE"}, None),
}


def make_trace(project, minutes, latency, cost, model, env, user, session, status, tags, metadata, prompt):
    start = T0 + timedelta(minutes=minutes)
    return TraceFactory(
        project=project,
        start_time=start,
        end_time=start + timedelta(milliseconds=latency),
        latency_ms=latency,
        cost_usd=None if cost is None else Decimal(cost),
        model=model,
        environment=env,
        user_id=user,
        session_id=session,
        status=status,
        tags=tags,
        metadata=metadata,
        prompt_name=prompt[0] if prompt else None,
        prompt_version=prompt[1] if prompt else None,
        input_tokens=10 * minutes,
        output_tokens=minutes,
        total_tokens=11 * minutes,
    )


def score(project, trace, name, value, source, data_type, *, metadata=None, span_id=None):
    score_upsert(project=project, trace_id=trace.trace_id, name=name, value=value, source=source,
                 data_type=data_type, metadata=metadata, span_id=span_id)


@pytest.fixture
def sample(world) -> Sample:
    p = world.project
    t = {name: make_trace(p, *row) for name, row in ROWS.items()}
    # Outside the window, and in another project: neither may ever be counted.
    make_trace(p, -60, 5000, "9", "gpt-4o", "prod", "u9", "s9", "error", ["a"], {"locale": "de-DE"}, None)
    other = make_trace(world.other_project, 15, 7000, "7", "gpt-4o", "prod", "u1", "s1", "error", ["a"],
                       {"locale": "de-DE"}, None)
    score(world.other_project, other, "user_thumbs", 1, "end_user", "boolean")
    for name, value in (("t1", 1), ("t2", 0), ("t3", 1), ("t6", 1)):
        score(p, t[name], "user_thumbs", value, "end_user", "boolean")
    score(p, t["t1"], "hallucination", 0.7, "evaluator", "numeric", metadata={"flagged": False, "threshold": 0.8})
    score(p, t["t2"], "hallucination", 0.9, "evaluator", "numeric")
    score(p, t["t3"], "hallucination", 0.1, "evaluator", "numeric", metadata={"flagged": True, "threshold": 0.05})
    score(p, t["t4"], "hallucination", 0.2, "evaluator", "numeric", metadata={"flagged": True, "threshold": 0.1})
    score(p, t["t1"], "rephrase", 1, "implicit", "boolean")
    score(p, t["t2"], "rephrase", 1, "implicit", "boolean")
    score(p, t["t1"], "user_rating", 4, "end_user", "numeric")
    score(p, t["t1"], "user_rating", 2, "end_user", "numeric", span_id="00f067aa0ba902b7")
    score(p, t["t6"], "user_rating", 5, "end_user", "numeric")
    score(p, t["t1"], "preferred", "A", "api", "categorical")
    return Sample(t)
