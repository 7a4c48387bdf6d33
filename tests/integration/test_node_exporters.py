"""The stock Node/TypeScript OTLP exporters, unchanged, against gunicorn (issue 12).

`@opentelemetry/exporter-trace-otlp-proto` and `-http` (JSON) pipe the body into
Node's `http.request` without a Content-Length, so it goes out with
`Transfer-Encoding: chunked` (otlp-exporter-base, transport/http-transport-utils.js,
`compressAndSend`). A server that trusts Content-Length alone reads an empty body,
answers 200 and stores nothing.

Each test runs tests/integration/node_emitter/emit.cjs in its own `node` process (the
instrumentations patch the `openai` module globally): the real `openai` npm client
calls the local fake OpenAI server inside a parent span carrying a session and a user,
and the exporter sends to gunicorn through a byte-for-byte TCP relay that records what
went over the wire. The test then asserts both the framing the server received and
what the trace API returns.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import socketserver
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import fake_openai
from tests.integration.support import http

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

EMITTER_DIR = Path(__file__).parent / "node_emitter"
LOCK_HASH_FILE = EMITTER_DIR / "node_modules" / ".lock-hash"
NODE_MAJOR_MIN = 20
QUESTION = "What is the capital of France?"
NODE_SETUP_HINT = "install Node.js 20 (or newer) and npm to run the Node exporter tests"


def _node_major(node: str) -> int | None:
    try:
        version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"v(\d+)\.", version.strip())
    return int(match.group(1)) if match else None


def _lock_digest(node_major: int) -> str:
    # The node major is part of the key: packages may install differently per version.
    lock = (EMITTER_DIR / "package-lock.json").read_bytes()
    return f"{hashlib.sha256(lock).hexdigest()} node{node_major}"


@pytest.fixture(scope="session")
def node_emitter() -> Path:
    """The emitter folder with its node_modules installed exactly from the lockfile.

    `npm ci` deletes node_modules first, so it runs only when the lockfile changed since
    the last install, under a file lock: two pytest sessions on this machine must not
    install into the same folder at once.
    """
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(name for name, path in (("node", node), ("npm", npm)) if path is None)
        pytest.skip(f"{missing} not found: {NODE_SETUP_HINT}")
    major = _node_major(node)
    if major is None or major < NODE_MAJOR_MIN:
        pytest.skip(f"node {major or 'of unknown version'} is too old: {NODE_SETUP_HINT}")

    digest = _lock_digest(major)
    folder_id = hashlib.sha256(bytes(EMITTER_DIR)).hexdigest()[:12]
    lock_path = Path(tempfile.gettempdir()) / f"spyglass-npm-ci-{folder_id}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not LOCK_HASH_FILE.exists() or LOCK_HASH_FILE.read_text().strip() != digest:
            result = subprocess.run(
                [npm, "ci", "--prefer-offline", "--no-audit", "--no-fund"],
                cwd=EMITTER_DIR, capture_output=True, text=True, timeout=600,
            )
            if result.returncode != 0:
                pytest.fail(f"npm ci in {EMITTER_DIR} exited {result.returncode}:\n"
                            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
            LOCK_HASH_FILE.write_text(digest + "\n")
    return EMITTER_DIR


class _Relay(socketserver.BaseRequestHandler):
    """Copies one client connection to the upstream server and back, unchanged."""

    server: WireRecorder

    def handle(self) -> None:
        upstream = socket.create_connection(self.server.upstream, timeout=120)
        sent = bytearray()
        self.server.connections.append(sent)
        back = threading.Thread(target=_pump, args=(upstream, self.request, None), daemon=True)
        back.start()
        _pump(self.request, upstream, sent)
        back.join(120)
        upstream.close()


def _pump(src: socket.socket, dst: socket.socket, record: bytearray | None) -> None:
    try:
        while chunk := src.recv(65536):
            if record is not None:
                record.extend(chunk)
            dst.sendall(chunk)
    except OSError:  # the other side went away; its own pump reports nothing either
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class WireRecorder(socketserver.ThreadingTCPServer):
    """A TCP relay in front of gunicorn that keeps every byte the client sent.

    A relay rather than an HTTP proxy: an HTTP server in between would re-frame the
    body, and the framing the exporter chose is exactly what this test is about.
    """

    daemon_threads = True

    def __init__(self, upstream_url: str) -> None:
        match = re.match(r"http://([^:/]+):(\d+)", upstream_url)
        assert match, upstream_url
        self.upstream = (match.group(1), int(match.group(2)))
        self.connections: list[bytearray] = []
        super().__init__(("127.0.0.1", 0), _Relay)
        self._thread = threading.Thread(target=self.serve_forever, name="wire-recorder", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def request_heads(self) -> list[tuple[str, dict[str, str]]]:
        """(request line, headers with lower-case names) of every request sent.

        Found by pattern over the raw bytes: the bodies here are small OTLP payloads
        (protobuf, JSON or gzip) that cannot contain an HTTP request line plus CRLF.
        """
        heads = []
        for raw in self.connections:
            for match in re.finditer(rb"([A-Z]+ \S+ HTTP/1\.[01])\r\n(.*?)\r\n\r\n", bytes(raw), re.DOTALL):
                headers = {}
                for line in match.group(2).decode("latin-1").split("\r\n"):
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                heads.append((match.group(1).decode("latin-1"), headers))
        return heads

    def __enter__(self) -> WireRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(10)


def _emit(emitter: Path, *, endpoint: str, key: str, exporter: str, instrumentation: str, openai_base_url: str,
          session_id: str, user_id: str, compression: str = "none") -> subprocess.CompletedProcess:
    # OTEL_* / TRACELOOP_* from the developer's shell would change what the exporter or
    # the instrumentation does (compression, headers, content capture).
    env = {name: value for name, value in os.environ.items() if not name.startswith(("OTEL_", "TRACELOOP_"))}
    argv = [
        "node", str(emitter / "emit.cjs"),
        "--endpoint", endpoint, "--key", key, "--exporter", exporter, "--instrumentation", instrumentation,
        "--openai-base-url", openai_base_url, "--session-id", session_id, "--user-id", user_id,
        "--compression", compression, "--question", QUESTION,
    ]
    return subprocess.run(argv, cwd=emitter, env=env, capture_output=True, text=True, timeout=180)


def _outcome(result: subprocess.CompletedProcess) -> dict:
    """The emitter's result line; its failure (with the server's answer) fails the test."""
    assert result.returncode == 0, f"emitter exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, f"emitter printed no result:\n{result.stdout}\n{result.stderr}"
    outcome = json.loads(lines[-1])
    assert re.fullmatch(r"[0-9a-f]{32}", outcome["trace_id"]), outcome
    assert outcome["answer"] == fake_openai.ANSWER, outcome
    return outcome


def _assert_sent_chunked(wire: WireRecorder, *, content_type: str, gzip: bool) -> None:
    posts = [headers for line, headers in wire.request_heads() if line.startswith("POST /v1/traces ")]
    assert posts, f"no POST /v1/traces went through the relay: {wire.request_heads()}"
    for headers in posts:
        # The premise of issue 12: if a future exporter sends a Content-Length instead,
        # these tests stop covering chunked bodies and must say so.
        assert headers.get("transfer-encoding", "").lower() == "chunked", headers
        assert "content-length" not in headers, headers
        assert headers.get("content-type") == content_type, headers
        assert (headers.get("content-encoding") == "gzip") is gzip, headers


def _fetch_trace(base_url: str, key: str, trace_id: str) -> dict:
    response = http("GET", f"{base_url}/api/v1/traces/{trace_id}", headers={"Authorization": f"Bearer {key}"})
    assert response.status == 200, (
        f"trace {trace_id} not stored (GET answered {response.status}: {response.body[:300]!r}); the exporter's "
        f"POST was answered 2xx, so a chunked body was read as empty (issue 12)"
    )
    return json.loads(response.body)


def _assert_trace(trace: dict, *, session_id: str, user_id: str) -> None:
    info = json.dumps({k: v for k, v in trace.items() if k != "spans"}, default=str)[:3000]
    assert trace["span_count"] == 2, info
    assert (trace["model"] or "").startswith("gpt-4o-mini"), info
    assert trace["input_tokens"] == fake_openai.CHAT_USAGE["prompt_tokens"], info
    assert trace["output_tokens"] == fake_openai.CHAT_USAGE["completion_tokens"], info
    assert QUESTION in (trace["input"] or ""), info
    assert fake_openai.ANSWER in (trace["output"] or ""), info
    assert trace["session_id"] == session_id, info
    assert trace["user_id"] == user_id, info
    llm = [span for span in trace["spans"] if span["kind"] == "llm"]
    assert len(llm) == 1, json.dumps(trace["spans"], default=str)[:3000]
    assert llm[0]["provider"] == "openai", llm[0]


@pytest.fixture
def fake_openai_server() -> Iterator[fake_openai.FakeOpenAIServer]:
    with fake_openai.FakeOpenAIServer() as server:
        yield server


@pytest.mark.parametrize("instrumentation", ["openinference", "openllmetry"])
@pytest.mark.parametrize("exporter", ["proto", "http"])
def test_node_exporter_chunked_export_is_stored(node_emitter, live_server_url, ingest_key, fake_openai_server,
                                                 exporter, instrumentation):
    session_id = f"node-session-{uuid.uuid4().hex[:8]}"
    user_id = f"node-user-{uuid.uuid4().hex[:8]}"
    with WireRecorder(live_server_url) as wire:
        result = _emit(
            node_emitter, endpoint=f"{wire.url}/v1/traces", key=ingest_key.secret_key, exporter=exporter,
            instrumentation=instrumentation, openai_base_url=fake_openai_server.base_url,
            session_id=session_id, user_id=user_id,
        )

    content_type = "application/x-protobuf" if exporter == "proto" else "application/json"
    _assert_sent_chunked(wire, content_type=content_type, gzip=False)
    outcome = _outcome(result)
    assert len(fake_openai_server.requests) == 1, fake_openai_server.requests
    trace = _fetch_trace(live_server_url, ingest_key.secret_key, outcome["trace_id"])
    _assert_trace(trace, session_id=session_id, user_id=user_id)


def test_node_exporter_gzip_chunked_export_is_stored(node_emitter, live_server_url, ingest_key, fake_openai_server):
    # gzip is how the Collector's otlphttp exporter sends by default: the body must be
    # de-chunked first, then decompressed.
    session_id, user_id = f"node-session-{uuid.uuid4().hex[:8]}", f"node-user-{uuid.uuid4().hex[:8]}"
    with WireRecorder(live_server_url) as wire:
        result = _emit(
            node_emitter, endpoint=f"{wire.url}/v1/traces", key=ingest_key.secret_key, exporter="proto",
            instrumentation="openllmetry", openai_base_url=fake_openai_server.base_url,
            session_id=session_id, user_id=user_id, compression="gzip",
        )

    _assert_sent_chunked(wire, content_type="application/x-protobuf", gzip=True)
    outcome = _outcome(result)
    trace = _fetch_trace(live_server_url, ingest_key.secret_key, outcome["trace_id"])
    _assert_trace(trace, session_id=session_id, user_id=user_id)
