"""Scores, annotation and evaluation models move to their own apps (scores,
annotation, evaluation). Their tables stay as they are here; the new apps take over
Django's state of them and rename them in their own 0002 migrations.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("feedback", "0005_span_embeddings"),
    ]

    operations = [
        # Score.queue becomes a plain id (scores sit below annotation and must not
        # depend on it): the foreign-key constraint goes, the column and index stay.
        migrations.AlterField(
            model_name="score",
            name="queue",
            field=models.BigIntegerField(blank=True, null=True, db_index=True, db_column="queue_id"),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name='score',
                    name='queue',
                ),
                migrations.RemoveField(
                    model_name='queueitem',
                    name='queue',
                ),
                migrations.RemoveField(
                    model_name='comment',
                    name='author',
                ),
                migrations.RemoveField(
                    model_name='comment',
                    name='parent',
                ),
                migrations.RemoveField(
                    model_name='comment',
                    name='project',
                ),
                migrations.RemoveField(
                    model_name='evaluatorsettings',
                    name='project',
                ),
                migrations.RemoveField(
                    model_name='judgecall',
                    name='project',
                ),
                migrations.RemoveField(
                    model_name='judgesettings',
                    name='project',
                ),
                migrations.RemoveField(
                    model_name='judgesettings',
                    name='updated_by',
                ),
                migrations.RemoveField(
                    model_name='queueitem',
                    name='project',
                ),
                migrations.RemoveField(
                    model_name='queuereview',
                    name='item',
                ),
                migrations.RemoveField(
                    model_name='queuereview',
                    name='project',
                ),
                migrations.RemoveField(
                    model_name='queuereview',
                    name='reviewer',
                ),
                migrations.RemoveField(
                    model_name='score',
                    name='author',
                ),
                migrations.RemoveField(
                    model_name='score',
                    name='config',
                ),
                migrations.RemoveField(
                    model_name='score',
                    name='project',
                ),
                migrations.RemoveField(
                    model_name='scoreconfig',
                    name='project',
                ),
                migrations.RemoveField(
                    model_name='traceembedding',
                    name='project',
                ),
                migrations.RemoveField(
                    model_name='tracescoring',
                    name='project',
                ),
                migrations.DeleteModel(
                    name='AnnotationQueue',
                ),
                migrations.DeleteModel(
                    name='Comment',
                ),
                migrations.DeleteModel(
                    name='EvaluatorSettings',
                ),
                migrations.DeleteModel(
                    name='JudgeCall',
                ),
                migrations.DeleteModel(
                    name='JudgeSettings',
                ),
                migrations.DeleteModel(
                    name='QueueItem',
                ),
                migrations.DeleteModel(
                    name='QueueReview',
                ),
                migrations.DeleteModel(
                    name='Score',
                ),
                migrations.DeleteModel(
                    name='ScoreConfig',
                ),
                migrations.DeleteModel(
                    name='TraceEmbedding',
                ),
                migrations.DeleteModel(
                    name='TraceScoring',
                ),
            ],
        ),
    ]
