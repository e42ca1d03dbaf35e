"""The hub's own object store for published weights, model cards and imported zoo weights.

The hub never holds a site's storage credentials; this is the hub's bucket only.
Agents read and write it through short-lived presigned URLs that the hub hands out.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings

from pollen_contracts.local_signing import local_path, sign_local_url

HUB_SITE = "_hub"  # the local-storage "site" under which the embedded model store lives


class ModelStore(Protocol):
    def put_bytes(self, key: str, data: bytes) -> None: ...
    def get_bytes(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def presign_get(self, key: str, *, expires_in: int) -> str: ...
    def presign_put(self, key: str, *, expires_in: int) -> dict[str, Any]: ...


class LocalModelStore:
    """Embedded default: files under LOCAL_STORAGE_ROOT/_hub, served by the signed local-storage view."""

    def __init__(self, root: Path, secret: str, base_url: str) -> None:
        self.root, self.secret, self.base_url = root, secret, base_url

    def _path(self, key: str) -> Path:
        return local_path(self.root, HUB_SITE, key)

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)

    def get_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def presign_get(self, key: str, *, expires_in: int) -> str:
        return sign_local_url(
            self.secret,
            base_url=self.base_url,
            site=HUB_SITE,
            key=key,
            method="GET",
            expires_in=expires_in,
        )

    def presign_put(self, key: str, *, expires_in: int) -> dict[str, Any]:
        url = sign_local_url(
            self.secret,
            base_url=self.base_url,
            site=HUB_SITE,
            key=key,
            method="PUT",
            expires_in=expires_in,
            max_bytes=2 * 1024**3,
        )
        return {"url": url, "method": "PUT", "headers": {}}


class S3ModelStore:
    def __init__(self, cfg: dict[str, Any]) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = cfg["bucket"]
        self.client = boto3.client(
            "s3",
            endpoint_url=cfg.get("endpoint_url"),
            region_name=cfg.get("region") or "us-east-1",
            aws_access_key_id=cfg.get("access_key"),
            aws_secret_access_key=cfg.get("secret_key"),
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def get_bytes(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError:
            return False
        return True

    def presign_get(self, key: str, *, expires_in: int) -> str:
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in
        )

    def presign_put(self, key: str, *, expires_in: int) -> dict[str, Any]:
        url = self.client.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in
        )
        return {"url": url, "method": "PUT", "headers": {}}


@cache
def model_store() -> ModelStore:
    cfg = settings.MODEL_STORE
    if cfg["kind"] == "s3":
        return S3ModelStore(cfg)
    return LocalModelStore(
        Path(settings.LOCAL_STORAGE_ROOT), settings.LOCAL_STORAGE_SECRET or "", settings.PUBLIC_URL
    )


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
