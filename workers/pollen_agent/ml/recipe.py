"""The fine-tuning recipe: good results from one click, no knobs required.

AdamW with a warmup and a cosine decay, an exponential moving average of the weights, and
early stopping on a validation score. Validation sets at a hospital are small, so differences
in score smaller than the validation set can resolve count as ties, a tie goes to the later,
longer-trained epoch, and only the second half of the schedule may be kept (see
``record_epoch``). A time budget plans the schedule to finish inside it. Everything random is
seeded so that a run, and a run resumed from a checkpoint, repeat exactly.

What differs per task is an ``Objective``: it checks the data, builds the loss, validates and
scores an epoch. ``ClassificationObjective`` (class-weighted cross-entropy, selection on
validation AUC) is the default; segmentation brings its own (``ml.segmentation.objective``).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from pollen_agent.errors import UserError
from pollen_agent.ml.data import ArrayImageDataset
from pollen_agent.ml.device import (
    amp_dtype,
    autocast_context,
    pick_device,
    place_batch,
    place_model,
)
from pollen_agent.ml.inference import probs_of_batch, tta_views
from pollen_agent.ml.metrics import evaluate
from pollen_agent.ml.zoo import get_spec

CHECKPOINT_FORMAT = 2
# Validation AUCs closer than this many standard errors to the best so far count as ties.
SELECTION_TOLERANCE = 1.0
# Only the second half of the schedule may be kept: earlier epochs, at a high learning rate,
# are under-trained by design, and one of them scoring well on a small validation set is luck.
SELECTION_START = 0.5


class Cancelled(Exception):
    """Training stopped because someone cancelled the job."""


@dataclass
class TrainConfig:
    """Training settings; the defaults are the recipe and rarely need changing."""

    epochs: int = 25
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    # The recommended zoo entry's size: 160 px beat 128 px on BreastMNIST (docs/training-recipe.md)
    # and still trains in minutes on 2 CPU cores.
    input_size: int = 160
    seed: int = 0
    early_stopping_patience: int = 8
    num_threads: int | None = None  # None: torch's default, one per core
    # A time budget: after the first epoch the schedule is planned to end within it (fewer
    # epochs on a large dataset), and a run that still overruns stops after an epoch.
    max_minutes: float | None = None
    eval_batch_size: int = 128
    # Validation and the saved model use an exponential moving average of the weights: on a
    # small validation set the raw weights' AUC jumps from epoch to epoch, and early stopping
    # then picks a lucky, under-trained epoch.
    ema_decay: float = 0.98


class TrainCallbacks(Protocol):
    """How a training run reports progress and learns that it must stop."""

    def on_step(self, epoch: int, step: int, steps_per_epoch: int, loss: float) -> None: ...

    def on_epoch_end(
        self, epoch: int, train_loss: float, val_metrics: dict[str, Any], checkpoint: dict[str, Any]
    ) -> None: ...

    def should_cancel(self) -> bool: ...

    def on_plan(self, epochs: int) -> None:
        """The run will last ``epochs`` epochs, fewer than configured, to fit its time budget."""
        ...


class WeightAverage:
    """An exponential moving average of a model's weights, updated after every step."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.model = copy.deepcopy(model).eval()  # evaluates the averaged weights

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        # A short memory at first, so the average does not remember the starting weights.
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for key, value in model.state_dict().items():
            average = self.state[key]
            if average.is_floating_point():
                average.mul_(decay).add_(value.detach(), alpha=1 - decay)
            else:
                average.copy_(value)

    def restore(self, state: dict[str, torch.Tensor], updates: int) -> None:
        """Continue from a checkpoint's average."""
        self.state = {k: v.to(self.state[k].device, copy=True) for k, v in state.items()}
        self.updates = updates

    def averaged_model(self) -> nn.Module:
        """The model with the averaged weights loaded, in eval mode."""
        self.model.load_state_dict(self.state)
        return self.model


