"""Evaluators of an experiment run: checks of each item's output against the item.

Pure functions over plain data (no ORM), batched per flush so embedding-based ones
encode many texts at once. Each evaluator gives one value per item:
- pass/fail ones (exact_match, regex, json_valid, json_schema, pii) give 1.0 / 0.0;
- numeric ones (embedding_similarity, toxicity, groundedness) give a float.
`HIGHER_IS_BETTER` says which way is an improvement (the comparison page needs it).
The offline scorers are the ones production traces get (evaluation/evaluators), so an
experiment's toxicity means what the dashboard's toxicity means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import orjson

from config.errors import ValidationFailed

PASS_FAIL = ("exact_match", "regex", "json_valid", "json_schema", "pii")
NUMERIC = ("embedding_similarity", "toxicity", "groundedness")
NAMES = PASS_FAIL + NUMERIC
HIGHER_IS_BETTER = {
    "exact_match": True, "regex": True, "json_valid": True, "json_schema": True, "pii": False,
    "embedding_similarity": True, "toxicity": False, "groundedness": False,
}
DESCRIPTIONS = {
    "exact_match": "1 when the output equals the expected output (whitespace at the ends ignored)",
    "regex": "1 when the output matches `pattern` (re.search)",
    "json_valid": "1 when the output parses as JSON",
    "json_schema": "1 when the output is JSON valid against `schema`",
    "pii": "1 when the output contains PII (emails, phones, cards, keys...); lower is better",
    "embedding_similarity": "cosine similarity of the output and the expected output (all-MiniLM-L6-v2)",
    "toxicity": "toxicity of the output in [0, 1] (the offline toxicity scorer); lower is better",
    "groundedness": "hallucination risk of the output against the item's context in [0, 1]; lower is better",
}
MAX_PATTERN_CHARS = 1000


@dataclass
class ItemOutput:
    """What an evaluator reads for one item."""

    output: str | None
    expected: str | None
    context: list[str] = field(default_factory=list)


def is_pass_fail(name: str, values: list[float] | None = None) -> bool:
    """Server evaluators by their kind; an SDK evaluator is pass/fail when it only gave 0 and 1."""
    if name in NAMES:
        return name in PASS_FAIL
    return bool(values) and all(v in (0.0, 1.0) for v in values)


def higher_is_better(name: str) -> bool:
    return HIGHER_IS_BETTER.get(name, True)  # SDK evaluators: higher is better


CUSTOM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


def custom_names_validate(raw: Any) -> list[dict[str, Any]]:
    """Names of the SDK's own evaluators (their values are posted with the results)."""
    if raw in (None, ""):
        return []
    if not isinstance(raw, list) or not all(isinstance(n, str) for n in raw):
        raise ValidationFailed("custom_evaluators: must be a list of names", detail={"custom_evaluators": "invalid"})
    for i, name in enumerate(raw):
        where = f"custom_evaluators[{i}]"
        if not CUSTOM_NAME.match(name) or name in NAMES or raw.index(name) != i:
            raise ValidationFailed(f"{where}: {name!r} must be a new name of letters, digits, '_', '.', '-' "
                                   "(not a server evaluator's, not twice)", detail={where: "invalid"})
    return [{"name": name, "custom": True} for name in raw]


