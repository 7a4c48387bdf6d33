# Routes of the alerts app; see README, "Alerts".
from django.urls import path

from alerts import api, views

P = "p/<slug:project_slug>/alerts/"

urlpatterns = [
    path("api/v1/alerts/rules", api.RuleListView.as_view(), name="api-alert-rules"),
    path("api/v1/alerts/events", api.EventListView.as_view(), name="api-alert-events"),
    path(P, views.rule_list, name="alerts-list"),
    path(P + "new/", views.rule_new, name="alerts-new"),
    path(P + "history/", views.history, name="alerts-history"),
    path(P + "states/", views.states_fragment, name="alerts-states"),
    path(P + "<int:rule_id>/", views.rule_detail, name="alerts-rule"),
    path(P + "<int:rule_id>/channels/", views.channel_add, name="alerts-channel-add"),
    path(P + "<int:rule_id>/channels/<int:channel_id>/delete/", views.channel_remove, name="alerts-channel-remove"),
    path(P + "<int:rule_id>/test/", views.rule_test, name="alerts-test"),
    path(P + "<int:rule_id>/secret/", views.secret_rotate, name="alerts-secret"),
    path(P + "<int:rule_id>/delete/", views.rule_delete, name="alerts-delete"),
]
