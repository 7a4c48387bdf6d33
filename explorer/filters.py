"""The one trace filter language: query parameters -> validated TraceFilter -> queryset.

The explorer page, the trace API, annotation-queue creation (and next dashboards and
datasets) parse the same parameters with `TraceFilter.parse`, so a filter copied from
one URL means the same thing in every other. `to_query()` writes a filter back as
parameters; parse(to_query(f)) == f.

Parameters (all optional, combined with AND):

    from, to            ISO 8601; naive means UTC; `to` is exclusive
    range               15m, 1h, 24h, 7d, 30d or all: relative to when the filter is used
    name, session_id, user_id, model, environment, release, status
                        exact values
    prompt, prompt_version
                        the prompt (name) and version the trace used
    tag                 repeatable; a trace must carry every tag
    metadata.<key>      repeatable with distinct keys: metadata value (text, number or boolean)
    q                   words (or a phrase in scripts without spaces) in input or output
    mode                text (default) or semantic: how `q` is matched (semantic needs
                        the embedding model and is honoured only where it says so)
    score               repeatable: `name` (has a score of that name) or `name<op>value`
                        with op one of = != > >= < <=, e.g. hallucination>0.5, user_thumbs=0,
                        preferred=A (text values compare with = and != only)
    feedback            yes / no: has (no) explicit end-user feedback

Invalid input raises FilterError, a 400 naming each bad parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import QueryDict

from config.datetimes import parse_user_datetime
from config.errors import ValidationFailed
from explorer import search
from projects.models import Project
from scores.models import Score, Source
from tracing.models import Status, Trace

METADATA_PREFIX = "metadata."
RANGES: dict[str, timedelta | None] = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "all": None,
}
EXACT_FIELDS = ("name", "session_id", "user_id", "model", "environment", "release", "status")
# Parameter -> Trace column, where they differ.
COLUMNS = {"prompt": "prompt_name", "prompt_version": "prompt_version"}
TEXT_MAX = 512
MAX_SCORE_CONDITIONS = 10
MAX_METADATA = 20
MAX_TAGS = 20
SEARCH_MODES = ("text", "semantic")
FEEDBACK_VALUES = {"yes": True, "no": False}

_SCORE = re.compile(r"^(?P<name>[^<>=!]+?)\s*(?:(?P<op>!=|>=|<=|=|>|<)\s*(?P<value>.+))?$")
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


class FilterError(ValidationFailed):
    """Bad filter parameters; `detail` maps each parameter to its problems."""

    def __init__(self, errors: dict[str, list[str]]):
        message = "; ".join(f"{key}: {' '.join(problems)}" for key, problems in errors.items())
        super().__init__(message, detail=errors)
        self.errors = errors


@dataclass(frozen=True)
class ScoreCondition:
    """`name` alone: the trace has a score of that name; else name <op> value."""

    name: str
    op: str | None = None
    value: float | str | None = None

    OPS = ("=", "!=", ">", ">=", "<", "<=")
    _LOOKUPS = {"=": "", ">": "__gt", ">=": "__gte", "<": "__lt", "<=": "__lte"}

    @classmethod
    def parse(cls, text: str) -> ScoreCondition:
        match = _SCORE.match(text.strip())
        if not match or not match["name"].strip():
            raise ValueError(f"{text!r} is not a score condition (e.g. hallucination>0.5 or user_thumbs=0)")
        name, op, raw = match["name"].strip(), match["op"], match["value"]
        if op is None:
            return cls(name)
        raw = raw.strip()
        if raw.lower() in ("true", "false"):
            return cls(name, op, 1.0 if raw.lower() == "true" else 0.0)
        if _NUMBER.fullmatch(raw):
            return cls(name, op, float(raw))
        if op not in ("=", "!="):
            raise ValueError(f"{text!r}: {op} needs a number; text values compare with = or !=")
        return cls(name, op, raw)

    def __str__(self) -> str:
        if self.op is None:
            return self.name
        if isinstance(self.value, str):
            return f"{self.name}{self.op}{self.value}"
        # repr() of a float is the shortest text that reads back as the same float.
        number = repr(self.value)
        return f"{self.name}{self.op}{number[:-2] if number.endswith('.0') else number}"

    def q(self) -> Q:
        """The condition on Score rows."""
        if self.op is None:
            return Q(name=self.name)
        column = "string_value" if isinstance(self.value, str) else "value"
        if self.op == "!=":
            return Q(name=self.name) & Q(**{f"{column}__isnull": False}) & ~Q(**{column: self.value})
        return Q(name=self.name, **{column + self._LOOKUPS[self.op]: self.value})


@dataclass(frozen=True)
class TraceFilter:
    """A validated trace filter; None / empty means "don't filter on this"."""

    start_from: datetime | None = None  # inclusive
    start_to: datetime | None = None  # exclusive
    range: str | None = None  # a RANGES key, resolved when applied
    name: str | None = None
    session_id: str | None = None
    user_id: str | None = None
    model: str | None = None
    environment: str | None = None
    release: str | None = None
    status: str | None = None
    prompt: str | None = None
    prompt_version: str | None = None
    tags: tuple[str, ...] = ()
    metadata: tuple[tuple[str, str], ...] = ()  # sorted (key, value) pairs
    search: str | None = None
    search_mode: str = "text"
    scores: tuple[ScoreCondition, ...] = ()
    has_feedback: bool | None = None
    _ignored: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    # --- parsing -------------------------------------------------------------------------

    @classmethod
    def parse(cls, params: QueryDict | Mapping[str, Any], *, allow: Iterable[str] = (),
              aliases: bool = False) -> TraceFilter:
        """Validate filter parameters. `allow` names other parameters the caller reads
        itself (limit, cursor, sort, ...); anything else unknown is an error, so a
        misspelt filter fails loudly instead of silently returning everything.

        `aliases` accepts the explorer form's inputs: `meta=key=value` and a comma-separated
        `tag` (HTML forms cannot name an input after a metadata key)."""
        values = _as_lists(params)
        errors: dict[str, list[str]] = {}
        found: dict[str, Any] = {}
        metadata: dict[str, str] = {}
        allowed = set(allow)

        def fail(key: str, message: str) -> None:
            errors.setdefault(key, []).append(message)

        for key, items in values.items():
            if key in allowed:
                continue
            if key.startswith(METADATA_PREFIX):
                meta_key = key[len(METADATA_PREFIX):]
                if not meta_key:
                    fail(key, "needs a key: metadata.<key>=<value>")
                elif len(items) > 1:
                    fail(key, "given more than once; a key can match only one value")
                elif _too_long(items[0]):
                    fail(key, f"at most {TEXT_MAX} characters")
                else:
                    metadata[meta_key] = items[0]
                continue
            if aliases and key == "meta":
                for raw in items:
                    if not raw.strip():
                        continue
                    meta_key, sep, value = raw.partition("=")
                    if not sep or not meta_key.strip():
                        fail("meta", f"{raw!r} must look like key=value")
                    else:
                        metadata[meta_key.strip()] = value.strip()
                continue
            if key not in _KNOWN:
                fail(key, "unknown query parameter; expected one of " + ", ".join(sorted(_KNOWN | allowed))
                     + " or metadata.<key>")
                continue
            if key not in ("tag", "score") and len(items) > 1:
                fail(key, "given more than once; only tag, score and metadata.<key> may repeat")
                continue
            found[key] = items

        single = {k: v[0].strip() for k, v in found.items() if k not in ("tag", "score")}
        if aliases and single.get("range") == "custom":
            del single["range"]  # the page's "custom" preset: from/to say it
        # Empty values: a page's blank inputs mean "no filter"; an API client that sends
        # `?user_id=` more likely has a bug, so the API (aliases=False) refuses them.
        for key in [k for k, v in single.items() if v == ""]:
            del single[key]
            if not aliases:
                fail(key, "must not be empty (leave the parameter out to not filter)")
        out: dict[str, Any] = {}
        for key in ("from", "to"):
            if key in single:
                try:
                    out["start_from" if key == "from" else "start_to"] = parse_datetime(single[key])
                except ValueError as exc:
                    fail(key, str(exc))
        if "range" in single:
            if single["range"] not in RANGES:
                fail("range", f"{single['range']!r} is not one of {', '.join(RANGES)}")
            else:
                out["range"] = single["range"]
        for key in (*EXACT_FIELDS, "prompt", "prompt_version"):
            if key in single:
                if _too_long(single[key]):
                    fail(key, f"at most {TEXT_MAX} characters")
                else:
                    out[key] = single[key]
        if "status" in out and out["status"] not in Status.values:
            fail("status", f"{out.pop('status')!r} is not one of {', '.join(Status.values)}")
        if "q" in single:
            if len(single["q"]) > 500:
                fail("q", "at most 500 characters")
            else:
                out["search"] = single["q"]
        if "mode" in single:
            if single["mode"] not in SEARCH_MODES:
                fail("mode", f"{single['mode']!r} is not one of {', '.join(SEARCH_MODES)}")
            else:
                out["search_mode"] = single["mode"]
        if "feedback" in single:
            if single["feedback"] not in FEEDBACK_VALUES:
                fail("feedback", f"{single['feedback']!r} is not one of yes, no")
            else:
                out["has_feedback"] = FEEDBACK_VALUES[single["feedback"]]
        tags: list[str] = []
        for raw in found.get("tag", []):
            parts = raw.split(",") if aliases else [raw]
            for tag in (p.strip() for p in parts):
                if tag:
                    tags.append(tag)
                elif not aliases:
                    fail("tag", "must not be empty")
        if len(tags) > MAX_TAGS or any(len(t) > 200 for t in tags):
            fail("tag", f"at most {MAX_TAGS} tags of at most 200 characters")
        out["tags"] = tuple(sorted(set(tags)))
        conditions: list[ScoreCondition] = []
        for raw in found.get("score", []):
            if not raw.strip():
                if not aliases:
                    fail("score", "must not be empty")
                continue
            try:
                conditions.append(ScoreCondition.parse(raw))
            except ValueError as exc:
                fail("score", str(exc))
        if len(conditions) > MAX_SCORE_CONDITIONS:
            fail("score", f"at most {MAX_SCORE_CONDITIONS} conditions")
        out["scores"] = tuple(sorted(set(conditions), key=str))
        if len(metadata) > MAX_METADATA:
            fail("metadata", f"at most {MAX_METADATA} metadata filters")
        out["metadata"] = tuple(sorted(metadata.items()))
        start, end = out.get("start_from"), out.get("start_to")
        if start is not None and end is not None and start > end:
            fail("from", f"is after to ({start.isoformat()} > {end.isoformat()})")
        if out.get("range") and (start is not None or end is not None) and out["range"] != "all":
            fail("range", "give either range or from/to, not both")
        if errors:
            raise FilterError(errors)
        return cls(**out)

    # --- writing back ----------------------------------------------------------------------

    def to_query(self) -> list[tuple[str, str]]:
        """The filter as (parameter, value) pairs, canonical order; parse() reads them back."""
        pairs: list[tuple[str, str]] = []
        if self.start_from is not None:
            pairs.append(("from", self.start_from.isoformat()))
        if self.start_to is not None:
            pairs.append(("to", self.start_to.isoformat()))
        if self.range:
            pairs.append(("range", self.range))
        for key in (*EXACT_FIELDS, "prompt", "prompt_version"):
            value = getattr(self, key)
            if value is not None:
                pairs.append((key, value))
        pairs.extend(("tag", tag) for tag in self.tags)
        pairs.extend((METADATA_PREFIX + key, value) for key, value in self.metadata)
        if self.search is not None:
            pairs.append(("q", self.search))
        if self.search_mode != "text":
            pairs.append(("mode", self.search_mode))
        pairs.extend(("score", str(condition)) for condition in self.scores)
        if self.has_feedback is not None:
            pairs.append(("feedback", "yes" if self.has_feedback else "no"))
        return pairs

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (repeatable parameters as lists), e.g. what a queue was built from."""
        out: dict[str, Any] = {}
        for key, value in self.to_query():
            if key in ("tag", "score"):
                out.setdefault(key, []).append(value)
            else:
                out[key] = value
        return out

    def is_empty(self) -> bool:
        return not self.to_query()

    # --- applying ----------------------------------------------------------------------------

    def window(self, now: datetime) -> tuple[datetime | None, datetime | None]:
        """(from, to) with a relative range resolved against `now`: a shared "last 24
        hours" link means the last 24 hours when it is opened."""
        if self.range and RANGES[self.range] is not None:
            return now - RANGES[self.range], None
        return self.start_from, self.start_to

    def resolved(self, now: datetime) -> TraceFilter:
        """The same filter with its relative range turned into absolute times."""
        start, end = self.window(now)
        return replace(self, start_from=start, start_to=end, range=None)

    def apply(self, project: Project, *, now: datetime | None = None) -> QuerySet[Trace]:
        """The project's traces matching the filter, unordered: the one place filters
        become SQL. Semantic search is not a filter (it ranks); callers that offer it
        handle `search_mode == "semantic"` themselves, the rest ignore `q` then."""
        qs = Trace.objects.filter(project=project)
        start, end = self.window(now or datetime.now(UTC))
        if start is not None:
            qs = qs.filter(start_time__gte=start)
        if end is not None:
            qs = qs.filter(start_time__lt=end)
        exact = {COLUMNS.get(key, key): getattr(self, key) for key in (*EXACT_FIELDS, "prompt", "prompt_version")}
        qs = qs.filter(**{column: value for column, value in exact.items() if value is not None})
        if self.tags:
            # `@>` on the array: served by the GIN index trace_tags_gin.
            qs = qs.filter(tags__contains=list(self.tags))
        for key, value in self.metadata:
            # One `@>` per candidate type, OR-ed: each is served by the jsonb_path_ops GIN
            # index (a `metadata->>key = value` comparison would not be).
            match = Q()
            for candidate in metadata_candidates(value):
                match |= Q(metadata__contains={key: candidate})
            qs = qs.filter(match)
        if self.search and self.search_mode == "text":
            qs = qs.filter(search.search_condition(self.search))
        for condition in self.scores:
            # Per trace through the index score_project_trace.
            qs = qs.filter(Exists(Score.objects.filter(condition.q(), project=project, trace_id=OuterRef("trace_id"))))
        if self.has_feedback is not None:
            feedback = Score.objects.filter(project=project, trace_id=OuterRef("trace_id"), source=Source.END_USER)
            qs = qs.filter(Exists(feedback) if self.has_feedback else ~Exists(feedback))
        return qs


