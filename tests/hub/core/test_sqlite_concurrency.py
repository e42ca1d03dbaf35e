"""The embedded default's SQLite database under 50 concurrent clients: no "database is locked".

The hub runs as `make run` runs it (gunicorn, 2 processes x 4 threads, SQLite in a file under
POLLEN_VAR_DIR), and 50 clients at once read, create and edit datasets and send agent heartbeats:
every write reads first inside its transaction, the pattern SQLite refuses with "database is
locked" (answered as 503) unless transactions take the write lock up front.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.db import connections, transaction

from pollen.env import parse_database_url

REPO = Path(__file__).resolve().parents[3]
CLIENTS = 50
MAKE_RUN_WORKERS = ("--workers", "2", "--threads", "4", "--timeout", "120")  # as run_embedded.sh
ROUNDS = 2
SETUP = """
from pollen.accounts.services import site_create, token_create
site = site_create(slug="site-a", name="St Anne's Hospital")
print(token_create(caller=None, site=site, name="pacs", kind="system", role="admin")[1])
print(token_create(caller=None, site=site, name="agent", kind="agent")[1])
"""


@dataclass
class Hub:
    url: str
    system_token: str
    agent_token: str
    database: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _embedded_env(var_dir: Path, url: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("POLLEN_", "DATABASE_URL", "REDIS_URL", "CELERY_", "DJANGO_"))
    }
    env.update(
        POLLEN_ENV="embedded",
        POLLEN_VAR_DIR=str(var_dir),
        POLLEN_PUBLIC_URL=url,
        PYTHONPATH=f"{REPO / 'platform'}{os.pathsep}{REPO / 'workers'}",
        DJANGO_SETTINGS_MODULE="pollen.settings",
    )
    return env


def _wait_until_up(url: str, process: subprocess.Popen[bytes], deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "the hub exited at start"
        try:
            if requests.get(f"{url}/healthz", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the hub did not answer /healthz within {deadline_s} s")


@pytest.fixture(scope="module")
def embedded_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    var_dir = tmp_path_factory.mktemp("embedded-sqlite")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = _embedded_env(var_dir, url)
    manage = [sys.executable, str(REPO / "manage.py")]
    migrate = subprocess.run(
        [*manage, "migrate", "--noinput", "-v0"], env=env, capture_output=True, text=True
    )
    assert migrate.returncode == 0, migrate.stderr
    setup = subprocess.run(
        [*manage, "shell", "-c", SETUP], env=env, capture_output=True, text=True, check=True
    )
    system_token, agent_token = setup.stdout.split()[-2:]
    gunicorn = Path(sys.executable).parent / "gunicorn"
    hub = subprocess.Popen(
        [
            str(gunicorn),
            "pollen.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            *MAKE_RUN_WORKERS,
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_until_up(url, hub, deadline_s=60)
        yield Hub(url, system_token, agent_token, var_dir / "pollen.sqlite3")
    finally:
        os.killpg(hub.pid, signal.SIGTERM)
        try:
            hub.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(hub.pid, signal.SIGKILL)
            hub.wait()


def _client_session(hub: Hub, client: int, failures: list[str]) -> None:
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {hub.system_token}"
    agent = requests.Session()
    agent.headers["Authorization"] = f"Bearer {hub.agent_token}"

    def check(response: requests.Response, expected: int) -> requests.Response:
        if response.status_code != expected:
            failures.append(
                f"{response.request.method} {response.url}: {response.status_code} {response.text[:200]}"
            )
        return response

    for round_ in range(ROUNDS):
        created = check(
            api.post(
                f"{hub.url}/api/v1/datasets/",
                json={"site": "site-a", "name": f"client {client} round {round_}"},
                timeout=60,
            ),
            201,
        )
        check(api.get(f"{hub.url}/api/v1/datasets/", timeout=60), 200)
        if created.status_code == 201:
            dataset = created.json()["id"]
            check(
                api.patch(
                    f"{hub.url}/api/v1/datasets/{dataset}/",
                    json={"description": f"edited by client {client}"},
                    timeout=60,
                ),
                200,
            )
        check(agent.post(f"{hub.url}/api/v1/agent/heartbeat/", timeout=60), 200)
        check(api.get(f"{hub.url}/api/v1/sites/site-a/audit/", timeout=60), 200)


def test_fifty_concurrent_clients_reading_and_writing_get_no_error(embedded_hub: Hub) -> None:
    failures: list[str] = []
    start = threading.Barrier(CLIENTS)

    def client(number: int) -> None:
        start.wait()
        try:
            _client_session(embedded_hub, number, failures)
        except requests.RequestException as exc:
            failures.append(f"client {number}: {exc!r}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a client never finished"
    assert failures == [], f"{len(failures)} failed requests, first: {failures[:5]}"
    with sqlite3.connect(embedded_hub.database) as db:
        (datasets,) = db.execute("SELECT COUNT(*) FROM datasets_dataset").fetchone()
    assert datasets == CLIENTS * ROUNDS, "every dataset a client was told exists is stored"


def test_the_embedded_database_runs_in_wal_mode_for_concurrent_readers(embedded_hub: Hub) -> None:
    with sqlite3.connect(embedded_hub.database) as db:
        (mode,) = db.execute("PRAGMA journal_mode").fetchone()
    assert mode == "wal"


@pytest.fixture
def sqlite_file_alias(tmp_path: Path, django_db_blocker: object) -> Iterator[str]:
    """A database alias configured exactly as the embedded default's SQLite file is."""
    alias = "embedded_sqlite"
    config = parse_database_url(f"sqlite:///{tmp_path / 'pollen.sqlite3'}", base_dir=tmp_path)
    connections.settings[alias] = connections.configure_settings({"default": config})["default"]
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        with connections[alias].cursor() as cursor:
            cursor.execute("CREATE TABLE counter (value INTEGER NOT NULL)")
            cursor.execute("INSERT INTO counter VALUES (0)")
        try:
            yield alias
        finally:
            connections[alias].close()
            del connections.settings[alias]


def test_fifty_threads_that_read_then_write_in_a_transaction_are_never_refused(
    sqlite_file_alias: str,
) -> None:
    """The pattern of every service: read inside ``transaction.atomic``, then write."""
    errors: list[str] = []
    increments = 10
    start = threading.Barrier(CLIENTS)

    def worker() -> None:
        start.wait()
        try:
            for _ in range(increments):
                with (
                    transaction.atomic(using=sqlite_file_alias),
                    connections[sqlite_file_alias].cursor() as cursor,
                ):
                    cursor.execute("SELECT value FROM counter")
                    (value,) = cursor.fetchone()
                    cursor.execute("UPDATE counter SET value = %s", [value + 1])
        except Exception as exc:  # any refusal is the failure under test
            errors.append(repr(exc))
        finally:
            connections[sqlite_file_alias].close()

    threads = [threading.Thread(target=worker) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == [], f"{len(errors)} of {CLIENTS} clients were refused, first: {errors[0]}"
    with connections[sqlite_file_alias].cursor() as cursor:
        cursor.execute("SELECT value FROM counter")
        assert cursor.fetchone() == (CLIENTS * increments,), "no increment is lost"


def test_the_embedded_default_database_is_an_sqlite_file_set_up_for_concurrency() -> None:
    config = parse_database_url("sqlite:///var/pollen.sqlite3", base_dir=Path("/srv/pollen"))
    options = config["OPTIONS"]
    assert isinstance(options, dict)
    assert options["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in options["init_command"]
    assert "busy_timeout" in options["init_command"] or options["timeout"] >= 5
    assert settings.DATABASES["default"]["ENGINE"]  # the test run's own database is untouched
