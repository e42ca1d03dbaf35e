"""Bulk import of a zip archive (one folder per label): upload to site storage, unpack at the site."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import transaction

from pollen.accounts.caller import Caller
from pollen.audit.services import audit_record
from pollen.core.dispatch import ask_site_agent, send_on_commit
from pollen.core.errors import ApiError, Conflict
from pollen.datasets.masks import ingest_masks_payload, masks_create, segmentation_payload
from pollen.datasets.models import (
    ArchiveImport,
    ArchiveStatus,
    Dataset,
    Image,
    ImageStatus,
    Split,
    Task,
)
from pollen.datasets.positive_class import positive_class_refresh
from pollen.datasets.services import check_labels, ensure_active, safe_filename
from pollen.datasets.splits import split_for
from pollen_contracts import limits, queues, tasks


def archive_slot_create(
    *, caller: Caller, dataset: Dataset, filename: str, size_bytes: int, add_labels: bool = False
) -> dict[str, Any]:
    """Reserve an import and get one presigned upload URL for the zip."""
    caller.require_clinical()
    ensure_active(dataset)
    name = safe_filename(filename)
    if not name.lower().endswith(".zip"):
        what = (
            "images and their masks"
            if dataset.task == Task.SEGMENTATION
            else "one folder per label"
        )
        raise ApiError(f"Send a .zip file with {what}.", code="not_a_zip")
    if size_bytes <= 0 or size_bytes > limits.MAX_ARCHIVE_BYTES:
        raise ApiError(
            f"The archive must be between 1 byte and {limits.MAX_ARCHIVE_BYTES // 1024**3} GB.",
            code="file_too_large",
        )
    key = f"datasets/{dataset.pk}/archives/{uuid.uuid4().hex}.zip"
    answer = ask_site_agent(
        dataset.site.slug,
        tasks.PRESIGN_UPLOAD,
        {
            "site": dataset.site.slug,
            "keys": [key],
            "expires_in": settings.PRESIGN_SECONDS,
            "max_bytes": limits.MAX_ARCHIVE_BYTES,
            "sizes": {key: size_bytes},  # the link takes exactly the declared size
        },
    )
    slot = answer["slots"][0]
    with transaction.atomic():
        archive = ArchiveImport.objects.create(
            dataset=dataset, filename=name, storage_key=key, add_labels=add_labels
        )
        audit_record(
            caller=caller,
            action="dataset.archive_slot",
            site_id=dataset.site_id,
            target_type="dataset",
            target_id=dataset.pk,
            detail={"archive": archive.pk, "filename": name},
        )
    return {
        "archive_id": archive.pk,
        "url": slot["url"],
        "method": slot["method"],
        "headers": slot["headers"],
    }


def archive_import_start(
    *, caller: Caller, dataset: Dataset, archive: ArchiveImport
) -> ArchiveImport:
    caller.require_clinical()
    ensure_active(dataset)
    with transaction.atomic():
        if not ArchiveImport.objects.filter(pk=archive.pk, status=ArchiveStatus.WAITING).update(
            status=ArchiveStatus.EXTRACTING
        ):
            raise Conflict(
                "This archive is already being unpacked or was unpacked.", code="archive_started"
            )
        payload: dict[str, Any] = {
            "site": dataset.site.slug,
            "dataset_id": dataset.pk,
            "archive_id": archive.pk,
            "key": archive.storage_key,
            "dest_prefix": f"datasets/{dataset.pk}/images/zip-{archive.pk}",
            "thumbnail_prefix": f"datasets/{dataset.pk}/thumbnails/",
        }
        segmentation = segmentation_payload(dataset)
        if segmentation is not None:
            payload["segmentation"] = segmentation
            payload["mask_prefix"] = f"datasets/{dataset.pk}/masks/"
        send_on_commit(tasks.EXTRACT_ARCHIVE, payload, queue=queues.io_queue(dataset.site.slug))
    archive.refresh_from_db()
    return archive


def archive_result_record(
    *, dataset: Dataset, archive: ArchiveImport, result: dict[str, Any]
) -> list[dict]:
    """The agent unpacked the archive: create image rows for its files (pending ingest) and keep refusals."""
    with transaction.atomic():
        locked = ArchiveImport.objects.select_for_update().get(pk=archive.pk)
        if locked.status != ArchiveStatus.EXTRACTING:
            raise Conflict("This archive's result was already recorded.", code="archive_recorded")
        if result["status"] == "failed":
            locked.status, locked.message = ArchiveStatus.FAILED, result.get("message", "")[:2000]
            locked.save(update_fields=["status", "message"])
            return []
        rejected = [
            {"filename": r["name"][:255], "reason": r["reason"][:500]}
            for r in result.get("rejected", [])
        ]
        entries = result.get("entries", [])
        labels = {e["label"] for e in entries if e["label"]}
        unknown = labels - set(dataset.label_names)
        if unknown and locked.add_labels:
            dataset.label_names = check_labels(dataset.label_names + sorted(unknown))
            positive_class_refresh(dataset)
            dataset.save(update_fields=["label_names", "positive_class"])
            unknown = set()
        rows, kept = [], []
        for entry in entries:
            if entry["label"] in unknown:
                rejected.append(
                    {
                        "filename": entry["name"][:255],
                        "reason": (
                            f"The folder '{entry['label']}' is not one of this dataset's labels. Rename the folder, or "
                            "allow new labels when importing."
                        ),
                    }
                )
                continue
            patient = (entry.get("patient_id") or "").strip()[:100]
            chosen_split = entry.get("split") or ""
            rows.append(
                Image(
                    dataset=dataset,
                    filename=entry["name"].split("/")[-1][:255],
                    storage_key=entry["key"],
                    label=entry["label"],
                    patient_id=patient,
                    size_bytes=entry.get("size"),
                    # A manifest's split stands; otherwise the split follows the patient.
                    split=chosen_split
                    if chosen_split in Split.values
                    else split_for(
                        seed=dataset.split_seed, patient_id=patient, fallback_key=entry["key"]
                    ),
                    status=ImageStatus.PENDING,
                    upload_expires_at=None,  # unpacked at the site: nothing left to upload
                )
            )
            kept.append(entry)
        created = Image.objects.bulk_create(rows, batch_size=1000)
        masks = {
            image.pk: masks_create(image, _archive_mask_groups(entry))
            for image, entry in zip(created, kept, strict=True)
        }
        locked.status = ArchiveStatus.DONE
        locked.image_count = len(created)
        locked.rejected = rejected[:5000]
        locked.save(update_fields=["status", "image_count", "rejected"])
        audit_record(
            caller=None,
            action="dataset.archive_import",
            site_id=dataset.site_id,
            target_type="dataset",
            target_id=dataset.pk,
            detail={"archive": archive.pk, "images": len(created), "rejected": len(rejected)},
        )
    return [
        {"image_id": image.pk, "key": image.storage_key, "filename": image.filename}
        | (
            {"masks": ingest_masks_payload(masks[image.pk])}
            if dataset.task == Task.SEGMENTATION
            else {}
        )
        for image in created
    ]


def _archive_mask_groups(entry: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    groups: dict[str, list[tuple[str, str]]] = {}
    for mask in entry.get("masks") or []:
        reader = str(mask.get("reader", ""))[:50]
        parts = list(zip(mask["names"], mask["keys"], strict=False))
        groups.setdefault(reader, []).extend(
            (name.split("/")[-1][:255], key) for name, key in parts
        )
    return groups
