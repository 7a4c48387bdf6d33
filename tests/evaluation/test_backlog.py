"""The backlog policy: under a backlog a project's policy decides what is scored, and
traces with negative feedback, an error or a place in an annotation queue are never
dropped (also when they become so after they were skipped)."""

from __future__ import annotations

import pytest
from django.db.models import Count
from hypothesis import given, settings
from hypothesis import strategies as st

from annotation.services import queue_create
from evaluation import backlog, fair_queue
from evaluation.backlog import Candidate, Policy
from evaluation.models import BacklogMode, BacklogPolicy, ScoringQueueItem, ScoringTurn, TraceScoring
from evaluation.sampling import trace_sampled
from feedback.services import feedback_record
from scores.models import Source
from scores.services import score_upsert
from tests.helpers import config, ingest_trace

MODES = [m.value for m in BacklogMode]


# --- the decision, without a database ---------------------------------------------------

candidates = st.lists(
    st.builds(Candidate, pk=st.integers(1, 10**9), trace_id=st.text("0123456789abcdef", min_size=32, max_size=32),
              protected=st.booleans()),
    max_size=60, unique_by=lambda c: c.pk,
)


@settings(max_examples=200, deadline=None)
@given(mode=st.sampled_from(MODES), waiting=st.integers(0, 50_000), threshold=st.integers(0, 20_000),
       rate=st.floats(0, 1), cap=st.integers(1, 20_000), taken=candidates, overflow=candidates)
def test_a_protected_trace_is_never_skipped(mode, waiting, threshold, rate, cap, taken, overflow):
    policy = Policy(mode=mode, threshold=threshold, sample_rate=rate, cap=cap)
    for decision, given_ in ((backlog.decide(policy, waiting=waiting, taken=taken), taken),
                             (backlog.overflow_decide(policy, waiting=waiting, overflow=overflow), overflow)):
        assert not any(c.protected for c in given_ if c.pk in decision.skip)
        # Every trace is decided exactly once: scored or skipped with a reason.
        assert sorted(decision.score + list(decision.skip)) == sorted(c.pk for c in given_)
        assert all(note.startswith("skipped: ") for note in decision.skip.values())


def _candidates(n: int, *, protected_every: int = 0) -> list[Candidate]:
    return [Candidate(pk=i, trace_id=f"{i:032x}", protected=bool(protected_every and i % protected_every == 0))
            for i in range(1, n + 1)]


def test_sample_scores_the_hash_sample_and_the_protected_ones_under_a_backlog():
    policy = Policy(mode=BacklogMode.SAMPLE, threshold=100, sample_rate=0.25)
    taken = _candidates(400, protected_every=10)
    decision = backlog.decide(policy, waiting=101, taken=taken)
    expected = [c.pk for c in taken if c.protected or trace_sampled(c.trace_id, 0.25)]
    assert decision.score == expected
    assert 100 < len(decision.skip) < 300  # about 3/4 of the unprotected ones
    assert "101 traces were waiting" in next(iter(decision.skip.values()))
    assert "'sample' scores 25%" in next(iter(decision.skip.values()))
    # At or below the threshold, and under `all`, everything is scored.
    assert backlog.decide(policy, waiting=100, taken=taken).score == [c.pk for c in taken]
    everything = Policy(mode=BacklogMode.ALL, threshold=0)
    assert backlog.decide(everything, waiting=10**6, taken=taken).skip == {}


def test_the_ordered_modes_skip_only_beyond_the_cap():
    policy = Policy(mode=BacklogMode.NEWEST_FIRST, threshold=10, cap=5)
    taken = _candidates(20, protected_every=4)
    assert backlog.decide(policy, waiting=50, taken=taken).skip == {}  # a turn's own batch is scored
    cut = backlog.overflow_decide(policy, waiting=50, overflow=taken)
    assert cut.score == [4, 8, 12, 16, 20]
    assert "'newest_first' keeps the newest 5" in cut.skip[1]


# --- with the database ---------------------------------------------------------------------


