"""Experiment evaluators on hand-made outputs, and the validation of their specs."""

from __future__ import annotations

import pytest

from config.errors import ValidationFailed
from experiments.evaluators import ItemOutput, evaluate, specs_validate


def scores(specs, *items):
    return [s for s, _ in evaluate(specs_validate(specs), list(items))]


def test_exact_match_ignores_surrounding_whitespace_and_skips_items_without_expected_output():
    got = scores(["exact_match"], ItemOutput(" Paris\n", "Paris"), ItemOutput("paris", "Paris"),
                 ItemOutput("x", None), ItemOutput(None, "Paris"))
    assert got == [{"exact_match": 1.0}, {"exact_match": 0.0}, {}, {}]


def test_regex_and_json_checks():
    specs = [{"name": "regex", "pattern": r"^\{"}, "json_valid",
             {"name": "json_schema", "schema": {"type": "object", "required": ["answer"]}}]
    got = scores(specs, ItemOutput('{"answer": 1}', None), ItemOutput('{"other": 1}', None),
                 ItemOutput("not json", None))
    assert got == [
        {"regex": 1.0, "json_valid": 1.0, "json_schema": 1.0},
        {"regex": 1.0, "json_valid": 1.0, "json_schema": 0.0},
        {"regex": 0.0, "json_valid": 0.0, "json_schema": 0.0},
    ]


def test_pii_flags_an_email():
    got = evaluate(specs_validate(["pii"]), [ItemOutput("write to ada@example.com", None), ItemOutput("hi", None)])
    assert got[0] == ({"pii": 1.0}, {"pii": {"email": 1}}) and got[1][0] == {"pii": 0.0}


def test_embedding_similarity_is_high_for_paraphrases_and_low_for_unrelated_text():
    got = scores(["embedding_similarity"], ItemOutput("The capital of France is Paris.", "Paris is France's capital."),
                 ItemOutput("I like turtles.", "Paris is France's capital."),
                 ItemOutput("same", "same"))
    assert got[0]["embedding_similarity"] > 0.8 > 0.3 > got[1]["embedding_similarity"]
    assert got[2]["embedding_similarity"] == pytest.approx(1.0, abs=1e-3)


def test_toxicity_and_groundedness_use_the_offline_scorers():
    got = scores(["toxicity", "groundedness"],
                 ItemOutput("You are a stupid idiot.", None, ["The refund window is 30 days."]),
                 ItemOutput("Refunds are accepted within 30 days.", None, ["The refund window is 30 days."]),
                 ItemOutput("Thanks!", None, []))
    assert got[0]["toxicity"] > 0.5 > got[1]["toxicity"]
    assert "groundedness" in got[1] and "groundedness" not in got[2]  # no context: no score


@pytest.mark.parametrize("raw, field", [
    ("exact_match", "evaluators"),
    (["nope"], "evaluators[0]"),
    ([{"name": "regex"}], "evaluators[0].pattern"),
    ([{"name": "regex", "pattern": "("}], "evaluators[0].pattern"),
    ([{"name": "json_schema", "schema": {"type": 5}}], "evaluators[0].schema"),
    (["exact_match", "exact_match"], "evaluators[1]"),
])
def test_bad_specs_name_the_entry(raw, field):
    with pytest.raises(ValidationFailed) as caught:
        specs_validate(raw)
    assert caught.value.message.startswith(field + ":")
