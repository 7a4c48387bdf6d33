from django.apps import AppConfig


class EvaluationConfig(AppConfig):
    name = "evaluation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from evaluation import services
        from tracing.signals import traces_changed

        traces_changed.connect(services.traces_changed_received, dispatch_uid="evaluation.traces_changed")
