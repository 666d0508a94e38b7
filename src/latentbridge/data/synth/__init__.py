"""Built-in synthetic data sets (deterministic from a seed) and their shared helpers."""

from __future__ import annotations

import numpy as np


def seed_sequence(seed: int | np.random.SeedSequence | tuple[int, ...]) -> np.random.SeedSequence:
    """A SeedSequence from an int, an existing SeedSequence, or ``(seed, *spawn_key)``."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, tuple):
        return np.random.SeedSequence(seed[0], spawn_key=tuple(seed[1:]))
    return np.random.SeedSequence(int(seed))


def rounded(x: float, digits: int = 6) -> float:
    """A drawn float rounded for the manifest (the signal uses the same rounded value)."""
    return float(round(float(x), digits))
