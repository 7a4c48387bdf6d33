"""Comments and annotation queues move here from the feedback app, their rows untouched."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def _content_types_follow(app_label: str, model_names: list[str]):
    """Moved models keep their content type rows (admin log, permissions)."""

    def forwards(apps, schema_editor):
        ContentType = apps.get_model("contenttypes", "ContentType")
        ContentType.objects.filter(app_label="feedback", model__in=model_names).update(app_label=app_label)

    def backwards(apps, schema_editor):
        ContentType = apps.get_model("contenttypes", "ContentType")
        ContentType.objects.filter(app_label=app_label, model__in=model_names).update(app_label="feedback")

    return migrations.RunPython(forwards, backwards)


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('projects', '0001_initial'),
        ('scores', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ('contenttypes', '0002_remove_content_type_name'),
        ('feedback', '0006_move_models_out'),
    ]

    operations = [
        # The tables exist (created by feedback's migrations); only Django's model
        # state moves here. 0002 renames them.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Comment',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('trace_id', models.CharField(max_length=32)),
                        ('span_id', models.CharField(blank=True, max_length=16, null=True)),
                        ('body', models.TextField()),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                    ],
                    options={
                        'db_table': 'feedback_comment',
                        'ordering': ['created_at', 'id'],
                    },
                ),
                migrations.CreateModel(
                    name='QueueItem',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('trace_id', models.CharField(max_length=32)),
                        ('pair_trace_id', models.CharField(blank=True, max_length=32, null=True)),
                        ('position', models.PositiveIntegerField()),
                        ('done_count', models.PositiveSmallIntegerField(default=0)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                    ],
                    options={
                        'db_table': 'feedback_queueitem',
                        'ordering': ['position'],
                    },
                ),
                migrations.CreateModel(
                    name='QueueReview',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('status', models.CharField(choices=[('claimed', 'Claimed'), ('done', 'Done'), ('skipped', 'Skipped')], default='claimed', max_length=8)),
                        ('locked_until', models.DateTimeField(blank=True, null=True)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                    ],
                    options={
                        'db_table': 'feedback_queuereview',
                    },
                ),
                migrations.CreateModel(
                    name='AnnotationQueue',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=200)),
                        ('description', models.TextField(blank=True, default='')),
                        ('mode', models.CharField(choices=[('single', 'One trace at a time'), ('pairwise', 'Pairwise (A vs B)')], default='single', max_length=16)),
                        ('reviews_per_item', models.PositiveSmallIntegerField(default=1)),
                        ('source_filter', models.JSONField(blank=True, default=dict)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('assignees', models.ManyToManyField(blank=True, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('created_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='projects.project')),
                    ],
                    options={
                        'db_table': 'feedback_annotationqueue',
                        'ordering': ['-created_at', '-id'],
                    },
                ),
                migrations.AddField(
                    model_name='annotationqueue',
                    name='score_configs',
                    field=models.ManyToManyField(related_name='queues', to='scores.scoreconfig'),
                ),
                migrations.AddField(
                    model_name='comment',
                    name='author',
                    field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
                ),
                migrations.AddField(
                    model_name='comment',
                    name='parent',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='replies', to='annotation.comment'),
                ),
                migrations.AddField(
                    model_name='comment',
                    name='project',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='projects.project'),
                ),
                migrations.AddField(
                    model_name='queueitem',
                    name='project',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='projects.project'),
                ),
                migrations.AddField(
                    model_name='queueitem',
                    name='queue',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='items', to='annotation.annotationqueue'),
                ),
                migrations.AddField(
                    model_name='queuereview',
                    name='item',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='reviews', to='annotation.queueitem'),
                ),
                migrations.AddField(
                    model_name='queuereview',
                    name='project',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='projects.project'),
                ),
                migrations.AddField(
                    model_name='queuereview',
                    name='reviewer',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL),
                ),
                migrations.AddIndex(
                    model_name='comment',
                    index=models.Index(fields=['project', 'trace_id', 'created_at'], name='comment_project_trace'),
                ),
                migrations.AddConstraint(
                    model_name='queueitem',
                    constraint=models.UniqueConstraint(fields=('queue', 'position'), name='queue_item_unique_position'),
                ),
                migrations.AddIndex(
                    model_name='queuereview',
                    index=models.Index(fields=['item', 'status', 'locked_until'], name='queue_review_item_status'),
                ),
                migrations.AddConstraint(
                    model_name='queuereview',
                    constraint=models.UniqueConstraint(fields=('item', 'reviewer'), name='queue_review_unique_reviewer'),
                ),
            ],
        ),
        _content_types_follow("annotation", ['comment', 'annotationqueue', 'queueitem', 'queuereview']),
    ]
