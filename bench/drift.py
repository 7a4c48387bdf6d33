"""The drift page at scale: one project of 250,000 traces over the last 30 days.

    .venv/bin/python bench/drift.py [--traces 250000] [--reps 5] [--smoke]

Starts a throwaway embedded Postgres (bench/_django.py), applies the migrations and COPYs
one project's traces over the last 30 days (more recent traffic than old), each with an
input embedding (a seeded synthetic unit vector near one of 8 subjects, as
bench/semantic.py makes them) and scores as the evaluators and end users leave them
(20 % a hallucination score with its decision, 20 % input toxicity, 6 % a thumbs vote).
In the last 4 days a third of the traffic asks about a new subject (GPU questions, a
vector direction no baseline input has). The HNSW index is rebuilt over the embeddings
(timed) and the tables VACUUM ANALYZEd, as autovacuum leaves them.

Then times, with the default windows (the last 7 days against the 28 before), after one
warm-up: `drift_report` (every query and statistic) with its main parts (the one scan
of each window, the classifier), and the whole page
(`GET /p/<slug>/drift/` through Django's test client: report, template, plotly figure).
p50 and p95 over --reps calls; the page's verdict (flagged features, AUC, topics) is
printed so a run also shows the planted topic was found.
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

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._django import django_start  # noqa: E402

DIMS = 384
DAYS = 30
NEW_TOPIC_DAYS = 4
NEW_TOPIC_SHARE = 0.33
SUBJECTS = {
    "billing": ["invoice", "charge", "billing", "refund", "plan", "card", "payment"],
    "login": ["password", "login", "reset", "two-factor", "locked", "email", "sso"],
    "export": ["export", "csv", "json", "download", "backup", "data", "archive"],
    "api": ["api", "rate", "limit", "token", "endpoint", "webhook", "sdk"],
    "team": ["seat", "invite", "member", "role", "admin", "owner", "team"],
    "storage": ["bucket", "storage", "quota", "upload", "file", "volume", "disk"],
    "network": ["dns", "domain", "certificate", "tls", "firewall", "ip", "vpn"],
    "account": ["delete", "account", "close", "transfer", "rename", "profile", "settings"],
}
GPU_WORDS = ["gpu", "cuda", "a100", "h100", "nvidia", "vram", "training"]
OPENERS = ["How do I", "Why can't I", "Can you help me", "Is it possible to", "What is the way to"]
VERBS = ["change", "fix", "set up", "check", "configure", "find"]
MODELS = {"gpt-4o-mini": 50, "claude-3-5-haiku": 30, "gemini-2.0-flash": 20}
TRACE_COLS = ("project_id", "trace_id", "name", "environment", "tags", "metadata", "start_time", "end_time",
              "latency_ms", "status", "span_count", "error_count", "input", "output", "input_tokens",
              "output_tokens", "total_tokens", "cost_usd", "unpriced_spans", "model", "prompt_name",
              "prompt_version", "created_at", "updated_at")
SCORE_COLS = ("id", "project_id", "trace_id", "name", "value", "data_type", "source", "comment", "metadata",
              "created_at", "updated_at")
INDEX = "trace_embedding_hnsw"


def around(center: np.ndarray, cos: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector at cosine similarity `cos` from the unit `center`."""
    noise = rng.standard_normal(DIMS)
    noise -= (noise @ center) * center
    noise /= np.linalg.norm(noise)
    out = cos * center + np.sqrt(1 - cos**2) * noise
    return (out / np.linalg.norm(out)).astype(np.float32)


def text_for(words: list[str], rng: random.Random) -> str:
    a, b = rng.sample(words, 2)
    return f"{rng.choice(OPENERS)} {rng.choice(VERBS)} the {a} {b} on my account?"


