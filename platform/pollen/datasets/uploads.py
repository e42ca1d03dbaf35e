"""Upload slots the user never finished: they expire, and can be resumed or discarded.

A slot (a pending image with ``upload_expires_at`` set) is finished when the client calls
``uploads/complete/``. One that is still unfinished at its deadline was abandoned mid-upload:
``upload_slots_expire`` marks it ``expired`` ("upload not finished") and asks the site agent to
remove whatever file reached storage. The user can resume it (a new upload link for the same
image) or discard it. ``upload_slots_expire`` takes ``now`` so that a clock process, a heartbeat
or a test decides what time it is.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet

from pollen.accounts.caller import Caller
from pollen.audit.services import audit_record
from pollen.core.dispatch import ask_site_agent, send_on_commit
from pollen.datasets.images import images_delete
from pollen.datasets.masks import mask_slots
from pollen.datasets.models import (
    Dataset,
    DatasetStatus,
    Image,
    ImageStatus,
    Mask,
    upload_slot_deadline,
)
from pollen.datasets.services import ensure_active
from pollen_contracts import limits, queues, tasks

EXPIRE_BATCH = 1000


def _expire_batch(*, now: datetime, site_id: int | None) -> list[tuple[int, int, int, str, str]]:
    lapsed = Image.objects.filter(
        status=ImageStatus.PENDING,
        upload_expires_at__lt=now,
        dataset__status=DatasetStatus.ACTIVE,
    )
    if site_id is not None:
        lapsed = lapsed.filter(dataset__site_id=site_id)
    with transaction.atomic():
        # Locked rows belong to a concurrent run (another heartbeat, the clock): skip them, so
        # each slot expires, and its file is removed, exactly once.
        rows = list(
            lapsed.select_for_update(skip_locked=True, of=("self",))
            .order_by("pk")
            .values_list(
                "pk", "dataset_id", "dataset__site_id", "dataset__site__slug", "storage_key"
            )[:EXPIRE_BATCH]
        )
        if not rows:
            return []
        Image.objects.filter(pk__in=[r[0] for r in rows]).update(status=ImageStatus.EXPIRED)
        keys: dict[str, list[str]] = defaultdict(list)
        per_dataset: dict[tuple[int, int], int] = defaultdict(int)
        for _, dataset_id, row_site, slug, key in rows:
            keys[slug].append(key)
            per_dataset[(dataset_id, row_site)] += 1
        for (dataset_id, row_site), count in per_dataset.items():
            audit_record(
                caller=None,
                action="dataset.uploads_expired",
                site_id=row_site,
                target_type="dataset",
                target_id=dataset_id,
                detail={"count": count},
                actor_label="Pollen (upload not finished in time)",
            )
        for slug, site_keys in keys.items():
            send_on_commit(
                tasks.DELETE_OBJECTS,
                {"site": slug, "keys": site_keys, "prefixes": []},
                queue=queues.io_queue(slug),
            )
    return rows


def upload_slots_expire(*, now: datetime, site_id: int | None = None) -> int:
    """Expire upload slots left unfinished past their deadline; answer how many expired."""
    expired = 0
    while batch := _expire_batch(now=now, site_id=site_id):
        expired += len(batch)
        if len(batch) < EXPIRE_BATCH:
            break
    return expired


def _unfinished(dataset: Dataset) -> QuerySet[Image]:
    return dataset.images.filter(
        Q(status=ImageStatus.EXPIRED)
        | Q(status=ImageStatus.PENDING, upload_expires_at__isnull=False)
    )


def _new_key(dataset: Dataset, filename: str) -> str:
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
    return f"datasets/{dataset.pk}/images/{uuid.uuid4().hex}.{suffix[:8]}"


def _refusals(image_ids: list[int], images: dict[int, Image]) -> list[dict[str, str]]:
    refused = []
    for image_id in image_ids:
        image = images.get(image_id)
        if image is None:
            refused.append(
                {
                    "filename": f"image {image_id}",
                    "code": "image_not_found",
                    "reason": "There is no such image in this dataset.",
                }
            )
        elif not (
            image.status == ImageStatus.EXPIRED
            or (image.status == ImageStatus.PENDING and image.upload_expires_at is not None)
        ):
            refused.append(
                {
                    "filename": image.filename,
                    "code": "upload_finished",
                    "reason": "This image was uploaded completely; there is nothing to resume.",
                }
            )
    return refused


def upload_slots_resume(
    *, caller: Caller, dataset: Dataset, image_ids: list[int]
) -> dict[str, Any]:
    """New upload links for unfinished images (expired or not), one per image, same image row.

    Each resumed image gets a new storage key, so that the removal of a file sent to the old
    key (queued when the slot expired) can never remove the file sent now.
    """
    caller.require_clinical()
    ensure_active(dataset)
    found = {image.pk: image for image in dataset.images.filter(pk__in=image_ids)}
    refused = _refusals(image_ids, found)
    resumable = [
        found[pk]
        for pk in _unfinished(dataset).filter(pk__in=list(found)).values_list("pk", flat=True)
    ]
    if not resumable:
        return {"slots": [], "refused": refused}
    new_keys = {image.pk: _new_key(dataset, image.filename) for image in resumable}
    # A resumed image's mask files get fresh links too, to the same keys (segmentation).
    masks: dict[int, list[Mask]] = {}
    for mask in Mask.objects.filter(image_id__in=list(new_keys)):
        masks.setdefault(mask.image_id, []).append(mask)
    answer = ask_site_agent(
        dataset.site.slug,
        tasks.PRESIGN_UPLOAD,
        {
            "site": dataset.site.slug,
            "keys": list(new_keys.values())
            + [key for group in masks.values() for mask in group for key in mask.source_keys],
            "expires_in": settings.PRESIGN_SECONDS,
            "max_bytes": limits.MAX_UPLOAD_BYTES,
        },
    )
    urls = {slot["key"]: slot for slot in answer["slots"]}
    slots, old_keys = [], []
    with transaction.atomic():
        for image in resumable:
            key = new_keys[image.pk]
            # Compare-and-set: an upload finished (or an ingest result recorded) meanwhile wins.
            if (
                not _unfinished(dataset)
                .filter(pk=image.pk, storage_key=image.storage_key)
                .update(
                    storage_key=key,
                    status=ImageStatus.PENDING,
                    upload_expires_at=upload_slot_deadline(),
                )
            ):
                continue
            old_keys.append(image.storage_key)
            slots.append(
                {
                    "image_id": image.pk,
                    "filename": image.filename,
                    "key": key,
                    "url": urls[key]["url"],
                    "method": urls[key]["method"],
                    "headers": urls[key].get("headers", {}),
                    "expires_in": settings.PRESIGN_SECONDS,
                    "mask_slots": mask_slots(masks.get(image.pk, []), urls),
                }
            )
        audit_record(
            caller=caller,
            action="dataset.uploads_resumed",
            site_id=dataset.site_id,
            target_type="dataset",
            target_id=dataset.pk,
            detail={"count": len(slots)},
        )
        if old_keys:
            # A file sent to the old key before the user left is no longer wanted.
            send_on_commit(
                tasks.DELETE_OBJECTS,
                {"site": dataset.site.slug, "keys": old_keys, "prefixes": []},
                queue=queues.io_queue(dataset.site.slug),
            )
    return {"slots": slots, "refused": refused}


def uploads_discard(*, caller: Caller, dataset: Dataset, image_ids: list[int]) -> int:
    """Remove unfinished uploads (rows and any file that reached storage); finished ones stay."""
    caller.require_clinical()
    unfinished = list(_unfinished(dataset).filter(pk__in=image_ids).values_list("pk", flat=True))
    if not unfinished:
        return 0
    return images_delete(caller=caller, dataset=dataset, image_ids=unfinished)
