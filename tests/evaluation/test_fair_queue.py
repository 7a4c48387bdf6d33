"""The fair scoring queue: projects take turns, a waiting trace keeps its place, and two
workers never take the same trace."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from evaluation import fair_queue
from evaluation.models import ScoringQueueItem
from projects.services import project_create
from tests.conftest import make_user


def take(batch: int) -> tuple[int, list[int]] | None:
    turn = fair_queue.turn_take(batch=batch)
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
    assert fair_queue.turn_take() is None
    fair_queue.traces_enqueue(project_id=project.pk, trace_pks=[7, 8])
    fair_queue.traces_enqueue(project_id=project.pk, trace_pks=[9, 7])  # 7 re-announced while waiting
    assert ScoringQueueItem.objects.count() == 3
    assert take(batch=2) == (project.pk, [7, 8])
    assert take(batch=2) == (project.pk, [9])
    assert fair_queue.turn_take() is None and fair_queue.waiting_total() == 0


def test_two_workers_never_take_the_same_trace(transactional_db):
    owner = make_user("fair-owner")
    projects = [project_create(name=f"P{i}", owner=owner)[0] for i in range(4)]
    for i, project in enumerate(projects):
        fair_queue.traces_enqueue(project_id=project.pk, trace_pks=list(range(i * 1000, i * 1000 + 300)))
    taken: list[list[int]] = [[], [], []]

    def worker(slot: int) -> None:
        try:
            while (turn := fair_queue.turn_take(batch=7)) is not None:
                taken[slot].extend(turn.trace_pks)
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
