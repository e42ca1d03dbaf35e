"""recipe.train with the segmentation objective: real BUSI images, resume, refusals."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from pollen_agent.errors import UserError
from pollen_agent.ml.recipe import NoCallbacks, train
from pollen_agent.ml.segmentation.data import SegmentationDataset
from pollen_agent.ml.segmentation.infer import predict_segmentations
from pollen_agent.ml.segmentation.metrics import segmentation_metrics
from pollen_agent.ml.segmentation.objective import SegmentationObjective, train_config
from pollen_agent.ml.zoo import build_model, get_spec
from tests.agent.ml.segmentation.conftest import LESION, blob_images

ARCH = "unet_efficientnet_lite0"
SPEC = get_spec(ARCH)


def datasets(images, masks, config, n_train: int):
    def make(part: slice, augment: bool) -> SegmentationDataset:
        return SegmentationDataset(
            images[part],
            masks[part],
            input_size=config.input_size,
            mean=SPEC.mean,
            std=SPEC.std,
            augment=augment,
            seed=config.seed,
        )

    return make(slice(0, n_train), True), make(slice(n_train, None), False)


class Recorder(NoCallbacks):
    def __init__(self) -> None:
        self.checkpoints: dict[int, dict] = {}
        self.val_metrics: dict[int, dict] = {}

    def on_epoch_end(self, epoch, train_loss, val_metrics, checkpoint):
        self.checkpoints[epoch] = _through_disk(checkpoint)
        self.val_metrics[epoch] = val_metrics


def _through_disk(checkpoint: dict) -> dict:
    # Checkpoints are stored at the site and must reload without pickled code.
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _start(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(ARCH, 2, source="imagenet")


def test_a_unet_trains_on_busi_and_resumes_exactly(busi):
    images, masks, _ = busi
    config = train_config(input_size=96, epochs=2, batch_size=8, seed=1)
    straight = Recorder()
    result = train(
        _start(),
        *datasets(images, masks, config, 16),
        config,
        straight,
        objective=SegmentationObjective(LESION),
    )
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert set(result.history[0]) == {
        "epoch",
        "train_loss",
        "val_loss",
        "val_dice",
        "val_lesion_dice",
        "val_iou",
    }
    assert result.history[1]["train_loss"] < result.history[0]["train_loss"]
    best = result.best_val_metrics
    assert 0.0 <= best["dice"] <= 1.0 and best["images"] == len(images) - 16
    assert best["dice_se"] > 0 and np.isfinite(best["loss"])

    # The kept model scores on validation what the run recorded, through the one prediction path.
    _, val = datasets(images, masks, config, 16)
    predicted = [
        p.mask for p in predict_segmentations(result.model, val.images, policy=val.policy("none"))
    ]
    assert segmentation_metrics(predicted, val.masks, LESION)["dice"] == pytest.approx(best["dice"])

    resumed = Recorder()
    train(
        _start(seed=99),  # another start: the weights must come from the checkpoint
        *datasets(images, masks, config, 16),
        config,
        resumed,
        resume=straight.checkpoints[1],
        objective=SegmentationObjective(LESION),
    )
    a, b = straight.checkpoints[2]["model"], resumed.checkpoints[2]["model"]
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)
    for row, again in zip(
        straight.checkpoints[2]["history"], resumed.checkpoints[2]["history"], strict=True
    ):
        assert row == pytest.approx(again)


def _refusal(images, masks, *, labels=LESION, classes=2, size=32) -> UserError:
    config = train_config(input_size=size, epochs=1, batch_size=2)
    torch.manual_seed(0)
    with pytest.raises(UserError) as error:
        train(
            build_model(ARCH, classes, source="random"),
            *datasets(images, masks, config, 4),
            config,
            objective=SegmentationObjective(labels),
        )
    return error.value


def test_all_empty_training_masks_are_refused():
    images, masks = blob_images(6, seed=1)
    error = _refusal(images, [np.zeros_like(m) for m in masks])
    assert error.code == "masks_empty"


def test_mask_values_outside_the_label_map_are_refused():
    images, masks = blob_images(6, seed=2)
    masks[1] = masks[1] * 3
    error = _refusal(images, masks)
    assert error.code == "invalid_mask" and "[3]" in str(error)


def test_a_class_no_training_mask_draws_is_refused():
    images, masks = blob_images(6, seed=3)
    error = _refusal(images, masks, labels=["background", "lesion", "cyst"], classes=3)
    assert error.code == "label_missing_from_split" and "'cyst'" in str(error)


def test_a_model_with_the_wrong_number_of_outputs_is_refused():
    images, masks = blob_images(6, seed=4)
    error = _refusal(images, masks, classes=3)
    assert error.code == "weights_mismatch"


def test_an_input_size_a_unet_cannot_read_is_refused():
    images, masks = blob_images(6, seed=5)
    assert _refusal(images, masks, size=40).code == "invalid_input_size"
