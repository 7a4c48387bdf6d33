"""The score-name registry (scores/names.py): what Spyglass writes and what its pages
read are the same names."""

from __future__ import annotations

from evaluation import judge
from evaluation.evaluators import registry
from feedback import implicit
from feedback.services import FEEDBACK_ALIASES
from prompts.selectors import SCORE_METRICS
from scores import names
from scores.models import DataType, Source
from scores.services import DEFAULT_CONFIGS


def test_registered_sources_and_types_are_model_choices():
    for score in names.REGISTRY.values():
        assert score.source in Source.values, score
        assert score.data_type in DataType.values, score


def test_every_evaluator_score_is_registered_as_an_evaluator_score():
    written = {name for produced in registry.SCORE_NAMES.values() for name in produced}
    assert written == {s.name for s in names.EVALUATOR_NAMES}
    assert all(names.known(name).source == Source.EVALUATOR for name in written)


def test_every_implicit_signal_is_registered():
    assert set(implicit.SIGNAL_NAMES) == {s.name for s in names.SIGNALS}
    assert all(names.known(name).source == Source.IMPLICIT for name in implicit.SIGNAL_NAMES)


def test_judge_scores_are_known_by_their_prefix():
    assert judge.SCORE_PREFIX == names.JUDGE_PREFIX
    for rubric in judge.RUBRICS:
        score = names.known(judge.SCORE_PREFIX + rubric)
        assert score is not None and score.source == Source.EVALUATOR
    assert names.known("judge_") is None and names.known("my_own_metric") is None


def test_default_configs_and_feedback_aliases_use_registered_names_and_types():
    for name, data_type, *_ in DEFAULT_CONFIGS:
        assert names.known(name) is not None and names.known(name).data_type == data_type
    assert set(FEEDBACK_ALIASES.values()) == {names.USER_THUMBS.name, names.USER_RATING.name}


def test_pages_read_only_names_that_someone_writes():
    for source, name in SCORE_METRICS:
        score = names.known(name)
        assert score is not None, f"prompt comparison reads {name!r}, which nothing writes"
        assert score.source == source
