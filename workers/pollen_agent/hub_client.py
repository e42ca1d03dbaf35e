"""The agent's only way to talk to the hub: its REST API, with a site or job token.

A hub that is away for a while (restarting, being upgraded, a network fault) must cost a
site no work. So a call that fails in a way that waiting can cure (no connection, a
timeout, 502/503/504, 429) is tried again with exponential backoff and jitter, for up to
``POLLEN_AGENT_HUB_RETRY_SECONDS`` (10 minutes by default). An answer that says the request
itself is wrong (4xx) is never retried, and neither is a 500: that is a hub bug, which the
task's own few retries handle.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests

from pollen_agent.errors import AgentError, RetryableError, UserError

logger = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_SECONDS_ENV = "POLLEN_AGENT_HUB_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 600.0
# Answers that mean "not now": a proxy with no hub behind it, a hub starting up, rate limits.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
TRANSIENT_EXCEPTIONS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


class HubError(AgentError):
    code = "hub_error"


class HubUnavailable(RetryableError):
    """The hub could not be reached, or said to come back later: waiting can cure it."""

    code = "hub_unavailable"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _retry_seconds(environ: Mapping[str, str]) -> float:
    raw = environ.get(RETRY_SECONDS_ENV, "").strip()
    if not raw:
        return DEFAULT_RETRY_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise UserError(
            f"{RETRY_SECONDS_ENV} must be a number of seconds, 0 or more (it is {raw!r}).",
            code="invalid_config",
        )
    return seconds


@dataclass(frozen=True)
class RetryPolicy:
    """How long, and how often, to try the hub again after a failure that waiting can cure.

    Delays double from ``first_delay`` up to ``max_delay``, each drawn at random from the
    upper half of its step, so that many agents coming back after one outage do not all
    call at the same instant. The last try happens when ``seconds`` have passed.
    """

    seconds: float = DEFAULT_RETRY_SECONDS
    first_delay: float = 0.5
    max_delay: float = 30.0
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    random: Callable[[], float] = field(default=random.random, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RetryPolicy:
        return cls(seconds=_retry_seconds(os.environ if environ is None else environ))

    def delay(self, attempt: int) -> float:
        """The wait after the ``attempt``-th failure (0-based), with jitter."""
        step = min(self.max_delay, self.first_delay * 2 ** min(attempt, 32))
        return step / 2 + self.random() * step / 2

    def call(self, fn: Callable[[], T], *, what: str) -> T:
        """``fn()``, tried again on HubUnavailable until ``seconds`` have passed."""
        deadline = self.clock() + self.seconds
        attempt = 0
        while True:
            try:
                return fn()
            except HubUnavailable as exc:
                left = deadline - self.clock()
                if left <= 0:
                    raise HubUnavailable(
                        f"{exc.message} Tried again for {self.seconds:.0f} seconds; "
                        "check that the hub is running and that this site can reach it."
                    ) from exc
                wait = min(max(self.delay(attempt), exc.retry_after or 0.0), left)
                # The first failure is worth a warning; the rest of an outage only at INFO.
                level = logging.WARNING if attempt == 0 else logging.INFO
                logger.log(level, "%s: %s Trying again in %.1f s.", what, exc.message, wait)
                self.sleep(wait)
                attempt += 1


def _retry_after(response: requests.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None  # an HTTP date: rare from our hub, and the backoff covers it


class HubClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy.from_env()
        self.session = requests.Session()
        self.session.headers.update(
            {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        )

    def with_token(self, token: str) -> HubClient:
        return HubClient(self.base_url, token, timeout=self.timeout, retry=self.retry)

    def fork(self) -> HubClient:
        """The same client on its own HTTP session, for a background thread."""
        client = HubClient(self.base_url, "", timeout=self.timeout, retry=self.retry)
        client.session.headers.update(self.session.headers)
        return client

    def _url(self, path: str) -> str:
        return f"{self.base_url}/api/v1/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        retry: bool = True,
    ) -> Any:
        """One call to the hub; with ``retry``, tried again while the hub is unavailable.

        Periodic calls (heartbeats, progress) pass ``retry=False``: their next beat is the retry.
        """

        def once() -> Any:
            return self._request_once(method, path, json=json, params=params)

        if not retry or self.retry.seconds <= 0:
            return once()
        return self.retry.call(once, what=f"{method} {path}")

    def _request_once(
        self, method: str, path: str, *, json: Any, params: dict[str, Any] | None
    ) -> Any:
        try:
            response = self.session.request(
                method, self._url(path), json=json, params=params, timeout=self.timeout
            )
        except TRANSIENT_EXCEPTIONS as exc:
            raise HubUnavailable(
                f"The hub could not be reached ({exc.__class__.__name__})."
            ) from exc
        except requests.RequestException as exc:
            raise RetryableError(f"The hub could not be reached: {exc.__class__.__name__}") from exc
        if response.status_code in RETRY_STATUSES:
            raise HubUnavailable(
                f"The hub answered {response.status_code}.", retry_after=_retry_after(response)
            )
        if response.status_code >= 500:
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

    def post(self, path: str, payload: Any = None, *, retry: bool = True) -> Any:
        return self.request("POST", path, json=payload, retry=retry)

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
