"""Ingest uploaded files: check, decode, checksum, thumbnail; report metadata only.

Each file is accepted or rejected on its own, with a reason a clinician can
act on. A bad file never stops its batch. Storage faults are not the file's
fault: RetryableError and StorageAccessDenied propagate so the task retries
or fails loudly, and ingest is idempotent, so a retry redoes nothing harmful.

A reason names the file as the user knows it (the name it was uploaded under), once.
Files are stored under generated keys, which mean nothing to the user and never appear.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterable, Mapping
from typing import TypedDict

from pollen_agent.errors import UserError
from pollen_agent.ingest.decode import decode_image
from pollen_agent.ingest.limits import check_size
from pollen_agent.ingest.thumbnail import make_thumbnail
from pollen_agent.storage.base import ObjectNotFound, Storage, validate_prefix
from pollen_contracts.limits import MAX_IMAGE_PIXELS, MAX_UPLOAD_BYTES


def thumbnail_key(thumbnail_prefix: str, key: str) -> str:
    """Deterministic per source key, so a retried ingest overwrites, never piles up."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return posixpath.join(validate_prefix(thumbnail_prefix), f"{digest}.png")


class IngestResult(TypedDict, total=False):
    """What the agent learnt of one file while checking it; sent as ``reports.IngestedImage``."""

    image_id: int
    status: str  # "accepted" | "rejected"
    code: str  # why it was rejected, stable: "duplicate", "image_too_large", ...
    reason: str
    sha256: str
    width: int
    height: int
    channels: int
    modality: str
    thumbnail_key: str
    size_bytes: int


def _named(filename: str, message: str) -> str:
    return f"{filename}: {message}" if filename else message


def _rejected(reason: str, *, code: str = "unreadable", **extra: object) -> IngestResult:
    result: IngestResult = {"status": "rejected", "reason": reason, "code": code}
    result.update(extra)  # type: ignore[typeddict-item]
    return result


def ingest_one(
    storage: Storage,
    key: str,
    *,
    thumbnail_prefix: str,
    image_id: int | None = None,
    filename: str = "",
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_IMAGE_PIXELS,
    declared_size: int | None = None,
) -> IngestResult:
    """Ingest the object at ``key``; return an accepted or rejected IngestResult.

    ``filename`` is the user's name for the file, which reasons begin with.
    ``declared_size`` is the size the uploader declared when asking for the upload link.
    """
    ident = {} if image_id is None else {"image_id": image_id}
    try:
        size = storage.size(key)
        check_size(size, max_bytes=max_bytes)  # before downloading anything
        if declared_size is not None and size != declared_size:
            return _rejected(
                _named(
                    filename,
                    f"The stored file is {size} bytes, not the {declared_size} bytes declared "
                    "when its upload began: the upload was cut short or replaced. Upload the "
                    "file again.",
                ),
                code="size_mismatch",
                size_bytes=size,
                **ident,
            )
        data = storage.get_bytes(key)
    except ObjectNotFound:
        return _rejected(
            _named(filename, "The file was not found; the upload may not have finished."),
            code="missing_file",
            **ident,
        )
    except UserError as exc:
        return _rejected(_named(filename, exc.message), code=exc.code, **ident)
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        image = decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels)
    except UserError as exc:
        return _rejected(
            _named(filename, exc.message),
            code=exc.code,
            sha256=sha256,
            size_bytes=len(data),
            **ident,
        )
    thumb = thumbnail_key(thumbnail_prefix, key)
    storage.put_bytes(thumb, make_thumbnail(image), content_type="image/png")
    result: IngestResult = {
        "status": "accepted",
        "reason": "",
        "sha256": sha256,
        "width": image.width,
        "height": image.height,
        "channels": image.channels,
        "modality": image.modality,
        "thumbnail_key": thumb,
        "size_bytes": len(data),
    }
    result.update(ident)  # type: ignore[typeddict-item]
    return result


def ingest_batch(
    storage: Storage,
    items: Mapping[int, str] | Iterable[tuple[int, str]],
    *,
    thumbnail_prefix: str,
    known_sha256: Mapping[str, str] | None = None,
    reject_duplicates: bool = True,
    names: Mapping[int, str] | None = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_IMAGE_PIXELS,
    declared_sizes: Mapping[int, int] | None = None,
) -> list[IngestResult]:
    """Ingest ``(image_id, key)`` pairs; one result per pair, in order.

    ``names`` maps image ids to the user's file names, for the reasons. ``known_sha256``
    maps the checksums already in the dataset to a name to quote. With
    ``reject_duplicates`` a file identical to one already in the dataset, or earlier in
    this batch, is rejected and says which.
    """
    names = names or {}
    declared_sizes = declared_sizes or {}
    pairs = items.items() if isinstance(items, Mapping) else items
    seen: dict[str, str] = dict(known_sha256 or {})
    results: list[IngestResult] = []
    for image_id, key in pairs:
        result = ingest_one(
            storage,
            key,
            thumbnail_prefix=thumbnail_prefix,
            image_id=image_id,
            filename=names.get(image_id, ""),
            max_bytes=max_bytes,
            max_pixels=max_pixels,
            declared_size=declared_sizes.get(image_id),
        )
        sha = result.get("sha256")
        if result["status"] == "accepted" and sha:
            if reject_duplicates and sha in seen:
                storage.delete(result["thumbnail_key"])
                result = _rejected(
                    code="duplicate",
                    reason=_named(
                        names.get(image_id, ""),
                        f"This file is identical to {seen[sha]}, already in this dataset; "
                        "remove one copy so it is not counted twice.",
                    ),
                    image_id=image_id,
                    sha256=sha,
                    size_bytes=result["size_bytes"],
                )
            else:
                seen[sha] = names.get(image_id) or "another file in this upload"
        results.append(result)
    return results


def find_duplicates(results: Iterable[IngestResult]) -> dict[str, list[int]]:
    """sha256 -> the image ids (or positions, without ids) sharing it, for groups of 2+."""
    groups: dict[str, list[int]] = {}
    for position, result in enumerate(results):
        sha = result.get("sha256")
        if sha:
            groups.setdefault(sha, []).append(result.get("image_id", position))
    return {sha: ids for sha, ids in groups.items() if len(ids) > 1}
