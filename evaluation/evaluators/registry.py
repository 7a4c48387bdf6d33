"""Which evaluators exist, their defaults, and each project's switches and options.

Settings live in EvaluatorSettings.config as {name: {"enabled": bool, **options}};
anything a project has not set falls back to DEFAULTS here, so adding an evaluator or
an option needs no data migration.
"""

from __future__ import annotations

import copy
from typing import Any

from django.db import transaction

from config import errors
from evaluation.models import EvaluatorSettings
from projects.models import Project
from scores import names

# name -> (description, default options). Every evaluator is on unless switched off.
EVALUATORS: dict[str, tuple[str, dict[str, Any]]] = {
    "embeddings": (
        "all-MiniLM-L6-v2 vectors of input and output (semantic search, similar traces), and of the LLM "
        "calls inside a trace whose text differs from the trace's",
        {"spans": True, "max_spans": 8},
    ),
    "groundedness": (
        "hallucination: 1 = the answer is not supported by its context (documents, system and tool "
        "messages, earlier turns)",
        # threshold None = the shipped one (weights/groundedness.json); sample_rate: the
        # share of traces checked, for projects whose traffic outgrows the workers.
        {"threshold": None, "sample_rate": 1.0},
    ),
    "toxicity": ("toxicity of the user's input and the model's output, each in [0, 1]", {"threshold": None}),
    "pii": (
        "personal data and secrets in input and output: emails, phones, cards (Luhn), IBANs (mod 97), "
        "API keys, US SSN, UK NINO",
        {"kinds": ["email", "phone", "credit_card", "iban", "api_key", "us_ssn", "uk_nino"]},
    ),
    "injection": ("prompt-injection / jailbreak attempts in the user's input, in [0, 1]", {"threshold": 0.5}),
}

# The Score names each evaluator writes (used to delete scores an evaluator no longer
# produces when a trace is re-scored, e.g. after its context arrived).
SCORE_NAMES: dict[str, tuple[str, ...]] = {
    "embeddings": (),
    "groundedness": (names.HALLUCINATION.name,),
    "toxicity": (names.TOXICITY_INPUT.name, names.TOXICITY_OUTPUT.name),
    "pii": (names.PII_INPUT.name, names.PII_OUTPUT.name),
    "injection": (names.PROMPT_INJECTION.name,),
}


class UnknownEvaluator(errors.ValidationFailed):
    pass


def _probability(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError("must be a number from 0 to 1")
    return float(value)


def _probability_or_none(value: Any) -> float | None:
    return None if value is None else _probability(value)  # None = the shipped threshold


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _max_spans(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SPAN_EMBEDDINGS:
        raise ValueError(f"must be a whole number from 0 to {MAX_SPAN_EMBEDDINGS}")
    return value


def _pii_kinds(value: Any) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(k, str) for k in value):
        raise ValueError("must be a list of kinds")
    unknown = sorted(set(value) - set(PII_KINDS))
    if unknown:
        raise ValueError(f"{', '.join(unknown)} not among {', '.join(PII_KINDS)}")
    return [k for k in PII_KINDS if k in value]  # canonical order, no duplicates


# A span-heavy agent trace must not multiply the embedding work of its batch without bound.
MAX_SPAN_EMBEDDINGS = 50
PII_KINDS = EVALUATORS["pii"][1]["kinds"]
# (evaluator, option) -> validator returning the cleaned value or raising ValueError;
# "enabled" is every evaluator's switch.
OPTION_VALIDATORS = {
    **{(name, "enabled"): _bool for name in EVALUATORS},
    ("embeddings", "spans"): _bool,
    ("embeddings", "max_spans"): _max_spans,
    ("groundedness", "threshold"): _probability_or_none,
    ("groundedness", "sample_rate"): _probability,
    ("toxicity", "threshold"): _probability_or_none,
    ("pii", "kinds"): _pii_kinds,
    ("injection", "threshold"): _probability,
}


def _clean_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """Validated copy of an evaluator's settings entry (its switch and options)."""
    unknown = set(options) - set(EVALUATORS[name][1]) - {"enabled"}
    if unknown:
        raise UnknownEvaluator(f"options: {name} has no option {', '.join(sorted(unknown))}.")
    cleaned = {}
    for key, value in options.items():
        try:
            cleaned[key] = OPTION_VALIDATORS[name, key](value)
        except ValueError as exc:
            raise errors.ValidationFailed(f"{name}.{key}: {exc} (got {value!r}).",
                                          detail={"evaluator": name, "option": key}) from None
    return cleaned


def evaluator_config(project: Project | None = None, *, stored: dict | None = None) -> dict[str, dict[str, Any]]:
    """Effective settings of every evaluator for `project` (defaults merged with overrides)."""
    if stored is None:
        row = EvaluatorSettings.objects.filter(project=project).first() if project is not None else None
        stored = row.config if row is not None else {}
    merged = {}
    for name, (_, defaults) in EVALUATORS.items():
        entry = {"enabled": True, **copy.deepcopy(defaults)}
        entry.update(stored.get(name) or {})
        merged[name] = entry
    return merged


def enabled_evaluators(config: dict[str, dict[str, Any]]) -> list[str]:
    return [name for name in EVALUATORS if config[name].get("enabled", True)]


@transaction.atomic
def evaluator_settings_update(
    *, project: Project, name: str, enabled: bool | None = None, options: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Switch one evaluator on/off or change some of its options for one project."""
    if name not in EVALUATORS:
        raise UnknownEvaluator(f"evaluator: {name!r} is not one of {', '.join(EVALUATORS)}.")
    cleaned = _clean_options(name, {**(options or {}), **({"enabled": enabled} if enabled is not None else {})})
    row, _ = EvaluatorSettings.objects.select_for_update().get_or_create(project=project)
    entry = {**(row.config.get(name) or {}), **cleaned}
    row.config = {**row.config, name: entry}
    row.save(update_fields=["config", "updated_at"])
    return evaluator_config(stored=row.config)


@transaction.atomic
def evaluator_settings_replace(*, project: Project, config: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Set every evaluator's switch and options at once (the settings form).

    All or nothing: one invalid option rejects the whole form, so a project never runs
    with half of an edit applied.
    """
    unknown = set(config) - set(EVALUATORS)
    if unknown:
        raise UnknownEvaluator(f"evaluator: {', '.join(sorted(unknown))} not one of {', '.join(EVALUATORS)}.")
    stored = {name: {"enabled": True, **_clean_options(name, entry)} for name, entry in config.items()}
    row, _ = EvaluatorSettings.objects.select_for_update().get_or_create(project=project)
    row.config = {**row.config, **stored}
    row.save(update_fields=["config", "updated_at"])
    return evaluator_config(stored=row.config)
