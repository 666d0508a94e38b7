"""Analysis windows (numpy only, no torch): :func:`cut_windows` cuts a whole recording,
:class:`WindowBuffer` cuts a stream of audio blocks as they arrive.

Cutting rules (:func:`cut_windows`): full windows every ``hop`` samples; when more than half a
window of the recording's end is left after them, one more window: the recording's last ``window``
samples (no padding: a normal recording of any length is scored on real sound only); a recording
shorter than one window gives one window padded with the pad mode.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentbridge.errors import DataError
from latentbridge.io.levels import full_scale

__all__ = ["MIN_WINDOW_SHARE", "PAD_MODES", "TRIMMED", "WindowBuffer", "WindowView", "check_recording_length",
           "check_windows", "cut_windows"]

#: Pad modes of :func:`cut_windows` (``"none"``: no padding, partial windows are dropped).
PAD_MODES: tuple[str, ...] = ("wrap", "constant", "reflect", "none")


#: The short-recording rule shared by fit, score, listen and the edge scorer: a recording must
#: hold at least this share of one analysis window (0.5 s for 2-s windows). Shorter recordings
#: are refused; recordings between that and one window are padded to one window with the
#: model's pad mode (as in training), and callers report them.
MIN_WINDOW_SHARE = 0.25
#: said of a recording "shorter than one window" when its silence was trimmed first (audio.trim_db): a 3-s recording of
#: three short bursts was "shorter than one 0.45-s window" with no word of why
TRIMMED = " once trimmed of silence (audio.trim_db)"


def shortest_recording(window: int, min_share: float = MIN_WINDOW_SHARE) -> int:
    """The fewest samples a recording may hold for windows of ``window`` samples (``min_share`` of one)."""
    return max(1, int(np.ceil(float(min_share) * int(window))))


def check_recording_length(n_samples: int, window: int, sample_rate: float, name: str | Path = "<waveform>",
                           min_share: float = MIN_WINDOW_SHARE) -> bool:
    """Apply the short-recording rule to a recording of ``n_samples``: at least ``min_share`` of a
    window (:data:`MIN_WINDOW_SHARE` unless the model's ``audio.min_window_share`` says otherwise; trimming keeps
    that much of a longer recording: :func:`~latentbridge.io.levels.widened`).

    Returns True when the recording is shorter than one window (it will be padded), False when
    it holds at least one window; raises DataError naming ``name`` when it is too short to score.
    """
    n_samples, window = int(n_samples), int(window)
    minimum = shortest_recording(window, min_share)
    if n_samples < minimum:
        have, need = _seconds(n_samples / sample_rate, minimum / sample_rate)
        raise DataError(
            name,
            f"recording too short: {have} s; with {window / sample_rate:g}-s windows a recording must last at "
            f"least {need} s ({float(min_share):g} of a window, audio.min_window_share; shorter recordings need a "
            "model trained with a shorter audio.window_s or a smaller share)",
        )
    return n_samples < window


def _seconds(a: float, b: float) -> tuple[str, str]:
    """``a`` and ``b`` to 3 significant digits, or as many more as tell them apart (0.49994 against 0.5: both
    "0.5" said a 7,999-sample recording was shorter than 8,000 samples of the same length)."""
    for digits in range(3, 10):
        text = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if text[0] != text[1]:
            return text
    return text


def _check_pad(pad: str) -> None:
    if pad not in PAD_MODES:
        raise ValueError(f"pad must be one of {PAD_MODES}, got {pad!r}")


def _zero_length(name: str | Path) -> DataError:
    return DataError(name, "waveform has zero length")


def _too_short(name: str | Path, n_samples: int, window: int) -> DataError:
    return DataError(
        name,
        f"recording too short: {n_samples} samples, one window needs {window} "
        f"(use pad='wrap', 'constant' or 'reflect' to pad it)",
    )


class WindowView:
    """The windows of a recording, cut when sliced: ``view[a:b]`` is the contiguous ``(b - a, ..., window)``
    array :func:`cut_windows` would hold there. An hour at 48 kHz in 2-s windows every second is 1.4 GB of
    windows against 0.7 GB of samples; features computed in batches from a view never hold them all."""

    def __init__(self, wave: np.ndarray, starts: np.ndarray, window: int):
        self._view = np.lib.stride_tricks.sliding_window_view(wave, window, axis=-1)  # (..., L, window)
        self.starts, self.window = starts, window
        self.shape = (len(starts), *wave.shape[:-1], window)
        self.dtype = wave.dtype

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index) -> np.ndarray:
        return np.ascontiguousarray(np.moveaxis(self._view[..., self.starts[index], :], -2, 0))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)


def cut_windows(
    wave: np.ndarray,
    window: int,
    hop: int,
    pad: str = "wrap",
    name: str | Path = "<waveform>",
    lazy: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``wave`` of shape ``(..., T)`` into windows along the last axis.

    Returns ``(windows, starts)``: ``windows`` has shape ``(n, ..., window)`` (a fresh,
    contiguous array of ``wave``'s dtype) and ``starts`` (int64, shape ``(n,)``) holds each
    window's first sample index in ``wave``.

    Rules:

    * Full windows start at ``0, hop, 2*hop, ...`` while ``start + window <= T``.
    * The end: when the samples after the full windows' hop positions (``T - next start``) are
      **more than half a window**, and the last full window ends before ``T``, one more window covers the recording's
      last ``window`` samples (start ``T - window``, overlapping the one before). It was padded once, and a
      normal recording whose length did not fit the windows then scored as an anomaly on the
      padding (silence appended to sound is not in the training windows). With ``pad="none"``
      it is dropped.
    * A recording shorter than one window gives exactly one window (start 0), padded with
      ``pad``: ``"wrap"`` tiles the clip, ``"constant"`` appends zeros, ``"reflect"`` mirrors
      it. ``pad="none"`` raises DataError (naming ``name``) for such input.

    Vectorised with ``sliding_window_view``; no per-window Python loop. ``lazy``: a :class:`WindowView`
    instead of the array when the recording holds a full window (cut batch by batch when sliced).
    """
    _check_pad(pad)
    if int(window) != window or window <= 0:
        raise ValueError(f"window must be a positive integer, got {window!r}")
    if int(hop) != hop or hop <= 0:
        raise ValueError(f"hop must be a positive integer, got {hop!r}")
    window, hop = int(window), int(hop)
    wave = np.asarray(wave)
    if wave.ndim == 0:
        raise ValueError("wave must have at least one axis (time last)")
    T = wave.shape[-1]
    if T == 0:
        raise _zero_length(name)

    if T < window:
        if pad == "none":
            raise _too_short(name, T, window)
        widths = [(0, 0)] * (wave.ndim - 1) + [(0, window - T)]
        return np.ascontiguousarray(np.pad(wave, widths, mode=pad)[None]), np.zeros(1, dtype=np.int64)
    starts = window_starts(T, window, hop, pad)
    windows = WindowView(wave, starts, window)
    return (windows if lazy else windows[:]), starts


