"""Index the scoring sweep's scan of recently changed traces (built concurrently: ingest
keeps writing to tracing_trace while it is built)."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("tracing", "0004_explorer_search_indexes"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="trace",
            index=models.Index(fields=["updated_at"], name="trace_updated_at"),
        ),
    ]
