from django.apps import AppConfig


class FeedbackConfig(AppConfig):
    name = "feedback"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from feedback import services
        from tracing.signals import traces_changed

        traces_changed.connect(services.traces_changed_received, dispatch_uid="feedback.traces_changed")
