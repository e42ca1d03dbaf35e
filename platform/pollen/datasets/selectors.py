"""Reads for datasets and images, always scoped to the caller's sites."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Max, Min, Q, QuerySet
from django.db.models.functions import Greatest

from pollen.accounts.caller import Caller
from pollen.core.errors import NotFound
from pollen.datasets.masks import segmentation_stats
from pollen.datasets.models import Dataset, DatasetStatus, Image, ImageStatus, Task


def dataset_list(*, caller: Caller) -> QuerySet[Dataset]:
    return (
        Dataset.objects.filter(site_id__in=caller.site_ids, status=DatasetStatus.ACTIVE)
        .select_related("site")
        .annotate(
            image_count=Count("images"),
            accepted_count=Count("images", filter=Q(images__status=ImageStatus.ACCEPTED)),
            rejected_count=Count("images", filter=Q(images__status=ImageStatus.REJECTED)),
            # Pending images whose upload is finished are being checked by the agent; those
            # still holding an upload deadline wait for their file (see pollen.datasets.uploads).
            pending_count=Count(
                "images",
                filter=Q(
                    images__status=ImageStatus.PENDING, images__upload_expires_at__isnull=True
                ),
            ),
            uploading_count=Count(
                "images",
                filter=Q(
                    images__status=ImageStatus.PENDING, images__upload_expires_at__isnull=False
                ),
            ),
            unfinished_count=Count("images", filter=Q(images__status=ImageStatus.EXPIRED)),
        )
        .order_by("-created_at", "-id")
    )


def dataset_get(*, caller: Caller, dataset_id: int) -> Dataset:
    dataset = dataset_list(caller=caller).filter(pk=dataset_id).first()
    if dataset is None:
        raise NotFound("There is no such dataset at your sites.", code="dataset_not_found")
    return dataset


def image_list(*, dataset: Dataset) -> QuerySet[Image]:
    return Image.objects.filter(dataset=dataset)


def image_get(*, dataset: Dataset, image_id: int) -> Image:
    image = (
        Image.objects.filter(dataset=dataset, pk=image_id)
        .select_related("dataset", "dataset__site")
        .first()
    )
    if image is None:
        raise NotFound("There is no such image in this dataset.", code="image_not_found")
    return image


SIZE_EDGES = [0, 64, 128, 256, 512, 1024, 2048, 4096]


def dataset_stats(*, dataset: Dataset) -> dict[str, Any]:
    """Counts per label and split, per patient, per status, and image sizes: a fixed number of queries."""
    images = Image.objects.filter(dataset=dataset)
    accepted = images.filter(status=ImageStatus.ACCEPTED)
    per_label: dict[str, dict[str, int]] = {}
    for row in accepted.values("label", "split").annotate(n=Count("id")):
        entry = per_label.setdefault(row["label"], {"train": 0, "val": 0, "test": 0})
        entry[row["split"]] = row["n"]
    labels = [
        {
            "label": name,
            "count": sum(per_label.get(name, {}).values()),
            **per_label.get(name, {"train": 0, "val": 0, "test": 0}),
        }
        for name in [*dataset.label_names, *(k for k in per_label if k not in dataset.label_names)]
    ]
    status = {row["status"]: row["n"] for row in images.values("status").annotate(n=Count("id"))}
    patients = accepted.exclude(patient_id="").aggregate(
        patients=Count("patient_id", distinct=True), with_patient=Count("id")
    )
    per_patient = list(
        accepted.exclude(patient_id="")
        .values("patient_id")
        .annotate(n=Count("id"))
        .order_by("-n")[:10]
    )
    sized = (
        accepted.exclude(width=None)
        .exclude(height=None)
        .annotate(longest=Greatest("width", "height"))
    )
    bounds = list(zip(SIZE_EDGES, [*SIZE_EDGES[1:], None], strict=True))
    size_row = sized.aggregate(
        lo=Min("longest"),
        hi=Max("longest"),
        **{
            f"b{i}": Count("id", filter=Q(longest__gte=lo) & (Q(longest__lt=hi) if hi else Q()))
            for i, (lo, hi) in enumerate(bounds)
        },
    )
    rejected = list(
        images.filter(status=ImageStatus.REJECTED)
        .values("reject_code")
        .annotate(n=Count("id"))
        .order_by("-n")
    )
    return {
        "labels": labels,
        "status": {s: status.get(s, 0) for s in ImageStatus.values},
        "patients": {
            "count": patients["patients"],
            "images_without_patient": accepted.count() - patients["with_patient"],
            "most_images": [{"patient_id": p["patient_id"], "count": p["n"]} for p in per_patient],
        },
        "sizes": {
            "longest_side_histogram": [
                {"from": lo, "to": hi, "count": size_row[f"b{i}"]}
                for i, (lo, hi) in enumerate(bounds)
            ],
            "min_longest_side": size_row["lo"],
            "max_longest_side": size_row["hi"],
        },
        "rejected_by_reason": [{"code": r["reject_code"], "count": r["n"]} for r in rejected],
        "unlabelled": accepted.filter(label="").count(),
    } | ({"segmentation": segmentation_stats(dataset)} if dataset.task == Task.SEGMENTATION else {})
