"""Evaluator and judge state moves here from the feedback app, its rows untouched."""

import django.db.models.deletion
import django.utils.timezone
import pgvector.django.indexes
import pgvector.django.vector
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
                    name='EvaluatorSettings',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('config', models.JSONField(blank=True, default=dict)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('project', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='projects.project')),
                    ],
                    options={
                        'verbose_name_plural': 'evaluator settings',
                        'db_table': 'feedback_evaluatorsettings',
                    },
                ),
                migrations.CreateModel(
                    name='JudgeSettings',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('enabled', models.BooleanField(default=False)),
                        ('base_url', models.URLField(blank=True, default='', max_length=500)),
                        ('model', models.CharField(blank=True, default='', max_length=200)),
                        ('api_key_encrypted', models.TextField(blank=True, default='')),
                        ('api_key_last4', models.CharField(blank=True, default='', max_length=4)),
                        ('sample_rate', models.FloatField(default=0.05)),
                        ('daily_budget_usd', models.DecimalField(decimal_places=4, default=1, max_digits=12)),
                        ('cost_per_call_usd', models.DecimalField(blank=True, decimal_places=6, max_digits=12, null=True)),
                        ('rubrics', models.JSONField(blank=True, default=list)),
                        ('timeout_seconds', models.FloatField(default=30)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('project', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='projects.project')),
                        ('updated_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'feedback_judgesettings',
                    },
                ),
                migrations.CreateModel(
                    name='JudgeCall',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('trace_id', models.CharField(max_length=32)),
                        ('rubric', models.CharField(max_length=64)),
                        ('status', models.CharField(choices=[('ok', 'Ok'), ('failed', 'Failed')], max_length=8)),
                        ('error', models.TextField(blank=True, default='')),
                        ('cost_usd', models.DecimalField(decimal_places=8, default=0, max_digits=14)),
                        ('input_tokens', models.IntegerField(blank=True, null=True)),
                        ('output_tokens', models.IntegerField(blank=True, null=True)),
                        ('attempts', models.PositiveSmallIntegerField(default=1)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='projects.project')),
                    ],
                    options={
                        'db_table': 'feedback_judgecall',
                        'indexes': [models.Index(fields=['project', '-created_at'], name='judge_call_project_time')],
                    },
                ),
                migrations.CreateModel(
                    name='TraceEmbedding',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('trace_id', models.CharField(max_length=32)),
                        ('span_id', models.CharField(blank=True, default='', max_length=16)),
                        ('kind', models.CharField(choices=[('input', 'Input'), ('output', 'Output')], max_length=8)),
                        ('embedding', pgvector.django.vector.VectorField(dimensions=384)),
                        ('model', models.CharField(default='all-MiniLM-L6-v2', max_length=64)),
                        ('created_at', models.DateTimeField(auto_now=True)),
                        ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='projects.project')),
                    ],
                    options={
                        'db_table': 'feedback_traceembedding',
                        'indexes': [pgvector.django.indexes.HnswIndex(ef_construction=64, fields=['embedding'], m=16, name='trace_embedding_hnsw', opclasses=['vector_cosine_ops'])],
                        'constraints': [models.UniqueConstraint(fields=('project', 'trace_id', 'span_id', 'kind'), name='trace_embedding_unique')],
                    },
                ),
                migrations.CreateModel(
                    name='TraceScoring',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('trace_id', models.CharField(max_length=32)),
                        ('status', models.CharField(choices=[('pending', 'Pending'), ('scored', 'Scored'), ('failed', 'Failed')], default='pending', max_length=8)),
                        ('error', models.TextField(blank=True, default='')),
                        ('trace_updated_at', models.DateTimeField(blank=True, null=True)),
                        ('scored_at', models.DateTimeField(blank=True, null=True)),
                        ('versions', models.JSONField(blank=True, default=dict)),
                        ('notes', models.JSONField(blank=True, default=dict)),
                        ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='projects.project')),
                    ],
                    options={
                        'db_table': 'feedback_tracescoring',
                        'indexes': [models.Index(fields=['project', 'status'], name='trace_scoring_status')],
                        'constraints': [models.UniqueConstraint(fields=('project', 'trace_id'), name='trace_scoring_unique')],
                    },
                ),
            ],
        ),
        _content_types_follow("evaluation", ['judgesettings', 'judgecall', 'tracescoring', 'traceembedding', 'evaluatorsettings']),
    ]
