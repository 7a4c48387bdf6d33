"""Datasets API: create/list, adding items (items, trace_ids, explorer filter), versions,
roles, errors naming the item and field."""

from __future__ import annotations

import pytest

from datasets import services
from datasets.models import DatasetItem
from tests.helpers import ingest_trace, key_client, session_client
from tests.otlp_payloads import BASE_NS

URL = "/api/v1/datasets"


def _create(api, name="golden"):
    response = api.post(URL, {"name": name}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def _items(api, name="golden", **params):
    response = api.get(f"{URL}/{name}/items", params)
    assert response.status_code == 200, response.content
    return response.json()


def test_create_and_list(world, api):
    body = _create(api, "golden")
    assert body["current_version"] == 0 and body["item_count"] == 0
    listed = api.get(URL).json()["datasets"]
    assert [d["name"] for d in listed] == ["golden"]


def test_duplicate_name_is_409_and_bad_name_is_400(world, api):
    _create(api, "golden")
    assert api.post(URL, {"name": "golden"}, format="json").status_code == 409
    bad = api.post(URL, {"name": "has space"}, format="json")
    assert bad.status_code == 400 and "name" in bad.json()["error"]["message"]


def test_viewer_reads_member_writes(world, api):
    _create(api, "golden")
    viewer, member = session_client(world.viewer), session_client(world.member)
    assert viewer.get(URL).status_code == 200
    assert viewer.post(URL, {"name": "x"}, format="json").status_code == 403
    assert viewer.post(f"{URL}/golden/items", {"items": [{"input": "hi"}]}, format="json").status_code == 403
    assert member.post(f"{URL}/golden/items", {"items": [{"input": "hi"}]}, format="json").status_code == 201


def test_unknown_dataset_is_404_and_other_projects_are_invisible(world, api):
    _create(api, "golden")
    assert api.get(f"{URL}/nope/items").status_code == 404
    other = key_client(world.other_key.secret_key)
    assert other.get(f"{URL}/golden/items").status_code == 404
    assert other.post(f"{URL}/golden/items", {"items": [{"input": "x"}]}, format="json").status_code == 404
    assert other.get(URL).json()["datasets"] == []


def test_items_make_versions_and_old_versions_stay_readable(world, api):
    _create(api)
    first = api.post(f"{URL}/golden/items", {"items": [
        {"input": "What is the refund policy?", "expected_output": "30 days.", "metadata": {"plan": "pro"}},
        {"input": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]},
    ]}, format="json")
    assert first.status_code == 201 and first.json()["version"] == 1 and first.json()["added"] == 2
    second = api.post(f"{URL}/golden/items", {"items": [{"input": "Another"}, {"input": "What is the refund policy?"}]},
                      format="json").json()
    assert second == {"version": 2, "added": 1, "duplicates_skipped": 1, "without_input": 0, "matched": None,
                      "corrected": 0}
    dataset = services.Dataset.objects.get(name="golden")
    victim = DatasetItem.objects.get(dataset=dataset, input="Another")
    services.items_remove(dataset=dataset, item_ids=[victim.pk])
    assert _items(api, version=1)["items"][0]["input"] == "What is the refund policy?"
    assert len(_items(api, version=1)["items"]) == 2
    assert len(_items(api, version=2)["items"]) == 3
    assert len(_items(api)["items"]) == 2  # version 3: "Another" removed
    assert _items(api)["version"] == 3
    assert api.get(f"{URL}/golden/items", {"version": 9}).status_code == 404


