"""The database's own rules for scores (scores/models.py constraints, the trigger
score_fits_config in scores/migrations/0003_integrity.py) and how score_upsert lives
with them: the services answer a friendly 400 first; the database refuses whatever
gets past them (bulk writes, hand edits, a future bug).
"""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import IntegrityError, connection, transaction

from config.errors import ValidationFailed
from feedback.services import feedback_record
from scores import services
from scores.models import DataType, Score, ScoreConfig, Source
from scores.services import NormalizedValue, score_config_create, score_upsert
from tests.helpers import config

TRACE = "ab" * 16
SPAN = "cd" * 8


def insert(project, **fields) -> Score:
    """A score written straight to the table, past every service check."""
    row = {"trace_id": TRACE, "name": "x", "source": Source.API, "data_type": DataType.NUMERIC, "value": 1.0}
    row.update(fields)
    return Score.objects.create(project=project, **row)


def refused(constraint: str):
    """The row is refused by the database, naming the rule that refused it."""
    return pytest.raises(IntegrityError, match=constraint)


# --- data_type consistency (CHECKs on the row) -------------------------------------------


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"data_type": DataType.BOOLEAN, "value": 2.0}, "score_boolean_is_0_or_1"),
        ({"data_type": DataType.BOOLEAN, "value": None}, "score_boolean_is_0_or_1"),
        ({"data_type": DataType.NUMERIC, "value": float("nan")}, "score_numeric_is_finite"),
        ({"data_type": DataType.NUMERIC, "value": float("inf")}, "score_numeric_is_finite"),
        ({"data_type": DataType.NUMERIC, "value": float("-inf")}, "score_numeric_is_finite"),
        ({"data_type": DataType.NUMERIC, "value": None}, "score_numeric_is_finite"),
        ({"data_type": DataType.CATEGORICAL, "value": None, "string_value": None}, "score_categorical_has_label"),
        ({"data_type": DataType.TEXT, "value": 1.0}, "score_text_has_no_value"),
        ({"data_type": DataType.TEXT, "value": None, "string_value": "A"}, "score_text_has_no_value"),
        ({"data_type": "percent"}, "score_data_type_known"),
    ],
)
def test_a_row_that_contradicts_its_data_type_is_refused(world, fields, constraint):
    with refused(constraint), transaction.atomic():
        insert(world.project, **fields)


@pytest.mark.parametrize(
    "fields",
    [
        {"data_type": DataType.BOOLEAN, "value": 0.0},
        {"data_type": DataType.BOOLEAN, "value": 1.0},
        {"data_type": DataType.NUMERIC, "value": -1e300},
        {"data_type": DataType.CATEGORICAL, "value": None, "string_value": "A"},
        {"data_type": DataType.TEXT, "value": None, "comment": "it ignored my name"},
    ],
)
def test_rows_that_fit_their_data_type_are_stored(world, fields):
    assert insert(world.project, **fields).pk


def test_an_update_is_held_to_the_same_rules(world):
    score = insert(world.project, data_type=DataType.BOOLEAN, value=1.0)

    with refused("score_boolean_is_0_or_1"), transaction.atomic():
        Score.objects.filter(pk=score.pk).update(value=0.5)


# --- against the score config (constraint trigger) ---------------------------------------


@pytest.mark.parametrize(
    ("name", "fields", "needle"),
    [
        ("helpfulness", {"value": 9.0}, "outside score config helpfulness range"),
        ("helpfulness", {"value": 0.0}, "outside score config helpfulness range"),
        ("preferred", {"data_type": DataType.CATEGORICAL, "value": None, "string_value": "C"}, "not a category"),
        ("safety", {"data_type": DataType.NUMERIC, "value": 1.0}, "does not match score config safety"),
    ],
)
def test_a_score_that_does_not_fit_its_config_is_refused(world, name, fields, needle):
    with refused(needle), transaction.atomic():
        insert(world.project, name=name, config=config(world.project, name), **fields)


def test_a_score_cannot_use_another_projects_config(world):
    theirs = config(world.other_project, "helpfulness")

    with refused("belongs to another project"), transaction.atomic():
        insert(world.project, name="helpfulness", config=theirs, value=3.0)


