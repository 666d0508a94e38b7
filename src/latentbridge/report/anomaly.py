"""Anomaly-detection figures: the ROC curve (with the pAUC region) and score histograms."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from latentbridge.report.common import _new_figure, _save, whole_ticks

__all__ = ["plot_roc", "plot_score_histogram"]


def plot_roc(labels, scores, path: str | Path, title: str = "", max_fpr: float = 0.1) -> Path:
    """ROC curve with the chance diagonal; the pAUC region (FPR <= max_fpr) is shaded. The pAUC in the legend is
    McClish-standardised (DCASE's: 0.5 at chance, 1 perfect), not the shaded area."""
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
    ax.plot(fpr, tpr, color="tab:blue", lw=2,
            label=f"ROC (AUC={auc_v:.3f},\npAUC={pauc_v:.3f} McClish-standardised: chance 0.5)")
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
    whole_ticks(ax.yaxis, [0, max((p.get_height() for p in ax.patches), default=1)])  # (a few files: 0.5, 1.5, ...)
    ax.set_title(title or "score distribution")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)
