"""`make run`: one component's death never takes another down.

Starts the embedded default exactly as `make run` does (scripts/run_embedded.sh) on a free port with
a throwaway state folder, kills the agent (then the hub's clock) with SIGKILL, and checks that the
hub keeps answering and that a new agent (and clock) process appears. Everything started here is
stopped by process id at the end.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
START_DEADLINE_S = 240
RESTART_DEADLINE_S = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _parents() -> dict[int, int]:
    """pid -> parent pid for every process on this machine (from /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command name may hold spaces and parentheses; the fields after its ')' do not.
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def _descendants(root: int) -> set[int]:
    parents = _parents()
    found: set[int] = set()
    frontier = {root}
    while frontier:
        children = {pid for pid, parent in parents.items() if parent in frontier}
        frontier = children - found
        found |= children
    return found


def _cmdline(pid: int) -> list[str]:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def _running(pid: int) -> bool:
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _is_agent(pid: int) -> bool:
    """The agent's main process (`python -m pollen_agent worker`), not its Celery workers."""
    args = _cmdline(pid)
    return "pollen_agent" in args and "worker" in args and "celery" not in args


def _wait_for(what: str, check: Callable[[], bool], deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {deadline_s} s")


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def _is_clock(pid: int) -> bool:
    """The hub's clock (`python manage.py clock`)."""
    args = _cmdline(pid)
    return "manage.py" in args and "clock" in args


@dataclass
class Embedded:
    process: subprocess.Popen[bytes]
    url: str
    var_dir: Path
    seen: set[int] = field(default_factory=set)

    def agents(self) -> set[int]:
        pids = _descendants(self.process.pid)
        self.seen |= pids
        return {pid for pid in pids if _is_agent(pid)}

    def clocks(self) -> set[int]:
        pids = _descendants(self.process.pid)
        self.seen |= pids
        return {pid for pid in pids if _is_clock(pid)}

    def log(self) -> str:
        parts = [f"run_embedded.sh output:\n{(self.var_dir / 'run.out').read_text()}"]
        for name in ("agent.log", "hub.log", "clock.log"):
            path = self.var_dir / name
            if path.exists():
                parts.append(
                    f"{name} (last lines):\n" + "\n".join(path.read_text().splitlines()[-15:])
                )
        return "\n".join(parts)


def _stop(embedded: Embedded) -> None:
    """SIGTERM the script (it stops what it started), then SIGKILL whatever it left behind."""
    embedded.agents()
    if embedded.process.poll() is None:
        embedded.process.send_signal(signal.SIGTERM)
        try:
            embedded.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            embedded.process.kill()
            embedded.process.wait()
    for pid in embedded.seen:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Embedded]:
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("POLLEN_", "DATABASE_URL", "REDIS_URL", "CELERY_", "DJANGO_"))
    }
    env.update(POLLEN_VAR_DIR=str(tmp_path), POLLEN_DEMO_PASSWORD="a-demo-password-for-tests")
    with (tmp_path / "run.out").open("wb") as out:
        process = subprocess.Popen(
            ["bash", str(REPO / "scripts" / "run_embedded.sh"), "127.0.0.1", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    embedded = Embedded(process, f"http://127.0.0.1:{port}", tmp_path)
    try:
        yield embedded
    finally:
        _stop(embedded)


def _kill_and_see_it_restarted(what: str, running: Callable[[], set[int]]) -> None:
    _wait_for(f"the {what} runs", lambda: len(running()) == 1, START_DEADLINE_S)
    (first,) = running()
    os.kill(first, signal.SIGKILL)
    _wait_for(
        f"a new {what} process is started",
        lambda: len(running() - {first}) == 1,
        RESTART_DEADLINE_S,
    )


def test_killing_the_agent_or_the_clock_leaves_the_hub_serving_and_each_is_restarted(
    embedded: Embedded,
) -> None:
    _wait_for("the hub answers /healthz", lambda: _answers(embedded.url), START_DEADLINE_S)
    _kill_and_see_it_restarted("agent", embedded.agents)
    assert embedded.process.poll() is None, f"make run stopped:\n{embedded.log()}"
    assert _answers(embedded.url), f"the hub stopped answering:\n{embedded.log()}"
    run_output = (embedded.var_dir / "run.out").read_text()
    assert "agent" in run_output and "restart" in run_output, "the restart is logged"

    _kill_and_see_it_restarted("clock", embedded.clocks)
    run_output = (embedded.var_dir / "run.out").read_text()
    assert re.search(r"clock \(pid \d+\) exited with signal 9", run_output), "its death is logged"


def test_stopping_make_run_stops_every_process_it_started(embedded: Embedded) -> None:
    _wait_for("the hub answers /healthz", lambda: _answers(embedded.url), START_DEADLINE_S)
    _wait_for("the agent runs", lambda: len(embedded.agents()) == 1, START_DEADLINE_S)
    _wait_for("the agent's workers run", lambda: len(embedded.seen) >= 6, START_DEADLINE_S)
    embedded.agents()

    embedded.process.send_signal(signal.SIGTERM)
    embedded.process.wait(timeout=90)

    left = sorted(pid for pid in embedded.seen if _running(pid))
    assert left == [], f"still running after make run stopped: {[_cmdline(p) for p in left]}"
    assert not _answers(embedded.url)


def test_a_service_that_keeps_failing_is_restarted_with_growing_delays_and_the_others_run_on(
    tmp_path: Path,
) -> None:
    supervisor = subprocess.Popen(
        [
            *(sys.executable, str(REPO / "scripts" / "supervise.py"), "--state-dir", str(tmp_path)),
            *("--service", "steady=sleep 600"),
            *("--service", "crashy=sh -c 'echo crashing; exit 3'"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen: set[int] = set()
    try:
        steady = tmp_path / "run" / "steady.pid"
        _wait_for("the steady service starts", steady.exists, 30)
        steady_pid = int(steady.read_text())
        _wait_for(
            "three restarts of the failing service",
            lambda: (
                (tmp_path / "crashy.log").exists()
                and (tmp_path / "crashy.log").read_text().count("crashing") >= 4
            ),
            30,
        )
        seen = _descendants(supervisor.pid)
        assert _running(steady_pid) and int(steady.read_text()) == steady_pid
    finally:
        supervisor.send_signal(signal.SIGTERM)
        output, _ = supervisor.communicate(timeout=60)
        for pid in seen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    delays = re.findall(r"crashy \(pid \d+\) exited with code 3 .*; restart \d+ in (\d+) s", output)
    assert delays[:3] == ["1", "2", "4"], output
    assert "steady (pid" not in output, "the steady service never exited"
    assert not _running(steady_pid), "stopping the supervisor stops its services"
    assert not steady.exists()
