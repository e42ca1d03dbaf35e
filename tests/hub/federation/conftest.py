from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from pollen.datasets.models import Dataset, Image, ImageStatus, Mask
from pollen.federation import aggregation
from pollen.federation.history import update_key
from pollen.federation.models import FederatedJob
from pollen.zoo.builtin import ensure_builtin_entries
from pollen.zoo.models import ZooEntry
from pollen_contracts.specs import RoundClaimed
from tests.conftest import _person


@pytest.fixture
def site_c(db):
    from pollen.accounts.services import site_create

    return site_create(slug="site-c", name="Cottage Hospital")


@pytest.fixture
def admin_c(site_c):
    return _person("cora-admin", site_c, "admin")


@pytest.fixture
def clinician_c(site_c, admin_c):
    return _person("cody-clinician", site_c, "clinician")


def make_dataset(
    site: Any, *, n: int = 40, labels=("left", "right"), name: str = "squares"
) -> Dataset:
    """A dataset with accepted image rows (metadata only), split by patient."""
    dataset = Dataset.objects.create(site=site, name=name, label_names=list(labels))
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
            split=("val", "val", "test", "test")[i % 10] if i % 10 < 4 else "train",
        )
        for i in range(n)
    )
    return dataset


def make_masked_dataset(
    site: Any, *, n: int = 20, classes: tuple[str, ...] = ("lesion",), name: str = "lesions"
) -> Dataset:
    """A segmentation dataset: accepted images (metadata only), each with an accepted mask."""
    dataset = Dataset.objects.create(
        site=site, name=name, task="segmentation", mask_classes=list(classes)
    )
    images = Image.objects.bulk_create(
        Image(
            dataset=dataset,
            filename=f"{i}.png",
            storage_key=f"datasets/{dataset.pk}/images/{i}.png",
            status=ImageStatus.ACCEPTED,
            patient_id=f"P{i}",
            sha256=f"{i:064x}",
            width=64,
            height=64,
            split=("val", "test")[i % 2] if i % 5 == 0 else "train",
        )
        for i in range(n)
    )
    Mask.objects.bulk_create(
        Mask(
            image=image,
            status=ImageStatus.ACCEPTED,
            storage_key=f"datasets/{dataset.pk}/masks/{image.pk}.png",
        )
        for image in images
    )
    return dataset


@pytest.fixture
def model_store_dir(settings, tmp_path):
    """The hub's model store in a fresh folder (the store is built once per process)."""
    from pollen.core.model_store import model_store

    settings.LOCAL_STORAGE_ROOT = tmp_path / "storage"
    settings.LOCAL_STORAGE_ENABLED = True
    model_store.cache_clear()
    yield tmp_path / "storage"
    model_store.cache_clear()


@dataclass
class Sent:
    tasks: list[dict[str, Any]] = field(default_factory=list)

    def to(self, slug: str) -> list[dict[str, Any]]:
        return [t for t in self.tasks if t["site"] == slug]


@pytest.fixture
def sent(monkeypatch):
    """Tasks the hub queued for site agents (the broker is not under test here)."""
    record = Sent()

    def fake(task_name: str, payload: dict[str, Any], *, queue: str) -> None:
        assert queue == f"site.{payload['site']}.gpu"
        record.tasks.append({"task": task_name, **payload})

    monkeypatch.setattr("pollen.federation.round_dispatch.send_on_commit", fake)
    return record


def tensors(value: float, *, shape=(2, 3)) -> dict[str, np.ndarray]:
    return {
        "layer.weight": np.full(shape, value, dtype=np.float32),
        "layer.bias": np.full((shape[0],), value, dtype=np.float32),
        "bn.num_batches_tracked": np.array(int(value * 10), dtype=np.int64),
    }


def clock() -> None:
    """One tick of the hub's clock, as the running clock would do moments after a request."""
    from pollen.ops.clock import clock_tick

    assert clock_tick() is not None, "no other clock ticks in these tests"


