from django.urls import path

from scores import api

urlpatterns = [
    path("api/v1/scores", api.ScoreListView.as_view(), name="api-score-list"),
]
