"""Datasets benchmark: bulk-adding traces from an explorer filter, and streaming exports.

    .venv/bin/python bench/datasets.py [--traces 40000] [--add 10000] [--items 100000] [--reps 3] [--smoke]

Starts a throwaway embedded Postgres (deleted on exit), migrates, and stores `--traces`
traces (half with metadata plan=pro, each with one LLM span holding its chat messages,
as ingest leaves them) with Django's bulk_create; ingest has its own benchmark.

1. Bulk-add: `datasets.services.items_add_filter` with the filter {"metadata.plan": "pro"}
   and a cap of `--add` traces, into a fresh dataset each repetition (the production
   path of POST /api/v1/datasets/<name>/items {"filter": ...} and of the bulk-add page:
   the filter query, the span messages, the duplicate check, the insert, the version).
   Target: < 10 s for 10,000 traces.
2. Export: a dataset of `--items` items; a real gunicorn (one sync worker) serves
   GET /api/v1/datasets/<name>/export for each format, read over HTTP. Reported: time
   to the first line, total time, size, and the worker's peak RSS (the kernel's VmHWM)
   after all exports. Targets: first line < 1 s, web process < 300 MB.
"""

from __future__ import annotations

import argparse
import http.client
import random
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._django import django_start  # noqa: E402

QUESTIONS = ["Can I get a refund for order {}?", "How do I reset the password of account {}?",
             "Parcel {} has not arrived yet.", "Which plan includes priority support for team {}?",
             "The invoice {} shows the wrong address."]
PLANS = ["pro", "free", "team", "enterprise"]
LOCALES = ["en-US", "de-DE", "fr-FR", "ja-JP", "es-ES"]


def load_traces(project, n: int) -> None:
    from tracing.models import Span, SpanKind, Trace

    rng = random.Random(7)
    now = datetime.now(UTC)
    traces, spans = [], []
    for i in range(n):
        trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
        question = rng.choice(QUESTIONS).format(i)
        answer = f"Thanks for reaching out about {i}. I have opened a ticket and you will hear from us soon."
        start = now - timedelta(seconds=rng.randint(0, 30 * 86400))
        plan = "pro" if i % 2 == 0 else rng.choice(PLANS[1:])
        traces.append(Trace(project=project, trace_id=trace_id, name="answer", start_time=start,
                            end_time=start + timedelta(seconds=1), latency_ms=1000, input=question, output=answer,
                            root_span_id=span_id, metadata={"plan": plan, "locale": rng.choice(LOCALES)},
                            span_count=1, model="gpt-4o-mini"))
        spans.append(Span(project=project, trace_id=trace_id, span_id=span_id, name="chat", kind=SpanKind.LLM,
                          start_time=start, end_time=start + timedelta(seconds=1), model="gpt-4o-mini",
                          messages=[{"role": "system", "content": "You are a support agent.", "source": "input"},
                                    {"role": "user", "content": question, "source": "input"},
                                    {"role": "assistant", "content": answer, "source": "output"}]))
    Trace.objects.bulk_create(traces, batch_size=2000)
    Span.objects.bulk_create(spans, batch_size=2000)


def bench_bulk_add(project, *, cap: int, reps: int) -> list[float]:
    from datasets import services
    from explorer.filters import TraceFilter

    trace_filter = TraceFilter.parse({"metadata.plan": "pro"})
    times = []
    for rep in range(reps):
        dataset = services.dataset_create(project=project, name=f"bulk-{rep}")
        started = time.perf_counter()
        result = services.items_add_filter(dataset=dataset, trace_filter=trace_filter, cap=cap)
        times.append(time.perf_counter() - started)
        assert result.added == cap, (result.added, cap)
    return times


