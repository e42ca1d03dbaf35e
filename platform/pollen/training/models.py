"""Training jobs and the model versions they produce (metadata only; weights stay at the site)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from pollen.core.lease import Leased
from pollen.core.site_files import SiteStorageNamed


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Waiting to start"
    RUNNING = "running", "Training"
    SUCCEEDED = "succeeded", "Finished"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


class Recipe(models.TextChoices):
    QUICK = "quick", "Quick model (minutes)"
    FULL = "full", "Full training"


class Job(SiteStorageNamed, Leased):
    """A training run at a site; claimed, renewed and re-queued as a lease (pollen.core.lease)."""

    site = models.ForeignKey("accounts.Site", on_delete=models.PROTECT, related_name="jobs")
    dataset = models.ForeignKey("datasets.Dataset", on_delete=models.PROTECT, related_name="jobs")
    name = models.CharField(max_length=200, blank=True)
    # Copied from the dataset when the job is made: "classification" or "segmentation".
    task = models.CharField(max_length=20, default="classification")
    recipe = models.CharField(max_length=10, choices=Recipe.choices, default=Recipe.FULL)
    starting_point = models.ForeignKey(
        "zoo.ZooEntry", null=True, blank=True, on_delete=models.PROTECT, related_name="jobs"
    )
    parent_version = models.ForeignKey(
        "training.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="child_jobs",
    )
    config = models.JSONField(default=dict, blank=True)
    label_names = models.JSONField(default=list)
    # The finding the model looks for, fixed when the job is created (two labels only).
    positive_class = models.CharField(max_length=100, blank=True)
    status = models.CharField(
        max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True
    )
    cancel_requested = models.BooleanField(default=False)
    progress = models.JSONField(default=dict, blank=True)
    history = models.JSONField(default=list, blank=True)
    evaluation = models.JSONField(default=dict, blank=True)
    timings = models.JSONField(default=dict, blank=True)
    events = models.JSONField(default=list, blank=True)
    checkpoint_epoch = models.PositiveIntegerField(null=True, blank=True)
    error_code = models.CharField(max_length=50, blank=True)
    message = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["site", "status"]),
            models.Index(fields=["status", "lease_expires_at"]),
        ]

    def __str__(self) -> str:
        return f"job {self.pk} ({self.status})"


class ModelVersion(models.Model):
    """A trained model: its manifest, evaluation and lineage. The weights sit in the site's storage."""

    site = models.ForeignKey(
        "accounts.Site", on_delete=models.PROTECT, related_name="model_versions"
    )
    job = models.OneToOneField(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="model_version"
    )
    name = models.CharField(max_length=200)
    architecture = models.CharField(max_length=50)
    # "classification" (label_names: the image labels) or "segmentation" (label_names: the
    # mask's values, background first).
    task = models.CharField(max_length=20, default="classification")
    label_names = models.JSONField(default=list)
    # The label its sensitivity and specificity are about (its manifest's positive_class).
    positive_class = models.CharField(max_length=100, blank=True)
    input_size = models.PositiveIntegerField()
    mean = models.JSONField(default=list)
    std = models.JSONField(default=list)
    weights_sha256 = models.CharField(max_length=64)
    storage_key = models.CharField(max_length=512, help_text="Folder in the site's storage")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    starting_point = models.ForeignKey(
        "zoo.ZooEntry", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    licence = models.TextField(blank=True)
    training_summary = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    parent_comparison = models.JSONField(
        null=True,
        blank=True,
        help_text="A fine-tune beside the model it started from, on the same check images",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} (v{self.pk})"
