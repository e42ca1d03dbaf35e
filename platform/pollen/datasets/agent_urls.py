from django.urls import path

from pollen.datasets import agent_apis

urlpatterns = [
    path(
        "datasets/<int:pk>/ingest-results/",
        agent_apis.IngestResultsApi.as_view(),
        name="agent-ingest-results",
    ),
    path("datasets/<int:pk>/purged/", agent_apis.PurgedApi.as_view(), name="agent-dataset-purged"),
    path(
        "datasets/<int:pk>/training-images/",
        agent_apis.TrainingImageListApi.as_view(),
        name="agent-training-images",
    ),
    path(
        "datasets/<int:pk>/archives/<int:archive_id>/result/",
        agent_apis.ArchiveResultApi.as_view(),
        name="agent-archive-result",
    ),
]
