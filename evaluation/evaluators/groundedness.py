"""Groundedness: is the answer supported by its context? 1 = unsupported (hallucinated).

Context is what the answer may rest on: retrieved documents, system/context messages,
tool results and earlier turns. Each answer sentence is first *aligned*: its matching
passage is the context window (one sentence or two adjacent ones, since facts often span
a boundary) with the best MiniLM cosine. Then we measure
- `support`: that best cosine; `novelty`: the share of its content words that appear
  nowhere in the context; `novel_numbers`: numbers the context never mentions;
- against the matching passage only (subtle edits reuse words found elsewhere, so a
  whole-context check misses them): the share of content words absent from the passage,
  numbers and names absent from it (`swapped_*` when the context has them elsewhere,
  the signature of a swapped entity), a negation added or dropped, and quantifier /
  comparative / direction words (more, fewer, all, before, increase…) the passage lacks;
- `token_support`: BERTScore-style precision, the mean over the sentence's word pieces
  of the best MiniLM contextual-token cosine within the matching passage;
- for the answer as a whole, `centroid_support`: its cosine with the mean of the
  context's sentence vectors (offered to the head; head 3 does without it).
MiniLM runs once per trace, over the answer and context sentences only (sentence and
word-piece vectors from the same pass): a pair's vector and the context's centroid are
derived from the sentences' vectors, and the whole answer's vector is the runner's
output embedding, already cached. A head (boosted trees, weights/groundedness.json,
trained by bench/train_grounding.py only on the BEGIN dev files plus edits derived from
them) turns the aggregate over sentences into a probability. Sentences the head flags
on their own are reported as the unsupported ones, each with plain-language reasons; so is any
sentence with a number the context lacks or whose number differs from its passage's,
since a wrong figure is worth a look even when the rest of the sentence is a copy.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from evaluation import embeddings

WEIGHTS = Path(__file__).parent / "weights" / "groundedness.json"
MAX_CONTEXT_SENTENCES = 400  # bounds the cost of a trace with a huge retrieved corpus
MAX_ANSWER_SENTENCES = 60
# The matching passage is a single sentence unless a pair is clearly closer (a fact that
# spans the boundary): a swapped-in name from the next sentence lifts the pair a little
# and would otherwise hide the swap.
PAIR_MARGIN = 0.05

# Every feature the scorer can compute; the head's JSON names the ones it uses.
ALL_FEATURES = (
    "min_support", "mean_support", "max_novelty", "novelty", "novel_numbers", "centroid_support",
    "max_local_novelty", "mean_local_novelty", "local_numbers", "swapped_numbers", "novel_names",
    "swapped_names", "negation_added", "negation_dropped", "cue_mismatch", "max_elsewhere",
    "min_token_support", "mean_token_support",
)
FEATURES = ALL_FEATURES[:6]  # untrained fallback / historical head

_SENTENCE = re.compile(r"(?<=[.!?。！？])\s+|\n+")
_WORD = re.compile(r"\w+(?:'\w+)?", re.UNICODE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_STOP = frozenset(
    "the a an and or but if of to in on at by for with from as is are was were be been being it its this that "
    "these those i you he she we they me him her us them my your his our their what which who whom whose when "
    "where why how not no yes do does did done have has had having will would can could should may might must "
    "shall just so than then there here also very too about into over under more most some any all each other "
    "such only own same both few again further once out up down off yeah well oh really like know think sure "
    "one get got lot lots much many because while well".split()
)
_NEGATION = frozenset("not no never without none nobody nothing neither nor cannot can't won't don't doesn't "
                      "didn't isn't aren't wasn't weren't hasn't haven't hadn't couldn't shouldn't wouldn't "
                      "unable".split())
# Words whose meaning flips or scales a claim; a sentence using one its passage lacks is
# suspect (they are stop words for novelty, so the word checks alone never see them).
_CUES = frozenset(
    "all every each none some most many few several only always never sometimes often rarely usually more less "
    "fewer higher lower larger smaller bigger greater least best worst increase increased increases decrease "
    "decreased decreases rise rose fall fell before after earlier later early late first last next previous "
    "above below over under up down same different positive negative maximum minimum both either neither "
    "entire partial full half double triple twice two three four five six seven eight nine ten eleven twelve "
    "hundred thousand million billion dozen weekly monthly daily yearly annual quarterly".split()
)


@dataclass
class SentenceCheck:
    text: str
    start: int
    end: int
    support: float
    novelty: float
    novel_numbers: list[str]
    passage: str = ""
    local_novelty: float = 0.0
    elsewhere: float = 0.0
    local_numbers: list[str] = field(default_factory=list)
    swapped_numbers: list[str] = field(default_factory=list)
    novel_names: list[str] = field(default_factory=list)
    swapped_names: list[str] = field(default_factory=list)
    negation_added: bool = False
    negation_dropped: bool = False
    cues: list[str] = field(default_factory=list)
    token_support: float = 1.0
    risk: float = 0.0

    def reasons(self) -> list[str]:
        """Plain-language evidence for a reviewer, most specific first."""
        out = [f"number {n} is not in the matching passage, which has a different one (the context mentions "
               f"{n} elsewhere)" for n in self.swapped_numbers[:3]]
        out += [f"number {n} appears nowhere in the context" for n in self.novel_numbers[:3]]
        out += [f"'{n}' is not in the matching passage, which names someone or something else (the context "
                f"mentions '{n}' elsewhere)" for n in self.swapped_names[:3]]
        out += [f"'{n}' appears nowhere in the context" for n in self.novel_names[:3]]
        if self.negation_added:
            out.append("negates what the matching passage states")
        if self.negation_dropped:
            out.append("the matching passage is negated, this sentence is not")
        out += [f"'{w}' is not in the matching passage" for w in self.cues[:3]]
        if self.novelty >= 0.5:
            out.append(f"{self.novelty:.0%} of its content words are not in the context")
        if not out and self.support < 0.5:
            out.append("no passage of the context says anything close")
        return out


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


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("’", "'"))


def _content_words(text: str) -> set[str]:
    return {_stem(w) for w in _words(text) if len(w) > 2 and w not in _STOP and not w.isdigit()}


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


def _names(text: str) -> set[str]:
    """Capitalised words that are not stop words: names of people, firms, products, places."""
    return {w for w in _WORD.findall(text) if w[0].isupper() and w.lower() not in _STOP and not w.isdigit()}


def _negated(words: list[str]) -> bool:
    return any(w in _NEGATION or w.endswith("n't") for w in words)


@lru_cache(maxsize=1)
def head() -> dict:
    return json.loads(WEIGHTS.read_text()) if WEIGHTS.exists() else {}


def version() -> str:
    return head().get("version", "untrained")


def threshold() -> float:
    return float(head().get("threshold", 0.5))


def _columns() -> list[int]:
    return [ALL_FEATURES.index(name) for name in head().get("features", FEATURES)]


@lru_cache(maxsize=1)
def _trees() -> list[tuple[np.ndarray, ...]]:
    return [tuple(np.asarray(t[k]) for k in ("feature", "threshold", "left", "right", "value", "leaf"))
            for t in head()["trees"]]


def _tree_logit(x: np.ndarray) -> np.ndarray:
    """Sum of the boosted trees' leaf values (scikit-learn HistGradientBoosting, exported
    node by node by bench/train_grounding.py): go left when x[feature] <= threshold."""
    z = np.full(len(x), float(head()["baseline"]))
    rows = np.arange(len(x))
    for feature, cut, left, right, value, leaf in _trees():
        node = np.zeros(len(x), dtype=int)
        while not leaf[node].all():
            go_left = x[rows, feature[node]] <= cut[node]
            node = np.where(leaf[node], node, np.where(go_left, left[node], right[node]))
        z += value[node]
    return z


def _probability(x: np.ndarray) -> np.ndarray:
    weights = head()
    if not weights:
        # Untrained fallback: the naive baseline (weakest sentence support).
        return 1.0 - x[:, 0]
    x = x[:, _columns()]
    if weights.get("kind") == "trees":
        z = _tree_logit(x)
    else:
        z = (x - np.asarray(weights["mean"])) / np.asarray(weights["scale"])
        z = z @ np.asarray(weights["coef"]) + float(weights["intercept"])
    return 1.0 / (1.0 + np.exp(-z))


def _aggregate(checks: list[SentenceCheck], centroid: float) -> np.ndarray:
    """The trace's feature vector, in ALL_FEATURES order."""
    def total(name: str) -> int:
        return min(sum(len(getattr(c, name)) for c in checks), 3)

    support = np.array([c.support for c in checks])
    novelty = np.array([c.novelty for c in checks])
    local = np.array([c.local_novelty for c in checks])
    tokens = np.array([c.token_support for c in checks])
    return np.array([
        support.min(), support.mean(), novelty.max(), novelty.mean(), total("novel_numbers"), centroid,
        local.max(), local.mean(), total("local_numbers"), total("swapped_numbers"), total("novel_names"),
        total("swapped_names"), float(any(c.negation_added for c in checks)),
        float(any(c.negation_dropped for c in checks)), total("cues"), max(c.elsewhere for c in checks),
        tokens.min(), tokens.mean(),
    ])


