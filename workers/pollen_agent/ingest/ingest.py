"""Ingest uploaded files: check, decode, checksum, thumbnail; report metadata only.

Each file is accepted or rejected on its own, with a reason a clinician can
act on. A bad file never stops its batch. Storage faults are not the file's
fault: RetryableError and StorageAccessDenied propagate so the task retries
or fails loudly, and ingest is idempotent, so a retry redoes nothing harmful.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterable, Mapping

from pollen_agent.errors import UserError
from pollen_agent.ingest.decode import decode_image
from pollen_agent.ingest.limits import check_size
from pollen_agent.ingest.thumbnail import make_thumbnail
from pollen_agent.storage.base import ObjectNotFound, Storage, validate_prefix
from pollen_contracts.payloads import MAX_IMAGE_PIXELS, MAX_UPLOAD_BYTES, IngestResult


def thumbnail_key(thumbnail_prefix: str, key: str) -> str:
    """Deterministic per source key, so a retried ingest overwrites, never piles up."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return posixpath.join(validate_prefix(thumbnail_prefix), f"{digest}.png")


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
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> IngestResult:
    """Ingest the object at ``key``; return an accepted or rejected IngestResult."""
    ident = {} if image_id is None else {"image_id": image_id}
    name = posixpath.basename(key)
    try:
        size = storage.size(key)
        check_size(size, max_bytes=max_bytes)  # before downloading anything
        data = storage.get_bytes(key)
    except ObjectNotFound:
        return _rejected(
            f"{name}: the file was not found; the upload may not have finished.",
            code="missing_file",
            **ident,
        )
    except UserError as exc:
        return _rejected(f"{name}: {exc.message}", code=exc.code, **ident)
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        image = decode_image(data, name, max_bytes=max_bytes, max_pixels=max_pixels)
    except UserError as exc:
        return _rejected(
            f"{name}: {exc.message}", code=exc.code, sha256=sha256, size_bytes=len(data), **ident
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
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> list[IngestResult]:
    """Ingest ``(image_id, key)`` pairs; one result per pair, in order.

    ``known_sha256`` maps the checksums already in the dataset to a name to
    quote. With ``reject_duplicates`` a file identical to one already in the
    dataset, or earlier in this batch, is rejected and says which.
    """
    pairs = items.items() if isinstance(items, Mapping) else items
    seen: dict[str, str] = dict(known_sha256 or {})
    results: list[IngestResult] = []
    for image_id, key in pairs:
        result = ingest_one(
            storage,
            key,
            thumbnail_prefix=thumbnail_prefix,
            image_id=image_id,
            max_bytes=max_bytes,
            max_pixels=max_pixels,
        )
        sha = result.get("sha256")
        if result["status"] == "accepted" and sha:
            if reject_duplicates and sha in seen:
                storage.delete(result["thumbnail_key"])
                result = _rejected(
                    code="duplicate",
                    reason=f"{posixpath.basename(key)}: identical to {seen[sha]}, already in this "
                    "dataset; remove one copy so it is not counted twice.",
                    image_id=image_id,
                    sha256=sha,
                    size_bytes=result["size_bytes"],
                )
            else:
                seen[sha] = posixpath.basename(key)
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
