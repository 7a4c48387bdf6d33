"""The fair scoring queue: projects take turns, a waiting trace keeps its place, and two
workers never take the same trace."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from evaluation import fair_queue
from evaluation.models import ScoringQueueItem
from projects.services import project_create
from tests.conftest import make_user


def take(**kwargs) -> tuple[int, list[int]] | None:
    turn = fair_queue.turn_take(**kwargs)
    return None if turn is None else (turn.project_id, turn.trace_pks)


@pytest.fixture
def projects(db):
    owner = make_user("fair-owner")
    return [project_create(name=name, owner=owner)[0] for name in ("Flood", "Trickle", "Third")]


def test_a_flood_does_not_hold_back_a_small_project(projects):
    flood, trickle, _ = projects
    fair_queue.traces_enqueue(project_id=flood.pk, trace_pks=list(range(1, 2001)))
    first = take(batch=20)
    assert first == (flood.pk, list(range(1, 21)))  # oldest first within a project
    fair_queue.traces_enqueue(project_id=trickle.pk, trace_pks=list(range(5001, 5051)))
    turns = [take(batch=20) for _ in range(6)]
    assert [project for project, _ in turns] == [trickle.pk, flood.pk] * 3  # alternating
    trickle_pks = [pk for project, pks in turns if project == trickle.pk for pk in pks]
    assert trickle_pks == list(range(5001, 5051))  # all 50 within 3 of its turns
    assert take(batch=20)[0] == flood.pk  # then the flood has the worker again
    assert [(b.project_id, b.waiting) for b in fair_queue.backlog()] == [(flood.pk, 2000 - 20 * 5)]


def test_a_waiting_trace_keeps_its_place_and_an_empty_queue_gives_none(projects):
    project = projects[0]
    assert take() is None
    fair_queue.traces_enqueue(project_id=project.pk, trace_pks=[7, 8])
    fair_queue.traces_enqueue(project_id=project.pk, trace_pks=[9, 7])  # 7 re-announced while waiting
    assert ScoringQueueItem.objects.count() == 3
    assert take(batch=2, claimant="a") == (project.pk, [7, 8])
    assert take(batch=2, claimant="b") == (project.pk, [9])
    assert take() is None
    assert fair_queue.waiting_total() == 3  # taken, not yet scored
    fair_queue.turn_done(claimant="a", trace_pks=[7, 8])
    fair_queue.turn_done(claimant="b", trace_pks=[9])
    assert fair_queue.waiting_total() == 0 and not ScoringQueueItem.objects.exists()


def test_a_redelivered_drain_takes_back_the_turn_its_dead_worker_claimed(projects):
    """A worker killed mid-turn never calls turn_done: its message comes back with the
    same task id, and that id gets the same traces again before any new turn."""
    project, other, _ = projects
    fair_queue.traces_enqueue(project_id=project.pk, trace_pks=[1, 2, 3])
    fair_queue.traces_enqueue(project_id=other.pk, trace_pks=[50])
    assert take(batch=2, claimant="task-1") == (project.pk, [1, 2])
    # ... the worker dies here. Others go on with what is free; the claimed rows are not.
    assert take(batch=5, claimant="task-2") == (other.pk, [50])
    assert take(batch=5, claimant="task-3") == (project.pk, [3])
    assert take(batch=5, claimant="task-4") is None
    assert take(batch=5, claimant="task-1") == (project.pk, [1, 2])  # the redelivery
    fair_queue.turn_done(claimant="task-1", trace_pks=[1, 2])
    assert set(ScoringQueueItem.objects.values_list("trace_pk", flat=True)) == {3, 50}


def test_a_trace_changed_while_being_scored_is_queued_again(projects):
    project = projects[0]
    fair_queue.traces_enqueue(project_id=project.pk, trace_pks=[1, 2])
    assert take(claimant="task-1") == (project.pk, [1, 2])
    fair_queue.traces_enqueue(project_id=project.pk, trace_pks=[2])  # more spans arrived meanwhile
    fair_queue.turn_done(claimant="task-1", trace_pks=[1, 2])
    assert take(claimant="task-2") == (project.pk, [2])


def test_a_claim_past_its_lease_is_free_for_anyone(projects):
    """A task that died and whose message is not coming back (broker restarted empty)
    must not hold its traces for ever: past the lease they are free, and the sweep,
    which waits while traces wait, no longer counts them."""
    project = projects[0]
    fair_queue.traces_enqueue(project_id=project.pk, trace_pks=[1, 2])
    take(claimant="dead")
    ScoringQueueItem.objects.update(claimed_at=timezone.now() - fair_queue.CLAIM_LEASE - timedelta(seconds=1))
    assert fair_queue.waiting_total() == 0
    assert take(claimant="alive") == (project.pk, [1, 2])
    assert fair_queue.waiting_total() == 2


def test_two_workers_never_take_the_same_trace(transactional_db):
    owner = make_user("fair-owner")
    projects = [project_create(name=f"P{i}", owner=owner)[0] for i in range(4)]
    for i, project in enumerate(projects):
        fair_queue.traces_enqueue(project_id=project.pk, trace_pks=list(range(i * 1000, i * 1000 + 300)))
    taken: list[list[int]] = [[], [], []]

    def worker(slot: int) -> None:
        try:
            while (turn := take(batch=7)) is not None:
                taken[slot].extend(turn[1])
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(slot,)) for slot in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [pk for slot in taken for pk in slot]
    assert len(everything) == len(set(everything)) == 1200
    assert all(taken), "every worker got turns"
