"""After a fine-tune: measure the model it started from on the same check images.

A fine-tune can make a model worse. The parent is loaded afresh from its own model folder (the
weights the job started from, checksum verified), run through the very same ``predict`` the
child's test evaluation used, and the two are compared image by image.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pollen_agent.errors import RetryableError, UserError
from pollen_agent.open_maps import Metrics
from pollen_agent.storage.base import Storage
from pollen_contracts.comparison import NOT_COMPARED, VERDICT_TEXT
from pollen_contracts.specs import TrainingSpec

logger = logging.getLogger(__name__)

# Starting weights that are another model version (the job is a fine-tune).
PARENT_KINDS = frozenset({"site_model", "published"})


def not_compared(reason: str) -> Metrics:
    return {"verdict": NOT_COMPARED, "verdict_text": VERDICT_TEXT[NOT_COMPARED], "reason": reason}


def _label_order(parent_labels: list[str], child_labels: list[str]) -> list[int] | None:
    """Columns of the parent's output in the child's label order; None if the labels differ."""
    if sorted(parent_labels) != sorted(child_labels):
        return None
    return [parent_labels.index(name) for name in child_labels]


def parent_comparison(
    spec: TrainingSpec,
    storage: Storage,
    work: Path,
    *,
    child_probs: np.ndarray,
    labels: list[int],
    predict: Callable[[Any], np.ndarray],
) -> Metrics | None:
    """The parent-vs-child comparison of a fine-tune; None when the job is not a fine-tune.

    ``predict(model)`` gives a model's class probabilities on the check images, exactly as the
    child's were computed. A parent that cannot be measured gives a "not compared" answer with
    the reason, never a failed job: the child is still a valid model.
    """
    if not spec.parent or spec.weights.kind not in PARENT_KINDS:
        return None
    from pollen_agent.jobs.model_source import load_model
    from pollen_agent.ml.compare import compare_with_parent

    try:
        model, manifest = load_model(spec.weights, storage, work)
    except (UserError, RetryableError) as exc:
        logger.warning("job %s: the parent model could not be loaded (%s)", spec.job_id, exc)
        return not_compared(f"The model it started from could not be loaded: {exc}")
    order = _label_order(list(manifest.label_names), list(spec.label_names))
    if order is None:
        return not_compared(
            "The model it started from tells apart other labels "
            f"({', '.join(manifest.label_names)}), so the two cannot be compared image by image."
        )
    parent_probs = predict(model)[:, order]
    result = compare_with_parent(
        child_probs,
        parent_probs,
        np.asarray(labels),
        list(spec.label_names),
        seed=int(spec.config.get("seed", 0)),
        positive_class=spec.positive_class or None,
    )
    result["parent_model_version"] = spec.parent.model_version_id
    return result
