"""Marketplace jobs at the site, without a hub: publish copies, predictions, tampered weights, export.

A small stdlib HTTP server stands in for the hub's model store behind presigned URLs.
"""

from __future__ import annotations

import hashlib
import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from torch import nn

from pollen_agent.errors import UserError
from pollen_agent.jobs import model_source, predict
from pollen_agent.jobs.export import run_export
from pollen_agent.jobs.predict import run_prediction
from pollen_agent.jobs.publish import run_publication
from pollen_agent.ml.artifact import save_model_folder
from pollen_agent.ml.manifest import MANIFEST_NAME, WEIGHTS_NAME
from pollen_agent.ml.zoo import build_model
from pollen_contracts.specs import ExportSpec, PredictionSpec, PublicationSpec
from pollen_contracts.weights import WeightsSpec


class _Store(BaseHTTPRequestHandler):
    root: Path

    def do_GET(self) -> None:
        path = self.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_response(404)
            self.end_headers()
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self) -> None:
        path = self.root / self.path.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(autouse=True)
def _no_models_kept_between_tests():
    predict.clear_model_cache()
    yield
    predict.clear_model_cache()


@pytest.fixture
def hub_store(tmp_path):
    root = tmp_path / "hub-store"
    root.mkdir()
    handler = type("Handler", (_Store,), {"root": root})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def site_model(tmp_path, storage):
    """A small_cnn model folder in the site's storage, as a training job leaves it."""
    torch.manual_seed(0)
    folder = tmp_path / "model"
    manifest = save_model_folder(
        folder,
        build_model("small_cnn", 2, source="random"),
        {"architecture": "small_cnn", "label_names": ["top", "bottom"], "input_size": 32},
    )
    for name in (MANIFEST_NAME, WEIGHTS_NAME):
        storage.put_bytes(f"models/job-1/{name}", (folder / name).read_bytes())
    return {
        "kind": "site_model",
        "key": "models/job-1/",
        "sha256": manifest.weights_sha256,
        "folder": folder,
    }


def _weights(described: dict) -> WeightsSpec:
    return WeightsSpec.from_dict(described)  # the fixture's extra "folder" is not part of it


def _model(weights: dict) -> dict:
    return {
        "architecture": "small_cnn",
        "label_names": ["top", "bottom"],
        "input_size": 32,
        "mean": [0.5],
        "std": [0.5],
        "weights": _weights(weights).to_dict(),
    }


def _predict(spec: dict, storage, work) -> dict:
    """The prediction job on a spec as the hub's claim sends it; its result as the hub gets it."""
    typed = PredictionSpec.from_dict({"prediction_id": 1, **spec, "model": _model(spec["model"])})
    return run_prediction(spec=typed, storage=storage, work=work).to_dict()


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _published(hub_store, site_model, *, tamper: bool = False) -> dict:
    root, url = hub_store
    weights = (site_model["folder"] / WEIGHTS_NAME).read_bytes()
    manifest = (site_model["folder"] / MANIFEST_NAME).read_bytes()
    (root / "w.safetensors").write_bytes(weights[:-4] + b"evil" if tamper else weights)
    (root / "m.json").write_bytes(manifest)
    return {
        "kind": "published",
        "url": f"{url}/w.safetensors",
        "sha256": site_model["sha256"],
        "manifest_url": f"{url}/m.json",
        "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
    }


def test_tampered_published_weights_are_refused_and_never_loaded(
    hub_store, site_model, storage, tmp_path, monkeypatch
):
    def must_not_load(*args, **kwargs):
        raise AssertionError("tampered weights were parsed")

    monkeypatch.setattr("pollen_agent.ml.artifact.load_model_folder", must_not_load)
    monkeypatch.setattr("safetensors.torch.load_file", must_not_load)
    with pytest.raises(UserError) as caught:
        model_source.load_model(
            _weights(_published(hub_store, site_model, tamper=True)), storage, tmp_path
        )
    assert caught.value.code == "checksum_mismatch"
    assert "not loaded" in caught.value.message
    assert not list(tmp_path.glob("model-*/weights.safetensors")), "the bad file is deleted"


