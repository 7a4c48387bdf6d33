from django.urls import path

from datasets import api, views

urlpatterns = [
    path("api/v1/datasets", api.DatasetListView.as_view(), name="api-datasets"),
    path("api/v1/datasets/<str:dataset_name>/items", api.DatasetItemsView.as_view(), name="api-dataset-items"),
    path("api/v1/datasets/<str:dataset_name>/export", api.DatasetExportView.as_view(), name="api-dataset-export"),
]

P = "p/<slug:project_slug>/"

urlpatterns += [
    path(P + "datasets/", views.dataset_list, name="datasets-list"),
    path(P + "datasets/add/", views.bulk_add, name="datasets-bulk-add"),
    path(P + "datasets/add-trace/<str:trace_id>/", views.add_trace, name="datasets-add-trace"),
    path(P + "datasets/add-queue/<int:queue_id>/", views.add_queue, name="datasets-add-queue"),
    path(P + "datasets/<str:dataset_name>/", views.dataset_detail, name="datasets-detail"),
    path(P + "datasets/<str:dataset_name>/split/", views.dataset_split, name="datasets-split"),
    path(P + "datasets/<str:dataset_name>/upload/", views.dataset_upload, name="datasets-upload"),
]
