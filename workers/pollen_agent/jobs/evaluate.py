"""Evaluate a published model on the site's own labelled dataset: aggregate metrics only.

Every accepted image whose label the model knows is used (the model never saw this site's
images, so all of them are unseen). Per-image predictions never leave this function.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from pollen_agent.errors import UserError
from pollen_agent.hub_client import HubClient
from pollen_agent.jobs.images import READ_THREADS, _to_training_array, keep_side
from pollen_agent.jobs.model_source import load_model
from pollen_agent.open_maps import JsonRecord
from pollen_agent.storage.base import Storage
from pollen_contracts.reports import EvaluationResult
from pollen_contracts.specs import EvaluationSpec


def run_evaluation(
    *, spec: EvaluationSpec, hub: HubClient, storage: Storage, work: Path
) -> EvaluationResult:
    from pollen_agent.ml.inference import manifest_policy, predict_probs
    from pollen_agent.ml.metrics import evaluate

    started = time.perf_counter()
    model, manifest = load_model(spec.model.weights, storage, work)
    if manifest.task == "segmentation":
        from pollen_agent.jobs.outlines import run_outline_evaluation

        return run_outline_evaluation(
            spec=spec, hub=hub, storage=storage, model=model, manifest=manifest, started=started
        )
    index = {name: i for i, name in enumerate(manifest.label_names)}
    rows = hub.get_all(f"agent/datasets/{spec.dataset_id}/training-images/")
    usable = [r for r in rows if r["label"] in index]
    if not usable:
        raise UserError(
            "None of the dataset's images has a label this model knows.", code="no_matching_labels"
        )
    side = keep_side(manifest.input_size)
    images: list[np.ndarray] = []
    labels: list[int] = []
    unreadable = 0

    def read(row: JsonRecord) -> tuple[JsonRecord, np.ndarray | None]:
        try:
            return row, _to_training_array(storage.get_bytes(row["storage_key"]), keep_side=side)
        except UserError:
            return row, None

    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        for row, array in pool.map(read, usable):
            if array is None:
                unreadable += 1
                continue
            images.append(array)
            labels.append(index[row["label"]])
    # With TTA (the default) the views the model was trained to treat alike, as its manifest says.
    inference = manifest_policy(manifest, tta=spec.tta)
    probs = predict_probs(model, images, inference)
    # The finding the model was trained to look for: the hub's record, else its manifest's.
    finding = spec.positive_class or manifest.positive_class or None
    metrics = evaluate(
        probs, np.asarray(labels), list(manifest.label_names), positive_class=finding
    )
    metrics["skipped_images"] = {
        "unknown_label": len(rows) - len(usable),
        "unreadable": unreadable,
    }
    metrics["evaluated_on"] = "all accepted images with a label the model knows"
    # How the numbers were computed travels with them: a site table never mixes policies.
    metrics["tta"] = inference.tta
    metrics["seconds"] = round(time.perf_counter() - started, 3)
    return EvaluationResult(metrics=metrics)
