"""Inference: latency and throughput of ``predict`` (plain, + Grad-CAM, + TTA) vs a bare forward."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from bench import fixtures
from bench.checks import check_close
from bench.report import row
from bench.stats import paired_ratios, percentile, summarize

NAME = "inference"
ARCH = "efficientnet_lite0"


def _variants(spec: Any, size: int) -> dict[str, Callable[[Any, np.ndarray, Any], Any]]:
    import torch

    from pollen_agent.ml.gradcam import gradcam
    from pollen_agent.ml.predict import predict, preprocess

    common = {"input_size": size, "mean": spec.mean, "std": spec.std}

    def bare(model: Any, image: np.ndarray, tensor: Any) -> Any:
        with torch.inference_mode():
            return torch.softmax(model(tensor), dim=1)

    def plain(model: Any, image: np.ndarray, tensor: Any) -> Any:
        return predict(model, [image], **common, device="cpu")

    def with_gradcam(model: Any, image: np.ndarray, tensor: Any) -> Any:
        probs = predict(model, [image], **common, device="cpu")
        return probs, gradcam(model, preprocess(image, **common).unsqueeze(0))

    def with_tta(model: Any, image: np.ndarray, tensor: Any) -> Any:
        return predict(model, [image], **common, tta="hflip", device="cpu")

    return {
        "bare": bare,
        "predict": plain,
        "predict + Grad-CAM": with_gradcam,
        "predict + TTA": with_tta,
    }


def _measure(
    call: Callable,
    models: list[Any],
    images: list[np.ndarray],
    tensors: list[Any],
    concurrency: int,
) -> tuple[list[float], float]:
    """Per-request latencies (ms) and throughput (requests/s); one model copy per worker."""
    latencies: list[float] = []

    def worker(index: int) -> None:
        model = models[index % concurrency]
        for j in range(index, len(images), concurrency):
            started = time.perf_counter()
            call(model, images[j], tensors[j])
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(worker, range(concurrency)))
    return latencies, len(images) / (time.perf_counter() - started)


def run(quick: bool, repeat: int) -> list[dict[str, Any]]:
    import torch

    from pollen_agent.ml.predict import predict, preprocess
    from pollen_agent.ml.zoo import build_model, get_spec

    size = 64 if quick else fixtures.recommended_input_size(ARCH)
    spec = get_spec(ARCH)
    torch.manual_seed(0)
    model = build_model(ARCH, 2, source="imagenet").eval()
    test, _, source = fixtures.medmnist("breastmnist", "test")
    per_c = {1: 6 if quick else 12, 8: 8 if quick else 16}
    images = list(test[: max(per_c.values())])
    tensors = [
        preprocess(img, input_size=size, mean=spec.mean, std=spec.std).unsqueeze(0)
        for img in images
    ]
    # The bare forward must compute exactly what predict computes, or the ratio means nothing.
    with torch.inference_mode():
        bare_probs = torch.softmax(model(torch.cat(tensors[:4])), dim=1).numpy()
    ours = predict(model, images[:4], input_size=size, mean=spec.mean, std=spec.std, device="cpu")
    check_close(ours, bare_probs, what="predict vs bare forward")

    variants = _variants(spec, size)
    rows = []
    for concurrency, n_requests in per_c.items():
        models = [copy.deepcopy(model) for _ in range(concurrency)]
        results: dict[str, dict[str, list[float]]] = {
            name: {"p50": [], "p99": [], "rps": []} for name in variants
        }
        for _ in range(repeat):
            for name, call in variants.items():
                call(models[0], images[0], tensors[0])  # warm the kernels for this variant
                latencies, rps = _measure(
                    call, models, images[:n_requests], tensors[:n_requests], concurrency
                )
                results[name]["p50"].append(percentile(latencies, 50))
                results[name]["p99"].append(percentile(latencies, 99))
                results[name]["rps"].append(rps)
        setting = (
            f"{ARCH} {size}px, 1 image per request, concurrency {concurrency}, {n_requests} "
            f"requests ({source}), {repeat} reps"
        )
        for name in ("predict", "predict + Grad-CAM", "predict + TTA"):
            rows.extend(latency_rows(NAME, setting, name, results[name], results["bare"]))
    return rows


def latency_rows(
    benchmark: str,
    setting: str,
    variant: str,
    ours: dict[str, list[float]],
    bare: dict[str, list[float]],
    *,
    how: str = "vs bare forward",
) -> list[dict[str, Any]]:
    """p50 and p99 latency and throughput of ``variant`` beside the bare forward pass, measured
    pair by pair in each repetition (keys ``p50``, ``p99``, ``rps``)."""
    return [
        row(
            benchmark,
            setting,
            f"{variant}: {label} {how}",
            summarize(ours[key]).text(),
            summarize(bare[key]).text(),
            paired_ratios(ours[key], bare[key]).text(),
        )
        for key, label in (
            ("p50", "p50 latency ms"),
            ("p99", "p99 latency ms"),
            ("rps", "throughput images/s"),
        )
    ]
