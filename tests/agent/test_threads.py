"""The agent's thread settings: read from POLLEN_AGENT_TORCH_THREADS and applied per worker.

The gpu worker's torch threads follow the setting (unset: torch's default); the io worker,
which does no model work, runs its numerical libraries on one thread each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pollen_agent import __main__ as agent_main
from pollen_agent.errors import UserError
from pollen_agent.threads import (
    LIBRARY_THREAD_VARS,
    TORCH_THREADS_ENV,
    torch_threads,
    worker_environment,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("raw", "expected"), [(None, None), ("", None), ("4", 4), (" 2 ", 2)])
def test_the_setting_is_read_and_unset_means_torchs_default(raw, expected):
    environ = {} if raw is None else {TORCH_THREADS_ENV: raw}
    assert torch_threads(environ) == expected


@pytest.mark.parametrize("raw", ["0", "-1", "two", "1.5", "auto"])
def test_a_bad_setting_is_refused_with_what_to_write(raw):
    with pytest.raises(UserError) as refused:
        torch_threads({TORCH_THREADS_ENV: raw})
    assert refused.value.code == "bad_config"
    assert TORCH_THREADS_ENV in refused.value.message and "whole number" in refused.value.message


def test_the_io_worker_runs_its_libraries_on_one_thread_whatever_is_set():
    environ = {"PATH": "/bin", "OMP_NUM_THREADS": "8", TORCH_THREADS_ENV: "4"}
    env = worker_environment("io", environ)
    assert {name: env[name] for name in LIBRARY_THREAD_VARS} == dict.fromkeys(
        LIBRARY_THREAD_VARS, "1"
    )
    assert TORCH_THREADS_ENV not in env and env["PATH"] == "/bin"


def test_the_gpu_worker_environment_is_unchanged_unless_the_setting_is_given():
    environ = {"PATH": "/bin", "OMP_NUM_THREADS": "6"}
    assert worker_environment("gpu", environ) == environ
    capped = worker_environment("gpu", {**environ, TORCH_THREADS_ENV: "3"})
    assert {name: capped[name] for name in LIBRARY_THREAD_VARS} == dict.fromkeys(
        LIBRARY_THREAD_VARS, "3"
    )


@pytest.fixture
def agent_config(tmp_path) -> Path:
    path = tmp_path / "agent.json"
    path.write_text(
        json.dumps(
            {
                "hub_url": "http://127.0.0.1:9",
                "broker_url": "memory://",
                "result_backend": "",
                "work_dir": str(tmp_path / "work"),
                "sites": [
                    {
                        "slug": "site-a",
                        "token": "pln_test",
                        "storage": {
                            "kind": "fs",
                            "root": str(tmp_path / "storage"),
                            "base_url": "http://127.0.0.1:9",
                            "site": "site-a",
                            "secret": "a-test-secret-that-is-not-the-published-default",
                        },
                    }
                ],
            }
        )
    )
    return path


class _Exited:
    """Stands in for a worker process that has already exited (only the env is under test)."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.args, self.env = args, env

    def poll(self) -> int:
        return 0

    def wait(self) -> int:
        return 0


def test_the_supervisor_starts_each_worker_with_its_thread_settings(
    agent_config, monkeypatch, capsys
):
    started: list[_Exited] = []
    monkeypatch.setattr(
        agent_main.subprocess,
        "Popen",
        lambda args, env: started.append(_Exited(args, env)) or started[-1],
    )
    monkeypatch.setenv(TORCH_THREADS_ENV, "2")
    assert agent_main.run_worker(str(agent_config), "all") == 0
    by_kind = {p.args[p.args.index("--hostname") + 1].split("@")[0]: p.env for p in started}
    assert set(by_kind) == {"io", "gpu", "quick", "infer"}
    for kind in ("gpu", "quick", "infer"):
        assert by_kind[kind]["OMP_NUM_THREADS"] == "2" and by_kind[kind][TORCH_THREADS_ENV] == "2"
    queues = {
        p.args[p.args.index("--hostname") + 1].split("@")[0]: p.args[p.args.index("-Q") + 1]
        for p in started
    }
    assert queues == {
        "io": "site.site-a.io",
        "gpu": "site.site-a.gpu",
        "quick": "site.site-a.quick",  # quick models never wait behind a long training run
        "infer": "site.site-a.infer",
    }
    assert by_kind["io"]["OMP_NUM_THREADS"] == "1" and TORCH_THREADS_ENV not in by_kind["io"]

    started.clear()
    monkeypatch.setenv(TORCH_THREADS_ENV, "lots")
    assert agent_main.run_worker(str(agent_config), "all") == 2
    assert started == [], "nothing starts with a bad setting"
    assert TORCH_THREADS_ENV in capsys.readouterr().err


_IN_A_WORKER_PROCESS = """
import sys
from celery.signals import worker_process_init
import pollen_agent.worker_entry
assert "torch" not in sys.modules, "starting the worker does not load torch"
worker_process_init.send(sender=None)
if "torch" not in sys.modules:
    print("untouched")
else:
    import torch
    print(torch.get_num_threads(), torch.get_num_interop_threads())
"""


def _worker_process(agent_config: Path, threads: str | None) -> str:
    env = {
        k: v for k, v in os.environ.items() if k not in (*LIBRARY_THREAD_VARS, TORCH_THREADS_ENV)
    }
    env.update({"PYTHONPATH": str(REPO / "workers"), "POLLEN_AGENT_CONFIG": str(agent_config)})
    if threads is not None:
        env[TORCH_THREADS_ENV] = threads
    done = subprocess.run(
        [sys.executable, "-c", _IN_A_WORKER_PROCESS],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_a_gpu_worker_process_applies_the_setting_before_any_torch_work(agent_config):
    # More threads than cores: never what torch would pick by itself.
    threads = (os.cpu_count() or 1) + 1
    assert _worker_process(agent_config, str(threads)) == f"{threads} {threads}"
    assert _worker_process(agent_config, None) == "untouched", "unset: torch's default"


@pytest.mark.parametrize(
    "launcher",
    [
        "scripts/run_embedded.sh",  # make run
        "scripts/test_frontend.sh",
        "deploy/docker/agent-entrypoint.sh",  # compose and Kubernetes
    ],
)
def test_every_launcher_starts_all_the_agents_workers_quick_included(launcher):
    # `pollen_agent worker` without --queues starts every kind in QUEUE_KINDS (tested above);
    # a launcher that picked kinds would leave quick models waiting behind training runs.
    lines = [
        line
        for line in (REPO / launcher).read_text().splitlines()
        if "pollen_agent worker" in line and not line.lstrip().startswith("#")
    ]
    assert lines, f"{launcher} starts no agent"
    assert all("--queues" not in line for line in lines), lines
