"""Datasets hold metadata only: names, labels, counts, per-image label, patient, checksum, key.

The pixels live in the site's own storage; the hub never receives them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Modality(models.TextChoices):
    XRAY = "xray", "X-ray"
    ULTRASOUND = "ultrasound", "Ultrasound"
    CT = "ct", "CT"
    MRI = "mri", "MRI"
    PATHOLOGY = "pathology", "Pathology"
    DERMATOLOGY = "dermatology", "Dermatology"
    FUNDUS = "fundus", "Retinal photo"
    OTHER = "other", "Other"


class Task(models.TextChoices):
    """What a dataset's labels say, and so what a model trained on it does."""

    CLASSIFICATION = "classification", "Classification: one label per image"
    SEGMENTATION = "segmentation", "Segmentation: a mask outlining what to find"


class DatasetStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    DELETING = "deleting", "Being deleted"
    # A tombstone: the images are gone, the row stays so that models keep their lineage.
    DELETED = "deleted", "Deleted"


class Dataset(models.Model):
    site = models.ForeignKey("accounts.Site", on_delete=models.PROTECT, related_name="datasets")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    modality = models.CharField(max_length=20, choices=Modality.choices, default=Modality.OTHER)
    task = models.CharField(max_length=20, choices=Task.choices, default=Task.CLASSIFICATION)
    # Image-level labels (classification's target; optional groups such as benign/malignant in
    # a segmentation dataset).
    label_names = models.JSONField(default=list, blank=True)
    # Segmentation: the names of a mask's values 1, 2, ... (0 is background). A binary mask
    # stored as 0/255 means the one class.
    mask_classes = models.JSONField(default=list, blank=True)
    # Segmentation: an image without an accepted mask is refused (else it may wait for one).
    masks_required = models.BooleanField(default=True)
    # Segmentation with several readers: whose masks models train and are scored on (blank:
    # the reader-less mask, else the first reader of each image).
    reference_reader = models.CharField(max_length=50, blank=True)
    # The label of the finding a model trained here looks for (sensitivity is about it); blank
    # for three or more labels, or while the dataset has fewer than two (datasets.positive_class).
    positive_class = models.CharField(max_length=100, blank=True)
    status = models.CharField(
        max_length=10, choices=DatasetStatus.choices, default=DatasetStatus.ACTIVE
    )
    # Splits are a pure function of (seed, patient): stable when images are added.
    split_seed = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Deletion (see pollen.datasets.deletion): who asked, when the agent was last asked to remove
    # the files (re-sent until it confirms), when it confirmed, and the counts kept for lineage.
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    deletion_requested_at = models.DateTimeField(null=True, blank=True)
    purge_sent_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    deleted_summary = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # A deleted dataset's name is free again: its tombstone must not block new data.
            models.UniqueConstraint(
                fields=["site", "name"],
                condition=Q(status="active"),
                name="dataset_name_unique_per_site",
            )
        ]
        indexes = [models.Index(fields=["status", "purge_sent_at"])]

    def __str__(self) -> str:
        return f"{self.site_id}:{self.name}"


class ImageStatus(models.TextChoices):
    PENDING = "pending", "Waiting for upload or check"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"
    # The slot's upload was never finished in time; it can be resumed or discarded.
    EXPIRED = "expired", "Upload not finished"


def upload_slot_deadline() -> datetime:
    return timezone.now() + timedelta(seconds=settings.UPLOAD_SLOT_EXPIRY_SECONDS)


class Split(models.TextChoices):
    TRAIN = "train", "Training"
    VAL = "val", "Validation"
    TEST = "test", "Test"


class Image(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="images")
    filename = models.CharField(max_length=255)
    storage_key = models.CharField(max_length=512)
    label = models.CharField(max_length=100, blank=True)
    patient_id = models.CharField(max_length=100, blank=True)
    split = models.CharField(max_length=5, choices=Split.choices)
    status = models.CharField(
        max_length=10, choices=ImageStatus.choices, default=ImageStatus.PENDING
    )
    reject_code = models.CharField(max_length=50, blank=True)
    reject_reason = models.CharField(max_length=500, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    channels = models.PositiveSmallIntegerField(null=True, blank=True)
    modality = models.CharField(max_length=50, blank=True)
    thumbnail_key = models.CharField(max_length=512, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    ingested_at = models.DateTimeField(null=True, blank=True)
    # Set when an upload slot is issued (or resumed), cleared once the client says the upload is
    # finished: a pending image still holding a deadline past ``now`` was abandoned mid-upload.
    upload_expires_at = models.DateTimeField(null=True, blank=True, default=upload_slot_deadline)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset", "storage_key"], name="image_key_unique_per_dataset"
            )
        ]
        indexes = [
            models.Index(fields=["dataset", "status"]),
            models.Index(fields=["dataset", "label"]),
            models.Index(fields=["dataset", "patient_id"]),
            models.Index(fields=["dataset", "sha256"]),
            models.Index(fields=["dataset", "split", "status"]),
            models.Index(fields=["status", "upload_expires_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.dataset_id}:{self.filename}"


class ArchiveStatus(models.TextChoices):
    WAITING = "waiting", "Waiting for the upload"
    EXTRACTING = "extracting", "Unpacking"
    DONE = "done", "Unpacked"
    FAILED = "failed", "Could not be used"


class ArchiveImport(models.Model):
    """A zip with one folder per label, unpacked by the site agent into the dataset."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="archives")
    filename = models.CharField(max_length=255)
    storage_key = models.CharField(max_length=512)
    add_labels = models.BooleanField(default=False)
    status = models.CharField(
        max_length=12, choices=ArchiveStatus.choices, default=ArchiveStatus.WAITING
    )
    message = models.TextField(blank=True)
    image_count = models.PositiveIntegerField(default=0)
    rejected = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.dataset_id}:{self.filename} ({self.status})"


class Mask(models.Model):
    """One reader's mask of an image (segmentation datasets): metadata only, pixels stay at the site.

    Several files of one reader (a lesion per file) are merged by the agent into one mask
    (``storage_key``); ``source_keys`` are the uploads it was made from.
    """

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="masks")
    reader = models.CharField(max_length=50, blank=True)
    filenames = models.JSONField(default=list)
    source_keys = models.JSONField(default=list)
    storage_key = models.CharField(max_length=512, blank=True)
    thumbnail_key = models.CharField(max_length=512, blank=True)
    status = models.CharField(
        max_length=10, choices=ImageStatus.choices, default=ImageStatus.PENDING
    )
    reject_code = models.CharField(max_length=50, blank=True)
    reject_reason = models.CharField(max_length=500, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    # empty, foreground_fraction, class_pixels, components, largest_component_px
    stats = models.JSONField(default=dict, blank=True)
    # Dice against the reference reader's mask of the same image (None for the reference).
    agreement_dice = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["image_id", "reader", "id"]
        constraints = [
            models.UniqueConstraint(fields=["image", "reader"], name="mask_one_per_reader")
        ]

    def __str__(self) -> str:
        return f"{self.image_id}:{self.reader or 'mask'}"
