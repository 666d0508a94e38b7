"""Sensor columns matched by their header names (numpy-free): a logger that writes its columns in another order
(acc_08 ... acc_01, or time,az,ax,ay for time,ax,ay,az) had its channels swapped without a word when they were read by
position. The bridge reader (:mod:`latentbridge.data.bridge`) and the anomaly path (:func:`latentbridge.io.read_audio`
with ``columns``) put a recording's channels in a model's order by these rules."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from latentbridge.errors import DataError
from latentbridge.utils import first_time, listed

log = logging.getLogger(__name__)

__all__ = ["same_columns", "by_name", "model_order", "common_columns"]


def same_columns(names, others) -> bool:
    """Whether two header rows name the same sensor columns, each once, in any order."""
    return sorted(names) == sorted(others) and len(set(names)) == len(names)


def by_name(names, ref) -> list[int] | None:
    """The indices that take ``ref``'s columns out of a header naming ``names``, by name, where ``names`` names each
    of them, and each once (the same set in another order, or more columns: a temperature, an rpm); None otherwise.
    The one rule of :func:`model_order` and of a bridge folder's
    :class:`~latentbridge.data.bridge_columns.ChannelOrder`."""
    names = list(names)
    if len(set(names)) != len(names) or len(set(ref)) != len(ref) or not set(ref) <= set(names):
        return None
    return [names.index(n) for n in ref]


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
    if (idx := by_name(names, model_names)) is not None:
        extra = [n for n in names if n not in model_names]  # a logger that also writes temperature, rpm...: left out
        text = (f"{where}: column(s) the model was not trained on left out ({listed(extra, 4, count=True)}); its "
                f"sensor columns ({listed(model_names, 4)}) read by name" if extra else
                f"{where}: sensor columns in another order ({listed(names, 4)}) than the model's training recordings "
                f"({listed(model_names, 4)}): read in the model's order, by name")
        if first_time(("columns", text)):
            log.warning(text)
        return idx
    if strict:
        n, m = ("", "") if len(names) == len(model_names) else (f"{len(names)} ", f" {len(model_names)}")
        raise DataError(where, f"its {n}sensor columns ({listed(names, 6, count=True)}) are not the model's{m} "
                               f"({listed(model_names, 6, count=True)}): the model reads its columns by their header "
                               "names, so a recording of other sensors (or a logger set up otherwise) is not scored as "
                               "if it were its own; rename the columns as the model's, or fit a model on such "
                               "recordings")
    if len(names) == len(model_names):  # another channel count is refused where the model reads it
        text = (f"{where}: sensor columns named otherwise ({listed(names, 4)}) than the model's training recordings "
                f"({listed(model_names, 4)}): read by position")
        if first_time(("columns", text)):
            log.warning(text)
    return None


def common_columns(named: dict, extra: bool = False) -> tuple[list[str] | None, list[str]]:
    """The sensor columns a model fitted on recordings whose header names are ``named`` (path -> names; empty: no
    header) reads: the set most of them name, in the order of the first file naming it; and the files (with their
    names) that name another set. Where they hold different numbers of columns, ``extra`` (a bridge folder, aligned by
    :class:`~latentbridge.data.bridge_columns.ChannelOrder`): the smallest set when more than half of the files name it
    and every file names it (a few also write a temperature: left out when read); else ``(None, [])`` as when no file
    has a header of distinct names (read by position: such recordings are mixed to one signal, or refused, by their
    channel counts; an anomaly model's survey counts the channels of every column)."""
    # a header naming a column twice, or leaving one unnamed (time,acc,acc; time,,), names no columns to match by
    named = {p: n for p, n in named.items() if n and len(set(n)) == len(n) and all(str(c).strip() for c in n)}
    sets = Counter(tuple(sorted(n)) for n in named.values() if n)
    if sets and len({len(s) for s in sets}) > 1:
        # a few files also hold a temperature, an rpm...: the set most files name, when it is the smallest and every
        # file names it, is read by name (the others' extra columns left out when read: model_order); a set most
        # files exceed (a sensor missing from some) is not taken for them
        least = min(sets, key=len)
        if extra and 2 * sets[least] > sum(sets.values()) and all(set(least) <= set(s) for s in sets):
            return next(list(n) for n in named.values() if tuple(sorted(n)) == least), []
        return None, []
    if not sets:
        return None, []
    common = sets.most_common(1)[0][0]
    columns = next(list(n) for n in named.values() if n and tuple(sorted(n)) == common)
    odd = [f"{Path(p).name} ({listed(n, 4)})" for p, n in named.items() if n and not same_columns(n, columns)]
    return columns, odd
