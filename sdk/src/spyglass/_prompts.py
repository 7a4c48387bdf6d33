"""``get_prompt``: prompts from the Spyglass registry, cached in-process.

A prompt fetch sits on the request path of the host app, so the cache is built to never
make it slower or less available than a hard-coded string:
- fresh entry (younger than ``cache_ttl_seconds``): returned with no network call;
- stale entry: returned immediately, and ONE background thread revalidates it with
  ``If-None-Match`` (the server answers 304 when nothing changed);
- server unreachable or failing (network error, 5xx): the last good version keeps being
  served, and retries are spaced out instead of hammering a struggling server;
- never fetched and the server is unreachable: ``fallback=`` (a template) is returned as
  a prompt with ``is_fallback=True``, or ``PromptUnavailableError`` is raised.
A 404 on revalidation (the label was removed) drops the entry, so the next call reports it.

Passing the returned prompt to ``spyglass.context(prompt=...)`` or
``spyglass.llm_span(prompt=...)`` links the spans, and so the trace, to that version.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._config import Config, resolve
from ._log import logger, warn_once
from ._version import __version__

DEFAULT_CACHE_TTL_SECONDS = 60.0
# After a failed revalidation, wait this long (at most the TTL) before trying again.
RETRY_AFTER_FAILURE_SECONDS = 5.0

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*\}\}")


class PromptError(Exception):
    """Base class of prompt errors."""


class PromptUnavailableError(PromptError):
    """The prompt could not be fetched and there is neither a cached copy nor a fallback."""


class PromptCompileError(PromptError, KeyError):
    """``compile`` was missing a variable; ``.missing`` names every missing one."""

    def __init__(self, message: str, missing: list[str]) -> None:
        super().__init__(message)
        self.message = message
        self.missing = missing

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


@dataclass(frozen=True)
class Prompt:
    """One prompt version as served by the registry (or a local fallback)."""

    name: str
    version: int | None
    type: str  # "text" | "chat"
    template: Any  # str, or a list of {"role", "content"} messages
    config: Mapping[str, Any] = field(default_factory=dict)
    variables: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    is_fallback: bool = False

    def compile(self, **variables: Any) -> str | list[dict[str, Any]]:
        """Fill every ``{{variable}}``: text for text prompts, a new message list for chat.

        Values are inserted as ``str(value)`` in one pass, so a value that itself contains
        ``{{x}}`` stays literal. Extra keyword arguments are ignored; a missing one raises
        :class:`PromptCompileError` naming it.
        """
        missing = [name for name in _variables_of(self.template) if name not in variables]
        if missing:
            which = ", ".join(repr(m) for m in missing)
            version = f" v{self.version}" if self.version is not None else " (fallback)"
            raise PromptCompileError(
                f"prompt {self.name!r}{version} needs variable{'s' if len(missing) > 1 else ''} {which}; "
                f"pass {', '.join(f'{m}=...' for m in missing)} to compile()",
                missing,
            )

        def fill(text: str) -> str:
            return _PLACEHOLDER.sub(lambda m: str(variables[m.group(1)]), text)

        if isinstance(self.template, str):
            return fill(self.template)
        return [{**message, "content": fill(str(message.get("content", "")))} for message in self.template]


def _variables_of(template: Any) -> list[str]:
    texts = [template] if isinstance(template, str) else [str(m.get("content", "")) for m in template or ()]
    return list(dict.fromkeys(name for text in texts for name in _PLACEHOLDER.findall(text)))


def _prompt_from_payload(payload: Mapping[str, Any]) -> Prompt:
    template = payload["template"]
    return Prompt(
        name=str(payload["name"]),
        version=int(payload["version"]),
        type=str(payload.get("type") or ("text" if isinstance(template, str) else "chat")),
        template=template,
        config=dict(payload.get("config") or {}),
        variables=tuple(payload.get("variables") or _variables_of(template)),
        labels=tuple(payload.get("labels") or ()),
    )


class _FetchError(Exception):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Entry:
    prompt: Prompt
    etag: str | None
    expires_at: float  # time.monotonic() after which the entry is stale
    refreshing: bool = False


_NOT_MODIFIED = object()


class _PromptCache:
    def __init__(self) -> None:
        self._entries: dict[tuple[Any, ...], _Entry] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def get(
        self,
        config: Config,
        name: str,
        *,
        label: str | None,
        version: int | None,
        ttl: float,
        fallback: Any,
        timeout: float,
    ) -> Prompt:
        key = (config.host, config.secret_key, name, label, version)
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and (now < entry.expires_at or entry.refreshing):
                return entry.prompt
            if entry is not None and ttl > 0:
                # Stale: serve it now, revalidate once in the background.
                entry.refreshing = True
                threading.Thread(
                    target=self._refresh,
                    args=(key, entry, config, name, label, version, ttl, timeout),
                    name="spyglass-prompt-refresh",
                    daemon=True,
                ).start()
                return entry.prompt
        # No entry (or caching disabled): fetch on the caller's thread.
        try:
            result, etag = _fetch(config, name, label=label, version=version, timeout=timeout,
                                  etag=entry.etag if entry else None)
        except _FetchError as exc:
            if entry is not None and exc.status != 404:
                return entry.prompt  # TTL 0 and the server is down: last good version
            if fallback is not None:
                warn_once(
                    f"prompt-fallback:{name}", "spyglass: using the fallback for prompt %r: %s", name, exc
                )
                return _fallback_prompt(name, fallback)
            raise PromptUnavailableError(f"could not fetch prompt {name!r}: {exc}") from None
        prompt = entry.prompt if result is _NOT_MODIFIED and entry is not None else result
        assert isinstance(prompt, Prompt)
        with self._lock:
            self._entries[key] = _Entry(prompt, etag, time.monotonic() + max(ttl, 0.0))
        return prompt

    def _refresh(
        self,
        key: tuple[Any, ...],
        entry: _Entry,
        config: Config,
        name: str,
        label: str | None,
        version: int | None,
        ttl: float,
        timeout: float,
    ) -> None:
        try:
            result, etag = _fetch(
                config, name, label=label, version=version, timeout=timeout, etag=entry.etag
            )
        except _FetchError as exc:
            with self._lock:
                if exc.status == 404:
                    # The label or prompt is gone: stop serving it, let the next call say so.
                    self._entries.pop(key, None)
                else:
                    entry.expires_at = time.monotonic() + min(ttl, RETRY_AFTER_FAILURE_SECONDS)
                entry.refreshing = False
            warn_once(
                f"prompt-refresh:{name}",
                "spyglass: could not refresh prompt %r (%s); serving the cached version v%s",
                name, exc, entry.prompt.version,
            )
            return
        except Exception:  # never let a refresh thread die noisily inside the host app
            logger.debug("spyglass: prompt refresh failed", exc_info=True)
            with self._lock:
                entry.refreshing = False
                entry.expires_at = time.monotonic() + min(ttl, RETRY_AFTER_FAILURE_SECONDS)
            return
        with self._lock:
            prompt = entry.prompt if result is _NOT_MODIFIED else result
            assert isinstance(prompt, Prompt)
            self._entries[key] = _Entry(prompt, etag or entry.etag, time.monotonic() + ttl)


def _fallback_prompt(name: str, fallback: Any) -> Prompt:
    if not isinstance(fallback, str | list):
        raise TypeError("fallback must be a template string or a list of {'role', 'content'} messages")
    return Prompt(
        name=name,
        version=None,
        type="text" if isinstance(fallback, str) else "chat",
        template=fallback,
        variables=tuple(_variables_of(fallback)),
        is_fallback=True,
    )


def _fetch(
    config: Config, name: str, *, label: str | None, version: int | None, timeout: float, etag: str | None
) -> tuple[Any, str | None]:
    """(Prompt or _NOT_MODIFIED, etag). Raises _FetchError with the server's message."""
    if not config.host:
        raise _FetchError("no host configured (spyglass.init(host=...) or SPYGLASS_HOST)")
    if not config.secret_key:
        raise _FetchError("no secret key configured (spyglass.init(secret_key=...) or SPYGLASS_SECRET_KEY)")
    query = {}
    if label is not None:
        query["label"] = label
    if version is not None:
        query["version"] = str(version)
    url = f"{config.host}/api/v1/prompts/{urllib.parse.quote(name, safe='')}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    headers = {
        "Authorization": f"Bearer {config.secret_key}",
        "Accept": "application/json",
        "User-Agent": f"spyglass-sdk/{__version__}",
    }
    if etag:
        headers["If-None-Match"] = etag
    request = urllib.request.Request(url, headers=headers, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
            new_etag = response.headers.get("ETag")
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return _NOT_MODIFIED, exc.headers.get("ETag") or etag
        raise _FetchError(f"HTTP {exc.code}: {_error_message(exc)}", status=exc.code) from None
    except (OSError, ValueError) as exc:  # URLError, timeouts, connection refused, bad URL
        raise _FetchError(f"{url} unreachable ({exc})") from None
    try:
        return _prompt_from_payload(json.loads(body)), new_etag
    except (ValueError, KeyError, TypeError) as exc:
        raise _FetchError(f"unexpected response from {url}: {exc!r}") from None


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read())["error"]["message"])
    except Exception:
        return exc.reason if isinstance(exc.reason, str) else "error"


