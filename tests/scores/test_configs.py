"""Score configs: defaults per project, management page rules. (The data migration that
backfilled older projects is exercised by tests/test_migrations.py.)"""

from __future__ import annotations

import pytest

from config.errors import Conflict, ValidationFailed
from scores.models import DataType, ScoreConfig
from scores.services import score_config_create, value_normalize

DEFAULTS = {
    "helpfulness": (DataType.NUMERIC, 1, 5, []),
    "factual_accuracy": (DataType.NUMERIC, 1, 5, []),
    "relevance": (DataType.NUMERIC, 1, 5, []),
    "safety": (DataType.BOOLEAN, None, None, []),
    "preferred": (DataType.CATEGORICAL, None, None, ["A", "B", "tie"]),
    "user_thumbs": (DataType.BOOLEAN, None, None, []),
    "user_rating": (DataType.NUMERIC, 1, 5, []),
}


def as_table(project) -> dict:
    return {
        c.name: (c.data_type, c.min_value, c.max_value, c.categories)
        for c in ScoreConfig.objects.filter(project=project)
    }


def test_new_projects_get_the_default_configs(world):
    assert as_table(world.project) == DEFAULTS
    assert all(c.description for c in ScoreConfig.objects.filter(project=world.project))


def test_creating_a_config(world):
    created = score_config_create(
        project=world.project, name="tone", data_type="categorical", categories=["warm", "cold"]
    )

    assert created.categories == ["warm", "cold"]
    with pytest.raises(Conflict):
        score_config_create(project=world.project, name="tone", data_type="boolean")


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"data_type": "numeric", "min_value": 5, "max_value": 1}, "min_value < max_value"),
        ({"data_type": "categorical", "categories": ["only"]}, "at least two"),
        ({"data_type": "categorical", "categories": ["a", "a"]}, "distinct"),
        ({"data_type": "text"}, "not one of"),
    ],
)
def test_invalid_configs_are_refused(world, kwargs, needle):
    with pytest.raises(ValidationFailed, match=needle):
        score_config_create(project=world.project, name="x", **kwargs)


def test_options_give_keyboard_keys():
    likert = ScoreConfig(name="h", data_type=DataType.NUMERIC, min_value=1, max_value=5)
    boolean = ScoreConfig(name="s", data_type=DataType.BOOLEAN)
    categorical = ScoreConfig(name="p", data_type=DataType.CATEGORICAL, categories=["A", "B", "tie"])
    open_range = ScoreConfig(name="x", data_type=DataType.NUMERIC, min_value=0, max_value=1)

    assert [key for _, _, key in likert.options()] == ["1", "2", "3", "4", "5"]
    assert boolean.options() == [("0", "No", "0"), ("1", "Yes", "1")]
    assert [key for _, _, key in categorical.options()] == ["1", "2", "3"]
    assert ScoreConfig(name="x", data_type=DataType.NUMERIC, min_value=0, max_value=100).options() == []
    assert [v for v, _, _ in open_range.options()] == ["0", "1"]


def test_values_are_normalized_against_configs():
    likert = ScoreConfig(name="h", data_type=DataType.NUMERIC, min_value=1, max_value=5)

    assert value_normalize(config=likert, raw="4").value == 4.0
    with pytest.raises(ValidationFailed, match="outside"):
        value_normalize(config=likert, raw=0)
    with pytest.raises(ValidationFailed, match="finite"):
        value_normalize(config=None, raw=float("nan"), name="x")
