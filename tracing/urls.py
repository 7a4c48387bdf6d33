from django.urls import path

from tracing import api, pages

urlpatterns = [
    path("p/<slug:project_slug>/settings/privacy", pages.masking_settings, name="tracing-masking-settings"),
    path("api/v1/masking", api.MaskingView.as_view(), name="api-masking"),
]
