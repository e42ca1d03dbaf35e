"""Marketplace fixtures: trained models (metadata only) and a stand-in for the agent's copy step.

The copy step talks to the real agent API with a real site-agent token; only the bytes it
puts in the model store are made here (the end-to-end tests use a real agent for that).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from rest_framework.test import APIClient

from pollen.datasets.models import Dataset, Image, ImageStatus
from pollen.training.models import Job, JobStatus, ModelVersion


def weights_bytes(seed: int = 0) -> bytes:
    from safetensors.numpy import save

    rng = np.random.default_rng(seed)
    return save({"head.weight": rng.standard_normal((2, 4)).astype(np.float32)})


@dataclass
class Trained:
    job: Job
    version: ModelVersion
    weights: bytes
    manifest: bytes


@pytest.fixture
def store(settings, tmp_path):
    """A fresh embedded model store under tmp_path."""
    from pollen.core.model_store import model_store

    settings.LOCAL_STORAGE_ROOT = tmp_path / "storage"
    model_store.cache_clear()
    yield model_store()
    model_store.cache_clear()


@pytest.fixture
def train():
    """A finished (or failed) training job and, when it succeeded, its model version."""

    def make(
        site: Any,
        *,
        name: str = "Pneumonia screen",
        status: str = JobStatus.SUCCEEDED,
        parent: ModelVersion | None = None,
        auc: float = 0.9,
        modality: str = "xray",
        labels: tuple[str, ...] = ("normal", "pneumonia"),
        seed: int = 0,
    ) -> Trained:
        dataset, _ = Dataset.objects.get_or_create(
            site=site,
            name=f"{name} data {seed}",
            defaults={"label_names": list(labels), "modality": modality},
        )
        job = Job.objects.create(
            site=site, dataset=dataset, name=name, status=status, label_names=list(labels)
        )
        weights = weights_bytes(seed)
        sha = hashlib.sha256(weights).hexdigest()
        manifest = json.dumps({"weights_sha256": sha, "format_version": 1}).encode()
        if status != JobStatus.SUCCEEDED:
            return Trained(job=job, version=None, weights=weights, manifest=manifest)  # type: ignore[arg-type]
        version = ModelVersion.objects.create(
            site=site,
            job=job,
            name=name,
            architecture="small_cnn",
            label_names=list(labels),
            input_size=32,
            mean=[0.5, 0.5, 0.5],
            std=[0.5, 0.5, 0.5],
            weights_sha256=sha,
            storage_key=f"models/job-{job.pk}/",
            parent=parent,
            licence="Trained from random initialisation.",
            training_summary={
                "images_per_split": {
                    "train": {"normal": 30, "pneumonia": 30},
                    "test": {"normal": 5, "pneumonia": 5},
                }
            },
            metrics={
                "auc": auc,
                "accuracy": 0.8,
                "n": 10,
                "samples": [{"image_id": 1, "overlay_key": "jobs/1/samples/1.png"}],
            },
        )
        return Trained(job=job, version=version, weights=weights, manifest=manifest)

    return make


def agent_client(site: Any) -> APIClient:
    from pollen.accounts.services import token_create

    _, plaintext = token_create(caller=None, site=site, name="agent", kind="agent")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


def copy_as_agent(
    site: Any,
    version_id: int,
    trained: Trained,
    *,
    weights: bytes | None = None,
    claim_id: str = "delivery-1",
) -> dict[str, Any]:
    """Do what the site agent does: claim, put the files at the presigned keys, confirm."""
    from pollen.core.model_store import model_store
    from pollen.marketplace.models import PublishedVersion

    agent = agent_client(site)
    base = f"/api/v1/agent/marketplace/publications/{version_id}"
    claim = agent.post(f"{base}/claim/", {"claim_id": claim_id, "worker": "w1"}, format="json")
    assert claim.status_code == 200, claim.content
    assert claim.json()["claimed"], claim.json()
    row = PublishedVersion.objects.get(pk=version_id)
    data = weights if weights is not None else trained.weights
    model_store().put_bytes(row.weights_key, data)
    model_store().put_bytes(row.manifest_key, trained.manifest)
    done = agent.post(
        f"{base}/complete/",
        {
            "claim_id": claim_id,
            "weights_sha256": hashlib.sha256(data).hexdigest(),
            "manifest_sha256": hashlib.sha256(trained.manifest).hexdigest(),
            "weights_bytes": len(data),
        },
        format="json",
    )
    assert done.status_code == 200, done.content
    return {"claim": claim.json(), "done": done.json()}


@pytest.fixture
def publish(client_for, store):
    """Publish a trained model through the API and complete the copy like an agent."""

    def run(persona: Any, trained: Trained, **body: Any) -> dict[str, Any]:
        response = client_for(persona).post(
            "/api/v1/marketplace/versions/",
            {"model_version": trained.version.pk, **body},
            format="json",
        )
        assert response.status_code == 201, response.content
        version = response.json()
        copy_as_agent(persona.site, version["id"], trained)
        return version

    return run


@pytest.fixture
def site_images():
    """Accepted image rows (metadata only) in a dataset at a site."""

    def make(site: Any, n: int = 3, labels: tuple[str, ...] = ("normal", "pneumonia")) -> Dataset:
        dataset = Dataset.objects.create(
            site=site, name=f"incoming-{Dataset.objects.count()}", label_names=list(labels)
        )
        Image.objects.bulk_create(
            Image(
                dataset=dataset,
                filename=f"{i}.png",
                storage_key=f"datasets/{dataset.pk}/images/{i}.png",
                status=ImageStatus.ACCEPTED,
                label=labels[i % len(labels)],
                patient_id=f"P{i}",
                split="test",
                sha256=f"{i:064x}",
                width=40,
                height=40,
            )
            for i in range(n)
        )
        return dataset

    return make


def png_bytes(size: int = 40) -> bytes:
    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.fromarray(np.zeros((size, size), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def labelled_dataset():
    """A dataset ready for training: accepted, labelled rows split by patient."""

    def make(site: Any, n: int = 40, labels: tuple[str, ...] = ("normal", "pneumonia")) -> Dataset:
        dataset = Dataset.objects.create(site=site, name="to fine-tune", label_names=list(labels))
        Image.objects.bulk_create(
            Image(
                dataset=dataset,
                filename=f"{i}.png",
                storage_key=f"datasets/{dataset.pk}/images/{i}.png",
                status=ImageStatus.ACCEPTED,
                label=labels[i % len(labels)],
                patient_id=f"P{i}",
                sha256=f"{i:064x}",
                width=40,
                height=40,
                split=("val", "test", "train", "train", "train")[i % 5],
            )
            for i in range(n)
        )
        return dataset

    return make
