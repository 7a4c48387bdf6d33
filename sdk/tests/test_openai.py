"""instrument_openai() against a local fake OpenAI-compatible server (no internet)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import openai
import pytest
from opentelemetry.trace import StatusCode
from sdk_helpers import attrs, json_attr

import spyglass


def _completion(model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": f"{model}-2024",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": 11,
            "completion_tokens": 2,
            "total_tokens": 13,
            "prompt_tokens_details": {"cached_tokens": 5},
        },
    }


def _chunks(model: str, include_usage: bool) -> list[dict[str, Any]]:
    base = {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1, "model": f"{model}-2024"}
    chunks = [
        {
            **base,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
        },
        {**base, "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    if include_usage:
        chunks.append(
            {**base, "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}}
        )
    return chunks


class FakeOpenAI(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeOpenAI.seen.append(body)
        model = body.get("model", "")
        if model == "broken":
            self._json(500, {"error": {"message": "server exploded", "type": "server_error"}})
        elif self.path.endswith("/embeddings"):
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            self._json(
                200,
                {
                    "object": "list",
                    "model": model,
                    "data": [
                        {"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}
                        for i in range(len(inputs))
                    ],
                    "usage": {"prompt_tokens": 4, "total_tokens": 4},
                },
            )
        elif body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for chunk in _chunks(model, include_usage):
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
        else:
            self._json(200, _completion(model))

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_openai() -> Iterator[str]:
    FakeOpenAI.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@pytest.fixture
def client(fake_openai: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake_openai, api_key="sk-test", max_retries=0)


MESSAGES = [{"role": "user", "content": "Capital of France?"}]


def test_chat_completion_is_recorded(traced, client):
    t = traced()
    assert spyglass.instrument_openai() is True
    response = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, temperature=0)
    assert response.choices[0].message.content == "Paris."
    span = t.span("chat gpt-4o")
    a = attrs(span)
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o"
    assert a["gen_ai.response.model"] == "gpt-4o-2024"
    assert a["gen_ai.request.temperature"] == 0
    assert a["gen_ai.usage.input_tokens"] == 11
    assert a["gen_ai.usage.output_tokens"] == 2
    assert a["gen_ai.usage.cache_read.input_tokens"] == 5
    assert list(a["gen_ai.response.finish_reasons"]) == ["stop"]
    assert a["server.address"] == "127.0.0.1"
    assert json_attr(span, "gen_ai.input.messages")[0]["parts"][0]["content"] == "Capital of France?"
    assert json_attr(span, "gen_ai.output.messages")[0]["parts"][0]["content"] == "Paris."


def test_streaming_records_text_and_usage_without_changing_the_request(traced, client):
    t = traced()
    spyglass.instrument_openai()
    stream = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    assert isinstance(stream, openai.Stream)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Hello"
    a = attrs(t.span("chat gpt-4o"))
    assert a["output.value"] == "Hello"
    assert a["gen_ai.usage.input_tokens"] == 7
    assert a["gen_ai.usage.output_tokens"] == 2
    assert list(a["gen_ai.response.finish_reasons"]) == ["stop"]


def test_streaming_never_adds_stream_options(traced, client):
    t = traced()
    spyglass.instrument_openai()
    with client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True) as stream:
        list(stream)
    assert "stream_options" not in FakeOpenAI.seen[-1]
    a = attrs(t.span("chat gpt-4o"))
    assert a["output.value"] == "Hello"
    assert "gen_ai.usage.input_tokens" not in a


def test_async_client_chat_and_stream(traced, fake_openai):
    t = traced()
    spyglass.instrument_openai()

    async def main() -> str:
        aclient = openai.AsyncOpenAI(base_url=fake_openai, api_key="sk-test", max_retries=0)
        await aclient.chat.completions.create(model="a-sync", messages=MESSAGES)
        stream = await aclient.chat.completions.create(
            model="a-stream", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        await aclient.close()
        return "".join(parts)

    assert asyncio.run(main()) == "Hello"
    assert attrs(t.span("chat a-sync"))["output.value"] == "Paris."
    assert attrs(t.span("chat a-stream"))["gen_ai.usage.input_tokens"] == 7


def test_embeddings_are_recorded(traced, client):
    t = traced()
    spyglass.instrument_openai()
    result = client.embeddings.create(
        model="text-embedding-3-small", input=["a", "b"], encoding_format="float"
    )
    assert len(result.data) == 2
    span = t.span("embeddings text-embedding-3-small")
    a = attrs(span)
    assert a["gen_ai.operation.name"] == "embeddings"
    assert a["openinference.span.kind"] == "EMBEDDING"
    assert a["gen_ai.usage.input_tokens"] == 4
    assert a["gen_ai.embeddings.dimension.count"] == 3
    assert json.loads(a["input.value"]) == ["a", "b"]


def test_api_error_is_recorded_and_reraised(traced, client):
    t = traced()
    spyglass.instrument_openai()
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="broken", messages=MESSAGES)
    span = t.span("chat broken")
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)["error.type"] == "InternalServerError"


def test_uninstrument_stops_recording(traced, client):
    t = traced()
    spyglass.instrument_openai()
    spyglass.uninstrument_openai()
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert t.spans() == []


def test_no_double_recording_when_openinference_is_active(traced, client):
    from openinference.instrumentation.openai import OpenAIInstrumentor

    t = traced()
    spyglass.instrument_openai()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=t.provider)
    try:
        with spyglass.context(user_id="u-oi"):
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    finally:
        instrumentor.uninstrument()
    spans = t.spans()
    assert len(spans) == 1, [(s.name, s.instrumentation_scope.name) for s in spans]
    assert spans[0].instrumentation_scope.name != "spyglass"
    assert attrs(spans[0])["user.id"] == "u-oi"  # our processor still enriches their span
