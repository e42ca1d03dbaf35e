"""One inference path: a training job's own test evaluation, a prediction and an evaluation at
a site give the very same probabilities for the same model and images, through the policy the
model's manifest records (a model trained with horizontal flips is averaged over them only)."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from pollen_agent.jobs import predict
from pollen_agent.jobs.classification import ClassificationSteps
from pollen_agent.jobs.evaluate import run_evaluation
from pollen_agent.jobs.images import load_splits
from pollen_agent.jobs.predict import run_prediction
from pollen_agent.ml import inference, metrics
from pollen_agent.ml.artifact import load_model_folder, save_model_folder
from pollen_agent.ml.manifest import MANIFEST_NAME, WEIGHTS_NAME
from pollen_agent.ml.zoo import build_model, get_spec
from pollen_contracts.specs import EvaluationSpec, PredictionSpec

LABELS = ["top", "bottom"]
INPUT_SIZE = 32


class _Hub:
    """The hub's answer to the one read these jobs make: the dataset's image rows."""

    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows

    def get_all(self, path: str) -> list[dict]:
        assert path == "agent/datasets/1/training-images/"
        return self.rows


def _png16(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(array.astype(np.uint16)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def model_folder(tmp_path, storage):
    torch.manual_seed(0)
    folder = tmp_path / "model"
    manifest = save_model_folder(
        folder,
        build_model("small_cnn", 2, source="random"),
        {"architecture": "small_cnn", "label_names": LABELS, "input_size": INPUT_SIZE},
    )
    for name in (MANIFEST_NAME, WEIGHTS_NAME):
        storage.put_bytes(f"models/job-1/{name}", (folder / name).read_bytes())
    return folder, {"kind": "site_model", "key": "models/job-1/", "sha256": manifest.weights_sha256}


@pytest.fixture
def rows(storage):
    # 16-bit images, so the intensity stretch is part of what must agree, and wider than the
    # kept size, so is the downsizing.
    rng = np.random.default_rng(3)
    rows = []
    for i, label in enumerate(LABELS, start=1):
        pixels = rng.integers(900, 40_000, size=(90, 70)) + 5_000 * i
        storage.put_bytes(f"datasets/1/{i}.png", _png16(pixels))
        rows.append(
            {"id": i, "storage_key": f"datasets/1/{i}.png", "label": label, "split": "test"}
        )
    return rows


def _model(weights: dict) -> dict:
    return {
        "architecture": "small_cnn",
        "label_names": LABELS,
        "input_size": INPUT_SIZE,
        "mean": [0.5],
        "std": [0.5],
        "weights": weights,
    }


def _evaluation_probs(model_spec, rows, storage, tmp_path, monkeypatch) -> tuple[np.ndarray, dict]:
    seen: list[np.ndarray] = []
    real = metrics.evaluate

    def spy(probs, *args, **kwargs):
        seen.append(np.asarray(probs))
        return real(probs, *args, **kwargs)

    monkeypatch.setattr(metrics, "evaluate", spy)
    spec = EvaluationSpec.from_dict(
        {"evaluation_id": 1, "model": _model(model_spec), "dataset_id": 1, "tta": True}
    )
    answer = run_evaluation(spec=spec, hub=_Hub(rows), storage=storage, work=tmp_path).to_dict()
    monkeypatch.setattr(metrics, "evaluate", real)
    return seen[0], answer["metrics"]


def test_job_evaluation_prediction_and_evaluation_at_a_site_give_identical_probabilities(
    model_folder, rows, storage, tmp_path, monkeypatch
):
    folder, model_spec = model_folder
    predict.clear_model_cache()

    # The training job's own check, on the model it just trained (loaded from its folder).
    model, manifest = load_model_folder(folder)
    splits = load_splits(storage, rows, LABELS, input_size=INPUT_SIZE, only=("test",))
    arch = get_spec("small_cnn")
    spec = SimpleNamespace(input_size=INPUT_SIZE, label_names=LABELS, job_id=1, positive_class=None)
    steps = ClassificationSteps(spec)  # type: ignore[arg-type]
    job = steps.evaluate(model, splits, arch.mean, arch.std)

    spec = PredictionSpec.from_dict(
        {
            "prediction_id": 1,
            "model": _model(model_spec),
            "inputs": [{"image_id": r["id"], "key": r["storage_key"]} for r in rows],
            "tta": True,
            "heatmap": False,
            "overlay_prefix": "predictions/1/",
        }
    )
    answer = run_prediction(spec=spec, storage=storage, work=tmp_path).to_dict()
    predicted = np.array([[r["probabilities"][name] for name in LABELS] for r in answer["results"]])
    at_site, site_metrics = _evaluation_probs(model_spec, rows, storage, tmp_path, monkeypatch)

    np.testing.assert_allclose(predicted, job["_probs"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(at_site, job["_probs"], rtol=0, atol=1e-6)
    # The images' answers are not all alike, so the comparison means something.
    assert abs(job["_probs"][0, 0] - job["_probs"][1, 0]) > 1e-4
    # Each number says how it was computed: the manifest's policy, flips only.
    assert manifest.inference is not None and manifest.inference.tta == "hflip"
    assert job["tta"] == site_metrics["tta"] == "hflip"


def test_the_views_are_the_manifests_not_the_eight_of_the_square(
    model_folder, rows, storage, tmp_path
):
    folder, _ = model_folder
    model, manifest = load_model_folder(folder)
    images = [
        np.asarray(PILImage.open(io.BytesIO(storage.get_bytes(r["storage_key"])))) for r in rows
    ]
    chosen = inference.manifest_policy(manifest)
    ours = inference.predict_probs(model, images, chosen)
    by_hand = []
    for views in ("none", "hflip", "d4"):
        by_hand.append(
            inference.predict_probs(
                model,
                images,
                inference.policy(
                    input_size=INPUT_SIZE, mean=manifest.mean, std=manifest.std, tta=views
                ),
            )
        )
    np.testing.assert_array_equal(ours, by_hand[1])
    assert np.abs(ours - by_hand[2]).max() > 1e-5  # d4 would have answered otherwise
