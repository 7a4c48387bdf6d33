"""End-to-end scoring latency: traces ingested at a steady rate, time until their scores are stored.

It builds the same throwaway production stack as bench/ingest.py (embedded Postgres,
a private Redis, migrate, create_project, gunicorn with `--web-workers`, default 3, as
`make run`), plus what `make run` adds: ONE Celery worker on the queues
`pipeline,scoring,grounding,judge,signals,default` with `--concurrency 1`, and beat. The worker and beat get the
same DATABASE_URL and REDIS_URL as gunicorn.

    .venv/bin/python bench/e2e_scoring.py                            # 50 traces/s for 120 s
    .venv/bin/python bench/e2e_scoring.py --rate 50 --duration 20    # a short run while developing
    .venv/bin/python bench/e2e_scoring.py --pool solo                # the worker without a prefork child

Load: the 4-span RAG trace of bench/ingest.py (chain root with the question, retriever
with 3 documents, LLM span with system instructions and a 3-message history, tool call),
so every evaluator does real work: embeddings of input and output, the toxicity head on
them, PII, injection, and groundedness (answer sentences against the documents, the
earlier turns and the tool result). Each trace has its own text (see `Texts`): a unique
question, answer, earlier turn and tool result, and 3 documents drawn uniformly from a
knowledge base of `--kb-articles` (default 5,000), so the worker's embedding cache helps
only where a real RAG app's would: with documents that recur. Each trace gets its own
trace id and a session of 4 turns, so the implicit-signals task sees sessions of
realistic size. Traces go over real
OTLP/HTTP protobuf, one request every `--interval` seconds (default 0.1 s, so 5 traces
per request at 50 traces/s), paced by the wall clock from a few client threads, so a slow
request does not delay the next one. An OpenTelemetry BatchSpanProcessor exports every
5 s; many app instances each exporting small batches look like this. Ingest enqueues one
`traces_score` message per request, so `--interval` also sets the scoring batch size.

Measurement, per trace, in two parts since groundedness has its own task and queue
(feedback/evaluators/deferred.py): the cheap scores (embeddings, toxicity, PII,
injection), and the hallucination score. Latency = the time its evaluator scores were first stored
(`created_at` of its `scores_score` rows with source='evaluator'; an upsert by the
sweep never changes it) minus the time the client got the 200 for its request
(wall-clock UTC; client, web, worker and Postgres share this machine's clock). `scored_at`
of TraceScoring is set by the same statement, just before the commit. After the send
phase the script waits (`--drain-timeout`) until every acknowledged trace is scored.

`--sample-rate` sets the project's groundedness sample_rate (default 1, every trace) and
`--max-backlog` the worker's SPYGLASS_GROUNDING_MAX_BACKLOG; the report counts each
trace's groundedness outcome (scored, not sampled, skipped, no context).

Reported: latency p50/p95/p99/max, traces scored vs sent, the achieved ingest rate, the
backlog (acknowledged traces without a TraceScoring row, and the Redis queue length) every
`--backlog-every` seconds, per-task durations from the worker's log, and the worker's peak
memory: the RSS of the worker's process tree (prefork: the parent plus its child), sampled
every 0.5 s with psutil, plus each process's kernel high-water mark (VmHWM) at the end.

`--warmup S` (default 2) sends S seconds of traffic first, waits until it is scored
(the worker child loads the embedding model on its first task), then runs ANALYZE as
autovacuum would; only the traffic after that is measured.

Why prefork by default: `make run` starts `celery worker --concurrency 1` without
`--pool`, which is prefork: a parent that talks to the broker and one child that runs
tasks (and enforces the tasks' time limits). That is the deployment the target is about,
so its memory is the parent's plus the child's. `--pool solo` runs tasks in the one
process (what the integration tests use), for comparison. `--torch-threads N` sets
SPYGLASS_TORCH_THREADS for the worker (unset by default, as `make run`).

Only 127.0.0.1 is used; every wait is bounded. Everything lives in one temp dir (beat's
schedule file too) and is deleted at the end, also on Ctrl-C or an error.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import signal
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))

import psutil  # noqa: E402
import psycopg  # noqa: E402

from bench.ingest import SPANS_PER_TRACE, BatchFactory, LocalStack, _post  # noqa: E402
from evaluation.deferred import NOTE_QUEUED  # noqa: E402
from tests.integration.support import VENV_BIN, ManagedProcess, wait_until  # noqa: E402

QUEUES = ("pipeline", "scoring", "grounding", "judge", "signals", "default")  # settings.CELERY_WORKER_QUEUES
TURNS_PER_SESSION = 4
# The scoring backlog: traces stored but without a TraceScoring row yet.
UNSCORED_SQL = """SELECT count(*) FROM tracing_trace t WHERE NOT EXISTS (
    SELECT 1 FROM evaluation_tracescoring s WHERE s.project_id = t.project_id AND s.trace_id = t.trace_id)"""
MEMORY_SAMPLE_S = 0.5
TARGET_P95_S = 30.0


class Texts:
    """Distinct, deterministic text for trace number n: question, answer, the earlier turn
    of its session, and 3 documents drawn from a knowledge base of `kb_articles`.

    Every trace's question, answer and tool result are its own, so nothing about the
    trace itself is a cache hit for the worker's embedding LRU; documents recur as they do
    in a real RAG app, uniformly from the knowledge base (no popularity skew, which would
    only raise the hit rate). A bigger --kb-articles means fewer repeats.
    """

    TOPICS = ("billing", "refunds", "invoices", "plans", "security", "exports", "integrations", "accounts")
    PLANS = ("Starter", "Team", "Business", "Enterprise")

    def __init__(self, kb_articles: int):
        self.kb_articles = kb_articles

    def article(self, k: int) -> tuple[str, str]:
        rng = random.Random(k)
        topic, plan = self.TOPICS[k % len(self.TOPICS)], rng.choice(self.PLANS)
        a, b, c = rng.randint(2, 9), rng.randint(10, 30), rng.randint(31, 400)
        text = (f"{topic.title()} note {k}: on the {plan} plan, {topic} requests are handled within {a} business "
                f"days. Customers can raise up to {b} requests per month from Settings > {topic.title()}. "
                f"Amounts above {c} EUR need approval from the finance team before anything is changed.")
        return f"kb-{topic}-{k:05d}", text

    def trace(self, n: int) -> dict[str, object]:
        rng = random.Random(1_000_003 * n + 7)
        docs = [self.article(rng.randrange(self.kb_articles)) for _ in range(3)]
        order, amount, days = 100_000 + n, rng.randint(20, 900), rng.randint(2, 9)
        question = (f"Hi, order {order} was charged twice ({amount} EUR each). Can you refund the duplicate "
                    f"and tell me when the money arrives? My account is acct-{n % 7919:05d}.")
        answer = (f"I'm sorry about the double charge on order {order}. The duplicate payment of {amount} EUR has "
                  f"been refunded and should reach your card within {days} business days. Your plan stays active.")
        previous_q = f"Which plan is account acct-{n % 7919:05d} on, and when does it renew (ticket {n})?"
        previous_a = f"You're on the {rng.choice(self.PLANS)} plan; it renews on day {1 + n % 28} of the month."
        return {"question": question, "answer": answer, "previous": (previous_q, previous_a), "docs": docs,
                "order": order, "amount": amount}


class TraceFactory(BatchFactory):
    """bench/ingest.py's batches with per-trace text (Texts), session/user ids and the trace ids back."""

    def __init__(self, traces: int, texts: Texts):
        super().__init__(traces * SPANS_PER_TRACE)
        self.texts = texts
        # Position of each attribute in each of the 4 spans of a trace (the same in every trace).
        self._at = [{kv.key: i for i, kv in enumerate(self.spans[n].attributes)} for n in range(SPANS_PER_TRACE)]

    def _set(self, span, n: int, key: str, value: str) -> None:
        span.attributes[self._at[n][key]].value.string_value = value

    def make_traces(self, first: int) -> tuple[bytes, list[str]]:
        """One request body with traces number first, first+1, ...; and their hex trace ids."""
        for t in range(self.traces_per_batch):
            number = first + t
            text = self.texts.trace(number)
            chain, retriever, llm, tool = self.spans[t * SPANS_PER_TRACE : (t + 1) * SPANS_PER_TRACE]
            previous_q, previous_a = text["previous"]
            self._set(chain, 0, "session.id", f"session-{number // TURNS_PER_SESSION}")
            self._set(chain, 0, "user.id", f"user-{number // (TURNS_PER_SESSION * 5)}")
            self._set(chain, 0, "input.value", json.dumps({"question": text["question"],
                                                           "history": [previous_q, previous_a]}))
            self._set(chain, 0, "output.value", text["answer"])
            self._set(retriever, 1, "input.value", text["question"])
            for d, (doc_id, content) in enumerate(text["docs"]):
                self._set(retriever, 1, f"retrieval.documents.{d}.document.id", doc_id)
                self._set(retriever, 1, f"retrieval.documents.{d}.document.content", content)
            self._set(llm, 2, "gen_ai.input.messages", json.dumps([
                {"role": "user", "parts": [{"type": "text", "content": previous_q}]},
                {"role": "assistant", "parts": [{"type": "text", "content": previous_a}]},
                {"role": "user", "parts": [{"type": "text", "content": text["question"]}]},
            ]))
            self._set(llm, 2, "gen_ai.output.messages", json.dumps([
                {"role": "assistant", "finish_reason": "stop", "parts": [{"type": "text", "content": text["answer"]}]},
            ]))
            self._set(tool, 3, "gen_ai.tool.call.result", json.dumps({
                "status": "refunded", "order_id": text["order"], "amount_eur": text["amount"],
                "refund_id": f"re_{number:010d}", "message": "Refund accepted by the payment provider."}))
        body = self.make()
        return body, [self.spans[t * SPANS_PER_TRACE].trace_id.hex() for t in range(self.traces_per_batch)]


