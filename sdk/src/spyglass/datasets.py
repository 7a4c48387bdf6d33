"""``spyglass.datasets``: create, read and add to Spyglass datasets.

    import spyglass
    spyglass.datasets.create("support-golden", description="hard support questions")
    spyglass.datasets.add("support-golden", items=[{"input": "Where is my order?",
                                                    "expected_output": "Let me check."}])
    spyglass.datasets.add("support-golden", filter={"metadata.plan": "pro"}, limit=500)
    ds = spyglass.datasets.get("support-golden")          # the current version
    for item in ds.items: ...

Uses the host and secret key given to :func:`spyglass.init` (or ``SPYGLASS_HOST`` /
``SPYGLASS_SECRET_KEY``). Unlike tracing, these calls are made on purpose by the caller,
so a failure raises :class:`DatasetError` (with the server's message, e.g. which item and
field were invalid) instead of being swallowed.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._version import __version__

DEFAULT_TIMEOUT = 60.0
_PAGE = 1000


class DatasetError(Exception):
    """A dataset call failed; ``status`` is the HTTP status (None: not reached)."""

    def __init__(self, message: str, *, status: int | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class DatasetItem:
    id: int
    input: Any  # text, or a list of {"role", "content"} messages
    expected_output: str | None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    source_trace_id: str | None = None
    source_span_id: str | None = None
    split: str | None = None


@dataclass(frozen=True)
class Dataset:
    name: str
    version: int
    items: tuple[DatasetItem, ...] = ()
    description: str = ""


def _config() -> tuple[str, str]:
    from ._prompts import _current_config

    config = _current_config()
    if not config.host:
        raise DatasetError("no host configured (spyglass.init(host=...) or SPYGLASS_HOST)")
    if not config.secret_key:
        raise DatasetError("no secret key configured (spyglass.init(secret_key=...) or SPYGLASS_SECRET_KEY)")
    return config.host, config.secret_key


def _call(method: str, path: str, body: Any = None, *, timeout: float = DEFAULT_TIMEOUT) -> Any:
    host, key = _config()
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json",
               "User-Agent": f"spyglass-sdk/{__version__}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(host + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            error = json.loads(exc.read())["error"]
            message, detail = str(error["message"]), error.get("detail")
        except Exception:
            message, detail = str(exc.reason), None
        raise DatasetError(f"HTTP {exc.code}: {message}", status=exc.code, detail=detail) from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{host} unreachable ({exc})") from None


def _quoted(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def create(name: str, *, description: str = "", timeout: float = DEFAULT_TIMEOUT) -> Dataset:
    """Create an empty dataset (version 0). A taken name raises DatasetError (status 409)."""
    body = _call("POST", "/api/v1/datasets", {"name": name, "description": description}, timeout=timeout)
    return Dataset(name=body["name"], version=body["current_version"],
                   description=body.get("description", ""))


def add(
    name: str,
    *,
    items: Sequence[Mapping[str, Any]] | None = None,
    trace_ids: Sequence[str] | None = None,
    filter: Mapping[str, Any] | None = None,
    limit: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, Any]:
    """Add items, traces by id, or the traces of an explorer filter: a new version.

    Give exactly one of them. Returns the server's answer: ``version``, ``added``,
    ``duplicates_skipped`` (inputs the dataset already held), ``without_input``, ``matched``.
    """
    choices = (("items", items), ("trace_ids", trace_ids), ("filter", filter))
    given = {key: value for key, value in choices if value is not None}
    if len(given) != 1:
        raise ValueError("pass exactly one of items, trace_ids, filter")
    body: dict[str, Any] = {key: (list(value) if key != "filter" else dict(value))
                            for key, value in given.items()}
    if limit is not None:
        body["limit"] = limit
    return _call("POST", f"/api/v1/datasets/{_quoted(name)}/items", body, timeout=timeout)


def get(name: str, *, version: int | None = None, split: str | None = None,
        timeout: float = DEFAULT_TIMEOUT) -> Dataset:
    """One version of a dataset (default: the current one) with all its items, read page
    by page. An unknown name or version raises DatasetError (status 404)."""
    query: dict[str, Any] = {"limit": _PAGE}
    if version is not None:
        query["version"] = version
    if split is not None:
        query["split"] = split
    items: list[DatasetItem] = []
    number = version
    while True:
        page = _call("GET", f"/api/v1/datasets/{_quoted(name)}/items?{urllib.parse.urlencode(query)}",
                     timeout=timeout)
        # Pin the version the first page answered, so a concurrent add cannot mix two.
        number = page["version"]
        query["version"] = number
        items.extend(DatasetItem(id=i["id"], input=i["input"], expected_output=i.get("expected_output"),
                                 metadata=i.get("metadata") or {}, source_trace_id=i.get("source_trace_id"),
                                 source_span_id=i.get("source_span_id"), split=i.get("split"))
                     for i in page["items"])
        if page.get("next_cursor") is None:
            break
        query["cursor"] = page["next_cursor"]
    return Dataset(name=name, version=int(number or 0), items=tuple(items))
