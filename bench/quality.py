"""Quality: test AUC and accuracy on BreastMNIST and PneumoniaMNIST beside MedMNIST v2's table."""

from __future__ import annotations

import re
import time
from functools import partial
from typing import Any

import numpy as np

from bench import fixtures
from bench.checks import check_same_count
from bench.report import row

NAME = "quality"
ARCH = "efficientnet_lite0"
TITLES = {"breastmnist": "BreastMNIST", "pneumoniamnist": "PneumoniaMNIST"}
# Full runs fit the 2-core budget: (input px, epochs, minutes cap). The epochs are set so the
# warmup + cosine schedule completes within the cap; the cap stops a run that would overrun.
FULL = {"breastmnist": (128, 4, 4.0), "pneumoniamnist": (64, 2, 6.0)}
QUICK = {"breastmnist": (64, 1, 1.0), "pneumoniamnist": (64, 1, 1.0)}
QUICK_SIZES = {"train": 128, "val": 64, "test": 200}


def published() -> dict[str, dict[str, tuple[float, float]]]:
    """MedMNIST v2 test (AUC, ACC) per method, read from the shared README table."""
    from pollen_agent.ml.data import medmnist_dir

    path = medmnist_dir() / "README.md"
    rows: dict[str, dict[str, tuple[float, float]]] = {}
    if not path.is_file():
        return rows
    pattern = re.compile(
        r"^\|\s*([^|]+?)\s*\|\s*([\d.]+)\s*/\s*([\d.]+)\s*\|\s*([\d.]+)\s*/\s*([\d.]+)"
    )
    for line in path.read_text().splitlines():
        match = pattern.match(line)
        if match:
            name, b_auc, b_acc, p_auc, p_acc = match.groups()
            rows[name] = {
                "breastmnist": (float(b_auc), float(b_acc)),
                "pneumoniamnist": (float(p_auc), float(p_acc)),
            }
    return rows


def _split(name: str, split: str, quick: bool) -> tuple[list, list, str]:
    images, labels, source = fixtures.medmnist(name, split)
    if quick:
        # A stratified-enough subsample: every other class alternately, from a fixed shuffle.
        order = np.random.default_rng(0).permutation(len(labels))[: QUICK_SIZES[split]]
        images, labels = images[order], labels[order]
    return list(images), [int(v) for v in labels], source


def _test_metrics(model: Any, name: str, size: int, test: tuple[list, list]) -> dict[str, Any]:
    """Evaluated exactly as the job runner does: TTA (mirror) probabilities, then metrics."""
    from pollen_agent.ml.data import ArrayImageDataset
    from pollen_agent.ml.metrics import evaluate
    from pollen_agent.ml.recipe import predict_probs
    from pollen_agent.ml.zoo import get_spec

    spec = get_spec(ARCH)
    dataset = ArrayImageDataset(*test, input_size=size, mean=spec.mean, std=spec.std, augment=False)
    probs = predict_probs(model, dataset, tta=True)
    check_same_count(len(probs), len(test[1]), what=f"{name} test predictions")
    return evaluate(probs, np.asarray(test[1]), ["0", "1"])


def _recipe(source: str, name: str, size: int, epochs: int, cap: float, data: dict) -> tuple:
    import torch

    from pollen_agent.ml.recipe import TrainConfig, build_datasets, train
    from pollen_agent.ml.zoo import build_model

    config = TrainConfig(input_size=size, epochs=epochs, max_minutes=cap, num_threads=2)
    torch.manual_seed(0)
    model = build_model(ARCH, 2, source=source)
    train_ds, val_ds = build_datasets(ARCH, config, data["train"][:2], data["val"][:2])
    result = train(model, train_ds, val_ds, config)
    detail = f"{result.epochs_run}/{epochs} epochs, stop: {result.stop_reason}"
    return result.model, detail


def _quick_model(name: str, size: int, data: dict) -> tuple:
    from pollen_agent.ml.quick import train_quick

    result = train_quick(data["train"][:2], data["val"][:2], arch=ARCH, input_size=size, seed=0)
    return result.model, f"C={result.regularisation:.3g}"


def run(quick: bool, repeat: int) -> list[dict[str, Any]]:
    import torch

    torch.set_num_threads(2)
    table = published()
    rows = []
    for name, (size, epochs, cap) in (QUICK if quick else FULL).items():
        data = {s: _split(name, s, quick) for s in ("train", "val", "test")}
        counts = "/".join(str(len(data[s][1])) for s in ("train", "val", "test"))
        origin = data["train"][2]
        reference = table.get("ResNet-18 (28)", {}).get(name)
        best = max(table.values(), key=lambda r: r[name][0])[name] if table else None
        baseline_text = (
            f"ResNet-18 (28) {reference[0]:.3f} / {reference[1]:.3f}" if reference else "n/a"
        )
        if best:
            baseline_text += f"; best published {best[0]:.3f} / {best[1]:.3f}"
        runs = [
            ("recipe from ImageNet", partial(_recipe, "imagenet", name, size, epochs, cap, data)),
            ("recipe from random init", partial(_recipe, "random", name, size, epochs, cap, data)),
            (
                "quick model (frozen ImageNet + logistic head)",
                partial(_quick_model, name, size, data),
            ),
        ]
        for label, fit in runs:
            started = time.perf_counter()
            model, detail = fit()
            metrics = _test_metrics(model, name, size, (data["test"][0], data["test"][1]))
            minutes = (time.perf_counter() - started) / 60
            auc, acc = float(metrics["auc"]), float(metrics["accuracy"])
            cap_text = "" if label.startswith("quick") else f", cap {cap:g} min"
            ratio = f"{auc / reference[0]:.3f} / {acc / reference[1]:.3f}" if reference else ""
            rows.append(
                row(
                    NAME,
                    f"{TITLES[name]} ({origin}; {counts} train/val/test), {size}px, {label}: "
                    f"{detail}{cap_text}, 1 seeded run",
                    f"test AUC / ACC; wall {minutes:.1f} min",
                    f"{auc:.3f} / {acc:.3f}",
                    baseline_text,
                    ratio,
                )
            )
    return rows
