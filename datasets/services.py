"""Writes to datasets. Every change takes the dataset's row lock, writes the new items
and one DatasetVersion row, and bumps `current_version`, in one transaction: a version
is either wholly there or not at all (an upload with a bad line 9,000 adds nothing).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db import IntegrityError, transaction

from annotation.models import AnnotationQueue
from annotation.selectors import newest_corrections, queue_reviewed_trace_ids
from config.errors import Conflict, NotFound, ValidationFailed
from datasets.models import Dataset, DatasetItem, DatasetVersion
from explorer.filters import TraceFilter
from projects.models import Project
from tracing.models import Span, SpanKind, Trace

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
ROLES = ("system", "developer", "user", "assistant", "tool")
# Page paths under /p/<project>/datasets/ that a dataset name would shadow.
RESERVED_NAMES = frozenset({"add", "add-trace", "add-queue"})
MAX_ITEMS_PER_CALL = 10_000
FILTER_CAP_DEFAULT = 1_000
FILTER_CAP_MAX = 50_000
MAX_TEXT = 1_000_000  # characters of one input or expected output
_BATCH = 2_000


@dataclass(frozen=True)
class ItemIn:
    """A validated item, before it has a dataset and version."""

    input: str | list[dict[str, Any]]
    expected_output: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source_trace_id: str | None = None
    source_span_id: str | None = None


@dataclass(frozen=True)
class AddResult:
    dataset: Dataset
    version: DatasetVersion | None  # None: nothing new, so no new version
    added: int
    duplicates: int
    # Filter / trace adds: traces that had no input text or messages to take.
    without_input: int = 0
    matched: int | None = None  # filter adds: traces matching the filter (before the cap)
    # Trace adds: items whose expected output is a reviewer's corrected answer.
    corrected: int = 0


# --- datasets --------------------------------------------------------------------------------


def dataset_create(*, project: Project, name: str, description: str = "", user: Any = None) -> Dataset:
    if not NAME_PATTERN.match(name):
        raise ValidationFailed(
            f"name: {name!r} must be 1-200 letters, digits, '.', '_' or '-', starting with a letter or digit",
            detail={"name": ["1-200 letters, digits, '.', '_' or '-', starting with a letter or digit"]})
    if name in RESERVED_NAMES:
        raise ValidationFailed(f"name: {name!r} is reserved (a page's address)", detail={"name": ["reserved"]})
    try:
        with transaction.atomic():
            dataset = Dataset.objects.create(project=project, name=name, description=description,
                                             created_by=_user(user))
    except IntegrityError:
        raise Conflict(f"A dataset named {name!r} already exists in this project.",
                       detail={"name": ["already exists"]}) from None
    return dataset


def _user(user: Any) -> Any:
    """API keys act without a Django user."""
    return user if getattr(user, "pk", None) else None


def _locked(dataset: Dataset) -> Dataset:
    """The dataset row, locked: concurrent writers queue here, so each gets its own
    version number and sees the other's items in its duplicate check."""
    locked = Dataset.objects.select_for_update().filter(pk=dataset.pk).first()
    if locked is None:
        raise NotFound(f"Dataset {dataset.name!r} was deleted.")
    return locked


def input_hash(value: str | list[dict[str, Any]]) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


