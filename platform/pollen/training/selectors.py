from __future__ import annotations

from django.db.models import QuerySet

from pollen.accounts.caller import Caller
from pollen.core.errors import NotFound
from pollen.training.models import Job, ModelVersion


def job_list(*, caller: Caller) -> QuerySet[Job]:
    return Job.objects.filter(site_id__in=caller.site_ids).select_related(
        "site", "dataset", "starting_point", "model_version"
    )


def job_get(*, caller: Caller, job_id: int) -> Job:
    job = job_list(caller=caller).filter(pk=job_id).first()
    if job is None:
        raise NotFound("There is no such training job at your sites.", code="job_not_found")
    return job


def model_version_list(*, caller: Caller) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(site_id__in=caller.site_ids).select_related(
        "site", "job", "starting_point"
    )


def model_version_get(*, caller: Caller, version_id: int) -> ModelVersion:
    version = model_version_list(caller=caller).filter(pk=version_id).first()
    if version is None:
        raise NotFound("There is no such model at your sites.", code="model_not_found")
    return version


def agent_job_get(*, caller: Caller, job_id: int) -> Job:
    """Agents see their own site's jobs; a job token sees only its own job."""
    qs = Job.objects.filter(site_id__in=caller.site_ids).select_related(
        "site", "starting_point", "parent_version"
    )
    if caller.job_id is not None:
        qs = qs.filter(pk=caller.job_id)
    job = qs.filter(pk=job_id).first()
    if job is None:
        raise NotFound("There is no such job for this agent.", code="job_not_found")
    return job
