"""A U-Net's round at a site, without a hub (issue 18): the segmentation job's own steps train
it, the site reports Dice, and the hub's FedAvg averages every tensor, BatchNorm's too."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from safetensors.numpy import load

from pollen.federation.aggregation import fedavg, to_bytes
from pollen_agent.jobs.federated import (
    load_global,
    round_config,
    site_steps,
    state_to_bytes,
    train_datasets,
)
from pollen_agent.jobs.images import SplitImages
from pollen_agent.ml.zoo import build_model
from pollen_contracts.manifest import InferenceBlock
from pollen_contracts.reports import RoundMetrics
from pollen_contracts.specs import FederatedRoundSpec
from tests.support.discs import disc

SIDE = 64
LABELS = ["background", "disc"]


def _split(n: int, seed: int) -> SplitImages:
    split = SplitImages()
    for i in range(n):
        image, mask = (
            np.asarray(PILImage.open(io.BytesIO(p))) for p in disc(seed + i, empty=i % 5 == 4)
        )
        split.images.append(image)
        split.masks.append((mask > 0).astype(np.uint8))
        split.ids.append(seed + i)
    return split


def _spec(**extra) -> FederatedRoundSpec:
    return FederatedRoundSpec.from_dict(
        {
            "federated_job_id": 3,
            "round": 1,
            "rounds": 2,
            "site": "site-a",
            "dataset_id": 7,
            "label_names": LABELS,
            "architecture": "unet_efficientnet_lite0",
            "input_size": SIDE,
            "local_epochs": 1,
            "batch_size": 4,
            "learning_rate": 3e-3,
            "seed": 0,
            "checkpoint_key": "federated/x/round-1/checkpoint.pt",
            "lease_seconds": 60,
            "weights": {"kind": "hub_file", "url": "https://hub.test/w", "sha256": "a" * 64},
            "update": {"url": "https://hub.test/u", "method": "PUT", "headers": {}},
            "task": "segmentation",
            **extra,
        }
    )


@pytest.fixture(scope="module")
def start() -> bytes:
    torch.manual_seed(0)
    return state_to_bytes(build_model("unet_efficientnet_lite0", 2, source="random").state_dict())


def _site_round(start: bytes, seed: int, n_train: int):
    spec = _spec()
    steps = site_steps(spec, spec.weights)
    splits = {"train": _split(n_train, seed), "val": _split(3, seed + 500), "test": SplitImages()}
    model = build_model("unet_efficientnet_lite0", 2, source="random")
    load_global(model, start)
    config = steps.config(
        round_config(epochs=1, lr=spec.learning_rate, input_size=SIDE, batch_size=spec.batch_size)
    )
    train_ds, val_ds = steps.datasets(config, splits)
    result = train_datasets(
        steps.prepare(model), train_ds, val_ds, config, objective=steps.objective()
    )
    return steps, result


def test_a_unet_round_reports_dice_and_fedavg_averages_its_batchnorm_statistics(start):
    steps, site_a = _site_round(start, seed=0, n_train=4)
    _, site_b = _site_round(start, seed=1000, n_train=6)

    assert site_a.sample_count == 4 and site_b.sample_count == 6
    assert set(site_a.metrics) == {"val_dice", "val_iou", "val_loss", "train_loss", "val_count"}
    assert 0 <= site_a.metrics["val_dice"] <= 1 and site_a.metrics["val_count"] == 3
    assert RoundMetrics.from_dict(site_a.metrics).val_dice == site_a.metrics["val_dice"]
    block = steps.manifest_fields({}, [0.5] * 3, [0.5] * 3)["inference"]
    assert isinstance(block, InferenceBlock) and block.preprocess.resize == "letterbox"

    updates = [(load(state_to_bytes(r.state)), r.sample_count) for r in (site_a, site_b)]
    combined = fedavg(updates)
    (a, _), (b, _) = updates
    running = "encoder.model.bn1.running_var"
    assert not np.allclose(a[running], b[running]), "each site saw its own images"
    np.testing.assert_allclose(combined[running], 0.4 * a[running] + 0.6 * b[running], rtol=1e-6)
    assert (combined[running] > 0).all()
    counter = "encoder.model.bn1.num_batches_tracked"
    assert combined[counter] == max(a[counter], b[counter]) and combined[counter].shape == ()

    averaged = build_model("unet_efficientnet_lite0", 2, source="random")
    load_global(averaged, to_bytes(combined))  # the bytes the hub stores
    with torch.no_grad():
        out = averaged.eval()(torch.zeros(1, 3, SIDE, SIDE))
    assert out.shape == (1, 2, SIDE, SIDE) and torch.isfinite(out).all()
