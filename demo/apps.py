from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The seeded support-bot story (`manage.py seed_demo`): top of the layers, it
    writes through every app's services."""

    name = "demo"
    default_auto_field = "django.db.models.BigAutoField"
