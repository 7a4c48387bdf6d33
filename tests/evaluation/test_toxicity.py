"""The toxicity scorer on hand-made cases (no database)."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.embeddings import embed_texts
from evaluation.evaluators import toxicity
from evaluation.evaluators.toxicity import clean, threshold, toxicity_scores

POLITE = "Thanks, that was very helpful!"


def scores_with_vectors(texts: list[str]) -> np.ndarray:
    return toxicity_scores(texts, embed_texts(texts))


@pytest.mark.parametrize("insult", [
    "You're so pathetic, nobody will ever love you",
    "shut up you stupid moron",
    "You are a worthless idiot and I hate you",
])
def test_insult_without_swear_words_is_flagged_and_polite_text_is_not(insult):
    scores = scores_with_vectors([insult, POLITE])
    assert scores[0] >= threshold() > scores[1]


def test_threat_scores_above_the_same_sentence_made_friendly():
    threat, friendly = scores_with_vectors(["I will find where you live and hurt you",
                                            "I will find where you live and bring you a cake"])
    assert threat > friendly


def test_casual_friendly_swearing_scores_below_an_insult():
    casual, insult = scores_with_vectors(["damn, that game last night was crazy lol",
                                          "You are a worthless idiot and I hate you"])
    assert casual < insult


@pytest.mark.parametrize("text", ["Merci beaucoup pour votre aide", "¿Dónde está mi pedido?",
                                  "Das ist ein sehr gutes Produkt, danke!", "日本語のテキストです"])
def test_polite_non_english_text_is_not_flagged(text):
    assert scores_with_vectors([text])[0] < threshold()
    assert toxicity_scores([text])[0] < threshold()


def test_empty_texts_score_zero_with_and_without_vectors():
    texts = ["", "   ", POLITE]
    for scores in (toxicity_scores(texts), toxicity_scores(texts, embed_texts(texts))):
        assert scores[0] == scores[1] == 0.0
        assert 0 < scores[2] < threshold()
    assert toxicity_scores([]).shape == (0,)


def test_obfuscated_swearing_is_flagged_without_vectors():
    assert toxicity_scores(["sh1t you f4ggot", POLITE])[0] >= threshold()


def test_without_weights_the_profanity_model_alone_decides(monkeypatch):
    texts = ["shut up you stupid moron", POLITE]
    monkeypatch.setattr(toxicity, "head", lambda: {})
    np.testing.assert_allclose(toxicity_scores(texts, embed_texts(texts)), toxicity.profanity_probs(texts))
    assert toxicity.version() == "profanity-only"
    assert toxicity.threshold() == toxicity.FALLBACK_THRESHOLD


def test_scores_are_probabilities_and_batch_order_is_kept():
    texts = [POLITE, "You are a worthless idiot and I hate you", "What is the refund policy?"]
    scores = scores_with_vectors(texts)
    assert np.all((scores >= 0) & (scores <= 1))
    np.testing.assert_allclose(scores[::-1], scores_with_vectors(texts[::-1]))


def test_clean_strips_tweet_artefacts_but_keeps_the_words():
    assert clean("RT @someone: sooo #NotFunny &amp;#128514; http://t.co/x") == "soo Not Funny 😂"
    assert clean("sh1t mp3 1st") == "shit mp3 1st"
