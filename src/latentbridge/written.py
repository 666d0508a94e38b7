"""What latentbridge wrote in an output folder: a hidden list, so that ``--force`` deletes nothing else.

An output folder (a run, an evaluation, samples, scores, a synthetic data set) is replaced as a whole by ``--force``.
Files a user added to it afterwards (notes, a notebook, their own plots) went with it. When a command finishes a
folder it lists every file in it in :data:`WRITTEN` (one relative path per line); files a later command writes into
it in place (``anomaly calibrate``'s ``calibration.json``, through :func:`latentbridge.utils.atomic_path`) join the
list; :func:`added_files` names what the list does not hold. A folder without the list (a training stopped before it
finished, or one written by an earlier latentbridge) is judged by its names alone, as before.
"""

from __future__ import annotations

import os
from pathlib import Path

#: the list's file name, at the top of the output folder (hidden: never read as data)
WRITTEN = ".latentbridge-written"

#: what file managers and notebooks leave in any folder they open: nothing of the user's
_LITTER = frozenset({".DS_Store", "Thumbs.db", "desktop.ini", ".ipynb_checkpoints", WRITTEN})

#: how far above a file :func:`note_written` looks for its output folder's list
_DEPTH = 4


def _passing(name: str) -> bool:
    """Whether ``name`` is litter (:data:`_LITTER`, macOS's ``._`` resource forks) or what a latentbridge command
    holds only while it writes: a lock (``.NAME.lock``), a file or folder on its way (``.NAME.XXXX.partial``,
    ``.NAME.tmp-PID``)."""
    return name in _LITTER or name.startswith("._") or name.startswith(".") and (
        name.endswith((".partial", ".lock")) or ".tmp-" in name)


def _files(folder: Path) -> list[str]:
    """Every file below ``folder``, as relative POSIX paths (links not followed: a link is one entry)."""
    out = []
    for top, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not _passing(d)]
        rel = Path(top).relative_to(folder)
        out += [(rel / f).as_posix() for f in files if not _passing(f)]
        out += [(rel / d).as_posix() for d in dirs if os.path.islink(os.path.join(top, d))]
    return sorted(out)


def record_written(folder: str | Path, leave_out=()) -> None:
    """List every file in ``folder`` but ``leave_out`` (a user's, found before) as latentbridge's (a command that
    wrote it is finishing)."""
    folder = Path(folder)
    listing = folder / WRITTEN
    tmp = listing.with_name(listing.name + ".partial")
    leave_out = set(leave_out)
    text = "".join(f + "\n" for f in _files(folder) if f not in leave_out)
    try:
        if listing.read_text(encoding="utf-8", errors="surrogateescape") == text:  # a refused --resume: unchanged
            return
    except OSError:
        pass
    try:
        tmp.write_text(text, encoding="utf-8", errors="surrogateescape")
        os.replace(tmp, listing)
    except OSError:  # a list that cannot be written: the folder is judged by its names, as before
        tmp.unlink(missing_ok=True)


def _listed(folder: Path) -> set[str] | None:
    try:
        text = (folder / WRITTEN).read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return None
    return set(text.splitlines())


def note_written(path: str | Path) -> None:
    """Add ``path`` (a file or folder just written in place) to the list of the output folder that holds it, if one
    lies within a few folders above it."""
    path = Path(os.path.abspath(path))
    for folder in list(path.parents)[:_DEPTH]:
        listed = _listed(folder)
        if listed is None:
            continue
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):  # inside a folder on its way: listed when it is done
            return
        new = [f for f in ([(rel / f).as_posix() for f in _files(path)] if path.is_dir() else [rel.as_posix()])
               if f not in listed]
        if new:
            try:
                with open(folder / WRITTEN, "a", encoding="utf-8", errors="surrogateescape") as fh:
                    fh.write("".join(f + "\n" for f in new))
            except OSError:
                pass
        return


#: what a training writes in place while it runs (a resumed one, killed before it lists the folder again, wrote
#: there files its list does not hold): never a user's
TRAINING_FOLDERS = ("checkpoints/", "logs/", "first_stage/")


def added_files(folder: str | Path) -> list[str] | None:
    """The files in ``folder`` that latentbridge did not write there (a user's), or None for a folder without a list."""
    folder = Path(folder)
    listed = _listed(folder)
    if listed is None:
        return None
    return [f for f in _files(folder) if f not in listed and not f.startswith(TRAINING_FOLDERS)]
