"""Split names shared by the data-set readers and the audio-visual pairing, and what the readers share of one's
own folders."""

from __future__ import annotations

from pathlib import Path

from latentbridge.errors import DataError

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


def both_sides(test: list[bool], digits: list[int], order: list[float]) -> list[bool]:
    """``test`` with every digit of two files or more holding one on each side: where none of its files is test, the
    one first in ``order`` is; where all are, the last is not (five images a digit at a 20 % share left some digit
    without a test image 2 times in 3: the pairing of the test split refused the whole set)."""
    test = list(test)
    for digit in set(digits):
        rows = sorted((i for i, x in enumerate(digits) if x == digit), key=lambda i: order[i])
        if len(rows) >= 2 and not any(test[i] for i in rows):
            test[rows[0]] = True
        elif len(rows) >= 2 and all(test[i] for i in rows):
            test[rows[-1]] = False
    return test


def drawn_splits(rel_paths: list[str], digits: list[int], share: float) -> list[bool]:
    """Whether each file is drawn for the test split: a draw seeded by its path (``share`` of them; a file added later
    moves no other but the one :func:`both_sides` may have kept for its digit)."""
    from latentbridge.utils import stable_hash

    draw = [int(stable_hash(r), 16) % 10**6 / 10**6 for r in rel_paths]
    return both_sides([d < share for d in draw], digits, draw)


def real_place(path: Path, root: Path, top: Path | None = None) -> Path:
    """Where ``path``, found below ``root`` through links, really lies below it (its split and digit are read from
    there: a file linked into test/ from train/ was in both splits, a train/ folder linked in as test/eight read as
    test), or its own place where it lies outside."""
    import os

    real, top = Path(os.path.realpath(path)), top or Path(os.path.realpath(root))  # (``top``: the root's, once)
    return real.relative_to(top) if real.is_relative_to(top) else path.relative_to(root)


def refuse_missing(root: Path, given, download: bool, setting: str, fetch: str | None, what: str) -> None:
    """A data folder the user named (``given`` not None) that does not exist and is not to be downloaded: said so, with
    the option that names it (FSDD's said "no spoken digits found", MNIST's "MNIST test file missing")."""
    if given is not None and not download and not root.exists():
        raise DataError(root, f"does not exist ({setting}" + (f"; {fetch} fetches {what} there" if fetch else "") + ")")
