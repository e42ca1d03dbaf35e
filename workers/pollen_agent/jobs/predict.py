"""Apply a model to images in the site's own storage: probabilities, optional TTA, heatmaps.

Images longer than ``LARGE_SIDE`` on a side go through sliding-window inference (background
patches skipped) with a slide-level heatmap. Overlays are PNGs written to the site's storage;
only probabilities and storage keys go back to the hub. A bad image gets its own error and
never stops the rest of the batch. A worker keeps the last models it loaded (each verified by
its checksum when it was loaded), so a stream of one-image requests does not reload the model.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from pollen_agent.errors import UserError
from pollen_agent.jobs.images import downsized, keep_side, model_pixels
from pollen_agent.jobs.model_source import load_model
from pollen_agent.storage.base import Storage
from pollen_contracts.reports import ImageError, ImageResult, PredictionResult, SlidingWindow
from pollen_contracts.specs import PredictionSpec
from pollen_contracts.weights import ModelRef

LARGE_SIDE = 2048
PATCH_SIZE = 256
BATCH = 32
# Loaded models kept per worker process: loading one (download, checksum, build, load weights)
# costs more than predicting on a few images.
MODEL_CACHE_SIZE = 2
_MODELS: OrderedDict[str, tuple[Any, Any]] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def _has_conv(model: Any) -> bool:
    from torch import nn

    return any(isinstance(m, nn.Conv2d) for m in model.modules())


class _Run:
    def __init__(self, spec: PredictionSpec, storage: Storage, model: Any, manifest: Any) -> None:
        self.spec, self.storage, self.model, self.manifest = spec, storage, model, manifest
        from pollen_agent.ml.inference import manifest_policy

        self.labels = list(manifest.label_names)
        # The manifest's policy: with TTA, the views the model was trained to treat alike.
        self.inference = manifest_policy(manifest, tta=bool(spec.tta))

    def probabilities(self, probs: np.ndarray) -> dict[str, float]:
        return {label: float(p) for label, p in zip(self.labels, probs, strict=True)}

    def overlay(self, image_id: int, image: np.ndarray, heat: np.ndarray) -> str:
        from pollen_agent.ml.overlay import heatmap_overlay_png

        key = f"{self.spec.overlay_prefix.rstrip('/')}/{image_id}.png"
        self.storage.put_bytes(key, heatmap_overlay_png(image, heat), content_type="image/png")
        return key

    def small(self, items: list[tuple[int, np.ndarray]]) -> list[ImageResult]:
        """Whole-image inference in batches; a batch with a bad image is redone one by one."""
        from pollen_agent.ml.inference import predict_probs

        results: list[ImageResult] = []
        for start in range(0, len(items), BATCH):
            batch = items[start : start + BATCH]
            try:
                probs = predict_probs(self.model, [a for _, a in batch], self.inference)
                results.extend(
                    self._answer(i, a, p) for (i, a), p in zip(batch, probs, strict=True)
                )
            except UserError:
                for image_id, array in batch:
                    results.append(
                        self.guarded(image_id, functools.partial(self.one, image_id, array))
                    )
        return results

    def one(self, image_id: int, array: np.ndarray) -> ImageResult:
        from pollen_agent.ml.inference import predict_probs

        probs = predict_probs(self.model, [array], self.inference)[0]
        return self._answer(image_id, array, probs)

    def _answer(self, image_id: int, array: np.ndarray, probs: np.ndarray) -> ImageResult:
        best = int(np.argmax(probs))
        return ImageResult(
            image_id=image_id,
            probabilities=self.probabilities(probs),
            predicted=self.labels[best],
            tta=self.inference.tta,
            overlay_key=self.guarded_heatmap(image_id, array, best) if self.spec.heatmap else None,
        )

    def guarded_heatmap(self, image_id: int, array: np.ndarray, class_index: int) -> str:
        from pollen_agent.ml.gradcam import gradcam
        from pollen_agent.ml.inference import preprocess

        tensor = preprocess(array, self.inference.preprocess)
        device = next(self.model.parameters()).device
        heat = gradcam(self.model, tensor.unsqueeze(0).to(device), class_index=class_index)
        return self.overlay(image_id, array, heat)

    def large(self, image_id: int, array: np.ndarray) -> ImageResult:
        from pollen_agent.ml.sliding import predict_large

        result = predict_large(
            self.model,
            array,
            patch_size=PATCH_SIZE,
            with_heatmap=self.spec.heatmap,
            inference=self.inference,
        )
        return ImageResult(
            image_id=image_id,
            probabilities=self.probabilities(result.probs),
            predicted=self.labels[int(np.argmax(result.probs))],
            tta=self.inference.tta,
            sliding_window=SlidingWindow(
                patch_size=PATCH_SIZE,
                patches=result.patch_count,
                skipped_background=result.skipped_background,
                max_probabilities=self.probabilities(result.max_probs),
            ),
            overlay_key=(
                self.overlay(image_id, downsized(array, 1024), result.heatmap)
                if result.heatmap is not None
                else None
            ),
        )

    @staticmethod
    def guarded(image_id: int, work: Callable[[], ImageResult]) -> ImageResult:
        try:
            return work()
        except UserError as exc:
            return _failed(image_id, exc)


def _failed(image_id: int, exc: UserError) -> ImageResult:
    """This image's own error; the rest of the request goes on."""
    return ImageResult(image_id=image_id, error=ImageError(code=exc.code, message=exc.message))


