"""Prediction API: what a hospital system waits for, versus a bare forward pass of the same model.

A real hub (gunicorn, PostgreSQL, Redis) and a real site agent (its own process, S3 storage)
run on this machine (``bench/stack.py``). Site ``bench-api-pub`` publishes EfficientNet-Lite0
(ImageNet weights, a fresh two-class head) through the real publish flow: its agent copies the
weights into the hub's store and the hub checks them. Site ``bench-api`` uploads BreastMNIST
test images through presigned URLs, then a hospital system there, with a site-scoped token,
times each request end to end: ``POST /api/v1/predictions/`` for one image, then
``GET /api/v1/predictions/{id}/?wait=30`` until it is final, one ``requests.Session`` per
client thread.

The baseline is ``bench/inference.py``'s bare forward pass of the same weights on the same
preprocessed image in this process, at the same concurrency. Beside it, the agent's own
timings (model load, inference) and the in-process ``predict`` show where the rest goes.
"""

from __future__ import annotations

import copy
import datetime as dt
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import fixtures
from bench.checks import BaselineCheckFailed, check_close
from bench.inference import ARCH, _measure, _variants, latency_rows
from bench.report import row
from bench.stack import HUB_THREADS, HUB_WORKERS, ApiClient, Stack, running_stack
from bench.stats import percentile, summarize
from tests.support.agent import wait_until
from tests.support.flows import upload_dataset

NAME = "prediction API"
CONSUMER, PUBLISHER = "bench-api", "bench-api-pub"
LABELS = ["malignant", "normal or benign"]  # BreastMNIST's classes 0 and 1
MODEL_KEY = "models/efficientnet-lite0-imagenet/"
WAIT_SECONDS = 30
REQUEST_DEADLINE = 120
FINAL = {"succeeded", "failed"}
# API variant -> (request flags, the in-process variant of bench/inference.py that does the same)
VARIANTS = {
    "predict": ({}, "predict"),
    "predict + heatmap": ({"heatmap": True}, "predict + Grad-CAM"),
    "predict + TTA": ({"tta": True}, "predict + TTA"),
}


def predict_once(client: ApiClient, body: dict[str, Any]) -> dict[str, Any]:
    """POST one prediction, then GET it with ``?wait=`` until it is final; its last body."""
    created = client.post("/api/v1/predictions/", body)
    if created.status_code != 202:
        raise BaselineCheckFailed(
            f"POST /api/v1/predictions/ answered {created.status_code}: {created.text[:300]}"
        )
    pk = created.json()["id"]
    deadline = time.monotonic() + REQUEST_DEADLINE
    while True:
        got = client.get(f"/api/v1/predictions/{pk}/?wait={WAIT_SECONDS}")
        if got.status_code != 200:
            raise BaselineCheckFailed(f"GET prediction {pk} answered {got.status_code}")
        answer: dict[str, Any] = got.json()
        if answer["status"] in FINAL:
            return answer
        if time.monotonic() > deadline:
            raise BaselineCheckFailed(
                f"prediction {pk} still {answer['status']} after the deadline"
            )


def check_answers(
    answers: dict[int, dict[str, Any]],
    reference: dict[int, np.ndarray],
    *,
    heatmap: bool,
    what: str,
) -> None:
    """Every prediction succeeded, with the probabilities the reference computed for its image
    (and a heatmap when one was asked for)."""
    if not answers or set(answers) - set(reference):
        raise BaselineCheckFailed(f"{what}: answers for images the reference did not see")
    for image_id, answer in answers.items():
        if answer["status"] != "succeeded":
            raise BaselineCheckFailed(
                f"{what}: prediction {answer['id']} ended {answer['status']} "
                f"({answer.get('error_code')}: {answer.get('message')})"
            )
        (item,) = answer["results"]
        if "error" in item:
            raise BaselineCheckFailed(f"{what}: image {image_id} failed: {item['error']}")
        probs = np.array([item["probabilities"][label] for label in answer["label_names"]])
        check_close(probs, reference[image_id], what=f"{what}: image {image_id} vs in-process")
        if heatmap and not (item.get("overlay_key") and item.get("overlay_url")):
            raise BaselineCheckFailed(f"{what}: image {image_id} came back without a heatmap")


