"""Migrations keep data: a database of the schema before the apps were split (every model
in `feedback`), holding rows of every kind, migrates to today's schema with every row,
relation and value intact.

The test database is taken back to that schema with Django's own migration executor,
filled through the historical models, and migrated forward again (also on failure, so
later tests find the schema they expect).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
# The schema of main before the split: feedback held scores, annotation and evaluation.
BEFORE_SPLIT = [
    ("feedback", "0001_initial"),
    ("scores", None),
    ("annotation", None),
    ("evaluation", None),
]
BEFORE_SPLIT_FULL = [("feedback", "0005_span_embeddings"), ("scores", None), ("annotation", None), ("evaluation", None)]


def _migrate(targets) -> object:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    if targets is None:
        targets = executor.loader.graph.leaf_nodes()
    executor.migrate(targets)
    # The state at these nodes (an app "unapplied", None, has no state to add).
    return executor.loader.project_state([t for t in targets if t[1] is not None]).apps


def _seed_old_schema(old) -> dict:
    """Rows of every kind feedback held, with their relations, through historical models."""
    User = old.get_model("auth", "User")
    Project = old.get_model("projects", "Project")
    project = Project.objects.get(slug="before-split")
    reviewer = User.objects.create(username="old-reviewer")
    Trace = old.get_model("tracing", "Trace")
    Trace.objects.create(project=project, trace_id="ab" * 16, start_time=T0, end_time=T0, name="t")
    ScoreConfig = old.get_model("feedback", "ScoreConfig")
    helpfulness = ScoreConfig.objects.get(project=project, name="helpfulness")
    queue = old.get_model("feedback", "AnnotationQueue").objects.create(project=project, name="q", created_by=reviewer)
    queue.score_configs.add(helpfulness)
    queue.assignees.add(reviewer)
    item = old.get_model("feedback", "QueueItem").objects.create(queue=queue, project=project, trace_id="ab" * 16,
                                                                   position=1, done_count=1)
    old.get_model("feedback", "QueueReview").objects.create(item=item, project=project, reviewer=reviewer,
                                                            status="done")
    score_id = uuid.uuid4()
    old.get_model("feedback", "Score").objects.create(
        id=score_id, project=project, trace_id="ab" * 16, name="helpfulness", value=4, data_type="numeric",
        source="annotation", author=reviewer, config=helpfulness, queue=queue, comment="fine", metadata={"k": 1})
    Comment = old.get_model("feedback", "Comment")
    parent = Comment.objects.create(project=project, trace_id="ab" * 16, author=reviewer, body="first")
    Comment.objects.create(project=project, trace_id="ab" * 16, author=reviewer, body="reply", parent=parent)
    old.get_model("feedback", "InteractionEvent").objects.create(project=project, trace_id="ab" * 16, name="copy")
    old.get_model("feedback", "SessionSignalState").objects.create(project=project, session_id="s", closed=True,
                                                                   last_activity_at=T0, computed_at=T0)
    old.get_model("feedback", "JudgeSettings").objects.create(project=project, enabled=True, model="m",
                                                              rubrics=["helpfulness"], updated_by=reviewer)
    old.get_model("feedback", "JudgeCall").objects.create(project=project, trace_id="ab" * 16, rubric="helpfulness",
                                                          status="ok", created_at=T0)
    old.get_model("feedback", "TraceScoring").objects.create(project=project, trace_id="ab" * 16, status="scored",
                                                             scored_at=T0, trace_updated_at=T0)
    old.get_model("feedback", "TraceEmbedding").objects.create(project=project, trace_id="ab" * 16, span_id="",
                                                               kind="input", embedding=[0.5] * 384)
    old.get_model("feedback", "EvaluatorSettings").objects.create(project=project, config={"pii": {"enabled": False}})
    return {"score_id": score_id, "queue_id": queue.pk, "config_id": helpfulness.pk}


def test_splitting_feedback_into_apps_keeps_every_row_and_relation():
    try:
        old = _migrate(BEFORE_SPLIT)
        # A project from before score configs: feedback 0002 must backfill its defaults.
        old.get_model("projects", "Project").objects.create(name="Before split", slug="before-split")
        old = _migrate(BEFORE_SPLIT_FULL)
        seeded = _seed_old_schema(old)
        ContentType.objects.get_or_create(app_label="feedback", model="score")
    finally:
        _migrate(None)

    from annotation.models import AnnotationQueue, Comment, QueueItem, QueueReview
    from evaluation.models import EvaluatorSettings, JudgeCall, JudgeSettings, TraceEmbedding, TraceScoring
    from feedback.models import InteractionEvent, SessionSignalState
    from projects.models import Project
    from scores.models import Score, ScoreConfig

    project = Project.objects.get(slug="before-split")
    assert ScoreConfig.objects.filter(project=project).count() == 7  # the backfilled defaults
    score = Score.objects.get(pk=seeded["score_id"])
    assert (score.value, score.comment, score.metadata, score.author.username) == (4, "fine", {"k": 1}, "old-reviewer")
    assert score.config_id == seeded["config_id"] and score.queue_id == seeded["queue_id"]
    queue = AnnotationQueue.objects.get(pk=seeded["queue_id"])
    assert [c.name for c in queue.score_configs.all()] == ["helpfulness"]
    assert [u.username for u in queue.assignees.all()] == ["old-reviewer"]
    item = QueueItem.objects.get(queue=queue)
    assert QueueReview.objects.get(item=item).status == "done"
    reply = Comment.objects.get(body="reply")
    assert reply.parent.body == "first"
    assert InteractionEvent.objects.get(project=project).name == "copy"
    assert SessionSignalState.objects.get(project=project).closed
    assert JudgeSettings.objects.get(project=project).rubrics == ["helpfulness"]
    assert JudgeCall.objects.get(project=project).status == "ok"
    assert TraceScoring.objects.get(project=project).status == "scored"
    assert list(TraceEmbedding.objects.get(project=project).embedding[:2]) == [0.5, 0.5]
    assert EvaluatorSettings.objects.get(project=project).config == {"pii": {"enabled": False}}
    # The tables carry their app's name now, and the content type followed its model.
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('scores_score'), to_regclass('feedback_score')")
        assert cursor.fetchone() == ("scores_score", None)
    assert ContentType.objects.filter(app_label="scores", model="score").exists()
    assert not ContentType.objects.filter(app_label="feedback", model="score").exists()
    # The queue id on a score is a plain id now: deleting a queue leaves its scores.
    queue.delete()
    assert Score.objects.filter(pk=seeded["score_id"]).exists()