_cache = _PromptCache()


def _current_config() -> Config:
    from ._setup import get_config

    config = get_config()
    if config is not None:
        return config
    # Not initialised: the same SPYGLASS_* environment init() would read.
    return resolve(
        host=None, public_key=None, secret_key=None, service_name=None, environment=None, release=None,
        sample_rate=None, mask=None, enabled=None, max_field_chars=None, export_timeout=None,
    )


def get_prompt(
    name: str,
    *,
    label: str | None = None,
    version: int | None = None,
    cache_ttl_seconds: float = DEFAULT_CACHE_TTL_SECONDS,
    fallback: str | list[dict[str, Any]] | None = None,
    timeout: float | None = None,
) -> Prompt:
    """Fetch a prompt version from the registry, through the in-process cache.

    ``label`` (e.g. ``"production"``, ``"staging"``, ``"latest"``) or ``version`` picks the
    version; with neither, the server returns the ``production`` version if that label
    exists, else the newest. Uses the host and secret key given to :func:`spyglass.init`
    (or ``SPYGLASS_HOST`` / ``SPYGLASS_SECRET_KEY``). ``cache_ttl_seconds=0`` asks the
    server every time (still serving the last good copy if it is down).
    """
    if label is not None and version is not None:
        raise ValueError("pass either label or version, not both")
    config = _current_config()
    return _cache.get(
        config,
        name,
        label=label,
        version=version,
        ttl=float(cache_ttl_seconds),
        fallback=fallback,
        timeout=float(timeout if timeout is not None else config.export_timeout),
    )


def clear_prompt_cache() -> None:
    """Forget every cached prompt (tests, or after rotating keys)."""
    _cache.clear()
