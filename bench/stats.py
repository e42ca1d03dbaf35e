"""Medians with their spread, and ratios measured pair by pair."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """The median of repeated measurements and their range (min to max)."""

    median: float
    low: float
    high: float
    n: int

    def text(self, digits: int = 3) -> str:
        """``12.3 (11.9-12.8)``; a single measurement has no range to show."""
        if self.n == 1 or self.low == self.high:
            return fmt_number(self.median, digits)
        low, high = fmt_number(self.low, digits), fmt_number(self.high, digits)
        return f"{fmt_number(self.median, digits)} ({low}-{high})"


def summarize(values: Sequence[float]) -> Summary:
    """Median and range of ``values``; raises ValueError on an empty or non-finite sample."""
    clean = [float(v) for v in values]
    if not clean:
        raise ValueError("no measurements to summarise")
    if not all(math.isfinite(v) for v in clean):
        raise ValueError(f"non-finite measurement in {clean}")
    return Summary(statistics.median(clean), min(clean), max(clean), len(clean))


def paired_ratios(ours: Sequence[float], baseline: Sequence[float]) -> Summary:
    """Summary of ``ours[i] / baseline[i]``: each pair was measured side by side in one repetition."""
    if len(ours) != len(baseline):
        raise ValueError("ratios need one baseline measurement per measurement")
    if any(b == 0 for b in baseline):
        raise ValueError("a baseline measurement is zero")
    return summarize([a / b for a, b in zip(ours, baseline, strict=True)])


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between closest ranks."""
    ordered = sorted(float(v) for v in values)
    if not ordered:
        raise ValueError("no values")
    position = (len(ordered) - 1) * q / 100.0
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def fmt_number(value: float, digits: int = 3) -> str:
    """Three significant figures, without scientific notation for ordinary magnitudes."""
    if value == 0 or not math.isfinite(value):
        return str(value if value else 0)
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - magnitude)
    return f"{value:,.{decimals}f}"
