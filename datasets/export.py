"""Exports of a dataset version: OpenAI chat fine-tuning JSONL, preference pairs JSONL,
CSV. Streamed from a server-side cursor, so memory stays flat whatever the size, and
each export says (header X-Spyglass-Export) how many items each filter removed.

Filters run in this order, each counted on what the previous left: split, slice,
thumbs_up, no_flags, then the format's own need (an expected output for openai_jsonl;
a thumbs-up and a thumbs-down answer to the same input for preference_jsonl), then
slice-balanced sampling.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from django.db import connection
from django.db.models import Count, Exists, F, Func, OuterRef, Q, QuerySet, Subquery, Window
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import RowNumber
from django.http import StreamingHttpResponse

from config.errors import ValidationFailed
from datasets import selectors
from datasets.models import Dataset, DatasetItem, in_version
from explorer.filters import metadata_candidates
from scores import names
from scores.models import Score

FORMATS = {"openai_jsonl": "application/jsonl", "preference_jsonl": "application/jsonl", "csv": "text/csv"}
EXTENSIONS = {"openai_jsonl": "jsonl", "preference_jsonl": "jsonl", "csv": "csv"}
CSV_COLUMNS = ("id", "input", "expected_output", "metadata", "source_trace_id", "source_span_id", "split")
_CHUNK = 2_000
FLAG_SCORES = (names.HALLUCINATION, names.TOXICITY_OUTPUT)

DESCRIPTION = """\
Streams one version (default: the current one) in one of three formats:

- `openai_jsonl`: OpenAI chat fine-tuning, one `{"messages": [...input messages, {"role": "assistant",
  "content": expected_output}]}` per line (a text input becomes one user message); items without an
  expected output are left out.