def load(database_url: str, project_id: int, n_traces: int, seed: int = 5) -> dict:
    """COPY traces, their input embeddings (index dropped, rebuilt after) and scores."""
    import orjson
    import psycopg
    from pgvector.psycopg import register_vector

    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    centres = nrng.standard_normal((len(SUBJECTS) + 1, DIMS))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    subjects = list(SUBJECTS)
    now = datetime.now(UTC)
    written = now - timedelta(hours=1)
    models, weights = list(MODELS), list(MODELS.values())
    timings: dict[str, float] = {}
    planted = 0
    t0 = time.perf_counter()
    with psycopg.connect(database_url) as conn:
        register_vector(conn)
        index_def = conn.execute("SELECT pg_get_indexdef(%s::regclass)", [INDEX]).fetchone()[0]
        conn.execute(f"DROP INDEX {INDEX}")
        scores = []
        with (
            conn.cursor().copy(f"COPY tracing_trace ({', '.join(TRACE_COLS)}) FROM STDIN") as traces,
        ):
            embeddings = []
            for i in range(n_traces):
                age = rng.random() ** 1.3 * DAYS  # days ago; more recent traffic than old
                start = now - timedelta(days=age)
                new_topic = age < NEW_TOPIC_DAYS and rng.random() < NEW_TOPIC_SHARE
                if new_topic:
                    planted += 1
                    text, centre = text_for(GPU_WORDS, rng), centres[-1]
                else:
                    k = rng.randrange(len(subjects))
                    text, centre = text_for(SUBJECTS[subjects[k]], rng), centres[k]
                latency = min(rng.lognormvariate(7.0, 0.6), 60_000)
                model = rng.choices(models, weights)[0]
                in_tok, out_tok = rng.randint(200, 3000), rng.randint(20, 500)
                trace_id = uuid.uuid4().hex
                metadata = {"locale": rng.choice(["en-US", "de-DE", "fr-FR", "ja-JP"]),
                            "plan": rng.choice(["free", "pro", "enterprise"])}
                traces.write_row((
                    project_id, trace_id, "support-turn", "production", [], orjson.dumps(metadata).decode(), start,
                    start + timedelta(milliseconds=latency), latency, "ok", 3, 0, text,
                    "Here is what the help center says about that.", in_tok, out_tok, in_tok + out_tok,
                    round(in_tok * 1.5e-7 + out_tok * 6e-7, 8), 0, model, "support-answer", "3", written, written,
                ))
                embeddings.append((trace_id, around(centre, rng.uniform(0.55, 0.9), nrng)))
                if rng.random() < 0.2:
                    value = rng.random() ** (2 if new_topic else 3)
                    scores.append((trace_id, "hallucination", value, "numeric", "evaluator",
                                   orjson.dumps({"flagged": value >= 0.5}).decode()))
                if rng.random() < 0.2:
                    value = rng.random() ** 6
                    scores.append((trace_id, "toxicity_input", value, "numeric", "evaluator",
                                   orjson.dumps({"flagged": value >= 0.5}).decode()))
                if rng.random() < 0.06:
                    scores.append((trace_id, "user_thumbs", float(rng.random() < 0.75), "boolean", "end_user", "{}"))
                if (i + 1) % 50_000 == 0:
                    print(f"  {i + 1:,} traces ({time.perf_counter() - t0:.0f} s)", flush=True)
        cols = "project_id, trace_id, span_id, kind, embedding, model, created_at"
        with conn.cursor().copy(f"COPY evaluation_traceembedding ({cols}) FROM STDIN WITH (FORMAT BINARY)") as out:
            out.set_types(["int8", "varchar", "varchar", "varchar", "vector", "varchar", "timestamptz"])
            for trace_id, vector in embeddings:
                out.write_row((project_id, trace_id, "", "input", vector, "synthetic", written))
        with conn.cursor().copy(f"COPY scores_score ({', '.join(SCORE_COLS)}) FROM STDIN") as out:
            for trace_id, name, value, data_type, source, meta in scores:
                out.write_row((uuid.uuid4(), project_id, trace_id, name, value, data_type, source, "", meta,
                               written, written))
        conn.commit()
        timings["load_s"] = time.perf_counter() - t0
        print(f"  loaded {n_traces:,} traces ({planted:,} on the new topic), {len(embeddings):,} embeddings, "
              f"{len(scores):,} scores in {timings['load_s']:.0f} s; building HNSW", flush=True)
        conn.execute("SET maintenance_work_mem = '1GB'")
        t0 = time.perf_counter()
        conn.execute(index_def)
        conn.commit()
        timings["index_s"] = time.perf_counter() - t0
        conn.autocommit = True
        for table in ("tracing_trace", "evaluation_traceembedding", "scores_score"):
            conn.execute(f"VACUUM ANALYZE {table}")
        print(f"  HNSW built in {timings['index_s']:.0f} s", flush=True)
    return {"planted": planted, **timings}


