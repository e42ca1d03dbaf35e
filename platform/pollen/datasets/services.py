"""Writes for datasets and images. Pixels never pass through here: only names, labels and keys."""

from __future__ import annotations

import csv
import io
import logging
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from pollen.accounts.caller import Caller
from pollen.accounts.models import Site
from pollen.audit.services import audit_record
from pollen.core.csv_safe import csv_cell_value
from pollen.core.dispatch import ask_site_agent, send_on_commit
from pollen.core.errors import ApiError, Conflict
from pollen.datasets.models import Dataset, DatasetStatus, Image, ImageStatus
from pollen.datasets.positive_class import (
    positive_class_check,
    positive_class_for,
    positive_class_refresh,
)
from pollen.datasets.splits import split_for
from pollen_contracts import payloads, queues, tasks

logger = logging.getLogger(__name__)

MAX_FILES_PER_REQUEST = 500
MAX_LABELS = 50
MAX_LABEL_LENGTH = 100


def _clean_label(label: str) -> str:
    label = (label or "").strip()
    if len(label) > MAX_LABEL_LENGTH:
        raise ApiError(
            f"The label '{label[:30]}…' is too long: use at most {MAX_LABEL_LENGTH} characters.",
            code="invalid_label",
        )
    return label


def _check_labels(label_names: list[str]) -> list[str]:
    cleaned = [_clean_label(name) for name in label_names]
    if any(not name for name in cleaned):
        raise ApiError("Labels cannot be empty.", code="invalid_label")
    if len(set(cleaned)) != len(cleaned):
        raise ApiError("Each label must appear once.", code="duplicate_label")
    if len(cleaned) > MAX_LABELS:
        raise ApiError(f"A dataset can have at most {MAX_LABELS} labels.", code="too_many_labels")
    return cleaned


def dataset_create(
    *,
    caller: Caller,
    site: Site,
    name: str,
    description: str = "",
    modality: str = "other",
    label_names: list[str] | None = None,
    positive_class: str = "",
) -> Dataset:
    """Create a dataset; with two labels, ``positive_class`` names the finding (default by name)."""
    caller.require_clinical()
    labels = _check_labels(label_names or [])
    finding = positive_class_for(labels, positive_class_check(positive_class, labels))
    try:
        with transaction.atomic():
            dataset = Dataset.objects.create(
                site=site,
                name=name.strip(),
                description=description,
                modality=modality,
                label_names=labels,
                positive_class=finding,
                split_seed=secrets.randbelow(2**31),
                created_by_id=caller.user_id if caller.token is None else None,
            )
            audit_record(
                caller=caller,
                action="dataset.create",
                site_id=site.pk,
                target_type="dataset",
                target_id=dataset.pk,
                detail={"name": dataset.name, "positive_class": finding},
            )
    except IntegrityError as exc:
        raise Conflict(
            f"Your site already has a dataset called '{name}'. Choose another name.",
            code="dataset_exists",
        ) from exc
    return dataset


def dataset_update(*, caller: Caller, dataset: Dataset, **changes: Any) -> Dataset:
    caller.require_clinical()
    if "label_names" in changes:
        labels = _check_labels(changes["label_names"])
        in_use = set(dataset.images.exclude(label="").values_list("label", flat=True).distinct())
        removed = in_use - set(labels)
        if removed:
            raise Conflict(
                f"These labels are still used by images: {', '.join(sorted(removed))}. Relabel those images first.",
                code="label_in_use",
            )
        changes["label_names"] = labels
    before = dataset.positive_class
    changes.update(_positive_class_change(dataset, changes))
    for field, value in changes.items():
        setattr(dataset, field, value)
    try:
        with transaction.atomic():
            dataset.save(update_fields=list(changes))
            audit_record(
                caller=caller,
                action="dataset.update",
                site_id=dataset.site_id,
                target_type="dataset",
                target_id=dataset.pk,
                detail={"fields": sorted(changes)}
                | (
                    {"positive_class": {"from": before, "to": dataset.positive_class}}
                    if dataset.positive_class != before
                    else {}
                ),
            )
    except IntegrityError as exc:
        raise Conflict(
            "Your site already has a dataset with that name.", code="dataset_exists"
        ) from exc
    return dataset


