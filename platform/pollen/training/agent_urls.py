from django.urls import path

from pollen.training import agent_apis

urlpatterns = [
    path("jobs/<int:pk>/claim/", agent_apis.ClaimApi.as_view(), name="agent-job-claim"),
    path("jobs/<int:pk>/progress/", agent_apis.ProgressApi.as_view(), name="agent-job-progress"),
    path("jobs/<int:pk>/epochs/", agent_apis.EpochApi.as_view(), name="agent-job-epoch"),
    path(
        "jobs/<int:pk>/training-start/",
        agent_apis.TrainingStartApi.as_view(),
        name="agent-job-training-start",
    ),
    path("jobs/<int:pk>/complete/", agent_apis.CompleteApi.as_view(), name="agent-job-complete"),
    path("jobs/<int:pk>/fail/", agent_apis.FailApi.as_view(), name="agent-job-fail"),
]
