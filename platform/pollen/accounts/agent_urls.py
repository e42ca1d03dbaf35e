from django.urls import path

from pollen.accounts import agent_apis

urlpatterns = [
    path("heartbeat/", agent_apis.HeartbeatApi.as_view(), name="agent-heartbeat"),
]
