"""One site's share of a federated job: prepare the starting weights, or train one round locally.

The site trains on its own images only. What leaves the site is the weights
(safetensors, uploaded to the hub's model store through a presigned URL) and a handful
of aggregate numbers (sample count, validation AUC/accuracy or Dice/IoU, loss). Never a
pixel, a filename or a per-image value.

A round is a short training job from the combined weights: the task's own steps
(``jobs/task_steps.py``: how images and masks are read, the datasets, the objective) and the
recipe's loop, exactly as a single-site job of that task trains.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import requests

from pollen_agent.errors import RetryableError, UserError
from pollen_agent.hub_client import HubClient
from pollen_agent.jobs.model_source import put_presigned
from pollen_agent.jobs.reporting import JobReporter, eta
from pollen_agent.jobs.task_steps import TaskSteps
from pollen_agent.open_maps import JsonRecord, Metrics, TorchState
from pollen_agent.storage.base import ObjectNotFound, Storage
from pollen_contracts.manifest import InferenceBlock
from pollen_contracts.reports import Preprocessing, RoundMetrics, RoundProgress, RoundUpdate
from pollen_contracts.specs import FederatedRoundSpec, HeldOutSpec, TrainingSpec
from pollen_contracts.weights import WeightsSpec

logger = logging.getLogger(__name__)

# The validation numbers a round reports, as the task's objective names them (a classifier
# reports the first three, an outlining model Dice and IoU); each goes back as ``val_<name>``.
METRIC_KEYS = ("auc", "accuracy", "balanced_accuracy", "dice", "iou")


class RoundLost(Exception):
    """The hub closed the round or gave this site's turn to another worker: stop quietly."""


@dataclass
class LocalResult:
    state: TorchState  # tensor name -> torch tensor (CPU)
    sample_count: int
    metrics: dict[str, float | int | None]


def round_learning_rate(base_lr: float, round_number: int, rounds: int) -> float:
    """Cosine decay of the local learning rate across rounds (never below a tenth)."""
    if rounds <= 1:
        return base_lr
    progress = (round_number - 1) / (rounds - 1)
    return base_lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def round_config(
    *, epochs: int, lr: float, input_size: int, batch_size: int = 32, seed: int = 0
) -> Any:
    """The recipe's settings for a site's round: no early stopping, and no warmup, since the
    weights are already trained."""
    from pollen_agent.ml.recipe import TrainConfig

    return TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        input_size=input_size,
        seed=seed,
        warmup_epochs=0.0,
        early_stopping_patience=epochs + 1,
    )


def train_datasets(
    model: Any,
    train_ds: Any,
    val_ds: Any,
    config: Any,
    *,
    objective: Any = None,
    label_names: Sequence[str] | None = None,
    callbacks: Any = None,
    resume: TorchState | None = None,
) -> LocalResult:
    """Train ``model`` (already holding the global weights) on this site's datasets of any
    task (``objective``: the task's, None for classification with ``label_names``)."""
    from pollen_agent.ml.recipe import train as run_train

    result = run_train(
        model,
        train_ds,
        val_ds,
        config,
        callbacks,
        resume=resume,
        label_names=label_names,
        objective=objective,
    )
    best = result.best_val_metrics
    metrics: dict[str, float | int | None] = {
        f"val_{k}": _number(best.get(k)) for k in METRIC_KEYS if k in best
    }
    last = result.history[-1] if result.history else {}
    metrics["val_loss"] = _number(last.get("val_loss"))
    metrics["train_loss"] = _number(last.get("train_loss"))
    metrics["val_count"] = len(val_ds)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in result.model.state_dict().items()}
    return LocalResult(state=state, sample_count=len(train_ds), metrics=metrics)


def train_local(
    model: Any,
    train: tuple[Sequence[np.ndarray], Sequence[int]],
    val: tuple[Sequence[np.ndarray], Sequence[int]],
    *,
    architecture: str,
    input_size: int,
    epochs: int,
    lr: float,
    batch_size: int = 32,
    seed: int = 0,
    callbacks: Any = None,
    resume: TorchState | None = None,
    label_names: Sequence[str] | None = None,
) -> LocalResult:
    """A classifier's round from labelled arrays (the cross-site benchmark and tests call this)."""
    from pollen_agent.ml.recipe import build_datasets

    config = round_config(
        epochs=epochs, lr=lr, input_size=input_size, batch_size=batch_size, seed=seed
    )
    train_ds, val_ds = build_datasets(architecture, config, train, val)
    return train_datasets(
        model,
        train_ds,
        val_ds,
        config,
        label_names=label_names,
        callbacks=callbacks,
        resume=resume,
    )


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def state_to_bytes(state: TorchState) -> bytes:
    from safetensors.torch import save

    return save({k: v.detach().cpu().contiguous() for k, v in state.items()})


