"""Latent-space figures: 2-D projections (UMAP, t-SNE, PCA) of latent vectors and their scatter plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentbridge.report.common import _new_figure, _save

__all__ = ["embed_2d", "plot_embedding", "project_2d"]


def plot_embedding(
    points,
    colors,
    path: str | Path,
    title: str = "",
    categorical: bool = False,
    label: str = "",
    missing: str = "no value",
    vmin: float | None = None,
) -> Path:
    """Scatter plot of a 2-D embedding (N, 2).

    ``colors`` (N,) are continuous values (a colourbar titled ``label``) or, with
    ``categorical=True``, category labels of any type (e.g. test ids; one colour each and a
    legend titled ``label``; above 20 categories a colour and marker pair each, the legend beside the axes; above
    80 one continuous map in the categories' order, no legend). ``colors`` may be None (one colour).
    Continuous values that are NaN are drawn grey, under a legend entry ``missing`` (e.g. "unlabelled"); the colour
    scale spans the others, from ``vmin`` where given.
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
            _categories(fig, ax, pts, c.tolist(), size, label, title)
        else:
            _values(fig, ax, pts, c.astype(np.float64), size, label, missing, vmin)
    if not ax.get_title():
        ax.set_title(title)
    ax.set_xlabel("dim 1")
    ax.set_ylabel("dim 2")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _values(fig, ax, pts: np.ndarray, values: np.ndarray, size: float, label: str, missing: str,
            vmin: float | None) -> None:
    """Points coloured by value (a colourbar titled ``label``); those without one (NaN) grey, named ``missing`` in a
    legend, and left out of the colour scale."""
    known = np.isfinite(values)
    if not known.all():
        ax.scatter(pts[~known, 0], pts[~known, 1], s=size, color="0.6", alpha=0.8, linewidths=0,
                   label=f"{missing} (n={int((~known).sum())})")
        ax.legend(fontsize=7, loc="best")
    if known.any():
        v = values[known]
        lo = float(v.min()) if vmin is None else float(vmin)
        sc = ax.scatter(pts[known, 0], pts[known, 1], c=v, s=size, cmap="viridis", alpha=0.85, linewidths=0,
                        vmin=lo, vmax=max(float(v.max()), lo))
        cb = fig.colorbar(sc, ax=ax)
        if label:
            cb.set_label(label)


#: markers combined with tab10's colours above 20 categories (tab20 repeats its colours there)
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_MAX_LEGEND = 20  # more categories: each a colour and marker pair, the legend beside the axes


def _categories(fig, ax, pts: np.ndarray, values: list, size: float, label: str, title: str) -> None:
    """One scatter per category: a colour each up to 20 (tab10, tab20), a (colour, marker) pair of tab10 and
    :data:`_MARKERS` each up to 80, with the legend outside the axes above 20; more categories are coloured in
    their order along a continuous map, with no legend (the title says so)."""
    from matplotlib import colormaps

    cats = list(dict.fromkeys(values))  # first-seen order
    try:
        cats = sorted(cats)
    except TypeError:
        pass
    k = len(cats)
    index = {cat: i for i, cat in enumerate(cats)}
    which = np.array([index[v] for v in values])
    if k > len(_MARKERS) * 10:
        sc = ax.scatter(pts[:, 0], pts[:, 1], c=which, s=size, cmap="turbo", alpha=0.85, linewidths=0)
        cb = fig.colorbar(sc, ax=ax, ticks=[0, k - 1])
        cb.ax.set_yticklabels([str(cats[0]), str(cats[-1])])
        cb.set_label(f"{label or 'category'} (in order)")
        ax.set_title(f"{title} ({k} categories, coloured in order: no legend)".strip())
        return
    cmap = colormaps["tab10" if k <= 10 or k > _MAX_LEGEND else "tab20"]
    if k > _MAX_LEGEND:
        size = max(size, 14.0)  # markers big enough to tell apart
    for i, cat in enumerate(cats):
        sel = which == i
        colour, marker = (cmap(i % 10), _MARKERS[i // 10]) if k > _MAX_LEGEND else (cmap(i), "o")
        ax.scatter(pts[sel, 0], pts[sel, 1], s=size, color=colour, marker=marker, alpha=0.8, linewidths=0,
                   label=f"{cat} (n={int(sel.sum())})")
    if k <= _MAX_LEGEND:
        ax.legend(title=label or None, fontsize=7, title_fontsize=8, loc="best",
                  ncol=1 if k <= 12 else 2, markerscale=max(1.0, 20.0 / size))
    else:  # beside the axes, 25 entries a column
        ax.legend(title=label or None, fontsize=6, title_fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                  borderaxespad=0.0, ncol=int(np.ceil(k / 25)), markerscale=max(1.0, 20.0 / size))


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
#: fewer points are projected by PCA when UMAP is asked for: UMAP's first call in a process compiles its code (15 s of
#: a 28-s bridge evaluation, for 18 points), and on so few points its 15-neighbour graph links most points to most
#: others, so the picture says little more than PCA's
_MIN_POINTS_UMAP = 50
_NAMES = {"umap": "UMAP", "tsne": "t-SNE", "pca": "PCA"}


def embed_2d(latents, method: str = "umap", seed: int = 0) -> np.ndarray:
    """Project latent vectors (N, D) to 2-D for plotting; (N, ...) is flattened to (N, D).

    ``method``: ``"umap"`` (umap-learn, ``n_neighbors=15``), ``"tsne"``
    (scikit-learn, perplexity ``min(30, (N - 1) / 3)``, PCA init) or ``"pca"``. UMAP falls back to PCA under 50
    points (logged), t-SNE under 5 (with a warning logged); both when umap-learn is not installed or when they fail
    (with a warning). Deterministic for a given ``seed`` (UMAP then runs single-threaded).
    Returns a float64 (N, 2) array; :func:`project_2d` also names the method that made it.
    """
    return project_2d(latents, method, seed)[0]


def project_2d(latents, method: str = "umap", seed: int = 0) -> tuple[np.ndarray, str]:
    """:func:`embed_2d` and the name of the method that made the points (``"UMAP"``, ``"t-SNE"`` or ``"PCA"``, the
    fallback's name where there was one), for a plot's title."""
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
    if method not in _NAMES:
        raise ValueError(f"unknown embedding method {method!r}; use 'umap', 'tsne' or 'pca'")
    n = x.shape[0]
    if n and not np.ptp(x, axis=0).any():  # (t-SNE of identical points ended the process: a segmentation fault)
        log.warning("embed_2d: all %d latents are identical (a collapsed latent space): drawn at one point", n)
        return np.zeros((n, 2)), "PCA"
    if method == "pca":
        return _pca_2d(x), "PCA"
    distinct, back = np.unique(x, axis=0, return_inverse=True)
    if len(distinct) < n:  # each distinct latent mapped once, its copies drawn on it (a clip's audio latent repeated
        y, how = project_2d(distinct, method, seed)  # by its pairs: UMAP's layout of the copies changed from one
        return y[back.reshape(-1)], how  # run to the next)
    if n < _MIN_POINTS_NONLINEAR:
        log.warning("embed_2d: %d points are too few for %s; using PCA", n, method)
        return _pca_2d(x), "PCA"
    if method == "umap" and n < _MIN_POINTS_UMAP:
        log.info("embed_2d: %d points (under %d) are projected by PCA, not UMAP", n, _MIN_POINTS_UMAP)
        return _pca_2d(x), "PCA"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if method == "umap":
                import umap

                reducer = umap.UMAP(n_components=2, n_neighbors=15, random_state=int(seed))
                y = reducer.fit_transform(x)
            else:
                from sklearn.manifold import TSNE

                reducer = TSNE(n_components=2, perplexity=min(30.0, (n - 1) / 3.0),
                               init="pca", random_state=int(seed))
                y = reducer.fit_transform(x)
        y = np.asarray(y, dtype=np.float64)
        if y.shape != (n, 2) or not np.all(np.isfinite(y)):
            raise RuntimeError(f"{method} returned an unusable embedding of shape {y.shape}")
        return y, _NAMES[method]
    except Exception as exc:  # ImportError or any failure inside the reducer
        log.warning("embed_2d: %s failed (%s: %s); using PCA", method, type(exc).__name__, exc)
        return _pca_2d(x), "PCA"
