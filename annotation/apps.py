from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    name = "annotation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from annotation.selectors import in_a_queue
        from evaluation.backlog import protector_register

        # Traces in a review queue are scored whatever the project's backlog policy says.
        protector_register("annotation_queue", in_a_queue)