class Objective(Protocol):
    """What a task brings to the training loop; everything else is shared.

    ``build_loss`` runs once, before training, and may keep what validation needs (the
    validation labels, the label names). Validation metrics must be plain Python values (they
    are saved in checkpoints read with ``weights_only=True``) and include ``"loss"``.
    """

    def build_loss(self, model: nn.Module, train_ds: Dataset, val_ds: Dataset) -> nn.Module:
        """Check that the data can train a useful model (``UserError`` if not); the loss."""
        ...

    def validate(self, model: nn.Module, val_ds: Dataset, config: TrainConfig) -> dict[str, Any]:
        """Metrics of ``model`` (eval mode, averaged weights) on the validation set."""
        ...

    def score(self, val_metrics: dict[str, Any]) -> float:
        """The selection score: higher is better."""
        ...

    def noise(self, peak_score: float, val_metrics: dict[str, Any]) -> float:
        """The standard error of a score near ``peak_score`` on this validation set."""
        ...

    def history_fields(self, val_metrics: dict[str, Any]) -> dict[str, Any]:
        """The epoch's validation fields in the run's history (beside epoch and train_loss)."""
        ...


class NoCallbacks:
    """Callbacks that report nothing and never cancel."""

    def on_step(self, epoch: int, step: int, steps_per_epoch: int, loss: float) -> None:
        return None

    def on_epoch_end(
        self, epoch: int, train_loss: float, val_metrics: dict[str, Any], checkpoint: dict[str, Any]
    ) -> None:
        return None

    def should_cancel(self) -> bool:
        return False

    def on_plan(self, epochs: int) -> None:
        return None


@dataclass
class TrainResult:
    """What a training run produced; ``model`` holds the best epoch's weights."""

    model: nn.Module
    history: list[dict[str, Any]]
    epochs_run: int
    best_epoch: int
    best_val_metrics: dict[str, Any]
    stopped_early: bool
    stop_reason: str  # "completed", "early_stopping", "time_budget" or "cancelled"
    images_per_second: float
    planned_epochs: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class _State:
    """The mutable progress of a run, exactly what a checkpoint restores."""

    epochs_done: int = 0
    planned_epochs: int = 0  # 0 until a time budget has planned the run
    peak_score: float | None = None  # the best validation score so far
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    best_val_metrics: dict[str, Any] = field(default_factory=dict)
    stale_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(
        default_factory=lambda: {"data": 0.0, "step": 0.0, "validation": 0.0}
    )
    images_seen: int = 0


def build_datasets(
    arch: str,
    config: TrainConfig,
    train: tuple[Sequence[np.ndarray], Sequence[int]],
    val: tuple[Sequence[np.ndarray], Sequence[int]],
) -> tuple[ArrayImageDataset, ArrayImageDataset]:
    """Training (augmented) and validation datasets preprocessed the way ``arch`` expects."""
    spec = get_spec(arch)
    size, mean, std = config.input_size, spec.mean, spec.std
    return (
        ArrayImageDataset(
            *train, input_size=size, mean=mean, std=std, augment=True, seed=config.seed
        ),
        ArrayImageDataset(*val, input_size=size, mean=mean, std=std, augment=False),
    )


