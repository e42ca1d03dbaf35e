"""Cross-site (federated) training: jobs, the sites taking part, rounds and the updates sites send.

The hub holds metadata and weights only: sample counts and aggregate validation
metrics, never an image or a per-image value.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from pollen.core.lease import ATTEMPT_HELP, Leased
from pollen.core.site_files import SiteStorageNamed
from pollen.marketplace.models import WorkStatus


class Strategy(models.TextChoices):
    RELAY = "relay", "Relay (the model visits each site in turn)"
    FEDAVG = "fedavg", "Federated averaging (sites train in parallel)"


class FederatedStatus(models.TextChoices):
    PENDING = "pending", "Waiting for sites to accept"
    RUNNING = "running", "Training across sites"
    SUCCEEDED = "succeeded", "Finished"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINAL_STATUSES = frozenset(
    {FederatedStatus.SUCCEEDED, FederatedStatus.FAILED, FederatedStatus.CANCELLED}
)


class FederatedJob(SiteStorageNamed):
    initiator_site = models.ForeignKey(
        "accounts.Site", on_delete=models.PROTECT, related_name="initiated_federated_jobs"
    )
    name = models.CharField(max_length=200)
    strategy = models.CharField(max_length=10, choices=Strategy.choices)
    rounds = models.PositiveIntegerField()
    local_epochs = models.PositiveIntegerField(default=1)
    min_participants = models.PositiveIntegerField(default=2)
    round_deadline_seconds = models.PositiveIntegerField(default=3600)
    starting_point = models.ForeignKey(
        "zoo.ZooEntry", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    start_version = models.ForeignKey(
        "training.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    architecture = models.CharField(max_length=50)
    input_size = models.PositiveIntegerField()
    # The initiator dataset's task: every site's dataset must have it (and, for segmentation,
    # the same mask classes; label_names are then "background" and the classes, in order).
    task = models.CharField(max_length=20, default="classification")
    label_names = models.JSONField(default=list)
    mean = models.JSONField(default=list, blank=True)
    std = models.JSONField(default=list, blank=True)
    licence = models.TextField(blank=True)
    config = models.JSONField(default=dict, blank=True)  # batch_size, learning_rate, seed
    # Tensor name -> [shape, dtype] of the global model: every update must match it.
    tensor_layout = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=10,
        choices=FederatedStatus.choices,
        default=FederatedStatus.PENDING,
        db_index=True,
    )
    current_round = models.PositiveIntegerField(default=0)
    events = models.JSONField(default=list, blank=True)
    error_code = models.CharField(max_length=50, blank=True)
    message = models.TextField(blank=True)
    final_version = models.ForeignKey(
        "training.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"federated job {self.pk} ({self.status})"


class ParticipantStatus(models.TextChoices):
    INVITED = "invited", "Waiting for the site administrator"
    ACCEPTED = "accepted", "Accepted"
    DECLINED = "declined", "Declined"
    # Accepted, then took its own part back: left out of every round from then on (a dropout).
    WITHDRAWN = "withdrawn", "Withdrew"


class WorkState(models.TextChoices):
    IDLE = "idle", "Idle"
    QUEUED = "queued", "Waiting for the site agent"
    TRAINING = "training", "Training at the site"
    SENT = "sent", "Update sent"
    FAILED = "failed", "Failed this round"
    MISSED = "missed", "Missed the deadline"


class Participant(Leased):
    """One site in a federated job: its consent, its dataset, and its work in the current round.

    Its turn in a round is a lease (``pollen.federation.turns``); ``attempt`` counts the claims
    of the current turn.
    """

    job = models.ForeignKey(FederatedJob, on_delete=models.CASCADE, related_name="participants")
    site = models.ForeignKey("accounts.Site", on_delete=models.PROTECT, related_name="+")
    dataset = models.ForeignKey(
        "datasets.Dataset", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    order = models.PositiveIntegerField(default=0)  # relay visits sites in this order
    status = models.CharField(
        max_length=10, choices=ParticipantStatus.choices, default=ParticipantStatus.INVITED
    )
    responded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    responded_at = models.DateTimeField(null=True, blank=True)
    train_count = models.PositiveIntegerField(default=0)  # accepted training images (hub's count)
    # The site's work in the job's current round (a site works on one round at a time).
    work_round = models.IntegerField(null=True, blank=True)
    work_state = models.CharField(max_length=10, choices=WorkState.choices, default=WorkState.IDLE)
    progress = models.JSONField(default=dict, blank=True)
    # Its column keeps the name it had before the lease was one.
    last_sent_at = models.DateTimeField(
        null=True, blank=True, default=timezone.now, db_column="dispatched_at"
    )

    class Meta:
        ordering = ["order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["job", "site"], name="one_participant_per_site")
        ]

    def __str__(self) -> str:
        return f"{self.site_id} in {self.job_id} ({self.status})"


class RoundStatus(models.TextChoices):
    RUNNING = "running", "Sites are training"
    AGGREGATING = "aggregating", "Combining the updates"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class Round(models.Model):
    """Round 0 prepares the common starting weights at the initiating site; rounds 1..R train."""

    job = models.ForeignKey(FederatedJob, on_delete=models.CASCADE, related_name="round_set")
    number = models.PositiveIntegerField()
    status = models.CharField(
        max_length=12, choices=RoundStatus.choices, default=RoundStatus.RUNNING
    )
    expected_sites = models.JSONField(default=list)  # site ids, in relay order
    relay_position = models.PositiveIntegerField(default=0)
    deadline_at = models.DateTimeField()
    input_key = models.CharField(
        max_length=512, blank=True
    )  # global weights this round starts from
    input_sha256 = models.CharField(max_length=64, blank=True)
    weights_key = models.CharField(max_length=512, blank=True)  # global weights it produced
    weights_sha256 = models.CharField(max_length=64, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    model_version = models.OneToOneField(
        "training.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="federated_round",
    )
    aggregating_since = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "number"]
        constraints = [
            models.UniqueConstraint(fields=["job", "number"], name="one_round_number_per_job")
        ]

    def __str__(self) -> str:
        return f"round {self.number} of {self.job_id} ({self.status})"


class UpdateStatus(models.TextChoices):
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"
    FAILED = "failed", "The site reported a failure"


class Update(models.Model):
    """What one site sent for one round: at most one, ever (unique per round and site)."""

    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="updates")
    site = models.ForeignKey("accounts.Site", on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=10, choices=UpdateStatus.choices)
    sample_count = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=dict, blank=True)  # aggregate numbers only
    weights_key = models.CharField(max_length=512, blank=True)
    weights_sha256 = models.CharField(max_length=64, blank=True)
    # How the site fed the model (a manifest's inference block), when its task reports one.
    inference = models.JSONField(default=dict, blank=True)
    code = models.CharField(max_length=50, blank=True)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["round", "created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["round", "site"], name="one_update_per_round_and_site")
        ]

    def __str__(self) -> str:
        return f"update {self.site_id} r{self.round_id} ({self.status})"


class LocalModelSource(models.TextChoices):
    # The site's own update from round 1: trained on this site's images only, from the same
    # common starting model, for the job's local epochs. Every FedAvg site has one; in a relay
    # only the first site's first turn started from the common model.
    FIRST_ROUND = "first_round", "Its own first-round model (its images only)"
    NONE = "", "None"


class HeldOutEvaluation(Leased):
    """The final cross-site model, and the site's local model, checked on the site's held-out images.

    Runs at the site once the job has finished (marketplace work kind
    ``held-out-evaluations``: claim, lease, take-over). Only aggregate numbers come back:
    image counts, AUC, accuracy, sensitivity and specificity with their 95 % intervals.
    """

    job = models.ForeignKey(FederatedJob, on_delete=models.CASCADE, related_name="held_out")
    site = models.ForeignKey("accounts.Site", on_delete=models.PROTECT, related_name="+")
    dataset = models.ForeignKey(
        "datasets.Dataset", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Claimed like marketplace work (a WORK_KINDS entry in pollen.marketplace.work).
    status = models.CharField(
        max_length=10, choices=WorkStatus.choices, default=WorkStatus.QUEUED, db_index=True
    )
    attempt = models.PositiveIntegerField(default=0, db_column="attempts", help_text=ATTEMPT_HELP)
    # The last claim or renewal, read by the release before; drop it in the next release.
    claimed_at = models.DateTimeField(null=True, blank=True)
    federated = models.JSONField(default=dict, blank=True)  # aggregate metrics only
    local = models.JSONField(default=dict, blank=True)  # aggregate metrics only
    # Federated minus local AUC on the same images (paired), its interval and the verdict.
    comparison = models.JSONField(default=dict, blank=True)
    local_source = models.CharField(
        max_length=20, choices=LocalModelSource.choices, blank=True, default=""
    )
    local_note = models.TextField(blank=True)  # why there is no local model, in plain words
    error_code = models.CharField(max_length=50, blank=True)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "id"]
        constraints = [
            models.UniqueConstraint(fields=["job", "site"], name="one_held_out_check_per_site")
        ]

    def __str__(self) -> str:
        return f"held-out check {self.site_id} in {self.job_id} ({self.status})"
