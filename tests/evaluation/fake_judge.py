"""A scriptable local OpenAI-compatible chat endpoint for the LLM-judge tests.

tests/integration/fake_openai.py answers every request with one fixed completion; the
judge needs more: a queue of scripted replies (JSON verdicts, 429 with Retry-After,
500, malformed content, a slow answer) and the request headers, to check the key is
sent. When the script runs out, a valid verdict is answered.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

USAGE = {"prompt_tokens": 400, "completion_tokens": 60, "total_tokens": 460}


def verdict(label: str = "faithful", score: float = 0.1, explanation: str = "Supported by the context.") -> str:
    return json.dumps({"label": label, "score": score, "explanation": explanation})


@dataclass
class Reply:
    status: int = 200
    content: str | None = None  # the assistant message (default: a valid verdict)
    headers: dict[str, str] | None = None
    delay: float = 0.0
    raw: bytes | None = None  # a body that is not even a completion


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeJudgeServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        with self.server.lock:
            headers = {k.lower(): v for k, v in self.headers.items()}
            self.server.requests.append({"path": self.path, "headers": headers, "json": request})
            reply = self.server.script.pop(0) if self.server.script else Reply()
        if reply.delay:
            time.sleep(reply.delay)
        if reply.raw is not None:
            body = reply.raw
        elif reply.status != 200:
            body = json.dumps({"error": {"message": f"scripted {reply.status}", "type": "server_error"}}).encode()
        else:
            body = json.dumps({
                "id": "chatcmpl-judge", "object": "chat.completion", "created": int(time.time()),
                "model": request.get("model", "judge"),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": reply.content or verdict()}}],
                "usage": USAGE,
            }).encode()  # fmt: skip
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (reply.headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)


class FakeJudgeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict[str, Any]] = []
        self.script: list[Reply] = []
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, name="fake-judge", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def __enter__(self) -> FakeJudgeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(10)
