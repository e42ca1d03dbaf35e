"""Each kind of work has its own line at a site, and a queued job says where it stands in it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from pollen.accounts.caller import caller_for_token, caller_for_user
from pollen.accounts.models import Site
from pollen.accounts.services import token_create
from pollen.datasets.models import Dataset
from pollen.training import claims, services
from pollen.training.models import Job, Recipe
from pollen.training.queue_place import ordinal
from pollen.zoo.models import ZooEntry
from pollen_contracts import queues, tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(sent_tasks):
    return sent_tasks


@pytest.fixture
def dataset(clinician_a, labelled_rows):
    made = Dataset.objects.create(
        site=clinician_a.site, name="squares", label_names=["left", "right"]
    )
    labelled_rows(made)
    return made


@pytest.fixture
def make_job(clinician_a, dataset, django_capture_on_commit_callbacks):
    def make(name: str, recipe: str = Recipe.FULL) -> Job:
        slug = "efficientnet-lite0-imagenet" if recipe == Recipe.QUICK else "small-cnn-random"
        with django_capture_on_commit_callbacks(execute=True):
            return services.job_create(
                caller=caller_for_user(clinician_a.user),
                dataset=dataset,
                starting_point=ZooEntry.objects.get(slug=slug),
                recipe=recipe,
                name=name,
            )

    return make


def _claim(job: Job) -> None:
    token, _ = token_create(caller=None, site=job.site, name="agent", kind="agent")
    assert claims.job_claim(caller=caller_for_token(token), job=job, claim_id="c", worker="w")


def test_a_quick_model_goes_to_its_own_queue_and_full_training_to_the_gpu_queue(
    make_job, sent, clinician_a
):
    slug = clinician_a.site.slug
    full = make_job("Chest X-ray model")
    quick = make_job("Quick look", Recipe.QUICK)
    assert sent == [
        (tasks.TRAIN, {"site": slug, "job_id": full.pk}, queues.gpu_queue(slug)),
        (tasks.TRAIN, {"site": slug, "job_id": quick.pk}, queues.quick_queue(slug)),
    ]
    assert queues.quick_queue(slug) == f"site.{slug}.quick"
    assert queues.quick_queue(slug) in queues.site_queues(slug)


def test_an_abandoned_quick_job_is_sent_back_to_the_quick_queue(
    make_job, sent, clinician_a, django_capture_on_commit_callbacks
):
    quick = make_job("Quick look", Recipe.QUICK)
    _claim(quick)
    sent.clear()
    Job.objects.filter(pk=quick.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert services.jobs_requeue_abandoned(site_id=quick.site_id) == [quick.pk]
    assert [queue for _, _, queue in sent] == [queues.quick_queue(clinician_a.site.slug)]


def test_a_long_training_run_does_not_stop_a_stale_quick_job_being_sent_again(
    make_job, sent, clinician_a, django_capture_on_commit_callbacks
):
    _claim(make_job("Chest X-ray model"))
    waiting_full, quick = make_job("Second model"), make_job("Quick look", Recipe.QUICK)
    sent.clear()
    Job.objects.filter(pk__in=[waiting_full.pk, quick.pk]).update(
        last_sent_at=timezone.now() - timedelta(hours=1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        # The full one waits behind the running one (its worker is busy); the quick one has
        # an idle worker of its own, so its message may be lost and is sent again.
        assert services.jobs_resend_stale_queued(site_id=quick.site_id) == [quick.pk]
    assert [queue for _, _, queue in sent] == [queues.quick_queue(clinician_a.site.slug)]


def test_queued_jobs_show_their_place_and_what_they_wait_for(
    make_job, sent, client_for, clinician_a
):
    Site.objects.filter(pk=clinician_a.site.pk).update(agent_last_seen_at=timezone.now())
    running = make_job("Chest X-ray model")
    _claim(running)
    second, third = make_job("Second model"), make_job("Third model")
    quick = make_job("Quick look", Recipe.QUICK)
    client = client_for(clinician_a)

    def place(job: Job) -> dict:
        return client.get(f"/api/v1/jobs/{job.pk}/").json()["queue"]

    assert place(running) is None, "a running job is in no line"
    assert place(second) == {
        "position": 1,
        "jobs_ahead": 0,
        "running": ["Chest X-ray model"],
        "text": "Next in line; waiting for 'Chest X-ray model' to finish.",
    }
    assert place(third)["text"] == (
        "2nd in line; waiting for 'Chest X-ray model' to finish and for 1 run queued before it."
    )
    # The quick model has a line and a worker of its own: nothing is ahead of it.
    assert place(quick)["position"] == 1
    assert place(quick)["text"] == "Next in line; waiting for your site's computer to start it."

    listed = {
        row["id"]: row["queue"]
        for row in client.get("/api/v1/jobs/?page_size=10").json()["results"]
    }
    assert listed[third.pk]["position"] == 2 and listed[running.pk] is None
    assert client.post(f"/api/v1/jobs/{second.pk}/cancel/").status_code == 200
    assert place(third)["position"] == 1, "a cancelled job leaves the line"


def test_a_quiet_agent_is_named_in_the_wait(make_job, sent, client_for, clinician_a):
    Site.objects.filter(pk=clinician_a.site.pk).update(
        agent_last_seen_at=timezone.now() - timedelta(hours=1)
    )
    job = make_job("Chest X-ray model")
    text = client_for(clinician_a).get(f"/api/v1/jobs/{job.pk}/").json()["queue"]["text"]
    assert text.startswith("Next in line; waiting for your site's computer to start it.")
    assert "ask your site IT" in text


def test_an_outsider_learns_nothing_of_a_sites_line(make_job, sent, client_for, outsider):
    job = make_job("Chest X-ray model")
    assert client_for(outsider).get(f"/api/v1/jobs/{job.pk}/").status_code == 404


def test_ordinals():
    words = [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111, 112)]
    assert words == [
        "1st",
        "2nd",
        "3rd",
        "4th",
        "11th",
        "12th",
        "13th",
        "21st",
        "22nd",
        "101st",
        "111th",
        "112th",
    ]
