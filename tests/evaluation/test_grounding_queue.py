"""Groundedness in its own task: cheap scores at once, groundedness queued, sampled,
shed under a backlog, and re-sent by the sweep when its message was lost."""

from __future__ import annotations

import pytest
from kombu.exceptions import OperationalError as BrokerDown

from evaluation import deferred, sweep, tasks
from evaluation.evaluators.registry import evaluator_settings_update
from evaluation.models import TraceScoring
from evaluation.runner import traces_score_batch
from evaluation.sampling import trace_sampled
from scores.models import Score, Source
from tests.helpers import ingest_trace

pytestmark = pytest.mark.django_db

RAG = {"retrieval.documents.0.document.content": "Refunds are accepted within 30 days of purchase with a receipt."}
MADE_UP = "Refunds are accepted within 30 days. We also give every customer a free car in 2031."


def names(project, trace_id):
    return set(Score.objects.filter(project=project, trace_id=trace_id, source=Source.EVALUATOR)
               .values_list("name", flat=True))


def status(trace):
    return TraceScoring.objects.get(project=trace.project, trace_id=trace.trace_id)


@pytest.fixture
def sent(monkeypatch):
    """Messages for the grounding task, recorded instead of sent; the queue is empty."""
    out: list[list[int]] = []
    monkeypatch.setattr(tasks.traces_ground, "delay", out.append)
    monkeypatch.setattr(sweep, "queue_backlog", lambda queue: 0)
    return out


def test_cheap_scores_land_first_and_groundedness_follows_from_its_queue(world, sent,
                                                                         django_capture_on_commit_callbacks):
    trace = ingest_trace(world.project, output=MADE_UP, attributes=RAG)
    with django_capture_on_commit_callbacks(execute=True):
        traces_score_batch([trace.pk], defer=True)
    assert names(world.project, trace.trace_id) == {"toxicity_input", "toxicity_output", "pii_input",
                                                     "pii_output", "prompt_injection"}
    first = status(trace)
    assert first.status == "scored" and first.notes["groundedness"] == deferred.NOTE_QUEUED
    assert sent == [[trace.pk]]

    tasks.traces_ground(sent[0])
    assert "hallucination" in names(world.project, trace.trace_id)
    after = status(trace)
    assert "groundedness" not in after.notes and after.status == "scored"
    assert after.trace_updated_at == first.trace_updated_at  # a partial run does not claim the whole trace
    assert after.versions.keys() >= {"groundedness", "toxicity", "pii", "injection", "embeddings"}
    before = sorted(Score.objects.values_list("id", "value"))
    tasks.traces_ground(sent[0])  # redelivered: same rows, nothing added
    assert sorted(Score.objects.values_list("id", "value")) == before


def test_trace_without_context_gets_its_note_inline_and_queues_nothing(world, sent,
                                                                        django_capture_on_commit_callbacks):
    trace = ingest_trace(world.project)
    with django_capture_on_commit_callbacks(execute=True):
        traces_score_batch([trace.pk], defer=True)
    assert status(trace).notes["groundedness"] == "no context" and sent == []


def test_sample_rate_checks_the_same_share_of_traces_every_time(world, sent, django_capture_on_commit_callbacks):
    evaluator_settings_update(project=world.project, name="groundedness", options={"sample_rate": 0.5})
    traces = [ingest_trace(world.project, attributes=RAG) for _ in range(12)]
    with django_capture_on_commit_callbacks(execute=True):
        traces_score_batch([t.pk for t in traces], defer=True)
    chosen = {t.pk for t in traces if trace_sampled(t.trace_id, 0.5)}
    assert 0 < len(chosen) < len(traces)  # 12 random ids: all-or-nothing has odds 2 × 2⁻¹²
    assert set(sent[0]) == chosen
    for t in traces:
        note = status(t).notes["groundedness"]
        assert note == (deferred.NOTE_QUEUED if t.pk in chosen else "not sampled: 50% of traces are checked")
    # The backfill command runs groundedness inline, on the same sample.
    traces_score_batch([t.pk for t in traces])
    assert {t.pk for t in traces if "hallucination" in names(world.project, t.trace_id)} == chosen


def test_a_full_grounding_queue_skips_new_traces_and_keeps_their_old_scores(world, sent, settings, monkeypatch,
                                                                            django_capture_on_commit_callbacks):
    trace = ingest_trace(world.project, output=MADE_UP, attributes=RAG)
    traces_score_batch([trace.pk])  # scored earlier, inline
    assert "hallucination" in names(world.project, trace.trace_id)
    settings.SPYGLASS_GROUNDING_MAX_BACKLOG = 200
    monkeypatch.setattr(sweep, "queue_backlog", lambda queue: 200)
    with django_capture_on_commit_callbacks(execute=True):
        traces_score_batch([trace.pk], defer=True)
    assert sent == []
    assert status(trace).notes["groundedness"] == "skipped: 200 batches were already waiting for the grounding worker"
    assert "hallucination" in names(world.project, trace.trace_id)
    settings.SPYGLASS_GROUNDING_MAX_BACKLOG = 0  # no limit
    with django_capture_on_commit_callbacks(execute=True):
        traces_score_batch([trace.pk], defer=True)
    assert sent == [[trace.pk]]


