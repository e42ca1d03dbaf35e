from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from pollen.accounts.caller import caller_for_token
from pollen.accounts.services import token_create
from pollen.datasets.models import Dataset
from pollen.training import claims, services
from pollen.training.models import Job, JobStatus
from pollen.zoo.models import ZooEntry
from pollen_contracts.specs import JobClaimed
from pollen_contracts.weights import WeightsSpec

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset(clinician_a):
    return Dataset.objects.create(
        site=clinician_a.site, name="squares", label_names=["left", "right"]
    )


def _agent(site):
    token, _ = token_create(caller=None, site=site, name="agent", kind="agent")
    return caller_for_token(token)


def test_zoo_lists_builtin_starting_points_with_licences(client_for, clinician_a):
    body = client_for(clinician_a).get("/api/v1/zoo/?source=imagenet").json()
    slugs = {e["slug"] for e in body["results"]}
    assert "efficientnet-lite0-imagenet" in slugs
    # One recommended starting point per task: the classifier and the outlining model (U-Net).
    recommended = {e["task"]: e for e in body["results"] if e["recommended"]}
    assert sorted(recommended) == ["classification", "segmentation"]
    assert len([e for e in body["results"] if e["recommended"]]) == 2
    assert all("ImageNet" in e["licence"] for e in recommended.values())
    assert recommended["segmentation"]["architecture"] == "unet_efficientnet_lite0"


