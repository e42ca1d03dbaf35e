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
from bench.stats import summarize

NAME = "quality"
ARCH = "efficientnet_lite0"
TITLES = {"breastmnist": "BreastMNIST", "pneumoniamnist": "PneumoniaMNIST"}
# The bound: the default recipe reaches its quality within 15 minutes on 2 CPU cores.
# The budget is the recipe's own ``max_minutes``: it plans the schedule to end inside it.
BUDGET_MINUTES = 15.0
# Full runs: the default job exactly (recommended zoo entry, default TrainConfig), seeded
# several times where a run is short enough, because one seed on a 156-image test set says
# little. Quick runs are a smoke test: 64 px, one epoch, subsampled data.
FULL_SEEDS = {"breastmnist": (0, 1, 2, 3, 4), "pneumoniamnist": (0,)}
QUICK = {"input_size": 64, "epochs": 1, "max_minutes": 1.0}
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
    probs = predict_probs(model, dataset, tta="hflip")
    check_same_count(len(probs), len(test[1]), what=f"{name} test predictions")
    return evaluate(probs, np.asarray(test[1]), ["0", "1"])


def _recipe(source: str, settings: dict[str, Any], seed: int, data: dict) -> tuple:
    import torch

    from pollen_agent.ml.recipe import TrainConfig, build_datasets, train
    from pollen_agent.ml.zoo import build_model

    config = TrainConfig(**settings, seed=seed, num_threads=2)
    torch.manual_seed(seed)
    model = build_model(ARCH, 2, source=source)
    train_ds, val_ds = build_datasets(ARCH, config, data["train"][:2], data["val"][:2])
    result = train(model, train_ds, val_ds, config)
    detail = (
        f"{result.epochs_run}/{config.epochs} epochs (kept {result.best_epoch}), "
        f"stop: {result.stop_reason}"
    )
    return result.model, detail


def _quick_model(size: int, seed: int, data: dict) -> tuple:
    from pollen_agent.ml.quick import train_quick

    result = train_quick(data["train"][:2], data["val"][:2], arch=ARCH, input_size=size, seed=seed)
    return result.model, f"C={result.regularisation:.3g}"


def _runs(quick: bool, name: str) -> tuple[dict[str, Any], list[tuple[str, Any, tuple[int, ...]]]]:
    """The recipe settings and the (label, fit, seeds) to measure for one data set."""
    if quick:
        settings: dict[str, Any] = dict(QUICK)
        seeds: tuple[int, ...] = (0,)
    else:
        settings = {
            "input_size": fixtures.recommended_input_size(ARCH),
            "max_minutes": BUDGET_MINUTES,
        }
        seeds = FULL_SEEDS[name]
    size = settings["input_size"]
    runs = [
        ("recipe from ImageNet", partial(_recipe, "imagenet", settings), seeds),
        ("recipe from random init", partial(_recipe, "random", settings), seeds[:1]),
        ("quick model (frozen ImageNet + logistic head)", partial(_quick_model, size), seeds[:1]),
    ]
    return settings, runs


def run(quick: bool, repeat: int) -> list[dict[str, Any]]:
    import torch

    torch.set_num_threads(2)
    torch.set_flush_denormal(True)
    table = published()
    rows = []
    for name in TITLES:
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
        settings, runs = _runs(quick, name)
        for label, fit, seeds in runs:
            aucs, accs, minutes, details = [], [], [], []
            for seed in seeds:
                started = time.perf_counter()
                model, detail = fit(seed, data)
                metrics = _test_metrics(model, name, settings["input_size"], data["test"][:2])
                minutes.append((time.perf_counter() - started) / 60)
                aucs.append(float(metrics["auc"]))
                accs.append(float(metrics["accuracy"]))
                details.append(detail)
            auc, acc = summarize(aucs), summarize(accs)
            budget = (
                "" if label.startswith("quick") else f", budget {settings['max_minutes']:g} min"
            )
            seeded = (
                f"seed {seeds[0]}: {details[0]}"
                if len(seeds) == 1
                else f"{len(seeds)} seeds, median (min-max); per seed AUC "
                + ", ".join(f"{a:.3f}" for a in aucs)
                + f"; {details[0]} (seed {seeds[0]})"
            )
            ratio = (
                f"{auc.median / reference[0]:.3f} / {acc.median / reference[1]:.3f}"
                if reference
                else ""
            )
            rows.append(
                row(
                    NAME,
                    f"{TITLES[name]} ({origin}; {counts} train/val/test), "
                    f"{settings['input_size']}px, {label}{budget}: {seeded}",
                    f"test AUC / ACC; wall {summarize(minutes).text(2)} min",
                    f"{auc.text()} / {acc.text()}",
                    baseline_text,
                    ratio,
                )
            )
    return rows
