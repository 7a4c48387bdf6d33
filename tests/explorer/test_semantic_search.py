"""Semantic search and similar traces for a small project beside a large one.

All projects share one HNSW index. A search that walks it and then drops the other
projects' rows sees only the globally nearest rows: when those belong to a large
neighbour, a small project's page comes back short or empty although it has plenty of
traces. Whether Postgres walks that index or reads the project's rows through its
project_id index is the planner's guess from the table statistics, so the page must
be right under either: these tests put a 50-trace project next to a 50,000-trace one
whose vectors crowd around the query, search with the statistics from before the big
project's import and with fresh ones, and compare every page with numpy's exact answer.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from evaluation import selectors as evaluation_selectors
from evaluation.models import TraceEmbedding
from explorer import selectors
from explorer.filters import TraceFilter
from projects.models import Project
from projects.services import project_create
from tests.otlp_payloads import BASE_NS, MS
from tracing.models import Trace
from tracing.otlp.types import RawSpan
from tracing.services import spans_ingest

DIMS = 384
BIG_TRACES = 50_000
SMALL_TRACES = 50
PAGE = 20
# The small project's traces that are about the query's subject: the few a walk of the
# shared index reaches before the big project's rows fill it.
NEAR_QUERY = 4
TABLE = TraceEmbedding._meta.db_table


@dataclass
class Tenants:
    query: np.ndarray  # the unit vector the searches ask about
    big: Project
    big_ids: list[str]
    big_vectors: np.ndarray  # (BIG_TRACES, DIMS); row i is big_ids[i]'s input
    small: Project
    small_rows: dict[str, np.ndarray]  # trace_id -> its rows' vectors (input, output)


def _around(center: np.ndarray, cos: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors at cosine similarity `cos` (one per row) from the unit `center`."""
    center = center.astype(np.float64)
    noise = rng.standard_normal((len(cos), DIMS))
    noise -= np.outer(noise @ center, center)  # orthogonal to the center
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    out = cos[:, None] * center + np.sqrt(1 - cos**2)[:, None] * noise
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def _ingest(project: Project, n: int) -> list[str]:
    """`n` one-span traces through the production ingest path, in one batch."""
    ids = [secrets.token_hex(16) for _ in range(n)]
    spans_ingest(project=project, spans=[
        RawSpan(trace_id=trace_id, span_id=secrets.token_hex(8), parent_span_id=None, name="answer", otel_kind=1,
                start_ns=BASE_NS + i * MS, end_ns=BASE_NS + i * MS + 900 * MS, status_code=1, status_message=None,
                attributes={"input.value": f"question {i}", "output.value": f"answer {i}"}, events=[],
                resource={"service.name": "support-bot"})
        for i, trace_id in enumerate(ids)
    ])  # fmt: skip
    return ids


def _copy_embeddings(rows: list[tuple[int, str, str, np.ndarray]]) -> None:
    """Binary COPY of (project_id, trace_id, kind, vector): 50,000 ORM inserts would
    take minutes."""
    from pgvector.psycopg.vector import register_vector_info
    from psycopg.types import TypeInfo

    now = datetime.now(UTC)
    cols = "project_id, trace_id, span_id, kind, embedding, model, created_at"
    with connection.connection.cursor() as cursor:
        # Registered on this cursor only, so Django's own queries read vectors as before.
        register_vector_info(cursor, TypeInfo.fetch(connection.connection, "vector"))
        with cursor.copy(f"COPY {TABLE} ({cols}) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "varchar", "varchar", "varchar", "vector", "varchar", "timestamptz"])
            for project_id, trace_id, kind, vector in rows:
                copy.write_row((project_id, trace_id, "", kind, vector, "synthetic", now))


def _make_tenants() -> Tenants:
    rng = np.random.default_rng(13)
    subject = rng.standard_normal(DIMS)
    subject /= np.linalg.norm(subject)  # what the big project is about
    query = _around(subject, np.array([0.9]), rng)[0].astype(np.float64)  # a question on it
    User = get_user_model()
    big, _ = project_create(name="Big Co", owner=User.objects.create_user("big-owner"))
    small, _ = project_create(name="Small Co", owner=User.objects.create_user("small-owner"))

    # The small project: a few traces right on the query's subject, the rest spread over
    # four topics of its own only loosely related to it (cosine ~0.3); an input and an
    # output row per trace. Its nearest traces to the query are therefore mostly further
    # away than thousands of the big project's rows.
    topics = _around(query, np.full(4, 0.3), rng)
    inputs = np.vstack([
        _around(query, rng.uniform(0.9, 0.95, NEAR_QUERY), rng),
        *[_around(topics[i % 4], rng.uniform(0.6, 0.9, 1), rng) for i in range(SMALL_TRACES - NEAR_QUERY)],
    ])  # fmt: skip
    outputs = np.vstack([_around(v, np.array([0.7]), rng) for v in inputs])
    small_rows = {t: np.vstack([i, o]) for t, i, o in zip(_ingest(small, SMALL_TRACES), inputs, outputs, strict=True)}
    _copy_embeddings([(small.pk, t, kind, v) for t, m in small_rows.items()
                      for kind, v in zip(("input", "output"), m, strict=True)])  # fmt: skip
    # The statistics the planner works from until autovacuum re-analyzes the table.
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {TABLE}")

    # Then the big project imports its history: every trace is about the query's subject
    # (cosine 0.55-0.9), so the globally nearest rows to the query are all its own. Its
    # traces exist only as embeddings: the nearest-neighbour read never looks at traces.
    big_ids = [f"{i:032x}" for i in range(BIG_TRACES)]
    big_vectors = _around(subject, rng.uniform(0.55, 0.9, BIG_TRACES), rng)
    index = "trace_embedding_hnsw"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_indexdef(%s::regclass)", [index])
        index_def = cursor.fetchone()[0]
        # One HNSW build over all rows is several times faster than growing the graph
        # row by row during the COPY; with this much memory the build never spills.
        cursor.execute(f"DROP INDEX {index}")
        _copy_embeddings([(big.pk, t, "input", v) for t, v in zip(big_ids, big_vectors, strict=True)])
        # Django's foreign keys are deferred; CREATE INDEX refuses to run while their
        # checks for the copied rows are pending, so run them now.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
        cursor.execute(index_def)
    return Tenants(query.astype(np.float32), big, big_ids, big_vectors, small, small_rows)


@pytest.fixture(scope="module")
def tenants(django_db_setup, django_db_blocker):
    """Both projects, built once for the module inside a transaction that is rolled back
    at the end, so the 50,000 rows never reach other tests (each test runs in a
    savepoint of it)."""
    with django_db_blocker.unblock():
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            yield _make_tenants()
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)


