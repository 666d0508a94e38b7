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
* A delimiter that ends every data line (and the header, if it does) closes the line: it opens no
  empty last column.
* Lines above the table (a logger's notes: device, date, ``Sample rate: 1000 Hz``) are skipped: lines with words and
  fewer fields than the table's last line, before six lines of its shape. A sample rate among them is used when there
  is no time column and none was given.
* Header: the first row is a header when one of its cells is non-empty and not a number.
* Time column: a column of dates and times (a logger's timestamps: ``2024-05-01 12:00:00.125``, ISO 8601 with
  ``T``, ``Z`` or an offset; a decimal comma allowed), read as time since its first. Else, with a header, the
  first column named like a time (``t``, ``time``, ``time_s``,
  ``timestamp``, ``seconds``, ``time (s)``, ``time [ms]``, ``time_ms``, ... case-insensitive;
  millisecond names are scaled to seconds). Without a header, the first column when it is
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
* Parsing: a cheap structural pass (fields per line, to report ragged rows by line) and then
  :func:`numpy.loadtxt` (C parser): about 0.1 s for 100 000 rows x 9 columns (8-11 MB).
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
from latentbridge.io.text import decode_text, excel_separator
from latentbridge.utils import atomic_path, first_time

__all__ = [
    "read_vibration_csv",
    "write_vibration_csv",
    "TIME_STEP_TOLERANCE",
    "RECORDING_SUFFIXES",
    "RATE_HINT",
]

log = logging.getLogger(__name__)

#: Largest relative deviation of a time step from the median step.
TIME_STEP_TOLERANCE = 0.01

#: how a user gives the rate of a recording that gives none, in every command that reads one
RATE_HINT = ("give it (-o vibration.sample_rate=HZ to train a bridge model, -o audio.csv_rate=HZ to fit an anomaly "
             "model, which keeps it; --sample-rate HZ for evaluate, sample and anomaly score / calibrate; "
             "sample_rate in a /score or /predict request; --sample-rate HZ for python -m latentbridge.edge)")


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

_TIME_NAMES = {
    "t", "time", "times", "time_s", "time_sec", "time_secs", "time_seconds", "times_s", "timestamp",
    "timestamps", "time_stamp", "timestamp_s", "seconds", "sec", "secs", "s", "elapsed", "elapsed_s",
    "elapsed_time", "t_s",
}
_TIME_MS_NAMES = {"time_ms", "t_ms", "ms", "timestamp_ms", "milliseconds", "time_msec", "elapsed_ms"}
_INDEX_NAMES = {"", "index", "idx", "sample", "samples", "sample_index", "n", "no", "unnamed:_0", "unnamed:0"}
_UNIT_RE = re.compile(r"^(.*?)[\s_]*[\(\[]\s*([a-zµμ]+)\s*[\)\]]$")
_SECOND_UNITS = {"s", "sec", "secs", "second", "seconds"}
_MS_UNITS = {"ms", "msec", "millisecond", "milliseconds"}
_US_UNITS = {"us", "µs", "μs", "usec", "microsecond", "microseconds"}


# --------------------------------------------------------------------------- CSV helpers


def _norm_name(name: str) -> tuple[str, str | None]:
    n = name.strip().strip("\"'").strip().lower()
    unit = None
    m = _UNIT_RE.match(n)
    if m:
        n, unit = m.group(1), m.group(2)
    return re.sub(r"[\s\-]+", "_", n), unit


def _time_scale(name: str) -> float | None:
    """Seconds per unit when ``name`` names a time column, else None."""
    n, unit = _norm_name(name)
    if unit is not None and unit not in _SECOND_UNITS | _MS_UNITS:
        return None
    if n in _TIME_NAMES:
        return 1e-3 if unit in _MS_UNITS else 1.0
    if n in _TIME_MS_NAMES and unit in (None, *_MS_UNITS):
        return 1e-3
    return None


def pick_channels(path: Path, channels, n: int, noun: str, note: str = "") -> list[int]:
    """``channels`` (0-based indices among a recording's ``n`` channels, each a ``noun``) checked: DataError naming
    the file for one out of range or not a whole number, or for none at all."""
    for c in channels:
        if isinstance(c, bool) or int(c) != c or not 0 <= int(c) < n:
            raise DataError(path, f"channel {c!r} out of range: the file has {n} {noun}{'s' if n != 1 else ''}{note} "
                                  f"(valid: 0..{n - 1})")
    if not len(channels):
        raise DataError(path, "channels: empty list (pick at least one channel)")
    return [int(c) for c in channels]


#: a date and time as loggers write them: ISO 8601 (``2024-05-01T12:00:00.125``, ``Z`` or an offset allowed) or with a
#: space (``2024-05-01 12:00:00.125``)
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}([.,]\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?")


def _datetimes_to_microseconds(path: Path, lines: list[str], rows: list[int], delim: str | None) -> int | None:
    """A column of dates and times (a logger's timestamps; looked for on the second row, the first may be a header,
    or the third, under a units row)
    rewritten, in ``lines``, as whole microseconds since its first (no decimal mark, so that the file's own, point or
    comma, is still read from the other cells); its 0-based index, or None when there is none."""
    import datetime

    if delim is None or len(rows) < 2:
        return None
    col, first = None, 0
    for first in range(1, min(3, len(rows))):  # under the header, and under a units row below it
        cells = [c.strip().strip('"').strip() for c in _split(lines[rows[first]], delim)]
        if (col := next((j for j, c in enumerate(cells) if _DATETIME.fullmatch(c)), None)) is not None:
            break
    if col is None:
        return None
    t0 = None
    for n, i in enumerate(rows):
        cells = _split(lines[i], delim)
        if col >= len(cells):
            continue  # a ragged row: named by the structural pass
        cell = cells[col].strip().strip('"').strip()
        if not _DATETIME.fullmatch(cell):
            if n < first:
                continue  # the header (and its units)
            raise DataError(path, f"line {i + 1}, column {col + 1}: not a date and time like the column's others: "
                                  f"{cell!r}")
        try:
            when = datetime.datetime.fromisoformat(cell.replace(",", "."))
            t0 = when if t0 is None else t0
            cells[col] = str((when - t0) // datetime.timedelta(microseconds=1))
        except (ValueError, TypeError) as e:  # no such date; a time zone on some lines only
            raise DataError(path, f"line {i + 1}, column {col + 1}: {cell!r} cannot be read as a date and time "
                                  f"after {t0} ({e})") from None
        lines[i] = delim.join(cells)
    return col


#: a sample rate in a logger's notes above its table: "Sample rate: 1000 Hz", "Sampling frequency = 2.5 kHz", "Fs;512"
_RATE_NOTE = re.compile(r"(?i)\b(?:sampl(?:e|ing)[\s_-]*(?:rate|frequency|freq)|fs)\b[^0-9]{0,12}?"
                        r"([0-9]+(?:[.,][0-9]+)?)\s*(khz|hz|s/s|sps)?")


def _table_start(lines: list[str], rows: list[int]) -> int:
    """Where the table begins among ``rows``: after a logger's notes (device, date, "Sample rate: 1000 Hz"), lines
    with words in them and fewer fields than the table's last line, the first line of the table's shape followed by
    five more. 0 otherwise (a ragged table, or a header wider than its rows, is the structural pass's to name)."""
    last = lines[rows[-1]]
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


def _step_ok(col: np.ndarray) -> bool:
    """Strictly increasing with steps within TIME_STEP_TOLERANCE of the median."""
    if col.size < 3 or not np.all(np.isfinite(col)):
        return False
    d = np.diff(col)
    if np.any(d <= 0):
        return False
    med = float(np.median(d))
    return float(np.max(np.abs(d - med))) <= TIME_STEP_TOLERANCE * med


#: Unix time in these units passes this many of them: a column named like seconds that holds such values holds
#: milliseconds, microseconds or nanoseconds since 1970 (1e11 s is over 3,000 years; 1.7e12 ms is 2024)
_EPOCH_UNITS = ((1e17, 1e-9, "ns"), (1e14, 1e-6, "µs"), (1e11, 1e-3, "ms"))


def _epoch_scale(path: Path, col: np.ndarray, name: str) -> float:
    """Seconds per unit of a time column read as seconds whose values are Unix time in a finer unit (loggers stamp
    each row with milliseconds since 1970: at 1 kHz the step of 1 read as 1 Hz); 1.0 otherwise."""
    first = float(np.abs(col[0])) if col.size else 0.0
    for floor, scale, unit in _EPOCH_UNITS:
        if first >= floor:
            file_note(log, ("csv epoch", name, unit), path, f"the time column {name} holds {first:.4g}, Unix time in "
                      f"{unit}: read so")
            return scale
    return 1.0


#: rows from which the step times were written to is read from them (a few round values say nothing of it)
_STAMP_ROWS = 50


def _stamp_resolution(t: np.ndarray) -> float:
    """The step the times were written to (seconds: 1e-3 for stamps with three decimals), 0 where they are written
    in full or are too few to tell: each time may be off by half of it, so a step by a whole one."""
    if len(t) < _STAMP_ROWS:
        return 0.0
    rel = t - t[0]
    for k in range(10):
        q = 10.0 ** -k
        if float(np.max(np.abs(rel / q - np.round(rel / q)))) <= 1e-3:
            return q
    return 0.0


def _is_index(col: np.ndarray) -> bool:
    if col.size < 2 or not np.all(np.isfinite(col)):
        return False
    return bool(np.all(col == np.round(col)) and np.all(np.diff(col) == 1.0))


def snap_rate(rate: float) -> float:
    """A rate within 1e-6 of whole Hz as that whole number (a time step's float error)."""
    r = round(rate)
    if r > 0 and abs(rate - r) <= 1e-6 * rate:
        return float(r)
    return float(rate)


# --------------------------------------------------------------------------- CSV


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
    if not raw.strip():
        raise DataError(path, "file is empty" + (" (0 bytes)" if not raw else " (only whitespace)"))
    text = decode_text(raw, path, "a CSV of numbers")
    del raw

    lines = text.splitlines()
    rows = [i for i, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith("#")]
    if not rows:
        raise DataError(path, "file holds no data (only blank or comment lines)")

    sep = excel_separator(lines[rows[0]])
    if sep and len(rows) > 1:  # Excel's line naming the delimiter
        rows = rows[1:]
    start = 0 if sep else _table_start(lines, rows)
    notes = [lines[i] for i in rows[:start]]  # a logger's lines above its table
    rows = rows[start:]
    delim = sep or _pick_delimiter(lines[rows[0]])
    datetime_col = _datetimes_to_microseconds(path, lines, rows, delim)
    if delim in (";", "\t") and _decimal_commas(lines, rows[1:]):  # rows[0] may be a header
        for i in rows:
            lines[i] = lines[i].replace(",", ".")
    first_cells = _split(lines[rows[0]], delim)
    has_header = any(c.strip().strip('"').strip() != "" and not _is_number(c) for c in first_cells)
    header = [c.strip().strip('"').strip() for c in first_cells] if has_header else None
    data_rows = rows[1:] if has_header else rows
    if not data_rows:
        raise DataError(path, "no data rows (only a header line)")
    while delim is not None and all(lines[i].rstrip().endswith(delim) for i in data_rows):
        # a delimiter closing every line (loggers, spreadsheet exports; empty columns after the table: one per
        # delimiter): no empty last column
        for i in data_rows:
            lines[i] = lines[i].rstrip()[:-1]
        if header is not None and header[-1] == "":
            header = header[:-1]
    if header is not None and len(data_rows) > 1:  # a units row under the header (instrument exports): its units
        units = [c.strip().strip('"').strip() for c in _split(lines[data_rows[0]], delim)]  # join the names
        if any(units) and not any(_is_number(u) for u in units if u):
            header = [f"{h} [{u.strip('[]()')}]" if u and _norm_name(h)[1] is None else h
                      for h, u in zip(header, units + [""] * len(header))]
            data_rows = data_rows[1:]

    if delim != "," and (problem := thousands_problem(lines, data_rows, delim)):
        raise DataError(path, problem)

    # --- structure: the same number of fields on every line
    if delim is None:
        counts = np.fromiter((len(lines[i].split()) for i in data_rows), dtype=np.int64, count=len(data_rows))
    else:
        counts = np.fromiter((lines[i].count(delim) for i in data_rows), dtype=np.int64,
                             count=len(data_rows)) + 1
    # expected: the header's field count, else the most common count among the data lines
    expected = len(header) if header is not None else int(np.bincount(counts).argmax())
    if header is not None and np.all(counts == counts[0]) and counts[0] != expected:
        raise DataError(
            path,
            f"the header (line {rows[0] + 1}) has {len(header)} fields but the data lines "
            f"(from line {data_rows[0] + 1}) have {int(counts[0])} (delimiter {_delim_name(delim)})"
            + (": numbers written with decimal commas between cells separated by commas? Save the file with ';' "
               "or tabs between the cells" if delim == "," and 2 * len(header) == int(counts[0]) else ""),
        )
    bad = np.flatnonzero(counts != expected)
    if bad.size:
        b = int(bad[0])
        basis = f"as in the header on line {rows[0] + 1}" if header is not None else "as on most lines"
        more = f"; {bad.size} lines differ in all" if bad.size > 1 else ""
        raise DataError(
            path,
            f"ragged rows: line {data_rows[b] + 1} has {int(counts[b])} fields, expected {expected} "
            f"({basis}; delimiter {_delim_name(delim)}){more}"
            + (quoted_thousands_hint(lines[data_rows[b]]) if delim == "," else ""),
        )

    # --- columns of text on every line (a logger's status or device name): not sensors, left out
    def text(cell: str) -> bool:  # words, not a number written oddly ('1,5' among points is named by the parser)
        c = cell.strip().strip('"').strip()
        return any(ch.isalpha() for ch in c) and not _is_number(c)

    text_cols = [j for j, c in enumerate(_split(lines[data_rows[0]], delim)) if text(c)]
    if text_cols:  # text on every line, or a sensor column that begins with a gap: the parser names its cell
        text_cols = [j for j in text_cols if all(text(_split(lines[i], delim)[j]) for i in data_rows)]
    if text_cols:
        named, many = ", ".join(repr(header[j]) if header else str(j + 1) for j in text_cols), len(text_cols) > 1
        file_note(log, ("csv text columns", tuple(text_cols)), path,
                  f"column{'s' if many else ''} {named} hold{'' if many else 's'} text, not numbers: left out")

    # --- numbers (C parser)
    try:
        data = np.loadtxt([lines[i] for i in data_rows], delimiter=delim, dtype=np.float64, ndmin=2,
                          quotechar='"' if delim is not None else None, comments=None,
                          converters={j: _zero for j in text_cols} or None)
    except ValueError:
        raise _find_bad_cell(path, lines, data_rows, delim, 0, text_cols) from None
    del text, lines
    n_rows, n_cols = data.shape

    def line_of(r: int) -> int:
        return data_rows[r] + 1

    # --- time / index column
    time_col: int | None = None
    time_scale = 1.0
    time_hint = ""
    dropped: list[int] = list(text_cols)
    if datetime_col is not None:
        time_col, time_scale = datetime_col, 1e-6
    elif header is not None:
        for j, name in enumerate(header):
            s = _time_scale(name)
            if s is not None:
                time_col, time_scale = j, s
                break
        if time_col is not None and time_col > 0 and _is_index(data[:, 0]):
            dropped.append(0)  # a sample counter before the time ('Sample #,time_s,...') was read as a sensor axis
        elif time_col is None and n_cols >= 2 and _norm_name(header[0])[0] in _INDEX_NAMES and _is_index(data[:, 0]):
            dropped.append(0)
        elif time_col is None and n_cols >= 2 and _step_ok(data[:, 0]) \
                and not any(_step_ok(data[:, j]) for j in range(1, n_cols)):
            # a first column that steps evenly under a name of its own ('Zeit [s]', 'Time (UTC)', 'Sample #'):
            # a sample counter is left out, anything else is the time, in the unit its name gives (else seconds)
            name, unit = _norm_name(header[0])
            timed = unit in _SECOND_UNITS | _MS_UNITS | _US_UNITS or name.endswith(("_s", "_ms", "_us"))
            if _is_index(data[:, 0]) and not timed:
                dropped.append(0)
            else:
                time_col = 0
                time_scale = 1e-6 if unit in _US_UNITS or name.endswith("_us") else \
                    1e-3 if unit in _MS_UNITS or name.endswith("_ms") else 1.0
            as_ = "a sample counter, left out" if time_col is None else \
                f"the time in {'µs' if time_scale == 1e-6 else 'ms' if time_scale == 1e-3 else 's'}"
            file_note(log, ("csv first column", header[0], as_), path,
                      f"the first column, {header[0]!r}, steps evenly: read as {as_}")
    elif n_cols >= 2:
        c0 = data[:, 0]
        if _is_index(c0):
            dropped.append(0)
        elif _step_ok(c0) and not any(_step_ok(data[:, j]) for j in range(1, n_cols)):
            time_col = 0
        elif n_rows >= 3 and np.all(np.diff(c0) > 0):
            d0 = np.diff(c0)
            med = float(np.median(d0))
            spread = 100 * float(np.max(np.abs(d0 - med))) / med
            time_hint = (f" (the first column increases like a time but its steps vary by up to {spread:.1f} %, "
                         f"more than {100 * TIME_STEP_TOLERANCE:g} %: it is read as a sensor channel)")
        if time_col is None and not time_hint and n_cols - len(dropped) >= 2 and _step_ok(data[:, -1]) \
                and not any(_step_ok(data[:, j]) for j in range(n_cols - 1)):
            # a logger that writes the time last (x,y,z,t): no vibration steps evenly; it was read as a ramp channel
            time_col = n_cols - 1
            file_note(log, ("csv last column",), path, "the last column steps evenly: read as the time in s")
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
    sub = data[:, check_cols]
    finite = np.isfinite(sub)
    if not finite.all():
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
        name = f"'{header[time_col]}' " if header is not None else ""
        if time_scale == 1.0:
            time_scale = _epoch_scale(path, data[:, time_col], name.strip())
        t = data[:, time_col] * time_scale
        d = np.diff(t)
        # times written to a step near the sample period (milliseconds at 1024 Hz) repeat or vary by that step; where
        # nearly every step is one and the same (milliseconds at 1 kHz) they are exact, and checked as such
        step, q = (float(t[-1] - t[0]) / (len(t) - 1), _stamp_resolution(t)) if len(t) > 1 else (0.0, 0.0)
        if q and np.unique(np.round(d / q), return_counts=True)[1].max() >= 0.99 * len(d):
            q = 0.0
        nonpos = np.flatnonzero(d < 0 if 0 < step <= q else d <= 0)
        if nonpos.size:
            r = int(nonpos[0]) + 1
            raise DataError(
                path,
                f"time column {name}(column {time_col + 1}) is not increasing: line {line_of(r)} has "
                f"{data[r, time_col]:.10g} after {data[r - 1, time_col]:.10g} on line {line_of(r - 1)}",
            )
        med = float(np.median(d)) if not q else step
        dev = np.abs(d - med) / med
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
        if sample_rate is not None and abs(rate - float(sample_rate)) > TIME_STEP_TOLERANCE * float(sample_rate):
            raise DataError(
                path,
                f"the time column gives {rate:g} Hz but the sample rate {float(sample_rate):g} Hz was given; "
                "drop the given rate (vibration.sample_rate, --sample-rate of evaluate and sample, or a server "
                "request's sample_rate) or the time "
                "column",
            )
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
    wave = np.ascontiguousarray(data[:, use_cols].T, dtype=np.float32)
    return wave, float(rate)


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
