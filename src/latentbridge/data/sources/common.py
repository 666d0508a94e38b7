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


def drawn_splits(rel_paths: list[str], digits: list[int], share: float) -> list[bool]:
    """Whether each file is drawn for the test split: a draw seeded by its path (``share`` of them; a file added later
    moves no other), then within a digit of two files or more, the file of the lowest draw is test where none was and
    the file of the highest training where all were (five images a digit at a 20 % share left some digit without a
    test image 2 times in 3: the pairing of the test split refused the whole set)."""
    from latentbridge.utils import stable_hash

    draw = [int(stable_hash(r), 16) % 10**6 / 10**6 for r in rel_paths]
    test = [d < share for d in draw]
    for digit in set(digits):
        rows = [i for i, x in enumerate(digits) if x == digit]
        if len(rows) >= 2 and not any(test[i] for i in rows):
            test[min(rows, key=lambda i: draw[i])] = True
        elif len(rows) >= 2 and all(test[i] for i in rows):
            test[max(rows, key=lambda i: draw[i])] = False
    return test
