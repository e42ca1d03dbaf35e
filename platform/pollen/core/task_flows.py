"""Which flows each task has reached: one place that says so, and one refusal in plain words.

Segmentation (issue 18) trains, fine-tunes, is published with its card, applied to new images
evaluated at a site, exported to ONNX and trained across sites (relay and FedAvg) today.
Until a flow supports a task, asking for it is refused here (409 ``task_not_supported``)
rather than queued for an agent that would fail it.
"""

from __future__ import annotations

from pollen.core.errors import Conflict

FLOWS_BY_TASK: dict[str, frozenset[str]] = {
    "classification": frozenset(
        {"train", "publish", "apply", "evaluate", "export", "federated", "fine_tune"}
    ),
    "segmentation": frozenset(
        {"train", "fine_tune", "apply", "publish", "evaluate", "export", "federated"}
    ),
}

_FLOW_WORDS = {
    "publish": "published to the marketplace",
    "apply": "applied to new images",
    "evaluate": "evaluated at a site",
    "export": "exported to ONNX",
    "federated": "trained across sites",
    "fine_tune": "fine-tuned",
    "train": "trained",
}
_TASK_WORDS = {"segmentation": "Outlining (segmentation) models"}


def require_flow(task: str, flow: str) -> None:
    """Refuse ``flow`` for a model or dataset of ``task`` when that flow does not support it."""
    if flow in FLOWS_BY_TASK.get(task, frozenset()):
        return
    raise Conflict(
        f"{_TASK_WORDS.get(task, task.capitalize() + ' models')} cannot be "
        f"{_FLOW_WORDS.get(flow, flow)} yet; this arrives in a coming update of Pollen. "
        "Training and checking such a model at your own site work today.",
        code="task_not_supported",
    )