def train(
    model: nn.Module,
    train_ds: Dataset,
    val_ds: Dataset,
    config: TrainConfig,
    callbacks: TrainCallbacks | None = None,
    *,
    resume: dict[str, Any] | None = None,
    label_names: Sequence[str] | None = None,
    objective: Objective | None = None,
) -> TrainResult:
    """Fine-tune ``model`` on ``train_ds``, choosing the best epoch on ``val_ds``.

    Epochs are numbered from 1 in callbacks. After each epoch ``callbacks.on_epoch_end``
    receives a checkpoint (tensors and plain values, safe for ``torch.load(weights_only=True)``);
    passing it back as ``resume`` continues the run exactly where it stopped.
    ``callbacks.should_cancel`` is polled before every batch. A cancel before any epoch has
    ended raises ``Cancelled``; after one, the run stops there (``stop_reason`` "cancelled")
    and returns the best weights of the epochs that ended, as any shortened run does.
    Inputs that cannot train a useful model raise ``UserError`` with a readable reason.
    ``objective`` says what the task is (default: classification with ``label_names``).
    """
    callbacks = callbacks or NoCallbacks()
    objective = objective or ClassificationObjective(label_names)
    started = time.perf_counter()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    device = pick_device()
    loss_fn = objective.build_loss(model, train_ds, val_ds)

    if resume is None:
        torch.manual_seed(config.seed)
    model = place_model(model, device)
    batch_size, drop_last, steps_per_epoch = batch_plan(len(train_ds), config.batch_size)  # type: ignore[arg-type]
    optimizer = _optimizer(model, config)
    scheduler = _scheduler(optimizer, config, steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype(device) == torch.float16)
    loss_fn = loss_fn.to(device)
    state = _State()
    average = WeightAverage(model, config.ema_decay)
    if resume is not None:
        state = _restore(resume, model, optimizer, scheduler, scaler, average)

    stop_reason = "completed"
    epoch = state.epochs_done
    val_metrics: dict[str, Any] = {}
    # The averaged weights as the last ended epoch left them: a cancel mid-epoch keeps these.
    ended_average = resume["weight_average"] if resume is not None else None
    while epoch < (state.planned_epochs or config.epochs):
        epoch += 1
        epoch_started = time.perf_counter()
        loader = _loader(train_ds, batch_size, drop_last, config.seed, epoch)
        try:
            train_loss = _train_epoch(
                model,
                loader,
                loss_fn,
                optimizer,
                scheduler,
                scaler,
                average,
                device,
                callbacks,
                epoch,
                steps_per_epoch,
                state,
            )
        except Cancelled:
            if state.epochs_done == 0:
                raise  # nothing ended, nothing to keep
            stop_reason = "cancelled"
            break
        val_started = time.perf_counter()
        averaged = average.averaged_model()
        val_metrics = objective.validate(averaged, val_ds, config)
        state.seconds["validation"] += time.perf_counter() - val_started
        if epoch == 1 and config.max_minutes is not None:
            _plan_within_budget(state, config, scheduler, time.perf_counter() - started, callbacks)
        planned = state.planned_epochs or config.epochs
        record_epoch(
            state, averaged, epoch, train_loss, val_metrics, objective, first_candidate(planned)
        )
        checkpoint = _checkpoint(state, model, optimizer, scheduler, scaler, average, config)
        ended_average = checkpoint["weight_average"]
        callbacks.on_epoch_end(epoch, train_loss, val_metrics, checkpoint)
        if state.stale_epochs >= config.early_stopping_patience:
            stop_reason = "early_stopping"
            break
        if epoch < planned and _out_of_time(config, started, time.perf_counter() - epoch_started):
            stop_reason = "time_budget"
            break
    if stop_reason == "completed" and 0 < state.planned_epochs < config.epochs:
        stop_reason = "time_budget"  # the budget shortened the schedule

    if state.best_state is None:
        # Stopped before the second half of the schedule: keep the averaged weights as the
        # last ended epoch left them.
        kept = ended_average if ended_average is not None else average.state
        state.best_state, state.best_epoch = _cpu_copy(kept), state.epochs_done
        state.best_val_metrics = val_metrics if state.epochs_done else {}
    model.load_state_dict(state.best_state)
    step_seconds = state.seconds["data"] + state.seconds["step"]
    return TrainResult(
        model=model,
        history=state.history,
        epochs_run=state.epochs_done,
        best_epoch=state.best_epoch,
        best_val_metrics=state.best_val_metrics,
        stopped_early=stop_reason != "completed",
        stop_reason=stop_reason,
        images_per_second=state.images_seen / step_seconds if step_seconds else 0.0,
        planned_epochs=state.planned_epochs or config.epochs,
        seconds={**state.seconds, "total": time.perf_counter() - started},
    )


