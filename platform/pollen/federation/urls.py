from django.urls import path

from pollen.federation import apis

urlpatterns = [
    path("federated-jobs/", apis.FederatedJobListApi.as_view(), name="federated-job-list"),
    path(
        "federated-jobs/<int:pk>/",
        apis.FederatedJobDetailApi.as_view(),
        name="federated-job-detail",
    ),
    path(
        "federated-jobs/<int:pk>/accept/",
        apis.FederatedJobAcceptApi.as_view(),
        name="federated-job-accept",
    ),
    path(
        "federated-jobs/<int:pk>/decline/",
        apis.FederatedJobDeclineApi.as_view(),
        name="federated-job-decline",
    ),
    path(
        "federated-jobs/<int:pk>/withdraw/",
        apis.FederatedJobWithdrawApi.as_view(),
        name="federated-job-withdraw",
    ),
    path(
        "federated-jobs/<int:pk>/cancel/",
        apis.FederatedJobCancelApi.as_view(),
        name="federated-job-cancel",
    ),
]
