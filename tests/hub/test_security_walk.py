"""The security walk: every operation of the OpenAPI schema, called by callers who must be refused.

Site A holds one of each kind of object. Each operation is called with its path parameters
filled with the ids of site A's objects, and a small JSON body that names them, by:

- the outsider: an administrator of site B, signed in;
- site B's agent token;
- the job token of *another* job at site A (its own dataset is not the walked one).

Every answer must be 401, 403 or 404 (refused before validation: a 400 would tell the caller
that the object exists), unless the operation is in ``ALLOWED`` with a reason. The walk covers
every operation in the schema, so a new endpoint is walked the day it is added; a new kind of
path parameter fails the walk until ``_object_for`` learns which of site A's objects it names.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from pollen.accounts.models import Invitation, Membership
from pollen.accounts.services import token_create
from pollen.datasets.models import ArchiveImport, Dataset, Image, ImageStatus
from pollen.federation.models import (
    FederatedJob,
    HeldOutEvaluation,
    Participant,
    ParticipantStatus,
)
from pollen.marketplace.models import (
    ModelExport,
    Prediction,
    PublishedModel,
    PublishedVersion,
    SiteEvaluation,
    VersionStatus,
    Visibility,
)
from pollen.training.models import Job, JobStatus, ModelVersion

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")
REFUSED = {401, 403, 404}
# Every name of site A's objects carries this marker: a list that shows it leaked a private object.
MARKER = "SITEA-PRIVATE"

# Operations a refused caller may still be answered on, and why. Keys: (path, method, persona);
# persona "*" means any of the walked callers.
ALLOWED: dict[tuple[str, str, str], str] = {
    ("/api/v1/auth/login/", "post", "*"): "signing in is public; a wrong password says nothing",
    ("/api/v1/auth/csrf/", "get", "*"): "a CSRF cookie for the dashboard's sign-in form",
    ("/api/v1/auth/me/", "get", "outsider"): "the caller's own identity and sites",
    ("/api/v1/auth/logout/", "post", "outsider"): "signs out the caller's own session",
    ("/api/v1/sites/", "get", "outsider"): "lists the caller's own sites",
    # Site B's agent token speaks for site B: these answers are about site B only.
    ("/api/v1/auth/me/", "get", "site-b-agent"): "the token's own identity and site",
    ("/api/v1/auth/logout/", "post", "site-b-agent"): "a token has no session: nothing happens",
    ("/api/v1/sites/", "get", "site-b-agent"): "lists the token's own site",
    ("/api/v1/agent/heartbeat/", "post", "site-b-agent"): "site B's agent says it is alive",
    ("/api/v1/zoo/", "get", "outsider"): "starting points are shared by every site",
    # Lists are scoped to the caller's own sites; MARKER must not appear in them.
    ("/api/v1/datasets/", "get", "outsider"): "the caller's own datasets",
    ("/api/v1/jobs/", "get", "outsider"): "the caller's own jobs",
    ("/api/v1/models/", "get", "outsider"): "the caller's own models",
    ("/api/v1/predictions/", "get", "outsider"): "the caller's own predictions",
    ("/api/v1/federated-jobs/", "get", "outsider"): "federated jobs the caller's site is in",
    ("/api/v1/marketplace/models/", "get", "outsider"): "models published to the caller's site",
    ("/api/v1/marketplace/evaluations/", "get", "outsider"): "the caller's own evaluations",
}


@dataclass
class SiteA:
    """One of each kind of site A's objects, all private to site A."""

    dataset: Dataset
    image: Image
    archive: ArchiveImport
    job: Job
    version: ModelVersion
    published_model: PublishedModel
    published_version: PublishedVersion
    prediction: Prediction
    evaluation: SiteEvaluation
    export: ModelExport
    federated_job: FederatedJob
    held_out: HeldOutEvaluation
    membership: Membership
    token_id: int
    invitation: Invitation


