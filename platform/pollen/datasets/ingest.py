"""New uploads: upload slots, completing them, and recording what the site agent ingested."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from pollen.accounts.caller import Caller
from pollen.audit.services import audit_record
from pollen.core.dispatch import ask_site_agent, send_on_commit
from pollen.core.errors import ApiError
from pollen.datasets.masks import (
    clean_reader,
    ingest_masks_payload,
    mask_key,
    mask_results_record,
    mask_slots,
    masks_create,
    segmentation_payload,
)
from pollen.datasets.models import Dataset, Image, ImageStatus, Mask, Task
from pollen.datasets.positive_class import (
    positive_class_refresh,
)
from pollen.datasets.services import check_labels, clean_label, ensure_active, safe_filename
from pollen.datasets.splits import split_for
from pollen_contracts import limits, queues, tasks

MAX_FILES_PER_REQUEST = 500


@dataclass
class MaskRequest:
    filename: str
    reader: str
    size_bytes: int | None
    key: str = ""


@dataclass
class SlotRequest:
    filename: str
    label: str
    patient_id: str
    size_bytes: int | None
    masks: list[MaskRequest] = field(default_factory=list)


def _size_problem(size_bytes: int | None, what: str = "file") -> tuple[str, str] | None:
    if size_bytes is not None and size_bytes < 0:
        return "invalid_size", (
            f"The declared size ({size_bytes} bytes) cannot be right. Send the {what}'s "
            "size in bytes, or leave it out."
        )
    if size_bytes is not None and size_bytes == 0:
        return "empty_file", f"The {what} is empty. Export it again from your imaging system."
    if size_bytes is not None and size_bytes > limits.MAX_UPLOAD_BYTES:
        limit = limits.MAX_UPLOAD_BYTES // (1024 * 1024)
        return (
            "file_too_large",
            f"The {what} is larger than {limit} MB. Split or compress it before uploading.",
        )
    return None


def _mask_problem(dataset: Dataset, item: SlotRequest) -> tuple[str, str] | None:
    if item.masks and dataset.task != Task.SEGMENTATION:
        return "masks_need_segmentation", (
            "This dataset labels whole images; masks belong in a segmentation dataset. Send "
            "the image without masks, or create a segmentation dataset."
        )
    if dataset.task == Task.SEGMENTATION and dataset.masks_required and not item.masks:
        return "mask_missing", (
            "This dataset needs a mask with every image. Send its mask with it (masks: "
            "[{filename, reader}]), or upload images and masks together as a zip."
        )
    for mask in item.masks:
        problem = _size_problem(mask.size_bytes, f"mask {mask.filename}")
        if problem:
            return problem
    return None


def _slot_problem(dataset: Dataset, item: SlotRequest, add_labels: bool) -> tuple[str, str] | None:
    problem = _size_problem(item.size_bytes) or _mask_problem(dataset, item)
    if problem:
        return problem
    if item.label and item.label not in dataset.label_names and not add_labels:
        known = ", ".join(dataset.label_names) or "none yet"
        return "unknown_label", (
            f"The label '{item.label}' is not one of this dataset's labels ({known}). "
            "Fix the spelling or add the label to the dataset first."
        )
    return None


def upload_slots_create(
    *, caller: Caller, dataset: Dataset, files: list[dict[str, Any]], add_labels: bool = False
) -> dict[str, Any]:
    """Reserve image rows and get presigned upload URLs for them from the site's agent.

    Each file is accepted or refused on its own: a bad entry never sinks the batch.
    """
    caller.require_clinical()
    ensure_active(dataset)
    if not files:
        raise ApiError("List at least one file to upload.", code="no_files")
    if len(files) > MAX_FILES_PER_REQUEST:
        raise ApiError(
            f"Ask for at most {MAX_FILES_PER_REQUEST} upload slots at a time.",
            code="too_many_files",
        )
    accepted: list[tuple[SlotRequest, str]] = []
    refused: list[dict[str, str]] = []
    for raw in files:
        try:
            item = SlotRequest(
                filename=safe_filename(raw["filename"]),
                label=clean_label(raw.get("label", "")),
                patient_id=(raw.get("patient_id") or "").strip()[:100],
                size_bytes=raw.get("size_bytes"),
                masks=[
                    MaskRequest(
                        filename=safe_filename(mask["filename"]),
                        reader=clean_reader(mask.get("reader", "")),
                        size_bytes=mask.get("size_bytes"),
                    )
                    for mask in raw.get("masks") or []
                ],
            )
        except ApiError as exc:
            refused.append(
                {
                    "filename": str(raw.get("filename", ""))[:255],
                    "code": exc.error_code,
                    "reason": exc.message,
                }
            )
            continue
        problem = _slot_problem(dataset, item, add_labels)
        if problem:
            refused.append({"filename": item.filename, "code": problem[0], "reason": problem[1]})
            continue
        suffix = item.filename.rsplit(".", 1)[-1].lower() if "." in item.filename else "bin"
        key = f"datasets/{dataset.pk}/images/{uuid.uuid4().hex}.{suffix[:8]}"
        for mask in item.masks:
            mask.key = mask_key(dataset, mask.filename)
        accepted.append((item, key))
    if not accepted:
        return {"slots": [], "refused": refused}
    answer = ask_site_agent(
        dataset.site.slug,
        tasks.PRESIGN_UPLOAD,
        {
            "site": dataset.site.slug,
            "keys": [key for _, key in accepted]
            + [mask.key for item, _ in accepted for mask in item.masks],
            "expires_in": settings.PRESIGN_SECONDS,
            "max_bytes": limits.MAX_UPLOAD_BYTES,
            # The link for a file of declared size takes exactly that many bytes.
            "sizes": {key: item.size_bytes for item, key in accepted if item.size_bytes}
            | {
                mask.key: mask.size_bytes
                for item, _ in accepted
                for mask in item.masks
                if mask.size_bytes
            },
        },
    )
    urls = {slot["key"]: slot for slot in answer["slots"]}
    with transaction.atomic():
        new_labels = [
            item.label
            for item, _ in accepted
            if item.label and item.label not in dataset.label_names
        ]
        if new_labels:
            dataset.label_names = check_labels(dataset.label_names + sorted(set(new_labels)))
            positive_class_refresh(dataset)
            dataset.save(update_fields=["label_names", "positive_class"])
        images = Image.objects.bulk_create(
            [
                Image(
                    dataset=dataset,
                    filename=item.filename,
                    storage_key=key,
                    label=item.label,
                    patient_id=item.patient_id,
                    size_bytes=item.size_bytes,
                    split=split_for(
                        seed=dataset.split_seed, patient_id=item.patient_id, fallback_key=key
                    ),
                )
                for item, key in accepted
            ]
        )
        masks_by_image = {
            image.pk: masks_create(image, _reader_groups(item.masks))
            for image, (item, _) in zip(images, accepted, strict=True)
        }
        audit_record(
            caller=caller,
            action="dataset.upload_slots",
            site_id=dataset.site_id,
            target_type="dataset",
            target_id=dataset.pk,
            detail={"count": len(images), "refused": len(refused)},
        )
    slots = [
        {
            "image_id": image.pk,
            "filename": image.filename,
            "key": image.storage_key,
            "url": urls[image.storage_key]["url"],
            "method": urls[image.storage_key]["method"],
            "headers": urls[image.storage_key].get("headers", {}),
            "expires_in": settings.PRESIGN_SECONDS,
            "mask_slots": mask_slots(masks_by_image[image.pk], urls),
        }
        for image in images
    ]
    return {"slots": slots, "refused": refused}


def _reader_groups(masks: list[MaskRequest]) -> dict[str, list[tuple[str, str]]]:
    """A reader's files (several are merged at the site), in the order they were sent."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for mask in masks:
        groups.setdefault(mask.reader, []).append((mask.filename, mask.key))
    return groups