_KNOWN = frozenset({"from", "to", "range", *EXACT_FIELDS, "prompt", "prompt_version", "tag", "q", "mode", "score",
                    "feedback"})
# "1_000", "nan" or " 7 " are not JSON numbers, so they match only as strings.
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")


def _as_lists(params: QueryDict | Mapping[str, Any]) -> dict[str, list[str]]:
    if isinstance(params, QueryDict):
        return {key: params.getlist(key) for key in params}
    out: dict[str, list[str]] = {}
    for key, value in params.items():
        items = value if isinstance(value, list | tuple) else [value]
        out[key] = [str(item) if not isinstance(item, bool) else ("true" if item else "false") for item in items]
    return out


def _too_long(value: str) -> bool:
    return len(value) > TEXT_MAX


def parse_datetime(text: str) -> datetime:
    """ISO 8601 (or the browser's datetime-local), naive = UTC, converted to UTC, within
    the range every endpoint accepts (config/datetimes.py)."""
    return parse_user_datetime(text)


def metadata_candidates(value: str) -> list[Any]:
    """The JSON values a `metadata.<key>=<value>` query string may stand for.

    Query strings carry only text, while metadata values are typed JSON: `?metadata.
    retries=3` should find {"retries": 3} as well as {"retries": "3"}. The string always
    matches; a JSON number also matches as that number, `true`/`false` as booleans.
    `null` matches only the string "null", so a typo can't turn into "key is missing".
    """
    candidates: list[Any] = [value]
    if _JSON_NUMBER.fullmatch(value):
        # jsonb compares numbers by value (3 = 3.0), but keep ints as ints so huge
        # integers are not rounded through a float.
        candidates.append(int(value) if re.fullmatch(r"-?\d+", value) else float(value))
    elif value in ("true", "false"):
        candidates.append(value == "true")
    return candidates
