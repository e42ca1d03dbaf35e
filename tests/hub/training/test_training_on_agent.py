"""Train on a real site agent: claim, progress, checkpoints, evaluation, model folder in site storage."""

from __future__ import annotations

import json

import pytest
import requests

from pollen.training.models import Job, ModelVersion
from tests.hub.training.conftest import square_image
from tests.support.agent import start_agent, wait_agent_ready, wait_until
from tests.support.clock import running_clock
from tests.support.flows import upload_dataset, wait_job

pytestmark = [pytest.mark.agent, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def storage_root(tmp_path, settings):
    settings.LOCAL_STORAGE_ROOT = tmp_path / "storage"
    settings.LOCAL_STORAGE_ENABLED = True
    settings.JOB_LEASE_SECONDS = 15
    return tmp_path / "storage"


@pytest.fixture
def agent_factory(transactional_db, live_server, site_a, storage_root, settings, tmp_path):
    from pollen.accounts.services import token_create
    from pollen.zoo.builtin import ensure_builtin_entries
    from tests.support.agent import purge_site_queues

    ensure_builtin_entries()  # transactional tests flush the rows the data migration made
    _, plaintext = token_create(caller=None, site=site_a, name="agent", kind="agent")
    purge_site_queues(["site-a"])
    started = []

    def start():
        agent = start_agent(
            hub_url=live_server.url,
            tmp=tmp_path,
            sites={
                "site-a": {
                    "token": plaintext,
                    "storage": {
                        "kind": "fs",
                        "root": str(storage_root),
                        "base_url": live_server.url,
                        "secret": settings.LOCAL_STORAGE_SECRET,
                        "site": "site-a",
                    },
                }
            },
            extra_env={"POLLEN_AGENT_HEARTBEAT_SECONDS": "1"},
        )
        started.append(agent)
        wait_agent_ready(agent, "site-a")
        return agent

    with running_clock():  # it hands a dead worker's job to the next one
        yield start
    for agent in started:
        agent.stop()


def _squares(n: int) -> list[tuple[str, str, bytes, str]]:
    return [
        (f"sq{i}.png", ("left", "right")[i % 2], square_image(i % 2, i), f"P{i}") for i in range(n)
    ]


def _start_long_job(client, dataset_id: int, *, input_size: int = 48) -> int:
    """A 50-epoch job, once it is training (tests stop it long before its end)."""
    zoo = {e["slug"]: e["id"] for e in client.get("/api/v1/zoo/?page_size=100").json()["results"]}
    job_id = client.post(
        "/api/v1/jobs/",
        {
            "dataset": dataset_id,
            "starting_point": zoo["resnet18-random"],
            "advanced": {"epochs": 50, "input_size": input_size},
        },
        format="json",
    ).json()["id"]
    wait_until(
        lambda: Job.objects.get(pk=job_id).progress.get("phase") == "training",
        timeout=180,
        what="the long job to start training",
        interval=0.2,
    )
    return job_id


def test_clinician_trains_a_model_that_learns_and_is_saved_at_the_site(
    client_for, clinician_a, agent_factory, storage_root
):
    agent_factory()
    client = client_for(clinician_a)
    dataset_id = upload_dataset(
        client, site="site-a", name="squares", files=_squares(80), label_names=["left", "right"]
    )
    # The finding is the first label here: sensitivity must follow it, not the label's place.
    chosen = client.patch(
        f"/api/v1/datasets/{dataset_id}/", {"positive_class": "left"}, format="json"
    )
    assert chosen.status_code == 200, chosen.content
    zoo = {e["slug"]: e["id"] for e in client.get("/api/v1/zoo/?page_size=100").json()["results"]}
    created = client.post(
        "/api/v1/jobs/",
        {
            "dataset": dataset_id,
            "starting_point": zoo["small-cnn-random"],
            "advanced": {"epochs": 12, "seed": 1, "learning_rate": 0.01},
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    job = wait_job(client, created.json()["id"], statuses={"succeeded", "failed"}, timeout=240)
    assert job["status"] == "succeeded", (job["error_code"], job["message"])
    assert [h["epoch"] for h in job["history"]] == list(range(1, len(job["history"]) + 1))
    assert min(h["train_loss"] for h in job["history"]) < job["history"][0]["train_loss"]
    evaluation = job["evaluation"]
    assert evaluation["auc"] > 0.8, evaluation
    assert evaluation["positive_class"] == "left"
    assert evaluation["sensitivity"] == evaluation["per_class"]["left"]["sensitivity"]
    assert set(evaluation) >= {
        "accuracy",
        "balanced_accuracy",
        "sensitivity",
        "specificity",
        "confusion_matrix",
        "roc",
        "calibration_error",
    }
    assert evaluation["samples"], "sample predictions with heatmaps"
    assert (storage_root / "site-a" / evaluation["samples"][0]["overlay_key"]).is_file()
    samples = client.get(f"/api/v1/jobs/{job['id']}/samples/").json()["samples"]
    overlay = requests.get(samples[0]["overlay_url"], timeout=30)
    assert overlay.status_code == 200 and overlay.content.startswith(b"\x89PNG")

    version = ModelVersion.objects.get(pk=job["model_version"])
    folder = storage_root / "site-a" / version.storage_key
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["weights_sha256"] == version.weights_sha256
    assert manifest["label_names"] == ["left", "right"]
    assert manifest["positive_class"] == version.positive_class == "left"
    summary = json.dumps(version.training_summary)
    assert "sq1.png" not in summary and "P1" not in summary, "counts only, no filenames or patients"
    assert (folder / "weights.safetensors").is_file()
    job_folder = storage_root / "site-a" / "jobs" / Job.objects.get(pk=job["id"]).storage_name
    # The agent deletes the checkpoint only after the hub has recorded the result, so the job
    # reads "succeeded" a moment before the file goes.
    wait_until(
        lambda: not (job_folder / "checkpoint.pt").exists(),
        timeout=30,
        what="the finished job's checkpoint to be deleted",
    )
    assert (job_folder / "samples").is_dir()


def test_worker_killed_mid_job_resumes_from_its_last_checkpoint(
    client_for, clinician_a, agent_factory
):
    agent = agent_factory()
    client = client_for(clinician_a)
    dataset_id = upload_dataset(
        client, site="site-a", name="squares", files=_squares(160), label_names=["left", "right"]
    )
    zoo = {e["slug"]: e["id"] for e in client.get("/api/v1/zoo/?page_size=100").json()["results"]}
    job_id = client.post(
        "/api/v1/jobs/",
        {
            "dataset": dataset_id,
            "starting_point": zoo["resnet18-random"],
            "advanced": {"epochs": 6, "input_size": 48, "seed": 2},
        },
        format="json",
    ).json()["id"]
    wait_until(
        lambda: (Job.objects.get(pk=job_id).checkpoint_epoch or 0) >= 2,
        timeout=300,
        what="two checkpoints",
        interval=0.2,
    )
    agent.kill_hard()
    killed_at = Job.objects.get(pk=job_id).checkpoint_epoch
    assert Job.objects.get(pk=job_id).status == "running"

    agent_factory()
    job = wait_job(client, job_id, statuses={"succeeded", "failed"}, timeout=300)
    assert job["status"] == "succeeded", (job["error_code"], job["message"], job["events"])
    assert job["attempt"] >= 2, job["events"]
    assert any("Resumed" in e["text"] for e in job["events"])
    by_epoch = {h["epoch"]: h for h in job["history"]}
    assert sorted(by_epoch) == list(range(1, len(by_epoch) + 1))
    final = job["attempt"]
    assert all(by_epoch[e]["attempt"] < final for e in range(1, killed_at + 1)), (
        "epochs before the kill kept"
    )
    # A restart from scratch would record epoch 1 again under the final attempt.
    assert min(e for e, h in by_epoch.items() if h["attempt"] == final) > 1, (
        "resumed, not restarted"
    )


def test_cancel_keeps_the_best_model_so_far_or_says_plainly_that_nothing_is_kept(
    client_for, clinician_a, agent_factory
):
    agent_factory()
    client = client_for(clinician_a)
    dataset_id = upload_dataset(
        client, site="site-a", name="squares", files=_squares(160), label_names=["left", "right"]
    )
    # Stopped within its first round: larger images make it last well over the second or so
    # a cancel takes to be heard.
    job_id = _start_long_job(client, dataset_id, input_size=128)
    assert client.post(f"/api/v1/jobs/{job_id}/cancel/").status_code == 200
    job = wait_job(client, job_id, statuses={"cancelled", "failed", "succeeded"}, timeout=60)
    assert (job["status"], job["history"]) == ("cancelled", []), job["message"]
    assert job["message"] == (
        "Stopped by a user before the first round of learning ended, so no model was kept."
    )
    assert not ModelVersion.objects.filter(job_id=job_id).exists()

    # Stopped once a round has ended: the best model so far is checked and kept.
    job_id = _start_long_job(client, dataset_id)
    wait_until(
        lambda: Job.objects.get(pk=job_id).history,
        timeout=120,
        what="the first round of learning to end",
        interval=0.2,
    )
    assert client.post(f"/api/v1/jobs/{job_id}/cancel/").status_code == 200
    job = wait_job(client, job_id, statuses={"cancelled", "failed", "succeeded"}, timeout=90)
    assert job["status"] == "cancelled", job["message"]
    assert job["model_version"] is not None, "the best model so far is kept"
    ran = job["evaluation"]["epochs_run"]
    assert job["evaluation"]["stop_reason"] == "cancelled" and 1 <= ran < 50
    assert job["message"].startswith(f"Stopped by a user after {ran} of 50 rounds of learning.")
    assert job["evaluation"]["evaluated_on"] == "test" and job["evaluation"]["auc"] is not None
    model = client.get(f"/api/v1/models/{job['model_version']}/").json()
    assert model["training_summary"]["stopped_early"]["epochs_run"] == ran


def test_a_quick_model_does_not_wait_behind_a_long_training_run(
    client_for, clinician_a, agent_factory
):
    agent_factory()
    client = client_for(clinician_a)
    dataset_id = upload_dataset(
        client, site="site-a", name="squares", files=_squares(40), label_names=["left", "right"]
    )
    long_id = _start_long_job(client, dataset_id)
    zoo = {e["slug"]: e["id"] for e in client.get("/api/v1/zoo/?page_size=100").json()["results"]}
    quick = client.post(
        "/api/v1/jobs/",
        {
            "dataset": dataset_id,
            "starting_point": zoo["efficientnet-lite0-imagenet"],
            "recipe": "quick",
            "advanced": {"input_size": 64},
        },
        format="json",
    )
    assert quick.status_code == 201, quick.content
    job = wait_job(client, quick.json()["id"], statuses={"succeeded", "failed"}, timeout=150)
    assert job["status"] == "succeeded", (job["error_code"], job["message"])
    # Its own worker took it while the long run still held the training worker.
    assert Job.objects.get(pk=long_id).status == "running"
    assert Job.objects.get(pk=long_id).finished_at is None
    client.post(f"/api/v1/jobs/{long_id}/cancel/")


def test_imported_weights_that_do_not_fit_the_architecture_fail_the_job_clearly(
    client_for, clinician_a, agent_factory, tmp_path, settings, live_server, request
):
    import numpy as np
    from django.core.management import call_command
    from safetensors.numpy import save_file

    settings.MODEL_STORE = {**settings.MODEL_STORE, "kind": "fs"}
    settings.PUBLIC_URL = live_server.url  # presigned model-store links point at this hub
    from pollen.core import model_store

    model_store.model_store.cache_clear()
    request.addfinalizer(model_store.model_store.cache_clear)
    bad = tmp_path / "wrong.safetensors"
    save_file({"not.a.layer": np.zeros((3, 3), dtype=np.float32)}, str(bad))
    call_command(
        "zoo_import",
        str(bad),
        slug="wrong-weights",
        name="Wrong weights",
        architecture="small_cnn",
        licence="test only",
    )
    agent_factory()
    client = client_for(clinician_a)
    dataset_id = upload_dataset(
        client, site="site-a", name="squares", files=_squares(40), label_names=["left", "right"]
    )
    entry = next(
        e
        for e in client.get("/api/v1/zoo/?source=file").json()["results"]
        if e["slug"] == "wrong-weights"
    )
    created = client.post(
        "/api/v1/jobs/", {"dataset": dataset_id, "starting_point": entry["id"]}, format="json"
    )
    assert created.status_code == 201, created.content
    job_id = created.json()["id"]
    job = wait_job(client, job_id, statuses={"succeeded", "failed"}, timeout=120)
    assert job["status"] == "failed"
    assert job["error_code"] == "weights_mismatch", job["message"]
    assert job["message"] and "Traceback" not in job["message"]


def test_a_corrupt_checkpoint_is_set_aside_and_the_job_still_finishes(
    client_for, clinician_a, agent_factory, storage_root
):
    client = client_for(clinician_a)
    agent = agent_factory()
    dataset_id = upload_dataset(
        client, site="site-a", name="squares", files=_squares(40), label_names=["left", "right"]
    )
    agent.stop()  # queue the job while no worker can take it, then damage its checkpoint
    zoo = {e["slug"]: e["id"] for e in client.get("/api/v1/zoo/?page_size=100").json()["results"]}
    job_id = client.post(
        "/api/v1/jobs/",
        {
            "dataset": dataset_id,
            "starting_point": zoo["small-cnn-random"],
            "advanced": {"epochs": 2},
        },
        format="json",
    ).json()["id"]
    checkpoint = (
        storage_root / "site-a" / f"jobs/{Job.objects.get(pk=job_id).storage_name}/checkpoint.pt"
    )
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.write_bytes(b"this is not a checkpoint")
    agent_factory()
    job = wait_job(client, job_id, statuses={"succeeded", "failed"}, timeout=180)
    assert job["status"] == "succeeded", job["message"]
    assert [h["epoch"] for h in job["history"]] == [1, 2]


def test_a_prediction_does_not_wait_for_a_running_training_job(
    client_for, clinician_a, agent_factory
):
    """Training and applying models have their own queues and workers at the site."""
    agent_factory()
    client = client_for(clinician_a)
    dataset_id = upload_dataset(
        client, site="site-a", name="squares", files=_squares(40), label_names=["left", "right"]
    )
    zoo = {e["slug"]: e["id"] for e in client.get("/api/v1/zoo/?page_size=100").json()["results"]}
    first = client.post(
        "/api/v1/jobs/",
        {
            "dataset": dataset_id,
            "starting_point": zoo["small-cnn-random"],
            "advanced": {"epochs": 2},
        },
        format="json",
    ).json()["id"]
    trained = wait_job(client, first, statuses={"succeeded", "failed"}, timeout=240)
    assert trained["status"] == "succeeded", trained["message"]

    long_job = _start_long_job(client, dataset_id)
    created = client.post(
        "/api/v1/predictions/",
        {"model_version": trained["model_version"], "dataset": dataset_id},
        format="json",
    )
    assert created.status_code == 202, created.content
    result = wait_until(
        lambda: (
            body
            if (body := client.get(f"/api/v1/predictions/{created.json()['id']}/?wait=5").json())[
                "status"
            ]
            in {"succeeded", "failed"}
            else None
        ),
        timeout=120,
        what="the prediction to finish",
    )
    assert result["status"] == "succeeded", result["message"]
    assert len(result["results"]) == 40
    assert Job.objects.get(pk=long_job).status == "running", "the training job is still going"
    assert client.post(f"/api/v1/jobs/{long_job}/cancel/").status_code == 200
    stopped = wait_job(client, long_job, statuses={"cancelled", "failed", "succeeded"}, timeout=60)
    assert stopped["status"] == "cancelled"
