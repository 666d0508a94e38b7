"""Levels of recordings: RMS in dBFS, frame RMS, the active part between leading and trailing quiet, a channel's
constant offset; whole recordings are read block by block (an hour at 48 kHz in float64 was 1.4 GB). numpy only."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["frame_rms", "level_dbfs", "active_bounds", "trim_silence", "trimmed", "remove_dc", "column_sums",
           "peak_and_clipping", "CLIP_RUN", "CLIP_LEVEL", "frame_db", "bounds_of_levels", "bounds_of_blocks",
           "offsets_of_sums", "widened", "MIN_SILENT_TAIL", "trailing_zeros", "constant_channels", "full_scale"]


def full_scale(pcm: np.ndarray) -> np.ndarray:
    """Integer PCM samples as float64 at full scale 1, as files are read (int16 32767 -> 1.0; unsigned ones offset
    binary: uint8 128 -> 0)."""
    info = np.iinfo(pcm.dtype)
    full = (info.max + 1) // 2 if info.min == 0 else info.max + 1
    return (pcm.astype(np.float64) - (full if info.min == 0 else 0)) / full


def frame_rms(x: np.ndarray, frame: int) -> np.ndarray:
    """RMS of the consecutive ``frame``-sample frames of the 1-D signal ``x`` (a trailing partial frame left
    out; a signal shorter than one frame is one frame), in ``x``'s precision; digital silence at -400 dB (the floor
    was -200 dB, over a table in a sensor's small units: every frame of one near 1e-9 read as loud)."""
    n_frames = len(x) // frame
    if not n_frames:
        return np.sqrt(np.mean(x ** 2) + 1e-40)[None]
    return np.sqrt(np.mean(x[: n_frames * frame].reshape(n_frames, frame) ** 2, axis=1) + 1e-40)


#: samples per block of the whole-recording checks (a float64 copy of an hour at 48 kHz was 1.4 GB)
_BLOCK = 1 << 20


