"""Split names shared by the data-set readers and the audio-visual pairing."""

from __future__ import annotations

SPLITS: tuple[str, ...] = ("train", "test")


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split
