"""The one post-ingest pipeline: ingest, the sweep, re-score and score_backfill announce
changed traces (tracing.signals.traces_changed) and every app reacts the same way.

Celery's `delay` is replaced by a recorder at the leaves only: ingest's own message is
run as the worker would run it, so the path under test is the one production takes.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client

import evaluation.tasks
import feedback.tasks
import tracing.tasks
from evaluation.models import JudgeSettings, ScoringQueueItem
from feedback.services import feedback_record, session_signals_compute
from scores.models import Score, Source
from tests import otlp_payloads as otlp
from tests.helpers import ingest_trace
from tracing import signals
from tracing.models import Trace
from tracing.services import traces_changed_announce


@pytest.fixture
def leaves(monkeypatch) -> dict[str, list]:
    """What the receivers enqueue, by task; ingest's announcement runs in-process."""
    sent: dict[str, list] = defaultdict(list)
    monkeypatch.setattr(tracing.tasks.traces_changed, "delay", lambda *args: tracing.tasks.traces_changed.run(*args))
    # Fresh traces join the fair queue, then one drain message wakes a worker: record
    # what waits in the queue when that message is sent, and empty it (as a drain would).
    def drain() -> None:
        taken = ScoringQueueItem.objects.order_by("trace_pk").values_list("trace_pk", flat=True)
        sent["score"].append(list(taken))
        ScoringQueueItem.objects.all().delete()

    monkeypatch.setattr(evaluation.tasks.scoring_drain, "delay", drain)
    monkeypatch.setattr(evaluation.tasks.traces_score, "apply_async",
                        lambda args, queue: sent["score@" + queue].append(sorted(args[0])))
    monkeypatch.setattr(evaluation.tasks.traces_judge, "delay", lambda project_id, ids: sent["judge"].append(ids))
    monkeypatch.setattr(feedback.tasks.sessions_signals, "delay",
                        lambda project_id, sessions: sent["signals"].append(sessions))
    return sent


def otlp_trace(session: str | None) -> tuple[str, list[dict]]:
    trace_id = otlp.new_trace_id()
    attributes = {"gen_ai.request.model": "gpt-4o-mini", "input.value": "Hi?", "output.value": "Hello."}
    if session:
        attributes["session.id"] = session
    return trace_id, [otlp.span(trace_id=trace_id, name="chat", attributes=attributes)]


def test_one_ingest_batch_is_scored_signalled_and_judged_once(transactional_db, world, leaves):
    # transactional_db: ingest's after-commit steps run for real, as in production.
    JudgeSettings.objects.create(project=world.project, enabled=True, sample_rate=1.0)
    batch = [otlp_trace("a"), otlp_trace("a"), otlp_trace("b"), otlp_trace(None)]
    body = otlp.traces_protobuf([span for _, spans in batch for span in spans])

    response = Client().post("/v1/traces", body, content_type=otlp.PROTOBUF,
                             HTTP_AUTHORIZATION=f"Bearer {world.key.secret_key}")

    assert response.status_code == 200
    pks = sorted(Trace.objects.filter(project=world.project).values_list("pk", flat=True))
    assert leaves["score"] == [pks]
    assert leaves["signals"] == [["a", "b"]]  # the trace without a session has no signals
    assert leaves["judge"] == [sorted(trace_id for trace_id, _ in batch)]


def test_the_judge_is_asked_only_when_enabled_and_only_for_sampled_traces(world, leaves):
    traces = [ingest_trace(world.project) for _ in range(40)]
    announce = lambda: traces_changed_announce(  # noqa: E731
        project_id=world.project.pk, trace_pks=[t.pk for t in traces], reason=signals.INGEST)

    announce()
    assert leaves["judge"] == []  # no judge settings
    JudgeSettings.objects.create(project=world.project, enabled=True, sample_rate=0.5)
    announce()
    sampled = leaves["judge"][0]
    assert 0 < len(sampled) < 40  # deterministic by trace id, about half
    announce()
    assert leaves["judge"][1] == sampled


def test_a_rescore_goes_to_the_default_queue_and_a_backfill_is_not_scored_twice(world, leaves):
    trace = ingest_trace(world.project, attributes={"session.id": "s1"})

    traces_changed_announce(project_id=world.project.pk, trace_pks=[trace.pk], reason=signals.RESCORE)
    assert leaves["score@default"] == [[trace.pk]] and leaves["score"] == []

    call_command("score_backfill", "--project", world.project.slug, "--evaluator", "pii", stdout=None)
    assert leaves["score"] == []  # the command scored in-process
    assert leaves["signals"] == [["s1"], ["s1"]]  # both announcements reach the signals


def test_an_unknown_reason_is_refused(world):
    with pytest.raises(ValueError, match="unknown reason"):
        traces_changed_announce(project_id=world.project.pk, trace_pks=[1], reason="because")


def test_a_late_event_on_a_closed_session_is_counted(world, leaves, django_capture_on_commit_callbacks):
    trace = ingest_trace(world.project, attributes={"session.id": "late"})
    long_after = trace.end_time + timedelta(hours=2)
    result = session_signals_compute(project=world.project, session_id="late", now=long_after)
    assert result.closed
    abandon = Score.objects.filter(trace_id=trace.trace_id, name="abandon", source=Source.IMPLICIT)
    assert abandon.exists()  # the user left without a sign the answer helped

    with django_capture_on_commit_callbacks(execute=True):
        feedback_record(project=world.project, trace_id=trace.trace_id, kind="event", name="copy")

    assert leaves["signals"] == [["late"]]  # scheduled on commit, for the trace's session
    feedback.tasks.sessions_signals.run(world.project.pk, ["late"])
    assert not abandon.exists()  # the copy says it helped after all


def test_feedback_before_its_trace_schedules_nothing(world, leaves, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        feedback_record(project=world.project, trace_id="ab" * 16, kind="feedback", name="thumbs", value=True)

    # No trace, no session yet: the trace's own announcement computes the signals.
    assert leaves["signals"] == []
