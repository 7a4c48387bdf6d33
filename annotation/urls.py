from django.urls import path

from annotation import views

_TRACE = "p/<slug:project_slug>/traces/<str:trace_id>"
_QUEUE = "p/<slug:project_slug>/annotate/<int:queue_id>"

urlpatterns = [
    # The trace page's feedback panel (loaded by templates/explorer/trace_detail.html).
    path(f"{_TRACE}/feedback", views.trace_panel, name="annotation-trace-panel"),
    path(f"{_TRACE}/annotate", views.trace_annotate, name="annotation-trace-annotate"),
    path(f"{_TRACE}/comments", views.trace_comment, name="annotation-trace-comment"),
    # Annotation queues
    path("p/<slug:project_slug>/annotate/", views.queue_list, name="annotation-queue-list"),
    path("p/<slug:project_slug>/annotate/new", views.queue_new, name="annotation-queue-new"),
    path("p/<slug:project_slug>/annotate/configs", views.config_list, name="annotation-config-list"),
    path(f"{_QUEUE}/", views.queue_detail, name="annotation-queue-detail"),
    path(f"{_QUEUE}/review", views.queue_review, name="annotation-queue-review"),
    path(f"{_QUEUE}/items/<int:item_id>/", views.queue_item, name="annotation-queue-item"),
    path(f"{_QUEUE}/items/<int:item_id>/submit", views.queue_item_submit, name="annotation-queue-submit"),
    path(f"{_QUEUE}/items/<int:item_id>/skip", views.queue_item_skip, name="annotation-queue-skip"),
    path(f"{_QUEUE}/export.<str:fmt>", views.queue_export, name="annotation-queue-export"),
]
