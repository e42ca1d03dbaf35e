"""A classification job's own steps: labelled images, AUC-selected training, heatmap samples.

See ``jobs/task_steps.py`` for the interface and ``jobs/training.py`` for the lifecycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pollen_agent.errors import UserError
from pollen_agent.jobs.images import SplitImages, load_splits
from pollen_agent.jobs.parent_check import parent_comparison
from pollen_agent.jobs.task_steps import Progress, Splits
from pollen_agent.open_maps import JsonRecord, Metrics
from pollen_agent.storage.base import Storage
from pollen_contracts.specs import TrainingSpec

SAMPLE_HEATMAPS = 6
MANIFEST_METRICS = ("auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity")


class ClassificationSteps:
    def __init__(self, spec: TrainingSpec) -> None:
        self.spec = spec

    def load(self, storage: Storage, rows: list[JsonRecord], on_progress: Progress) -> Splits:
        return load_splits(
            storage,
            rows,
            self.spec.label_names,
            input_size=self.spec.input_size,
            on_progress=on_progress,
        )

    def config(self, config: Any) -> Any:
        return config

    def datasets(self, config: Any, splits: Splits) -> tuple[Any, Any]:
        from pollen_agent.ml.recipe import build_datasets

        return build_datasets(
            self.spec.architecture,
            config,
            (splits["train"].images, splits["train"].labels),
            (splits["val"].images, splits["val"].labels),
        )

    def objective(self) -> Any | None:
        return None  # the recipe's default: classification with the spec's labels

    def prepare(self, model: Any) -> Any:
        return model

    def evaluate(self, model: Any, splits: Splits, mean: Any, std: Any) -> Metrics:
        """The held-out check, through the same inference path as predictions and site
        evaluations, with the policy the model's manifest will record."""
        from pollen_agent.ml.inference import predict_probs, trained_policy
        from pollen_agent.ml.metrics import evaluate

        test = splits["test"] if splits["test"].images else splits["val"]
        inference = trained_policy(input_size=self.spec.input_size, mean=mean, std=std)
        probs = predict_probs(model, test.images, inference).astype(np.float64)
        report = evaluate(
            probs,
            np.asarray(test.labels),
            list(self.spec.label_names),
            positive_class=self.spec.positive_class or None,
        )
        report["calibration_error"] = report.get("ece")
        report["evaluated_on"] = (
            "test" if splits["test"].images else "validation (the test set was empty)"
        )
        report["tta"] = inference.tta
        return report | {"_probs": probs}

    def samples(
        self, model: Any, split: SplitImages, report: Metrics, mean: Any, std: Any, storage: Storage
    ) -> list[JsonRecord]:
        """A few test images with where the model looked, saved as overlays in site storage."""
        from pollen_agent.ml.gradcam import gradcam
        from pollen_agent.ml.inference import Preprocess, preprocess
        from pollen_agent.ml.overlay import heatmap_overlay_png

        spec, probs = self.spec, report["_probs"]
        settings = Preprocess(int(spec.input_size), tuple(mean), tuple(std))
        samples = []
        prefix = spec.samples_prefix or f"jobs/{spec.job_id}/samples/"  # older hubs
        order: list[int] = (
            [int(i) for i in np.argsort(-probs.max(axis=1))[:SAMPLE_HEATMAPS]] if len(probs) else []
        )
        for i in order:
            image = split.images[i]
            tensor = preprocess(image, settings).unsqueeze(0)
            try:
                heat = gradcam(model, tensor.to(next(model.parameters()).device))
            except UserError:
                break
            key = f"{prefix}{split.ids[i]}.png"
            storage.put_bytes(key, heatmap_overlay_png(image, heat), content_type="image/png")
            predicted = int(np.argmax(probs[i]))
            samples.append(
                {
                    "image_id": split.ids[i],
                    "overlay_key": key,
                    "label": spec.label_names[split.labels[i]],
                    "predicted": spec.label_names[predicted],
                    "probability": float(probs[i][predicted]),
                }
            )
        return samples

    def parent_comparison(
        self, storage: Storage, work: Path, report: Metrics, test: SplitImages, predict: Any
    ) -> Metrics | None:
        return parent_comparison(
            self.spec,
            storage,
            work,
            child_probs=report["_probs"],
            labels=test.labels,
            predict=lambda m: predict(m)["_probs"],
        )

    def summary(self, splits: Splits) -> dict[str, Any]:
        names = self.spec.label_names
        return {
            "images_per_split": {
                split: {
                    name: int(np.sum(np.asarray(s.labels) == i)) for i, name in enumerate(names)
                }
                for split, s in splits.items()
            }
        }

    def manifest_fields(self, report: Metrics, mean: Any, std: Any) -> dict[str, Any]:
        return {
            "positive_class": report.get("positive_class"),
            "metrics": {k: report.get(k) for k in MANIFEST_METRICS}
            | {"positive_class": report.get("positive_class")},
        }
