"""Notes a file reader says about one file that hold for others alike (a time read from a column of its own name, Unix
time, columns of text): once per folder, or in a :func:`reading_set` block (a bridge data set, one folder per test) once
for the whole set, with how many of its files each applies to. The bridge reader said such a note once per test
folder: 24 times for 24 tests, each saying "(the folder's other files are not named)"."""

from __future__ import annotations

import contextlib
import contextvars
import logging
from pathlib import Path
from typing import Iterator

from latentbridge.utils import first_time

_SET: contextvars.ContextVar = contextvars.ContextVar("latentbridge_reading_set", default=None)


@contextlib.contextmanager
def reading_set(where) -> Iterator[None]:
    """The files read in the block are one data set (``where``: its folder): each note of :func:`file_note` is said
    once, when the block ends, naming its first file and how many files of the set it applies to."""
    notes: dict = {}
    token = _SET.set(notes)
    try:
        yield
    finally:
        _SET.reset(token)
        for key, (log, path, text, n) in notes.items():
            if first_time((key, str(where))):
                log.warning("%s: %s%s", path, text,
                            f" (so in {n} files of {where}; the others are not named)" if n > 1 else "")


def file_note(log: logging.Logger, key: tuple, path: Path, text: str) -> None:
    """Warn ``"PATH: text"`` for the first file of a folder that ``key`` (the note's kind and what decides it, not the
    file's own figures) applies to, the folder's others alike not named; in a :func:`reading_set` block, once for the
    set."""
    notes = _SET.get()
    if notes is None:
        if first_time((key, str(Path(path).parent))):
            log.warning("%s: %s (the folder's other files are not named)", path, text)
        return
    log0, path0, text0, n = notes.get(key, (log, path, text, 0))
    notes[key] = (log0, path0, text0, n + 1)