@transaction.atomic
def items_add(*, dataset: Dataset, items: Sequence[ItemIn], change: Mapping[str, Any], user: Any = None,
              without_input: int = 0, matched: int | None = None, corrected: int = 0) -> AddResult:
    """Add items as a new version, skipping any whose input the dataset (or an earlier
    item of the same call) already holds. No new item, no new version."""
    dataset = _locked(dataset)
    seen: set[str] = set()
    fresh: list[tuple[str, ItemIn]] = []
    hashes = [input_hash(item.input) for item in items]
    existing: set[str] = set()
    for start in range(0, len(hashes), _BATCH):
        chunk = hashes[start:start + _BATCH]
        existing.update(DatasetItem.objects.filter(dataset=dataset, removed_in__isnull=True, input_hash__in=chunk)
                        .values_list("input_hash", flat=True))
    for digest, item in zip(hashes, items, strict=True):
        if digest in existing or digest in seen:
            continue
        seen.add(digest)
        fresh.append((digest, item))
    duplicates = len(items) - len(fresh)
    if not fresh:
        return AddResult(dataset, None, 0, duplicates, without_input, matched, corrected)
    number = dataset.current_version + 1
    DatasetItem.objects.bulk_create(
        [DatasetItem(dataset=dataset, project_id=dataset.project_id, added_in=number, input=item.input,
                     expected_output=item.expected_output, metadata=item.metadata,
                     source_trace_id=item.source_trace_id, source_span_id=item.source_span_id, input_hash=digest)
         for digest, item in fresh],
        batch_size=_BATCH,
    )
    version = _version_create(dataset, number=number, added=len(fresh), removed=0,
                              change={**change, "duplicates_skipped": duplicates,
                                      **({"corrected": corrected} if corrected else {})}, user=user)
    return AddResult(dataset, version, len(fresh), duplicates, without_input, matched, corrected)


def _version_create(dataset: Dataset, *, number: int, added: int, removed: int, change: Mapping[str, Any],
                    user: Any, split: Mapping[str, Any] | None = None) -> DatasetVersion:
    previous = dataset.versions.filter(number=dataset.current_version).first()
    count = (previous.item_count if previous else 0) + added - removed
    version = DatasetVersion.objects.create(
        dataset=dataset, project_id=dataset.project_id, number=number, item_count=count, added=added,
        removed=removed, change=dict(change), split=dict(split if split is not None else
                                                        (previous.split if previous else {})),
        created_by=_user(user))
    Dataset.objects.filter(pk=dataset.pk).update(current_version=number, updated_at=version.created_at)
    dataset.current_version = number
    return version


@transaction.atomic
def items_remove(*, dataset: Dataset, item_ids: Iterable[int], user: Any = None) -> DatasetVersion:
    """Drop items from the next version; older versions keep them."""
    dataset = _locked(dataset)
    ids = sorted(set(item_ids))
    live = DatasetItem.objects.filter(dataset=dataset, pk__in=ids, removed_in__isnull=True)
    found = set(live.values_list("pk", flat=True))
    missing = [i for i in ids if i not in found]
    if missing:
        raise ValidationFailed(f"item_ids: not current items of this dataset: {missing[:20]}",
                               detail={"item_ids": [f"not a current item: {i}" for i in missing[:20]]})
    number = dataset.current_version + 1
    live.update(removed_in=number)
    return _version_create(dataset, number=number, added=0, removed=len(found),
                           change={"kind": "remove", "items": len(found)}, user=user)


@transaction.atomic
def split_set(*, dataset: Dataset, test_fraction: float, stratify_by: str | None = None, seed: str | None = None,
              user: Any = None) -> DatasetVersion:
    """A new version with the same items and this train/test split."""
    if not 0 < test_fraction < 1:
        raise ValidationFailed("test_fraction: must be between 0 and 1 (exclusive)",
                               detail={"test_fraction": ["must be between 0 and 1 (exclusive)"]})
    dataset = _locked(dataset)
    spec = {"test_fraction": float(test_fraction), "stratify_by": stratify_by or None,
            "seed": seed or secrets.token_hex(4)}
    return _version_create(dataset, number=dataset.current_version + 1, added=0, removed=0,
                           change={"kind": "split", **spec}, user=user, split=spec)


# --- validating items from the API or an upload ------------------------------------------------


