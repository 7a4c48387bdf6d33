"""Train the groundedness head on the BEGIN dev files (train/tune only).

Features come from feedback.evaluators.groundedness (sentence support, word and number
novelty); a standardised logistic regression maps them to P(hallucinated). C and the
shipped threshold are chosen by 5-fold cross-validation on begin_dev_wow + begin_dev_cmu.
No report file is read here.

    .venv/bin/python bench/train_grounding.py   # writes feedback/evaluators/weights/groundedness.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_recall_curve, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._data import begin_rows
from feedback.evaluators import groundedness as g

SEED = 6


def feature_matrix(rows: list[dict]) -> np.ndarray:
    """One row of features per example; the dialogue history counts as context, as the
    runner counts earlier turns."""
    return np.array([g.grounding_features(r["answer"], r["context"] + [r["history"]])[0] for r in rows])


def main() -> None:
    rows = begin_rows("begin_dev_wow.tsv") + begin_rows("begin_dev_cmu.tsv")
    labels = np.array([r["label"] for r in rows])
    x = feature_matrix(rows)
    print(f"BEGIN dev rows={len(rows)} hallucinated={labels.mean():.2f}")
    for i, name in enumerate(g.FEATURES):
        sign = 1 if name in ("max_novelty", "novelty", "novel_numbers") else -1
        print(f"  feature {name:14s} AUROC alone {roc_auc_score(labels, sign * x[:, i]):.3f}")
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=SEED)
    best = None
    for c in (0.03, 0.1, 0.3, 1.0, 3.0):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000))
        oof = cross_val_predict(model, x, labels, cv=folds, method="predict_proba")[:, 1]
        auc = roc_auc_score(labels, oof)
        print(f"  head C={c}: 5-fold AUROC {auc:.4f}")
        if best is None or auc > best[0]:
            best = (auc, c, oof)
    auc, c, oof = best
    precision, recall, thresholds = precision_recall_curve(labels, oof)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-9)
    threshold = float(thresholds[int(np.argmax(f1[:-1]))])
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=c, max_iter=1000).fit(scaler.transform(x), labels)
    out = {
        "version": f"grounding-head-1-C{c}",
        "features": list(g.FEATURES),
        "trained_on": "begin_dev_wow.tsv + begin_dev_cmu.tsv (Generic dropped)",
        "cv_auroc": round(auc, 4),
        "threshold": round(threshold, 4),
        "mean": [float(v) for v in scaler.mean_],
        "scale": [float(v) for v in scaler.scale_],
        "coef": [float(v) for v in model.coef_[0]],
        "intercept": float(model.intercept_[0]),
    }
    g.WEIGHTS.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {g.WEIGHTS} (C={c}, threshold {threshold:.3f} = best F1 on BEGIN dev CV)")


if __name__ == "__main__":
    main()