def _blocks(x: np.ndarray):
    """Slices of about :data:`_BLOCK` samples of ``x`` along its first axis."""
    step = max(1, _BLOCK // max(1, math.prod(x.shape[1:])))
    return (x[i:i + step] for i in range(0, len(x), step))


def _peak(x: np.ndarray) -> float:
    """Largest magnitude of ``x``, block by block (its largest and smallest value: no copy of its magnitudes)."""
    return max((max(float(b.max()), -float(b.min())) for b in _blocks(x) if b.size), default=0.0)


#: samples in a row at a channel's own largest or smallest value that make a plateau, where a converter or a
#: preamplifier saturated (clipping): three, as audio editors' clipping finders count by default
CLIP_RUN = 3
#: the least magnitude, as a share of full scale, of a plateau that counts as clipping (of the samples as recorded,
#: before :func:`remove_dc`: a biased sensor saturates at full scale): a coarsely quantised recording's crests repeat
#: their top value for a few samples at any level (spoken-digit clips with 8-bit steps: 0.6 % of their samples at
#: -24 dBFS)
CLIP_LEVEL = 0.95


#: the least step into a plateau that counts as clipping (16 steps of 16 bits): a saturated converter cuts a steep wave
#: off, while a slow crest quantised reaches its top value one step at a time (a 20-Hz tone at 0.97 of full scale
#: holds its crest for 3 or more samples at 48 kHz in 16 bits)
CLIP_STEP = 2.0 ** -11


class Plateaus:
    """The samples of one channel lying in runs of at least :data:`CLIP_RUN` equal to ``value`` that the wave enters
    or leaves by at least :data:`CLIP_STEP`, counted over consecutive blocks of it (:meth:`push`; :meth:`end` gives the
    count): the same count whatever the blocks, a run across blocks counted once."""

    def __init__(self, value: float):
        self.value, self.count = value, 0
        self.run, self.step_in, self.last = 0, 0.0, None  # the run open at the end of the blocks so far

    def push(self, col: np.ndarray) -> None:
        if not len(col):
            return
        v = self.value
        at = np.flatnonzero(col == v)
        if not len(at):
            self._close(abs(float(col[0]) - v))
            self.last = col[-1]
            return
        cuts = np.flatnonzero(np.diff(at) != 1) + 1
        first, last = at[np.concatenate([[0], cuts])], at[np.concatenate([cuts, [len(at)]]) - 1]
        runs = last - first + 1
        before = np.concatenate([col[:1] * 0 + (v if self.last is None else self.last), col])  # the sample before each
        step_in = np.abs(before[first] - v)
        step_out = np.abs(np.concatenate([col, col[:1] * 0 + v])[last + 1] - v)  # the wave's end: no step
        if first[0] == 0 and self.run:  # the open run goes on
            runs[0] += self.run
            step_in[0] = self.step_in
        else:
            self._close(abs(float(col[0]) - v))
        open_end = last[-1] == len(col) - 1
        k = len(runs) - open_end
        self.count += int(runs[:k][(runs[:k] >= CLIP_RUN) & (np.maximum(step_in[:k], step_out[:k]) >= CLIP_STEP)].sum())
        self.run, self.step_in = (int(runs[-1]), float(step_in[-1])) if open_end else (0, 0.0)
        self.last = col[-1]

    def _close(self, step_out: float) -> None:
        if self.run >= CLIP_RUN and max(self.step_in, step_out) >= CLIP_STEP:
            self.count += self.run
        self.run = 0

    def end(self) -> int:
        """The count, the run open at the last block closed (the recording's end: no step out)."""
        self._close(0.0)
        return self.count


def clip_values(hi: float, lo: float) -> list[float]:
    """The extremes of a channel (largest ``hi``, smallest ``lo``) whose plateaus count as clipping: those within
    :data:`CLIP_LEVEL` of full scale (none for a constant channel, which has no extremes to saturate at)."""
    return [v for v in (hi, lo) if abs(v) >= CLIP_LEVEL] if hi > lo else []


def _on_plateaus(col: np.ndarray, value: float) -> int:
    """How many samples of the 1-D ``col`` lie on :class:`Plateaus` at ``value``."""
    if sum(int(np.count_nonzero(b == value)) for b in _blocks(col)) < CLIP_RUN:
        return 0  # a recording that never saturates reaches its extremes at isolated samples: one pass, no more
    count = Plateaus(value)
    for b in _blocks(col):
        count.push(b)
    return count.end()


def peak_and_clipping(data: np.ndarray) -> tuple[float, np.ndarray]:
    """``(peak, clipped)`` of ``(T, C)`` samples (full scale 1), channel by channel and block by block: the largest
    magnitude, and each channel's clipped share, the share of its samples lying in runs of at least :data:`CLIP_RUN`
    at the channel's own largest or smallest value where that is within :data:`CLIP_LEVEL` of full scale: the plateaus
    a saturated converter or preamplifier leaves. A recording that never saturated reaches its extremes at isolated
    samples (clipped share 0); one clipped and then scaled down is not recognised."""
    peak, clipped = 0.0, np.zeros(data.shape[1])
    for c in range(data.shape[1]):
        col = data[:, c]
        hi = max(float(b.max()) for b in _blocks(col)) if len(col) else 0.0
        lo = min(float(b.min()) for b in _blocks(col)) if len(col) else 0.0
        peak = max(peak, hi, -lo)
        if len(col):
            clipped[c] = sum(_on_plateaus(col, v) for v in clip_values(hi, lo)) / len(col)
    return peak, clipped


def level_dbfs(wave: np.ndarray) -> float:
    """RMS level of a waveform in dBFS (:data:`DIGITAL_SILENCE_DBFS` for digital silence)."""
    wave = np.asarray(wave).reshape(-1)
    return dbfs(sum_of_squares(wave), wave.size)


def sum_of_squares(wave: np.ndarray) -> float:
    """The sum of the squares of the 1-D ``wave``'s samples (a recording's power, summed block by block over it)."""
    # a dot product of each block with itself (BLAS): 6x faster than summing its squares in float64, levels within
    # 1e-5 dB of that sum; samples of other types (integers would overflow) converted block by block, and float32
    # blocks whose squares overflow float32 (unscaled values near 1e19) summed in float64
    as_is = wave.dtype in (np.float32, np.float64)
    with np.errstate(over="ignore"):
        return sum(v if math.isfinite(v := float(np.dot(b, b))) else float(np.dot(c := b.astype(np.float64), c))
                   for b in (b if as_is else b.astype(np.float64) for b in _blocks(wave)))


#: the level said of digital silence (every sample zero), under any level a recording read can have (a table in a
#: sensor's units reaches -300 dBFS: :data:`~latentbridge.io.audio.TABLE_SILENCE_LEVEL`)
DIGITAL_SILENCE_DBFS = -400.0


def dbfs(power: float, n: int) -> float:
    """The RMS level in dBFS of ``n`` samples whose squares sum to ``power`` (:data:`DIGITAL_SILENCE_DBFS` for
    digital silence)."""
    return float(max(10 * np.log10(power / max(1, n)), DIGITAL_SILENCE_DBFS)) if power > 0 else DIGITAL_SILENCE_DBFS


def active_bounds(wave: np.ndarray, sample_rate: float, top_db: float = 40.0, frame_s: float = 0.02,
                  floor_margin_db: float | None = None) -> tuple[int, int]:
    """``(start, end)`` samples of the part of a recording between its first and last frame whose RMS is
    within ``top_db`` of the loudest frame's (frames of ``frame_s``); ``(0, len)`` when nothing is quiet.
    With ``floor_margin_db``, a frame must also be that far above the recording's noise floor, so that
    steady background noise within ``top_db`` of the peak counts as quiet: the floor is the median frame
    more than 0.15 s away from the loud core (the frames within 20 dB of the peak), measured only where
    there are at least five such frames (a recording trimmed around its sound has no floor to measure),
    and the threshold never rises into the core."""
    db, frame = frame_levels(wave, sample_rate, frame_s)
    return bounds_of_levels(db, np.shape(wave)[-1], frame, top_db, frame_s, floor_margin_db)


def frame_levels(wave: np.ndarray, sample_rate: float, frame_s: float = 0.02) -> tuple[np.ndarray, int]:
    """``(dB of each frame, samples a frame)``: :func:`frame_db` of a whole recording ``(..., n)``, a block of whole
    frames at a time (a float64 copy of an hour at 48 kHz was 1.4 GB)."""
    x = np.asarray(wave)
    step = max(1, _BLOCK // (frame := max(1, int(round(frame_s * sample_rate))))) * frame
    return frame_db((x[..., i:i + step] for i in range(0, x.shape[-1], step)), frame), frame


def bounds_of_blocks(blocks, n: int, sample_rate: float, top_db: float = 40.0, frame_s: float = 0.02,
                     floor_margin_db: float | None = None) -> tuple[int, int]:
    """:func:`active_bounds` of a recording of ``n`` samples given as consecutive blocks ``(..., samples)``: the
    same bounds, whatever the blocks (a float64 copy of four hours at 48 kHz was 5.5 GB)."""
    frame = max(1, int(round(frame_s * sample_rate)))
    return bounds_of_levels(frame_db(blocks, frame), n, frame, top_db, frame_s, floor_margin_db)


def frame_db(blocks, frame: int) -> np.ndarray:
    """The level in dB of each whole ``frame``-sample frame of a recording given as consecutive blocks ``(..., n)``
    (channels averaged in float64; a recording shorter than one frame is one frame)."""
    rms, carry, n = [], np.zeros(0), 0
    for b in blocks:
        b = np.asarray(b)
        x = b.mean(axis=0, dtype=np.float64) if b.ndim > 1 else np.asarray(b, dtype=np.float64)
        n += x.shape[-1]
        x = np.concatenate([carry, x]) if carry.size else x
        whole = len(x) // frame * frame
        if whole:
            rms.append(frame_rms(x[:whole], frame))
        carry = x[whole:]
    if n < frame and n:  # shorter than one frame: one frame
        rms.append(frame_rms(carry, frame))
    return 20 * np.log10(np.concatenate(rms)) if rms else np.zeros(0)


def bounds_of_levels(db: np.ndarray, n: int, frame: int, top_db: float = 40.0, frame_s: float = 0.02,
                     floor_margin_db: float | None = None) -> tuple[int, int]:
    """:func:`active_bounds` of a recording of ``n`` samples from its :func:`frame_db` levels."""
    if not n:
        return 0, 0
    n_frames = max(1, n // frame)
    threshold = db.max() - float(top_db)
    if floor_margin_db is not None:
        core = np.flatnonzero(db >= db.max() - 20.0)
        away = int(round(0.15 / frame_s))
        far = np.ones(n_frames, dtype=bool)
        far[max(0, core[0] - away):core[-1] + away + 1] = False
        if far.sum() >= 5:
            threshold = min(max(threshold, float(np.median(db[far])) + float(floor_margin_db)), db.max() - 20.0)
    loud = np.flatnonzero(db >= threshold)
    if not len(loud):
        return 0, n
    start = int(loud[0] * frame)
    end = n if loud[-1] == n_frames - 1 else int(min(n, (loud[-1] + 1) * frame))
    return start, end


def trim_silence(wave: np.ndarray, sample_rate: float, top_db: float = 40.0,
                 floor_margin_db: float | None = None) -> np.ndarray:
    """``wave`` without its leading and trailing frames more than ``top_db`` below its loudest frame
    (and with ``floor_margin_db``, not that far above its noise floor: :func:`active_bounds`); the last
    axis is time."""
    return trimmed(wave, sample_rate, top_db, floor_margin_db)[0]


def trimmed(wave: np.ndarray, sample_rate: float, top_db: float = 40.0,
            floor_margin_db: float | None = None, min_len: int = 0) -> tuple[np.ndarray, int]:
    """:func:`trim_silence`'s samples and the sample of ``wave`` they start at: a time in them is that much later in
    the recording (a window's time reported as the trimmed samples' read 2.5 s early after 2.5 s of silence);
    ``min_len``: :func:`widened` to it."""
    start, end = active_bounds(wave, sample_rate, top_db, floor_margin_db=floor_margin_db)
    start, end = widened(start, end, np.shape(wave)[-1], min_len)
    return np.ascontiguousarray(wave[..., start:end]), int(start)


def widened(start: int, end: int, n: int, min_len: int) -> tuple[int, int]:
    """Trimmed bounds ``[start, end)`` of a recording of ``n`` samples widened about their sound to ``min_len``
    samples where the recording holds them: a short sound in a long recording keeps the silence around it up to the
    shortest recording a model reads (trimmed to its 80-ms burst, a normal 3-s recording was refused as too short)."""
    if end - start >= min_len or end - start >= n:
        return start, end
    min_len = min(int(min_len), n)
    start = max(0, min(start - (min_len - (end - start)) // 2, n - min_len))
    return start, start + min_len


#: an offset under one 16-bit step is quantisation, not a bias: left alone (the recording read bit for bit as before)
DC_FLOOR = 2.0 ** -15


def column_sums(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float64 sum, count of digital zeros) of each column of ``data`` (T, C), block by block. A sum that is not
    finite marks a column holding NaN or inf (float32 samples summed in float64 cannot overflow): one pass both checks
    a recording and gives :func:`remove_dc` its offsets."""
    n_channels = data.shape[1]
    # column by column: numpy's reductions along the first axis of a (T, C) array (and its broadcasts over a short
    # last axis) ran 10-30 times slower than over a column's strided view (6.7 ms against 0.2 ms for 10 s of stereo)
    total = np.zeros(n_channels)
    n_zero = np.zeros(n_channels, dtype=np.int64)
    for b in _blocks(data):
        for c in range(n_channels):
            total[c] += np.add.reduce(b[:, c], dtype=np.float64)
            n_zero[c] += np.count_nonzero(b[:, c] == 0)  # a comparison counts 4 times faster than floats
    return total, n_zero


#: Exact zeros at a recording's (or a window's) end that count as digital silence: a short recording padded with zeros
#: (pad ``constant``), a recorder's zero-filled last buffer, a codec's padding
#: (:func:`~latentbridge.transforms.numpy_stft.silent_tail_frames`, whose module, numpy alone, holds the same number);
#: the readers keep such a run zero (:func:`remove_dc`)
MIN_SILENT_TAIL = 32


def constant_channels(wave: np.ndarray) -> np.ndarray:
    """The channels of a recording ``wave`` (C, T) that never move (every sample one value): a dead or unplugged
    sensor, a cable off one axis."""
    return np.flatnonzero(np.ptp(np.asarray(wave), axis=1) == 0)


def trailing_zeros(data: np.ndarray, step: int = 1 << 16) -> int:
    """Frames at the end of ``data`` (T, C) that are exactly 0 in every channel (read from the end, ``step`` frames at
    a time: an hour's samples are not compared whole)."""
    end = len(data)
    while end > 0:
        nonzero = np.flatnonzero((np.asarray(data[max(0, end - step):end]).reshape(min(step, end), -1) != 0).any(1))
        if len(nonzero):
            return int(len(data) - (max(0, end - step) + nonzero[-1] + 1))
        end -= step
    return int(len(data))


#: when audio files began to lose their constant offset when read (:func:`remove_dc`): an anomaly model fitted before
#: learnt its recordings with their offsets, and scores a recording with one otherwise now
OFFSETS_REMOVED_SINCE = "2026-12-04T21:12:47+00:00"


def kept_offsets_note(created_utc: str | None) -> str | None:
    """For a model folder created at ``created_utc`` (its config.json's), what changed in its reading of audio since,
    if anything (an older folder's scores of recordings with an offset moved without a word: AUC 0.859 -> 0.844)."""
    if not created_utc or str(created_utc) >= OFFSETS_REMOVED_SINCE:
        return None
    return (f"fitted on {str(created_utc)[:10]}, before audio files lost each channel's constant offset when read "
            f"({OFFSETS_REMOVED_SINCE[:10]}): recordings with an offset now score otherwise than they did; refit it "
            "on its recordings to score them as it did its training ones")


def remove_dc(data: np.ndarray, sums: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Take each channel's constant offset out of ``data`` (T, C), in place, and return it. An offset (an ADC's or a
    microphone preamplifier's bias, a sensor's gravity) is no sound: left in, it set the recording's level and its
    lowest band, so a recorder with an offset scored every normal recording as a fault (and a dead microphone with
    one as loud). Where more than 1 % of the samples are digital zeros (a muted stretch, a gap written as zeros), the
    offset is the mean of the others and is taken out of them alone: the zeros stay digital silence (taken out of
    them too, they turned into a constant that no longer reads as silence); a channel of nine tenths digital zeros or
    more keeps its samples (sound in silence: the mean is the sound's). Offsets under :data:`DC_FLOOR` are left.
    Vibration tables lose their means when read; audio files here. ``sums``: :func:`column_sums` of ``data``, where
    the caller has them."""
    if not data.size:
        return data
    # the last run of zeros stays digital silence, however few: 43 ms of them at the end of a recording, its offset
    # taken out, became a constant, and the cut to it scored the last window at 152 against 15
    tail = trailing_zeros(data)
    subtract_offsets(data, *dc_offsets(data, sums))
    if tail >= MIN_SILENT_TAIL:
        data[len(data) - tail:] = 0
    return data


def dc_offsets(data: np.ndarray, sums: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, bool]:
    """:func:`remove_dc`'s offsets of ``data`` (T, C), one per channel (0 under :data:`DC_FLOOR`), and whether they
    spare the digital zeros (more than 1 % of the samples)."""
    return offsets_of_sums(*(column_sums(data) if sums is None else sums), data.shape[0])


def offsets_of_sums(total: np.ndarray, n_zero: np.ndarray, n_frames: int) -> tuple[np.ndarray, bool]:
    """:func:`dc_offsets` from :func:`column_sums` (summed over a recording's blocks) and its frame count."""
    n_channels = len(total)
    zeros = _many_zeros(int(n_zero.sum()), n_frames * n_channels)
    count = n_frames - n_zero if zeros else np.full(n_channels, n_frames)
    offset = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    # a channel of nine tenths digital zeros is sound in silence (a knock, clicks): its mean is the sound's own, not
    # an offset (taken out, a pulse's came back bent, a rectangular one as silence)
    offset[(np.abs(offset) <= DC_FLOOR) | (10 * np.asarray(n_zero) >= 9 * n_frames)] = 0.0
    return offset, zeros


def _many_zeros(n_zero: int, size: int) -> bool:
    """More than 1 % of the samples digital zeros: a muted stretch or a gap written as zeros, kept zero."""
    return n_zero > size // 100


def subtract_offsets(data: np.ndarray, offset: np.ndarray, zeros: bool | None = None) -> np.ndarray:
    """``data`` (T, C) less each channel's ``offset``, in place (with ``zeros``, not from its digital zeros; None:
    decided from ``data`` itself, as :func:`dc_offsets` decides it)."""
    if zeros is None:
        zeros = _many_zeros(int(np.count_nonzero(data == 0)), data.size)
    for c in np.flatnonzero(offset):
        value = data.dtype.type(offset[c])
        for b in _blocks(data):  # views: in place
            col = b[:, c]
            np.subtract(col, value, out=col, where=(col != 0) if zeros else True)
    return data
