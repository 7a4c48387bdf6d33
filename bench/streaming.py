"""Streamed agent traces: durable spans/s when a long trace arrives in many small batches,
against the same traces sent complete, in the same run.

The production stack of bench/e2e_scoring.py (embedded Postgres, a private Redis,
gunicorn with 2 workers, ONE Celery worker on every queue, and beat), so the scoring
pipeline reacts to every stored batch while ingest runs. Each trace is an agent run: a
root agent span and alternating LLM calls (tokens, messages, a price) and tool calls
(~0.5 KB of attributes per span), some with metadata and tags.

- complete: each trace is one request holding all its spans;
- streamed: each trace is sent in batches of `--batch` spans (default 20), in the order
  the spans end (children first, the root span last, as an exporter sends them), one
  request after the other; `--threads` traces stream at the same time.

For each trace size (default 2,000 and 20,000 spans) both modes run, complete first.
Measured: durable spans/s = spans counted in Postgres for the mode's traces / wall time
from the first send to the last 200; p50 / p99 per request; and a check that every
trace row's span_count and token total equal what was sent (aggregation stayed right).
Target (issue 17): streamed within 1.5x of complete at both sizes.

    .venv/bin/python bench/streaming.py                  # 2,000 x 4 traces, 20,000 x 2 traces
    .venv/bin/python bench/streaming.py --smoke          # 200-span traces, no worker: checks it works
    .venv/bin/python bench/streaming.py --sizes 2000 --traces 4 --no-worker

Only 127.0.0.1 is targeted; every wait is bounded. The temp dir is deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402
from opentelemetry.proto.trace.v1.trace_pb2 import Span  # noqa: E402

from bench.ingest import LocalStack, _kv, _post  # noqa: E402

TARGET_RATIO = 1.5
_TASK = "Find the cheapest flight from Berlin to Lisbon next Friday and book it if under 150 EUR."
_TOOLS = ("search_flights", "get_fare_rules", "check_calendar", "book_flight", "send_email")


def _agent_spans(trace_id: bytes, n_spans: int, index: int, start_ns: int) -> list[Span]:
    """One agent trace of n_spans spans, in the order they end (root last)."""
    root_id = os.urandom(8)
    spans: list[Span] = []
    t = start_ns
    for step in range(n_spans - 1):
        span = Span(trace_id=trace_id, span_id=os.urandom(8), parent_span_id=root_id, kind=3)
        span.start_time_unix_nano = t
        t += 40_000_000 if step % 2 else 300_000_000
        span.end_time_unix_nano = t
        span.status.code = 2 if step % 997 == 996 else 1
        if step % 2 == 0:
            span.name = "chat gpt-4o-mini"
            attrs = {
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 400 + step % 50, "gen_ai.usage.output_tokens": 30 + step % 20,
                "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text",
                                                      "content": f"{_TASK} (step {step})"}]}]),
                "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
                    {"type": "tool_call", "id": f"call_{step}", "name": _TOOLS[step // 2 % len(_TOOLS)],
                     "arguments": {"from": "BER", "to": "LIS", "date": "2026-12-11"}}]}]),
            }
        else:
            tool = _TOOLS[step // 2 % len(_TOOLS)]
            span.name = f"execute_tool {tool}"
            attrs = {
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool,
                "gen_ai.tool.call.id": f"call_{step - 1}",
                "gen_ai.tool.call.result": json.dumps({"flights": [{"no": f"TP{500 + step % 90}",
                                                                    "eur": 120 + step % 40}]}),
            }
        if step % 50 == 0:
            attrs["metadata"] = json.dumps({"step": step, "planner": "react-v2", f"note_{step % 7}": "checked"})
            attrs["tag.tags"] = json.dumps([f"phase-{step // 500}"])
        for key, value in attrs.items():
            span.attributes.append(_kv(key, value))
        spans.append(span)
    root = Span(trace_id=trace_id, span_id=root_id, name="travel-agent", kind=1)
    root.start_time_unix_nano, root.end_time_unix_nano = start_ns, t + 1_000_000
    root.status.code = 1
    for key, value in {"openinference.span.kind": "AGENT", "input.value": _TASK, "output.value": "Booked TP512.",
                       "session.id": f"session-{index}", "user.id": f"user-{index % 13}",
                       "langfuse.trace.name": "travel-agent"}.items():
        root.attributes.append(_kv(key, value))
    spans.append(root)
    return spans


def _body(spans: list[Span]) -> bytes:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(_kv("service.name", "travel-agent"))
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "bench.streaming"
    scope.spans.extend(spans)
    return request.SerializeToString()


@dataclass
class Trace:
    trace_id: str
    bodies: list[bytes]
    spans: int
    tokens: int


def build(n_traces: int, n_spans: int, batch: int | None, first: int) -> list[Trace]:
    traces = []
    now = time.time_ns() - 3600 * 10**9
    for i in range(n_traces):
        trace_id = os.urandom(16)
        spans = _agent_spans(trace_id, n_spans, first + i, now)
        tokens = sum(kv.value.int_value for s in spans for kv in s.attributes if kv.key.startswith("gen_ai.usage"))
        chunks = [spans] if batch is None else [spans[k:k + batch] for k in range(0, len(spans), batch)]
        traces.append(Trace(trace_id.hex(), [_body(c) for c in chunks], len(spans), tokens))
    return traces


@dataclass
class Result:
    mode: str
    size: int
    traces: int
    requests: int = 0
    wall_s: float = 0.0
    stored: int = 0
    errors: int = 0
    wrong_aggregates: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.stored / max(self.wall_s, 1e-9)

    def pct(self, q: float) -> float:
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, round(q * (len(data) - 1)))] if data else float("nan")


def send(url: str, key: str, traces: list[Trace], threads: int, deadline: float) -> tuple[float, list[float], int]:
    """Each trace's requests in order, `threads` traces at a time; returns wall s, latencies, errors."""
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("bench/streaming.py only targets the loopback interface")

    def stream(trace: Trace) -> tuple[list[float], int]:
        latencies, errors = [], 0
        for body in trace.bodies:
            if time.monotonic() > deadline:
                return latencies, errors + 1
            status, ms = _post(parts.hostname, parts.port, body, key, use_gzip=False)
            latencies.append(ms)
            errors += status != 200
        return latencies, errors

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        outcomes = list(pool.map(stream, traces))
    wall = time.perf_counter() - started
    return wall, [ms for lat, _ in outcomes for ms in lat], sum(e for _, e in outcomes)