def _dataset(site: Any, name: str, n: int = 20) -> Dataset:
    dataset = Dataset.objects.create(
        site=site, name=f"{MARKER} {name}", label_names=["left", "right"]
    )
    Image.objects.bulk_create(
        Image(
            dataset=dataset,
            filename=f"{MARKER}-{i}.png",
            storage_key=f"datasets/{dataset.pk}/images/{i}.png",
            status=ImageStatus.ACCEPTED,
            label=("left", "right")[i % 2],
            patient_id=f"P{i}",
            sha256=f"{i:064x}",
            width=40,
            height=40,
            split=("val", "test", "train", "train", "train")[i % 5],
        )
        for i in range(n)
    )
    return dataset


def _version(site: Any, job: Job) -> ModelVersion:
    return ModelVersion.objects.create(
        site=site,
        job=job,
        name=f"{MARKER} model",
        architecture="small_cnn",
        label_names=["left", "right"],
        input_size=32,
        mean=[0.5, 0.5, 0.5],
        std=[0.5, 0.5, 0.5],
        weights_sha256="a" * 64,
        storage_key=f"models/job-{job.pk}/",
        licence="Trained from random initialisation.",
        training_summary={},
        metrics={"auc": 0.9},
    )


@pytest.fixture
def site_a_world(site_a, admin_a, clinician_a) -> SiteA:
    dataset = _dataset(site_a, "walked dataset")
    job = Job.objects.create(
        site=site_a,
        dataset=dataset,
        name=f"{MARKER} job",
        status=JobStatus.SUCCEEDED,
        label_names=["left", "right"],
    )
    version = _version(site_a, job)
    published_model = PublishedModel.objects.create(
        site=site_a,
        name=f"{MARKER} listing",
        architecture="small_cnn",
        label_names=["left", "right"],
        visibility=Visibility.SITE,
    )
    published_version = PublishedVersion.objects.create(
        published_model=published_model,
        model_version=version,
        number=1,
        status=VersionStatus.PENDING,
        weights_key="published/1/weights.safetensors",
        manifest_key="published/1/manifest.json",
        weights_sha256="a" * 64,
    )
    image = dataset.images.order_by("id").first()
    assert image is not None
    federated_job = FederatedJob.objects.create(
        initiator_site=site_a,
        name=f"{MARKER} federated",
        strategy="fedavg",
        rounds=2,
        architecture="small_cnn",
        input_size=32,
        label_names=["left", "right"],
    )
    Participant.objects.create(
        job=federated_job, site=site_a, dataset=dataset, status=ParticipantStatus.ACCEPTED
    )
    token, _ = token_create(caller=None, site=site_a, name=f"{MARKER} token", kind="system")
    return SiteA(
        dataset=dataset,
        image=image,
        archive=ArchiveImport.objects.create(
            dataset=dataset, filename=f"{MARKER}.zip", storage_key="archives/1.zip"
        ),
        job=job,
        version=version,
        published_model=published_model,
        published_version=published_version,
        prediction=Prediction.objects.create(
            site=site_a,
            model_version=version,
            dataset=dataset,
            inputs=[{"image_id": image.pk, "key": image.storage_key}],
        ),
        evaluation=SiteEvaluation.objects.create(
            site=site_a, published_version=published_version, dataset=dataset
        ),
        export=ModelExport.objects.create(site=site_a, published_version=published_version),
        federated_job=federated_job,
        held_out=HeldOutEvaluation.objects.create(job=federated_job, site=site_a, dataset=dataset),
        membership=Membership.objects.get(user=clinician_a.user, site=site_a),
        token_id=token.pk,
        invitation=Invitation.objects.create(
            site=site_a,
            email=f"{MARKER}@site-a.example",
            digest="0" * 64,
            expires_at=timezone.now() + timedelta(days=7),
        ),
    )


