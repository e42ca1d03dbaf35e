from django.urls import path

from pollen.marketplace import agent_apis
from pollen.marketplace.work import WORK_KINDS

urlpatterns = [
    route
    for kind in WORK_KINDS
    for route in (
        path(
            f"marketplace/{kind}/<int:pk>/claim/",
            agent_apis.claim_view(kind).as_view(),
            name=f"agent-marketplace-{kind}-claim",
        ),
        path(
            f"marketplace/{kind}/<int:pk>/renew/",
            agent_apis.renew_view(kind).as_view(),
            name=f"agent-marketplace-{kind}-renew",
        ),
        path(
            f"marketplace/{kind}/<int:pk>/complete/",
            agent_apis.COMPLETE_VIEWS[kind].as_view(),
            name=f"agent-marketplace-{kind}-complete",
        ),
        path(
            f"marketplace/{kind}/<int:pk>/fail/",
            agent_apis.fail_view(kind).as_view(),
            name=f"agent-marketplace-{kind}-fail",
        ),
    )
]
