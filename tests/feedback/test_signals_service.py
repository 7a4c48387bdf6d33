"""Implicit signals stored as scores (feedback.services.session_signals_compute), with
sessions created through the production ingest path and the real embedding model;
the abandon timing and sweep; the trace-page include; the Celery tasks and hook."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.template.loader import render_to_string
from django.test import Client, RequestFactory
from django.utils import timezone

from feedback import services
from feedback.models import SessionSignalState
from feedback.services import feedback_record, session_signals_compute
from scores.models import Score, Source
from tests.helpers import ingest_trace
from tests.otlp_payloads import BASE_NS, MS

MINUTE_NS = 60_000 * MS


def turn(world, session_id: str, minute: int, question: str, answer: str = "Here is how.", **kwargs):
    return ingest_trace(
        world.project,
        input=question,
        output=answer,
        start_ns=BASE_NS + minute * MINUTE_NS,
        attributes={"session.id": session_id},
        **kwargs,
    )


def implicit(world, trace=None) -> dict[tuple[str, str], Score]:
    scores = Score.objects.filter(project=world.project, source=Source.IMPLICIT)
    if trace is not None:
        scores = scores.filter(trace_id=trace.trace_id)
    return {(s.trace_id, s.name): s for s in scores}


def after(trace, minutes: float):
    return trace.end_time + timedelta(minutes=minutes)


def test_a_rephrase_is_stored_on_the_unhelpful_answer_with_its_evidence(world):
    first = turn(world, "s1", 0, "How do I reset my password?")
    second = turn(world, "s1", 1, "I forgot my password, how can I change it?")

    result = session_signals_compute(project=world.project, session_id="s1", now=after(second, 1))

    assert [s.name for s in result.signals] == ["rephrase"]
    score = implicit(world)[(first.trace_id, "rephrase")]
    assert score.value == 1 and score.source == Source.IMPLICIT
    assert score.metadata["previous"] == "How do I reset my password?"
    assert score.metadata["next"] == "I forgot my password, how can I change it?"
    assert score.metadata["cosine"] >= 0.7 and score.metadata["session_id"] == "s1"


def test_a_new_topic_and_a_follow_up_are_told_apart_by_the_real_model(world):
    first = turn(world, "s2", 0, "How do I cancel my subscription?")
    second = turn(world, "s2", 1, "Will I still have access until the end of the billing period?")
    turn(world, "s2", 2, "Can you write a haiku about autumn?")

    session_signals_compute(project=world.project, session_id="s2", now=after(second, 5))

    assert set(implicit(world)) == {(first.trace_id, "follow_up")}


def test_recomputing_changes_nothing(world):
    first = turn(world, "s3", 0, "Where is my parcel?")
    turn(world, "s3", 1, "My parcel still has not arrived, where is it?")
    feedback_record(project=world.project, trace_id=first.trace_id, kind="event", name="regenerate")
    now = timezone.now() + timedelta(minutes=90)  # the event is stamped with the real clock

    session_signals_compute(project=world.project, session_id="s3", now=now)
    before = {k: (s.pk, s.value, s.metadata) for k, s in implicit(world).items()}
    result = session_signals_compute(project=world.project, session_id="s3", now=now)

    assert {k: (s.pk, s.value, s.metadata) for k, s in implicit(world).items()} == before
    assert result.removed == 0 and len(before) == 3  # rephrase, regenerate, abandon


def test_a_signal_that_stops_holding_is_removed(world):
    only_turn = turn(world, "s4", 0, "How do I export my data?")
    session_signals_compute(project=world.project, session_id="s4", now=after(only_turn, 45))
    assert (only_turn.trace_id, "abandon") in implicit(world)

    # The user copied the answer after all (the event arrived late): not abandoned.
    feedback_record(project=world.project, trace_id=only_turn.trace_id, kind="event", name="copy")
    result = session_signals_compute(project=world.project, session_id="s4", now=after(only_turn, 45))

    assert set(implicit(world)) == {(only_turn.trace_id, "copy")} and result.removed == 1


def test_a_new_turn_moves_the_abandon_to_the_new_last_answer(world):
    first = turn(world, "s5", 0, "How do I export my data?")
    session_signals_compute(project=world.project, session_id="s5", now=after(first, 31))
    second = turn(world, "s5", 60, "Can you write a haiku about autumn?")

    session_signals_compute(project=world.project, session_id="s5", now=after(second, 31))

    assert set(implicit(world)) == {(second.trace_id, "abandon")}


def test_implicit_scores_posted_by_clients_are_left_alone(world):
    only_turn = turn(world, "s6", 0, "Hi?")
    services.score_upsert(project=world.project, trace_id=only_turn.trace_id, name="rephrase", value=1,
                          source=Source.IMPLICIT)  # fmt: skip
    session_signals_compute(project=world.project, session_id="s6", now=after(only_turn, 1))
    assert Score.objects.filter(project=world.project, name="rephrase").count() == 1


def test_events_and_phrases_in_several_languages_become_scores(world):
    first = turn(world, "s7", 0, "Wo ist mein Paket?", answer="Es ist unterwegs.")
    second = turn(world, "s7", 1, "Das hilft mir nicht. Ich möchte mit einem Menschen sprechen.")
    feedback_record(project=world.project, trace_id=first.trace_id, kind="event", name="edit",
                    text="Es ist morgen da.")  # fmt: skip
    feedback_record(project=world.project, trace_id=second.trace_id, kind="event", name="dwell_ms", value=4200)

    session_signals_compute(project=world.project, session_id="s7", now=after(second, 1))

    scores = implicit(world)
    assert scores[(first.trace_id, "frustration")].metadata["language"] == "de"
    assert scores[(first.trace_id, "escalate")].metadata["phrase"] == "mit einem menschen sprechen"
    assert scores[(first.trace_id, "edit")].value == scores[(first.trace_id, "edit")].metadata["distance"] > 0
    assert scores[(second.trace_id, "dwell_ms")].value == 4200


def test_positive_end_user_feedback_prevents_abandon(world):
    only_turn = turn(world, "s8", 0, "How do I export my data?")
    feedback_record(project=world.project, trace_id=only_turn.trace_id, kind="feedback", name="thumbs", value="up")
    session_signals_compute(project=world.project, session_id="s8", now=after(only_turn, 60))
    assert implicit(world) == {}


def test_other_projects_sessions_are_not_touched(world):
    mine = turn(world, "shared-id", 0, "Where is my parcel?")
    theirs = ingest_trace(world.other_project, input="Where is my parcel?", attributes={"session.id": "shared-id"})
    session_signals_compute(project=world.project, session_id="shared-id", now=after(mine, 60))
    assert not Score.objects.filter(project=world.other_project).exists()
    assert not Score.objects.filter(trace_id=theirs.trace_id).exists()


# --- abandon timing and the sweep --------------------------------------------------------------


def test_abandon_timing_and_which_sessions_the_sweep_closes(world, settings):
    settings.SPYGLASS_SIGNALS_ABANDON_MINUTES = 30
    only_turn = turn(world, "idle", 0, "How do I export my data?")

    early = session_signals_compute(project=world.project, session_id="idle", now=after(only_turn, 29))
    state = SessionSignalState.objects.get(project=world.project, session_id="idle")
    assert not early.closed and not state.closed and implicit(world) == {}
    assert state.last_activity_at == only_turn.end_time
    assert services.sessions_due_for_close(now=after(only_turn, 29)) == []
    assert services.sessions_due_for_close(now=after(only_turn, 31)) == [(world.project.pk, "idle")]

    late = session_signals_compute(project=world.project, session_id="idle", now=after(only_turn, 31))
    assert late.closed and (only_turn.trace_id, "abandon") in implicit(world)
    assert services.sessions_due_for_close(now=after(only_turn, 120)) == []


def test_the_idle_threshold_follows_the_setting(world, settings):
    settings.SPYGLASS_SIGNALS_ABANDON_MINUTES = 5
    only_turn = turn(world, "quick", 0, "Hello?")
    session_signals_compute(project=world.project, session_id="quick", now=after(only_turn, 6))
    assert implicit(world)[(only_turn.trace_id, "abandon")].metadata["threshold_minutes"] == 5


# --- the trace page ---------------------------------------------------------------------------------


def signals_on_page(world, trace) -> str:
    """The implicit-signals group of the trace page's "Scores & feedback" section."""
    client = Client()
    client.force_login(world.viewer)
    html = client.get(f"/p/{world.project.slug}/traces/{trace.trace_id}/").content.decode()
    return html.split('id="scores-implicit"', 1)[1].split("</section>", 1)[0]


