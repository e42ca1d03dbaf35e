"""Reproducible train/validation/test assignment by patient.

A patient's split is a hash of (dataset seed, patient id), so one patient's images
never land in two sets, and adding images never moves existing ones. Images with
no patient id count as their own patient (keyed by storage key).
"""

from __future__ import annotations

import hashlib

FRACTIONS = (("train", 0.70), ("val", 0.15), ("test", 0.15))


def split_for(*, seed: int, patient_id: str, fallback_key: str) -> str:
    identity = f"p:{patient_id}" if patient_id else f"k:{fallback_key}"
    digest = hashlib.sha256(f"{seed}:{identity}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    cumulative = 0.0
    for name, fraction in FRACTIONS:
        cumulative += fraction
        if position < cumulative:
            return name
    return FRACTIONS[-1][0]
