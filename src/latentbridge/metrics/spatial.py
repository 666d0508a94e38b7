"""Quality of enhanced spatial maps (H, W, C) against a ground truth, on a set of pixels.

- :func:`psnr`: per channel ``10 log10(range_c^2 / MSE_c)`` over the evaluated pixels, with
  ``range_c`` the truth's range there, then the mean over channels (channels differ in level by
  orders of magnitude; a pooled PSNR would only see the brightest);
- :func:`ssim`: scikit-image's SSIM per channel (7 x 7 window, ``data_range = range_c``), its map
  averaged over the evaluated pixels, then over channels. Pixels outside the evaluated set take the
  truth's value in the estimate first, so what was not asked of a method does not count;
- :func:`spectral_angle` (SAM): the angle between the estimated and the true spectrum (the C
  values) of every evaluated pixel, mean in degrees;
- :func:`coverage`: the share of true values within ``k`` predicted standard deviations.
"""

from __future__ import annotations

import numpy as np


def _where(truth: np.ndarray, where: np.ndarray | None) -> np.ndarray:
    if where is None:
        return np.ones(truth.shape[:2], dtype=bool)
    where = np.asarray(where, dtype=bool)
    if where.shape != truth.shape[:2]:
        raise ValueError(f"pixel set of shape {where.shape} does not match maps of shape {truth.shape}")
    if not where.any():
        raise ValueError("no pixels to evaluate")
    return where


def _check(truth: np.ndarray, est: np.ndarray, where: np.ndarray | None = None, what: str = "estimate") -> np.ndarray:
    """The evaluated pixels (:func:`_where`) of two (H, W, C) maps of one shape, finite there (a NaN in one channel of
    the estimate left that channel out of the mean: one NaN pixel raised a PSNR from 30.2 to 39.9 dB)."""
    if truth.shape != est.shape or truth.ndim != 3:
        raise ValueError(f"expected two (H, W, C) maps of one shape, got {truth.shape} and {est.shape}")
    w = _where(truth, where)
    for name, m in (("truth", truth), (what, est)):
        if not np.isfinite(v := m[w]).all():
            raise ValueError(f"the {name} holds {int((~np.isfinite(v)).sum())} non-finite value(s) on the evaluated "
                             "pixels")
    return w


def psnr_per_channel(truth: np.ndarray, est: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
    """PSNR (dB) of each channel on the pixels ``where``; an exact estimate reads about 200 dB over its range (the
    squared error is floored at 1e-20, so that means stay finite), a constant clean channel NaN."""
    w = _check(truth, est, where)
    t = truth[w].astype(np.float64)
    e = est[w].astype(np.float64)
    rng = t.max(0) - t.min(0)
    mse = ((e - t) ** 2).mean(0)
    out = 10.0 * np.log10(np.maximum(rng, 1e-12) ** 2 / np.maximum(mse, 1e-20))
    # a constant clean channel has no peak-to-peak range to measure against (it read -260 dB): NaN, left out
    return np.where(rng > 0, out, np.nan)


def finite_mean(values) -> float:
    """The mean of the finite ``values`` (a score some channels or sections do not have: NaN there), NaN when none
    is finite."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else float("nan")


def psnr(truth: np.ndarray, est: np.ndarray, where: np.ndarray | None = None) -> float:
    """Mean over channels of the per-channel PSNR (dB) on the pixels ``where``; constant clean channels, which
    have no range to measure against, are left out (NaN when every channel is constant)."""
    return finite_mean(psnr_per_channel(truth, est, where))


def ssim(truth: np.ndarray, est: np.ndarray, where: np.ndarray | None = None) -> float:
    """Mean over channels of the SSIM map averaged over the pixels ``where``, each channel against its own range
    there; constant clean channels are left out as in :func:`psnr` (their SSIM depended on the data's units: with a
    range of 1 assumed, 0.99 in one unit and 0.49 in a thousandth of it), NaN when every channel is constant or the map
    is under 3 pixels on a side (SSIM's smallest window; :func:`psnr` reads such maps). The map's
    border (3 pixels, whose windows are padded) counts where it is evaluated; scikit-image's own mean crops it (0.004
    apart on 16 x 16 pixels, 5e-5 on 32 x 40)."""
    from skimage.metrics import structural_similarity

    w = _check(truth, est, where)
    if min(truth.shape[:2]) < 3:  # SSIM's smallest window is 3 x 3 pixels
        return float("nan")
    vals = []
    for c in range(truth.shape[2]):
        t = truth[..., c].astype(np.float64)
        # outside the evaluated pixels the truth may be NaN (a section's edge): its mean there, in both maps, so that
        # windows reaching over the edge stay finite (a NaN left the channel out)
        t = np.where(w | np.isfinite(t), t, float(t[w].mean()))
        filled = np.where(w, est[..., c], t)
        rng = float(t[w].max() - t[w].min())
        if not rng > 0:
            vals.append(float("nan"))
            continue
        win = min(7, *(s - (1 - s % 2) for s in t.shape))
        _, smap = structural_similarity(t, filled, data_range=rng, full=True, win_size=max(3, win))
        vals.append(float(smap[w].mean()))
    return finite_mean(vals)


def spectral_angle(truth: np.ndarray, est: np.ndarray, where: np.ndarray | None = None) -> float:
    """Mean spectral angle (degrees) between estimated and true spectra over the pixels ``where``, whatever the data's
    units (an absolute guard on the norms read a map against itself at 30 degrees at a scale of 1e-6); a pixel whose
    spectra are both zero is at 0 degrees, one of them zero at 90."""
    w = _check(truth, est, where)
    t = truth[w].astype(np.float64)
    e = est[w].astype(np.float64)
    t = t / np.maximum(np.abs(t).max(1, keepdims=True), np.finfo(float).tiny)  # each pixel's scale out first: no
    e = e / np.maximum(np.abs(e).max(1, keepdims=True), np.finfo(float).tiny)  # underflow of the norms' product
    nt, ne = np.linalg.norm(t, axis=1), np.linalg.norm(e, axis=1)
    both = nt * ne > 0
    cos = np.where(both, (t * e).sum(1) / np.where(both, nt * ne, 1.0), np.where((nt == 0) & (ne == 0), 1.0, 0.0))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))).mean())


def coverage(truth: np.ndarray, est: np.ndarray, sigma: np.ndarray, where: np.ndarray | None = None,
             k: float = 2.0) -> float:
    """Share of the true values (every channel of the pixels ``where``) inside ``est ± k sigma``."""
    w = _check(truth, est, where)
    _check(truth, sigma, w, "sigma")
    return float((np.abs(truth[w] - est[w]) <= k * sigma[w]).mean())


def enhancement_metrics(truth: np.ndarray, est: np.ndarray, where: np.ndarray | None = None,
                        sigma: np.ndarray | None = None) -> dict:
    """PSNR, SSIM and SAM (and, with ``sigma``, the ±2σ and ±1σ coverage and the mean σ relative to
    the mean true value) of one estimate."""
    out = {"psnr": psnr(truth, est, where), "ssim": ssim(truth, est, where), "sam": spectral_angle(truth, est, where)}
    if sigma is not None:
        w = _where(truth, where)
        out["coverage_2sigma"] = coverage(truth, est, sigma, w, 2.0)
        out["coverage_1sigma"] = coverage(truth, est, sigma, w, 1.0)
        out["relative_sigma"] = float(sigma[w].mean() / max(float(np.abs(truth[w]).mean()), 1e-12))
    return out
