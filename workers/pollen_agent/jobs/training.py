"""Run one training job at the site: claim, load images, train (or fit the quick model), evaluate, save.

Only metadata and aggregate metrics go back to the hub; images, checkpoints and
weights stay in the site's storage.
"""

from __future__ import annotations

import io
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from pollen_agent.errors import AgentError, RetryableError, UserError
from pollen_agent.hub_client import HubClient
from pollen_agent.jobs.eta import EpochClock
from pollen_agent.jobs.images import SplitImages
from pollen_agent.jobs.reporting import LOST_CODES, JobLost, JobReporter
from pollen_agent.jobs.task_steps import steps_for
from pollen_agent.jobs.weights import build_start_model
from pollen_agent.open_maps import JsonRecord, Metrics, TorchState
from pollen_agent.storage.base import ObjectNotFound, Storage
from pollen_contracts.reports import TrainedModel, TrainingResult
from pollen_contracts.specs import Failure, TrainingSpec

logger = logging.getLogger(__name__)

__all__ = ["JobLost", "run_training_job"]

# The epoch records a checkpoint carries, so that whoever resumes it can send any the hub
# never received (it was unreachable, or this worker died before sending them).
RECORDS_KEY = "pollen_epoch_records"
# Advanced settings from the hub -> TrainConfig fields.
ADVANCED_FIELDS: dict[str, tuple[str, Any]] = {
    "epochs": ("epochs", int),
    "batch_size": ("batch_size", int),
    "learning_rate": ("lr", float),
    "max_minutes": ("max_minutes", float),
}


def _train_config(spec: TrainingSpec) -> Any:
    from pollen_agent.ml.recipe import TrainConfig

    cfg = spec.config
    config = TrainConfig(input_size=spec.input_size, seed=int(cfg.get("seed", 0)))
    for name, (field, cast) in ADVANCED_FIELDS.items():
        if name in cfg:
            setattr(config, field, cast(cfg[name]))
    return config


def _load_checkpoint(storage: Storage, key: str) -> TorchState | None:
    import torch

    from pollen_agent.ml.recipe import CHECKPOINT_FORMAT

    try:
        data = storage.get_bytes(key)
    except ObjectNotFound:
        return None
    try:
        # Our own site's checkpoint, still loaded without running any code.
        checkpoint = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
        if checkpoint.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"format {checkpoint.get('format')!r}, not {CHECKPOINT_FORMAT!r}")
        return dict(checkpoint)
    except Exception as exc:
        logger.warning(
            "checkpoint %s is unreadable (%s); starting again from the beginning", key, exc
        )
        storage.delete(key)
        return None


def _announce_start(hub: HubClient, spec: TrainingSpec, resume: TorchState | None) -> list:
    """Tell the hub where training starts; return the epoch records carried so far.

    Sent only once the checkpoint has been read, so the job says "Resumed" only when one
    really was, and with the records of epochs the hub may never have received.
    """
    records = list(resume.get(RECORDS_KEY, [])) if resume else []
    from_epoch = int(resume["epochs_done"]) if resume else 0
    if resume:
        logger.info("job %s resumes from the checkpoint of epoch %s", spec.job_id, from_epoch)
    hub.post(
        f"agent/jobs/{spec.job_id}/training-start/",
        {"from_epoch": from_epoch, "epochs": [r for r in records if r["epoch"] <= from_epoch]},
    )
    return records


def _discard_checkpoint(storage: Storage, key: str) -> None:
    """After the hub has the result, the checkpoint is only a liability: nothing may resume it."""
    try:
        storage.delete(key)
    # The job has succeeded: a leftover file is no failure.
    except (RetryableError, UserError) as exc:
        logger.warning("could not delete the finished job's checkpoint %s (%s)", key, exc)


def _save_checkpoint(storage: Storage, key: str, checkpoint: TorchState) -> str:
    import hashlib

    import torch

    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    data = buffer.getvalue()
    storage.put_bytes(key, data, content_type="application/octet-stream")
    return hashlib.sha256(data).hexdigest()