def timed(fn, reps: int) -> tuple[float, float, object]:
    fn()  # warm-up: caches, the first connection, sklearn's imports
    samples, result = [], None
    for _ in range(reps):
        t = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - t)
    samples.sort()
    return statistics.median(samples), samples[min(reps - 1, round(0.95 * (reps - 1)))], result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=250_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny run that only checks the script works (make test); not a measurement")
    args = parser.parse_args()
    if args.smoke:
        args.traces, args.reps = 3_000, 1

    with tempfile.TemporaryDirectory(prefix="spyglass-bench-") as tmp:
        database_url = django_start(tmp)
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.test import Client
        from django.utils import timezone

        from drift import selectors, stats
        from drift.windows import BASELINE_DEFAULT, CURRENT_DEFAULT
        from projects.services import project_create

        owner = get_user_model().objects.create_user("bench-owner", password="pw")
        project, _ = project_create(name="Drift bench", owner=owner)
        print(f"loading {args.traces:,} traces over {DAYS} days", flush=True)
        loaded = load(database_url, project.pk, args.traces)

        now = timezone.now()
        current = selectors.Window(now - CURRENT_DEFAULT, now)
        baseline = selectors.Window(current.start - BASELINE_DEFAULT, current.start)
        parts = {
            "one scan of the baseline (count, features, 4,000 embeddings)": lambda: selectors.window_sample(
                project=project, window=baseline, embeddings=selectors.REFERENCE_SAMPLE),
            "one scan of the current window (count, features, 1,000 embeddings)": lambda: selectors.window_sample(
                project=project, window=current, embeddings=selectors.EMBEDDING_SAMPLE),
        }
        rows = []
        for name, fn in parts.items():
            p50, p95, _ = timed(fn, args.reps)
            rows.append((name, p50, p95))
        ref = next(iter(parts.values()))().embeddings
        cur = list(parts.values())[1]().embeddings
        p50, p95, _ = timed(lambda: stats.embedding_drift(ref.vectors, cur.vectors), args.reps)
        rows.append(("classifier AUC (5-fold, 1,000 + 1,000)", p50, p95))
        p50, p95, report = timed(
            lambda: selectors.drift_report(project=project, baseline=baseline, current=current), args.reps)
        rows.append(("drift_report (all of the above + topics)", p50, p95))
        client = Client()
        client.force_login(owner)
        url = f"/p/{project.slug}/drift/"

        def page():
            response = client.get(url)
            assert response.status_code == 200, response.status_code
            return response

        p50, p95, _ = timed(page, args.reps)
        rows.append((f"page GET {url.replace(project.slug, '<slug>')}", p50, p95))

        print(f"\n{args.traces:,} traces over {DAYS} days ({loaded['planted']:,} planted GPU questions in the last "
              f"{NEW_TOPIC_DAYS} days); windows: current {report.current_traces:,} traces, baseline "
              f"{report.baseline_traces:,}; sampled {report.current_sampled:,} / {report.baseline_sampled:,}; "
              f"HNSW build {loaded['index_s']:.0f} s; {args.reps} calls after a warm-up\n")
        print("| step | p50 s | p95 s |\n|---|---:|---:|")
        for name, p50, p95 in rows:
            print(f"| {name} | {p50:.2f} | {p95:.2f} |")
        flagged = [f"{f.name} ({f.status}, PSI {f.psi:.3f})" for f in report.features
                   if f.status in (stats.WARN, stats.ALERT)]
        print(f"\nembedding AUC {report.embedding.auc:.3f} ({report.embedding.status}); flagged: "
              f"{', '.join(flagged) or 'none'}")
        for topic in report.topics:
            print(f"topic: {topic.label} ({topic.size} of the current sample, {topic.share:.0%})")
        connection.close()


if __name__ == "__main__":
    main()
