"""``python -m pollen_agent worker|health [--config PATH]``.

``worker`` runs four Celery workers: one for the io queues (quick answers, threads),
one for the gpu queues (one training job at a time), one for the quick queues (quick
models, one at a time) and one for the infer queues (predictions, evaluations, exports,
publication copies, one at a time). So a training job never blocks an upload, a quick
model, nor a clinician applying a model. Each starts with its own thread settings
(``pollen_agent.threads``).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from pollen_agent.config import AgentConfig, load_config
from pollen_agent.errors import UserError
from pollen_agent.storage.factory import storage_from_config
from pollen_agent.threads import worker_environment

# worker kind -> the queues it consumes
QUEUE_KINDS: dict[str, Callable[[AgentConfig], list[str]]] = {
    "io": AgentConfig.io_queues,
    "gpu": AgentConfig.gpu_queues,
    "quick": AgentConfig.quick_queues,
    "infer": AgentConfig.infer_queues,
}


def _worker_args(kind: str, queues: list[str], hostname: str) -> list[str]:
    common = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "pollen_agent.worker_entry",
        "worker",
        "-Q",
        ",".join(queues),
        "--hostname",
        f"{kind}@{hostname}",
        "--loglevel",
        os.environ.get("POLLEN_AGENT_LOG_LEVEL", "INFO"),
        "--without-gossip",
        "--without-mingle",
    ]
    if kind == "io":
        return [
            *common,
            "--pool",
            "threads",
            "--concurrency",
            os.environ.get("POLLEN_AGENT_IO_CONCURRENCY", "4"),
        ]
    return [*common, "--pool", "prefork", "--concurrency", "1"]


def run_worker(config_path: str | None, which: str) -> int:
    config = load_config(config_path)
    if config_path:
        os.environ["POLLEN_AGENT_CONFIG"] = config_path
    hostname = os.environ.get("POLLEN_AGENT_NAME", "-".join(s.slug for s in config.sites))
    kinds = list(QUEUE_KINDS) if which == "all" else [which]
    try:
        # Build each site's storage now, so a bad or published signing secret stops the agent at
        # start with its reason rather than failing every task later.
        for site in config.sites:
            storage_from_config(site.storage)
        environments = {kind: worker_environment(kind) for kind in kinds}
    except UserError as exc:
        print(f"pollen_agent: {exc.message}", file=sys.stderr)
        return 2
    procs = []
    for kind in kinds:
        queues = QUEUE_KINDS[kind](config)
        procs.append(subprocess.Popen(_worker_args(kind, queues, hostname), env=environments[kind]))

    def stop(signum: int, frame: Any) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    _heartbeat_until_exit(config, procs)
    codes = [proc.wait() for proc in procs]
    return max(codes) if codes else 0


def _heartbeat_until_exit(config: Any, procs: list[subprocess.Popen[bytes]]) -> None:
    """Tell the hub this site's agent is alive, so its clock hands a dead worker's work to another."""
    from pollen_agent import runtime
    from pollen_agent.errors import AgentError

    runtime.set_config(config)
    interval = float(os.environ.get("POLLEN_AGENT_HEARTBEAT_SECONDS", "30"))
    while all(proc.poll() is None for proc in procs):
        for site in config.sites:
            try:
                # Not retried: the next beat is the retry, and the supervisor must keep watching.
                runtime.hub_for(site.slug).post("agent/heartbeat/", retry=False)
            except AgentError as exc:
                print(f"heartbeat for {site.slug} failed: {exc}", file=sys.stderr)
        deadline = time.monotonic() + interval
        while time.monotonic() < deadline and all(proc.poll() is None for proc in procs):
            time.sleep(min(0.5, interval))


def health(config_path: str | None) -> int:
    """Exit 0 when the config loads, the hub answers the agent's token, and storage is reachable."""
    from pollen_agent import runtime

    config = load_config(config_path)
    runtime.set_config(config)
    for site in config.sites:
        runtime.hub_for(site.slug).post("agent/heartbeat/")
        list(runtime.storage_for(site.slug).list("healthcheck/"))
    print("ok")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pollen_agent")
    parser.add_argument("command", choices=["worker", "health"])
    parser.add_argument("--config", default=os.environ.get("POLLEN_AGENT_CONFIG"))
    parser.add_argument("--queues", choices=["all", *QUEUE_KINDS], default="all")
    args = parser.parse_args(argv)
    if args.command == "worker":
        return run_worker(args.config, args.queues)
    return health(args.config)


if __name__ == "__main__":
    sys.exit(main())
