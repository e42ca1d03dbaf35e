#!/usr/bin/env python3
"""Generate the secrets of the local compose stack in deploy/compose/secrets/ (git-ignored).

Each file holds one secret, as compose ``secrets:`` mounts them at /run/secrets/<name>.
Storage identities are separate on purpose, as in a real deployment:

    identity   access key        may use bucket        mounted into
    admin      pollen-admin      all (creates buckets) s3-init only
    hub        pollen-hub        pollen-hub-models     hub-web, hub-worker
    site-a     pollen-site-a     pollen-site-a         agent-site-a only
    site-b     pollen-site-b     pollen-site-b         agent-site-b only

Each agent's config (<site>_agent.json, mounted at /etc/pollen/agent.json) is generated
here too, because it carries the broker URL and its password.

Existing files are kept, so re-running never rotates a secret behind a running stack;
pass --force to regenerate them all (then `docker compose down -v`, since the database
volume keeps its first password). Agent tokens start empty: hub-bootstrap fills them in.

Usage: python3 deploy/compose/make_secrets.py [--dir DIR] [--force]
Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SITES = ("site-a", "site-b")
HUB_BUCKET = "pollen-hub-models"


def site_bucket(site: str) -> str:
    return f"pollen-{site}"


def access_key(identity: str) -> str:
    return f"pollen-{identity}"


def _bucket_actions(bucket: str) -> list[str]:
    return [f"Read:{bucket}", f"Write:{bucket}", f"List:{bucket}"]


def identities(secret_keys: dict[str, str]) -> dict[str, object]:
    """SeaweedFS -s3.config: each identity may touch only its own bucket (admin: all)."""
    buckets = {"hub": HUB_BUCKET, **{site: site_bucket(site) for site in SITES}}
    out: list[dict[str, object]] = [
        {
            "name": "admin",
            "credentials": [{"accessKey": access_key("admin"), "secretKey": secret_keys["admin"]}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
    ]
    for name, bucket in buckets.items():
        out.append(
            {
                "name": name,
                "credentials": [{"accessKey": access_key(name), "secretKey": secret_keys[name]}],
                "actions": _bucket_actions(bucket),
            }
        )
    return {"identities": out}


def agent_config(site: str, *, broker_url: str, result_backend: str) -> dict[str, object]:
    """The agent's JSON config (workers/pollen_agent/config.py) for one site in the stack."""
    return {
        "hub_url": "http://hub-web:8000",
        "broker_url": broker_url,
        "result_backend": result_backend,
        "work_dir": "/var/lib/pollen/work",
        "sites": [
            {
                "slug": site,
                "token_file": "/run/secrets/agent_token",
                "storage": {
                    "kind": "s3",
                    # *.localhost: the loopback for browsers, this service inside the network.
                    "endpoint_url": "http://s3.localhost:8333",
                    "bucket": site_bucket(site),
                    "access_key": access_key(site),
                    "secret_key_file": "/run/secrets/storage_secret_key",
                    "region": "us-east-1",
                },
            }
        ],
    }


def _token() -> str:
    return secrets.token_urlsafe(32)


def generate(directory: Path, *, force: bool = False) -> dict[str, Path]:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    existing = {p.name: p.read_text().strip() for p in directory.glob("*") if p.is_file()}

    def keep(name: str, make) -> str:  # type: ignore[no-untyped-def]
        return existing[name] if (name in existing and not force) else make()

    pg = keep("postgres_password", _token)
    redis = keep("redis_password", _token)
    storage = {
        n: keep(f"{n.replace('-', '_')}_storage_secret_key", _token)
        for n in ("admin", "hub", *SITES)
    }
    values: dict[str, str] = {
        "postgres_password": pg,
        "redis_password": redis,
        "hub_secret_key": keep("hub_secret_key", lambda: secrets.token_urlsafe(50)),
        "database_url": f"postgres://pollen:{pg}@postgres:5432/pollen",
        # Hub: cache on db 1, Celery results on db 2; agents get the broker only (db 0).
        "hub_broker_url": f"redis://:{redis}@redis:6379/0",
        "hub_cache_url": f"redis://:{redis}@redis:6379/1",
        "hub_result_backend": f"redis://:{redis}@redis:6379/2",
        "s3_identities.json": json.dumps(identities(storage), indent=2),
    }
    for site in SITES:
        config = agent_config(
            site,
            broker_url=values["hub_broker_url"],
            # The hub waits on io answers in this backend, so both sides share it.
            result_backend=values["hub_result_backend"],
        )
        values[f"{site.replace('-', '_')}_agent.json"] = json.dumps(config, indent=2)
    for name, key in storage.items():
        values[f"{name.replace('-', '_')}_storage_secret_key"] = key
    for site in SITES:
        name = f"{site.replace('-', '_')}_agent_token"
        values[name] = "" if force else existing.get(name, "")

    written: dict[str, Path] = {}
    for name, value in values.items():
        path = directory / name
        if path.exists() and path.read_text().strip() == value:
            written[name] = path
            continue
        # Write in place (no rename): compose bind-mounts each file, and a running
        # container keeps seeing the old inode if a file is replaced.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value + ("\n" if value else ""))
        written[name] = path
    # Compose mounts file secrets as they are (it ignores uid/mode outside swarm), and the
    # images run as uid 10001: the files must be readable, so the folder is what stays
    # private (0700). hub-bootstrap (uid 10001) writes the agent tokens.
    for name, path in written.items():
        os.chmod(path, 0o666 if name.endswith("_agent_token") else 0o644)
    os.chmod(directory, 0o700)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=HERE / "secrets")
    parser.add_argument("--force", action="store_true", help="regenerate every secret")
    args = parser.parse_args(argv)
    written = generate(args.dir, force=args.force)
    print(f"{len(written)} secrets in {args.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