def _positive_class_change(dataset: Dataset, changes: dict[str, Any]) -> dict[str, str]:
    """The finding after an update: as chosen (checked against the new labels), else kept."""
    labels = changes.get("label_names", dataset.label_names)
    if "positive_class" in changes:
        chosen = positive_class_check(changes["positive_class"], labels)
        return {"positive_class": positive_class_for(labels, chosen)}
    if "label_names" in changes:
        return {"positive_class": positive_class_for(labels, dataset.positive_class)}
    return {}


def _ensure_active(dataset: Dataset) -> None:
    if dataset.status != DatasetStatus.ACTIVE:
        raise Conflict("This dataset is being deleted.", code="dataset_deleting")


def _safe_filename(raw: str) -> str:
    name = (raw or "").replace("\\", "/").split("/")[-1].strip()
    if len(name) > payloads.MAX_FILENAME_CHARS:
        raise ApiError(
            f"The file name '{name[:60]}...' has {len(name)} characters; names may have at most "
            f"{payloads.MAX_FILENAME_CHARS} characters. Shorten it and try again.",
            code="invalid_filename",
        )
    if not name or name in {".", ".."} or any(ord(c) < 32 for c in name):
        raise ApiError(
            f"The file name '{raw[:60]}' is not usable. Rename the file and try again.",
            code="invalid_filename",
        )
    return name


@dataclass
class SlotRequest:
    filename: str
    label: str
    patient_id: str
    size_bytes: int | None


def _slot_problem(dataset: Dataset, item: SlotRequest, add_labels: bool) -> tuple[str, str] | None:
    if item.size_bytes is not None and item.size_bytes < 0:
        return "invalid_size", (
            f"The declared size ({item.size_bytes} bytes) cannot be right. Send the file's "
            "size in bytes, or leave it out."
        )
    if item.size_bytes is not None and item.size_bytes == 0:
        return "empty_file", "The file is empty. Export it again from your imaging system."
    if item.size_bytes is not None and item.size_bytes > payloads.MAX_UPLOAD_BYTES:
        limit = payloads.MAX_UPLOAD_BYTES // (1024 * 1024)
        return (
            "file_too_large",
            f"The file is larger than {limit} MB. Split or compress it before uploading.",
        )
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
    _ensure_active(dataset)
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
                filename=_safe_filename(raw["filename"]),
                label=_clean_label(raw.get("label", "")),
                patient_id=(raw.get("patient_id") or "").strip()[:100],
                size_bytes=raw.get("size_bytes"),
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
        accepted.append((item, key))
    if not accepted:
        return {"slots": [], "refused": refused}
    answer = ask_site_agent(
        dataset.site.slug,
        tasks.PRESIGN_UPLOAD,
        {
            "site": dataset.site.slug,
            "keys": [key for _, key in accepted],
            "expires_in": settings.PRESIGN_SECONDS,
            "max_bytes": payloads.MAX_UPLOAD_BYTES,
            # The link for a file of declared size takes exactly that many bytes.
            "sizes": {key: item.size_bytes for item, key in accepted if item.size_bytes},
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
            dataset.label_names = _check_labels(dataset.label_names + sorted(set(new_labels)))
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
        }
        for image in images
    ]
    return {"slots": slots, "refused": refused}


