"""The SDK's own logging: one warning per problem, never a flood.

A host app whose telemetry backend is down must not have its logs buried under
one error per batch, so every recurring problem is reported once per outage.
"""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger("spyglass")

_lock = threading.Lock()
_warned: set[str] = set()


def warn_once(key: str, message: str, *args: object) -> bool:
    """Log ``message`` at WARNING the first time ``key`` is seen; returns True if logged."""
    with _lock:
        if key in _warned:
            return False
        _warned.add(key)
    logger.warning(message, *args)
    return True


def rearm(key: str) -> bool:
    """Allow ``key`` to warn again (the problem went away); returns True if it had warned."""
    with _lock:
        if key in _warned:
            _warned.discard(key)
            return True
    return False


def reset_all() -> None:
    """Forget every warning (used by ``spyglass.init`` so a new configuration starts clean)."""
    with _lock:
        _warned.clear()
