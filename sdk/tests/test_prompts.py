"""get_prompt: fetch, cache, background refresh, stale-on-outage, fallback, compile, linking.

A local HTTP server plays the registry; no Django involved.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import spyglass


@dataclass
class Registry:
    url: str
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)  # label -> payload
    requests: list[dict[str, Any]] = field(default_factory=list)
    down: bool = False  # answer 503 (server up but failing)
    stop: Any = None  # close the listening socket (connection refused from then on)

    def set(self, label: str, version: int, template: Any) -> None:
        self.versions[label] = {
            "name": "support-answer",
            "type": "text" if isinstance(template, str) else "chat",
            "version": version,
            "labels": [label],
            "template": template,
            "config": {"model": "gpt-4o-mini"},
            "variables": [],
        }


@pytest.fixture
def registry() -> Iterator[Registry]:
    state: dict[str, Registry] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            reg = state["r"]
            headers = {k.lower(): v for k, v in self.headers.items()}
            reg.requests.append({"path": self.path, "headers": headers})
            if reg.down:
                return self._send(503, {"error": {"code": "unavailable", "message": "down"}})
            label = self.path.partition("label=")[2] or "production"
            payload = reg.versions.get(label)
            if payload is None:
                return self._send(404, {"error": {"code": "not_found", "message": f"no label {label!r}"}})
            etag = f'"v{payload["version"]}-{label}"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return None
            return self._send(200, payload, etag)

        def _send(self, status: int, body: dict, etag: str | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if etag:
                self.send_header("ETag", etag)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    def stop() -> None:
        server.shutdown()
        server.server_close()

    state["r"] = Registry(url=f"http://127.0.0.1:{server.server_address[1]}", stop=stop)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    spyglass.clear_prompt_cache()
    yield state["r"]
    spyglass.clear_prompt_cache()
    if server.socket.fileno() != -1:
        stop()


def _wait(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_fetch_uses_the_secret_key_and_returns_the_version(registry):
    registry.set("production", 3, "Hi {{name}}")
    spyglass.init(host=registry.url, secret_key="sk-sg-test", enabled=False)
    prompt = spyglass.get_prompt("support-answer", label="production")
    assert (prompt.name, prompt.version, prompt.type) == ("support-answer", 3, "text")
    assert not prompt.is_fallback
    assert prompt.config == {"model": "gpt-4o-mini"}
    request = registry.requests[0]
    assert request["path"] == "/api/v1/prompts/support-answer?label=production"
    assert request["headers"]["authorization"] == "Bearer sk-sg-test"


def test_fresh_cache_makes_no_request(registry):
    registry.set("production", 1, "x")
    spyglass.init(host=registry.url, secret_key="sk", enabled=False)
    for _ in range(5):
        spyglass.get_prompt("support-answer", label="production")
    assert len(registry.requests) == 1


def test_stale_entry_is_served_at_once_and_refreshed_in_the_background(registry):
    registry.set("production", 1, "old")
    spyglass.init(host=registry.url, secret_key="sk", enabled=False)
    assert spyglass.get_prompt("support-answer", label="production", cache_ttl_seconds=0.05).version == 1
    registry.set("production", 2, "new")
    time.sleep(0.1)
    # Stale: the old version comes back immediately, the refresh happens behind it.
    assert spyglass.get_prompt("support-answer", label="production", cache_ttl_seconds=0.05).version == 1
    assert _wait(
        lambda: spyglass.get_prompt("support-answer", label="production", cache_ttl_seconds=60).version == 2
    )
    revalidation = registry.requests[1]["headers"]
    assert revalidation["if-none-match"] == '"v1-production"'


def test_unchanged_prompt_revalidates_with_304(registry):
    registry.set("production", 1, "same")
    spyglass.init(host=registry.url, secret_key="sk", enabled=False)
    spyglass.get_prompt("support-answer", cache_ttl_seconds=0)
    again = spyglass.get_prompt("support-answer", cache_ttl_seconds=0)
    assert again.version == 1 and len(registry.requests) == 2


@pytest.mark.parametrize("outage", ["503", "unreachable"])
def test_last_good_version_is_served_during_an_outage(registry, outage):
    registry.set("production", 4, "good")
    spyglass.init(host=registry.url, secret_key="sk", enabled=False)
    assert spyglass.get_prompt("support-answer", cache_ttl_seconds=0.05).version == 4
    if outage == "503":
        registry.down = True
    else:
        registry.stop()
    time.sleep(0.1)
    for _ in range(3):  # stale -> background refresh fails -> still the last good copy
        assert spyglass.get_prompt("support-answer", cache_ttl_seconds=0.05).version == 4
        time.sleep(0.06)
    # With caching disabled every call asks, and every failure falls back to the copy.
    assert spyglass.get_prompt("support-answer", cache_ttl_seconds=0, timeout=1).template == "good"


def test_fallback_is_used_only_when_never_fetched(registry, closed_port_url):
    spyglass.init(host=closed_port_url, secret_key="sk", enabled=False)
    prompt = spyglass.get_prompt("support-answer", fallback="Answer {{question}}", timeout=1)
    assert prompt.is_fallback and prompt.version is None
    assert prompt.compile(question="why?") == "Answer why?"
    with pytest.raises(spyglass.PromptUnavailableError, match="could not fetch prompt 'support-answer'"):
        spyglass.get_prompt("support-answer", timeout=1)


def test_unknown_label_names_the_server_message(registry):
    spyglass.init(host=registry.url, secret_key="sk", enabled=False)
    with pytest.raises(spyglass.PromptUnavailableError, match="HTTP 404: no label 'canary'"):
        spyglass.get_prompt("support-answer", label="canary")


def test_label_and_version_together_are_refused():
    with pytest.raises(ValueError, match="either label or version"):
        spyglass.get_prompt("x", label="production", version=2)


def test_compile_text_and_chat():
    text = spyglass.Prompt(name="t", version=1, type="text", template="Hi {{ name }}, {{name}}! {{x}}")
    assert text.compile(name="Ada", x="{{name}}", unused=1) == "Hi Ada, Ada! {{name}}"
    chat = spyglass.Prompt(
        name="c", version=2, type="chat",
        template=[{"role": "system", "content": "Be {{tone}}."}, {"role": "user", "content": "{{q}}"}],
    )
    assert chat.compile(tone="brief", q=42) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "42"},
    ]


def test_compile_names_every_missing_variable():
    prompt = spyglass.Prompt(name="support-answer", version=3, type="text", template="{{a}} {{b}} {{c}}")
    with pytest.raises(spyglass.PromptCompileError) as err:
        prompt.compile(b=1)
    assert err.value.missing == ["a", "c"]
    assert str(err.value) == (
        "prompt 'support-answer' v3 needs variables 'a', 'c'; pass a=..., c=... to compile()"
    )


def _attrs(span) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_context_and_llm_span_link_to_the_fetched_version(traced):
    t = traced()
    prompt = spyglass.Prompt(name="support-answer", version=3, type="text", template="Hi")
    with spyglass.context(prompt=prompt), spyglass.llm_span(model="gpt-4o-mini", name="in-context"):
        pass
    with spyglass.llm_span(model="gpt-4o-mini", name="direct", prompt=prompt):
        pass
    for name in ("in-context", "direct"):
        a = _attrs(t.span(name))
        # The receiver maps gen_ai.prompt.name and llm.prompt_template.version to
        # Trace.prompt_name / prompt_version (tracing/otlp/mapping.py).
        assert a["gen_ai.prompt.name"] == "support-answer"
        assert a["llm.prompt_template.version"] == "3"
        assert a["llm.prompt_template.template"] == "Hi"
