"""Exports of a dataset's metadata (never pixels): the image list as CSV, safe for spreadsheets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db import transaction

from pollen.accounts.caller import Caller
from pollen.audit.services import audit_record
from pollen.datasets.models import Dataset, Image

# The first three columns are the manifest's, so an edited export can be applied back.
EXPORT_COLUMNS = [
    "filename",
    "label",
    "patient_id",
    "split",
    "status",
    "reject_reason",
    "width",
    "height",
    "sha256",
]


def dataset_export_rows(*, caller: Caller, dataset: Dataset) -> Iterator[tuple[Any, ...]]:
    """The dataset's images, one row each; audited, since the list carries patient ids."""
    caller.require_clinical()
    images = Image.objects.filter(dataset=dataset).order_by("id")
    with transaction.atomic():
        audit_record(
            caller=caller,
            action="dataset.export",
            site_id=dataset.site_id,
            target_type="dataset",
            target_id=dataset.pk,
            detail={"images": images.count(), "format": "csv"},
        )
    return images.values_list(*EXPORT_COLUMNS).iterator(chunk_size=2000)
