"""Reports: what an agent sends the hub while and after it works.

The agent builds these and posts ``to_dict()``; the hub's agent endpoints check the same fields
with their request serializers (which document them in the agent's OpenAPI schema), and a test
holds each serializer and its contract type to the same field names
(``tests/hub/core/test_agent_contract.py``). Only aggregate numbers, keys and checksums travel:
never a pixel, never a per-image value except a prediction's own answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pollen_contracts.contract import Contract, require
from pollen_contracts.manifest import InferenceBlock
from pollen_contracts.weights import require_sha256

Interval = list[float]  # a 95 % interval [low, high]


# --- Training jobs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobProgress(Contract):
    phase: Literal["loading", "training", "evaluating", "saving"]
    fraction: float
    epoch: int | None = None
    epochs: int | None = None
    step: int | None = None
    steps: int | None = None
    loss: float | None = None
    eta_seconds: float | None = None
    images_per_second: float | None = None


@dataclass(frozen=True)
class EpochRecord(Contract):
    epoch: int
    train_loss: float
    val_loss: float | None = None
    val_auc: float | None = None
    val_accuracy: float | None = None
    val_balanced_accuracy: float | None = None
    # Segmentation: mean Dice and IoU per validation image (an empty mask left empty scores 1).
    val_dice: float | None = None
    val_iou: float | None = None
    seconds: float | None = None
    checkpoint_sha256: str = ""
    attempt: int | None = None


@dataclass(frozen=True)
class TrainingStart(Contract):
    from_epoch: int
    epochs: list[EpochRecord] = field(default_factory=list)


@dataclass(frozen=True)
class TrainedModel(Contract):
    """The model folder a job wrote to the site's storage, described (its weights stay there)."""

    architecture: str
    label_names: list[str]
    input_size: int
    mean: list[float]
    std: list[float]
    weights_sha256: str
    storage_key: str
    # Epochs, timings, augmentation and the recipe's choices: shown on the card as they are.
    training_summary: dict[str, Any]
    licence: str = ""
    positive_class: str = ""

    def validate(self) -> None:
        require_sha256(self.weights_sha256, "weights_sha256")
        require(
            not self.positive_class or self.positive_class in self.label_names,
            "positive_class",
            "must be one of label_names",
        )


@dataclass(frozen=True)
class TrainingResult(Contract):
    # The test evaluation (metrics with intervals, ROC and calibration points, confusion
    # matrix, sample predictions): its metric set depends on the task and the number of labels.
    evaluation: dict[str, Any]
    model: TrainedModel
    timings: dict[str, float] = field(default_factory=dict)
    # A fine-tune only: the model it started from measured alike (pollen_contracts.comparison).
    parent_comparison: dict[str, Any] | None = None


# --- Marketplace work ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RenewRequest(Contract):
    claim_id: str


@dataclass(frozen=True)
class PublicationResult(Contract):
    weights_sha256: str
    manifest_sha256: str
    weights_bytes: int


@dataclass(frozen=True)
class ImageError(Contract):
    code: str
    message: str


@dataclass(frozen=True)
class SlidingWindow(Contract):
    """How an image too large for one pass was read: in patches, background patches skipped."""

    patch_size: int
    patches: int
    skipped_background: int
    # The answer of the patch most sure of each label (a small lesion shows here first).
    max_probabilities: dict[str, float]


@dataclass(frozen=True)
class SegmentationAnswer(Contract):
    """An outlining model's answer for one image: PNGs in the site's storage, sizes in numbers.

    Every picture is at the image's own size: ``mask_key`` holds class indexes (0 background),
    ``overlay_key`` the prediction's outline over the image, ``probability_key`` and
    ``uncertainty_key`` colour maps of the probability of any finding and of how undecided the
    model was (normalised entropy).
    """

    mask_key: str
    overlay_key: str
    probability_key: str
    uncertainty_key: str
    # Per class name (background left out): pixels drawn and their fraction of the image.
    class_pixels: dict[str, int]
    area_fraction: dict[str, float]
    regions: int  # separate regions drawn (8-connected), e.g. lesions found
    mean_uncertainty: float


