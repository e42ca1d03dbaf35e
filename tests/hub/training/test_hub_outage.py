"""A real agent trains through a 60-second hub outage and loses no epoch (issue 16, item 7).

The agent reaches the live hub only through a TCP proxy; the test closes the proxy
mid-epoch for 60 seconds (connections refused, as when the hub's process is stopped), then
opens it again. Every epoch must be in the history exactly once, the job must succeed, and
the job may say "Resumed from epoch N" only if a worker really loaded that checkpoint.
"""

from __future__ import annotations

import re
import time

import pytest

from pollen.training.models import Job
from tests.hub.training.conftest import square_image
from tests.support.agent import start_agent, wait_agent_ready, wait_until
from tests.support.clock import running_clock
from tests.support.flows import upload_dataset, wait_job
from tests.support.outage import TcpProxy

pytestmark = [pytest.mark.agent, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

OUTAGE_SECONDS = 60
EPOCHS = 6


@pytest.fixture
def proxy(live_server):
    host, port = live_server.url.removeprefix("http://").rsplit(":", 1)
    proxy = TcpProxy(host, int(port))
    yield proxy
    proxy.close()


@pytest.fixture
def agent(transactional_db, live_server, site_a, proxy, settings, tmp_path):
    from pollen.accounts.services import token_create
    from pollen.zoo.builtin import ensure_builtin_entries
    from tests.support.agent import purge_site_queues

    settings.LOCAL_STORAGE_ROOT = tmp_path / "storage"
    settings.LOCAL_STORAGE_ENABLED = True
    ensure_builtin_entries()
    _, plaintext = token_create(caller=None, site=site_a, name="agent", kind="agent")
    purge_site_queues(["site-a"])
    process = start_agent(
        hub_url=proxy.url,  # every call to the hub goes through the proxy
        tmp=tmp_path,
        sites={
            "site-a": {
                "token": plaintext,
                "storage": {
                    "kind": "fs",
                    "root": str(tmp_path / "storage"),
                    "base_url": live_server.url,
                    "secret": settings.LOCAL_STORAGE_SECRET,
                    "site": "site-a",
                },
            }
        },
        # The default retry time (10 minutes) outlasts the outage; a fast heartbeat keeps
        # the site's agent recently seen, so the hub's clock may hand its lapsed job over.
        extra_env={"POLLEN_AGENT_HEARTBEAT_SECONDS": "1"},
    )
    wait_agent_ready(process, "site-a")
    with running_clock():  # the hub's clock, which the proxy does not cut off
        yield process
    process.stop()


def _squares(n: int) -> list[tuple[str, str, bytes, str]]:
    return [
        (f"sq{i}.png", ("left", "right")[i % 2], square_image(i % 2, i), f"P{i}") for i in range(n)
    ]


def _mid_epoch(job_id: int, epoch: int) -> bool:
    progress = Job.objects.get(pk=job_id).progress
    return progress.get("epoch") == epoch and progress.get("step", 0) >= 1


def _resumed_epochs(events: list[dict]) -> list[int]:
    return [
        int(m.group(1)) for e in events if (m := re.search(r"Resumed from epoch (\d+)", e["text"]))
    ]


@pytest.mark.parametrize(
    ("lease_seconds", "requeued"),
    [
        pytest.param(180, False, id="lease-outlasts-the-outage"),
        # The lease lapses during the outage and, as the hub comes back, it queues the job
        # again before the old worker is heard: a worker resumes the checkpoint, and the old
        # one must stop without a trace.
        pytest.param(15, True, id="lease-lapses-and-the-job-is-queued-again"),
    ],
)
def test_a_60_second_hub_outage_mid_epoch_loses_no_epoch_and_says_only_true_words(
    client_for, clinician_a, agent, proxy, settings, lease_seconds, requeued
):
    settings.JOB_LEASE_SECONDS = lease_seconds
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
            "advanced": {"epochs": EPOCHS, "input_size": 48, "seed": 2},
        },
        format="json",
    ).json()["id"]
    wait_until(
        lambda: _mid_epoch(job_id, 3), timeout=300, what="the job to be in epoch 3", interval=0.1
    )
    assert max(h["epoch"] for h in Job.objects.get(pk=job_id).history) <= 2

    proxy.outage(OUTAGE_SECONDS)
    # The hub hears nothing while it is away, though training goes on at the site.
    if requeued:
        # The hub's clock queues the job again while the hub is still cut off from the site,
        # so it surely comes before the old worker's first word.
        wait_until(
            lambda: Job.objects.get(pk=job_id).status == "queued",
            timeout=lease_seconds + 15,
            what="the clock to queue the job again once its lease lapsed",
        )
        assert proxy.outages[0][1] is None, "queued again during the outage"
    wait_until(lambda: proxy.is_up, timeout=OUTAGE_SECONDS + 10, what="the outage to end")
    down_at, up_at = proxy.outages[0]
    assert up_at is not None and up_at - down_at >= OUTAGE_SECONDS

    job = wait_job(client, job_id, statuses={"succeeded", "failed", "cancelled"}, timeout=600)
    back_for = time.monotonic() - up_at
    assert job["status"] == "succeeded", (job["error_code"], job["message"], job["events"])

    epochs = [h["epoch"] for h in job["history"]]
    assert epochs == list(range(1, EPOCHS + 1)), f"each epoch exactly once: {epochs}"
    assert job["evaluation"]["epochs_run"] == EPOCHS

    # The words are true: "Resumed from epoch N" only where a later attempt took over from
    # the checkpoint of epoch N, so epochs up to N come from earlier attempts, the rest from it.
    resumed = _resumed_epochs(job["events"])
    final = job["attempt"]
    by_epoch = {h["epoch"]: h["attempt"] for h in job["history"]}
    if final == 1:
        assert resumed == [], job["events"]
        assert set(by_epoch.values()) == {1}
    else:
        assert len(resumed) == 1 and resumed[0] >= 3, job["events"]
        assert all(by_epoch[e] < final for e in range(1, resumed[0] + 1)), by_epoch
        assert all(by_epoch[e] == final for e in range(resumed[0] + 1, EPOCHS + 1)), by_epoch
    if lease_seconds > OUTAGE_SECONDS:
        # A lease that outlasts the outage keeps the job with its worker: nothing is redone.
        assert final == 1, job["events"]
    if requeued:
        assert final == 2 and len(resumed) == 1, job["events"]
    assert back_for < 300, "the job went on promptly once the hub was back"
    # The epoch that ended during the outage waited in the outbox, tried again with backoff.
    assert "Trying again in" in agent.log_path.read_text(errors="replace"), agent.log()
