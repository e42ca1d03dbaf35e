"""GPU check: the one-click recipe, the one inference path and bf16 autocast, on a lent GPU.

``python -m bench.gpu_check --out DIR --budget-seconds N`` (``bench/gpu_check.sh`` sets up the
carried packages and data first). Everything goes through the agent's own code: the device from
``ml.device.resolve_device``, training through ``ml.recipe.train`` with the default
``TrainConfig`` at the recommended zoo entry's input size (the one-click job, which sets no time
budget; past its share of ``--budget-seconds`` the run is cancelled after an epoch, as a job is
cancelled), the test AUC and every prediction through
``ml.inference.predict_probs`` with the policy the job records. Baselines: the same recipe's first
epochs on this machine's CPU (a child process that sees no GPU), a bare forward/backward step
and a bare forward pass of the same model on the same device.

It prints a Markdown table and writes ``gpu_check.json`` and ``gpu_check.md`` to ``--out``. A
section that fails prints a "skipped" line and the rest still run; on a machine without a GPU
everything runs on the CPU (``--smoke`` makes it small enough to try in a minute or two).
"""

from __future__ import annotations

import argparse
import copy
import functools
import itertools
import json
import math
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.report import REPO, render_table, row
from bench.stats import fmt_number, percentile

for _folder in ("workers", "platform"):
    if str(REPO / _folder) not in sys.path:
        sys.path.insert(0, str(REPO / _folder))

NAME = "gpu check"
ARCH = "efficientnet_lite0"
DATASET = "breastmnist"
LABELS = ["0", "1"]
# Shares of --budget-seconds: training on the main device (cancelled after an epoch past its
# share), then the CPU child; inference takes what is left (its loops stop at the deadline).
TRAIN_SHARE = 0.4
CPU_SHARE = 0.25
CPU_EPOCHS = 2
# The inference path runs in true float32 on every device (ml.device.full_precision: no
# autocast, no TF32), so GPU and CPU differ only by the order of float32 sums.
PATH_TOLERANCE = 0.005  # path on the GPU vs the path on the CPU (true float32 on both)
BARE_TOLERANCE = 0.01  # the path vs the bare forward pass at the path's own precision
SMOKE = {"input_size": 64, "train": 128, "val": 64, "test": 64}
STARTED = time.perf_counter()


class Budget:
    """Wall-clock deadline for the whole check, counted from this module's import."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = STARTED + seconds

    def left(self) -> float:
        return self.deadline - time.perf_counter()


class Report:
    """Table rows, skipped sections and raw numbers, printed as they come."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.skipped: list[str] = []
        self.results: dict[str, Any] = {}

    def add(
        self, setting: str, metric: str, value: Any, baseline: Any = "", ratio: Any = ""
    ) -> None:
        self.rows.append(row(NAME, setting, metric, value, baseline, ratio))
        print(
            f"  {metric}: {value}"
            + (f" | baseline {baseline}" if baseline != "" else "")
            + (f" | ratio {ratio}" if ratio != "" else ""),
            flush=True,
        )

    def pair(self, setting: str, metric: str, ours: float, baseline: float) -> None:
        """A row of two measurements and their ratio."""
        ratio = ours / baseline if baseline else math.nan
        self.add(setting, metric, _f(ours), _f(baseline), _f(ratio))

    def skip(self, section: str, reason: str) -> None:
        line = f"skipped: {section}: {reason}"
        self.skipped.append(line)
        self.results.setdefault(section, {})["skipped"] = reason
        print(line, flush=True)


def _section(report: Report, name: str, call: Callable[[], Any]) -> Any:
    """Run one section; a failure becomes a skipped line, never a crash."""
    print(f"\n== {name} ({time.perf_counter() - STARTED:.0f} s in)", flush=True)
    try:
        return call()
    except Exception as error:  # any failure is reported and the check goes on
        traceback.print_exc()
        report.skip(name, f"{type(error).__name__}: {error}")
        return None


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _f(value: float, digits: int = 3) -> str:
    return fmt_number(value, digits) if math.isfinite(value) else "n/a"


