"""Figures of spatial maps: panels of ion images (rows: channels; columns: input, enhanced, truth,
uncertainty, ...) and grids of latent maps. Large maps are shown subsampled to at most
``max_pixels`` per side (the arrays written beside the figures keep every pixel)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from latentbridge.report.common import _new_figure, _save, _tight

__all__ = ["plot_latent_maps", "plot_map_panels"]


def _shown(a, max_pixels: int) -> np.ndarray:
    a = np.asarray(a)
    step = max(1, int(np.ceil(max(a.shape[:2]) / max_pixels)))
    return np.asarray(a[::step, ::step], dtype=np.float64)


#: colour maps of the panels: values (input, enhanced, truth) and spread (σ, |error|), neither ending in white (the
#: blank outside a section); a NaN pixel inside a section (an input's gap) is grey
_VALUES, _SPREAD, _NAN_GREY = "viridis", "plasma", "0.6"
#: the latent maps' pixels outside a section (:func:`plot_latent_maps`), darker than a NaN pixel inside it
_OUTSIDE_GREY = 0.25


def _cmap(name: str):
    from matplotlib import colormaps

    return colormaps[name].with_extremes(bad=_NAN_GREY)


def plot_map_panels(rows: Sequence[Sequence], columns: Sequence[str], row_titles: Sequence[str], path: str | Path,
                    *, shared: Sequence[bool] | None = None, masks: Sequence | None = None,
                    max_pixels: int = 400) -> Path:
    """A grid of maps: ``rows[i][j]`` (H, W) or None (an empty cell). Columns flagged in ``shared``
    use the colour range of the row's first such column (values to compare); the others (uncertainty σ, |error|,
    in the same units) share a second range of their own per row, from 0. ``masks[i]`` (H, W) hides pixels outside a
    section (shown blank); a NaN pixel inside it is drawn grey."""
    n_r, n_c = len(rows), len(columns)
    if len(row_titles) != n_r or any(len(r) != n_c for r in rows):
        raise ValueError(f"plot_map_panels: {n_r} rows x {n_c} columns, {len(row_titles)} row titles")
    shared = list(shared) if shared is not None else [True] * n_c
    first = _shown(rows[0][0], max_pixels) if n_r and rows[0][0] is not None else np.zeros((1, 1))
    aspect = first.shape[1] / max(first.shape[0], 1)
    fig = _new_figure(2.3 * n_c * min(max(aspect, 0.6), 1.8), 2.3 * n_r + 0.4)
    for i, row in enumerate(rows):
        m = _shown(masks[i], max_pixels).astype(bool) if masks is not None and masks[i] is not None else None
        shown = [None if img is None else _shown(img, max_pixels) for img in row]
        inside = [a if a is None or m is None or m.shape != a.shape else np.where(m, a, np.nan) for a in shown]
        ref = next((a for a, s in zip(inside, shared) if s and a is not None), None)
        # over the finite values: an input's gaps (NaN) made the range NaN, every panel one flat colour
        lo, hi = _finite_percentiles(ref, [1, 99.5], (0.0, 1.0)) if ref is not None else (0.0, 1.0)
        spread = [a.ravel() for a, s in zip(inside, shared) if not s and a is not None]
        top = _finite_percentiles(np.concatenate(spread), [99.5], (1.0,))[0] if spread else 1.0
        for j, a in enumerate(inside):
            ax = fig.add_subplot(n_r, n_c, i * n_c + j + 1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(columns[j], fontsize=9)
            if j == 0:
                ax.set_ylabel(row_titles[i], fontsize=8)
            if a is None:
                ax.set_frame_on(False)
                continue
            alpha = m.astype(np.float64) if m is not None and m.shape == a.shape else None  # outside: blank
            if shared[j]:
                im = ax.imshow(a, cmap=_cmap(_VALUES), vmin=lo, vmax=hi if hi > lo else lo + 1e-9, alpha=alpha,
                               interpolation="nearest")
            else:
                im = ax.imshow(a, cmap=_cmap(_SPREAD), vmin=0.0, vmax=top if top > 0 else 1e-9, alpha=alpha,
                               interpolation="nearest")
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
    _tight(fig)
    return _save(fig, path)


def _finite_percentiles(a, qs, default: tuple) -> tuple:
    """The percentiles ``qs`` of the finite values of ``a`` (``default`` when there are none)."""
    fin = np.asarray(a)[np.isfinite(a)]
    return tuple(float(v) for v in np.percentile(fin, qs)) if fin.size else default


def plot_latent_maps(latent, path: str | Path, *, mask=None, n: int = 8, max_pixels: int = 300) -> Path:
    """The first ``n`` latent channels of an (H, W, d) latent map, one panel each, on a diverging scale symmetric
    about 0 (white); pixels outside ``mask`` (the section) dark grey, not blank (blank was a latent of 0), and a NaN
    pixel inside it light grey (it was the grey of the outside)."""
    lat = np.asarray(latent)
    k = min(n, lat.shape[2])
    cols = min(4, k)
    rows = int(np.ceil(k / cols))
    fig = _new_figure(2.4 * cols, 2.3 * rows)
    m = _shown(mask, max_pixels).astype(bool) if mask is not None else None
    for c in range(k):
        a = _shown(lat[..., c], max_pixels)
        outside = m is not None and m.shape == a.shape
        if outside:
            a = np.where(m, a, np.nan)
        ax = fig.add_subplot(rows, cols, c + 1)
        lim = _finite_percentiles(np.abs(a), [99], (1.0,))[0]
        im = ax.imshow(a, cmap=_cmap("RdBu_r"), vmin=-lim, vmax=lim, interpolation="nearest")
        if outside:  # drawn over the NaN grey: the section's own gaps stay light
            over = np.zeros((*m.shape, 4))
            over[..., :3], over[..., 3] = _OUTSIDE_GREY, ~m
            ax.imshow(over, interpolation="nearest")
        ax.set_title(f"latent {c}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
    _tight(fig)
    return _save(fig, path)