def _cache_key(model: ModelRef) -> str:
    # Everything the hub says about the model except its presigned URLs, which change per claim.
    described = model.to_dict()
    described["weights"] = {
        k: v for k, v in described["weights"].items() if k not in {"url", "manifest_url"}
    }
    return json.dumps(described, sort_keys=True)


def cached_model(model: ModelRef, storage: Storage, work: Path) -> tuple[Any, Any]:
    """The model a prediction runs, loaded once per worker process and kept for the next ones.

    The cache is keyed by the weights' sha256 (and the rest of what the hub says about the
    model), and a model enters it only after ``load_model`` has verified that checksum, so a
    hit runs exactly the bytes that were published. The worker runs one task at a time; the
    lock only keeps the cache consistent if that ever changes. The least recently used model
    leaves first.
    """
    key = _cache_key(model)
    with _CACHE_LOCK:
        if key in _MODELS:
            _MODELS.move_to_end(key)
            return _MODELS[key]
    loaded = load_model(model.weights, storage, work)
    with _CACHE_LOCK:
        _MODELS[key] = loaded
        while len(_MODELS) > MODEL_CACHE_SIZE:
            _MODELS.popitem(last=False)
    return loaded


def clear_model_cache() -> None:
    with _CACHE_LOCK:
        _MODELS.clear()


def run_prediction(*, spec: PredictionSpec, storage: Storage, work: Path) -> PredictionResult:
    """Everything after the claim. Per-image problems become per-image errors; a problem with the
    model itself (tampered weights, no convolution for a heatmap) raises UserError for the job."""
    started = time.perf_counter()
    model, manifest = cached_model(spec.model, storage, work)
    if manifest.task == "segmentation":
        from pollen_agent.jobs.outlines import run_outlines

        return run_outlines(
            spec=spec, storage=storage, model=model, manifest=manifest, started=started
        )
    if spec.heatmap and not _has_conv(model):
        raise UserError(
            "Heatmaps are available only for convolutional models; this model has no "
            "convolutional layer. Run it again without a heatmap.",
            code="heatmap_unsupported",
        )
    loaded = time.perf_counter()
    run = _Run(spec, storage, model, manifest)
    side = keep_side(manifest.input_size)
    small: list[tuple[int, np.ndarray]] = []
    results: dict[int, ImageResult] = {}
    sizes: dict[int, tuple[int, int]] = {}
    for item in spec.inputs:
        try:
            array = model_pixels(storage.get_bytes(item.key))
        except UserError as exc:  # ObjectNotFound too: this image's own error
            results[item.image_id] = _failed(item.image_id, exc)
            continue
        height, width = array.shape[:2]
        sizes[item.image_id] = (width, height)
        if max(height, width) > LARGE_SIDE:
            large = functools.partial(run.large, item.image_id, array)
            results[item.image_id] = run.guarded(item.image_id, large)
        else:
            small.append((item.image_id, downsized(array, side)))
    for answer in run.small(small):
        results[answer.image_id] = answer
    ordered = [
        replace(results[i], width=sizes[i][0], height=sizes[i][1]) if i in sizes else results[i]
        for i in (item.image_id for item in spec.inputs)
    ]
    finished = time.perf_counter()
    return PredictionResult(
        results=ordered,
        timings={
            "load_model": loaded - started,
            "inference": finished - loaded,
            "total": finished - started,
            "images": len(ordered),
        },
    )
