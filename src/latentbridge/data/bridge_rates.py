"""The sample rates of a bridge folder's recordings: the rates a model's windows can be cut at (:func:`check_rate`),
and what is said of the rates found (:func:`report_rates`) and of the band a resampling removes
(:func:`removed_warning`)."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np

from latentbridge.data.bridge_layout import _warn_once, recording_names
from latentbridge.errors import DataError
from latentbridge.utils import listed

log = logging.getLogger("latentbridge.data.bridge")

#: rates this close (relatively) are one rate
RATE_RTOL = 1e-4

#: the fewest samples a window may hold at a recording's own rate, and the most a recording may be upsampled
MIN_WINDOW_SAMPLES, MAX_UPSAMPLING = 16, 8.0


def check_rate(sample_rate: float, vib, path) -> None:
    """Refuse a rate that cannot carry the configured windows: fewer than :data:`MIN_WINDOW_SAMPLES` samples per
    window, or ``resample_to`` more than :data:`MAX_UPSAMPLING` times the recording's rate (most of the model's band
    would be empty). Both are what a time column in milliseconds read as seconds, or a rate given in kHz, look like;
    unchecked they run the upsampling out of memory."""
    sr = float(sample_rate)
    hint = ("" if vib.sample_rate is not None and float(vib.sample_rate) == sr else  # the rate given, not a time column
            "if the time column is in milliseconds, name it so (e.g. 'time_ms'); ") + \
        "a rate given with --sample-rate or vibration.sample_rate is in Hz"
    if vib.window_s * sr < MIN_WINDOW_SAMPLES:
        raise DataError(path, f"sample rate {sr:g} Hz: a {vib.window_s:g}-s window (vibration.window_s) would hold "
                              f"{vib.window_s * sr:.3g} samples (at least {MIN_WINDOW_SAMPLES}); {hint}")
    if vib.resample_to is not None and float(vib.resample_to) > MAX_UPSAMPLING * sr:
        raise DataError(path, f"sample rate {sr:g} Hz: resampling to {float(vib.resample_to):g} Hz "
                              f"(vibration.resample_to) would upsample it {float(vib.resample_to) / sr:.3g} times (at "
                              f"most {MAX_UPSAMPLING:g}), leaving most of the model's band empty; {hint}")


def training_rate_text(where, n: int, of: int, rate: float) -> str:
    """What is said of ``n`` of ``of`` new recordings that give no rate (no time column), read at the rate a model was
    trained at (``vibration.sample_rate``): they may come from another logger."""
    return (f"{where}: {n} of {of} recording(s) give no sample rate (no time column): read at {rate:g} Hz, the rate "
            "the model's training recordings were given (vibration.sample_rate); --sample-rate gives theirs")


def report_rates(own: dict[Path, float], rate: float, root: Path) -> None:
    """Say at which rates the recordings were written and to which they were resampled: a warning when the
    rates differ between files (a set mixed from two loggers, or a rate read wrong), else one info line."""
    counts = Counter(f"{r:.5g}" for r in own.values()).most_common()
    at = ", ".join(f"{k} Hz x{n}" for k, n in counts)
    resampled = any(abs(r - rate) > RATE_RTOL * rate for r in own.values())
    line = f"{root}: {len(own)} recordings at {at}" + (f", resampled to {rate:g} Hz" if resampled else "")
    if len(counts) > 1:
        first = next(p for p, r in own.items() if f"{r:.5g}" != counts[0][0])
        log.warning("%s (the recordings' rates differ: %s is one of the others)", line, first)
    else:
        log.info(line)
    if up := [r for r in own.values() if r < 0.95 * rate]:  # 25-Hz recordings for a 100-Hz model (5 % of it or more)
        low = min(up)
        _warn_once("%s: %d recording(s) upsampled to %g Hz (from %g Hz at the lowest): nothing above %g Hz in them, "
                   "%.0f %% of the band the windows hold empty, where a model of recordings at %g Hz reads it (a "
                   "time column in milliseconds read as seconds gives such a rate: name it so, e.g. 'time_ms')",
                   root, len(up), rate, low, low / 2, 100 * (1 - low / rate), rate)


#: recordings that lose this share of their energy or more to vibration.resample_to are named
REMOVED_SHARE = 0.5


def removed_warning(removed: dict[Path, float], own: dict[Path, float], vib, root: Path) -> None:
    """A warning where the recordings lose most of their energy to ``vibration.resample_to`` (``removed``: each
    recording's share above its Nyquist, of the channels it gave): the model would read their
    noise floor, and a later folder's level be blamed on its units."""
    lost = {p: v for p, v in removed.items() if v >= REMOVED_SHARE}
    if not lost:
        return
    _warn_once("%s: %d of %d recordings hold most of their vibration above %g Hz (median %.0f %% of its energy), "
               "which vibration.resample_to = %g Hz removes: the model reads what is left; keep their band with a "
               "higher vibration.resample_to, or null for their own rate (%g Hz): %s", root, len(lost), len(removed),
               vib.resample_to / 2, 100 * float(np.median(list(lost.values()))), vib.resample_to,
               max(own.values()), listed(recording_names(root, lost), 3, count=True))
