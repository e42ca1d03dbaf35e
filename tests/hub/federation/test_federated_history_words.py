"""The history of a cross-site job names hospitals and says what happened in plain words (issue 16, item 20).

The hub writes these lines; the dashboard shows them as they are.
"""

from __future__ import annotations

import re

import pytest

from pollen.federation.models import FederatedJob
from tests.hub.federation.conftest import tensors

pytestmark = pytest.mark.django_db

SLUG = re.compile(r"\bsite-[a-c]\b")
JARGON = re.compile(
    r"FedAvg|federated averaging|aggregat|dropout|global weights|starting weights|"
    r"validation AUC|site\(s\)|\bupdate\b|\bworker\b|celery@",
    re.IGNORECASE,
)


def _texts(job_id: int) -> list[str]:
    return [e["text"] for e in FederatedJob.objects.get(pk=job_id).events]


def test_a_finished_job_reads_as_plain_sentences_with_hospital_names(finished):
    texts = _texts(finished())
    for text in texts:
        assert not SLUG.search(text), text
        assert not JARGON.search(text), text
    assert texts[:4] == [
        "alice-admin proposed training at all hospitals at once across St Anne's Hospital, "
        "Cottage Hospital.",
        "Cottage Hospital accepted.",
        "Every hospital answered; St Anne's Hospital prepares the common starting model.",
        "St Anne's Hospital started preparing the common starting model.",
    ]
    assert "St Anne's Hospital prepared the common starting model." in texts
    assert "Cottage Hospital sent round 1: 10 training images, AUC 0.800 on tuning images." in texts
    assert (
        "Round 1: the models of 2 hospital(s) were combined into one; AUC 0.800 on tuning images."
        in texts
    )


def test_refusals_failures_and_relays_name_the_hospital_too(
    client_for, admin_a, admin_c, sent, model_store_dir, agent_for, queued
):
    from pollen.zoo.models import ZooEntry
    from tests.hub.federation.conftest import make_dataset

    zoo_id = ZooEntry.objects.get_or_create(
        slug="small-cnn-random",
        defaults={"architecture": "small_cnn", "source": "random", "input_size": 32},
    )[0].pk
    created = client_for(admin_a).post(
        "/api/v1/federated-jobs/",
        {
            "dataset": make_dataset(admin_a.site).pk,
            "sites": ["site-c"],
            "starting_point": zoo_id,
            "strategy": "relay",
            "rounds": 1,
            "min_participants": 1,
        },
        format="json",
    )
    job_id = created.json()["id"]
    client_for(admin_c).post(
        f"/api/v1/federated-jobs/{job_id}/accept/",
        {"dataset": make_dataset(admin_c.site).pk},
        format="json",
    )
    site_a, site_c = agent_for(admin_a.site), agent_for(admin_c.site)
    site_a.send(job_id, 0, tensors(0.0), samples=0)
    site_a.send(job_id, 1, tensors(1.0, shape=(3, 3)))  # refused: another shape
    site_a.send(job_id, 1, tensors(1.0), claim=False)  # refused: a second one
    site_c.fail(job_id, 1, "The combined model could not be downloaded (503).")
    texts = _texts(job_id)
    assert texts[0].startswith("alice-admin proposed training at one hospital after another")
    assert any(
        t.startswith("The trained model from St Anne's Hospital for round 1 was refused")
        for t in texts
    )
    assert "A second trained model from St Anne's Hospital for round 1 was refused." in texts
    assert (
        "Cottage Hospital could not finish round 1: The combined model could not be downloaded (503)."
        in texts
    )
    for text in texts:
        assert not SLUG.search(text), text