def batch_plan(n_images: int, batch_size: int) -> tuple[int, bool, int]:
    """Batch size, whether to drop the last batch, and steps per epoch for ``n_images``.

    A dataset smaller than a batch trains in one smaller batch. BatchNorm cannot train on a
    final batch of a single image, so that one image is left out of the epoch (the shuffle
    changes each epoch, so no image is left out every time).
    """
    batch_size = max(1, min(batch_size, n_images))
    drop_last = n_images % batch_size == 1 and n_images > 1
    steps = n_images // batch_size + (0 if drop_last or n_images % batch_size == 0 else 1)
    return batch_size, drop_last, steps


def dataset_labels(dataset: Dataset) -> np.ndarray:
    """The labels of ``dataset``, read from its ``labels`` attribute when it has one."""
    labels = getattr(dataset, "labels", None)
    if labels is None:
        labels = [int(dataset[i][1]) for i in range(len(dataset))]  # type: ignore[arg-type]
    return np.asarray(labels, dtype=np.int64).reshape(-1)


def check_labels(train_labels: np.ndarray, val_labels: np.ndarray, names: list[str]) -> None:
    """Refuse, with a reason a clinician can act on, data that cannot train a useful model."""
    if len(train_labels) < 2:
        raise UserError("Training needs at least two labelled images.", code="too_few_images")
    out_of_range = sorted(
        {int(v) for v in np.concatenate([train_labels, val_labels])} - set(range(len(names)))
    )
    if out_of_range:
        raise UserError(
            f"Some images carry unknown label numbers {out_of_range}.", code="invalid_labels"
        )
    train_counts = np.bincount(train_labels, minlength=len(names))
    if np.count_nonzero(train_counts) < 2:
        only = names[int(train_labels[0])]
        raise UserError(
            f"Every training image is labelled '{only}'. A model learns to tell labels apart, so "
            "add images of at least one other label.",
            code="single_label",
        )
    _require_each_label(train_counts, names, "training")
    _require_each_label(np.bincount(val_labels, minlength=len(names)), names, "validation")


def _require_each_label(counts: np.ndarray, names: list[str], split: str) -> None:
    missing = [names[i] for i in np.flatnonzero(counts == 0)]
    if missing:
        raise UserError(
            f"The {split} images include none labelled {', '.join(repr(m) for m in missing)}, so "
            "the model could not be checked on that label. Add more images with that label.",
            code="label_missing_from_split",
        )


