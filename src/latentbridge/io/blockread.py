"""A recording read block by block (numpy only): the samples :func:`latentbridge.io.read_audio` gives, with its checks
and messages, without the whole recording in memory.

:class:`RecordingBlocks` reads a file twice: a first pass sums each channel and finds its extremes (the frames present,
NaN/inf, the constant offset :func:`~latentbridge.io.levels.remove_dc` takes out, silence: the largest magnitude less
the offset is the largest sample's, less it), then every iteration reads it again, less the offsets, with the channels
picked or mixed as ``read_audio`` picks them. Audio through soundfile (sequential reads, bit for bit its whole read), a
WAV file read by :func:`latentbridge.io.wav.read_wav_samples` (a header never finalised, a device without soundfile),
and vibration tables (read whole: a CSV is parsed at once) are read so. :func:`resampled_to` gives the blocks at
another rate, as :func:`latentbridge.io.resample` gives the whole recording.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from latentbridge.errors import DataError, reading_memory_error
from latentbridge.io.audio import (ALL_CHANNELS, MIX_SILENT, SILENCE_LEVEL, _check_file, is_table, _layout, _open_info,
                                   _read_table, _sf_error_text, _unfinalised, check_frames, check_peak, mix_down,
                                   non_finite, select_channels)
from latentbridge.io.levels import column_sums, offsets_of_sums, subtract_offsets
from latentbridge.io.resampling import resampled_blocks
from latentbridge.io.wav import PCM16_FORMATS, WavLayout, declared_frames, read_pcm16, read_wav_samples

__all__ = ["BLOCK_FRAMES", "RecordingBlocks", "resampled_to"]

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
            declared = declared_frames(layout)
            if (stale := _unfinalised(path, layout)) is not None:
                self._layout, header_frames = stale
                sr, self.channels = self._layout.sample_rate, self._layout.channels
            else:
                info = _open_info(path)
                self._sf = True
                header_frames, sr, self.channels = max(0, int(info.frames)), int(info.samplerate), int(info.channels)
        self._header_frames = header_frames
        self.sample_rate = sr
        self._offset, self._zeros = np.zeros(self.channels), False
        total, n_zero = np.zeros(self.channels), np.zeros(self.channels, dtype=np.int64)
        hi = np.full(self.channels, -np.inf, dtype=np.float32)
        lo, hi_nz, lo_nz = -hi, hi.copy(), -hi
        n_read = 0
        for b in self._raw():
            s, z = column_sums(b)
            total, n_zero, n_read = total + s, n_zero + z, n_read + len(b)
            hi, lo = np.maximum(hi, b.max(axis=0)), np.minimum(lo, b.min(axis=0))
            zero = b == 0  # the extremes of the others (where remove_dc spares the digital zeros)
            hi_nz = np.maximum(hi_nz, np.where(zero, -np.inf, b).max(axis=0))
            lo_nz = np.minimum(lo_nz, np.where(zero, np.inf, b).min(axis=0))
        self.frames = n_read
        check_frames(path, n_read, header_frames, declared, sr)
        if not np.isfinite(total).all():
            raise non_finite(path, self._raw())
        if self._table is None:  # (a vibration table lost its means when read)
            self._offset, self._zeros = offsets_of_sums(total, n_zero, n_read)
        # each channel's extremes less its offset (subtraction is monotonic): the samples' own, read_audio's peak
        value = self._offset.astype(np.float32)
        ext = [np.abs(np.where(self._offset != 0, e - value, e)) for e in
               ((hi_nz, lo_nz) if self._zeros else (hi, lo))]
        peaks = np.fmax(*ext)
        if self._zeros:
            peaks = np.where(np.isfinite(peaks), peaks, 0.0)
        check_peak(path, float(peaks.max()))
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
                with sf.SoundFile(os.fsencode(self.path)) as f:
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
                raise DataError(self.path, f"unreadable or truncated audio file ({_sf_error_text(exc, self.path)})") \
                    from exc

    def __iter__(self):
        mixed = self.channel is None and self.channels > 1
        peak = 0.0
        for b in self._raw():
            if self._offset.any():
                subtract_offsets(b, self._offset, self._zeros)
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
        if mixed and peak < SILENCE_LEVEL:
            raise DataError(self.path, MIX_SILENT)

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
