from django.urls import path

from evaluation import views

urlpatterns = [
    # Settings of the background evaluators and the LLM judge (admins).
    path("p/<slug:project_slug>/settings/judge", views.judge_settings, name="evaluation-judge-settings"),
    path("p/<slug:project_slug>/settings/evaluators", views.evaluator_settings, name="evaluation-evaluator-settings"),
    path("p/<slug:project_slug>/settings/evaluators/rescore", views.evaluator_rescore,
         name="evaluation-evaluator-rescore"),
    # The cheap-scoring backlog and the project's policy for it (every role reads, admins change).
    path("p/<slug:project_slug>/settings/scoring", views.backlog_settings, name="evaluation-backlog-settings"),
]
