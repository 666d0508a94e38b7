"""Long recordings, read block by block: what decoding a recording whole takes (:func:`decode_bytes`), and the windows
and features of a recording that takes more than :data:`STREAM_BYTES` to decode, read in blocks
(:class:`~latentbridge.io.blockread.RecordingBlocks`, :class:`~latentbridge.io.blockread.BlockWindows`): the samples,
windows and features of the whole read, in the memory of a block and a batch of windows. Fitting holds the features
(:func:`features_in_blocks`), scoring only each batch's (``tasks.scoring.score_in_blocks``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentbridge.errors import DataError
from latentbridge.io import ALL_CHANNELS

#: a recording is read in blocks when decoding it whole takes more memory than this (:func:`decode_bytes`; 256 MB: about
#: 7 min of 48-kHz stereo for a 16-kHz model, 22 min of 16-kHz mono); the others are read whole
STREAM_BYTES = 2.0 ** 28


def decode_bytes(info, sample_rate: int, channel=None) -> float:
    """About the memory that reading a recording of header ``info`` whole takes (:func:`~latentbridge.io.read_audio`):
    its samples as float32, the channel(s) read (a mix, one channel, or every one), and those at ``sample_rate``."""
    width = info.channels if channel == ALL_CHANNELS else 1
    return 4.0 * info.frames * (info.channels + width * (1 + sample_rate / max(1, info.sample_rate)))


def read_in_blocks(info, sample_rate: int, channel=None, limit: float | None = None) -> bool:
    """Whether a recording of header ``info`` (None: unknown, read whole) is read in blocks: when decoding it
    whole at ``sample_rate`` takes more than ``limit`` (default :data:`STREAM_BYTES`)."""
    return info is not None and decode_bytes(info, sample_rate, channel) > (STREAM_BYTES if limit is None else limit)


def block_windows(ex, path: Path):
    """The windows of ``path`` as the extractor ``ex`` (:class:`~latentbridge.data.audio.FeatureExtractor`) cuts them
    from the whole recording (:meth:`~latentbridge.data.audio.FeatureExtractor.read`: its channel or mix, its rate,
    its silence trimming and short-recording rule), read in blocks: a
    :class:`~latentbridge.io.blockread.BlockWindows`. DataError naming the file for what reading it whole refuses."""
    from latentbridge.io.audio import rate_problem
    from latentbridge.io.blockread import BlockWindows, RecordingBlocks

    blocks = RecordingBlocks(path, ex.channel, ex.n_channels, ex.csv_rate, columns=ex.columns)
    if problem := rate_problem(blocks.sample_rate, ex.sample_rate):
        raise DataError(path, problem)
    return BlockWindows(blocks, ex.sample_rate, ex.window, ex.hop, ex.pad, ex.trim_db, ex.min_share)


def window_features(ex, path: Path, starts_s, long: bool) -> np.ndarray:
    """The features of the windows of ``path`` that start at ``starts_s`` (s, in the recording), in that order: the
    recording read whole (``long`` False: :meth:`~latentbridge.data.audio.FeatureExtractor.chunk_features`, its cache)
    or in blocks, with only those windows transformed."""
    def sample(t):  # a window's first sample at the model's rate: start times compared to a relative 1e-5 matched
        return np.rint(np.asarray(t, dtype=np.float64) * ex.sample_rate).astype(np.int64)  # neighbours 1.8 h in

    wanted = sample(starts_s)
    if not long:
        f = ex.chunk_features([(0, path)])[0]
        if f.problem is not None:
            raise DataError(path, f.problem)
        return f.features[[int(np.flatnonzero(sample(f.starts_s) == s)[0]) for s in wanted]]
    found: dict[int, np.ndarray] = {}
    for windows, starts in block_windows(ex, path).batches(256):
        at = sample(starts)
        for k, s in enumerate(wanted):
            if (hit := np.flatnonzero(at == s)).size:
                found[k] = windows[hit[0]]
    return ex.features_of_windows(np.stack([found[k] for k in range(len(starts_s))]))


def features_in_blocks(ex, path: Path, size: int = 256):
    """``(features, starts_s, duration_s, padded, level_dbfs, clipped_share)`` of ``path`` read in blocks
    (:func:`block_windows`), ``size`` windows transformed at a time: what
    :meth:`~latentbridge.data.audio.FeatureExtractor.chunk_features` gives of the recording read whole, in the memory of
    its features, a block and a batch. DataError naming the file for what reading it whole refuses."""
    windows = block_windows(ex, path)
    feats, starts = [], []
    for w, s in windows.batches(size):
        feats.append(ex.features_of_windows(w))
        starts.append(s)
    return (np.concatenate(feats), np.concatenate(starts), windows.duration_s, windows.padded,
            round(windows.level_dbfs, 2), windows.blocks.clipped_share)
