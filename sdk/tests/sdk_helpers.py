"""Small assertion helpers shared by the SDK tests (kept out of conftest so they import by a unique name)."""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def json_attr(span: ReadableSpan, key: str) -> Any:
    return json.loads(attrs(span)[key])