@pytest.fixture(params=["stale", "fresh"])
def statistics(request, tenants, db):
    """The planner's statistics: from before the big import (as autovacuum leaves them
    for a while after it), or fresh (ANALYZE, undone with the test's savepoint)."""
    if request.param == "fresh":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {TABLE}")
    return request.param


def exact_nearest(rows: dict[str, np.ndarray], vector: np.ndarray, limit: int, exclude: str | None = None):
    """Brute force: trace ids by their best row's cosine distance (all vectors are unit)."""
    vector = vector.astype(np.float64)
    distance = {t: float((1 - m.astype(np.float64) @ vector).min()) for t, m in rows.items() if t != exclude}
    return sorted(distance, key=distance.get)[:limit]


@pytest.fixture
def query_text_embeds_to(monkeypatch):
    """Make embed_texts return a chosen vector, so the query lands where the test wants."""
    from evaluation import embeddings

    def use(vector: np.ndarray) -> None:
        monkeypatch.setattr(embeddings, "embed_texts", lambda texts: np.vstack([vector] * len(texts)))

    return use


def test_semantic_search_gives_a_small_project_a_full_page(tenants, statistics, query_text_embeds_to):
    query_text_embeds_to(tenants.query)
    found = selectors.traces_semantic_search(
        project=tenants.small, text="the big project's favourite subject", filters=TraceFilter(), limit=PAGE
    )
    expected = exact_nearest(tenants.small_rows, tenants.query, PAGE)
    assert [t.trace_id for t in found] == expected, f"{len(found)} of {PAGE} traces"
    assert {t.project_id for t in found} == {tenants.small.pk}


def test_similar_traces_give_a_small_project_a_full_page(tenants, statistics):
    # A trace on one of the small project's own topics, not on the big project's subject.
    target_id = list(tenants.small_rows)[NEAR_QUERY]
    target = Trace.objects.get(project=tenants.small, trace_id=target_id)
    found = selectors.traces_similar(project=tenants.small, trace=target, limit=PAGE)
    expected = exact_nearest(tenants.small_rows, tenants.small_rows[target_id][0], PAGE, exclude=target_id)
    assert [t.trace_id for t in found] == expected, f"{len(found)} of {PAGE} traces"
    assert {t.project_id for t in found} == {tenants.small.pk}


def _walk_plan(call) -> str:
    """EXPLAIN of the nearest-neighbour query `call` ran last, under the settings it set."""
    with CaptureQueriesContext(connection) as queries:
        call()
    statements = [q["sql"] for q in queries.captured_queries]
    settings = [sql for sql in statements if "set_config" in sql]
    walk = [sql for sql in statements if "<=>" in sql][-1]
    with transaction.atomic(), connection.cursor() as cursor:
        for sql in settings:
            cursor.execute(sql)
        cursor.execute("EXPLAIN " + walk)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.parametrize("limit", [PAGE, selectors.SEMANTIC_CANDIDATES])
def test_big_project_is_searched_through_the_hnsw_index(tenants, statistics, limit):
    def search():
        return evaluation_selectors.trace_ids_nearest(project_id=tenants.big.pk, vector=tenants.query, limit=limit)

    found = search()
    distance = dict(zip(tenants.big_ids, 1 - tenants.big_vectors.astype(np.float64) @ tenants.query, strict=True))
    exact = sorted(distance, key=distance.get)[:limit]
    assert len(found) == limit and set(found) <= set(distance)
    assert len(set(found) & set(exact)) >= 0.9 * limit  # approximate: recall, not equality
    # Nearest first (pgvector computes in single precision, hence the tolerance).
    assert all(distance[a] <= distance[b] + 1e-6 for a, b in itertools.pairwise(found))
    if statistics == "fresh":
        # With statistics that still say the big project has no rows, the planner sorts
        # its rows exactly instead: slower, as right.
        assert "Index Scan using trace_embedding_hnsw" in _walk_plan(search)


def test_a_walk_that_runs_out_falls_back_to_the_exact_search(tenants, statistics, monkeypatch):
    # Count the small project as large: its walk of the shared index meets the big
    # project's rows first and runs out of its budget before it finds a page.
    monkeypatch.setattr(evaluation_selectors, "EXACT_SEARCH_MAX_ROWS", 10)
    found = evaluation_selectors.trace_ids_nearest(project_id=tenants.small.pk, vector=tenants.query, limit=PAGE)
    assert found == exact_nearest(tenants.small_rows, tenants.query, PAGE)
