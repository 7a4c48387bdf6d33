"""The embedding cache: repeated texts skip the model, results equal the model's."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation import embeddings


@pytest.fixture
def counted(monkeypatch):
    """The real model, with every text it is asked to encode recorded."""
    model = embeddings._load()
    seen: list[str] = []
    real = model.encode

    def encode(texts, **kwargs):
        seen.extend(texts)
        return real(texts, **kwargs)

    monkeypatch.setattr(model, "encode", encode)
    embeddings.cache_clear()
    yield seen
    embeddings.cache_clear()


def test_repeated_texts_are_encoded_once_and_match_the_model(counted):
    texts = ["Refunds within 30 days.", "Où est ma commande ?", "Refunds within 30 days.", ""]
    first = embeddings.embed_texts(texts)
    assert sorted(counted) == sorted(["Refunds within 30 days.", "Où est ma commande ?", ""])
    np.testing.assert_array_equal(first[0], first[2])
    again = embeddings.embed_texts(["Où est ma commande ?", "A new one"])
    assert counted[3:] == ["A new one"]  # only the unseen text reached the model
    np.testing.assert_array_equal(again[0], first[1])
    embeddings.cache_clear()
    fresh = embeddings.embed_texts(texts)
    np.testing.assert_allclose(fresh, first, atol=1e-5)
    assert np.allclose(np.linalg.norm(fresh, axis=1), 1, atol=1e-5)


def test_callers_cannot_corrupt_cached_vectors(counted):
    vectors = embeddings.embed_texts(["stable text"])
    vectors[0] = 0  # the caller's array is its own copy
    assert np.linalg.norm(embeddings.embed_texts(["stable text"])[0]) == pytest.approx(1, abs=1e-5)


def test_cache_is_bounded_least_recently_used_first(counted, monkeypatch):
    monkeypatch.setattr(embeddings, "CACHE_SIZE", 2)
    embeddings.embed_texts(["a", "b"])
    embeddings.embed_texts(["a"])  # "a" is now the most recent
    embeddings.embed_texts(["c"])  # evicts "b"
    assert len(embeddings._cache) == 2
    embeddings.embed_texts(["a", "b"])
    assert counted == ["a", "b", "c", "b"]


def test_embed_with_tokens_agrees_with_embed_texts_and_caches_both(counted):
    texts = ["The refund settles in 5 days.", "Der Tarif verlängert sich jährlich."]
    vectors, tokens = embeddings.embed_with_tokens(texts)
    np.testing.assert_allclose(vectors, embeddings.embed_texts(texts), atol=1e-5)
    assert sorted(counted) == sorted(texts)  # embed_texts above was served from the cache
    for pieces in tokens:
        assert pieces.ndim == 2 and pieces.shape[1] == embeddings.DIMENSIONS and len(pieces) >= 5
        np.testing.assert_allclose(np.linalg.norm(pieces, axis=1), 1, atol=1e-2)
    again_vectors, again_tokens = embeddings.embed_with_tokens(texts[::-1])
    assert sorted(counted) == sorted(texts)  # both kinds of vector came from the caches
    np.testing.assert_array_equal(again_vectors[1], vectors[0])
    np.testing.assert_allclose(again_tokens[1], tokens[0], atol=1e-2)  # float16 in the cache


def test_batches_group_texts_of_similar_length_and_cover_each_once():
    texts = ["x" * 900] + [f"short sentence number {i}" for i in range(40)] + ["", "mid " * 40, "mid " * 38]
    batches = embeddings._batches(texts)
    assert sorted(i for b in batches for i in b) == list(range(len(texts)))
    assert [0] in batches  # the long context pads nobody else
    assert any({len(texts) - 2, len(texts) - 1} <= set(b) for b in batches)  # near-equal lengths share
    for batch in batches:
        assert len(batch) <= embeddings.MAX_BATCH
        sizes = [len(texts[i]) + 1 for i in batch]
        assert sum(sizes) >= (1 - embeddings.MAX_PADDING) * max(sizes) * len(sizes)


def test_length_batching_gives_the_vectors_of_one_text_at_a_time(counted):
    texts = ["A long retrieved passage about refunds and invoices. " * 12, "Short one.", "Hallo, wie geht's?"]
    together = embeddings.embed_texts(texts)
    embeddings.cache_clear()
    alone = np.vstack([embeddings.embed_texts([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
