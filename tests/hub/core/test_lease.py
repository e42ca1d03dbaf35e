"""One lease for every kind of work (``pollen.core.lease``, issue 17).

Whatever the work (a training job, each kind of marketplace work, a site's turn in a
cross-site round), a worker that keeps dying gets the same treatment: the clock sends the
work again until ``POLLEN_LEASE_MAX_ATTEMPTS`` claims were made, then it ends as
``worker_lost`` with a reason that names the attempts. The attempt count is in the public API
the dashboard reads. The agent's side is played through the real agent API.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from pollen.accounts.caller import caller_for_user
from pollen.core.lease import Leased
from pollen.federation.models import HeldOutEvaluation, Participant
from pollen.marketplace.models import ModelExport, Prediction, PublishedVersion, SiteEvaluation
from pollen.ops.clock import clock_tick
from pollen.training.models import Job
from pollen.training.services import job_create
from pollen.zoo.builtin import ensure_builtin_entries
from pollen.zoo.models import ZooEntry
from pollen_contracts import tasks
from tests.hub.federation.conftest import (  # noqa: F401 - fixtures used through getfixturevalue
    admin_c,
    agent_for,
    finished,
    make_dataset,
    model_store_dir,
    queued,
    sent,
    site_c,
)
from tests.hub.federation.flows import federated_job_started
from tests.hub.marketplace.conftest import (  # noqa: F401 - fixtures used through getfixturevalue
    agent_client,
    publish,
    site_images,
    store,
    train,
)

pytestmark = pytest.mark.django_db

MAX_ATTEMPTS = 3


@dataclass
class Work:
    """One piece of work, seen the way its worker and its user see it."""

    model: type[Leased]
    pk: int
    claim: Callable[[str], bool]  # a delivery claims it through the agent API
    public: Callable[[], dict[str, Any]]  # what the public API shows of it
    deliveries: Callable[[], int]  # messages sent for it so far
    waiting: str  # its status while it waits for a worker
    ended: Callable[[dict[str, Any]], tuple[str, str, str]]  # status, error code, reason


def _sent_for(sent_tasks: list, name: str, **payload: Any) -> Callable[[], int]:
    def count() -> int:
        return sum(
            1
            for task, body, _ in sent_tasks
            if (not name or task == name) and all(body.get(k) == v for k, v in payload.items())
        )

    return count


def _claim(client: Any, path: str) -> Callable[[str], bool]:
    def claim(claim_id: str) -> bool:
        answer = client.post(path, {"claim_id": claim_id, "worker": "w"}, format="json")
        assert answer.status_code == 200, answer.content
        return bool(answer.json()["claimed"])

    return claim


def _get(client: Any, path: str) -> Callable[[], dict[str, Any]]:
    def get() -> dict[str, Any]:
        answer = client.get(path)
        assert answer.status_code == 200, answer.content
        return dict(answer.json())

    return get


def _row_end(body: dict[str, Any]) -> tuple[str, str, str]:
    return body["status"], body["error_code"], body["message"]


def _training_job(request: Any) -> Work:
    clinician = request.getfixturevalue("clinician_a")
    ensure_builtin_entries()
    job = job_create(
        caller=caller_for_user(clinician.user),
        dataset=make_dataset(clinician.site),
        starting_point=ZooEntry.objects.get(slug="small-cnn-random"),
    )
    user = request.getfixturevalue("client_for")(clinician)
    return Work(
        model=Job,
        pk=job.pk,
        claim=_claim(agent_client(clinician.site), f"/api/v1/agent/jobs/{job.pk}/claim/"),
        public=_get(user, f"/api/v1/jobs/{job.pk}/"),
        deliveries=_sent_for(request.getfixturevalue("sent_tasks"), tasks.TRAIN, job_id=job.pk),
        waiting="queued",
        ended=_row_end,
    )


def _marketplace(request: Any, kind: str, model: type[Leased], payload_kind: str) -> Work:
    """Marketplace work at site A: a publication copy, or work on a published model."""
    clinician = request.getfixturevalue("clinician_a")
    user = request.getfixturevalue("client_for")(clinician)
    request.getfixturevalue("store")
    trained = request.getfixturevalue("train")(clinician.site)
    if kind == "publications":
        created = user.post(
            "/api/v1/marketplace/versions/", {"model_version": trained.version.pk}, format="json"
        )
        public, waiting = "/api/v1/marketplace/versions/{}/", "pending"
    else:
        version = request.getfixturevalue("publish")(clinician, trained)
        images = request.getfixturevalue("site_images")(clinician.site, n=4)
        body = {"published_version": version["id"], "dataset": images.pk}
        path, public = {
            "predictions": ("/api/v1/predictions/", "/api/v1/predictions/{}/"),
            "evaluations": (
                "/api/v1/marketplace/evaluations/",
                "/api/v1/marketplace/evaluations/{}/",
            ),
            "exports": (
                f"/api/v1/marketplace/versions/{version['id']}/exports/",
                "/api/v1/marketplace/exports/{}/",
            ),
        }[kind]
        created = user.post(path, {} if kind == "exports" else body, format="json")
        waiting = "queued"
    assert created.status_code in (201, 202), created.content
    pk = created.json()["id"]
    agent = agent_client(clinician.site)
    return Work(
        model=model,
        pk=pk,
        claim=_claim(agent, f"/api/v1/agent/marketplace/{kind}/{pk}/claim/"),
        public=_get(user, public.format(pk)),
        deliveries=_sent_for(request.getfixturevalue("sent_tasks"), "", kind=payload_kind, id=pk),
        waiting=waiting,
        ended=_row_end,
    )


def _held_out_check(request: Any) -> Work:
    job_id = request.getfixturevalue("finished")()
    c_admin = request.getfixturevalue("admin_c")
    check = HeldOutEvaluation.objects.get(job_id=job_id, site=c_admin.site)
    agent = request.getfixturevalue("token_client")(c_admin.site, kind="agent")
    job = _get(request.getfixturevalue("client_for")(c_admin), f"/api/v1/federated-jobs/{job_id}/")
    return Work(
        model=HeldOutEvaluation,
        pk=check.pk,
        claim=_claim(agent, f"/api/v1/agent/marketplace/held-out-evaluations/{check.pk}/claim/"),
        public=lambda: next(r for r in job()["held_out"] if r["site"] == "site-c"),
        deliveries=_sent_for(
            request.getfixturevalue("sent_tasks"), "", kind="held_out", id=check.pk
        ),
        waiting="queued",
        ended=_row_end,
    )


def _round_turn(request: Any) -> Work:
    """Site C's turn in round 1 of a FedAvg job with site A (A prepared the start)."""
    a_admin, c_admin = request.getfixturevalue("admin_a"), request.getfixturevalue("admin_c")
    client_for = request.getfixturevalue("client_for")
    agents = request.getfixturevalue("agent_for")
    request.getfixturevalue("model_store_dir")
    round_sent = request.getfixturevalue("sent")
    job_id, _, agent_c = federated_job_started(
        client_for, a_admin, c_admin, agents, rounds=1, min_participants=1
    )
    job = _get(client_for(c_admin), f"/api/v1/federated-jobs/{job_id}/")

    def public() -> dict[str, Any]:
        body = job()
        row = next(p for p in body["participants"] if p["site"] == "site-c")
        round_1 = next(r for r in body["round_details"] if r["number"] == 1)
        update = next((u for u in round_1["updates"] if u["site"] == "site-c"), None)
        return {"status": row["work_state"], "attempt": row["attempt"], "update": update}

    def ended(body: dict[str, Any]) -> tuple[str, str, str]:
        update = body["update"] or {"code": "", "reason": ""}
        return body["status"], update["code"], update["reason"]

    return Work(
        model=Participant,
        pk=Participant.objects.get(job_id=job_id, site=c_admin.site).pk,
        claim=lambda claim_id: bool(agent_c.claim(job_id, 1, claim_id).json()["claimed"]),
        public=public,
        deliveries=lambda: len([t for t in round_sent.to("site-c") if t["round"] == 1]),
        waiting="queued",
        ended=ended,
    )