def class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights, so that a rare label counts as much as a common one.

    They average 1 over the images, which keeps the loss on its usual scale.
    """
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = len(labels) / (num_classes * np.maximum(counts, 1.0))
    return torch.tensor(weights, dtype=torch.float32)


def output_classes(model: nn.Module, dataset: Dataset) -> int:
    """How many classes ``model`` answers (one forward pass of the first item, in eval mode)."""
    # One forward pass reads the head size whatever the architecture or task.
    was_training = model.training
    model.eval()
    with torch.no_grad():
        image = dataset[0][0].unsqueeze(0).to(next(model.parameters()).device)
        classes = int(model(image).shape[1])
    model.train(was_training)
    return classes


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    # Weight decay on norms and biases only shrinks useful scale/shift parameters.
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr)


class WarmupCosine:
    """Learning-rate factor: linear warmup, then a cosine decay to 1% at ``total`` steps.

    An object rather than a closure, so that the scheduler's state (and a re-planned
    ``total``) is saved in checkpoints and restored on resume.
    """

    def __init__(self, warmup: int, total: int) -> None:
        self.warmup, self.total = warmup, total

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = (step - self.warmup) / max(1, self.total - self.warmup)
        return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    total = max(1, config.epochs * steps_per_epoch)
    warmup = max(1, min(total - 1, round(config.warmup_epochs * steps_per_epoch)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(warmup, total))


def planned_epochs(config: TrainConfig, elapsed_seconds: float, epoch_seconds: float) -> int:
    """How many epochs fit the time budget, judged from the first one (which took
    ``epoch_seconds`` of the ``elapsed_seconds`` so far): at least 1, at most configured."""
    if config.max_minutes is None or epoch_seconds <= 0:
        return config.epochs
    remaining = config.max_minutes * 60 - elapsed_seconds
    return max(1, min(config.epochs, 1 + int(remaining // epoch_seconds)))


def _plan_within_budget(
    state: _State,
    config: TrainConfig,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    elapsed: float,
    callbacks: TrainCallbacks,
) -> None:
    # The first epoch's duration (including loading and validation) prices the others.
    # The warmup ends with the first epoch, so shortening the cosine here changes no step
    # already taken.
    epochs = planned_epochs(config, elapsed, elapsed)
    if epochs >= config.epochs:
        return
    state.planned_epochs = epochs
    for factor in scheduler.lr_lambdas:
        if isinstance(factor, WarmupCosine):
            steps_per_epoch = factor.total // max(1, config.epochs)
            factor.total = max(factor.warmup + 1, epochs * steps_per_epoch)
    callbacks.on_plan(epochs)


def _loader(
    dataset: Dataset, batch_size: int, drop_last: bool, seed: int, epoch: int
) -> DataLoader:
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    # The shuffle order depends only on (seed, epoch), so a resumed epoch repeats exactly.
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(len(dataset), generator=generator).tolist()  # type: ignore[arg-type]
    return DataLoader(dataset, batch_size=batch_size, sampler=order, drop_last=drop_last)


def _train_epoch(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    scaler: torch.amp.GradScaler,
    average: WeightAverage,
    device: torch.device,
    callbacks: TrainCallbacks,
    epoch: int,
    steps_per_epoch: int,
    state: _State,
) -> float:
    model.train()
    total_loss, total_images = 0.0, 0
    waited = time.perf_counter()
    for step, (images, labels) in enumerate(loader, start=1):
        if callbacks.should_cancel():
            raise Cancelled(f"cancelled during epoch {epoch}")
        computing = time.perf_counter()
        state.seconds["data"] += computing - waited
        images, labels = place_batch(images, device), labels.to(device)
        with autocast_context(device):
            loss = loss_fn(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        average.update(model)
        loss_value = float(loss.detach())
        total_loss += loss_value * len(labels)
        total_images += len(labels)
        waited = time.perf_counter()
        state.seconds["step"] += waited - computing
        callbacks.on_step(epoch, step, steps_per_epoch, loss_value)
    state.images_seen += total_images
    return total_loss / max(1, total_images)


class ClassificationObjective:
    """One label per image: class-weighted cross-entropy, selection on validation AUC."""

    def __init__(self, label_names: Sequence[str] | None = None) -> None:
        self.label_names = list(label_names) if label_names else None
        self.names: list[str] = []
        self.val_labels = np.zeros(0, dtype=np.int64)

    def build_loss(self, model: nn.Module, train_ds: Dataset, val_ds: Dataset) -> nn.Module:
        train_labels, self.val_labels = dataset_labels(train_ds), dataset_labels(val_ds)
        num_classes = output_classes(model, val_ds)
        self.names = self.label_names or [f"class {i}" for i in range(num_classes)]
        check_labels(train_labels, self.val_labels, self.names)
        return nn.CrossEntropyLoss(weight=class_weights(train_labels, num_classes))

    def validate(self, model: nn.Module, val_ds: Dataset, config: TrainConfig) -> dict[str, Any]:
        probs = predict_probs(model, val_ds, batch_size=config.eval_batch_size)
        loss = log_loss(probs, self.val_labels)
        return evaluate(probs, self.val_labels, self.names) | {"loss": loss}

    def score(self, val_metrics: dict[str, Any]) -> float:
        return _score(val_metrics)

    def noise(self, peak_score: float, val_metrics: dict[str, Any]) -> float:
        if val_metrics.get("auc") is None:
            return 0.0
        return auc_noise(peak_score, self.val_labels, len(val_metrics["label_names"]))

    def history_fields(self, val_metrics: dict[str, Any]) -> dict[str, Any]:
        return {
            "val_loss": val_metrics["loss"],
            "val_auc": val_metrics.get("auc"),
            "val_accuracy": val_metrics.get("accuracy"),
        }


def _score(val_metrics: dict[str, Any]) -> float:
    # AUC ranks models independently of the threshold (balanced accuracy where it is undefined).
    auc = val_metrics.get("auc")
    return float(auc if auc is not None else val_metrics.get("balanced_accuracy", 0.0))


def auc_noise(auc: float, labels: np.ndarray, num_classes: int) -> float:
    """The standard error of a (macro one-vs-rest) AUC measured on ``labels``.

    Hanley and McNeil's (1982) approximation, in Newcombe's (2006) symmetric form: it uses
    the mean of the two group sizes where Hanley and McNeil weight one term by the positives
    and the other by the negatives, so the answer no longer depends on which label counts as
    positive (with 21 against 57 images the two orders gave 0.028 and 0.040). The macro
    average's error assumes the labels' errors are independent. On BreastMNIST's 78
    validation images an AUC of 0.93 has a standard error of about 0.03: epochs that close
    are not told apart by validation.
    """
    a = min(max(float(auc), 0.0), 1.0)
    counts = np.bincount(labels, minlength=num_classes)
    variances = []
    for positives in counts if num_classes > 2 else counts[1:2]:
        n_pos, n_neg = int(positives), int(len(labels) - positives)
        if n_pos == 0 or n_neg == 0:
            continue
        half = (n_pos + n_neg) / 2 - 1
        spread = 1 + half * ((1 - a) / (2 - a) + a / (1 + a))
        variances.append(a * (1 - a) * spread / (n_pos * n_neg))
    if not variances:
        return 0.0
    return float(math.sqrt(sum(variances)) / len(variances))


def log_loss(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy of the true labels under ``probs``."""
    picked = probs[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0))))


