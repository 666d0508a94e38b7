"""``anomaly listen``: score a live input, or a replayed recording, window by window.

:func:`listen` is the listening loop: audio blocks (:mod:`latentbridge.io.capture`) go through a
:class:`~latentbridge.io.windows.WindowBuffer`, every completed window is scored by a callable
supplied by the model side, and each window gives one printed line and one event-log row
(:mod:`latentbridge.io.events`); device overflows are counted.  :func:`listen_model` runs it with
a saved anomaly detector.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

import numpy as np

from latentbridge.errors import LatentbridgeError
from latentbridge.io.windows import MIN_WINDOW_SHARE, check_recording_length, shortest_recording
from latentbridge.io.resampling import resampled_blocks
from latentbridge.io.capture import StreamStats, device_blocks, file_blocks
from latentbridge.io.events import EventLog, utc_now_iso
from latentbridge.io.levels import CLIP_LEVEL, dc_offsets, peak_and_clipping, subtract_offsets
from latentbridge.io.windows import PAD_MODES, WindowBuffer
from latentbridge.utils import counted

_log = logging.getLogger(__name__)

#: a window whose samples all stay below this is digital silence (a muted or disconnected input)
SILENT_PEAK = 1e-6
#: the highest peak of a live block whose samples past full scale count as clipping (a resampler's overshoot)
OVERSHOOT = 1.25

__all__ = ["ScoreFn", "listen", "listen_model"]

#: ``score_fn(windows (n, window_samples) float32) -> (scores (n,), decisions (n,) bool)``.
ScoreFn = Callable[[np.ndarray], "tuple[np.ndarray, np.ndarray]"]


def _watch_clipping(blocks: Iterable[tuple[np.ndarray, bool]], sample_rate: int, clipped: list[int]):
    """A live input's blocks, passed on; the samples on plateaus at full scale (the converter saturated:
    :func:`~latentbridge.io.peak_and_clipping`) or just past it (resampled on their way) counted in ``clipped[0]``,
    the first named in a warning. Every window of a clipping input carries the saturation's distortion, which scores
    as unlike the training sound."""
    seen = 0
    for block, overflowed in blocks:
        b = np.asarray(block, dtype=np.float32).reshape(len(block), -1)
        if b.size and float(np.abs(b).max()) >= CLIP_LEVEL:  # one pass; the plateaus are looked for only then
            # and samples just past full scale: a saturated input resampled on its way (a sound server's rate
            # converter) overshoots by a few % instead of holding a plateau (40 % of its samples at 0.999 and more,
            # peak 1.04, went unnamed); a float stream at another scale (peaks of 3) is no saturation
            over = int((np.abs(b) > 1.0).any(axis=1).sum()) if float(np.abs(b).max()) <= OVERSHOOT else 0
            n = max(int(round(float(peak_and_clipping(b)[1].max()) * len(b))), over)
            if n and not clipped[0]:
                _log.warning("the input clips at %.2f s (samples held at full scale): its windows score the "
                             "distortion; lower the input gain", seen / sample_rate)
            clipped[0] += n
        seen += len(b)
        yield block, overflowed


def _without_offset(blocks: Iterable[tuple[np.ndarray, bool]], n_first: int):
    """A live input's blocks with each channel's constant offset taken out, as files lose theirs when read
    (:func:`~latentbridge.io.levels.remove_dc`; a microphone's or an ADC's bias otherwise sets a stream's level and
    lowest band, not a file's): the mean of the blocks that bring in its first ``n_first`` samples (the first window's,
    which waits for them anyway), held back until they are in, then fixed (an estimate moving block by block would step
    the signal). A mean within 5 % of the samples' spread is the sound's own slow part over one window, not a bias: left
    (a file's mean is over its whole length). A block more than 1 % digital zeros (a muted stretch) keeps them zero."""
    held: list = []
    offset = None
    for item in itertools.chain(blocks, [None]):  # None: the end (a stream shorter than its first window included)
        if item is not None:
            b = np.array(item[0], dtype=np.float32)  # a copy: the caller's block is left as it was
            held.append((b.reshape(-1, 1) if b.ndim == 1 else b, item[1]))
            if offset is None and sum(len(h) for h, _ in held) < n_first:
                continue
        if offset is None and held:
            offset = _bias(np.concatenate([h for h, _ in held]))
        yield from ((subtract_offsets(h, offset), o) for h, o in held)  # each block's own zeros kept zero
        held = []


def _bias(first: np.ndarray) -> np.ndarray:
    offset, _ = dc_offsets(first)
    offset[np.abs(offset) <= 0.05 * first.std(axis=0, dtype=np.float64)] = 0.0
    return offset


def live_input_warnings(det, capture_sr: int, what: str) -> list[str]:
    """What a live input (``what``: a device's capture, a WebSocket stream) at ``capture_sr`` lacks that the model's
    training recordings had: a rate below the model's band (what `anomaly score` says of a file), and for a model of
    recordings trimmed of their silence (``audio.trim_db``) that a stream has no end to trim to, so its windows of
    silence score as unlike training (a file replayed trims as training did)."""
    from latentbridge.tasks.anomaly_checks import recording_warnings

    trim_db = det.spec.windowing.trim_db
    return recording_warnings(det, [what], [], [capture_sr]) + (
        [f"the model learnt recordings trimmed of their leading and trailing silence (audio.trim_db {trim_db:g} dB); "
         "a live input is not trimmed: its silent stretches score as unlike the training sound"] if trim_db else [])


def first_window_warnings(det, what: str, capture_sr: int) -> Callable[[np.ndarray], list[str]]:
    """What `anomaly score` says of a recording's level and band content (a dead microphone, integer samples sent
    as floats, a spectrum cut at the top or resampled down), said of a live input (``what``, at ``capture_sr``) from
    its first scored window (at the model's rate): a stream of unscaled 16-bit samples was flagged in every window
    without the word an upload of them got."""
    from latentbridge.io import level_dbfs
    from latentbridge.tasks.anomaly_checks import recording_warnings, window_band_warnings

    def check(window: np.ndarray) -> list[str]:
        return recording_warnings(det, [what], levels=[level_dbfs(window)]) + window_band_warnings(
            det, window, what, capture_sr)

    return check


def _format_line(start_s: float, end_s: float, score: float, is_anomaly: bool) -> str:
    label = "ANOMALY" if is_anomaly else "normal"
    return f"{start_s:8.2f}-{end_s:.2f} s  score {score:.5f}  {label}"


class _Scored:
    """The windows of a listening run as they are scored: each one's printed line and event (an event-log row, and
    ``on_window``'s call), and the counts its closing line gives."""

    def __init__(self, score_fn: ScoreFn, buffer: WindowBuffer, *, sample_rate: int, window: int, read: dict,
                 is_file: bool, out, log: EventLog | None, on_window, first_window, silent_peak: float,
                 stats: StreamStats | None):
        self.score_fn, self.buffer, self.read = score_fn, buffer, read
        self.sample_rate, self.window = sample_rate, window
        self.is_file, self.out, self.log, self.on_window, self.first_window = is_file, out, log, on_window, first_window
        self.silent_peak, self.stats = silent_peak, stats
        self.n_windows = self.n_anomalies = self.flagged_blocks = self.n_silent = 0
        self.last_silent, self.silences = False, 0  # whether the last window was digital silence; the stretches begun

    def overflows(self) -> int:
        return max(self.flagged_blocks, self.stats.overflows if self.stats is not None else 0)

    def emit(self, line: str) -> None:
        if self.out is not None:
            print(line, file=sys.stdout if self.out == "stdout" else self.out, flush=True)

    def __call__(self, ready: list[tuple[int, np.ndarray]]) -> None:
        """Score the windows ``ready`` together (``(start sample, window)`` pairs): a line and an event each."""
        if not ready:
            return
        starts = [s for s, _ in ready]
        windows = np.stack([w for _, w in ready])
        self._say_silence(windows, starts)
        scores, decisions = self.score_fn(windows)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        decisions = np.asarray(decisions).reshape(-1).astype(bool)
        if scores.shape[0] != len(ready) or decisions.shape[0] != len(ready):
            raise LatentbridgeError(
                f"score function returned {scores.shape[0]} scores and "
                f"{decisions.shape[0]} decisions for {len(ready)} windows"
            )
        lead_s = self.read["lead_s"]
        if not np.isfinite(scores).all():  # NaN compared with the threshold read as normal (as anomaly score's rule)
            bad = int(np.flatnonzero(~np.isfinite(scores))[0])
            raise LatentbridgeError(f"the model gave a non-finite score for the window at "
                                    f"{starts[bad] / self.sample_rate + lead_s:.2f} s; no decision")
        for start, value, flag in zip(starts, scores, decisions):
            start_s = start / self.sample_rate + lead_s
            # a window padded past the recording's end ends with it, as score's rows say (a file: the recording's
            # whole length, a trimmed lead and tail included; a stream: the samples received)
            end_s = min(start_s + self.window / self.sample_rate, self.read["duration_s"]) if self.is_file else \
                min(start + self.window, self.buffer.samples_seen) / self.sample_rate
            self.n_windows += 1
            self.n_anomalies += int(flag)
            self.emit(_format_line(start_s, end_s, float(value), bool(flag)))
            if self.log is not None or self.on_window is not None:
                event = {"wall_time": utc_now_iso(), "start_s": start_s, "end_s": end_s, "score": float(value),
                         "is_anomaly": bool(flag), "overflows": self.overflows()}
                if self.log is not None:
                    self.log.log(event)
                if self.on_window is not None:
                    self.on_window(event)

    def _say_silence(self, windows: np.ndarray, starts: list[int]) -> None:
        """Digital silence named as each stretch of it begins (a muted or disconnected input: every window of it
        scores as a fault; a dropout after the first was printed and logged as faults alone), the first ten; the first
        window with sound given to ``first_window``'s checks."""
        silent = np.abs(windows).reshape(len(windows), -1).max(axis=1) < self.silent_peak
        for i in np.flatnonzero(silent & ~np.concatenate([[self.last_silent], silent[:-1]])):
            self.silences += 1
            if self.silences <= 10:
                _log.warning("the window at %.2f s is digital silence (peak below %.0e): is the input muted or "
                             "disconnected? Its score measures the silence%s", starts[i] / self.sample_rate,
                             self.silent_peak, "; later ones are counted in the closing line" if self.silences == 10
                             else "")
        self.last_silent = bool(silent[-1])
        self.n_silent += int(silent.sum())
        if self.first_window is not None and not silent.all():  # (digital silence is said above)
            check, self.first_window = self.first_window, None
            for text in check(windows[int(np.argmin(silent))]):
                _log.warning("%s", text)

    def closing(self, duration_s: float, clipped: int) -> dict:
        """The summary, and its closing line."""
        summary = {"n_windows": self.n_windows, "n_anomalies": self.n_anomalies, "overflows": self.overflows(),
                   "duration_s": duration_s, "n_silent_windows": self.n_silent, "n_clipped_samples": clipped}
        self.emit(
            f"listened {duration_s:.2f} s: {counted(self.n_windows, 'window')}, "
            f"{self.n_anomalies} anomal{'y' if self.n_anomalies == 1 else 'ies'}, "
            f"{counted(summary['overflows'], 'overflow')}"
            + (f", {counted(self.n_silent, 'window')} of digital silence" if self.n_silent else "")
            + (f", {clipped} samples clipped" if clipped else "")
        )
        return summary


def listen(
    score_fn: ScoreFn,
    *,
    sample_rate: int,
    window_s: float,
    hop_s: float,
    source: str | Path | Iterable[tuple[np.ndarray, bool]] | None = None,
    device: int | str | None = None,
    channels: int = 1,
    blocksize: int = 1024,
    duration_s: float | None = None,
    events: str | Path | EventLog | None = None,
    out: TextIO | None | str = "stdout",
    realtime: bool = False,
    max_queue_blocks: int = 64,
    pad: str = "wrap",
    flush: bool | None = None,
    trim_db: float | None = None,
    min_share: float = MIN_WINDOW_SHARE,
    on_window: Callable[[dict], None] | None = None,
    stats: StreamStats | None = None,
    channel: int | str | None = None,
    csv_rate: float | None = None,
    model_rate: int | None = None,
    columns: list[str] | None = None,
    first_window: Callable[[np.ndarray], list[str]] | None = None,
    silent_peak: float = SILENT_PEAK,
) -> dict:
    """Score a live stream window by window.

    ``source``: ``None`` records from ``device`` (the default input device when ``None``); a
    path replays that recording (``realtime`` paces it); any other iterable of
    ``(block, overflowed)`` pairs is used as is.  Windows that become available together are
    scored in one ``score_fn(windows (n, window_samples))`` call, which returns
    ``(scores (n,), decisions (n,) bool)``.  One line is printed to ``out`` per window, events
    are logged to ``events`` (a path or an open :class:`EventLog`), and a summary line ends the
    output.  Stops after ``duration_s`` seconds of audio, at the end of a file, or on
    KeyboardInterrupt.

    ``flush`` (default: True for a file ``source``, False otherwise) says that the source is a
    whole recording: when it ends (or ``duration_s`` cuts it), the short-recording rule
    (:func:`latentbridge.io.check_recording_length`) is applied and
    :meth:`~latentbridge.io.windows.WindowBuffer.flush` gives the last window (``pad`` pads a
    recording shorter than one window), so that the windows scored are exactly those
    :func:`latentbridge.io.cut_windows` cuts from the recording (``anomaly listen --source
    FILE`` scores the windows ``anomaly score`` scores).  A live input is not flushed, nor is a
    stream stopped by KeyboardInterrupt. A file source is silence-trimmed with ``trim_db`` as
    training trimmed its files (a live input never is); a live input loses its constant offset
    as a file does when read (:func:`_without_offset`), and where blocks were lost before a block
    (``overflowed``) no window joins the two sides (:meth:`~latentbridge.io.windows.WindowBuffer.gap`).

    ``stats``: the counters of a source that drops blocks when it falls behind (a device's, or a
    :class:`~latentbridge.io.capture.BlockFeed`'s), so that its dropped blocks count as overflows
    even when no block after them arrives (default: a device source's own).

    ``channel``: what a window holds, as a model's ``audio.channel`` reads a file: the mix of the ``channels`` (None),
    channel ``k``, or every channel (``"all"``: windows ``(channels, window_samples)``; a file ``source`` must hold
    ``channels``). ``csv_rate``, ``columns``: how a vibration CSV ``source`` is read
    (:func:`~latentbridge.io.read_audio`).

    ``model_rate``: the rate the windows are cut and scored at, when a device or stream delivers ``sample_rate``:
    the stream is resampled as one signal before it is cut (:func:`latentbridge.io.resampling.resampled_blocks`), so the
    windows hold the samples ``anomaly score`` reads from a recording of it (a file ``source`` is read at
    ``sample_rate`` already). Times are seconds of the received audio either way.

    ``first_window``: called once with the first window scored that is not digital silence; each text it returns is
    a warning (:func:`first_window_warnings`).

    ``on_window``, when given, is called with each window's event (the fields of an event-log
    row: ``wall_time``, ``start_s``, ``end_s``, ``score``, ``is_anomaly``, ``overflows``) as soon
    as it is scored: the server's WebSocket stream sends it on.

    Returns ``{"n_windows", "n_anomalies", "overflows", "duration_s", "n_silent_windows", "n_clipped_samples"}``
    where ``duration_s`` is the audio received, in seconds (a file ``source``'s clipping is named as ``anomaly score``
    names it; a live input's samples held at full scale are counted as they arrive). Times are positions in the
    received audio, a trimmed file's in the recording.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if pad not in PAD_MODES:
        raise ValueError(f"pad must be one of {PAD_MODES}, got {pad!r}")
    if int(blocksize) != blocksize or blocksize < 1:  # a traceback from the device or file reader
        raise LatentbridgeError(f"--blocksize must be a whole number of at least 1 sample, got {blocksize}")
    is_file = isinstance(source, (str, os.PathLike))
    captured = sample_rate
    if model_rate is not None and not is_file:
        sample_rate = int(model_rate)  # windows, hops and times at the rate the stream is resampled to
    window = int(round(window_s * sample_rate))
    hop = int(round(hop_s * sample_rate))
    if window < 1 or hop < 1:
        raise LatentbridgeError(
            f"window_s={window_s} and hop_s={hop_s} must each be at least one sample "
            f"at {sample_rate} Hz"
        )
    flush = is_file if flush is None else bool(flush)
    name = source if is_file else "<stream>"
    read: dict = {"lead_s": 0.0}  # a file source's trimmed lead: times stay the recording's
    if source is None:
        stats = stats if stats is not None else StreamStats()
        blocks: Iterable[tuple[np.ndarray, bool]] = device_blocks(
            device,
            sample_rate=captured,
            channels=channels,
            blocksize=blocksize,
            duration_s=duration_s,
            max_queue_blocks=max_queue_blocks,
            stats=stats,
        )
        in_channels = channels
    elif is_file:  # the file reader picks or mixes the channels as training read them
        blocks = file_blocks(source, sample_rate, blocksize=blocksize, realtime=realtime, trim_db=trim_db,
                             channel=channel, expect_channels=channels, csv_rate=csv_rate, stats=read,
                             columns=columns, min_len=shortest_recording(window, min_share))
        in_channels = channels if channel == "all" else 1
    else:
        blocks = source
        in_channels = channels
    clipped = [0]
    if not is_file:  # a live input or stream: its converter's saturation named as it happens, its offset taken out
        blocks = _without_offset(_watch_clipping(blocks, captured, clipped), int(round(window_s * captured)))
    if captured != sample_rate:
        blocks = resampled_blocks(blocks, captured, sample_rate, in_channels)

    limit = None if duration_s is None else int(round(duration_s * sample_rate))
    select = channel if not is_file or channel == "all" else None
    try:
        buffer = WindowBuffer(window, hop, in_channels, select)
    except ValueError as e:
        raise LatentbridgeError(f"the model reads channel {channel} of its recordings: {e}") from None
    own_log = events is not None and not isinstance(events, EventLog)
    new_log = own_log and not Path(events).exists()  # type: ignore[arg-type]
    log = EventLog(events) if own_log else events  # type: ignore[arg-type]
    scored = _Scored(score_fn, buffer, sample_rate=sample_rate, window=window, read=read, is_file=is_file, out=out,
                     log=log, on_window=on_window, first_window=first_window, silent_peak=silent_peak, stats=stats)

    def heard_s() -> float:  # a file read to its end: the recording's length, its trimmed silence too (it said 0.14 s
        # of a 1-s file); one interrupted, what was heard (Ctrl-C at 5,972 s of 7,200 said "listened 7200.00 s")
        whole = is_file and ended and (limit is None or buffer.samples_seen < limit)
        return read["duration_s"] if whole else buffer.samples_seen / sample_rate

    iterator, ended = iter(blocks), False
    try:
        for block, overflowed in iterator:
            if overflowed:  # samples were lost before this block: no window joins the two sides
                scored.flagged_blocks += 1
                scored(buffer.gap(pad))
            block = np.asarray(block, dtype=np.float32)
            if block.ndim == 1:
                block = block.reshape(-1, 1)
            if limit is not None:
                block = block[: max(0, limit - buffer.samples_seen)]
            scored(buffer.push(block))
            if limit is not None and buffer.samples_seen >= limit:
                break
        if flush:
            # The recording ended: cut its last windows as cut_windows cuts the whole recording.
            check_recording_length(buffer.samples_seen, window, sample_rate, name, min_share)
            scored(buffer.flush(pad, name=name))
        ended = True
    except KeyboardInterrupt:
        scored.emit("interrupted")
    except BaseException:
        if new_log and scored.n_windows == 0:  # an unusable source: no empty events file left behind
            log.close()
            Path(events).unlink(missing_ok=True)  # type: ignore[arg-type]
        elif scored.n_windows and isinstance(sys.exc_info()[1], LatentbridgeError):  # a device lost: what it heard
            scored.closing(heard_s(), clipped[0])  # said first (the error alone ended the run)
        raise
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()  # closes the input stream of device_blocks
        if own_log and log is not None:
            log.close()

    if not scored.n_windows and scored.flagged_blocks and buffer.samples_seen >= window:
        _log.warning("no window scored: blocks were lost %d time(s) and no stretch between the losses held a %g-s "
                     "window (the scorer fell behind the input: a larger queue, or fewer streams at once)",
                     scored.flagged_blocks, window / sample_rate)
    elif not scored.n_windows and not flush and buffer.samples_seen < window:  # (--duration under a window: unsaid)
        _log.warning("no window scored: %.2f s heard, under one %g-s window", buffer.samples_seen / sample_rate,
                     window / sample_rate)
    return scored.closing(heard_s(), clipped[0])


def listen_model(model_dir, *, device=None, source=None, duration_s=None, events=None, hop_s=None,
                 sample_rate=None, blocksize: int = 1024, realtime: bool = False, out=None) -> dict:
    """Stream windows through the saved detector in ``model_dir``; one printed line (and event
    row) per window.

    ``source`` is a recording to replay (``realtime`` paces it) or None for the input ``device``
    (default input when None), captured at ``sample_rate`` (default: the model's; windows are
    resampled to the model's rate before scoring).  Windows and hop follow the model's config
    (``hop_s`` overrides the hop); a replayed recording ends on its last window of samples, as
    ``cut_windows`` ends it, so it gives the windows, start times and scores of ``anomaly score``
    on the same file.  Returns the summary of :func:`listen`.
    """
    from latentbridge.tasks.anomaly import Detector

    out = sys.stdout if out is None else out  # resolved per call: sys.stdout may be replaced
    for option, value in (("--hop", hop_s), ("--duration", duration_s), ("--sample-rate", sample_rate)):
        if value is not None and not (np.isfinite(value) and value > 0):
            raise LatentbridgeError(f"{option} must be a positive number, got {value:g}")
    if source is not None and device is not None:  # (the device was passed over without a word)
        raise LatentbridgeError(f"--device {device} and --source {source}: one input, a device or a recording to "
                                "replay; leave one out")
    det = Detector.load(model_dir)
    if source is not None and sample_rate is not None:  # a replayed file is read at its own rate (it once claimed
        # the file was at the device's); a vibration file that gives none, at this one, as `anomaly score` reads it
        from latentbridge.io import audio_info

        try:
            audio_info(source)  # read at no rate given: it gives its own
        except LatentbridgeError:
            pass  # none (or unreadable: named when it is read)
        else:
            raise LatentbridgeError(f"--sample-rate sets a device's capture rate, or the rate of a --source vibration "
                                    f"file that gives none; {source} gives its own, at which it is read and "
                                    "resampled to the model's: leave --sample-rate out")
        det.read_rate(sample_rate)
        sample_rate = None
    if hop_s is not None and hop_s > det.spec.windowing.window_s:
        _log.warning("--hop %g s is longer than the model's %g-s window: the audio between windows is not scored",
                    hop_s, det.spec.windowing.window_s)
    capture_sr = int(sample_rate or det.sample_rate)
    _say_what_the_input_lacks(det, source, capture_sr)

    if isinstance(device, str) and not device.strip():  # it listened on the default device, named as ''
        raise LatentbridgeError("--device '': give an input device's name or index (latentbridge anomaly listen "
                                "--list-devices), or leave --device out for the default")
    if isinstance(device, str) and device.strip().lstrip("-").isdigit():
        device = int(device)
    where = (f"file {source} (resampled to the model's {capture_sr} Hz where it is at another rate)" if source
             else f"device {device if device is not None else '(default)'} at {capture_sr} Hz")
    print(f"model {model_dir}: {det.saved.info['model_class']}, score {det.method}, threshold {det.threshold:.6g}, "
          f"window {det.spec.windowing.window_s:g} s, input {where}", file=out, flush=True)
    return listen(det.score_windows, sample_rate=capture_sr, model_rate=det.sample_rate,
                  window_s=det.spec.windowing.window_s,
                  hop_s=hop_s or det.spec.windowing.hop_s, source=source, device=device, blocksize=blocksize,
                  duration_s=duration_s, events=events, out=out, realtime=realtime, pad=det.spec.windowing.pad,
                  trim_db=det.spec.windowing.trim_db, min_share=det.spec.windowing.min_share,
                  channel=det.spec.windowing.channel, channels=capture_channels(det),
                  csv_rate=det.csv_rate, columns=det.spec.windowing.columns,
                  first_window=None if source else first_window_warnings(det, "the input", capture_sr),
                  # a model whose floor follows its recordings' tiny units (the survey's features.amin): silence
                  # under its floor too (a table of values about 1e-6 was every window "digital silence")
                  silent_peak=SILENT_PEAK * min(1.0, det.spec.features.amin / 1e-5) ** (1 / det.spec.features.power))


def _say_what_the_input_lacks(det, source, capture_sr: int) -> None:
    """What `anomaly score` says of a recording, said before listening to it (or to a device at ``capture_sr``): a
    rate below the model's band, 8-bit or lossy samples where training had none, a level far from training's, clipping
    where training had none, a top band resampling emptied, several channels mixed for a model of one (a recording is
    read for these once more). Every window scored as a fault for that alone, without a word."""
    from latentbridge.io import audio_info
    from latentbridge.tasks.anomaly_checks import single_file_notes

    if source is None:
        for text in live_input_warnings(det, capture_sr, f"the device's {capture_sr}-Hz capture"):
            _log.warning(text)
        return
    from latentbridge.data.blocks import block_windows, cut_size, read_in_blocks

    try:
        info, stats, ex = audio_info(source, csv_rate=det.csv_rate), {}, det.extractor(use_cache=False)
        if read_in_blocks(info, ex.sample_rate, ex.channel):  # as anomaly score reads it (a 3-h recording was read
            windows = block_windows(ex, Path(source))  # whole, 7 GB, before the first window was replayed)
            first = None
            for w, _ in windows.batches(cut_size(windows)):  # through to the end: the level is the whole recording's
                first = w[0] if first is None and len(w) else first
            notes = single_file_notes(det, ex, Path(source).name, info, None, windows.blocks.clipped_share, first,
                                      level=windows.level_dbfs)
        else:
            wave, windows, _ = ex.file_windows(Path(source), stats)
            notes = single_file_notes(det, ex, Path(source).name, info, wave, stats["clipped_share"], windows[0])
    except LatentbridgeError:
        return  # the reader names what is wrong with it when it reads it
    for text in notes[0]:
        _log.warning(text)


def capture_channels(det) -> int:
    """The channels a device is opened with for a detector: the mix of one (``audio.channel`` unset), channel K
    of K + 1, or every channel the model was fitted on (``all``)."""
    channel = det.spec.windowing.channel
    return det.n_channels if channel == "all" else 1 if channel is None else int(channel) + 1
