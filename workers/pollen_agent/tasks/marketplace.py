"""Work on ``site.<slug>.infer``: publish, predict, evaluate, export, held-out checks. Thin tasks.

Each task claims its work item on the hub (a compare-and-set only one worker wins), keeps
the claim alive while it runs a function from ``pollen_agent.jobs`` (``ClaimLease``) and
reports the result. User errors end the work with a
clear reason; passing faults are retried, and the same delivery re-claims the item.
"""

from __future__ import annotations

import logging
import shutil
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from pollen_agent import runtime
from pollen_agent.celery_app import app
from pollen_agent.errors import RetryableError, UserError, read_contract
from pollen_agent.hub_client import HubClient
from pollen_agent.storage.base import Storage
from pollen_agent.tasks.claim_lease import ClaimLease
from pollen_contracts import tasks as names
from pollen_contracts.contract import Contract
from pollen_contracts.specs import WORK_SPECS, ClaimRequest, WorkClaimed, WorkFailure

logger = logging.getLogger(__name__)

MAX_RETRIES = 5
Runner = Callable[[Any, HubClient, Storage, Path], Contract]


# The tasks whose models this agent publishes, applies, evaluates and exports, by kind of work
# (the rest of segmentation follows; the hub refuses it first: pollen.core.task_flows).
MARKETPLACE_TASKS = ("classification",)
TASKS_BY_SEGMENT = {
    kind: ("classification", "segmentation")
    for kind in ("predictions", "publications", "evaluations", "exports", "held-out-evaluations")
}


def _publish(spec: Any, hub: HubClient, storage: Storage, work: Path) -> Contract:
    from pollen_agent.jobs.publish import run_publication

    return run_publication(spec=spec, storage=storage)


def _export(spec: Any, hub: HubClient, storage: Storage, work: Path) -> Contract:
    from pollen_agent.jobs.export import run_export

    return run_export(spec=spec, storage=storage, work=work)


def _predict(spec: Any, hub: HubClient, storage: Storage, work: Path) -> Contract:
    from pollen_agent.jobs.predict import run_prediction

    return run_prediction(spec=spec, storage=storage, work=work)


def _evaluate(spec: Any, hub: HubClient, storage: Storage, work: Path) -> Contract:
    from pollen_agent.jobs.evaluate import run_evaluation

    return run_evaluation(spec=spec, hub=hub, storage=storage, work=work)


def _held_out(spec: Any, hub: HubClient, storage: Storage, work: Path) -> Contract:
    from pollen_agent.jobs.held_out import run_held_out

    return run_held_out(spec=spec, hub=hub, storage=storage, work=work)


# payload "kind" -> (the hub's path segment, the runner)
KINDS: dict[str, tuple[str, Runner]] = {
    "publication": ("publications", _publish),
    "export": ("exports", _export),
    "prediction": ("predictions", _predict),
    "evaluation": ("evaluations", _evaluate),
    "held_out": ("held-out-evaluations", _held_out),
}


def run_work(task: Any, payload: dict[str, Any], *, allowed: set[str]) -> dict[str, Any]:
    """Claim, run and report one work item; returns a small summary for the result backend."""
    kind = payload.get("kind", "")
    if kind not in allowed:
        logger.error("unknown marketplace work %r on %s", kind, task.name)
        return {"skipped": f"unknown kind {kind!r}"}
    segment, runner = KINDS[kind]
    slug, pk = payload["site"], int(payload["id"])
    base = f"agent/marketplace/{segment}/{pk}"
    hub = runtime.hub_for(slug)
    claim_id = task.request.id or f"{kind}-{pk}"
    try:
        request = ClaimRequest(claim_id=claim_id, worker=socket.gethostname())
        claim = hub.post(f"{base}/claim/", request.to_dict())
    except UserError as exc:  # gone, or not ours: nothing to do
        return {"skipped": exc.code}
    if not claim.get("claimed"):
        return {"skipped": claim.get("failed") or "claimed elsewhere or finished"}
    work_dir = Path(runtime.config().work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{kind}-{pk}-", dir=work_dir))

    def fail(code: str, message: str) -> dict[str, Any]:
        failure = WorkFailure(claim_id=claim_id, code=code[:50], message=message[:2000])
        hub.post(f"{base}/fail/", failure.to_dict())
        return {kind: pk, "failed": code}

    lease = ClaimLease(hub, base, claim_id, claim.get("lease_seconds"))
    try:
        claimed = read_contract(WorkClaimed, claim, what=f"{kind} claim")
        spec = read_contract(
            WORK_SPECS[segment],
            claimed.spec,
            what=f"{kind} spec",
            tasks=TASKS_BY_SEGMENT.get(segment, MARKETPLACE_TASKS),
        )
        with lease:
            result = runner(spec, hub, runtime.storage_for(slug), work)
        if lease.lost.is_set():
            return {kind: pk, "skipped": "another worker took this work over"}
        hub.post(f"{base}/complete/", {"claim_id": claim_id, **result.to_dict()})
    except UserError as exc:
        return fail(exc.code, exc.message)
    except SoftTimeLimitExceeded:
        return fail("time_limit", "This took longer than the site allows. Try fewer images.")
    except RetryableError as exc:
        if task.request.retries >= MAX_RETRIES:
            return fail(exc.code, f"{exc.message} It kept failing; ask your site IT to check.")
        raise task.retry(exc=exc, countdown=min(60, 2 * 2**task.request.retries)) from exc
    except Exception as exc:
        logger.exception("%s %s crashed", kind, pk)
        return fail(
            "internal_error",
            "Something went wrong on the site agent. The error was logged for your site IT "
            f"({exc.__class__.__name__}).",
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {kind: pk, "succeeded": True}


@app.task(name=names.PUBLISH, bind=True, max_retries=MAX_RETRIES, acks_late=True)
def publish(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Copy a model into the hub's model store through presigned URLs."""
    return run_work(self, payload, allowed={"publication"})


@app.task(name=names.EXPORT, bind=True, max_retries=MAX_RETRIES, acks_late=True)
def export(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Export a model to ONNX at this site, check it against PyTorch, store it in the hub's model store."""
    return run_work(self, payload, allowed={"export"})


@app.task(name=names.PREDICT, bind=True, max_retries=MAX_RETRIES, acks_late=True)
def predict(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Apply a model to images in this site's storage; probabilities and overlay keys go back."""
    return run_work(self, payload, allowed={"prediction"})


@app.task(name=names.EVALUATE, bind=True, max_retries=MAX_RETRIES, acks_late=True)
def evaluate(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Evaluate a published model on a labelled dataset at this site; aggregate metrics go back."""
    return run_work(self, payload, allowed={"evaluation"})


@app.task(name=names.FEDERATED_HELD_OUT, bind=True, max_retries=MAX_RETRIES, acks_late=True)
def federated_held_out(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Check a finished cross-site model, and this site's local one, on its held-out images."""
    return run_work(self, payload, allowed={"held_out"})
