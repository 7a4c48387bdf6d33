from django.urls import path

from prompts import api, views

P = "p/<slug:project_slug>/prompts/"

urlpatterns = [
    path("api/v1/prompts", api.PromptListView.as_view(), name="api-prompt-list"),
    path("api/v1/prompts/<str:name>", api.PromptFetchView.as_view(), name="api-prompt-fetch"),
    path("api/v1/prompts/<str:name>/versions", api.VersionCreateView.as_view(), name="api-prompt-version-create"),
    path("api/v1/prompts/<str:name>/labels", api.LabelMoveView.as_view(), name="api-prompt-label-move"),
    path(P, views.prompt_list, name="prompt-list"),
    # "new/" before "<name>/"; services reserve the name "new" so the two never collide.
    path(P + "new/", views.prompt_new, name="prompt-new"),
    path(P + "<str:name>/", views.prompt_detail, name="prompt-detail"),
    path(P + "<str:name>/versions/new/", views.version_new, name="prompt-version-new"),
    path(P + "<str:name>/versions/<int:version>/", views.version_detail, name="prompt-version"),
    path(P + "<str:name>/versions/<int:version>/preview", views.version_preview, name="prompt-version-preview"),
    path(P + "<str:name>/labels", views.label_move, name="prompt-label-move"),
    path(P + "<str:name>/diff/", views.version_diff, name="prompt-diff"),
    path(P + "<str:name>/compare/", views.version_compare, name="prompt-compare"),
]
