"""End-user feedback and interaction events, sent to ``POST <host>/api/v1/feedback``.

Sending happens on one daemon thread fed by a bounded queue: the caller (often a web
request handler) returns immediately, a slow or dead server costs nothing but dropped
feedback, and a burst can never grow memory without bound.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from opentelemetry import trace

from ._config import Config
from ._log import logger, rearm, warn_once
from ._serialize import to_jsonable
from ._version import __version__

_QUEUE_SIZE = 1_000
_WARN_KEY = "feedback"


def current_trace_id() -> str | None:
    """The current trace id as 32 hex characters, or None outside any span."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


class FeedbackClient:
    def __init__(self, config: Config, *, timeout: float | None = None) -> None:
        assert config.feedback_endpoint is not None
        self._endpoint = config.feedback_endpoint
        self._headers = {
            "Content-Type": "application/json",
            "X-Spyglass-Public-Key": config.public_key or "",
            "User-Agent": f"spyglass-sdk/{__version__}",
        }
        self._timeout = timeout or config.export_timeout
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=_QUEUE_SIZE)
        self._thread = threading.Thread(target=self._run, name="spyglass-feedback", daemon=True)
        self._closed = False
        self._thread.start()

    def submit(self, payload: dict[str, Any]) -> None:
        if self._closed:
            return
        try:
            self._queue.put_nowait(payload)
        except queue.Full:
            warn_once("feedback-queue", "spyglass: feedback queue is full; dropping feedback")

    def _run(self) -> None:
        while True:
            payload = self._queue.get()
            try:
                if payload is None:
                    return
                self._send(payload)
            finally:
                self._queue.task_done()

    def _send(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, default=str).encode()
        request = urllib.request.Request(self._endpoint, data=body, headers=self._headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            warn_once(
                _WARN_KEY,
                "spyglass: feedback rejected by %s (HTTP %s); logged once",
                self._endpoint,
                exc.code,
            )
            return
        except Exception as exc:
            warn_once(
                _WARN_KEY, "spyglass: could not send feedback to %s (%r); logged once", self._endpoint, exc
            )
            return
        if rearm(_WARN_KEY):
            logger.info("spyglass: sending feedback to %s works again", self._endpoint)

    def flush(self, timeout: float) -> bool:
        """Wait until the queue is drained, at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._queue.all_tasks_done.wait(remaining)
        return True

    def shutdown(self, timeout: float) -> None:
        self.flush(timeout)
        self._closed = True
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)


def _submit(trace_id: str | None, kind: str, name: str, value: Any, comment: str | None) -> None:
    from ._setup import state

    if not state.enabled:
        return
    trace_id = trace_id or current_trace_id()
    if not trace_id:
        warn_once(
            "feedback-no-trace",
            "spyglass: feedback without a trace id (none given, no current span); dropped",
        )
        return
    client = state.feedback
    if client is None:
        warn_once(
            "feedback-unconfigured",
            "spyglass: feedback needs host and public_key (SPYGLASS_HOST, SPYGLASS_PUBLIC_KEY); dropped",
        )
        return
    client.submit(
        {
            "trace_id": str(trace_id),
            "kind": kind,
            "name": str(name),
            "value": to_jsonable(value),
            "comment": comment,
        }
    )


def feedback(
    trace_id: str | None, name: str, value: float | int | bool | str | None, comment: str | None = None
) -> None:
    """Record explicit end-user feedback (thumbs, stars, a label) on a trace.

    ``trace_id`` may be None to use the current trace. Sent in the background; never raises.
    """
    with contextlib.suppress(Exception):
        _submit(trace_id, "feedback", name, value, comment)


def event(trace_id: str | None, name: str, value: Any = None) -> None:
    """Record an interaction event on a trace: "copy", "regenerate", "edit", "abandon", "escalate", ...

    Sent in the background; never raises.
    """
    with contextlib.suppress(Exception):
        _submit(trace_id, "event", name, value, None)
