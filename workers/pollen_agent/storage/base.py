"""The storage interface the whole agent uses, and its errors.

Two backends implement it: the filesystem (the embedded default, one folder
per site) and S3. Code above this layer sees only keys, bytes and these
errors, never paths or boto3.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import BinaryIO

from pollen_agent.errors import AgentError, UserError
from pollen_contracts.limits import PRESIGN_MAX_SECONDS
from pollen_contracts.local_signing import key_problem


class StorageAccessDenied(AgentError):
    """The storage refused our credentials: a configuration fault, never retried."""

    code = "storage_access_denied"


class ObjectNotFound(UserError):
    """The key names no object (for example, an upload that never finished)."""

    code = "not_found"


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


@dataclass(frozen=True)
class PresignedRequest:
    """What a client needs to send one request straight to storage."""

    url: str
    method: str
    headers: dict[str, str] = field(default_factory=dict)


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe object key; raise UserError(invalid_key) if not."""
    problem = key_problem(key)
    if problem:
        raise UserError(f"Invalid storage key {key!r}: {problem}.", code="invalid_key")
    return key


def validate_prefix(prefix: str) -> str:
    """Like validate_key, but the empty prefix and a trailing '/' are allowed."""
    problem = key_problem(prefix, allow_prefix=True)
    if problem:
        raise UserError(f"Invalid storage prefix {prefix!r}: {problem}.", code="invalid_key")
    return prefix


def validate_expiry(expires_in: int) -> int:
    if not isinstance(expires_in, int) or not 0 < expires_in <= PRESIGN_MAX_SECONDS:
        raise UserError(
            f"A presigned URL must expire within 1 to {PRESIGN_MAX_SECONDS} seconds.",
            code="invalid_expiry",
        )
    return expires_in


class Storage(abc.ABC):
    """Object storage for one site. Keys are validated by every method."""

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """Store ``data`` at ``key``, replacing any object there, all or nothing."""

    @abc.abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """Return the object's bytes; raise ObjectNotFound when there is none."""

    @abc.abstractmethod
    def open_stream(self, key: str) -> AbstractContextManager[BinaryIO]:
        """Open the object for reading in chunks: ``with storage.open_stream(k) as f``."""

    def get_stream(self, key: str) -> AbstractContextManager[BinaryIO]:
        return self.open_stream(key)

    @abc.abstractmethod
    def exists(self, key: str) -> bool: ...

    @abc.abstractmethod
    def size(self, key: str) -> int:
        """The object's size in bytes; raise ObjectNotFound when there is none."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Delete the object; deleting a missing object is not an error."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield the objects whose keys start with ``prefix``, in key order."""

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; return how many were deleted."""
        validate_prefix(prefix)
        if not prefix:
            raise UserError("Refusing to delete every object in storage.", code="invalid_key")
        count = 0
        for info in list(self.list(prefix)):
            self.delete(info.key)
            count += 1
        return count

    @abc.abstractmethod
    def presign_put(
        self,
        key: str,
        *,
        expires_in: int,
        content_type: str | None = None,
        max_bytes: int | None = None,
        size: int | None = None,
    ) -> PresignedRequest:
        """A short-lived request that uploads one object without our credentials.

        With ``size`` (the size the uploader declared), the link refuses a larger body."""

    @abc.abstractmethod
    def presign_get(self, key: str, *, expires_in: int) -> str:
        """A short-lived URL that downloads one object without our credentials."""
