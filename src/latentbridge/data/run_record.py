"""What data a run trained on: the record of the files it read (``logs/data_files.json``: each file's size, and those
held out of training), which a resume checks (:func:`check_same_data`) and an evaluation of the run's own split reads
(:func:`held_out_changed`, :func:`trained_among`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from latentbridge.errors import LatentbridgeError

log = logging.getLogger(__name__)


#: where a run records the files it reads (path → size in bytes)
DATA_RECORD = Path("logs") / "data_files.json"


def data_listing(files) -> dict[str, int]:
    """``{resolved path: size in bytes}`` of ``files`` (-1 where one cannot be read)."""
    out = {}
    for f in files:
        try:
            size = Path(f).stat().st_size
        except OSError:
            size = -1
        out[str(Path(f).resolve())] = size
    return out


def record_data(folder: Path, files, held_out=None) -> None:
    """Record ``files`` (:func:`data_listing`) as the data of the trained run in ``folder``, with those of them
    ``held_out`` from training (validation), unless it holds a record (a resume)."""
    from latentbridge.utils import atomic_write_json

    if not (folder / DATA_RECORD).is_file():
        (folder / DATA_RECORD).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / DATA_RECORD, {"files": data_listing(files),
                                                 "held_out": sorted(str(Path(f).resolve()) for f in held_out or ())})


def _data_record(folder: Path) -> dict | None:
    """The run's record of its data (:func:`record_data`), or None (none, or unreadable)."""
    import json

    try:
        record = json.loads((Path(folder) / DATA_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("files"), dict) else None


def trained_files(folder: Path) -> set[str] | None:
    """The files (resolved paths) the run in ``folder`` trained on, by its record: those it read less those it held
    out; None without a record (a closed-form model, a run from before the record)."""
    record = _data_record(folder)
    return None if record is None else set(record["files"]) - set(record.get("held_out") or ())


def trained_among(folder: Path, files, listing) -> list[bool] | None:
    """Which of ``files`` (of the run's data, listed now as ``listing``) the run in ``folder`` trained on, by its
    record: paths matched as they are, or below the folder common to each listing (a project moved with its data);
    None where the record cannot tell: none, or one that names no file held out (image runs recorded before
    2026-12-07 counted their validation and test images as trained on)."""
    record = _data_record(folder)
    if record is None or not record.get("held_out"):
        return None
    trained = set(record["files"]) - set(record["held_out"])
    (old, _), (top, _) = _below_common(record["files"]), _below_common(data_listing(listing))
    moved = {os.path.relpath(f, old) for f in trained}
    return [(p := str(Path(f).resolve())) in trained or os.path.relpath(p, top) in moved for f in files]


def check_same_data(folder: Path, files) -> None:
    """Refuse to resume the run in ``folder`` over files other than those it recorded (added, removed, or of another
    size): its held-out split would be drawn anew over them, and files it trained on could judge it. Runs without a
    record (older ones) are not checked."""
    if said := data_changes(folder, files):
        raise LatentbridgeError(f"{folder}: cannot resume: the training data changed since the run started ({said}): "
                                "its files would be split anew into training and held-out ones, so files it trained on "
                                "could judge it; restore the data as it was, or train a new run; nothing in the run "
                                "folder was changed")


def data_changes(folder: Path, files) -> str:
    """What differs between ``files`` and the record of the run in ``folder`` (files added, gone, or of another size),
    in words; empty where nothing does, or the run has no record (older ones)."""
    from latentbridge.utils import listed

    if (record := _data_record(folder)) is None:
        return ""
    (_, old), (top, new) = _below_common(record["files"]), _below_common(data_listing(files))
    changes = [(sorted(set(new) - set(old)), "added"), (sorted(set(old) - set(new)), "gone"),
               (sorted(k for k in set(new) & set(old) if new[k] != old[k]), "of another size")]
    said = "; ".join(f"{len(v)} {what} ({listed(v)})" for v, what in changes if v)
    return f"{said}, under {top}" if said else ""


def _below_common(listing: dict[str, int]) -> tuple[str, dict[str, int]]:
    """(the folder common to the paths of ``{path: size}``, the listing with the paths below it): a project folder
    moved or copied with its data is the same data (every file was 'gone' and 'added')."""
    if not listing:
        return "", {}
    top = os.path.commonpath(list(listing)) if len(listing) > 1 else os.path.dirname(next(iter(listing)))
    return top, {os.path.relpath(k, top): v for k, v in listing.items()}


def held_out_changed(folder: Path, files, what: str = "states") -> str:
    """Warn where the data a run is evaluated on by its own held-out split changed since it trained (the states, or
    recordings: ``what``, of the split's names may be other recordings: data made again in its place was scored as
    the held-out ones without a word). What the evaluation's scope adds (nothing where unchanged)."""
    if not (said := data_changes(folder, files)):
        return ""
    log.warning("%s: the run's data changed since it was trained (%s): its held-out %s, by name, may be other "
                "recordings than those it held out, and its training %s may be among them", folder, said, what, what)
    return " (the data changed since training: " + said + ")"
