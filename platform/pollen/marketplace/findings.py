"""Which finding a published model's numbers are about, so that only like is set beside like.

"Cases found" (sensitivity) of a model that looks for "malignant" and of one that looks for
"benign or normal" are different measures; a table that puts them in one column compares
nothing. Every result row names its finding, and rows are grouped by it.
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


def group_by_finding(rows: list[dict[str, Any]], first: str) -> list[dict[str, Any]]:
    """Rows about ``first`` (the latest version's finding) first, then each other finding's.

    Each row gets ``same_finding``: whether its sensitivity and specificity are about ``first``.
    The order within a group is kept.
    """
    for row in rows:
        row["same_finding"] = row["positive_class"] == first
    return sorted(rows, key=lambda row: not row["same_finding"])
