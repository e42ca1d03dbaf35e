"""The segmentation benchmark's quick path on a handful of real BUSI and CHASE_DB1 images."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from bench import segmentation as seg
from pollen_agent.ml.segmentation.data import busi_dir

HEADER = "| Measure | Pollen | Baseline | Ratio | Goal | Result |"
NUMBER = re.compile(r"-?[\d,]*\.?\d+")


def _data_or_skip() -> None:
    if not (busi_dir() / "benign" / "images").is_dir():
        pytest.skip(f"BUSI is not at {busi_dir()}")
    if not (seg.chase_dir() / "Image_11L.jpg").is_file():
        pytest.skip(f"CHASE_DB1 is not at {seg.chase_dir()}")


@pytest.fixture(scope="module")
def quick():
    _data_or_skip()
    options = seg.parse(["--quick"])
    printed: list[str] = []
    sections = seg.run_sections(options, ["- the machine"], echo=printed.append)
    return options, sections, printed


def _first_number(cell: str) -> float:
    return float(NUMBER.search(cell).group().replace(",", ""))


def _table(text: str) -> list[list[str]]:
    lines = text.splitlines()
    start = lines.index(HEADER)
    assert lines[start + 1] == "|---|---|---|---|---|---|"
    rows = [line for line in lines[start + 2 :] if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in rows]


def test_quick_run_prints_one_table_per_section_with_goals_and_verdicts(quick):
    options, sections, printed = quick
    assert options.only == seg.SECTIONS and options.quick
    assert [s.failed for s in sections] == [""] * len(seg.SECTIONS)
    assert printed[0] == "- the machine\n" and len(printed) == 1 + len(seg.SECTIONS)
    for section, text in zip(sections, printed[1:], strict=True):
        assert text.startswith(f"### {section.title}\n")
        assert "min training budget per run" in text or "repetitions" in text
        table = _table(text)
        assert len(table) == len(section.lines) > 0
        assert all(len(cells) == 6 for cells in table)
        goals = [cells for cells in table if cells[4]]
        assert goals, f"section {section.title!r} has no line with a goal"
        assert all(cells[5] in {"PASS", "MISS"} for cells in goals)
        assert all(cells[5] == "" for cells in table if not cells[4])
    assert "no patient ids" in printed[1]


def test_verdicts_follow_the_measured_numbers(quick):
    _, sections, _ = quick
    for section in sections:
        for line in section.lines:
            if not line.goal:
                continue
            goal = re.search(r"(>=|<=) (-?[\d.]+)", line.goal)
            if goal is None:  # "ImageNet above random"
                passed = _first_number(line.pollen) > _first_number(line.baseline)
            else:
                cell = (
                    line.ratio if "ratio" in line.goal or "difference" in line.goal else line.pollen
                )
                value, bound = _first_number(cell), float(goal.group(2))
                passed = value >= bound if goal.group(1) == ">=" else value <= bound
            assert line.result == ("PASS" if passed else "MISS"), line


def test_numbers_are_measured_on_the_images(quick):
    _, sections, _ = quick
    busi, normals, chase, warm, inference = sections
    dice = busi.lines[0]
    assert 0.0 <= _first_number(dice.pollen) <= 1.0 and 0.0 <= _first_number(dice.baseline) <= 1.0
    speed = busi.lines[1]
    ours, hand = _first_number(speed.pollen), _first_number(speed.baseline)
    assert ours > 0 and hand > 0
    assert _first_number(speed.ratio) == pytest.approx(ours / hand, rel=0.02)
    # The one-click model of section 1 is section 4's ImageNet side: the same run, reused.
    assert _first_number(warm.lines[0].pollen) == pytest.approx(
        _first_number(dice.pollen), abs=1e-3
    )
    assert 0.0 <= _first_number(normals.lines[0].pollen) <= 1.0
    # The second observer's Dice on the test child's eyes, computed here from the files.
    folder = seg.chase_dir()
    expected = []
    for eye in ("L", "R"):
        first, second = (
            np.asarray(Image.open(folder / f"Image_11{eye}_{r}HO.png").convert("L")) > 0
            for r in ("1st", "2nd")
        )
        expected.append(2 * (first & second).sum() / (first.sum() + second.sum()))
    assert _first_number(chase.lines[0].baseline) == pytest.approx(np.mean(expected), abs=1e-3)
    assert 0.0 <= _first_number(chase.lines[0].pollen) <= 1.0
    for line in inference.lines:
        assert _first_number(line.pollen) > 0 and _first_number(line.baseline) > 0


def test_harness_rows_carry_each_line_and_its_verdict(quick):
    _, sections, _ = quick
    rows = seg.harness_rows(sections[0])
    assert len(rows) == len(sections[0].lines)
    assert rows[0]["benchmark"] == "segmentation" and "no patient ids" in rows[0]["setting"]
    assert rows[0]["metric"].endswith(f"{sections[0].lines[0].result})")
    assert rows[0]["value"] == sections[0].lines[0].pollen


def test_options_refuse_unknown_sections_and_keep_explicit_budgets():
    options = seg.parse(["--quick", "--minutes", "0.5", "--seeds", "2", "--only", "chase,busi"])
    assert (options.minutes, options.seeds, options.only) == (0.5, 2, ("busi", "chase"))
    assert seg.parse([]).minutes == 15.0 and seg.parse([]).seeds == 3
    with pytest.raises(SystemExit):
        seg.parse(["--only", "federated"])


def test_the_split_is_fixed_by_image_and_seeded():
    splits = seg.split_by_image(647)
    assert splits == seg.split_by_image(647)
    assert [splits.count(s) for s in ("train", "val", "test")] == [453, 65, 129]
    assert seg.split_by_image(647, seed=1) != splits
