"""Fast storage chores on ``site.<slug>.io``: presigning, ingest, deletion. Thin: load, call, answer."""

from __future__ import annotations

import logging
import posixpath
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any

from pollen_agent import runtime
from pollen_agent.celery_app import app
from pollen_agent.errors import AgentError, RetryableError
from pollen_agent.ingest.ingest import ingest_batch
from pollen_agent.ingest.masks import MaskItem, Segmentation
from pollen_agent.jobs.purge import purge_objects
from pollen_contracts import tasks as names
from pollen_contracts.limits import MAX_UPLOAD_BYTES, PRESIGN_MAX_SECONDS
from pollen_contracts.reports import ArchiveEntry, ArchiveReject, ArchiveResult, IngestResults

logger = logging.getLogger(__name__)

INGEST_REPORT_BATCH = 50


def _answer_error(exc: AgentError) -> dict[str, Any]:
    return {"error": {"code": exc.code, "message": exc.message}}


@app.task(name=names.PING)
def ping(payload: dict[str, Any]) -> dict[str, Any]:
    runtime.config().site(payload["site"])
    return {"ok": True, "site": payload["site"]}


@app.task(name=names.PRESIGN_UPLOAD)
def presign_upload(payload: dict[str, Any]) -> dict[str, Any]:
    """Short-lived upload URLs, one per key, scoped to the site's storage."""
    try:
        storage = runtime.storage_for(payload["site"])
        expires = min(int(payload.get("expires_in", 900)), PRESIGN_MAX_SECONDS)
        slots = []
        sizes = payload.get("sizes") or {}
        for key in payload["keys"]:
            request = storage.presign_put(
                key,
                expires_in=expires,
                max_bytes=int(payload.get("max_bytes", MAX_UPLOAD_BYTES)),
                size=int(sizes[key]) if key in sizes else None,
            )
            slots.append(
                {
                    "key": key,
                    "url": request.url,
                    "method": request.method,
                    "headers": request.headers,
                }
            )
        return {"slots": slots}
    except AgentError as exc:
        return _answer_error(exc)


@app.task(name=names.PRESIGN_DOWNLOAD)
def presign_download(payload: dict[str, Any]) -> dict[str, Any]:
    try:
        storage = runtime.storage_for(payload["site"])
        expires = min(int(payload.get("expires_in", 300)), PRESIGN_MAX_SECONDS)
        return {
            "urls": {key: storage.presign_get(key, expires_in=expires) for key in payload["keys"]}
        }
    except AgentError as exc:
        return _answer_error(exc)


@app.task(name=names.INGEST_IMAGES, bind=True, max_retries=5, acks_late=True)
def ingest_images(self: Any, payload: dict[str, Any]) -> dict[str, int]:
    """Decode and check each uploaded file; report metadata (never pixels) to the hub in batches."""
    slug = payload["site"]
    storage = runtime.storage_for(slug)
    hub = runtime.hub_for(slug)
    items = [(item["image_id"], item["key"]) for item in payload["images"]]
    # The user's own names for the files, for the reasons (older hubs send none).
    names = {item["image_id"]: item.get("filename", "") for item in payload["images"]}
    # The sizes declared for the upload links (older hubs send none).
    declared = {
        item["image_id"]: int(item["size_bytes"])
        for item in payload["images"]
        if item.get("size_bytes") is not None
    }
    # A segmentation dataset: its label map, and each image's masks (one item per reader).
    segmentation = Segmentation.from_payload(payload.get("segmentation"))
    masks = {
        item["image_id"]: [MaskItem.from_payload(m) for m in item.get("masks") or []]
        for item in payload["images"]
    }
    counts = {"accepted": 0, "rejected": 0}
    try:
        for start in range(0, len(items), INGEST_REPORT_BATCH):
            batch = items[start : start + INGEST_REPORT_BATCH]
            results = ingest_batch(
                storage,
                batch,
                thumbnail_prefix=payload["thumbnail_prefix"],
                names=names,
                declared_sizes=declared,
                masks=masks,
                segmentation=segmentation,
                mask_prefix=_mask_prefix(payload),
            )
            answer = hub.post(
                f"agent/datasets/{payload['dataset_id']}/ingest-results/",
                IngestResults.from_dict({"results": [_hub_result(r) for r in results]}).to_dict(),
            )
            for key in counts:
                counts[key] += int(answer.get(key, 0))
    except RetryableError as exc:
        # Ingest is idempotent and the hub ignores images it already recorded.
        raise self.retry(exc=exc, countdown=min(60, 2**self.request.retries)) from exc
    return counts


