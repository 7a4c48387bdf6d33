"""Drift statistics: how far the current window's distributions moved from a baseline's.

No database access here: drift/selectors.py hands over samples and counts, so every
number can be checked against values worked out by hand (tests/drift/test_stats.py).

Choices, and why:
- Population stability index (PSI) for every feature, because it reads the same on
  numbers and categories and has the industry's thresholds (0.1 warn, 0.25 alert).
  Numeric bins are the baseline's deciles: each baseline bin then holds ~10%, so no bin
  is empty on the baseline side and a shift shows wherever it happens. A bin (or a
  category) empty on one side gets EPSILON instead of 0, since ln(0) is undefined.
- Beside PSI, a test fit for the data: two-sample Kolmogorov-Smirnov for numbers,
  chi-square of the 2 x k contingency table for categories. The p-value says whether
  a shift is more than noise; PSI says whether it is large.
- Inputs by meaning: a classifier asked to tell the two windows' input embeddings apart.
  Its cross-validated ROC AUC is ~0.5 when it cannot (no drift) and climbs towards 1 as
  the windows separate; above 0.55 counts as drift (Evidently's default). The distance
  between the windows' centroids says how far the average input moved.
- New topics: current inputs whose nearest baseline input is far, clustered, and each
  cluster labelled by the terms that are frequent in it but not in the baseline
  (TF-IDF difference).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as scipy_stats
from sklearn.cluster import AgglomerativeClustering
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from threadpoolctl import threadpool_limits

PSI_WARN = 0.1
PSI_ALERT = 0.25
PSI_BINS = 10
# Share given to an empty bin or category so its log term stays finite. Small enough
# that a category seen 3 times in 1,000 still counts far more than an absent one.
EPSILON = 1e-4
# Below this many observations in either window a feature gets no status: PSI and the
# tests on 10 values are noise that would light the page up on every reload.
MIN_N = 30
ALPHA = 0.05

AUC_DRIFT = 0.55
CV_FOLDS = 5
MIN_EMBEDDINGS = 20  # per window, for the classifier (and at least CV_FOLDS)
CLASSIFIER_SEED = 20251205

OK, WARN, ALERT, INSUFFICIENT = "ok", "warn", "alert", "insufficient"


def psi_status(psi: float | None) -> str:
    if psi is None:
        return INSUFFICIENT
    if psi >= PSI_ALERT:
        return ALERT
    if psi >= PSI_WARN:
        return WARN
    return OK


def feature_status(psi: float | None, p_value: float | None) -> str:
    """PSI's status, except that a shift the test does not find significant (p >= ALPHA) is
    ok: PSI has a positive floor under pure sampling noise of about (bins - 1) x (1/n1 +
    1/n2) (0.15 for ten bins of 120 traces each), which would otherwise flag small windows
    that did not move at all."""
    if psi is None:
        return INSUFFICIENT
    if p_value is not None and p_value >= ALPHA:
        return OK
    return psi_status(psi)


def _psi_from_shares(baseline: np.ndarray, current: np.ndarray) -> float:
    b = np.where(baseline > 0, baseline, EPSILON)
    c = np.where(current > 0, current, EPSILON)
    return float(np.sum((c - b) * np.log(c / b)))


def baseline_bin_edges(baseline: Sequence[float], bins: int = PSI_BINS) -> np.ndarray:
    """Inner edges at the baseline's quantiles (ties merged): bins are (-inf, e1], (e1, e2], ..."""
    values = np.asarray(baseline, dtype=float)
    quantiles = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(quantiles)


def psi_numeric(baseline: Sequence[float], current: Sequence[float], bins: int = PSI_BINS) -> float:
    """PSI of two numeric samples over bins cut at the baseline's quantiles."""
    b = np.asarray(baseline, dtype=float)
    c = np.asarray(current, dtype=float)
    edges = baseline_bin_edges(b, bins)
    # side="left" counts the edges strictly below a value: a value equal to an edge
    # falls in the bin that edge closes, so a tied value always lands in one bin.
    b_counts = np.bincount(np.searchsorted(edges, b, side="left"), minlength=len(edges) + 1)
    c_counts = np.bincount(np.searchsorted(edges, c, side="left"), minlength=len(edges) + 1)
    return _psi_from_shares(b_counts / b_counts.sum(), c_counts / c_counts.sum())


