"""The hub's production settings, for real: PostgreSQL, Redis and gunicorn on this machine.

A fresh database is created for the module and dropped afterwards. The secret key comes from
a ``*_FILE``. gunicorn runs with the same config file as the image, on a free loopback port,
and only the PID this module started is stopped. No sleeps: everything polls with a deadline.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parents[2]
PG_ADMIN_URL = "postgres://pollen:pollen@127.0.0.1:5432/postgres"
BROKER_URL = "redis://127.0.0.1:6379/14"


def _postgres_problem() -> str | None:
    try:
        import psycopg

        with psycopg.connect(
            PG_ADMIN_URL.replace("postgres://", "postgresql://"), connect_timeout=3
        ):
            return None
    except Exception as exc:
        return f"PostgreSQL as pollen@127.0.0.1:5432 is not reachable ({exc.__class__.__name__})"


def _redis_problem() -> str | None:
    try:
        import redis

        redis.Redis.from_url(BROKER_URL, socket_connect_timeout=3).ping()
        return None
    except Exception as exc:
        return f"Redis on 127.0.0.1:6379 is not reachable ({exc.__class__.__name__})"


def _run_sql(statement: str) -> None:
    import psycopg

    with psycopg.connect(
        PG_ADMIN_URL.replace("postgres://", "postgresql://"), autocommit=True
    ) as conn:
        conn.execute(statement)


@pytest.fixture(scope="module")
def production_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    problem = _postgres_problem() or _redis_problem()
    if problem:
        pytest.skip(
            f"{problem}: start the services with `scripts/services.sh start` (make services)"
        )
    database = f"pollen_deploy_{secrets.token_hex(4)}"
    _run_sql(f'CREATE DATABASE "{database}"')
    folder = tmp_path_factory.mktemp("hub-production")
    secret_file = folder / "secret-key"
    secret_file.write_text(secrets.token_urlsafe(50) + "\n")
    metrics_token_file = folder / "metrics-token"
    metrics_token_file.write_text(secrets.token_urlsafe(32) + "\n")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("POLLEN_", "DATABASE_URL", "REDIS_URL", "CELERY_", "DJANGO_"))
    }
    env.update(
        POLLEN_ENV="production",
        POLLEN_SECRET_KEY_FILE=str(secret_file),
        POLLEN_METRICS_TOKEN_FILE=str(metrics_token_file),
        POLLEN_ALLOWED_HOSTS="127.0.0.1,localhost",
        POLLEN_PUBLIC_URL="https://pollen.example.org",
        POLLEN_CSRF_TRUSTED_ORIGINS="https://pollen.example.org",
        DATABASE_URL=f"postgres://pollen:pollen@127.0.0.1:5432/{database}",
        REDIS_URL="redis://127.0.0.1:6379/13",
        CELERY_BROKER_URL=BROKER_URL,
        CELERY_RESULT_BACKEND="redis://127.0.0.1:6379/15",
        POLLEN_LOCAL_STORAGE="false",
        # The test SeaweedFS's hub identity (scripts/s3_identities.py); nothing reads it at start.
        POLLEN_MODEL_STORE_KIND="s3",
        POLLEN_MODEL_STORE_ENDPOINT="http://127.0.0.1:8333",
        POLLEN_MODEL_STORE_BUCKET="pollen-hub-models",
        POLLEN_MODEL_STORE_ACCESS_KEY="pollen-test-hub",
        POLLEN_MODEL_STORE_SECRET_KEY="pollen-test-hub-secret",
        POLLEN_VAR_DIR=str(folder / "var"),
        PYTHONPATH=f"{REPO / 'platform'}{os.pathsep}{REPO / 'workers'}",
        DJANGO_SETTINGS_MODULE="pollen.settings",
    )
    try:
        migrate = _manage(env, "migrate", "--noinput", "-v", "0")
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        yield env
    finally:
        _run_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "manage.py"), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers or {}), timeout=5
        ) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture(scope="module")
def gunicorn_url(
    production_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    port = _free_port()
    env = {
        **production_env,
        # Plain HTTP on the loopback here; behind the ingress the default (true) applies.
        "POLLEN_SSL_REDIRECT": "false",
        "POLLEN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
    }
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                str(REPO / "deploy/docker/gunicorn.conf.py"),
                "pollen.wsgi:application",
            ],
            cwd=REPO,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"gunicorn exited with {process.returncode}:\n{log.read_text()}")
            try:
                if _get(f"{url}/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not answer /healthz within 60 s:\n{log.read_text()}")
            time.sleep(0.1)  # a poll interval under a deadline, not a fixed wait
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def test_production_settings_pass_check_deploy(production_env: dict[str, str]) -> None:
    """As the hub ships behind a TLS ingress (POLLEN_SSL_REDIRECT left at its default)."""
    result = _manage(production_env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, f"check --deploy is not clean:\n{result.stdout}{result.stderr}"


def test_gunicorn_serves_healthz(gunicorn_url: str) -> None:
    status, headers, body = _get(f"{gunicorn_url}/healthz")
    assert status == 200
    assert json.loads(body) == {"status": "ok"}
    assert headers.get("X-Content-Type-Options") == "nosniff"


def test_gunicorn_serves_readyz_with_database_and_broker(gunicorn_url: str) -> None:
    status, _, body = _get(f"{gunicorn_url}/readyz")
    assert status == 200, body
    assert json.loads(body)["status"] == "ok"


def test_metrics_expose_api_latency_and_jobs_to_the_operations_token_only(
    gunicorn_url: str, production_env: dict[str, str]
) -> None:
    _get(f"{gunicorn_url}/api/v1/auth/me/")
    assert _get(f"{gunicorn_url}/metrics")[0] == 401
    token = Path(production_env["POLLEN_METRICS_TOKEN_FILE"]).read_text().strip()
    status, headers, body = _get(
        f"{gunicorn_url}/metrics", headers={"Authorization": f"Bearer {token}"}
    )
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    text = body.decode()
    assert "pollen_api_request_seconds" in text
    assert "pollen_jobs" in text


def test_production_refuses_unknown_hosts(gunicorn_url: str) -> None:
    request = urllib.request.Request(f"{gunicorn_url}/healthz", headers={"Host": "evil.example"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    assert status == 400
