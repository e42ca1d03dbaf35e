"""What a training job does differently for each task, behind one small interface.

``run_training_job`` (jobs/training.py) owns the lifecycle every task shares: the claim, the
lease, progress, checkpoints and resume, the time budget, cancel, the result and the model
folder. A task brings only what differs: how its images are read (labels, or masks), the
datasets and objective the recipe trains with, the test check, the sample pictures, the
training summary and the metrics the manifest keeps. Classification's steps wrap the functions
it always had; segmentation's are in ``jobs/segmentation.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from pollen_agent.jobs.images import SplitImages
from pollen_agent.open_maps import JsonRecord, Metrics
from pollen_agent.storage.base import Storage
from pollen_contracts.specs import TrainingSpec

Progress = Callable[[int, int], None]
Splits = dict[str, SplitImages]


class TaskSteps(Protocol):
    spec: TrainingSpec

    def load(self, storage: Storage, rows: list[JsonRecord], on_progress: Progress) -> Splits:
        """Read the dataset's usable images (and masks) by split."""
        ...

    def config(self, config: Any) -> Any:
        """The recipe's settings for this task (``config``: the job's, from its spec)."""
        ...

    def datasets(self, config: Any, splits: Splits) -> tuple[Any, Any]:
        """The training (augmented) and validation datasets."""
        ...

    def objective(self) -> Any | None:
        """The recipe's objective (None: classification's default)."""
        ...

    def prepare(self, model: Any) -> Any:
        """The starting model, made ready for this job (e.g. a frozen encoder)."""
        ...

    def evaluate(self, model: Any, splits: Splits, mean: Any, std: Any) -> Metrics:
        """The test check through the one inference path; private results start with ``_``."""
        ...

    def samples(
        self, model: Any, split: SplitImages, report: Metrics, mean: Any, std: Any, storage: Storage
    ) -> list[JsonRecord]:
        """A few test pictures saved in site storage (heatmaps, or outlines)."""
        ...

    def parent_comparison(
        self, storage: Storage, work: Path, report: Metrics, test: SplitImages, predict: Any
    ) -> Metrics | None:
        """A fine-tune measured beside the model it started from (None when not measured)."""
        ...

    def summary(self, splits: Splits) -> dict[str, Any]:
        """Counts only, never an image, a filename or a patient id."""
        ...

    def manifest_fields(self, report: Metrics, mean: Any, std: Any) -> dict[str, Any]:
        """The manifest's metrics, finding and inference policy for this task."""
        ...


def steps_for(spec: TrainingSpec) -> TaskSteps:
    if spec.task == "segmentation":
        from pollen_agent.jobs.segmentation import SegmentationSteps

        return SegmentationSteps(spec)
    from pollen_agent.jobs.classification import ClassificationSteps

    return ClassificationSteps(spec)