def check_windows(windows, window: int, sample_rate: float, channels: int | None = None) -> np.ndarray:
    """``windows`` as float32 ``(n, window)`` (or ``(n, channels, window)``) waveforms of a model's windows, else a
    ValueError saying what the model reads: a 4-s window was scored as a 2-s model's first 2 s (a fault in its second
    half unseen), a 1-D one met torch's padding message. Integer samples are PCM, brought to full scale 1 as files
    are read (int16 samples were scored as values 32,768 times too large: every normal window flagged); ``channels``:
    those the model reads (a model of 3 said "(B, (3, 64, 63)) expected" of a 1-channel window)."""
    w = np.asarray(windows)
    if w.dtype in (np.int8, np.int16, np.int32, np.uint8):  # PCM as WAV files hold it (8-bit unsigned)
        w = full_scale(w)
    elif w.dtype.kind not in "f" and w.size:  # (int64, a list of Python ints: no PCM width to scale by)
        raise ValueError(f"windows of {w.dtype} samples: floats at full scale 1, or integer PCM as int8, int16, "
                         "int32 or uint8")
    w = np.asarray(w, dtype=np.float32)
    if w.ndim not in (2, 3) or w.shape[-1] != window:
        raise ValueError(f"windows of shape (n, {window}) or (n, channels, {window}) expected ({window} samples: the "
                         f"model's {window / sample_rate:g}-s window at {sample_rate:g} Hz), got shape {w.shape}; "
                         "cut a recording into them with latentbridge.io.cut_windows")
    if channels is not None and (w.shape[1] if w.ndim == 3 else 1) != channels:
        how = 'channel="all"' if channels > 1 else "the model's channel, or mixed to mono"
        raise ValueError(f"windows of {w.shape[1] if w.ndim == 3 else 1} channel(s), shape {w.shape}, where the model "
                         f"reads {channels}: (n, {channels}, {window}) (read recordings with {how})")
    return w


