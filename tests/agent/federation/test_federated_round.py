"""The site's side of a round, without a hub: local training from global weights, and what leaves the site."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.numpy import load

from pollen_agent.errors import UserError
from pollen_agent.jobs.federated import (
    load_global,
    round_learning_rate,
    state_to_bytes,
    train_local,
)
from pollen_agent.ml.zoo import build_model


def _squares(n: int, seed: int) -> tuple[list[np.ndarray], list[int]]:
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i in range(n):
        label = i % 2
        img = rng.integers(0, 60, (24, 24, 3), dtype=np.uint8)
        y = 2 if label == 0 else 14
        img[y : y + 8, 6:14] = 230
        images.append(img)
        labels.append(label)
    return images, labels


def test_a_local_round_starts_from_the_global_weights_and_sends_only_model_tensors():
    torch.manual_seed(0)
    model = build_model("small_cnn", 2, source="random")
    global_bytes = state_to_bytes(model.state_dict())
    fresh = build_model("small_cnn", 2, source="random")
    load_global(fresh, global_bytes)
    assert all(
        torch.equal(a, b)
        for a, b in zip(fresh.state_dict().values(), model.state_dict().values(), strict=True)
    )

    result = train_local(
        fresh,
        _squares(24, 1),
        _squares(8, 2),
        architecture="small_cnn",
        input_size=24,
        epochs=1,
        lr=0.01,
        label_names=["top", "bottom"],
    )
    assert result.sample_count == 24
    assert set(result.metrics) == {
        "val_auc",
        "val_accuracy",
        "val_balanced_accuracy",
        "val_loss",
        "train_loss",
        "val_count",
    }
    assert all(v is None or isinstance(v, int | float) for v in result.metrics.values())
    update = load(state_to_bytes(result.state))
    assert {k: tuple(v.shape) for k, v in update.items()} == {
        k: tuple(v.shape) for k, v in model.state_dict().items()
    }, "the model's tensor names and shapes, nothing else"
    assert update["features.1.num_batches_tracked"].shape == ()


def test_global_weights_of_another_architecture_are_refused():
    other = build_model("small_cnn", 3, source="random")
    with pytest.raises(UserError) as caught:
        load_global(
            build_model("small_cnn", 2, source="random"), state_to_bytes(other.state_dict())
        )
    assert caught.value.code == "weights_mismatch"


def test_the_local_learning_rate_decays_across_rounds():
    rates = [round_learning_rate(1e-3, r, 5) for r in range(1, 6)]
    assert rates[0] == pytest.approx(1e-3) and rates[-1] == pytest.approx(1e-4)
    assert rates == sorted(rates, reverse=True)
