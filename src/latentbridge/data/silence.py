"""Digital silence in spectrogram windows (frames of one value in every band: zeros, whatever the transform's floor):
within a window (a dropout, a short recording's padding) and over a whole channel (a dead sensor)."""

from __future__ import annotations

import numpy as np


def silent_frame_shares(features: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """(n,) the share of each window's frames (last axis of ``features`` (n, ..., T)) that hold one value in every band
    and channel: digital silence within the window (a dropout, zeros before or after the sound), ``chunk`` windows at
    a time."""
    out = np.zeros(len(features))
    for s in range(0, len(features), chunk):
        flat = np.asarray(features[s:s + chunk]).reshape(min(chunk, len(features) - s), -1, features.shape[-1])
        if flat.shape[1]:
            out[s:s + len(flat)] = (flat.max(axis=1) == flat.min(axis=1)).mean(axis=1)
    return out


def live_channels(features: np.ndarray) -> np.ndarray:
    """(C,) whether each channel of windows ``features`` (n, C, F, T) holds signal in any frame of any window."""
    f = np.asarray(features)
    return (f.max(axis=2) > f.min(axis=2)).any(axis=(0, 2)) if f.ndim == 4 and f.size else np.ones(0, dtype=bool)


def silent_channels(live: np.ndarray) -> list[int]:
    """The channels ``live`` (:func:`live_channels`, over a recording's windows) says hold nothing above the features'
    floor (digital silence: a dead sensor, a cable off one axis, a muted input; or a level under the floor); [] for a
    single channel. (:func:`~latentbridge.io.levels.constant_channels` reads the samples themselves.)"""
    return [int(c) for c in np.flatnonzero(~live)] if live is not None and len(live) > 1 else []