@dataclass
class Sent:
    trace_ids: list[str]
    scheduled: float  # wall clock
    acked: float = 0.0  # wall clock of the 200, 0 if none
    status: int = 0


@dataclass
class SendResult:
    requests: list[Sent] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    max_lag_s: float = 0.0  # how late the pacer issued a request behind its schedule

    @property
    def acked(self) -> dict[str, float]:
        return {t: r.acked for r in self.requests if r.status == 200 for t in r.trace_ids}

    @property
    def sent_traces(self) -> int:
        return sum(len(r.trace_ids) for r in self.requests)


def send_steady(*, url: str, key: str, rate: float, seconds: float, interval: float, first_trace: int,
                texts: Texts, on_progress=None) -> SendResult:
    """Send `rate` traces/s for `seconds`, one request per `interval`, paced by the wall clock."""
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or 80
    requests = max(1, round(seconds / interval))
    factories: dict[int, TraceFactory] = {}
    result = SendResult()
    lock = threading.Lock()

    def post(sent: Sent, body: bytes) -> None:
        status, _ = _post(host, port, body, key, use_gzip=False)
        acked = time.time()
        with lock:
            sent.status, sent.acked = status, acked if status == 200 else 0.0
            result.finished = max(result.finished, acked)
            if on_progress is not None:
                on_progress(len(sent.trace_ids) if status == 200 else 0)

    # Enough threads that a request slowed by a busy machine does not hold the next ones.
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="sender") as pool:
        start = time.monotonic()
        result.started = time.time()
        number = first_trace
        for k in range(requests):
            due = start + k * interval
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            result.max_lag_s = max(result.max_lag_s, -delay)
            # Spread a fractional rate (e.g. 4.5 traces per request) over the requests.
            count = math.floor((k + 1) * rate * interval) - math.floor(k * rate * interval)
            if count == 0:
                continue
            factory = factories.get(count) or factories.setdefault(count, TraceFactory(count, texts))
            body, trace_ids = factory.make_traces(number)
            number += count
            sent = Sent(trace_ids, scheduled=result.started + k * interval)
            with lock:
                result.requests.append(sent)
            pool.submit(post, sent, body)
    return result


