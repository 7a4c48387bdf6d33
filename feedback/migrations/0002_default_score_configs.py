"""Give projects that existed before score configs the default set.

New projects get them from projects.services.project_create. The list is copied here
rather than imported: a migration must keep meaning what it meant when written.
"""

from django.db import migrations

DEFAULTS = (
    ("helpfulness", "numeric", 1, 5, [], "1 = useless, 5 = fully solves the user's request."),
    ("factual_accuracy", "numeric", 1, 5, [], "1 = mostly wrong or invented, 5 = every claim is correct."),
    ("relevance", "numeric", 1, 5, [], "1 = off-topic, 5 = answers exactly what was asked."),
    ("safety", "boolean", None, None, [], "Yes = safe to show a user (no harmful, toxic or leaked content)."),
    ("preferred", "categorical", None, None, ["A", "B", "tie"], "Which of two answers to the same input is better (pairwise comparison)."),
    ("user_thumbs", "boolean", None, None, [], "End user's thumbs: yes = up, no = down."),
    ("user_rating", "numeric", 1, 5, [], "End user's star rating."),
)


def create_defaults(apps, schema_editor):
    Project = apps.get_model("projects", "Project")
    ScoreConfig = apps.get_model("feedback", "ScoreConfig")
    for project in Project.objects.all().iterator():
        existing = set(ScoreConfig.objects.filter(project=project).values_list("name", flat=True))
        ScoreConfig.objects.bulk_create(
            ScoreConfig(
                project=project, name=name, data_type=data_type, min_value=low, max_value=high,
                categories=list(categories), description=description,
            )
            for name, data_type, low, high, categories, description in DEFAULTS
            if name not in existing
        )


class Migration(migrations.Migration):
    dependencies = [("feedback", "0001_initial"), ("projects", "0001_initial")]

    operations = [migrations.RunPython(create_defaults, migrations.RunPython.noop)]