KINDS: dict[str, Callable[[Any], Work]] = {
    "training job": _training_job,
    "publication": lambda r: _marketplace(r, "publications", PublishedVersion, "publication"),
    "prediction": lambda r: _marketplace(r, "predictions", Prediction, "prediction"),
    "site evaluation": lambda r: _marketplace(r, "evaluations", SiteEvaluation, "evaluation"),
    "export": lambda r: _marketplace(r, "exports", ModelExport, "export"),
    "held-out check": _held_out_check,
    "cross-site round turn": _round_turn,
}


@pytest.fixture
def tick(settings, django_capture_on_commit_callbacks) -> Callable[[], None]:
    """The hub's clock ticks once; messages it queues on commit are sent."""
    settings.CLOCK_AGENT_SEEN_SECONDS = 0  # the site's agent answers

    def run() -> None:
        with django_capture_on_commit_callbacks(execute=True):
            report = clock_tick()
        assert report is not None and not report.failed, report

    return run


def _worker_dies(work: Work) -> None:
    """The worker holding the claim was killed: nobody renews its lease any more."""
    work.model._default_manager.filter(pk=work.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )


@pytest.mark.parametrize("kind", list(KINDS))
def test_work_whose_worker_keeps_dying_is_sent_again_then_ends_as_worker_lost(
    kind, request, settings, tick
):
    settings.LEASE_MAX_ATTEMPTS = MAX_ATTEMPTS
    work = KINDS[kind](request)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        assert work.claim(f"delivery-{attempt}"), f"delivery {attempt} wins the claim"
        assert not work.claim("someone-else"), "one claim at a time"
        assert work.claim(f"delivery-{attempt}"), "the same delivery may claim again"
        assert work.public()["attempt"] == attempt, "a retry by the same delivery is no new attempt"
        before = work.deliveries()
        _worker_dies(work)
        tick()
        if attempt < MAX_ATTEMPTS:
            assert work.deliveries() == before + 1, f"sent again after attempt {attempt}"
            assert work.public()["status"] == work.waiting

    assert work.deliveries() == before, "not sent again once the attempts ran out"
    body = work.public()
    status, code, reason = work.ended(body)
    assert (status, code, body["attempt"]) == ("failed", "worker_lost", MAX_ATTEMPTS)
    assert f"stopped {MAX_ATTEMPTS} times" in reason and "site IT" in reason, reason
    assert not work.claim("late-delivery"), "a dead letter is never claimed again"
    tick()
    assert work.ended(work.public()) == (status, code, reason), "and stays as it ended"
