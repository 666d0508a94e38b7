"""Waveform reconstruction metrics: SI-SDR, SNR, log-spectral distance, MAE/MSE, cosine.

Conventions: ``estimate`` and ``reference`` are arrays of equal shape (..., T) with time on the
last axis, e.g. (T,), (N, T) or (N, C, T). Every function compares along the last axis and
returns a float64 numpy array of shape ``shape[:-1]`` -- one value per sample (and channel);
a single (T,) signal gives a 0-d array (``float(...)`` it). Average over channels yourself
(``.mean(axis=-1)``) for one number per multichannel sample. NaN/inf inputs raise ValueError.

``eps`` keeps every value finite: a perfect estimate does not give +inf dB but a large,
finite value set by ``eps`` (see :func:`si_sdr` and :func:`snr`).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "si_sdr",
    "snr",
    "log_spectral_distance",
    "mae",
    "mse",
    "cosine_similarity",
]


def _pair(estimate, reference) -> tuple[np.ndarray, np.ndarray]:
    e = np.asarray(estimate, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if e.shape != r.shape:
        raise ValueError(f"estimate and reference differ in shape: {e.shape} vs {r.shape}")
    if e.ndim == 0:
        raise ValueError("estimate and reference must have a time axis (shape (..., T))")
    if e.shape[-1] == 0:
        raise ValueError(f"estimate and reference hold no samples (shape {e.shape})")
    for name, a in (("estimate", e), ("reference", r)):
        if not np.all(np.isfinite(a)):
            bad = int((~np.isfinite(a)).sum())
            raise ValueError(f"{name} contains {bad} NaN or inf values")
    return e, r


def _energy(x: np.ndarray) -> np.ndarray:
    return np.einsum("...t,...t->...", x, x)


def si_sdr(estimate, reference, eps: float = 1e-8) -> np.ndarray:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al., 2019).

    Both signals are made zero-mean along time, then ``alpha = <s_hat, s> / (<s, s> + eps)``,
    ``e_target = alpha * s``, ``e_res = s_hat - e_target`` and

        SI-SDR = 10 * log10((||e_target||^2 + eps) / (||e_res||^2 + eps)).

    Invariant to the scale of ``estimate`` (a negative scale included: ``-s`` is a perfect
    estimate of ``s``). A perfectly scaled copy ``c * s`` has ``e_res`` = 0 up to rounding, so
    instead of +inf it scores about ``10 * log10(c^2 ||s - mean(s)||^2 / eps)`` dB (about 125 dB
    for a unit sine of 16 000 samples, c = 2): a large but finite, eps-dependent ceiling.
    Reference plus zero-mean noise ``n`` orthogonal to it scores ``10 * log10(||s||^2 / ||n||^2)``.
    A silent (constant) reference has no target component and scores
    ``10 * log10(eps / (||s_hat||^2 + eps))`` (very negative unless the estimate is silent too).
    """
    e, r = _pair(estimate, reference)
    e = e - e.mean(axis=-1, keepdims=True)
    r = r - r.mean(axis=-1, keepdims=True)
    alpha = np.einsum("...t,...t->...", e, r) / (_energy(r) + eps)
    target = alpha[..., None] * r
    res = e - target
    return 10.0 * np.log10((_energy(target) + eps) / (_energy(res) + eps))


def snr(estimate, reference, eps: float = 1e-8) -> np.ndarray:
    """Plain signal-to-noise ratio in dB (no mean removal, no rescaling).

        SNR = 10 * log10((||s||^2 + eps) / (||s_hat - s||^2 + eps))

    An exact copy scores ``10 * log10((||s||^2 + eps) / eps)`` instead of +inf; ``2 * s``
    scores 0 dB (the error is as loud as the signal).
    """
    e, r = _pair(estimate, reference)
    return 10.0 * np.log10((_energy(r) + eps) / (_energy(e - r) + eps))


def _power_frames(x: np.ndarray, n_fft: int, hop: int, window: np.ndarray) -> np.ndarray:
    """Power spectra |rfft(frame * window)|^2 of a (T,) signal: (frames, n_fft // 2 + 1)."""
    t = x.shape[-1]
    n_frames = 1 if t <= n_fft else 1 + -(-(t - n_fft) // hop)  # ceil: cover every sample
    total = n_fft + (n_frames - 1) * hop
    if total > t:
        x = np.pad(x, (0, total - t))
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
    spec = np.fft.rfft(frames * window, axis=-1)
    return spec.real**2 + spec.imag**2


def log_spectral_distance(
    estimate,
    reference,
    n_fft: int = 512,
    hop: int | None = None,
    eps: float = 1e-10,
) -> np.ndarray:
    """Log-spectral distance in dB, one value per signal (shape ``shape[:-1]``).

    Short-time power spectra ``P = |STFT|^2`` (periodic Hann window of ``n_fft`` samples, hop
    ``hop`` = ``n_fft // 4`` by default, no centring; the tail is zero-padded so every sample
    is in a frame, and a signal shorter than ``n_fft`` is padded to one frame). Per frame,

        LSD_frame = sqrt(mean_f (10 * log10(P_ref + eps) - 10 * log10(P_est + eps))^2)

    (RMS over the ``n_fft // 2 + 1`` frequency bins), and the result is the mean over frames.
    Identical signals give exactly 0; scaling the amplitude by ``c`` gives ``20 * log10(|c|)``
    dB (6.0206 dB for c = 2) wherever the power is far above ``eps`` (an absolute power
    floor: bins below it count as ``eps``, so silence vs silence is 0, not undefined).
    """
    from scipy.signal import get_window

    e, r = _pair(estimate, reference)
    n_fft = int(n_fft)
    if n_fft < 2:
        raise ValueError(f"n_fft must be at least 2, got {n_fft}")
    hop = n_fft // 4 if hop is None else int(hop)
    if hop < 1:
        raise ValueError(f"hop must be at least 1, got {hop}")
    window = get_window("hann", n_fft, fftbins=True)
    lead = e.shape[:-1]
    e2 = e.reshape(-1, e.shape[-1])
    r2 = r.reshape(-1, r.shape[-1])
    out = np.empty(e2.shape[0], dtype=np.float64)
    for i in range(e2.shape[0]):  # one signal at a time keeps memory at one spectrogram
        pe = _power_frames(e2[i], n_fft, hop, window)
        pr = _power_frames(r2[i], n_fft, hop, window)
        d = 10.0 * (np.log10(pr + eps) - np.log10(pe + eps))
        out[i] = float(np.mean(np.sqrt(np.mean(d * d, axis=-1))))
    return out.reshape(lead)


def mae(estimate, reference) -> np.ndarray:
    """Mean absolute error along time, shape ``shape[:-1]``."""
    e, r = _pair(estimate, reference)
    return np.mean(np.abs(e - r), axis=-1)


def mse(estimate, reference) -> np.ndarray:
    """Mean squared error along time, shape ``shape[:-1]``."""
    e, r = _pair(estimate, reference)
    d = e - r
    return np.mean(d * d, axis=-1)


def cosine_similarity(estimate, reference, eps: float = 1e-12) -> np.ndarray:
    """``<s_hat, s> / max(||s_hat|| * ||s||, eps)`` along time, in [-1, 1], shape ``shape[:-1]``.

    No mean removal. An all-zero signal on either side gives 0.
    """
    e, r = _pair(estimate, reference)
    dot = np.einsum("...t,...t->...", e, r)
    norm = np.sqrt(_energy(e)) * np.sqrt(_energy(r))
    return np.clip(dot / np.maximum(norm, eps), -1.0, 1.0)
