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


def read_in_blocks(info, sample_rate: int, channel=None) -> bool:
    """Whether a recording of header ``info`` (None: unknown, read whole) is read in blocks: when decoding it
    whole at ``sample_rate`` takes more than :data:`STREAM_BYTES`."""
    return info is not None and decode_bytes(info, sample_rate, channel) > STREAM_BYTES


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


#: the samples of the windows cut at a time from a recording read in blocks, bytes (256 windows of 2 s of 48-kHz audio
#: held 98 MB in each worker: a fit of two 10-min recordings peaked 450 MB above the same fit from the cache)
BATCH_BYTES = 2 ** 24


def cut_size(windows, most: int = 256, batch: int = 1) -> int:
    """How many windows of ``windows`` (a :class:`~latentbridge.io.blockread.BlockWindows`) to cut at a time: about
    :data:`BATCH_BYTES` of samples, a multiple of ``batch`` (the windows transformed at once: a batch of other windows
    may give features that differ in the last bit), at most ``most``."""
    return int(min(most, max(batch, BATCH_BYTES // (4 * windows.window * windows.width) // batch * batch)))


def feature_batches(ex, windows, size: int = 256):
    """``(features, starts_s)`` of the windows of ``windows`` (:func:`block_windows`), ``size`` at a time (the last
    fewer), in order: cut :func:`cut_size` at a time and transformed by ``ex`` in its batches, as the whole read is.
    After it has run through, ``windows`` holds the recording's level and clipped share."""
    feats, starts, n = [], [], 0
    for w, s in windows.batches(cut_size(windows, size, ex.transform_batch(windows.width))):
        feats.append(ex.features_of_windows(w))
        starts.append(s)
        n += len(w)
        while n >= size:
            f, t = np.concatenate(feats), np.concatenate(starts)
            yield f[:size], t[:size]
            feats, starts, n = [f[size:]], [t[size:]], n - size
    if n:
        yield np.concatenate(feats), np.concatenate(starts)


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
    read = block_windows(ex, path)
    batches = read.batches(cut_size(read))
    try:
        for windows, starts in batches:
            at = sample(starts)
            for k, s in enumerate(wanted):
                if (hit := np.flatnonzero(at == s)).size:
                    found[k] = windows[hit[0]]
            if len(found) == len(wanted):  # the rest of the recording not read (it was read to its end for them:
                break  # 44 s of a 3-h file's 151 s of scoring went on four example windows)
    finally:
        batches.close()
    return ex.features_of_windows(np.stack([found[k] for k in range(len(starts_s))]))


def features_in_blocks(ex, path: Path):
    """``(features, starts_s, duration_s, padded, level_dbfs, clipped_share)`` of ``path`` read in blocks
    (:func:`block_windows`, :func:`feature_batches`): what
    :meth:`~latentbridge.data.audio.FeatureExtractor.chunk_features` gives of the recording read whole, in the memory of
    its features (one array), a block and a batch. DataError naming the file for what reading it whole refuses."""
    from latentbridge.io.windows import window_starts

    windows = block_windows(ex, path)
    n = len(window_starts(windows.end - windows.lead, ex.window, ex.hop, ex.pad))
    feats, starts, i = None, np.empty(n), 0
    for f, s in feature_batches(ex, windows):  # into one array: the batches and their concatenation held the
        if feats is None:                       # features twice
            feats = np.empty((n, *f.shape[1:]), dtype=f.dtype)
        feats[i:i + len(f)], starts[i:i + len(f)] = f, s
        i += len(f)
    if i != n:
        raise AssertionError(f"{path}: {i} windows cut, {n} counted")
    return (feats, starts, windows.duration_s, windows.padded, round(windows.level_dbfs, 2),
            windows.blocks.clipped_share)
