from django.urls import path

from experiments import api

urlpatterns = [
    path("api/v1/experiments", api.ExperimentListView.as_view(), name="api-experiments"),
    path("api/v1/experiments/<int:experiment_id>", api.ExperimentDetailView.as_view(), name="api-experiment"),
    path("api/v1/experiments/<int:experiment_id>/cancel", api.ExperimentCancelView.as_view(),
         name="api-experiment-cancel"),
]