- `preference_jsonl`: preference pairs, one `{"prompt": [...messages], "chosen": [{"role": "assistant",
  "content": ...}], "rejected": [...]}` per input for which production has an answer with a thumbs up and
  another with a thumbs down (traces with the same input text as the item's source trace).
- `csv`: id, input (text, or the messages as JSON), expected_output, metadata (JSON), source ids, split.

Filters: `thumbs_up=true` (the source trace has a thumbs up and no thumbs down), `no_flags=true`
(its source trace is not flagged for hallucination or answer toxicity), `slice=key=value` (metadata),
`split=train|test`; `balance_by=<metadata key>&max_share=0.3` samples so that no slice of that key is more
than 30% of the export (deterministically: the same call gives the same lines).
The header `X-Spyglass-Export` holds JSON `{"version", "total", "removed": {filter: n}, "exported"}`.
"""


@dataclass(frozen=True)
class ExportOptions:
    fmt: str
    version: int
    split: str | None = None
    thumbs_up: bool = False
    no_flags: bool = False
    slice: tuple[str, str] | None = None
    balance_by: str | None = None
    max_share: float | None = None

    KNOWN = frozenset({"format", "version", "split", "thumbs_up", "no_flags", "slice", "balance_by", "max_share",
                       "project"})

    @classmethod
    def parse(cls, params: Mapping[str, Any], *, dataset: Dataset) -> ExportOptions:
        unknown = sorted(set(params) - cls.KNOWN)
        if unknown:
            raise ValidationFailed(f"{unknown[0]}: unknown parameter; expected one of "
                                   + ", ".join(sorted(cls.KNOWN)), detail={k: ["unknown parameter"] for k in unknown})
        fmt = params.get("format")
        if fmt not in FORMATS:
            raise ValidationFailed(f"format: {fmt!r} is not one of {', '.join(FORMATS)}",
                                   detail={"format": [f"one of {', '.join(FORMATS)}"]})
        number = selectors.version_number(dataset, params.get("version"))
        slice_ = None
        if params.get("slice"):
            key, sep, value = params["slice"].partition("=")
            if not sep or not key:
                raise ValidationFailed("slice: must be key=value (a metadata key and value)",
                                       detail={"slice": ["key=value"]})
            slice_ = (key, value)
        balance_by, max_share = params.get("balance_by") or None, params.get("max_share")
        if (balance_by is None) != (max_share in (None, "")):
            raise ValidationFailed("balance_by and max_share go together", detail={"max_share": ["needs balance_by"]}
                                   if balance_by is None else {"balance_by": ["needs max_share"]})
        share = None
        if balance_by is not None:
            try:
                share = float(max_share)
            except ValueError:
                share = -1.0
            if not 0 < share <= 1:
                raise ValidationFailed("max_share: must be a number in (0, 1], e.g. 0.3",
                                       detail={"max_share": ["a number in (0, 1]"]})
        thumbs = _bool(params, "thumbs_up")
        if thumbs and fmt == "preference_jsonl":
            raise ValidationFailed("thumbs_up: a preference pair needs a thumbs-down answer too; leave it out",
                                   detail={"thumbs_up": ["not with preference_jsonl"]})
        return cls(fmt, number, selectors.split_of(params.get("split")), thumbs, _bool(params, "no_flags"),
                   slice_, balance_by, share)


def _bool(params: Mapping[str, Any], key: str) -> bool:
    raw = params.get(key)
    if raw in (None, "", "false", "0"):
        return False
    if raw in ("true", "1"):
        return True
    raise ValidationFailed(f"{key}: {raw!r} is not true or false", detail={key: ["true or false"]})


@dataclass(frozen=True)
class Plan:
    """What will be exported, and what each filter removed."""

    queryset: QuerySet[DatasetItem]
    total: int
    removed: dict[str, int]
    exported: int

    def summary(self, version: int) -> dict[str, Any]:
        return {"version": version, "total": self.total, "removed": self.removed, "exported": self.exported}


def _thumbs(value: float) -> Exists:
    return Exists(Score.objects.filter(project_id=OuterRef("project_id"), trace_id=OuterRef("source_trace_id"),
                                       name=names.USER_THUMBS.name, value=value))


def _flagged() -> Exists:
    # The evaluator's stored decision (metadata.flagged, made against the project's own
    # threshold) when there is one, else the registry's threshold: as dashboards count it.
    condition = Q()
    for score in FLAG_SCORES:
        condition |= Q(name=score.name) & (Q(metadata__flagged=True) | (
            ~Q(metadata__has_key="flagged") & Q(value__gte=score.flag_threshold)))
    return Exists(Score.objects.filter(condition, project_id=OuterRef("project_id"),
                                       trace_id=OuterRef("source_trace_id")))


def export_plan(*, dataset: Dataset, options: ExportOptions) -> Plan:
    """The filtered queryset and the counts, in one aggregate query plus one for balance."""
    base = DatasetItem.objects.filter(in_version(options.version), dataset=dataset)
    steps: list[tuple[str, Q]] = []
    if options.split:
        in_split = selectors.version_items(dataset=dataset, number=options.version, split=options.split)
        steps.append(("split", Q(id__in=Subquery(in_split.values("id")))))
    if options.slice:
        key, value = options.slice
        match = Q()
        for candidate in metadata_candidates(value):
            match |= Q(metadata__contains={key: candidate})
        steps.append(("slice", match))
    annotated = base
    if options.thumbs_up:
        annotated = annotated.annotate(_up=_thumbs(1.0), _down=_thumbs(0.0))
        steps.append(("thumbs_up", Q(_up=True, _down=False)))
    if options.no_flags:
        annotated = annotated.annotate(_flagged=_flagged())
        steps.append(("no_flags", Q(_flagged=False)))
    if options.fmt == "openai_jsonl":
        steps.append(("no_expected_output", Q(expected_output__isnull=False) & ~Q(expected_output="")))
    if options.fmt == "preference_jsonl":
        steps.append(("no_source_trace", Q(source_trace_id__isnull=False)))
    aggregates = {"total": Count("id")}
    running = Q()
    for i, (_, condition) in enumerate(steps):
        running &= condition
        aggregates[f"s{i}"] = Count("id", filter=running)
    counts = annotated.aggregate(**aggregates)
    removed: dict[str, int] = {}
    previous = counts["total"]
    for i, (name, _) in enumerate(steps):
        removed[name] = previous - counts[f"s{i}"]
        previous = counts[f"s{i}"]
    queryset = annotated.filter(running) if steps else annotated
    if options.balance_by:
        slice_key = KeyTextTransform(options.balance_by, "metadata")
        sizes = [row["n"] for row in queryset.annotate(_slice=slice_key).values("_slice").annotate(n=Count("id"))
                 .order_by()]
        cap = balance_cap(sizes, options.max_share)
        if cap is not None:
            # Rank narrow rows (slice, hash, id) and join the kept ids back: sorting the
            # full rows spilled to disk and held the first line back ~0.5 s at 100,000
            # items. hashint8(id) is a fixed pseudo-random order (stable across calls, so
            # the same export gives the same lines) and much cheaper to sort than md5 text.
            kept_ids = queryset.values("id").annotate(
                _rank=Window(RowNumber(), partition_by=[slice_key],
                             order_by=[Func(F("id"), function="hashint8").asc(), F("id").asc()]),
            ).filter(_rank__lte=cap).values("id")
            queryset = DatasetItem.objects.filter(id__in=Subquery(kept_ids))
            kept = sum(min(n, cap) for n in sizes)
            removed["balance"] = previous - kept
            previous = kept
        else:
            removed["balance"] = 0
    plan = Plan(queryset.order_by("id"), counts["total"], removed, previous)
    if options.fmt == "preference_jsonl":
        pairs = pair_count(plan, dataset)
        removed["no_pair"] = previous - pairs
        plan = Plan(plan.queryset, plan.total, removed, pairs)
    return plan


def balance_cap(sizes: list[int], share: float | None) -> int | None:
    """The largest per-slice count c such that no slice is more than `share` of the
    export when every slice keeps min(size, c) items; None when no slice needs a cap.

    c - share * sum(min(n, c)) only grows with c (its slope is 1 - share * (slices
    larger than c) and that rises as c passes each slice), so the c that fit form a
    range from 1 up: a binary search finds its end."""
    if share is None or not sizes:
        return None
    if share * len(sizes) < 1:
        raise ValidationFailed(
            f"max_share: {share} is below 1/{len(sizes)}: with {len(sizes)} slices some slice must have more",
            detail={"max_share": [f"at least 1/{len(sizes)} (the number of slices)"]})

    def fits(c: int) -> bool:
        return c <= share * sum(min(n, c) for n in sizes) + 1e-9

    largest = max(sizes)
    if fits(largest):
        return None
    low, high = 1, largest  # fits(low) holds (share * slices >= 1); fits(high) does not
    while high - low > 1:
        middle = (low + high) // 2
        if fits(middle):
            low = middle
        else:
            high = middle
    return low


# --- formats --------------------------------------------------------------------------------


def _messages(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return list(value)


def _openai_lines(rows: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    for row in rows:
        messages = [*_messages(row["input"]), {"role": "assistant", "content": row["expected_output"]}]
        yield orjson.dumps({"messages": messages}) + b"\n"


def _csv_lines(rows: Iterator[dict[str, Any]], splits: dict[int, str] | None) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for n, row in enumerate(rows):
        value = row["input"]
        writer.writerow([row["id"], value if isinstance(value, str) else orjson.dumps(value).decode(),
                         row["expected_output"] or "", orjson.dumps(row["metadata"]).decode(),
                         row["source_trace_id"] or "", row["source_span_id"] or "",
                         (splits or {}).get(row["id"], "")])
        if n % 200 == 0 or buffer.tell() > 65_536:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


_PAIRS_SQL = """
WITH items AS ({items}),
thumbs AS (
    SELECT md5(t.input) AS input_key, t.output, bool_or(s.value = 1) AS up, bool_or(s.value = 0) AS down
    FROM scores_score s JOIN tracing_trace t ON t.project_id = s.project_id AND t.trace_id = s.trace_id
    WHERE s.project_id = %s AND s.name = %s AND t.input IS NOT NULL AND t.output IS NOT NULL
    GROUP BY t.id
),
answers AS (
    SELECT input_key,
           (array_agg(output ORDER BY output) FILTER (WHERE up AND NOT down))[1] AS chosen,
           (array_agg(output ORDER BY output) FILTER (WHERE down AND NOT up))[1] AS rejected
    FROM thumbs GROUP BY input_key
)
SELECT i.id, i.input, a.chosen, a.rejected
FROM datasets_datasetitem i
JOIN tracing_trace src ON src.project_id = i.project_id AND src.trace_id = i.source_trace_id
JOIN answers a ON a.input_key = md5(src.input)
WHERE i.id IN (SELECT id FROM items) AND a.chosen IS NOT NULL AND a.rejected IS NOT NULL
  AND a.chosen <> a.rejected
ORDER BY i.id
"""


def _pair_rows(plan: Plan, dataset: Dataset) -> Iterator[tuple[Any, ...]]:
    items_sql, params = plan.queryset.values("id").order_by().query.sql_with_params()
    sql = _PAIRS_SQL.format(items=items_sql)
    # Django's chunked cursor is a named (server-side) cursor on Postgres: rows arrive
    # in chunks, never all at once.
    with connection.chunked_cursor() as cur:
        cur.execute(sql, [*params, dataset.project_id, names.USER_THUMBS.name])
        while True:
            rows = cur.fetchmany(_CHUNK)
            if not rows:
                return
            yield from rows


def pair_count(plan: Plan, dataset: Dataset) -> int:
    items_sql, params = plan.queryset.values("id").order_by().query.sql_with_params()
    with connection.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM ({_PAIRS_SQL.format(items=items_sql)}) pairs",
                    [*params, dataset.project_id, names.USER_THUMBS.name])
        return cur.fetchone()[0]


def _pair_lines(rows: Iterator[tuple[Any, ...]]) -> Iterator[bytes]:
    for _, value, chosen, rejected in rows:
        value = orjson.loads(value) if isinstance(value, str | bytes) else value
        yield orjson.dumps({"prompt": _messages(value), "chosen": [{"role": "assistant", "content": chosen}],
                            "rejected": [{"role": "assistant", "content": rejected}]}) + b"\n"


def export_lines(*, dataset: Dataset, options: ExportOptions, plan: Plan) -> Iterator[bytes]:
    if options.fmt == "preference_jsonl":
        return _pair_lines(_pair_rows(plan, dataset))
    rows = plan.queryset.values("id", "input", "expected_output", "metadata", "source_trace_id",
                                "source_span_id").iterator(chunk_size=_CHUNK)
    if options.fmt == "openai_jsonl":
        return _openai_lines(rows)
    version = selectors.version_get(dataset, options.version) if options.version else None
    splits = None
    if version is not None and version.split:
        # id -> split of the version: two small ints a row, the only per-item state kept.
        splits = dict(selectors.version_items(dataset=dataset, number=options.version)
                      .values_list("id", "split").iterator(chunk_size=_CHUNK))
    return _csv_lines(rows, splits)


def export_response(*, dataset: Dataset, options: ExportOptions) -> StreamingHttpResponse:
    plan = export_plan(dataset=dataset, options=options)
    response = StreamingHttpResponse(export_lines(dataset=dataset, options=options, plan=plan),
                                     content_type=FORMATS[options.fmt] + "; charset=utf-8")
    filename = f"{dataset.name}-v{options.version}-{options.fmt.removesuffix('_jsonl')}.{EXTENSIONS[options.fmt]}"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Spyglass-Export"] = orjson.dumps(plan.summary(options.version)).decode()
    return response

