"""Split names shared by the data-set readers and the audio-visual pairing."""

from __future__ import annotations

SPLITS: tuple[str, ...] = ("train", "test")


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split


#: a digit's English word, as class folders of one's own data name them (the spoken-command sets' ``zero/`` ...)
DIGIT_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def folder_digit(name: str) -> int | None:
    """The digit a class folder's name stands for (``3``, ``three``, ``Three``), None for any other name."""
    n = name.strip().lower()
    if len(n) == 1 and n.isdigit():
        return int(n)
    return DIGIT_WORDS.index(n) if n in DIGIT_WORDS else None


def folder_split(rel_parts: tuple[str, ...]) -> str | None:
    """``"train"`` / ``"test"`` where a file's folders below the root name its split (``train/3/a.png``), else None."""
    named = [p.lower() for p in rel_parts[:-1] if p.lower() in SPLITS]
    return named[-1] if named else None
