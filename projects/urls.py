from django.contrib.auth import views as auth_views
from django.urls import path

from projects import views

P = "p/<slug:project_slug>/"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(P, views.project_root, name="project-root"),
    path(P + "settings/", views.settings_page, name="project-settings"),
    path(P + "settings/keys/", views.key_create, name="settings-key-create"),
    path(P + "settings/keys/<int:key_id>/revoke/", views.key_revoke, name="settings-key-revoke"),
    path(P + "settings/members/", views.member_create, name="settings-member-add"),
    path(P + "settings/members/<int:membership_id>/role/", views.member_role, name="settings-member-role"),
    path(P + "settings/members/<int:membership_id>/remove/", views.member_remove, name="settings-member-remove"),
    path(P + "settings/name/", views.project_name, name="settings-project-name"),
]
