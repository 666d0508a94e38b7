"""Waveform reconstruction metrics: SI-SDR, SNR, log-spectral distance, MAE/MSE, cosine.

Conventions: ``estimate`` and ``reference`` are arrays of equal shape (..., T) with time on the
last axis, e.g. (T,), (N, T) or (N, C, T). Every function compares along the last axis and
returns a float64 numpy array of shape ``shape[:-1]`` -- one value per sample (and channel);
a single (T,) signal gives a 0-d array (``float(...)`` it). Average over channels yourself
(``.mean(axis=-1)``) for one number per multichannel sample. NaN/inf inputs raise ValueError.

``eps`` keeps every value finite: a perfect estimate does not give +inf dB but a large,
finite value set by ``eps`` (see :func:`si_sdr` and :func:`snr`).

Perceptual speech metrics (need the optional ``pesq`` and ``pystoi`` packages, imported on
first use): :func:`pesq_score` / :func:`pesq_batch` (ITU-T P.862 PESQ, MOS-LQO) and
:func:`stoi_score` / :func:`stoi_batch` (STOI / extended STOI). :func:`audio_metrics` gathers
every metric of this module into one dict of batch means (plain floats, for JSON).
"""

from __future__ import annotations

import math

import numpy as np

from latentbridge.io import resample
from latentbridge.transforms.numpy_stft import stft

