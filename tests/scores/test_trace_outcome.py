"""scores_traceoutcome stays equal to what the scores say, whatever wrote them.

The expected table is computed here in Python from the Score rows, with the names and
flag thresholds of scores/names.py (an oracle independent of the SQL in migration
scores 0004), and compared after every kind of write: the scores API service (create,
overwrite by id), annotations and their withdrawal, end-user feedback (latest wins),
the evaluator runner (bulk upsert, and again: the ON CONFLICT path), implicit signals
(added, then removed when they stop holding), bulk and hand-run SQL (update of value,
name or trace, delete, truncate), project deletion, concurrent writers to one trace,
the LLM judge, and the rebuild command.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection, connections, transaction

from evaluation import judge
from evaluation.runner import traces_score_batch
from feedback.services import feedback_record, session_signals_compute
from projects.models import Project
from scores import names
from scores.models import Score, Source, TraceOutcome
from scores.services import score_delete, score_upsert
from tests.evaluation.fake_judge import FakeJudgeServer, Reply, verdict
from tests.evaluation.test_judge import enable
from tests.helpers import ingest_trace
from tests.otlp_payloads import BASE_NS

pytestmark = pytest.mark.django_db

COLUMNS = ("thumbs_n", "thumbs_sum", "rating_n", "rating_sum", "hall_n", "hall_x", "tox_n", "tox_x", "rephrase_n",
           "regenerate_n", "abandon_n", "escalate_n", "feedback_n")
SIGNAL_COLUMNS = {names.REPHRASE.name: "rephrase_n", names.REGENERATE.name: "regenerate_n",
                  names.ABANDON.name: "abandon_n", names.ESCALATE.name: "escalate_n"}


def _flag(score: Score, threshold: float) -> bool | None:
    stored = (score.metadata or {}).get("flagged") if isinstance(score.metadata, dict) else None
    if isinstance(stored, bool):
        return stored
    return None if score.value is None else score.value >= threshold


def expected(project: Project) -> dict[str, tuple]:
    """Per trace, the counts the table must hold, from the scores themselves."""
    rows: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(COLUMNS, 0))
    for s in Score.objects.filter(project=project):
        row = rows[s.trace_id]
        if s.name == names.USER_THUMBS.name and s.value is not None:
            row["thumbs_n"] += 1
            row["thumbs_sum"] += s.value
        if s.name == names.USER_RATING.name and s.value is not None:
            row["rating_n"] += 1
            row["rating_sum"] += s.value
        for score_name, prefix in ((names.HALLUCINATION, "hall"), (names.TOXICITY_OUTPUT, "tox")):
            if s.name == score_name.name and (flag := _flag(s, score_name.flag_threshold)) is not None:
                row[f"{prefix}_n"] += 1
                row[f"{prefix}_x"] += int(flag)
        if s.name in SIGNAL_COLUMNS:
            row[SIGNAL_COLUMNS[s.name]] += 1
        if s.source == Source.END_USER:
            row["feedback_n"] += 1
    return {trace: tuple(r[c] for c in COLUMNS) for trace, r in rows.items() if any(r.values())}


def stored(project: Project) -> dict[str, tuple]:
    """The table's rows, all-zero rows left out (a trace whose scores were all deleted
    keeps a row of zeros, which reads as "no scores")."""
    out = {}
    for o in TraceOutcome.objects.filter(project=project):
        values = tuple(getattr(o, c) for c in COLUMNS)
        if any(values):
            out[o.trace_id] = values
    return out


def assert_true(project: Project) -> None:
    want, have = expected(project), stored(project)
    assert set(have) == set(want), (have, want)
    for trace, values in want.items():
        assert all(math.isclose(a, b, abs_tol=1e-9) for a, b in zip(have[trace], values, strict=True)), (
            trace, dict(zip(COLUMNS, have[trace], strict=True)), dict(zip(COLUMNS, values, strict=True)))


def test_scores_api_service_creates_and_overwrites(world):
    p = world.project
    first = score_upsert(project=p, trace_id="a" * 32, name="user_thumbs", value=True, source=Source.API).score
    # At the registry's threshold without a stored decision: flagged; just below: not.
    threshold = names.HALLUCINATION.flag_threshold
    score_upsert(project=p, trace_id="a" * 32, name="hallucination", value=threshold, source=Source.API,
                 data_type="numeric")
    score_upsert(project=p, trace_id="b" * 32, name="hallucination", value=threshold - 1e-6, source=Source.API,
                 data_type="numeric")
    score_upsert(project=p, trace_id="b" * 32, name="toxicity_output", value=0.9, source=Source.API,
                 data_type="numeric", metadata={"flagged": False})  # the stored decision wins
    assert_true(p)
    assert stored(p)["a" * 32][COLUMNS.index("hall_x")] == 1
    assert stored(p)["b" * 32][COLUMNS.index("hall_x")] == 0
    score_upsert(project=p, trace_id="a" * 32, name="user_thumbs", value=False, source=Source.API,
                 score_id=first.pk)  # overwrite by id: 1 -> 0
    assert stored(p)["a" * 32][:2] == (1, 0.0)
    assert_true(p)


def test_annotations_and_their_withdrawal(world):
    p = world.project
    write = score_upsert(project=p, trace_id="c" * 32, name="hallucination", value=1, source=Source.ANNOTATION,
                         author=world.reviewer, data_type="numeric")
    score_upsert(project=p, trace_id="c" * 32, name="hallucination", value=0, source=Source.ANNOTATION,
                 author=world.reviewer, data_type="numeric")  # annotating again updates the judgement
    assert_true(p)
    assert stored(p)["c" * 32][COLUMNS.index("hall_n"):COLUMNS.index("hall_x") + 1] == (1, 0)
    score_delete(project=p, score_id=write.score.pk, author=world.reviewer)
    assert_true(p)
    assert "c" * 32 not in stored(p)


def test_end_user_feedback_latest_wins(world):
    p = world.project
    trace = "d" * 32
    feedback_record(project=p, trace_id=trace, kind="feedback", name="user_thumbs", value=True)
    feedback_record(project=p, trace_id=trace, kind="feedback", name="user_thumbs", value=False)
    feedback_record(project=p, trace_id=trace, kind="feedback", name="user_rating", value=4)
    assert_true(p)
    assert stored(p)[trace][:4] == (1, 0.0, 1, 4.0)
    assert stored(p)[trace][COLUMNS.index("feedback_n")] == 2


def test_evaluator_runner_and_rescoring_do_not_double_count(world):
    trace = ingest_trace(world.project, output="You are a complete idiot and I hate you.")
    traces_score_batch([trace.pk], only={"toxicity"})
    assert_true(world.project)
    assert stored(world.project)[trace.trace_id][COLUMNS.index("tox_n")] == 1
    traces_score_batch([trace.pk], only={"toxicity"})  # the bulk upsert's ON CONFLICT DO UPDATE path
    assert_true(world.project)
    assert stored(world.project)[trace.trace_id][COLUMNS.index("tox_n")] == 1


def test_llm_judge_scores_leave_the_outcomes_right(world):
    """The judge writes judge_<rubric> scores, which the page does not count: the trace's
    row keeps exactly what its other scores say."""
    trace = ingest_trace(world.project, input="What is the refund window?", output="30 days.")
    feedback_record(project=world.project, trace_id=trace.trace_id, kind="feedback", name="user_thumbs", value=True)
    with FakeJudgeServer() as server:
        enable(world.project, server)
        server.script = [Reply(content=verdict("faithful", 0.1, "Matches.")),
                         Reply(content=verdict("relevant", 0.9, "Answers."))]
        judge.judge_traces(project=world.project, trace_ids=[trace.trace_id], sleep=lambda _: None)
    assert Score.objects.filter(project=world.project, name__startswith="judge_").count() == 2
    assert_true(world.project)
    assert stored(world.project)[trace.trace_id][:2] == (1, 1.0)


def test_implicit_signals_added_and_removed(world):
    only_turn = ingest_trace(world.project, input="How do I export my data?", start_ns=BASE_NS,
                             attributes={"session.id": "s-out"})
    later = only_turn.end_time + timedelta(minutes=45)
    session_signals_compute(project=world.project, session_id="s-out", now=later)
    assert stored(world.project)[only_turn.trace_id][COLUMNS.index("abandon_n")] == 1
    assert_true(world.project)
    feedback_record(project=world.project, trace_id=only_turn.trace_id, kind="event", name="copy")
    session_signals_compute(project=world.project, session_id="s-out", now=later)  # abandon no longer holds
    assert_true(world.project)
    assert only_turn.trace_id not in stored(world.project)


def test_bulk_and_hand_written_sql(world):
    p = world.project
    Score.objects.bulk_create([
        Score(project=p, trace_id=f"{i:032x}", name=name, value=value, data_type="numeric", source=source,
              metadata=meta)
        for i in range(6)
        for name, value, source, meta in (("hallucination", 0.7, "evaluator", {}),
                                          ("toxicity_output", 0.2, "evaluator", {"flagged": True}),
                                          ("user_rating", 3.5, "end_user", {}),
                                          ("helpfulness", 4, "annotation", {}),
                                          ("escalate", 1, "implicit", {}))
    ])
    assert_true(p)
    Score.objects.filter(project=p, name="user_rating").update(value=2.25)
    Score.objects.filter(project=p, name="hallucination", trace_id__lt=f"{3:032x}").update(metadata={"flagged": False})
    assert_true(p)
    with connection.cursor() as cursor:
        # A score renamed into and out of what counts, and one moved to another trace.
        cursor.execute("UPDATE scores_score SET name = 'rephrase' WHERE name = 'helpfulness' AND trace_id = %s",
                       [f"{1:032x}"])
        cursor.execute("UPDATE scores_score SET name = 'other' WHERE name = 'escalate' AND trace_id = %s",
                       [f"{2:032x}"])
        cursor.execute("UPDATE scores_score SET trace_id = %s WHERE name = 'user_rating' AND trace_id = %s",
                       ["f" * 32, f"{3:032x}"])
        cursor.execute("UPDATE scores_score SET comment = 'only a comment'")  # changes no count
    assert_true(p)
    Score.objects.filter(project=p, trace_id__in=[f"{4:032x}", f"{5:032x}"]).delete()
    assert_true(p)
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # TRUNCATE refuses pending deferred checks
        cursor.execute("TRUNCATE scores_score CASCADE")
    assert not TraceOutcome.objects.exists()


def test_project_deletion_removes_its_outcomes(world):
    score_upsert(project=world.project, trace_id="e" * 32, name="user_thumbs", value=True, source=Source.API)
    score_upsert(project=world.other_project, trace_id="e" * 32, name="user_thumbs", value=False,
                 source=Source.API)
    Project.objects.filter(pk=world.project.pk).delete()
    assert not TraceOutcome.objects.filter(project_id=world.project.pk).exists()
    assert_true(world.other_project)
    assert stored(world.other_project)["e" * 32][:2] == (1, 0.0)


def test_rebuild_command_repairs_a_table_the_triggers_missed(world):
    p = world.project
    score_upsert(project=p, trace_id="a" * 32, name="user_thumbs", value=True, source=Source.API)
    with connection.cursor() as cursor:
        # What a restore does: triggers off for the session.
        cursor.execute("SET session_replication_role = replica")
        try:
            score_upsert(project=p, trace_id="b" * 32, name="hallucination", value=0.9, source=Source.API,
                         data_type="numeric")
        finally:
            cursor.execute("SET session_replication_role = origin")
    TraceOutcome.objects.filter(trace_id="a" * 32).update(thumbs_n=5)
    assert stored(p) != expected(p)
    call_command("trace_outcomes_rebuild", project=p.slug)
    assert_true(p)


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_to_one_trace_both_count(world):
    """Two transactions add scores to one trace at once; the second's upsert waits for the
    first's row and adds to it, so neither count is lost."""
    p = world.project
    first_inserted, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def writer(name: str, hold: bool) -> None:
        try:
            with transaction.atomic():
                Score.objects.create(project=p, trace_id="9" * 32, name=name, value=1, data_type="boolean",
                                     source="implicit")
                if hold:
                    first_inserted.set()
                    release.wait(10)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    one = threading.Thread(target=writer, args=("rephrase", True))
    one.start()
    assert first_inserted.wait(10)
    two = threading.Thread(target=writer, args=("escalate", False))
    two.start()
    two.join(0.5)
    assert two.is_alive()  # waiting on the first's uncommitted outcome row
    release.set()
    one.join(10)
    two.join(10)
    assert not errors
    assert_true(p)
    row = stored(p)["9" * 32]
    assert (row[COLUMNS.index("rephrase_n")], row[COLUMNS.index("escalate_n")]) == (1, 1)
