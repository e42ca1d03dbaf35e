"""Segmentation metrics on hand-built masks whose answers can be counted by eye."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pollen_agent.ml.segmentation.metrics import hd95, image_dice, segmentation_metrics

LESION = ["background", "lesion"]


def square(top: int, left: int, side: int, *, shape=(64, 64), value: int = 1) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    mask[top : top + side, left : left + side] = value
    return mask


def test_an_empty_truth_with_nothing_drawn_is_a_correct_empty_image():
    empty = np.zeros((32, 32), dtype=np.uint8)
    result = segmentation_metrics([empty], [empty], LESION)
    assert result["dice"] == 1.0 and result["per_image"][0]["dice"] == 1.0
    assert result["empty_images"] == 1 and result["empty_correct"] == 1
    assert result["empty_correct_fraction"] == 1.0 and result["false_positive_images"] == 0
    assert result["lesion_dice"] is None and result["lesion_images"] == 0
    assert result["hd95_median"] is None and result["detection"]["false"] == 0


def test_something_drawn_on_an_empty_truth_is_a_false_positive_image():
    empty = np.zeros((32, 32), dtype=np.uint8)
    drawn = square(4, 4, 5, shape=(32, 32))
    result = segmentation_metrics([drawn, empty], [empty, empty], LESION)
    assert result["per_image"][0]["dice"] == 0.0 and result["dice"] == 0.5
    assert result["false_positive_images"] == 1 and result["empty_correct_fraction"] == 0.5
    assert result["detection"]["false"] == 1 and result["detection"]["false_per_image"] == 0.5


def test_two_lesions_one_missed():
    truth = square(5, 5, 10) | square(40, 40, 8)
    pred = square(5, 5, 10)  # the first exactly, nothing of the second
    result = segmentation_metrics([pred], [truth], LESION)
    detection = result["detection"]
    assert (detection["found"], detection["missed"], detection["false"]) == (1, 1, 0)
    assert detection["sensitivity"] == 0.5
    tp, fn = 100, 64
    assert result["lesion_dice"] == pytest.approx(2 * tp / (2 * tp + fn))
    assert result["lesion_iou"] == pytest.approx(tp / (tp + fn))


def test_a_blob_over_half_the_image_finds_nothing_and_a_split_lesion_is_found_once():
    truth = square(10, 10, 4)
    blob = np.zeros((64, 64), dtype=np.uint8)
    blob[:, :40] = 1
    over = segmentation_metrics([blob], [truth], LESION)["detection"]
    assert (over["found"], over["missed"], over["false"]) == (0, 1, 1)
    split = square(20, 20, 12)
    halves = split.copy()
    halves[:, 26] = 0  # one lesion drawn as two regions
    found = segmentation_metrics([halves], [split], LESION)["detection"]
    assert (found["found"], found["missed"], found["false"]) == (1, 0, 0)


def test_hd95_of_a_square_shifted_by_three_pixels_is_three():
    a, b = square(10, 10, 20).astype(bool), square(10, 13, 20).astype(bool)
    assert hd95(a, b) == pytest.approx(3.0) and hd95(b, a) == pytest.approx(3.0)
    result = segmentation_metrics([b.astype(np.uint8)], [a.astype(np.uint8)], LESION)
    assert result["hd95_median"] == pytest.approx(3.0) and result["hd95_images"] == 1


def test_hd95_is_zero_for_identical_masks_and_the_far_outlier_shows_in_it():
    a = square(10, 10, 20).astype(bool)
    assert hd95(a, a) == 0.0
    far = a.copy()
    far[60:64, 60:64] = True  # a speck far away: most outline pixels are still exact
    assert hd95(a, far) > 20


def test_per_class_scores_of_a_three_class_map():
    names = ["background", "vessel", "disc"]
    truth = square(0, 0, 10) + square(30, 30, 10, value=2)
    pred = square(0, 0, 10) + square(30, 35, 10, value=2)  # disc shifted by 5 columns
    result = segmentation_metrics([pred], [truth], names)
    assert result["per_class"]["vessel"]["dice"] == 1.0
    tp, fp, fn = 50, 50, 50
    assert result["per_class"]["disc"]["dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert result["per_class"]["disc"]["iou"] == pytest.approx(tp / (tp + fp + fn))
    assert result["dice"] == pytest.approx((1.0 + 0.5) / 2)
    assert result["per_class"]["disc"]["hd95_median"] == pytest.approx(5.0)


def test_a_class_absent_from_truth_and_prediction_is_not_scored():
    names = ["background", "vessel", "disc"]
    truth = square(0, 0, 10)
    assert image_dice(truth, truth, 3) == 1.0
    result = segmentation_metrics([truth], [truth], names)
    assert (
        result["per_class"]["disc"]["dice"] is None and result["per_class"]["disc"]["images"] == 0
    )


def test_pooled_dice_weighs_large_lesions_more():
    big, small = square(0, 0, 30), square(0, 0, 3)
    result = segmentation_metrics([big, np.zeros_like(small)], [big, small], LESION)
    assert result["lesion_dice"] == 0.5
    assert result["pooled_dice"] == pytest.approx(2 * 900 / (2 * 900 + 9))


def _many(n: int = 40):
    rng = np.random.default_rng(0)
    truths, preds = [], []
    for _ in range(n):
        top, left, side = (int(v) for v in rng.integers(5, 30, 3))
        truths.append(square(top, left, side))
        preds.append(square(top + int(rng.integers(0, 8)), left, side))
    return preds, truths


def test_histogram_worst_cases_and_bootstrap_intervals():
    preds, truths = _many()
    ids = [f"case-{i}" for i in range(len(preds))]
    result = segmentation_metrics(preds, truths, LESION, image_ids=ids, seed=1)
    assert sum(result["dice_histogram"]["counts"]) == len(preds)
    assert (
        result["dice_histogram"]["edges"][0] == 0.0 and result["dice_histogram"]["edges"][-1] == 1.0
    )
    worst = result["worst"]
    per_image = {row["image_id"]: row["dice"] for row in result["per_image"]}
    assert [row["dice"] for row in worst] == sorted(per_image.values())[: len(worst)]
    assert all(per_image[row["image_id"]] == row["dice"] for row in worst)
    low, high = result["dice_ci"]
    assert low < result["dice"] < high
    again = segmentation_metrics(preds, truths, LESION, image_ids=ids, seed=1)
    other = segmentation_metrics(preds, truths, LESION, image_ids=ids, seed=2)
    assert again["dice_ci"] == result["dice_ci"] != other["dice_ci"]


def test_the_result_is_plain_json():
    preds, truths = _many(5)
    empty = np.zeros((64, 64), dtype=np.uint8)
    result = segmentation_metrics([*preds, empty], [*truths, empty], LESION)
    assert json.loads(json.dumps(result, allow_nan=False)) == result


def test_masks_of_different_sizes_are_refused():
    with pytest.raises(ValueError, match="differs"):
        segmentation_metrics([np.zeros((4, 4))], [np.zeros((4, 5))], LESION)