class WorkerStack:
    """bench/ingest.py's LocalStack + one Celery worker + beat, on the same env."""

    def __init__(self, *, web_workers: int, pool: str, torch_threads: int | None = None,
                 max_backlog: int | None = None):
        self.pool = pool
        self.worker: ManagedProcess | None = None
        self.beat: ManagedProcess | None = None
        self.stack = LocalStack(web_workers)
        try:
            # make run leaves LOG_LEVEL at its default (INFO); the per-task lines are parsed below.
            env = {**self.stack.env, "LOG_LEVEL": "INFO"}
            if torch_threads:
                env["SPYGLASS_TORCH_THREADS"] = str(torch_threads)
            if max_backlog is not None:
                env["SPYGLASS_GROUNDING_MAX_BACKLOG"] = str(max_backlog)
            self.worker_name = f"bench-{os.getpid()}@localhost"
            self.worker = ManagedProcess("celery worker", [
                str(VENV_BIN / "celery"), "-A", "config", "worker", "-Q", ",".join(QUEUES),
                "--concurrency", "1", "--pool", pool, "-n", self.worker_name, "-l", "info",
            ], env=env, log_path=self.stack.tmp / "worker.log")
            # Beat's schedule file in the temp dir, not the repo's .data/ (a `make run` may use that one).
            self.beat = ManagedProcess("celery beat", [
                str(VENV_BIN / "celery"), "-A", "config", "beat", "-l", "info",
                "--schedule", str(self.stack.tmp / "celerybeat-schedule"),
            ], env=env, log_path=self.stack.tmp / "beat.log")
            wait_until(lambda: " ready." in self.worker.log_text(), timeout=180, what="the celery worker",
                       proc=self.worker)
            print(f"celery worker ({pool}, concurrency 1) pid {self.worker.pid}, beat pid {self.beat.pid}",
                  flush=True)
            self.db = psycopg.connect(self.stack.postgres.url, autocommit=True)
        except BaseException:
            self.close()
            raise

    def query(self, sql: str, *params) -> list[tuple]:
        with self.db.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def queue_length(self) -> int:
        return sum(self.stack.redis.llen(q) for q in QUEUES)

    def close(self) -> None:
        for proc in (self.beat, self.worker):
            if proc is not None:
                proc.stop()
        if getattr(self, "db", None) is not None:
            self.db.close()
        self.stack.close()


