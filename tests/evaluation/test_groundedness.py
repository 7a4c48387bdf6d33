"""Groundedness: alignment-local checks on hand-made subtle edits (no database)."""

from __future__ import annotations

import pytest

from evaluation import embeddings
from evaluation.evaluators.groundedness import ALL_FEATURES, groundedness, grounding_features, sentences

EMAIL = [
    "Hi Dana, thanks for the call on Tuesday. Acme will ship 40 units to the Berlin office next week. "
    "The invoice of 1,200 dollars is due at the end of May. We do not offer refunds after 30 days. "
    "Maria Lopez from our team will handle the installation."
]
FAITHFUL = "Acme will ship 40 units to the Berlin office next week."


@pytest.fixture
def model_inputs(monkeypatch):
    """Every text that reaches MiniLM, starting from empty caches."""
    model = embeddings._load()
    real, seen = model.encode, []
    monkeypatch.setattr(model, "encode", lambda texts, **kw: seen.extend(texts) or real(texts, **kw))
    embeddings.cache_clear()
    yield seen
    embeddings.cache_clear()


def feature(answer: str, name: str, context: list[str] = EMAIL) -> float:
    found = grounding_features(answer, context)
    assert found is not None
    return float(found[0][ALL_FEATURES.index(name)])


def test_number_swapped_with_one_from_elsewhere_in_the_context_is_caught():
    swapped = "Acme will ship 30 units to the Berlin office next week."
    assert feature(FAITHFUL, "swapped_numbers") == 0
    assert feature(swapped, "swapped_numbers") == 1
    result = groundedness(swapped, EMAIL)
    assert result["score"] > groundedness(FAITHFUL, EMAIL)["score"]
    [flagged] = result["unsupported"]
    assert flagged["passage"].startswith("Acme will ship 40 units")
    assert flagged["reasons"][0].startswith("number 30 is not in the matching passage, which has a different one")


def test_negation_flip_is_caught():
    flipped = "Acme offers refunds after 30 days."
    assert feature("We do not offer refunds after 30 days.", "negation_dropped") == 0
    assert feature(flipped, "negation_dropped") == 1
    assert feature("Maria Lopez will not handle the installation.", "negation_added") == 1
    faithful = groundedness("Refunds are not offered after 30 days.", EMAIL)
    assert groundedness(flipped, EMAIL)["score"] > faithful["score"]


def test_entity_swapped_with_one_from_elsewhere_is_caught():
    swapped = "Dana Lopez from our team will handle the installation."
    assert feature("Maria Lopez from our team will handle the installation.", "swapped_names") == 0
    assert feature(swapped, "swapped_names") == 1
    result = groundedness(swapped, EMAIL)
    assert result["score"] >= result["threshold"]
    assert result["score"] > groundedness("Maria Lopez from our team will handle the installation.", EMAIL)["score"]
    assert "'Dana' is not in the matching passage" in result["unsupported"][0]["reasons"][0]


def test_name_the_context_never_mentions_is_flagged():
    result = groundedness("Acme will ship 40 units to the Munich office next week.", EMAIL)
    assert result["score"] >= result["threshold"]
    assert "'Munich' appears nowhere in the context" in result["unsupported"][0]["reasons"]


def test_flipped_direction_word_is_caught():
    assert feature("The invoice of 1,200 dollars is due at the start of May.", "cue_mismatch") == 0  # not a cue
    assert feature("Acme will ship fewer units to the Berlin office next week.", "cue_mismatch") == 1


def test_sentence_merging_two_passages_is_not_a_swap():
    merged = "Acme is shipping 40 units to its Berlin office next week, and Maria Lopez will install them."
    assert feature(merged, "swapped_names") == 0
    assert feature(merged, "swapped_numbers") == 0


def test_faithful_paraphrase_is_not_flagged():
    paraphrase = "Acme is shipping 40 units to its Berlin office next week."
    result = groundedness(paraphrase, EMAIL)
    assert result["score"] < result["threshold"]
    assert result["unsupported"] == []


def test_non_english_swap_scores_higher_than_the_faithful_sentence():
    context = ["La tour Eiffel se trouve à Paris et mesure 330 mètres. Elle a été achevée en 1889."]
    swapped = "La tour Eiffel se trouve à Paris et mesure 1889 mètres."
    assert groundedness(swapped, context)["score"] > groundedness(
        "La tour Eiffel se trouve à Paris et mesure 330 mètres.", context)["score"]
    assert feature(swapped, "swapped_numbers", context) == 1


def test_empty_or_blank_input_gives_no_score():
    assert groundedness("", EMAIL) is None
    assert groundedness("   ", EMAIL) is None
    assert groundedness(FAITHFUL, []) is None
    assert groundedness(FAITHFUL, ["", "  \n"]) is None
    assert grounding_features("...", EMAIL) is not None  # punctuation only still gets a score


def test_only_sentences_reach_the_model_each_once(model_inputs):
    answer = "Acme will ship 40 units next week. Maria Lopez will install them."
    embeddings.embed_texts([answer])  # the runner embeds the output before scoring it
    model_inputs.clear()
    groundedness(answer, EMAIL)
    # No pair, whole-context or second word-piece pass: pairs and the context's centroid
    # are derived from the sentences' vectors.
    expected = [s for text in [answer, *EMAIL] for _, _, s in sentences(text)]
    assert sorted(model_inputs) == sorted(expected)
