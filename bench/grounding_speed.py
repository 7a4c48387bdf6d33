"""Model work and time of the groundedness scorer per RAG trace, in one process.

    .venv/bin/python bench/grounding_speed.py [--traces 30] [--torch-threads 1] [--smoke]

Traces: those of bench/e2e_scoring.py (`Texts`): an answer of 3 sentences against 3
knowledge-base articles, the earlier turn of the session and a tool result. Before each
trace the embedding caches are cleared and the answer is embedded untimed, as the worker's
scoring task has done by the time groundedness runs; then `groundedness()` is timed.
Counted: the texts and word pieces that reached the model (a wrapper around the model's
`encode`), and the longest text. Reported: medians over the traces.
No database: this measures the scorer, not the worker (bench/e2e_scoring.py does that).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "bench"))

from bench._django import settings_only  # noqa: E402

settings_only()

from e2e_scoring import Texts  # noqa: E402


def context_of(trace: dict) -> list[str]:
    """What the runner gathers as context for an e2e trace (documents, turns, tool result)."""
    previous_q, previous_a = trace["previous"]
    tool = json.dumps({"status": "refunded", "order_id": trace["order"], "amount_eur": trace["amount"]})
    return [content for _, content in trace["docs"]] + [previous_q, previous_a, tool]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=30)
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny run that only checks the script works (make test); not a measurement")
    args = parser.parse_args()
    if args.smoke:
        args.traces = 2

    import torch

    from evaluation import embeddings
    from evaluation.evaluators import groundedness

    torch.set_num_threads(args.torch_threads)
    model = embeddings._load()
    tokenizer, real_encode = model.tokenizer, model.encode
    pieces: list[int] = []

    def counting_encode(texts, **kwargs):
        pieces.extend(len(tokenizer(t, truncation=True, max_length=256)["input_ids"]) for t in texts)
        return real_encode(texts, **kwargs)

    model.encode = counting_encode
    texts = Texts(5000)
    groundedness.groundedness("warm up.", ["warm up the head and the model."])
    seconds, counts, words, longest = [], [], [], []
    for n in range(args.traces):
        trace = texts.trace(1000 + n)
        embeddings.cache_clear()
        embeddings.embed_texts([trace["answer"]])  # the scoring task's output embedding
        pieces.clear()
        started = time.perf_counter()
        groundedness.groundedness(trace["answer"], context_of(trace))
        seconds.append(time.perf_counter() - started)
        counts.append(len(pieces))
        words.append(sum(pieces))
        longest.append(max(pieces, default=0))
    print(f"groundedness {groundedness.version()}, {args.traces} traces, {args.torch_threads} torch thread(s)")
    print(f"texts encoded per trace (median): {statistics.median(counts):g}")
    print(f"word pieces encoded per trace (median): {statistics.median(words):g}, longest text {max(longest)}")
    print(f"seconds per trace (median): {statistics.median(seconds):.3f}")


if __name__ == "__main__":
    main()
