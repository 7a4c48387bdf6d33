"""Toxicity of a text in [0, 1], for the user's input and the model's output separately.

Two signals, averaged in logit space:
- alt-profanity-check's probability (a linear model over word n-grams) catches slurs
  and swearing;
- a logistic-regression head over the all-MiniLM-L6-v2 embedding, trained on the
  Davidson tweets (train/tune only; `bench/train_toxicity.py` reproduces
  weights/toxicity.json), catches insults and threats phrased without a swear word.
The mix is fixed at 50/50 rather than learned: alt-profanity-check was itself trained
on Davidson, so a head fitted jointly on Davidson would over-trust its (leaked,
near-perfect) scores there and generalise worse.
Without the weights file (or without an embedding) the profanity probability alone is
used, so the evaluator degrades instead of failing.
"""

from __future__ import annotations

import html
import json
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

WEIGHTS = Path(__file__).parent / "weights" / "toxicity.json"
FALLBACK_THRESHOLD = 0.5

_MENTION = re.compile(r"@\w+")
_URL = re.compile(r"https?://\S+|www\.\S+")
_RT = re.compile(r"^\s*RT\b:?", re.IGNORECASE)


def clean(text: str) -> str:
    """Strip what carries no toxicity but differs between tweets and chat (mentions, links)."""
    text = html.unescape(text or "")
    text = _URL.sub(" ", _MENTION.sub(" ", _RT.sub(" ", text)))
    return re.sub(r"\s+", " ", text).strip()


@lru_cache(maxsize=1)
def head() -> dict:
    """The trained head: {"coef": [...], "intercept": b, "threshold": t, "version": ...}."""
    if not WEIGHTS.exists():
        return {}
    return json.loads(WEIGHTS.read_text())


def version() -> str:
    return head().get("version", "profanity-only")


def threshold() -> float:
    """Above this a text is flagged toxic (chosen on the training data, not on reports)."""
    return float(head().get("threshold", FALLBACK_THRESHOLD))


def profanity_probs(texts: list[str]) -> np.ndarray:
    """alt-profanity-check probabilities, one vectorised call for the whole batch."""
    from profanity_check import predict_prob

    if not texts:
        return np.zeros(0)
    return np.asarray(predict_prob([clean(t) for t in texts]), dtype=np.float64)


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def combine(profanity: np.ndarray, vectors: np.ndarray, weights: dict) -> np.ndarray:
    """Toxicity from the profanity probabilities and embeddings of the same texts."""
    z_embedding = vectors.astype(np.float64) @ np.asarray(weights["coef"]) + float(weights["intercept"])
    mix = float(weights.get("mix", 0.5))
    z = mix * logit(profanity) + (1 - mix) * z_embedding
    return 1.0 / (1.0 + np.exp(-z))


def toxicity_scores(texts: list[str], vectors: np.ndarray | None = None) -> np.ndarray:
    """Toxicity in [0, 1] for each text; empty texts score 0.

    `vectors` are the texts' embeddings when the caller already has them (the runner
    embeds inputs and outputs anyway); without them, the profanity model alone decides.
    """
    out = np.zeros(len(texts))
    present = [i for i, t in enumerate(texts) if t and t.strip()]
    if not present:
        return out
    prof = profanity_probs([texts[i] for i in present])
    weights = head()
    if not weights or vectors is None:
        out[present] = prof
        return out
    out[present] = combine(prof, np.asarray(vectors)[present], weights)
    return out
