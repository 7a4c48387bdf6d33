from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "projects"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Connects the user_login_failed receiver that counts failed log-ins.
        from projects import login_throttle  # noqa: F401