def test_one_click_job_uses_the_recommended_starting_point(
    client_for, clinician_a, dataset, labelled_rows
):
    labelled_rows(dataset)
    response = client_for(clinician_a).post("/api/v1/jobs/", {"dataset": dataset.pk}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "queued"
    assert ZooEntry.objects.get(pk=body["starting_point"]).recommended
    assert body["label_names"] == ["left", "right"]


def test_dataset_with_one_label_cannot_be_trained(client_for, clinician_a, dataset, labelled_rows):
    labelled_rows(dataset, labels=("left",))
    response = client_for(clinician_a).post("/api/v1/jobs/", {"dataset": dataset.pk}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "dataset_not_ready"
    assert "two labels" in response.json()["error"]["message"]


def test_label_missing_from_validation_set_is_explained(
    client_for, clinician_a, dataset, labelled_rows
):
    rows = labelled_rows(dataset, n=40)
    from pollen.datasets.models import Image

    Image.objects.filter(
        pk__in=[r.pk for r in rows if r.label == "right" and r.split == "val"]
    ).update(split="train")
    response = client_for(clinician_a).post("/api/v1/jobs/", {"dataset": dataset.pk}, format="json")
    assert response.json()["error"]["code"] == "dataset_not_ready"
    assert (
        "'right'" in response.json()["error"]["message"]
        and "validation" in response.json()["error"]["message"]
    )


def test_advanced_settings_are_checked(client_for, clinician_a, dataset, labelled_rows):
    labelled_rows(dataset)
    client = client_for(clinician_a)
    bad = client.post(
        "/api/v1/jobs/", {"dataset": dataset.pk, "advanced": {"epochs": 0}}, format="json"
    )
    assert bad.status_code == 400
    # The refusal names the field as the request does, so the form can point at it.
    assert bad.json()["error"]["code"] == "invalid"
    assert set(bad.json()["error"]["fields"]["advanced"]) == {"epochs"}
    unknown = client.post(
        "/api/v1/jobs/", {"dataset": dataset.pk, "advanced": {"momentum": 0.9}}, format="json"
    )
    assert unknown.json()["error"]["code"] == "unknown_field"
    assert set(unknown.json()["error"]["fields"]["advanced"]) == {"momentum"}


def test_only_one_worker_wins_the_claim(clinician_a, dataset, labelled_rows):
    labelled_rows(dataset)
    job = services.job_create(
        caller=_clinician(clinician_a),
        dataset=dataset,
        starting_point=ZooEntry.objects.get(slug="small-cnn-random"),
    )
    agent = _agent(clinician_a.site)
    first = claims.job_claim(caller=agent, job=job, claim_id="delivery-1", worker="w1")
    second = claims.job_claim(caller=agent, job=job, claim_id="delivery-2", worker="w2")
    assert first is not None and second is None
    job.refresh_from_db()
    assert (job.status, job.attempt, job.worker) == (JobStatus.RUNNING, 1, "w1")
    # What the agent reads back from the claim: a typed spec with the job's starting weights.
    spec = JobClaimed.from_dict(first).spec
    assert spec.weights == WeightsSpec(kind="random") and spec.task == "classification"
    assert spec.job_id == job.pk and spec.label_names == list(job.label_names)


def test_a_job_id_seen_before_by_the_site_storage_gets_new_files(
    clinician_a, dataset, labelled_rows
):
    """Site storage outlives a hub database: a second job 1 must not resume the first one's files."""
    labelled_rows(dataset)
    start = ZooEntry.objects.get(slug="small-cnn-random")
    agent = _agent(clinician_a.site)
    first = services.job_create(
        caller=_clinician(clinician_a), dataset=dataset, starting_point=start
    )
    first_spec = claims.job_claim(caller=agent, job=first, claim_id="d1", worker="w1")["spec"]
    reused_id = first.pk
    Job.objects.filter(pk=reused_id).delete()  # as if the hub's database had been replaced
    second = services.job_create(
        caller=_clinician(clinician_a), dataset=dataset, starting_point=start
    )
    Job.objects.filter(pk=second.pk).update(id=reused_id)
    second = Job.objects.get(pk=reused_id)
    second_spec = claims.job_claim(caller=agent, job=second, claim_id="d2", worker="w1")["spec"]
    assert second_spec["job_id"] == first_spec["job_id"] == reused_id
    for key in ("checkpoint_key", "samples_prefix", "model_key"):
        assert second_spec[key] != first_spec[key], key
        assert str(reused_id) in second_spec[key], "the id stays readable for site IT"
    # A job made before uids existed keeps the id-only names its checkpoint already has.
    Job.objects.filter(pk=reused_id).update(uid=None)
    assert Job.objects.get(pk=reused_id).storage_name == str(reused_id)


def test_abandoned_job_is_requeued_and_taken_over(clinician_a, dataset, labelled_rows):
    labelled_rows(dataset)
    job = services.job_create(
        caller=_clinician(clinician_a),
        dataset=dataset,
        starting_point=ZooEntry.objects.get(slug="small-cnn-random"),
    )
    agent = _agent(clinician_a.site)
    claims.job_claim(caller=agent, job=job, claim_id="d1", worker="w1")
    assert services.jobs_requeue_abandoned(site_id=dataset.site_id) == []
    Job.objects.filter(pk=job.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1), checkpoint_epoch=3
    )
    assert services.jobs_requeue_abandoned(site_id=dataset.site_id) == [job.pk]
    claimed = claims.job_claim(caller=agent, job=job, claim_id="d2", worker="w2")
    job.refresh_from_db()
    assert claimed is not None and job.attempt == 2
    # Whether epoch 3's checkpoint is resumed, only the worker can tell (test_epoch_records).
    assert job.events[-1]["text"] == "Picked up again on w2 (attempt 2)"


def test_cancel_queued_job_at_once_and_running_job_by_flag(
    client_for, clinician_a, dataset, labelled_rows
):
    labelled_rows(dataset)
    client = client_for(clinician_a)
    job_id = client.post("/api/v1/jobs/", {"dataset": dataset.pk}, format="json").json()["id"]
    assert client.post(f"/api/v1/jobs/{job_id}/cancel/").json()["status"] == "cancelled"
    assert client.post(f"/api/v1/jobs/{job_id}/cancel/").json()["error"]["code"] == "job_finished"
    job_id = client.post("/api/v1/jobs/", {"dataset": dataset.pk}, format="json").json()["id"]
    claims.job_claim(
        caller=_agent(clinician_a.site), job=Job.objects.get(pk=job_id), claim_id="d", worker="w"
    )
    body = client.post(f"/api/v1/jobs/{job_id}/cancel/").json()
    assert body["status"] == "running" and body["cancel_requested"] is True


def test_job_token_sees_only_its_own_job(clinician_a, dataset, labelled_rows, token_client):
    labelled_rows(dataset)
    entry = ZooEntry.objects.get(slug="small-cnn-random")
    one = services.job_create(caller=_clinician(clinician_a), dataset=dataset, starting_point=entry)
    two = services.job_create(caller=_clinician(clinician_a), dataset=dataset, starting_point=entry)
    client = token_client(clinician_a.site, kind="job", job_id=one.pk)
    progress = {"phase": "training", "fraction": 0.5}
    assert (
        client.post(f"/api/v1/agent/jobs/{two.pk}/progress/", progress, format="json").status_code
        == 404
    )
    # People cannot use the agent API at all.
    assert (
        token_client(clinician_a.site)
        .post(
            f"/api/v1/agent/jobs/{one.pk}/claim/", {"claim_id": "x", "worker": "y"}, format="json"
        )
        .status_code
        == 403
    )


def test_outsider_gets_404_on_job_and_model_endpoints(
    client_for, clinician_a, outsider, dataset, labelled_rows
):
    labelled_rows(dataset)
    job_id = (
        client_for(clinician_a)
        .post("/api/v1/jobs/", {"dataset": dataset.pk}, format="json")
        .json()["id"]
    )
    client = client_for(outsider)
    assert client.get(f"/api/v1/jobs/{job_id}/").status_code == 404
    assert client.post(f"/api/v1/jobs/{job_id}/cancel/").status_code == 404
    assert client.get("/api/v1/jobs/").json()["count"] == 0
    assert client.post("/api/v1/jobs/", {"dataset": dataset.pk}, format="json").status_code == 404
    assert client.get("/api/v1/models/").json()["count"] == 0


def test_job_list_is_constant_in_queries(
    client_for, clinician_a, dataset, labelled_rows, django_assert_max_num_queries
):
    labelled_rows(dataset)
    entry = ZooEntry.objects.get(slug="small-cnn-random")
    for _ in range(15):
        services.job_create(caller=_clinician(clinician_a), dataset=dataset, starting_point=entry)
    client = client_for(clinician_a)
    # Two more place the page's queued jobs in their sites' lines, whatever their number.
    with django_assert_max_num_queries(8):
        body = client.get("/api/v1/jobs/?status=queued").json()
    assert body["count"] == 15


def _clinician(persona):
    from pollen.accounts.caller import caller_for_user

    return caller_for_user(persona.user)


def test_a_queued_job_nobody_claimed_is_sent_again_when_the_site_is_idle(
    clinician_a, dataset, labelled_rows, settings
):
    labelled_rows(dataset)
    job = services.job_create(
        caller=_clinician(clinician_a),
        dataset=dataset,
        starting_point=ZooEntry.objects.get(slug="small-cnn-random"),
    )
    assert services.jobs_resend_stale_queued(site_id=dataset.site_id) == []
    Job.objects.filter(pk=job.pk).update(last_sent_at=timezone.now() - timedelta(hours=1))
    assert services.jobs_resend_stale_queued(site_id=dataset.site_id) == [job.pk]
    assert services.jobs_resend_stale_queued(site_id=dataset.site_id) == []


def test_the_resend_wait_is_the_documented_setting(clinician_a, dataset, labelled_rows, settings):
    labelled_rows(dataset)
    job = services.job_create(
        caller=_clinician(clinician_a),
        dataset=dataset,
        starting_point=ZooEntry.objects.get(slug="small-cnn-random"),
    )
    Job.objects.filter(pk=job.pk).update(last_sent_at=timezone.now() - timedelta(seconds=90))
    settings.JOB_RESEND_SECONDS = 120
    assert services.jobs_resend_stale_queued(site_id=dataset.site_id) == []
    settings.JOB_RESEND_SECONDS = 60
    assert services.jobs_resend_stale_queued(site_id=dataset.site_id) == [job.pk]
