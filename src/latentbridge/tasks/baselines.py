"""Classical enhancement of spatial maps (H, W, C): the references the conditional VAE is measured
against, channel by channel (numpy, scipy, scikit-image, Pillow).

Denoising: Gaussian filter, median filter, non-local means (noise level estimated per channel by
:func:`latentbridge.data.spatial.noise_sigma`, ``h = factor x sigma``), total variation (Chambolle, weight relative to the channel's 99th
percentile). Inpainting of missing pixels: biharmonic (scikit-image). 2x upscaling: nearest,
bicubic (scikit-image ``resize``, order 3) and Lanczos (Pillow, float images). Invalid pixels
(outside the section, dropped) are first filled with the nearest valid value, so that no filter
blurs a section's edge towards the empty background.

:func:`tune` picks each method's parameter on sections with a known truth (the training
sections): the baselines run at their best measured setting, not at a default.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from latentbridge.data.spatial import noise_sigma


def fill_invalid(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``x`` (H, W, C) with every invalid pixel set to its nearest valid pixel's values."""
    valid = np.asarray(valid, dtype=bool)
    if valid.all() or not valid.any():
        return np.array(x, dtype=np.float32, copy=True)
    idx = ndimage.distance_transform_edt(~valid, return_distances=False, return_indices=True)
    return np.asarray(x, dtype=np.float32)[idx[0], idx[1]]


def _per_channel(x: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    out = np.empty(x.shape, dtype=np.float32)
    for c in range(x.shape[2]):
        out[..., c] = fn(x[..., c].astype(np.float64))
    return out


def _scale(img: np.ndarray) -> float:
    return float(np.percentile(img, 99)) or float(np.abs(img).max()) or 1.0


# ----------------------------------------------------------------------------- denoising


def gaussian(x: np.ndarray, valid: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    return _per_channel(fill_invalid(x, valid), lambda im: ndimage.gaussian_filter(im, sigma, mode="nearest"))


def median(x: np.ndarray, valid: np.ndarray, size: int = 3) -> np.ndarray:
    return _per_channel(fill_invalid(x, valid), lambda im: ndimage.median_filter(im, size=int(size), mode="nearest"))


def nl_means(x: np.ndarray, valid: np.ndarray, factor: float = 0.8) -> np.ndarray:
    from skimage.restoration import denoise_nl_means

    def one(im):
        s = _scale(im)
        im = im / s
        sigma = noise_sigma(im)
        out = denoise_nl_means(im, patch_size=5, patch_distance=6, h=max(factor * sigma, 1e-6), sigma=sigma,
                               fast_mode=True, preserve_range=True)
        return out * s

    return _per_channel(fill_invalid(x, valid), one)


def total_variation(x: np.ndarray, valid: np.ndarray, weight: float = 0.1) -> np.ndarray:
    from skimage.restoration import denoise_tv_chambolle

    def one(im):
        s = _scale(im)
        return denoise_tv_chambolle(im / s, weight=weight) * s

    return _per_channel(fill_invalid(x, valid), one)


# ----------------------------------------------------------------------------- inpainting


def biharmonic(x: np.ndarray, valid: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """Missing pixels filled by biharmonic inpainting (the others kept as measured)."""
    from skimage.restoration import inpaint_biharmonic

    missing = np.asarray(missing, dtype=bool)
    base = fill_invalid(x, valid | missing)  # outside the section: nearest valid (no pull towards 0)
    base[missing] = 0.0
    scales = np.array([_scale(base[..., c][~missing]) for c in range(x.shape[2])], dtype=np.float64)
    out = inpaint_biharmonic(base / scales, missing, channel_axis=-1) * scales
    return out.astype(np.float32)


# ----------------------------------------------------------------------------- upscaling


def block_mean(x: np.ndarray, valid: np.ndarray, factor: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The ``factor``-times coarser map (mean of each block's valid pixels) and its valid mask (a
    block with at least one valid pixel). Trailing rows/columns that do not fill a block are dropped."""
    h, w = (s // factor * factor for s in x.shape[:2])
    xs = np.asarray(x[:h, :w], dtype=np.float64) * valid[:h, :w, None]
    v = valid[:h, :w].astype(np.float64)
    shape = (h // factor, factor, w // factor, factor)
    total = xs.reshape(shape + (x.shape[2],)).sum(axis=(1, 3))
    count = v.reshape(shape).sum(axis=(1, 3))
    low = np.where(count[..., None] > 0, total / np.maximum(count, 1)[..., None], 0.0)
    return low.astype(np.float32), count > 0


def upscale_nearest(low: np.ndarray, valid: np.ndarray, factor: int = 2) -> np.ndarray:
    return np.repeat(np.repeat(fill_invalid(low, valid), factor, axis=0), factor, axis=1)


def upscale_bicubic(low: np.ndarray, valid: np.ndarray, factor: int = 2) -> np.ndarray:
    from skimage.transform import resize

    filled = fill_invalid(low, valid)
    shape = (low.shape[0] * factor, low.shape[1] * factor, low.shape[2])
    return resize(filled.astype(np.float64), shape, order=3, mode="edge", anti_aliasing=False).astype(np.float32)


def upscale_lanczos(low: np.ndarray, valid: np.ndarray, factor: int = 2) -> np.ndarray:
    from PIL import Image

    filled = fill_invalid(low, valid)
    size = (low.shape[1] * factor, low.shape[0] * factor)
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(filled[..., c]), mode="F").resize(
        size, Image.Resampling.LANCZOS)) for c in range(low.shape[2])], axis=2).astype(np.float32)


# ----------------------------------------------------------------------------- registry and tuning


@dataclass(frozen=True)
class Baseline:
    fn: Callable
    param: str | None = None
    grid: tuple = ()


DENOISERS: dict[str, Baseline] = {
    "gaussian": Baseline(gaussian, "sigma", (0.5, 0.75, 1.0, 1.5, 2.0)),
    "median": Baseline(median, "size", (3, 5)),
    "nl_means": Baseline(nl_means, "factor", (0.6, 1.0, 1.4, 1.8, 2.4)),
    "total_variation": Baseline(total_variation, "weight", (0.02, 0.035, 0.05, 0.07, 0.1, 0.2)),
}
INPAINTERS: dict[str, Baseline] = {"biharmonic": Baseline(biharmonic)}
UPSCALERS: dict[str, Baseline] = {"nearest": Baseline(upscale_nearest), "bicubic": Baseline(upscale_bicubic),
                                  "lanczos": Baseline(upscale_lanczos)}


def run(b: Baseline, args: tuple, value=None) -> np.ndarray:
    return b.fn(*args, **({b.param: value} if b.param and value is not None else {}))


def tune(b: Baseline, cases: Sequence[tuple[tuple, np.ndarray, np.ndarray]]):
    """The grid value with the best mean PSNR over ``cases`` = ``[(args, truth, where), ...]``, over the cases that
    have one (a section whose clean map is constant has none: with it in a plain mean every value scored NaN and the
    first won); None for a method without a parameter, or when no case has a PSNR (the method's default)."""
    from latentbridge.metrics.spatial import finite_mean, psnr

    if not b.param or not cases:
        return None
    scores = {v: finite_mean([psnr(t, run(b, a, v), w) for a, t, w in cases]) for v in b.grid}
    finite = {v: x for v, x in scores.items() if np.isfinite(x)}
    return max(finite, key=finite.get) if finite else None