# --- Data and model ----------------------------------------------------------------------------


def _data(smoke: bool) -> tuple[dict[str, tuple[list, list]], str]:
    from bench import fixtures

    data: dict[str, tuple[list, list]] = {}
    origin = ""
    for split in ("train", "val", "test"):
        images, labels, source = fixtures.medmnist(DATASET, split)
        if smoke:
            order = np.random.default_rng(0).permutation(len(labels))[: SMOKE[split]]
            images, labels = images[order], labels[order]
        data[split] = (list(images), [int(v) for v in labels])
        origin = origin or source
    counts = "/".join(str(len(data[s][1])) for s in ("train", "val", "test"))
    return data, f"{origin.split(' ')[0]} {counts} train/val/test"


def _input_size(smoke: bool) -> int:
    if smoke:
        return SMOKE["input_size"]
    try:
        from bench.fixtures import recommended_input_size

        return recommended_input_size(ARCH)
    except Exception:  # the hub package is optional here
        from pollen_agent.ml.recipe import TrainConfig

        return TrainConfig().input_size


def _start_model(report: Report) -> tuple[Any, str]:
    """EfficientNet-Lite0 from the carried ImageNet weights, else random (said so)."""
    import torch

    from pollen_agent.ml.zoo import build_model

    torch.manual_seed(0)
    try:
        return build_model(ARCH, 2, source="imagenet"), "imagenet"
    except Exception as error:
        report.skip("ImageNet weights", f"{error}; random initialisation instead")
        torch.manual_seed(0)
        return build_model(ARCH, 2, source="random"), "random"


# --- Training ----------------------------------------------------------------------------------


class _EpochTimes:
    """Recipe callbacks that note when each epoch ends (the job's send progress too), and
    cancel the run once ``seconds`` have passed and an epoch has ended, as a user's cancel would."""

    def __init__(self, seconds: float) -> None:
        self.started = time.perf_counter()
        self.deadline = self.started + seconds
        self.ends: list[float] = []
        self.planned: int | None = None

    def on_step(self, epoch: int, step: int, steps_per_epoch: int, loss: float) -> None:
        return None

    def on_epoch_end(
        self, epoch: int, train_loss: float, val_metrics: Any, checkpoint: Any
    ) -> None:
        self.ends.append(time.perf_counter())

    def should_cancel(self) -> bool:
        # Never before an epoch has ended: a run cancelled in its first epoch keeps nothing.
        return bool(self.ends) and time.perf_counter() > self.deadline

    def on_plan(self, epochs: int) -> None:
        self.planned = epochs

    def epoch_seconds(self) -> list[float]:
        marks = [self.started, *self.ends]
        return [b - a for a, b in itertools.pairwise(marks)]


def run_recipe(
    model: Any, data: dict, size: int, *, epochs: int | None, seconds: float
) -> dict[str, Any]:
    """The one-click recipe (default TrainConfig) on whatever device ``pick_device`` chooses."""
    from pollen_agent.ml.recipe import TrainConfig, build_datasets, train

    config = TrainConfig(input_size=size)
    if epochs is not None:
        config.epochs = epochs
    train_ds, val_ds = build_datasets(ARCH, config, data["train"], data["val"])
    clock = _EpochTimes(seconds)
    started = time.perf_counter()
    result = train(model, train_ds, val_ds, config, clock)
    wall = time.perf_counter() - started
    steady = clock.epoch_seconds()[1:] or clock.epoch_seconds()
    return {
        "result": result,
        "wall_seconds": wall,
        "epochs_run": result.epochs_run,
        "configured_epochs": config.epochs,
        "planned_epochs": result.planned_epochs,
        "best_epoch": result.best_epoch,
        "stop_reason": result.stop_reason,
        "images_per_second": result.images_per_second,
        "seconds": result.seconds,
        "epoch_seconds": clock.epoch_seconds(),
        "steady_epoch_seconds": float(np.median(steady)) if steady else math.nan,
        "train_images": len(data["train"][1]),
        "cancel_after_seconds": seconds,
    }


