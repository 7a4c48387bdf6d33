from django.apps import AppConfig


class ScoresConfig(AppConfig):
    name = "scores"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from projects.signals import project_created
        from scores import services

        project_created.connect(services.project_created_received, dispatch_uid="scores.project_created")