def uploads_complete(*, caller: Caller, dataset: Dataset, image_ids: list[int]) -> int:
    """The client finished sending bytes: ask the agent to check (ingest) those images."""
    caller.require_clinical()
    ensure_active(dataset)
    images = list(
        dataset.images.filter(pk__in=image_ids, status=ImageStatus.PENDING).values_list(
            "pk", "storage_key", "filename", "size_bytes"
        )
    )
    if not images:
        raise ApiError("None of these images is waiting to be checked.", code="nothing_to_ingest")
    payload = ingest_payload(
        dataset,
        [
            {"image_id": pk, "key": key, "filename": name, "size_bytes": size}
            for pk, key, name, size in images
        ],
    )
    with transaction.atomic():
        # The upload is finished: these slots no longer expire (see pollen.datasets.uploads).
        dataset.images.filter(pk__in=[pk for pk, *_ in images]).update(upload_expires_at=None)
        send_on_commit(tasks.INGEST_IMAGES, payload, queue=queues.io_queue(dataset.site.slug))
    return len(images)


def ingest_payload(dataset: Dataset, images: list[dict[str, Any]]) -> dict[str, Any]:
    """The agent's ingest work for ``images`` (each with image_id, key, filename, size_bytes).

    The file's own name goes along so that a rejection names it, not the storage key; the
    declared size, so that the agent refuses another size before download. A segmentation
    dataset's images carry their masks, and the payload the label map they are checked against.
    """
    payload: dict[str, Any] = {
        "site": dataset.site.slug,
        "dataset_id": dataset.pk,
        "images": images,
        "thumbnail_prefix": f"datasets/{dataset.pk}/thumbnails/",
    }
    segmentation = segmentation_payload(dataset)
    if segmentation is not None:
        by_image: dict[int, list[Mask]] = {}
        for mask in Mask.objects.filter(image_id__in=[item["image_id"] for item in images]):
            by_image.setdefault(mask.image_id, []).append(mask)
        for item in images:
            item["masks"] = ingest_masks_payload(by_image.get(item["image_id"], []))
        payload["segmentation"] = segmentation
        payload["mask_prefix"] = f"datasets/{dataset.pk}/masks/"
    return payload


