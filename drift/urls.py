# Routes of the drift app; see README, "Drift".
from django.urls import path

from drift import api, views

P = "p/<slug:project_slug>/"

urlpatterns = [
    path("api/v1/drift", api.DriftView.as_view(), name="api-drift"),
    path(P + "drift/", views.drift_page, name="drift"),
]
