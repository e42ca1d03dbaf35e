"""Build the site's Storage from a plain settings dict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pollen_agent.errors import UserError
from pollen_agent.storage.base import Storage

FS_KEYS = {"kind", "root", "base_url", "secret", "secret_file", "site"}
S3_KEYS = {
    "kind",
    "endpoint_url",
    "bucket",
    "access_key",
    "access_key_file",
    "secret_key",
    "secret_key_file",
    "region",
    "prefix",
    "addressing_style",
}


def _bad(message: str) -> UserError:
    return UserError(f"Storage settings: {message}", code="storage_misconfigured")


def _secret(cfg: dict[str, Any], name: str, *, required: bool) -> str | None:
    """``name`` from the dict, or from the file at ``name_file`` (Docker/K8s secrets)."""
    value, path = cfg.get(name), cfg.get(f"{name}_file")
    if value and path:
        raise _bad(f"set either {name} or {name}_file, not both.")
    if path:
        try:
            value = Path(path).read_text().strip()
        except OSError as exc:
            raise _bad(f"cannot read {name}_file {path!r}: {exc.strerror}.") from exc
    if required and not value:
        raise _bad(f"{name} (or {name}_file) is required.")
    return str(value) if value else None


def _check_keys(cfg: dict[str, Any], allowed: set[str], required: tuple[str, ...]) -> None:
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        raise _bad(f"unknown setting(s) {', '.join(unknown)} for kind {cfg['kind']!r}.")
    missing = [k for k in required if not cfg.get(k)]
    if missing:
        raise _bad(f"missing {', '.join(missing)} for kind {cfg['kind']!r}.")


def storage_from_config(cfg: dict[str, Any]) -> Storage:
    """Return the Storage that ``cfg`` describes.

    ``{"kind": "fs", "root", "base_url", "secret" | "secret_file", "site"}`` or
    ``{"kind": "s3", "bucket", "endpoint_url"?, "access_key"[_file],
    "secret_key"[_file], "region"?, "prefix"?}``. Raises UserError with code
    ``storage_misconfigured`` naming the setting to fix.
    """
    if not isinstance(cfg, dict) or "kind" not in cfg:
        raise _bad("a 'kind' of 'fs' or 's3' is required.")
    kind = cfg["kind"]
    try:
        if kind == "fs":
            from pollen_agent.storage.fs import FilesystemStorage

            _check_keys(cfg, FS_KEYS, ("root", "base_url", "site"))
            secret = _secret(cfg, "secret", required=True)
            return FilesystemStorage(
                cfg["root"], site=cfg["site"], base_url=cfg["base_url"], secret=str(secret)
            )
        if kind == "s3":
            from pollen_agent.storage.s3 import S3Storage

            _check_keys(cfg, S3_KEYS, ("bucket",))
            return S3Storage(
                cfg["bucket"],
                endpoint_url=cfg.get("endpoint_url"),
                region=cfg.get("region") or "us-east-1",
                access_key=_secret(cfg, "access_key", required=True),
                secret_key=_secret(cfg, "secret_key", required=True),
                prefix=cfg.get("prefix") or "",
                addressing_style=cfg.get("addressing_style") or "path",
            )
    except ValueError as exc:
        raise _bad(str(exc)) from exc
    raise _bad(f"unknown kind {kind!r}; use 'fs' or 's3'.")
