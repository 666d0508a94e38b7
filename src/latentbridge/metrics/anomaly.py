"""Anomaly-detection metrics: ROC AUC, partial AUC, threshold calibration, confusion metrics.

Conventions: ``labels`` are 1 = anomalous, 0 = normal; higher ``scores`` mean more anomalous;
a sample is flagged anomalous when ``score > threshold``. Every function returns plain Python
floats/ints so results can go straight into JSON.

``partial_auc`` follows the DCASE challenge (Task 2) definition, which is scikit-learn's
``roc_auc_score(labels, scores, max_fpr=0.1)``: the area under the ROC curve for
FPR in [0, max_fpr], *standardised* with the McClish correction

    pAUC = 0.5 * (1 + (A - A_min) / (A_max - A_min)),  A_min = max_fpr**2 / 2,  A_max = max_fpr

so a random detector scores 0.5 and a perfect one 1.0 (a perfectly inverted detector scores
``0.5 * (1 - A_min / (A_max - A_min))``, about 0.474 for max_fpr = 0.1, not 0).
Pass ``standardized=False`` for the raw area divided by ``max_fpr`` (0 to 1).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "roc_auc",
    "partial_auc",
    "threshold_mean_std",
    "threshold_quantile",
    "calibrate_threshold",
    "detection_metrics",
    "bootstrap_indices",
    "bootstrap_interval",
    "group_metrics",
]


def _scores(scores, name: str = "scores") -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        s = s.reshape(-1)
    if s.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(s)):
        bad = int((~np.isfinite(s)).sum())
        raise ValueError(f"{name} contains {bad} NaN or inf values")
    return s


def _labels(labels) -> np.ndarray:
    """``labels`` as 0 / 1 int64; ValueError for any other value (0.5 was read as 0, 2 as a missing class)."""
    y = np.asarray(labels).reshape(-1)
    if y.dtype == bool:
        y = y.astype(np.int64)
    uniq = set(np.unique(y).tolist())
    if not uniq <= {0, 1}:
        raise ValueError(f"labels must be 0 (normal) or 1 (anomalous); got values {sorted(uniq)}")
    return y.astype(np.int64)


def _labels_scores(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).reshape(-1)
    s = _scores(scores)
    if y.shape[0] != s.shape[0]:
        raise ValueError(f"labels and scores differ in length: {y.shape[0]} vs {s.shape[0]}")
    return _labels(y), s


def _need_both(y: np.ndarray, what: str) -> None:
    n_anom = int(y.sum())
    n_norm = int(y.size - n_anom)
    if n_anom == 0 or n_norm == 0:
        missing = "anomalous (1)" if n_anom == 0 else "normal (0)"
        raise ValueError(
            f"{what} needs both normal (0) and anomalous (1) labels; no {missing} samples "
            f"among {y.size}"
        )


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve (ties count half). ValueError when a class is missing."""
    from sklearn.metrics import roc_auc_score

    y, s = _labels_scores(labels, scores)
    _need_both(y, "roc_auc")
    return float(roc_auc_score(y, s))


def partial_auc(labels, scores, max_fpr: float = 0.1, standardized: bool = True) -> float:
    """Partial AUC over FPR in [0, max_fpr]; DCASE definition (McClish-standardised) by default.

    ``standardized=True`` returns ``sklearn.metrics.roc_auc_score(labels, scores,
    max_fpr=max_fpr)``. ``standardized=False`` returns the raw partial area divided by
    ``max_fpr`` (1.0 perfect, 0.0 perfectly inverted). ValueError when a class is missing.
    """
    from sklearn.metrics import auc, roc_auc_score, roc_curve

    if not (0.0 < float(max_fpr) <= 1.0):
        raise ValueError(f"max_fpr must be in (0, 1], got {max_fpr!r}")
    y, s = _labels_scores(labels, scores)
    _need_both(y, "partial_auc")
    if standardized:
        return float(roc_auc_score(y, s, max_fpr=float(max_fpr)))
    fpr, tpr, _ = roc_curve(y, s)
    if max_fpr >= 1.0:
        return float(auc(fpr, tpr))
    stop = int(np.searchsorted(fpr, max_fpr, side="right"))
    t_end = np.interp(max_fpr, [fpr[stop - 1], fpr[stop]], [tpr[stop - 1], tpr[stop]])
    area = auc(np.append(fpr[:stop], max_fpr), np.append(tpr[:stop], t_end))
    return float(area / max_fpr)


#: how a file's score is made from its windows' (:func:`aggregate_scores`)
AGGREGATES = ("mean", "max")


