"""Checks on the baselines themselves, so that no ratio flatters us by accident."""

from __future__ import annotations

import math

import numpy as np


class BaselineCheckFailed(AssertionError):
    """A benchmark's two sides did not do the same work, or a baseline did not work at all."""


def check_loss_decreased(before: float, after: float, *, what: str) -> None:
    """A training loop that does not lower the loss on its own data is not a baseline."""
    if not (math.isfinite(before) and math.isfinite(after)) or after >= before:
        raise BaselineCheckFailed(f"{what}: loss did not decrease ({before:.4f} -> {after:.4f})")


def check_same_count(ours: int, baseline: int, *, what: str) -> None:
    """Both sides processed the same number of items."""
    if int(ours) != int(baseline) or int(ours) <= 0:
        raise BaselineCheckFailed(f"{what}: {ours} items vs {baseline} for the baseline")


def check_arrays_equal(ours: list[np.ndarray], baseline: list[np.ndarray], *, what: str) -> None:
    """Both sides produced exactly the same arrays, in the same order."""
    check_same_count(len(ours), len(baseline), what=what)
    for index, (a, b) in enumerate(zip(ours, baseline, strict=True)):
        if a.shape != b.shape or a.dtype != b.dtype or not np.array_equal(a, b):
            raise BaselineCheckFailed(f"{what}: array {index} differs between the two sides")


def check_close(ours: np.ndarray, baseline: np.ndarray, *, what: str, atol: float = 1e-4) -> None:
    """Both sides computed the same numbers (up to float rounding)."""
    if ours.shape != baseline.shape or not np.allclose(ours, baseline, atol=atol):
        diff = float(np.max(np.abs(ours - baseline))) if ours.shape == baseline.shape else math.nan
        raise BaselineCheckFailed(f"{what}: outputs differ (max abs difference {diff:.3g})")