def _object_for(path: str, name: str, world: SiteA) -> Any:
    """Which of site A's objects a path parameter names (by the resource before it)."""
    if name == "slug":
        return "site-a"
    if name == "number":
        return 0
    resource = {
        "archive_id": "archives",
        "image_id": "images",
    }.get(name) or re.findall(r"/([a-z-]+)/\{" + name + r"\}", path)[-1]
    ids = {
        "datasets": world.dataset.pk,
        "archives": world.archive.pk,
        "images": world.image.pk,
        "jobs": world.job.pk,
        "models": (world.published_model.pk if "/marketplace/" in path else world.version.pk),
        "versions": world.published_version.pk,
        "publications": world.published_version.pk,
        "predictions": world.prediction.pk,
        "evaluations": world.evaluation.pk,
        "exports": world.export.pk,
        "federated-jobs": world.federated_job.pk,
        "held-out-evaluations": world.held_out.pk,
        "members": world.membership.pk,
        "tokens": world.token_id,
        "invitations": world.invitation.pk,
    }
    assert resource in ids, f"{path}: say which of site A's objects '{{{name}}}' names"
    return ids[resource]


def _body(path: str, method: str, world: SiteA) -> dict[str, Any]:
    """A small body that names site A's objects (collections), else an empty one."""
    if method not in {"post", "put", "patch"}:
        return {}
    bodies: dict[str, dict[str, Any]] = {
        "/api/v1/datasets/": {"site": "site-a", "name": "x", "label_names": ["a", "b"]},
        "/api/v1/jobs/": {"dataset": world.dataset.pk},
        "/api/v1/predictions/": {"model_version": world.version.pk, "dataset": world.dataset.pk},
        "/api/v1/marketplace/versions/": {"model_version": world.version.pk},
        "/api/v1/marketplace/evaluations/": {
            "published_version": world.published_version.pk,
            "dataset": world.dataset.pk,
        },
        "/api/v1/federated-jobs/": {"dataset": world.dataset.pk, "sites": ["site-a", "site-b"]},
        "/api/v1/auth/login/": {"username": "alice-admin", "password": "not-her-password"},
        "/api/v1/sites/{slug}/invitations/": {"email": "someone@example.org", "role": "admin"},
        # A made-up secret: whoever holds a real one may join site A, by design.
        "/api/v1/invitations/preview/": {"token": "inv_made-up-secret"},
        "/api/v1/invitations/accept/": {"token": "inv_made-up-secret"},
    }
    return bodies.get(path, {})


def schema_operations(client: APIClient) -> list[tuple[str, str]]:
    schema = client.get("/api/v1/schema/?format=json").json()
    return [
        (path, method)
        for path, item in schema["paths"].items()
        for method in item
        if method in METHODS
    ]


def _url(path: str, world: SiteA, *, missing: bool = False) -> str:
    """The path with site A's objects in it, or (``missing``) with ids that name nothing."""

    def fill(match: re.Match[str]) -> str:
        value = _object_for(path, match.group(1), world)
        if missing:
            return "no-such-site" if match.group(1) == "slug" else "99999999"
        return str(value)

    return re.sub(r"\{([a-z_]+)\}", fill, path)


def _call(client: APIClient, path: str, method: str, url: str, world: SiteA) -> Any:
    body = _body(path, method, world)
    return client.generic(
        method.upper(),
        url,
        json.dumps(body) if method in {"post", "put", "patch"} else "",
        content_type="application/json",
    )


def _error_code(response: Any) -> str | None:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


def _leaks(
    callers: dict[str, Any], ops: list[tuple[str, str]], world: SiteA
) -> tuple[list[str], set[tuple[str, str, str]]]:
    """Walk every operation as every caller; return what leaked and what was walked."""
    leaks, walked = [], set()
    for persona, make_client in callers.items():
        for path, method in ops:
            client = make_client()  # fresh each time: signing out must not spoil the rest
            response = _call(client, path, method, _url(path, world), world)
            walked.add((path, method, persona))
            status = response.status_code
            allowed = (path, method, persona) in ALLOWED or (path, method, "*") in ALLOWED
            if allowed and status < 500 and MARKER not in _text(response):
                continue
            if status not in REFUSED or _error_code(response) is None:
                leaks.append(
                    f"{persona} {method.upper()} {path} -> {status} {_text(response)[:160]}"
                )
                continue
            if "{" in path:
                # Site A's object must be refused exactly like one that does not exist.
                absent = _call(make_client(), path, method, _url(path, world, missing=True), world)
                if (absent.status_code, _error_code(absent)) != (status, _error_code(response)):
                    leaks.append(
                        f"{persona} {method.upper()} {path} -> {status} {_error_code(response)}, "
                        f"but {absent.status_code} {_error_code(absent)} for a missing one"
                    )
    return leaks, walked


