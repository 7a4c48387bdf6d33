"""Toxicity of a text in [0, 1], for the user's input and the model's output separately.

Three signals, each a logit, averaged with weights (weights/toxicity.json "mix"):
- alt-profanity-check's probability (a linear model over words) catches slurs and swearing;
- a character n-gram TF-IDF logistic regression (weights/toxicity_char.npz) catches the
  same vocabulary obfuscated or misspelt ("sh1t", "fuuuck", "f a g");
- a 3-class logistic regression (hate / offensive / neither) over the all-MiniLM-L6-v2
  embedding, scored log P(hate or offensive) − log P(neither), catches insults phrased
  without a swear word (threats less so: Davidson has few).
Both heads and the mix are trained on the Davidson tweets only; `bench/train_toxicity.py`
reproduces the weights and explains how the mix avoids over-trusting alt-profanity-check
(itself trained on Davidson).
Degrades instead of failing: without an embedding the two lexical signals are mixed;
without the weights files the profanity probability alone is used.
"""

from __future__ import annotations

import html
import json
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import sparse

WEIGHTS = Path(__file__).parent / "weights" / "toxicity.json"
CHAR_WEIGHTS = Path(__file__).parent / "weights" / "toxicity_char.npz"
FALLBACK_THRESHOLD = 0.5
CHAR_FEATURES = 2**17

_MENTION = re.compile(r"@\w+:?")
_URL = re.compile(r"https?://\S+|www\.\S+")
_RT = re.compile(r"\bRT\b:?")
_HASHTAG = re.compile(r"#(\w+)")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
# "sooo", "fuuuck": three or more repeats become two, the form a vocabulary knows best.
_ELONGATION = re.compile(r"(\w)\1{2,}")
# Leetspeak only between letters ("sh1t", "b1tch"), so "mp3", "1st" and "24h" survive.
_LEET = re.compile(r"(?<=[a-zA-Z])[013457$](?=[a-zA-Z])")
_LEET_MAP = str.maketrans("013457$", "oieasts")


def clean(text: str) -> str:
    """Strip tweet artefacts that carry no toxicity but differ between tweets and chat.

    The heads are trained on tweets and run on chat: retweet markers, @mentions, links
    and HTML entities would otherwise be features of the training set only.
    """
    text = html.unescape(html.unescape(text or ""))  # Davidson double-escapes: "&amp;#128514;"
    text = _URL.sub(" ", _MENTION.sub(" ", _RT.sub(" ", text)))
    text = _HASHTAG.sub(lambda m: _CAMEL.sub(" ", m.group(1)), text)
    text = _LEET.sub(lambda m: m.group(0).translate(_LEET_MAP), text)
    text = _ELONGATION.sub(r"\1\1", text)
    return re.sub(r"\s+", " ", text).strip()


@lru_cache(maxsize=1)
def head() -> dict:
    """The mix and embedding head: {"mix": [p, c, e], "coef": 3×384, "intercept": 3, "threshold", "version"}."""
    if not WEIGHTS.exists():
        return {}
    weights = json.loads(WEIGHTS.read_text())
    weights["coef"] = np.asarray(weights["coef"], dtype=np.float64)
    weights["intercept"] = np.asarray(weights["intercept"], dtype=np.float64)
    return weights


@lru_cache(maxsize=1)
def char_head() -> dict:
    """The char n-gram model: {"idf": (2**17,), "coef": (2**17,), "intercept": (1,)}, or {} if absent."""
    if not CHAR_WEIGHTS.exists():
        return {}
    with np.load(CHAR_WEIGHTS, allow_pickle=False) as data:
        return {k: data[k].astype(np.float64) for k in ("idf", "coef", "intercept")}


def version() -> str:
    return head().get("version", "profanity-only")


def threshold() -> float:
    """Above this a text is flagged toxic (chosen on the training data, not on reports)."""
    return float(head().get("threshold", FALLBACK_THRESHOLD))


def profanity_probs(texts: list[str]) -> np.ndarray:
    """alt-profanity-check probabilities, one vectorised call for the whole batch."""
    return _profanity([clean(t) for t in texts])


def _profanity(cleaned: list[str]) -> np.ndarray:
    from profanity_check import predict_prob

    if not cleaned:
        return np.zeros(0)
    return np.asarray(predict_prob(cleaned), dtype=np.float64)


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


@lru_cache(maxsize=1)
def _hasher():
    from sklearn.feature_extraction.text import HashingVectorizer

    # Stateless (murmurhash of each n-gram), so only the idf and coefficients ship.
    return HashingVectorizer(analyzer="char_wb", ngram_range=(2, 5), n_features=CHAR_FEATURES,
                             alternate_sign=False, norm=None)


def char_counts(cleaned: list[str]) -> sparse.csr_matrix:
    """Raw char 2–5-gram counts (within word boundaries, lower-cased) of already-cleaned texts."""
    return _hasher().transform(cleaned).tocsr()


def char_tfidf(counts: sparse.csr_matrix, idf: np.ndarray) -> sparse.csr_matrix:
    """Sublinear tf × idf, rows l2-normalised (what TfidfTransformer(sublinear_tf=True) computes)."""
    x = counts.astype(np.float64)
    x.data = 1 + np.log(x.data)
    x = x @ sparse.diags(idf)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    return sparse.diags(1 / np.maximum(norms, 1e-12)) @ x


def char_logits(texts: list[str]) -> np.ndarray:
    return _char([clean(t) for t in texts])


def _char(cleaned: list[str]) -> np.ndarray:
    """char_tfidf(...) @ coef + intercept, computed on the sparse arrays directly.

    Same result, but without building two more sparse matrices per batch: at 200 short
    texts a batch, scipy's per-operation overhead was a third of the scorer's time.
    """
    model = char_head()
    counts = char_counts(cleaned)
    rows = np.repeat(np.arange(len(cleaned)), np.diff(counts.indptr))
    values = (1 + np.log(counts.data)) * model["idf"][counts.indices]
    norms = np.sqrt(np.bincount(rows, weights=values**2, minlength=len(cleaned)))
    dots = np.bincount(rows, weights=values * model["coef"][counts.indices], minlength=len(cleaned))
    return dots / np.maximum(norms, 1e-12) + model["intercept"][0]


def embedding_logits(vectors: np.ndarray, weights: dict) -> np.ndarray:
    """log P(hate or offensive) − log P(neither) from the 3-class head."""
    z = np.asarray(vectors, dtype=np.float64) @ weights["coef"].T + weights["intercept"]
    return np.logaddexp(z[:, 0], z[:, 1]) - z[:, 2]


def toxicity_scores(texts: list[str], vectors: np.ndarray | None = None) -> np.ndarray:
    """Toxicity in [0, 1] for each text; empty texts score 0.

    `vectors` are the texts' embeddings when the caller already has them (the runner
    embeds inputs and outputs anyway); without them the embedding head is left out and
    the remaining weights are renormalised.
    """
    out = np.zeros(len(texts))
    present = [i for i, t in enumerate(texts) if t and t.strip()]
    if not present:
        return out
    batch = [clean(texts[i]) for i in present]
    prof = _profanity(batch)
    weights = head()
    if not weights or not char_head():
        out[present] = prof
        return out
    signals = [logit(prof), _char(batch)]
    mix = list(weights["mix"][:2])
    if vectors is not None:
        signals.append(embedding_logits(np.asarray(vectors)[present], weights))
        mix.append(weights["mix"][2])
    z = np.column_stack(signals) @ (np.asarray(mix) / sum(mix))
    out[present] = 1.0 / (1.0 + np.exp(-z))
    return out