def _run(turn) -> int:
    """What scoring_drain does with a turn: score or skip it, then release its claim."""
    handled = backlog.turn_run(turn)
    fair_queue.turn_done(claimant=turn.claimant, trace_pks=turn.trace_pks)
    return handled


def _policy(project, **fields) -> None:
    BacklogPolicy.objects.update_or_create(project=project, defaults=fields)


def _thumbs(project, trace, value) -> None:
    feedback_record(project=project, trace_id=trace.trace_id, kind="feedback", name="thumbs", value=value)


def test_what_counts_as_protected(world):
    plain, liked, disliked, low, high, queued, paired = (ingest_trace(world.project) for _ in range(7))
    errored = ingest_trace(world.project, status_code=2)
    _thumbs(world.project, liked, True)
    _thumbs(world.project, disliked, False)
    feedback_record(project=world.project, trace_id=low.trace_id, kind="feedback", name="stars", value=2)
    feedback_record(project=world.project, trace_id=high.trace_id, kind="feedback", name="stars", value=4)
    queue_create(project=world.project, name="Review", created_by=world.owner,
                 items=[(queued.trace_id, paired.trace_id)], config_ids=[config(world.project, "preferred").pk],
                 mode="pairwise")
    # Another project's thumbs-down on the same trace id protects nothing here.
    other = ingest_trace(world.project)
    feedback_record(project=world.other_project, trace_id=other.trace_id, kind="feedback", name="thumbs",
                    value=False)
    traces = [plain, liked, disliked, low, high, errored, queued, paired, other]
    loaded = {c.pk: c.protected for c in backlog.candidates_load([t.pk for t in traces])}
    assert loaded == {plain.pk: False, liked.pk: False, disliked.pk: True, low.pk: True, high.pk: False,
                      errored.pk: True, queued.pk: True, paired.pk: True, other.pk: False}


def test_newest_first_keeps_the_newest_and_the_protected_ones_of_a_backlog(world):
    _policy(world.project, mode=BacklogMode.NEWEST_FIRST, threshold=10, cap=6)
    traces = [ingest_trace(world.project) for _ in range(20)]
    errored = ingest_trace(world.project, status_code=2)
    _thumbs(world.project, traces[2], False)
    pks = [t.pk for t in traces]
    fair_queue.traces_enqueue(project_id=world.project.pk, trace_pks=[errored.pk])  # the oldest in the queue
    fair_queue.traces_enqueue(project_id=world.project.pk, trace_pks=pks)
    turn = fair_queue.turn_take(batch=4)
    assert turn.waiting == 21
    # The queue was cut to the newest 6; the cut protected ones came back at its head.
    assert turn.trace_pks == sorted([errored.pk, traces[2].pk, pks[-1], pks[-2]])
    assert set(turn.skipped) == set(pks[:-6]) - {traces[2].pk}
    left = set(ScoringQueueItem.objects.filter(claimed_at=None).values_list("trace_pk", flat=True))
    assert left == set(pks[-6:-2])
    assert _run(turn) == 4 + 13
    rows = dict(TraceScoring.objects.filter(project=world.project).values_list("trace_id", "status"))
    assert rows[traces[0].trace_id] == "skipped" and rows[traces[2].trace_id] == "scored"
    assert rows[errored.trace_id] in ("scored", "failed") and traces[-3].trace_id not in rows
    note = TraceScoring.objects.get(project=world.project, trace_id=traces[0].trace_id).notes["backlog"]
    assert note == "skipped: 21 traces were waiting for scores; backlog policy 'newest_first' keeps the newest 6"
    assert ScoringTurn.objects.get(project=world.project).skipped_total == 13


def test_oldest_first_skips_the_newest_beyond_the_cap(world):
    _policy(world.project, mode=BacklogMode.OLDEST_FIRST, threshold=5, cap=5)
    pks = [ingest_trace(world.project).pk for _ in range(12)]
    fair_queue.traces_enqueue(project_id=world.project.pk, trace_pks=pks)
    turn = fair_queue.turn_take(batch=3)
    assert turn.trace_pks == pks[:3] and set(turn.skipped) == set(pks[5:])


