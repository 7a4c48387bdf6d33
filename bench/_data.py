"""Loaders for the labelled files in shared/datasets, shared by the bench scripts.

Files marked *report* in shared/datasets/README.md are only ever read by
eval_scorers.py; the training scripts load train/tune files only.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("SPYGLASS_DATASETS", ROOT.parent / "shared" / "datasets"))
CACHE = ROOT / ".data" / "bench-cache"

GROUNDED, HALLUCINATED = "Fully attributable", "Not fully attributable"


def begin_rows(name: str) -> list[dict]:
    """BEGIN rows with label 1 = hallucinated (not fully attributable); Generic dropped."""
    with open(DATASETS / "grounding" / name, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    out = []
    for row in rows:
        label = (row.get("begin_label") or "").strip()
        if label in (GROUNDED, HALLUCINATED):
            out.append({"context": [row["knowledge"]], "history": row["message"], "answer": row["response"],
                        "label": int(label == HALLUCINATED)})
    return out


def summedits_rows() -> list[dict]:
    """SummEdits sales emails with label 1 = inconsistent (hallucinated)."""
    data = json.loads((DATASETS / "grounding" / "summedits_sales_email.json").read_text())
    return [{"context": [r["doc"]], "history": "", "answer": r["summary"], "label": int(r["label"] == 0)}
            for r in data]


def davidson() -> tuple[list[str], np.ndarray]:
    with open(DATASETS / "toxicity" / "davidson_labeled_data.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["tweet"] for r in rows], np.array([int(r["class"] in ("0", "1")) for r in rows])


def surge() -> tuple[list[str], np.ndarray]:
    with open(DATASETS / "toxicity" / "surge_toxicity_en.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], np.array([int(r["is_toxic"].strip() == "Toxic") for r in rows])


def hatecheck() -> tuple[list[str], np.ndarray]:
    with open(DATASETS / "toxicity" / "hatecheck_test_suite_cases.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["test_case"] for r in rows], np.array([int(r["label_gold"] == "hateful") for r in rows])


def embed_cached(texts: list[str], tag: str) -> np.ndarray:
    """Embeddings of `texts`, cached on disk by content hash (re-runs skip the model)."""
    from evaluation.embeddings import embed_texts

    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"{tag}-{digest}.npy"
    if path.exists():
        return np.load(path)
    CACHE.mkdir(parents=True, exist_ok=True)
    vectors = embed_texts(texts)
    np.save(path, vectors)
    return vectors

