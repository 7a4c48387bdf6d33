"""Index the spans that used tokens but have no cost (the cost page's "unpriced spans"):
a few per cent of spans, which the page otherwise found by scanning every span of the
project (built concurrently: ingest keeps writing to tracing_span while it is built)."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("tracing", "0007_trace_fold_state"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="span",
            index=models.Index(
                fields=["project", "trace_id"],
                name="span_unpriced",
                condition=models.Q(cost_usd__isnull=True)
                & (models.Q(input_tokens__gt=0) | models.Q(output_tokens__gt=0)),
            ),
        ),
    ]