def item_parse(raw: Any, where: str) -> ItemIn:
    """One item from JSON; errors name `where` (e.g. "items[3]") and the field."""
    if not isinstance(raw, dict):
        raise _bad(where, None, "must be an object with input, expected_output, metadata")
    unknown = set(raw) - {"input", "expected_output", "metadata", "source_trace_id", "source_span_id"}
    if unknown:
        raise _bad(where, sorted(unknown)[0], "unknown field; expected input, expected_output, metadata, "
                                              "source_trace_id, source_span_id")
    value = _input(raw.get("input"), where)
    expected = raw.get("expected_output")
    if expected is not None and not isinstance(expected, str):
        raise _bad(where, "expected_output", "must be a string or null")
    if expected is not None and len(expected) > MAX_TEXT:
        raise _bad(where, "expected_output", f"at most {MAX_TEXT} characters")
    metadata = raw.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise _bad(where, "metadata", "must be an object")
    trace_id = raw.get("source_trace_id")
    if trace_id is not None and not (isinstance(trace_id, str) and re.fullmatch(r"[0-9a-fA-F]{32}", trace_id)):
        raise _bad(where, "source_trace_id", "must be 32 hex characters")
    span_id = raw.get("source_span_id")
    if span_id is not None and not (isinstance(span_id, str) and re.fullmatch(r"[0-9a-fA-F]{16}", span_id)):
        raise _bad(where, "source_span_id", "must be 16 hex characters")
    return ItemIn(value, expected, metadata, trace_id.lower() if trace_id else None,
                  span_id.lower() if span_id else None)


