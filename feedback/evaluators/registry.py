"""Which evaluators exist, their defaults, and each project's switches and options.

Settings live in EvaluatorSettings.config as {name: {"enabled": bool, **options}};
anything a project has not set falls back to DEFAULTS here, so adding an evaluator or
an option needs no data migration.
"""

from __future__ import annotations

import copy
from typing import Any

from django.db import transaction

from feedback.models import EvaluatorSettings
from projects.models import Project

# name -> (description, default options). Every evaluator is on unless switched off.
EVALUATORS: dict[str, tuple[str, dict[str, Any]]] = {
    "embeddings": ("all-MiniLM-L6-v2 vectors of input and output (semantic search, similar traces)", {}),
    "groundedness": (
        "hallucination: 1 = the answer is not supported by its context (documents, system and tool "
        "messages, earlier turns)",
        {"threshold": None},  # None = the shipped threshold from weights/groundedness.json
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
    "groundedness": ("hallucination",),
    "toxicity": ("toxicity_input", "toxicity_output"),
    "pii": ("pii_input", "pii_output"),
    "injection": ("prompt_injection",),
}


class UnknownEvaluator(ValueError):
    pass


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
    """Switch an evaluator on/off or change its options for one project."""
    if name not in EVALUATORS:
        raise UnknownEvaluator(f"evaluator: {name!r} is not one of {', '.join(EVALUATORS)}.")
    row, _ = EvaluatorSettings.objects.select_for_update().get_or_create(project=project)
    entry = dict(row.config.get(name) or {})
    if enabled is not None:
        entry["enabled"] = bool(enabled)
    unknown = set(options or {}) - set(EVALUATORS[name][1])
    if unknown:
        raise UnknownEvaluator(f"options: {name} has no option {', '.join(sorted(unknown))}.")
    entry.update(options or {})
    row.config = {**row.config, name: entry}
    row.save(update_fields=["config", "updated_at"])
    return evaluator_config(stored=row.config)