class MemorySampler(threading.Thread):
    """RSS of the worker's process tree every MEMORY_SAMPLE_S; keeps the peak of the sum."""

    def __init__(self, pid: int):
        super().__init__(daemon=True, name="memory")
        self.root = psutil.Process(pid)
        self.stop_event = threading.Event()
        self.peak = 0
        self.peak_processes = 0
        self.last = 0
        self.hwm: dict[int, int] = {}  # pid -> VmHWM (kernel peak RSS), last seen
        self.measure_from: float | None = None
        self.peak_measured = 0

    def run(self) -> None:
        while not self.stop_event.wait(MEMORY_SAMPLE_S):
            self.sample()

    def sample(self) -> None:
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        total = 0
        for proc in procs:
            try:
                total += proc.memory_info().rss
                self.hwm[proc.pid] = _vm_hwm(proc.pid) or self.hwm.get(proc.pid, 0)
            except psutil.NoSuchProcess:
                continue
        self.last = total
        if total > self.peak:
            self.peak, self.peak_processes = total, len(procs)
        if self.measure_from is not None:
            self.peak_measured = max(self.peak_measured, total)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(5)
        self.sample()


def _vm_hwm(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class BacklogSampler(threading.Thread):
    """Every `every` seconds: (t, acknowledged traces, unscored traces, queued messages, worker RSS)."""

    def __init__(self, stack: WorkerStack, memory: MemorySampler, every: float, progress: list[int]):
        super().__init__(daemon=True, name="backlog")
        self.stack, self.memory, self.every, self.progress = stack, memory, every, progress
        self.rows: list[tuple[float, int, int, int, int]] = []
        self.stop_event = threading.Event()
        self.t0 = time.monotonic()
        # A connection of its own: psycopg connections are not shared between threads here.
        self.db = psycopg.connect(stack.stack.postgres.url, autocommit=True)

    def run(self) -> None:
        try:
            while not self.stop_event.wait(self.every):
                self.sample()
        finally:
            self.db.close()

    def sample(self) -> None:
        unscored = self.db.execute(UNSCORED_SQL).fetchone()[0]
        self.rows.append((time.monotonic() - self.t0, self.progress[0], unscored, self.stack.queue_length(),
                          self.memory.last))


TASK_LINE = re.compile(r"Task ([\w.]+)\[[0-9a-f-]+\] succeeded in ([0-9.e-]+)s")
BATCH_LINE = re.compile(r"scoring requested for (\d+) traces")


def task_stats(log: str) -> dict[str, list[float]]:
    stats: dict[str, list[float]] = {}
    for name, seconds in TASK_LINE.findall(log):
        stats.setdefault(name, []).append(float(seconds))
    return stats


def pct(data: list[float], q: float) -> float:
    data = sorted(data)
    return data[min(len(data) - 1, round(q * (len(data) - 1)))] if data else float("nan")


def wait_scored(stack: WorkerStack, trace_ids: list[str], timeout: float) -> bool:
    """Until every one of these traces has a TraceScoring row and none still waits for
    the grounding task (or the timeout)."""
    deadline = time.monotonic() + timeout
    wanted = len(trace_ids)
    while time.monotonic() < deadline:
        done = stack.query("""
            SELECT count(*) FROM evaluation_tracescoring WHERE trace_id = ANY(%s)
            AND coalesce(notes->>'groundedness', '') <> %s""", trace_ids, NOTE_QUEUED)[0][0]
        if done >= wanted:
            return True
        if not stack.worker.alive():
            raise RuntimeError(f"celery worker exited:\n{stack.worker.log_tail()}")
        time.sleep(1.0)
    return False


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _interrupt(signum, frame) -> None:
    """SIGTERM takes the same clean-up path as Ctrl-C."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="traces per second (default 50)")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of measured sending (default 120)")
    parser.add_argument("--interval", type=float, default=0.1,
                        help="seconds between requests; rate x interval traces per request (default 0.1)")
    parser.add_argument("--warmup", type=float, default=2.0,
                        help="seconds of unmeasured traffic first, scored before the run (default 2, 0 = cold)")
    parser.add_argument("--pool", choices=("prefork", "solo"), default="prefork",
                        help="celery pool, concurrency 1 (default prefork, as make run)")
    parser.add_argument("--torch-threads", type=int,
                        help="SPYGLASS_TORCH_THREADS for the worker (default unset = torch's default, as make run)")
    parser.add_argument("--web-workers", type=int, default=3, help="gunicorn workers (default 3, as make run)")
    parser.add_argument("--drain-timeout", type=float, default=900.0,
                        help="seconds to wait after sending for every trace to be scored (default 900)")
    parser.add_argument("--kb-articles", type=int, default=5000,
                        help="knowledge-base size the 3 documents per trace are drawn from (default 5000)")
    parser.add_argument("--backlog-every", type=float, default=10.0, help="backlog sample interval (default 10 s)")
    parser.add_argument("--sample-rate", type=float, default=1.0,
                        help="the project's groundedness sample_rate (default 1 = every trace, the shipped default)")
    parser.add_argument("--max-backlog", type=int,
                        help="SPYGLASS_GROUNDING_MAX_BACKLOG for the worker (default unset = the shipped 200)")
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny run (5 traces, solo pool, 1 gunicorn worker) that only checks it works")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rate, args.duration, args.interval, args.warmup = 5.0, 1.0, 0.5, 0.0
        args.pool, args.web_workers, args.kb_articles, args.backlog_every, args.drain_timeout = "solo", 1, 50, 0.5, 180
    if args.rate <= 0 or args.duration <= 0 or args.interval <= 0:
        parser.error("--rate, --duration and --interval must be positive")

    signal.signal(signal.SIGTERM, _interrupt)
    texts = Texts(args.kb_articles)
    load_start = _loadavg()
    stack = WorkerStack(web_workers=args.web_workers, pool=args.pool, torch_threads=args.torch_threads,
                        max_backlog=args.max_backlog)
    memory = backlog = None
    try:
        if args.sample_rate != 1.0:
            # What the settings page writes (evaluation.evaluators.registry), straight into the table.
            stack.query("""
                INSERT INTO evaluation_evaluatorsettings (project_id, config, updated_at)
                SELECT id, jsonb_build_object('groundedness', jsonb_build_object('sample_rate', %s::float8)), now()
                FROM projects_project RETURNING id""", args.sample_rate)
        memory = MemorySampler(stack.worker.pid)
        memory.start()
        url, key = stack.stack.url, stack.stack.key
        number = 0
        if args.warmup:
            warm = send_steady(url=url, key=key, rate=args.rate, seconds=args.warmup, interval=args.interval,
                               first_trace=number, texts=texts)
            number += warm.sent_traces
            ok = wait_scored(stack, list(warm.acked), args.drain_timeout)
            print(f"warm-up: {len(warm.acked)} traces acknowledged, {'all' if ok else 'NOT all'} scored; "
                  f"worker RSS {memory.last / 2**20:.0f} MiB", flush=True)
            stack.stack.postgres.psql("ANALYZE;")
        log_offset = len(stack.worker.log_text())
        progress = [0]

        def on_progress(n: int) -> None:
            progress[0] += n

        backlog = BacklogSampler(stack, memory, args.backlog_every, progress)
        memory.measure_from = time.time()
        backlog.start()
        print(f"sending {args.rate:g} traces/s for {args.duration:g}s, one request every {args.interval:g}s "
              f"(load average {_loadavg()}) ...", flush=True)
        run = send_steady(url=url, key=key, rate=args.rate, seconds=args.duration, interval=args.interval,
                          first_trace=number, texts=texts, on_progress=on_progress)
        acked = run.acked
        print(f"sent {run.sent_traces} traces, {len(acked)} acknowledged; load average {_loadavg()}; "
              f"waiting for scores ...", flush=True)
        drained = wait_scored(stack, list(acked), args.drain_timeout)
        drained_at = time.time()
        backlog.stop_event.set()
        backlog.join(30)
        memory.stop()
        load_end = _loadavg()

        # The cheap scores (everything but groundedness) come from the scoring task; the
        # hallucination score from the grounding task, later. Their latencies are apart.
        rows = stack.query("""
            SELECT s.trace_id, extract(epoch FROM max(s.created_at))::float8, count(*),
                   extract(epoch FROM max(ts.scored_at))::float8, max(ts.status)
            FROM scores_score s
            LEFT JOIN evaluation_tracescoring ts ON ts.project_id = s.project_id AND ts.trace_id = s.trace_id
            WHERE s.source = 'evaluator' AND s.name <> 'hallucination' AND s.trace_id = ANY(%s)
            GROUP BY s.trace_id""", list(acked))
        latencies = [stored - acked[trace_id] for trace_id, stored, _, _, _ in rows]
        grounded = stack.query("""
            SELECT trace_id, extract(epoch FROM created_at)::float8 FROM scores_score
            WHERE source = 'evaluator' AND name = 'hallucination' AND trace_id = ANY(%s)""", list(acked))
        grounding = {
            "latencies": [stored - acked[trace_id] for trace_id, stored in grounded],
            "outcomes": dict(stack.query("""
                SELECT coalesce(split_part(notes->>'groundedness', ':', 1), 'scored'), count(*)
                FROM evaluation_tracescoring WHERE trace_id = ANY(%s) GROUP BY 1 ORDER BY 1""", list(acked))),
        }
        score_counts = statistics.multimode([n for _, _, n, _, _ in rows]) if rows else []
        failed = sum(1 for *_, status in rows if status != "scored")
        # A sweep's upsert keeps created_at but moves scored_at; the grounding task moves
        # it too, so compare with the latest score of either task.
        last_score = dict(stack.query("""
            SELECT trace_id, extract(epoch FROM max(created_at))::float8 FROM scores_score
            WHERE source = 'evaluator' AND trace_id = ANY(%s) GROUP BY trace_id""", list(acked)))
        rescored = sum(1 for trace_id, _, _, scored_at, _ in rows
                       if scored_at and scored_at - last_score[trace_id] > 1.0)
        tasks = task_stats(stack.worker.log_text()[log_offset:])
        batches = [int(n) for n in BATCH_LINE.findall(stack.worker.log_text()[log_offset:])]
        _print_report(args=args, run=run, acked=acked, latencies=latencies, rows=rows, score_counts=score_counts,
                      failed=failed, rescored=rescored, drained=drained,
                      drain_s=(max((r[1] for r in rows), default=drained_at) if drained else drained_at) - run.finished,
                      memory=memory, backlog=backlog, tasks=tasks, batches=batches,
                      loads=(load_start, load_end), grounding=grounding)
        ok = drained and len(rows) == len(acked) == run.sent_traces and failed == 0
        return 0 if ok else 1
    finally:
        if backlog is not None:
            backlog.stop_event.set()
        if memory is not None:
            memory.stop_event.set()
        stack.close()


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def _print_report(*, args, run: SendResult, acked, latencies, rows, score_counts, failed, rescored, drained, drain_s,
                  memory: MemorySampler, backlog: BacklogSampler, tasks, batches, loads, grounding) -> None:
    mib = 2**20
    send_s = max(run.finished - run.started, 1e-9)
    request_s = [r.acked - r.scheduled for r in run.requests if r.status == 200]
    p95 = pct(latencies, 0.95)
    verdict = "met" if drained and len(rows) == run.sent_traces and p95 <= TARGET_P95_S else "MISSED"
    print()
    threads = f", SPYGLASS_TORCH_THREADS={args.torch_threads}" if args.torch_threads else ""
    print(f"End-to-end scoring: {args.rate:g} traces/s for {args.duration:g}s, one OTLP request every "
          f"{args.interval:g}s, 1 celery worker ({args.pool}, concurrency 1{threads}), {args.web_workers} gunicorn "
          f"workers; "
          f"load average {loads[0]} at start, {loads[1]} at end (1/5/15 min), {os.cpu_count()} CPUs")
    print()
    _table(("metric", "value"), [
        ("traces sent / acknowledged / scored", f"{run.sent_traces} / {len(acked)} / {len(rows)}"
         + ("" if drained else " (drain TIMED OUT)")),
        ("evaluator scores per trace", "/".join(map(str, score_counts)) or "n/a"),
        ("traces failed (TraceScoring.status)", str(failed)),
        ("traces re-scored by the sweep", str(rescored)),
        ("achieved ingest rate", f"{len(acked) / send_s:.1f} traces/s, first request to last 200 (pacer at most "
                                 f"{run.max_lag_s * 1000:.0f} ms late)"),
        ("OTLP request latency p50 / p99 / max", " / ".join(f"{pct(request_s, q) * 1000:.0f}" for q in (0.5, 0.99, 1.0))
         + " ms"),
        ("ingest → scores stored (all but groundedness), p50" + ("" if drained else " (scored traces only)"),
         f"{pct(latencies, 0.5):.2f} s"),
        ("p95", f"**{p95:.2f} s** (target ≤ {TARGET_P95_S:g} s: {verdict})"),
        ("p99", f"{pct(latencies, 0.99):.2f} s"),
        ("max", f"{max(latencies, default=float('nan')):.2f} s"),
        ("groundedness outcome per trace (TraceScoring note)",
         ", ".join(f"{name} {n}" for name, n in grounding["outcomes"].items())
         + f" (sample_rate {args.sample_rate:g})"),
        ("ingest → hallucination score stored, p50 / p95 / max",
         " / ".join(f"{pct(grounding['latencies'], q):.2f}" for q in (0.5, 0.95, 1.0))
         + f" s ({len(grounding['latencies'])} traces)"),
        ("last trace scored after the send phase" if drained else "gave up waiting after the send phase",
         f"{drain_s:.1f} s"),
        ("worker peak RSS, process tree (sampled 0.5 s)",
         f"**{memory.peak / mib:.0f} MiB** ({memory.peak_processes} process(es)); "
         f"during the measured run {memory.peak_measured / mib:.0f} MiB"),
        ("sum of VmHWM of the worker processes", f"{sum(memory.hwm.values()) / mib:.0f} MiB "
                                                  f"({', '.join(f'{v / mib:.0f}' for v in memory.hwm.values())})"),
    ])
    print()
    print("Backlog (measured phase; t from the first request):")
    print()
    _table(("t s", "traces acked", "unscored traces", "queued messages", "worker RSS MiB"),
           [(f"{t:.0f}", str(sent), str(unscored), str(queued), f"{rss / mib:.0f}")
            for t, sent, unscored, queued, rss in backlog.rows])
    print()
    print("Worker tasks in the measured phase (from its log):")
    print()
    task_rows = []
    for name, seconds in sorted(tasks.items()):
        task_rows.append((name, str(len(seconds)), f"{statistics.fmean(seconds) * 1000:.0f}",
                          f"{pct(seconds, 0.95) * 1000:.0f}", f"{sum(seconds):.1f}"))
    _table(("task", "count", "mean ms", "p95 ms", "busy s"), task_rows)
    if batches:
        print(f"\ntraces per traces_score message: mean {statistics.fmean(batches):.1f}, max {max(batches)}")
        busy = sum(sum(v) for v in tasks.values())
        print(f"worker busy {busy:.1f} s of {args.duration + drain_s:.1f} s (send + drain)")


if __name__ == "__main__":
    sys.exit(main())
