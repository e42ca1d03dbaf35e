"""The finished cross-site model on each site's held-out images, beside the site's local model (issue 16, item 20).

The agent's side is played by the test (``FakeAgent`` for the rounds, the agent API for the check).
"""

from __future__ import annotations

from typing import Any

import pytest

from pollen.federation.models import FederatedJob, HeldOutEvaluation
from pollen_contracts.specs import HeldOutSpec

pytestmark = pytest.mark.django_db

CHECKS = "/api/v1/agent/marketplace/held-out-evaluations"


def _model(auc: float, low: float, high: float) -> dict[str, Any]:
    return {
        "n": 8,
        "class_counts": {"left": 4, "right": 4},
        "positive_class": "right",
        "auc": auc,
        "auc_ci": [low, high],
        "accuracy": 0.75,
        "accuracy_ci": [0.41, 0.93],
        "sensitivity": 0.75,
        "sensitivity_ci": [0.3, 0.95],
        "specificity": 0.75,
        "specificity_ci": [0.3, 0.95],
        "warnings": [],
    }


REPORT = {
    "federated": _model(0.9, 0.7, 1.0),
    "local": _model(0.6, 0.3, 0.9),
    "comparison": {"auc_difference": 0.3, "auc_difference_ci": [0.05, 0.5], "verdict": "better"},
}


def _check(job_id: int, slug: str) -> HeldOutEvaluation:
    return HeldOutEvaluation.objects.get(job_id=job_id, site__slug=slug)


def _claimed_at_site_c(
    job_id: int, token_client: Any, admin_c: Any
) -> tuple[HeldOutEvaluation, Any]:
    """Site C's agent claims its check; returns the check and that agent's client."""
    check = _check(job_id, "site-c")
    agent_c = token_client(admin_c.site, kind="agent")
    claim = agent_c.post(
        f"{CHECKS}/{check.pk}/claim/", {"claim_id": "k1", "worker": "w"}, format="json"
    )
    assert claim.json()["claimed"] is True
    spec = HeldOutSpec.from_dict(claim.json()["spec"])  # as the agent reads it
    assert spec.federated.kind == "hub_file" and spec.held_out_id == check.pk
    assert spec.local is not None and spec.local.kind == "hub_file"
    return check, agent_c


def test_a_finished_job_queues_a_held_out_check_at_every_site_on_its_infer_queue(finished, queued):
    job_id = finished()
    assert sorted((t["queue"], t["kind"]) for t in queued) == [
        ("site.site-a.infer", "held_out"),
        ("site.site-c.infer", "held_out"),
    ]
    assert all(t["task"] == "pollen.infer.federated_held_out" for t in queued)
    for slug in ("site-a", "site-c"):
        check = _check(job_id, slug)
        assert check.status == "queued" and check.local_source == "first_round"
    events = FederatedJob.objects.get(pk=job_id).events
    assert "held-out images" in events[-1]["text"]


def test_the_agent_reports_both_models_and_every_site_in_the_job_sees_the_numbers(
    finished, token_client, client_for, admin_a, admin_c
):
    job_id = finished()
    check = _check(job_id, "site-c")
    agent_c = token_client(admin_c.site, kind="agent")
    claim = agent_c.post(
        f"{CHECKS}/{check.pk}/claim/", {"claim_id": "k1", "worker": "w"}, format="json"
    ).json()
    spec = claim["spec"]
    assert spec["dataset_id"] == check.dataset_id and spec["label_names"] == ["left", "right"]
    assert f"federated/{job_id}/round-1/weights.safetensors" in spec["federated"]["url"]
    assert "round-1/accepted/site-c.safetensors" in spec["local"]["url"], "its own round-1 model"

    done = agent_c.post(
        f"{CHECKS}/{check.pk}/complete/", {"claim_id": "k1", **REPORT}, format="json"
    )
    assert done.status_code == 204, done.content

    body = client_for(admin_a).get(f"/api/v1/federated-jobs/{job_id}/").json()
    row = next(r for r in body["held_out"] if r["site"] == "site-c")
    assert row["site_name"] == "Cottage Hospital" and row["status"] == "succeeded"
    assert row["federated"]["auc"] == 0.9 and row["federated"]["auc_ci"] == [0.7, 1.0]
    assert row["local"]["auc"] == 0.6 and row["local_source"] == "first_round"
    assert row["comparison"]["verdict"] == "better"
    assert {r["site"]: r["status"] for r in body["held_out"]} == {
        "site-a": "queued",
        "site-c": "succeeded",
    }
    history = body["events"][-1]["text"]
    assert history.startswith("Cottage Hospital checked the final model on 8 held-out images")