def window_starts(n_samples: int, window: int, hop: int, pad: str = "wrap") -> np.ndarray:
    """The first samples (int64) of the windows :func:`cut_windows` cuts from ``n_samples`` samples (its rules)."""
    if n_samples < window:
        return np.zeros(int(pad != "none"), dtype=np.int64)
    n_full = (n_samples - window) // hop + 1
    starts = np.arange(n_full, dtype=np.int64) * hop
    # (and not the last full window again: with a hop under half a window it was scored, printed and logged twice)
    if pad != "none" and n_samples - n_full * hop > window / 2 and n_samples - window > starts[-1]:
        starts = np.append(starts, n_samples - window)
    return starts


class WindowBuffer:
    """Cut a stream of audio blocks into overlapping windows.

    ``push(block)`` appends a ``(n, channels)`` block (a 1-D block is taken as mono) and returns
    every window that became complete, as ``(start_sample, window)`` pairs; ``window`` is a
    float32 array of ``window`` samples: the mean over channels (``select=None``), channel ``k``
    (``select=k``), or every channel, ``(channels, window)`` (``select="all"``), as a model's
    ``audio.channel`` reads a file.  Window ``k`` starts at sample
    ``k * hop`` (counted from the last :meth:`gap`, where samples were lost).  Samples no later window needs are
    dropped at once, so the buffer holds at most
    ``window`` samples plus one block (the last ``window`` samples are kept for :meth:`flush`;
    ``hop`` may exceed ``window``: the gap is skipped).

    At the end of a finite source (a recording replayed block by block), :meth:`flush` returns
    the windows that remain, so that all the windows of the stream are exactly those
    :func:`cut_windows` cuts from the whole recording with the same pad mode.
    """

    def __init__(self, window: int, hop: int, channels: int = 1, select: int | str | None = None):
        window, hop, channels = int(window), int(hop), int(channels)
        if window < 1:
            raise ValueError(f"window must be at least 1 sample, got {window}")
        if hop < 1:
            raise ValueError(f"hop must be at least 1 sample, got {hop}")
        if channels < 1:
            raise ValueError(f"channels must be at least 1, got {channels}")
        if select is not None and select != "all" and not (int(select) == select and 0 <= select < channels):
            raise ValueError(f"channel {select!r} out of range: the stream has {channels} channel"
                             f"{'s' if channels != 1 else ''} (valid: 0..{channels - 1})")
        self.window = window
        self.hop = hop
        self.channels = channels
        self.select = select
        width = channels if select == "all" else 1
        self._buf = np.zeros((0, width), dtype=np.float32)  # (samples, channels kept)
        self._buf_start = 0  # absolute index of self._buf[0]
        self._next_start = 0  # absolute start of the next window
        self._segment_start = 0  # where the samples since the stream's last gap begin
        self._flushed = False
        self.samples_seen = 0  # samples pushed so far (per channel)

    @property
    def buffered(self) -> int:
        """Samples currently held (never more than ``window`` plus one block)."""
        return int(self._buf.shape[0])

    def _kept(self, block: np.ndarray) -> np.ndarray:
        """A block's channels as kept: ``(n, 1)`` (the mix or the selected channel) or ``(n, channels)``."""
        block = np.asarray(block)
        if block.ndim == 1:
            if self.channels != 1:
                raise ValueError(f"expected blocks of shape (n, {self.channels}), got a 1-D block")
            return block.astype(np.float32, copy=False)[:, None]
        if block.ndim != 2 or block.shape[1] != self.channels:
            raise ValueError(f"expected a block of shape (n, {self.channels}), got {block.shape}")
        block = block.astype(np.float32, copy=False)
        if self.select == "all" or self.channels == 1:
            return block
        if self.select is not None:
            return block[:, int(self.select):int(self.select) + 1]
        return block.mean(axis=1, dtype=np.float32, keepdims=True)

    def _out(self, samples: np.ndarray) -> np.ndarray:
        """``(window, kept)`` samples → the window as emitted: ``(window,)``, or ``(channels, window)`` for "all"."""
        return np.ascontiguousarray(samples.T if self.select == "all" else samples[:, 0], dtype=np.float32)

    def push(self, block: np.ndarray) -> list[tuple[int, np.ndarray]]:
        if self._flushed:
            raise ValueError("WindowBuffer.push after flush(): reset() it to start a new stream")
        kept = self._kept(block)
        self.samples_seen += int(kept.shape[0])
        if kept.shape[0]:
            self._buf = np.concatenate([self._buf, kept]) if self._buf.size else kept.copy()
        end = self._buf_start + self._buf.shape[0]
        out: list[tuple[int, np.ndarray]] = []
        while self._next_start + self.window <= end:
            i = self._next_start - self._buf_start
            out.append((self._next_start, self._out(self._buf[i : i + self.window])))
            self._next_start += self.hop
        # Drop what no later window needs: everything before the next window's start, but the last
        # `window` samples (the recording's last window, should the stream end here).
        drop = min(self._next_start - self._buf_start, self._buf.shape[0] - self.window)
        if drop > 0:
            self._buf = self._buf[drop:].copy()
            self._buf_start += drop
        return out

    def flush(self, pad: str = "wrap", name: str | Path = "<stream>") -> list[tuple[int, np.ndarray]]:
        """End of the stream: the remaining windows, as :func:`cut_windows` cuts the whole recording.

        With ``T`` samples pushed: when ``T`` is at least one window and more than half a window
        follows the next hop position, the stream's last ``window`` samples (start ``T - window``;
        "none" never keeps it). A stream shorter than one window gives one window starting at 0, padded with
        ``pad`` (``pad="none"`` raises DataError naming ``name``, as does an empty stream); after a :meth:`gap`, the
        samples since it make the last window only when they fill one.
        Returns ``[]`` when nothing remains; after ``flush`` the buffer takes no more blocks
        (and a second ``flush`` returns ``[]``) until :meth:`reset`.
        """
        _check_pad(pad)
        if self._flushed:
            return []
        self._flushed = True
        total, window = self.samples_seen, self.window
        if total == 0:
            raise _zero_length(name)
        if total - self._segment_start < window:
            if self._segment_start:  # too little since the last gap for a window
                return []
            if pad == "none":  # nothing was emitted and the whole recording is still buffered
                raise _too_short(name, total, window)
            return [(0, self._out(np.pad(self._buf, ((0, window - total), (0, 0)), mode=pad)))]
        return self._last_window(pad)

    def gap(self, pad: str = "wrap") -> list[tuple[int, np.ndarray]]:
        """The stream lost samples before the next block (a dropped or overflowed block): the samples since the last
        gap end as a recording ends (its last window, by :meth:`flush`'s rule), and no later window joins them with
        the samples after (a window across the gap held a splice no recording has). Times stay those of the samples
        received."""
        _check_pad(pad)
        out = self._last_window(pad) if self.samples_seen - self._segment_start >= self.window else []
        self._buf = self._buf[:0]
        self._buf_start = self._next_start = self._segment_start = self.samples_seen
        return out

    def _last_window(self, pad: str) -> list[tuple[int, np.ndarray]]:
        total, window = self.samples_seen, self.window
        if pad == "none" or total - self._next_start <= window / 2 or total - window <= self._next_start - self.hop:
            return []  # (nothing past the last window: with a hop under half a window, it was that window again)
        self._next_start += self.hop
        return [(total - window, self._out(self._buf[total - window - self._buf_start:]))]

    def reset(self) -> None:
        """Forget buffered samples and restart the sample clock at zero."""
        self.__init__(self.window, self.hop, self.channels, self.select)
