"""Figures (PNG, matplotlib Agg) and single-file HTML reports.

Figures are drawn on a private ``matplotlib.figure.Figure`` with an Agg canvas, so nothing here
touches pyplot's global state or needs a display, and every file is written atomically (a
reader never sees a half-written PNG or HTML file).
"""

from __future__ import annotations

import base64
import html
import math
import numbers
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from latentbridge.errors import DataError
from latentbridge.utils import atomic_path, atomic_write_text

__all__ = [
    "plot_roc",
    "plot_score_histogram",
    "plot_spectrogram_pairs",
    "plot_lines",
    "write_html_report",
]

_DPI = 100


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI, bbox_inches="tight")
    return path


# --------------------------------------------------------------------------- plots


def plot_roc(labels, scores, path: str | Path, title: str = "", max_fpr: float = 0.1) -> Path:
    """ROC curve with the chance diagonal; the pAUC region (FPR <= max_fpr) is shaded."""
    from sklearn.metrics import roc_curve

    from latentbridge.metrics.anomaly import partial_auc, roc_auc

    y = np.asarray(labels).reshape(-1).astype(np.int64)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    auc_v = roc_auc(y, s)
    pauc_v = partial_auc(y, s, max_fpr=max_fpr)
    fpr, tpr, _ = roc_curve(y, s)

    fig = _new_figure(5.0, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    ax.axvspan(0.0, max_fpr, color="tab:orange", alpha=0.12, label=f"pAUC region (FPR <= {max_fpr:g})")
    inside = fpr <= max_fpr
    fx = np.append(fpr[inside], max_fpr)
    fy = np.append(tpr[inside], np.interp(max_fpr, fpr, tpr))
    ax.fill_between(fx, 0.0, fy, color="tab:orange", alpha=0.35, step=None)
    ax.plot(fpr, tpr, color="tab:blue", lw=2, label=f"ROC (AUC={auc_v:.3f}, pAUC={pauc_v:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title or "ROC curve")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_score_histogram(
    scores, labels, threshold: float | None, path: str | Path, title: str = ""
) -> Path:
    """Histograms of normal vs anomalous scores on shared bins, with the threshold marked.

    ``labels`` may be None (one histogram of all scores); ``threshold`` may be None.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    fig = _new_figure(6.0, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    finite = s[np.isfinite(s)]
    if finite.size == 0:
        finite = np.zeros(1)
    bins = np.histogram_bin_edges(finite, bins=min(50, max(10, int(math.sqrt(finite.size)) * 2)))
    if labels is None:
        ax.hist(finite, bins=bins, color="tab:blue", alpha=0.7, label=f"scores (n={finite.size})")
    else:
        y = np.asarray(labels).reshape(-1).astype(np.int64)
        if y.shape != s.shape:
            raise ValueError(f"labels and scores differ in length: {y.size} vs {s.size}")
        ok = np.isfinite(s)
        for val, name, color in ((0, "normal", "tab:blue"), (1, "anomalous", "tab:red")):
            part = s[ok & (y == val)]
            if part.size:
                ax.hist(part, bins=bins, color=color, alpha=0.55, label=f"{name} (n={part.size})")
    if threshold is not None and np.isfinite(threshold):
        ax.axvline(float(threshold), color="black", ls="--", lw=1.5, label=f"threshold={threshold:.4g}")
    ax.set_xlabel("anomaly score")
    ax.set_ylabel("count")
    ax.set_title(title or "score distribution")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_spectrogram_pairs(
    inputs,
    reconstructions,
    titles: Sequence[str] | None,
    path: str | Path,
    sample_rate: int | None = None,
    hop_length: int | None = None,
) -> Path:
    """Rows of ``input | reconstruction | |input - reconstruction|`` for (n, F, T) arrays.

    Input and reconstruction in a row share one colour scale. When ``sample_rate`` and
    ``hop_length`` are both given the time axis is in seconds, otherwise in frames.
    """
    a, b = _paired_arrays(inputs, reconstructions, "(n, F, T)", "inputs and reconstructions")
    n, n_freq, n_time = a.shape
    if n == 0:
        raise ValueError("no spectrograms to plot")
    titles = list(titles) if titles is not None else [f"#{i}" for i in range(n)]
    if len(titles) != n:
        raise ValueError(f"got {len(titles)} titles for {n} spectrograms")
    if sample_rate and hop_length:
        extent = [0.0, n_time * hop_length / sample_rate, 0, n_freq]
        xlabel = "time (s)"
    else:
        extent = [0, n_time, 0, n_freq]
        xlabel = "frame"

    fig = _new_figure(12.0, 2.6 * n + 0.4)
    for i in range(n):
        diff = np.abs(a[i] - b[i])
        both = np.concatenate([a[i].ravel(), b[i].ravel()])
        both = both[np.isfinite(both)]
        vmin, vmax = (float(both.min()), float(both.max())) if both.size else (0.0, 1.0)
        panels = (
            (a[i], "input", "magma", vmin, vmax),
            (b[i], "reconstruction", "magma", vmin, vmax),
            (diff, "|difference|", "viridis", None, None),
        )
        for j, (img, name, cmap, lo, hi) in enumerate(panels):
            ax = fig.add_subplot(n, 3, 3 * i + j + 1)
            im = ax.imshow(img, origin="lower", aspect="auto", cmap=cmap, vmin=lo, vmax=hi, extent=extent)
            ax.set_title(f"{titles[i]}: {name}" if j == 0 else name, fontsize=9)
            if i == n - 1:
                ax.set_xlabel(xlabel)
            if j == 0:
                ax.set_ylabel("bin")
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    fig.tight_layout()
    return _save(fig, path)


def plot_lines(
    x,
    ys: Mapping[str, Sequence[float]],
    path: str | Path,
    xlabel: str = "",
    ylabel: str = "",
    title: str = "",
    logy: bool = False,
) -> Path:
    """One line per entry of ``ys`` (e.g. loss curves). ``x`` may be None (0, 1, 2, ...)."""
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
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


# --------------------------------------------------------------------------- HTML

_MIME = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
}

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.45; padding: 0 1em; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #eee; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: .8em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .85em; color: #666; }
"""


def _fmt(v: Any) -> tuple[str, bool]:
    """Escaped cell text and whether it is numeric."""
    if v is None:
        return "", False
    if isinstance(v, (bool, np.bool_)):
        return html.escape(str(bool(v))), False
    if isinstance(v, numbers.Integral):
        return str(int(v)), True
    if isinstance(v, numbers.Real):
        f = float(v)
        return (f"{f:.4g}" if math.isfinite(f) else str(f)), True
    return html.escape(str(v)), False


def _table_html(table: Mapping | Sequence[Mapping]) -> str:
    if isinstance(table, Mapping):
        rows = []
        for k, v in table.items():
            cell, num = _fmt(v)
            rows.append(f'<tr><th>{html.escape(str(k))}</th><td{" class=num" if num else ""}>{cell}</td></tr>')
        return "<table>\n" + "\n".join(rows) + "\n</table>"
    records = list(table)
    if not records:
        return "<p><em>(empty table)</em></p>"
    cols: list[str] = []
    for r in records:
        if not isinstance(r, Mapping):
            raise ValueError(f"table rows must be dicts, got {type(r).__name__}")
        for k in r:
            if k not in cols:
                cols.append(k)
    head = "<tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in cols) + "</tr>"
    body = []
    for r in records:
        cells = []
        for c in cols:
            cell, num = _fmt(r.get(c))
            cells.append(f'<td{" class=num" if num else ""}>{cell}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return "<table>\n" + head + "\n" + "\n".join(body) + "\n</table>"


def _text_html(text: str) -> str:
    paras = [p.strip() for p in str(text).replace("\r\n", "\n").split("\n\n")]
    return "\n".join(
        "<p>" + html.escape(p).replace("\n", "<br>\n") + "</p>" for p in paras if p
    )


def _image_html(img: str | Path, base: Path) -> str:
    p = Path(img)
    full = p if p.is_absolute() else base / p
    if not full.is_file():
        raise DataError(full, "image for the HTML report does not exist")
    mime = _MIME.get(full.suffix.lower())
    if mime is None:
        raise DataError(full, f"unsupported image type {full.suffix!r} for the HTML report")
    data = base64.b64encode(full.read_bytes()).decode("ascii")
    name = html.escape(str(img))
    return (
        f'<figure><img src="data:{mime};base64,{data}" alt="{name}">'
        f"<figcaption>{name}</figcaption></figure>"
    )


def write_html_report(path: str | Path, title: str, sections: Sequence[Mapping[str, Any]]) -> Path:
    """Write one self-contained HTML file (images embedded as base64 data URIs).

    Each section: ``{"heading": str, "text": str?, "table": dict | list[dict]?,
    "images": [paths]?}``. Image paths are relative to the report's folder (absolute paths are
    used as given); a missing image raises DataError naming it. All text is HTML-escaped.
    """
    path = Path(path)
    base = path.parent
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{html.escape(str(title))}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{html.escape(str(title))}</h1>",
    ]
    for i, sec in enumerate(sections):
        if not isinstance(sec, Mapping):
            raise ValueError(f"section {i} must be a dict, got {type(sec).__name__}")
        unknown = set(sec) - {"heading", "text", "table", "images"}
        if unknown:
            raise ValueError(f"section {i} has unknown keys {sorted(unknown)}")
        parts.append("<section>")
        parts.append(f"<h2>{html.escape(str(sec.get('heading', '')))}</h2>")
        if sec.get("text"):
            parts.append(_text_html(sec["text"]))
        if sec.get("table") is not None:
            parts.append(_table_html(sec["table"]))
        for img in sec.get("images") or ():
            parts.append(_image_html(img, base))
        parts.append("</section>")
    parts += ["</body>", "</html>", ""]
    atomic_write_text(path, "\n".join(parts))
    return path


# --------------------------------------------------------------------------- more plots

__all__ += [
    "plot_waveform_overlay",
    "plot_mask_triplets",
    "plot_image_grid",
    "plot_embedding",
    "embed_2d",
]

_MAX_WAVEFORM_ROWS = 4


def _paired_arrays(x, y, layout: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` as float64 arrays of equal shape with the dimensions of ``layout`` (e.g.
    "(n, F, T)"); one leading dimension short is added as a single row."""
    ndim = layout.count(",") + 1
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.ndim == ndim - 1:
        a = a[None]
    if b.ndim == ndim - 1:
        b = b[None]
    if a.ndim != ndim or a.shape != b.shape:
        raise ValueError(f"{what} must both be {layout} with equal shapes; got {np.shape(x)} and {np.shape(y)}")
    return a, b


def _finite_range(*arrays) -> tuple[float, float]:
    vals = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return 0.0, 1.0
    lo, hi = float(vals.min()), float(vals.max())
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def _titles(titles, n: int, what: str, default: str = "#{}") -> list[str]:
    if titles is None:
        return [default.format(i) for i in range(n)]
    titles = [str(t) for t in titles]
    if len(titles) != n:
        raise ValueError(f"got {len(titles)} {what} for {n}")
    return titles


def plot_waveform_overlay(
    reference,
    reconstruction,
    sample_rate: float | None,
    path: str | Path,
    title: str = "",
    channels: Sequence[int] | None = None,
) -> Path:
    """Original vs reconstructed waveform, one row per channel (at most 4 rows).

    ``reference`` and ``reconstruction`` are (C, T) (or (T,) for one channel) with equal shapes.
    ``channels`` picks which channels to draw (default: the first up to 4; only the first 4
    of a longer list are drawn). Each row's title gives the channel's SI-SDR. With a
    ``sample_rate`` the time axis is in seconds, otherwise in samples.
    """
    from latentbridge.metrics.signal import si_sdr

    a, b = _paired_arrays(reference, reconstruction, "(C, T)", "reference and reconstruction")
    n_ch, n_t = a.shape
    if n_ch == 0 or n_t == 0:
        raise ValueError(f"no waveform to plot (shape {a.shape})")
    if channels is None:
        chans = list(range(min(n_ch, _MAX_WAVEFORM_ROWS)))
    else:
        chans = [int(c) for c in channels][:_MAX_WAVEFORM_ROWS]
        if not chans:
            raise ValueError("channels is empty")
        bad = [c for c in chans if not -n_ch <= c < n_ch]
        if bad:
            raise ValueError(f"channel(s) {bad} out of range for {n_ch} channels")
        chans = [c % n_ch for c in chans]
    if sample_rate:
        t = np.arange(n_t) / float(sample_rate)
        xlabel = "time (s)"
    else:
        t = np.arange(n_t)
        xlabel = "sample"
    ok = np.all(np.isfinite(a), axis=1) & np.all(np.isfinite(b), axis=1)

    fig = _new_figure(10.0, 2.0 * len(chans) + 0.6)
    axes = []
    for row, c in enumerate(chans):
        ax = fig.add_subplot(len(chans), 1, row + 1, sharex=axes[0] if axes else None)
        axes.append(ax)
        ax.plot(t, a[c], color="black", lw=0.8, alpha=0.8, label="original")
        ax.plot(t, b[c], color="tab:orange", lw=0.8, alpha=0.75, label="reconstruction")
        name = f"channel {c}"
        if ok[c]:
            name += f" (SI-SDR {float(si_sdr(b[c], a[c])):.1f} dB)"
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("amplitude")
        ax.grid(alpha=0.3)
        if row == 0:
            ax.legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel(xlabel)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


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
) -> Path:
    """Rows of ``[input |] target mask | predicted probability | prediction > threshold``.

    ``targets`` and ``predictions`` are (n, H, W) or (n, 1, H, W); ``inputs_or_none`` (optional,
    drawn as a first column) is (n, H, W) greyscale or (n, 3, H, W) / (n, H, W, 3) colour.
    The thresholded panel's title gives the sample's IoU (1.0 when both masks are empty).
    Images are drawn with row 0 at the top.
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
    fig.tight_layout()
    return _save(fig, path)


def plot_image_grid(
    images,
    row_titles: Sequence[str] | None,
    col_titles: Sequence[str] | None,
    path: str | Path,
    cmap: str = "magma",
    origin: str = "lower",
    share_row_scale: bool = True,
) -> Path:
    """A grid of (R, K, H, W) images: R rows of K panels (e.g. rows = spectrogram / mask,
    columns = latent interpolation steps). A (K, H, W) array is one row.

    ``row_titles`` (R) label the rows on the left, ``col_titles`` (K) label the top row; either
    may be None. By default the panels of a row share one colour scale (with a colourbar at the
    row's end), so a row reads as one sequence. ``origin="lower"`` draws row 0 at the bottom
    (spectrograms); use ``"upper"`` for images and masks.
    """
    a = np.asarray(images, dtype=np.float64)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4:
        raise ValueError(f"images must be (R, K, H, W) or (K, H, W), got shape {np.shape(images)}")
    n_row, n_col = a.shape[:2]
    if n_row == 0 or n_col == 0:
        raise ValueError(f"no images to plot (shape {a.shape})")
    if origin not in ("lower", "upper"):
        raise ValueError(f"origin must be 'lower' or 'upper', got {origin!r}")
    row_titles = None if row_titles is None else _titles(row_titles, n_row, "row titles")
    col_titles = None if col_titles is None else _titles(col_titles, n_col, "column titles")

    fig = _new_figure(2.0 * n_col + 1.2, 2.0 * n_row + 0.4)
    for r in range(n_row):
        lo, hi = _finite_range(a[r]) if share_row_scale else (None, None)
        im = None
        for k in range(n_col):
            ax = fig.add_subplot(n_row, n_col, r * n_col + k + 1)
            im = ax.imshow(a[r, k], origin=origin, aspect="auto", cmap=cmap, vmin=lo, vmax=hi)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0 and col_titles is not None:
                ax.set_title(col_titles[k], fontsize=9)
            if k == 0 and row_titles is not None:
                ax.set_ylabel(row_titles[r], fontsize=9)
            if not share_row_scale:
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
        if share_row_scale and im is not None:
            fig.colorbar(im, ax=fig.axes[-n_col:], fraction=0.02, pad=0.01)
    return _save(fig, path)


def plot_embedding(
    points,
    colors,
    path: str | Path,
    title: str = "",
    categorical: bool = False,
    label: str = "",
) -> Path:
    """Scatter plot of a 2-D embedding (N, 2).

    ``colors`` (N,) are continuous values (a colourbar titled ``label``) or, with
    ``categorical=True``, category labels of any type (e.g. test ids; one colour each and a
    legend titled ``label``). ``colors`` may be None (one colour).
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must be (N, 2), got shape {np.shape(points)}")
    n = pts.shape[0]
    if n == 0:
        raise ValueError("no points to plot")
    size = float(np.clip(3000.0 / n, 4.0, 40.0))
    fig = _new_figure(6.5, 5.5)
    ax = fig.add_subplot(1, 1, 1)
    if colors is None:
        ax.scatter(pts[:, 0], pts[:, 1], s=size, color="tab:blue", alpha=0.8, linewidths=0)
    else:
        c = np.asarray(colors)
        if c.ndim != 1 or c.shape[0] != n:
            raise ValueError(f"colors must be (N,) with N={n}, got shape {np.shape(colors)}")
        if categorical:
            from matplotlib import colormaps

            cats = list(dict.fromkeys(c.tolist()))  # first-seen order
            try:
                cats = sorted(cats)
            except TypeError:
                pass
            cmap = colormaps["tab10" if len(cats) <= 10 else "tab20"]
            for i, cat in enumerate(cats):
                sel = np.array([v == cat for v in c.tolist()], dtype=bool)
                ax.scatter(pts[sel, 0], pts[sel, 1], s=size, color=cmap(i % cmap.N), alpha=0.8,
                           linewidths=0, label=f"{cat} (n={int(sel.sum())})")
            ax.legend(title=label or None, fontsize=7, title_fontsize=8, loc="best",
                      ncol=1 if len(cats) <= 12 else 2, markerscale=max(1.0, 20.0 / size))
        else:
            cv = c.astype(np.float64)
            sc = ax.scatter(pts[:, 0], pts[:, 1], c=cv, s=size, cmap="viridis", alpha=0.85,
                            linewidths=0)
            cb = fig.colorbar(sc, ax=ax)
            if label:
                cb.set_label(label)
    ax.set_title(title)
    ax.set_xlabel("dim 1")
    ax.set_ylabel("dim 2")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _pca_2d(x: np.ndarray) -> np.ndarray:
    """First two principal-component scores (N, 2), signs fixed; zero columns if rank < 2."""
    n = x.shape[0]
    out = np.zeros((n, 2), dtype=np.float64)
    xc = x - x.mean(axis=0, keepdims=True)
    if n < 2 or not np.any(xc):
        return out
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    k = min(2, s.size)
    scores = u[:, :k] * s[:k]
    # deterministic signs: the largest-magnitude score of each component is positive
    idx = np.argmax(np.abs(scores), axis=0)
    signs = np.sign(scores[idx, np.arange(k)])
    signs[signs == 0] = 1.0
    out[:, :k] = scores * signs
    return out


_MIN_POINTS_NONLINEAR = 5


def embed_2d(latents, method: str = "umap", seed: int = 0) -> np.ndarray:
    """Project latent vectors (N, D) to 2-D for plotting; (N, ...) is flattened to (N, D).

    ``method``: ``"umap"`` (umap-learn, ``n_neighbors=min(15, N - 1)``), ``"tsne"``
    (scikit-learn, perplexity ``min(30, (N - 1) / 3)``, PCA init) or ``"pca"``. UMAP and t-SNE
    fall back to PCA (with a warning logged) when N < 5, when umap-learn is not installed, or
    when they fail. Deterministic for a given ``seed`` (UMAP then runs single-threaded).
    Returns a float64 (N, 2) array.
    """
    import logging
    import warnings

    log = logging.getLogger(__name__)
    x = np.asarray(latents, dtype=np.float64)
    if x.ndim == 1:
        raise ValueError(f"latents must be (N, D), got shape {x.shape}")
    if x.ndim > 2:
        x = x.reshape(x.shape[0], -1)
    if x.shape[0] == 0:
        raise ValueError("latents is empty (N = 0)")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"latents contain {int((~np.isfinite(x)).sum())} NaN or inf values")
    method = str(method).lower()
    if method not in ("umap", "tsne", "pca"):
        raise ValueError(f"unknown embedding method {method!r}; use 'umap', 'tsne' or 'pca'")
    n = x.shape[0]
    if method == "pca":
        return _pca_2d(x)
    if n < _MIN_POINTS_NONLINEAR:
        log.warning("embed_2d: %d points are too few for %s; using PCA", n, method)
        return _pca_2d(x)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if method == "umap":
                import umap

                reducer = umap.UMAP(n_components=2, n_neighbors=min(15, n - 1),
                                    random_state=int(seed))
                y = reducer.fit_transform(x)
            else:
                from sklearn.manifold import TSNE

                reducer = TSNE(n_components=2, perplexity=min(30.0, (n - 1) / 3.0),
                               init="pca", random_state=int(seed))
                y = reducer.fit_transform(x)
        y = np.asarray(y, dtype=np.float64)
        if y.shape != (n, 2) or not np.all(np.isfinite(y)):
            raise RuntimeError(f"{method} returned an unusable embedding of shape {y.shape}")
        return y
    except Exception as exc:  # ImportError or any failure inside the reducer
        log.warning("embed_2d: %s failed (%s: %s); using PCA", method, type(exc).__name__, exc)
        return _pca_2d(x)


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