def psi_categorical(baseline: Mapping[str, int], current: Mapping[str, int]) -> float:
    """PSI of two category -> count tables (a category missing on one side has share EPSILON)."""
    categories = sorted(set(baseline) | set(current))
    b = np.array([baseline.get(k, 0) for k in categories], dtype=float)
    c = np.array([current.get(k, 0) for k in categories], dtype=float)
    return _psi_from_shares(b / b.sum(), c / c.sum())


@dataclass(frozen=True)
class TestResult:
    test: str  # "ks" | "chi2"
    statistic: float
    p_value: float


def ks(baseline: Sequence[float], current: Sequence[float]) -> TestResult:
    result = scipy_stats.ks_2samp(np.asarray(baseline, dtype=float), np.asarray(current, dtype=float))
    return TestResult("ks", float(result.statistic), float(result.pvalue))


def chi_square(baseline: Mapping[str, int], current: Mapping[str, int]) -> TestResult | None:
    """Chi-square test of independence of window x category; None with fewer than two categories."""
    categories = sorted(k for k in set(baseline) | set(current) if baseline.get(k, 0) + current.get(k, 0) > 0)
    if len(categories) < 2:
        return None
    table = np.array([[baseline.get(k, 0) for k in categories], [current.get(k, 0) for k in categories]])
    # No Yates correction: it is only applied to 2 x 2 tables and would make the binary
    # score rates (2 x 2) read differently from every other categorical feature.
    statistic, p_value, _, _ = scipy_stats.chi2_contingency(table, correction=False)
    return TestResult("chi2", float(statistic), float(p_value))


# ------------------------------------------------------------------------ embeddings


@dataclass(frozen=True)
class EmbeddingDrift:
    auc: float | None
    centroid_distance: float | None  # cosine distance between the two windows' mean vectors
    n_baseline: int
    n_current: int

    @property
    def status(self) -> str:
        if self.auc is None:
            return INSUFFICIENT
        return "drift" if self.auc > AUC_DRIFT else OK

    @property
    def drifted(self) -> bool:
        return self.status == "drift"


def _cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    if norm == 0:
        return 0.0
    return float(1 - np.dot(a, b) / norm)


def embedding_drift(baseline: np.ndarray, current: np.ndarray) -> EmbeddingDrift:
    """Cross-validated AUC of a logistic regression separating baseline from current vectors.

    Both samples are cut to the same size first, so the AUC is not moved by one window
    being larger, and folds are stratified and seeded: a reload shows the same number.
    """
    n_b, n_c = len(baseline), len(current)
    if min(n_b, n_c) < max(MIN_EMBEDDINGS, CV_FOLDS):
        return EmbeddingDrift(None, None, n_b, n_c)
    centroid = _cosine_distance(np.mean(baseline, axis=0), np.mean(current, axis=0))
    n = min(n_b, n_c)
    rng = np.random.default_rng(CLASSIFIER_SEED)
    b = baseline[rng.choice(n_b, n, replace=False)] if n_b > n else baseline
    c = current[rng.choice(n_c, n, replace=False)] if n_c > n else current
    x = np.vstack([b, c])
    y = np.concatenate([np.zeros(n), np.ones(n)])
    folds = StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=CLASSIFIER_SEED)
    # C=1 on unit-length 384-dim vectors: regularised enough that ~1,000 points per class
    # do not let it memorise noise (an unchanged window stays near 0.5).
    model = LogisticRegression(C=1.0, max_iter=1000)
    # One BLAS thread: these matrices are small, and on a busy machine (a web worker beside
    # Celery) a thread per core made the same fit 15x slower (2.4 s vs 0.15 s, bench/drift.py).
    with threadpool_limits(1):
        scores = cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]
    return EmbeddingDrift(float(roc_auc_score(y, scores)), centroid, n_b, n_c)


# ------------------------------------------------------------------------ new topics

