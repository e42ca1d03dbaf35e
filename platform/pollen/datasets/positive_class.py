"""The finding a two-label model looks for (its positive class), and a sensible default.

Sensitivity and specificity mean nothing until one label is named as the finding: "cases found"
counts images of that label the model called that label. The position of a label in the list
says nothing about which one is the finding, so the default is chosen by name: a label that
says there is nothing to find (normal, benign, healthy, negative, no finding, ...) is never the
finding. Several labels (three or more) have no single finding: each is read against the rest.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pollen.core.errors import ApiError

if TYPE_CHECKING:
    from pollen.datasets.models import Dataset

# Whole words (or word pairs) that say "nothing to find". Matched word by word, case-insensitive,
# so "benign or normal" is negative while "abnormal" is not.
NEGATIVE_WORDS = frozenset(
    {
        "normal",
        "benign",
        "healthy",
        "negative",
        "control",
        "controls",
        "unremarkable",
        "absent",
        "none",
        "nothing",
        "no",
        "non",
        "not",
        "without",
        "neg",
    }
)
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def is_negative_label(label: str) -> bool:
    """True when a label's name says there is nothing to find ("normal", "No finding", ...)."""
    return any(word in NEGATIVE_WORDS for word in _WORD.findall(label.casefold()))


def default_positive_class(label_names: list[str]) -> str:
    """The finding to look for by default: for two labels, the one that is not a negative name.

    When both or neither name says "nothing to find", the second label is kept, as models
    trained before the finding was recorded measured it. Three or more labels: none ("").
    """
    if len(label_names) != 2:
        return ""
    findings = [name for name in label_names if not is_negative_label(name)]
    if len(findings) == 1:
        return findings[0]
    return label_names[1]


def positive_class_check(positive_class: str, label_names: list[str]) -> str:
    """The finding as given, once checked against the labels (blank means "not chosen")."""
    positive_class = (positive_class or "").strip()
    if not positive_class:
        return ""
    if len(label_names) != 2:
        raise ApiError(
            "Only a dataset with exactly two labels has one finding to look for; with "
            f"{len(label_names)} labels each label is read against all the others. Leave "
            "'finding to look for' empty.",
            code="invalid_positive_class",
            fields={"positive_class": "Only for two labels."},
        )
    if positive_class not in label_names:
        raise ApiError(
            f"'{positive_class}' is not one of this dataset's labels "
            f"({', '.join(label_names)}). Choose the label of the finding the model should look for.",
            code="invalid_positive_class",
            fields={"positive_class": f"Choose one of: {', '.join(label_names)}."},
        )
    return positive_class


def positive_class_for(label_names: list[str], recorded: str = "") -> str:
    """The finding for these labels: the recorded one while it is still a label, else the default."""
    if len(label_names) == 2 and recorded in label_names:
        return recorded
    return default_positive_class(label_names)


def positive_class_refresh(dataset: Dataset) -> None:
    """After the labels changed: keep the chosen finding while it is still one of two labels."""
    dataset.positive_class = positive_class_for(dataset.label_names, dataset.positive_class)


def measured_positive_class(metrics: dict[str, Any]) -> str:
    """Which label a stored evaluation's sensitivity is about.

    Evaluations made before the finding was recorded measured the second label.
    """
    recorded = metrics.get("positive_class")
    if recorded:
        return str(recorded)
    names = metrics.get("label_names") or []
    return str(names[1]) if len(names) == 2 else ""
