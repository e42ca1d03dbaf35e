"""A segmentation job's own steps: images with masks, a U-Net selected on Dice, outline samples.

See ``jobs/task_steps.py`` for the interface and ``jobs/training.py`` for the lifecycle every
task shares. Images whose typical long side is over twice the input size (retinal photographs)
train on patches at full resolution and are read in windows; smaller ones (ultrasound at
256 px) train whole, letterboxed. The test check runs through ``ml.segmentation.infer``, the
path predictions will take, with the policy the manifest records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pollen_agent.jobs.images import SplitImages, keep_side, load_mask_splits
from pollen_agent.jobs.task_steps import Progress, Splits
from pollen_agent.open_maps import JsonRecord, Metrics
from pollen_agent.storage.base import Storage
from pollen_contracts.specs import TrainingSpec

# A one-click U-Net trains for at most this long unless the job says otherwise: the schedule
# is planned to end inside it (the recipe's time budget).
DEFAULT_MAX_MINUTES = 15.0
DEFAULT_EPOCHS = 60
WARMUP_EPOCHS = 0.25
SAMPLES_EACH_END = 3  # the worst and the best test images, outlined
MANIFEST_METRICS = ("dice", "lesion_dice", "iou", "pooled_dice", "hd95_median")


class SegmentationSteps:
    def __init__(self, spec: TrainingSpec) -> None:
        from pollen_agent.ml.segmentation.data import Mode

        self.spec = spec
        self.mode: Mode = "whole"
        self.patches = 1  # patches cut from each training image per epoch (patch mode)

    def load(self, storage: Storage, rows: list[JsonRecord], on_progress: Progress) -> Splits:
        from pollen_agent.ml.segmentation.data import choose_mode

        sizes = [
            (int(r["height"]), int(r["width"])) for r in rows if r.get("height") and r.get("width")
        ]
        self.mode = choose_mode(sizes, self.spec.input_size)
        # Whole images are kept a little larger than the input (augmentation has detail left);
        # patch-trained ones at their own resolution.
        keep = keep_side(self.spec.input_size) if self.mode == "whole" else None
        return load_mask_splits(storage, rows, keep=keep, on_progress=on_progress)

    def config(self, config: Any) -> Any:
        from pollen_agent.ml.segmentation.objective import BATCH_SIZE

        chosen = self.spec.config
        if "batch_size" not in chosen:
            config.batch_size = BATCH_SIZE
        if "epochs" not in chosen:
            config.epochs = DEFAULT_EPOCHS
        if "max_minutes" not in chosen and "epochs" not in chosen:
            config.max_minutes = DEFAULT_MAX_MINUTES
        # A short warmup: a budget that fits few epochs must not spend a whole one warming up
        # (a 2-minute run on 2 shared cores fitted one BUSI epoch, all of it warmup).
        config.warmup_epochs = WARMUP_EPOCHS
        config.eval_batch_size = min(config.eval_batch_size, config.batch_size)
        return config

    def datasets(self, config: Any, splits: Splits) -> tuple[Any, Any]:
        from pollen_agent.ml.segmentation.data import SegmentationDataset
        from pollen_agent.ml.zoo import get_spec

        arch = get_spec(self.spec.architecture)
        common = {
            "input_size": config.input_size,
            "mean": arch.mean,
            "std": arch.std,
            "mode": self.mode,
        }
        train = splits["train"]
        val = splits["val"]
        return (
            SegmentationDataset(
                train.images, train.masks, augment=True, seed=config.seed, **common
            ),
            SegmentationDataset(val.images, val.masks, augment=False, **common),
        )

    def objective(self) -> Any:
        from pollen_agent.ml.segmentation.objective import SegmentationObjective

        return SegmentationObjective(self.spec.label_names)

    def prepare(self, model: Any) -> Any:
        if self.spec.config.get("freeze_encoder"):
            from pollen_agent.ml.segmentation.model import freeze_encoder

            return freeze_encoder(model)
        return model

    def policy(self, mean: Any, std: Any) -> Any:
        from pollen_agent.ml.segmentation.data import segmentation_policy

        return segmentation_policy(
            input_size=self.spec.input_size, mean=mean, std=std, mode=self.mode
        )

    def evaluate(self, model: Any, splits: Splits, mean: Any, std: Any) -> Metrics:
        from pollen_agent.ml.segmentation.infer import predict_segmentations
        from pollen_agent.ml.segmentation.metrics import segmentation_metrics

        test = splits["test"] if splits["test"].images else splits["val"]
        policy = self.policy(mean, std)
        predictions = list(
            predict_segmentations(
                model, test.images, policy=policy, device=next(model.parameters()).device
            )
        )
        report = segmentation_metrics(
            [p.mask for p in predictions],
            test.masks,
            self.spec.label_names,
            image_ids=[str(i) for i in test.ids],
            seed=int(self.spec.config.get("seed", 0)),
        )
        report |= {
            "task": "segmentation",
            "evaluated_on": "test"
            if splits["test"].images
            else "validation (the test set was empty)",
            "tta": policy.tta,
            "input_mode": self.mode,
        }
        return report | {"_masks": [p.mask for p in predictions]}

    def samples(
        self, model: Any, split: SplitImages, report: Metrics, mean: Any, std: Any, storage: Storage
    ) -> list[JsonRecord]:
        """The worst and the best test images with the model's outline and the truth's."""
        from pollen_agent.ml.segmentation.overlay import overlay_png

        masks = report["_masks"]
        dice = np.array([row["dice"] for row in report["per_image"]], dtype=np.float64)
        order = np.argsort(dice, kind="stable")
        chosen = list(dict.fromkeys([*order[:SAMPLES_EACH_END], *order[::-1][:SAMPLES_EACH_END]]))
        prefix = self.spec.samples_prefix
        samples = []
        for i in (int(i) for i in chosen):
            key = f"{prefix}{split.ids[i]}.png"
            picture = overlay_png(split.images[i], masks[i], split.masks[i])
            storage.put_bytes(key, picture, content_type="image/png")
            samples.append({"image_id": split.ids[i], "overlay_key": key, "dice": float(dice[i])})
        return samples

    def parent_comparison(
        self, storage: Storage, work: Path, report: Metrics, test: SplitImages, predict: Any
    ) -> Metrics | None:
        """The fine-tune and the model it started from, Dice per image on the same check
        images through the same path (``predict``: this job's test check)."""
        from pollen_agent.errors import RetryableError, UserError
        from pollen_agent.jobs.model_source import load_model
        from pollen_agent.jobs.parent_check import PARENT_KINDS, not_compared
        from pollen_agent.ml.compare import compare_dice_with_parent

        spec = self.spec
        if not spec.parent or spec.weights.kind not in PARENT_KINDS:
            return None
        try:
            parent, manifest = load_model(spec.weights, storage, work)
        except (UserError, RetryableError) as exc:
            return not_compared(f"The model it started from could not be loaded: {exc}")
        if list(manifest.label_names) != list(spec.label_names):
            return not_compared(
                "The model it started from outlines other classes "
                f"({', '.join(manifest.label_names[1:])}), so the two cannot be compared."
            )
        parent_report = predict(parent)
        result = compare_dice_with_parent(
            np.array([row["dice"] for row in report["per_image"]]),
            np.array([row["dice"] for row in parent_report["per_image"]]),
            seed=int(spec.config.get("seed", 0)),
        )
        return result | {"parent_model_version": spec.parent.model_version_id}

    def summary(self, splits: Splits) -> dict[str, Any]:
        return {
            "images_per_split": {
                split: {
                    "images": len(s.images),
                    "empty_masks": int(sum(not np.any(m) for m in s.masks)),
                }
                for split, s in splits.items()
            },
            "input_mode": self.mode,
        }

    def manifest_fields(self, report: Metrics, mean: Any, std: Any) -> dict[str, Any]:
        return {
            "task": "segmentation",
            "positive_class": None,
            "metrics": {k: report.get(k) for k in MANIFEST_METRICS},
            "inference": self.policy(mean, std).manifest_block(),
        }
