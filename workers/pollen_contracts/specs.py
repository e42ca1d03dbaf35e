"""Work specs: what the hub hands an agent when it claims a piece of work.

One type per kind of work, each with its ``task`` (classification today) and the contract's
version. The hub builds them (``pollen.*`` spec builders), the claim endpoint sends
``to_dict()``, and the agent rebuilds them with ``from_dict()`` before it touches a byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pollen_contracts.contract import Contract, Task, require
from pollen_contracts.weights import ModelRef, UploadLink, WeightsSpec


@dataclass(frozen=True)
class ParentRef(Contract):
    """The model a fine-tune starts from (credited on the card, compared after training)."""

    model_version_id: int
    weights_sha256: str
    site: str


@dataclass(frozen=True)
class TrainingSpec(Contract):
    versioned: ClassVar[bool] = True

    job_id: int
    attempt: int
    recipe: str
    dataset_id: int
    label_names: list[str]
    architecture: str
    input_size: int
    weights: WeightsSpec
    # The job's settings as the person chose them (epochs, learning rate, augmentation, ...):
    # an open map on purpose, read by the recipe's TrainConfig, which checks what it uses.
    config: dict[str, Any]
    checkpoint_key: str
    samples_prefix: str
    model_key: str
    lease_seconds: int
    starting_point: str
    licence: str
    positive_class: str | None = None
    parent: ParentRef | None = None
    task: Task = "classification"

    def validate(self) -> None:
        require(len(self.label_names) >= 2, "label_names", "needs at least two labels")
        require(self.input_size > 0, "input_size", "must be positive")


@dataclass(frozen=True)
class ImageRef(Contract):
    image_id: int
    key: str


@dataclass(frozen=True)
class PredictionSpec(Contract):
    versioned: ClassVar[bool] = True

    prediction_id: int
    model: ModelRef
    inputs: list[ImageRef]
    tta: bool
    heatmap: bool
    overlay_prefix: str
    task: Task = "classification"

    def validate(self) -> None:
        require(bool(self.inputs), "inputs", "names no image")


@dataclass(frozen=True)
class EvaluationSpec(Contract):
    """A published model evaluated on a labelled dataset at a site (evaluate-at-site)."""

    versioned: ClassVar[bool] = True

    evaluation_id: int
    dataset_id: int
    tta: bool
    model: ModelRef
    positive_class: str | None = None
    task: Task = "classification"


@dataclass(frozen=True)
class ExportSpec(Contract):
    versioned: ClassVar[bool] = True

    export_id: int
    model: ModelRef
    upload: UploadLink
    task: Task = "classification"


@dataclass(frozen=True)
class PublicationUploads(Contract):
    weights: UploadLink
    manifest: UploadLink


@dataclass(frozen=True)
class PublicationSpec(Contract):
    """Copy a site's model folder into the hub's model store (only weights and manifest)."""

    versioned: ClassVar[bool] = True

    published_version_id: int
    storage_key: str
    weights_sha256: str
    uploads: PublicationUploads
    task: Task = "classification"


@dataclass(frozen=True)
class HeldOutSpec(Contract):
    """A finished cross-site model (and the site's own round-1 model) on its held-out images."""

    versioned: ClassVar[bool] = True

    federated_job_id: int
    held_out_id: int
    dataset_id: int
    label_names: list[str]
    architecture: str
    input_size: int
    federated: WeightsSpec
    local: WeightsSpec | None = None
    positive_class: str | None = None
    task: Task = "classification"


@dataclass(frozen=True)
class FederatedRoundSpec(Contract):
    """One site's turn in a cross-site round: round 0 prepares the common start, others train.

    ``weights`` is the model the turn starts from: the job's starting point in round 0, the
    previous round's combined weights (a ``hub_file``) after that. ``update`` is where the site
    puts the weights it trained.
    """

    versioned: ClassVar[bool] = True

    federated_job_id: int
    round: int
    rounds: int
    site: str
    dataset_id: int
    label_names: list[str]
    architecture: str
    input_size: int
    local_epochs: int
    batch_size: int
    learning_rate: float
    seed: int
    checkpoint_key: str
    lease_seconds: int
    weights: WeightsSpec
    update: UploadLink
    positive_class: str | None = None
    task: Task = "classification"

    def validate(self) -> None:
        require(
            self.round == 0 or self.weights.kind == "hub_file",
            "weights.kind",
            "rounds after the first start from the previous round's combined weights",
        )


# The hub's marketplace path segment -> the spec its claim hands over.
WORK_SPECS: dict[str, type[Contract]] = {
    "publications": PublicationSpec,
    "predictions": PredictionSpec,
    "evaluations": EvaluationSpec,
    "exports": ExportSpec,
    "held-out-evaluations": HeldOutSpec,
}


@dataclass(frozen=True)
class JobClaimed(Contract):
    """The answer to a training job's claim that won: a job-scoped token and the spec."""

    job_token: str
    spec: TrainingSpec
    claimed: bool = True


@dataclass(frozen=True)
class RoundClaimed(Contract):
    spec: FederatedRoundSpec
    claimed: bool = True


@dataclass(frozen=True)
class WorkClaimed(Contract):
    """A marketplace claim that won. ``spec`` is the kind's spec (see ``WORK_SPECS``)."""

    # An open map here because the spec's type depends on the kind in the URL; the agent
    # rebuilds it with WORK_SPECS[kind].from_dict at once (pollen_agent.tasks.marketplace).
    spec: dict[str, Any]
    lease_seconds: int
    claimed: bool = True


@dataclass(frozen=True)
class ClaimRequest(Contract):
    claim_id: str  # the broker's delivery: the same delivery may claim again after a fault
    worker: str  # the worker's host name, for site IT


@dataclass(frozen=True)
class Failure(Contract):
    """A worker's report that the work cannot be done: a stable code and plain words."""

    code: str
    message: str


@dataclass(frozen=True)
class WorkFailure(Contract):
    """A marketplace worker's failure report, for the claim it holds."""

    claim_id: str
    code: str
    message: str