def _mask_prefix(payload: Mapping[str, Any]) -> str:
    """Where checked masks go: as the hub says, else beside the thumbnails (``datasets/<id>/``)."""
    if payload.get("mask_prefix"):
        return str(payload["mask_prefix"])
    return posixpath.join(posixpath.dirname(payload["thumbnail_prefix"].rstrip("/")), "masks/")


HUB_RESULT_FIELDS = {
    "image_id",
    "status",
    "code",
    "reason",
    "sha256",
    "width",
    "height",
    "channels",
    "modality",
    "format",
    "thumbnail_key",
    "size_bytes",
    "masks",
}


def _hub_result(result: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k in HUB_RESULT_FIELDS and v is not None}


# A dataset's purge must outlive a hub restart: retry for about an hour with backoff; after that
# the hub sends the request again on a later heartbeat (pollen.datasets.deletion).
DELETE_MAX_RETRIES = 20


@app.task(name=names.DELETE_OBJECTS, bind=True, max_retries=DELETE_MAX_RETRIES, acks_late=True)
def delete_objects(self: Any, payload: dict[str, Any]) -> dict[str, int]:
    """Remove objects from site storage; for a deleted dataset, report ``purged`` to the hub."""
    slug = payload["site"]
    try:
        removed = purge_objects(runtime.storage_for(slug), runtime.hub_for(slug), payload)
    except RetryableError as exc:
        raise self.retry(exc=exc, countdown=min(300, 2**self.request.retries)) from exc
    return {"removed": removed}


@app.task(name=names.EXTRACT_ARCHIVE, bind=True, max_retries=5, acks_late=True)
def extract_archive(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Unpack a zip (one folder per label) inside site storage, register the files, then ingest them.

    For a segmentation dataset (``segmentation`` in the payload) masks are paired with their
    images; the hub answers with the images and their masks' ids, and ingest checks both.
    """
    from pollen_agent.errors import UserError
    from pollen_agent.ingest.archive import extract_zip

    slug, dataset_id, archive_id = payload["site"], payload["dataset_id"], payload["archive_id"]
    storage, hub = runtime.storage_for(slug), runtime.hub_for(slug)
    result_path = f"agent/datasets/{dataset_id}/archives/{archive_id}/result/"
    try:
        # zipfile needs to seek, and object-store streams cannot: spool the archive to local disk.
        with tempfile.TemporaryFile() as spool:
            with storage.open_stream(payload["key"]) as stream:
                shutil.copyfileobj(stream, spool, 1 << 20)
            spool.seek(0)
            result = extract_zip(
                storage,
                spool,
                dest_prefix=payload["dest_prefix"],
                segmentation=payload.get("segmentation") is not None,
            )
    except UserError as exc:
        hub.post(result_path, ArchiveResult(status="failed", message=exc.message).to_dict())
        storage.delete(payload["key"])
        return {"failed": exc.code}
    except RetryableError as exc:
        raise self.retry(exc=exc, countdown=min(60, 2**self.request.retries)) from exc
    report = ArchiveResult(
        status="done",
        entries=[
            ArchiveEntry(
                name=e.name,
                key=e.key,
                label=e.label,
                size=e.size,
                masks=e.masks,
                patient_id=e.patient_id,
                split=e.split,
            )
            for e in result.entries
        ],
        rejected=[ArchiveReject(name=name, reason=reason) for name, reason in result.rejected],
    )
    answer = hub.post(result_path, report.to_dict())
    storage.delete(payload["key"])
    ingest = {
        "site": slug,
        "dataset_id": dataset_id,
        "images": answer["images"],  # for segmentation, each with its "masks" and their ids
        "thumbnail_prefix": payload["thumbnail_prefix"],
    }
    ingest.update({k: payload[k] for k in ("segmentation", "mask_prefix") if k in payload})
    ingest_images.apply(kwargs={"payload": ingest}).get(disable_sync_subtasks=False)
    return {"images": len(answer["images"]), "rejected": len(result.rejected)}
