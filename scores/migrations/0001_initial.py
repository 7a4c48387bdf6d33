"""Score and ScoreConfig move here from the feedback app, their rows untouched."""

import django.db.models.deletion
import uuid
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
                    name='ScoreConfig',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=100)),
                        ('data_type', models.CharField(choices=[('numeric', 'Numeric'), ('categorical', 'Categorical'), ('boolean', 'Boolean'), ('text', 'Text')], max_length=16)),
                        ('min_value', models.FloatField(blank=True, null=True)),
                        ('max_value', models.FloatField(blank=True, null=True)),
                        ('categories', models.JSONField(blank=True, default=list)),
                        ('description', models.TextField(blank=True, default='')),
                        ('is_archived', models.BooleanField(default=False)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='projects.project')),
                    ],
                    options={
                        'db_table': 'feedback_scoreconfig',
                        'ordering': ['name'],
                    },
                ),
                migrations.CreateModel(
                    name='Score',
                    fields=[
                        ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ('trace_id', models.CharField(max_length=32)),
                        ('span_id', models.CharField(blank=True, max_length=16, null=True)),
                        ('name', models.CharField(max_length=100)),
                        ('value', models.FloatField(blank=True, null=True)),
                        ('string_value', models.CharField(blank=True, max_length=200, null=True)),
                        ('data_type', models.CharField(choices=[('numeric', 'Numeric'), ('categorical', 'Categorical'), ('boolean', 'Boolean'), ('text', 'Text')], max_length=16)),
                        ('source', models.CharField(choices=[('end_user', 'End User'), ('annotation', 'Annotation'), ('evaluator', 'Evaluator'), ('implicit', 'Implicit'), ('api', 'Api')], max_length=16)),
                        ('queue_id', models.BigIntegerField(blank=True, db_index=True, null=True)),
                        ('comment', models.TextField(blank=True, default='')),
                        ('metadata', models.JSONField(blank=True, default=dict)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('author', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, to=settings.AUTH_USER_MODEL)),
                        ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='projects.project')),
                        ('config', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, to='scores.scoreconfig')),
                    ],
                    options={
                        'db_table': 'feedback_score',
                    },
                ),
                migrations.AddConstraint(
                    model_name='scoreconfig',
                    constraint=models.UniqueConstraint(fields=('project', 'name'), name='score_config_unique_name'),
                ),
                migrations.AddIndex(
                    model_name='score',
                    index=models.Index(fields=['project', 'trace_id'], name='score_project_trace'),
                ),
                migrations.AddIndex(
                    model_name='score',
                    index=models.Index(fields=['project', 'name', '-created_at'], name='score_project_name_time'),
                ),
                migrations.AddIndex(
                    model_name='score',
                    index=models.Index(fields=['project', 'source', 'name'], name='score_project_source'),
                ),
                migrations.AddIndex(
                    model_name='score',
                    index=models.Index(fields=['project', '-created_at', '-id'], name='score_project_time'),
                ),
                migrations.AddConstraint(
                    model_name='score',
                    constraint=models.UniqueConstraint(condition=models.Q(('source', 'annotation')), fields=('project', 'trace_id', 'span_id', 'name', 'author'), name='score_one_annotation_per_author', nulls_distinct=False),
                ),
            ],
        ),
        _content_types_follow("scores", ['scoreconfig', 'score']),
    ]