def test_the_trace_page_shows_signals_with_their_evidence(world):
    first = turn(world, "page", 0, "How do I reset my password?")
    turn(world, "page", 1, "I forgot my password, how can I change it?")
    session_signals_compute(project=world.project, session_id="page", now=after(first, 2))

    html = signals_on_page(world, first)

    assert 'id="trace-signals"' in html and "<code>rephrase</code>" in html
    assert "“How do I reset my password?”" in html and "cosine" in html


def test_the_trace_page_says_when_there_are_no_signals(world):
    lonely = ingest_trace(world.project)
    assert "belongs to no session" in signals_on_page(world, lonely)


def test_the_signals_include_reads_nothing_itself(world, django_assert_num_queries):
    trace = turn(world, "q", 0, "Hi?")
    request = RequestFactory().get("/")
    request.user = world.viewer
    with django_assert_num_queries(0):
        render_to_string("feedback/_signals.html", {"trace": trace, "rows": []}, request=request)


# --- tasks -------------------------------------------------------------------


def test_the_sessions_signals_task_computes_and_the_sweep_enqueues_idle_sessions(world, monkeypatch):
    from feedback import tasks

    only_turn = turn(world, "t1", 0, "How do I export my data?")  # the test traces date from 2025: idle now
    assert tasks.sessions_signals.run(world.project.pk, ["t1"]) == 1
    assert (only_turn.trace_id, "abandon") in implicit(world)
    assert SessionSignalState.objects.get(session_id="t1").closed

    # Computed while it was still live (right after ingest), the session stays open for the sweep.
    session_signals_compute(project=world.project, session_id="t1", now=after(only_turn, 1))
    sent = []
    monkeypatch.setattr(tasks.sessions_signals, "delay", lambda *args: sent.append(args))
    assert tasks.sessions_close_idle.run() == 1
    assert sent == [(world.project.pk, ["t1"])]