def test_a_raw_update_out_of_range_is_refused(world):
    score = insert(world.project, name="helpfulness", config=config(world.project, "helpfulness"), value=3.0)

    with refused("score_fits_config|outside score config"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE scores_score SET value = 6 WHERE id = %s", [score.pk])


def test_scores_in_range_and_scores_without_a_config_are_stored(world):
    assert insert(world.project, name="helpfulness", config=config(world.project, "helpfulness"), value=5.0).pk
    preferred = config(world.project, "preferred")
    assert insert(world.project, name="preferred", config=preferred, data_type=DataType.CATEGORICAL,
                  value=None, string_value="tie").pk
    # Evaluator scores carry no config: any finite number, as many as a bulk write brings.
    rows = [Score(project=world.project, trace_id=f"{i:032x}", name="hallucination", value=7.5,
                  data_type=DataType.NUMERIC, source=Source.EVALUATOR) for i in range(50)]
    assert len(Score.objects.bulk_create(rows)) == 50


def test_service_validation_answers_first_and_the_database_is_the_backstop(world, monkeypatch):
    with pytest.raises(ValidationFailed, match="outside 'helpfulness'"):
        score_upsert(project=world.project, trace_id=TRACE, name="helpfulness", value=9, source=Source.API)

    # Were the service's check ever to let a value through, the database refuses it, once:
    # only a lost race on a unique key is retried, not a refused value.
    monkeypatch.setattr(services, "value_normalize", lambda **kw: NormalizedValue(DataType.NUMERIC, 9.0, None))
    with refused("outside score config helpfulness range"):
        score_upsert(project=world.project, trace_id=TRACE, name="helpfulness", value=9, source=Source.API)
    assert not Score.objects.filter(name="helpfulness").exists()


# --- score configs ----------------------------------------------------------------------


@pytest.mark.parametrize(("low", "high"), [(5.0, 1.0), (3.0, 3.0)])
def test_a_config_range_must_not_be_empty_or_inverted(world, low, high):
    with refused("score_config_min_below_max"), transaction.atomic():
        ScoreConfig.objects.create(project=world.project, name="r", data_type=DataType.NUMERIC,
                                   min_value=low, max_value=high)


def test_a_config_with_one_bound_is_allowed_and_its_message_reads(world):
    ScoreConfig.objects.create(project=world.project, name="latency_ok", data_type=DataType.NUMERIC, min_value=0)

    with pytest.raises(ValidationFailed, match="range 0–…"):
        score_upsert(project=world.project, trace_id=TRACE, name="latency_ok", value=-1, source=Source.API)


def test_service_refuses_an_inverted_range_before_the_database(world):
    with pytest.raises(ValidationFailed, match="min_value < max_value"):
        score_config_create(project=world.project, name="r", data_type="numeric", min_value=5, max_value=1)


# --- end-user feedback: one per target, latest wins ------------------------------------


def test_a_second_end_user_row_for_the_same_target_is_refused(world):
    insert(world.project, name="user_thumbs", source=Source.END_USER, data_type=DataType.BOOLEAN, value=1.0)

    with refused("score_one_end_user_per_target"), transaction.atomic():
        insert(world.project, name="user_thumbs", source=Source.END_USER, data_type=DataType.BOOLEAN, value=0.0)


def test_other_targets_names_and_sources_are_separate_rows(world):
    thumbs = {"name": "user_thumbs", "data_type": DataType.BOOLEAN, "value": 1.0}
    insert(world.project, source=Source.END_USER, **thumbs)
    insert(world.project, source=Source.END_USER, span_id=SPAN, **thumbs)  # a span of the trace
    insert(world.project, source=Source.END_USER, trace_id="ef" * 16, **thumbs)  # another trace
    insert(world.other_project, source=Source.END_USER, **thumbs)  # another project
    insert(world.project, source=Source.END_USER, name="user_rating", value=4.0)  # another name
    # Only end-user feedback is one per target: API clients may post a series.
    insert(world.project, source=Source.API, **thumbs)
    insert(world.project, source=Source.API, **thumbs)

    assert Score.objects.count() == 7


def test_repeated_thumbs_on_a_trace_keep_one_row_with_the_latest_value(world):
    first = feedback_record(project=world.project, trace_id=TRACE, kind="feedback", name="thumbs", value="down",
                            comment="wrong")
    second = feedback_record(project=world.project, trace_id=TRACE, kind="feedback", name="thumbs", value="up")

    score = Score.objects.get(source=Source.END_USER)
    assert (first.created, second.created) == (True, False)
    assert second.row.pk == first.row.pk == score.pk
    # Latest wins, all of it: the old comment does not linger beside the new verdict.
    assert (score.value, score.comment) == (1.0, "")


def test_a_new_client_id_for_the_same_trace_updates_the_stored_thumbs(world):
    first = feedback_record(project=world.project, trace_id=TRACE, kind="feedback", name="thumbs", value=True,
                            client_id=uuid.uuid4())
    second = feedback_record(project=world.project, trace_id=TRACE, kind="feedback", name="thumbs", value=False,
                             client_id=uuid.uuid4())

    assert second.row.pk == first.row.pk
    assert list(Score.objects.values_list("value", flat=True)) == [0.0]


def test_span_thumbs_are_separate_from_trace_thumbs(world):
    feedback_record(project=world.project, trace_id=TRACE, kind="feedback", name="thumbs", value=True)
    feedback_record(project=world.project, trace_id=TRACE, span_id=SPAN, kind="feedback", name="thumbs", value=False)
    feedback_record(project=world.project, trace_id=TRACE, span_id=SPAN, kind="feedback", name="thumbs", value=True)

    rows = dict(Score.objects.values_list("span_id", "value"))
    assert rows == {None: 1.0, SPAN: 1.0}


def test_end_user_scores_through_the_scores_api_are_one_per_target_too(world, api):
    body = {"trace_id": TRACE, "name": "user_rating", "value": 2, "source": "end_user"}

    first = api.post("/api/v1/scores", body, format="json")
    second = api.post("/api/v1/scores", {**body, "value": 5}, format="json")

    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert list(Score.objects.values_list("value", flat=True)) == [5.0]


@pytest.mark.django_db(transaction=True)
def test_concurrent_thumbs_on_one_trace_leave_one_row(world):
    """Both writers miss each other's row at look-up; the unique index makes the loser
    wait, refuse, and retry as an update instead of failing the request."""
    count = 6
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def post(i: int) -> None:
        try:
            barrier.wait()
            feedback_record(project=world.project, trace_id=TRACE, kind="feedback", name="thumbs", value=i % 2 == 0)
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)
        finally:
            connection.close()  # each thread opened its own connection

    threads = [threading.Thread(target=post, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert errors == []
    assert Score.objects.filter(source=Source.END_USER, trace_id=TRACE).count() == 1
