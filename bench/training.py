"""Training throughput: the platform's recipe, run as a job runs it, versus a hand-written loop."""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np

from bench import fixtures
from bench.checks import check_loss_decreased, check_same_count
from bench.report import row
from bench.stats import paired_ratios, summarize

NAME = "training"
ARCH = "efficientnet_lite0"
BATCH = 32
THREADS = 2


class _TimedCallbacks:
    """The job runner's real callbacks, timed: progress POSTs per step, checkpoint per epoch."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = {"on_step": 0.0, "on_epoch_end": 0.0}
        self.steps = 0
        self.checkpoint: dict[str, Any] | None = None

    def on_step(self, epoch: int, step: int, steps_per_epoch: int, loss: float) -> None:
        started = time.perf_counter()
        self.inner.on_step(epoch, step, steps_per_epoch, loss)
        self.seconds["on_step"] += time.perf_counter() - started
        self.steps += 1

    def on_epoch_end(
        self, epoch: int, train_loss: float, val_metrics: Any, checkpoint: Any
    ) -> None:
        started = time.perf_counter()
        self.inner.on_epoch_end(epoch, train_loss, val_metrics, checkpoint)
        self.seconds["on_epoch_end"] += time.perf_counter() - started
        self.checkpoint = checkpoint

    def should_cancel(self) -> bool:
        return bool(self.inner.should_cancel())

    def on_plan(self, epochs: int) -> None:
        self.inner.on_plan(epochs)


def _probe_loss(model: Any, images: Any, labels: Any) -> float:
    import torch
    import torch.nn.functional as F

    model.train()  # batch statistics, as during training
    with torch.no_grad():
        return float(F.cross_entropy(model(images), labels))


def hand_loop(model: Any, dataset: Any, *, channels_last: bool, seed: int) -> tuple[int, float]:
    """The minimal PyTorch loop a user would write: returns (images, seconds)."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    dataset.set_epoch(1)
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, generator=generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    model.train()
    images_seen = 0
    started = time.perf_counter()
    for images, labels in loader:
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        images_seen += len(labels)
    return images_seen, time.perf_counter() - started


def _recipe_job(model: Any, train_ds: Any, val_ds: Any, config: Any, hub: Any, storage: Any) -> Any:
    from pollen_agent.hub_client import HubClient
    from pollen_agent.jobs.eta import EpochClock
    from pollen_agent.jobs.reporting import JobReporter
    from pollen_agent.jobs.training import _Callbacks
    from pollen_agent.ml.recipe import train
    from pollen_contracts.specs import TrainingSpec
    from pollen_contracts.weights import WeightsSpec

    client = HubClient(f"http://127.0.0.1:{hub.server_port}", "bench-token")
    prefix = f"{fixtures.RUN_PREFIX}/jobs/1"
    spec = TrainingSpec(  # what the hub's claim hands a training job
        job_id=1,
        attempt=1,
        recipe="standard",
        dataset_id=1,
        label_names=["benign", "malignant"],
        architecture=ARCH,
        input_size=config.input_size,
        weights=WeightsSpec(kind="imagenet"),
        config={},
        checkpoint_key=f"{prefix}/checkpoint.pt",
        samples_prefix=f"{prefix}/samples/",
        model_key=f"{prefix}/model/",
        lease_seconds=600,
        starting_point=ARCH,
        licence="",
    )
    clock = EpochClock(epochs=config.epochs, epochs_done=0, durations=[], tail_factor=2.0)
    with JobReporter(client, 1, lease_seconds=600) as reporter:
        job_callbacks = _Callbacks(reporter, client, storage, spec, [], clock)
        callbacks = _TimedCallbacks(job_callbacks)
        result = train(model, train_ds, val_ds, config, callbacks)
    return result, callbacks


