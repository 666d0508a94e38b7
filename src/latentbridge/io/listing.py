"""Listing a folder's recordings (:func:`list_audio_files`): audio by extension, or the vibration CSVs and MATLAB
files of a folder without audio; hidden files, links to nothing and other files left out, and named."""

from __future__ import annotations

import errno
import logging
import os
from collections import Counter
from pathlib import Path

from latentbridge.errors import DataError
from latentbridge.io.audio import UNDECODED_AUDIO, _accepted, _is_audio_name, _not_audio, is_table
from latentbridge.utils import first_time, is_hidden, listed, walk_files

log = logging.getLogger(__name__)


def list_audio_files(root: str | Path, recursive: bool = True) -> list[Path]:
    """Audio files under ``root`` (sorted), or, when it holds none, its vibration CSVs and MATLAB files; ``[root]``
    when ``root`` is one such file.

    Extensions are matched case-insensitively against :data:`AUDIO_EXTENSIONS`. Hidden files
    and folders (name starting with ".", e.g. macOS ``._x.wav`` resource forks) are skipped.
    Raises DataError when ``root`` does not exist, is a file that is not audio, or is a folder
    holding no audio files (the message says how many other files it saw).
    """
    root = Path(root)
    if not root.exists():
        raise DataError(root, _missing(root))
    if root.is_file():
        if not _is_audio_name(root):
            raise DataError(root, _not_audio(root))
        return [root]
    if not root.is_dir():
        raise DataError(root, "is neither a file nor a folder")

    found: list[Path] = []
    tables: list[Path] = []
    others: Counter[str] = Counter()
    broken: list[Path] = []
    hidden = 0
    for p in walk_files(root, recursive):
        if is_hidden(p, root):
            hidden += 1
            continue
        if p.is_symlink() and not p.exists():
            broken.append(p)
            continue
        if not p.is_file():
            continue
        if _is_audio_name(p) and not is_table(p):
            found.append(p)
        elif is_table(p):
            tables.append(p)
        else:
            others[p.suffix.lower() or "(no extension)"] += 1
    if not found:  # a folder of vibration recordings (or of nothing readable: named below)
        found = tables
    else:
        others.update(p.suffix.lower() for p in tables)
    if not found:
        n_other = sum(others.values())
        where = "in this folder or its subfolders" if recursive else "directly in this folder"
        if n_other:
            seen = f"saw {n_other} other file{'s' if n_other != 1 else ''} ({_kinds(others)})"
        elif hidden:
            seen = (f"it holds {hidden} hidden file{'s' if hidden != 1 else ''} (names, or folders, starting with '.': "
                    "never read), and no other")
        else:
            seen = "the folder holds no files"
        raise DataError(
            root, f"no audio files found {where}; {seen}; accepted extensions: {_accepted()}"
        )
    if broken and first_time(("broken links", str(root))):
        log.warning("%s: %d link%s to nothing left out (%s)", root, len(broken), "s" if len(broken) != 1 else "",
                    listed([str(p.relative_to(root)) for p in sorted(broken)], 5))
    if others and first_time(("left out", str(root))):
        why = "; vibration recordings (.csv, .mat) are read from folders without audio" if tables and found is not tables \
            else ""
        log.warning("%s: %d file%s left out, not recordings the toolkit reads (%s)%s; accepted extensions: %s", root,
                    sum(others.values()), "s" if sum(others.values()) != 1 else "", _kinds(others), why, _accepted())
    return sorted(found)


def _missing(path: Path) -> str:
    """Why ``path`` does not exist: a link in a loop, a link to nothing, or nothing there (a loop read "does not
    exist")."""
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "is a link in a loop (it leads back to itself): link it to the recording"
    return f"is a link to nothing ({os.readlink(path)})" if path.is_symlink() else "does not exist"


def _kinds(others: Counter) -> str:
    """``.m4a x2, .txt x1`` of the files left out; audio in a format the decoder lacks (AAC, WMA, ...) said to be such,
    with how to convert it (a folder's ``.m4a`` files read as "not recordings")."""
    kinds = ", ".join(f"{ext} x{n}" for ext, n in sorted(others.items()))
    lacking = sorted(e for e in others if e in UNDECODED_AUDIO)
    if lacking:
        names = "/".join(dict.fromkeys(UNDECODED_AUDIO[e] for e in lacking))
        kinds += (f"; {names} audio is not a format the decoder reads: convert it first, e.g. 'ffmpeg -i "
                  f"rec{lacking[0]} rec.flac' (lossless)")
    return kinds
