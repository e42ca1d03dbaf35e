"""scripts/backup.sh and scripts/restore.sh against the real PostgreSQL and SeaweedFS.

A fresh database and a fresh bucket are backed up, damaged, and restored; both are dropped
afterwards. The S3 admin identity of the test stack (scripts/s3_identities.py) creates the
throwaway buckets; the scripts themselves get one bucket's settings, as the hub would.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parents[2]
PG = "postgresql://pollen:pollen@127.0.0.1:5432"
S3_ENDPOINT = os.environ.get("POLLEN_S3_ENDPOINT", "http://127.0.0.1:8333")
ADMIN = {
    "aws_access_key_id": "pollen-test-admin",
    "aws_secret_access_key": "pollen-test-admin-secret",
}


def _skip_without_services() -> None:
    import psycopg

    if not shutil.which("pg_dump") or not shutil.which("pg_restore"):
        pytest.skip("pg_dump/pg_restore are not installed (apt-get install postgresql-client)")
    try:
        psycopg.connect(f"{PG}/postgres", connect_timeout=3).close()
    except Exception as exc:
        pytest.skip(
            f"PostgreSQL is not reachable ({exc.__class__.__name__}): run scripts/services.sh start"
        )
    try:
        _s3().list_buckets()
    except Exception as exc:
        pytest.skip(f"SeaweedFS S3 at {S3_ENDPOINT} is not reachable ({exc.__class__.__name__})")


def _s3():  # type: ignore[no-untyped-def]
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=S3_ENDPOINT,
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"}, connect_timeout=3, retries={"max_attempts": 1}
        ),
        **ADMIN,
    )


def _sql(database: str, statement: str) -> list[tuple[object, ...]]:
    import psycopg

    with psycopg.connect(f"{PG}/{database}", autocommit=True) as conn:
        cursor = conn.execute(statement)
        return cursor.fetchall() if cursor.description else []


def _empty_bucket(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        s3.delete_object(Bucket=bucket, Key=item["Key"])


@pytest.fixture
def hub_state() -> Iterator[dict[str, str]]:
    _skip_without_services()
    suffix = secrets.token_hex(4)
    database, bucket = f"pollen_backup_{suffix}", f"pollen-backup-{suffix}"
    _sql("postgres", f'CREATE DATABASE "{database}"')
    s3 = _s3()
    s3.create_bucket(Bucket=bucket)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("POLLEN_", "DATABASE_URL"))},
        "DATABASE_URL": f"postgres://pollen:pollen@127.0.0.1:5432/{database}",
        "POLLEN_MODEL_STORE_KIND": "s3",
        "POLLEN_MODEL_STORE_ENDPOINT": S3_ENDPOINT,
        "POLLEN_MODEL_STORE_BUCKET": bucket,
        "POLLEN_MODEL_STORE_ACCESS_KEY": ADMIN["aws_access_key_id"],
        "POLLEN_MODEL_STORE_SECRET_KEY": ADMIN["aws_secret_access_key"],
        "PYTHON": str(REPO / ".venv/bin/python")
        if (REPO / ".venv/bin/python").exists()
        else "python3",
    }
    try:
        yield {"database": database, "bucket": bucket, **env}
    finally:
        _empty_bucket(s3, bucket)
        s3.delete_bucket(Bucket=bucket)
        _sql("postgres", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _run(script: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / "scripts" / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_backup_then_restore_brings_back_database_and_model_store(
    hub_state: dict[str, str], tmp_path: Path
) -> None:
    database, bucket = hub_state["database"], hub_state["bucket"]
    env = {k: v for k, v in hub_state.items() if k not in {"database", "bucket"}}
    _sql(database, "CREATE TABLE model_version (id int PRIMARY KEY, name text)")
    _sql(database, "INSERT INTO model_version VALUES (1, 'chest-xray v1')")
    weights = secrets.token_bytes(4096)
    s3 = _s3()
    s3.put_object(Bucket=bucket, Key="models/1/weights.safetensors", Body=weights)
    s3.put_object(Bucket=bucket, Key="models/1/card.json", Body=b'{"name": "chest-xray"}')

    backup = _run("backup.sh", str(tmp_path), env=env)
    assert backup.returncode == 0, backup.stderr
    folder = Path(backup.stdout.strip().splitlines()[-1])
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {o["key"] for o in manifest["model_store"]["objects"]} == {
        "models/1/weights.safetensors",
        "models/1/card.json",
    }
    weights_entry = next(
        o for o in manifest["model_store"]["objects"] if o["key"].endswith(".safetensors")
    )
    assert weights_entry["sha256"] == hashlib.sha256(weights).hexdigest()

    # Disaster: the row is changed, a table dropped, the weights lost.
    _sql(database, "UPDATE model_version SET name = 'overwritten'")
    _sql(database, "CREATE TABLE added_after_backup (id int)")
    s3.delete_object(Bucket=bucket, Key="models/1/weights.safetensors")

    refused = _run("restore.sh", str(folder), env=env)
    assert refused.returncode == 2, "restore must ask for --yes"
    restore = _run("restore.sh", str(folder), "--yes", env=env)
    assert restore.returncode == 0, restore.stderr

    assert _sql(database, "SELECT name FROM model_version") == [("chest-xray v1",)]
    restored = s3.get_object(Bucket=bucket, Key="models/1/weights.safetensors")["Body"].read()
    assert restored == weights


def test_restore_refuses_a_damaged_backup(hub_state: dict[str, str], tmp_path: Path) -> None:
    env = {k: v for k, v in hub_state.items() if k not in {"database", "bucket"}}
    _sql(hub_state["database"], "CREATE TABLE t (id int)")
    _s3().put_object(Bucket=hub_state["bucket"], Key="a.bin", Body=b"original")
    backup = _run("backup.sh", str(tmp_path), env=env)
    assert backup.returncode == 0, backup.stderr
    folder = Path(backup.stdout.strip().splitlines()[-1])
    (folder / "model-store" / "a.bin").write_bytes(b"tampered")

    restore = _run("restore.sh", str(folder), "--yes", env=env)
    assert restore.returncode != 0
    assert "does not match its checksum" in restore.stderr
