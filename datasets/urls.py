from django.urls import path

from datasets import api

urlpatterns = [
    path("api/v1/datasets", api.DatasetListView.as_view(), name="api-datasets"),
    path("api/v1/datasets/<str:dataset_name>/items", api.DatasetItemsView.as_view(), name="api-dataset-items"),
    path("api/v1/datasets/<str:dataset_name>/export", api.DatasetExportView.as_view(), name="api-dataset-export"),
]
