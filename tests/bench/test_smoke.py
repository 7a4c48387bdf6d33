"""Every benchmark in bench/ runs on a tiny size in `make test`, so none can rot unnoticed.

Each SMOKE entry is run as a real subprocess, `python <script> --smoke <extra args>`, from
the repository root, with the environment of this test run (DATABASE_URL / REDIS_URL of
its own PostgreSQL server and private Redis, tests/pytest_services.py; scripts that
need a database of their own start a throwaway one, bench/_django.py). The test asserts
exit status 0 and that the script printed its figures: `figures` is a regular
expression (re.MULTILINE) that only a result line matches, so a script that starts,
prints its banner and stops early still fails. "{tmp}" in the extra args becomes a
fresh temporary directory (e.g. `--out {tmp}` for the training scripts). No script may
change the shipped model files.

`--smoke` is not a measurement: only that the figures are printed matters, never their
value. Adding a bench script? Give it `--smoke` (a few seconds) and one line here.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench._data import DATASETS
from tests.integration.support import child_env

BASE_DIR = Path(__file__).resolve().parents[2]
WEIGHTS = BASE_DIR / "evaluation" / "evaluators" / "weights"
# Generous: on this shared 2-core machine under load 10 the slowest script (a web server,
# a Celery worker loading the embedding model, Postgres) took 4 minutes.
TIMEOUT_S = 420

# The labelled files live beside the repository (shared/datasets, or SPYGLASS_DATASETS);
# a bare clone has none, and these scripts are about nothing else.
NEEDS_DATASETS = pytest.mark.skipif(not DATASETS.is_dir(), reason=f"no labelled datasets at {DATASETS}")

# (script, extra args after --smoke, regex its figures must match)
SMOKE = [
    ("bench/alerts.py", [], r"^\| steady tick p50 / p95 \| \d+ / \d+ \|$"),
    ("bench/dashboards.py", [], r"^\| overview 30 d \(16 queries\) +\| +< 500 \| +\d+ \| +\d+ \| +\d+ \|"),
    ("bench/dashboard_pages.py", [], r"^\| saved dashboard \(5 charts\) 30 d +\| +\d+ \| +\d+ \| +\d+ \| +\d+ \|"),
    ("bench/e2e_scoring.py", [], r"^\| traces sent / acknowledged / scored \| (\d+) / \1 / \1 \|"),
    ("bench/datasets.py", [], r"^\| bulk-add 150 traces from a filter \(p50 of 1\) \| [\d.]+ s \|"),
    ("bench/experiments.py", [], r"^\| overhead beyond model time \(target < 10 s\) \| [\d.]+ s \|$"),
    ("bench/drift.py", [], r"^\| page GET /p/<slug>/drift/ \| [\d.]+ \| [\d.]+ \|"),
    pytest.param("bench/eval_rephrase.py", [], r"^TEST \(held out\) +n= *\d+ +rephrase: accuracy [\d.]+",
                 marks=NEEDS_DATASETS),
    pytest.param("bench/eval_scorers.py", [], r"^\| hallucination / begin_test_wow \| 10 \| [\d.]+ \|",
                 marks=NEEDS_DATASETS),
    ("bench/explorer.py", [], r"^\| traces_similar \(20 nearest to a trace\) +\| +[\d.]+ \| +[\d.]+ \| \d+ rows \|"),
    ("bench/fair_scoring.py", [], r"^B's cheap scores: (\d+)/\1 scored; wait p50 [\d.]+ s"),
    ("bench/grounding_speed.py", [], r"^seconds per trace \(median\): [\d.]+$"),
    ("bench/ingest.py", [], r"^ +1 +256 +256 +ok +[\d.]+ +[\d,]+ +\d+ +\d+ +\d+ +0$"),
    ("bench/integrity.py", [], r"^api +off +[\d.]+ \([\d.]+–[\d.]+\) +[\d.]+ \("),
    ("bench/mapping.py", [], r"^median over payloads +[\d.]+$"),
    ("bench/retention.py", [], r"^\| delete rate \(traces/s, spans/s\) \| [\d,]+ / [\d,]+ \|$"),
    ("bench/masking.py", [], r"^\| today \| all \| [\d.]+ \| [\d.]+–[\d.]+ \|$"),
    ("bench/scoring.py", [], r"^embeddings: [\d,]+ texts/s"),
    ("bench/overload.py", [], r"^\| web RSS MiB \(master \+ workers, \d+ samples\): median / max \| \d+ / \d+ \|$"),
    ("bench/sdk_overhead.py", [], r"^  unreachable +-?[\d.]+ µs$"),
    ("bench/semantic.py", [], r"^\| 400 traces \| similar \| after \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \|"),
    ("bench/slices.py", [], r"^single-score insert, \d+ each: median [\d.]+ ms with the outcome triggers"),
    ("bench/streaming.py", [], r"^ +200 +streamed +2 +20 +400 +[\d.]+ +[\d,]+ +\d+ +\d+ +ok$"),
    pytest.param("bench/train_grounding.py", ["--out", "{tmp}"], r"^wrote \S+/groundedness\.json \(threshold [\d.]+",
                 marks=NEEDS_DATASETS),
    pytest.param("bench/train_toxicity.py", ["--out", "{tmp}"], r"^wrote \S+/toxicity\.json and toxicity_char\.npz",
                 marks=NEEDS_DATASETS),
]

pytestmark = pytest.mark.integration


def _weights_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(WEIGHTS.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def _script_of(entry) -> str:
    return (entry.values if hasattr(entry, "values") else entry)[0]


def _run(argv: list[str]) -> tuple[int | None, str, str]:
    """Run a script in a session of its own; on timeout, interrupt it first (its clean-up
    stops the servers it started), then kill whatever of its group is left. Exit status
    None = timed out."""
    with subprocess.Popen(argv, cwd=BASE_DIR, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, start_new_session=True) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
            return proc.returncode, stdout, stderr
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            try:
                stdout, stderr = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                stdout, stderr = proc.communicate()
            return None, stdout, stderr


@pytest.mark.timeout(TIMEOUT_S + 60)
@pytest.mark.parametrize(("script", "args", "figures"), SMOKE, ids=[_script_of(e) for e in SMOKE])
def test_bench_script_runs_on_a_tiny_size(script: str, args: list[str], figures: str, tmp_path: Path) -> None:
    weights_before = _weights_digest()
    argv = [sys.executable, script, "--smoke", *(a.replace("{tmp}", str(tmp_path)) for a in args)]
    started = time.monotonic()
    status, stdout, stderr = _run(argv)
    output = (f"{' '.join(argv[1:])}: " + (f"exit {status}" if status is not None else "TIMED OUT")
              + f" after {time.monotonic() - started:.0f} s\nstdout:\n{stdout[-4000:]}\nstderr:\n{stderr[-4000:]}")
    assert status == 0, output
    assert re.search(figures, stdout, re.MULTILINE), f"no line matches {figures!r}\n{output}"
    assert _weights_digest() == weights_before, "a smoke run changed the shipped model files"


def test_every_bench_script_has_a_smoke_line() -> None:
    scripts = {f"bench/{p.name}" for p in (BASE_DIR / "bench").glob("*.py") if not p.name.startswith("_")}
    assert scripts - {_script_of(e) for e in SMOKE} == set()