def bare_train_rate(model: Any, data: dict, size: int, device: Any, seconds: float) -> float:
    """Images/s of a bare step (batch 32, the recipe's device settings) on pre-placed tensors."""
    import torch
    import torch.nn.functional as F

    from pollen_agent.ml.data import ArrayImageDataset
    from pollen_agent.ml.device import autocast_context, place_batch, place_model
    from pollen_agent.ml.zoo import get_spec

    spec = get_spec(ARCH)
    images, labels = data["train"][0][:32], data["train"][1][:32]
    dataset = ArrayImageDataset(
        images, labels, input_size=size, mean=spec.mean, std=spec.std, augment=False
    )
    batch = place_batch(torch.stack([dataset[i][0] for i in range(len(labels))]), device)
    target = torch.tensor(labels, device=device)
    net = place_model(copy.deepcopy(model), device).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)

    def step() -> None:
        with autocast_context(device):
            loss = F.cross_entropy(net(batch), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    _sync(device)
    steps, started = 0, time.perf_counter()
    while steps < 3 or (time.perf_counter() - started < seconds and steps < 200):
        step()
        steps += 1
        if steps % 10 == 0:
            _sync(device)
    _sync(device)
    return steps * len(labels) / (time.perf_counter() - started)


def _train_rows(report: Report, run: dict, setting: str, where: str) -> None:
    seconds = run["seconds"]
    epochs = run["epoch_seconds"]
    report.add(
        setting,
        f"{where}: recipe wall s; epochs run/planned/configured (kept, stop)",
        f"{_f(run['wall_seconds'])} s; {run['epochs_run']}/{run['planned_epochs']}/"
        f"{run['configured_epochs']} (kept {run['best_epoch']}, {run['stop_reason']})",
    )
    report.add(
        setting,
        f"{where}: recipe train images/s (TrainResult); epoch s (first, median of rest)",
        f"{_f(run['images_per_second'])}; {_f(epochs[0]) if epochs else 'n/a'} s, "
        f"{_f(run['steady_epoch_seconds'])} s",
    )
    report.add(
        setting,
        f"{where}: recipe seconds data / step / validation / total",
        " / ".join(_f(seconds.get(k, math.nan)) for k in ("data", "step", "validation", "total")),
    )


def train_section(
    report: Report, budget: Budget, data: dict, size: int, source: str, model: Any, setting: str
) -> dict[str, Any]:
    from pollen_agent.ml.device import resolve_device

    device = resolve_device()
    seconds = max(5.0, TRAIN_SHARE * budget.seconds)
    run = run_recipe(model, data, size, epochs=None, seconds=seconds)
    _train_rows(report, run, setting, f"train on {device.type} (cancel after {seconds:.0f} s)")
    bare = bare_train_rate(
        model, data, size, device, seconds=min(10.0, max(2.0, budget.left() / 30))
    )
    report.add(
        setting,
        f"train images/s on {device.type}: recipe vs bare step (batch 32, same device settings)",
        _f(run["images_per_second"]),
        _f(bare),
        _f(run["images_per_second"] / bare),
    )
    result = run.pop("result")
    report.results["train"] = run | {
        "device": str(device),
        "source": source,
        "bare_images_per_second": bare,
    }
    return {"model": result.model, "run": run, "bare": bare, "device": device.type}


def test_auc_section(report: Report, model: Any, data: dict, size: int, setting: str) -> None:
    """The job's held-out check: the trained policy (hflip TTA) through the one inference path."""
    from pollen_agent.ml.inference import predict_probs, trained_policy
    from pollen_agent.ml.metrics import evaluate
    from pollen_agent.ml.zoo import get_spec

    spec = get_spec(ARCH)
    chosen = trained_policy(input_size=size, mean=spec.mean, std=spec.std)
    started = time.perf_counter()
    probs = predict_probs(model, data["test"][0], chosen).astype(np.float64)
    seconds = time.perf_counter() - started
    metrics = evaluate(probs, np.asarray(data["test"][1]), LABELS)
    report.add(
        setting,
        f"test AUC / accuracy (predict_probs, tta {chosen.tta}); eval s",
        f"{_f(float(metrics['auc']))} / {_f(float(metrics['accuracy']))}; {_f(seconds)} s",
    )
    report.results["test"] = {
        "auc": metrics["auc"],
        "accuracy": metrics["accuracy"],
        "tta": chosen.tta,
        "seconds": seconds,
    }


def cpu_side_section(
    report: Report,
    budget: Budget,
    args: argparse.Namespace,
    gpu: dict[str, Any] | None,
    setting: str,
) -> None:
    """The same recipe's first epochs on this machine's CPU, in a child that sees no GPU."""
    timeout = min(CPU_SHARE * budget.seconds, budget.left() - 0.2 * budget.seconds)
    if timeout < 20:
        raise RuntimeError(f"too little time left for the CPU side ({timeout:.0f} s)")
    out = Path(args.out) / "cpu_side.json"
    command = [
        sys.executable,
        *(["-S"] if sys.flags.no_site else []),
        "-m",
        "bench.gpu_check",
        "--cpu-child",
        str(out),
        "--budget-seconds",
        str(int(timeout * 0.5)),
    ]
    if args.smoke:
        command.append("--smoke")
    env = os.environ | {"CUDA_VISIBLE_DEVICES": ""}
    started = time.perf_counter()
    subprocess.run(command, env=env, cwd=REPO, timeout=timeout, check=True)
    cpu = json.loads(out.read_text())
    cpu["child_wall_seconds"] = time.perf_counter() - started
    report.results["cpu_side"] = cpu
    where = f"CPU child ({cpu['threads']} threads), {cpu['configured_epochs']} epochs"
    _train_rows(report, cpu, setting, where)
    if gpu is None:
        return
    run, main = gpu["run"], gpu["device"]
    report.pair(
        setting,
        f"train images/s: recipe on {main} vs on the CPU (same machine)",
        run["images_per_second"],
        cpu["images_per_second"],
    )
    report.pair(
        setting,
        f"steady epoch s (median after the first): {main} vs CPU (ratio <1: {main} faster)",
        run["steady_epoch_seconds"],
        cpu["steady_epoch_seconds"],
    )
    report.pair(
        setting,
        f"bare step images/s (batch 32): {main} vs CPU",
        gpu["bare"],
        cpu["bare_images_per_second"],
    )


def cpu_child(args: argparse.Namespace) -> None:
    """Child process: the recipe's first epochs and a bare step on the CPU; JSON to a file."""
    import torch

    from pollen_agent.ml.device import resolve_device

    device = resolve_device()
    if device.type != "cpu":
        raise RuntimeError(f"the CPU child sees {device}; run it with CUDA_VISIBLE_DEVICES=''")
    report = Report()
    data, _ = _data(args.smoke)
    size = _input_size(args.smoke)
    model, source = _start_model(report)
    start = copy.deepcopy(model)
    run = run_recipe(model, data, size, epochs=CPU_EPOCHS, seconds=0.75 * args.budget_seconds)
    run.pop("result")
    bare = bare_train_rate(start, data, size, device, seconds=3.0)
    Path(args.cpu_child).write_text(
        json.dumps(
            run
            | {
                "threads": torch.get_num_threads(),
                "source": source,
                "bare_images_per_second": bare,
            },
            default=float,
        )
    )


# --- Inference ---------------------------------------------------------------------------------


def _timed_ms(
    call: Callable[[], Any], device: Any, count: int, budget: Budget, reserve: float
) -> list[float]:
    """``count`` timed calls after three warm-ups; fewer if the deadline nears (at least 5,
    or 2 after one warm-up once it has passed)."""
    late = budget.left() < 0
    for _ in range(1 if late else 3):
        call()
    _sync(device)
    least = 2 if late else 5
    times: list[float] = []
    while len(times) < count and (len(times) < least or budget.left() > reserve):
        started = time.perf_counter()
        call()
        _sync(device)
        times.append((time.perf_counter() - started) * 1000)
    return times


def _bare_batches(bare: Callable[[Any, Any], Any], batches: list[Any], dtype: Any) -> list[Any]:
    return [bare(batch, dtype) for batch in batches]


def _p(times: list[float]) -> str:
    return f"{_f(percentile(times, 50))} / {_f(percentile(times, 95))}"


def inference_section(
    report: Report, budget: Budget, model: Any, data: dict, size: int, smoke: bool
) -> None:
    import torch

    from pollen_agent.ml.device import amp_dtype, full_precision, place_batch, resolve_device
    from pollen_agent.ml.inference import (
        logits_to_probabilities,
        predict_probs,
        preprocess,
        trained_policy,
    )
    from pollen_agent.ml.zoo import get_spec

    device = resolve_device()
    spec = get_spec(ARCH)
    tta = trained_policy(input_size=size, mean=spec.mean, std=spec.std)
    plain = tta.without_tta()
    images = data["test"][0]
    count = 30 if smoke else 200
    reserve = 0.1 * budget.seconds
    path_dtype = None  # the path never autocasts (ml.inference.probs_of_batch)
    precision = "fp32"
    setting = (
        f"{ARCH} {size}px on {device.type} ({precision} in the path), {len(images)} test images"
    )
    results: dict[str, Any] = {"device": str(device), "path_precision": precision}
    report.results["inference"] = results
    model.eval()

    # Batch 1 through the one inference path, with and without TTA.
    cycle = iter(range(10**9))

    def one(chosen: Any) -> Callable[[], Any]:
        return lambda: predict_probs(
            model, [images[next(cycle) % len(images)]], chosen, device=device, batch_size=1
        )

    path_1 = _timed_ms(one(plain), device, count, budget, reserve)
    path_1_tta = _timed_ms(one(tta), device, count, budget, reserve)

    # The bare forward pass: preprocessed, already on the device, at the path's precision.
    tensors = torch.stack([preprocess(i, plain.preprocess) for i in images])
    on_device = place_batch(tensors, device)
    model.to(device)

    def bare(batch: Any, dtype: Any) -> Any:
        """The bare pass: ``None`` true float32 as the path, "tf32" PyTorch's default float32."""
        with torch.inference_mode():
            if dtype is None:
                with full_precision(device):
                    return logits_to_probabilities(model(batch).float())
            if dtype == "tf32":
                return logits_to_probabilities(model(batch).float())
            with torch.autocast(device_type=device.type, dtype=dtype):
                return logits_to_probabilities(model(batch).float())

    single = iter(range(10**9))

    def bare_one(dtype: Any) -> Callable[[], Any]:
        return lambda: bare(on_device[next(single) % len(images)][None], dtype)

    bare_1 = _timed_ms(bare_one(path_dtype), device, count, budget, reserve)
    report.add(
        setting,
        "batch 1 latency p50 / p95 ms: predict_probs (no TTA) vs bare forward",
        _p(path_1),
        _p(bare_1),
        _f(percentile(path_1, 50) / percentile(bare_1, 50)),
    )
    report.add(
        setting,
        f"batch 1 latency p50 / p95 ms: predict_probs (tta {tta.tta}) vs no TTA",
        _p(path_1_tta),
        _p(path_1),
        _f(percentile(path_1_tta, 50) / percentile(path_1, 50)),
    )
    results["batch1_ms"] = {"path": path_1, "path_tta": path_1_tta, "bare": bare_1}

    if budget.left() < 0:
        report.skip(
            "inference",
            "the budget is spent: throughput at batch 8/32, the probability checks and bf16 not measured",
        )
        return
    # Throughput at batch 8 and 32: the path on every test image vs bare batches.
    for batch_size in (8, 32):
        batches = [on_device[i : i + batch_size] for i in range(0, len(images), batch_size)]
        path_s = _timed_ms(
            functools.partial(
                predict_probs, model, images, plain, device=device, batch_size=batch_size
            ),
            device,
            5,
            budget,
            reserve,
        )
        bare_s = _timed_ms(
            functools.partial(_bare_batches, bare, batches, path_dtype), device, 5, budget, reserve
        )
        path_rate = len(images) / (float(np.median(path_s)) / 1000)
        bare_rate = len(images) / (float(np.median(bare_s)) / 1000)
        report.pair(
            setting,
            f"batch {batch_size} images/s: predict_probs (no TTA) vs bare forward",
            path_rate,
            bare_rate,
        )
        results[f"batch{batch_size}_images_per_second"] = {"path": path_rate, "bare": bare_rate}
    prep = _timed_ms(
        lambda: [preprocess(i, plain.preprocess) for i in images], device, 3, budget, reserve
    )
    prep_rate = len(images) / (float(np.median(prep)) / 1000)
    report.add(setting, "preprocess alone (CPU, one thread of the path) images/s", _f(prep_rate))
    results["preprocess_images_per_second"] = prep_rate

    # Cheap and a correctness check, so measured even past the deadline.
    # The path must give the bare pass's numbers, and the CPU's within TF32 rounding.
    path_probs = predict_probs(model, images, plain, device=device)
    bare_probs = torch.cat([bare(b, path_dtype) for b in on_device.split(32)]).cpu().numpy()
    same = float(np.max(np.abs(path_probs - bare_probs)))
    report.add(
        setting,
        f"max |p| difference: predict_probs vs bare forward (tolerance {BARE_TOLERANCE})",
        f"{same:.2e} {'PASS' if same <= BARE_TOLERANCE else 'FAIL'}",
    )
    results["path_vs_bare_max_abs"] = same
    if device.type != "cpu":
        gpu_tta = predict_probs(model, images, tta, device=device)
        cpu_tta = predict_probs(model, images, tta, device="cpu")
        model.to(device)
        diff = float(np.max(np.abs(gpu_tta - cpu_tta)))
        report.add(
            setting,
            f"max |p| difference: predict_probs (tta {tta.tta}) GPU vs CPU "
            f"(tolerance {PATH_TOLERANCE})",
            f"{diff:.2e} {'PASS' if diff <= PATH_TOLERANCE else 'FAIL'}",
        )
        results["gpu_vs_cpu_max_abs"] = diff
    else:
        report.skip("GPU vs CPU probabilities", "no GPU here: the path already ran on the CPU")

    if budget.left() < 0:
        report.skip("inference", "the budget is spent: bf16 vs fp32 not measured")
        return
    # bf16 autocast vs fp32 on the bare model (why the path keeps float32).
    fp32 = torch.cat([bare(b, None) for b in on_device.split(32)]).cpu().numpy()
    bf16 = torch.cat([bare(b, torch.bfloat16) for b in on_device.split(32)]).cpu().numpy()
    b32 = on_device[:32]
    t32 = _timed_ms(lambda: bare(b32, None), device, 20, budget, reserve)
    t16 = _timed_ms(lambda: bare(b32, torch.bfloat16), device, 20, budget, reserve)
    t32_1 = _timed_ms(bare_one(None), device, 20, budget, reserve)
    t_tf32 = _timed_ms(lambda: bare(b32, "tf32"), device, 20, budget, reserve)
    tf32 = torch.cat([bare(b, "tf32") for b in on_device.split(32)]).cpu().numpy()
    t16_1 = _timed_ms(bare_one(torch.bfloat16), device, 20, budget, reserve)
    note = (
        "bare model; the path runs in fp32 (training autocasts to " + str(amp_dtype(device)) + ")"
    )
    bsetting = f"{ARCH} {size}px on {device.type}, bare model; {note}"
    for batch, ours, theirs in ((32, t16, t32), (1, t16_1, t32_1)):
        report.pair(
            bsetting,
            f"batch {batch} median ms: bf16 autocast vs fp32",
            float(np.median(ours)),
            float(np.median(theirs)),
        )
    report.pair(
        bsetting,
        "batch 32 median ms: TF32 (PyTorch default) vs true fp32 (the path)",
        float(np.median(t_tf32)),
        float(np.median(t32)),
    )
    report.add(
        bsetting,
        "max |p| difference bf16 vs fp32; TF32 vs fp32 (test images)",
        f"{float(np.max(np.abs(bf16 - fp32))):.2e}; {float(np.max(np.abs(tf32 - fp32))):.2e}",
    )
    results["bf16"] = {
        "ms32_bf16": t16,
        "ms32_fp32": t32,
        "ms1_bf16": t16_1,
        "ms1_fp32": t32_1,
        "max_abs": float(np.max(np.abs(bf16 - fp32))),
        "ms32_tf32": t_tf32,
        "tf32_max_abs": float(np.max(np.abs(tf32 - fp32))),
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
    }


# --- Main --------------------------------------------------------------------------------------


def _environment(report: Report) -> str:
    import torch

    from bench.report import machine_info
    from pollen_agent.ml.device import amp_dtype, resolve_device

    device = resolve_device()
    info: dict[str, Any] = {}
    try:
        info = machine_info()
    except Exception as error:
        info = {"machine_info": f"unavailable ({error})"}
    info |= {
        "device": str(device),
        "amp_dtype": str(amp_dtype(device)),
        "cuda": str(torch.version.cuda),
        "threads": torch.get_num_threads(),
    }
    report.results["environment"] = info
    for key, value in info.items():
        print(f"- {key}: {value}", flush=True)
    return f"{info.get('GPU', 'none')} / {os.cpu_count()} cores"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__)
    parser.add_argument("--out", default="gpu-check-out", help="folder for the results")
    parser.add_argument(
        "--budget-seconds",
        type=float,
        default=240.0,
        help="wall-clock budget for the whole check (default 240)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="64 px and a few images, to try the check on a small CPU",
    )
    parser.add_argument(
        "--cpu-side",
        action="store_true",
        help="run the CPU child even when the main device is the CPU",
    )
    parser.add_argument("--cpu-child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cpu_child:
        cpu_child(args)
        return 0

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    budget = Budget(args.budget_seconds)
    report = Report()
    machine = _section(report, "environment", lambda: _environment(report)) or "unknown"
    loaded = _section(report, "data", lambda: _data(args.smoke))
    if loaded is None:
        return _finish(report, out)
    data, origin = loaded
    if origin.startswith("synthetic"):
        report.skip(
            DATASET, "the .npz file was not found: synthetic images, so the AUC means nothing"
        )
    size = _input_size(args.smoke)
    started = _section(report, "model", lambda: _start_model(report))
    if started is None:
        return _finish(report, out)
    model, source = started
    start = copy.deepcopy(model)
    setting = f"{ARCH} {size}px from {source}, {origin}; {machine}"
    trained = _section(
        report,
        "training",
        lambda: train_section(report, budget, data, size, source, model, setting),
    )
    final = trained["model"] if trained else start
    _section(report, "test AUC", lambda: test_auc_section(report, final, data, size, setting))
    from pollen_agent.ml.device import resolve_device

    if resolve_device().type != "cpu" or args.cpu_side:
        _section(
            report, "CPU side", lambda: cpu_side_section(report, budget, args, trained, setting)
        )
    else:
        report.skip("CPU side", "no GPU here: the training above already ran on the CPU")
    _section(
        report,
        "inference",
        lambda: inference_section(report, budget, final, data, size, args.smoke),
    )
    return _finish(report, out)


def _finish(report: Report, out: Path) -> int:
    wall = time.perf_counter() - STARTED
    table = render_table(report.rows)
    text = table + "".join(f"\n- {line}" for line in report.skipped)
    text += f"\n\nWall time of the check: {wall:.0f} s\n"
    print("\n" + text, flush=True)
    (out / "gpu_check.md").write_text(text)
    report.results["wall_seconds"] = wall
    report.results["rows"] = report.rows
    report.results["skipped"] = report.skipped
    (out / "gpu_check.json").write_text(json.dumps(report.results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
