"""Sample rates in the database (evaluation/models.py, migration evaluation 0003): the
judge's and groundedness's rates are shares of traces, and the database refuses any
other number; the services still answer first, with the field's name."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from config.errors import ValidationFailed
from evaluation import judge
from evaluation.evaluators import registry
from evaluation.models import EvaluatorSettings, JudgeSettings


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan"), float("inf")])
def test_the_database_refuses_a_judge_sample_rate_outside_0_to_1(world, rate):
    with pytest.raises(IntegrityError, match="judge_sample_rate_0_to_1"), transaction.atomic():
        JudgeSettings.objects.create(project=world.project, sample_rate=rate)


@pytest.mark.parametrize("rate", [0.0, 0.05, 1.0])
def test_judge_sample_rates_from_0_to_1_are_stored(world, rate):
    assert JudgeSettings.objects.create(project=world.project, sample_rate=rate).sample_rate == rate


def test_the_judge_settings_service_names_the_field_first(world):
    with pytest.raises(ValidationFailed, match="sample_rate: must be between 0 and 1"):
        judge.judge_settings_save(project=world.project, user=None, enabled=False, base_url="", model="",
                                  sample_rate=1.5, daily_budget_usd=Decimal(1), rubrics=[])


@pytest.mark.parametrize("rate", [1.5, -1, "all", True, None])
def test_the_database_refuses_a_groundedness_sample_rate_that_is_not_a_share(world, rate):
    with pytest.raises(IntegrityError, match="evaluator_groundedness_sample_rate_0_to_1"), transaction.atomic():
        EvaluatorSettings.objects.create(project=world.project, config={"groundedness": {"sample_rate": rate}})


@pytest.mark.parametrize("config", [{}, {"groundedness": {}}, {"groundedness": {"sample_rate": 0.25}},
                                    {"groundedness": {"sample_rate": 1}}, {"pii": {"enabled": False}}])
def test_evaluator_settings_without_or_with_a_valid_groundedness_rate_are_stored(world, config):
    assert EvaluatorSettings.objects.create(project=world.project, config=config).config == config


def test_the_evaluator_settings_service_names_the_option_first(world):
    with pytest.raises(ValidationFailed, match=r"groundedness\.sample_rate: must be a number from 0 to 1"):
        registry.evaluator_settings_update(project=world.project, name="groundedness", options={"sample_rate": 2})
