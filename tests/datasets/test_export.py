"""Exports: every format parsed back, the filters and what each removed, slice balance."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter

import pytest

from config.errors import ValidationFailed
from datasets import services
from datasets.export import balance_cap
from scores.services import score_upsert
from tests.helpers import ingest_trace


def _export(api, name="golden", **params):
    response = api.get(f"/api/v1/datasets/{name}/export", params)
    assert response.status_code == 200, response.content if not response.streaming else response.status_code
    body = b"".join(response.streaming_content).decode()
    return body, json.loads(response["X-Spyglass-Export"])


def _dataset(world, items):
    dataset = services.dataset_create(project=world.project, name="golden")
    services.items_add(dataset=dataset, items=items, change={})
    return dataset


def test_openai_jsonl_parses_back_and_skips_items_without_an_answer(world, api):
    _dataset(world, [
        services.ItemIn("Where is my order?", "It ships today."),
        services.ItemIn([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], "Hello!"),
        services.ItemIn("No answer yet"),
    ])
    body, counts = _export(api, format="openai_jsonl")
    lines = [json.loads(line) for line in body.splitlines()]
    assert lines == [
        {"messages": [{"role": "user", "content": "Where is my order?"},
                      {"role": "assistant", "content": "It ships today."}]},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "Hello!"}]},
    ]
    assert counts == {"version": 1, "total": 3, "removed": {"no_expected_output": 1}, "exported": 2}


def test_csv_parses_back_and_reimports_to_the_same_items(world, api):
    _dataset(world, [services.ItemIn('Comma, "quotes"\nand a newline', "ok", {"plan": "pro"}),
                     services.ItemIn([{"role": "user", "content": "Hi"}])])
    body, _ = _export(api, format="csv")
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [r["input"] for r in rows] == ['Comma, "quotes"\nand a newline', '[{"role":"user","content":"Hi"}]']
    assert json.loads(rows[0]["metadata"]) == {"plan": "pro"} and rows[1]["expected_output"] == ""
    items = services.upload_parse(data=body.encode(), fmt="csv", mapping=services.ColumnMapping())
    assert [i.input for i in items] == ['Comma, "quotes"\nand a newline', [{"role": "user", "content": "Hi"}]]


def _rated(world, text, answer, thumbs=None, hallucination=None, plan="pro"):
    trace = ingest_trace(world.project, input=text, output=answer, attributes={"metadata": json.dumps({"plan": plan})})
    if thumbs is not None:
        score_upsert(project=world.project, trace_id=trace.trace_id, name="user_thumbs", value=thumbs,
                     source="end_user")
    if hallucination is not None:
        score_upsert(project=world.project, trace_id=trace.trace_id, name="hallucination", value=hallucination,
                     source="evaluator")
    return trace


def test_filters_say_what_each_removed(world, api):
    traces = [
        _rated(world, "a", "A", thumbs=True),
        _rated(world, "b", "B", thumbs=True, hallucination=0.9),
        _rated(world, "c", "C", thumbs=False),
        _rated(world, "d", "D"),
        _rated(world, "e", "E", thumbs=True, plan="free"),
    ]
    dataset = services.dataset_create(project=world.project, name="golden")
    services.items_add_traces(dataset=dataset, trace_ids=[t.trace_id for t in traces])
    body, counts = _export(api, format="openai_jsonl", thumbs_up="true", no_flags="true", slice="plan=pro")
    assert [json.loads(line)["messages"][0]["content"] for line in body.splitlines()] == ["a"]
    assert counts["removed"] == {"slice": 1, "thumbs_up": 2, "no_flags": 1, "no_expected_output": 0}
    assert counts["exported"] == 1


def test_preference_pairs_from_thumbs_up_and_down_on_the_same_input(world, api):
    up = _rated(world, "How do I reset my password?", "Use the reset link.", thumbs=True)
    _rated(world, "How do I reset my password?", "I cannot help.", thumbs=False)
    lonely = _rated(world, "Only liked", "Yes", thumbs=True)
    dataset = services.dataset_create(project=world.project, name="golden")
    services.items_add_traces(dataset=dataset, trace_ids=[up.trace_id, lonely.trace_id])
    body, counts = _export(api, format="preference_jsonl")
    assert [json.loads(line) for line in body.splitlines()] == [{
        "prompt": [{"role": "user", "content": "How do I reset my password?"}],
        "chosen": [{"role": "assistant", "content": "Use the reset link."}],
        "rejected": [{"role": "assistant", "content": "I cannot help."}],
    }]
    assert counts["exported"] == 1 and counts["removed"]["no_pair"] == 1


def test_slice_balanced_sampling_caps_the_dominant_slice(world, api):
    items = [services.ItemIn(f"q{i}", "a", {"user": "big" if i < 80 else ("mid" if i < 95 else "small")})
             for i in range(100)]
    _dataset(world, items)
    body, counts = _export(api, format="openai_jsonl", balance_by="user", max_share="0.5")
    assert counts["exported"] == len(body.splitlines())
    # cap c: c <= 0.5 * (c + 15 + 5) -> c = 20; 20 + 15 + 5 = 40 lines, "big" is exactly half.
    exported = {json.loads(line)["messages"][0]["content"] for line in body.splitlines()}
    by_user = Counter(i.metadata["user"] for i in items if i.input in exported)
    assert by_user == {"big": 20, "mid": 15, "small": 5}
    assert counts["removed"]["balance"] == 60
    again, _ = _export(api, format="openai_jsonl", balance_by="user", max_share="0.5")
    assert again == body  # deterministic


def test_balance_cap():
    assert balance_cap([80, 15, 5], 0.5) == 20
    assert balance_cap([10, 10], 0.5) is None
    assert balance_cap([100, 1, 1], 0.4) == 1
    with pytest.raises(ValidationFailed):
        balance_cap([5, 5, 5], 0.3)
    for sizes, share in (([50, 30, 20, 3], 0.35), ([7, 7, 1], 0.45), ([1000, 2, 2, 2, 2], 0.25)):
        cap = balance_cap(sizes, share)
        kept = [min(n, cap) for n in sizes]
        assert max(kept) <= share * sum(kept) + 1e-9
        bigger = [min(n, cap + 1) for n in sizes]
        assert max(bigger) > share * sum(bigger)


def test_split_filter_and_bad_parameters(world, api):
    dataset = _dataset(world, [services.ItemIn(f"q{i}", "a") for i in range(10)])
    services.split_set(dataset=dataset, test_fraction=0.3, seed="x")
    body, counts = _export(api, format="csv", split="test")
    assert counts["exported"] == 3 and {r["split"] for r in csv.DictReader(io.StringIO(body))} == {"test"}
    for params, key in (({"format": "xml"}, "format"), ({"format": "csv", "slice": "nokey"}, "slice"),
                        ({"format": "csv", "balance_by": "u"}, "balance_by"),
                        ({"format": "csv", "colour": "red"}, "colour"),
                        ({"format": "csv", "thumbs_up": "maybe"}, "thumbs_up")):
        response = api.get("/api/v1/datasets/golden/export", params)
        assert response.status_code == 400 and key in response.json()["error"]["detail"], params
    assert api.get("/api/v1/datasets/golden/export", {"format": "csv", "version": 7}).status_code == 404


def test_export_of_an_old_version_is_what_it_was(world, api):
    dataset = _dataset(world, [services.ItemIn("first", "1")])
    services.items_add(dataset=dataset, items=[services.ItemIn("second", "2")], change={})
    body, _ = _export(api, format="openai_jsonl", version=1)
    assert len(body.splitlines()) == 1


def test_upload_reports_the_bad_line_and_adds_nothing(world):
    good = b'{"input": "a", "expected_output": "x"}\n{"question": "b"}\n'
    with pytest.raises(ValidationFailed) as caught:
        services.upload_parse(data=good, fmt="jsonl", mapping=services.ColumnMapping())
    assert caught.value.detail["line"] == 2
    data = b"q,a,plan\nhello,hi,pro\n,empty,free\n"
    with pytest.raises(ValidationFailed) as caught:
        services.upload_parse(data=data, fmt="csv", mapping=services.ColumnMapping("q", "a", ("plan",)))
    assert caught.value.detail["line"] == 3 and "input" in caught.value.message
    items = services.upload_parse(data=b"q,a,plan\nhello,hi,pro\n", fmt="csv",
                                  mapping=services.ColumnMapping("q", "a", ("plan",)))
    assert items == [services.ItemIn("hello", "hi", {"plan": "pro"})]
