"""Apply an outlining (segmentation) model to images in the site's own storage.

Each image is read at its own resolution and goes through ``ml.segmentation.infer``, the path
the model's test check took, with the policy its manifest records (whole images letterboxed,
large ones in blended windows; test-time augmentation when asked). Four PNGs per image go to
the site's storage, all at the image's size: the mask (class indexes), the outline over the
image, the probability of any finding and the model's uncertainty. Only their keys and the
areas in numbers go back to the hub. A bad image gets its own error; the rest go on.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from pollen_agent.errors import UserError
from pollen_agent.jobs.images import model_pixels
from pollen_agent.storage.base import Storage
from pollen_contracts.reports import (
    ImageError,
    ImageResult,
    PredictionResult,
    SegmentationAnswer,
)
from pollen_contracts.specs import PredictionSpec

PICTURES = ("mask", "overlay", "probability", "uncertainty")


def run_outlines(
    *, spec: PredictionSpec, storage: Storage, model: Any, manifest: Any, started: float
) -> PredictionResult:
    from pollen_agent.ml.inference import manifest_policy

    loaded = time.perf_counter()
    policy = manifest_policy(manifest, tta=bool(spec.tta))
    names = list(manifest.label_names)
    results = []
    for item in spec.inputs:
        try:
            image = model_pixels(storage.get_bytes(item.key))
            results.append(_outline(model, image, item.image_id, policy, names, spec, storage))
        except UserError as exc:  # ObjectNotFound too: this image's own error
            results.append(
                ImageResult(
                    image_id=item.image_id, error=ImageError(code=exc.code, message=exc.message)
                )
            )
    finished = time.perf_counter()
    return PredictionResult(
        results=results,
        timings={
            "load_model": loaded - started,
            "inference": finished - loaded,
            "total": finished - started,
            "images": len(results),
        },
    )


def _outline(
    model: Any,
    image: np.ndarray,
    image_id: int,
    policy: Any,
    names: list[str],
    spec: PredictionSpec,
    storage: Storage,
) -> ImageResult:
    from scipy import ndimage

    from pollen_agent.ml.segmentation.infer import predict_segmentation
    from pollen_agent.ml.segmentation.overlay import (
        mask_png,
        overlay_png,
        probability_png,
        uncertainty_png,
    )

    answer = predict_segmentation(model, image, policy=policy)
    pictures = {
        "mask": mask_png(answer.mask),
        "overlay": overlay_png(image, answer.mask),
        "probability": probability_png(answer.probabilities),
        "uncertainty": uncertainty_png(answer.uncertainty),
    }
    keys = {name: f"{spec.overlay_prefix}{image_id}-{name}.png" for name in PICTURES}
    for name, data in pictures.items():
        storage.put_bytes(keys[name], data, content_type="image/png")
    pixels = np.bincount(answer.mask.reshape(-1), minlength=len(names))
    total = float(answer.mask.size)
    _, regions = ndimage.label(answer.mask > 0, structure=np.ones((3, 3), dtype=bool))
    height, width = answer.mask.shape
    return ImageResult(
        image_id=image_id,
        width=int(width),
        height=int(height),
        tta=policy.tta,
        segmentation=SegmentationAnswer(
            mask_key=keys["mask"],
            overlay_key=keys["overlay"],
            probability_key=keys["probability"],
            uncertainty_key=keys["uncertainty"],
            class_pixels={name: int(pixels[c]) for c, name in enumerate(names) if c},
            area_fraction={name: float(pixels[c] / total) for c, name in enumerate(names) if c},
            regions=int(regions),
            mean_uncertainty=float(np.mean(answer.uncertainty)),
        ),
    )


def run_outline_evaluation(
    *, spec: Any, hub: Any, storage: Storage, model: Any, manifest: Any, started: float
) -> Any:
    """A published outlining model scored on the site's own masks: aggregate numbers only.

    Every accepted image with a mask is used (the model never saw this site's images). The
    masks are the dataset's reference reader's. Which image scored what never leaves here:
    the worst cases go back as Dice values only.
    """
    from pollen_agent.jobs.images import load_mask_splits
    from pollen_agent.ml.inference import manifest_policy
    from pollen_agent.ml.segmentation.infer import predict_segmentations
    from pollen_agent.ml.segmentation.metrics import segmentation_metrics
    from pollen_contracts.reports import EvaluationResult

    rows = hub.get_all(f"agent/datasets/{spec.dataset_id}/training-images/")
    usable = [r for r in rows if r.get("mask_key")]
    if not usable:
        raise UserError(
            "None of the dataset's images has a mask to score the model against.",
            code="no_matching_labels",
        )
    # Every split counts: read them all as one set, at their own resolution.
    everything = [r | {"split": "test"} for r in usable]
    test = load_mask_splits(storage, everything, keep=None, only=("test",))["test"]
    policy = manifest_policy(manifest, tta=spec.tta)
    predictions = predict_segmentations(model, test.images, policy=policy)
    metrics = segmentation_metrics(
        [p.mask for p in predictions], test.masks, list(manifest.label_names)
    )
    worst = metrics.pop("worst", [])
    metrics.pop("per_image", None)
    metrics["worst_dice"] = [round(float(w["dice"]), 4) for w in worst[:5]]
    metrics["skipped_images"] = {"without_mask": len(rows) - len(usable)}
    metrics["evaluated_on"] = "all accepted images with a mask"
    metrics["tta"] = policy.tta
    metrics["seconds"] = round(time.perf_counter() - started, 3)
    return EvaluationResult(metrics=metrics)
