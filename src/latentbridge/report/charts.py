"""General charts: line series (e.g. loss curves) and labelled heatmaps (e.g. relationship tables)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from latentbridge.report.common import _new_figure, _save, _whole_epochs

__all__ = ["plot_crack_operating_curve", "plot_heatmap", "plot_lines"]


def plot_lines(
    x,
    ys: Mapping[str, Sequence[float]],
    path: str | Path,
    xlabel: str = "",
    ylabel: str = "",
    title: str = "",
    logy: bool = False,
) -> Path:
    """One line per entry of ``ys`` (e.g. loss curves). ``x`` may be None (0, 1, 2, ...); x values that are all whole
    numbers (epochs) get whole-number ticks."""
    if not ys:
        raise ValueError("plot_lines needs at least one series")
    fig = _new_figure(6.0, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    for name, values in ys.items():
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        if x is None:
            xv = np.arange(v.size)
        else:
            xv = np.asarray(x, dtype=np.float64).reshape(-1)
            if xv.size != v.size:
                raise ValueError(f"series {name!r} has {v.size} values but x has {xv.size}")
        ax.plot(xv, v, label=str(name), marker="." if v.size < 50 else None)
    if x is None or np.all(np.mod(np.asarray(x, dtype=np.float64), 1) == 0):
        _whole_epochs(ax)  # (of the lines drawn)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_heatmap(matrix, row_labels, col_labels, path: str | Path, title: str = "", xlabel: str = "",
                 ylabel: str = "", fmt: str = ".2f", cmap: str = "viridis") -> Path:
    """A labelled heatmap with the value written in each cell (relationship tables, rates)."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape != (len(row_labels), len(col_labels)):
        raise ValueError(f"matrix of shape {m.shape} does not match {len(row_labels)} x {len(col_labels)} labels")
    fig = _new_figure(1.0 + 0.55 * m.shape[1], 0.8 + 0.45 * m.shape[0])
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(m, cmap=cmap, aspect="auto")
    fig.colorbar(im, ax=ax)
    ax.set_xticks(range(m.shape[1]), [str(c) for c in col_labels])
    ax.set_yticks(range(m.shape[0]), [str(r) for r in row_labels])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if m.size <= 400:
        hi = np.nanmax(m) if np.isfinite(m).any() else 0.0
        for (r, c), v in np.ndenumerate(m):
            ax.text(c, r, format(v, fmt), ha="center", va="center", fontsize=7,
                    color="black" if v > 0.6 * hi else "white")
    return _save(fig, path)


def plot_crack_operating_curve(curve: Sequence[Mapping], threshold: float, path: str | Path, title: str = "",
                               threshold_name: str = "calibrated threshold", unit: str = "m") -> Path:
    """Crack localisation error against the false-crack share over the thresholds of ``curve`` (rows of
    ``latentbridge.metrics.segmentation.crack_operating_curve``), the model's ``threshold`` marked and named in the
    legend as ``threshold_name`` (``"default threshold (not calibrated)"`` where it was not calibrated)."""
    rows = [r for r in curve if r.get("crack_localisation_error_m") is not None and r.get("crack_false_rate") is not None]
    if not rows:
        raise ValueError("plot_crack_operating_curve: no threshold predicts a crack")
    x = np.array([r["crack_false_rate"] for r in rows], dtype=np.float64)
    y = np.array([r["crack_localisation_error_m"] for r in rows], dtype=np.float64)
    fig = _new_figure(6.0, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(x, y, marker=".", color="tab:blue")
    at: dict[tuple, list[float]] = {}  # every threshold at each point: a point is labelled once, with their range
    named = set()  # the points labelled: the first and last thresholds', and the calibrated one's
    for r, xv, yv in zip(rows, x, y):
        at.setdefault(point := (round(xv, 6), round(yv, 6)), []).append(r["threshold"])
        mine = abs(r["threshold"] - threshold) < 1e-9
        if mine:
            ax.plot([xv], [yv], marker="*", markersize=14, color="tab:red", linestyle="none",
                    label=f"{threshold_name} {threshold:g}")
        if mine or r is rows[0] or r is rows[-1]:
            named.add(point)
    for xv, yv in named:  # (the same point at every threshold wrote 0.01 ... 0.4 over each other)
        ts = at[xv, yv]
        text = f"{min(ts):g}" if len(ts) == 1 else f"{min(ts):g}–{max(ts):g}"
        ax.annotate(text, (xv, yv), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("false-crack share (predicted cracks with no true crack nearby)")
    ax.set_ylabel(f"crack localisation error ({unit})")  # mask widths where the span is unknown
    ax.set_title(title or "crack localisation vs false cracks, over the threshold")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)