def test_tasks_are_routed_to_their_queues(settings):
    # The project's own app, not celery.current_app: another test may have made a
    # different app current.
    from config.celery import app

    router = app.amqp.router
    routes = {
        "tracing.tasks.traces_changed": "pipeline",
        "evaluation.tasks.traces_score": "scoring",
        "evaluation.tasks.scoring_drain": "scoring",
        "evaluation.tasks.traces_ground": "grounding",
        "evaluation.tasks.traces_judge": "judge",
        "evaluation.tasks.scoring_sweep": "default",
        "evaluation.tasks.project_rescore": "default",
        "feedback.tasks.sessions_signals": "signals",
        "feedback.tasks.sessions_close_idle": "signals",
    }
    for name, queue in routes.items():
        assert router.route({}, name)["queue"].name == queue
        assert queue in settings.CELERY_WORKER_QUEUES  # served by the workers we start
    assert any(e["task"] == "feedback.tasks.sessions_close_idle" for e in settings.CELERY_BEAT_SCHEDULE.values())


@pytest.mark.django_db
@pytest.mark.parametrize("missing", [0, 10**9])
def test_tasks_for_a_deleted_project_do_nothing(missing):
    from evaluation import tasks as evaluation_tasks
    from feedback import tasks

    assert tasks.sessions_signals.run(missing, ["x"]) == 0 and evaluation_tasks.traces_judge.run(missing, ["x"]) == 0