def _input(value: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(value, str):
        if not value.strip():
            raise _bad(where, "input", "must not be empty")
        if len(value) > MAX_TEXT:
            raise _bad(where, "input", f"at most {MAX_TEXT} characters")
        return value
    if isinstance(value, list) and value:
        messages = []
        for i, message in enumerate(value):
            path = f"input[{i}]"
            if not isinstance(message, dict):
                raise _bad(where, path, 'must be a message {"role": ..., "content": ...}')
            role, content = message.get("role"), message.get("content")
            if role not in ROLES:
                raise _bad(where, f"{path}.role", f"must be one of {', '.join(ROLES)}")
            if not isinstance(content, str):
                raise _bad(where, f"{path}.content", "must be a string")
            clean = {"role": role, "content": content}
            if isinstance(message.get("name"), str):
                clean["name"] = message["name"]
            messages.append(clean)
        return messages
    raise _bad(where, "input", 'required: a non-empty string or a list of messages {"role", "content"}')


def _bad(where: str, field_name: str | None, problem: str) -> ValidationFailed:
    key = f"{where}.{field_name}" if field_name else where
    return ValidationFailed(f"{key}: {problem}", detail={key: [problem]})


def items_parse(raw: Any) -> list[ItemIn]:
    if not isinstance(raw, list) or not raw:
        raise ValidationFailed("items: must be a non-empty list", detail={"items": ["must be a non-empty list"]})
    if len(raw) > MAX_ITEMS_PER_CALL:
        raise ValidationFailed(f"items: at most {MAX_ITEMS_PER_CALL} per call",
                               detail={"items": [f"at most {MAX_ITEMS_PER_CALL} per call"]})
    return [item_parse(item, f"items[{i}]") for i, item in enumerate(raw)]


# --- uploads -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnMapping:
    """Which column (CSV) or key (JSONL) holds each part of an item."""

    input: str = "input"
    expected_output: str | None = "expected_output"
    metadata: tuple[str, ...] = ()  # columns copied into metadata under their own names


def upload_parse(*, data: bytes, fmt: str, mapping: ColumnMapping) -> list[ItemIn]:
    """Parse a CSV or JSONL file into items. The first bad line raises, naming its
    line number (1 = the first line of the file, the header for CSV)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationFailed(f"file: not UTF-8 (byte {exc.start})", detail={"file": ["not UTF-8"]}) from None
    rows: list[tuple[int, dict[str, Any]]] = []
    if fmt == "jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise _line(number, f"not valid JSON ({exc})") from None
            if not isinstance(row, dict):
                raise _line(number, "must be a JSON object")
            rows.append((number, row))
    elif fmt == "csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = reader.fieldnames or []
        needed = [mapping.input, *( [mapping.expected_output] if mapping.expected_output else []), *mapping.metadata]
        missing = [c for c in needed if c not in header]
        if missing:
            raise _line(1, f"no column {', '.join(repr(m) for m in missing)} in the header ({', '.join(header)})")
        try:
            for row in reader:
                rows.append((reader.line_num, row))
        except csv.Error as exc:
            raise _line(reader.line_num, f"not valid CSV ({exc})") from None
    else:
        raise ValidationFailed(f"format: {fmt!r} is not csv or jsonl", detail={"format": ["csv or jsonl"]})
    if not rows:
        raise ValidationFailed("file: no items in it", detail={"file": ["no items"]})
    if len(rows) > FILTER_CAP_MAX:
        raise ValidationFailed(f"file: at most {FILTER_CAP_MAX} items", detail={"file": ["too many items"]})
    items = []
    for number, row in rows:
        if mapping.input not in row:
            raise _line(number, f"no {mapping.input!r} (the input column)")
        raw: dict[str, Any] = {"input": row[mapping.input]}
        if fmt == "csv" and isinstance(raw["input"], str) and raw["input"].lstrip().startswith("["):
            # A CSV cell may hold chat messages as JSON (what our own CSV export writes).
            try:
                raw["input"] = orjson.loads(raw["input"])
            except orjson.JSONDecodeError:
                pass
        if mapping.expected_output and row.get(mapping.expected_output) not in (None, ""):
            raw["expected_output"] = row[mapping.expected_output]
        if mapping.metadata:
            raw["metadata"] = {key: row[key] for key in mapping.metadata if key in row}
        try:
            items.append(item_parse(raw, "item"))
        except ValidationFailed as exc:
            raise _line(number, exc.message.removeprefix("item.")) from None
    return items


def _line(number: int, problem: str) -> ValidationFailed:
    return ValidationFailed(f"line {number}: {problem}", detail={"line": number, "problem": problem})


# --- from production traces -----------------------------------------------------------------


_TRACE_FIELDS = ("trace_id", "root_span_id", "input", "output", "metadata")


def _items_from_trace_rows(project: Project, rows: list[dict[str, Any]],
                           use_corrections: bool = True) -> tuple[list[ItemIn], int, int]:
    """Items from trace rows: the first LLM span's input messages when it has them (what
    fine-tuning needs), else the trace's input text; as expected output the newest
    reviewer's corrected answer when there is one and `use_corrections`, else the trace's
    own answer. Returns (items, traces with no input at all, items that took a correction)."""
    messages: dict[str, tuple[str, list[dict[str, Any]]]] = {}
    corrections: dict[str, str] = {}
    ids = [row["trace_id"] for row in rows]
    for start in range(0, len(ids), _BATCH):
        chunk = ids[start:start + _BATCH]
        spans = (Span.objects.filter(project=project, trace_id__in=chunk, kind=SpanKind.LLM)
                 .exclude(messages=[]).order_by("trace_id", "start_time", "span_id").distinct("trace_id")
                 .values_list("trace_id", "span_id", "messages"))
        for trace_id, span_id, raw in spans:
            clean = [{"role": m["role"], "content": m.get("content") or ""} for m in raw
                     if isinstance(m, dict) and m.get("source") != "output" and m.get("role") in ROLES]
            if clean:
                messages[trace_id] = (span_id, clean)
        if use_corrections:
            corrections.update(newest_corrections(project=project, trace_ids=chunk))
    items, without, corrected = [], 0, 0
    for row in rows:
        span_id, value = messages.get(row["trace_id"], (row["root_span_id"], row["input"]))
        if not value or (isinstance(value, str) and not value.strip()):
            without += 1
            continue
        expected = corrections.get(row["trace_id"])
        corrected += expected is not None
        items.append(ItemIn(value, expected if expected is not None else row["output"],
                            dict(row["metadata"] or {}), row["trace_id"], span_id))
    return items, without, corrected


def items_add_traces(*, dataset: Dataset, trace_ids: Sequence[str], user: Any = None,
                     use_corrections: bool = True, change: Mapping[str, Any] | None = None) -> AddResult:
    """Add these traces of the dataset's project. An unknown id is a 400 naming it."""
    wanted = list(dict.fromkeys(t.lower() for t in trace_ids))
    rows = list(Trace.objects.filter(project_id=dataset.project_id, trace_id__in=wanted).values(*_TRACE_FIELDS))
    found = {row["trace_id"] for row in rows}
    missing = [(i, t) for i, t in enumerate(trace_ids) if t.lower() not in found]
    if missing:
        raise ValidationFailed(
            "; ".join(f"trace_ids[{i}]: no trace {t!r} in this project" for i, t in missing[:20]),
            detail={f"trace_ids[{i}]": ["no such trace in this project"] for i, t in missing[:20]})
    order = {t: i for i, t in enumerate(wanted)}
    rows.sort(key=lambda r: order[r["trace_id"]])
    items, without, corrected = _items_from_trace_rows(dataset.project, rows, use_corrections)
    return items_add(dataset=dataset, items=items, user=user, without_input=without, corrected=corrected,
                     change={"kind": "traces", "traces": len(wanted), **(change or {})})


