"""Vibration CSVs (numpy; no torch); crack-mask PNGs are :mod:`latentbridge.io.masks`.

Every problem with a file is raised as :class:`latentbridge.errors.DataError`, whose message
names the file and the problem ("PATH: problem"), with the line and column where it applies.
Lines and columns in messages are 1-based, as a text editor or spreadsheet shows them.

CSV rules (:func:`read_vibration_csv`)
--------------------------------------
* Encoding UTF-8 (a byte-order mark is ignored), UTF-16 with a byte-order mark, or a header line in
  Windows-1252 / Latin-1 over UTF-8 numbers. Blank lines and lines starting with ``#`` are
  skipped (line numbers in messages still count them).
* Delimiter, from the first non-blank line: ``;`` if it holds one, else a tab (a comma in a
  tab-separated line is a decimal comma), else ``,``, else runs of whitespace; or the one a first line
  ``sep=X`` names (Excel writes it). Cells may be quoted with ``"``.
* Decimal commas (``0,125``, as European spreadsheets and loggers write numbers) are read when cells are
  separated by ``;`` or tabs and the first 50 data lines hold commas and no point.
* A delimiter that ends each of the first 256 data lines (and the header, if it does) closes the lines: it opens no
  empty last column (a later line without it is read as it is).
* Lines above the table (a logger's notes: device, date, ``Sample rate: 1000 Hz``) are skipped: lines with words and
  fewer fields than the table's last line, before six lines of its shape. A sample rate among them is used when there
  is no time column and none was given.
* Header: the first row is a header when one of its cells is non-empty and not a number.
* Time column: a column of dates and times (a logger's timestamps: ``2024-05-01 12:00:00.125``, ISO 8601 with
  ``T``, ``Z`` or an offset; a decimal comma allowed), read as time since its first. Else, with a header, the
  first column named like a time (``t``, ``time``, ``time_s``,
  ``timestamp``, ``seconds``, ``time (s)``, ``time [ms]``, ``time_ms``, ``Time [min]``, ... case-insensitive;
  millisecond, microsecond, minute and hour units are scaled to seconds); another column named like a time that
  steps evenly (``time_s,elapsed_ms``) is left out, not read as a sensor. Without a header, the first column when it is
  strictly increasing with a near-constant step (within 1 %) while no other column is.
  A column that holds consecutive integers (step exactly 1, e.g. a written-out row index:
  unnamed, or named ``index``/``idx``/``sample``/``unnamed: 0``) is an *index column*: it is
  dropped and is not a time source.
* Sample rate: the number of steps over the time column's span (the mean step: a time written with
  few decimals rounds every step alike, e.g. 1/2048 s as 0.000488). Steps that deviate from the
  median by more than 1 %, or a named time column that is not strictly increasing, are errors. A
  rate within 1e-6 (relative) of an integer is rounded to it (``0.001`` steps give exactly 1000 Hz).
  Without a time column ``sample_rate`` must be given; with one and a given ``sample_rate`` that
  differs by more than 1 %, the conflict is an error.
* A row of units right under the header (instrument exports: ``s``, ``ms``, ``g``, ``m/s^2``): its units join
  the names (a time column in ``ms`` is scaled). Columns of text on every line (a status, a device name) are left
  out.
* Channels: every remaining column, in file order (0-based, time/index column excluded);
  ``channels`` picks some of them. Only the columns that are used are checked for NaN/inf.
* Parsing: the layout (notes, header, units, delimiter, closing delimiters) is read from the first block of lines
  (:class:`~latentbridge.io.text.LineBlocks`: 4 MiB of text, or more until it holds :data:`HEAD_ROWS` rows), then the
  text a block at a time: a cheap structural pass (fields per line, counted over the whole file, to report ragged rows
  by line) and :func:`numpy.loadtxt` (C parser) into one float64 table: about 0.1 s for 100 000 rows x 9 columns (8-11
  MB). Decimal commas are judged on the first lines that hold a comma or a point, wherever they are. A 1-h CSV of three
  axes at 2 kHz (253 MB) peaks at 614 MB (1,457 MB when its lines were split at once). Whatever the blocks, the same
  numbers and the same message: ragged rows first, then a text column's number, then a bad cell.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import numpy as np

from latentbridge.errors import DataError, LatentbridgeError
from latentbridge.io.cells import (_decimal_commas, _delim_name, _find_bad_cell, _is_number, _pick_delimiter, _split,
                                  quoted_thousands_hint, thousands_problem)
from latentbridge.io.columns import by_name
from latentbridge.io.notes import file_note
from latentbridge.io.text import LineBlocks, decode_text, excel_separator
from latentbridge.io.timecolumns import (TIME_STEP_TOLERANCE, _epoch_scale, _norm_name, _stamp_resolution,
                                         datetime_column, datetimes_to_microseconds, time_column)
from latentbridge.utils import atomic_path, first_time

__all__ = [
    "read_audio_vibration",
    "read_vibration_csv",
    "write_vibration_csv",
    "TIME_STEP_TOLERANCE",
    "RECORDING_SUFFIXES",
    "RATE_HINT",
]

log = logging.getLogger(__name__)

#: how a user gives the rate of a recording that gives none, in every command that reads one
RATE_HINT = ("give it (-o vibration.sample_rate=HZ to train a bridge model, -o audio.csv_rate=HZ to fit an anomaly "
             "model, which keeps it; --sample-rate HZ for evaluate, sample and anomaly score / calibrate / listen; "
             "sample_rate in a /score or /predict request; --sample-rate HZ for python -m latentbridge.edge)")


#: the rows of a CSV its layout is read from (notes above the table, header, units, delimiter, how numbers are
#: written); the rest is read a block of lines at a time (:class:`~latentbridge.io.text.LineBlocks`)
HEAD_ROWS = 256

#: the highest sample rate read (acoustic-emission sensors reach a few MHz); resampling to 1e13 Hz ran without end
MAX_RATE = 1e8


def given_rate(rate: float) -> float:
    """A rate given for rate-less recordings (``--sample-rate``, a request's ``sample_rate``) as a float:
    LatentbridgeError unless a finite positive number of Hz up to :data:`MAX_RATE`."""
    if not (math.isfinite(rate) and 0 < rate <= MAX_RATE):
        raise LatentbridgeError(f"--sample-rate must be a positive number of Hz up to {MAX_RATE:g} (the rate of "
                                f"vibration CSVs without a time column), got {rate:g}")
    return float(rate)


#: files read as vibration recordings: CSVs and MATLAB files (:func:`latentbridge.io.matfile.read_mat_vibration`)
RECORDING_SUFFIXES = (".csv", ".mat")

def pick_channels(path: Path, channels, n: int, noun: str, note: str = "") -> list[int]:
    """``channels`` (0-based indices among a recording's ``n`` channels, each a ``noun``) checked: DataError naming
    the file for one out of range or not a whole number, or for none at all."""
    for c in channels:
        if isinstance(c, bool) or int(c) != c or not 0 <= int(c) < n:
            raise DataError(path, f"channel {c!r} out of range: the file has {n} {noun}{'s' if n != 1 else ''}{note} "
                                  f"(valid: 0..{n - 1})")
    if not len(channels):
        raise DataError(path, "channels: empty list (pick at least one channel)")
    if len(set(map(int, channels))) != len(channels):  # [0, 0] trained on one sensor twice, without a word
        twice = sorted({int(c) for c in channels if list(map(int, channels)).count(int(c)) > 1})
        raise DataError(path, f"channels: {', '.join(map(str, twice))} picked more than once ({list(channels)}): pick "
                              "each channel once")
    return [int(c) for c in channels]


#: a sample rate in a logger's notes above its table: "Sample rate: 1000 Hz", "Sampling frequency = 2.5 kHz", "Fs;512"
_RATE_NOTE = re.compile(r"(?i)\b(?:sampl(?:e|ing)[\s_-]*(?:rate|frequency|freq)|fs)\b[^0-9]{0,12}?"
                        r"([0-9]+(?:[.,][0-9]+)?)\s*(khz|hz|s/s|sps)?")


def _table_start(lines, rows: list[int], last: str) -> int:
    """Where the table begins among ``rows`` (the file's first rows: at least 70, or all): after a logger's notes
    (device, date, "Sample rate: 1000 Hz"), lines with words in them and fewer fields than the table's last line
    (``last``, the file's), the first line of the table's shape followed by five more. 0 otherwise (a ragged table, or a
    header wider than its rows, is the structural pass's to name)."""
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


def _rate_of_notes(notes: list[str]) -> float | None:
    for note in notes:
        m = _RATE_NOTE.search(note)
        if m:
            rate = float(m.group(1).replace(",", "."))
            return rate * 1000 if (m.group(2) or "").lower() == "khz" else rate
    return None


def _zero(_cell) -> float:
    """A text column's cells, read as 0 (the column is left out)."""
    return 0.0


def snap_rate(rate: float) -> float:
    """A rate within 1e-6 of whole Hz as that whole number (a time step's float error)."""
    r = round(rate)
    if r > 0 and abs(rate - r) <= 1e-6 * rate:
        return float(r)
    return float(rate)


# --------------------------------------------------------------------------- CSV


def _time_rate(path: Path, data: np.ndarray, time_col: int, time_scale: float, header: list[str] | None, line_of,
               sample_rate: float | None) -> float:
    """The sample rate a CSV's time column (``time_col`` of ``data``, in units of ``time_scale`` s) gives: DataError
    naming the file (and the line: ``line_of(row)``) for a time that does not increase evenly or disagrees with a
    given ``sample_rate``."""
    name = f"'{header[time_col]}' " if header is not None else ""
    if time_scale == 1.0:
        time_scale = _epoch_scale(path, data[:, time_col], name.strip())
    t = data[:, time_col] * time_scale
    d = np.diff(t)
    # times written to a step near the sample period (milliseconds at 1024 Hz) repeat or vary by that step; where
    # nearly every step is one and the same (milliseconds at 1 kHz) they are exact, and checked as such
    step, q = (float(t[-1] - t[0]) / (len(t) - 1), _stamp_resolution(t)) if len(t) > 1 else (0.0, 0.0)
    if q:
        steps = d / q
        np.round(steps, out=steps)
        if np.unique(steps, return_counts=True)[1].max() >= 0.99 * len(d):
            q = 0.0
        del steps
    nonpos = np.flatnonzero(d < 0 if 0 < step <= q else d <= 0)
    if nonpos.size:
        r = int(nonpos[0]) + 1
        raise DataError(
            path,
            f"time column {name}(column {time_col + 1}) is not increasing: line {line_of(r)} has "
            f"{data[r, time_col]:.10g} after {data[r - 1, time_col]:.10g} on line {line_of(r - 1)}",
        )
    med = float(np.median(d)) if not q else step
    dev = d - med  # (in place: a column of a long recording is large)
    np.abs(dev, out=dev)
    dev /= med
    worst = int(np.argmax(dev))
    limit = TIME_STEP_TOLERANCE + q / med  # a time written to q may be off by q / 2, a step by q
    if dev[worst] > limit:
        raise DataError(
            path,
            f"time column {name}(column {time_col + 1}) is not evenly sampled: the step before line "
            f"{line_of(worst + 1)} is {d[worst]:g} s, {100 * dev[worst]:.1f} % off the {'mean' if q else 'median'} "
            f"step {med:g} s (limit {100 * limit:.3g} %"
            + (f": {100 * TIME_STEP_TOLERANCE:g} % and the times' {q:g}-s resolution" if q else "")
            + "); resample the recording or remove the time column and give the sample rate",
        )
    # the mean step over the whole column: a time written with few decimals (1/2048 s as 0.000488) rounds
    # every step alike, which 1 / median step turns into 2049.18 Hz; over the column the rounding averages out
    rate = snap_rate((len(t) - 1) / float(t[-1] - t[0]))
    if q and abs(rate - round(rate)) <= rate * q / float(t[-1] - t[0]):  # the ends are off by up to q / 2 each
        rate = float(round(rate))
    check_given_rate(path, rate, sample_rate, "the time column", TIME_STEP_TOLERANCE)
    return rate


def check_given_rate(path, rate: float, given: float | None, source: str, tolerance: float) -> None:
    """DataError naming the file where the rate it gives (its ``source``: a time column, a .mat file's scalar, an
    audio header) is more than ``tolerance`` (relative) off a rate ``given`` for it."""
    if given is not None and abs(rate - float(given)) > tolerance * float(given):
        raise DataError(path, f"{source} gives {rate:g} Hz but the sample rate {float(given):g} Hz was given; drop "
                              "the given rate (vibration.sample_rate, --sample-rate of evaluate and sample, or a "
                              f"server request's sample_rate) or the file's ({source})")


def read_vibration_csv(
    path: str | Path,
    sample_rate: float | None = None,
    channels: list[int] | tuple[int, ...] | None = None,
    fallback_rate: float | None = None,
    names: list | None = None, pick_names: list[str] | None = None, rate_from: list | None = None,
) -> tuple[np.ndarray, float]:
    """Read an accelerometer CSV; return ``(wave (C, T) float32, sample_rate in Hz)``; ``names``, when given, gets
    the header's names of the channels returned (nothing without a header). ``pick_names``: the sensor columns a
    trained model reads, taken by name (in that order) where the header names each of them once, in place of
    ``channels`` (positions in another logger's order are other sensors). ``rate_from``, when given, gets where the
    rate came from: ``time`` (its time column), ``given``, ``fallback`` or ``notes`` (the lines above the table).

    ``sample_rate``: the file's rate (a time column must agree with it); ``fallback_rate``: the rate of a file that
    gives none of its own (no time column, no rate in its notes), never in conflict with one it gives.

    One column per channel, an optional time column, header or not (see the module docstring
    for the detection rules). ``channels`` picks sensor columns (0-based, time column
    excluded). Raises DataError naming the file (and line/column) for an empty file, ragged
    rows, non-numeric or empty cells, NaN/inf values, fewer than 2 samples, a channel out of
    range, a time column that is not increasing or not evenly sampled, a missing sample rate.
    """
    path = Path(path)
    if sample_rate is not None and not (math.isfinite(float(sample_rate)) and float(sample_rate) > 0):
        raise ValueError(f"sample_rate must be a positive number, got {sample_rate!r}")
    if not path.exists():
        raise DataError(path, "file does not exist")
    if path.is_dir():
        raise DataError(path, "is a folder, not a CSV file")
    raw = path.read_bytes()
    if not raw or raw.isspace():
        raise DataError(path, "file is empty" + (" (0 bytes)" if not raw else " (only whitespace)"))
    text = decode_text(raw, path, "a CSV of numbers")
    del raw

    lines = LineBlocks(text)  # the head, the lines the table's layout is read from, then a block at a time
    del text
    rows = lines.read(keep=True)
    while len(rows) < HEAD_ROWS and not lines.done:
        rows += lines.read(keep=True)
    if not rows:
        raise DataError(path, "file holds no data (only blank or comment lines)")

    sep = excel_separator(lines[rows[0]])
    if sep and len(rows) > 1:  # Excel's line naming the delimiter
        rows = rows[1:]
    start = 0 if sep else _table_start(lines, rows, lines.last_row() if not lines.done else lines[rows[-1]])
    notes = [lines[i] for i in rows[:start]]  # a logger's lines above its table
    rows = rows[start:]
    delim = sep or _pick_delimiter(lines[rows[0]])
    datetime_col, first_stamp = datetime_column(lines, rows, delim)
    t0, commas = None, False

    def stamps(rows: list[int], first: int = 0) -> None:  # dates and times as numbers: microseconds since the first
        nonlocal t0
        if datetime_col is not None:
            t0 = datetimes_to_microseconds(path, lines, rows, delim, datetime_col, first, t0)

    def points(rows: list[int]) -> None:  # decimal commas as the parser reads them
        if commas:
            for i in rows:
                lines[i] = lines[i].replace(",", ".")

    def more() -> list[int]:  # the head grown by a block (its stamps as numbers; then the decimal mark is judged)
        new = lines.read(keep=True)
        stamps(new)
        return new

    stamps(rows, max(1, first_stamp))
    if delim in (";", "\t"):  # decimal commas, judged on the first 50 data lines that hold a comma or a point
        marked = sum(1 for i in rows[1:] if "," in lines[i] or "." in lines[i])  # (rows[0] may be a header)
        while marked < 50 and not lines.done:
            rows = rows + (new := more())
            marked += sum(1 for i in new if "," in lines[i] or "." in lines[i])
        commas = _decimal_commas(lines, rows[1:])
    points(rows)
    first_cells = _split(lines[rows[0]], delim)
    has_header = any(c.strip().strip('"').strip() != "" and not _is_number(c) for c in first_cells)
    header = [c.strip().strip('"').strip() for c in first_cells] if has_header else None
    data_rows = rows[1:] if has_header else rows
    if not data_rows:
        raise DataError(path, "no data rows (only a header line)")
    while len(data_rows) < HEAD_ROWS and not lines.done:  # closing delimiters: judged on HEAD_ROWS data lines
        points(new := more())
        rows, data_rows = rows + new, data_rows + new
    closing, judged = 0, data_rows[:HEAD_ROWS]  # delimiters that close every line of the head (loggers, spreadsheet
    while delim is not None and all(lines[i].rstrip().endswith(delim) for i in judged):  # exports; empty columns
        closing += 1  # after the table: one per delimiter): no empty last column
        for i in judged:
            lines[i] = lines[i].rstrip()[:-1]
        if header is not None and header[-1] == "":
            header = header[:-1]

    def unclosed(rows: list[int]) -> None:  # the lines after the head: a line without them is read as it is
        for _ in range(closing):
            for i in rows:
                if (ln := lines[i].rstrip()).endswith(delim):
                    lines[i] = ln[:-1]

    unclosed(data_rows[HEAD_ROWS:])
    if header is not None and len(data_rows) > 1:  # a units row under the header (instrument exports): its units
        units = [c.strip().strip('"').strip() for c in _split(lines[data_rows[0]], delim)]  # join the names
        if any(units) and not any(_is_number(u) for u in units if u):
            header = [f"{h} [{u.strip('[]()')}]" if u and _norm_name(h)[1] is None else h
                      for h, u in zip(header, units + [""] * len(header))]
            data_rows = data_rows[1:]

    if delim != "," and (problem := thousands_problem(lines, data_rows, delim)):
        raise DataError(path, problem)

    # --- structure: the same number of fields on every line, counted over the whole file (each count's first line)
    hist: dict[int, int] = {}
    first_at: dict[int, tuple[int, str]] = {}

    def count(rows: list[int]) -> np.ndarray:
        if delim is None:
            c = np.fromiter((len(lines[i].split()) for i in rows), dtype=np.int64, count=len(rows))
        else:
            c = np.fromiter((lines[i].count(delim) for i in rows), dtype=np.int64, count=len(rows)) + 1
        for v, k, n in zip(*(a.tolist() for a in np.unique(c, return_index=True, return_counts=True))):
            hist[v] = hist.get(v, 0) + n
            first_at.setdefault(v, (rows[k], lines[rows[k]]))
        return c

    counts = count(data_rows)
    # parsed while every line has the expected count: the header's, else the head's most common one
    expected = len(header) if header is not None else int(np.bincount(counts).argmax())

    # --- columns of text on every line (a logger's status or device name): not sensors, left out
    def text(cell: str) -> bool:  # words, not a number written oddly ('1,5' among points is named by the parser)
        c = cell.strip().strip('"').strip()
        return any(ch.isalpha() for ch in c) and not _is_number(c)

    worded = [j for j, c in enumerate(_split(lines[data_rows[0]], delim)) if text(c)] \
        if np.all(counts == expected) else []  # (ragged rows are named first)
    mixed: dict[int, int] = {}  # a column with words on the first line and a number or a gap on a later one: that line

    def unworded(rows: list[int], cols) -> None:
        for j in cols:
            if (i := next((i for i in rows if not text(_split(lines[i], delim)[j])), None)) is not None:
                mixed.setdefault(j, i)

    unworded(data_rows, worded)
    text_cols = [j for j in worded if j not in mixed]  # text on every line: left out
    if text_cols:
        named, many = ", ".join(repr(header[j]) if header else str(j + 1) for j in text_cols), len(text_cols) > 1
        file_note(log, ("csv text columns", tuple(text_cols)), path,
                  f"column{'s' if many else ''} {named} hold{'' if many else 's'} text, not numbers: left out")
    first_line = {data_rows[0]: lines[data_rows[0]]}  # (where a text column's first number is named)

    # --- numbers (C parser), a block of lines at a time: (rows, columns) float64 and each row's line. What a read of
    # the whole file names first is named first: ragged rows (over every line), a text column's number, a bad cell
    data, at, n_rows = None, np.empty(0, dtype=np.int64), 0
    bad_cell, head = None, True
    while True:
        if list(hist) == [expected] and data_rows:
            if not head:
                unworded(data_rows, [j for j in text_cols if j not in mixed])
            if not mixed and bad_cell is None:
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
        stamps(data_rows)
        points(data_rows)
        unclosed(data_rows)
        count(data_rows)
    if header is None:  # the most common count among every data line
        expected = max(sorted(hist), key=lambda v: hist[v])
    if header is not None and len(hist) == 1 and expected not in hist:
        (found,) = hist
        raise DataError(
            path,
            f"the header (line {rows[0] + 1}) has {len(header)} fields but the data lines "
            f"(from line {first_at[found][0] + 1}) have {found} (delimiter {_delim_name(delim)})"
            + (": numbers written with decimal commas between cells separated by commas? Save the file with ';' "
               "or tabs between the cells" if delim == "," and 2 * len(header) == found else ""),
        )
    if wrong := [v for v in hist if v != expected]:
        v = min(wrong, key=lambda v: first_at[v][0])
        basis = f"as in the header on line {rows[0] + 1}" if header is not None else "as on most lines"
        n_wrong = sum(hist[v] for v in wrong)
        raise DataError(
            path,
            f"ragged rows: line {first_at[v][0] + 1} has {v} fields, expected {expected} "
            f"({basis}; delimiter {_delim_name(delim)})" + (f"; {n_wrong} lines differ in all" if n_wrong > 1 else "")
            + (quoted_thousands_hint(first_at[v][1]) if delim == "," else ""),
        )
    if mixed:  # a column with words on its first line and numbers further down: the whole parse named its first word
        many = len(mixed) > 1
        skip = [j for j in text_cols if j not in mixed]
        raise DataError(path, _find_bad_cell(path, first_line, list(first_line), delim, 0, skip).problem + (
            f" (column{'s' if many else ''} {', '.join(str(j + 1) for j in sorted(mixed))} hold{'' if many else 's'} "
            f"words there and a number or a gap on line {min(mixed.values()) + 1}: neither a sensor nor a text column "
            "to leave out)"))
    if bad_cell is not None:
        raise bad_cell
    if data is None:
        data = np.empty((0, expected))
    lines = None  # (the text: its numbers are read)
    data, n_cols = data[:n_rows], data.shape[1]

    def line_of(r: int) -> int:
        return int(at[r]) + 1

    # --- time / index column
    time_col, time_scale, time_hint, dropped = time_column(path, header, data, datetime_col, text_cols)
    if time_col is not None:
        dropped.append(time_col)
    sensor_cols = [j for j in range(n_cols) if j not in dropped]
    if not sensor_cols:
        raise DataError(path, "no sensor columns (only a time/index column)")

    # --- channel selection
    picked = by_name([header[j] for j in sensor_cols], pick_names, units=True) \
        if header is not None and pick_names else None
    if picked is not None:  # the model's columns, by their names (the rule of latentbridge.io.columns)
        use_cols = [sensor_cols[j] for j in picked]
    elif channels is not None:
        note = " (time column excluded)" if dropped else ""
        use_cols = [sensor_cols[c] for c in pick_channels(path, channels, len(sensor_cols), "sensor column", note)]
    else:
        use_cols = sensor_cols

    # --- finite values in the columns used
    check_cols = use_cols + ([time_col] if time_col is not None else [])
    if not all(np.isfinite(data[:, j]).all() for j in check_cols):  # (a column at a time: no copy of the table)
        sub = data[:, check_cols]
        finite = np.isfinite(sub)
        n_nan = int(np.isnan(sub).sum())
        n_bad = int(sub.size - finite.sum())
        r, k = divmod(int(np.flatnonzero(~finite.ravel())[0]), len(check_cols))
        raise DataError(
            path,
            f"{n_bad} non-finite value{'s' if n_bad != 1 else ''} ({n_nan} NaN, {n_bad - n_nan} inf); "
            f"first at line {line_of(r)}, column {check_cols[k] + 1}",
        )
    if n_rows < 2:
        raise DataError(path, f"only {n_rows} sample (need at least 2)")

    # --- sample rate
    rate: float | None = None
    if time_col is not None:
        rate = _time_rate(path, data, time_col, time_scale, header, line_of, sample_rate)
    elif sample_rate is not None or fallback_rate is not None and _rate_of_notes(notes) is None:
        rate = float(sample_rate if sample_rate is not None else fallback_rate)
        source = "given" if sample_rate is not None else "fallback"
        if time_hint:
            file_note(log, ("csv time as channel", rate), path, f"read at the {source.replace('fallback', 'default')} "
                      f"{rate:g} Hz, with its first column as a sensor channel{time_hint}")
    elif (rate := _rate_of_notes(notes)) is not None:
        source = "notes"
        if first_time(("csv rate note", path.parent, rate)):
            log.info("%s: the sample rate, %g Hz, read from the lines above the table", path, rate)
    else:
        raise DataError(
            path,
            "no time column found (a header named like 'time'/'t'/'time_s'/'timestamp', or an evenly "
            "increasing first column), so the sample rate is unknown: " + RATE_HINT + time_hint,
        )

    if rate_from is not None:
        rate_from.append("time" if time_col is not None else source)
    if names is not None and header is not None:
        names.extend(header[j] for j in use_cols)
    at = None  # (lines of rows, for messages)
    wave = np.empty((len(use_cols), n_rows), dtype=np.float32)  # (a column at a time: no float64 copy of them)
    for k, j in enumerate(use_cols):
        wave[k] = data[:, j]
    return wave, float(rate)


def read_audio_vibration(path: str | Path, sample_rate: float | None = None, channels: list[int] | None = None,
                         stats: dict | None = None) -> tuple[np.ndarray, float]:
    """An audio file as a vibration recording, as :func:`read_vibration_csv` reads a CSV: ``(wave (C, T) float32, its
    header's rate)``, every channel a sensor (``channels`` picking some, 0-based). ``sample_rate``
    (vibration.sample_rate, --sample-rate) is the rate of recordings that give none: an audio file is read at its
    own, said once where they differ (a folder of CSVs without a time column and WAVs at another rate could not be read).
    ``stats``: :func:`~latentbridge.io.read_audio`'s (the clipped share)."""
    from latentbridge.io.audio import ALL_CHANNELS, read_audio

    wave, sr = read_audio(path, channel=ALL_CHANNELS, stats=stats)
    if sample_rate is not None and sr != float(sample_rate) and first_time(("audio rate given", float(sample_rate))):
        log.warning("%s: read at its header's %g Hz: the sample rate given, %g Hz (vibration.sample_rate, "
                    "--sample-rate), is the rate of recordings that give none (CSVs without a time column)", path, sr,
                    float(sample_rate))
    if channels is not None:
        wave = wave[pick_channels(path, channels, wave.shape[0], "channel", f" (vibration.channels: {list(channels)})")]
    return np.ascontiguousarray(wave, dtype=np.float32), float(sr)


def write_vibration_csv(
    path: str | Path,
    wave: np.ndarray,
    sample_rate: float | None = None,
    header: bool = True,
    time_column: bool = True,
    delimiter: str = ",",
) -> Path:
    """Write ``wave`` (C, T) as a CSV atomically (for tests and the simulator).

    ``time_column`` prepends ``time`` (seconds, needs ``sample_rate``); ``header`` writes the
    names ``time, ch0, ch1, ...``.
    """
    path = Path(path)
    wave = np.atleast_2d(np.asarray(wave, dtype=np.float64))
    cols = [wave.T]
    names = [f"ch{i}" for i in range(wave.shape[0])]
    if time_column:
        if sample_rate is None:
            raise ValueError("write_vibration_csv: time_column=True needs sample_rate")
        cols.insert(0, (np.arange(wave.shape[1]) / float(sample_rate))[:, None])
        names.insert(0, "time")
    table = np.concatenate(cols, axis=1)
    with atomic_path(path) as tmp:
        np.savetxt(tmp, table, delimiter=delimiter, fmt="%.9g",
                   header=delimiter.join(names) if header else "", comments="")
    return path
