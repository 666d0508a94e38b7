"""Sensor columns matched by their header names (numpy-free): a logger that writes its columns in another order
(acc_08 ... acc_01, or time,az,ax,ay for time,ax,ay,az) had its channels swapped without a word when they were read by
position. The bridge reader (:mod:`latentbridge.data.bridge`) puts a recording's channels in a model's order by these
rules."""

from __future__ import annotations

import logging

from latentbridge.utils import first_time, listed

log = logging.getLogger(__name__)

__all__ = ["same_columns", "model_order"]


def same_columns(names, others) -> bool:
    """Whether two header rows name the same sensor columns, each once, in any order."""
    return sorted(names) == sorted(others) and len(set(names)) == len(names)


def model_order(names: list[str] | None, model_names: list[str] | None, where) -> list[int] | None:
    """The channel indices that put recordings whose sensor columns are named ``names`` in the order of
    ``model_names`` (the columns a model was trained on), when they are the same names in another order; None when
    there is nothing to reorder (no header, no names kept by the model, or the same order). Other names: read by
    position, with a warning naming both (``where``: the file or folder)."""
    if not names or not model_names or list(names) == list(model_names):
        return None
    if same_columns(names, model_names):
        text = (f"{where}: sensor columns in another order ({listed(names, 4)}) than the model's training recordings "
                f"({listed(model_names, 4)}): read in the model's order, by name")
        if first_time(("columns", text)):
            log.warning(text)
        return [list(names).index(n) for n in model_names]
    if len(names) == len(model_names):  # another channel count is refused where the model reads it
        text = (f"{where}: sensor columns named otherwise ({listed(names, 4)}) than the model's training recordings "
                f"({listed(model_names, 4)}): read by position")
        if first_time(("columns", text)):
            log.warning(text)
    return None
