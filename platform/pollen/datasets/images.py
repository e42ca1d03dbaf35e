"""Image writes: relabel, bulk-label and delete a dataset's images; thumbnail links."""

from __future__ import annotations

from django.db import transaction

from pollen.accounts.caller import Caller
from pollen.audit.services import audit_record
from pollen.core.dispatch import ask_site_agent, send_on_commit
from pollen.core.errors import ApiError
from pollen.datasets.masks import mask_keys
from pollen.datasets.models import Dataset, Image, Mask
from pollen.datasets.services import clean_label
from pollen.datasets.splits import split_for
from pollen_contracts import queues, tasks


def image_update(
    *, caller: Caller, image: Image, label: str | None = None, patient_id: str | None = None
) -> Image:
    caller.require_clinical()
    dataset = image.dataset
    fields = []
    if label is not None:
        label = clean_label(label)
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
    label = clean_label(label)
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
        keys += mask_keys(Mask.objects.filter(image_id__in=[pk for pk, _, _ in rows]))
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


def thumbnails_presign(
    *, dataset: Dataset, image_ids: list[int]
) -> tuple[dict[int, str], dict[int, str]]:
    """Short-lived links for the browser to fetch thumbnails straight from site storage: the
    images', and (segmentation) each accepted mask's outline over its image."""
    rows = list(
        dataset.images.filter(pk__in=image_ids[:200])
        .exclude(thumbnail_key="")
        .values_list("pk", "thumbnail_key")
    )
    mask_rows = list(
        Mask.objects.filter(image__dataset=dataset, image_id__in=image_ids[:200])
        .exclude(thumbnail_key="")
        .values_list("pk", "thumbnail_key")
    )
    if not rows and not mask_rows:
        return {}, {}
    answer = ask_site_agent(
        dataset.site.slug,
        tasks.PRESIGN_DOWNLOAD,
        {
            "site": dataset.site.slug,
            "keys": [key for _, key in rows + mask_rows],
            "expires_in": 300,
        },
    )
    urls = answer["urls"]
    return (
        {pk: urls[key] for pk, key in rows if key in urls},
        {pk: urls[key] for pk, key in mask_rows if key in urls},
    )
