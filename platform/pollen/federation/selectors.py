"""Reads for federated jobs: a caller sees the jobs in which one of its sites takes part."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from pollen.accounts.caller import Caller
from pollen.core.errors import NotFound
from pollen.federation.models import FederatedJob, HeldOutEvaluation, Participant, Round, Update


def federated_job_list(*, caller: Caller) -> QuerySet[FederatedJob]:
    ids = Participant.objects.filter(site_id__in=caller.site_ids).values("job_id")
    return (
        FederatedJob.objects.filter(pk__in=ids)
        .select_related("initiator_site", "starting_point")
        .prefetch_related(
            Prefetch(
                "participants",
                queryset=Participant.objects.select_related("site", "dataset"),
            ),
            Prefetch(
                "round_set",
                queryset=Round.objects.prefetch_related(
                    Prefetch("updates", queryset=Update.objects.select_related("site"))
                ),
            ),
            Prefetch("held_out", queryset=HeldOutEvaluation.objects.select_related("site")),
        )
    )


def federated_job_get(*, caller: Caller, job_id: int) -> FederatedJob:
    job = federated_job_list(caller=caller).filter(pk=job_id).first()
    if job is None:
        raise NotFound(
            "There is no such federated job at your sites.", code="federated_job_not_found"
        )
    return job


def agent_federated_job_get(*, caller: Caller, job_id: int) -> FederatedJob:
    """Agents see the jobs their site takes part in; job tokens (one training job) see none."""
    job = (
        FederatedJob.objects.filter(pk=job_id, participants__site_id__in=caller.site_ids)
        .select_related("starting_point", "start_version")
        .first()
    )
    if job is None or caller.job_id is not None:
        raise NotFound(
            "There is no such federated job for this agent.", code="federated_job_not_found"
        )
    return job