def test_published_weights_that_match_are_loaded(hub_store, site_model, storage, tmp_path):
    model, manifest = model_source.load_model(
        _weights(_published(hub_store, site_model)), storage, tmp_path
    )
    assert manifest.label_names == ["top", "bottom"] and not model.training


def test_prediction_gives_probabilities_overlays_and_per_image_errors(
    site_model, storage, tmp_path
):
    rng = np.random.default_rng(0)
    storage.put_bytes("in/ok.png", _png(rng.integers(0, 255, (40, 40), dtype=np.uint8)))
    storage.put_bytes("in/tiny.png", _png(np.zeros((4, 4), dtype=np.uint8)))
    storage.put_bytes("in/not-an-image.png", b"hello")
    spec = {
        "model": site_model,
        "inputs": [
            {"image_id": 1, "key": "in/ok.png"},
            {"image_id": 2, "key": "in/tiny.png"},
            {"image_id": 3, "key": "in/not-an-image.png"},
            {"image_id": 4, "key": "in/missing.png"},
        ],
        "tta": True,
        "heatmap": True,
        "overlay_prefix": "predictions/7/",
    }
    answer = _predict(spec, storage, tmp_path)
    ok, tiny, junk, missing = answer["results"]
    assert set(ok["probabilities"]) == {"top", "bottom"}
    assert abs(sum(ok["probabilities"].values()) - 1) < 1e-5
    assert storage.get_bytes(ok["overlay_key"]).startswith(b"\x89PNG")
    assert ok["overlay_key"].startswith("predictions/7/")
    assert tiny["error"]["code"] == "image_too_small"
    assert junk["error"]["code"] == "unsupported_format"
    assert missing["error"]["code"] == "not_found"


def _one_image_spec(model: dict, storage) -> dict:
    storage.put_bytes("in/one.png", _png(np.full((40, 40), 90, dtype=np.uint8)))
    return {
        "model": model,
        "inputs": [{"image_id": 1, "key": "in/one.png"}],
        "tta": False,
        "heatmap": True,
        "overlay_prefix": "predictions/1/",
    }


def _counting_loads(monkeypatch) -> list[WeightsSpec]:
    loads: list[WeightsSpec] = []
    real = model_source.load_model

    def counted(model, storage, work):
        loads.append(model)
        return real(model, storage, work)

    monkeypatch.setattr(predict, "load_model", counted)
    return loads


def test_a_stream_of_predictions_loads_the_published_model_once(
    hub_store, site_model, storage, tmp_path, monkeypatch
):
    loads = _counting_loads(monkeypatch)
    published = _published(hub_store, site_model)
    first = _predict(_one_image_spec(published, storage), storage, tmp_path)
    # The next claim hands out fresh presigned URLs for the same weights.
    again = {**published, "url": published["url"] + "?2", "manifest_url": published["manifest_url"]}
    second = _predict(_one_image_spec(again, storage), storage, tmp_path)
    assert len(loads) == 1
    assert second["results"][0]["probabilities"] == first["results"][0]["probabilities"]
    assert second["timings"]["load_model"] < first["timings"]["load_model"]


def test_other_weights_are_loaded_and_only_the_latest_models_are_kept(
    hub_store, site_model, storage, tmp_path, monkeypatch
):
    loads = _counting_loads(monkeypatch)
    models = [
        {**site_model, "key": f"models/job-{n}/"} for n in range(1, predict.MODEL_CACHE_SIZE + 2)
    ]
    for model in models[1:]:
        for name in (MANIFEST_NAME, WEIGHTS_NAME):
            storage.put_bytes(model["key"] + name, storage.get_bytes(f"models/job-1/{name}"))
    # The newest is still kept; the oldest was let go and is loaded again.
    for model in [*models, models[-1], models[0]]:
        _predict(_one_image_spec(model, storage), storage, tmp_path)
    assert [m.key for m in loads] == [m["key"] for m in models] + [models[0]["key"]]


def test_a_tampered_copy_is_refused_and_never_kept(
    hub_store, site_model, storage, tmp_path, monkeypatch
):
    loads = _counting_loads(monkeypatch)
    tampered = _published(hub_store, site_model, tamper=True)
    with pytest.raises(UserError) as caught:
        _predict(_one_image_spec(tampered, storage), storage, tmp_path)
    assert caught.value.code == "checksum_mismatch"
    repaired = _published(hub_store, site_model)
    _predict(_one_image_spec(repaired, storage), storage, tmp_path)
    assert len(loads) == 2, "the refused copy was not kept: the repaired one is fetched again"


