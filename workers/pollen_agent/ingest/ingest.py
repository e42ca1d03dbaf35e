"""Ingest uploaded files: check, decode, checksum, thumbnail; report metadata only.

Each file is accepted or rejected on its own, with a reason a clinician can
act on. A bad file never stops its batch. Storage faults are not the file's
fault: RetryableError and StorageAccessDenied propagate so the task retries
or fails loudly, and ingest is idempotent, so a retry redoes nothing harmful.

A reason names the file as the user knows it (the name it was uploaded under), once.
Files are stored under generated keys, which mean nothing to the user and never appear.

In a segmentation dataset each image's masks are checked beside it (``ingest.masks``): every
mask gets its own verdict, and an image that needs a mask but has none usable is rejected.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypedDict

from pollen_agent.errors import UserError
from pollen_agent.ingest.decode import DecodedImage, decode_image
from pollen_agent.ingest.limits import check_size
from pollen_agent.ingest.masks import MaskItem, Segmentation, ingest_masks, not_checked
from pollen_agent.ingest.thumbnail import make_thumbnail
from pollen_agent.storage.base import ObjectNotFound, Storage, validate_prefix
from pollen_contracts.limits import MAX_IMAGE_PIXELS, MAX_UPLOAD_BYTES
from pollen_contracts.reports import IngestedMask


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
    masks: list[dict[str, Any]]  # segmentation: ``reports.IngestedMask`` per mask, in order


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
    masks: Sequence[MaskItem] = (),
    segmentation: Segmentation | None = None,
    mask_prefix: str = "",
) -> IngestResult:
    """Ingest the object at ``key``; return an accepted or rejected IngestResult.

    ``filename`` is the user's name for the file, which reasons begin with.
    ``declared_size`` is the size the uploader declared when asking for the upload link.
    With ``segmentation`` (a segmentation dataset) each of ``masks`` is checked against the
    image and stored under ``mask_prefix``; the result's ``masks`` holds their verdicts.
    """
    result, image = _check_image(
        storage,
        key,
        thumbnail_prefix=thumbnail_prefix,
        image_id=image_id,
        filename=filename,
        max_bytes=max_bytes,
        max_pixels=max_pixels,
        declared_size=declared_size,
    )
    if segmentation is None:
        return result
    if image is None:
        result["masks"] = _as_dicts(not_checked(masks, filename))
        return result
    verdicts = ingest_masks(
        storage,
        image,
        masks,
        segmentation,
        image_key=key,
        image_name=filename,
        mask_prefix=mask_prefix,
        max_bytes=max_bytes,
        max_pixels=max_pixels,
    )
    result["masks"] = _as_dicts(verdicts)
    problem = _mask_problem(filename, verdicts, segmentation)
    if problem is None:
        return result
    code, reason = problem
    return _withdraw(storage, result, code=code, reason=reason)


def _ident(image_id: int | None) -> dict[str, int]:
    return {} if image_id is None else {"image_id": image_id}


def _as_dicts(verdicts: Iterable[IngestedMask]) -> list[dict[str, Any]]:
    return [verdict.to_dict() for verdict in verdicts]


def _mask_problem(
    filename: str, verdicts: Sequence[IngestedMask], segmentation: Segmentation
) -> tuple[str, str] | None:
    """Why an image of a dataset that requires masks cannot be kept: no mask, or none usable."""
    if not segmentation.masks_required:
        return None
    if not verdicts:
        stem = posixpath.splitext(filename)[0] if filename else "<image name>"
        return "mask_missing", _named(
            filename,
            "This dataset needs a mask for every image, and none came with this one. Add its "
            f"mask named '{stem}_mask.png' (beside the image or in a masks folder), or list "
            "it in the archive's manifest.",
        )
    if all(v.status == "rejected" for v in verdicts):
        return "mask_rejected", _named(
            filename,
            "This dataset needs a mask for every image, and this image's mask was refused "
            f"({verdicts[0].reason}).",
        )
    return None


def _withdraw(storage: Storage, result: IngestResult, *, code: str, reason: str) -> IngestResult:
    """An accepted file that is not kept after all: what ingest wrote for it goes too."""
    keys = [result.get("thumbnail_key", "")]
    for mask in result.get("masks", []):
        keys += [mask.get("key", ""), mask.get("thumbnail_key", "")]
    for key in filter(None, keys):
        storage.delete(key)
    kept = {k: v for k, v in result.items() if k in ("image_id", "sha256", "size_bytes", "masks")}
    return _rejected(reason, code=code, **kept)


def _check_image(
    storage: Storage,
    key: str,
    *,
    thumbnail_prefix: str,
    image_id: int | None,
    filename: str,
    max_bytes: int,
    max_pixels: int,
    declared_size: int | None,
) -> tuple[IngestResult, DecodedImage | None]:
    """The image's verdict, and its pixels when it was accepted (its masks are checked on them)."""
    ident = _ident(image_id)
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
            ), None
        data = storage.get_bytes(key)
    except ObjectNotFound:
        return _rejected(
            _named(filename, "The file was not found; the upload may not have finished."),
            code="missing_file",
            **ident,
        ), None
    except UserError as exc:
        return _rejected(_named(filename, exc.message), code=exc.code, **ident), None
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
        ), None
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
    return result, image


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
    masks: Mapping[int, Sequence[MaskItem]] | None = None,
    segmentation: Segmentation | None = None,
    mask_prefix: str = "",
) -> list[IngestResult]:
    """Ingest ``(image_id, key)`` pairs; one result per pair, in order.

    ``names`` maps image ids to the user's file names, for the reasons. ``known_sha256``
    maps the checksums already in the dataset to a name to quote. With
    ``reject_duplicates`` a file identical to one already in the dataset, or earlier in
    this batch, is rejected and says which. A segmentation dataset passes ``segmentation``,
    each image's ``masks`` and the ``mask_prefix`` their checked copies are written under.
    """
    names = names or {}
    declared_sizes = declared_sizes or {}
    masks = masks or {}
    pairs = items.items() if isinstance(items, Mapping) else items
    seen: dict[str, str] = dict(known_sha256 or {})
    results: list[IngestResult] = []
    for image_id, key in pairs:
        name = names.get(image_id, "")
        result = ingest_one(
            storage,
            key,
            thumbnail_prefix=thumbnail_prefix,
            image_id=image_id,
            filename=name,
            max_bytes=max_bytes,
            max_pixels=max_pixels,
            declared_size=declared_sizes.get(image_id),
            masks=masks.get(image_id, ()),
            segmentation=segmentation,
            mask_prefix=mask_prefix,
        )
        sha = result.get("sha256")
        if result["status"] == "accepted" and sha:
            if reject_duplicates and sha in seen:
                result = _withdraw(
                    storage,
                    result,
                    code="duplicate",
                    reason=_named(
                        name,
                        f"This file is identical to {seen[sha]}, already in this dataset; "
                        "remove one copy so it is not counted twice.",
                    ),
                )
                if segmentation is not None:
                    result["masks"] = _as_dicts(not_checked(masks.get(image_id, ()), name))
            else:
                seen[sha] = name or "another file in this upload"
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
