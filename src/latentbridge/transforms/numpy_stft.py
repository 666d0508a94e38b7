"""STFT magnitude in pure numpy, matching ``SpectrogramTransform.magnitude``.

This module imports numpy only (no torch, no librosa), so that a small device with
numpy + onnxruntime can compute the first stage of the feature pipeline and feed the
ONNX-exported second stage (``features_from_magnitude``).

Conventions match :func:`torch.stft`: periodic windows zero-padded to ``n_fft`` in the
centre, padding by ``n_fft // 2`` on both sides when ``center`` (``pad_mode`` as in
``torch.nn.functional.pad``), unnormalised one-sided FFT.

:func:`stft` is the complex STFT in float64 (the numpy twin of
:class:`latentbridge.transforms.stft.STFT`, also used by the torch-free metrics);
:func:`stft_magnitude` is the first stage of the feature pipeline built on it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["stft", "stft_magnitude", "periodic_window", "num_frames", "silent_tail_frames", "silence_tail"]

#: Exact zeros at a window's end that count as digital silence (:func:`silent_tail_frames`); the same number as
#: :data:`latentbridge.io.levels.MIN_SILENT_TAIL`, the run the readers keep zero (this module imports numpy alone)
MIN_SILENT_TAIL = 32

_WINDOW_ALIASES = {"hanning": "hann", "rect": "rectangular", "boxcar": "rectangular", "ones": "rectangular"}
_PAD_MODES = {"reflect": "reflect", "constant": "constant", "replicate": "edge", "circular": "wrap"}


def periodic_window(window: str, win_length: int) -> np.ndarray:
    """Periodic window (same values as ``torch.<name>_window(win_length, periodic=True)``), float64."""
    key = _WINDOW_ALIASES.get(str(window).lower(), str(window).lower())
    n = np.arange(win_length, dtype=np.float64)
    phase = 2.0 * np.pi * n / win_length
    if key == "hann":
        return 0.5 - 0.5 * np.cos(phase)
    if key == "hamming":
        return 0.54 - 0.46 * np.cos(phase)
    if key == "blackman":
        return 0.42 - 0.5 * np.cos(phase) + 0.08 * np.cos(2.0 * phase)
    if key == "rectangular":
        return np.ones(win_length, dtype=np.float64)
    raise ValueError(f"window: unknown window {window!r}; expected hann, hamming, blackman or rectangular")


def num_frames(n_samples: int, n_fft: int, hop_length: int, center: bool = True) -> int:
    """Frames of the STFT of ``n_samples`` samples (before any ``n_frames`` fixing). Centred, the wave is padded by
    ``n_fft // 2`` on each side: an odd ``n_fft`` gives one frame fewer than ``1 + n_samples // hop`` where the hop
    divides the length (that count gave every window a last frame of padding: silence at the floor in every band)."""
    if center:
        return 1 + (int(n_samples) + 2 * (int(n_fft) // 2) - int(n_fft)) // int(hop_length)
    if n_samples < n_fft:
        return 0
    return 1 + (int(n_samples) - int(n_fft)) // int(hop_length)


def stft(
    wave,
    n_fft: int,
    hop_length: int,
    win_length: int | None = None,
    window: str = "hann",
    center: bool = True,
    pad_mode: str = "reflect",
) -> np.ndarray:
    """Complex one-sided STFT of ``wave`` ``(..., T)``: complex128 ``(..., n_fft // 2 + 1, frames)``.

    Computed in float64 from the samples as given (no rounding to float32). ``frames`` is
    :func:`num_frames` of ``T``; without ``center`` a signal shorter than ``n_fft`` is an error.
    """
    x = np.asarray(wave, dtype=np.float64)
    if x.ndim == 0:
        raise ValueError("stft: expected a wave with a time axis (shape (..., T))")
    n_fft = int(n_fft)
    hop_length = int(hop_length)
    win_length = n_fft if win_length is None else int(win_length)
    if not 1 <= win_length <= n_fft:
        raise ValueError(f"win_length: must be in [1, n_fft={n_fft}], got {win_length}")
    if hop_length < 1:
        raise ValueError(f"hop_length: must be >= 1, got {hop_length}")
    win = periodic_window(window, win_length)
    if win_length < n_fft:
        left = (n_fft - win_length) // 2
        win = np.pad(win, (left, n_fft - win_length - left))

    if center:
        if pad_mode not in _PAD_MODES:
            raise ValueError(f"pad_mode: unknown {pad_mode!r}")
        pad = n_fft // 2
        if pad_mode == "reflect" and x.shape[-1] <= pad:
            raise ValueError(f"stft: reflect padding needs more than {pad} samples, got {x.shape[-1]}")
        x = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, pad)], mode=_PAD_MODES[pad_mode])
    if x.shape[-1] < n_fft:
        raise ValueError(f"stft: signal of {x.shape[-1]} samples is shorter than n_fft={n_fft}")

    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft, axis=-1)[..., ::hop_length, :]  # (..., N, n_fft)
    spec = np.fft.rfft(frames * win, n=n_fft, axis=-1)  # (..., N, F)
    return np.swapaxes(spec, -1, -2)  # (..., F, N)


def stft_magnitude(
    wave,
    n_fft: int,
    hop_length: int,
    win_length: int | None = None,
    window: str = "hann",
    center: bool = True,
    pad_mode: str = "reflect",
    power: float = 1.0,
    n_frames: int | None = None,
) -> np.ndarray:
    """``|STFT(wave)| ** power`` as float32 ``(B, C, n_fft // 2 + 1, frames)``.

    ``wave`` is ``(T,)`` (-> B = C = 1), ``(B, T)`` (-> C = 1) or ``(B, C, T)``, exactly as
    ``SpectrogramTransform.magnitude``. With ``n_frames`` the frame axis is cropped or
    zero-padded (silence) to that length. The samples are rounded to float32 first (as the
    torch path sees them), then computed in float64 by :func:`stft`, returned as float32.
    """
    x = np.asarray(wave)
    if x.ndim == 1:
        x = x[None, None]
    elif x.ndim == 2:
        x = x[:, None]
    elif x.ndim != 3:
        raise ValueError(f"stft_magnitude: expected a (T,), (B, T) or (B, C, T) wave, got shape {x.shape}")
    x = x.astype(np.float32).astype(np.float64)  # same input rounding as the torch path
    mag = np.abs(stft(x, n_fft, hop_length, win_length, window, center, pad_mode))  # (B, C, F, N)
    if power != 1.0:
        mag = mag**power

    if n_frames is not None:
        n_frames = int(n_frames)
        cur = mag.shape[-1]
        if cur > n_frames:
            mag = mag[..., :n_frames]
        elif cur < n_frames:
            mag = np.pad(mag, ((0, 0), (0, 0), (0, 0), (0, n_frames - cur)))
    return np.ascontiguousarray(mag, dtype=np.float32)


def silent_tail_frames(windows, n_fft: int, hop_length: int, center: bool = True) -> np.ndarray:
    """``(N, ..., T)`` windows -> ``(N,)`` the first frame of each window's spectrogram that reaches into
    the window's trailing digital silence (a run of at least :data:`MIN_SILENT_TAIL` exact zeros in every channel: the
    readers keep a recording's last run of zeros zero, whatever offset they take out), or a number beyond the last
    frame when the window has none.

    The frames that straddle the cut from sound to digital silence hold the cut's broadband edge, which
    no recording of the sound holds: a normal clip shorter than the model's window, padded with zeros,
    scored far above any fault on that one frame. :func:`silence_tail` computes them as the silence
    they reach into, where frames of sound come before them (a sound shorter than a frame, followed by digital
    silence, is kept whole). Frame ``k`` covers samples ``k * hop_length - n_fft // 2`` (centred frames; ``k *
    hop_length`` otherwise) to ``n_fft`` samples later.
    """
    w = np.asarray(windows)
    n, t = len(w), w.shape[-1]
    w = w.reshape(n, -1, t)
    out = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    # only windows ending in MIN_SILENT_TAIL zeros are searched: the scoring of full windows stays one short pass
    ends_silent = np.flatnonzero(~(w[..., t - MIN_SILENT_TAIL:] != 0).any(axis=(1, 2))) if t >= MIN_SILENT_TAIL \
        else np.arange(0)
    if not len(ends_silent):
        return out
    sound = (w[ends_silent] != 0).any(axis=1)  # (M, T)
    tail = np.argmax(sound[:, ::-1], axis=1)  # zeros after each window's last sample of sound
    head = np.argmax(sound, axis=1)  # each window's first sample of sound
    offset = n_fft // 2 if center else 0
    frame = np.maximum(np.floor((t - tail + offset - n_fft) / hop_length).astype(np.int64) + 1, 0)
    # a sound shorter than a frame (a knock, a click in digital zeros) is no cut: silenced, its window was digital
    # silence and scored as one
    out[ends_silent] = np.where(sound.any(axis=1) & (t - tail - head >= n_fft), frame, out[ends_silent])
    return out


def silence_tail(mag, windows, n_fft: int, hop_length: int, center: bool = True):
    """``mag`` ``(N, ..., frames)`` (a numpy array or a torch tensor, changed in place and returned) with
    the frames of :func:`silent_tail_frames` set to silence (0)."""
    first = silent_tail_frames(windows, n_fft, hop_length, center)
    for i in np.flatnonzero(first < mag.shape[-1]):
        mag[i, ..., int(first[i]):] = 0
    return mag
