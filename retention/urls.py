from django.urls import path

from retention import api, views

urlpatterns = [
    path("p/<slug:project_slug>/settings/retention", views.retention_settings, name="retention-settings"),
    path("api/v1/retention", api.RetentionView.as_view(), name="api-retention"),
]
