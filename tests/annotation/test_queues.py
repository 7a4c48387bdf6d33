"""Annotation queues: creation from trace filters, claiming, reviewing, pairwise mode,
exports and the pages' role matrix (feedback/views.py, services.py, selectors.py)."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.test import Client
from django.utils import timezone

from annotation.models import AnnotationQueue, QueueItem, QueueMode, QueueReview, ReviewStatus
from annotation.services import queue_claim_next, queue_create, queue_item_skip, queue_item_submit
from config.errors import ValidationFailed
from scores.models import Score, Source
from scores.services import score_upsert
from tests.helpers import ROLE_USERS, config, ingest_trace

NOW_NS = time.time_ns()
DAY_NS = 86_400 * 10**9


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def make_queue(world, n: int = 3, *, reviews_per_item: int = 1, configs=("helpfulness", "safety"), **kwargs):
    traces = [ingest_trace(world.project, input=f"question {i}", start_ns=NOW_NS - i * 1000) for i in range(n)]
    queue = queue_create(
        project=world.project,
        name="Thumbs down",
        created_by=world.owner,
        items=[(t.trace_id, None) for t in traces],
        config_ids=[config(world.project, name).pk for name in configs],
        reviews_per_item=reviews_per_item,
        **kwargs,
    )
    return queue, traces


def values_for(queue, **by_name) -> dict[int, str]:
    return {c.pk: by_name[c.name] for c in queue.score_configs.all()}


# --- creating queues from trace filters ------------------------------------------------------


def create_form(world, **fields) -> dict:
    return {
        "name": "Review",
        "mode": "single",
        "configs": [config(world.project, "helpfulness").pk],
        "reviews_per_item": 1,
        "sample": "newest",
        "size": 50,
        "split_field": "prompt_version",
        **fields,
    }


def test_queue_from_thumbs_down_last_7_days(world):
    recent_down = [ingest_trace(world.project, start_ns=NOW_NS - i * DAY_NS) for i in (1, 2)]
    recent_up = ingest_trace(world.project, start_ns=NOW_NS - DAY_NS)
    old_down = ingest_trace(world.project, start_ns=NOW_NS - 30 * DAY_NS)
    for t in [*recent_down, old_down]:
        score_upsert(
            project=world.project, trace_id=t.trace_id, name="user_thumbs", value=False, source=Source.END_USER
        )
    score_upsert(
        project=world.project, trace_id=recent_up.trace_id, name="user_thumbs", value=True, source=Source.END_USER
    )

    response = browser(world.member).post(
        f"/p/{world.project.slug}/annotate/new",
        create_form(world, name="Thumbs down, last week", traces="range=7d&score=user_thumbs=0"),
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    queue = AnnotationQueue.objects.get()
    assert [i.trace_id for i in queue.items.all()] == [t.trace_id for t in recent_down]  # newest first
    assert queue.source_filter == {"range": "7d", "score": ["user_thumbs=0"], "sample": "newest", "size": 50}


def test_queue_from_evaluator_score_threshold(world):
    high = ingest_trace(world.project)
    low = ingest_trace(world.project)
    score_upsert(
        project=world.project, trace_id=high.trace_id, name="hallucination", value=0.9, source=Source.EVALUATOR
    )
    score_upsert(project=world.project, trace_id=low.trace_id, name="hallucination", value=0.2, source=Source.EVALUATOR)

    browser(world.owner).post(
        f"/p/{world.project.slug}/annotate/new",
        create_form(world, traces="score=hallucination>0.5"),
    )

    assert [i.trace_id for i in AnnotationQueue.objects.get().items.all()] == [high.trace_id]


def test_queue_from_random_sample_of_n(world):
    traces = {ingest_trace(world.project).trace_id for _ in range(10)}

    browser(world.owner).post(f"/p/{world.project.slug}/annotate/new", create_form(world, sample="random", size=4))

    picked = [i.trace_id for i in AnnotationQueue.objects.get().items.all()]
    assert len(picked) == 4 and len(set(picked)) == 4 and set(picked) <= traces


def test_queue_never_takes_another_projects_traces(world):
    ingest_trace(world.other_project)

    response = browser(world.owner).post(f"/p/{world.project.slug}/annotate/new", create_form(world))

    assert response.status_code == 400
    assert "no traces match" in response.content.decode()
    assert not AnnotationQueue.objects.exists()


def test_create_form_errors_are_shown(world):
    response = browser(world.owner).post(
        f"/p/{world.project.slug}/annotate/new",
        create_form(world, name="", configs=[], traces="score=hallucination>high&colour=red"),
    )

    page = response.content.decode()
    assert response.status_code == 400
    assert "This field is required" in page
    assert "Choose at least one score config" in page
    assert "needs a number" in page and "colour: unknown query parameter" in page


def test_the_explorer_filter_prefills_the_queue_form_and_means_the_same(world):
    wanted = ingest_trace(world.project, start_ns=NOW_NS - DAY_NS, attributes={"metadata": '{"plan": "pro"}'})
    ingest_trace(world.project, start_ns=NOW_NS - DAY_NS)
    ingest_trace(world.project, start_ns=NOW_NS - 40 * DAY_NS, attributes={"metadata": '{"plan": "pro"}'})
    explorer_query = "metadata.plan=pro&range=30d"

    page = browser(world.member).get(f"/p/{world.project.slug}/annotate/new?{explorer_query}").content.decode()
    assert 'value="metadata.plan=pro&amp;range=30d"' in page
    response = browser(world.member).post(f"/p/{world.project.slug}/annotate/new",
                                          create_form(world, traces=explorer_query))
    assert response.status_code == 302
    assert [i.trace_id for i in AnnotationQueue.objects.get().items.all()] == [wanted.trace_id]


def test_assignees_must_be_reviewers_of_the_project(world):
    with pytest.raises(ValidationFailed):
        make_queue(world, assignee_ids=[world.viewer.pk])
    with pytest.raises(ValidationFailed):
        make_queue(world, assignee_ids=[world.outsider.pk])


# --- the reviewer flow -----------------------------------------------------------------------


def test_reviewers_claim_different_items(world):
    queue, _ = make_queue(world, 3)

    first = queue_claim_next(queue=queue, reviewer=world.reviewer)
    second = queue_claim_next(queue=queue, reviewer=world.member)

    assert first.position == 1 and second.position == 2


def test_reloading_resumes_the_same_claim(world):
    queue, _ = make_queue(world, 3)

    first = queue_claim_next(queue=queue, reviewer=world.reviewer)
    again = queue_claim_next(queue=queue, reviewer=world.reviewer)

    assert first == again


def test_expired_claim_is_free_for_others(world):
    queue, _ = make_queue(world, 1)
    queue_claim_next(queue=queue, reviewer=world.reviewer)
    assert queue_claim_next(queue=queue, reviewer=world.member) is None

    QueueReview.objects.update(locked_until=timezone.now() - timedelta(seconds=1))

    assert queue_claim_next(queue=queue, reviewer=world.member).position == 1


def test_several_reviews_per_item_share_items(world):
    queue, _ = make_queue(world, 2, reviews_per_item=2)

    a = queue_claim_next(queue=queue, reviewer=world.reviewer)
    b = queue_claim_next(queue=queue, reviewer=world.member)
    c = queue_claim_next(queue=queue, reviewer=world.owner)

    assert (a.position, b.position, c.position) == (1, 1, 2)


def test_submit_stores_scores_and_moves_on(world):
    queue, traces = make_queue(world, 2)
    item = queue_claim_next(queue=queue, reviewer=world.reviewer)

    queue_item_submit(
        queue=queue, item_id=item.pk, reviewer=world.reviewer, values=values_for(queue, helpfulness="4", safety="1"),
        comment="fine",
    )  # fmt: skip

    scores = {s.name: s for s in Score.objects.filter(trace_id=traces[0].trace_id)}
    assert (scores["helpfulness"].value, scores["safety"].value) == (4.0, 1.0)
    assert all(
        s.source == Source.ANNOTATION and s.author == world.reviewer and s.queue_id == queue.pk for s in scores.values()
    )
    assert QueueItem.objects.get(pk=item.pk).done_count == 1
    assert queue_claim_next(queue=queue, reviewer=world.reviewer).position == 2


def test_resubmitting_updates_without_counting_twice(world):
    queue, _ = make_queue(world, 1)
    item = queue_claim_next(queue=queue, reviewer=world.reviewer)
    for value in ("2", "5"):
        queue_item_submit(
            queue=queue,
            item_id=item.pk,
            reviewer=world.reviewer,
            values=values_for(queue, helpfulness=value, safety="0"),
        )

    assert QueueItem.objects.get(pk=item.pk).done_count == 1
    assert Score.objects.get(name="helpfulness").value == 5.0


def test_submit_needs_every_config_and_valid_values(world):
    queue, _ = make_queue(world, 1)
    item = queue_claim_next(queue=queue, reviewer=world.reviewer)

    with pytest.raises(ValidationFailed, match="give a value for safety"):
        queue_item_submit(
            queue=queue, item_id=item.pk, reviewer=world.reviewer, values=values_for(queue, helpfulness="3", safety="")
        )
    with pytest.raises(ValidationFailed, match="outside 'helpfulness'"):
        queue_item_submit(
            queue=queue, item_id=item.pk, reviewer=world.reviewer, values=values_for(queue, helpfulness="9", safety="1")
        )
    assert not Score.objects.exists()


def test_skipped_item_goes_to_someone_else(world):
    queue, _ = make_queue(world, 2)
    item = queue_claim_next(queue=queue, reviewer=world.reviewer)

    queue_item_skip(queue=queue, item_id=item.pk, reviewer=world.reviewer)

    assert queue_claim_next(queue=queue, reviewer=world.reviewer).position == 2
    assert queue_claim_next(queue=queue, reviewer=world.member).position == 1


def test_review_pages_walk_through_the_queue(world):
    queue, traces = make_queue(world, 2)
    client = browser(world.reviewer)
    base = f"/p/{world.project.slug}/annotate/{queue.pk}"

    first = client.post(f"{base}/review")
    item_page = client.get(first["Location"])
    item = QueueItem.objects.get(position=1)
    submitted = client.post(
        f"{base}/items/{item.pk}/submit",
        {f"score_{c.pk}": v for c, v in zip(queue.score_configs.all(), ["4", "1"], strict=False)},
    )

    assert first.status_code == 302 and first["Location"].endswith(f"/items/{item.pk}/")
    html = item_page.content.decode()
    assert traces[0].input in html and 'data-key="5"' in html and "review.js" in html
    assert submitted.status_code == 302 and submitted["Location"].endswith("/review")
    second = client.get(submitted["Location"])
    assert second["Location"].endswith(f"/items/{QueueItem.objects.get(position=2).pk}/")
    # k goes back to the reviewed item, with the given values selected.
    page = client.get(second["Location"]).content.decode()
    assert f'id="nav-prev" href="{base}/items/{item.pk}/"' in page
    back = client.get(f"{base}/items/{item.pk}/").content.decode()
    assert 'value="4" data-key="4" checked' in back


def test_missing_value_re_renders_with_message_and_keeps_choices(world):
    queue, _ = make_queue(world, 1)
    client = browser(world.reviewer)
    base = f"/p/{world.project.slug}/annotate/{queue.pk}"
    client.post(f"{base}/review")
    item = QueueItem.objects.get()
    helpfulness = config(world.project, "helpfulness")

    response = client.post(f"{base}/items/{item.pk}/submit", {f"score_{helpfulness.pk}": "2"})

    assert response.status_code == 400
    page = response.content.decode()
    assert "give a value for safety" in page
    assert 'value="2" data-key="2" checked' in page


def test_item_taken_by_someone_else_redirects_to_the_next(world):
    queue, _ = make_queue(world, 2)
    taken = queue_claim_next(queue=queue, reviewer=world.member)

    response = browser(world.reviewer).get(f"/p/{world.project.slug}/annotate/{queue.pk}/items/{taken.pk}/")

    assert response.status_code == 302 and response["Location"].endswith("/review")


def test_finished_queue_says_so(world):
    queue, _ = make_queue(world, 1)
    item = queue_claim_next(queue=queue, reviewer=world.reviewer)
    queue_item_submit(
        queue=queue, item_id=item.pk, reviewer=world.reviewer, values=values_for(queue, helpfulness="3", safety="1")
    )

    response = browser(world.reviewer).post(f"/p/{world.project.slug}/annotate/{queue.pk}/review")

    assert response.status_code == 200 and "Nothing left for you" in response.content.decode()


def test_unassigned_reviewer_cannot_work_an_assigned_queue(world):
    queue, _ = make_queue(world, 1, assignee_ids=[world.member.pk])

    assert browser(world.reviewer).post(f"/p/{world.project.slug}/annotate/{queue.pk}/review").status_code == 403
    assert browser(world.member).post(f"/p/{world.project.slug}/annotate/{queue.pk}/review").status_code == 302


# --- progress, agreement and export ---------------------------------------------------------


@pytest.fixture
def reviewed_queue(world):
    """3 items, two reviews each (reviewer and member): helpfulness (4,4), (2,3), (5,5)."""
    queue, traces = make_queue(world, 3, reviews_per_item=2)
    given = {world.reviewer: ["4", "2", "5"], world.member: ["4", "3", "5"]}
    for user, helpfulness in given.items():
        for value in helpfulness:
            item = queue_claim_next(queue=queue, reviewer=user)
            queue_item_submit(
                queue=queue, item_id=item.pk, reviewer=user, values=values_for(queue, helpfulness=value, safety="1"),
                comment="=cmd()" if value == "2" else "",
            )  # fmt: skip
    return queue, traces


def test_queue_page_shows_progress_and_agreement(world, reviewed_queue):
    queue, _ = reviewed_queue

    page = browser(world.viewer).get(f"/p/{world.project.slug}/annotate/{queue.pk}/").content.decode()

    assert "3 / 3" in page and "6 / 6" in page and "100%" in page
    assert "<td>member</td><td>3</td>" in page and "<td>reviewer</td><td>3</td>" in page
    # helpfulness: 2 of 3 items agree; kappa on labels (4,4),(2,3),(5,5): p_o = 2/3,
    # p_e = 1/3*1/3 (4) + 1/3*1/3 (5) = 2/9 -> (2/3 - 2/9) / (7/9) = 4/7.
    assert "67%" in page
    assert f"{4 / 7:.3f}" in page
    # safety: all "yes" -> statistics undefined, agreement 100%.
    assert "every rating is the same value" in page


def test_queue_list_shows_completion(world, reviewed_queue):
    page = browser(world.viewer).get(f"/p/{world.project.slug}/annotate/").content.decode()
    assert "Thumbs down" in page and "3 / 3" in page


def test_csv_export(world, reviewed_queue):
    queue, traces = reviewed_queue

    response = browser(world.viewer).get(f"/p/{world.project.slug}/annotate/{queue.pk}/export.csv")

    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="queue-{queue.pk}-results.csv"'
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 12  # 3 items x 2 reviewers x 2 configs
    first = rows[0]
    assert (first["position"], first["trace_id"], first["reviewer"]) == ("1", traces[0].trace_id, "member")
    assert any(r["comment"] == "'=cmd()" for r in rows)  # formula injection neutralized


def test_jsonl_export(world, reviewed_queue):
    queue, _ = reviewed_queue

    response = browser(world.viewer).get(f"/p/{world.project.slug}/annotate/{queue.pk}/export.jsonl")

    lines = [json.loads(line) for line in response.content.decode().splitlines()]
    assert len(lines) == 12
    assert {line["config"] for line in lines} == {"helpfulness", "safety"}
    assert {
        (line["reviewer"], line["value"]) for line in lines if line["position"] == 2 and line["config"] == "helpfulness"
    } == {
        ("reviewer", 2.0),
        ("member", 3.0),
    }


def test_export_api_filters_by_queue(world, reviewed_queue):
    queue, _ = reviewed_queue
    from tests.helpers import key_client

    data = key_client(world.key.secret_key).get("/api/v1/scores", {"queue_id": queue.pk, "limit": 500}).json()["data"]
    assert len(data) == 12


# --- pairwise --------------------------------------------------------------------------------


def test_pairwise_queue_pairs_same_input_across_prompt_versions(world):
    pairs = []
    for i in range(3):
        a = ingest_trace(
            world.project,
            input=f"q{i}",
            output=f"v1 answer {i}",
            attributes={"spyglass.prompt.name": "answer", "spyglass.prompt.version": "1"},
        )
        b = ingest_trace(
            world.project,
            input=f"q{i}",
            output=f"v2 answer {i}",
            attributes={"spyglass.prompt.name": "answer", "spyglass.prompt.version": "2"},
        )
        pairs.append((a.trace_id, b.trace_id))
    ingest_trace(world.project, input="only in v1", attributes={"spyglass.prompt.version": "1"})

    response = browser(world.owner).post(
        f"/p/{world.project.slug}/annotate/new",
        create_form(world, name="v1 vs v2", mode="pairwise", configs=[], value_a="1", value_b="2"),
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    queue = AnnotationQueue.objects.get()
    assert queue.mode == QueueMode.PAIRWISE
    assert [c.name for c in queue.score_configs.all()] == ["preferred"]
    assert sorted((i.trace_id, i.pair_trace_id) for i in queue.items.all()) == sorted(pairs)


def test_pairwise_review_records_preferred_with_the_pair(world):
    a = ingest_trace(world.project, input="same", output="Answer A text")
    b = ingest_trace(world.project, input="same", output="Answer B text")
    preferred = config(world.project, "preferred")
    queue = queue_create(
        project=world.project, name="AB", created_by=world.owner, items=[(a.trace_id, b.trace_id)],
        config_ids=[preferred.pk], mode=QueueMode.PAIRWISE,
    )  # fmt: skip
    client = browser(world.reviewer)
    base = f"/p/{world.project.slug}/annotate/{queue.pk}"
    item_url = client.post(f"{base}/review")["Location"]

    page = client.get(item_url).content.decode()
    client.post(f"{base}/items/{queue.items.get().pk}/submit", {f"score_{preferred.pk}": "B"})

    assert "Answer A text" in page and "Answer B text" in page and 'data-key="2"' in page
    score = Score.objects.get()
    assert (score.trace_id, score.string_value, score.metadata["pair_trace_id"]) == (a.trace_id, "B", b.trace_id)


# --- a queue holds a trace once ------------------------------------------------------------


def test_a_trace_given_twice_is_queued_once_in_its_first_place(world):
    a, b, c = (ingest_trace(world.project, input=f"q{i}") for i in range(3))

    queue = queue_create(
        project=world.project, name="Twice", created_by=world.owner,
        items=[(a.trace_id, None), (b.trace_id, None), (a.trace_id, None), (c.trace_id, None), (b.trace_id, None)],
        config_ids=[config(world.project, "helpfulness").pk],
    )  # fmt: skip

    items = list(queue.items.order_by("position").values_list("position", "trace_id"))
    assert items == [(1, a.trace_id), (2, b.trace_id), (3, c.trace_id)]


def test_a_pairwise_queue_holds_each_a_side_once(world):
    """The preferred verdict is stored on the A trace (one per reviewer), so A against a
    second partner would overwrite the first verdict: the first pair is kept."""
    a, b1, b2 = (ingest_trace(world.project, input="same", output=f"answer {i}") for i in range(3))

    queue = queue_create(
        project=world.project, name="AB", created_by=world.owner, mode=QueueMode.PAIRWISE,
        items=[(a.trace_id, b1.trace_id), (a.trace_id, b2.trace_id)],
        config_ids=[config(world.project, "preferred").pk],
    )  # fmt: skip

    assert list(queue.items.values_list("trace_id", "pair_trace_id")) == [(a.trace_id, b1.trace_id)]


def test_the_database_refuses_a_second_item_for_a_queued_trace(world):
    queue, traces = make_queue(world, n=2)

    with pytest.raises(IntegrityError, match="queue_item_unique_trace"), transaction.atomic():
        QueueItem.objects.create(queue=queue, project=world.project, trace_id=traces[0].trace_id, position=3)
    # The same trace in another queue is fine.
    other, _ = make_queue(world, n=1)
    QueueItem.objects.create(queue=other, project=world.project, trace_id=traces[0].trace_id, position=2)


# --- role matrix of the queue pages -----------------------------------------------------------

PAGE_ROLES = {
    # page: statuses for owner, member, reviewer, viewer, outsider
    "list": (200, 200, 200, 200, 404),
    "new": (200, 200, 403, 403, 404),
    "detail": (200, 200, 200, 200, 404),
    "review": (302, 302, 302, 403, 404),
    "item": (200, 200, 200, 403, 404),
    "skip": (302, 302, 302, 403, 404),
    "submit": (302, 302, 302, 403, 404),
    "csv": (200, 200, 200, 200, 404),
    "configs": (200, 200, 200, 200, 404),
    "config_create": (302, 302, 403, 403, 404),
}


@pytest.mark.parametrize("page", PAGE_ROLES)
@pytest.mark.parametrize("who", range(len(ROLE_USERS)))
def test_role_matrix_for_queue_pages(world, page, who):
    queue, _ = make_queue(world, 1, reviews_per_item=5)
    item = queue.items.get()
    user = getattr(world, ROLE_USERS[who])
    client = browser(user)
    base = f"/p/{world.project.slug}/annotate"
    q = f"{base}/{queue.pk}"
    values = {f"score_{c.pk}": "1" for c in queue.score_configs.all()}
    if page == "submit":
        queue_claim_next(queue=queue, reviewer=user) if ROLE_USERS[who] not in ("viewer", "outsider") else None
    requests = {
        "list": lambda: client.get(f"{base}/"),
        "new": lambda: client.get(f"{base}/new"),
        "detail": lambda: client.get(f"{q}/"),
        "review": lambda: client.post(f"{q}/review"),
        "item": lambda: client.get(f"{q}/items/{item.pk}/"),
        "skip": lambda: client.post(f"{q}/items/{item.pk}/skip"),
        "submit": lambda: client.post(f"{q}/items/{item.pk}/submit", values),
        "csv": lambda: client.get(f"{q}/export.csv"),
        "configs": lambda: client.get(f"{base}/configs"),
        "config_create": lambda: client.post(f"{base}/configs", {"name": f"tone{who}", "data_type": "boolean"}),
    }

    assert requests[page]().status_code == PAGE_ROLES[page][who]


def test_anonymous_visitors_are_sent_to_login(world):
    response = Client().get(f"/p/{world.project.slug}/annotate/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_queue_of_another_project_is_404(world):
    queue, _ = make_queue(world, 1)

    response = browser(world.outsider).get(f"/p/{world.other_project.slug}/annotate/{queue.pk}/")

    assert response.status_code == 404


def test_queue_list_is_bounded_in_queries(world, django_assert_max_num_queries):
    for _ in range(5):
        make_queue(world, 2)
    client = browser(world.viewer)
    client.get(f"/p/{world.project.slug}/annotate/")

    with django_assert_max_num_queries(8):
        assert client.get(f"/p/{world.project.slug}/annotate/").status_code == 200


def test_review_statuses_recorded(world):
    queue, _ = make_queue(world, 2)
    item = queue_claim_next(queue=queue, reviewer=world.reviewer)
    queue_item_skip(queue=queue, item_id=item.pk, reviewer=world.reviewer)

    assert QueueReview.objects.get(item=item).status == ReviewStatus.SKIPPED
