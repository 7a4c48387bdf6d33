"""Tables get their app's name (a rename: rows, indexes and constraints stay)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('annotation', '0001_initial'),
    ]

    operations = [
        migrations.AlterModelTable(
            name='annotationqueue',
            table=None,
        ),
        migrations.AlterModelTable(
            name='comment',
            table=None,
        ),
        migrations.AlterModelTable(
            name='queueitem',
            table=None,
        ),
        migrations.AlterModelTable(
            name='queuereview',
            table=None,
        ),
    ]
