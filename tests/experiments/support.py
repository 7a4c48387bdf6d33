"""Shared setup of the experiments tests: a dataset, a prompt and the project's
OpenAI-compatible connection pointing at the local fake server."""

from __future__ import annotations

from decimal import Decimal

from datasets.services import ItemIn, dataset_create, items_add
from evaluation import judge
from prompts.services import Actor, prompt_version_create

API_KEY = "sk-exp-" + "k3Yw" * 8


def connect(project, base_url: str, model: str = "echo") -> None:
    judge.judge_settings_save(project=project, user=None, enabled=False, base_url=base_url, model=model,
                              api_key=API_KEY, sample_rate=0.0, daily_budget_usd=Decimal(1), rubrics=[],
                              timeout_seconds=10)


def make_dataset(project, name: str = "golden", inputs: list[str] | None = None, expected: dict | None = None,
                 metadata: dict | None = None):
    dataset = dataset_create(project=project, name=name)
    inputs = inputs or ["alpha", "beta", "gamma"]
    expected = expected or {}
    items_add(dataset=dataset, items=[ItemIn(text, expected.get(text, f"Q: {text}"), (metadata or {}).get(text, {}))
                                      for text in inputs], change={"kind": "items"})
    dataset.refresh_from_db()
    return dataset


def make_prompt(project, name: str = "qa", template: str = "Q: {{input}}") -> None:
    prompt_version_create(project=project, name=name, template=template, actor=Actor(user=None, name="test"),
                          base_version=0)
