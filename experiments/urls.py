from django.urls import path

from experiments import api, views

urlpatterns = [
    path("api/v1/experiments", api.ExperimentListView.as_view(), name="api-experiments"),
    path("api/v1/experiments/<int:experiment_id>", api.ExperimentDetailView.as_view(), name="api-experiment"),
    path("api/v1/experiments/<int:experiment_id>/cancel", api.ExperimentCancelView.as_view(),
         name="api-experiment-cancel"),
    path("api/v1/experiments/<int:experiment_id>/results", api.ExperimentResultsView.as_view(),
         name="api-experiment-results"),
]

P = "p/<slug:project_slug>/"

urlpatterns += [
    path(P + "experiments/", views.experiment_list, name="experiments-list"),
    path(P + "experiments/compare/", views.experiment_compare, name="experiments-compare"),
    path(P + "experiments/<int:experiment_id>/", views.experiment_detail, name="experiments-detail"),
    path(P + "experiments/<int:experiment_id>/cancel/", views.experiment_cancel, name="experiments-cancel"),
]
