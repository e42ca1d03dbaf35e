"""Federated jobs through the public and agent APIs, with the agent's side played by the test."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from pollen.federation import aggregation
from pollen.federation.models import FederatedJob, Participant, Round, Update
from pollen.federation.round_results import round_aggregate
from pollen.federation.services import federation_tick
from pollen.training.models import ModelVersion
from pollen.zoo.builtin import ensure_builtin_entries
from pollen.zoo.models import ZooEntry
from pollen_contracts.manifest import InferenceBlock, manifest_parse
from pollen_contracts.specs import RoundClaimed
from tests.hub.federation.conftest import make_dataset, tensors

pytestmark = pytest.mark.django_db


@pytest.fixture
def zoo_id(db):
    ensure_builtin_entries()
    return ZooEntry.objects.get(slug="small-cnn-random").pk


@pytest.fixture
def datasets(admin_a, admin_c):
    return make_dataset(admin_a.site), make_dataset(admin_c.site, n=60)


def _create(client, dataset, zoo_id, **extra):
    body = {
        "dataset": dataset.pk,
        "sites": ["site-c"],
        "starting_point": zoo_id,
        "strategy": "fedavg",
        "rounds": 2,
        "min_participants": 2,
        **extra,
    }
    return client.post("/api/v1/federated-jobs/", body, format="json")


@pytest.fixture
def running(client_for, admin_a, admin_c, datasets, zoo_id, sent, model_store_dir, agent_for):
    """A FedAvg job between site A and site C, accepted by both, starting weights prepared."""

    def start(**extra):
        created = _create(client_for(admin_a), datasets[0], zoo_id, **extra)
        assert created.status_code == 201, created.content
        job_id = created.json()["id"]
        accepted = client_for(admin_c).post(
            f"/api/v1/federated-jobs/{job_id}/accept/", {"dataset": datasets[1].pk}, format="json"
        )
        assert accepted.status_code == 200, accepted.content
        assert accepted.json()["status"] == "running"
        site_a = agent_for(admin_a.site)
        assert site_a.send(job_id, 0, tensors(0.0), samples=0).status_code == 201
        return job_id, site_a, agent_for(admin_c.site)

    return start


def test_nothing_runs_at_a_site_until_its_administrator_accepts(
    client_for, admin_a, admin_c, datasets, zoo_id, sent, model_store_dir
):
    created = _create(client_for(admin_a), datasets[0], zoo_id)
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["status"] == "pending"
    assert {p["site"]: p["status"] for p in body["participants"]} == {
        "site-a": "accepted",
        "site-c": "invited",
    }
    assert sent.tasks == []
    seen_by_c = client_for(admin_c).get(f"/api/v1/federated-jobs/{body['id']}/").json()
    site_a_row = next(p for p in seen_by_c["participants"] if p["site"] == "site-a")
    assert site_a_row["dataset"] is None and site_a_row["train_count"] > 0, "counts, not names"
    accepted = client_for(admin_c).post(
        f"/api/v1/federated-jobs/{body['id']}/accept/", {"dataset": datasets[1].pk}, format="json"
    )
    assert accepted.json()["status"] == "running"
    assert [t["site"] for t in sent.tasks] == ["site-a"], "round 0 at the initiator only"
    assert sent.tasks[0]["task"] == "pollen.gpu.federated_round" and sent.tasks[0]["round"] == 0
    assert set(sent.tasks[0]) >= {"site", "federated_job_id", "round"}
    assert "update_url" not in sent.tasks[0], "links come with the claim, fresh, never queued"


def test_a_clinician_cannot_accept_for_their_site(
    client_for, admin_a, clinician_c, datasets, zoo_id
):
    job_id = _create(client_for(admin_a), datasets[0], zoo_id).json()["id"]
    response = client_for(clinician_c).post(
        f"/api/v1/federated-jobs/{job_id}/accept/", {"dataset": datasets[1].pk}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "admin_required"


def test_a_dataset_with_other_labels_is_refused_and_logged(
    client_for, admin_a, admin_c, datasets, zoo_id
):
    job_id = _create(client_for(admin_a), datasets[0], zoo_id).json()["id"]
    other = make_dataset(admin_c.site, labels=("benign", "malignant"), name="other")
    response = client_for(admin_c).post(
        f"/api/v1/federated-jobs/{job_id}/accept/", {"dataset": other.pk}, format="json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "label_mismatch" and "benign" in error["message"]
    job = FederatedJob.objects.get(pk=job_id)
    assert job.status == "pending"
    assert any(e.get("code") == "label_mismatch" for e in job.events)


def test_a_decline_that_leaves_too_few_sites_fails_the_job_with_the_reason(
    client_for, admin_a, admin_c, datasets, zoo_id, sent
):
    job_id = _create(client_for(admin_a), datasets[0], zoo_id).json()["id"]
    body = client_for(admin_c).post(f"/api/v1/federated-jobs/{job_id}/decline/").json()
    assert body["status"] == "failed" and body["error_code"] == "not_enough_sites"
    assert "at least 2" in body["message"]
    assert any("Cottage Hospital declined" in e["text"] for e in body["events"])
    assert sent.tasks == []


def test_outsider_site_gets_404_everywhere(
    client_for, admin_a, outsider, datasets, zoo_id, token_client
):
    job_id = _create(client_for(admin_a), datasets[0], zoo_id).json()["id"]
    client = client_for(outsider)
    assert client.get("/api/v1/federated-jobs/").json()["count"] == 0
    for method, path in [
        ("get", ""),
        ("post", "accept/"),
        ("post", "decline/"),
        ("post", "cancel/"),
    ]:
        response = getattr(client, method)(
            f"/api/v1/federated-jobs/{job_id}/{path}", {}, format="json"
        )
        assert response.status_code == 404, (path, response.content)
        assert response.json()["error"]["code"] == "federated_job_not_found"
    agent_b = token_client(outsider.site, kind="agent")
    for path in ("claim/", "progress/", "update/", "fail/"):
        response = agent_b.post(
            f"/api/v1/agent/federated-jobs/{job_id}/rounds/0/{path}", {}, format="json"
        )
        assert response.status_code in (400, 404), (path, response.content)


def test_list_shows_only_jobs_my_sites_take_part_in(
    client_for, admin_a, clinician_a, admin_c, datasets, zoo_id, django_assert_max_num_queries
):
    for _ in range(3):
        _create(client_for(admin_a), datasets[0], zoo_id)
    client = client_for(clinician_a)
    client.get("/api/v1/federated-jobs/")
    with django_assert_max_num_queries(12):
        body = client.get("/api/v1/federated-jobs/").json()
    assert body["count"] == 3
    assert client_for(admin_c).get("/api/v1/federated-jobs/").json()["count"] == 3


def test_list_filters_by_one_of_my_sites_status_and_strategy(
    client_for, admin_a, admin_c, outsider, datasets, zoo_id, django_assert_max_num_queries
):
    from tests.conftest import _person

    a_and_c = _create(client_for(admin_a), datasets[0], zoo_id).json()["id"]
    a_and_b = _create(
        client_for(admin_a), datasets[0], zoo_id, sites=["site-b"], strategy="relay"
    ).json()["id"]
    c_and_b = _create(client_for(admin_c), datasets[1], zoo_id, sites=["site-b"]).json()["id"]
    # Mia works at site A and site C: her list holds the jobs of both.
    mia = _person("mia-two-sites", admin_a.site, "clinician")
    _person("mia-two-sites", admin_c.site, "clinician")
    client = client_for(mia)

    def ids(query: str) -> set[int]:
        response = client.get(f"/api/v1/federated-jobs/?{query}")
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["count"] == len(body["results"])
        return {job["id"] for job in body["results"]}

    assert ids("") == {a_and_c, a_and_b, c_and_b}
    assert ids("site=site-a") == {a_and_c, a_and_b}
    assert ids("site=site-c") == {a_and_c, c_and_b}
    assert ids("site=site-c&strategy=relay") == set()
    assert ids("strategy=relay") == {a_and_b}
    assert ids("status=pending&site=site-a") == {a_and_c, a_and_b}
    assert ids("status=running") == set()
    # Site B takes part in two jobs Mia sees, but she is not at site B: naming it reveals nothing,
    # the same answer as a site that does not exist.
    assert ids("site=site-b") == set()
    assert ids("site=no-such-site") == set()
    for bad in ("status=finished", "strategy=gossip"):
        response = client.get(f"/api/v1/federated-jobs/?{bad}")
        assert response.status_code == 400, bad
        error = response.json()["error"]
        assert error["code"] == "invalid_filter" and bad.split("=")[0] in error["fields"]
    client.get("/api/v1/federated-jobs/?site=site-c")
    with django_assert_max_num_queries(12):
        assert client.get("/api/v1/federated-jobs/?site=site-c").json()["count"] == 2


def test_awaiting_answer_lists_the_invitations_a_site_still_has_to_answer(
    client_for, admin_a, admin_c, outsider, datasets, zoo_id
):
    a_and_c = _create(client_for(admin_a), datasets[0], zoo_id).json()["id"]
    declined = _create(client_for(admin_a), datasets[0], zoo_id).json()["id"]
    a_and_b = _create(client_for(admin_a), datasets[0], zoo_id, sites=["site-b"]).json()["id"]
    answer = client_for(admin_c).post(f"/api/v1/federated-jobs/{declined}/decline/", {})
    assert answer.status_code == 200, answer.content

    def ids(who, query: str) -> set[int]:
        response = client_for(who).get(f"/api/v1/federated-jobs/?{query}")
        assert response.status_code == 200, response.content
        return {job["id"] for job in response.json()["results"]}

    assert ids(admin_c, "site=site-c&awaiting_answer=true") == {a_and_c}
    assert ids(admin_c, "awaiting_answer=true") == {a_and_c}
    assert ids(admin_c, "site=site-c&awaiting_answer=false") == {declined}
    # The proposing site has answered by proposing; another site's invitation is not its own.
    assert ids(admin_a, "site=site-a&awaiting_answer=true") == set()
    assert ids(outsider, "site=site-b&awaiting_answer=true") == {a_and_b}
    # Naming a site one is not at reveals nothing, as for ?site= alone.
    assert ids(admin_c, "site=site-b&awaiting_answer=true") == set()
    refused = client_for(admin_c).get("/api/v1/federated-jobs/?awaiting_answer=perhaps")
    assert refused.status_code == 400
    assert "awaiting_answer" in refused.json()["error"]["fields"]


def test_a_refused_advanced_setting_is_reported_under_advanced_like_training(
    client_for, admin_a, datasets, zoo_id
):
    client = client_for(admin_a)
    for advanced, name in [({"learning_rate": 5}, "learning_rate"), ({"seed": -1}, "seed")]:
        response = _create(client, datasets[0], zoo_id, advanced=advanced)
        assert response.status_code == 400, response.content
        error = response.json()["error"]
        assert error["code"] == "invalid"
        assert error["fields"] == {"advanced": {name: error["fields"]["advanced"][name]}}
        assert "Between" in error["fields"]["advanced"][name] and name in error["message"]
    not_a_number = _create(client, datasets[0], zoo_id, advanced={"learning_rate": "fast"})
    assert set(not_a_number.json()["error"]["fields"]["advanced"]) == {"learning_rate"}
    unknown = _create(client, datasets[0], zoo_id, advanced={"momentum": 0.9})
    assert unknown.json()["error"]["code"] == "unknown_field"
    assert set(unknown.json()["error"]["fields"]["advanced"]) == {"momentum"}
    assert not FederatedJob.objects.exists()


def test_the_service_refuses_unknown_or_non_numeric_settings_clearly(admin_a, datasets, zoo_id):
    from pollen.accounts.caller import caller_for_user
    from pollen.core.errors import ApiError
    from pollen.federation.lifecycle import federated_job_create

    for advanced, code in [({"momentum": 0.9}, "unknown_field"), ({"seed": "1"}, "invalid")]:
        with pytest.raises(ApiError) as refused:
            federated_job_create(
                caller=caller_for_user(admin_a.user),
                dataset=datasets[0],
                sites=[datasets[1].site],
                strategy="fedavg",
                rounds=1,
                local_epochs=1,
                min_participants=2,
                round_deadline_seconds=600,
                starting_point=ZooEntry.objects.get(pk=zoo_id),
                advanced=advanced,
            )
        assert refused.value.error_code == code
        assert list(refused.value.fields or {}) == ["advanced"]


def test_fedavg_averages_by_sample_count_and_each_round_is_a_model_version(running, sent):
    job_id, site_a, site_c = running()
    assert sorted(t["site"] for t in sent.tasks if t["round"] == 1) == ["site-a", "site-c"]
    assert site_a.send(job_id, 1, tensors(1.0), samples=10).status_code == 201
    assert Round.objects.get(job_id=job_id, number=1).status == "running", "waits for site C"
    assert site_c.send(job_id, 1, tensors(4.0), samples=30).status_code == 201
    round_1 = Round.objects.get(job_id=job_id, number=1)
    assert round_1.status == "done"
    from pollen.core.model_store import model_store

    weights = aggregation.read_tensors(model_store().get_bytes(round_1.weights_key))
    assert np.allclose(weights["layer.weight"], (1.0 * 10 + 4.0 * 30) / 40)
    assert int(weights["bn.num_batches_tracked"]) == 40
    assert round_1.metrics["training_images"] == 40

    site_a.send(job_id, 2, tensors(2.0), samples=10)
    site_c.send(job_id, 2, tensors(2.0), samples=30)
    job = FederatedJob.objects.get(pk=job_id)
    assert job.status == "succeeded", job.message
    final = ModelVersion.objects.get(pk=job.final_version_id)
    first = Round.objects.get(job_id=job_id, number=1).model_version
    assert final.parent_id == first.pk, "lineage to the previous round"
    assert final.site_id == job.initiator_site_id
    assert final.weights_sha256 and final.mean == [0.5, 0.5, 0.5] and final.input_size
    assert final.label_names == ["left", "right"] and final.architecture == "small_cnn"
    assert final.storage_key == f"hub:federated/{job_id}/round-2/"
    manifest = json.loads(model_store().get_bytes(f"federated/{job_id}/round-2/manifest.json"))
    assert manifest["weights_sha256"] == final.weights_sha256
    assert manifest["parent"]["model_version_id"] == first.pk
    # Written by the same code as the agent's manifests, with the policy its sites trained with.
    assert manifest_parse(
        model_store().get_bytes(f"federated/{job_id}/round-2/manifest.json")
    ).inference == InferenceBlock(tta="hflip")
    assert manifest["training_summary"]["federated"]["training_images_per_site"] == {
        "site-a": 10,
        "site-c": 30,
    }


def test_relay_sends_the_weights_from_site_to_site(running, sent):
    job_id, site_a, site_c = running(strategy="relay", rounds=1)
    assert [t["site"] for t in sent.tasks if t["round"] == 1] == ["site-a"], "one site at a time"
    site_a.send(job_id, 1, tensors(1.0))
    to_c = [t for t in sent.tasks if t["round"] == 1 and t["site"] == "site-c"]
    assert len(to_c) == 1, "then the next site"
    spec = RoundClaimed.from_dict(site_c.claim(job_id, 1).json()).spec
    assert spec.weights.kind == "hub_file" and "accepted/site-a" in spec.weights.url
    site_c.send(job_id, 1, tensors(3.0), claim=False)
    job = FederatedJob.objects.get(pk=job_id)
    assert job.status == "succeeded"
    from pollen.core.model_store import model_store

    final = aggregation.read_tensors(
        model_store().get_bytes(f"federated/{job_id}/round-1/weights.safetensors")
    )
    assert np.allclose(final["layer.weight"], 3.0), "the last site's weights"


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (tensors(1.0, shape=(3, 3)), "update_shape_mismatch"),
        (
            {**tensors(1.0), "layer.weight": np.array([[np.nan, 1, 1], [1, 1, 1]], np.float32)},
            "update_not_finite",
        ),
        ({**tensors(1.0), "layer.bias": np.array([np.inf, 1], np.float32)}, "update_not_finite"),
    ],
)
def test_a_bad_update_is_refused_logged_and_left_out(running, bad, code):
    job_id, site_a, site_c = running(min_participants=1, rounds=1)
    response = site_c.send(job_id, 1, bad)
    assert response.status_code == 400 and response.json()["error"]["code"] == code
    assert site_a.send(job_id, 1, tensors(2.0)).status_code == 201
    job = FederatedJob.objects.get(pk=job_id)
    assert job.status == "succeeded", "the job goes on while the minimum holds"
    assert any(e.get("code") == code and e.get("site") == "site-c" for e in job.events)
    assert (
        Update.objects.get(round__job_id=job_id, round__number=1, site__slug="site-c").status
        == "rejected"
    )


def test_a_site_that_sends_the_same_round_twice_is_refused(running):
    job_id, _site_a, site_c = running()
    assert site_c.send(job_id, 1, tensors(1.0)).status_code == 201
    again = site_c.send(job_id, 1, tensors(9.0), claim=False)
    assert again.status_code == 409 and again.json()["error"]["code"] == "update_duplicate"
    assert Update.objects.filter(round__job_id=job_id, site__slug="site-c").count() == 1
    job = FederatedJob.objects.get(pk=job_id)
    assert any(e.get("code") == "update_duplicate" for e in job.events)


def test_more_samples_than_the_dataset_holds_are_refused(running):
    job_id, _, site_c = running()
    response = site_c.send(job_id, 1, tensors(1.0), samples=10_000)
    assert response.json()["error"]["code"] == "update_sample_count"


def test_a_site_that_misses_the_deadline_is_left_out_and_the_job_goes_on(running):
    job_id, site_a, site_c = running(min_participants=1, rounds=1)
    site_a.send(job_id, 1, tensors(2.0))
    assert Round.objects.get(job_id=job_id, number=1).status == "running"
    Round.objects.filter(job_id=job_id, number=1).update(deadline_at=timezone.now() - timedelta(1))
    federation_tick()
    job = FederatedJob.objects.get(pk=job_id)
    assert job.status == "succeeded"
    assert any(e.get("code") == "deadline_missed" and e["site"] == "site-c" for e in job.events)
    late = site_c.send(job_id, 1, tensors(1.0))
    assert late.status_code == 409


def test_the_job_fails_clearly_when_too_few_sites_answer(running):
    job_id, site_a, site_c = running(min_participants=2)
    site_a.send(job_id, 1, tensors(2.0))
    site_c.fail(job_id, 1)
    job = FederatedJob.objects.get(pk=job_id)
    assert job.status == "failed" and job.error_code == "not_enough_updates"
    assert "needs at least 2" in job.message
    assert any("Cottage Hospital could not finish round 1" in e["text"] for e in job.events)


def test_a_round_is_aggregated_exactly_once_even_after_a_crash(running):
    job_id, site_a, site_c = running(rounds=1)
    site_a.send(job_id, 1, tensors(1.0))
    site_c.send(job_id, 1, tensors(1.0))
    round_1 = Round.objects.get(job_id=job_id, number=1)
    # A hub that died between "aggregating" and "done" resumes; a second aggregation is a no-op.
    Round.objects.filter(pk=round_1.pk).update(
        status="aggregating", aggregating_since=timezone.now() - timedelta(hours=1)
    )
    FederatedJob.objects.filter(pk=job_id).update(status="running")
    federation_tick()
    round_aggregate(FederatedJob.objects.get(pk=job_id), Round.objects.get(pk=round_1.pk))
    assert ModelVersion.objects.filter(federated_round__job_id=job_id).count() == 1


def test_a_worker_that_stops_answering_loses_its_turn_to_a_new_one(running, sent):
    job_id, site_a, _ = running()
    assert site_a.claim(job_id, 1, "first").json()["claimed"]
    assert not site_a.claim(job_id, 1, "second").json()["claimed"], "one worker at a time"
    Participant.objects.filter(job_id=job_id, site__slug="site-a").update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    before = len(sent.to("site-a"))
    federation_tick()
    assert len(sent.to("site-a")) == before + 1, "queued again"
    assert site_a.claim(job_id, 1, "second").json()["claimed"]
    progress = site_a._post(
        f"federated-jobs/{job_id}/rounds/1/progress/", {"phase": "training", "fraction": 0.5}
    )
    assert progress.json() == {"stop": False}


def test_cancel_stops_the_job_and_tells_workers_to_stop(running, client_for, admin_a):
    job_id, site_a, _ = running()
    site_a.claim(job_id, 1)
    body = client_for(admin_a).post(f"/api/v1/federated-jobs/{job_id}/cancel/").json()
    assert body["status"] == "cancelled"
    progress = site_a._post(
        f"federated-jobs/{job_id}/rounds/1/progress/", {"phase": "training", "fraction": 0.5}
    )
    assert progress.json() == {"stop": True}
    assert client_for(admin_a).post(f"/api/v1/federated-jobs/{job_id}/cancel/").status_code == 409


def test_agent_update_bodies_hold_numbers_only(running):
    job_id, _, site_c = running()
    site_c.claim(job_id, 1)
    response = site_c._post(
        f"federated-jobs/{job_id}/rounds/1/update/",
        {"weights_sha256": "0" * 64, "sample_count": 1, "metrics": {"val_auc": [0.1] * 100}},
    )
    assert response.status_code == 400
    response = site_c._post(
        f"federated-jobs/{job_id}/rounds/1/update/",
        {"weights_sha256": "0" * 64, "sample_count": 1, "probabilities": [[0.1, 0.9]]},
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "unknown_field"
