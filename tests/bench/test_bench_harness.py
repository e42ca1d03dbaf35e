"""The benchmark harness itself: statistics, the table, and baseline checks that can fail."""

from __future__ import annotations

import numpy as np
import pytest

from bench.checks import (
    BaselineCheckFailed,
    check_arrays_equal,
    check_close,
    check_loss_decreased,
    check_same_count,
)
from bench.report import GENERATED_MARKER, read_intro, render_doc, render_table, row
from bench.stats import paired_ratios, percentile, summarize


def test_summary_is_median_with_its_range():
    summary = summarize([3.0, 1.0, 2.0])
    assert (summary.median, summary.low, summary.high, summary.n) == (2.0, 1.0, 3.0, 3)
    assert summary.text() == "2.00 (1.00-3.00)"
    assert summarize([5.0]).text() == "5.00"


def test_summary_refuses_empty_and_non_finite_samples():
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        summarize([1.0, float("nan")])


def test_ratios_are_taken_pair_by_pair():
    # Medians of each side would give 20/10 = 2; the pairs say 1.0, 1.0 and 4.0.
    summary = paired_ratios([10.0, 20.0, 40.0], [10.0, 20.0, 10.0])
    assert summary.median == 1.0 and summary.high == 4.0
    with pytest.raises(ValueError):
        paired_ratios([1.0], [0.0])


def test_percentile_interpolates():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(list(range(101)), 99) == 99


def test_table_has_one_line_per_row_and_escapes_pipes():
    table = render_table([row("a", "s|t", "m", 1234, 0.5, "1.0"), {"benchmark": "x"}])
    lines = table.strip().splitlines()
    assert len(lines) == 4
    assert lines[2] == "| a | s\\|t | m | 1,234 | 0.500 | 1.0 |"
    assert lines[3].startswith("| x |")


def test_doc_keeps_the_hand_written_intro(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Mine\n\nkeep me\n" + GENERATED_MARKER + "\nold table\n")
    text = render_doc(
        [row("a", "s", "m", 1)],
        {"CPU": "test"},
        mode="quick",
        notes=["n"],
        intro=read_intro(doc),
        seconds=60,
    )
    assert text.startswith("# Mine\n\nkeep me\n")
    assert "old table" not in text and "| a | s | m | 1 |" in text and "- CPU: test" in text


def test_loss_check_fails_when_the_loop_does_not_learn():
    check_loss_decreased(0.7, 0.5, what="loop")
    with pytest.raises(BaselineCheckFailed):
        check_loss_decreased(0.7, 0.7, what="loop")
    with pytest.raises(BaselineCheckFailed):
        check_loss_decreased(float("nan"), 0.1, what="loop")


def test_count_check_fails_on_different_or_zero_counts():
    check_same_count(10, 10, what="images")
    with pytest.raises(BaselineCheckFailed):
        check_same_count(10, 9, what="images")
    with pytest.raises(BaselineCheckFailed):
        check_same_count(0, 0, what="images")


def test_array_check_fails_on_any_difference():
    a = [np.zeros((2, 2), np.uint8), np.ones((3, 3), np.uint8)]
    check_arrays_equal(a, [x.copy() for x in a], what="decode")
    changed = [a[0], a[1].copy()]
    changed[1][0, 0] = 2
    with pytest.raises(BaselineCheckFailed):
        check_arrays_equal(a, changed, what="decode")
    with pytest.raises(BaselineCheckFailed):
        check_arrays_equal(a, [a[0], a[1].astype(np.int16)], what="decode")
    with pytest.raises(BaselineCheckFailed):
        check_arrays_equal(a, a[:1], what="decode")


def test_close_check_fails_on_different_outputs():
    check_close(np.array([0.1, 0.9]), np.array([0.1, 0.9 + 1e-6]), what="probs")
    with pytest.raises(BaselineCheckFailed):
        check_close(np.array([0.1, 0.9]), np.array([0.2, 0.8]), what="probs")


def _prediction(probabilities: dict[str, float], **extra: object) -> dict:
    item = {"image_id": 7, "probabilities": probabilities, **extra}
    return {"id": 1, "status": "succeeded", "label_names": ["a", "b"], "results": [item]}


def test_prediction_api_check_fails_on_other_probabilities_failures_and_missing_heatmaps():
    from bench.predict_api import check_answers

    reference = {7: np.array([0.25, 0.75])}
    check_answers({7: _prediction({"a": 0.25, "b": 0.75})}, reference, heatmap=False, what="api")
    with pytest.raises(BaselineCheckFailed, match="differ"):
        check_answers({7: _prediction({"a": 0.3, "b": 0.7})}, reference, heatmap=False, what="api")
    failed = {**_prediction({"a": 0.25, "b": 0.75}), "status": "failed", "error_code": "x"}
    with pytest.raises(BaselineCheckFailed, match="ended failed"):
        check_answers({7: failed}, reference, heatmap=False, what="api")
    with pytest.raises(BaselineCheckFailed, match="without a heatmap"):
        check_answers({7: _prediction({"a": 0.25, "b": 0.75})}, reference, heatmap=True, what="api")
    with_overlay = _prediction(
        {"a": 0.25, "b": 0.75}, overlay_key="p/7.png", overlay_url="http://x"
    )
    check_answers({7: with_overlay}, reference, heatmap=True, what="api")
    with pytest.raises(BaselineCheckFailed, match="did not see"):
        check_answers({8: with_overlay}, reference, heatmap=True, what="api")


def test_prediction_api_breakdown_splits_a_request_by_the_hub_timestamps():
    import datetime as dt

    from bench.predict_api import _breakdown, _Call

    def at(seconds: float) -> str:
        return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")

    answer = {
        "created_at": at(1000.02),
        "finished_at": at(1000.4),
        "timings": {"load_model": 0.01, "inference": 0.29, "total": 0.3},
    }
    parts = _breakdown({1: _Call(sent=1000.0, received=1000.5, answer=answer)})
    assert {k: round(v) for k, v in parts.items()} == {
        "post": 20,
        "hop": 80,
        "load": 10,
        "infer": 290,
        "back": 100,
    }
