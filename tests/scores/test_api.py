"""POST/GET /api/v1/scores (feedback/api.py, services.score_upsert, selectors.scores_list)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from scores.models import DataType, Score, Source
from scores.services import score_config_set_archived, score_upsert
from tests.helpers import ROLE_USERS, config, ingest_trace, key_client, session_client

URL = "/api/v1/scores"


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    return body["error"]


# --- validation against configs ----------------------------------------------------------


def test_numeric_score_within_range_is_created(world, api, trace):
    response = api.post(URL, {"trace_id": trace.trace_id, "name": "helpfulness", "value": 4}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["value"] == 4.0 and body["data_type"] == "numeric" and body["source"] == "api"
    score = Score.objects.get(pk=body["id"])
    assert score.config == config(world.project, "helpfulness")
    assert score.project == world.project


def test_out_of_range_value_is_400_naming_range(api, trace):
    error = error_of(api.post(URL, {"trace_id": trace.trace_id, "name": "helpfulness", "value": 7}, format="json"), 400)

    assert "7 is outside 'helpfulness'" in error["message"]
    assert "1–5" in error["message"]
    assert error["detail"]["value"] == "out_of_range"
    assert not Score.objects.exists()


def test_unknown_category_is_400_listing_categories(api, trace):
    error = error_of(api.post(URL, {"trace_id": trace.trace_id, "name": "preferred", "value": "C"}, format="json"), 400)

    assert "'C' is not a category of 'preferred'" in error["message"]
    assert "A, B, tie" in error["message"]


@pytest.mark.parametrize(("raw", "stored"), [(True, 1.0), (False, 0.0), ("down", 0.0), ("yes", 1.0), (1, 1.0)])
def test_boolean_values_are_normalized(api, trace, raw, stored):
    response = api.post(URL, {"trace_id": trace.trace_id, "name": "safety", "value": raw}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["value"] == stored


def test_boolean_config_rejects_a_number_other_than_0_or_1(api, trace):
    error = error_of(api.post(URL, {"trace_id": trace.trace_id, "name": "safety", "value": 3}, format="json"), 400)
    assert "not a boolean" in error["message"]


def test_numeric_config_rejects_a_string(api, trace):
    error = error_of(
        api.post(URL, {"trace_id": trace.trace_id, "name": "relevance", "value": "high"}, format="json"), 400
    )
    assert "'high' is not a number" in error["message"]


def test_data_type_mismatch_with_config_is_400(api, trace):
    body = {"trace_id": trace.trace_id, "name": "relevance", "value": 3, "data_type": "boolean"}
    error = error_of(api.post(URL, body, format="json"), 400)
    assert "'relevance' is numeric, not boolean" in error["message"]


def test_score_without_config_takes_type_of_value(api, trace):
    numeric = api.post(URL, {"trace_id": trace.trace_id, "name": "hallucination", "value": 0.82}, format="json").json()
    label = api.post(URL, {"trace_id": trace.trace_id, "name": "topic", "value": "billing"}, format="json").json()

    assert (numeric["data_type"], numeric["value"]) == ("numeric", 0.82)
    assert (label["data_type"], label["string_value"]) == ("categorical", "billing")


def test_archived_config_takes_no_new_scores_but_old_ones_stay_readable(world, api, trace):
    created = api.post(URL, {"trace_id": trace.trace_id, "name": "relevance", "value": 2}, format="json")
    score_config_set_archived(project=world.project, config_id=config(world.project, "relevance").pk, archived=True)

    error = error_of(api.post(URL, {"trace_id": trace.trace_id, "name": "relevance", "value": 3}, format="json"), 400)

    assert "archived" in error["message"]
    listed = api.get(URL, {"name": "relevance"}).json()["data"]
    assert [s["id"] for s in listed] == [created.json()["id"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"trace_id": "xyz", "name": "helpfulness", "value": 3}, "trace_id"),
        ({"trace_id": "a" * 32, "span_id": "nothex", "name": "helpfulness", "value": 3}, "span_id"),
        ({"trace_id": "a" * 32, "value": 3}, "name"),
        ({"trace_id": "a" * 32, "name": "x", "value": [1, 2]}, "value"),
        ({"trace_id": "a" * 32, "name": "x", "value": 1, "source": "bogus"}, "source"),
    ],
)
def test_malformed_body_is_400_naming_field(api, body, field):
    error = error_of(api.post(URL, body, format="json"), 400)
    assert field in error["message"]


def test_trace_id_is_stored_lowercase(api):
    response = api.post(URL, {"trace_id": "AB" * 16, "name": "helpfulness", "value": 5}, format="json")
    assert response.json()["trace_id"] == "ab" * 16


# --- idempotency ---------------------------------------------------------------------------


def test_same_client_id_updates_instead_of_duplicating(api, trace):
    score_id = str(uuid.uuid4())
    first = api.post(
        URL, {"id": score_id, "trace_id": trace.trace_id, "name": "helpfulness", "value": 2}, format="json"
    )
    again = api.post(
        URL,
        {"id": score_id, "trace_id": trace.trace_id, "name": "helpfulness", "value": 5, "comment": "fixed"},
        format="json",
    )

    assert (first.status_code, again.status_code) == (201, 200)
    assert Score.objects.count() == 1
    score = Score.objects.get()
    assert (str(score.id), score.value, score.comment) == (score_id, 5.0, "fixed")


def test_retrying_the_identical_request_is_harmless(api, trace):
    body = {"id": str(uuid.uuid4()), "trace_id": trace.trace_id, "name": "relevance", "value": 4}
    for _ in range(3):
        api.post(URL, body, format="json")
    assert Score.objects.count() == 1


def test_client_id_of_another_projects_score_is_409(world, api, trace):
    other = ingest_trace(world.other_project)
    taken = score_upsert(project=world.other_project, trace_id=other.trace_id, name="x", value=1, source=Source.API)

    body = {"id": str(taken.score.id), "trace_id": trace.trace_id, "name": "x", "value": 2}
    error = error_of(api.post(URL, body, format="json"), 409)

    assert "already belongs" in error["message"]
    taken.score.refresh_from_db()
    assert taken.score.value == 1.0


def test_session_annotation_is_one_per_reviewer_and_config(world, trace):
    client = session_client(world.reviewer)
    url = f"{URL}?project={world.project.slug}"

    first = client.post(url, {"trace_id": trace.trace_id, "name": "helpfulness", "value": 2}, format="json")
    second = client.post(url, {"trace_id": trace.trace_id, "name": "helpfulness", "value": 4}, format="json")

    assert (first.status_code, second.status_code) == (201, 200)
    score = Score.objects.get()
    assert (score.source, score.author, score.value) == (Source.ANNOTATION, world.reviewer, 4.0)
    assert second.json()["author"] == "reviewer"


def test_span_annotation_is_separate_from_trace_annotation(world, trace):
    span_id = trace.root_span_id
    client = session_client(world.reviewer)
    url = f"{URL}?project={world.project.slug}"

    client.post(url, {"trace_id": trace.trace_id, "name": "relevance", "value": 2}, format="json")
    client.post(url, {"trace_id": trace.trace_id, "span_id": span_id, "name": "relevance", "value": 5}, format="json")

    assert sorted((s.span_id or "", s.value) for s in Score.objects.all()) == [("", 2.0), (span_id, 5.0)]


def test_api_key_cannot_write_annotations(api, trace):
    body = {"trace_id": trace.trace_id, "name": "helpfulness", "value": 3, "source": "annotation"}
    error = error_of(api.post(URL, body, format="json"), 400)
    assert "annotations need a reviewer" in error["message"]


def test_api_key_may_write_evaluator_scores(api, trace):
    body = {"trace_id": trace.trace_id, "name": "hallucination", "value": 0.7, "source": "evaluator"}
    assert api.post(URL, body, format="json").json()["source"] == "evaluator"


# --- keys and roles --------------------------------------------------------------------------


def test_public_key_is_rejected_by_the_secret_key_endpoint(world, trace):
    client = key_client(world.key.public_key)

    post = client.post(URL, {"trace_id": trace.trace_id, "name": "helpfulness", "value": 3}, format="json")
    get = client.get(URL)

    assert post.status_code == 401 and get.status_code == 401
    assert not Score.objects.exists()


def test_no_credentials_is_401(db):
    assert APIClient().get(URL).status_code == 401


@pytest.mark.parametrize(
    ("who", "status"), [("owner", 201), ("member", 201), ("reviewer", 201), ("viewer", 403), ("outsider", 404)]
)
def test_role_matrix_for_creating_scores(world, trace, who, status):
    client = session_client(getattr(world, who))

    response = client.post(
        f"{URL}?project={world.project.slug}",
        {"trace_id": trace.trace_id, "name": "helpfulness", "value": 3},
        format="json",
    )

    assert response.status_code == status, response.content


@pytest.mark.parametrize("who", ROLE_USERS)
def test_role_matrix_for_listing_scores(world, trace, who):
    score_upsert(project=world.project, trace_id=trace.trace_id, name="helpfulness", value=3, source=Source.API)
    client = session_client(getattr(world, who))

    response = client.get(URL, {"project": world.project.slug})

    if who == "outsider":
        assert response.status_code == 404
    else:
        assert response.status_code == 200
        assert len(response.json()["data"]) == 1


def test_listing_with_a_key_never_shows_another_projects_scores(world, api):
    other = ingest_trace(world.other_project)
    score_upsert(project=world.other_project, trace_id=other.trace_id, name="x", value=1, source=Source.API)

    assert api.get(URL).json()["data"] == []


# --- listing, filters, pagination ------------------------------------------------------------


@pytest.fixture
def many_scores(world, trace):
    second = ingest_trace(world.project)
    rows = []
    for i in range(7):
        rows.append(
            score_upsert(
                project=world.project,
                trace_id=trace.trace_id if i % 2 else second.trace_id,
                name="helpfulness" if i < 4 else "hallucination",
                value=(i % 5) + 1 if i < 4 else 0.5,
                source=Source.API if i < 4 else Source.EVALUATOR,
            ).score
        )
    score_upsert(
        project=world.project,
        trace_id=trace.trace_id,
        name="relevance",
        value=5,
        source=Source.ANNOTATION,
        author=world.reviewer,
    )
    return {"trace": trace, "second": second, "rows": rows}


def test_filters_by_trace_name_source_and_author(api, many_scores):
    trace = many_scores["trace"]

    by_trace = api.get(URL, {"trace_id": trace.trace_id}).json()["data"]
    by_name = api.get(URL, {"name": "hallucination"}).json()["data"]
    by_source = api.get(URL, {"source": "evaluator"}).json()["data"]
    by_author = api.get(URL, {"author": "reviewer"}).json()["data"]

    assert {s["trace_id"] for s in by_trace} == {trace.trace_id} and len(by_trace) == 4
    assert len(by_name) == 3 and {s["name"] for s in by_name} == {"hallucination"}
    assert len(by_source) == 3
    assert [s["name"] for s in by_author] == ["relevance"]


def test_time_filters(api, many_scores):
    future = (timezone.now() + timedelta(hours=1)).isoformat()
    past = (timezone.now() - timedelta(hours=1)).isoformat()

    assert api.get(URL, {"from": future}).json()["data"] == []
    assert len(api.get(URL, {"from": past, "to": future}).json()["data"]) == 8


def test_keyset_pagination_visits_every_score_once_newest_first(api, many_scores):
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = api.get(URL, params).json()
        seen += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert len(seen) == 8 and len({s["id"] for s in seen}) == 8
    stamps = [s["created_at"] for s in seen]
    assert stamps == sorted(stamps, reverse=True)


@pytest.mark.parametrize(
    ("params", "field"),
    [({"bogus": "1"}, "bogus"), ({"cursor": "nope"}, "cursor"), ({"limit": 0}, "limit"), ({"source": "x"}, "source")],
)
def test_bad_list_parameters_are_400(api, params, field):
    error = error_of(api.get(URL, params), 400)
    assert field in error["message"]


def test_list_is_bounded_in_queries(api, many_scores, django_assert_max_num_queries):
    api.get(URL)  # warm: key last_used_at
    with django_assert_max_num_queries(2):  # key lookup + scores joined with authors
        assert len(api.get(URL).json()["data"]) == 8


# --- the trace API embeds scores -------------------------------------------------------------


def test_trace_detail_returns_real_scores_with_source_and_author(world, api, trace):
    score_upsert(
        project=world.project, trace_id=trace.trace_id, name="user_thumbs", value=False, source=Source.END_USER
    )
    score_upsert(
        project=world.project,
        trace_id=trace.trace_id,
        name="helpfulness",
        value=2,
        source=Source.ANNOTATION,
        author=world.reviewer,
        comment="misses the question",
    )

    scores = api.get(f"/api/v1/traces/{trace.trace_id}").json()["scores"]

    assert [(s["name"], s["source"], s["author"]) for s in scores] == [
        ("user_thumbs", "end_user", None),
        ("helpfulness", "annotation", "reviewer"),
    ]
    assert scores[0]["data_type"] == DataType.BOOLEAN and scores[0]["value"] == 0.0
    assert scores[1]["comment"] == "misses the question"