def aggregate_scores(scores: np.ndarray, file_index: np.ndarray, n_files: int, how: str = "mean") -> np.ndarray:
    """Each file's score from its windows' (``file_index``: the file of each window): their ``mean`` or ``max``; NaN
    for a file without windows. In one pass (a mask per file was quadratic: 20,000 files took 1.2 s, a million an
    hour). Another ``how`` is a ValueError (any string was taken for the mean, and named so in the metrics)."""
    if how not in AGGREGATES:
        raise ValueError(f"aggregate: 'mean' or 'max', got {how!r}")
    scores = np.asarray(scores, dtype=np.float64)
    file_index = np.asarray(file_index, dtype=np.int64)
    counts = np.bincount(file_index, minlength=n_files)[:n_files]
    if how == "max":
        agg = np.full(n_files, -np.inf)
        np.maximum.at(agg, file_index, scores)
    else:
        agg = np.bincount(file_index, weights=scores, minlength=n_files)[:n_files] / np.maximum(counts, 1)
    agg[counts == 0] = np.nan
    return agg


def threshold_mean_std(scores, k: float = 2.0) -> float:
    """``mean + k * std`` of (normal) scores, with the population std (ddof=0)."""
    if not math.isfinite(float(k)):
        raise ValueError(f"k must be a finite number, got {k!r}")
    s = _scores(scores)
    return float(s.mean() + float(k) * s.std())


def threshold_quantile(scores, false_alarm_rate: float = 0.01) -> float:
    """The ``1 - false_alarm_rate`` quantile of (normal) scores (linear interpolation).

    About ``false_alarm_rate`` of scores from the same distribution lie above it.
    """
    if not (0.0 < float(false_alarm_rate) < 1.0):
        raise ValueError(f"false_alarm_rate must be in (0, 1), got {false_alarm_rate!r}")
    s = _scores(scores)
    return float(np.quantile(s, 1.0 - float(false_alarm_rate)))


def calibrate_threshold(
    scores,
    method: str = "mean_std",
    k: float = 2.0,
    false_alarm_rate: float = 0.01,
) -> dict:
    """Pick a decision threshold from scores of normal data.

    Returns ``{"threshold", "method", "k" | "false_alarm_rate", "n", "mean", "std",
    "observed_false_alarm_rate"}`` where the last is the fraction of the given scores above
    the threshold.
    """
    s = _scores(scores)
    if method == "mean_std":
        thr = threshold_mean_std(s, k=k)
        param = {"k": float(k)}
    elif method == "quantile":
        thr = threshold_quantile(s, false_alarm_rate=false_alarm_rate)
        param = {"false_alarm_rate": float(false_alarm_rate)}
    else:
        raise ValueError(f"unknown threshold method {method!r}; use 'mean_std' or 'quantile'")
    return {
        "threshold": float(thr),
        "method": method,
        **param,
        "n": int(s.size),
        "mean": float(s.mean()),
        "std": float(s.std()),
        "observed_false_alarm_rate": float(np.mean(s > thr)),
    }


def _div(a: float, b: float) -> float:
    return float(a / b) if b else 0.0


def detection_metrics(labels, scores, threshold: float, max_fpr: float = 0.1) -> dict:
    """Threshold-free (AUC, pAUC) and thresholded metrics for one set of scores.

    Decision: ``score > threshold`` means anomalous. Ratios with a zero denominator are 0.0 (scikit-learn's
    ``zero_division``); ``balanced_accuracy`` is the mean rate of the classes present (as scikit-learn's: with normal
    recordings only, their true-negative rate, not half of it).
    ``auc`` and ``pauc`` are None when only one class is present (everything else still
    computed). Keys: auc, pauc, max_fpr, threshold, tp, fp, tn, fn, precision, recall, f1,
    accuracy, tpr, fpr, tnr, balanced_accuracy, n, n_normal, n_anomalous.
    """
    y, s = _labels_scores(labels, scores)
    thr = float(threshold)
    if math.isnan(thr):
        raise ValueError("threshold is NaN")
    pred = s > thr
    pos = y == 1
    tp = int(np.sum(pred & pos))
    fp = int(np.sum(pred & ~pos))
    tn = int(np.sum(~pred & ~pos))
    fn = int(np.sum(~pred & pos))
    n_anom = tp + fn
    n_norm = tn + fp
    both = n_anom > 0 and n_norm > 0
    precision = _div(tp, tp + fp)
    recall = _div(tp, n_anom)
    tnr = _div(tn, n_norm)
    return {
        "auc": roc_auc(y, s) if both else None,
        "pauc": partial_auc(y, s, max_fpr=max_fpr) if both else None,
        "max_fpr": float(max_fpr),
        "threshold": thr,
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "precision": precision,
        "recall": recall,
        "f1": _div(2 * precision * recall, precision + recall),
        "accuracy": _div(tp + tn, y.size),
        "tpr": recall,
        "fpr": _div(fp, n_norm),
        "tnr": tnr,
        "balanced_accuracy": 0.5 * (recall + tnr) if both else recall if n_anom else tnr,
        "n": int(y.size),
        "n_normal": int(n_norm),
        "n_anomalous": int(n_anom),
    }


