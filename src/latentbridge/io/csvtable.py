"""The table of numbers in a vibration CSV: its layout (a logger's notes above it, delimiter, decimal mark, header, a
units row, closing delimiters, columns of text) read from its first lines, then its numbers a block of lines at a time
(:class:`~latentbridge.io.text.LineBlocks`). What the numbers mean (a time column, the channels, the sample rate) is
:func:`latentbridge.io.vibration.read_vibration_csv`'s; the rules are in that module's docstring."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latentbridge.errors import DataError
from latentbridge.io.cells import (_decimal_commas, _delim_name, _find_bad_cell, _is_number, _pick_delimiter, _split,
                                  quoted_thousands_hint, thousands_problem)
from latentbridge.io.notes import file_note
from latentbridge.io.text import LineBlocks, decode_text, excel_separator
from latentbridge.io.timecolumns import _norm_name, datetime_column, datetimes_to_microseconds

log = logging.getLogger("latentbridge.io.vibration")  # (its notes are the CSV reader's)

#: the rows of a CSV its layout is read from (notes above the table, header, units, delimiter, how numbers are
#: written); the rest is read a block of lines at a time (:class:`~latentbridge.io.text.LineBlocks`)
HEAD_ROWS = 256


@dataclass
class CsvTable:
    """A CSV's numbers: ``data`` (rows, columns) float64 (a column of dates and times as microseconds since its first,
    a text column as zeros), ``at`` each row's 0-based line, the ``header``'s names (None without one; a units row's
    units joined to them), the ``notes`` above the table, the column of dates and times and the text columns (left
    out) by index."""

    data: np.ndarray
    at: np.ndarray
    header: list[str] | None
    notes: list[str]
    datetime_col: int | None
    text_cols: list[int]

    def line_of(self, row: int) -> int:
        """The 1-based line of ``row``, as an editor shows it."""
        return int(self.at[row]) + 1


def read_csv_table(path: Path) -> CsvTable:
    """The table of numbers in the CSV at ``path``; DataError naming the file (and line, column) for an empty file,
    no data rows, ragged rows, thousands separators, a column of words and numbers, a cell that is not a number.
    Whatever the blocks, the same numbers and the same message: ragged rows first, then a text column's number, then a
    bad cell."""
    raw = path.read_bytes()
    if not raw or raw.isspace():
        raise DataError(path, "file is empty" + (" (0 bytes)" if not raw else " (only whitespace)"))
    text = decode_text(raw, path, "a CSV of numbers")
    del raw
    lines = LineBlocks(text)  # the head, the lines the table's layout is read from, then a block at a time
    del text
    return _TableReader(path, lines).read()


def _zero(_cell) -> float:
    """A text column's cells, read as 0 (the column is left out)."""
    return 0.0


def _table_start(lines, rows: list[int], last: str) -> int:
    """Where the table begins among ``rows`` (the file's first rows: at least :data:`HEAD_ROWS`, or all): after a
    logger's notes (device, date, "Sample rate: 1000 Hz"), lines with words in them and fewer fields than the table's
    last line (``last``, the file's), the first line of the table's shape followed by five more. 0 otherwise (a ragged
    table, or a header wider than its rows, is the structural pass's to name)."""
    delim = _pick_delimiter(last)
    width = len(_split(last, delim))
    for k in range(min(64, len(rows) - 6)):
        n = len(_split(lines[rows[k]], delim))
        if n == width:
            return k if all(len(_split(lines[i], delim)) == width for i in rows[k:k + 6]) else 0
        if n > width or not any(ch.isalpha() for ch in lines[rows[k]]):
            return 0  # numbers (the table itself, ragged) or a header wider than the table
        if delim == "," and n >= 2 and 2 * n == width and k + 1 < len(rows) and \
                len(_split(lines[rows[k + 1]], delim)) == width:
            return 0  # a header over rows of decimal commas split at them: the structural pass names it
    return 0


