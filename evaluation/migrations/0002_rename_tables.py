"""Tables get their app's name (a rename: rows, indexes and constraints stay)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('evaluation', '0001_initial'),
    ]

    operations = [
        migrations.AlterModelTable(
            name='evaluatorsettings',
            table=None,
        ),
        migrations.AlterModelTable(
            name='judgecall',
            table=None,
        ),
        migrations.AlterModelTable(
            name='judgesettings',
            table=None,
        ),
        migrations.AlterModelTable(
            name='traceembedding',
            table=None,
        ),
        migrations.AlterModelTable(
            name='tracescoring',
            table=None,
        ),
    ]
