from django.urls import path

from tracing import pages

urlpatterns = [
    path("p/<slug:project_slug>/settings/privacy", pages.masking_settings, name="tracing-masking-settings"),
]
