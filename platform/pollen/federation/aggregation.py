"""Combining site updates into global weights: numpy and safetensors only (no torch, no Django).

Kept free of Django so the cross-site benchmark (``bench/crosssite.py``) averages exactly
the way the hub does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from safetensors.numpy import load, save

Tensors = dict[str, np.ndarray]

MAX_UPDATE_BYTES = 1024**3


class UpdateRefused(ValueError):
    """An update that must not be aggregated; ``code`` is the stable API error code."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def read_tensors(data: bytes) -> Tensors:
    """Parse safetensors bytes (never a pickle), or refuse them with a reason."""
    if len(data) > MAX_UPDATE_BYTES:
        raise UpdateRefused(
            "The update is larger than any model Pollen trains.", code="update_too_large"
        )
    try:
        return load(data)
    except Exception as exc:  # safetensors raises its own error types for any malformed header
        raise UpdateRefused(
            f"The update is not a readable safetensors file ({exc.__class__.__name__}).",
            code="update_unreadable",
        ) from exc


def check_finite(tensors: Tensors) -> None:
    """Refuse NaN or infinite values: one such site would poison the average for everyone."""
    bad = [name for name, t in tensors.items() if t.dtype.kind == "f" and not np.isfinite(t).all()]
    if bad:
        raise UpdateRefused(
            f"The update holds NaN or infinite values in {len(bad)} tensor(s), e.g. '{bad[0]}'; "
            "training diverged at this site. It was left out of the round.",
            code="update_not_finite",
        )


def check_shapes(tensors: Tensors, reference: dict[str, tuple[list[int], str]]) -> None:
    """The update must have exactly the global model's tensor names, shapes and dtypes."""
    missing = sorted(set(reference) - set(tensors))
    extra = sorted(set(tensors) - set(reference))
    wrong = sorted(
        name
        for name in set(reference) & set(tensors)
        if list(tensors[name].shape) != list(reference[name][0])
        or str(tensors[name].dtype) != reference[name][1]
    )
    problems = [
        f"{len(keys)} {label}, e.g. '{keys[0]}'"
        for label, keys in (
            ("missing", missing),
            ("unexpected", extra),
            ("of the wrong shape", wrong),
        )
        if keys
    ]
    if problems:
        raise UpdateRefused(
            "The update does not fit the global model's tensors ("
            + "; ".join(problems)
            + "). It was left out of the round.",
            code="update_shape_mismatch",
        )


def describe(tensors: Tensors) -> dict[str, tuple[list[int], str]]:
    """Tensor name -> (shape, dtype): what every later update is checked against."""
    return {name: (list(t.shape), str(t.dtype)) for name, t in tensors.items()}


def fedavg(updates: Sequence[tuple[Tensors, int]]) -> Tensors:
    """Average float tensors weighted by sample count (FedAvg, McMahan et al. 2017).

    Integer tensors (BatchNorm's ``num_batches_tracked``) are counters, not weights:
    they take the largest value any site reached.
    """
    if not updates:
        raise ValueError("nothing to average")
    total = float(sum(n for _, n in updates))
    if total <= 0:
        raise ValueError("sample counts must be positive")
    out: Tensors = {}
    for name, first in updates[0][0].items():
        if first.dtype.kind == "f":
            acc = np.zeros(first.shape, dtype=np.float64)
            for tensors, n in updates:
                acc += tensors[name].astype(np.float64) * (n / total)
            out[name] = acc.astype(first.dtype)
        else:
            out[name] = np.max(np.stack([t[name] for t, _ in updates]), axis=0)
    return out


def relay(updates: Sequence[tuple[Tensors, int]]) -> Tensors:
    """Relay: the weights that left the last site of the round are the global weights."""
    if not updates:
        raise ValueError("nothing to relay")
    return dict(updates[-1][0])


def to_bytes(tensors: Tensors) -> bytes:
    # np.ascontiguousarray would turn 0-d tensors (BatchNorm counters) into shape (1,).
    return save({name: np.array(t, order="C", copy=True) for name, t in sorted(tensors.items())})
