"""The agent's only way to talk to the hub: its REST API, with a site or job token."""

from __future__ import annotations

import logging
from typing import Any

import requests

from pollen_agent.errors import AgentError, RetryableError, UserError

logger = logging.getLogger(__name__)


class HubError(AgentError):
    code = "hub_error"


class HubClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update(
            {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        )

    def with_token(self, token: str) -> HubClient:
        return HubClient(self.base_url, token, timeout=self.timeout)

    def fork(self) -> HubClient:
        """The same client on its own HTTP session, for a background thread."""
        client = HubClient(self.base_url, "", timeout=self.timeout)
        client.session.headers.update(self.session.headers)
        return client

    def _url(self, path: str) -> str:
        return f"{self.base_url}/api/v1/{path.lstrip('/')}"

    def request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        try:
            response = self.session.request(
                method, self._url(path), json=json, params=params, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise RetryableError(f"The hub could not be reached: {exc.__class__.__name__}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise RetryableError(f"The hub answered {response.status_code}; will retry.")
        if response.status_code >= 400:
            try:
                err = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                err = {"code": "hub_error", "message": response.text[:200]}
            cls = UserError if response.status_code in {400, 404, 409, 422} else HubError
            raise cls(f"{err.get('message')}", code=err.get("code"))
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, payload: Any = None) -> Any:
        return self.request("POST", path, json=payload)

    def get_all(self, path: str, *, page_size: int = 500) -> list[dict[str, Any]]:
        """Follow pagination to the end."""
        results: list[dict[str, Any]] = []
        page = 1
        while True:
            body = self.get(path, page=page, page_size=page_size)
            results.extend(body["results"])
            if not body.get("next"):
                return results
            page += 1
