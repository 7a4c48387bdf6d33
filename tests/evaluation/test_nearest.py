"""evaluation.selectors.trace_ids_nearest on a few rows: what a result means (a trace as
near as its nearest row, the project's own traces only, `exclude`, `limit`) on both of
its paths. The big-neighbour case is tests/explorer/test_semantic_search.py."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation import selectors
from evaluation.models import TraceEmbedding

pytestmark = pytest.mark.django_db

DIMS = 384


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIMS)
    return (v / np.linalg.norm(v)).astype(np.float32)


def toward(target: np.ndarray, cos: float, seed: int) -> np.ndarray:
    """A unit vector at cosine `cos` from the unit `target`."""
    noise = unit(seed).astype(np.float64)
    noise -= (noise @ target) * target
    noise /= np.linalg.norm(noise)
    return (cos * target + np.sqrt(1 - cos**2) * noise).astype(np.float32)


def embed(project, trace_id: str, vector: np.ndarray, *, kind: str = "input", span_id: str = "") -> None:
    TraceEmbedding.objects.create(project=project, trace_id=trace_id, span_id=span_id, kind=kind, embedding=vector)


@pytest.fixture(params=["exact", "index"])
def path(request, monkeypatch):
    """Run a test on the exact search and on the HNSW walk (every project counts as large)."""
    if request.param == "index":
        monkeypatch.setattr(selectors, "EXACT_SEARCH_MAX_ROWS", 0)
    return request.param


def test_traces_come_nearest_first_at_their_nearest_row(world, path):
    query = unit(1)
    embed(world.project, "a" * 32, toward(query, 0.5, 2), kind="input")
    embed(world.project, "a" * 32, toward(query, 0.9, 3), kind="output")  # a's nearest row
    embed(world.project, "b" * 32, toward(query, 0.8, 4))
    embed(world.project, "c" * 32, toward(query, 0.2, 5))
    embed(world.project, "c" * 32, toward(query, 0.7, 6), span_id="1" * 16)  # an LLM call inside c
    found = selectors.trace_ids_nearest(project_id=world.project.pk, vector=query, limit=10)
    assert found == ["a" * 32, "b" * 32, "c" * 32]


def test_only_the_project_s_own_traces_are_returned(world, path):
    query = unit(1)
    embed(world.other_project, "f" * 32, query)  # nearer than anything of the project
    embed(world.project, "a" * 32, toward(query, 0.3, 2))
    assert selectors.trace_ids_nearest(project_id=world.project.pk, vector=query, limit=5) == ["a" * 32]
    assert selectors.trace_ids_nearest(project_id=world.other_project.pk, vector=query, limit=5) == ["f" * 32]


def test_exclude_and_limit(world, path):
    query = unit(1)
    for i, cos in enumerate([0.9, 0.8, 0.7, 0.6]):
        embed(world.project, f"{i:032x}", toward(query, cos, 10 + i))
    found = selectors.trace_ids_nearest(project_id=world.project.pk, vector=query, limit=2, exclude=f"{0:032x}")
    assert found == [f"{1:032x}", f"{2:032x}"]


def test_traces_with_many_rows_each_still_fill_the_limit(world, path):
    # Each trace has many LLM-call rows, all nearer than the next trace's: a walk asking
    # for 3 rows per trace wanted sees one trace only and must ask for more.
    query = unit(1)
    for t in range(3):
        for s in range(8):
            embed(world.project, f"{t:032x}", toward(query, 0.95 - 0.1 * t - 0.005 * s, 100 * t + s),
                  span_id=f"{s:016x}")  # fmt: skip
    found = selectors.trace_ids_nearest(project_id=world.project.pk, vector=query, limit=3)
    assert found == [f"{t:032x}" for t in range(3)]