class _Callbacks:
    def __init__(
        self,
        reporter: JobReporter,
        hub: HubClient,
        storage: Storage,
        spec: TrainingSpec,
        records: list[JsonRecord],
        clock: EpochClock,
    ) -> None:
        self.reporter, self.hub, self.storage, self.spec = reporter, hub, storage, spec
        self.records = records  # every epoch of this run so far, also those of earlier workers
        self.clock = clock

    @property
    def epochs(self) -> int:
        return self.clock.epochs

    def on_step(self, epoch: int, step: int, steps_per_epoch: int, loss: float) -> None:
        self.clock.step()
        within = step / max(steps_per_epoch, 1)
        fraction = 0.05 + 0.85 * ((epoch - 1) + within) / self.epochs
        self.reporter.report(
            phase="training",
            epoch=epoch,
            epochs=self.epochs,
            step=step,
            steps=steps_per_epoch,
            loss=float(loss),
            fraction=min(fraction, 0.9),
            eta_seconds=self.clock.seconds_left(within),
        )

    def on_epoch_end(
        self, epoch: int, train_loss: float, val_metrics: Metrics, checkpoint: TorchState
    ) -> None:
        if self.reporter.lost.is_set():
            # Another worker resumes this job's checkpoint: writing ours now could replace it.
            raise JobLost()
        record = {
            "epoch": epoch,
            "train_loss": float(train_loss),
            "val_auc": val_metrics.get("auc"),
            "val_accuracy": val_metrics.get("accuracy"),
            "val_balanced_accuracy": val_metrics.get("balanced_accuracy"),
            "val_loss": val_metrics.get("loss"),
            "val_dice": val_metrics.get("dice"),
            "val_iou": val_metrics.get("iou"),
            "seconds": self.clock.epoch_end(epoch),
            "attempt": self.spec.attempt,
        }
        self.records = [r for r in self.records if r["epoch"] < epoch] + [record]
        checkpoint[RECORDS_KEY] = self.records
        sha = _save_checkpoint(self.storage, self.spec.checkpoint_key, checkpoint)
        # Queued, not sent here: training goes on while the hub is away, and the records
        # follow in order once it is back.
        self.reporter.outbox.put(record | {"checkpoint_sha256": sha})

    def should_cancel(self) -> bool:
        return self.reporter.should_cancel()

    def on_plan(self, epochs: int) -> None:
        self.clock.plan(epochs)  # progress and time left follow the planned run


def _epoch_clock(
    config: Any, resume: TorchState | None, records: list, splits: dict[str, SplitImages]
) -> EpochClock:
    """The clock of the run that goes on: as many epochs as it will really train (a resumed
    run keeps the plan its time budget made), and the epoch times measured before."""
    done = int(resume["epochs_done"]) if resume else 0
    n_val = max(1, len(splits["val"].images))
    n_test = len(splits["test"].images) or n_val
    return EpochClock(
        epochs=int((resume or {}).get("planned_epochs") or config.epochs),
        epochs_done=done,
        durations=[r.get("seconds") or 0.0 for r in records if r["epoch"] <= done],
        # The final check runs the test set and its mirror image: two validation passes.
        tail_factor=2.0 * n_test / n_val,
        budget_seconds=config.max_minutes * 60 if config.max_minutes else None,
    )


def run_training_job(
    *, spec: TrainingSpec, hub: HubClient, storage: Storage, work_dir: Path
) -> None:
    """Everything after the claim. Raises UserError (fail the job) or RetryableError (try again)."""
    import torch

    from pollen_agent.ml.device import pick_device
    from pollen_agent.ml.recipe import Cancelled, train
    from pollen_agent.ml.zoo import get_spec, licence_for

    steps = steps_for(spec)

    work = Path(tempfile.mkdtemp(prefix=f"job-{spec.job_id}-", dir=work_dir))
    started = time.perf_counter()
    timings: dict[str, float] = {}
    reporter = JobReporter(hub, spec.job_id, lease_seconds=spec.lease_seconds)
    try:
        with reporter:
            reporter.report(phase="loading", fraction=0.0, force=True)
            rows = hub.get_all(f"agent/datasets/{spec.dataset_id}/training-images/")
            splits = steps.load(
                storage,
                rows,
                lambda done, total: reporter.report(
                    phase="loading", fraction=0.05 * done / max(total, 1)
                ),
            )
            timings["load_images"] = time.perf_counter() - started
            arch = get_spec(spec.architecture)
            device = pick_device()
            torch.manual_seed(int(spec.config.get("seed", 0)))
            t0 = time.perf_counter()
            clock: EpochClock | None = None
            if spec.recipe == "quick":
                model, epochs_run = _run_quick(spec, splits, reporter), 0
                selection: Metrics = {}
            else:
                config = steps.config(_train_config(spec))
                model = steps.prepare(
                    build_start_model(
                        spec.architecture, len(spec.label_names), spec.weights, storage, work
                    ).to(device)
                )
                train_ds, val_ds = steps.datasets(config, splits)
                resume = _load_checkpoint(storage, spec.checkpoint_key)
                records = _announce_start(hub, spec, resume)
                clock = _epoch_clock(config, resume, records, splits)
                callbacks = _Callbacks(reporter, hub, storage, spec, records, clock)
                result = train(
                    model,
                    train_ds,
                    val_ds,
                    config,
                    callbacks,
                    resume=resume,
                    objective=steps.objective(),
                )
                # The history must be complete before the result: wait for the hub to have
                # every epoch (raises JobLost if the job was taken over meanwhile).
                reporter.outbox.flush()
                model, epochs_run = result.model, result.epochs_run
                selection = {
                    "kept_epoch": result.best_epoch,
                    "planned_epochs": result.planned_epochs,
                    "stop_reason": result.stop_reason,
                }
                timings.update({f"train_{k}": v for k, v in result.seconds.items()})
                timings["images_per_second"] = result.images_per_second
            timings["train"] = time.perf_counter() - t0
            if reporter.lost.is_set():
                raise JobLost()
            reporter.report(
                phase="evaluating",
                fraction=0.92,
                eta_seconds=clock.final_check_seconds() if clock else None,
                force=True,
            )
            model.eval()
            report = steps.evaluate(model, splits, arch.mean, arch.std)
            test = splits["test"] if splits["test"].images else splits["val"]
            report["samples"] = steps.samples(model, test, report, arch.mean, arch.std, storage)
            report["epochs_run"] = epochs_run
            report.update(selection)
            comparison = steps.parent_comparison(
                storage,
                work,
                report,
                test,
                lambda m: steps.evaluate(m, splits, arch.mean, arch.std),
            )
            # What is private to the site's run (probabilities, masks) never goes to the hub.
            report = {k: v for k, v in report.items() if not k.startswith("_")}
            reporter.report(phase="saving", fraction=0.97, force=True)
            model_fields = _save_model(
                model,
                spec,
                steps.summary(splits),
                steps.manifest_fields(report, arch.mean, arch.std),
                report,
                storage,
                work,
                licence=spec.licence or licence_for(spec.architecture, "random"),
            )
            timings["total"] = time.perf_counter() - started
            outcome = TrainingResult(
                evaluation=report,
                model=model_fields,
                timings=timings,
                parent_comparison=comparison,
            )
            _post_result(hub, spec, outcome)
            _discard_checkpoint(storage, spec.checkpoint_key)
    except Cancelled:
        if reporter.lost.is_set():
            raise JobLost() from None
        failure = Failure(code="cancelled", message=_CANCELLED_EMPTY[spec.recipe == "quick"])
        hub.post(f"agent/jobs/{spec.job_id}/fail/", failure.to_dict())
    finally:
        shutil.rmtree(work, ignore_errors=True)


