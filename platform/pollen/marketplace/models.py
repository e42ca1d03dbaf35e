"""The marketplace: published models with their cards and versions, and the work sites run on them.

Published weights live in the hub's model store (copied there by the publishing site's agent);
predictions and evaluations run at the caller's site, and only their metadata comes back here.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from pollen.core.lease import ATTEMPT_HELP, Leased


class Visibility(models.TextChoices):
    SITE = "site", "This site only"
    NAMED = "named", "Named sites"
    CONSORTIUM = "consortium", "The whole consortium"


class VersionStatus(models.TextChoices):
    PENDING = "pending", "Being copied to the marketplace"
    PUBLISHED = "published", "Published"
    FAILED = "failed", "Publishing failed"
    DEPRECATED = "deprecated", "Deprecated (a newer version is recommended)"
    WITHDRAWN = "withdrawn", "Withdrawn"


# Versions a site that may see the model can apply, evaluate, fine-tune and download.
USABLE_VERSION_STATUSES = frozenset({VersionStatus.PUBLISHED, VersionStatus.DEPRECATED})
# Versions a site other than the publisher's sees on the model page.
LISTED_VERSION_STATUSES = USABLE_VERSION_STATUSES | {VersionStatus.WITHDRAWN}


class WorkStatus(models.TextChoices):
    QUEUED = "queued", "Waiting to start"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Finished"
    FAILED = "failed", "Failed"


WORK_FINAL_STATUSES = frozenset({WorkStatus.SUCCEEDED, WorkStatus.FAILED})


class PublishedModel(models.Model):
    """A marketplace listing: one lineage name at a site, with its versions."""

    site = models.ForeignKey(
        "accounts.Site", on_delete=models.PROTECT, related_name="published_models"
    )
    name = models.CharField(max_length=200)
    modality = models.CharField(max_length=20, blank=True)
    task = models.CharField(max_length=30, default="classification")
    architecture = models.CharField(max_length=50)
    label_names = models.JSONField(default=list)
    visibility = models.CharField(
        max_length=12, choices=Visibility.choices, default=Visibility.SITE
    )
    named_sites = models.ManyToManyField("accounts.Site", blank=True, related_name="+")
    intended_use = models.TextField(blank=True)
    limitations = models.TextField(blank=True)
    # Lower-cased "|label|label|" and free text, so filters work the same on every database.
    labels_index = models.TextField(blank=True)
    search_text = models.TextField(blank=True)
    # The newest version others can use (published or deprecated); None hides the listing.
    latest_version = models.ForeignKey(
        "marketplace.PublishedVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["site", "name"], name="published_name_unique_per_site")
        ]

    def __str__(self) -> str:
        return f"{self.site_id}:{self.name}"


class MarketplaceLeased(Leased):
    """The lease's columns (``pollen.core.lease``), as marketplace work has always stored them."""

    # Its column keeps the name it had before the lease was one ("attempts").
    attempt = models.PositiveSmallIntegerField(
        default=0, db_column="attempts", help_text=ATTEMPT_HELP
    )
    # The last claim or renewal, read by the release before; drop it in the next release.
    claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class PublishedVersion(MarketplaceLeased):
    published_model = models.ForeignKey(
        PublishedModel, on_delete=models.CASCADE, related_name="versions"
    )
    model_version = models.ForeignKey(
        "training.ModelVersion", on_delete=models.PROTECT, related_name="publications"
    )
    number = models.PositiveIntegerField()
    status = models.CharField(
        max_length=12, choices=VersionStatus.choices, default=VersionStatus.PENDING, db_index=True
    )
    card = models.JSONField(default=dict)
    auc = models.FloatField(null=True, blank=True)
    weights_key = models.CharField(max_length=512)
    manifest_key = models.CharField(max_length=512)
    weights_sha256 = models.CharField(max_length=64)
    manifest_sha256 = models.CharField(max_length=64, blank=True)
    weights_bytes = models.BigIntegerField(null=True, blank=True)
    error_code = models.CharField(max_length=50, blank=True)
    message = models.TextField(blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    status_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["published_model", "number"], name="version_number_unique"
            ),
            models.UniqueConstraint(
                fields=["published_model", "model_version"], name="model_version_published_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.published_model_id} v{self.number} ({self.status})"


class WorkItem(MarketplaceLeased):
    """Work queued on a site's infer queue, claimed as a lease (queued -> running)."""

    site = models.ForeignKey("accounts.Site", on_delete=models.PROTECT, related_name="+")
    status = models.CharField(
        max_length=10, choices=WorkStatus.choices, default=WorkStatus.QUEUED, db_index=True
    )
    error_code = models.CharField(max_length=50, blank=True)
    message = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{type(self).__name__.lower()} {self.pk} ({self.status})"


class Prediction(WorkItem):
    """A model applied to images already in the caller's site storage; results are metadata only."""

    published_version = models.ForeignKey(
        PublishedVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    model_version = models.ForeignKey(
        "training.ModelVersion", on_delete=models.PROTECT, related_name="+"
    )
    dataset = models.ForeignKey(
        "datasets.Dataset", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    inputs = models.JSONField(default=list)  # [{"image_id", "key"}]
    tta = models.BooleanField(default=False)
    heatmap = models.BooleanField(default=False)
    results = models.JSONField(default=list)
    timings = models.JSONField(default=dict, blank=True)

    class Meta(WorkItem.Meta):
        indexes = [models.Index(fields=["site", "status"])]


class SiteEvaluation(WorkItem):
    """A published model run on a site's own labelled dataset; aggregate metrics, private until shared."""

    published_version = models.ForeignKey(
        PublishedVersion, on_delete=models.PROTECT, related_name="evaluations"
    )
    dataset = models.ForeignKey(
        "datasets.Dataset", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    metrics = models.JSONField(default=dict, blank=True)
    shared = models.BooleanField(default=False)
    shared_at = models.DateTimeField(null=True, blank=True)

    class Meta(WorkItem.Meta):
        indexes = [models.Index(fields=["published_version", "shared"])]


class ModelExport(WorkItem):
    """An ONNX export made at the caller's site and stored in the hub's model store."""

    published_version = models.ForeignKey(
        PublishedVersion, on_delete=models.PROTECT, related_name="exports"
    )
    format = models.CharField(max_length=10, default="onnx")
    key = models.CharField(max_length=512, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
