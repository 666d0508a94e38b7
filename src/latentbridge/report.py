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
    a = np.asarray(inputs, dtype=np.float64)
    b = np.asarray(reconstructions, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if b.ndim == 2:
        b = b[None]
    if a.ndim != 3 or a.shape != b.shape:
        raise ValueError(
            f"inputs and reconstructions must both be (n, F, T) with equal shapes; "
            f"got {np.shape(inputs)} and {np.shape(reconstructions)}"
        )
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
