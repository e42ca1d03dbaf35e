"""After a fine-tune the agent measures the parent model on the same check images."""

from __future__ import annotations

import numpy as np
import torch

from pollen_agent.jobs.parent_check import parent_comparison
from pollen_agent.ml.artifact import save_model_folder
from pollen_agent.ml.manifest import MANIFEST_NAME, WEIGHTS_NAME
from pollen_agent.ml.zoo import build_model
from pollen_contracts.specs import TrainingSpec

# 40 check images: label 0 then label 1, in the child's label order.
CHECK_LABELS = [0] * 20 + [1] * 20


def _parent_folder(tmp_path, storage, labels: list[str]) -> dict:
    torch.manual_seed(0)
    folder = tmp_path / "parent"
    manifest = save_model_folder(
        folder,
        build_model("small_cnn", len(labels), source="random"),
        {"architecture": "small_cnn", "label_names": labels, "input_size": 32},
    )
    for name in (MANIFEST_NAME, WEIGHTS_NAME):
        storage.put_bytes(f"models/job-1/{name}", (folder / name).read_bytes())
    return {"kind": "site_model", "key": "models/job-1/", "sha256": manifest.weights_sha256}


def _spec(weights: dict, label_names: list[str], *, parent: bool = True) -> TrainingSpec:
    """A fine-tune's spec as the hub's claim sends it."""
    return TrainingSpec.from_dict(
        {
            "job_id": 7,
            "attempt": 0,
            "recipe": "standard",
            "dataset_id": 1,
            "label_names": label_names,
            "architecture": "small_cnn",
            "input_size": 32,
            "weights": weights,
            "config": {"seed": 0},
            "checkpoint_key": "jobs/7/checkpoint.pt",
            "samples_prefix": "jobs/7/samples/",
            "model_key": "models/job-7/",
            "lease_seconds": 120,
            "starting_point": "model-version-3",
            "licence": "",
            "parent": (
                {"model_version_id": 3, "weights_sha256": weights.get("sha256"), "site": "a"}
                if parent
                else None
            ),
        }
    )


def _raw_parent_output(model) -> np.ndarray:
    """What the parent's own head says, in the parent's label order ("top", "bottom")."""
    assert isinstance(model, torch.nn.Module) and not model.training
    top = np.array([0.1] * 20 + [0.9] * 20)  # sure of "top" exactly on the child's label 1
    return np.column_stack([top, 1 - top])


def _compare(tmp_path, storage, spec: TrainingSpec, child: np.ndarray | None = None) -> dict | None:
    return parent_comparison(
        spec,
        storage,
        tmp_path,
        child_probs=np.full((40, 2), 0.5) if child is None else child,
        labels=CHECK_LABELS,
        predict=_raw_parent_output,
    )


def test_the_parent_is_read_in_the_childs_label_order_and_compared(tmp_path, storage):
    weights = _parent_folder(tmp_path, storage, ["top", "bottom"])
    child = np.full((40, 2), 0.5)  # tells nothing apart
    result = _compare(tmp_path, storage, _spec(weights, ["bottom", "top"]), child)
    assert result is not None
    assert result["parent"]["auc"] == 1.0, "the parent's columns follow the child's labels"
    assert result["child"]["auc"] == 0.5
    assert result["verdict"] == "worse"
    assert result["parent_model_version"] == 3


def test_a_parent_with_other_labels_is_not_compared_and_says_why(tmp_path, storage):
    weights = _parent_folder(tmp_path, storage, ["cat", "dog"])
    result = _compare(tmp_path, storage, _spec(weights, ["bottom", "top"]))
    assert result is not None and result["verdict"] == "not_compared"
    assert "cat, dog" in result["reason"]


def test_a_missing_parent_is_not_compared_rather_than_failing_the_job(tmp_path, storage):
    weights = {"kind": "site_model", "key": "models/gone/", "sha256": "0" * 64}
    result = _compare(tmp_path, storage, _spec(weights, ["bottom", "top"]))
    assert result is not None and result["verdict"] == "not_compared"
    assert "could not be loaded" in result["reason"]


def test_a_model_trained_from_imagenet_has_no_parent_to_compare(tmp_path, storage):
    spec = _spec({"kind": "imagenet"}, ["bottom", "top"], parent=False)
    assert _compare(tmp_path, storage, spec) is None
