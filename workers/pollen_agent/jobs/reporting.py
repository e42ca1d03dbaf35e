"""Progress reporting for a running job: progress, a lease-renewing heartbeat, the cancel flag,
and an outbox that delivers epoch records in order even across a hub outage.

Training never waits for the hub. Progress is a snapshot that a background thread sends (a
lost one is replaced by the next); epoch records are facts that must arrive, each once, so
they queue in the outbox until the hub takes them.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from typing import Any

from pollen_agent.errors import AgentError, RetryableError
from pollen_agent.hub_client import HubClient
from pollen_agent.open_maps import JsonRecord
from pollen_contracts.contract import ContractError
from pollen_contracts.reports import EpochRecord, JobProgress

logger = logging.getLogger(__name__)

# Answers meaning the job is no longer this worker's: another worker claimed it (our token was
# revoked), or the hub put it back in the queue after our lease lapsed. Stop without a word.
LOST_CODES = frozenset(
    {"token_revoked", "token_expired", "invalid_token", "job_not_found", "job_not_running"}
)


class JobLost(Exception):
    """Another worker took the job over (our lease lapsed): stop without reporting."""


class _Closed(Exception):
    """The job ended while a record was waiting for the hub: the checkpoint keeps it."""


class EpochOutbox:
    """Epoch records waiting for the hub, sent in order by a background thread.

    The client retries while the hub is unreachable (``POLLEN_AGENT_HUB_RETRY_SECONDS``),
    so records pile up here during an outage and go, oldest first, once it is back. The hub
    stores each (job, epoch) once, so a record sent twice does no harm. The records also
    travel inside each checkpoint: a worker that dies with records still queued loses none,
    since the next one resumes that checkpoint and sends them.
    """

    def __init__(self, hub: HubClient, job_id: int, *, on_lost: Any = None) -> None:
        self._closing = threading.Event()
        # Our own client: its waits between tries end as soon as the job does.
        self.hub = hub.fork()
        self.hub.retry = dataclasses.replace(hub.retry, sleep=self._sleep)
        self.path = f"agent/jobs/{job_id}/epochs/"
        self.on_lost = on_lost
        self.lost = False
        self.error: AgentError | None = None
        self.sent = 0
        self._pending: collections.deque[JsonRecord] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"job-{job_id}-epochs", daemon=True)
        self._thread.start()

    def put(self, record: JsonRecord) -> None:
        self.raise_if_failed()
        with self._cond:
            self._pending.append(record)
            self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def raise_if_failed(self) -> None:
        if self.lost:
            raise JobLost()
        if self.error is not None:
            raise self.error

    def flush(self, timeout: float | None = None) -> None:
        """Wait until the hub has every record; raise JobLost or the error that stopped sending."""
        with self._cond:
            self._cond.wait_for(
                lambda: not self._pending or self.lost or self.error is not None, timeout
            )
            left = len(self._pending)
        self.raise_if_failed()
        if left:
            raise RetryableError(f"{left} epoch records are still waiting for the hub.")

    def abandon(self) -> None:
        """The job is no longer this worker's: stop sending, and stop anyone waiting."""
        with self._cond:
            self.lost = True
            self._cond.notify_all()
        self._closing.set()  # cuts a wait between tries short

    def close(self) -> None:
        self._closing.set()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _sleep(self, seconds: float) -> None:
        if self._closing.wait(seconds):
            raise _Closed()

    def _next(self) -> JsonRecord | None:
        with self._cond:
            self._cond.wait_for(lambda: self._pending or self._closed)
            return self._pending[0] if self._pending else None

    def _run(self) -> None:
        while (record := self._next()) is not None:
            try:
                self.hub.post(self.path, EpochRecord.from_dict(record).to_dict())
            except _Closed:
                return
            except AgentError as exc:
                self._stop_sending(exc)
                return
            with self._cond:
                self._pending.popleft()
                self.sent += 1
                self._cond.notify_all()

    def _stop_sending(self, exc: AgentError) -> None:
        with self._cond:
            if exc.code in LOST_CODES:
                self.lost = True
            else:
                # Given up after the retry time, or refused: the checkpoint keeps the records.
                logger.warning("epoch records could not be sent: %s", exc.message)
                self.error = exc
            self._cond.notify_all()
        if self.lost and self.on_lost is not None:
            self.on_lost()


class JobReporter:
    """Sends progress to the hub about once a second and keeps the job's lease alive.

    A background thread sends the latest progress (which renews the lease) every quarter
    lease, and sooner when the training loop has news; the training loop never waits for
    the hub. The cancel flag that comes back is checked every batch.
    """

    def __init__(
        self, hub: HubClient, job_id: int, *, lease_seconds: int, min_interval: float = 1.0
    ) -> None:
        self.hub = hub.fork()  # its own HTTP session, used only by the background thread
        self.job_id = job_id
        self.min_interval = min_interval
        self.heartbeat_interval = max(1.0, lease_seconds / 4)
        self.cancelled = threading.Event()
        self.lost = threading.Event()
        self.outbox = EpochOutbox(hub, job_id, on_lost=self._lose)
        self._last_sent = 0.0
        self._progress: JsonRecord = {"phase": "loading", "fraction": 0.0}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._reachable = True
        self._thread = threading.Thread(
            target=self._beat, name=f"job-{job_id}-heartbeat", daemon=True
        )
        self.started = time.monotonic()

    def __enter__(self) -> JobReporter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._wake.set()
        self.outbox.close()
        self._thread.join(timeout=5)

    def _lose(self) -> None:
        self.lost.set()
        self.cancelled.set()
        self.outbox.abandon()  # a flush waiting for the hub must not wait any longer

    def _send(self, progress: JsonRecord) -> None:
        try:
            # Not retried: the next beat is the retry, and it carries newer progress.
            body = JobProgress.from_dict(progress).to_dict()
            answer = self.hub.post(f"agent/jobs/{self.job_id}/progress/", body, retry=False)
        except ContractError as exc:  # a bug in this agent: say so, keep the heartbeat going
            logger.error("job %s: progress not sent, it breaks the contract: %s", self.job_id, exc)
            return
        except AgentError as exc:
            if exc.code in LOST_CODES:
                self._lose()
            elif self._reachable:
                logger.warning("progress report for job %s failed: %s", self.job_id, exc)
            self._reachable = False
            return
        if not self._reachable:
            logger.info("the hub answers again; job %s reports progress", self.job_id)
        self._reachable = True
        answer = answer or {}
        if answer.get("status", "running") != "running":
            # Queued again after our lease lapsed (the hub heard nothing from us for a while):
            # another worker will resume the checkpoint, so this one must stop.
            self._lose()
        elif answer.get("cancel_requested"):
            self.cancelled.set()

    def _beat(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.heartbeat_interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            with self._lock:
                progress = dict(self._progress)
                self._last_sent = time.monotonic()
            self._send(progress)

    def report(self, *, force: bool = False, **progress: Any) -> None:
        """Record progress; the background thread sends it (at most once a second)."""
        with self._lock:
            self._progress = {k: v for k, v in progress.items() if v is not None}
            due = force or time.monotonic() - self._last_sent >= self.min_interval
        if due:
            self._wake.set()

    def should_cancel(self) -> bool:
        return self.cancelled.is_set()


def eta(fraction: float, started: float) -> float | None:
    """Seconds left, from the pace so far (None until there is a pace to go by)."""
    elapsed = time.monotonic() - started
    if fraction <= 0.01 or elapsed < 1:
        return None
    return max(0.0, elapsed * (1 - fraction) / fraction)
