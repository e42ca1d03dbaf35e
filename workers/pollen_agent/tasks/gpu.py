"""Long work on ``site.<slug>.gpu``: training jobs. Tasks stay thin."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from pollen_agent import runtime
from pollen_agent.celery_app import app
from pollen_agent.errors import RetryableError, UserError, read_contract
from pollen_contracts import tasks as names
from pollen_contracts.specs import ClaimRequest, JobClaimed

logger = logging.getLogger(__name__)

MAX_RETRIES = 5


@app.task(name=names.TRAIN, bind=True, max_retries=MAX_RETRIES, acks_late=True)
def train(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Claim the job (only one worker can win), then run it; user errors end it, passing faults retry."""
    from pollen_agent.jobs.training import JobLost, run_training_job

    slug, job_id = payload["site"], payload["job_id"]
    site_hub = runtime.hub_for(slug)
    request = ClaimRequest(claim_id=self.request.id or f"job-{job_id}", worker=socket.gethostname())
    claim = site_hub.post(f"agent/jobs/{job_id}/claim/", request.to_dict())
    if not claim.get("claimed"):
        return {"job_id": job_id, "skipped": "claimed elsewhere or finished"}
    job_hub = site_hub.with_token(str(claim.get("job_token", "")))
    work_dir = Path(runtime.config().work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    try:
        claimed = read_contract(JobClaimed, claim, what="training job")
        run_training_job(
            spec=claimed.spec, hub=job_hub, storage=runtime.storage_for(slug), work_dir=work_dir
        )
    except JobLost:
        return {"job_id": job_id, "skipped": "taken over by another worker"}
    except UserError as exc:
        job_hub.post(f"agent/jobs/{job_id}/fail/", {"code": exc.code, "message": exc.message})
        return {"job_id": job_id, "failed": exc.code}
    except SoftTimeLimitExceeded:
        job_hub.post(
            f"agent/jobs/{job_id}/fail/",
            {
                "code": "time_limit",
                "message": (
                    "The job ran longer than this site allows. Try the quick model, fewer epochs or a smaller image size."
                ),
            },
        )
        return {"job_id": job_id, "failed": "time_limit"}
    except RetryableError as exc:
        if self.request.retries >= MAX_RETRIES:
            job_hub.post(
                f"agent/jobs/{job_id}/fail/",
                {
                    "code": exc.code,
                    "message": (
                        f"{exc.message} It kept failing after several tries; ask your site IT to check the storage "
                        "and network. Work saved so far (checkpoints) is kept."
                    ),
                },
            )
            return {"job_id": job_id, "failed": exc.code}
        # The same delivery re-claims the job and resumes from the last checkpoint.
        raise self.retry(exc=exc, countdown=min(120, 5 * 2**self.request.retries)) from exc
    except Exception as exc:
        logger.exception("job %s crashed", job_id)
        job_hub.post(
            f"agent/jobs/{job_id}/fail/",
            {
                "code": "internal_error",
                "message": (
                    "Something went wrong on the site agent. The error was logged for your site IT "
                    f"({exc.__class__.__name__})."
                ),
            },
        )
        return {"job_id": job_id, "failed": "internal_error"}
    return {"job_id": job_id, "succeeded": True}
