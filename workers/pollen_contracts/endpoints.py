"""Every endpoint of the site agent's API, with the contract types of what goes each way.

Keys are the operations of the agent's OpenAPI schema (``/api/v1/agent/schema/``), so a test
(``tests/hub/core/test_agent_contract.py``) holds the two together: an endpoint without an entry
here, or a request serializer whose fields differ from its contract type, fails the suite.
"""

from __future__ import annotations

from dataclasses import dataclass

from pollen_contracts.contract import Contract
from pollen_contracts.reports import (
    ArchiveResult,
    EpochRecord,
    EvaluationResult,
    ExportResult,
    HeldOutResult,
    IngestResults,
    JobProgress,
    PredictionResult,
    PublicationResult,
    Renewed,
    RenewRequest,
    RoundProgress,
    RoundUpdate,
    StopOrGoOn,
    TrainingImage,
    TrainingResult,
    TrainingStart,
)
from pollen_contracts.specs import (
    WORK_SPECS,
    ClaimRequest,
    Failure,
    JobClaimed,
    RoundClaimed,
    WorkClaimed,
    WorkFailure,
)


@dataclass(frozen=True)
class Endpoint:
    request: type[Contract] | None  # None: the request has no body
    response: type[Contract] | None  # None: no body, or an answer the agent does not read
    # Fields the request carries beside its contract (the claim it reports for).
    envelope: tuple[str, ...] = ()
    # The answer is a list of these (one page of a paginated list).
    many: bool = False


_WORK_COMPLETE: dict[str, type[Contract]] = {
    "publications": PublicationResult,
    "predictions": PredictionResult,
    "evaluations": EvaluationResult,
    "exports": ExportResult,
    "held-out-evaluations": HeldOutResult,
}

_JOB = "/api/v1/agent/jobs/{id}"
_ROUND = "/api/v1/agent/federated-jobs/{id}/rounds/{number}"
_DATASET = "/api/v1/agent/datasets/{id}"

AGENT_ENDPOINTS: dict[str, Endpoint] = {
    "POST /api/v1/agent/heartbeat/": Endpoint(None, None),
    f"POST {_DATASET}/ingest-results/": Endpoint(IngestResults, None),
    f"POST {_DATASET}/purged/": Endpoint(None, None),
    f"GET {_DATASET}/training-images/": Endpoint(None, TrainingImage, many=True),
    f"POST {_DATASET}/archives/{{archive_id}}/result/": Endpoint(ArchiveResult, None),
    f"POST {_JOB}/claim/": Endpoint(ClaimRequest, JobClaimed),
    f"POST {_JOB}/progress/": Endpoint(JobProgress, StopOrGoOn),
    f"POST {_JOB}/epochs/": Endpoint(EpochRecord, None),
    f"POST {_JOB}/training-start/": Endpoint(TrainingStart, None),
    f"POST {_JOB}/complete/": Endpoint(TrainingResult, None),
    f"POST {_JOB}/fail/": Endpoint(Failure, None),
    f"POST {_ROUND}/claim/": Endpoint(ClaimRequest, RoundClaimed),
    f"POST {_ROUND}/progress/": Endpoint(RoundProgress, StopOrGoOn),
    f"POST {_ROUND}/update/": Endpoint(RoundUpdate, None),
    f"POST {_ROUND}/fail/": Endpoint(Failure, None),
}
for _kind in WORK_SPECS:
    _base = f"/api/v1/agent/marketplace/{_kind}/{{id}}"
    AGENT_ENDPOINTS |= {
        f"POST {_base}/claim/": Endpoint(ClaimRequest, WorkClaimed),
        f"POST {_base}/renew/": Endpoint(RenewRequest, Renewed),
        f"POST {_base}/complete/": Endpoint(_WORK_COMPLETE[_kind], None, envelope=("claim_id",)),
        f"POST {_base}/fail/": Endpoint(WorkFailure, None),
    }
