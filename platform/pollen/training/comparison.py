"""A fine-tune compared with the model it started from: its shape, its verdict, the publish check.

The site's agent measures both models on the same check images (workers/pollen_agent/ml/compare.py);
the hub names the verdict again with the shared rule (pollen_contracts.comparison), so what the
pages say and what publishing warns about always follow the numbers stored here.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from pollen.core.serializers import StrictSerializer
from pollen.training.models import ModelVersion
from pollen_contracts.comparison import (
    NEEDS_ACKNOWLEDGEMENT,
    NOT_COMPARED,
    VERDICT_TEXT,
    VERDICTS,
    comparison_verdict,
    dice_comparison_verdict,
)

ACKNOWLEDGE_FIELD = "acknowledge_comparison"
NOT_MEASURED = (
    "It was trained before fine-tuned models were checked against the model they started from."
)


def _interval(help_text: str) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.FloatField(),
        min_length=2,
        max_length=2,
        allow_null=True,
        required=False,
        help_text=help_text,
    )


def _fraction() -> serializers.FloatField:
    return serializers.FloatField(allow_null=True, required=False, min_value=0, max_value=1)


class ComparedModelSerializer(StrictSerializer):
    """One model's results on the check images, each with its 95 % interval [low, high]."""

    auc = _fraction()
    auc_ci = _interval("Seeded bootstrap over the check images, resampled within each label")
    accuracy = _fraction()
    accuracy_ci = _interval("Wilson score interval")
    balanced_accuracy = _fraction()
    sensitivity = _fraction()
    sensitivity_ci = _interval("Wilson score interval (two labels only)")
    specificity = _fraction()
    specificity_ci = _interval("Wilson score interval (two labels only)")
    dice = _fraction()
    dice_ci = _interval("Outlining models: seeded bootstrap of the mean Dice over the images")


class ParentComparisonSerializer(StrictSerializer):
    """A fine-tuned model ("child") beside the model it started from ("parent")."""

    verdict = serializers.ChoiceField(
        choices=[(v, v) for v in VERDICTS],
        help_text="better, worse, no_clear_difference, too_few (check images to tell), or "
        "not_compared (see reason)",
    )
    verdict_text = serializers.CharField(required=False, help_text="The verdict in plain words")
    reason = serializers.CharField(
        required=False, max_length=1000, help_text="Why the two were not compared"
    )
    check_images = serializers.IntegerField(required=False, min_value=0)
    images_per_label = serializers.DictField(
        child=serializers.IntegerField(min_value=0), required=False
    )
    confidence_level = serializers.FloatField(required=False, min_value=0, max_value=1)
    child = ComparedModelSerializer(required=False)
    parent = ComparedModelSerializer(required=False)
    auc_difference = serializers.FloatField(
        allow_null=True, required=False, help_text="Child's AUC minus the parent's"
    )
    auc_difference_ci = _interval(
        "Paired bootstrap of the AUC difference over the same resampled check images"
    )
    metric = serializers.ChoiceField(
        choices=[("auc", "auc"), ("dice", "dice")],
        required=False,
        help_text="What the two were compared on: AUC (classifiers, the default) or mean Dice "
        "per image (outlining models)",
    )
    dice_difference = serializers.FloatField(
        allow_null=True, required=False, help_text="Child's mean Dice minus the parent's"
    )
    dice_difference_ci = _interval(
        "Paired bootstrap of the mean Dice difference over the same resampled check images"
    )
    resamples = serializers.IntegerField(required=False, min_value=0)
    seed = serializers.IntegerField(required=False)
    parent_model_version = serializers.IntegerField(allow_null=True, required=False)


def comparison_record(data: dict[str, Any]) -> dict[str, Any]:
    """What the hub stores: the agent's numbers, with the verdict named again by the shared rule."""
    record = dict(data)
    if record["verdict"] != NOT_COMPARED and record.get("metric") == "dice":
        record["verdict"] = dice_comparison_verdict(
            check_images=int(record.get("check_images") or 0),
            difference_ci=record.get("dice_difference_ci"),
        )
    elif record["verdict"] != NOT_COMPARED:
        record["verdict"] = comparison_verdict(
            images_per_label=record.get("images_per_label") or {},
            difference_ci=record.get("auc_difference_ci"),
        )
    record["verdict_text"] = VERDICT_TEXT[record["verdict"]]
    return record


def is_fine_tune(version: ModelVersion) -> bool:
    """A model a training job made from another model (not a cross-site training round)."""
    return version.job_id is not None and version.parent_id is not None


def version_comparison(version: ModelVersion) -> dict[str, Any] | None:
    """The comparison shown for ``version``: None unless it is a fine-tune."""
    if not is_fine_tune(version):
        return None
    if version.parent_comparison:
        return dict(version.parent_comparison)
    return {
        "verdict": NOT_COMPARED,
        "verdict_text": VERDICT_TEXT[NOT_COMPARED],
        "reason": NOT_MEASURED,
    }


def publish_warning(version: ModelVersion) -> dict[str, Any] | None:
    """The comparison that must be acknowledged before ``version`` is published, if any."""
    comparison = version_comparison(version)
    if comparison is None or comparison["verdict"] not in NEEDS_ACKNOWLEDGEMENT:
        return None
    return comparison


def publish_warning_message(comparison: dict[str, Any]) -> str:
    """Why publishing waits, and what to send to go ahead."""
    why = comparison["verdict_text"]
    child, parent = comparison.get("child") or {}, comparison.get("parent") or {}
    metric = "dice" if comparison.get("metric") == "dice" else "auc"
    if child.get(metric) is not None and parent.get(metric) is not None:
        name = "a mean Dice of" if metric == "dice" else "AUC"
        why += (
            f" On {comparison.get('check_images')} check images it scored {name} "
            f"{child[metric]:.2f}; the model it started from scored {parent[metric]:.2f}."
        )
    elif comparison.get("reason"):
        why += f" {comparison['reason']}"
    return (
        f"{why} Check its results before sharing it. To publish it anyway, send "
        f"{ACKNOWLEDGE_FIELD}: true."
    )