def _text(cell: str) -> bool:
    """Words, not a number written oddly ('1,5' among points is named by the parser)."""
    c = cell.strip().strip('"').strip()
    return any(ch.isalpha() for ch in c) and not _is_number(c)


class _TableReader:
    """One read of a CSV's lines: the layout from the head, then each block of lines brought to the head's form
    (dates as numbers, decimal points, closing delimiters cut), its fields counted and its numbers parsed."""

    def __init__(self, path: Path, lines: LineBlocks):
        self.path, self.lines = path, lines
        # the layout, read by _head before any block: the notes above the table, the delimiter (None: runs of
        # whitespace), the column of dates and times, the header's names
        self.notes: list[str] = []
        self.delim: str | None = None
        self.datetime_col: int | None = None
        self.header: list[str] | None = None
        self.t0, self.commas, self.closing = None, False, 0  # the first stamp; decimal commas; closing delimiters
        self.hist: dict[int, int] = {}  # lines per count of fields, over the whole file
        self.first_at: dict[int, tuple[int, str]] = {}  # each count's first line
        self.mixed: dict[int, int] = {}  # a column with words on the first line and a number or a gap later: that line
        self.text_cols: list[int] = []

    # --- the head: notes, delimiter, decimal mark, header, closing delimiters, units
    def _head(self) -> tuple[list[int], list[int]]:
        """The head's rows (a header's included) and its data rows, in the table's form."""
        path, lines = self.path, self.lines
        rows = lines.read(keep=True)
        while len(rows) < HEAD_ROWS and not lines.done:
            rows += lines.read(keep=True)
        if not rows:
            raise DataError(path, "file holds no data (only blank or comment lines)")
        sep = excel_separator(lines[rows[0]])
        if sep and len(rows) > 1:  # Excel's line naming the delimiter
            rows = rows[1:]
        start = 0 if sep else _table_start(lines, rows, lines.last_row() if not lines.done else lines[rows[-1]])
        self.notes = [lines[i] for i in rows[:start]]  # a logger's lines above its table
        rows = rows[start:]
        self.delim = delim = sep or _pick_delimiter(lines[rows[0]])
        self.datetime_col, first_stamp = datetime_column(lines, rows, delim)
        self._stamps(rows, max(1, first_stamp))
        if delim in (";", "\t"):  # decimal commas, judged on the first 50 data lines that hold a comma or a point
            marked = sum(1 for i in rows[1:] if "," in lines[i] or "." in lines[i])  # (rows[0] may be a header)
            while marked < 50 and not lines.done:
                rows = rows + (new := self._more())
                marked += sum(1 for i in new if "," in lines[i] or "." in lines[i])
            self.commas = _decimal_commas(lines, rows[1:])
        self._points(rows)
        first_cells = _split(lines[rows[0]], delim)
        has_header = any(c.strip().strip('"').strip() != "" and not _is_number(c) for c in first_cells)
        self.header = [c.strip().strip('"').strip() for c in first_cells] if has_header else None
        data_rows = rows[1:] if has_header else rows
        if not data_rows:
            raise DataError(path, "no data rows (only a header line)")
        while len(data_rows) < HEAD_ROWS and not lines.done:  # closing delimiters: judged on HEAD_ROWS data lines
            self._points(new := self._more())
            rows, data_rows = rows + new, data_rows + new
        self._cut_closing(data_rows)
        if self.header is not None and len(data_rows) > 1:  # a units row under the header (instrument exports): its
            units = [c.strip().strip('"').strip() for c in _split(lines[data_rows[0]], delim)]  # units join the names
            if any(units) and not any(_is_number(u) for u in units if u):
                self.header = [f"{h} [{u.strip('[]()')}]" if u and _norm_name(h)[1] is None else h
                               for h, u in zip(self.header, units + [""] * len(self.header))]
                data_rows = data_rows[1:]
        if delim != "," and (problem := thousands_problem(lines, data_rows, delim)):
            raise DataError(path, problem)
        return rows, data_rows

    def _cut_closing(self, data_rows: list[int]) -> None:
        """Delimiters that close every line of the head (loggers, spreadsheet exports; empty columns after the table:
        one per delimiter) counted and cut: no empty last column. The lines after the head lose as many."""
        lines, judged = self.lines, data_rows[:HEAD_ROWS]
        while self.delim is not None and all(lines[i].rstrip().endswith(self.delim) for i in judged):
            self.closing += 1
            for i in judged:
                lines[i] = lines[i].rstrip()[:-1]
            if self.header is not None and self.header[-1] == "":
                self.header = self.header[:-1]
        self._unclosed(data_rows[HEAD_ROWS:])

    # --- each block of lines brought to the head's form
    def _stamps(self, rows: list[int], first: int = 0) -> None:
        """Dates and times as numbers: microseconds since the first."""
        if self.datetime_col is not None:
            self.t0 = datetimes_to_microseconds(self.path, self.lines, rows, self.delim, self.datetime_col, first,
                                                self.t0)

    def _points(self, rows: list[int]) -> None:
        """Decimal commas as the parser reads them."""
        if self.commas:
            for i in rows:
                self.lines[i] = self.lines[i].replace(",", ".")

    def _more(self) -> list[int]:
        """The head grown by a block (its stamps as numbers; then the decimal mark is judged)."""
        new = self.lines.read(keep=True)
        self._stamps(new)
        return new

    def _unclosed(self, rows: list[int]) -> None:
        """The closing delimiters cut from lines after the head: a line without them is read as it is."""
        for _ in range(self.closing):
            for i in rows:
                if (ln := self.lines[i].rstrip()).endswith(self.delim):
                    self.lines[i] = ln[:-1]

    def _count(self, rows: list[int]) -> np.ndarray:
        """Each line's fields, counted into the whole file's histogram (each count's first line kept)."""
        lines, delim = self.lines, self.delim
        if delim is None:
            c = np.fromiter((len(lines[i].split()) for i in rows), dtype=np.int64, count=len(rows))
        else:
            c = np.fromiter((lines[i].count(delim) for i in rows), dtype=np.int64, count=len(rows)) + 1
        for v, k, n in zip(*(a.tolist() for a in np.unique(c, return_index=True, return_counts=True))):
            self.hist[v] = self.hist.get(v, 0) + n
            self.first_at.setdefault(v, (rows[k], lines[rows[k]]))
        return c

    def _unworded(self, rows: list[int], cols) -> None:
        """Columns of words whose cell on one of ``rows`` is a number or a gap: that line, in ``mixed``."""
        for j in cols:
            if (i := next((i for i in rows if not _text(_split(self.lines[i], self.delim)[j])), None)) is not None:
                self.mixed.setdefault(j, i)

    # --- the whole read
    def read(self) -> CsvTable:
        path, lines = self.path, self.lines
        rows, data_rows = self._head()
        delim, header = self.delim, self.header
        counts = self._count(data_rows)
        # parsed while every line has the expected count: the header's, else the head's most common one
        expected = len(header) if header is not None else int(np.bincount(counts).argmax())

        # columns of text on every line (a logger's status or device name): not sensors, left out
        worded = [j for j, c in enumerate(_split(lines[data_rows[0]], delim)) if _text(c)] \
            if np.all(counts == expected) else []  # (ragged rows are named first)
        self._unworded(data_rows, worded)
        text_cols = self.text_cols = [j for j in worded if j not in self.mixed]  # text on every line: left out
        if text_cols:
            named, many = ", ".join(repr(header[j]) if header else str(j + 1) for j in text_cols), len(text_cols) > 1
            file_note(log, ("csv text columns", tuple(text_cols)), path,
                      f"column{'s' if many else ''} {named} hold{'' if many else 's'} text, not numbers: left out")
        first_line = {data_rows[0]: lines[data_rows[0]]}  # (where a text column's first number is named)

        # numbers (C parser), a block of lines at a time. What a read of the whole file names first is named first:
        # ragged rows (over every line), a text column's number, a bad cell
        data, at, n_rows = None, np.empty(0, dtype=np.int64), 0
        bad_cell, head = None, True
        while True:
            if list(self.hist) == [expected] and data_rows:
                if not head:
                    self._unworded(data_rows, [j for j in text_cols if j not in self.mixed])
                if not self.mixed and bad_cell is None:
                    try:
                        block = np.loadtxt([lines[i] for i in data_rows], delimiter=delim, dtype=np.float64, ndmin=2,
                                           quotechar='"' if delim is not None else None, comments=None,
                                           converters={j: _zero for j in text_cols} or None)
                    except ValueError:
                        bad_cell = _find_bad_cell(path, lines, data_rows, delim, 0, text_cols)
                    else:
                        if data is None or n_rows + len(block) > len(data):  # (room for every line of the text, once)
                            grown = max(lines.bound, n_rows + len(block))
                            data = np.concatenate([np.empty((0, block.shape[1])) if data is None else data[:n_rows],
                                                   np.empty((grown - n_rows, block.shape[1]))])
                            at = np.concatenate([at[:n_rows], np.empty(grown - n_rows, dtype=np.int64)])
                        data[n_rows:n_rows + len(block)], at[n_rows:n_rows + len(block)] = block, data_rows
                        n_rows += len(block)
            if lines.done:
                break
            data_rows, head = lines.read(), False
            self._stamps(data_rows)
            self._points(data_rows)
            self._unclosed(data_rows)
            self._count(data_rows)
        expected = self._fields_per_line(rows[0], expected, first_line)
        if bad_cell is not None:
            raise bad_cell
        data = np.empty((0, expected)) if data is None else data[:n_rows]
        return CsvTable(data, at[:n_rows], header, self.notes, self.datetime_col, text_cols)

    def _fields_per_line(self, header_row: int, expected: int, first_line: dict) -> int:
        """The fields of a line (the header's, else the most common count), once every line is counted; DataError for a
        header whose fields the lines do not have, ragged rows, or a column with words on its first line and numbers
        further down (the whole parse named its first word)."""
        path, header, delim, hist, first_at = self.path, self.header, self.delim, self.hist, self.first_at
        if header is None:  # the most common count among every data line
            expected = max(sorted(hist), key=lambda v: hist[v])
        if header is not None and len(hist) == 1 and expected not in hist:
            (found,) = hist
            raise DataError(
                path,
                f"the header (line {header_row + 1}) has {len(header)} fields but the data lines "
                f"(from line {first_at[found][0] + 1}) have {found} (delimiter {_delim_name(delim)})"
                + (": numbers written with decimal commas between cells separated by commas? Save the file with ';' "
                   "or tabs between the cells" if delim == "," and 2 * len(header) == found else ""),
            )
        if wrong := [v for v in hist if v != expected]:
            v = min(wrong, key=lambda v: first_at[v][0])
            basis = f"as in the header on line {header_row + 1}" if header is not None else "as on most lines"
            n_wrong = sum(hist[v] for v in wrong)
            raise DataError(
                path,
                f"ragged rows: line {first_at[v][0] + 1} has {v} fields, expected {expected} "
                f"({basis}; delimiter {_delim_name(delim)})"
                + (f"; {n_wrong} lines differ in all" if n_wrong > 1 else "")
                + (quoted_thousands_hint(first_at[v][1]) if delim == "," else ""),
            )
        if self.mixed:
            many = len(self.mixed) > 1
            skip = [j for j in self.text_cols if j not in self.mixed]
            raise DataError(path, _find_bad_cell(path, first_line, list(first_line), delim, 0, skip).problem + (
                f" (column{'s' if many else ''} {', '.join(str(j + 1) for j in sorted(self.mixed))} "
                f"hold{'' if many else 's'} words there and a number or a gap on line {min(self.mixed.values()) + 1}: "
                "neither a sensor nor a text column to leave out)"))
        return expected
