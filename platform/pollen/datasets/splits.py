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


SEED_TRIES = 2000


def first_seed_meeting(
    rows: list[tuple[str, str, str]], minimums: dict[str, int], *, start: int
) -> int | None:
    """The first seed from ``start`` on whose split gives every label ``minimums`` images per set.

    ``rows`` are (label, patient_id, fallback_key), one per image. A patient's images stay
    together, so seeds are tried over patients; the scarcest labels are checked first, and a
    seed fails as soon as one label falls short. None when no seed in ``SEED_TRIES`` works.
    """
    by_label: dict[str, dict[tuple[str, str], int]] = {}
    for label, patient_id, key in rows:
        identity = (patient_id, "" if patient_id else key)
        counts = by_label.setdefault(label, {})
        counts[identity] = counts.get(identity, 0) + 1
    order = sorted(by_label.items(), key=lambda item: len(item[1]))
    for offset in range(SEED_TRIES):
        seed = (start + offset) % 2**31
        if all(_label_meets(seed, images, minimums) for _, images in order):
            return seed
    return None


def _label_meets(seed: int, images: dict[tuple[str, str], int], minimums: dict[str, int]) -> bool:
    got = dict.fromkeys(minimums, 0)
    for (patient_id, key), n in images.items():
        split = split_for(seed=seed, patient_id=patient_id, fallback_key=key)
        if split in got:
            got[split] += n
    return all(got[split] >= need for split, need in minimums.items())
