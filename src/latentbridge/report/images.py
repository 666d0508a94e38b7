"""Image figures: segmentation mask triplets and grids of images (e.g. latent interpolations)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from latentbridge.report.common import _finite_range, _new_figure, _save, _tight, _titles

__all__ = ["plot_image_grid", "plot_mask_triplets"]


def _as_masks(x, name: str) -> np.ndarray:
    """(n, H, W) float array from (n, H, W), (n, 1, H, W) or (H, W)."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 3:
        raise ValueError(f"{name} must be (n, H, W) or (n, 1, H, W), got shape {np.shape(x)}")
    return a


def _as_images(x, n: int) -> np.ndarray:
    """Inputs for display: (n, H, W) greyscale or (n, H, W, 3|4) colour, colour in [0, 1]."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 2 and n == 1:
        a = a[None]
    if a.ndim == 4 and a.shape[1] in (1, 3, 4) and a.shape[-1] not in (3, 4):
        a = np.moveaxis(a, 1, -1)  # channel-first -> channel-last
    if a.ndim == 4 and a.shape[-1] == 1:
        a = a[..., 0]
    if not (a.ndim == 3 or (a.ndim == 4 and a.shape[-1] in (3, 4))) or a.shape[0] != n:
        raise ValueError(
            f"inputs must be (n, H, W), (n, C, H, W) or (n, H, W, C) with n={n}, "
            f"got shape {np.shape(x)}"
        )
    if a.ndim == 4:  # colour: scale each image into [0, 1] if it is not already
        a = a.copy()
        for i in range(n):
            lo, hi = _finite_range(a[i])
            if lo < 0.0 or hi > 1.0:
                a[i] = (a[i] - lo) / (hi - lo)
        a = np.clip(np.nan_to_num(a), 0.0, 1.0)
    return a


def plot_mask_triplets(
    inputs_or_none,
    targets,
    predictions,
    titles: Sequence[str] | None,
    path: str | Path,
    threshold: float = 0.5,
    ious: Sequence[float] | None = None,
) -> Path:
    """Rows of ``[input |] target mask | predicted probability | prediction > threshold``.

    ``targets`` and ``predictions`` are (n, H, W) or (n, 1, H, W); ``inputs_or_none`` (optional,
    drawn as a first column) is (n, H, W) greyscale or (n, 3, H, W) / (n, H, W, 3) colour.
    The thresholded panel's title gives the sample's IoU (1.0 when both masks are empty), or ``ious``' (masks drawn
    smaller than they were scored). Images are drawn with row 0 at the top.
    """
    from latentbridge.metrics.segmentation import iou

    t = _as_masks(targets, "targets")
    p = _as_masks(predictions, "predictions")
    if t.shape != p.shape:
        raise ValueError(f"targets and predictions differ in shape: {t.shape} vs {p.shape}")
    n = t.shape[0]
    if n == 0:
        raise ValueError("no masks to plot")
    titles = _titles(titles, n, "titles", "#{}")
    x = None if inputs_or_none is None else _as_images(inputs_or_none, n)
    finite = np.isfinite(p).reshape(n, -1).all(axis=1)
    if ious is None:
        ious = np.full(n, np.nan)
        if finite.any():
            ious[finite] = iou(p[finite], np.nan_to_num(t[finite]), threshold=threshold)

    n_col = 3 if x is None else 4
    fig = _new_figure(3.0 * n_col, 2.8 * n + 0.3)
    for i in range(n):
        panels = []
        if x is not None:
            panels.append((x[i], "input", "gray" if x.ndim == 3 else None, None, None))
        panels += [
            (t[i], "target", "gray", 0.0, 1.0),
            (p[i], "probability", "viridis", 0.0, 1.0),
            ((p[i] > threshold).astype(np.float64), f"> {threshold:g}: IoU {ious[i]:.3f}", "gray", 0.0, 1.0),
        ]
        for j, (img, name, cmap, lo, hi) in enumerate(panels):
            ax = fig.add_subplot(n, n_col, n_col * i + j + 1)
            im = ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_title(f"{titles[i]}: {name}" if j == 0 else name, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            if name == "probability":
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    _tight(fig)
    return _save(fig, path)


def plot_image_grid(
    images,
    row_titles: Sequence[str] | None,
    col_titles: Sequence[str] | None,
    path: str | Path,
    cmap: str = "magma",
    origin: str = "lower",
    share_row_scale: bool = True,
    keep_aspect: bool = False,
    value_range: tuple[float, float] | None = None,
    unit: str = "",
) -> Path:
    """A grid of (R, K, H, W) images: R rows of K panels (e.g. rows = spectrogram / mask,
    columns = latent interpolation steps). A (K, H, W) array is one row; (R, K, H, W, 3) are RGB
    images in [0, 1] (drawn as they are: no colour map or scale).

    ``row_titles`` (R) label the rows on the left, ``col_titles`` (K) label the top row; either
    may be None. By default the panels of a row share one colour scale (with a colourbar at the
    row's end), so a row reads as one sequence. ``origin="lower"`` draws row 0 at the bottom
    (spectrograms); use ``"upper"`` for images and masks. ``keep_aspect``: panels as wide and tall as the
    images (a beam's 16 x 128 mask stays a strip), where by default every panel is square. ``value_range``: one
    colour scale for every panel (images in [0, 1]: a flat grey reconstruction is drawn grey, not stretched to
    black and white beside its input). ``unit`` names the values on the colour bars (e.g. "dB").
    """
    a = np.asarray(images, dtype=np.float64)
    if a.ndim == 3:
        a = a[None]
    rgb = a.ndim == 5 and a.shape[-1] == 3
    if a.ndim != 4 and not rgb:
        raise ValueError(f"images must be (R, K, H, W), (R, K, H, W, 3) or (K, H, W), got shape {np.shape(images)}")
    n_row, n_col = a.shape[:2]
    if n_row == 0 or n_col == 0:
        raise ValueError(f"no images to plot (shape {a.shape})")
    if origin not in ("lower", "upper"):
        raise ValueError(f"origin must be 'lower' or 'upper', got {origin!r}")
    row_titles = None if row_titles is None else _titles(row_titles, n_row, "row titles")
    col_titles = None if col_titles is None else _titles(col_titles, n_col, "column titles")

    # a row's height: square panels, or the images' aspect (with room for the column titles)
    row_h = 2.0 if not keep_aspect else float(np.clip(2.0 * a.shape[2] / max(a.shape[3], 1), 0.3, 4.0)) + 0.3
    fig = _new_figure(2.0 * n_col + 1.2, row_h * n_row + 0.4)
    for r in range(n_row):
        lo, hi = value_range if value_range else _finite_range(a[r]) if share_row_scale else (None, None)
        im = None
        for k in range(n_col):
            ax = fig.add_subplot(n_row, n_col, r * n_col + k + 1)
            im = ax.imshow(np.clip(a[r, k], 0, 1) if rgb else a[r, k], origin=origin,
                           aspect="equal" if keep_aspect else "auto",
                           cmap=None if rgb else cmap, vmin=None if rgb else lo, vmax=None if rgb else hi)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0 and col_titles is not None:
                ax.set_title(col_titles[k], fontsize=9)
            if k == 0 and row_titles is not None:
                ax.set_ylabel(row_titles[r], fontsize=9)
            if not share_row_scale and not rgb:
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label=unit or None)
        if share_row_scale and im is not None and not rgb:
            fig.colorbar(im, ax=fig.axes[-n_col:], fraction=0.02, pad=0.01, label=unit or None)
    return _save(fig, path)