def test_a_large_image_goes_through_sliding_windows_with_a_slide_heatmap(
    site_model, storage, tmp_path, monkeypatch
):
    monkeypatch.setattr(predict, "LARGE_SIDE", 300)
    array = np.full((600, 700), 255, dtype=np.uint8)
    array[:300, :300] = np.random.default_rng(1).integers(0, 120, (300, 300), dtype=np.uint8)
    storage.put_bytes("in/slide.png", _png(array))
    spec = {
        "model": site_model,
        "inputs": [{"image_id": 9, "key": "in/slide.png"}],
        "tta": False,
        "heatmap": True,
        "overlay_prefix": "predictions/8/",
    }
    (result,) = _predict(spec, storage, tmp_path)["results"]
    window = result["sliding_window"]
    assert window["patches"] >= 1 and window["skipped_background"] >= 1
    overlay = PILImage.open(io.BytesIO(storage.get_bytes(result["overlay_key"])))
    assert overlay.size == (700, 600)


def test_heatmap_for_a_model_without_convolutions_is_refused(
    site_model, storage, tmp_path, monkeypatch
):
    class Flat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(3 * 32 * 32, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(x.flatten(1))

    real = model_source.load_model

    def flat_model(model, storage, work):
        _, manifest = real(model, storage, work)
        return Flat().eval(), manifest

    monkeypatch.setattr(predict, "load_model", flat_model)
    storage.put_bytes("in/ok.png", _png(np.zeros((40, 40), dtype=np.uint8)))
    spec = {
        "model": site_model,
        "inputs": [{"image_id": 1, "key": "in/ok.png"}],
        "tta": False,
        "heatmap": True,
        "overlay_prefix": "p/",
    }
    with pytest.raises(UserError) as caught:
        _predict(spec, storage, tmp_path)
    assert caught.value.code == "heatmap_unsupported"
    spec["heatmap"] = False
    assert "probabilities" in _predict(spec, storage, tmp_path)["results"][0]


def test_publication_checks_site_weights_then_puts_both_files(hub_store, site_model, storage):
    root, url = hub_store
    spec = {
        "published_version_id": 1,
        "storage_key": "models/job-1/",
        "weights_sha256": site_model["sha256"],
        "uploads": {
            "weights": {"url": f"{url}/pub/weights.safetensors", "method": "PUT", "headers": {}},
            "manifest": {"url": f"{url}/pub/manifest.json", "method": "PUT", "headers": {}},
        },
    }
    answer = run_publication(spec=PublicationSpec.from_dict(spec), storage=storage).to_dict()
    assert (
        hashlib.sha256((root / "pub/weights.safetensors").read_bytes()).hexdigest()
        == (site_model["sha256"])
    )
    assert (
        answer["manifest_sha256"]
        == hashlib.sha256((root / "pub/manifest.json").read_bytes()).hexdigest()
    )

    storage.put_bytes("models/job-1/weights.safetensors", b"changed at the site")
    (root / "pub/weights.safetensors").unlink()
    with pytest.raises(UserError) as caught:
        run_publication(spec=PublicationSpec.from_dict(spec), storage=storage)
    assert caught.value.code == "checksum_mismatch"
    assert not (root / "pub/weights.safetensors").exists(), "nothing leaves the site"


def test_onnx_export_is_checked_and_uploaded(hub_store, site_model, storage, tmp_path):
    pytest.importorskip("onnxruntime")
    root, url = hub_store
    spec = {
        "export_id": 1,
        "model": _model(site_model),
        "upload": {"url": f"{url}/exports/model.onnx", "method": "PUT", "headers": {}},
    }
    answer = run_export(spec=ExportSpec.from_dict(spec), storage=storage, work=tmp_path).to_dict()
    assert answer["max_abs_diff"] <= answer["atol"]
    assert (
        hashlib.sha256((root / "exports/model.onnx").read_bytes()).hexdigest() == answer["sha256"]
    )
