"""Sensor columns matched by their header names (numpy-free): a logger that writes its columns in another order
(acc_08 ... acc_01, or time,az,ax,ay for time,ax,ay,az) had its channels swapped without a word when they were read by
position. The bridge reader (:mod:`latentbridge.data.bridge`) and the anomaly path (:func:`latentbridge.io.read_audio`
with ``columns``) put a recording's channels in a model's order by these rules."""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path

from latentbridge.errors import DataError
from latentbridge.utils import file_names, first_time, listed

log = logging.getLogger(__name__)

__all__ = ["same_columns", "by_name", "model_order", "common_columns", "left_out", "channels_read"]


def same_columns(names, others) -> bool:
    """Whether two header rows name the same sensor columns, each once, in any order."""
    return sorted(names) == sorted(others) and len(set(names)) == len(names)


def _unit(name) -> tuple[str, str | None]:
    """A column's name and its unit, where the header gives one as ``name [unit]`` (a units row joined to it)."""
    m = re.fullmatch(r"(.*?)\s*\[([^\]]*)\]", str(name).strip())
    return (m.group(1), m.group(2)) if m else (str(name).strip(), None)


def by_name(names, ref, units: bool | str = False) -> list[int] | None:
    """The indices that take ``ref``'s columns out of a header naming ``names``, by name, where ``names`` names each
    of them, and each once (the same set in another order, or more columns: a temperature, an rpm); None otherwise.
    With ``units`` (a model's columns read from a recording: :func:`model_order`, the readers), a name with its unit
    matches the same name without one (``ax [m/s2]`` for ``ax``: a logger's units row joined to one header, not the
    other, was refused as other sensors), not one of another unit; ``units="any"``, one of any unit. The one rule of
    :func:`model_order` and of a bridge folder's :class:`~latentbridge.data.bridge_columns.ChannelOrder` (names as
    written)."""
    names = list(names)
    if len(set(names)) != len(names) or len(set(ref)) != len(ref):
        return None
    if set(ref) <= set(names):
        return [names.index(n) for n in ref]
    if not units:
        return None
    split = [_unit(n) for n in names]
    bare = [b for b, _ in split]
    if len(set(bare)) != len(bare):
        return None
    idx = []
    for b, u in map(_unit, ref):
        i = bare.index(b) if b in bare else None
        if i is None or units != "any" and None not in (u, split[i][1]) and u != split[i][1]:
            return None
        idx.append(i)
    return idx if len(set(idx)) == len(idx) else None


def model_order(names: list[str] | None, model_names: list[str] | None, where, strict: bool = False
                ) -> list[int] | None:
    """The channel indices that put recordings whose sensor columns are named ``names`` in the order of
    ``model_names`` (the columns a model was trained on), when they are the same names in another order, or hold the
    model's names and others (those left out, with a warning naming them); None when there is nothing to reorder (no
    header, no names kept by the model, or the same order). Other names: read by
    position, with a warning naming both (``where``: the file or folder); ``strict``: refused, a DataError naming
    ``where``, both column sets and the channel counts."""
    if not names or not model_names or list(names) == list(model_names):
        return None
    if (idx := by_name(names, model_names, units=True)) is not None:
        extra = [n for i, n in enumerate(names) if i not in idx]  # a logger that also writes temperature...: left out
        text = _left_out_text(where, extra, model_names) if extra else (
            f"{where}: sensor columns named with units other than the model's training recordings' "
            f"({listed(names, 4)} for {listed(model_names, 4)}): read as the same sensors, by name"
            if idx == sorted(idx) else
            f"{where}: sensor columns in another order ({listed(names, 4)}) than the model's training recordings "
            f"({listed(model_names, 4)}): read in the model's order, by name")
        if first_time(("columns", text)):
            log.warning(text)
        return idx
    if strict:
        n, m = ("", "") if len(names) == len(model_names) else (f"{len(names)} ", f" {len(model_names)}")
        lacks = [c for c in model_names if by_name(names, [c], units=True) is None]
        raise DataError(where, f"its {n}sensor columns ({listed(names, 6, count=True)}) are not the model's{m} "
                               f"({listed(model_names, 6, count=True)}), without {listed(lacks, 4, count=True)}: the "
                               "model reads its columns by their names (a CSV's header, a MATLAB file's variables), so "
                               "a recording of other sensors (or a logger set up otherwise) is not scored as if it "
                               "were its own; rename the columns as the model's, or fit a model on such recordings")
    if len(names) == len(model_names) and (idx := by_name(names, model_names, units="any")) is not None:
        text = (f"{where}: sensor columns in other units ({listed(names, 4)}) than the model's training recordings "
                f"({listed(model_names, 4)}): read as the same sensors, by name, and their values as they are, in "
                "the model's units; convert them to those (1 g = 9.81 m/s2)")  # the same sensors in other units
        if first_time(("columns", text)):
            log.warning(text)
        return None if idx == list(range(len(idx))) else idx
    if len(names) == len(model_names):  # another channel count is refused where the model reads it
        twice = sorted(n for n, k in Counter(names).items() if k > 1)  # (it was "named otherwise")
        text = (f"{where}: its header names {listed(twice, 4)} more than once, so its sensor columns are read by "
                f"position as the model's ({listed(model_names, 4)})" if twice else
                f"{where}: sensor columns named otherwise ({listed(names, 4)}) than the model's training recordings "
                f"({listed(model_names, 4)}): read by position")
        if first_time(("columns", text)):
            log.warning(text)
    return None