class FakeAgent:
    """Drives the agent API of one site the way the real agent does (weights to the store first).

    The hub's clock ticks after each call, as it would within seconds: a round that a call
    made ready is combined then, never in the request itself.
    """

    def __init__(self, client: Any, slug: str, capture: Any) -> None:
        self.client, self.slug, self.capture = client, slug, capture

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        with self.capture(execute=True):
            response = self.client.post(f"/api/v1/agent/{path}", body, format="json")
            clock()
        return response

    def claim(self, job_id: int, number: int, claim_id: str = "c1") -> Any:
        response = self._post(
            f"federated-jobs/{job_id}/rounds/{number}/claim/", {"claim_id": claim_id, "worker": "w"}
        )
        if response.status_code == 200 and response.json().get("claimed"):
            # What the real agent does first: read the spec back through its contract type.
            spec = RoundClaimed.from_dict(response.json()).spec
            assert (spec.federated_job_id, spec.round) == (job_id, number)
        return response

    def send(
        self,
        job_id: int,
        number: int,
        weights: dict[str, np.ndarray],
        *,
        samples: int = 10,
        auc: float = 0.8,
        claim: bool = True,
        metrics: dict[str, Any] | None = None,
        **extra: Any,
    ) -> Any:
        """``metrics`` replaces a classifier's numbers; ``extra`` fields join the body."""
        from pollen.core.model_store import model_store, sha256_bytes

        if claim:
            self.claim(job_id, number)
        data = aggregation.to_bytes(weights)
        model_store().put_bytes(update_key(job_id, number, self.slug), data)
        body: dict[str, Any] = {"weights_sha256": sha256_bytes(data), "sample_count": samples}
        if number == 0:
            body["model"] = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
        else:
            body["metrics"] = metrics or {"val_auc": auc, "val_accuracy": 0.7, "val_count": 4}
        body |= extra
        return self._post(f"federated-jobs/{job_id}/rounds/{number}/update/", body)

    def fail(self, job_id: int, number: int, message: str = "out of memory") -> Any:
        return self._post(
            f"federated-jobs/{job_id}/rounds/{number}/fail/", {"code": "oom", "message": message}
        )


@pytest.fixture
def agent_for(token_client, django_capture_on_commit_callbacks):
    def make(site: Any) -> FakeAgent:
        return FakeAgent(
            token_client(site, kind="agent"), site.slug, django_capture_on_commit_callbacks
        )

    return make


@pytest.fixture
def queued(monkeypatch):
    """Held-out checks the hub queued for site agents."""
    tasks: list[dict[str, Any]] = []

    def fake(task_name: str, payload: dict[str, Any], *, queue: str) -> None:
        tasks.append({"task": task_name, "queue": queue, **payload})

    monkeypatch.setattr("pollen.federation.evaluation.send_on_commit", fake)
    return tasks


@pytest.fixture
def finished(client_for, admin_a, admin_c, sent, model_store_dir, agent_for, queued):
    """A one-round job between sites A and C that has just finished."""
    ensure_builtin_entries()
    zoo_id = ZooEntry.objects.get(slug="small-cnn-random").pk
    dataset_a, dataset_c = make_dataset(admin_a.site), make_dataset(admin_c.site)

    def run(strategy: str = "fedavg") -> int:
        created = client_for(admin_a).post(
            "/api/v1/federated-jobs/",
            {
                "dataset": dataset_a.pk,
                "sites": ["site-c"],
                "starting_point": zoo_id,
                "strategy": strategy,
                "rounds": 1,
                "min_participants": 2,
            },
            format="json",
        )
        job_id = created.json()["id"]
        client_for(admin_c).post(
            f"/api/v1/federated-jobs/{job_id}/accept/", {"dataset": dataset_c.pk}, format="json"
        )
        site_a, site_c = agent_for(admin_a.site), agent_for(admin_c.site)
        assert site_a.send(job_id, 0, tensors(0.0), samples=0).status_code == 201
        assert site_a.send(job_id, 1, tensors(1.0)).status_code == 201
        assert site_c.send(job_id, 1, tensors(3.0)).status_code == 201
        assert FederatedJob.objects.get(pk=job_id).status == "succeeded"
        return int(job_id)

    return run