# Cosine distance to the nearest baseline input above which a current input is "far".
# Measured with all-MiniLM-L6-v2 on the demo's support questions: paraphrases sit at
# 0.1-0.3, a GPU question is 0.64-0.88 from its nearest support question, and GPU
# questions are 0.25-0.70 from each other (mean ~0.55).
FAR_DISTANCE = 0.5
# Far inputs are grouped by average-linkage clustering cut at this mean distance: loose
# enough to keep one subject's varied questions together (~0.55), tight enough to keep
# unrelated subjects (0.8 and beyond) apart.
CLUSTER_DISTANCE = 0.7
# A topic needs this many inputs and this share of the current sample: a handful of
# one-off odd questions is not a topic.
MIN_TOPIC_SIZE = 5
MIN_TOPIC_SHARE = 0.02
MAX_TOPICS = 8
TOP_TERMS = 4
EXAMPLES = 5


@dataclass
class Topic:
    members: list[int]  # indices into the current sample, nearest the topic's centre first
    centroid: np.ndarray
    terms: list[str] = field(default_factory=list)
    share: float = 0.0
    mean_distance: float = 0.0  # mean distance of the members to their nearest baseline input

    @property
    def label(self) -> str:
        return ", ".join(self.terms) if self.terms else "(no distinctive terms)"


def nearest_distances(current: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """Cosine distance from each current vector to its nearest baseline vector."""
    c = current / np.maximum(np.linalg.norm(current, axis=1, keepdims=True), 1e-12)
    b = baseline / np.maximum(np.linalg.norm(baseline, axis=1, keepdims=True), 1e-12)
    with threadpool_limits(1):  # see embedding_drift
        return 1 - (c @ b.T).max(axis=1)


def far_clusters(current: np.ndarray, distances: np.ndarray) -> list[Topic]:
    """Clusters of the current inputs farther than FAR_DISTANCE from every baseline input,
    large enough to be a topic, biggest first."""
    far = np.flatnonzero(distances > FAR_DISTANCE)
    min_size = max(MIN_TOPIC_SIZE, math.ceil(MIN_TOPIC_SHARE * len(current)))
    if len(far) < min_size:
        return []
    if len(far) == 1:
        labels = np.zeros(1, dtype=int)
    else:
        clustering = AgglomerativeClustering(
            n_clusters=None, metric="cosine", linkage="average", distance_threshold=CLUSTER_DISTANCE
        )
        with threadpool_limits(1):
            labels = clustering.fit_predict(current[far])
    topics = []
    for label in np.unique(labels):
        members = far[labels == label]
        if len(members) < min_size:
            continue
        centroid = current[members].mean(axis=0)
        closeness = current[members] @ centroid
        ordered = members[np.argsort(-closeness, kind="stable")]
        topics.append(Topic(members=[int(i) for i in ordered], centroid=centroid,
                            share=len(members) / len(current), mean_distance=float(distances[members].mean())))
    topics.sort(key=lambda t: (-len(t.members), t.members[0]))
    return topics[:MAX_TOPICS]


def topic_terms(topic_texts: list[list[str]], baseline_texts: list[str], top: int = TOP_TERMS) -> list[list[str]]:
    """For each topic, the terms most over-represented in its texts against the baseline:
    mean TF-IDF weight in the topic minus mean weight in the baseline sample."""
    corpus = [text for texts in topic_texts for text in texts] + list(baseline_texts)
    if not any(text.strip() for text in corpus):
        return [[] for _ in topic_texts]
    vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True, max_features=20_000,
                                 token_pattern=r"(?u)\b[^\W\d_][\w-]+\b")
    try:
        matrix = vectorizer.fit_transform(corpus)
    except ValueError:  # only stop words
        return [[] for _ in topic_texts]
    vocabulary = vectorizer.get_feature_names_out()
    n_topic = sum(len(texts) for texts in topic_texts)
    baseline_mean = (np.asarray(matrix[n_topic:].mean(axis=0)).ravel() if baseline_texts
                     else np.zeros(len(vocabulary)))
    out, start = [], 0
    for texts in topic_texts:
        weights = np.asarray(matrix[start:start + len(texts)].mean(axis=0)).ravel() - baseline_mean
        start += len(texts)
        order = np.argsort(-weights, kind="stable")
        out.append([str(vocabulary[i]) for i in order[:top] if weights[i] > 0])
    return out