@dataclass(frozen=True)
class ImageResult(Contract):
    """One image's answer: probabilities per label and, if asked, its heatmap overlay's key."""

    image_id: int
    probabilities: dict[str, float] | None = None
    predicted: str | None = None
    overlay_key: str | None = None
    width: int | None = None
    height: int | None = None
    sliding_window: SlidingWindow | None = None
    # The test-time augmentation the answer was averaged over ("none", "hflip", ...).
    tta: str | None = None
    error: ImageError | None = None
    # Segmentation models: the outline and its maps (probabilities stay None).
    segmentation: SegmentationAnswer | None = None


@dataclass(frozen=True)
class PredictionResult(Contract):
    results: list[ImageResult]
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluationResult(Contract):
    # The site's aggregate metrics (with intervals, curves and the inference policy used).
    metrics: dict[str, Any]


@dataclass(frozen=True)
class ExportResult(Contract):
    sha256: str
    bytes: int
    opset: int | None = None
    max_abs_diff: float | None = None
    atol: float | None = None


@dataclass(frozen=True)
class HeldOutMetrics(Contract):
    n: int
    class_counts: dict[str, int] = field(default_factory=dict)
    positive_class: str = ""
    auc: float | None = None
    auc_ci: Interval | None = None
    accuracy: float | None = None
    accuracy_ci: Interval | None = None
    sensitivity: float | None = None
    sensitivity_ci: Interval | None = None
    specificity: float | None = None
    specificity_ci: Interval | None = None
    warnings: list[str] = field(default_factory=list)
    # The test-time augmentation the numbers were averaged over ("none", "hflip", ...).
    tta: str | None = None
    # Segmentation: mean Dice per image (an empty mask left empty scores 1), over the images
    # whose mask outlines a finding (lesion), mean IoU and the median HD95 in pixels.
    dice: float | None = None
    dice_ci: Interval | None = None
    lesion_dice: float | None = None
    lesion_dice_ci: Interval | None = None
    iou: float | None = None
    hd95_median: float | None = None


@dataclass(frozen=True)
class HeldOutComparison(Contract):
    auc_difference: float | None
    auc_difference_ci: Interval | None
    verdict: str
    # Segmentation: final minus local mean Dice on the same images (paired bootstrap); the
    # AUC fields are then None.
    dice_difference: float | None = None
    dice_difference_ci: Interval | None = None


@dataclass(frozen=True)
class HeldOutResult(Contract):
    federated: HeldOutMetrics
    local: HeldOutMetrics | None = None
    comparison: HeldOutComparison | None = None


# --- Cross-site rounds --------------------------------------------------------------------------


@dataclass(frozen=True)
class RoundProgress(Contract):
    phase: Literal["loading", "training", "saving"]
    fraction: float
    epoch: int | None = None
    epochs: int | None = None
    loss: float | None = None
    eta_seconds: float | None = None
    # The delivery that claimed the turn: only its reports renew the lease (absent from agents
    # older than this field, whose reports renew whoever holds the turn).
    claim_id: str | None = None


@dataclass(frozen=True)
class RoundMetrics(Contract):
    """Aggregate validation numbers only: one number each, never a per-image value."""

    val_auc: float | None = None
    val_accuracy: float | None = None
    val_balanced_accuracy: float | None = None
    val_loss: float | None = None
    train_loss: float | None = None
    val_count: int | None = None
    # Segmentation: mean Dice and IoU per validation image.
    val_dice: float | None = None
    val_iou: float | None = None


@dataclass(frozen=True)
class Preprocessing(Contract):
    mean: list[float]
    std: list[float]