def _publish(stack: Stack) -> int:
    """Publish the seeded model version to the consumer site; its published version's id."""
    publisher = stack.client(PUBLISHER)
    created = publisher.post(
        "/api/v1/marketplace/versions/",
        {
            "model_version": stack.seeded["model_version"],
            "name": "EfficientNet-Lite0 (ImageNet), benchmark",
            "visibility": "named",
            "named_sites": [CONSUMER],
            "intended_use": "Benchmark of the prediction API only.",
        },
    )
    assert created.status_code == 201, created.text[:300]
    pk = int(created.json()["id"])

    def settled() -> dict[str, Any] | None:
        body: dict[str, Any] = publisher.get(f"/api/v1/marketplace/versions/{pk}/").json()
        return body if body["status"] != "pending" else None

    version = wait_until(settled, timeout=120, what="the publication", interval=0.2)
    assert version["status"] == "published", (version["error_code"], version["message"])
    return pk


def _upload(stack: Stack, images: np.ndarray, labels: np.ndarray) -> list[int]:
    """The test images, as 28 px PNGs through the presigned-URL flow; their ids, in order."""
    client = stack.client(CONSUMER)
    files = [
        (f"test-{i:03d}.png", LABELS[int(label)], fixtures.png_bytes(image, 28), f"P{i}")
        for i, (image, label) in enumerate(zip(images, labels, strict=True))
    ]
    dataset = upload_dataset(  # only predicted on, never trained: its splits do not matter
        client,
        site=CONSUMER,
        name="BreastMNIST test",
        files=files,
        label_names=LABELS,
        pin_splits=False,
    )
    listed = client.get(f"/api/v1/datasets/{dataset}/images/?page_size=100").json()["results"]
    by_name = {item["filename"]: item for item in listed}
    rejected = [f for f, *_ in files if by_name[f]["status"] != "accepted"]
    if rejected:
        raise BaselineCheckFailed(f"the site agent rejected {rejected[:5]}")
    return [int(by_name[f]["id"]) for f, *_ in files]


def _model(size: int, work: Path, storage_cfg: dict[str, Any]) -> tuple[Any, Any]:
    """The model a training job would leave in the publisher's storage, and the same weights
    loaded back here for the baseline."""
    import torch

    from pollen_agent.ml.artifact import load_model_folder, save_model_folder
    from pollen_agent.ml.manifest import MANIFEST_NAME, WEIGHTS_NAME
    from pollen_agent.ml.zoo import build_model
    from pollen_agent.storage.factory import storage_from_config

    torch.manual_seed(0)
    folder = work / "model"
    save_model_folder(
        folder,
        build_model(ARCH, len(LABELS), source="imagenet"),
        {"architecture": ARCH, "label_names": LABELS, "input_size": size},
    )
    storage = storage_from_config(storage_cfg)
    for name in (MANIFEST_NAME, WEIGHTS_NAME):
        storage.put_bytes(MODEL_KEY + name, (folder / name).read_bytes())
    return load_model_folder(folder)


