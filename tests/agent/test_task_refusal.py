"""An agent refuses, in words, work of a task its flow does not run yet (issue 18)."""

from __future__ import annotations

import pytest

from pollen_agent.errors import UserError, read_contract
from pollen_agent.tasks.marketplace import MARKETPLACE_TASKS
from pollen_contracts.specs import ExportSpec


def _export(task: str) -> dict:
    return {
        "export_id": 4,
        "model": {
            "weights": {"kind": "site_model", "sha256": "a" * 64, "key": "models/job-1/"},
            "architecture": "unet_efficientnet_lite0",
            "label_names": ["background", "lesion"],
            "input_size": 256,
            "mean": [0.5, 0.5, 0.5],
            "std": [0.5, 0.5, 0.5],
        },
        "upload": {"url": "https://hub.test/upload", "method": "PUT", "headers": {}},
        "task": task,
        "contract_version": 1,
    }


def test_a_segmentation_export_is_refused_with_words_not_run():
    with pytest.raises(UserError) as refused:
        read_contract(
            ExportSpec, _export("segmentation"), what="export spec", tasks=MARKETPLACE_TASKS
        )
    assert refused.value.code == "task_not_supported"
    assert "segmentation" in refused.value.message and "site IT" in refused.value.message


def test_a_task_nobody_knows_is_a_contract_mismatch():
    with pytest.raises(UserError) as refused:
        read_contract(ExportSpec, _export("slides"), what="export spec", tasks=MARKETPLACE_TASKS)
    assert refused.value.code == "contract_mismatch"
