"""Two reviewers claiming at the same time never get the same item (services.queue_claim_next).

Real concurrency: each thread has its own database connection and transactions, so
the row locks (FOR UPDATE SKIP LOCKED) and the re-check under the lock are exercised
for real. Needs committed data, hence transactional_db.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection

from annotation.models import QueueItem, QueueReview, ReviewStatus
from annotation.services import queue_claim_next, queue_create, queue_item_submit
from tests.factories import TraceFactory
from tests.helpers import config

pytestmark = pytest.mark.django_db(transaction=True)


def build_queue(world, n: int, reviews_per_item: int):
    # Factory rows, not spans_ingest: ingest enqueues Celery scoring after commit, and
    # these committed transactions would push messages to the shared broker.
    traces = [TraceFactory(project=world.project) for _ in range(n)]
    return queue_create(
        project=world.project,
        name="race",
        created_by=world.owner,
        items=[(t.trace_id, None) for t in traces],
        config_ids=[config(world.project, "helpfulness").pk],
        reviews_per_item=reviews_per_item,
    )


def work_in_parallel(queue, reviewers) -> dict[str, list[int]]:
    """Each reviewer claims and submits until the queue has nothing left for them."""
    done: dict[str, list[int]] = {r.username: [] for r in reviewers}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(reviewers))
    helpfulness = config(queue.project, "helpfulness").pk

    def run(reviewer):
        try:
            barrier.wait()
            while (item := queue_claim_next(queue=queue, reviewer=reviewer)) is not None:
                queue_item_submit(queue=queue, item_id=item.pk, reviewer=reviewer, values={helpfulness: "3"})
                done[reviewer.username].append(item.position)
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(r,)) for r in reviewers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a reviewer thread was still working after 300 s"
    assert not errors, errors
    return done


def test_two_reviewers_never_claim_the_same_item(world):
    queue = build_queue(world, 40, reviews_per_item=1)

    done = work_in_parallel(queue, [world.reviewer, world.member])

    everything = done["reviewer"] + done["member"]
    assert sorted(everything) == list(range(1, 41))  # each item exactly once
    assert done["reviewer"] and done["member"]  # both actually worked
    assert set(QueueItem.objects.filter(queue=queue).values_list("done_count", flat=True)) == {1}


def test_simultaneous_first_claims_get_different_items(world):
    queue = build_queue(world, 2, reviews_per_item=1)
    claimed: list[int] = []
    barrier = threading.Barrier(2)

    def claim(reviewer):
        barrier.wait()
        try:
            claimed.append(queue_claim_next(queue=queue, reviewer=reviewer).position)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(r,)) for r in (world.reviewer, world.member)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert sorted(claimed) == [1, 2]


def test_three_reviewers_with_two_reviews_per_item(world):
    queue = build_queue(world, 15, reviews_per_item=2)

    done = work_in_parallel(queue, [world.reviewer, world.member, world.owner])

    per_item = Counter(p for positions in done.values() for p in positions)
    assert per_item == {p: 2 for p in range(1, 16)}  # every item reviewed exactly twice
    for positions in done.values():
        assert len(positions) == len(set(positions))  # never the same item twice by one person
    assert not QueueReview.objects.filter(status=ReviewStatus.CLAIMED).exists()


def test_a_claim_waiting_on_a_submit_still_gets_the_item(world):
    """B asks for work while A's submit of the only item holds its row lock: once A
    commits, the item still needs B's review, and B must get it (not "nothing left")."""
    from django.db import transaction

    queue = build_queue(world, 1, reviews_per_item=2)
    helpfulness = config(queue.project, "helpfulness").pk
    item = queue_claim_next(queue=queue, reviewer=world.reviewer)
    locked, release = threading.Event(), threading.Event()
    claimed: list[object] = []
    errors: list[BaseException] = []

    def submit_and_hold():
        try:
            with transaction.atomic():
                queue_item_submit(queue=queue, item_id=item.pk, reviewer=world.reviewer, values={helpfulness: "3"})
                locked.set()
                release.wait(timeout=30)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    def claim():
        try:
            claimed.append(queue_claim_next(queue=queue, reviewer=world.member))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    holder = threading.Thread(target=submit_and_hold)
    holder.start()
    assert locked.wait(timeout=30)
    claimer = threading.Thread(target=claim)
    claimer.start()
    claimer.join(timeout=1.0)  # B is now waiting for A's row lock (second pass)
    release.set()
    holder.join(timeout=30)
    claimer.join(timeout=30)

    assert not errors, errors
    assert claimed and claimed[0] is not None and claimed[0].pk == item.pk
