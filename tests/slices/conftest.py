"""A planted disparity: ja-JP answers are flagged as hallucinated 30% of the time,
en-US and de-DE 5%; it-IT is tiny (12 traces, all hallucinated) and must never be
flagged. Counts are chosen so every expected number can be worked out by hand:

    locale  traces  hallucinated   votes (every 4th)  thumbs up   plan
    en-US   400     20 (i%20==0)   100                75          free if i even
    de-DE   200     10 (i%20==0)   50                 37          free if i even
    ja-JP   200     60 (i%10<3)    50                 37          free if i even
    it-IT   12      12             3                  2           free if i even

Thumbs up: a vote (i%4==0) is up unless i%16==0. Latency 500 + (i % 50) * 10 ms and
cost 0.001 for everyone, so nothing but hallucination (and what follows from it) differs.

Scores are bulk-inserted rather than written one by one through scores.services: 1,000
upserts took most of a minute on the shared test machine, and these are plain evaluator
and end-user rows with no config (what the services would store).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from scores.models import Score
from tests.factories import TraceFactory
from tracing.models import Trace

T0 = datetime(2025, 6, 2, tzinfo=UTC)
END = T0 + timedelta(days=3)
WINDOW = {"from": T0.isoformat(), "to": END.isoformat()}
LOCALES = {"en-US": (400, lambda i: i % 20 == 0), "de-DE": (200, lambda i: i % 20 == 0),
           "ja-JP": (200, lambda i: i % 10 < 3), "it-IT": (12, lambda i: True)}


@dataclass
class Planted:
    traces: dict[str, list[Trace]]


@pytest.fixture
def planted(world) -> Planted:
    project = world.project
    made: dict[str, list[Trace]] = {}
    for locale, (count, hallucinates) in LOCALES.items():
        rows = []
        for i in range(count):
            start = T0 + timedelta(minutes=(i * 97) % (3 * 24 * 60))
            latency = 500 + (i % 50) * 10
            rows.append(TraceFactory.build(project=project, start_time=start,
                                           end_time=start + timedelta(milliseconds=latency), latency_ms=latency,
                                           cost_usd=Decimal("0.001"), prompt_name="answer",
                                           prompt_version="2" if i % 2 else "1",
                                           metadata={"locale": locale, "plan": "free" if i % 2 == 0 else "pro"}))
        made[locale] = Trace.objects.bulk_create(rows)
        scores = []
        for i, trace in enumerate(made[locale]):
            flagged = hallucinates(i)
            scores.append(Score(project=project, trace_id=trace.trace_id, name="hallucination",
                                value=0.9 if flagged else 0.1, source="evaluator", data_type="numeric",
                                metadata={"flagged": flagged}))
            if i % 4 == 0:
                scores.append(Score(project=project, trace_id=trace.trace_id, name="user_thumbs",
                                    value=0 if i % 16 == 0 else 1, source="end_user", data_type="boolean"))
        Score.objects.bulk_create(scores)
    return Planted(made)
