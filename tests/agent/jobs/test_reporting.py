"""A running job's reports: training never waits for the hub, epoch records wait for it.

The hub here is a real HTTP server on a local port whose answer the test switches (503 while
it is "away", 409 once the job was queued again); backoff delays are a few milliseconds.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from pollen_agent.hub_client import HubClient, HubUnavailable, RetryPolicy
from pollen_agent.jobs.reporting import JobLost, JobReporter

FAST = RetryPolicy(seconds=30, first_delay=0.01, max_delay=0.05)


class SwitchableHub:
    """Answers ``status`` (200 with ``body`` when 200); records what it accepted, in order."""

    def __init__(self) -> None:
        self.status = 200
        self.body: dict[str, Any] = {"cancel_requested": False, "status": "running"}
        self.hang = threading.Event()  # set: requests get no answer
        self.attempts: list[tuple[str, Any]] = []
        self.accepted: list[tuple[str, Any]] = []
        self.lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with hub.lock:
                    hub.attempts.append((self.path, payload))
                    status = hub.status
                    if status == 200:
                        hub.accepted.append((self.path, payload))
                while hub.hang.is_set():
                    hub.hang.wait(0.05)
                body = json.dumps(
                    hub.body
                    if status == 200
                    else {"error": {"code": _code(status), "message": "no"}}
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def epochs(self, which: str = "accepted") -> list[int]:
        with self.lock:
            rows = self.accepted if which == "accepted" else self.attempts
            return [p["epoch"] for path, p in rows if path.endswith("/epochs/")]


def _code(status: int) -> str:
    return {409: "job_not_running", 503: "unavailable"}.get(status, "error")


def _wait(condition: Any, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def hub() -> Iterator[SwitchableHub]:
    hub = SwitchableHub()
    yield hub
    hub.hang.clear()
    hub.server.shutdown()
    hub.server.server_close()


def _reporter(hub: SwitchableHub, policy: RetryPolicy = FAST) -> JobReporter:
    return JobReporter(HubClient(hub.url, "job-token", retry=policy), 7, lease_seconds=4)


def test_epoch_records_wait_while_the_hub_is_away_then_arrive_in_order_once(hub):
    hub.status = 503
    with _reporter(hub) as reporter:
        for epoch in (1, 2, 3):
            reporter.outbox.put({"epoch": epoch, "train_loss": 0.5, "attempt": 1})
        _wait(lambda: len(hub.epochs("attempts")) >= 5)  # tried again, and again
        assert hub.epochs() == [] and reporter.outbox.pending() == 3
        hub.status = 200
        reporter.outbox.flush(timeout=10)
    assert hub.epochs() == [1, 2, 3]
    assert reporter.outbox.sent == 3 and not reporter.lost.is_set()


def test_training_does_not_wait_for_a_hub_that_does_not_answer(hub):
    hub.hang.set()
    with _reporter(hub) as reporter:
        started = time.monotonic()
        for step in range(200):
            reporter.report(phase="training", epoch=1, step=step, fraction=0.1)
        reporter.outbox.put({"epoch": 1, "train_loss": 0.5, "attempt": 1})
        assert time.monotonic() - started < 0.5, "reports and records are handed off, not sent"
        hub.hang.clear()


def test_a_job_queued_again_makes_the_old_worker_stop(hub):
    hub.status = 409  # the lease lapsed while the hub was away; the job went back to the queue
    with _reporter(hub) as reporter:
        reporter.outbox.put({"epoch": 3, "train_loss": 0.5, "attempt": 1})
        with pytest.raises(JobLost):
            reporter.outbox.flush(timeout=10)
        assert reporter.lost.is_set() and reporter.should_cancel()


def test_a_progress_answer_that_the_job_is_queued_again_makes_the_worker_stop(hub):
    hub.body = {"cancel_requested": True, "status": "queued"}
    with _reporter(hub) as reporter:
        reporter.report(phase="training", epoch=2, fraction=0.4, force=True)
        _wait(reporter.lost.is_set)
        assert reporter.should_cancel()


def test_a_user_cancel_is_a_cancel_not_a_lost_job(hub):
    hub.body = {"cancel_requested": True, "status": "running"}
    with _reporter(hub) as reporter:
        reporter.report(phase="training", epoch=2, fraction=0.4, force=True)
        _wait(reporter.cancelled.is_set)
        assert not reporter.lost.is_set()


def test_a_hub_away_past_the_retry_time_fails_the_flush_with_a_retryable_error(hub):
    hub.status = 503
    policy = RetryPolicy(seconds=0.3, first_delay=0.01, max_delay=0.05)
    with _reporter(hub, policy) as reporter:
        reporter.outbox.put({"epoch": 1, "train_loss": 0.5, "attempt": 1})
        with pytest.raises(HubUnavailable):
            reporter.outbox.flush(timeout=10)
        with pytest.raises(HubUnavailable):  # and the next epoch's record says so at once
            reporter.outbox.put({"epoch": 2, "train_loss": 0.5, "attempt": 1})


def test_a_record_still_waiting_when_the_job_ends_stops_being_retried(hub):
    """The checkpoint carries it; whoever resumes the job sends it."""
    hub.status = 503
    with _reporter(hub) as reporter:
        reporter.outbox.put({"epoch": 1, "train_loss": 0.5, "attempt": 1})
        _wait(lambda: len(hub.epochs("attempts")) >= 2)
    reporter.outbox._thread.join(timeout=5)
    assert not reporter.outbox._thread.is_alive()
    assert hub.epochs() == []


def test_a_worker_waiting_for_the_hub_stops_as_soon_as_it_hears_the_job_is_queued_again(hub):
    hub.status = 503
    with _reporter(hub, RetryPolicy(seconds=600, first_delay=600, max_delay=600)) as reporter:
        reporter.outbox.put({"epoch": 6, "train_loss": 0.5, "attempt": 1})
        _wait(lambda: len(hub.epochs("attempts")) == 1)  # the record now waits 5 to 10 minutes
        hub.status, hub.body = 200, {"cancel_requested": True, "status": "queued"}
        reporter.report(phase="training", epoch=6, fraction=0.9, force=True)
        with pytest.raises(JobLost):
            reporter.outbox.flush(timeout=10)
    assert hub.epochs() == []
