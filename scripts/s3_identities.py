#!/usr/bin/env python3
"""Write the SeaweedFS ``identities.json`` for the test S3 stack.

Each site gets an identity that may read, write and list only its own bucket,
so a test can prove that site-a's credentials are refused on site-b's bucket.
The hub gets an identity limited to its model-store bucket, and an admin
identity exists only so tests can create buckets.

The credentials are deterministic and documented on purpose: they guard a
throwaway server bound to 127.0.0.1 and are not secrets. Never reuse them.

    name     access key              secret key                        bucket
    admin    pollen-test-admin       pollen-test-admin-secret          (all)
    <site>   pollen-test-<site>      pollen-test-<site>-secret         pollen-<site>
    hub      pollen-test-hub         pollen-test-hub-secret            pollen-hub-models

Usage: s3_identities.py OUT.json [--site site-a --site site-b ...]
Stdlib only, so the script runs before any virtual environment exists.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

DEFAULT_SITES = ("site-a", "site-b", "site-c")
HUB_BUCKET = "pollen-hub-models"
ADMIN = "admin"
HUB = "hub"


def site_bucket(site: str) -> str:
    return f"pollen-{site}"


def access_key(name: str) -> str:
    return f"pollen-test-{name}"


def secret_key(name: str) -> str:
    return f"pollen-test-{name}-secret"


def _identity(name: str, actions: list[str]) -> dict:
    return {
        "name": name,
        "credentials": [{"accessKey": access_key(name), "secretKey": secret_key(name)}],
        "actions": actions,
    }


def _bucket_actions(bucket: str) -> list[str]:
    # SeaweedFS maps DeleteObject to Write; there is no separate Delete action.
    return [f"Read:{bucket}", f"Write:{bucket}", f"List:{bucket}"]


def build_config(sites: list[str]) -> dict:
    """Return the identities document for ``sites`` (slugs such as ``site-a``)."""
    for site in sites:
        if site in (ADMIN, HUB) or not site.replace("-", "").isalnum() or site != site.lower():
            raise ValueError(f"invalid site slug: {site!r}")
    identities = [_identity(ADMIN, ["Admin", "Read", "Write", "List", "Tagging"])]
    identities += [_identity(site, _bucket_actions(site_bucket(site))) for site in sites]
    identities.append(_identity(HUB, _bucket_actions(HUB_BUCKET)))
    return {"identities": identities}


def credentials(sites: list[str]) -> dict[str, dict[str, str]]:
    """Name -> {access_key, secret_key, bucket}; what tests and settings need."""
    out = {ADMIN: {"access_key": access_key(ADMIN), "secret_key": secret_key(ADMIN), "bucket": ""}}
    for site in sites:
        out[site] = {
            "access_key": access_key(site),
            "secret_key": secret_key(site),
            "bucket": site_bucket(site),
        }
    out[HUB] = {"access_key": access_key(HUB), "secret_key": secret_key(HUB), "bucket": HUB_BUCKET}
    return out


def write_config(path: Path, sites: list[str]) -> None:
    """Write atomically, so a server reloading on SIGHUP never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".identities-")
    with os.fdopen(fd, "w") as fh:
        json.dump(build_config(sites), fh, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="where to write identities.json")
    parser.add_argument("--site", action="append", dest="sites", help="site slug (repeatable)")
    args = parser.parse_args(argv)
    sites = args.sites or list(DEFAULT_SITES)
    try:
        write_config(args.out, sites)
    except ValueError as exc:
        print(f"s3_identities: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