def test_sweep_resends_groundedness_whose_message_was_lost(world, settings, monkeypatch,
                                                           django_capture_on_commit_callbacks):
    def broker_down(*args, **kwargs):
        raise BrokerDown("connection refused")

    monkeypatch.setattr(tasks.traces_ground, "delay", broker_down)
    # The queue's length is this test's to say, not the broker's: a backlog left by
    # anything else (`make run`, another test) would turn "queued" into "skipped".
    monkeypatch.setattr(sweep, "queue_backlog", lambda queue: 0)
    trace = ingest_trace(world.project, output=MADE_UP, attributes=RAG)
    with django_capture_on_commit_callbacks(execute=True):
        traces_score_batch([trace.pk], defer=True)  # the enqueue fails quietly: logged, left to the sweep
    assert status(trace).notes["groundedness"] == deferred.NOTE_QUEUED

    settings.SPYGLASS_SCORING_SWEEP_GRACE = 0
    resent: list[list[int]] = []
    monkeypatch.setattr(tasks.traces_ground, "delay", lambda pks: resent.append(pks) or tasks.traces_ground(pks))
    monkeypatch.setattr(sweep, "queue_backlog", lambda queue: 0)
    assert tasks.scoring_sweep() == 1 and resent == [[trace.pk]]
    assert "hallucination" in names(world.project, trace.trace_id)
    assert tasks.scoring_sweep() == 0  # nothing left waiting

    monkeypatch.setattr(sweep, "queue_backlog", lambda queue: 7 if queue == deferred.QUEUE else 0)
    with django_capture_on_commit_callbacks(execute=True):
        traces_score_batch([trace.pk], defer=True)  # its message now really is somewhere in those 7
    assert tasks.scoring_sweep() == 0


def test_grounding_message_for_a_project_that_switched_it_off_clears_the_note(world, sent,
                                                                              django_capture_on_commit_callbacks):
    trace = ingest_trace(world.project, output=MADE_UP, attributes=RAG)
    with django_capture_on_commit_callbacks(execute=True):
        traces_score_batch([trace.pk], defer=True)
    evaluator_settings_update(project=world.project, name="groundedness", enabled=False)
    tasks.traces_ground(sent[0])
    assert status(trace).notes["groundedness"] == "switched off"
    assert "hallucination" not in names(world.project, trace.trace_id)


def test_grounding_keeps_another_evaluators_failure_on_record(world, sent, monkeypatch,
                                                              django_capture_on_commit_callbacks):
    from evaluation import runner

    real = runner._run_pii

    def boom(texts, config):
        raise RuntimeError("pii exploded")

    monkeypatch.setattr(runner, "_run_pii", boom)
    trace = ingest_trace(world.project, output=MADE_UP, attributes=RAG)
    with django_capture_on_commit_callbacks(execute=True):
        traces_score_batch([trace.pk], defer=True)
    monkeypatch.setattr(runner, "_run_pii", real)
    tasks.traces_ground(sent[0])
    row = status(trace)
    assert row.status == "failed" and row.error.startswith("pii: RuntimeError: pii exploded")
    assert "hallucination" in names(world.project, trace.trace_id)


def test_partial_run_on_a_trace_never_fully_scored_leaves_it_pending(world):
    trace = ingest_trace(world.project, output=MADE_UP, attributes=RAG)
    traces_score_batch([trace.pk], only={"groundedness"})
    row = status(trace)
    assert row.status == "pending" and row.trace_updated_at is None
    assert trace.pk in sweep.traces_needing_scoring(now=trace.updated_at + sweep.LOOKBACK / 2)


def test_grounding_gives_way_to_waiting_scoring_messages_only_in_a_worker_serving_both(world, monkeypatch):
    from config.celery import app

    trace = ingest_trace(world.project, output=MADE_UP, attributes=RAG)
    requeued: list[tuple] = []
    monkeypatch.setattr(tasks.traces_ground, "apply_async", lambda args, queue: requeued.append((args, queue)))
    monkeypatch.setattr(sweep, "scoring_backlog", lambda: 3)
    monkeypatch.setattr(app.amqp.queues, "_consume_from", {"scoring": None, "grounding": None})
    assert tasks.traces_ground([trace.pk]) == 0
    assert requeued == [(([trace.pk],), "grounding")]  # back of its queue, untouched
    assert "hallucination" not in names(world.project, trace.trace_id)

    monkeypatch.setattr(app.amqp.queues, "_consume_from", {"grounding": None})  # a grounding-only worker
    assert tasks.traces_ground([trace.pk]) == 1 and len(requeued) == 1
    monkeypatch.setattr(app.amqp.queues, "_consume_from", {"scoring": None, "grounding": None})
    monkeypatch.setattr(sweep, "scoring_backlog", lambda: 0)
    assert tasks.traces_ground([trace.pk]) == 1 and len(requeued) == 1
    assert "hallucination" in names(world.project, trace.trace_id)
