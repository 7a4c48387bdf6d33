"""A tiny local OpenAI-compatible server: chat completions (plain and SSE) and embeddings.

Answers are fixed, so a test knows exactly which tokens and contents an
instrumentation should have reported. For experiment runs a few switches, all off by
default: model "echo" answers the last user message back; a message containing
"[fail-400]" / "[fail-500]" gets that status every time, "[rate-limit-once]" a 429
(Retry-After: 0) on its first call only; `delay_seconds` delays every chat answer.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHAT_MODEL = "gpt-4o-mini-2024-07-18"
EMBEDDING_MODEL = "text-embedding-3-small"
ANSWER = "The capital of France is Paris."
CHAT_USAGE = {"prompt_tokens": 23, "completion_tokens": 9, "total_tokens": 32}
STREAM_USAGE = {"prompt_tokens": 25, "completion_tokens": 7, "total_tokens": 32}
EMBEDDING_USAGE = {"prompt_tokens": 6, "total_tokens": 6}
EMBEDDING_DIMS = 8


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeOpenAIServer

    def log_message(self, format, *args):
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: dict) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            request = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._json(400, {"error": {"message": "invalid JSON", "type": "invalid_request_error"}})
            return
        self.server.requests.append((self.path, request))
        if self.path.endswith("/chat/completions"):
            if self.server.delay_seconds:
                time.sleep(self.server.delay_seconds)
            failure = self.server.failure_for(request)
            if failure:
                self._fail(failure)
            elif request.get("stream"):
                self._stream(request)
            else:
                self._json(200, _completion(request))
        elif self.path.endswith("/embeddings"):
            self._json(200, _embeddings(request))
        else:
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})

    def _fail(self, status: int) -> None:
        body = json.dumps({"error": {"message": f"fake failure {status}", "type": "server_error"}}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status == 429:
            self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, request: dict) -> None:
        # One SSE body sent with a Content-Length: simpler than chunked encoding and
        # identical to what the client's SSE parser sees from the real API.
        created = int(time.time())
        base = {"id": "chatcmpl-fake-stream", "object": "chat.completion.chunk", "created": created,
                "model": CHAT_MODEL, "system_fingerprint": "fp_fake"}
        chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                        "finish_reason": None}]}]
        words = ANSWER.split(" ")
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            chunks.append({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
        chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (request.get("stream_options") or {}).get("include_usage"):
            chunks.append({**base, "choices": [], "usage": STREAM_USAGE})
        body = "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks) + "data: [DONE]\n\n"
        self._send(200, body.encode(), "text/event-stream")


def _last_user_text(request: dict) -> str:
    for message in reversed(request.get("messages") or []):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return message["content"]
    return ""


def _completion(request: dict) -> dict:
    answer = _last_user_text(request) if request.get("model") == "echo" else ANSWER
    return {
        "id": "chatcmpl-fake-1",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "echo" if request.get("model") == "echo" else CHAT_MODEL,
        "system_fingerprint": "fp_fake",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": answer, "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }],
        "usage": CHAT_USAGE,
    }


def _embeddings(request: dict) -> dict:
    inputs = request.get("input")
    inputs = inputs if isinstance(inputs, list) else [inputs]
    return {
        "object": "list",
        "model": EMBEDDING_MODEL,
        "data": [{"object": "embedding", "index": i, "embedding": [0.125 * (i + 1)] * EMBEDDING_DIMS}
                 for i in range(len(inputs))],
        "usage": EMBEDDING_USAGE,
    }


class FakeOpenAIServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, dict]] = []
        self.delay_seconds = 0.0
        self._rate_limited: set[str] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, name="fake-openai", daemon=True)

    def failure_for(self, request: dict) -> int | None:
        text = " ".join(str(m.get("content")) for m in request.get("messages") or [])
        if "[fail-400]" in text:
            return 400
        if "[fail-500]" in text:
            return 500
        if "[rate-limit-once]" in text:
            with self._lock:
                if text not in self._rate_limited:
                    self._rate_limited.add(text)
                    return 429
        return None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(10)