@dataclass(frozen=True)
class RoundUpdate(Contract):
    weights_sha256: str
    sample_count: int
    metrics: RoundMetrics | None = None
    model: Preprocessing | None = None  # round 0 only: the model's preprocessing
    # How the site fed the model (segmentation: whole letterboxed images, or windows of large
    # ones), so the combined model's manifest reads images the way it was trained.
    inference: InferenceBlock | None = None

    def validate(self) -> None:
        require_sha256(self.weights_sha256, "weights_sha256")


# --- Answers the agent reads --------------------------------------------------------------------


@dataclass(frozen=True)
class Renewed(Contract):
    renewed: bool


@dataclass(frozen=True)
class StopOrGoOn(Contract):
    """The answer to a progress report: ``stop`` true means the work was taken away."""

    stop: bool = False
    cancel: bool = False


# --- Site storage chores ------------------------------------------------------------------------


@dataclass(frozen=True)
class MaskStats(Contract):
    """What a segmentation mask holds, in numbers (never pixels)."""

    empty: bool
    foreground_fraction: float
    # Pixels per class name of the dataset's label map (background left out): open by nature,
    # one entry per class the dataset declares.
    class_pixels: dict[str, int]
    components: int  # separate lesions (8-connected regions of foreground)
    largest_component_px: int


@dataclass(frozen=True)
class IngestedMask(Contract):
    """One reader's mask of an image, checked at the site beside its image."""

    mask_id: int
    status: Literal["accepted", "rejected"]
    code: str = ""
    reason: str = ""
    sha256: str = ""
    size_bytes: int | None = None
    # Where the mask models read is stored: the agent's normalised copy (an 8-bit PNG of class
    # indexes; several files of one reader merged into it).
    key: str = ""
    # A small PNG of the image with this mask outlined, for the dataset page.
    thumbnail_key: str = ""
    stats: MaskStats | None = None
    # Dice of this reader's mask against the reference reader's mask of the same image
    # (None for the reference reader itself, or when there is none).
    agreement_dice: float | None = None


@dataclass(frozen=True)
class IngestedImage(Contract):
    """One uploaded file checked at the site: accepted (with what was learnt) or rejected (why)."""

    image_id: int
    status: Literal["accepted", "rejected"]
    code: str = ""
    reason: str = ""
    sha256: str = ""
    width: int | None = None
    height: int | None = None
    channels: int | None = None
    modality: str = ""
    format: str = ""
    thumbnail_key: str = ""
    size_bytes: int | None = None
    # What the file's own header said (DICOM tags kept by the agent's allow-list).
    metadata: dict[str, Any] | None = None
    # Segmentation datasets: each reader's mask of this image, in the order they were sent.
    masks: list[IngestedMask] | None = None


@dataclass(frozen=True)
class IngestResults(Contract):
    results: list[IngestedImage]


@dataclass(frozen=True)
class ArchiveMask(Contract):
    """A mask paired with an archive's image: its files (several are merged) and its reader."""

    names: list[str]
    keys: list[str]
    reader: str = ""


@dataclass(frozen=True)
class ArchiveEntry(Contract):
    name: str
    key: str
    label: str
    size: int | None = None
    # Segmentation archives: the image's masks, and what a manifest said of it.
    masks: list[ArchiveMask] | None = None
    patient_id: str = ""
    split: str = ""


@dataclass(frozen=True)
class ArchiveReject(Contract):
    name: str
    reason: str


@dataclass(frozen=True)
class ArchiveResult(Contract):
    status: Literal["done", "failed"]
    message: str = ""
    entries: list[ArchiveEntry] = field(default_factory=list)
    rejected: list[ArchiveReject] = field(default_factory=list)


@dataclass(frozen=True)
class TrainingImage(Contract):
    """A row of ``training-images``: an accepted, labelled image and where it is stored."""

    id: int
    storage_key: str
    label: str
    split: str
    patient_id: str = ""
    sha256: str = ""
    width: int | None = None
    height: int | None = None
    # Segmentation: the reference reader's mask (values are indexes into the spec's label_names).
    mask_key: str = ""
