#!/usr/bin/env python3
"""The model-store half of scripts/backup.sh and scripts/restore.sh.

    model_store.py backup  DIR   copy every object into DIR/model-store/, write DIR/manifest.json
    model_store.py verify  DIR   check DIR/db.dump and every copied object against the manifest
    model_store.py restore DIR   upload objects that are missing or different in the store

Settings come from POLLEN_MODEL_STORE_*_RESOLVED, which the shell scripts fill in from the
hub's own variables (or their *_FILE). Kind "s3" uses boto3; kind "fs" copies a folder.
The manifest (sha256 and size per object, and of db.dump) is written last, so a folder
without one is an incomplete backup.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

CHUNK = 1024 * 1024
OBJECTS = "model-store"


def _setting(name: str, default: str = "") -> str:
    return os.environ.get(f"POLLEN_MODEL_STORE_{name}_RESOLVED") or default


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _safe_local(root: Path, key: str) -> Path:
    """Where an object lives under root; keys that would escape it are refused."""
    parts = PurePosixPath(key).parts
    if not parts or key.startswith("/") or ".." in parts:
        raise ValueError(f"refusing the object key {key!r}")
    return root.joinpath(*parts)


class S3Store:
    def __init__(self) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = _setting("BUCKET", "pollen-models")
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=_setting("ENDPOINT") or None,
            aws_access_key_id=_setting("ACCESS_KEY") or None,
            aws_secret_access_key=_setting("SECRET_KEY") or None,
            region_name=_setting("REGION", "us-east-1"),
            config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard"}),
        )

    def objects(self) -> Iterator[tuple[str, int]]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket):
            for item in page.get("Contents", []):
                yield item["Key"], int(item["Size"])

    def download(self, key: str, target: Path) -> None:
        self.client.download_file(self.bucket, key, str(target))

    def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise

    def upload(self, source: Path, key: str) -> None:
        self.client.upload_file(str(source), self.bucket, key)


class FolderStore:
    def __init__(self) -> None:
        self.root = Path(_setting("ROOT") or "var/model-store")

    def objects(self) -> Iterator[tuple[str, int]]:
        if not self.root.is_dir():
            return
        for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
            yield path.relative_to(self.root).as_posix(), path.stat().st_size

    def download(self, key: str, target: Path) -> None:
        shutil.copyfile(_safe_local(self.root, key), target)

    def size(self, key: str) -> int | None:
        path = _safe_local(self.root, key)
        return path.stat().st_size if path.is_file() else None

    def upload(self, source: Path, key: str) -> None:
        target = _safe_local(self.root, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def store() -> S3Store | FolderStore:
    kind = _setting("KIND", "fs")
    if kind == "s3":
        return S3Store()
    if kind == "fs":
        return FolderStore()
    raise SystemExit(f"model_store.py: POLLEN_MODEL_STORE_KIND={kind!r}: use s3 or fs")


def backup(folder: Path) -> dict[str, Any]:
    objects_dir = folder / OBJECTS
    objects_dir.mkdir(parents=True, exist_ok=True)
    the_store = store()
    objects = []
    for key, size in the_store.objects():
        target = _safe_local(objects_dir, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        the_store.download(key, target)
        if target.stat().st_size != size:
            raise SystemExit(f"model_store.py: {key} changed size while it was copied; run again")
        objects.append({"key": key, "size": size, "sha256": sha256_of(target)})
    manifest = {
        "format": 1,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": {"file": "db.dump", "sha256": sha256_of(folder / "db.dump")},
        "model_store": {"kind": _setting("KIND", "fs"), "objects": objects},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"model_store.py: {len(objects)} objects copied", file=sys.stderr)
    return manifest


def verify(folder: Path) -> dict[str, Any]:
    manifest = json.loads((folder / "manifest.json").read_text())
    if sha256_of(folder / manifest["database"]["file"]) != manifest["database"]["sha256"]:
        raise SystemExit("model_store.py: db.dump does not match its checksum")
    for item in manifest["model_store"]["objects"]:
        if sha256_of(_safe_local(folder / OBJECTS, item["key"])) != item["sha256"]:
            raise SystemExit(f"model_store.py: {item['key']} does not match its checksum")
    return manifest


def restore(folder: Path) -> int:
    manifest = verify(folder)
    the_store = store()
    uploaded = 0
    for item in manifest["model_store"]["objects"]:
        if the_store.size(item["key"]) == item["size"]:
            continue  # weights files are content-addressed by checksum; same size, same file
        the_store.upload(_safe_local(folder / OBJECTS, item["key"]), item["key"])
        uploaded += 1
    print(f"model_store.py: {uploaded} objects uploaded", file=sys.stderr)
    return uploaded


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in {"backup", "verify", "restore"}:
        print(__doc__, file=sys.stderr)
        return 2
    {"backup": backup, "verify": verify, "restore": restore}[argv[0]](Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
