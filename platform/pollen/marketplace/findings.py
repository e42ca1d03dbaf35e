"""Which finding a published model's numbers are about, so that only like is set beside like.

"Cases found" (sensitivity) of a model that looks for "malignant" and of one that looks for
"benign or normal" are different measures; a table that puts them in one column compares
nothing. Every result row names its finding, and rows are grouped by it. The same holds for
how the numbers were computed: every row names the test-time augmentation its probabilities were
averaged over (``tta``), and rows averaged otherwise than the latest version's own check are
listed after the others, never in one group with them.
"""

from __future__ import annotations

from typing import Any

from pollen.datasets.positive_class import measured_positive_class


def card_positive_class(card: dict[str, Any]) -> str:
    """The finding on a model card; cards published before it was recorded measured the second label."""
    recorded = card.get("positive_class") or (card.get("metrics") or {}).get("positive_class")
    if recorded:
        return str(recorded)
    return measured_positive_class({"label_names": card.get("labels") or []})


# Rows stored before the agent recorded its policy name: a training job's own check averaged
# each image and its mirror image ("hflip"); an evaluation at a site with TTA averaged the eight
# flips and rotations of the square ("d4"), without it the image alone ("none").
TRAINING_CHECK_TTA = "hflip"
_SITE_TTA = {True: "d4", False: "none"}


def measured_tta(metrics: dict[str, Any], *, legacy: str) -> str:
    """The test-time augmentation behind ``metrics`` (``legacy`` where none was recorded)."""
    value = metrics.get("tta")
    if isinstance(value, bool):
        return _SITE_TTA[value]
    return str(value) if value else legacy


def group_by_finding(
    rows: list[dict[str, Any]], first: str, tta: str = TRAINING_CHECK_TTA
) -> list[dict[str, Any]]:
    """Rows about ``first`` (the latest version's finding) and averaged as ``tta`` first, then
    the others, so two numbers computed differently never sit in one group.

    Each row gets ``same_finding``: whether its sensitivity and specificity are about ``first``,
    and ``same_tta``: whether its probabilities were averaged like the latest version's own
    check. The order within a group is kept.
    """
    for row in rows:
        row["same_finding"] = row["positive_class"] == first
        row["same_tta"] = row["tta"] == tta
    return sorted(rows, key=lambda row: (not row["same_finding"], not row["same_tta"]))
