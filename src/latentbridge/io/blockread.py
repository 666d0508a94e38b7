"""A recording read block by block (numpy only): the samples :func:`latentbridge.io.read_audio` gives, with its checks
and messages, without the whole recording in memory.

:class:`RecordingBlocks` reads a file twice: a first pass sums each channel and finds its extremes (the frames present,
NaN/inf, the constant offset :func:`~latentbridge.io.levels.remove_dc` takes out, silence: the largest magnitude less
the offset is the largest sample's, less it), then every iteration reads it again, less the offsets, with the channels
picked or mixed as ``read_audio`` picks them. Audio through soundfile (sequential reads, bit for bit its whole read), a
WAV file read by :func:`latentbridge.io.wav.read_wav_samples` (a header never finalised, a device without soundfile),
and vibration tables (read whole: a CSV is parsed at once) are read so. :func:`resampled_to` gives the blocks at
another rate, as :func:`latentbridge.io.resample` gives the whole recording, and :class:`BlockWindows` its windows, as
:func:`latentbridge.io.cut_windows` cuts them from the whole recording.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentbridge.errors import DataError, reading_memory_error
from latentbridge.io.audio import (ALL_CHANNELS, MIX_SILENT, _check_file, _layout, _open_info,
                                   _read_table, unreadable_text, _unfinalised, check_frames, check_peak, is_table,
                                   mix_down, non_finite, select_channels, silence_level)
from latentbridge.io.containers import declared_frames_of
from latentbridge.io.levels import (MIN_SILENT_TAIL, Plateaus, bounds_of_blocks, clip_values, column_sums, dbfs,
                                    offsets_of_sums, subtract_offsets, sum_of_squares, trailing_zeros, widened)
from latentbridge.io.resampling import resampled_blocks
from latentbridge.io.wav import (PCM16_FORMATS, WavLayout, layout_codec, read_pcm16, read_wav_samples,
                                 soundfile_source)
from latentbridge.io.windows import MIN_WINDOW_SHARE, WindowBuffer, check_recording_length, shortest_recording

__all__ = ["BLOCK_FRAMES", "BlockWindows", "RecordingBlocks", "resampled_to"]

#: frames read at a time (256 KiB a channel in float32)
BLOCK_FRAMES = 1 << 16


class RecordingBlocks:
    """A recording as ``(n, channels kept)`` float32 blocks: iterate it for the samples ``read_audio(path,
    mono=channel is None, channel=channel, expect_channels=..., csv_rate=..., columns=...)`` returns, in blocks of at
    most :data:`BLOCK_FRAMES` frames (a 1-channel result as ``(n, 1)``). The checks run when it is made (DataError
    naming the file, the messages of ``read_audio``), but one: a mono mix that cancels out is only seen while it is read,
    and raised when the iteration ends. ``frames``, ``sample_rate``, ``channels`` (the file's) are set.
    ``layout``: read the WAV samples of this layout (``frames`` of them) without soundfile."""

    def __init__(self, path: str | Path, channel: int | str | None = None, expect_channels: int | None = None,
                 csv_rate: float | None = None, layout: WavLayout | None = None, frames: int | None = None,
                 columns: list[str] | None = None):
        self.path = path = Path(path)
        self.channel = channel
        self._table = None
        self._sf = False
        declared = None
        if layout is not None:  # checked by the caller
            self._layout, header_frames, sr, self.channels = layout, int(frames), layout.sample_rate, layout.channels
        elif is_table(path):
            _check_file(path)
            self._table, sr = _read_table(path, csv_rate, columns)
            header_frames, self.channels = self._table.shape
        else:
            _check_file(path)
            layout = _layout(path)
            declared = declared_frames_of(path, layout)
            if (stale := _unfinalised(path, layout)) is not None:
                self._layout, header_frames = stale
                sr, self.channels = self._layout.sample_rate, self._layout.channels
            else:
                info = _open_info(path)
                self._sf = True
                header_frames, sr, self.channels = max(0, int(info.frames)), int(info.samplerate), int(info.channels)
        self._header_frames = header_frames
        self.sample_rate = sr
        #: how the samples are stored, as :attr:`~latentbridge.io.audio.AudioInfo.codec` says it
        self.codec = "CSV" if self._table is not None else str(info.subtype or "") if self._sf else layout_codec(
            self._layout)
        self._offset, self._zeros = np.zeros(self.channels), False
        self._plateaus = None  # each channel's clipping plateaus, counted while the samples are read
        total, n_zero = np.zeros(self.channels), np.zeros(self.channels, dtype=np.int64)
        hi = np.full(self.channels, -np.inf, dtype=np.float32)
        lo, hi_nz, lo_nz = -hi, hi.copy(), -hi
        n_read, tail = 0, 0
        for b in self._raw():
            s, z = column_sums(b)
            total, n_zero, n_read = total + s, n_zero + z, n_read + len(b)
            t = trailing_zeros(b)  # the recording's last run of zeros, kept zero as remove_dc keeps it
            tail = tail + t if t == len(b) else t
            for c in range(self.channels):  # column by column: reductions along the first axis of (n, C) ran 9x slower
                col = b[:, c]
                top, bottom = col.max(initial=-np.inf), col.min(initial=np.inf)
                hi[c], lo[c] = max(hi[c], top), min(lo[c], bottom)
                if z[c]:  # the extremes of the others (where remove_dc spares the digital zeros)
                    top, bottom = (col := col[col != 0]).max(initial=-np.inf), col.min(initial=np.inf)
                hi_nz[c], lo_nz[c] = max(hi_nz[c], top), min(lo_nz[c], bottom)
        self.frames, self._tail = n_read, tail if tail >= MIN_SILENT_TAIL else 0
        check_frames(path, n_read, header_frames, declared, sr)
        if not np.isfinite(total).all():
            raise non_finite(path, self._raw())
        if self._table is None:  # (a vibration table lost its means when read)
            self._offset, self._zeros = offsets_of_sums(total, n_zero, n_read)
        # each channel's extremes less its offset (subtraction is monotonic): the samples' own, read_audio's peak
        value = self._offset.astype(np.float32)
        moved = self._offset != 0
        if self._zeros:  # the offset taken out of the other samples alone: the extremes of those, and 0 where kept
            zero = np.where(n_zero > 0, 0.0, np.nan).astype(np.float32)
            ext = [np.where(moved, np.fmax(hi_nz - value, zero), hi), np.where(moved, np.fmin(lo_nz - value, zero), lo)]
        else:
            ext = [np.where(moved, hi - value, hi), np.where(moved, lo - value, lo)]
        self._extremes = [hi, lo]  # each channel's largest and smallest sample as recorded: where it clips (a biased
        # sensor saturates at full scale, not at full scale less its offset)
        peaks = np.fmax(np.abs(ext[0]), np.abs(ext[1]))
        if self._zeros:
            peaks = np.where(np.isfinite(peaks), peaks, 0.0)
        check_peak(path, float(peaks.max()), self.frames)
        # the channel checks of read_audio on each channel's extremes (its count, the channel picked, its silence)
        select_channels(np.stack([peaks, -peaks]).astype(np.float32), path, channel, False, expect_channels)

    def _raw(self):
        """The file's samples ``(n, channels)`` float32, a block at a time, as read (offsets in)."""
        n = self._header_frames
        if self._table is not None:
            yield from (self._table[i:i + BLOCK_FRAMES] for i in range(0, n, BLOCK_FRAMES))
        elif not self._sf:
            yield from (read_wav_samples(self.path, self._layout, min(BLOCK_FRAMES, n - i), i)
                        for i in range(0, n, BLOCK_FRAMES))
        else:
            import soundfile as sf

            try:
                with sf.SoundFile(soundfile_source(self.path)) as f:
                    pcm16 = f.subtype == "PCM_16" and f.format in PCM16_FORMATS
                    done = 0
                    while done < n:
                        k = min(BLOCK_FRAMES, n - done)
                        got = read_pcm16(f, k) if pcm16 else f.read(out=np.empty((k, self.channels), np.float32))
                        if not len(got):
                            break
                        done += len(got)
                        yield got
            except DataError:
                raise
            except MemoryError as e:  # too little memory is no fault of the file
                raise reading_memory_error(self.path, e) from None
            except Exception as exc:
                raise DataError(self.path, unreadable_text(exc, self.path)) from exc

    def __iter__(self):
        mixed = self.channel is None and self.channels > 1
        peak = 0.0
        plateaus = [[Plateaus(v) for v in clip_values(float(hi), float(lo))] for hi, lo in zip(*self._extremes)]
        self._plateaus = None
        pos, silent_from = 0, self.frames - self._tail
        for b in self._raw():
            for c, counts in enumerate(plateaus):  # (the samples as recorded)
                for p in counts:
                    p.push(b[:, c])
            if self._offset.any():
                subtract_offsets(b, self._offset, self._zeros)
                if self._tail and pos + len(b) > silent_from:
                    b[max(0, silent_from - pos):] = 0
            pos += len(b)
            if self.channel == ALL_CHANNELS:
                yield b
            elif self.channel is not None:
                yield np.ascontiguousarray(b[:, int(self.channel):int(self.channel) + 1])
            elif mixed:
                m = mix_down(b.T)
                peak = max(peak, float(np.abs(m).max()))
                yield m[:, None]
            else:
                yield b
        if mixed and peak < silence_level(self.path):
            raise DataError(self.path, MIX_SILENT)
        self._plateaus = plateaus

    @property
    def clipped_share(self) -> float | None:
        """After an iteration: the clipped share ``read_audio`` gives in its ``stats`` (the largest share of a read
        channel's samples on plateaus at its extremes near full scale: :func:`~latentbridge.io.peak_and_clipping`);
        None for a vibration table (its full scale unknown), or before the samples were all read."""
        if self._table is not None or self._plateaus is None:
            return None
        shares = np.array([sum(p.end() for p in counts) for counts in self._plateaus]) / max(1, self.frames)
        read = shares if self.channel is None or self.channel == ALL_CHANNELS else \
            shares[int(self.channel):int(self.channel) + 1]
        return round(float(read.max()), 6)

    def whole(self) -> np.ndarray:
        """All the samples as ``read_audio`` returns them: ``(T,)`` (the mix, or channel ``channel``) or ``(C, T)``
        (every channel)."""
        x = np.concatenate(list(self)).T
        return np.ascontiguousarray(x if self.channel == ALL_CHANNELS else x[0])


def resampled_to(blocks: RecordingBlocks, target_sr: int):
    """``blocks``' samples at ``target_sr``, as blocks: the samples :func:`latentbridge.io.resample` gives the whole
    recording (soxr's stream, :func:`~latentbridge.io.resampling.resampled_blocks`), its ``ceil(T * target / rate)``
    of them."""
    if blocks.sample_rate == target_sr:
        yield from blocks
        return
    width = blocks.channels if blocks.channel == ALL_CHANNELS else 1
    left = int(np.ceil(blocks.frames * float(target_sr) / float(blocks.sample_rate)))
    for out, _ in resampled_blocks(((b, False) for b in blocks), blocks.sample_rate, target_sr, width):
        if left and len(out):
            yield out[:left]
            left -= min(left, len(out))
    if left:  # resample's zero padding at the end
        yield np.zeros((left, width), np.float32)


class BlockWindows:
    """The windows of a recording read block by block (``blocks``) at ``sample_rate``, batch by batch: those
    :func:`~latentbridge.io.cut_windows` cuts from the whole recording read at that rate (``window``, ``hop``
    samples, the last partial window and the padding of a short recording by ``pad``), silence-trimmed first with
    ``trim_db`` (:func:`~latentbridge.io.trimmed`: ``lead``, ``end`` are the samples kept), under the short-recording
    rule (:func:`~latentbridge.io.check_recording_length`, checked when made: DataError naming the file; ``padded``).
    After :meth:`batches` has run through: ``level_dbfs``, the level of the samples kept, and ``blocks.clipped_share``.
    """

    def __init__(self, blocks: RecordingBlocks, sample_rate: int, window: int, hop: int, pad: str = "wrap",
                 trim_db: float | None = None, min_share: float = MIN_WINDOW_SHARE):
        self.blocks, self.sample_rate, self.window, self.hop, self.pad = blocks, int(sample_rate), window, hop, pad
        self.n = int(np.ceil(blocks.frames * float(sample_rate) / blocks.sample_rate))  # resample's length
        self.lead, self.end = 0, self.n
        if trim_db:  # times stay the recording's: the trimmed lead added back
            self.lead, self.end = widened(*bounds_of_blocks((b.T for b in resampled_to(blocks, self.sample_rate)),
                                                            self.n, self.sample_rate, float(trim_db)),
                                          self.n, shortest_recording(window, min_share))
        self.padded = check_recording_length(self.end - self.lead, window, self.sample_rate, blocks.path, min_share)
        self.every = blocks.channel == ALL_CHANNELS
        self.level_dbfs: float | None = None

    @property
    def duration_s(self) -> float:
        return self.n / self.sample_rate

    @property
    def width(self) -> int:
        """The channels of each window: every one of the recording's, or one (a channel or the mix)."""
        return self.blocks.channels if self.every else 1

    def batches(self, size: int):
        """``(windows, starts_s)`` of at most ``size`` windows at a time, in order (float32 ``(k, window)``, or
        ``(k, channels, window)`` for every channel; start times in the recording, s): cut as the blocks are read
        (:class:`~latentbridge.io.WindowBuffer`)."""
        width = self.width
        buffer = WindowBuffer(self.window, self.hop, width, ALL_CHANNELS if self.every else None)
        ready: list[tuple[int, np.ndarray]] = []
        pos, power = 0, 0.0
        for b in resampled_to(self.blocks, self.sample_rate):
            part = b[max(0, self.lead - pos):max(0, self.end - pos)]
            power += sum_of_squares(part.reshape(-1))
            ready += buffer.push(part)
            pos += len(b)
            while len(ready) >= size:
                yield self._batch(ready[:size])
                del ready[:size]
        ready += buffer.flush(self.pad, name=self.blocks.path)
        self.level_dbfs = dbfs(power, (self.end - self.lead) * width)
        for i in range(0, len(ready), size):
            yield self._batch(ready[i:i + size])

    def _batch(self, ready: list[tuple[int, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        starts = np.array([s for s, _ in ready], dtype=np.int64)
        return np.stack([w for _, w in ready]), starts / self.sample_rate + self.lead / self.sample_rate
