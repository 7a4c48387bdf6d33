"""The atheris fuzz script of the OTLP decoders (fuzz/otlp_decoders.py) runs a few
hundred inputs in `make test`, so it cannot rot unnoticed; the long runs are manual
(docs/reliability.md). A crash file replays through the same script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "fuzz" / "otlp_decoders.py"

pytest.importorskip("atheris")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_a_short_fuzz_run_finds_no_crash(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()

    result = run(str(corpus), "-runs=500", "-seed=1", cwd=tmp_path)

    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done 500 runs" in result.stderr
    assert len(list(corpus.iterdir())) >= 10  # seeded with real requests, then grown
    assert not list(tmp_path.glob("crash-*"))


def test_an_input_that_breaks_the_rules_is_reported_as_a_crash(tmp_path):
    """The harness can fail: replaying one input with a decoder that raises something
    other than a 4xx BodyError must end in a crash report, not a pass."""
    sample = tmp_path / "input"
    sample.write_bytes(b"\x01{}")  # JSON traces
    assert run(str(sample), cwd=tmp_path).returncode == 0

    wrapper = (
        "import runpy, sys\n"
        f"sys.path.insert(0, {str(SCRIPT.parents[1])!r})\n"
        "from tracing.otlp import decode\n"
        "def broken(body, encoding):\n"
        "    raise decode.BodyError(500, 'decoder fault')\n"
        "decode.decode_traces = broken\n"
        f"sys.argv = [{str(SCRIPT)!r}, {str(sample)!r}]\n"
        f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n"
    )
    result = subprocess.run([sys.executable, "-c", wrapper], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "BodyError with status 500" in output, output[-2000:]
