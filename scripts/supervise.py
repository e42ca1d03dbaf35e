#!/usr/bin/env python3
"""Keep the embedded default's processes running: one's death never takes another down.

    python scripts/supervise.py --state-dir var \\
        --service 'hub=gunicorn pollen.wsgi:application --bind 127.0.0.1:8000' \\
        --service 'agent=python -m pollen_agent worker --config var/agent.json'

Each service runs in its own process group, with its output appended to ``STATE/NAME.log`` and
its process id in ``STATE/run/NAME.pid``. When one exits, whatever is left of its group (the
agent's Celery workers, gunicorn's workers) is stopped, the exit is logged here, and the service
is started again after a delay that doubles with each quick failure (1 s up to 60 s) and resets
once it has run for a minute. SIGTERM or SIGINT stops every service, gently and then by force.
Standard library only: it runs before anything else is known to work.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

FIRST_DELAY_S = 1.0
MAX_DELAY_S = 60.0
STABLE_AFTER_S = 60.0
STOP_GRACE_S = 20.0
POLL_S = 0.5


def log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"{stamp} supervisor: {message}", flush=True)


@dataclass
class Service:
    name: str
    command: list[str]
    state_dir: Path
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float = 0.0
    delay_s: float = FIRST_DELAY_S
    restarts: int = 0

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "run" / f"{self.name}.pid"

    def start(self) -> None:
        with (self.state_dir / f"{self.name}.log").open("ab") as out:
            # A session of its own: a terminal's Ctrl-C reaches only the supervisor, which
            # then stops each service in order, and a service's leftovers can be found by group.
            self.process = subprocess.Popen(
                self.command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.started_at = time.monotonic()
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.pid_file.with_suffix(".tmp")
        tmp.write_text(f"{self.process.pid}\n")
        tmp.replace(self.pid_file)
        log(f"{self.name} started (pid {self.process.pid})")

    def exited(self) -> int | None:
        """The exit code once the service's main process has ended; None while it runs."""
        return None if self.process is None else self.process.poll()

    def schedule_restart(self, code: int) -> None:
        assert self.process is not None
        ran_s = time.monotonic() - self.started_at
        if ran_s >= STABLE_AFTER_S:
            self.delay_s = FIRST_DELAY_S
        how = f"signal {-code}" if code < 0 else f"code {code}"
        self.restarts += 1
        log(
            f"{self.name} (pid {self.process.pid}) exited with {how} after {ran_s:.0f} s; "
            f"restart {self.restarts} in {self.delay_s:.0f} s"
        )
        stop_group(self.process.pid, self.name)
        self.process = None
        self.restart_at = time.monotonic() + self.delay_s
        self.delay_s = min(self.delay_s * 2, MAX_DELAY_S)

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process.pid, self.name)
            self.process.wait()
            self.process = None
        self.pid_file.unlink(missing_ok=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(pgid: int, name: str) -> None:
    """SIGTERM every process in the group, then SIGKILL what is left after the grace period."""
    if not _group_alive(pgid):
        return
    os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline:
        # Reap the group's leader if it is our child, so it does not linger as a zombie.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pgid, os.WNOHANG)
        if not _group_alive(pgid):
            return
        time.sleep(0.2)
    log(f"{name}: processes still running after {STOP_GRACE_S:.0f} s, killing them")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def supervise(services: list[Service], stopping: threading.Event) -> None:
    for service in services:
        service.start()
    while not stopping.wait(POLL_S):
        now = time.monotonic()
        for service in services:
            code = service.exited()
            if code is not None:
                service.schedule_restart(code)
            elif service.process is None and now >= service.restart_at:
                service.start()
    log("stopping")
    for service in reversed(services):
        service.stop()
    log("stopped")


def _parse_service(raw: str, state_dir: Path) -> Service:
    name, sep, command = raw.partition("=")
    if not sep or not name.isidentifier() or not command.strip():
        raise argparse.ArgumentTypeError(f"--service {raw!r}: use NAME=COMMAND")
    return Service(name=name, command=shlex.split(command), state_dir=state_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--service", action="append", required=True, metavar="NAME=COMMAND")
    args = parser.parse_args(argv)
    services = [_parse_service(raw, args.state_dir) for raw in args.service]
    stopping = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    supervise(services, stopping)
    return 0


if __name__ == "__main__":
    sys.exit(main())