__all__ = [
    "si_sdr",
    "snr",
    "log_spectral_distance",
    "mean_psd",
    "psd_distance",
    "mae",
    "mse",
    "cosine_similarity",
    "pesq_score",
    "pesq_batch",
    "stoi_score",
    "stoi_batch",
    "audio_metrics",
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


def _frames_plan(n_fft: int, hop: int | None) -> tuple[int, int]:
    """``(n_fft, hop)`` checked (hop: a quarter of n_fft when None); ValueError for a frame under 2 samples or a hop
    under 1."""
    if int(n_fft) < 2:
        raise ValueError(f"n_fft must be at least 2, got {n_fft}")
    hop = int(n_fft) // 4 if hop is None else int(hop)
    if hop < 1:
        raise ValueError(f"hop must be at least 1, got {hop}")
    return int(n_fft), hop


def _power_frames(x: np.ndarray, n_fft: int, hop: int, cover: bool = True) -> np.ndarray:
    """Power spectra ``|STFT|^2`` of a (T,) signal: (n_fft // 2 + 1, frames).

    The numpy STFT of the package (:func:`latentbridge.transforms.numpy_stft.stft`: periodic
    Hann window, no centring), after zero-padding the tail so that every sample is in a frame
    (``cover``; else the frames that fit, as Welch's estimate takes them: a tail cut off by zeros spreads a signal's
    offset or low frequencies over every bin; a signal shorter than one frame is padded all the same).
    """
    t = x.shape[-1]
    n_frames = 1 if t <= n_fft else 1 + (-(-(t - n_fft) // hop) if cover else (t - n_fft) // hop)
    total = n_fft + (n_frames - 1) * hop
    if total > t:
        x = np.pad(x, (0, total - t))
    spec = stft(x, n_fft, hop, window="hann", center=False)
    return spec.real**2 + spec.imag**2


def log_spectral_distance(
    estimate,
    reference,
    n_fft: int = 512,
    hop: int | None = None,
    eps: float = 1e-10,
) -> np.ndarray:
    """Log-spectral distance in dB, one value per signal (shape ``shape[:-1]``).

    Short-time power spectra ``P = |STFT|^2`` (the numpy STFT of
    :func:`latentbridge.transforms.numpy_stft.stft`: periodic Hann window of ``n_fft`` samples,
    hop ``hop`` = ``n_fft // 4`` by default, no centring; the tail is zero-padded so every
    sample is in a frame, and a signal shorter than ``n_fft`` is padded to one frame). Per frame,

        LSD_frame = sqrt(mean_f (10 * log10(P_ref + eps) - 10 * log10(P_est + eps))^2)

    (RMS over the ``n_fft // 2 + 1`` frequency bins), and the result is the mean over frames.
    Identical signals give exactly 0; scaling the amplitude by ``c`` gives ``20 * log10(|c|)``
    dB (6.0206 dB for c = 2) wherever the power is far above ``eps`` (an absolute power
    floor: bins below it count as ``eps``, so silence vs silence is 0, not undefined). The floor is absolute, so
    frames of digital silence in the reference (padding, muted gaps) against inaudible noise in the estimate cost
    many dB: half a second of zeros against noise at -100 dBFS gave 9.9 dB over a whole clip where the sound itself
    differed by 0.03 dB. Read an LSD of padded or gated signals beside PESQ/STOI, or over the sound alone.
    """
    e, r = _pair(estimate, reference)
    n_fft, hop = _frames_plan(n_fft, hop)
    lead = e.shape[:-1]
    e2 = e.reshape(-1, e.shape[-1])
    r2 = r.reshape(-1, r.shape[-1])
    out = np.empty(e2.shape[0], dtype=np.float64)
    for i in range(e2.shape[0]):  # one signal at a time keeps memory at one spectrogram
        pe = _power_frames(e2[i], n_fft, hop)
        pr = _power_frames(r2[i], n_fft, hop)
        d = 10.0 * (np.log10(pr + eps) - np.log10(pe + eps))  # (F, frames)
        out[i] = float(np.mean(np.sqrt(np.mean(d * d, axis=0))))
    return out.reshape(lead)


def mean_psd(x, n_fft: int = 128, hop: int | None = None) -> np.ndarray:
    """Mean short-time power spectrum of a set of signals (N, C, T) or (N, T): one (C, n_fft // 2 + 1)
    (or (n_fft // 2 + 1,)) average over signals and frames (Welch's estimate: the Hann frames of
    :func:`log_spectral_distance` that fit in each signal, no detrending)."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim < 2 or not np.isfinite(a).all():
        raise ValueError(f"signals must be finite (N, [C,] T), got shape {a.shape}")
    n_fft, hop = _frames_plan(n_fft, hop)
    lead = a.shape[1:-1]
    flat = a.reshape(a.shape[0], -1, a.shape[-1])
    out = np.stack([np.mean([_power_frames(flat[n, c], n_fft, hop, cover=False).mean(axis=1)
                             for n in range(len(flat))], axis=0)
                    for c in range(flat.shape[1])])
    return out.reshape(*lead, -1)


def psd_distance(estimate_set, reference_set, n_fft: int = 128, hop: int | None = None,
                 eps: float = 1e-12) -> float:
    """dB distance between the mean power spectra (:func:`mean_psd`) of two *sets* of signals (any
    sizes, same channels): the RMS over frequency bins of ``10 log10`` of their ratio, averaged over
    channels. It compares the spectral content of generated and real vibration without pairing
    them (generated signals have no sample-by-sample reference)."""
    pe, pr = mean_psd(estimate_set, n_fft, hop), mean_psd(reference_set, n_fft, hop)
    if pe.shape != pr.shape:
        raise ValueError(f"the two sets have different channels / lengths: {pe.shape} vs {pr.shape}")
    d = 10.0 * (np.log10(pe + eps) - np.log10(pr + eps))
    return float(np.mean(np.sqrt(np.mean(d * d, axis=-1))))


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


# --------------------------------------------------------------------------------------------
# Perceptual speech metrics: PESQ (ITU-T P.862) and STOI
# --------------------------------------------------------------------------------------------

PESQ_MIN_SECONDS = 0.25
"""Shortest signal :func:`pesq_score` accepts, in seconds (P.862 needs at least 1/4 s)."""


def _rate(sample_rate) -> int:
    from latentbridge.utils import positive_integer

    return positive_integer(sample_rate, "sample_rate")


def _pesq_plan(sample_rate, mode: str | None) -> tuple[int, int, str]:
    """(input rate, rate PESQ runs at, mode) for a sample rate and an optional mode."""
    sr = _rate(sample_rate)
    target = 16000 if sr >= 16000 else 8000
    if mode is None:
        mode = "wb" if target == 16000 else "nb"
    if mode not in ("wb", "nb"):
        raise ValueError(f"mode must be 'wb' (wide-band), 'nb' (narrow-band) or None, got {mode!r}")
    if mode == "wb" and target != 16000:
        raise ValueError(
            f"wide-band PESQ needs audio sampled at 16 kHz or more; {sr} Hz input can only be "
            "scored narrow-band (mode='nb' or None)"
        )
    return sr, target, mode


#: MOS-LQO of the raw PESQ's lowest value, -0.5 (P.862.1 narrow-band, P.862.2 wide-band mappings): the score of a
#: silent estimate of speech
PESQ_FLOOR = {"nb": 0.999 + 4 / (1 + math.exp(1.4945 * 0.5 + 4.6607)),
              "wb": 0.999 + 4 / (1 + math.exp(1.3669 * 0.5 + 3.8224))}

#: longer signals are scored in consecutive segments of this length and the scores averaged: P.862 is specified
#: for recordings of a few seconds (8-12 s recommended), and the ``pesq`` package crashes the process (a segmentation
#: fault, nothing to catch) on signals of about a minute and more
PESQ_SEGMENT_SECONDS = 20.0


def _pesq_one(e: np.ndarray, r: np.ndarray, sr: int, target: int, mode: str) -> float:
    import warnings

    if e.shape[-1] > 1.5 * PESQ_SEGMENT_SECONDS * sr:  # the mean over segments (the last takes the remainder)
        step = int(PESQ_SEGMENT_SECONDS * sr)
        starts = list(range(0, e.shape[-1] - step // 2, step))
        bounds = list(zip(starts, starts[1:] + [e.shape[-1]]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # silent segments: NaN, left out of the mean (said below)
            scores = [_pesq_one(e[a:b], r[a:b], sr, target, mode) for a, b in bounds]
        kept = [x for x in scores if np.isfinite(x)]
        if len(kept) < len(scores):  # what the estimate does there is not scored: said, with where
            left = [f"{a / sr:g}-{b / sr:g} s" for (a, b), x in zip(bounds, scores) if not np.isfinite(x)]
            warnings.warn(f"PESQ: {len(left)} of the {len(scores)} {PESQ_SEGMENT_SECONDS:g}-s segments hold no speech "
                          f"in the reference ({', '.join(left)}) and are left out of the mean: the estimate's sound "
                          "there is not scored", RuntimeWarning, stacklevel=3)
        return float(np.mean(kept)) if kept else float("nan")
    import pesq as _pesq

    if e.shape[-1] < PESQ_MIN_SECONDS * sr:
        raise ValueError(
            f"PESQ needs at least {PESQ_MIN_SECONDS} s of audio; got {e.shape[-1]} samples "
            f"({e.shape[-1] / sr:.3f} s) at {sr} Hz"
        )
    if sr != target:  # (at the native rate the signals pass as they are: no float32 copy)
        e, r = resample(e, sr, target), resample(r, sr, target)
    if not (np.any(e) or np.any(r)):  # pesq divides by the peak: silence vs silence
        warnings.warn(
            "PESQ: both signals are silent (no utterances); returning NaN", RuntimeWarning
        )
        return float("nan")
    if not np.any(e) and np.any(r):  # the package fails on it (a NaN inside): none of the speech, the scale's floor
        warnings.warn("PESQ: the estimate is silent; returning the scale's lowest score", RuntimeWarning)
        return PESQ_FLOOR[mode]
    try:
        return float(_pesq.pesq(target, r, e, mode))
    except _pesq.NoUtterancesError:
        warnings.warn(
            "PESQ: no utterances detected in the reference (silent or too quiet); returning NaN",
            RuntimeWarning,
        )
        return float("nan")
    except _pesq.BufferTooShortError:
        raise ValueError(
            f"PESQ: signal too short after resampling to {target} Hz ({e.shape[-1]} samples)"
        ) from None


def pesq_score(estimate, reference, sample_rate, mode: str | None = None, return_details=False):
    """PESQ (ITU-T P.862, MOS-LQO) of ``estimate`` against ``reference``, via the ``pesq`` package.

    ``estimate`` and ``reference`` are single (T,) signals at ``sample_rate`` Hz. Higher is
    better; identical speech scores the maximum, about 4.55 narrow-band (P.862) and 4.64
    wide-band (P.862.2). The score is invariant to the overall level of the pair (the package
    divides both by their common peak and P.862 level-aligns), so only relative distortion counts.

    Rate and mode (``mode=None`` picks from the rate):

    - 8 kHz: narrow-band (``'nb'``); ``'wb'`` is a ValueError.
    - 16 kHz: wide-band (``'wb'``); ``'nb'`` may be asked for.
    - any other rate is resampled with :func:`latentbridge.io.resample` (soxr HQ) before scoring: to
      16 kHz (wide-band) when the rate is 16 kHz or more (e.g. 22.05/44.1/48 kHz), otherwise to
      8 kHz (narrow-band; ``'wb'`` is a ValueError since upsampling adds no bandwidth).

    Returns a float, or with ``return_details=True`` a dict ``{"pesq": float, "mode": "wb"|"nb",
    "sample_rate": rate PESQ ran at, "resampled_from": input rate or None}`` that says whether
    the signals were resampled.

    Signals longer than 30 s are scored in consecutive 20-s segments and the scores averaged
    (:data:`PESQ_SEGMENT_SECONDS`; the ``pesq`` package crashes the process on a minute or more).

    Raises ValueError for shapes other than (T,), NaN/inf, a signal shorter than 0.25 s
    (:data:`PESQ_MIN_SECONDS`) and impossible rate/mode pairs. When the ``pesq`` package finds
    no utterances (silent or near-silent reference) the result is NaN with a RuntimeWarning; a silent (all-zero)
    estimate of a reference with sound scores the scale's floor, :data:`PESQ_FLOOR` (1.017 narrow-band, 1.043
    wide-band), with a RuntimeWarning.
    """
    e, r = _pair(estimate, reference)
    if e.ndim != 1:
        raise ValueError(
            f"pesq_score takes single (T,) signals, got shape {e.shape}; use pesq_batch"
        )
    sr, target, mode = _pesq_plan(sample_rate, mode)
    value = _pesq_one(e, r, sr, target, mode)
    if return_details:
        return {
            "pesq": value,
            "mode": mode,
            "sample_rate": target,
            "resampled_from": None if sr == target else sr,
        }
    return value


def pesq_batch(estimates, references, sample_rate, mode: str | None = None) -> np.ndarray:
    """:func:`pesq_score` per signal for (..., T) inputs; float64 array of shape ``shape[:-1]``.

    Runs sequentially in this process (no multiprocessing pool). Entries whose reference holds
    no utterances are NaN (one RuntimeWarning each); a too-short T raises ValueError.
    """
    e, r = _pair(estimates, references)
    sr, target, mode = _pesq_plan(sample_rate, mode)
    lead = e.shape[:-1]
    e2 = e.reshape(-1, e.shape[-1])
    r2 = r.reshape(-1, r.shape[-1])
    out = np.array([_pesq_one(e2[i], r2[i], sr, target, mode) for i in range(e2.shape[0])])
    return out.reshape(lead)


def _stoi_one(e: np.ndarray, r: np.ndarray, sr: int, extended: bool) -> float:
    import warnings

    from pystoi import stoi

    if not np.any(r):  # (read 0.0, as if the estimate were unintelligible)
        warnings.warn("STOI: the reference is silent; returning NaN", RuntimeWarning, stacklevel=3)
        return float("nan")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(stoi(r, e, sr, extended=extended))
    short = [w for w in caught if "Not enough STFT frames" in str(w.message)]
    for w in caught:
        if w not in short:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if short:
        warnings.warn(
            "STOI: fewer than 30 non-silent frames (about 0.4 s of speech at 10 kHz) after "
            "silent-frame removal; returning NaN",
            RuntimeWarning,
        )
        return float("nan")
    return value


def stoi_score(estimate, reference, sample_rate, extended: bool = False) -> float:
    """STOI (Taal et al., 2011) of ``estimate`` against ``reference`` via ``pystoi``; about 0 to 1.

    Single (T,) signals at ``sample_rate`` Hz (pystoi resamples to 10 kHz internally). Identical
    signals score 1 (up to rounding); higher is more intelligible. ``extended=True`` gives
    extended STOI (Jensen & Taal, 2016), better for modulated noise. Silent frames (40 dB below
    the loudest) are dropped first; when fewer than 30 frames (about 0.4 s of speech) remain,
    pystoi's placeholder 1e-5 is replaced by NaN with a RuntimeWarning.
    """
    e, r = _pair(estimate, reference)
    if e.ndim != 1:
        raise ValueError(
            f"stoi_score takes single (T,) signals, got shape {e.shape}; use stoi_batch"
        )
    return _stoi_one(e, r, _rate(sample_rate), bool(extended))


def stoi_batch(estimates, references, sample_rate, extended: bool = False) -> np.ndarray:
    """:func:`stoi_score` per signal for (..., T) inputs; float64 array of shape ``shape[:-1]``."""
    e, r = _pair(estimates, references)
    sr = _rate(sample_rate)
    lead = e.shape[:-1]
    e2 = e.reshape(-1, e.shape[-1])
    r2 = r.reshape(-1, r.shape[-1])
    out = np.array([_stoi_one(e2[i], r2[i], sr, bool(extended)) for i in range(e2.shape[0])])
    return out.reshape(lead)


def _mean_or_nan(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    ok = x[np.isfinite(x)]
    return float(ok.mean()) if ok.size else float("nan")


def audio_metrics(
    estimates,
    references,
    sample_rate,
    *,
    pesq_mode: str | None = None,
    extended_stoi: bool = False,
    n_fft: int = 512,
) -> dict:
    """Every metric of this module, averaged over a batch; a dict of plain floats/ints/str.

    ``estimates`` and ``references`` are (T,), (N, T) or (N, C, T); every (T,) signal (each
    channel of each sample) counts once. Keys:

    - ``n``: number of signals;
    - ``si_sdr``, ``snr``, ``lsd`` (log-spectral distance, ``n_fft``), ``mae``, ``mse``,
      ``cosine``: means over the batch;
    - ``pesq``: mean PESQ over the signals where it is defined (NaN values skipped), and
      ``pesq_nan``: how many were NaN (no utterances); ``pesq_mode`` (``'wb'``/``'nb'``),
      ``pesq_sample_rate`` (rate PESQ ran at) and ``pesq_resampled_from`` (input rate, or None);
    - ``stoi``: mean STOI (extended when ``extended_stoi``) over the defined values, and
      ``stoi_nan``: how many were NaN (too little speech).

    A mean with no defined value is NaN. A signal shorter than 0.25 s raises ValueError (PESQ).
    """
    import warnings

    e, r = _pair(estimates, references)
    sr, target, mode = _pesq_plan(sample_rate, pesq_mode)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN counts are reported instead
        p = pesq_batch(e, r, sr, mode)
        s = stoi_batch(e, r, sr, extended_stoi)
    return {
        "n": int(np.prod(e.shape[:-1], dtype=np.int64)),
        "si_sdr": _mean_or_nan(si_sdr(e, r)),
        "snr": _mean_or_nan(snr(e, r)),
        "lsd": _mean_or_nan(log_spectral_distance(e, r, n_fft=n_fft)),
        "mae": _mean_or_nan(mae(e, r)),
        "mse": _mean_or_nan(mse(e, r)),
        "cosine": _mean_or_nan(cosine_similarity(e, r)),
        "pesq": _mean_or_nan(p),
        "pesq_nan": int(np.isnan(p).sum()),
        "pesq_mode": mode,
        "pesq_sample_rate": target,
        "pesq_resampled_from": None if sr == target else sr,
        "stoi": _mean_or_nan(s),
        "stoi_nan": int(np.isnan(s).sum()),
        "stoi_extended": bool(extended_stoi),
    }
