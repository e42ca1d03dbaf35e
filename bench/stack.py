"""A real hub and a real site agent on this machine, for benchmarks of the REST API.

- The hub is gunicorn with the deployed config (``deploy/docker/gunicorn.conf.py``) and the
  test settings, on a free loopback port, against its own throwaway PostgreSQL database
  (created, migrated and dropped here) and the Redis broker the environment names. Its model
  store is a temporary folder, so this run's published weights meet nobody else's.
- The site agent is ``python -m pollen_agent worker`` in its own process group (no Django in
  it). Each site it serves keeps its files on the test S3 server under this run's prefix, with
  that site's own test identity (one that may touch only its own bucket).
- Rows that only an administrator or a finished training job would write (sites, tokens, the
  model version a job leaves) are seeded by a short Django script in a subprocess; everything
  else goes through the API, as a hospital system's calls would.

Only the processes started here are stopped, each by its own process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bench import fixtures
from bench.report import REPO
from tests.support.agent import AgentProcess, start_agent, wait_until

DATABASE = "pollen_bench_api"
# As deployed (gunicorn.conf.py: gthread, 4 threads a worker); 3 workers on this small machine.
HUB_WORKERS, HUB_THREADS = 3, 4


class ApiClient:
    """The REST API with a site-scoped token, shaped like the test client ``tests.support.flows``
    takes (``post(path, data, format=...)``), so the benches reuse its upload flow."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str) -> requests.Response:
        return self.http.get(self.url + path, timeout=60)

    def post(self, path: str, data: Any = None, format: str = "json") -> requests.Response:
        return self.http.post(self.url + path, json=data, timeout=60)


@dataclass
class Stack:
    url: str
    seeded: dict[str, Any]
    agent: AgentProcess

    def client(self, site: str) -> ApiClient:
        """A hospital system's client at ``site`` (its own session and connection)."""
        return ApiClient(self.url, self.seeded["system_tokens"][site])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _broker() -> dict[str, str]:
    broker = os.environ.get("CELERY_BROKER_URL", "")
    backend = os.environ.get("CELERY_RESULT_BACKEND", "")
    if not broker.startswith("redis") or not backend.startswith("redis"):
        raise RuntimeError(
            "the API benchmarks need CELERY_BROKER_URL and CELERY_RESULT_BACKEND on Redis "
            "(make bench sets them)"
        )
    return {"broker_url": broker, "result_backend": backend}


