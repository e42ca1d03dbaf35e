"""Run a real site agent (a separate process, no Django) against a live hub in tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def wait_until(
    predicate: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.1
) -> Any:
    """Poll a condition with a deadline (tests never sleep a fixed time)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            result = predicate()
            if result:
                return result
        except AssertionError as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}: {last!r}")
        time.sleep(interval)


@dataclass
class AgentProcess:
    config_path: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    sites: dict[str, dict[str, Any]] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def kill_hard(self) -> None:
        """SIGKILL the whole agent (both workers), as a crash would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


def broker_settings() -> dict[str, Any]:
    from django.conf import settings

    broker = settings.CELERY_BROKER_URL
    return {"broker_url": broker, "result_backend": settings.CELERY_RESULT_BACKEND}


def start_agent(
    *,
    hub_url: str,
    sites: dict[str, dict[str, Any]],
    tmp: Path,
    queues: str = "all",
    extra_env: dict[str, str] | None = None,
    broker: dict[str, Any] | None = None,
) -> AgentProcess:
    """sites: slug -> {"token": plaintext, "storage": {...}}; broker: default the hub's settings."""
    config = {
        "hub_url": hub_url,
        **(broker if broker is not None else broker_settings()),
        "work_dir": str(tmp / "agent-work"),
        "sites": [
            {"slug": slug, "token": s["token"], "storage": s["storage"]}
            for slug, s in sites.items()
        ],
    }
    config_path = tmp / f"agent-{int(time.time() * 1000)}.json"
    config_path.write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(
        {
            "PYTHONPATH": str(REPO / "workers"),
            "POLLEN_AGENT_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra_env or {})
    log_path = config_path.with_suffix(".log")
    log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pollen_agent",
            "worker",
            "--config",
            str(config_path),
            "--queues",
            queues,
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return AgentProcess(config_path=config_path, process=process, log_path=log_path, sites=sites)


def wait_agent_ready(agent: AgentProcess, slug: str, *, timeout: float = 90) -> None:
    from pollen.core.dispatch import ask_site_agent
    from pollen.core.errors import ServiceUnavailable
    from pollen_contracts import tasks

    def answered() -> bool:
        if agent.process.poll() is not None:
            raise RuntimeError(f"the agent exited with {agent.process.returncode}:\n{agent.log()}")
        try:
            return bool(ask_site_agent(slug, tasks.PING, {"site": slug}, timeout=2))
        except ServiceUnavailable:
            return False

    wait_until(answered, timeout=timeout, what=f"the agent of {slug} to answer")


def purge_site_queues(slugs: list[str]) -> None:
    """Drop messages left by earlier tests on these sites' queues."""
    from pollen.celery import app
    from pollen_contracts.queues import site_queues

    with app.connection_for_write() as conn:
        for slug in slugs:
            for queue in site_queues(slug):
                with contextlib.suppress(Exception):
                    conn.default_channel.queue_purge(queue)


def iter_close(agent: AgentProcess) -> Iterator[AgentProcess]:
    try:
        yield agent
    finally:
        agent.stop()
