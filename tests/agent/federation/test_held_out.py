"""A finished cross-site model and the site's local model, both on the site's held-out images (issue 16, item 20).

A tiny synthetic federated run: a common starting model, the site's own round-1 model trained
from it, and a combined model; the hub's model store is a small HTTP server.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from pollen_agent.errors import UserError
from pollen_agent.jobs.federated import state_to_bytes, train_local
from pollen_agent.jobs.held_out import run_held_out
from pollen_agent.ml.zoo import build_model
from pollen_contracts.comparison import VERDICTS
from pollen_contracts.specs import HeldOutSpec
from tests.agent.federation.test_federated_round import _squares

LABELS = ["top", "bottom"]
SPLITS = ("train",) * 6 + ("val",) * 2 + ("test",) * 4


class _Hub:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def get_all(self, path: str) -> list[dict[str, Any]]:
        assert path == "agent/datasets/7/training-images/"
        return self.rows


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def site(storage):
    """40 labelled squares in the site's storage: 24 to train, 8 to tune, 8 held out."""
    images, labels = _squares(40, 3)
    rows = []
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        key = f"datasets/7/images/{i}.png"
        storage.put_bytes(key, _png(image))
        split = SPLITS[(i // 2) % len(SPLITS)]
        rows.append({"id": i, "storage_key": key, "label": LABELS[label], "split": split})
    train = [(images[r["id"]], labels[r["id"]]) for r in rows if r["split"] == "train"]
    val = [(images[r["id"]], labels[r["id"]]) for r in rows if r["split"] == "val"]
    return (
        _Hub(rows),
        tuple(map(list, zip(*train, strict=True))),
        tuple(map(list, zip(*val, strict=True))),
    )


def _weights(hub_store, name: str, state: dict[str, Any]) -> dict[str, str]:
    root, url = hub_store
    data = state_to_bytes(state)
    (root / name).write_bytes(data)
    return {"kind": "hub_file", "url": f"{url}/{name}", "sha256": hashlib.sha256(data).hexdigest()}


@pytest.fixture
def models(site, hub_store):
    """The common start, this site's round-1 model (its images only) and a combined model."""
    _hub, train, val = site
    torch.manual_seed(0)
    start = build_model("small_cnn", 2, source="random")

    def trained(epochs: int) -> dict[str, Any]:
        model = build_model("small_cnn", 2, source="random")
        model.load_state_dict(start.state_dict())
        return train_local(
            model, train, val, architecture="small_cnn", input_size=24, epochs=epochs, lr=0.01
        ).state

    return {
        "local": _weights(hub_store, "local.safetensors", trained(1)),
        "federated": _weights(hub_store, "final.safetensors", trained(3)),
    }


def _spec(models: dict[str, Any], **extra: Any) -> HeldOutSpec:
    return HeldOutSpec.from_dict(
        {
            "federated_job_id": 1,
            "held_out_id": 1,
            "dataset_id": 7,
            "label_names": LABELS,
            "architecture": "small_cnn",
            "input_size": 24,
            "positive_class": "bottom",
            **models,
            **extra,
        }
    )


def _numbers_only(value: Any) -> None:
    if isinstance(value, dict):
        for item in value.values():
            _numbers_only(item)
    elif isinstance(value, list):
        assert len(value) <= 2, "an interval at most: nothing per image"
        for item in value:
            _numbers_only(item)
    else:
        assert value is None or isinstance(value, bool | int | float | str), value


def test_both_models_are_measured_on_the_held_out_images_only(site, models, storage, tmp_path):
    hub, _train, _val = site
    result = run_held_out(spec=_spec(models), hub=hub, storage=storage, work=tmp_path).to_dict()
    _numbers_only(result)
    held_out = sum(r["split"] == "test" for r in hub.rows)
    for name in ("federated", "local"):
        model = result[name]
        assert model["n"] == held_out == 8, "the test split, never training or tuning images"
        assert model["class_counts"] == {"top": 4, "bottom": 4}
        assert model["positive_class"] == "bottom"
        assert 0 <= model["auc"] <= 1
        low, high = model["auc_ci"]
        assert low <= model["auc"] <= high
        assert model["sensitivity_ci"][0] <= model["sensitivity"] <= model["sensitivity_ci"][1]
    comparison = result["comparison"]
    assert comparison["verdict"] in VERDICTS
    difference = result["federated"]["auc"] - result["local"]["auc"]
    assert comparison["auc_difference"] == pytest.approx(difference)


def test_the_same_weights_as_local_model_make_no_difference(site, models, storage, tmp_path):
    hub, _train, _val = site
    spec = _spec({"federated": models["local"], "local": models["local"]})
    result = run_held_out(spec=spec, hub=hub, storage=storage, work=tmp_path).to_dict()
    assert result["federated"] == result["local"]
    assert result["comparison"]["auc_difference"] == 0
    assert result["comparison"]["auc_difference_ci"] == [0.0, 0.0]


def test_a_site_without_a_local_model_gets_the_federated_model_alone(
    site, models, storage, tmp_path
):
    hub, _train, _val = site
    spec = _spec({"federated": models["federated"], "local": None})
    result = run_held_out(spec=spec, hub=hub, storage=storage, work=tmp_path).to_dict()
    assert result.get("local") is None and result.get("comparison") is None
    assert result["federated"]["n"] == 8 and result["federated"]["auc_ci"] is not None


def test_a_dataset_without_held_out_images_is_a_clear_error(site, models, storage, tmp_path):
    hub, _train, _val = site
    hub.rows = [{**r, "split": "train" if r["split"] == "test" else r["split"]} for r in hub.rows]
    with pytest.raises(UserError) as caught:
        run_held_out(spec=_spec(models), hub=hub, storage=storage, work=tmp_path)
    assert caught.value.code == "no_held_out_images"