def items_add_queue(*, dataset: Dataset, queue: AnnotationQueue, only_corrected: bool = False,
                    use_corrections: bool = True, user: Any = None) -> AddResult:
    """Add an annotation queue's reviewed traces (queue order), e.g. the bad answers a
    reviewer corrected. A trace that has since been deleted is left out, not an error."""
    if queue.project_id != dataset.project_id:
        raise NotFound("No such annotation queue in this project.")
    trace_ids = queue_reviewed_trace_ids(queue=queue, only_corrected=only_corrected)
    if not trace_ids:
        raise ValidationFailed(
            "queue: no reviewed item " + ("has a corrected answer" if only_corrected else "yet") + " in this queue",
            detail={"queue": ["nothing to add"]})
    present = set(Trace.objects.filter(project_id=dataset.project_id, trace_id__in=trace_ids)
                  .values_list("trace_id", flat=True))
    return items_add_traces(dataset=dataset, trace_ids=[t for t in trace_ids if t in present], user=user,
                            use_corrections=use_corrections,
                            change={"kind": "queue", "queue": queue.pk, "queue_name": queue.name,
                                    "only_corrected": only_corrected})


@dataclass(frozen=True)
class FilterPreview:
    matched: int
    cap: int

    @property
    def would_take(self) -> int:
        return min(self.matched, self.cap)


def filter_parse(raw: Any) -> TraceFilter:
    """The explorer's filter language, from a JSON object of its parameters."""
    if not isinstance(raw, dict):
        raise ValidationFailed("filter: must be an object of the explorer's filter parameters",
                               detail={"filter": ["must be an object, e.g. {\"metadata.plan\": \"pro\"}"]})
    parsed = TraceFilter.parse(raw)
    if parsed.search_mode == "semantic":
        raise ValidationFailed("filter.mode: semantic search ranks traces, it does not select them; use text",
                               detail={"mode": ["semantic is not a filter"]})
    return parsed


def filter_cap(raw: Any) -> int:
    if raw is None or raw == "":
        return FILTER_CAP_DEFAULT
    try:
        cap = int(raw)
    except (TypeError, ValueError):
        cap = 0
    if not 1 <= cap <= FILTER_CAP_MAX:
        raise ValidationFailed(f"limit: must be a whole number from 1 to {FILTER_CAP_MAX}",
                               detail={"limit": [f"a whole number from 1 to {FILTER_CAP_MAX}"]})
    return cap


def filter_preview(*, project: Project, trace_filter: TraceFilter, cap: int) -> FilterPreview:
    return FilterPreview(trace_filter.apply(project).count(), cap)


def items_add_filter(*, dataset: Dataset, trace_filter: TraceFilter, cap: int, user: Any = None,
                     use_corrections: bool = True) -> AddResult:
    """Add the newest `cap` traces matching the explorer filter (duplicates skipped)."""
    project = dataset.project
    matching = trace_filter.apply(project)
    rows = list(matching.order_by("-start_time", "-id").values(*_TRACE_FIELDS)[:cap])
    matched = len(rows) if len(rows) < cap else matching.count()
    items, without, corrected = _items_from_trace_rows(project, rows, use_corrections)
    return items_add(dataset=dataset, items=items, user=user, without_input=without, matched=matched,
                     corrected=corrected,
                     change={"kind": "filter", "filter": trace_filter.as_dict(), "limit": cap,
                             "traces": len(rows)})
