"""Micro-benchmark: median microseconds per normalize_span call on the test payloads.

Run: .venv/bin/python bench/mapping.py [--smoke]  (from the repo root; no database needed)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.tracing.mapping_payloads import BENCH_PAYLOADS
from tracing.otlp.mapping import normalize_span

ROUNDS = 200
CALLS_PER_ROUND = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny run that only checks the script works (make test); not a measurement")
    args = parser.parse_args()
    rounds = 3 if args.smoke else ROUNDS
    spans = [build() for build in BENCH_PAYLOADS]
    for span in spans:  # warm-up: imports, lru caches, orjson
        normalize_span(span)
    print(f"{'payload':32} {'attrs':>5} {'median µs':>10}")
    medians = []
    for build, span in zip(BENCH_PAYLOADS, spans, strict=True):
        samples = []
        for _ in range(rounds):
            start = time.perf_counter_ns()
            for _ in range(CALLS_PER_ROUND):
                normalize_span(span)
            samples.append((time.perf_counter_ns() - start) / CALLS_PER_ROUND / 1000)
        median = statistics.median(samples)
        medians.append(median)
        print(f"{build.__name__:32} {len(span.attributes):>5} {median:>10.1f}")
    print(f"{'median over payloads':32} {'':>5} {statistics.median(medians):>10.1f}")


if __name__ == "__main__":
    main()
