"""The time column of a vibration CSV (:func:`latentbridge.io.vibration.read_vibration_csv`): which column holds the
time, in what unit, and which columns are no sensors (a sample counter, a second time). The rules are the module
notes of :mod:`latentbridge.io.vibration`."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from latentbridge.errors import DataError
from latentbridge.io.cells import _split
from latentbridge.io.notes import file_note

log = logging.getLogger("latentbridge.io.vibration")  # (its notes, as the reader's)

#: Largest relative deviation of a time step from the median step.
TIME_STEP_TOLERANCE = 0.01

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
#: seconds per unit of a time column's unit ('Time [min]' was read in seconds: 60 times the rate)
_UNIT_SECONDS = {**dict.fromkeys(_SECOND_UNITS, 1.0), **dict.fromkeys(_MS_UNITS, 1e-3),
                 **dict.fromkeys(_US_UNITS, 1e-6), **dict.fromkeys(("min", "mins", "minute", "minutes"), 60.0),
                 **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600.0)}
_UNIT_NAMES = {1e-6: "µs", 1e-3: "ms", 1.0: "s", 60.0: "min", 3600.0: "h"}


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
    if unit is not None and unit not in _UNIT_SECONDS:
        return None
    if n in _TIME_NAMES:
        return _UNIT_SECONDS.get(unit, 1.0)
    if n in _TIME_MS_NAMES and unit in (None, *_MS_UNITS):
        return 1e-3
    return None


#: a date and time as loggers write them: ISO 8601 (``2024-05-01T12:00:00.125``, ``Z`` or an offset allowed) or with a
#: space (``2024-05-01 12:00:00.125``)
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}([.,]\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?")


def datetime_column(lines, rows: list[int], delim: str | None) -> tuple[int | None, int]:
    """``(column, first)``: the 0-based column of dates and times (a logger's timestamps; looked for on the second of
    ``rows``, the first may be a header, or the third, under a units row), None when there is none; ``first``: the
    row it was found on (those above may hold other text)."""
    if delim is None or len(rows) < 2:
        return None, 0
    for first in range(1, min(3, len(rows))):  # under the header, and under a units row below it
        cells = [c.strip().strip('"').strip() for c in _split(lines[rows[first]], delim)]
        if (col := next((j for j, c in enumerate(cells) if _DATETIME.fullmatch(c)), None)) is not None:
            return col, first
    return None, 0


def datetimes_to_microseconds(path: Path, lines, rows: list[int], delim: str, col: int, first: int = 0,
                              t0=None):
    """Column ``col`` of ``rows`` rewritten, in ``lines``, as whole microseconds since ``t0`` (None: since its first;
    no decimal mark, so that the file's own, point or comma, is still read from the other cells); the rows before
    ``first`` may hold other text (a header, its units). Returns ``t0``, for the rows that follow."""
    import datetime

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
    return t0


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
    for k in range(10):
        q = 10.0 ** -k
        if all(float(np.max(np.abs((rel := (t[i:i + 65536] - t[0]) / q) - np.round(rel)))) <= 1e-3
               for i in range(0, len(t), 65536)):  # (in blocks: a long recording's column is large)
            return q
    return 0.0


def _is_index(col: np.ndarray) -> bool:
    if col.size < 2 or not np.all(np.isfinite(col)):
        return False
    return bool(np.all(col == np.round(col)) and np.all(np.diff(col) == 1.0))


def time_column(path: Path, header: list[str] | None, data: np.ndarray, datetime_col: int | None,
                text_cols: list[int]) -> tuple[int | None, float, str, list[int]]:
    """``(time_col, seconds per unit, hint, columns that are no sensors)`` of a CSV's numbers ``data`` under
    ``header`` (None: none): a column of dates and times (``datetime_col``, rewritten in microseconds), a column
    named like a time, a first column that steps evenly, or a last one; ``hint``: why a first column that rises
    like a time is read as a sensor. The columns left out: ``text_cols``, a sample counter, and the time itself is
    not among them (the caller adds it)."""
    n_rows, n_cols = data.shape
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
            timed = unit in _UNIT_SECONDS or name.endswith(("_s", "_ms", "_us"))
            if _is_index(data[:, 0]) and not timed:
                dropped.append(0)
            else:
                time_col = 0
                time_scale = _UNIT_SECONDS[unit] if unit in _UNIT_SECONDS else 1e-6 if name.endswith("_us") else \
                    1e-3 if name.endswith("_ms") else 1.0
            as_ = "a sample counter, left out" if time_col is None else f"the time in {_UNIT_NAMES[time_scale]}"
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
    if header is not None and time_col is not None:  # a second time ('time_s,elapsed_ms,...') is no sensor: a ramp
        again = [j for j, name in enumerate(header) if j != time_col and j not in dropped
                 and _time_scale(name) is not None and _step_ok(data[:, j])]
        if again:
            dropped += again
            file_note(log, ("csv second time", tuple(again)), path, f"column{'s' if len(again) > 1 else ''} "
                      + ", ".join(repr(header[j]) for j in again) + f" also time{'' if len(again) > 1 else 's'} the "
                      f"samples beside the time column {header[time_col]!r}: left out, not read as a sensor")
    return time_col, time_scale, time_hint, dropped
