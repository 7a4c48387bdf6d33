from django.urls import path

from feedback import api, views

_TRACE = "p/<slug:project_slug>/traces/<str:trace_id>"
_QUEUE = "p/<slug:project_slug>/annotate/<int:queue_id>"

urlpatterns = [
    # API
    path("api/v1/scores", api.ScoreListView.as_view(), name="api-score-list"),
    path("api/v1/feedback", api.FeedbackView.as_view(), name="api-feedback"),
    # The trace page's annotation panel (included by templates/tracing/*).
    path(f"{_TRACE}/feedback", views.trace_panel, name="feedback-trace-panel"),
    path(f"{_TRACE}/annotate", views.trace_annotate, name="feedback-trace-annotate"),
    path(f"{_TRACE}/comments", views.trace_comment, name="feedback-trace-comment"),
    # Annotation queues
    path("p/<slug:project_slug>/annotate/", views.queue_list, name="feedback-queue-list"),
    path("p/<slug:project_slug>/annotate/new", views.queue_new, name="feedback-queue-new"),
    path("p/<slug:project_slug>/annotate/configs", views.config_list, name="feedback-config-list"),
    path(f"{_QUEUE}/", views.queue_detail, name="feedback-queue-detail"),
    path(f"{_QUEUE}/review", views.queue_review, name="feedback-queue-review"),
    path(f"{_QUEUE}/items/<int:item_id>/", views.queue_item, name="feedback-queue-item"),
    path(f"{_QUEUE}/items/<int:item_id>/submit", views.queue_item_submit, name="feedback-queue-submit"),
    path(f"{_QUEUE}/items/<int:item_id>/skip", views.queue_item_skip, name="feedback-queue-skip"),
    path(f"{_QUEUE}/export.<str:fmt>", views.queue_export, name="feedback-queue-export"),
    # LLM-as-judge settings (admins)
    path("p/<slug:project_slug>/settings/judge", views.judge_settings, name="feedback-judge-settings"),
    path("p/<slug:project_slug>/settings/evaluators", views.evaluator_settings, name="feedback-evaluator-settings"),
    path("p/<slug:project_slug>/settings/evaluators/rescore", views.evaluator_rescore,
         name="feedback-evaluator-rescore"),
]