def uploads_complete(*, caller: Caller, dataset: Dataset, image_ids: list[int]) -> int:
    """The client finished sending bytes: ask the agent to check (ingest) those images."""
    caller.require_clinical()
    _ensure_active(dataset)
    images = list(
        dataset.images.filter(pk__in=image_ids, status=ImageStatus.PENDING).values_list(
            "pk", "storage_key", "filename", "size_bytes"
        )
    )
    if not images:
        raise ApiError("None of these images is waiting to be checked.", code="nothing_to_ingest")
    payload = {
        "site": dataset.site.slug,
        "dataset_id": dataset.pk,
        # The file's own name goes along so that a rejection names it, not the storage key.
        # The declared size goes along so that the agent refuses another size before download.
        "images": [
            {"image_id": pk, "key": key, "filename": name, "size_bytes": size}
            for pk, key, name, size in images
        ],
        "thumbnail_prefix": f"datasets/{dataset.pk}/thumbnails/",
    }
    with transaction.atomic():
        # The upload is finished: these slots no longer expire (see pollen.datasets.uploads).
        dataset.images.filter(pk__in=[pk for pk, *_ in images]).update(upload_expires_at=None)
        send_on_commit(tasks.INGEST_IMAGES, payload, queue=queues.io_queue(dataset.site.slug))
    return len(images)


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
        for image_id, result in by_id.items():
            image = images.get(image_id)
            if image is None or image.status != ImageStatus.PENDING:
                continue  # deleted meanwhile, or already recorded: never count twice
            _apply_result(image, result, existing, now)
            counts[image.status] += 1
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


def image_update(
    *, caller: Caller, image: Image, label: str | None = None, patient_id: str | None = None
) -> Image:
    caller.require_clinical()
    dataset = image.dataset
    fields = []
    if label is not None:
        label = _clean_label(label)
        if label and label not in dataset.label_names:
            raise ApiError(
                f"'{label}' is not one of this dataset's labels: {', '.join(dataset.label_names)}.",
                code="unknown_label",
            )
        image.label = label
        fields.append("label")
    if patient_id is not None:
        image.patient_id = patient_id.strip()[:100]
        image.split = split_for(
            seed=dataset.split_seed, patient_id=image.patient_id, fallback_key=image.storage_key
        )
        fields += ["patient_id", "split"]
    if fields:
        with transaction.atomic():
            image.save(update_fields=fields)
            audit_record(
                caller=caller,
                action="image.update",
                site_id=dataset.site_id,
                target_type="image",
                target_id=image.pk,
                detail={"fields": fields},
            )
    return image


def images_bulk_label(*, caller: Caller, dataset: Dataset, image_ids: list[int], label: str) -> int:
    caller.require_clinical()
    label = _clean_label(label)
    if label and label not in dataset.label_names:
        raise ApiError(
            f"'{label}' is not one of this dataset's labels: {', '.join(dataset.label_names)}.",
            code="unknown_label",
        )
    with transaction.atomic():
        count = dataset.images.filter(pk__in=image_ids).update(label=label)
        audit_record(
            caller=caller,
            action="image.bulk_label",
            site_id=dataset.site_id,
            target_type="dataset",
            target_id=dataset.pk,
            detail={"count": count, "label": label},
        )
    return count


def images_delete(*, caller: Caller, dataset: Dataset, image_ids: list[int]) -> int:
    """Delete image rows and ask the agent to remove their files (and thumbnails) from site storage."""
    caller.require_clinical()
    with transaction.atomic():
        rows = list(
            dataset.images.filter(pk__in=image_ids).values_list(
                "pk", "storage_key", "thumbnail_key"
            )
        )
        if not rows:
            return 0
        keys = [k for _, key, thumb in rows for k in (key, thumb) if k]
        dataset.images.filter(pk__in=[pk for pk, _, _ in rows]).delete()
        audit_record(
            caller=caller,
            action="image.delete",
            site_id=dataset.site_id,
            target_type="dataset",
            target_id=dataset.pk,
            detail={"count": len(rows), "image_ids": [pk for pk, _, _ in rows][:100]},
        )
        send_on_commit(
            tasks.DELETE_OBJECTS,
            {"site": dataset.site.slug, "keys": keys, "prefixes": []},
            queue=queues.io_queue(dataset.site.slug),
        )
    return len(rows)


MANIFEST_COLUMNS = {"filename", "label", "patient_id"}