def _references(model: Any, manifest: Any, images: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per image, what the API must answer: the bare forward's probabilities, and with TTA the
    in-process ``predict``'s."""
    import torch

    from pollen_agent.ml.inference import manifest_policy
    from pollen_agent.ml.predict import predict, preprocess

    common = {"input_size": manifest.input_size, "mean": manifest.mean, "std": manifest.std}
    tensors = torch.stack([preprocess(image, **common) for image in images])
    with torch.inference_mode():
        bare = torch.softmax(model(tensors), dim=1).numpy()
    # With TTA the API averages the views the model's manifest names.
    tta = predict(model, images, **common, tta=manifest_policy(manifest).tta, device="cpu")
    return {"bare": bare, "tta": tta}


class _Samples:
    """Per repetition: p50, p99, throughput, and medians of the breakdown (all in ms)."""

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {}

    def add(self, **values: float) -> None:
        for key, value in values.items():
            self.values.setdefault(key, []).append(value)

    def add_latencies(self, latencies: list[float], rps: float) -> None:
        self.add(p50=percentile(latencies, 50), p99=percentile(latencies, 99), rps=rps)


@dataclass
class _Call:
    """One request as the client saw it: wall-clock times (s) and the prediction's last body."""

    sent: float
    received: float
    answer: dict[str, Any]


def _measure_api(
    clients: list[ApiClient], version: int, ids: list[int], flags: dict[str, bool], concurrency: int
) -> tuple[list[float], float, dict[int, _Call]]:
    """Latencies (ms), throughput, and each image's request."""
    calls: dict[int, _Call] = {}

    def call(client: ApiClient, image_id: int, _: Any) -> None:
        body = {"published_version": version, "site": CONSUMER, **flags}
        sent = time.time()
        answer = predict_once(client, {**body, "images": [{"image_id": image_id}]})
        calls[image_id] = _Call(sent, time.time(), answer)

    latencies, rps = _measure(call, clients, ids, ids, concurrency)  # clients: one per thread
    return latencies, rps, calls


def _breakdown(calls: dict[int, _Call]) -> dict[str, float]:
    """Medians (ms) of where each request's time went, from the hub's timestamps (same clock:
    same machine) and the agent's own timings: the POST until the row exists; the hop from
    the row to the agent and back (queue, claim, report); the agent's model load and its
    inference; and from the result to the client (the wait's wake-up and the response)."""
    parts: dict[str, list[float]] = {"post": [], "hop": [], "load": [], "infer": [], "back": []}
    for call in calls.values():
        timings = call.answer["timings"]
        created = dt.datetime.fromisoformat(call.answer["created_at"]).timestamp()
        finished = dt.datetime.fromisoformat(call.answer["finished_at"]).timestamp()
        parts["post"].append((created - call.sent) * 1000)
        parts["hop"].append((finished - created - timings["total"]) * 1000)
        parts["load"].append(timings["load_model"] * 1000)
        parts["infer"].append(timings["inference"] * 1000)
        parts["back"].append((call.received - finished) * 1000)
    return {key: statistics.median(values) for key, values in parts.items()}


def _run_concurrency(
    stack: Stack,
    *,
    version: int,
    ids: list[int],
    local: dict[str, Any],
    concurrency: int,
    repeat: int,
) -> dict[str, _Samples]:
    models = [copy.deepcopy(local["model"]) for _ in range(concurrency)]
    clients = [stack.client(CONSUMER) for _ in range(concurrency)]
    images, tensors, refs = local["images"], local["tensors"], local["refs"]
    in_process = _variants(local["spec"], local["size"])
    samples = {name: _Samples() for name in (*VARIANTS, "bare")}
    index = {image_id: i for i, image_id in enumerate(ids)}
    for _ in range(repeat):
        in_process["bare"](models[0], images[0], tensors[0])  # warm the kernels
        latencies, rps = _measure(in_process["bare"], models, images, tensors, concurrency)
        samples["bare"].add_latencies(latencies, rps)
        for name, (flags, local_name) in VARIANTS.items():
            latencies, rps, calls = _measure_api(clients, version, ids, flags, concurrency)
            reference = refs["tta"] if flags.get("tta") else refs["bare"]
            check_answers(
                {image_id: call.answer for image_id, call in calls.items()},
                {image_id: reference[index[image_id]] for image_id in ids},
                heatmap=bool(flags.get("heatmap")),
                what=f"{name}, concurrency {concurrency}",
            )
            samples[name].add_latencies(latencies, rps)
            samples[name].add(**_breakdown(calls))
            in_process[local_name](models[0], images[0], tensors[0])
            local_latencies, _ = _measure(in_process[local_name], models, images, tensors, 1)
            samples[name].add(local=statistics.median(local_latencies))
    return samples


def _parts(ours: dict[str, list[float]], name: str) -> str:
    def ms(key: str) -> str:
        return summarize(ours[key]).text() + " ms"

    heatmap = "heatmap" in name
    work = "S3 read, forward" + (", Grad-CAM, overlay to S3" if heatmap else "")
    back = "wait wake-up, " + ("overlay links from the agent, " if heatmap else "") + "response"
    return (
        f"POST until the row exists {ms('post')}; queue + claim + report {ms('hop')}; "
        f"agent model load {ms('load')}; agent inference ({work}) {ms('infer')}; "
        f"result to client ({back}) {ms('back')}; "
        f"in-process {VARIANTS[name][1]} {ms('local')}"
    )


def _rows(samples: dict[str, _Samples], setting: str) -> list[dict[str, Any]]:
    bare = samples["bare"].values
    rows = []
    for name in VARIANTS:
        ours = samples[name].values
        how = "(client: POST + GET ?wait) vs bare forward"
        rows.extend(latency_rows(NAME, setting, name, ours, bare, how=how))
        rows.append(row(NAME, setting, f"{name}: where a request's time goes", _parts(ours, name)))
    return rows


def _since(started: float) -> str:
    return f"{time.perf_counter() - started:.0f} s"


def _progress(message: str) -> None:
    print(f"[bench] {NAME}: {message}", file=sys.stderr, flush=True)


def run(quick: bool, repeat: int) -> list[dict[str, Any]]:
    from pollen_agent.ml.predict import preprocess
    from pollen_agent.ml.zoo import get_spec

    size = 64 if quick else fixtures.recommended_input_size(ARCH)
    per_c = {1: 4 if quick else 12, 8: 8 if quick else 16}
    test, labels, source = fixtures.medmnist("breastmnist", "test")
    n_images = max(per_c.values())
    run_prefix = f"{fixtures.RUN_PREFIX}/predict-api"
    storages = {
        CONSUMER: fixtures.site_storage_config("site-a", f"{run_prefix}/{CONSUMER}/"),
        PUBLISHER: fixtures.site_storage_config("site-b", f"{run_prefix}/{PUBLISHER}/"),
    }
    with tempfile.TemporaryDirectory(prefix="pollen-bench-model-") as work:
        model, manifest = _model(size, Path(work), storages[PUBLISHER])
    images = list(test[:n_images])
    common = {"input_size": size, "mean": manifest.mean, "std": manifest.std}
    local = {
        "model": model,
        "spec": get_spec(ARCH),
        "size": size,
        "images": images,
        "tensors": [preprocess(image, **common).unsqueeze(0) for image in images],
        "refs": _references(model, manifest, images),
    }
    model_version = {
        "site": PUBLISHER,
        "name": "EfficientNet-Lite0 (ImageNet)",
        "architecture": ARCH,
        "label_names": LABELS,
        "input_size": size,
        "mean": manifest.mean,
        "std": manifest.std,
        "weights_sha256": manifest.weights_sha256,
        "storage_key": MODEL_KEY,
    }
    sites = {CONSUMER: "Bench Consumer Hospital", PUBLISHER: "Bench Publisher Hospital"}
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    # The agent runs on the CPU, like the baseline, on any machine (on CUDA it would predict in
    # reduced precision, and the comparison would be between two devices).
    cpu_only = {"CUDA_VISIBLE_DEVICES": ""}
    with running_stack(
        sites=sites, storages=storages, model_version=model_version, agent_env=cpu_only
    ) as stack:
        _progress(f"hub and agent ready ({_since(started)})")
        version = _publish(stack)
        ids = _upload(stack, test[:n_images], labels[:n_images].reshape(-1))
        _progress(f"published, {n_images} images uploaded and ingested ({_since(started)})")
        warm = stack.client(CONSUMER)
        for flags, _ in VARIANTS.values():  # the agent's first model load and kernel set-up
            body = {"published_version": version, "site": CONSUMER, **flags}
            predict_once(warm, {**body, "images": [{"image_id": ids[0]}]})
        for concurrency, n in per_c.items():
            samples = _run_concurrency(
                stack,
                version=version,
                ids=ids[:n],
                local={**local, "images": images[:n], "tensors": local["tensors"][:n]},
                concurrency=concurrency,
                repeat=repeat,
            )
            setting = (
                f"{ARCH} {size}px published by another site, 1 image per request ({source}, "
                f"28 px PNG on S3), concurrency {concurrency}, {n} requests, {repeat} reps; "
                f"hub gunicorn {HUB_WORKERS}x{HUB_THREADS} threads, agent 1 infer worker (CPU)"
            )
            rows.extend(_rows(samples, setting))
            _progress(f"concurrency {concurrency} measured ({_since(started)})")
    return rows
