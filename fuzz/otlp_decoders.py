"""Coverage-guided fuzzing (atheris / libFuzzer) of the OTLP decoders and what ingest
derives from their output before the database.

Each input picks traces or logs, protobuf or JSON, and is decoded; what must hold:
decoding either succeeds — and then every span and log record is bounded, mapped and
turned into a database row (cost, JSON columns) without an exception — or raises
BodyError with a 4xx status and a message. Anything else is a crash, saved by libFuzzer
as `crash-<sha1>` (rerun it: `python fuzz/otlp_decoders.py crash-<sha1>`).

Run (from the repository root; no database or broker is used):

    .venv/bin/python fuzz/otlp_decoders.py fuzz/corpus -max_total_time=600

The corpus directory is seeded with real requests (the four instrumentation dialects
of tests/otlp_payloads.py, traces and logs, both encodings) when it is empty; with no
directory a temporary one is used. Any libFuzzer flag works (-runs=N, -jobs=N, ...).
`make test` runs a few hundred inputs (tests/tracing/test_fuzz_smoke.py).
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._django import settings_only  # noqa: E402 (after the path is set)

settings_only()

# Coverage feedback from our own modules only: Django's would drown it.
with atheris.instrument_imports(include=["tracing"]):
    from tracing import services
    from tracing.limits import Bounds
    from tracing.otlp import decode
    from tracing.otlp.mapping import normalize_span

from tests import otlp_payloads as otlp  # noqa: E402

# The first byte of an input chooses what the rest is sent as.
MODES = [(False, decode.PROTOBUF), (False, decode.JSON), (True, decode.PROTOBUF), (True, decode.JSON)]


def check_one(data: bytes) -> None:
    if not data:
        return
    logs, encoding = MODES[data[0] % len(MODES)]
    body = data[1:]
    try:
        decoded = (decode.decode_logs if logs else decode.decode_traces)(body, encoding)
    except decode.BodyError as exc:
        if not (400 <= exc.status < 500 and exc.message):
            raise AssertionError(f"BodyError with status {exc.status}: {exc.message!r}") from exc
        return
    bounds, now = Bounds(), datetime.now(UTC)
    for raw in decoded.spans:
        bounds.span(raw)
        services._span_row(1, raw, normalize_span(raw), now)
    for record in decoded.logs:
        bounds.log_record(record)
        services._json(record.body)
        services._json(record.attributes)
    if decoded.rejected and not decoded.first_error:
        raise AssertionError("spans rejected without a message")


def seeds() -> list[bytes]:
    out = []
    for dialect in otlp.DIALECTS:
        trace = otlp.llm_trace(dialect)
        out.append(bytes([0]) + otlp.traces_protobuf(trace.spans))
        out.append(bytes([1]) + otlp.traces_json(trace.spans))
    records = otlp.genai_message_logs(trace_id=otlp.new_trace_id(), span_id=otlp.new_span_id())
    out.append(bytes([2]) + otlp.logs_protobuf(records))
    out.append(bytes([3]) + otlp.logs_json(records))
    return out


def corpus_dirs(argv: list[str]) -> list[str]:
    """Seed the corpus directories given (or a temporary one) with real requests."""
    dirs = [arg for arg in argv[1:] if not arg.startswith("-") and Path(arg).is_dir()]
    files = [arg for arg in argv[1:] if not arg.startswith("-") and Path(arg).is_file()]
    if files:  # reproducing a crash: no corpus needed
        return argv
    if not dirs:
        dirs = [tempfile.mkdtemp(prefix="otlp-corpus-")]
        argv = [*argv, dirs[0]]
    for directory in dirs:
        if not any(Path(directory).iterdir()):
            for index, seed in enumerate(seeds()):
                (Path(directory) / f"seed-{index}").write_bytes(seed)
    return argv


def main() -> None:
    argv = corpus_dirs(sys.argv)
    atheris.Setup(argv, check_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