def run(quick: bool, repeat: int) -> list[dict[str, Any]]:
    import torch

    from pollen_agent.jobs.images import load_splits
    from pollen_agent.jobs.training import _save_checkpoint
    from pollen_agent.ml.device import pick_device
    from pollen_agent.ml.recipe import TrainConfig, batch_plan, build_datasets
    from pollen_agent.ml.zoo import build_model

    size, n_train = (64, 64) if quick else (fixtures.recommended_input_size(ARCH), 96)
    images, labels, source = fixtures.medmnist("breastmnist", "train")
    images, labels = images[: n_train + BATCH], labels[: n_train + BATCH]
    train_data = (list(images[:n_train]), list(labels[:n_train]))
    val_data = (list(images[n_train:]), list(labels[n_train:]))
    pick_device()  # flush-denormal and device choice are global: set them for both sides
    torch.set_num_threads(THREADS)
    config = TrainConfig(epochs=1, batch_size=BATCH, input_size=size, num_threads=THREADS)
    train_ds, val_ds = build_datasets(ARCH, config, train_data, val_data)
    _, drop_last, _ = batch_plan(n_train, BATCH)
    assert not drop_last, "choose a training size the batch divides cleanly"
    torch.manual_seed(0)
    start_model = build_model(ARCH, 2, source="imagenet")
    probe = torch.stack([train_ds[i][0] for i in range(BATCH)])
    probe_labels = torch.tensor([int(v) for v in train_data[1][:BATCH]])
    storage = fixtures.s3_storage()

    # Warm oneDNN's kernels for these shapes (both layouts) so that no side pays for it.
    for channels_last in (False, True):
        hand_loop(copy.deepcopy(start_model), train_ds, channels_last=channels_last, seed=99)
    sides: dict[str, list[float]] = {"recipe": [], "loop": [], "loop_cl": []}
    breakdown: list[dict[str, float]] = []
    with fixtures.stand_in_hub() as hub:
        for rep in range(repeat):
            order = ["recipe", "loop", "loop_cl"]
            order = order[rep % 3 :] + order[: rep % 3]  # rotate, so no side always goes first
            for side in order:
                model = copy.deepcopy(start_model)
                if side == "recipe":
                    posts_before = hub.posts
                    result, callbacks = _recipe_job(model, train_ds, val_ds, config, hub, storage)
                    seen = round(
                        result.images_per_second * (result.seconds["data"] + result.seconds["step"])
                    )
                    check_same_count(seen, n_train, what="recipe images per epoch")
                    if not np.isfinite(result.history[0]["train_loss"]):
                        raise AssertionError("the recipe's training loss is not finite")
                    sides["recipe"].append(result.images_per_second)
                    breakdown.append(
                        {
                            **result.seconds,
                            **callbacks.seconds,
                            "posts": hub.posts - posts_before,
                            "checkpoint": callbacks.checkpoint,
                        }
                    )
                else:
                    before = _probe_loss(model, probe, probe_labels)
                    seen, seconds = hand_loop(
                        model, train_ds, channels_last=side == "loop_cl", seed=rep
                    )
                    check_loss_decreased(
                        before, _probe_loss(model, probe, probe_labels), what=f"hand loop ({side})"
                    )
                    check_same_count(seen, n_train, what=f"hand loop ({side}) images")
                    sides[side].append(seen / seconds)

    setting = (
        f"{ARCH} {size}px, batch {BATCH}, {n_train} imgs ({source}), {THREADS} threads, "
        f"{repeat} reps"
    )
    rows = [
        row(
            NAME,
            setting,
            "train images/s (job: recipe + progress reports) vs minimal loop",
            summarize(sides["recipe"]).text(),
            summarize(sides["loop"]).text(),
            paired_ratios(sides["recipe"], sides["loop"]).text(),
        ),
        row(
            NAME,
            setting,
            "train images/s vs minimal loop + channels_last input (goal ratio >= 0.95)",
            summarize(sides["recipe"]).text(),
            summarize(sides["loop_cl"]).text(),
            paired_ratios(sides["recipe"], sides["loop_cl"]).text(),
        ),
    ]
    rows.extend(_breakdown_rows(breakdown, setting, n_train))
    rows.extend(_outside_step_rows(storage, load_splits, _save_checkpoint, breakdown, size, quick))
    return rows


def _breakdown_rows(breakdown: list[dict[str, Any]], setting: str, n_train: int) -> list[dict]:
    def med(key: str) -> str:
        return summarize([b[key] for b in breakdown]).text()

    text = (
        f"data {med('data')} s, step {med('step')} s, validation {med('validation')} s, "
        f"total {med('total')} s"
    )
    job = (
        f"progress reports {med('on_step')} s ({med('posts')} POSTs), "
        f"epoch end (checkpoint to S3 + epoch POST) {med('on_epoch_end')} s"
    )
    return [
        row(NAME, setting, "recipe time per epoch (TrainResult.seconds)", text),
        row(NAME, setting, "job callbacks per epoch (real HubClient, S3)", job),
    ]


def _outside_step_rows(
    storage: Any,
    load_splits: Any,
    save_checkpoint: Any,
    breakdown: list[dict],
    size: int,
    quick: bool,
) -> list[dict]:
    """Storage reads + decode for a dataset, and one checkpoint save, as a job does them."""
    import io

    import torch

    n_images = 100 if quick else 546
    images, labels, source = fixtures.medmnist("breastmnist", "train")
    site = fixtures.store_pngs(
        storage,
        images[:n_images],
        labels[:n_images],
        side=256,
        prefix=f"{fixtures.RUN_PREFIX}/training-images",
    )
    load_seconds, save_seconds = [], []
    checkpoint = breakdown[-1]["checkpoint"]
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    megabytes = len(buffer.getvalue()) / 1e6
    for _ in range(3):
        started = time.perf_counter()
        splits = load_splits(storage, site.rows, ["0", "1"], input_size=size)
        load_seconds.append(time.perf_counter() - started)
        check_same_count(len(splits["train"].images), n_images, what="load_splits images")
        started = time.perf_counter()
        save_checkpoint(storage, f"{fixtures.RUN_PREFIX}/ckpt.pt", checkpoint)
        save_seconds.append(time.perf_counter() - started)
    per_1000 = summarize([s * 1000 / n_images for s in load_seconds])
    return [
        row(
            NAME,
            f"{n_images} PNGs 256px ({source}) on S3, load_splits, 3 reps",
            "job load: storage reads + decode, s per 1,000 images",
            per_1000.text(),
        ),
        row(
            NAME,
            f"checkpoint {megabytes:.1f} MB (model + AdamW state), 3 reps",
            "_save_checkpoint: torch.save + S3 put, s",
            summarize(save_seconds).text(),
        ),
    ]