def common_columns(named: dict, extra: bool = False) -> tuple[list[str] | None, list[str]]:
    """The sensor columns a model fitted on recordings whose header names are ``named`` (path -> names; empty: no
    header) reads: the set most of them name (a tie: the one of fewest columns), in the order of the first file naming
    it; and the files that lack one of them, each with its names and those it lacks. A file naming them and more (a
    logger that also writes a temperature, an rpm) is read by them, the others left out (:func:`model_order`;
    :func:`left_out` says so once for a training folder). ``extra`` (a bridge folder, aligned by
    :class:`~latentbridge.data.bridge_columns.ChannelOrder`, which reads a file lacking them by position): where the
    files hold different numbers of columns, only a set more than half of them name and every file names; else
    ``(None, [])`` as when no file has a header of distinct names (read by position: such recordings are mixed to one
    signal, or refused, by their channel counts)."""
    # a header naming a column twice, or leaving one unnamed (time,acc,acc; time,,), names no columns to match by
    named = {p: n for p, n in named.items() if n and len(set(n)) == len(n) and all(str(c).strip() for c in n)}
    sets = Counter(tuple(sorted(n)) for n in named.values())
    if not sets:
        return None, []
    common = max(sets, key=lambda s: (sets[s], -len(s)))  # the first of the most named, the fewest columns
    if extra and len({len(s) for s in sets}) > 1 and not (
            2 * sets[common] > sum(sets.values()) and all(set(common) <= set(s) for s in sets)):
        return None, []  # a tie of x,y with x,y,z: a sensor lost, or one added? Read by position
    columns = next(list(n) for n in named.values() if tuple(sorted(n)) == common)
    odd = [f"{Path(p).name} ({listed(n, 4)}; without {listed([c for c in columns if c not in n], 4)})"
           for p, n in named.items() if by_name(n, columns) is None]
    return columns, odd


def left_out(named: dict, columns: list[str], where) -> list:
    """The files of ``named`` (path -> header names) that name ``columns`` and more, said in one warning naming the
    columns left out and the files (``where``: their folder), which each file's reading then does not repeat
    (:func:`model_order`); returned."""
    extra = {p: [c for i, c in enumerate(n) if i not in by_name(n, columns, units=True)] for p, n in named.items()
             if n and len(n) > len(columns) and by_name(n, columns, units=True) is not None}
    if extra:
        names = list(dict.fromkeys(c for cs in extra.values() for c in cs))
        log.warning("%s: %d of %d recordings hold columns besides the sensor columns the model reads (%s): %s left "
                    "out, not modelled: %s", where, len(extra), sum(map(bool, named.values())), listed(columns, 6),
                    listed(names, 6, count=True), listed(file_names(list(extra)), 5, count=True))
        for p, cs in extra.items():
            first_time(("columns", _left_out_text(p, cs, columns)))
    return list(extra)


def _left_out_text(where, extra: list[str], model_names: list[str]) -> str:
    return (f"{where}: column(s) the model was not trained on left out ({listed(extra, 4, count=True)}); its "
            f"sensor columns ({listed(model_names, 4)}) read by name")


def channels_read(info, columns: list[str] | None) -> int:
    """How many channels a model reading ``columns`` (None: by position) takes of a recording whose header is
    ``info`` (an :class:`~latentbridge.io.audio.AudioInfo`): the model's columns where it names them all (a logger's
    temperature beside them is left out), else every channel it holds."""
    return len(columns) if columns and by_name(info.columns, columns, units=True) is not None else info.channels
