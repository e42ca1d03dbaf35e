from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission

from pollen.accounts.caller import caller_from_request


class IsSiteAgent(BasePermission):
    """Only a site-agent or job token may call the agent API.

    A job token is narrowed further at authentication (``job_token_scope_check``): it passes
    only on views that declare ``job_scope``, and only for its own job and dataset.
    """

    message = "This endpoint is for site agents. Use a site-agent token."

    def has_permission(self, request: Any, view: Any) -> bool:
        return bool(
            request.user and request.user.is_authenticated and caller_from_request(request).is_agent
        )
