"""Built-in synthetic data sets (deterministic from a seed) and their shared helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from latentbridge.errors import ConfigError, DataError


def check_int(name: str, v: Any, lo: int, hi: int) -> int:
    """A generator's whole-number option (a bool or a float refused), from ``lo`` to ``hi``."""
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not (lo <= v <= hi):
        raise ConfigError(f"{name} must be an integer from {lo} to {hi}, got {v!r}")
    return int(v)


def check_out_dir(out_dir: Path, overwrite: bool) -> None:
    """A generator's output folder: a folder (not a file, not a link), empty unless ``overwrite``."""
    if out_dir.exists() or out_dir.is_symlink():
        if not out_dir.is_dir() or out_dir.is_symlink():
            raise DataError(out_dir, "exists and is not a folder; choose another output folder")
        if any(out_dir.iterdir()) and not overwrite:
            raise DataError(out_dir, "folder exists and is not empty; pass overwrite=True to replace it")


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
