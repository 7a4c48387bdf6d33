"""Encrypt alert signing secrets and channel targets at rest (config/secret_box.py).

Existing rows are transformed in place: each plain value is encrypted into the new
column, then the plain column is dropped. Reversible (decrypts back) while the key is
the same."""

from django.db import migrations, models

import alerts.models
from config import secret_box

SECRET_PURPOSE = "alerts.signing_secret"  # as in alerts/models.py at the time of writing
TARGET_PURPOSE = "alerts.channel_target"


def encrypt_rows(apps, schema_editor):
    AlertRule = apps.get_model("alerts", "AlertRule")
    AlertChannel = apps.get_model("alerts", "AlertChannel")
    for rule in AlertRule.objects.only("pk", "secret").iterator():
        AlertRule.objects.filter(pk=rule.pk).update(
            secret_encrypted=secret_box.encrypt(rule.secret, purpose=SECRET_PURPOSE))
    for channel in AlertChannel.objects.only("pk", "target").iterator():
        AlertChannel.objects.filter(pk=channel.pk).update(
            target_encrypted=secret_box.encrypt(channel.target, purpose=TARGET_PURPOSE))


def decrypt_rows(apps, schema_editor):
    AlertRule = apps.get_model("alerts", "AlertRule")
    AlertChannel = apps.get_model("alerts", "AlertChannel")
    for rule in AlertRule.objects.only("pk", "secret_encrypted").iterator():
        AlertRule.objects.filter(pk=rule.pk).update(
            secret=secret_box.decrypt(rule.secret_encrypted, purpose=SECRET_PURPOSE) or alerts.models.new_secret())
    for channel in AlertChannel.objects.only("pk", "target_encrypted").iterator():
        AlertChannel.objects.filter(pk=channel.pk).update(
            target=secret_box.decrypt(channel.target_encrypted, purpose=TARGET_PURPOSE) or "")


class Migration(migrations.Migration):

    dependencies = [
        ("alerts", "0001_initial"),
    ]

    operations = [
        migrations.AddField(model_name="alertrule", name="secret_encrypted",
                            field=models.TextField(default="")),
        migrations.AddField(model_name="alertchannel", name="target_encrypted",
                            field=models.TextField(default="")),
        migrations.RunPython(encrypt_rows, decrypt_rows, elidable=False),
        migrations.RemoveField(model_name="alertrule", name="secret"),
        migrations.RemoveField(model_name="alertchannel", name="target"),
        migrations.AlterField(model_name="alertrule", name="secret_encrypted",
                              field=models.TextField(default=alerts.models.new_secret_encrypted)),
        migrations.AlterField(model_name="alertchannel", name="target_encrypted",
                              field=models.TextField()),
    ]