def record_epoch(
    state: _State,
    model: nn.Module,
    epoch: int,
    train_loss: float,
    val_metrics: dict[str, Any],
    objective: Objective,
    first_candidate: int = 1,
) -> None:
    """Keep the latest epoch that validation cannot tell apart from the best one so far.

    Epochs before ``first_candidate`` are recorded but never kept. From there on, an epoch
    within ``SELECTION_TOLERANCE`` standard errors (``objective.noise``) of the peak
    validation score is a tie, and ties go to the later epoch: its averaged weights have
    trained longer at a lower learning rate. Early stopping counts the epochs since the last
    such tie, so a run stops only once validation is clearly worse than its best, not when
    noise fails to beat a lucky epoch.
    """
    score = objective.score(val_metrics)
    state.epochs_done = epoch
    row = {"epoch": epoch, "train_loss": train_loss} | objective.history_fields(val_metrics)
    state.history.append(row)
    if epoch < first_candidate:
        return
    state.peak_score = score if state.peak_score is None else max(state.peak_score, score)
    noise = objective.noise(state.peak_score, val_metrics)
    if score >= state.peak_score - SELECTION_TOLERANCE * noise:
        state.best_epoch, state.stale_epochs = epoch, 0
        state.best_state = _cpu_copy(model.state_dict())
        state.best_val_metrics = val_metrics
    else:
        state.stale_epochs += 1


