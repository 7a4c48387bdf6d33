from django.apps import AppConfig


class DriftConfig(AppConfig):
    name = "drift"
    default_auto_field = "django.db.models.BigAutoField"
