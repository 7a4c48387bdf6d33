"""Accuracy of the offline scorers on the REPORT files (nothing is fitted here).

    .venv/bin/python bench/eval_scorers.py           # all; prints a Markdown table
    .venv/bin/python bench/eval_scorers.py --quick   # 600-row sample of begin_test_wow
    .venv/bin/python bench/eval_scorers.py --smoke   # 20 (toxicity) or 5 (grounding) rows of each label per file

AUROC is scikit-learn's roc_auc_score; precision/recall use the thresholds shipped in
feedback/evaluators/weights/*.json (chosen on the train/tune files).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import precision_score, recall_score, roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._django import settings_only

settings_only()

from bench._data import begin_rows, embed_cached, hatecheck, summedits_rows, surge  # noqa: E402
from evaluation.evaluators import groundedness as g  # noqa: E402
from evaluation.evaluators import toxicity  # noqa: E402


def report(name: str, labels: np.ndarray, scores: np.ndarray, threshold: float, baseline: str = "") -> None:
    predicted = (scores >= threshold).astype(int)
    print(f"| {name} | {len(labels)} | {roc_auc_score(labels, scores):.3f} | {threshold:.3f} | "
          f"{precision_score(labels, predicted, zero_division=0):.3f} | "
          f"{recall_score(labels, predicted, zero_division=0):.3f} | {baseline} |", flush=True)


def grounding(rows: list[dict]) -> np.ndarray:
    # The dialogue history counts as context, exactly as in training and in the runner.
    return np.array([g.groundedness(r["answer"], r["context"] + ([r["history"]] if r["history"] else []))["score"]
                     for r in rows])


def few(texts: list, labels: np.ndarray, n: int = 20) -> tuple[list, np.ndarray]:
    """`n` rows of each label (seeded): enough for every figure to be computed, no more."""
    rng = random.Random(6)
    keep = sorted(i for label in (0, 1) for i in rng.sample(list(np.flatnonzero(labels == label)), n))
    return [texts[i] for i in keep], labels[keep]


def few_rows(rows: list[dict]) -> list[dict]:
    # Groundedness runs the model over every sentence of the context: ~0.3 s a row.
    kept, _ = few(rows, np.array([r["label"] for r in rows]), n=5)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--smoke", action="store_true",
                        help="a few rows of each label of each file: checks the script runs; not a measurement")
    args = parser.parse_args()
    started = time.time()
    print("| scorer / report file | rows | AUROC | threshold | precision | recall | baseline AUROC |")
    print("|---|---|---|---|---|---|---|")
    texts, labels = surge()
    if args.smoke:
        texts, labels = few(texts, labels)
    scores = toxicity.toxicity_scores(texts, embed_cached([toxicity.clean(t) for t in texts], "surge"))
    report("toxicity (mix) / surge_toxicity_en", labels, scores, toxicity.threshold(), "0.843 (profanity alone)")
    report("toxicity, profanity-check alone / surge", labels, toxicity.profanity_probs(texts), 0.5)
    texts, labels = hatecheck()
    if args.smoke:
        texts, labels = few(texts, labels)
    scores = toxicity.toxicity_scores(texts, embed_cached([toxicity.clean(t) for t in texts], "hatecheck"))
    report("toxicity (mix) / hatecheck (robustness)", labels, scores, toxicity.threshold())
    report("toxicity, profanity-check alone / hatecheck", labels, toxicity.profanity_probs(texts), 0.5)
    rows = summedits_rows()
    if args.smoke:
        rows = few_rows(rows)
    report("hallucination / summedits_sales_email", np.array([r["label"] for r in rows]), grounding(rows),
           g.threshold(), "0.62")
    rows = begin_rows("begin_test_wow.tsv")
    if args.smoke:
        rows = few_rows(rows)
    elif args.quick:
        rows = random.Random(6).sample(rows, 600)
    report("hallucination / begin_test_wow" + (" (600 sample)" if args.quick and not args.smoke else ""),
           np.array([r["label"] for r in rows]), grounding(rows), g.threshold(), "0.85")
    print(f"\n{time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
