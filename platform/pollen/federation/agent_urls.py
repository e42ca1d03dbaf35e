from django.urls import path

from pollen.federation import agent_apis

_round = "federated-jobs/<int:pk>/rounds/<int:number>"

urlpatterns = [
    path(f"{_round}/claim/", agent_apis.RoundClaimApi.as_view(), name="agent-federated-claim"),
    path(
        f"{_round}/progress/",
        agent_apis.RoundProgressApi.as_view(),
        name="agent-federated-progress",
    ),
    path(f"{_round}/update/", agent_apis.RoundUpdateApi.as_view(), name="agent-federated-update"),
    path(f"{_round}/fail/", agent_apis.RoundFailApi.as_view(), name="agent-federated-fail"),
]