def test_sample_skips_the_unsampled_traces_of_a_turn_and_scores_the_protected_ones(world):
    _policy(world.project, mode=BacklogMode.SAMPLE, threshold=3, sample_rate=0.0)
    traces = [ingest_trace(world.project) for _ in range(6)]
    _thumbs(world.project, traces[4], False)
    fair_queue.traces_enqueue(project_id=world.project.pk, trace_pks=[t.pk for t in traces])
    _run(fair_queue.turn_take(batch=10))
    statuses = dict(TraceScoring.objects.filter(project=world.project).values_list("trace_id", "status"))
    assert statuses == {t.trace_id: ("scored" if i == 4 else "skipped") for i, t in enumerate(traces)}


def test_below_the_threshold_every_trace_is_scored(world):
    _policy(world.project, mode=BacklogMode.SAMPLE, threshold=6, sample_rate=0.0)
    traces = [ingest_trace(world.project) for _ in range(6)]
    fair_queue.traces_enqueue(project_id=world.project.pk, trace_pks=[t.pk for t in traces])
    _run(fair_queue.turn_take(batch=10))
    counts = dict(TraceScoring.objects.filter(project=world.project).values_list("status")
                  .annotate(n=Count("id")).values_list("status", "n"))
    assert counts == {"scored": 6}


def _skip_all(world, n: int):
    _policy(world.project, mode=BacklogMode.SAMPLE, threshold=0, sample_rate=0.0)
    traces = [ingest_trace(world.project) for _ in range(n)]
    fair_queue.traces_enqueue(project_id=world.project.pk, trace_pks=[t.pk for t in traces])
    _run(fair_queue.turn_take(batch=n))
    assert set(TraceScoring.objects.filter(project=world.project).values_list("status", flat=True)) == {"skipped"}
    return traces


def test_a_late_thumbs_down_puts_a_skipped_trace_back_at_the_head(world, django_capture_on_commit_callbacks):
    traces = _skip_all(world, 3)
    fair_queue.traces_enqueue(project_id=world.project.pk, trace_pks=[ingest_trace(world.project).pk])
    with django_capture_on_commit_callbacks(execute=True):
        _thumbs(world.project, traces[0], True)  # a thumbs-up protects nothing
    assert not ScoringQueueItem.objects.filter(trace_pk=traces[0].pk).exists()
    with django_capture_on_commit_callbacks(execute=True):
        _thumbs(world.project, traces[1], False)
    assert ScoringQueueItem.objects.get(trace_pk=traces[1].pk).priority
    turn = fair_queue.turn_take(batch=1)
    assert turn.trace_pks == [traces[1].pk]  # ahead of the trace that was waiting
    _run(turn)
    assert TraceScoring.objects.get(project=world.project, trace_id=traces[1].trace_id).status == "scored"


def test_adding_a_skipped_trace_to_an_annotation_queue_scores_it(world, django_capture_on_commit_callbacks):
    traces = _skip_all(world, 2)
    with django_capture_on_commit_callbacks(execute=True):
        queue_create(project=world.project, name="Look", created_by=world.owner, items=[(traces[1].trace_id, None)],
                     config_ids=[config(world.project, "helpfulness").pk])
    assert list(ScoringQueueItem.objects.values_list("trace_pk", "priority")) == [(traces[1].pk, True)]


def test_the_sweep_rescues_skipped_traces_that_became_protected(world):
    from evaluation.tasks import _rescue_skipped

    traces = _skip_all(world, 3)
    # Written without the feedback service's hook (the scores API, an import).
    score_upsert(project=world.project, trace_id=traces[2].trace_id, name="user_thumbs", value=False,
                 source=Source.END_USER)
    assert _rescue_skipped() == 1
    assert list(ScoringQueueItem.objects.values_list("trace_pk", flat=True)) == [traces[2].pk]


@pytest.mark.parametrize("mode", MODES)
def test_the_default_is_all(world, mode):
    assert backlog.policy_for(world.project.pk) == Policy()
    _policy(world.project, mode=mode)
    assert backlog.policy_for(world.project.pk).mode == mode