def load_global(model: Any, data: bytes) -> None:
    """Load the hub's global weights (safetensors bytes, checksum already verified) strictly."""
    from safetensors.torch import load

    try:
        state = load(data)
    except Exception as exc:
        raise UserError(
            "The combined model from Pollen could not be read.", code="weights_format"
        ) from exc
    own = model.state_dict()
    if set(own) != set(state) or any(own[k].shape != state[k].shape for k in own):
        raise UserError(
            "The combined model does not fit the kind of model this training uses.",
            code="weights_mismatch",
        )
    model.load_state_dict(state, strict=True)


def download_weights(url: str, expected_sha256: str) -> bytes:
    try:
        response = requests.get(url, timeout=120)
    except requests.RequestException as exc:
        raise RetryableError(f"The combined model could not be downloaded: {exc}") from exc
    if response.status_code != 200:
        raise RetryableError(
            f"The combined model could not be downloaded ({response.status_code})."
        )
    if hashlib.sha256(response.content).hexdigest() != expected_sha256:
        raise UserError(
            "The combined model is not the one Pollen recorded (its checksum differs); it was not used.",
            code="checksum_mismatch",
        )
    return response.content


class RoundReporter(JobReporter):
    """Progress for one site's round: renews the site's lease; the hub may tell it to stop."""

    def __init__(
        self, hub: HubClient, path: str, *, lease_seconds: int, claim_id: str | None = None
    ) -> None:
        super().__init__(hub, 0, lease_seconds=lease_seconds)
        self.path, self.claim_id = path, claim_id

    def _send(self, progress: JsonRecord) -> None:
        try:
            report = RoundProgress.from_dict({**progress, "claim_id": self.claim_id})
            answer = self.hub.post(self.path, report.to_dict())
        except UserError as exc:
            logger.warning("round progress refused: %s", exc)
            self.lost.set()
            self.cancelled.set()
            return
        except Exception as exc:
            logger.warning("round progress failed: %s", exc)
            return
        if answer and answer.get("stop"):
            self.lost.set()
            self.cancelled.set()


class _Callbacks:
    def __init__(self, reporter: RoundReporter, storage: Storage, key: str, epochs: int) -> None:
        self.reporter, self.storage, self.key, self.epochs = reporter, storage, key, epochs

    def on_step(self, epoch: int, step: int, steps_per_epoch: int, loss: float) -> None:
        fraction = 0.1 + 0.8 * ((epoch - 1) + step / max(steps_per_epoch, 1)) / self.epochs
        self.reporter.report(
            phase="training",
            epoch=epoch,
            epochs=self.epochs,
            loss=float(loss),
            fraction=min(fraction, 0.9),
            eta_seconds=eta(fraction, self.reporter.started),
        )

    def on_epoch_end(
        self, epoch: int, train_loss: float, val_metrics: Metrics, checkpoint: TorchState
    ) -> None:
        import torch

        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        self.storage.put_bytes(self.key, buffer.getvalue())

    def should_cancel(self) -> bool:
        return self.reporter.should_cancel()

    def on_plan(self, epochs: int) -> None:
        self.epochs = epochs  # progress and time left follow the planned run


def _load_checkpoint(storage: Storage, key: str) -> TorchState | None:
    import torch

    try:
        data = storage.get_bytes(key)
    except ObjectNotFound:
        return None
    try:  # our own site's checkpoint, still loaded without running code
        return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception:
        storage.delete(key)
        return None