def test_outsiders_cannot_read_or_write_a_sites_held_out_check(
    finished, token_client, client_for, outsider, admin_a
):
    job_id = finished()
    check = _check(job_id, "site-c")
    response = client_for(outsider).get(f"/api/v1/federated-jobs/{job_id}/")
    assert response.status_code == 404
    for agent in (
        token_client(outsider.site, kind="agent"),
        token_client(admin_a.site, kind="agent"),
    ):
        for path in ("claim/", "renew/", "complete/", "fail/"):
            answer = agent.post(f"{CHECKS}/{check.pk}/{path}", {}, format="json")
            assert answer.status_code == 404, (path, answer.content)
    assert _check(job_id, "site-c").status == "queued"


def test_a_site_whose_check_fails_leaves_the_job_finished_with_the_reason(
    finished, token_client, client_for, admin_a, admin_c
):
    job_id = finished()
    check, agent_c = _claimed_at_site_c(job_id, token_client, admin_c)
    message = "This hospital's dataset has no held-out (test) images."
    failed = agent_c.post(
        f"{CHECKS}/{check.pk}/fail/",
        {"claim_id": "k1", "code": "no_held_out_images", "message": message},
        format="json",
    )
    assert failed.status_code == 204
    body = client_for(admin_a).get(f"/api/v1/federated-jobs/{job_id}/").json()
    assert body["status"] == "succeeded" and body["final_version"] is not None
    row = next(r for r in body["held_out"] if r["site"] == "site-c")
    assert row["status"] == "failed" and row["error_code"] == "no_held_out_images"
    assert row["message"] == message and row["federated"] is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"federated": {**REPORT["federated"], "auc": 1.5}}, "federated"),
        ({"federated": {**REPORT["federated"], "per_image": [0.1, 0.9]}}, "federated"),
        ({"comparison": {**REPORT["comparison"], "verdict": "great"}}, "comparison"),
    ],
)
def test_a_report_with_a_bad_or_per_image_value_is_refused(
    finished, token_client, admin_c, change, field
):
    job_id = finished()
    check, agent_c = _claimed_at_site_c(job_id, token_client, admin_c)
    answer = agent_c.post(
        f"{CHECKS}/{check.pk}/complete/", {"claim_id": "k1", **REPORT, **change}, format="json"
    )
    assert answer.status_code == 400, answer.content
    assert field in answer.json()["error"]["fields"]
    assert _check(job_id, "site-c").status == "running"


def test_in_a_relay_only_the_first_site_has_a_model_trained_on_its_own_images(finished):
    job_id = finished(strategy="relay")
    assert _check(job_id, "site-a").local_source == "first_round"
    later = _check(job_id, "site-c")
    assert later.local_source == ""
    assert "Cottage Hospital's first turn started from the model of the hospital before it" in (
        later.local_note
    )


def test_a_job_with_held_out_results_answers_what_the_schema_says(
    finished, token_client, admin_a, admin_c
):
    import schemathesis
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections
    from schemathesis.checks import response_schema_conformance

    from pollen.accounts.services import token_create
    from pollen.wsgi import application

    job_id = finished()
    check, agent_c = _claimed_at_site_c(job_id, token_client, admin_c)
    agent_c.post(f"{CHECKS}/{check.pk}/complete/", {"claim_id": "k1", **REPORT}, format="json")
    _, token = token_create(caller=None, site=admin_a.site, name="schema", role="clinician")
    # In this test's transaction, as the test client runs (see tests/hub/marketplace/test_schema_responses.py).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", application)
        case = schema["/api/v1/federated-jobs/{id}/"]["GET"].Case(path_parameters={"id": job_id})
        headers = {"Authorization": f"Bearer {token}"}
        response = case.call(headers=headers)
        case.validate_response(response, checks=[response_schema_conformance], headers=headers)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    held_out = {row["site"]: row for row in response.json()["held_out"]}
    assert held_out["site-c"]["comparison"]["verdict"] == "better"
    assert held_out["site-a"]["federated"] is None, "null, never a half-filled object"


def test_a_dataset_cannot_be_deleted_while_its_held_out_images_are_being_checked(
    finished, client_for, admin_c, token_client
):
    job_id = finished()
    check = _check(job_id, "site-c")
    refused = client_for(admin_c).delete(f"/api/v1/datasets/{check.dataset_id}/")
    assert refused.status_code == 409, refused.content
    assert refused.json()["error"]["code"] == "dataset_in_use"
    assert "held-out images" in refused.json()["error"]["message"]
    _check_done, agent_c = _claimed_at_site_c(job_id, token_client, admin_c)
    agent_c.post(f"{CHECKS}/{check.pk}/complete/", {"claim_id": "k1", **REPORT}, format="json")
    impact = client_for(admin_c).get(f"/api/v1/datasets/{check.dataset_id}/deletion-impact/")
    assert not any("held-out" in reason for reason in impact.json()["blocking"])
