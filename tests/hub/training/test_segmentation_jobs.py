"""Training jobs on a segmentation dataset (issue 18): the starting point, readiness, the spec."""

from __future__ import annotations

import pytest

from pollen.datasets.models import Dataset, Image, ImageStatus, Mask
from pollen.training.claims import job_claim
from pollen.training.models import Job
from pollen.zoo.models import ZooEntry
from pollen_contracts.specs import TrainingSpec

pytestmark = pytest.mark.django_db


@pytest.fixture
def masked(clinician_a):
    """A segmentation dataset; ``make(split_counts)`` adds images with accepted masks."""
    dataset = Dataset.objects.create(
        site=clinician_a.site, name="BUSI", task="segmentation", mask_classes=["lesion"]
    )

    def make(counts: dict[str, int], *, with_mask: bool = True) -> None:
        for split, n in counts.items():
            for i in range(n):
                name = f"{split}{i}-{'m' if with_mask else 'n'}"
                image = Image.objects.create(
                    dataset=dataset,
                    filename=f"{name}.png",
                    storage_key=f"datasets/{dataset.pk}/images/{name}.png",
                    status=ImageStatus.ACCEPTED,
                    split=split,
                    width=64,
                    height=48,
                )
                if with_mask:
                    Mask.objects.create(
                        image=image,
                        status=ImageStatus.ACCEPTED,
                        storage_key=f"datasets/{dataset.pk}/masks/{name}.png",
                    )

    return dataset, make


def _start(client, dataset: Dataset, **fields):
    return client.post("/api/v1/jobs/", {"dataset": dataset.pk, **fields}, format="json")


def test_one_click_on_masks_trains_the_outlining_model(client_for, clinician_a, masked):
    dataset, make = masked
    make({"train": 4, "val": 2, "test": 2})
    response = _start(client_for(clinician_a), dataset)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["task"] == "segmentation"
    assert body["label_names"] == ["background", "lesion"]
    job = Job.objects.get(pk=body["id"])
    assert job.starting_point.architecture == "unet_efficientnet_lite0"

    from pollen.accounts.caller import caller_for_token
    from pollen.accounts.services import token_create

    token, _ = token_create(caller=None, site=clinician_a.site, name="agent", kind="agent")
    claimed = job_claim(caller=caller_for_token(token), job=job, claim_id="c1", worker="w")
    assert claimed is not None
    spec = TrainingSpec.from_dict(claimed["spec"])
    assert spec.task == "segmentation" and spec.label_names == ["background", "lesion"]
    assert spec.architecture == "unet_efficientnet_lite0" and spec.input_size == 256


def test_a_classifier_cannot_start_from_masks_nor_a_unet_from_labels(
    client_for, clinician_a, masked, labelled_rows
):
    client = client_for(clinician_a)
    dataset, make = masked
    make({"train": 4, "val": 2, "test": 2})
    classifier = ZooEntry.objects.get(slug="efficientnet-lite0-imagenet")
    refused = _start(client, dataset, starting_point=classifier.pk)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "task_mismatch"
    assert "segmentation" in refused.json()["error"]["message"]

    labelled = Dataset.objects.create(
        site=clinician_a.site, name="squares", label_names=["left", "right"]
    )
    labelled_rows(labelled, labels=("left", "right"))
    unet = ZooEntry.objects.get(slug="unet-lite0-imagenet")
    assert _start(client, labelled, starting_point=unet.pk).json()["error"]["code"] == (
        "task_mismatch"
    )
    frozen = _start(client, labelled, advanced={"freeze_encoder": True})
    assert frozen.status_code == 400 and frozen.json()["error"]["fields"]["advanced"]


def test_images_without_masks_do_not_make_a_dataset_ready(client_for, clinician_a, masked):
    dataset, make = masked
    make({"train": 1, "val": 0, "test": 1})
    make({"train": 5, "val": 3}, with_mask=False)
    refused = _start(client_for(clinician_a), dataset)
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "dataset_not_ready"
    problems = error["fields"]["dataset"]
    assert any("training set has 1 images with a mask" in p for p in problems)
    assert any("validation set has 0" in p for p in problems)


def test_the_decoder_only_switch_is_a_switch(client_for, clinician_a, masked):
    dataset, make = masked
    make({"train": 4, "val": 2, "test": 2})
    client = client_for(clinician_a)
    wrong = _start(client, dataset, advanced={"freeze_encoder": "maybe"})
    assert wrong.status_code == 400
    assert "freeze_encoder" in str(wrong.json()["error"])
    made = _start(client, dataset, advanced={"freeze_encoder": True})
    assert made.status_code == 201 and made.json()["config"]["freeze_encoder"] is True
    quick = _start(client, dataset, recipe="quick")
    assert quick.status_code == 400 and "decoder only" in quick.json()["error"]["message"]


@pytest.fixture
def unet_version(clinician_a):
    from pollen.training.models import ModelVersion

    return ModelVersion.objects.create(
        site=clinician_a.site,
        name="BUSI lesions",
        architecture="unet_efficientnet_lite0",
        task="segmentation",
        label_names=["background", "lesion"],
        input_size=256,
        weights_sha256="a" * 64,
        storage_key="models/job-1-x/",
    )


def test_segmentation_has_every_flow_and_a_task_without_one_is_refused_in_words(
    client_for, clinician_a, unet_version
):
    """Segmentation has reached every flow classification has (cross-site training last:
    tests/hub/federation/test_federated_segmentation*.py). A flow a task has not reached is
    refused in words, never queued for an agent that would fail it."""
    from pollen.core.errors import Conflict
    from pollen.core.task_flows import FLOWS_BY_TASK, require_flow

    assert FLOWS_BY_TASK["segmentation"] == FLOWS_BY_TASK["classification"]
    for flow in FLOWS_BY_TASK["classification"]:
        require_flow("segmentation", flow)
    with pytest.raises(Conflict) as refused:
        require_flow("slides", "federated")
    assert refused.value.error_code == "task_not_supported"
    assert str(refused.value.message).startswith("Slides models cannot be trained across sites")
