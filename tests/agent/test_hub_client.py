"""The agent's hub client tries again what waiting can cure, for a set time, and nothing else.

The hub here is a real HTTP server on a local port that answers from a script; time is a
fake clock whose ``sleep`` only moves it forward, so no test waits for a backoff.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from pollen_agent.errors import RetryableError, UserError
from pollen_agent.hub_client import (
    DEFAULT_RETRY_SECONDS,
    HubClient,
    HubError,
    HubUnavailable,
    RetryPolicy,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds

    def policy(self, seconds: float = 600, **kwargs: Any) -> RetryPolicy:
        return RetryPolicy(seconds=seconds, clock=self.clock, sleep=self.sleep, **kwargs)


class ScriptedHub:
    """Answers each request with the next (status, headers) of its script; the last repeats."""

    def __init__(self, script: list[tuple[int, dict[str, str]]]) -> None:
        self.script = script
        self.requests: list[str] = []
        self.hang_first = threading.Event()  # set: the first request gets no answer in time
        self.release = threading.Event()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer()

            def _answer(self) -> None:
                hub.requests.append(self.path)
                if hub.hang_first.is_set() and len(hub.requests) == 1:
                    hub.release.wait(10)
                    return
                status, headers = hub.script[min(len(hub.requests) - 1, len(hub.script) - 1)]
                body = json.dumps(
                    {"ok": True}
                    if status < 400
                    else {"error": {"code": f"code_{status}", "message": f"answer {status}"}}
                ).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted() -> Iterator[Any]:
    hubs: list[ScriptedHub] = []

    def make(*statuses: int | tuple[int, dict[str, str]]) -> ScriptedHub:
        hub = ScriptedHub([s if isinstance(s, tuple) else (s, {}) for s in statuses])
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.close()


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # nobody listens once closed


def test_unavailable_answers_are_retried_with_growing_jittered_delays(scripted):
    hub = scripted(503, 502, 504, 429, 503, 200)
    clock = FakeClock()
    client = HubClient(hub.url, "t", retry=clock.policy(first_delay=1, max_delay=4))
    assert client.post("agent/jobs/1/epochs/", {"epoch": 3}) == {"ok": True}
    assert len(hub.requests) == 6
    steps = [1, 2, 4, 4, 4]  # doubling, capped at max_delay
    assert len(clock.sleeps) == len(steps)
    for slept, step in zip(clock.sleeps, steps, strict=True):
        assert step / 2 <= slept <= step


def test_jitter_spreads_the_agents_that_come_back_after_one_outage():
    draws = iter([0.0, 0.5, 1.0])
    policy = RetryPolicy(first_delay=2, max_delay=60, random=lambda: next(draws))
    assert [policy.delay(3) for _ in range(3)] == [8.0, 12.0, 16.0]


def test_an_unreachable_hub_is_retried_until_the_configured_time_then_given_up():
    clock = FakeClock()
    client = HubClient(_closed_port_url(), "t", retry=clock.policy(seconds=60, max_delay=8))
    with pytest.raises(HubUnavailable) as raised:
        client.post("agent/jobs/1/epochs/", {"epoch": 3})
    assert clock.now == pytest.approx(60), "the whole time, and not a second more"
    assert len(clock.sleeps) > 5
    assert "Tried again for 60 seconds" in raised.value.message
    assert isinstance(raised.value, RetryableError), "the task may still retry it later"


def test_the_hub_coming_back_within_the_time_loses_nothing(scripted):
    hub = scripted(*([503] * 20), 200)
    clock = FakeClock()
    client = HubClient(hub.url, "t", retry=clock.policy(seconds=600))
    assert client.post("agent/jobs/1/epochs/", {"epoch": 3}) == {"ok": True}
    assert len(hub.requests) == 21 and clock.now < 600


@pytest.mark.parametrize("status", [400, 404, 409, 422])
def test_a_user_error_is_never_retried(scripted, status):
    hub = scripted(status, 200)
    clock = FakeClock()
    client = HubClient(hub.url, "t", retry=clock.policy())
    with pytest.raises(UserError) as raised:
        client.post("agent/jobs/1/epochs/", {"epoch": 3})
    assert raised.value.code == f"code_{status}"
    assert len(hub.requests) == 1 and clock.sleeps == []


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_is_never_retried(scripted, status):
    hub = scripted(status, 200)
    clock = FakeClock()
    with pytest.raises(HubError):
        HubClient(hub.url, "t", retry=clock.policy()).post("agent/jobs/1/epochs/")
    assert len(hub.requests) == 1 and clock.sleeps == []


def test_a_hub_bug_is_not_retried_here(scripted):
    hub = scripted(500, 200)
    clock = FakeClock()
    with pytest.raises(RetryableError) as raised:
        HubClient(hub.url, "t", retry=clock.policy()).post("agent/jobs/1/epochs/")
    assert not isinstance(raised.value, HubUnavailable)
    assert len(hub.requests) == 1 and clock.sleeps == []


def test_retry_after_is_respected(scripted):
    hub = scripted((429, {"Retry-After": "7"}), 200)
    clock = FakeClock()
    HubClient(hub.url, "t", retry=clock.policy(first_delay=1)).post("agent/jobs/1/progress/")
    assert clock.sleeps == [7.0]


def test_a_timeout_is_retried(scripted):
    hub = scripted(200)
    hub.hang_first.set()
    clock = FakeClock()
    client = HubClient(hub.url, "t", timeout=0.2, retry=clock.policy())
    assert client.get("agent/jobs/1/") == {"ok": True}
    assert len(hub.requests) == 2 and len(clock.sleeps) == 1


def test_a_periodic_call_is_tried_once(scripted):
    hub = scripted(503, 200)
    clock = FakeClock()
    with pytest.raises(HubUnavailable):
        HubClient(hub.url, "t", retry=clock.policy()).post("agent/heartbeat/", retry=False)
    assert len(hub.requests) == 1 and clock.sleeps == []


def test_clients_for_a_job_or_a_thread_keep_the_policy(scripted):
    clock = FakeClock()
    client = HubClient("http://hub.test", "t", retry=clock.policy(seconds=42))
    assert client.with_token("job").retry.seconds == 42
    assert client.fork().retry.seconds == 42


def test_the_retry_time_comes_from_the_environment():
    assert DEFAULT_RETRY_SECONDS >= 600
    assert RetryPolicy.from_env({}).seconds == DEFAULT_RETRY_SECONDS
    assert RetryPolicy.from_env({"POLLEN_AGENT_HUB_RETRY_SECONDS": "900"}).seconds == 900
    assert RetryPolicy.from_env({"POLLEN_AGENT_HUB_RETRY_SECONDS": "0"}).seconds == 0
    for bad in ("ten minutes", "-5", "inf", "nan"):
        with pytest.raises(UserError, match="POLLEN_AGENT_HUB_RETRY_SECONDS"):
            RetryPolicy.from_env({"POLLEN_AGENT_HUB_RETRY_SECONDS": bad})
