"""The fine-tuning recipe on a tiny network and trivially separable synthetic images."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

import pollen_agent.ml.recipe as recipe
from pollen_agent.errors import UserError
from pollen_agent.ml.data import ArrayImageDataset
from pollen_agent.ml.metrics import evaluate
from pollen_agent.ml.recipe import (
    Cancelled,
    NoCallbacks,
    TrainConfig,
    auc_noise,
    batch_plan,
    build_datasets,
    class_weights,
    predict_probs,
    train,
)
from pollen_agent.ml.zoo import build_model

FAST = TrainConfig(epochs=4, batch_size=8, lr=3e-3, input_size=24, early_stopping_patience=10)


def square_images(n: int, seed: int, *, size: int = 20, labels=None):
    """Grey noise; label 1 images carry a bright square in the middle."""
    rng = np.random.default_rng(seed)
    labels = np.array([i % 2 for i in range(n)]) if labels is None else np.asarray(labels)
    images = []
    for label in labels:
        image = rng.integers(0, 60, (size, size)).astype(np.uint8)
        if label:
            image[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] += 150
        images.append(image)
    return images, labels


def _datasets(config: TrainConfig, n_train: int = 32, n_val: int = 16):
    return build_datasets("small_cnn", config, square_images(n_train, 1), square_images(n_val, 2))


def _fresh_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("small_cnn", 2, source="random")


class Recorder(NoCallbacks):
    def __init__(self, cancel_after_steps: int | None = None) -> None:
        self.steps: list[tuple[int, int]] = []
        self.checkpoints: dict[int, dict] = {}
        self.val_metrics: dict[int, dict] = {}
        self.plans: list[int] = []
        self.cancel_after_steps = cancel_after_steps

    def on_step(self, epoch, step, steps_per_epoch, loss):
        assert 1 <= step <= steps_per_epoch and np.isfinite(loss)
        self.steps.append((epoch, step))

    def on_epoch_end(self, epoch, train_loss, val_metrics, checkpoint):
        self.checkpoints[epoch] = checkpoint
        self.val_metrics[epoch] = val_metrics

    def on_plan(self, epochs):
        self.plans.append(epochs)

    def should_cancel(self):
        return self.cancel_after_steps is not None and len(self.steps) >= self.cancel_after_steps


def test_learns_a_separable_task():
    config = TrainConfig(epochs=8, batch_size=8, lr=3e-3, input_size=24)
    train_ds, val_ds = _datasets(config, n_train=48)
    result = train(_fresh_model(), train_ds, val_ds, config, label_names=["clear", "square"])
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < losses[0] * 0.7
    metrics = evaluate(predict_probs(result.model, val_ds), val_ds.labels, ["clear", "square"])
    assert metrics["auc"] >= 0.95 and metrics["accuracy"] >= 0.85
    # The kept epoch is the latest of the second half within one standard error of its best.
    candidates = [row for row in result.history if row["epoch"] >= recipe.first_candidate(8)]
    peak = max(row["val_auc"] for row in candidates)
    tolerance = recipe.SELECTION_TOLERANCE * auc_noise(peak, val_ds.labels, 2)
    ties = [row["epoch"] for row in candidates if row["val_auc"] >= peak - tolerance]
    assert result.best_epoch == max(ties) >= 4
    assert result.images_per_second > 0 and set(result.seconds) >= {"data", "step", "total"}


def _through_disk(checkpoint: dict) -> dict:
    # The caller stores checkpoints in site storage; they must reload without pickled code.
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _resumed_after_epoch_1(config: TrainConfig, straight: Recorder) -> Recorder:
    resumed = Recorder()
    # A different initial model proves the weights come from the checkpoint.
    train(
        _fresh_model(seed=99),
        *_datasets(config),
        config,
        resumed,
        resume=_through_disk(straight.checkpoints[1]),
    )
    return resumed


def test_resume_matches_an_uninterrupted_run():
    config = TrainConfig(epochs=2, batch_size=8, lr=3e-3, input_size=24, seed=3)
    straight = Recorder()
    train(_fresh_model(), *_datasets(config), config, straight)

    resumed = _resumed_after_epoch_1(config, straight)

    assert resumed.steps[0] == (2, 1)
    final_a, final_b = straight.checkpoints[2]["model"], resumed.checkpoints[2]["model"]
    for key in final_a:
        assert torch.allclose(final_a[key].float(), final_b[key].float(), atol=1e-6), key
    assert straight.checkpoints[2]["history"] == resumed.checkpoints[2]["history"]
    average_a = straight.checkpoints[2]["weight_average"]
    average_b = resumed.checkpoints[2]["weight_average"]
    assert all(
        torch.allclose(average_a[k].float(), average_b[k].float(), atol=1e-6) for k in average_a
    )


def test_resume_differs_without_the_checkpoint_state():
    # Guards the test above: a run that restarts epoch 2 from scratch does not match.
    config = TrainConfig(epochs=2, batch_size=8, lr=3e-3, input_size=24, seed=3)
    straight = Recorder()
    train(_fresh_model(), *_datasets(config), config, straight)
    one = TrainConfig(epochs=1, batch_size=8, lr=3e-3, input_size=24, seed=3)
    restarted = Recorder()
    train(_fresh_model(), *_datasets(one), one, restarted)
    a, b = straight.checkpoints[2]["model"], restarted.checkpoints[1]["model"]
    assert not all(torch.allclose(a[k].float(), b[k].float()) for k in a)


def test_cancel_stops_within_one_batch():
    callbacks = Recorder(cancel_after_steps=1)
    train_ds, val_ds = _datasets(FAST)
    with pytest.raises(Cancelled):
        train(_fresh_model(), train_ds, val_ds, FAST, callbacks)
    assert callbacks.steps == [(1, 1)]


def _same_weights(model: torch.nn.Module, state: dict) -> bool:
    return all(torch.equal(v.cpu(), state[k]) for k, v in model.state_dict().items())


def test_a_cancel_after_an_epoch_keeps_the_best_model_so_far():
    # 32 images in batches of 8: 4 steps an epoch, so the 11th step is in epoch 3.
    callbacks = Recorder(cancel_after_steps=10)
    result = train(_fresh_model(), *_datasets(FAST), FAST, callbacks)
    assert (result.stop_reason, result.stopped_early, result.epochs_run) == ("cancelled", True, 2)
    # Epoch 2 starts the second half of a 4-epoch schedule: the best one that may be kept.
    assert result.best_epoch == 2
    assert _same_weights(result.model, callbacks.checkpoints[2]["weight_average"])


def test_a_cancel_before_the_second_half_keeps_the_last_ended_epoch_not_half_of_the_next():
    config = TrainConfig(epochs=8, batch_size=8, lr=3e-3, input_size=24)
    callbacks = Recorder(cancel_after_steps=6)  # mid-epoch 2
    result = train(_fresh_model(), *_datasets(config), config, callbacks)
    assert (result.stop_reason, result.epochs_run, result.best_epoch) == ("cancelled", 1, 1)
    assert _same_weights(result.model, callbacks.checkpoints[1]["weight_average"])


def test_a_cancel_right_after_a_resume_keeps_the_resumed_checkpoints_model():
    first = Recorder(cancel_after_steps=6)
    train(_fresh_model(), *_datasets(FAST), FAST, first)
    resumed = Recorder(cancel_after_steps=0)
    result = train(_fresh_model(1), *_datasets(FAST), FAST, resumed, resume=first.checkpoints[1])
    assert (result.stop_reason, result.epochs_run) == ("cancelled", 1)
    assert _same_weights(result.model, first.checkpoints[1]["weight_average"])


def test_one_label_only_is_a_user_error():
    train_ds, val_ds = build_datasets(
        "small_cnn", FAST, square_images(10, 1, labels=[0] * 10), square_images(4, 2)
    )
    with pytest.raises(UserError) as caught:
        train(_fresh_model(), train_ds, val_ds, FAST, label_names=["benign", "malignant"])
    assert caught.value.code == "single_label"
    assert "'benign'" in caught.value.message


def test_label_missing_from_validation_is_a_user_error():
    train_ds, val_ds = build_datasets(
        "small_cnn", FAST, square_images(10, 1), square_images(4, 2, labels=[0] * 4)
    )
    with pytest.raises(UserError) as caught:
        train(_fresh_model(), train_ds, val_ds, FAST, label_names=["benign", "malignant"])
    assert caught.value.code == "label_missing_from_split"
    assert "'malignant'" in caught.value.message


@pytest.mark.parametrize("n_train", [5, 9])
def test_small_datasets_train_with_an_adapted_batch(n_train):
    # 5 images < batch of 8; 9 images would leave a final batch of one, which BatchNorm refuses.
    train_ds, val_ds = _datasets(FAST, n_train=n_train, n_val=4)
    result = train(
        _fresh_model(), train_ds, val_ds, TrainConfig(epochs=1, batch_size=8, input_size=24)
    )
    assert result.epochs_run == 1


def test_time_budget_stops_after_an_epoch():
    config = TrainConfig(epochs=5, batch_size=8, input_size=24, max_minutes=1e-6)
    callbacks = Recorder()
    result = train(_fresh_model(), *_datasets(config), config, callbacks)
    assert result.epochs_run == 1 and result.stop_reason == "time_budget" and result.stopped_early
    assert callbacks.plans == [1] and result.planned_epochs == 1


@pytest.mark.parametrize(
    ("budget_minutes", "elapsed", "epoch_seconds", "expected"),
    [
        (None, 30.0, 30.0, 25),  # no budget: the configured schedule
        (15.0, 60.0, 60.0, 15),  # 14 more minutes of 1-minute epochs
        (15.0, 100.0, 60.0, 14),  # loading took 40 s of the budget
        (60.0, 60.0, 60.0, 25),  # never more than configured
        (1.0, 90.0, 90.0, 1),  # the first epoch already overran: stop after it
    ],
)
def test_planned_epochs_fit_the_budget(budget_minutes, elapsed, epoch_seconds, expected):
    config = TrainConfig(epochs=25, max_minutes=budget_minutes)
    assert recipe.planned_epochs(config, elapsed, epoch_seconds) == expected


def test_a_planned_run_completes_its_schedule_and_resumes_exactly(monkeypatch):
    # Planning is priced by wall time; fix its answer so the test is about the plumbing.
    monkeypatch.setattr(recipe, "planned_epochs", lambda config, elapsed, seconds: 2)
    config = TrainConfig(epochs=6, batch_size=8, lr=3e-3, input_size=24, max_minutes=60)
    straight = Recorder()
    result = train(_fresh_model(), *_datasets(config), config, straight)
    assert straight.plans == [2] and result.epochs_run == 2 and result.planned_epochs == 2
    assert result.stop_reason == "time_budget"
    # The cosine ended with the shortened run instead of being cut off at a high rate.
    assert straight.checkpoints[2]["scheduler"]["_last_lr"][0] == pytest.approx(0.01 * config.lr)

    resumed = _resumed_after_epoch_1(config, straight)
    assert sorted(resumed.checkpoints) == [2] and resumed.plans == []
    a, b = straight.checkpoints[2]["model"], resumed.checkpoints[2]["model"]
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)


def test_validation_loss_reaches_the_callbacks():
    config = TrainConfig(epochs=2, batch_size=8, lr=3e-3, input_size=24)
    callbacks = Recorder()
    result = train(_fresh_model(), *_datasets(config), config, callbacks)
    losses = [callbacks.val_metrics[e]["loss"] for e in (1, 2)]
    assert all(np.isfinite(v) and v > 0 for v in losses)
    assert [row["val_loss"] for row in result.history] == losses


def _epoch(state, epoch, auc, labels, marker, first_candidate=1):
    model = torch.nn.Linear(1, 1)
    torch.nn.init.constant_(model.weight, marker)
    recipe._record_epoch(
        state,
        model,
        epoch,
        0.1,
        {"auc": auc, "label_names": ["a", "b"], "loss": 0.3},
        labels,
        first_candidate,
    )


def test_ties_within_validation_noise_go_to_the_later_epoch():
    labels = np.array([0] * 21 + [1] * 57)  # BreastMNIST's validation split: noise about 0.028
    state = recipe._State()
    for epoch, auc in enumerate([0.80, 0.95, 0.94, 0.93, 0.70, 0.85], start=1):
        _epoch(state, epoch, auc, labels, marker=float(epoch))
    # 0.94 and 0.93 are within one standard error of 0.95; 0.70 and 0.85 are clearly worse.
    assert state.best_epoch == 4 and state.best_val_metrics["auc"] == 0.93
    assert float(state.best_state["weight"]) == 4.0
    assert state.stale_epochs == 2 and state.peak_score == 0.95


def test_a_lucky_epoch_early_in_the_schedule_is_never_kept():
    labels = np.array([0] * 21 + [1] * 57)
    state = recipe._State()
    for epoch, auc in enumerate([0.99, 0.80, 0.90, 0.91, 0.70], start=1):
        _epoch(state, epoch, auc, labels, marker=float(epoch), first_candidate=3)
    assert state.best_epoch == 4 and state.peak_score == 0.91 and state.stale_epochs == 1
    assert [row["epoch"] for row in state.history] == [1, 2, 3, 4, 5]  # all reported


@pytest.mark.parametrize(("planned", "first"), [(1, 1), (2, 1), (4, 2), (15, 8), (25, 13)])
def test_the_second_half_of_the_schedule_may_be_kept(planned, first):
    assert recipe.first_candidate(planned) == first


def test_a_run_stopped_before_the_second_half_keeps_its_averaged_weights(monkeypatch):
    monkeypatch.setattr(recipe, "_out_of_time", lambda *args: True)
    config = TrainConfig(epochs=6, batch_size=8, lr=3e-3, input_size=24, max_minutes=60)
    monkeypatch.setattr(recipe, "planned_epochs", lambda *args: config.epochs)
    callbacks = Recorder()
    result = train(_fresh_model(), *_datasets(config), config, callbacks)
    assert result.epochs_run == 1 and result.best_epoch == 1 and result.stop_reason == "time_budget"
    averaged = callbacks.checkpoints[1]["weight_average"]
    kept = result.model.state_dict()
    assert all(torch.allclose(kept[k].float(), averaged[k].float()) for k in averaged)
    assert result.best_val_metrics["auc"] == callbacks.val_metrics[1]["auc"]


def test_a_clearly_better_epoch_replaces_a_tie():
    labels = np.array([0] * 21 + [1] * 57)
    state = recipe._State()
    for epoch, auc in enumerate([0.90, 0.89, 0.99], start=1):
        _epoch(state, epoch, auc, labels, marker=float(epoch))
    assert state.best_epoch == 3 and state.stale_epochs == 0


def test_auc_noise_matches_resampled_validation_sets():
    # Scores from two normal distributions (AUC about 0.92): the spread of AUC over many
    # validation sets of 21 + 57 images is what the formula predicts.
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    labels = np.array([0] * 21 + [1] * 57)
    aucs = []
    for _ in range(2000):
        scores = np.concatenate([rng.normal(0, 1, 21), rng.normal(2, 1, 57)])
        aucs.append(roc_auc_score(labels, scores))
    predicted = auc_noise(float(np.mean(aucs)), labels, 2)
    assert predicted == pytest.approx(float(np.std(aucs)), rel=0.2)
    assert auc_noise(0.9, labels[:10].copy() * 0, 2) == 0.0  # one label only: no estimate
    many = np.array([0] * 210 + [1] * 570)
    assert auc_noise(0.9, many, 2) < auc_noise(0.9, labels, 2) / 3  # ten times the images


def test_class_weights_favour_the_rare_label():
    weights = class_weights(np.array([0, 0, 0, 1]), 2)
    assert weights[1] == pytest.approx(3 * weights[0])
    assert float((3 * weights[0] + weights[1]) / 4) == pytest.approx(1.0)


def test_predict_probs_with_flip_averaging():
    dataset = ArrayImageDataset(
        *square_images(6, 4), input_size=24, mean=(0.5,) * 3, std=(0.5,) * 3, augment=False
    )
    model = _fresh_model()
    plain = predict_probs(model, dataset, batch_size=4)
    flipped = predict_probs(model, dataset, batch_size=4, tta="hflip")
    assert plain.shape == flipped.shape == (6, 2)
    assert np.allclose(flipped.sum(axis=1), 1.0)
    assert not np.allclose(plain, flipped)


@pytest.mark.parametrize(
    ("n_images", "plan"),
    [
        (5, (5, False, 1)),
        (9, (8, True, 1)),
        (16, (8, False, 2)),
        (17, (8, True, 2)),
        (20, (8, False, 3)),
    ],
)
def test_batch_plan_adapts_to_small_datasets(n_images, plan):
    assert batch_plan(n_images, 8) == plan
