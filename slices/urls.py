# Routes of the slices app; see README, "Bias slices".
from django.urls import path

from slices import api, views

urlpatterns = [
    path("api/v1/slices", api.SlicesView.as_view(), name="api-slices"),
    path("p/<slug:project_slug>/slices/", views.slices_page, name="slices"),
]
