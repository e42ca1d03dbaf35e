"""How a fine-tuned model compares with the model it started from: one rule for both sides.

The agent measures both models on the same check images; the hub stores the numbers, and both
name the verdict with this rule, so the words on the job page and the publish warning can never
disagree with what the agent measured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

# Fewer check images than this of any one label, and a difference in AUC means little.
MIN_IMAGES_PER_LABEL = 10
# A 95 % interval of the AUC difference wider than this spans everything from "clearly worse"
# to "clearly better": the check set cannot tell the two models apart either way.
MAX_UNDECIDED_WIDTH = 0.2

BETTER, WORSE, NO_CLEAR_DIFFERENCE, TOO_FEW, NOT_COMPARED = (
    "better",
    "worse",
    "no_clear_difference",
    "too_few",
    "not_compared",
)
VERDICTS = (BETTER, WORSE, NO_CLEAR_DIFFERENCE, TOO_FEW, NOT_COMPARED)
VERDICT_TEXT = {
    BETTER: "Better than the model it started from, on the same check images.",
    WORSE: "Worse than the model it started from, on the same check images.",
    NO_CLEAR_DIFFERENCE: "No clear difference from the model it started from, on the same check images.",
    TOO_FEW: "Too few check images to tell whether it is better or worse than the model it started from.",
    NOT_COMPARED: "It was not compared with the model it started from.",
}
# Publishing one of these to other sites needs an explicit acknowledgement.
NEEDS_ACKNOWLEDGEMENT = frozenset({WORSE, TOO_FEW, NOT_COMPARED})


def comparison_verdict(
    *, images_per_label: Mapping[str, int], difference_ci: Sequence[float] | None
) -> str:
    """The verdict for a child-minus-parent AUC difference with 95 % interval ``difference_ci``.

    Too few images of some label, or an interval too wide to mean anything: "too_few". An
    interval wholly above or below zero: "better" or "worse". Otherwise "no_clear_difference".
    """
    counts = list(images_per_label.values())
    if len(counts) < 2 or min(counts) < MIN_IMAGES_PER_LABEL or difference_ci is None:
        return TOO_FEW
    return difference_verdict(difference_ci)


def dice_comparison_verdict(*, check_images: int, difference_ci: Sequence[float] | None) -> str:
    """The verdict for a child-minus-parent difference of mean Dice (outlining models): the
    same rule, with at least ``MIN_IMAGES_PER_LABEL`` check images in all."""
    if check_images < MIN_IMAGES_PER_LABEL or difference_ci is None:
        return TOO_FEW
    return difference_verdict(difference_ci)


def difference_verdict(difference_ci: Sequence[float]) -> str:
    """Above zero: better; below: worse; too wide to mean anything: too_few; else no clear
    difference."""
    low, high = float(difference_ci[0]), float(difference_ci[1])
    if low > 0:
        return BETTER
    if high < 0:
        return WORSE
    if high - low > MAX_UNDECIDED_WIDTH:
        return TOO_FEW
    return NO_CLEAR_DIFFERENCE
