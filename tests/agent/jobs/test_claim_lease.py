"""The agent keeps its claim on marketplace work alive, and drops a result it no longer owns."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pollen_agent import runtime
from pollen_agent.errors import RetryableError, UserError
from pollen_agent.tasks import marketplace
from pollen_agent.tasks.claim_lease import ClaimLease
from pollen_contracts.reports import PredictionResult


class FakeHub:
    """Records posts; answers each path from a script (a value, or an exception to raise)."""

    def __init__(self, answers: dict[str, list[Any]] | None = None) -> None:
        self.answers = answers or {}
        self.posts: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def fork(self) -> FakeHub:
        return self

    def post(self, path: str, payload: Any = None) -> Any:
        with self.lock:
            self.posts.append((path, payload))
            script = next((v for k, v in self.answers.items() if path.endswith(k)), None)
            answer = script.pop(0) if script and len(script) > 1 else (script or [None])[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def paths(self, suffix: str) -> list[str]:
        with self.lock:
            return [p for p, _ in self.posts if p.endswith(suffix)]


def _wait_for(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_the_lease_is_renewed_every_quarter_lease_until_the_work_ends():
    hub = FakeHub({"/renew/": [{"renewed": True}]})
    with ClaimLease(hub, "agent/marketplace/predictions/7", "d1", 4) as lease:
        assert lease.interval == 1.0
        assert _wait_for(lambda: len(hub.paths("/renew/")) >= 2)
    count = len(hub.paths("/renew/"))
    assert not lease._thread.is_alive()  # joined on exit: it cannot renew any more
    assert len(hub.paths("/renew/")) == count
    assert hub.posts[0] == ("agent/marketplace/predictions/7/renew/", {"claim_id": "d1"})
    assert not lease.lost.is_set() and lease.renewals == count


def test_a_passing_fault_is_retried_but_a_taken_over_claim_is_lost():
    hub = FakeHub(
        {"/renew/": [RetryableError("The hub answered 503; will retry."), {"renewed": False}]}
    )
    with ClaimLease(hub, "agent/marketplace/evaluations/3", "d1", 4) as lease:
        assert lease.lost.wait(5)
    assert len(hub.paths("/renew/")) == 2  # one fault, then the answer that ends it


def test_a_refused_renewal_means_the_work_is_gone():
    hub = FakeHub(
        {"/renew/": [UserError("There is no such work for this agent.", code="not_found")]}
    )
    with ClaimLease(hub, "agent/marketplace/exports/1", "d1", 4) as lease:
        assert lease.lost.wait(5)


@pytest.mark.parametrize("lease_seconds", [None, 0, "soon"])
def test_a_missing_or_odd_lease_falls_back_to_the_default(lease_seconds):
    lease = ClaimLease(FakeHub(), "x", "d1", lease_seconds)
    assert lease.interval == 30.0


# A prediction spec as the hub's claim sends it (the runner here never reads it).
_SPEC = {
    "prediction_id": 5,
    "model": {
        "architecture": "small_cnn",
        "label_names": ["a", "b"],
        "input_size": 32,
        "mean": [0.5],
        "std": [0.5],
        "weights": {"kind": "site_model", "key": "models/job-1/", "sha256": "0" * 64},
    },
    "inputs": [{"image_id": 1, "key": "in/1.png"}],
    "tta": False,
    "heatmap": False,
    "overlay_prefix": "predictions/5/",
}


class _Task:
    name = "pollen.gpu.predict"

    class request:  # mimics Celery's task.request
        id = "delivery-1"
        retries = 0


def _run_with(monkeypatch, tmp_path: Path, hub: FakeHub, runner) -> dict[str, Any]:
    monkeypatch.setattr(runtime, "hub_for", lambda slug: hub)
    monkeypatch.setattr(runtime, "storage_for", lambda slug: object())
    monkeypatch.setattr(
        runtime, "config", lambda: type("Config", (), {"work_dir": str(tmp_path)})()
    )
    monkeypatch.setitem(marketplace.KINDS, "prediction", ("predictions", runner))
    return marketplace.run_work(
        _Task(), {"site": "site-a", "kind": "prediction", "id": 5}, allowed={"prediction"}
    )


def test_work_renews_its_claim_while_it_runs_and_then_completes(monkeypatch, tmp_path):
    hub = FakeHub(
        {
            "/claim/": [{"claimed": True, "spec": _SPEC, "lease_seconds": 4}],
            "/renew/": [{"renewed": True}],
        }
    )

    def slow_runner(spec, hub_, storage, work):
        assert _wait_for(lambda: len(hub.paths("/renew/")) >= 1)
        return PredictionResult(results=[])

    summary = _run_with(monkeypatch, tmp_path, hub, slow_runner)
    assert summary == {"prediction": 5, "succeeded": True}
    assert hub.paths("/complete/") == ["agent/marketplace/predictions/5/complete/"]


def test_a_worker_that_lost_its_claim_does_not_send_its_result(monkeypatch, tmp_path):
    hub = FakeHub(
        {
            "/claim/": [{"claimed": True, "spec": _SPEC, "lease_seconds": 4}],
            "/renew/": [{"renewed": False}],
        }
    )
    leases: list[ClaimLease] = []

    class RecordedLease(ClaimLease):
        def __enter__(self) -> ClaimLease:
            leases.append(self)
            return super().__enter__()

    monkeypatch.setattr(marketplace, "ClaimLease", RecordedLease)

    def slow_runner(spec, hub_, storage, work):
        assert _wait_for(lambda: bool(leases) and leases[0].lost.is_set())
        return PredictionResult(results=[])

    summary = _run_with(monkeypatch, tmp_path, hub, slow_runner)
    assert summary == {"prediction": 5, "skipped": "another worker took this work over"}
    assert hub.paths("/complete/") == [] and hub.paths("/fail/") == []


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"task": "slides"}, "task"),
        ({"contract_version": 99}, "contract_version"),
        ({"inputs": [{"image_id": "1", "key": "in/1.png"}]}, "inputs[0].image_id"),
    ],
    ids=["unknown-task", "newer-contract", "wrong-type"],
)
def test_a_spec_this_agent_cannot_read_ends_the_work_saying_why(
    monkeypatch, tmp_path, change, named
):
    hub = FakeHub({"/claim/": [{"claimed": True, "spec": _SPEC | change, "lease_seconds": 4}]})

    def must_not_run(spec, hub_, storage, work):
        raise AssertionError("a spec that breaks the contract was run")

    summary = _run_with(monkeypatch, tmp_path, hub, must_not_run)
    assert summary == {"prediction": 5, "failed": "contract_mismatch"}
    (failure,) = [body for path, body in hub.posts if path.endswith("/fail/")]
    assert failure["code"] == "contract_mismatch" and failure["claim_id"] == "delivery-1"
    assert named in failure["message"] and "update the site agent" in failure["message"]
