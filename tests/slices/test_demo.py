"""The demo plants a locale that hallucinates more (demo/scenario.py, ja-JP): seeded
through the real SDK and OTLP path, the slices report flags it and nothing about the
English traffic.

The hallucination scores are written from the seed's own record of which answers were
unsupported (what a perfect groundedness evaluator would say): the evaluator needs the
embedding model and a worker, and its accuracy has its own benchmark (bench/eval_scorers.py).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from demo.seed import seed
from scores.models import Score
from slices.selectors import SliceQuery, slices_report

pytestmark = pytest.mark.django_db(transaction=True)


def test_demo_plants_a_locale_the_slices_page_flags(world):
    made = seed(project=world.project, traces=700, days=30)
    Score.objects.bulk_create([
        Score(project=world.project, trace_id=t.trace_id, name="hallucination", value=0.1 if t.grounded else 0.9,
              source="evaluator", data_type="numeric", metadata={"flagged": not t.grounded})
        for t in made if not t.error
    ])
    now = timezone.now() + timedelta(minutes=1)
    report = slices_report(project=world.project,
                           query=SliceQuery.parse({"dimension": "metadata.locale", "range": "30d"}, now=now))

    by_locale = {s.key[0]: s for s in report.slices}
    assert by_locale["ja-JP"].cells["hallucination_rate"].flagged
    assert not any(cell.flagged for cell in by_locale["en-US"].cells.values())
    assert any(f.startswith("locale ja-JP: hallucination rate") for f in report.findings)
