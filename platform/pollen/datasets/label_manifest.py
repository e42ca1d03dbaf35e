"""Label manifests: a CSV (filename, label, patient_id) that labels a dataset's images at once."""

from __future__ import annotations

import csv
import io
from typing import Any

from django.db import transaction

from pollen.accounts.caller import Caller
from pollen.audit.services import audit_record
from pollen.core.csv_safe import csv_cell_value
from pollen.core.errors import ApiError
from pollen.datasets.models import Dataset, Image
from pollen.datasets.positive_class import (
    positive_class_refresh,
)
from pollen.datasets.services import check_labels
from pollen.datasets.splits import split_for

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
            dataset.label_names = check_labels(dataset.label_names + sorted(unknown))
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