def _hub_env(database_url: str, port: int, root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLLEN_MODEL_STORE_")}
    env.update(
        {
            "POLLEN_ENV": "test",
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": "pollen.settings",
            "PYTHONPATH": f"{REPO / 'platform'}:{REPO / 'workers'}",
            "POLLEN_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "POLLEN_BIND": f"127.0.0.1:{port}",
            "POLLEN_LOCAL_STORAGE_ROOT": str(root / "hub-storage"),
            "GUNICORN_WORKERS": str(HUB_WORKERS),
            "GUNICORN_THREADS": str(HUB_THREADS),
        }
    )
    return env


def seed_main() -> None:
    """In a Django subprocess: sites, their agent and hospital-system tokens, one model version.

    Reads ``{"sites": {slug: name}, "model_version": {...ModelVersion fields, "site": slug}}``
    on stdin and writes the tokens and the model version's id as JSON on stdout.
    """
    import django

    django.setup()
    from pollen.accounts.services import site_create, token_create
    from pollen.training.models import ModelVersion

    request = json.load(sys.stdin)
    out: dict[str, Any] = {"agent_tokens": {}, "system_tokens": {}}
    sites = {}
    for slug, name in request["sites"].items():
        sites[slug] = site = site_create(slug=slug, name=name)
        out["agent_tokens"][slug] = token_create(
            caller=None, site=site, name="bench agent", kind="agent"
        )[1]
        out["system_tokens"][slug] = token_create(caller=None, site=site, name="bench system")[1]
    fields = dict(request["model_version"])
    site = sites[fields.pop("site")]
    out["model_version"] = ModelVersion.objects.create(site=site, **fields).pk
    json.dump(out, sys.stdout)


def _run(args: list[str], env: dict[str, str], *, stdin: str = "", what: str) -> str:
    done = subprocess.run(
        args, cwd=REPO, env=env, input=stdin, capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def _start_hub(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                str(REPO / "deploy" / "docker" / "gunicorn.conf.py"),
                "pollen.wsgi:application",
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_hub(url: str, hub: subprocess.Popen[bytes], log: Path) -> None:
    def healthy() -> bool:
        if hub.poll() is not None:
            raise RuntimeError(f"the hub exited with {hub.returncode}:\n{_tail(log)}")
        with contextlib.suppress(requests.RequestException):
            return requests.get(f"{url}/healthz", timeout=2).status_code == 200
        return False

    wait_until(healthy, timeout=90, what="the hub to answer /healthz", interval=0.2)


def _wait_agent(agent: AgentProcess) -> None:
    """Both of the agent's Celery workers (io and gpu) say they are ready."""

    def ready() -> bool:
        if agent.process.poll() is not None:
            raise RuntimeError(f"the agent exited with {agent.process.returncode}:\n{agent.log()}")
        return agent.log_path.read_text(errors="replace").count(" ready.") >= 2

    wait_until(ready, timeout=180, what="the site agent's workers", interval=0.3)


def _purge_queues(broker_url: str, slugs: list[str]) -> None:
    """Drop messages an earlier, interrupted run left on these sites' queues."""
    from kombu import Connection

    from pollen_contracts.queues import site_queues

    with Connection(broker_url) as conn:
        for slug in slugs:
            for queue in site_queues(slug):
                with contextlib.suppress(Exception):
                    conn.default_channel.queue_purge(queue)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def _delete_prefix(storage: dict[str, Any]) -> None:
    from pollen_agent.storage.factory import storage_from_config

    with contextlib.suppress(Exception):  # best effort at the end of a run
        storage_from_config({**storage, "prefix": ""}).delete_prefix(storage["prefix"])


@contextmanager
def running_stack(
    *,
    sites: dict[str, str],
    storages: dict[str, dict[str, Any]],
    model_version: dict[str, Any],
    agent_env: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """A migrated and seeded hub and an agent serving ``sites`` (slug -> name), ready for calls.

    ``storages``: slug -> the agent's storage settings for that site. ``model_version``: the
    fields of the model version a training job would have left in its site's storage.
    ``agent_env``: extra environment for the agent's process.
    """
    broker = _broker()
    base_url = os.environ.get("DATABASE_URL", "")
    if not base_url.startswith("postgres"):
        raise RuntimeError(
            "the API benchmarks need DATABASE_URL on PostgreSQL (make bench sets it)"
        )
    root = Path(tempfile.mkdtemp(prefix="pollen-bench-api-"))  # agent config holds tokens
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = _hub_env(fixtures.recreate_database(base_url, DATABASE), port, root)
    hub: subprocess.Popen[bytes] | None = None
    agent: AgentProcess | None = None
    try:
        _run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], env, what="migrate")
        request = json.dumps({"sites": sites, "model_version": model_version})
        seeded = json.loads(
            _run(
                [sys.executable, "-c", "from bench.stack import seed_main; seed_main()"],
                env,
                stdin=request,
                what="seeding the hub",
            )
        )
        hub = _start_hub(env, root / "hub.log")
        _wait_hub(url, hub, root / "hub.log")
        _purge_queues(broker["broker_url"], list(sites))
        agent = start_agent(
            hub_url=url,
            sites={
                slug: {"token": seeded["agent_tokens"][slug], "storage": storages[slug]}
                for slug in sites
            },
            tmp=root,
            broker=broker,
            extra_env=agent_env,
        )
        _wait_agent(agent)
        yield Stack(url=url, seeded=seeded, agent=agent)
    except BaseException:
        print(f"--- hub log\n{_tail(root / 'hub.log')}", file=sys.stderr)
        if agent is not None:
            print(f"--- agent log\n{agent.log()}", file=sys.stderr)
        raise
    finally:
        if agent is not None:
            agent.stop()
        if hub is not None:
            _stop_group(hub)
        for storage in storages.values():
            _delete_prefix(storage)
        with contextlib.suppress(Exception):
            fixtures.drop_database(base_url, DATABASE)
        shutil.rmtree(root, ignore_errors=True)
