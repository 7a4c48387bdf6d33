"""Sustained ingest overload: the receiver sheds load with 503 + Retry-After, never a 500,
and the web processes' memory stays flat.

It builds the production stack in a temp dir (embedded Postgres, a private Redis,
migrate, gunicorn with threads as `make run` serves), then for `--duration` seconds
(default 300) many client threads (`--clients`, default 64) post OTLP/protobuf batches
(`--batch-spans` realistic LLM spans from bench/ingest.py, fresh ids each) as fast as
they get answers, on keep-alive connections. By default they ignore Retry-After (the
worst case: a fleet that retries at once); `--honor-retry-after` waits as a real OTLP
exporter does. Every second it samples the RSS of the gunicorn master and workers
(/proc), and at the end prints the status counts, latencies, the RSS median / max and
its growth (median of the last minute minus median of the first), and stored vs
acknowledged spans.

    .venv/bin/python bench/overload.py                     # 5 minutes, 64 clients, 2 workers x 4 threads
    .venv/bin/python bench/overload.py --duration 60 --inflight 1000   # "no limit", for contrast
    .venv/bin/python bench/overload.py --smoke             # a few seconds: checks it works (make test)

Exit status 1 if any answer was a 5xx other than 503, a 503 came without Retry-After, or an
acknowledged span is missing (stored < acknowledged).
Only 127.0.0.1 is targeted; everything is deleted at the end.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))

from bench.ingest import BatchFactory, LocalStack  # noqa: E402

REQUEST_TIMEOUT = 30.0


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(p) for p in children.read().split()]
    except OSError:
        return []


@dataclass
class Sample:
    t: float
    total_mib: float  # master + workers
    workers: int
    largest_worker_mib: float


@dataclass
class Tally:
    statuses: Counter = field(default_factory=Counter)
    latencies_ms: dict[int, list[float]] = field(default_factory=dict)
    acked_spans: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: int, ms: float, spans: int) -> None:
        with self.lock:
            self.statuses[status] += 1
            self.latencies_ms.setdefault(status, []).append(ms)
            if status == 200:
                self.acked_spans += spans


def _pct(data: list[float], q: float) -> float:
    data = sorted(data)
    return data[min(len(data) - 1, round(q * (len(data) - 1)))] if data else float("nan")


def client(*, host: str, port: int, key: str, factory: BatchFactory, make_lock: threading.Lock, spans: int,
           deadline: float, tally: Tally, honor_retry_after: bool) -> None:
    headers = {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {key}"}
    conn: http.client.HTTPConnection | None = None
    while time.monotonic() < deadline:
        with make_lock:  # the factory rewrites one template in place
            body = factory.make()
        if conn is None:
            conn = http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT)
        started = time.perf_counter()
        retry_after = None
        try:
            conn.request("POST", "/v1/traces", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            status = response.status
            retry_after = response.getheader("Retry-After")
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException):
            status = 0  # no answer: refused, reset or timed out
            conn.close()
            conn = None
        tally.add(status, (time.perf_counter() - started) * 1000, spans)
        if status in (429, 503) and (retry_after is None or not retry_after.isdigit()):
            tally.add(-1, 0, 0)  # a shed answer without a usable Retry-After
        if honor_retry_after and status in (429, 503) and retry_after and retry_after.isdigit():
            time.sleep(min(float(retry_after), max(0.0, deadline - time.monotonic())))
    if conn is not None:
        conn.close()


def sample_rss(master: int, stop: threading.Event, samples: list[Sample], started: float) -> None:
    while not stop.wait(1.0):
        workers = _children(master)
        sizes = [_rss_kib(pid) / 1024 for pid in workers]
        samples.append(Sample(time.monotonic() - started, _rss_kib(master) / 1024 + sum(sizes), len(workers),
                              max(sizes, default=0.0)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=300, help="seconds of overload (default 300)")
    parser.add_argument("--clients", type=int, default=64, help="concurrent client threads (default 64)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker (default 4)")
    parser.add_argument("--inflight", type=int, default=2,
                        help="SPYGLASS_MAX_INGEST_INFLIGHT per process (default 2, the shipped default)")
    parser.add_argument("--batch-spans", type=int, default=100, help="spans per request (default 100)")
    parser.add_argument("--honor-retry-after", action="store_true",
                        help="clients wait Retry-After after a 429/503, as OTLP exporters do")
    parser.add_argument("--smoke", action="store_true", help="a few seconds, 8 clients, 1 worker: checks it works")
    args = parser.parse_args(argv)
    if args.smoke:
        args.duration, args.clients, args.workers, args.threads, args.inflight, args.batch_spans = 4, 8, 1, 4, 1, 16

    factory = BatchFactory(args.batch_spans)
    stack = LocalStack(args.workers, gunicorn_args=["--threads", str(args.threads)],
                       env={"SPYGLASS_MAX_INGEST_INFLIGHT": str(args.inflight)})
    try:
        parts = urlsplit(stack.url)
        tally = Tally()
        samples: list[Sample] = []
        stop = threading.Event()
        started = time.monotonic()
        deadline = started + args.duration
        sampler = threading.Thread(target=sample_rss, args=(stack.web.pid, stop, samples, started), daemon=True)
        sampler.start()
        print(f"overload: {args.clients} clients for {args.duration:.0f}s against {args.workers} workers x "
              f"{args.threads} threads, in-flight limit {args.inflight}/process, {args.batch_spans}-span batches"
              f"{', honoring Retry-After' if args.honor_retry_after else ', ignoring Retry-After'} ...", flush=True)
        make_lock = threading.Lock()
        clients = [threading.Thread(target=client, daemon=True, kwargs=dict(
            host=parts.hostname, port=parts.port, key=stack.key, factory=factory, make_lock=make_lock,
            spans=args.batch_spans, deadline=deadline, tally=tally, honor_retry_after=args.honor_retry_after))
            for _ in range(args.clients)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(args.duration + REQUEST_TIMEOUT + 30)
        wall = time.monotonic() - started
        stop.set()
        sampler.join(5)
        stored = stack.span_count()
        return report(args, tally, samples, wall, stored)
    finally:
        stack.close()


def report(args, tally: Tally, samples: list[Sample], wall: float, stored: int) -> int:
    statuses = {s: n for s, n in tally.statuses.items() if s >= 0}
    answered = sum(statuses.values())
    print()
    print("| status | answers | share | p50 ms | p99 ms |")
    print("|---|---|---|---|---|")
    for status in sorted(statuses):
        n = statuses[status]
        name = "no answer" if status == 0 else str(status)
        lat = tally.latencies_ms[status]
        print(f"| {name} | {n:,} | {n / answered:.1%} | {_pct(lat, 0.5):.0f} | {_pct(lat, 0.99):.0f} |")
    server_errors = sum(n for s, n in statuses.items() if s >= 500 and s != 503)
    print()
    window = max(1, min(60, len(samples) // 5))  # the first and last minute (a fifth of a short run)
    totals = [s.total_mib for s in samples]
    first = statistics.median(totals[:window]) if samples else float("nan")
    last = statistics.median(totals[-window:]) if samples else float("nan")
    print("| figure | value |")
    print("|---|---|")
    print(f"| wall s / clients / workers x threads / in-flight limit | {wall:.0f} / {args.clients} / "
          f"{args.workers} x {args.threads} / {args.inflight} |")
    print(f"| answers/s | {answered / wall:,.0f} |")
    print(f"| spans acknowledged/s | {tally.acked_spans / wall:,.0f} |")
    print(f"| spans stored / acknowledged | {stored:,} / {tally.acked_spans:,} |")
    print(f"| shed answers without Retry-After | {tally.statuses.get(-1, 0)} |")
    print(f"| 5xx other than 503 | {server_errors} |")
    if samples:
        print(f"| web RSS MiB (master + workers, {len(samples)} samples): median / max | "
              f"{statistics.median(totals):.0f} / {max(totals):.0f} |")
        print(f"| web RSS MiB: first {window} s median → last {window} s median (growth) | "
              f"{first:.0f} → {last:.0f} ({last - first:+.0f}) |")
        print(f"| largest worker RSS MiB: max | {max(s.largest_worker_mib for s in samples):.0f} |")
    else:
        print("| web RSS MiB | no samples |")
    # A request that timed out may still have been stored; an acknowledged one must be.
    unanswered_spans = statuses.get(0, 0) * args.batch_spans
    stored_ok = tally.acked_spans <= stored <= tally.acked_spans + unanswered_spans
    return 0 if server_errors == 0 and stored_ok and tally.statuses.get(-1, 0) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
