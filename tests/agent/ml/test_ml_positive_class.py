"""Sensitivity is about the finding the model looks for, wherever that label stands in the list."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pollen_agent.ml.artifact import save_model_folder
from pollen_agent.ml.manifest import MANIFEST_NAME, read_manifest
from pollen_agent.ml.metrics import evaluate, positive_index
from pollen_agent.ml.zoo import build_model

# The demo's labels: the finding ("malignant") comes first.
DEMO = ["malignant", "benign or normal"]
# 4 malignant images (index 0), 6 benign: the model finds 3 of the 4 and wrongly flags 2 of 6.
LABELS = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
P_MALIGNANT = np.array([0.9, 0.8, 0.7, 0.2, 0.6, 0.55, 0.1, 0.2, 0.3, 0.4])
PROBS = np.column_stack([P_MALIGNANT, 1 - P_MALIGNANT])


def test_finding_first_in_the_list_gives_its_own_sensitivity():
    result = evaluate(PROBS, LABELS, DEMO, positive_class="malignant")
    assert result["positive_class"] == "malignant"
    assert result["sensitivity"] == pytest.approx(3 / 4)  # malignant cases found
    assert result["specificity"] == pytest.approx(4 / 6)  # benign cases cleared
    assert list(result["roc"]) == ["malignant"]


def test_finding_second_in_the_list_gives_the_same_numbers():
    flipped = evaluate(PROBS[:, ::-1], 1 - LABELS, DEMO[::-1], positive_class="malignant")
    assert flipped["sensitivity"] == pytest.approx(3 / 4)
    assert flipped["specificity"] == pytest.approx(4 / 6)
    assert flipped["positive_class"] == "malignant"


def test_threshold_applies_to_the_finding():
    # At 0.75 only two malignant images reach it; no benign one does.
    result = evaluate(PROBS, LABELS, DEMO, threshold=0.75, positive_class="malignant")
    assert result["sensitivity"] == pytest.approx(2 / 4)
    assert result["specificity"] == pytest.approx(1.0)


def test_without_a_finding_the_second_label_is_measured_and_named():
    result = evaluate(PROBS, LABELS, DEMO)
    assert result["positive_class"] == "benign or normal"
    assert result["sensitivity"] == pytest.approx(4 / 6)


def test_unknown_finding_and_multiclass():
    with pytest.raises(ValueError):
        positive_index(DEMO, "pneumonia")
    assert positive_index(["a", "b", "c"], "a") is None
    probs = np.eye(3)[[0, 1, 2, 0]]
    result = evaluate(probs, np.array([0, 1, 2, 0]), ["a", "b", "c"])
    assert result["positive_class"] is None and "sensitivity" not in result


def test_manifest_records_the_finding(tmp_path):
    model = build_model("small_cnn", 2, source="random")
    fields = {"architecture": "small_cnn", "label_names": DEMO, "positive_class": "malignant"}
    save_model_folder(tmp_path / "m", model, fields)
    raw = json.loads((tmp_path / "m" / MANIFEST_NAME).read_text())
    assert raw["positive_class"] == "malignant"
    assert read_manifest(tmp_path / "m").positive_class == "malignant"
    with pytest.raises(ValueError):
        save_model_folder(tmp_path / "x", model, {**fields, "positive_class": "pneumonia"})


def test_manifest_written_before_the_finding_was_recorded_still_reads(tmp_path):
    model = build_model("small_cnn", 2, source="random")
    save_model_folder(tmp_path / "m", model, {"architecture": "small_cnn", "label_names": DEMO})
    path = tmp_path / "m" / MANIFEST_NAME
    raw = json.loads(path.read_text())
    raw.pop("positive_class", None)  # None is left out of the JSON
    path.write_text(json.dumps(raw))
    assert read_manifest(tmp_path / "m").positive_class is None
