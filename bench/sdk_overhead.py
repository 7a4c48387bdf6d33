"""Time the SDK adds to the host app per observed call.

Compares, in one run, a plain function with the same function under @spyglass.observe:
- SDK disabled (enabled=False),
- SDK on, collector reachable (an OTLP sink in a separate process answering 200),
- SDK on, collector unreachable (a closed port).
The export thread (BatchSpanProcessor) shares the GIL with the app, so its encoding work
is part of the measured cost, as it is in a real app.

    .venv/bin/python bench/sdk_overhead.py [--calls 2000] [--repeats 15]

Reports the median over repeats of the mean time per call, minus the plain function's.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import textwrap
import time

import spyglass
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

SINK = textwrap.dedent(
    """
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    print(server.server_address[1], flush=True)
    server.serve_forever()
    """
)


def free_closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed once the socket is released


def work(question: str) -> str:
    # A tiny stand-in for app logic, so the overhead is not measured against nothing.
    return question.upper()[:20]


def time_calls(fn, calls: int) -> float:
    start = time.perf_counter()
    for i in range(calls):
        fn(f"how do I reset my password? #{i}")
    return (time.perf_counter() - start) / calls


def measure(label: str, calls: int, repeats: int, **init_kwargs) -> float:
    spyglass.init(service_name="bench", **init_kwargs)
    observed = spyglass.observe(name="answer")(work)
    time_calls(observed, calls)  # warm-up
    samples = []
    for _ in range(repeats):
        samples.append(time_calls(observed, calls))
        spyglass.flush(timeout=10)  # keep the queue from overflowing between repeats
    spyglass.shutdown()
    median = statistics.median(samples)
    print(f"  {label:<34} {median * 1e6:8.1f} µs/call", flush=True)
    return median


class NullExporter(SpanExporter):
    """Accepts spans and does nothing: isolates span creation from export work."""

    def export(self, spans) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def measure_raw_otel(calls: int, repeats: int) -> float:
    """The floor: a plain OpenTelemetry span with two attributes, null exporter."""
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(NullExporter(), max_queue_size=65536))
    tracer = provider.get_tracer("bench")

    def raw(question: str) -> str:
        with tracer.start_as_current_span("answer") as span:
            span.set_attribute("input.value", question)
            result = work(question)
            span.set_attribute("output.value", result)
            return result

    time_calls(raw, calls)
    median = statistics.median(time_calls(raw, calls) for _ in range(repeats))
    provider.shutdown()
    print(f"  {'raw OpenTelemetry span, null exp.':<34} {median * 1e6:8.1f} µs/call", flush=True)
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny run that only checks the script works (make test); not a measurement")
    args = parser.parse_args()
    if args.smoke:
        args.calls, args.repeats = 20, 2

    sink = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
    try:
        port = int(sink.stdout.readline())
        print(f"{args.calls} calls x {args.repeats} repeats; median of per-repeat means")
        plain = statistics.median(time_calls(work, args.calls) for _ in range(args.repeats))
        print(f"  {'plain function':<34} {plain * 1e6:8.1f} µs/call")
        off = measure("observe, SDK disabled", args.calls, args.repeats, enabled=False)
        raw = measure_raw_otel(args.calls, args.repeats)
        null = measure("observe, null exporter", args.calls, args.repeats, span_exporter=NullExporter())
        on = measure("observe, server reachable", args.calls, args.repeats,
                     host=f"http://127.0.0.1:{port}", secret_key="sk-bench")
        down = measure("observe, server unreachable", args.calls, args.repeats,
                       host=f"http://127.0.0.1:{free_closed_port()}", secret_key="sk-bench")
        print("overhead per observed call (minus the plain function):")
        cases = (("disabled", off), ("raw OTel span", raw), ("null exporter", null), ("reachable", on),
                 ("unreachable", down))
        for label, value in cases:
            print(f"  {label:<12} {(value - plain) * 1e6:8.1f} µs")
    finally:
        sink.terminate()
        sink.wait(timeout=10)


if __name__ == "__main__":
    os.environ.setdefault("OTEL_BSP_MAX_QUEUE_SIZE", "65536")
    main()