def ingest_results_record(*, dataset: Dataset, results: list[dict[str, Any]]) -> dict[str, int]:
    """Store what the agent found for each file; flag exact duplicates within the dataset."""
    by_id = {r["image_id"]: r for r in results}
    counts = {"accepted": 0, "rejected": 0}
    with transaction.atomic():
        images = {
            img.pk: img for img in dataset.images.select_for_update().filter(pk__in=list(by_id))
        }
        hashes = [
            r.get("sha256") for r in results if r.get("status") == "accepted" and r.get("sha256")
        ]
        existing = {
            sha: name
            for sha, name in dataset.images.filter(status=ImageStatus.ACCEPTED, sha256__in=hashes)
            .exclude(pk__in=list(by_id))
            .values_list("sha256", "filename")
        }
        now = timezone.now()
        outlined: list[tuple[Image, list[dict[str, Any]]]] = []
        for image_id, result in by_id.items():
            image = images.get(image_id)
            if image is None or image.status != ImageStatus.PENDING:
                continue  # deleted meanwhile, or already recorded: never count twice
            _apply_result(image, result, existing, now)
            counts[image.status] += 1
            if dataset.task == Task.SEGMENTATION:
                outlined.append((image, result.get("masks") or []))
        if outlined:
            mask_results_record(outlined)
        Image.objects.bulk_update(
            list(images.values()),
            [
                "status",
                "reject_code",
                "reject_reason",
                "sha256",
                "size_bytes",
                "width",
                "height",
                "channels",
                "modality",
                "thumbnail_key",
                "ingested_at",
            ],
        )
    return counts


def _apply_result(image: Image, result: dict[str, Any], seen: dict[str, str], now: Any) -> None:
    image.ingested_at = now
    image.sha256 = result.get("sha256", "") or ""
    declared, stored = image.size_bytes, result.get("size_bytes")
    image.size_bytes = result.get("size_bytes", image.size_bytes)
    if (
        result.get("status") == "accepted"
        and declared
        and stored is not None
        and stored != declared
    ):
        # A link takes at most the declared size; a shorter object is a cut-off upload, or
        # one replaced since: never train on it.
        result = {
            "status": "rejected",
            "code": "size_mismatch",
            "reason": f"The stored file ({stored} bytes) is not the size declared when its "
            f"upload began ({declared} bytes): the upload was cut short or replaced. "
            "Upload the file again.",
        }
    if result.get("status") != "accepted":
        image.status = ImageStatus.REJECTED
        image.reject_code = (result.get("code") or "rejected")[:50]
        image.reject_reason = (result.get("reason") or "The file could not be read.")[:500]
        return
    if image.sha256 in seen:
        image.status = ImageStatus.REJECTED
        image.reject_code = "duplicate"
        image.reject_reason = (
            f"This image is identical to '{seen[image.sha256]}', already in this dataset."
        )
        return
    seen[image.sha256] = image.filename
    image.status = ImageStatus.ACCEPTED
    image.width = result.get("width")
    image.height = result.get("height")
    image.channels = result.get("channels")
    image.modality = (result.get("modality") or "")[:50]
    image.thumbnail_key = result.get("thumbnail_key", "") or ""