def measure(stack: LocalStack, key: str, *, mode: str, size: int, n_traces: int, batch: int, threads: int,
            first: int, max_seconds: float) -> Result:
    traces = build(n_traces, size, None if mode == "complete" else batch, first)
    result = Result(mode, size, n_traces, requests=sum(len(t.bodies) for t in traces))
    print(f"{mode}: {n_traces} traces x {size} spans in {result.requests} requests ...", flush=True)
    result.wall_s, result.latencies_ms, result.errors = send(stack.url, key, traces, threads,
                                                              time.monotonic() + max_seconds)
    ids = ",".join(f"'{t.trace_id}'" for t in traces)
    result.stored = int(stack.postgres.scalar(f"SELECT count(*) FROM tracing_span WHERE trace_id IN ({ids})"))
    rows = stack.postgres.psql(
        f"SELECT trace_id || ' ' || span_count || ' ' || input_tokens + output_tokens || ' ' || name "
        f"FROM tracing_trace WHERE trace_id IN ({ids})")
    found = {line.split()[0]: line.split()[1:] for line in rows.splitlines()[2:] if len(line.split()) == 4}
    result.wrong_aggregates = sum(found.get(t.trace_id) != [str(t.spans), str(t.tokens), "travel-agent"]
                                  for t in traces)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000], help="spans per trace")
    parser.add_argument("--traces", type=int, nargs="+", default=[4, 2], help="traces per size (one per size)")
    parser.add_argument("--batch", type=int, default=20, help="spans per streamed request (default 20)")
    parser.add_argument("--threads", type=int, default=2, help="traces sent at the same time (default 2)")
    parser.add_argument("--worker", action=argparse.BooleanOptionalAction, default=True,
                        help="run a Celery worker + beat while ingesting (default on)")
    parser.add_argument("--max-seconds", type=float, default=1800, help="stop sending after this long per mode")
    parser.add_argument("--smoke", action="store_true", help="200-span traces, no worker: only checks it works")
    args = parser.parse_args(argv)
    if args.smoke:
        args.sizes, args.traces, args.worker, args.max_seconds = [200], [2], False, 120
    if len(args.traces) != len(args.sizes):
        parser.error("give one --traces count per --sizes value")

    if args.worker:
        from bench.e2e_scoring import WorkerStack

        worker_stack = WorkerStack(web_workers=2, pool="solo")
        stack = worker_stack.stack
    else:
        worker_stack, stack = None, LocalStack(2)
    results: list[Result] = []
    try:
        # Warm-up, then ANALYZE as autovacuum would within its first minute (see bench/README.md).
        measure(stack, stack.key, mode="streamed", size=200, n_traces=2, batch=args.batch, threads=args.threads,
                first=10**6, max_seconds=args.max_seconds)
        stack.postgres.psql("ANALYZE;")
        first = 0
        for size, n_traces in zip(args.sizes, args.traces, strict=True):
            for mode in ("complete", "streamed"):
                results.append(measure(stack, stack.key, mode=mode, size=size, n_traces=n_traces, batch=args.batch,
                                       threads=args.threads, first=first, max_seconds=args.max_seconds))
                first += n_traces
                _print_result(results[-1])
        _print_table(results, args)
    finally:
        (worker_stack or stack).close()
    ok = all(r.errors == 0 and r.wrong_aggregates == 0 and r.stored == r.size * r.traces for r in results)
    return 0 if ok else 1


def _print_result(r: Result) -> None:
    print(f"  {r.mode} {r.size}: stored {r.stored}/{r.size * r.traces}, {r.wall_s:.1f}s, {r.rate:,.0f} spans/s, "
          f"errors {r.errors}, wrong aggregates {r.wrong_aggregates}", flush=True)


def _print_table(results: list[Result], args) -> None:
    print()
    print(f"Streamed vs complete agent traces: batches of {args.batch} spans, {args.threads} traces at a time, "
          f"{'with' if args.worker else 'without'} a scoring worker")
    header = ("spans/trace", "mode", "traces", "requests", "stored", "wall s", "spans/s", "p50 ms", "p99 ms",
              "aggregates")
    rows = [(f"{r.size:,}", r.mode, str(r.traces), str(r.requests), f"{r.stored:,}", f"{r.wall_s:.1f}",
             f"{r.rate:,.0f}", f"{r.pct(0.5):.0f}", f"{r.pct(0.99):.0f}",
             "ok" if r.wrong_aggregates == 0 else f"{r.wrong_aggregates} WRONG") for r in results]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    by_size: dict[int, dict[str, float]] = {}
    for r in results:
        by_size.setdefault(r.size, {})[r.mode] = r.rate
    for size, rates in by_size.items():
        ratio = rates["complete"] / max(rates["streamed"], 1e-9)
        verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
        print(f"{size:,} spans/trace: complete / streamed = {ratio:.2f}x (target <= {TARGET_RATIO}x: {verdict})")


if __name__ == "__main__":
    sys.exit(main())