def _record_epoch(
    state: _State,
    model: nn.Module,
    epoch: int,
    train_loss: float,
    val_metrics: dict[str, Any],
    val_labels: np.ndarray,
    first_candidate: int = 1,
) -> None:
    """``record_epoch`` for a classification run validated on ``val_labels``."""
    objective = ClassificationObjective()
    objective.val_labels = np.asarray(val_labels, dtype=np.int64)
    record_epoch(state, model, epoch, train_loss, val_metrics, objective, first_candidate)


def first_candidate(planned_epochs: int) -> int:
    """The first epoch a run may keep: the start of the second half of its schedule."""
    return max(1, math.ceil(planned_epochs * SELECTION_START))


def _out_of_time(config: TrainConfig, started: float, last_epoch_seconds: float) -> bool:
    if config.max_minutes is None:
        return False
    # Stop now if one more epoch like the last would overrun the budget.
    return time.perf_counter() - started + last_epoch_seconds > config.max_minutes * 60


def _cpu_copy(value: Any) -> Any:
    """Deep copy with tensors cloned to the CPU, so later training cannot change it."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _cpu_copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_cpu_copy(v) for v in value)
    return copy.deepcopy(value)


def _checkpoint(
    state: _State,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    scaler: torch.amp.GradScaler,
    average: WeightAverage,
    config: TrainConfig,
) -> dict[str, Any]:
    return _cpu_copy(
        {
            "format": CHECKPOINT_FORMAT,
            "config": asdict(config),
            "epochs_done": state.epochs_done,
            "planned_epochs": state.planned_epochs,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "weight_average": average.state,
            "weight_average_updates": average.updates,
            "peak_score": state.peak_score,
            "best_epoch": state.best_epoch,
            "best_state": state.best_state,
            "best_val_metrics": state.best_val_metrics,
            "stale_epochs": state.stale_epochs,
            "history": state.history,
            "seconds": state.seconds,
            "images_seen": state.images_seen,
            "rng": _rng_state(),
        }
    )


def _rng_state() -> dict[str, Any]:
    # Shuffling and augmentation are seeded per epoch; only dropout draws from torch's
    # global generators, so those are the states a resumed run must restore.
    rng: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def _restore(
    checkpoint: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    scaler: torch.amp.GradScaler,
    average: WeightAverage,
) -> _State:
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise UserError("The saved checkpoint comes from another version; restart the training.")
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    scaler.load_state_dict(checkpoint["scaler"])
    average.restore(checkpoint["weight_average"], checkpoint["weight_average_updates"])
    torch.set_rng_state(checkpoint["rng"]["torch"])
    if "cuda" in checkpoint["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(checkpoint["rng"]["cuda"])
    return _State(
        epochs_done=checkpoint["epochs_done"],
        planned_epochs=checkpoint["planned_epochs"],
        peak_score=checkpoint["peak_score"],
        best_epoch=checkpoint["best_epoch"],
        best_state=checkpoint["best_state"],
        best_val_metrics=checkpoint["best_val_metrics"],
        stale_epochs=checkpoint["stale_epochs"],
        history=list(checkpoint["history"]),
        seconds=dict(checkpoint["seconds"]),
        images_seen=checkpoint["images_seen"],
    )


def predict_probs(
    model: nn.Module, dataset: Dataset, *, batch_size: int = 128, tta: str = "none"
) -> np.ndarray:
    """Class probabilities (N, C) for every item of an already-preprocessed ``dataset``, in order.

    The views and their averaging are ``ml.inference``'s (``tta``: "none", "hflip" or "d4");
    validation during training uses the bare image.
    """
    device = next(model.parameters()).device
    views = tta_views(tta)
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    chunks = []
    with torch.no_grad():
        for images, _ in loader:
            chunks.append(probs_of_batch(model, place_batch(images, device), views).cpu().numpy())
    if not chunks:
        return np.zeros((0, 0), dtype=np.float64)
    return np.concatenate(chunks).astype(np.float64)
