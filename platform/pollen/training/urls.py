from django.urls import path

from pollen.training import apis
from pollen.zoo.apis import ZooEntryListApi

urlpatterns = [
    path("zoo/", ZooEntryListApi.as_view(), name="zoo-list"),
    path("jobs/", apis.JobListApi.as_view(), name="job-list"),
    path("jobs/<int:pk>/", apis.JobDetailApi.as_view(), name="job-detail"),
    path("jobs/<int:pk>/cancel/", apis.JobCancelApi.as_view(), name="job-cancel"),
    path("jobs/<int:pk>/samples/", apis.JobSamplesApi.as_view(), name="job-samples"),
    path(
        "datasets/<int:pk>/redraw-split/",
        apis.SplitRedrawApi.as_view(),
        name="dataset-split-redraw",
    ),
    path("models/", apis.ModelVersionListApi.as_view(), name="model-version-list"),
    path("models/<int:pk>/", apis.ModelVersionDetailApi.as_view(), name="model-version-detail"),
]
