"""Tables get their app's name (a rename: rows, indexes and constraints stay)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('scores', '0001_initial'),
    ]

    operations = [
        migrations.AlterModelTable(
            name='score',
            table=None,
        ),
        migrations.AlterModelTable(
            name='scoreconfig',
            table=None,
        ),
    ]
