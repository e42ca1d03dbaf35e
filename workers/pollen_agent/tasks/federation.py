"""Federated work on ``site.<slug>.gpu``: this site's turn in a cross-site round. Thin task."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from pollen_agent import runtime
from pollen_agent.celery_app import app
from pollen_agent.errors import AgentError, RetryableError, UserError, read_contract
from pollen_contracts import tasks as names
from pollen_contracts.specs import ClaimRequest, RoundClaimed

logger = logging.getLogger(__name__)

MAX_RETRIES = 5


@app.task(name=names.FEDERATED_ROUND, bind=True, max_retries=MAX_RETRIES, acks_late=True)
def federated_round(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Claim this site's turn (one worker wins), train on local images, upload weights only."""
    from pollen_agent.jobs.federated import RoundLost, run_round

    slug, job_id, number = payload["site"], payload["federated_job_id"], payload["round"]
    hub = runtime.hub_for(slug)
    base = f"agent/federated-jobs/{job_id}/rounds/{number}"
    request = ClaimRequest(
        claim_id=self.request.id or f"fed-{job_id}-{number}", worker=socket.gethostname()
    )
    claim = hub.post(f"{base}/claim/", request.to_dict())
    if not claim.get("claimed"):
        return {"federated_job_id": job_id, "round": number, "skipped": claim.get("reason", "")}
    work_dir = Path(runtime.config().work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    try:
        # Every task trains across sites (through its own steps: jobs/task_steps.py).
        spec = read_contract(RoundClaimed, claim, what="cross-site round").spec
        run_round(
            spec=spec,
            hub=hub,
            storage=runtime.storage_for(slug),
            work_dir=work_dir,
            claim_id=request.claim_id,
        )
    except RoundLost:
        return {"federated_job_id": job_id, "round": number, "skipped": "round closed"}
    except UserError as exc:
        _fail(hub, base, exc.code, exc.message)
        return {"federated_job_id": job_id, "round": number, "failed": exc.code}
    except SoftTimeLimitExceeded:
        _fail(hub, base, "time_limit", "This site's round ran longer than the site allows.")
        return {"federated_job_id": job_id, "round": number, "failed": "time_limit"}
    except RetryableError as exc:
        if self.request.retries >= MAX_RETRIES:
            _fail(hub, base, exc.code, exc.message)
            return {"federated_job_id": job_id, "round": number, "failed": exc.code}
        raise self.retry(exc=exc, countdown=min(60, 3 * 2**self.request.retries)) from exc
    except Exception as exc:
        logger.exception("federated job %s round %s crashed", job_id, number)
        _fail(
            hub,
            base,
            "internal_error",
            f"Something went wrong on the site agent ({exc.__class__.__name__}); see the agent log.",
        )
        return {"federated_job_id": job_id, "round": number, "failed": "internal_error"}
    return {"federated_job_id": job_id, "round": number, "sent": True}


def _fail(hub: Any, base: str, code: str, message: str) -> None:
    try:
        hub.post(f"{base}/fail/", {"code": code[:50], "message": message[:2000]})
    except AgentError as exc:  # the round may be closed already
        logger.warning("could not report the failure: %s", exc)