def _encode(texts: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Sentence vectors and, per text, its normalised contextual word-piece vectors
    ([CLS]/[SEP] dropped), from one MiniLM pass; texts seen recently (a RAG app's
    recurring documents) come from the worker's embedding caches instead."""
    return embeddings.embed_with_tokens(texts)


def _context_windows(context: list[str]) -> tuple[list[str], list[tuple[int, ...]]]:
    """Context sentences (at most MAX_CONTEXT_SENTENCES) and the windows an answer sentence
    may align to, as indices into them: every sentence, then every adjacent pair within
    one document (a pair never spans two documents)."""
    singles: list[str] = []
    pairs: list[tuple[int, ...]] = []
    for doc in context:
        room = MAX_CONTEXT_SENTENCES - len(singles)
        parts = [s for _, _, s in sentences(doc)][:room]
        base = len(singles)
        singles.extend(parts)
        pairs.extend((base + i, base + i + 1) for i in range(len(parts) - 1))
    windows = [(i,) for i in range(len(singles))] + pairs
    return singles, windows


def _window_vectors(single_vecs: np.ndarray, windows: list[tuple[int, ...]]) -> np.ndarray:
    """One unit vector per window. A pair's is the normalised sum of its two sentences'
    vectors rather than an encoding of the joined text, which nearly doubled the model's
    work per trace. MiniLM mean-pools its word pieces, so the sum approximates the joined
    text's vector: on the rule-made dev edits (mostly fused sentences) it scores 0.938
    out-of-fold AUROC against 0.947 with encoded pairs, and 0.904 with no pairs at all."""
    summed = np.array([single_vecs[list(w)].sum(axis=0) for w in windows])
    return summed / np.maximum(np.linalg.norm(summed, axis=1, keepdims=True), 1e-9)


def _centroid_support(answer_vec: np.ndarray, single_vecs: np.ndarray) -> float:
    """Cosine of the whole answer with the normalised mean of the context's sentence
    vectors: a stand-in for embedding the whole context as one text, which cost a
    256-word-piece encoding per trace (and was clipped to the model's window anyway)."""
    centroid = single_vecs.mean(axis=0)
    return float(answer_vec @ centroid / max(float(np.linalg.norm(centroid)), 1e-9))


def _align(similarity: np.ndarray, windows: list[tuple[int, ...]]) -> list[int]:
    """Per answer sentence, the index of its matching window: the best single sentence
    unless a pair beats it by PAIR_MARGIN."""
    singles = np.array([len(w) == 1 for w in windows])
    best_single = np.where(singles, similarity, -np.inf).argmax(axis=1)
    best = similarity.argmax(axis=1)
    rows = np.arange(len(similarity))
    near = similarity[rows, best] - similarity[rows, best_single] < PAIR_MARGIN
    return np.where(near, best_single, best).tolist()


def _check(span: tuple[int, int, str], *, passage: str, support: float, token_support: float,
           context_words: set[str], context_numbers: set[str], context_names: set[str]) -> SentenceCheck:
    """The word-level checks of one answer sentence against its passage and the context."""
    start, end, text = span
    words, passage_words = _content_words(text), _content_words(passage)
    novelty = len(words - context_words) / len(words) if words else 0.0
    local = words - passage_words
    numbers, passage_numbers = _numbers(text), _numbers(passage)
    text_lower = {w.lower() for w in _WORD.findall(text)}
    passage_lower = {w.lower() for w in _WORD.findall(passage)}
    names = {w for w in _names(text) if w.lower() not in passage_lower}
    # A swap replaces something: the passage must also hold a number / name the
    # sentence lacks. Without that test, a summary sentence that merges two passages
    # would look like a swap for every name it takes from the second one.
    numbers_replaced = bool(passage_numbers - numbers)
    names_replaced = any(w.lower() not in text_lower for w in _names(passage))
    raw, passage_raw = _words(text), _words(passage)
    return SentenceCheck(
        text, start, end, support, novelty, sorted(numbers - context_numbers),
        passage=passage,
        local_novelty=len(local) / len(words) if words else 0.0,
        elsewhere=len(local & context_words) / len(words) if words else 0.0,
        local_numbers=sorted(numbers - passage_numbers),
        swapped_numbers=sorted((numbers - passage_numbers) & context_numbers) if numbers_replaced else [],
        novel_names=sorted(w for w in names if w.lower() not in context_names),
        swapped_names=sorted(w for w in names if w.lower() in context_names) if names_replaced else [],
        negation_added=_negated(raw) and not _negated(passage_raw),
        negation_dropped=_negated(passage_raw) and not _negated(raw),
        cues=sorted({w for w in raw if w in _CUES} - set(passage_raw)),
        token_support=token_support,
    )


def grounding_features(answer: str, context: list[str], *, all_features: bool = False,
                       ) -> tuple[np.ndarray, list[SentenceCheck]] | None:
    """Trace-level feature vector (ALL_FEATURES order) and per-sentence checks; None when
    there is no context or no answer. Features the shipped head does not read and that
    cost a model call (`centroid_support`) are NaN unless `all_features` (training)."""
    context = [c for c in context if c and c.strip()]
    if not context or not answer or not answer.strip():
        return None
    answer_spans = sentences(answer)[:MAX_ANSWER_SENTENCES]
    singles, windows = _context_windows(context)
    n = len(answer_spans)
    # One model pass gives sentence and word-piece vectors for every answer and context
    # sentence; pairs and the context as a whole are derived from them, not encoded.
    vectors, pieces = _encode([s for _, _, s in answer_spans] + singles)
    answer_vecs, single_vecs = vectors[:n], vectors[n:]
    centroid = float("nan")
    if all_features or "centroid_support" in head().get("features", FEATURES):
        # The whole answer is the trace's output text, which the scoring task has already
        # embedded: a cache hit when the same process ran it.
        centroid = _centroid_support(embeddings.embed_texts([answer])[0], single_vecs)
    similarity = answer_vecs @ _window_vectors(single_vecs, windows).T
    context_words = set().union(*(_content_words(c) for c in context))
    context_numbers = set().union(*(_numbers(c) for c in context))
    context_names = {w.lower() for c in context for w in _WORD.findall(c)}
    checks = []
    for i, best in enumerate(_align(similarity, windows)):
        passage_tokens = np.concatenate([pieces[n + j] for j in windows[best]])
        checks.append(_check(
            answer_spans[i], passage=" ".join(singles[j] for j in windows[best]),
            support=float(similarity[i].max()),
            # BERTScore-style precision of the sentence's word pieces within the passage.
            token_support=float((pieces[i] @ passage_tokens.T).max(axis=1).mean()),
            context_words=context_words, context_numbers=context_numbers, context_names=context_names,
        ))
    return _aggregate(checks, centroid), checks


def groundedness(answer: str, context: list[str]) -> dict[str, Any] | None:
    """{"score", "unsupported": [...], "sentences", "threshold", "version"}, or None
    without context or answer. Each unsupported sentence carries its offsets, the
    matching passage and `reasons` (plain-language evidence)."""
    found = grounding_features(answer, context)
    if found is None:
        return None
    features, checks = found
    # Each sentence is scored as if it were the whole answer (so a one-sentence answer's
    # risk is exactly the trace score).
    per_sentence = np.array([_aggregate([c], float(features[ALL_FEATURES.index("centroid_support")]))
                             for c in checks])
    risks = _probability(per_sentence)
    for check, risk in zip(checks, risks, strict=True):
        check.risk = float(risk)
    score = float(_probability(features[None, :])[0])
    cut = threshold()
    unsupported = [
        {"text": c.text[:500], "start": c.start, "end": c.end, "support": round(c.support, 3),
         "novelty": round(c.novelty, 3), "novel_numbers": c.novel_numbers[:10], "risk": round(c.risk, 3),
         "passage": c.passage[:500], "reasons": c.reasons()}
        for c in checks if c.risk >= cut or c.novel_numbers or c.swapped_numbers
    ]
    return {"score": round(score, 4), "unsupported": unsupported, "sentences": len(checks),
            "threshold": cut, "version": version()}
