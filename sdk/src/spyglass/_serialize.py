"""Turn arbitrary Python values into JSON-safe data and bounded strings.

Span attributes must be primitives, and one huge prompt or a non-serialisable object
must never raise into the traced function, so everything here is total: any value
becomes *some* JSON-safe representation, and every string is capped.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import json
import uuid
from collections.abc import Mapping
from decimal import Decimal
from pathlib import PurePath
from typing import Any

_MAX_DEPTH = 12
_MAX_ITEMS = 1_000
TRUNCATION_MARK = "…[truncated {} chars]"


def to_jsonable(value: Any, _depth: int = 0) -> Any:
    """Best-effort conversion to dict/list/str/int/float/bool/None; never raises."""
    try:
        return _convert(value, _depth)
    except Exception:  # a broken __repr__ or model_dump must not reach the app
        return f"<unserialisable {type(value).__name__}>"


def _convert(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        # NaN/inf are not JSON; keep them readable instead of failing the dump.
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if depth >= _MAX_DEPTH:
        return f"<{type(value).__name__} nested too deep>"
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(value.items()):
            if i >= _MAX_ITEMS:
                out["…"] = f"{len(value) - _MAX_ITEMS} more items"
                break
            out[k if isinstance(k, str) else str(k)] = _convert(v, depth + 1)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value) if not isinstance(value, set | frozenset) else sorted(value, key=repr)
        out_list = [_convert(v, depth + 1) for v in items[:_MAX_ITEMS]]
        if len(items) > _MAX_ITEMS:
            out_list.append(f"… {len(items) - _MAX_ITEMS} more items")
        return out_list
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        if len(raw) <= 256:
            return {"type": "bytes", "base64": base64.b64encode(raw).decode()}
        return f"<{len(raw)} bytes>"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return _convert(value.value, depth + 1)
    if isinstance(value, uuid.UUID | Decimal | PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _convert({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, depth + 1)
    model_dump = getattr(value, "model_dump", None)  # pydantic v2 (openai, anthropic responses)
    if callable(model_dump) and not isinstance(value, type):
        return _convert(model_dump(), depth + 1)
    to_dict = getattr(value, "to_dict", None) or getattr(value, "dict", None)
    if callable(to_dict) and not isinstance(value, type):
        try:
            return _convert(to_dict(), depth + 1)
        except TypeError:
            pass
    if hasattr(value, "__aiter__") or hasattr(value, "__next__"):
        # Iterating would consume the caller's stream; describe it instead.
        return f"<{type(value).__name__}>"
    return repr(value)


def truncate(text: str, max_chars: int) -> tuple[str, bool]:
    if len(text) <= max_chars:
        return text, False
    dropped = len(text) - max_chars
    return text[:max_chars] + TRUNCATION_MARK.format(dropped), True


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def to_attribute(value: Any, max_chars: int) -> tuple[str, str]:
    """Render an already JSON-safe value as (text, mime type) for input.value/output.value.

    Plain strings stay plain text so a prompt reads naturally in the UI; everything else
    is JSON. A truncated JSON document is no longer valid JSON, so it is labelled text.
    """
    if isinstance(value, str):
        text, _ = truncate(value, max_chars)
        return text, "text/plain"
    text, cut = truncate(dumps(value), max_chars)
    return text, "text/plain" if cut else "application/json"
