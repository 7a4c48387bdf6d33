"""An exporter wrapper that can never hurt the host app.

The stock OTLP exporter logs an ERROR per failed batch (plus a WARNING per retry) and,
while the backend is down, spends its whole timeout on every batch. Wrapped here:

* it never raises;
* its own log records are silenced while *we* call it (a thread-local flag read by a
  logging filter, so other OTLP exporters in the process keep their logs), and the
  SDK logs a single warning per outage instead, plus one info line on recovery;
* after a failure a circuit opens: batches are dropped immediately for a cool-down that
  doubles up to five minutes, so a dead backend costs nothing and ``flush()`` stays fast.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ._log import logger, rearm, warn_once

_WARN_KEY = "export"
_FIRST_COOLDOWN = 5.0
_MAX_COOLDOWN = 300.0

# Loggers the OTLP/HTTP exporter stack writes to during export().
_EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.exporter.http.transport._requests",
    "opentelemetry.exporter.http.transport._urllib3",
)

_silenced = threading.local()


class _SilenceDuringOurExport(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(_silenced, "active", False):
            if record.levelno >= logging.WARNING:
                _silenced.last_message = record.getMessage()
            return False
        return True


_filter = _SilenceDuringOurExport()
_filter_installed = False
_filter_lock = threading.Lock()


def _install_filter() -> None:
    global _filter_installed
    with _filter_lock:
        if _filter_installed:
            return
        for name in _EXPORTER_LOGGERS:
            logging.getLogger(name).addFilter(_filter)
        _filter_installed = True


class ResilientExporter(SpanExporter):
    def __init__(self, inner: SpanExporter, *, target: str) -> None:
        self._inner = inner
        self._target = target
        self._lock = threading.Lock()
        self._open_until = 0.0
        self._cooldown = _FIRST_COOLDOWN
        self._failing = False
        self.dropped_spans = 0
        _install_filter()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            if time.monotonic() < self._open_until:
                self.dropped_spans += len(spans)
                return SpanExportResult.FAILURE
        _silenced.active = True
        _silenced.last_message = None
        try:
            result = self._inner.export(spans)
            reason = _silenced.last_message
        except Exception as exc:  # the contract is "never raises", whatever the exporter does
            result, reason = SpanExportResult.FAILURE, repr(exc)
        finally:
            _silenced.active = False
        if result is SpanExportResult.SUCCESS:
            self._on_success()
        else:
            self._on_failure(len(spans), reason)
        return result

    def _on_success(self) -> None:
        with self._lock:
            was_failing, self._failing = self._failing, False
            self._cooldown = _FIRST_COOLDOWN
        if was_failing and rearm(_WARN_KEY):
            logger.info("spyglass: exporting spans to %s works again", self._target)

    def _on_failure(self, count: int, reason: str | None) -> None:
        with self._lock:
            self._failing = True
            self.dropped_spans += count
            self._open_until = time.monotonic() + self._cooldown
            self._cooldown = min(self._cooldown * 2, _MAX_COOLDOWN)
        warn_once(
            _WARN_KEY,
            "spyglass: could not export spans to %s (%s); spans are dropped until it recovers. "
            "Your app is unaffected; this is logged once per outage.",
            self._target,
            reason or "export failed",
        )

    def shutdown(self) -> None:
        _silenced.active = True
        try:
            self._inner.shutdown()
        except Exception:
            pass
        finally:
            _silenced.active = False

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        try:
            return self._inner.force_flush(timeout_millis)
        except Exception:
            return False
