"""PII masking's CPU cost per span, in-process, on bench/ingest.py's spans.

Masks the attribute values of the ingest benchmark's 4-span traces (~1.5 KB of text per
span: JSON messages, documents, a tool result) with each mode, as ingest does for every
span before it is stored, and prints microseconds per span (median of --reps passes over
--traces traces). Modes: off (nothing), default (API keys, IBANs, cards), all (every
detector plus one custom RE2 rule that matches each trace's question). One process, one
core: this isolates masking from the rest of ingest (decode, mapping, Postgres), which
bench/ingest.py --masking off,default,all measures end to end.

    .venv/bin/python bench/masking.py                        # 5 reps x 256 traces
    .venv/bin/python bench/masking.py --baseline 186b2cc     # also the masker of that commit, interleaved
    .venv/bin/python bench/masking.py --smoke

--baseline loads tracing/masking.py as it was at a commit (git show) and runs it in the
same passes, alternating with today's, so both see the same machine load.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "bench"))

from ingest import _span_attributes  # noqa: E402

from tracing import masking  # noqa: E402

CUSTOM = [{"name": "order_no", "pattern": "order [0-9]{5}"}]


def _modes(module) -> dict[str, object]:
    default = getattr(module, "DEFAULT_KINDS", ("api_key", "iban", "card"))
    return {"off": module.Masker([]), "default": module.Masker(default),
            "all": module.Masker(module.DETECTOR_KINDS, CUSTOM)}


def _load_baseline(rev: str):
    source = subprocess.run(["git", "show", f"{rev}:tracing/masking.py"], cwd=BASE_DIR, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp(prefix="spyglass-masking-")) / "baseline_masking.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("baseline_masking", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _pass(masker, spans: list[dict]) -> float:
    """Microseconds per span for one pass."""
    started = time.perf_counter()
    for attributes in spans:
        masker.value(attributes)
    return (time.perf_counter() - started) / len(spans) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=256, help="traces per pass (4 spans each; default 256)")
    parser.add_argument("--reps", type=int, default=5, help="passes per mode (default 5)")
    parser.add_argument("--baseline", help="a git revision whose tracing/masking.py to compare with")
    parser.add_argument("--smoke", action="store_true", help="tiny run: checks it works, no figures")
    args = parser.parse_args(argv)
    if args.smoke:
        args.traces, args.reps = 2, 1

    spans = [attributes for i in range(args.traces) for attributes in _span_attributes(i)]
    maskers = {("today", mode): m for mode, m in _modes(masking).items()}
    if args.baseline:
        maskers.update({(args.baseline, mode): m for mode, m in _modes(_load_baseline(args.baseline)).items()})
    for masker in maskers.values():  # warm: compile caches, first-call costs
        _pass(masker, spans[:8])
    times: dict[tuple[str, str], list[float]] = {key: [] for key in maskers}
    for _ in range(args.reps):
        for key, masker in maskers.items():  # interleaved: every version sees the same load
            times[key].append(_pass(masker, spans))

    print(f"\nmasking {len(spans)} spans per pass, {args.reps} passes; µs per span (median, min–max)")
    print("| code | mode | µs / span | min–max |")
    print("|---|---|---:|---:|")
    for (code, mode), values in times.items():
        print(f"| {code} | {mode} | {statistics.median(values):.1f} | {min(values):.1f}–{max(values):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
