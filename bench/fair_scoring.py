"""Fair scoring under a flood: how long a small project's new traces wait for their cheap
scores while a big project's backlog is still being worked through.

The production stack of bench/e2e_scoring.py (embedded Postgres, a private Redis,
gunicorn, ONE Celery worker with `--concurrency 1` on every queue, and beat), with two
projects. Project A sends `--flood` traces (default 20,000) as fast as the server takes
them, in requests of `--batch` traces (default 100) from 4 client threads; then project
B sends `--trickle` traces (default 50) in requests of 10. Every trace is the 4-span RAG
trace of bench/e2e_scoring.py with its own text, so every evaluator does real work.

Measured: per B trace, the time from the 200 of its request to its first stored
evaluator score other than groundedness (the cheap scores); p50 / p95 / max. Beside it,
A's traces still unscored at that moment, and the worker's throughput over the run: a
single FIFO queue (how scoring worked before evaluation/fair_queue.py) would have made B
wait for that whole backlog, about backlog / throughput seconds; that figure is derived,
not measured in this run. Target (issue 17): p95 under 60 s with A's backlog at 20,000.

    .venv/bin/python bench/fair_scoring.py                 # 20,000 + 50
    .venv/bin/python bench/fair_scoring.py --smoke         # 200 + 10, for make test

How it differs from production: one machine runs clients, web, worker and Postgres; the
flood arrives at once rather than over minutes (the hardest case for the small project).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))

from bench.e2e_scoring import Texts, TraceFactory, WorkerStack  # noqa: E402
from bench.ingest import _post  # noqa: E402
from tests.integration.support import manage  # noqa: E402

TARGET_P95_S = 60.0


def send(url: str, key: str, factory: TraceFactory, first: int, requests: int, threads: int) -> dict[str, float]:
    """Send `requests` bodies of consecutive traces; returns trace id -> wall clock of its 200."""
    parts = urlsplit(url)
    bodies = [factory.make_traces(first + i * factory.traces_per_batch) for i in range(requests)]

    def post(item: tuple[bytes, list[str]]) -> tuple[list[str], float]:
        body, trace_ids = item
        status, _ = _post(parts.hostname, parts.port, body, key, use_gzip=False)
        if status != 200:
            raise RuntimeError(f"ingest answered {status}")
        return trace_ids, time.time()

    with ThreadPoolExecutor(threads) as pool:
        return {t: acked for trace_ids, acked in pool.map(post, bodies) for t in trace_ids}


def scored_at(stack: WorkerStack, trace_ids: list[str]) -> dict[str, float]:
    return dict(stack.query("""
        SELECT trace_id, extract(epoch FROM min(created_at))::float8 FROM scores_score
        WHERE source = 'evaluator' AND name <> 'hallucination' AND trace_id = ANY(%s)
        GROUP BY trace_id""", trace_ids))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flood", type=int, default=20_000, help="project A's traces (default 20,000)")
    parser.add_argument("--trickle", type=int, default=50, help="project B's traces (default 50)")
    parser.add_argument("--batch", type=int, default=100, help="A's traces per request (default 100)")
    parser.add_argument("--timeout", type=float, default=600.0, help="longest wait for B's scores (s)")
    parser.add_argument("--smoke", action="store_true", help="a tiny run (20 + 3 traces) that only checks it works")
    args = parser.parse_args(argv)
    if args.smoke:
        args.flood, args.trickle, args.batch = 20, 3, 10

    stack = WorkerStack(web_workers=2, pool="solo")
    try:
        created = json.loads(manage("create_project", "Trickle", "--owner", "bench", "--json",
                                    env=stack.stack.env).stdout)
        texts = Texts(5000)
        url, flood_key, trickle_key = stack.stack.url, stack.stack.key, created["secret_key"]

        # Warm-up: the worker loads the embedding model on its first task.
        warm = send(url, flood_key, TraceFactory(2 if args.smoke else 10, texts), 10_000_000, 1, 1)
        deadline = time.monotonic() + 300
        while len(scored_at(stack, list(warm))) < len(warm) and time.monotonic() < deadline:
            time.sleep(0.5)

        started = time.time()
        flood = send(url, flood_key, TraceFactory(args.batch, texts), 0, args.flood // args.batch, 4)
        print(f"A: {len(flood)} traces acknowledged in {time.time() - started:.1f} s", flush=True)
        trickle_factory = TraceFactory(min(10, args.trickle), texts)
        trickle = send(url, trickle_key, trickle_factory, 5_000_000, max(1, args.trickle // 10), 1)
        backlog_at_arrival = len(flood) - len(scored_at(stack, list(flood)))
        print(f"B: {len(trickle)} traces acknowledged; A's unscored traces then: {backlog_at_arrival}", flush=True)

        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            done = scored_at(stack, list(trickle))
            if len(done) == len(trickle):
                break
            time.sleep(0.5)
        finished = time.time()
        flood_done = scored_at(stack, list(flood))
        waits = sorted(done[t] - trickle[t] for t in done)
        throughput = (len(flood_done) + len(done)) / max(finished - started, 1e-9)
        print(f"\nB's cheap scores: {len(done)}/{len(trickle)} scored; wait p50 {statistics.median(waits):.1f} s, "
              f"p95 {waits[max(0, round(0.95 * len(waits)) - 1)]:.1f} s, max {waits[-1]:.1f} s "
              f"(target p95 < {TARGET_P95_S:.0f} s)")
        print(f"A: {len(flood) - len(flood_done)} of {len(flood)} traces still unscored when B was done; "
              f"worker throughput {throughput:.1f} traces/s")
        print(f"a single FIFO queue would have kept B waiting about {backlog_at_arrival / throughput:.0f} s "
              "(A's backlog at B's arrival / throughput; derived, not measured)")
        return 0 if len(done) == len(trickle) else 1
    finally:
        stack.close()


if __name__ == "__main__":
    sys.exit(main())