def specs_validate(raw: Any) -> list[dict[str, Any]]:
    """The request's evaluators -> canonical specs; a ValidationFailed names the bad entry.

    Accepts names ("exact_match") or objects ({"name": "regex", "pattern": "^ok"})."""
    if raw in (None, ""):
        return []
    if not isinstance(raw, list):
        raise ValidationFailed("evaluators: must be a list of names or {name, ...} objects",
                               detail={"evaluators": "not a list"})
    specs: list[dict[str, Any]] = []
    for i, entry in enumerate(raw):
        where = f"evaluators[{i}]"
        spec = {"name": entry} if isinstance(entry, str) else entry
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise ValidationFailed(f"{where}: must be a name or an object with a name", detail={where: "invalid"})
        name = spec["name"]
        if name not in NAMES:
            raise ValidationFailed(f"{where}: unknown evaluator {name!r} (known: {', '.join(NAMES)})",
                                   detail={where: "unknown"})
        clean: dict[str, Any] = {"name": name}
        if name == "regex":
            pattern = spec.get("pattern")
            if not isinstance(pattern, str) or not pattern or len(pattern) > MAX_PATTERN_CHARS:
                raise ValidationFailed(f"{where}.pattern: a regular expression of 1 to {MAX_PATTERN_CHARS} "
                                       "characters is required", detail={f"{where}.pattern": "required"})
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValidationFailed(f"{where}.pattern: not a valid regular expression ({exc})",
                                       detail={f"{where}.pattern": "invalid"}) from None
            clean["pattern"] = pattern
        if name == "json_schema":
            schema = spec.get("schema")
            if not isinstance(schema, dict):
                raise ValidationFailed(f"{where}.schema: a JSON schema object is required",
                                       detail={f"{where}.schema": "required"})
            try:
                jsonschema.validators.validator_for(schema).check_schema(schema)
            except jsonschema.SchemaError as exc:
                raise ValidationFailed(f"{where}.schema: not a valid JSON schema ({exc.message})",
                                       detail={f"{where}.schema": "invalid"}) from None
            clean["schema"] = schema
        if any(s["name"] == name for s in specs):
            raise ValidationFailed(f"{where}: {name!r} is listed twice", detail={where: "duplicate"})
        specs.append(clean)
    return specs


def _text(value: str | None) -> str:
    return (value or "").strip()


def _json(output: str | None) -> tuple[bool, Any]:
    try:
        return True, orjson.loads(_text(output) or "")
    except orjson.JSONDecodeError:
        return False, None


def evaluate(specs: list[dict[str, Any]], items: list[ItemOutput]) -> list[tuple[dict[str, float], dict[str, Any]]]:
    """(scores, evidence) per item. An item without output (its call failed) gets no
    scores: a failed call is counted as failed, not as a wrong answer."""
    out: list[tuple[dict[str, float], dict[str, Any]]] = [({}, {}) for _ in items]
    live = [i for i, item in enumerate(items) if item.output is not None]
    for spec in specs:
        name = spec["name"]
        if spec.get("custom"):
            continue  # the SDK computed it
        if name == "exact_match":
            for i in live:
                if items[i].expected is not None:
                    out[i][0][name] = float(_text(items[i].output) == _text(items[i].expected))
        elif name == "regex":
            pattern = re.compile(spec["pattern"])
            for i in live:
                out[i][0][name] = float(pattern.search(items[i].output or "") is not None)
        elif name == "json_valid":
            for i in live:
                out[i][0][name] = float(_json(items[i].output)[0])
        elif name == "json_schema":
            validator = jsonschema.validators.validator_for(spec["schema"])(spec["schema"])
            for i in live:
                ok, value = _json(items[i].output)
                error = None if not ok else jsonschema.exceptions.best_match(validator.iter_errors(value))
                out[i][0][name] = float(ok and error is None)
                if not ok or error is not None:
                    out[i][1][name] = "not JSON" if not ok else error.message[:300]
        elif name == "pii":
            from evaluation.evaluators import pii

            for i in live:
                found = pii.pii_find(items[i].output or "")
                out[i][0][name] = float(bool(found))
                if found:
                    out[i][1][name] = pii.pii_summary(found)["kinds"]
        elif name == "embedding_similarity":
            _similarity(items, [i for i in live if items[i].expected is not None], out)
        elif name == "toxicity":
            from evaluation.evaluators import toxicity

            values = toxicity.toxicity_scores([items[i].output or "" for i in live])
            for i, value in zip(live, values, strict=True):
                out[i][0][name] = round(float(value), 4)
        elif name == "groundedness":
            from evaluation.evaluators import groundedness

            for i in live:
                if not items[i].context:
                    continue  # nothing to be grounded in: no score rather than a made-up one
                found = groundedness.groundedness(items[i].output or "", items[i].context)
                if found is not None:
                    out[i][0][name] = float(found["score"])
                    out[i][1][name] = [s["text"] for s in found["unsupported"][:5]]
    return out


def _similarity(items: list[ItemOutput], rows: list[int], out: list) -> None:
    if not rows:
        return
    from evaluation.embeddings import embed_texts

    vectors = embed_texts([items[i].output or "" for i in rows] + [items[i].expected or "" for i in rows])
    n = len(rows)
    for k, i in enumerate(rows):
        # Rows are L2-normalised: the dot product is the cosine similarity.
        out[i][0]["embedding_similarity"] = round(float(vectors[k] @ vectors[n + k]), 4)
