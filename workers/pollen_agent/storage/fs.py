"""Filesystem storage: the embedded default, one folder per site.

Objects live at ``{root}/{site}/{key}``. Presigned URLs point at the hub's
``/local-storage/`` view, which checks them with ``local_signing`` and reads
or writes the same folder, so the embedded demo needs no S3 server.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

from pollen_agent.errors import RetryableError, UserError
from pollen_agent.storage.base import (
    ObjectInfo,
    ObjectNotFound,
    PresignedRequest,
    Storage,
    StorageAccessDenied,
    validate_expiry,
    validate_key,
    validate_prefix,
)
from pollen_contracts import local_signing

TMP_PREFIX = ".pollen-tmp-"


@contextlib.contextmanager
def _os_errors(key: str) -> Iterator[None]:
    """Translate OS errors into the storage errors callers act on."""
    try:
        yield
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise ObjectNotFound(f"No file is stored at {key!r}.") from None
    except PermissionError as exc:
        raise StorageAccessDenied(f"The agent may not access {key!r}: {exc.strerror}.") from exc
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise UserError(f"The storage key {key!r} is too long.", code="invalid_key") from exc
        raise RetryableError(f"Local storage failed for {key!r}: {exc.strerror}.") from exc


class FilesystemStorage(Storage):
    def __init__(self, root: str | Path, *, site: str, base_url: str, secret: str) -> None:
        if not site or "/" in site or local_signing.key_problem(site):
            raise ValueError(f"invalid site slug {site!r}")
        problem = local_signing.secret_problem(secret)
        if problem:
            raise ValueError(f"the filesystem backend's signing secret {problem}")
        self.root = Path(root)
        self.site = site
        self.base_url = base_url
        self._secret = secret
        self.site_root = self.root / site

    def _path(self, key: str) -> Path:
        return local_signing.local_path(self.root, self.site, validate_key(key))

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        path = self._path(key)
        with _os_errors(key):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        with _os_errors(key):
            return path.read_bytes()

    def open_stream(self, key: str) -> AbstractContextManager[BinaryIO]:
        path = self._path(key)
        with _os_errors(key):
            return path.open("rb")

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        path = self._path(key)
        with _os_errors(key):
            if not path.is_file():
                raise FileNotFoundError(key)
            return path.stat().st_size

    def delete(self, key: str) -> None:
        path = self._path(key)
        with _os_errors(key):
            try:
                path.unlink()
            except (FileNotFoundError, IsADirectoryError):
                return
            self._prune_empty_dirs(path.parent)

    def _prune_empty_dirs(self, folder: Path) -> None:
        while folder != self.site_root and self.site_root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        # Walk only the deepest folder the prefix names; S3 prefixes are plain
        # string prefixes, so "a/b" must also match "a/bc.png".
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.site_root / folder if folder else self.site_root
        found: list[ObjectInfo] = []
        with _os_errors(prefix):
            for dirpath, dirnames, filenames in os.walk(start):
                dirnames[:] = [d for d in dirnames if not d.startswith(TMP_PREFIX)]
                rel = Path(dirpath).relative_to(self.site_root).as_posix()
                for name in filenames:
                    if name.startswith(TMP_PREFIX):
                        continue
                    key = name if rel == "." else f"{rel}/{name}"
                    if key.startswith(prefix):
                        with contextlib.suppress(FileNotFoundError):
                            found.append(ObjectInfo(key, os.stat(Path(dirpath, name)).st_size))
        yield from sorted(found, key=lambda info: info.key)

    def _sign(self, key: str, method: str, expires_in: int, max_bytes: int | None) -> str:
        return local_signing.sign_local_url(
            self._secret,
            base_url=self.base_url,
            site=self.site,
            key=validate_key(key),
            method=method,
            expires_in=validate_expiry(expires_in),
            max_bytes=max_bytes,
        )

    def presign_put(
        self,
        key: str,
        *,
        expires_in: int,
        content_type: str | None = None,
        max_bytes: int | None = None,
        size: int | None = None,
    ) -> PresignedRequest:
        headers = {"Content-Type": content_type} if content_type else {}
        # The signed cap is the declared size when there is one: a larger body is refused.
        cap = size if size is not None else max_bytes
        return PresignedRequest(self._sign(key, "PUT", expires_in, cap), "PUT", headers)

    def presign_get(self, key: str, *, expires_in: int) -> str:
        return self._sign(key, "GET", expires_in, None)
