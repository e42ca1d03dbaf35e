"""The fine-tuning recipe on a tiny network and trivially separable synthetic images."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from pollen_agent.errors import UserError
from pollen_agent.ml.data import ArrayImageDataset
from pollen_agent.ml.metrics import evaluate
from pollen_agent.ml.recipe import (
    Cancelled,
    NoCallbacks,
    TrainConfig,
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
        self.cancel_after_steps = cancel_after_steps

    def on_step(self, epoch, step, steps_per_epoch, loss):
        assert 1 <= step <= steps_per_epoch and np.isfinite(loss)
        self.steps.append((epoch, step))

    def on_epoch_end(self, epoch, train_loss, val_metrics, checkpoint):
        self.checkpoints[epoch] = checkpoint

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
    best = max(result.history, key=lambda row: (row["val_auc"], -row["val_loss"]))
    assert result.best_epoch == best["epoch"]
    assert result.images_per_second > 0 and set(result.seconds) >= {"data", "step", "total"}


def _through_disk(checkpoint: dict) -> dict:
    # The caller stores checkpoints in site storage; they must reload without pickled code.
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_resume_matches_an_uninterrupted_run():
    config = TrainConfig(epochs=2, batch_size=8, lr=3e-3, input_size=24, seed=3)
    straight = Recorder()
    train(_fresh_model(), *_datasets(config), config, straight)

    resumed = Recorder()
    # A different initial model proves the weights come from the checkpoint.
    train(
        _fresh_model(seed=99),
        *_datasets(config),
        config,
        resumed,
        resume=_through_disk(straight.checkpoints[1]),
    )

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
    result = train(_fresh_model(), *_datasets(config), config)
    assert result.epochs_run == 1 and result.stop_reason == "time_budget" and result.stopped_early


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
    flipped = predict_probs(model, dataset, batch_size=4, tta=True)
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
