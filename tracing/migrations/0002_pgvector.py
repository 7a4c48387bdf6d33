from django.db import migrations
from pgvector.django import VectorExtension


class Migration(migrations.Migration):
    # pgvector backs semantic search and the embedding-based scorers; creating it
    # here makes a server without the extension fail at migrate time, loudly.
    dependencies = [("tracing", "0001_initial")]
    operations = [VectorExtension()]