def run_round(
    *,
    spec: FederatedRoundSpec,
    hub: HubClient,
    storage: Storage,
    work_dir: Path,
    claim_id: str | None = None,
) -> None:
    """Everything after the claim: prepare (round 0) or train one round, upload, report."""
    import torch

    base = f"agent/federated-jobs/{spec.federated_job_id}/rounds/{spec.round}"
    work = Path(tempfile.mkdtemp(prefix=f"fed-{spec.federated_job_id}-", dir=work_dir))
    reporter = RoundReporter(
        hub, f"{base}/progress/", lease_seconds=spec.lease_seconds, claim_id=claim_id
    )
    try:
        with reporter:
            reporter.report(phase="loading", fraction=0.0, force=True)
            torch.manual_seed(int(spec.seed))
            if spec.round == 0:
                data, update = _prepare(spec, storage, work)
            else:
                data, update = _train_round(spec, hub, storage, reporter)
            if reporter.lost.is_set():
                raise RoundLost()
            reporter.report(phase="saving", fraction=0.95, force=True)
            put_presigned(spec.update, data, what="trained model")
            hub.post(f"{base}/update/", update.to_dict())
            storage.delete(spec.checkpoint_key)
    except Exception as exc:
        from pollen_agent.ml.recipe import Cancelled

        if isinstance(exc, Cancelled) or reporter.lost.is_set():
            raise RoundLost() from None
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _prepare(spec: FederatedRoundSpec, storage: Storage, work: Path) -> tuple[bytes, RoundUpdate]:
    """Round 0 at the initiating site: build the common starting model every site will load."""
    from pollen_agent.jobs.weights import build_start_model
    from pollen_agent.ml.zoo import get_spec

    model = build_start_model(spec.architecture, len(spec.label_names), spec.weights, storage, work)
    arch = get_spec(spec.architecture)
    data = state_to_bytes(model.state_dict())
    preprocessing = Preprocessing(mean=list(arch.mean), std=list(arch.std))
    return data, RoundUpdate(
        weights_sha256=hashlib.sha256(data).hexdigest(),
        sample_count=0,
        metrics=RoundMetrics(),
        model=preprocessing,
    )


def site_steps(spec: FederatedRoundSpec | HeldOutSpec, weights: WeightsSpec) -> TaskSteps:
    """The task's steps of a single-site job (``jobs/task_steps.py``) for a cross-site turn or
    held-out check: a round is a short training job of ``local_epochs`` from ``weights``."""
    from pollen_agent.jobs.task_steps import steps_for

    turn = spec if isinstance(spec, FederatedRoundSpec) else None
    config: dict[str, Any] = {}
    if turn is not None:
        config = {
            "epochs": turn.local_epochs,
            "batch_size": turn.batch_size,
            "learning_rate": turn.learning_rate,
            "seed": turn.seed + turn.round,
        }
    return steps_for(
        TrainingSpec(
            job_id=spec.federated_job_id,
            attempt=1,
            recipe="full",
            dataset_id=spec.dataset_id,
            label_names=list(spec.label_names),
            architecture=spec.architecture,
            input_size=spec.input_size,
            weights=weights,
            config=config,
            checkpoint_key=turn.checkpoint_key if turn else "",
            samples_prefix="",
            model_key="",
            lease_seconds=turn.lease_seconds if turn else 0,
            starting_point="",
            licence="",
            positive_class=spec.positive_class,
            task=spec.task,
        )
    )


def _train_round(
    spec: FederatedRoundSpec, hub: HubClient, storage: Storage, reporter: RoundReporter
) -> tuple[bytes, RoundUpdate]:
    from pollen_agent.ml.zoo import build_model, get_spec

    steps = site_steps(spec, spec.weights)
    rows = hub.get_all(f"agent/datasets/{spec.dataset_id}/training-images/")
    splits = steps.load(
        storage,
        rows,
        lambda done, total: reporter.report(phase="loading", fraction=0.1 * done / max(total, 1)),
    )
    model = build_model(spec.architecture, len(spec.label_names), source="random")
    load_global(model, download_weights(spec.weights.url, spec.weights.sha256))
    config = steps.config(
        round_config(
            epochs=spec.local_epochs,
            lr=spec.learning_rate,
            input_size=spec.input_size,
            batch_size=spec.batch_size,
            seed=int(spec.seed) + spec.round,
        )
    )
    train_ds, val_ds = steps.datasets(config, splits)
    result = train_datasets(
        steps.prepare(model),
        train_ds,
        val_ds,
        config,
        objective=steps.objective(),
        label_names=spec.label_names,
        callbacks=_Callbacks(reporter, storage, spec.checkpoint_key, spec.local_epochs),
        resume=_load_checkpoint(storage, spec.checkpoint_key),
    )
    data = state_to_bytes(result.state)
    arch = get_spec(spec.architecture)
    # How this site fed the model, when its task says (segmentation: whole or in windows).
    inference = steps.manifest_fields({}, arch.mean, arch.std).get("inference")
    return data, RoundUpdate(
        weights_sha256=hashlib.sha256(data).hexdigest(),
        sample_count=result.sample_count,
        metrics=RoundMetrics.from_dict(result.metrics),
        inference=inference if isinstance(inference, InferenceBlock) else None,
    )
