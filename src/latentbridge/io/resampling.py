"""Resampling: one soxr "HQ" filter for whole recordings (:func:`resample`) and for streams of blocks
(:func:`resampled_blocks`), numpy only (no torch)."""

from __future__ import annotations

import numpy as np

__all__ = ["resample", "resampled_blocks", "energy_above"]


def resample(x: np.ndarray, orig_sr: float, target_sr: float, axis: int = -1) -> np.ndarray:
    """The one resampler of the package: soxr "HQ" along ``axis`` (numpy only, no torch).

    Gives the same samples as ``librosa.resample(x, orig_sr=..., target_sr=..., res_type="soxr_hq")``
    without importing librosa: the output has ``ceil(T * target_sr / orig_sr)`` samples (cut or
    zero-padded at the end), float32. Rates may be non-integer (vibration data at 199.98 Hz).
    Readers, the streaming path, the edge scorer, metrics and the data sets all call this.
    """
    import soxr

    if not (np.isfinite(orig_sr) and np.isfinite(target_sr) and orig_sr > 0 and target_sr > 0):
        raise ValueError(f"sample rates must be positive, got {orig_sr} and {target_sr}")
    x = np.asarray(x, dtype=np.float32)
    if orig_sr == target_sr:
        return np.ascontiguousarray(x)
    axis = axis % x.ndim
    moved = np.moveaxis(x, axis, -1)
    flat = np.ascontiguousarray(moved.reshape(-1, moved.shape[-1]))
    n_out = int(np.ceil(flat.shape[-1] * float(target_sr) / float(orig_sr)))
    out = np.zeros((flat.shape[0], n_out), dtype=np.float32)
    for i, row in enumerate(flat):
        y = soxr.resample(row, float(orig_sr), float(target_sr), quality="soxr_hq")
        out[i, :min(n_out, len(y))] = y[:n_out]
    return np.ascontiguousarray(np.moveaxis(out.reshape(*moved.shape[:-1], n_out), -1, axis))


def resampled_blocks(blocks, orig_sr: float, target_sr: float, channels: int):
    """A stream of ``(block (n, channels), flag)`` pairs at ``target_sr``: the same soxr "HQ" filter as :func:`resample`,
    run over the stream as one signal, so the samples are those :func:`resample` gives the whole recording (windows
    resampled one by one, with zeros beyond their edges, scored up to 8 % off ``anomaly score`` of the same audio).
    The samples the filter still holds come out when the stream ends, and before a flagged block (samples were lost
    before it): the filter starts afresh there, so that no output sample mixes the two sides of the gap (the flagged
    output held up to 35 ms from before it). Closing this generator closes ``blocks``."""
    import soxr

    def fresh():
        return soxr.ResampleStream(float(orig_sr), float(target_sr), int(channels), dtype="float32", quality="HQ")

    end = np.zeros((0, int(channels)), np.float32)
    stream = fresh()
    inner = iter(blocks)
    try:
        for block, flag in inner:
            block = np.ascontiguousarray(np.asarray(block, dtype=np.float32).reshape(len(block), int(channels)))
            if flag:
                yield stream.resample_chunk(end, last=True), False
                stream = fresh()
            yield stream.resample_chunk(block, last=False), flag
        yield stream.resample_chunk(end, last=True), False
    finally:
        close = getattr(inner, "close", None)
        if close is not None:
            close()


def energy_above(x: np.ndarray, sample_rate: float, hz: float, segment: int = 4096,
                 n_segments: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """``(above, total)``: each channel's energy above ``hz`` and in all (``x`` ``(C, T)`` or ``(T,)``, each channel's
    mean taken out): what resampling to ``2 * hz`` removes. Measured on up to ``n_segments`` Hann-windowed segments
    spread over the recording (a long one is not transformed whole); zeros above Nyquist."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float32))
    n = min(segment, x.shape[-1])
    if n < 2 or hz >= sample_rate / 2:
        return np.zeros(len(x)), np.ones(len(x))
    starts = np.unique(np.linspace(0, x.shape[-1] - n, min(n_segments, max(1, x.shape[-1] // n))).astype(int))
    segs = np.stack([x[:, i:i + n] for i in starts], axis=1)
    segs = (segs - segs.mean(axis=-1, keepdims=True)) * np.hanning(n).astype(np.float32)
    power = (np.abs(np.fft.rfft(segs, axis=-1)) ** 2).sum(axis=1)  # (C, bins)
    return power[:, np.fft.rfftfreq(n, 1.0 / sample_rate) > hz].sum(axis=1), power.sum(axis=1)