def test_invalid_item_is_400_naming_index_and_field_and_adds_nothing(world, api):
    _create(api)
    response = api.post(f"{URL}/golden/items", {"items": [
        {"input": "fine"}, {"input": [{"role": "wizard", "content": "x"}]}]}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert "items[1].input[0].role" in error["detail"]
    assert DatasetItem.objects.count() == 0
    for body, key in (({"items": [{"input": ""}]}, "items[0].input"),
                      ({"items": [{"input": "x", "expected_output": 3}]}, "items[0].expected_output"),
                      ({"items": [{"input": "x", "metadata": []}]}, "items[0].metadata"),
                      ({"items": [{"input": "x", "colour": "red"}]}, "items[0].colour")):
        response = api.post(f"{URL}/golden/items", body, format="json")
        assert response.status_code == 400 and key in response.json()["error"]["detail"], (body, response.content)
    assert api.post(f"{URL}/golden/items", {"items": [{"input": "x"}], "trace_ids": []},
                    format="json").status_code == 400


def test_add_traces_by_id(world, api):
    _create(api)
    trace = ingest_trace(world.project, input="Where is my parcel?", output="On its way.",
                         attributes={"metadata": '{"plan": "pro"}'})
    response = api.post(f"{URL}/golden/items", {"trace_ids": [trace.trace_id]}, format="json")
    assert response.status_code == 201
    (item,) = _items(api)["items"]
    assert item["input"] == "Where is my parcel?" and item["expected_output"] == "On its way."
    assert item["metadata"] == {"plan": "pro"} and item["source_trace_id"] == trace.trace_id
    missing = api.post(f"{URL}/golden/items", {"trace_ids": [trace.trace_id, "ab" * 16]}, format="json")
    assert missing.status_code == 400 and "trace_ids[1]" in missing.json()["error"]["detail"]
    other = ingest_trace(world.other_project)
    assert api.post(f"{URL}/golden/items", {"trace_ids": [other.trace_id]}, format="json").status_code == 400


def test_add_from_the_explorer_filter_with_preview_cap_and_duplicates(world, api):
    _create(api)
    for i in range(5):
        ingest_trace(world.project, input=f"pro question {i}", start_ns=BASE_NS + i * 10**9,
                     attributes={"metadata": '{"plan": "pro"}'})
    ingest_trace(world.project, input="pro question 0", start_ns=BASE_NS + 9 * 10**9,
                 attributes={"metadata": '{"plan": "pro"}'})  # same input again
    ingest_trace(world.project, input="free question", attributes={"metadata": '{"plan": "free"}'})
    flt = {"metadata.plan": "pro"}
    preview = api.post(f"{URL}/golden/items", {"filter": flt, "preview": True}, format="json").json()
    assert preview["matched"] == 6 and preview["added"] == 0 and DatasetItem.objects.count() == 0
    capped = api.post(f"{URL}/golden/items", {"filter": flt, "limit": 3}, format="json").json()
    assert capped["added"] == 3 and capped["matched"] == 6
    rest = api.post(f"{URL}/golden/items", {"filter": flt}, format="json").json()
    # 6 matches: 3 already in, and "pro question 0" twice -> 2 new.
    assert rest["added"] == 2 and rest["duplicates_skipped"] == 4
    inputs = sorted(i["input"] for i in _items(api)["items"])
    assert inputs == [f"pro question {i}" for i in range(5)]
    bad = api.post(f"{URL}/golden/items", {"filter": {"metadata.plan": "pro", "colour": "red"}}, format="json")
    assert bad.status_code == 400 and "colour" in bad.json()["error"]["detail"]
    assert api.post(f"{URL}/golden/items", {"filter": flt, "limit": 0}, format="json").status_code == 400


def test_filter_uses_the_explorer_language_for_scores(world, api):
    from scores.services import score_upsert

    _create(api)
    liked = ingest_trace(world.project, input="liked")
    ingest_trace(world.project, input="not rated")
    score_upsert(project=world.project, trace_id=liked.trace_id, name="user_thumbs", value=True, source="end_user")
    api.post(f"{URL}/golden/items", {"filter": {"score": ["user_thumbs=1"]}}, format="json")
    assert [i["input"] for i in _items(api)["items"]] == ["liked"]


@pytest.mark.parametrize("stratify", [None, "plan"])
def test_split_is_stable_and_stratified(world, api, stratify):
    dataset = services.dataset_create(project=world.project, name="golden")
    items = [services.ItemIn(f"q{i}", metadata={"plan": "pro" if i < 40 else "free"}) for i in range(50)]
    services.items_add(dataset=dataset, items=items, change={"kind": "items"})
    services.split_set(dataset=dataset, test_fraction=0.2, stratify_by=stratify, seed="s1")
    page = _items(api, limit=1000)["items"]
    test = [i for i in page if i["split"] == "test"]
    assert len(test) == 10
    if stratify:
        assert sum(i["metadata"]["plan"] == "pro" for i in test) == 8
    assert [i["id"] for i in _items(api, split="test", limit=1000)["items"]] == [i["id"] for i in test]
    # Version 1 has no split; the split version is 2, and reading it again gives the same split.
    assert all(i["split"] is None for i in _items(api, version=1, limit=1000)["items"])
    assert [i["id"] for i in _items(api, version=2, split="test", limit=1000)["items"]] == [i["id"] for i in test]


def test_items_pages_by_cursor(world, api):
    dataset = services.dataset_create(project=world.project, name="golden")
    services.items_add(dataset=dataset, items=[services.ItemIn(f"q{i}") for i in range(5)], change={})
    first = _items(api, limit=2)
    second = _items(api, limit=2, cursor=first["next_cursor"])
    third = _items(api, limit=2, cursor=second["next_cursor"])
    assert [i["input"] for i in first["items"] + second["items"] + third["items"]] == [f"q{i}" for i in range(5)]
    assert third["next_cursor"] is None


def test_schema_documents_the_endpoints(world, api):
    schema = api.get("/api/v1/schema/", {"format": "json"}).json()
    for path in ("/api/v1/datasets", "/api/v1/datasets/{dataset_name}/items", "/api/v1/datasets/{dataset_name}/export"):
        assert path in schema["paths"], path


def test_list_and_items_take_a_fixed_number_of_queries(world, api, django_assert_max_num_queries):
    for n in range(5):
        dataset = services.dataset_create(project=world.project, name=f"set-{n}")
        services.items_add(dataset=dataset, items=[services.ItemIn(f"q{i}") for i in range(20)], change={})
    services.split_set(dataset=dataset, test_fraction=0.5, seed="s")
    with django_assert_max_num_queries(4):  # key, its last-used stamp, datasets with counts
        assert len(api.get(URL).json()["datasets"]) == 5
    with django_assert_max_num_queries(6):  # key, stamp, dataset, version (split), items
        assert len(api.get(f"{URL}/set-4/items", {"limit": 100}).json()["items"]) == 20
