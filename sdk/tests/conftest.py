"""Shared fixtures for the SDK tests. Self-contained: no Django, no network beyond 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spyglass


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import os

    for name in list(os.environ):
        if name.startswith("SPYGLASS_"):
            monkeypatch.delenv(name)
    yield
    spyglass.uninstrument_openai()
    spyglass.shutdown(timeout=2.0)


@dataclass
class Traced:
    provider: TracerProvider
    exporter: InMemorySpanExporter

    def spans(self) -> list[ReadableSpan]:
        assert spyglass.flush(timeout=10.0)
        return list(self.exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        matches = [s for s in self.spans() if s.name == name]
        assert len(matches) == 1, [s.name for s in self.spans()]
        return matches[0]


@pytest.fixture
def traced() -> Callable[..., Traced]:
    """Initialise spyglass on a fresh provider that exports into memory."""

    def make(**kwargs: Any) -> Traced:
        provider = TracerProvider()
        exporter = InMemorySpanExporter()
        spyglass.init(tracer_provider=provider, span_exporter=exporter, **kwargs)
        return Traced(provider, exporter)

    return make


@dataclass
class Sink:
    """A local HTTP server recording every request; behaviour is adjustable per test."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0
    body: bytes = b""
    content_type: str = "application/json"

    def wait_for(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.requests


@pytest.fixture
def sink() -> Iterator[Sink]:
    state: dict[str, Sink] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            s = state["sink"]
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            s.requests.append(
                {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
            )
            if s.delay:
                time.sleep(s.delay)
            try:
                self.send_response(s.status)
                self.send_header("Content-Type", s.content_type)
                self.send_header("Content-Length", str(len(s.body)))
                self.end_headers()
                self.wfile.write(s.body)
            except OSError:
                pass  # the client gave up waiting (slow-server tests)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state["sink"] = Sink(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state["sink"]
    server.shutdown()
    server.server_close()


@pytest.fixture
def closed_port_url() -> str:
    """A URL on which nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
