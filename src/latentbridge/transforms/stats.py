"""Summary statistics of spectrogram windows: the features of the statistical detectors
(:mod:`latentbridge.models.detectors`). Plain tensor ops (ONNX-exportable).

For a (B, C, F, T) window of dB features: the mean and standard deviation over time of every band,
and of the first ``n_mfcc`` cepstral coefficients (the orthonormal DCT-II of each frame), over the
window's *active* frames only — frames whose mean level is within ``top_db`` of the loudest frame —
so silence before and after a sound does not dilute its statistics. Those are a set: they do not change when
the frames are shuffled. :func:`envelope_autocorrelation` reads when in the window the sound is loud: events at
regular times, one late or missing; :func:`longest_event` how long the window's longest event lasts.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def dct_matrix(n_out: int, n_in: int, dtype=torch.float32) -> Tensor:
    """The first ``n_out`` rows of the orthonormal DCT-II of size ``n_in``: (n_out, n_in)."""
    n = torch.arange(n_in, dtype=torch.float64)
    k = torch.arange(n_out, dtype=torch.float64).unsqueeze(1)
    m = torch.cos(math.pi / n_in * (n + 0.5) * k) * math.sqrt(2.0 / n_in)
    m[0] /= math.sqrt(2.0)
    return m.to(dtype)


def active_frames(frames: Tensor, top_db: float = 40.0) -> Tensor:
    """(B, bands, T) dB frames → (B, T) 1.0 where a frame's mean level is within ``top_db`` of the window's
    loudest frame, else 0.0 (in ``frames``' dtype)."""
    level = frames.mean(dim=1)  # (B, T)
    return (level >= level.amax(dim=1, keepdim=True) - top_db).to(frames.dtype)


def window_statistics(x: Tensor, dct: Tensor, top_db: float = 40.0, eps: float = 1e-6) -> Tensor:
    """(B, C, F, T) → (B, 2·C·F + 2·n_mfcc): band means, band stds, cepstral means, cepstral stds over
    the active frames (:func:`active_frames`); ``dct`` is :func:`dct_matrix` ``(n_mfcc, C·F)``."""
    b, c, f, t = x.shape
    frames = x.reshape(b, c * f, t)
    active = active_frames(frames, top_db)
    w = (active / active.sum(dim=1, keepdim=True)).unsqueeze(1)  # (B, 1, T)
    mean = (frames * w).sum(-1)
    std = torch.sqrt(((frames - mean.unsqueeze(-1)) ** 2 * w).sum(-1) + eps)
    ceps = torch.matmul(dct.to(x.dtype), frames)  # (B, n_mfcc, T)
    c_mean = (ceps * w).sum(-1)
    c_std = torch.sqrt(((ceps - c_mean.unsqueeze(-1)) ** 2 * w).sum(-1) + eps)
    return torch.cat([mean, std, c_mean, c_std], dim=1)


def separate_level(stats: Tensor, n_bands: int) -> Tensor:
    """:func:`window_statistics` (B, 2·n_bands + 2·n_mfcc) with the level split out, same width: band
    means relative to their average, band stds, cepstral means without c0 (the level again), cepstral
    stds, and the level (the average band mean) last."""
    means = stats[:, :n_bands]
    level = means.mean(dim=1, keepdim=True)
    return torch.cat([means - level, stats[:, n_bands:2 * n_bands], stats[:, 2 * n_bands + 1:], level], dim=1)


def squared_distances(a: Tensor, b: Tensor) -> Tensor:
    """(N, D), (M, D) → (N, M) squared Euclidean distances (matmul form: ONNX-exportable)."""
    return ((a * a).sum(1, keepdim=True) + (b * b).sum(1).unsqueeze(0) - 2.0 * a @ b.T).clamp_min(0.0)


def filled_frames(x: Tensor) -> Tensor:
    """(B, C, F, T) → (B, T): 1.0 where a frame holds signal in any channel, 0.0 where every channel is one value in
    every band: digital silence (a short recording's padding, a muted input), never sound, however quiet (in
    ``x``'s dtype: ONNX takes no max of bools)."""
    b, c, f, t = x.shape
    frames = x.reshape(b * c, f, t)
    return (frames.amax(dim=1) > frames.amin(dim=1)).to(x.dtype).reshape(b, c, t).amax(1)


def _level_envelope(x: Tensor) -> tuple[Tensor, Tensor]:
    """(B, C, F, T) dB features → ((B, T) each frame's mean over channels and bands, (B, T) :func:`filled_frames`)."""
    b, c, f, t = x.shape
    return x.reshape(b, c * f, t).mean(dim=1), filled_frames(x)


def envelope_autocorrelation(x: Tensor, max_lag: int) -> Tensor:
    """(B, C, F, T) dB features → (B, max_lag): the autocorrelation of the window's level envelope (each frame's mean
    over channels and bands) at lags of 1 ... ``max_lag`` frames, each over the variance: over the frames that hold
    signal (not digital silence, one value in every band: a short recording's padding), so that it does not depend on
    where in the window events fall, on the gain or on a recording's length. Clicks at regular times peak at their
    period; one late or missing moves the peaks (one moved by 0.2 s: AUC 0.55 -> 1.00 with these beside the
    statistics, benchmarks/README.md §3); steady sound gives a small, flat one."""
    level, filled = _level_envelope(x)
    n = filled.sum(1, keepdim=True).clamp_min(1.0)
    centred = (level - (level * filled).sum(1, keepdim=True) / n) * filled
    var = (centred * centred).sum(1) / n.squeeze(1)
    lags = []
    for lag in range(1, max_lag + 1):
        pairs = (filled[:, :-lag] * filled[:, lag:]).sum(1).clamp_min(1.0)
        lags.append((centred[:, :-lag] * centred[:, lag:]).sum(1) / pairs)
    return torch.stack(lags, dim=1) / var.clamp_min(1e-6).unsqueeze(1)


def longest_event(x: Tensor, rise_db: float = 10.0, floor_share: float = 0.1) -> Tensor:
    """(B, C, F, T) dB features → (B,): the window's longest run of loud frames, in frames: frames whose level (each
    frame's mean over channels and bands) lies above half-way between the window's floor (the ``floor_share``
    quantile of the levels of the frames that hold signal: :func:`filled_frames`) and its loudest frame's, where the
    loudest stands ``rise_db`` or more above the floor (else 0: no event stands out; the floor, not the mean level,
    which an event filling half the window raised: one that lasted far too long read as none). The statistics read a
    window's frames as a set, so a burst three times as long as normal gives the same band means and spreads; this
    reads it (a relay's 50-ms bursts, one three or two times as long: AUC 0.73 -> 0.93 beside the statistics,
    benchmarks/README.md §3). Runs by erosion (a frame still loud k frames on), plain tensor ops for the ONNX
    export."""
    level, filled = _level_envelope(x)
    t = level.shape[1]
    ordered = torch.where(filled > 0, level, torch.full_like(level, float("inf"))).sort(dim=1).values
    at = (floor_share * (filled.sum(1, keepdim=True) - 1.0)).clamp_min(0.0).floor().long()  # (B, 1)
    floor = ordered.gather(1, at)
    top = level.amax(1, keepdim=True)
    loud = ((level >= 0.5 * (floor + top)) & (top - floor >= rise_db)).to(x.dtype) * filled
    run, longest = loud, loud.amax(1)
    for k in range(1, t):
        run = run[:, :-1] * loud[:, k:]
        if not torch.jit.is_tracing() and not bool(run.any()):
            break  # (eager: no run lasts longer; the traced graph for the export keeps every step)
        longest = longest + run.amax(1)
    return longest
