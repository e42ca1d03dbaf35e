"""Progress reporting for a running job: throttled reports, a lease-renewing heartbeat, the cancel flag."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from pollen_agent.errors import AgentError
from pollen_agent.hub_client import HubClient

logger = logging.getLogger(__name__)


class JobReporter:
    """Sends progress to the hub at most once a second and keeps the job's lease alive.

    A background thread renews the lease even while a step takes long (feature
    extraction, a slow epoch); the cancel flag it brings back is checked every batch.
    """

    def __init__(
        self, hub: HubClient, job_id: int, *, lease_seconds: int, min_interval: float = 1.0
    ) -> None:
        self.hub = hub
        self.job_id = job_id
        self.min_interval = min_interval
        self.heartbeat_interval = max(1.0, lease_seconds / 4)
        self.cancelled = threading.Event()
        self.lost = threading.Event()
        self._last_sent = 0.0
        self._progress: dict[str, Any] = {"phase": "loading", "fraction": 0.0}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"job-{job_id}-heartbeat", daemon=True
        )
        self.started = time.monotonic()

    def __enter__(self) -> JobReporter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _send(self, progress: dict[str, Any]) -> None:
        try:
            answer = self.hub.post(f"agent/jobs/{self.job_id}/progress/", progress)
        except AgentError as exc:
            # A revoked job token means another worker took the job over: stop quietly.
            if getattr(exc, "code", "") in {"token_revoked", "invalid_token", "job_not_found"}:
                self.lost.set()
                self.cancelled.set()
            logger.warning("progress report for job %s failed: %s", self.job_id, exc)
            return
        if answer and answer.get("cancel_requested"):
            self.cancelled.set()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_interval):
            with self._lock:
                progress = dict(self._progress)
            self._send(progress)

    def report(self, *, force: bool = False, **progress: Any) -> None:
        with self._lock:
            self._progress = {k: v for k, v in progress.items() if v is not None}
            now = time.monotonic()
            due = force or now - self._last_sent >= self.min_interval
            if due:
                self._last_sent = now
                snapshot = dict(self._progress)
        if due:
            self._send(snapshot)

    def should_cancel(self) -> bool:
        return self.cancelled.is_set()


def eta(fraction: float, started: float) -> float | None:
    """Seconds left, from the pace so far (None until there is a pace to go by)."""
    elapsed = time.monotonic() - started
    if fraction <= 0.01 or elapsed < 1:
        return None
    return max(0.0, elapsed * (1 - fraction) / fraction)
