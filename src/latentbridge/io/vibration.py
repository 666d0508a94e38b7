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
* Parsing (:mod:`latentbridge.io.csvtable`): the layout (notes, header, units, delimiter, closing delimiters) is read
  from the first block of lines (:class:`~latentbridge.io.text.LineBlocks`: 4 MiB of text, or more until it holds
  :data:`~latentbridge.io.csvtable.HEAD_ROWS` rows), then the text a block at a time: a cheap structural pass (fields
  per line, counted over the whole file, to report ragged rows by line) and :func:`numpy.loadtxt` (C parser) into one
  float64 table: about 0.1 s for 100 000 rows x 9 columns (8-11 MB). Decimal commas are judged on the first lines that
  hold a comma or a point, wherever they are. A 1-h CSV of three axes at 2 kHz (253 MB) peaks at 614 MB (1,457 MB when
  its lines were split at once). Whatever the blocks, the same numbers and the same message: ragged rows first, then a
  text column's number, then a bad cell.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import numpy as np

from latentbridge.errors import DataError, LatentbridgeError
from latentbridge.io.columns import by_name
from latentbridge.io.csvtable import read_csv_table
from latentbridge.io.notes import file_note
from latentbridge.io.timecolumns import TIME_STEP_TOLERANCE, _epoch_scale, _stamp_resolution, time_column
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


def _rate_of_notes(notes: list[str]) -> float | None:
    for note in notes:
        m = _RATE_NOTE.search(note)
        if m:
            rate = float(m.group(1).replace(",", "."))
            return rate * 1000 if (m.group(2) or "").lower() == "khz" else rate
    return None


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
    table = read_csv_table(path)
    data, header, notes, text_cols = table.data, table.header, table.notes, table.text_cols
    n_rows, n_cols = data.shape

    # --- time / index column
    time_col, time_scale, time_hint, dropped = time_column(path, header, data, table.datetime_col, text_cols)
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
            f"first at line {table.line_of(r)}, column {check_cols[k] + 1}",
        )
    if n_rows < 2:
        raise DataError(path, f"only {n_rows} sample (need at least 2)")

    # --- sample rate
    rate: float | None = None
    if time_col is not None:
        rate = _time_rate(path, data, time_col, time_scale, header, table.line_of, sample_rate)
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
    table = None  # (the lines of rows, for messages)
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