def load_items(project, n: int):
    from datasets import services

    rng = random.Random(11)
    dataset = services.dataset_create(project=project, name="export")
    items = [services.ItemIn([{"role": "system", "content": "You are a support agent."},
                              {"role": "user", "content": rng.choice(QUESTIONS).format(i)}],
                             f"Thanks for reaching out about {i}. " + "Here is what to do next. " * 8,
                             {"plan": PLANS[0] if rng.random() < 0.6 else rng.choice(PLANS[1:]),
                              "locale": rng.choice(LOCALES)})
             for i in range(n)]
    services.items_add(dataset=dataset, items=items, change={"kind": "bench"})
    return dataset


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def export_once(base: str, key: str, path: str) -> tuple[float, float, int, int]:
    """(seconds to the first line, total seconds, bytes, lines) of one streamed export."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    started = time.perf_counter()
    connection.request("GET", path, headers={"Authorization": f"Bearer {key}"})
    response = connection.getresponse()
    assert response.status == 200, (response.status, response.read()[:500])
    first = response.readline()
    first_at = time.perf_counter() - started
    size, lines = len(first), first.count(b"\n")
    while chunk := response.read(1 << 16):
        size += len(chunk)
        lines += chunk.count(b"\n")
    total = time.perf_counter() - started
    connection.close()
    return first_at, total, size, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=40_000)
    parser.add_argument("--add", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: only that it runs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.traces, args.add, args.items, args.reps = 400, 150, 2_000, 1

    # ignore_cleanup_errors: Postgres may still be writing while the directory is removed
    # at exit (the server stops when its handle is collected, bench/_django.py).
    with tempfile.TemporaryDirectory(prefix="spyglass-bench-datasets-", ignore_cleanup_errors=True) as tmp:
        database_url = django_start(tmp)
        from django.contrib.auth import get_user_model
        from django.db import connection

        from projects.services import project_create
        from tests.integration.support import child_env, start_gunicorn, wait_for_http

        owner = get_user_model().objects.create_user(username="bench", password="bench-pw")
        project, key = project_create(name="Bench", owner=owner)
        started = time.perf_counter()
        load_traces(project, args.traces)
        load_items_started = time.perf_counter()
        dataset = load_items(project, args.items)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        print(f"loaded {args.traces:,} traces in {load_items_started - started:.1f} s, "
              f"{args.items:,} items (one add, one version) in {time.perf_counter() - load_items_started:.1f} s",
              flush=True)

        adds = bench_bulk_add(project, cap=args.add, reps=args.reps)
        print(f"| bulk-add {args.add:,} traces from a filter (p50 of {len(adds)}) | "
              f"{statistics.median(adds):.2f} s | max {max(adds):.2f} s |", flush=True)

        connection.close()  # the server gets the database to itself while exporting
        server, base = start_gunicorn(env=child_env(DATABASE_URL=database_url), log_path=Path(tmp) / "web.log",
                                      workers=1)
        try:
            # /healthz is 503 without Redis, which nothing here needs: any answer means the server is up.
            wait_for_http(base + "/healthz", proc=server, statuses=(200, 503))
            import psutil

            worker = psutil.Process(server.pid).children()[0].pid
            export_once(base, key.secret_key, f"/api/v1/datasets/{dataset.name}/items?limit=1")  # warm up
            rss_before = peak_rss_mib(worker)
            print(f"worker peak RSS before exporting: {rss_before:.0f} MiB", flush=True)
            print("| export | first line p50 | total p50 | size | lines | worker peak RSS |")
            for query in ("format=openai_jsonl", "format=csv", "format=openai_jsonl&balance_by=plan&max_share=0.3"):
                runs = [export_once(base, key.secret_key, f"/api/v1/datasets/{dataset.name}/export?{query}")
                        for _ in range(args.reps)]
                print(f"| {query} | {statistics.median(r[0] for r in runs):.3f} s | "
                      f"{statistics.median(r[1] for r in runs):.2f} s | {runs[0][2] / 1e6:.1f} MB | {runs[0][3]:,} | "
                      f"{peak_rss_mib(worker):.0f} MiB |", flush=True)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