# A cancel after an epoch has ended keeps the best model so far (the recipe returns it with
# stop_reason "cancelled" and the job finishes as usual); before that, nothing is kept.
_CANCELLED_EMPTY = {
    False: "Stopped by a user before the first round of learning ended, so no model was kept.",
    True: "Stopped by a user before the quick model was finished, so no model was kept.",
}


def _post_result(hub: HubClient, spec: TrainingSpec, result: TrainingResult) -> None:
    try:
        hub.post(f"agent/jobs/{spec.job_id}/complete/", result.to_dict())
    except AgentError as exc:
        # Taken over while evaluating: the new worker's result counts, and the checkpoint
        # stays for it.
        if exc.code in LOST_CODES:
            raise JobLost() from exc
        raise


def _run_quick(spec: TrainingSpec, splits: dict[str, SplitImages], reporter: JobReporter) -> Any:
    from pollen_agent.ml.device import pick_device
    from pollen_agent.ml.quick import train_quick

    reporter.report(phase="training", fraction=0.1, force=True)
    result = train_quick(
        (splits["train"].images, splits["train"].labels),
        (splits["val"].images, splits["val"].labels),
        label_names=spec.label_names,
        arch=spec.architecture,
        input_size=spec.input_size,
        seed=int(spec.config.get("seed", 0)),
        should_cancel=reporter.should_cancel,
    )
    return result.model.to(pick_device())


def _save_model(
    model: Any,
    spec: TrainingSpec,
    counts: dict[str, Any],
    task_fields: dict[str, Any],
    report: Metrics,
    storage: Storage,
    work: Path,
    *,
    licence: str,
) -> TrainedModel:
    from pollen_agent.ml.artifact import save_model_folder
    from pollen_agent.ml.manifest import MANIFEST_NAME, WEIGHTS_NAME

    folder = work / "model"
    summary = counts | {"recipe": spec.recipe, "starting_point": spec.starting_point}
    if report.get("stop_reason") == "cancelled":
        # Stopped by a user: the model is the best of the epochs that ended, and says so.
        summary["stopped_early"] = {
            "epochs_run": report.get("epochs_run"),
            "planned_epochs": report.get("planned_epochs"),
        }
    manifest = save_model_folder(
        folder,
        model.cpu(),
        {
            "architecture": spec.architecture,
            "label_names": spec.label_names,
            "input_size": spec.input_size,
            "licence": licence,
            "parent": spec.parent.to_dict() if spec.parent else None,
            "training_summary": summary,
        }
        | task_fields,
    )
    prefix = spec.model_key.rstrip("/")
    for name in (WEIGHTS_NAME, MANIFEST_NAME):
        storage.put_bytes(f"{prefix}/{name}", (folder / name).read_bytes())
    return TrainedModel(
        architecture=manifest.architecture,
        label_names=list(manifest.label_names),
        positive_class=manifest.positive_class or "",
        input_size=manifest.input_size,
        mean=list(manifest.mean),
        std=list(manifest.std),
        weights_sha256=manifest.weights_sha256,
        storage_key=prefix + "/",
        licence=licence,
        training_summary=summary,
    )