def bootstrap_indices(labels, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """``n_boot`` resamples (rows) of the sample indices, drawn with replacement within each class, so
    every resample keeps the numbers of normal and anomalous samples. Share one array between
    detectors scored on the same samples to compare them on the same resamples (paired)."""
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot!r}")
    y = _labels(labels)
    _need_both(y, "bootstrap_indices")
    rng = np.random.default_rng(seed)
    parts = [rng.choice(np.flatnonzero(y == c), size=(int(n_boot), int((y == c).sum())), replace=True)
             for c in (0, 1)]
    return np.concatenate(parts, axis=1)


def bootstrap_interval(labels, scores, metric=roc_auc, level: float = 0.95, n_boot: int = 1000, seed: int = 0,
                       indices: np.ndarray | None = None) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric(labels, scores)`` (default: ROC AUC) over resamples of
    the samples (:func:`bootstrap_indices`, or the given ``indices``)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    y, s = _labels_scores(labels, scores)
    idx = bootstrap_indices(y, n_boot, seed) if indices is None else np.asarray(indices)
    values = np.array([metric(y[i], s[i]) for i in idx])
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def group_metrics(labels, scores, groups, domains=None, max_fpr: float = 0.1) -> dict[str, float | None]:
    """AUC and pAUC of the files of each group (a machine's ID, a DCASE section; None: in no group): ``auc_G``,
    ``pauc_G``, and their arithmetic means over the groups, ``auc_groups_mean`` / ``pauc_groups_mean`` (DCASE 2020's
    figure of a machine type). With ``domains`` (``"source"`` / ``"target"`` per file, None where unknown), each
    group's AUC per domain as DCASE 2022-2025 compute it, the domain's normal files against every anomalous file of the
    group (``auc_G_source``, ``auc_G_target``), and ``dcase_score``: the harmonic mean over the groups of their AUC
    per domain and their pAUC (the challenge's official score of a machine type). A figure of a group that lacks a class
    (or a domain its normal files) is None, and left out of the means; ``dcase_score`` is then None, as the challenge
    defines it over every section. ``n_files_in_no_group``: the files whose group is None, in none of these figures."""
    y, s = _labels_scores(labels, scores)
    groups = np.asarray([None if g is None else str(g) for g in groups], dtype=object)
    doms = None if domains is None else np.asarray(list(domains), dtype=object)
    if len(groups) != len(y) or (doms is not None and len(doms) != len(y)):
        raise ValueError(f"{len(y)} labels, {len(groups)} groups" + ("" if doms is None else f", {len(doms)} domains"))

    def both(mask: np.ndarray, fn, *args) -> float | None:
        k = y[mask]
        return fn(k, s[mask], *args) if 0 < k.sum() < len(k) else None

    out: dict[str, float | None] = {}
    means: dict[str, list[float]] = {"auc": [], "pauc": []}
    official: list[float | None] = []
    for g in sorted({g for g in groups if g is not None}):
        mine = groups == g
        out[f"auc_{g}"], out[f"pauc_{g}"] = both(mine, roc_auc), both(mine, partial_auc, max_fpr)
        for key in means:
            if out[f"{key}_{g}"] is not None:
                means[key].append(out[f"{key}_{g}"])
        if doms is not None:
            for d in ("source", "target"):
                out[f"auc_{g}_{d}"] = both(mine & ((doms == d) | (y == 1)), roc_auc)
            official += [out[f"auc_{g}_source"], out[f"auc_{g}_target"], out[f"pauc_{g}"]]
    out.update({f"{key}_groups_mean": float(np.mean(v)) if v else None for key, v in means.items()})
    out["n_files_in_no_group"] = int(sum(g is None for g in groups))
    if doms is not None:
        from scipy.stats import hmean

        out["dcase_score"] = float(hmean(official)) if official and None not in official else None
    return out
