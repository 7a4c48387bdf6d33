"""Groundedness: is the answer supported by its context? 1 = unsupported (hallucinated).

Context is what the answer may rest on: retrieved documents, system/context messages,
tool results and earlier turns. Per answer sentence we measure
- `support`: the best cosine between the sentence and any context sentence (or pair
  of adjacent sentences, since facts often span a sentence boundary);
- `novelty`: the share of its content words that appear nowhere in the context;
- `novel_numbers`: numbers it states that the context never mentions;
and a logistic-regression head (weights/groundedness.json, trained only on the BEGIN
dev files by bench/train_grounding.py) turns them into a probability. The trace score
uses the aggregate over sentences (weakest sentence, mean, total novelty); sentences
the head flags on their own are reported as the unsupported ones.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from feedback.evaluators.embeddings import embed_texts

WEIGHTS = Path(__file__).parent / "weights" / "groundedness.json"
MAX_CONTEXT_SENTENCES = 400  # bounds the cost of a trace with a huge retrieved corpus
MAX_ANSWER_SENTENCES = 60

FEATURES = ("min_support", "mean_support", "max_novelty", "novelty", "novel_numbers", "whole_support")

_SENTENCE = re.compile(r"(?<=[.!?。！？])\s+|\n+")
_WORD = re.compile(r"\w+", re.UNICODE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_STOP = frozenset(
    "the a an and or but if of to in on at by for with from as is are was were be been being it its this that "
    "these those i you he she we they me him her us them my your his our their what which who whom whose when "
    "where why how not no yes do does did done have has had having will would can could should may might must "
    "shall just so than then there here also very too about into over under more most some any all each other "
    "such only own same both few again further once out up down off yeah well oh really like know think sure "
    "one get got lot lots much many because while well".split()
)


@dataclass
class SentenceCheck:
    text: str
    start: int
    end: int
    support: float
    novelty: float
    novel_numbers: list[str]
    risk: float = 0.0


def sentences(text: str) -> list[tuple[int, int, str]]:
    """(start, end, sentence) spans of `text`; offsets point into the original string."""
    out, pos = [], 0
    for piece in _SENTENCE.split(text):
        start = text.find(piece, pos)
        if piece.strip():
            stripped = piece.strip()
            s = start + piece.find(stripped)
            out.append((s, s + len(stripped), stripped))
        pos = start + len(piece)
    return out


def _stem(word: str) -> str:
    # Crude and language-agnostic: "products"/"product", "shifted"/"shift" meet.
    return word[:6] if len(word) > 6 else word


def _content_words(text: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(text.lower()) if len(w) > 2 and w not in _STOP and not w.isdigit()}


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


@lru_cache(maxsize=1)
def head() -> dict:
    return json.loads(WEIGHTS.read_text()) if WEIGHTS.exists() else {}


def version() -> str:
    return head().get("version", "untrained")


def threshold() -> float:
    return float(head().get("threshold", 0.5))


def _probability(x: np.ndarray) -> np.ndarray:
    weights = head()
    if not weights:
        # Untrained fallback: the naive baseline (weakest sentence support).
        return 1.0 - x[:, 0]
    z = (x - np.asarray(weights["mean"])) / np.asarray(weights["scale"])
    z = z @ np.asarray(weights["coef"]) + float(weights["intercept"])
    return 1.0 / (1.0 + np.exp(-z))


def _aggregate(checks: list[SentenceCheck], whole: float) -> np.ndarray:
    support = np.array([c.support for c in checks])
    novelty = np.array([c.novelty for c in checks])
    numbers = sum(len(c.novel_numbers) for c in checks)
    return np.array([support.min(), support.mean(), novelty.max(), novelty.mean(), min(numbers, 3), whole])


def grounding_features(answer: str, context: list[str]) -> tuple[np.ndarray, list[SentenceCheck]] | None:
    """Trace-level feature vector and per-sentence checks; None when there is no context."""
    context = [c for c in context if c and c.strip()]
    if not context or not answer or not answer.strip():
        return None
    answer_spans = sentences(answer)[:MAX_ANSWER_SENTENCES]
    context_sentences: list[str] = []
    for doc in context:
        parts = [s for _, _, s in sentences(doc)]
        context_sentences.extend(parts)
        context_sentences.extend(f"{a} {b}" for a, b in pairwise(parts))
    context_sentences = context_sentences[:MAX_CONTEXT_SENTENCES]
    vectors = embed_texts([s for _, _, s in answer_spans] + context_sentences + [answer, " ".join(context)[:4000]])
    n = len(answer_spans)
    answer_vecs, context_vecs = vectors[:n], vectors[n:-2]
    similarity = answer_vecs @ context_vecs.T
    whole = float(vectors[-2] @ vectors[-1])
    context_words = set().union(*(_content_words(c) for c in context))
    context_numbers = set().union(*(_numbers(c) for c in context))
    checks = []
    for i, (start, end, text) in enumerate(answer_spans):
        words = _content_words(text)
        novelty = len(words - context_words) / len(words) if words else 0.0
        novel_numbers = sorted(_numbers(text) - context_numbers)
        checks.append(SentenceCheck(text, start, end, float(similarity[i].max()), novelty, novel_numbers))
    return _aggregate(checks, whole), checks


def groundedness(answer: str, context: list[str]) -> dict[str, Any] | None:
    """{"score", "unsupported": [...], "sentences", "version"}, or None without context."""
    found = grounding_features(answer, context)
    if found is None:
        return None
    features, checks = found
    per_sentence = np.array([_aggregate([c], c.support) for c in checks])
    risks = _probability(per_sentence)
    for check, risk in zip(checks, risks, strict=True):
        check.risk = float(risk)
    score = float(_probability(features[None, :])[0])
    cut = threshold()
    unsupported = [
        {"text": c.text[:500], "start": c.start, "end": c.end, "support": round(c.support, 3),
         "novelty": round(c.novelty, 3), "novel_numbers": c.novel_numbers[:10], "risk": round(c.risk, 3)}
        for c in checks if c.risk >= cut or c.novel_numbers
    ]
    return {"score": round(score, 4), "unsupported": unsupported, "sentences": len(checks),
            "threshold": cut, "version": version()}