def manifest_apply(
    *, caller: Caller, dataset: Dataset, csv_text: str, add_labels: bool = False
) -> dict[str, Any]:
    """Apply a CSV manifest (filename,label,patient_id) to images already in the dataset."""
    caller.require_clinical()
    # newline="": lines may end with CR (old Mac exports), LF or CRLF, and a quoted cell may
    # hold a line break; without it, a CR-only file stopped the csv module (a 500).
    reader = csv.DictReader(io.StringIO(csv_text.lstrip("\ufeff"), newline=""))
    try:
        fieldnames, records = reader.fieldnames, list(reader)
    except csv.Error as exc:
        raise ApiError(
            f"The CSV cannot be read ({exc}). Save it again as 'CSV UTF-8' and send it again.",
            code="invalid_manifest",
        ) from exc
    columns = {c.strip().lower() for c in (fieldnames or [])}
    if "filename" not in columns:
        raise ApiError(
            "The CSV needs a header row with at least a 'filename' column "
            "(and 'label' and/or 'patient_id').",
            code="invalid_manifest",
        )
    problems: list[dict[str, Any]] = []
    rows: dict[str, dict[str, str]] = {}
    for line, row in enumerate(records, start=2):
        clean = {
            (k or "").strip().lower(): csv_cell_value((v or "").strip())
            for k, v in row.items()
            if k
        }
        name = clean.get("filename", "")
        if not name:
            problems.append({"line": line, "reason": "The filename is empty."})
        elif name in rows:
            problems.append(
                {
                    "line": line,
                    "filename": name,
                    "reason": "This filename appears twice in the CSV.",
                }
            )
        else:
            rows[name] = clean
    labels = {r.get("label", "") for r in rows.values()} - {""}
    unknown = labels - set(dataset.label_names)
    if unknown and not add_labels:
        raise ApiError(
            f"The CSV uses labels that this dataset does not have: {', '.join(sorted(unknown))}. "
            "Add them to the dataset, or fix their spelling.",
            code="unknown_label",
        )
    with transaction.atomic():
        if unknown:
            dataset.label_names = _check_labels(dataset.label_names + sorted(unknown))
            positive_class_refresh(dataset)
            dataset.save(update_fields=["label_names", "positive_class"])
        images = list(dataset.images.filter(filename__in=list(rows)))
        for image in images:
            row = rows[image.filename]
            if "label" in row:
                image.label = row["label"]
            if "patient_id" in row:
                image.patient_id = row["patient_id"][:100]
                image.split = split_for(
                    seed=dataset.split_seed,
                    patient_id=image.patient_id,
                    fallback_key=image.storage_key,
                )
        Image.objects.bulk_update(images, ["label", "patient_id", "split"], batch_size=1000)
        audit_record(
            caller=caller,
            action="dataset.manifest",
            site_id=dataset.site_id,
            target_type="dataset",
            target_id=dataset.pk,
            detail={"rows": len(rows), "matched": len(images)},
        )
    matched = {image.filename for image in images}
    for name in rows:
        if name not in matched:
            problems.append(
                {"filename": name, "reason": "No image with this filename is in the dataset."}
            )
    return {
        "updated": len(images),
        "problems": problems,
        "unknown_columns": sorted(columns - MANIFEST_COLUMNS),
    }


def thumbnails_presign(*, dataset: Dataset, image_ids: list[int]) -> dict[int, str]:
    """Short-lived links for the browser to fetch thumbnails straight from site storage."""
    rows = list(
        dataset.images.filter(pk__in=image_ids[:200])
        .exclude(thumbnail_key="")
        .values_list("pk", "thumbnail_key")
    )
    if not rows:
        return {}
    answer = ask_site_agent(
        dataset.site.slug,
        tasks.PRESIGN_DOWNLOAD,
        {
            "site": dataset.site.slug,
            "keys": [key for _, key in rows],
            "expires_in": 300,
        },
    )
    urls = answer["urls"]
    return {pk: urls[key] for pk, key in rows if key in urls}
