"""Cells of text tables of numbers (vibration CSVs): the delimiter, how numbers are written (decimal commas,
thousands separators) and where a cell is not a number. numpy-free, for :mod:`latentbridge.io.vibration`."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from latentbridge.errors import DataError


def _is_number(cell: str) -> bool:
    try:
        float(cell.strip().strip('"').strip())
    except ValueError:
        return False
    return True


def _pick_delimiter(line: str) -> str | None:
    # a tab before a comma: in a tab-separated line a comma is a decimal comma, never a separator
    for d in (";", "\t", ","):
        if d in line:
            return d
    return None


def _split(line: str, delim: str | None) -> list[str]:
    if delim is None:
        return line.split()
    return next(csv.reader([line], delimiter=delim, quotechar='"'))


def _delim_name(delim: str | None) -> str:
    return {";": "';'", ",": "','", "\t": "tab"}.get(delim, "whitespace") if delim else "whitespace"


def _decimal_commas(lines: list[str], rows: list[int]) -> bool:
    """Whether the numbers are written with decimal commas (European spreadsheets and loggers, ';' or tab
    between cells): commas in the first 50 data lines that hold a comma or a point, and no point there (a logger's
    pre-trigger rows of whole zeros hold neither: deciding on them refused a file of decimal commas)."""
    head = []
    for i in rows:
        if "," in lines[i] or "." in lines[i]:
            head.append(lines[i])
            if len(head) == 50:
                break
    return any("," in ln for ln in head) and not any("." in ln for ln in head)


_GROUPED = re.compile(r"-?[1-9]\d{0,2}(\.\d{3})+")
_WHOLE = re.compile(r"-?\d{1,3}")
_QUOTED_GROUPED = re.compile(r'"-?\d{1,3}(,\d{3})+(\.\d+)?"')


def thousands_problem(lines: list[str], rows: list[int], delim: str | None) -> str | None:
    """Why the numbers look grouped in thousands by dots (German spreadsheets and loggers: ``1.108`` for 1108, beside
    whole numbers such as ``430``), which read as decimal points silently divided those cells by 1000; None when they
    do not. Judged on the first 200 data lines: every cell with a point is grouped so (no ``0.125``, no ``2.5``), at
    least 20 of them, and at least 5 whole numbers of up to 3 digits beside them."""
    grouped = whole = 0
    example = None
    for i in rows[:200]:
        for cell in _split(lines[i], delim):
            c = cell.strip().strip('"').strip()
            if "." in c:
                if not _GROUPED.fullmatch(c):
                    return None
                grouped += 1
                example = example or (i, c)
            elif _WHOLE.fullmatch(c):
                whole += 1
    if grouped < 20 or whole < 5:
        return None
    line, cell = example
    return (f"line {line + 1}: {cell!r} among whole numbers of up to three digits: dots grouping thousands "
            f"({cell} for {cell.replace('.', '')}) would read as decimal points; save the numbers without thousands "
            "separators")


def quoted_thousands_hint(line: str) -> str:
    """A hint for a ragged line whose quoted numbers hold thousands separators (``"1,108"``, Excel in the US)."""
    m = _QUOTED_GROUPED.search(line)
    return (f": quoted numbers with thousands separators ({m.group()}) split at their commas; save the numbers "
            "without thousands separators") if m else ""


def _find_bad_cell(path: Path, lines: list[str], rows: list[int], delim: str | None, first: int,
                   skip: list[int] | tuple = ()) -> DataError:
    """Locate the first cell that is not a number, outside the columns ``skip`` (slow path, only after a parse
    failure)."""
    for k in range(first, len(rows)):
        i = rows[k]
        for j, cell in enumerate(_split(lines[i], delim)):
            if j in skip:
                continue
            c = cell.strip().strip('"').strip()
            if c == "":
                return DataError(path, f"line {i + 1}, column {j + 1}: empty cell (expected a number)")
            try:
                float(c)
            except ValueError:
                shown = c if len(c) <= 40 else c[:37] + "..."
                hint = (" (decimal commas and points mixed in one file)" if delim in (";", "\t") and "," in c
                        else "")
                return DataError(path, f"line {i + 1}, column {j + 1}: not a number: {shown!r}{hint}")
    return DataError(path, "could not parse the numbers (no single bad cell found)")