def _text(response: Any) -> str:
    return response.content.decode(errors="replace")


@pytest.fixture
def other_job_token(site_a, clinician_a) -> str:
    """The token the real claim hands to the agent for another job, on another dataset of site A."""
    from pollen.accounts.caller import caller_for_user
    from pollen.training.services import job_create
    from pollen.zoo.models import ZooEntry

    other = job_create(
        caller=caller_for_user(clinician_a.user),
        dataset=_dataset(site_a, "other job's dataset", n=40),
        starting_point=ZooEntry.objects.get(slug="small-cnn-random"),
    )
    agent = APIClient()
    _, plaintext = token_create(caller=None, site=site_a, name="agent", kind="agent")
    agent.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    claim = agent.post(
        f"/api/v1/agent/jobs/{other.pk}/claim/", {"claim_id": "c", "worker": "w"}, format="json"
    )
    assert claim.status_code == 200 and claim.json()["claimed"], claim.content
    return str(claim.json()["job_token"])


def _bearer(plaintext: str) -> Any:
    def make() -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
        return client

    return make


def test_every_operation_refuses_outsiders_and_other_jobs_tokens(
    site_a_world, outsider, other_job_token, client_for, admin_a
):
    ops = schema_operations(client_for(admin_a))
    _, site_b_agent = token_create(caller=None, site=outsider.site, name="agent", kind="agent")
    callers = {
        "outsider": lambda: client_for(outsider),
        "site-b-agent": _bearer(site_b_agent),
        "other-job-token": _bearer(other_job_token),
    }

    leaks, walked = _leaks(callers, ops, site_a_world)

    assert not leaks, "\n".join(["These operations answered a caller who must be refused:", *leaks])
    # Every operation of the schema, agent endpoints included, was walked by every caller.
    assert walked == {(p, m, persona) for p, m in ops for persona in callers}
    assert len(ops) >= 90 and any(p.startswith("/api/v1/agent/") for p, _ in ops)


def test_allow_list_names_only_operations_that_exist(client_for, admin_a):
    ops = set(schema_operations(client_for(admin_a)))
    stale = [key for key in ALLOWED if key[:2] not in ops]
    assert not stale, f"ALLOWED names operations the schema no longer has: {stale}"


def test_job_token_reaches_exactly_what_its_job_names(site_a_world, other_job_token):
    """The token works for its own job and dataset, and for nothing else at its own site."""
    from pollen.training.models import Job

    client = _bearer(other_job_token)()
    job = Job.objects.exclude(pk=site_a_world.job.pk).get()
    own = f"/api/v1/agent/jobs/{job.pk}"

    images = client.get(f"/api/v1/agent/datasets/{job.dataset_id}/training-images/?page_size=500")
    assert images.status_code == 200 and images.json()["count"] == 40
    progress = client.post(
        f"{own}/progress/", {"phase": "training", "fraction": 0.5}, format="json"
    )
    assert progress.status_code == 200, progress.content
    epoch = client.post(f"{own}/epochs/", {"epoch": 1, "train_loss": 0.7}, format="json")
    assert epoch.status_code == 204, epoch.content

    other_images = f"/api/v1/agent/datasets/{site_a_world.dataset.pk}/training-images/"
    assert client.get(other_images).json()["error"]["code"] == "dataset_not_found"
    # Its own dataset, but not its job's to change: ingest results are the site agent's.
    for path in (
        f"/api/v1/agent/datasets/{job.dataset_id}/ingest-results/",
        "/api/v1/agent/heartbeat/",
        f"/api/v1/agent/jobs/{job.pk}/claim/",
    ):
        refused = client.post(path, {}, format="json")
        assert refused.status_code == 403, (path, refused.content)
        assert refused.json()["error"]["code"] == "job_token_out_of_scope"
    assert client.get("/api/v1/datasets/").status_code == 403
