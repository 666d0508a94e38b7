"""Analysis windows: :func:`cut_windows` for a whole recording (numpy only, no torch).

Cutting rules (:func:`cut_windows`): full windows every ``hop`` samples; a last, partial window
only when it holds *more than half* a window of real samples, padded with the pad mode; a
recording shorter than one window gives one padded window.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentbridge.errors import DataError

__all__ = ["PAD_MODES", "cut_windows"]

#: Pad modes of :func:`cut_windows` (``"none"``: no padding, partial windows are dropped).
PAD_MODES: tuple[str, ...] = ("wrap", "constant", "reflect", "none")


def cut_windows(
    wave: np.ndarray,
    window: int,
    hop: int,
    pad: str = "wrap",
    name: str | Path = "<waveform>",
) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``wave`` of shape ``(..., T)`` into windows along the last axis.

    Returns ``(windows, starts)``: ``windows`` has shape ``(n, ..., window)`` (a fresh,
    contiguous array of ``wave``'s dtype) and ``starts`` (int64, shape ``(n,)``) holds each
    window's first sample index in ``wave``.

    Rules:

    * Full windows start at ``0, hop, 2*hop, ...`` while ``start + window <= T``.
    * Last partial window: the window starting at the next hop position is kept only when it
      holds **more than half a window** of real samples (``T - start > window / 2``), and then
      it is padded to full length with ``pad``. With ``pad="none"`` it is always dropped.
    * A recording shorter than one window gives exactly one window (start 0), padded with
      ``pad``: ``"wrap"`` tiles the clip, ``"constant"`` appends zeros, ``"reflect"`` mirrors
      it. ``pad="none"`` raises DataError (naming ``name``) for such input.

    Padding of a partial window continues the same way ("wrap" continues from the start of
    the recording). Vectorised with ``sliding_window_view``; no per-window Python loop.
    """
    if pad not in PAD_MODES:
        raise ValueError(f"pad must be one of {PAD_MODES}, got {pad!r}")
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
        raise DataError(name, "waveform has zero length")

    if T < window:
        if pad == "none":
            raise DataError(
                name,
                f"recording too short: {T} samples, one window needs {window} "
                f"(use pad='wrap', 'constant' or 'reflect' to pad it)",
            )
        n_pad_total = window - T
        n_windows = 1
    else:
        n_full = (T - window) // hop + 1
        next_start = n_full * hop
        real = T - next_start
        keep_partial = pad != "none" and real > window / 2
        n_windows = n_full + int(keep_partial)
        n_pad_total = next_start + window - T if keep_partial else 0

    if n_pad_total > 0:
        widths = [(0, 0)] * (wave.ndim - 1) + [(0, n_pad_total)]
        if pad == "constant":
            padded = np.pad(wave, widths, mode="constant")
        else:
            padded = np.pad(wave, widths, mode=pad)
    else:
        padded = wave

    view = np.lib.stride_tricks.sliding_window_view(padded, window, axis=-1)  # (..., L, window)
    view = view[..., : (n_windows - 1) * hop + 1 : hop, :]  # (..., n, window)
    windows = np.ascontiguousarray(np.moveaxis(view, -2, 0))  # (n, ..., window)
    starts = np.arange(n_windows, dtype=np.int64) * hop
    return windows, starts
