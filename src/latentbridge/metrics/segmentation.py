"""Binary segmentation metrics (crack masks): IoU, Dice and a damaged/healthy summary.

Conventions: ``pred`` and ``target`` are arrays of shape (N, ..., H, W), one mask per sample
along the first axis (e.g. (N, H, W) or (N, 1, H, W)). ``pred`` may hold probabilities or a
binary mask; a pixel is predicted positive (crack) when ``pred > threshold``. ``target`` may
be bool or 0/1 (or soft labels); a pixel is a true crack when ``target > 0.5``.

A sample whose prediction and target are both empty has no union, so its IoU/Dice is
undefined; it gets the value ``empty`` (1.0 by default: "correctly predicted nothing").
An empty target with a non-empty prediction (or the reverse) scores 0.0.

``iou``/``dice`` return per-sample numpy arrays; ``segmentation_summary`` returns plain Python
floats/ints (None where a value is undefined) so it can go straight into JSON.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["iou", "dice", "segmentation_summary", "mask_metrics", "crack_operating_curve", "full_size_ious",
           "THRESHOLDS"]

#: crack-probability thresholds the calibration chooses among: 0.01 ... 0.04, then 0.05 ... 0.5 (the multimodal
#: VAE's best on the validation windows lay at 0.05, the lowest of a grid that began there, on every seed measured)
THRESHOLDS = (0.01, 0.02, 0.03, 0.04) + tuple(round(0.05 * i, 2) for i in range(1, 11))
#: how ``metrics.json`` names the unit of the crack figures (``crack_localisation_unit``)
METRES, MASK_WIDTHS = "m", "mask widths (the span is unknown)"


def _masks(pred, target, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Binarised (N, P) pred and target masks, P = pixels per sample."""
    p = np.asarray(pred)
    t = np.asarray(target)
    if p.shape != t.shape:
        raise ValueError(f"pred and target differ in shape: {p.shape} vs {t.shape}")
    if p.ndim < 3:
        raise ValueError(
            f"pred and target must be (N, ..., H, W) with at least 3 dimensions, got shape "
            f"{p.shape}; add a sample axis (x[None]) for a single mask"
        )
    if p.shape[0] == 0:
        raise ValueError("pred and target hold no samples (N = 0)")
    if p.size == 0:
        raise ValueError(f"pred and target hold no pixels (shape {p.shape})")
    threshold = float(threshold)
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold!r}")
    for name, a in (("pred", p), ("target", t)):
        if a.dtype.kind not in "biuf":
            raise ValueError(f"{name} must be numeric or bool, got dtype {a.dtype}")
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            bad = int((~np.isfinite(a)).sum())
            raise ValueError(f"{name} contains {bad} NaN or inf values")
    n = p.shape[0]
    pb = (p > threshold).reshape(n, -1)
    tb = (t > 0.5).reshape(n, -1)
    return pb, tb


def _counts(pb: np.ndarray, tb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    inter = np.sum(pb & tb, axis=1, dtype=np.int64)
    n_pred = np.sum(pb, axis=1, dtype=np.int64)
    n_true = np.sum(tb, axis=1, dtype=np.int64)
    return inter, n_pred, n_true


def _iou_from_counts(inter, n_pred, n_true, empty: float) -> np.ndarray:
    union = n_pred + n_true - inter
    out = np.full(inter.shape, float(empty), dtype=np.float64)
    ok = union > 0
    out[ok] = inter[ok] / union[ok]
    return out


def _dice_from_counts(inter, n_pred, n_true, empty: float) -> np.ndarray:
    total = n_pred + n_true
    out = np.full(inter.shape, float(empty), dtype=np.float64)
    ok = total > 0
    out[ok] = 2.0 * inter[ok] / total[ok]
    return out


def iou(pred, target, threshold: float = 0.5, empty: float = 1.0) -> np.ndarray:
    """Per-sample intersection over union, shape (N,), float64.

    ``|P & T| / |P | T|`` with ``P = pred > threshold`` and ``T = target > 0.5``; samples with
    both masks empty get ``empty``.
    """
    pb, tb = _masks(pred, target, threshold)
    return _iou_from_counts(*_counts(pb, tb), empty)


def dice(pred, target, threshold: float = 0.5, empty: float = 1.0) -> np.ndarray:
    """Per-sample Dice coefficient (F1 over pixels), shape (N,), float64.

    ``2 |P & T| / (|P| + |T|)``; samples with both masks empty get ``empty``.
    """
    pb, tb = _masks(pred, target, threshold)
    return _dice_from_counts(*_counts(pb, tb), empty)


def segmentation_summary(pred, target, threshold: float = 0.5, empty: float = 1.0) -> dict:
    """Aggregate metrics over a set of masks.

    Keys:

    - ``mean_iou``, ``mean_dice``: mean of the per-sample values over all samples (samples with
      both masks empty count as ``empty``).
    - ``pixel_accuracy``: share of all pixels (over all samples) classified correctly.
    - ``damaged_iou``, ``damaged_dice``: mean IoU/Dice over samples whose target has at least
      one crack pixel; None when there are none.
    - ``healthy_fpr``: over samples whose target is empty, the share with *any* predicted
      crack pixel (a false alarm on a healthy sample); None when there are none.
    - ``micro_iou``: crack pixels of all samples pooled (total intersection / total union);
      predicting nothing scores 0, unlike ``mean_iou`` where empty-vs-empty samples score 1; with no
      crack pixel in any mask, predicted or true, the union is empty: ``empty`` as for one sample (it was 0
      beside a mean IoU of 1 for a perfect prediction of healthy states).
    - ``threshold``, ``n``, ``n_damaged``, ``n_healthy``.
    """
    pb, tb = _masks(pred, target, threshold)
    inter, n_pred, n_true = _counts(pb, tb)
    ious = _iou_from_counts(inter, n_pred, n_true, empty)
    dices = _dice_from_counts(inter, n_pred, n_true, empty)
    damaged = n_true > 0
    healthy = ~damaged
    n_damaged = int(damaged.sum())
    n_healthy = int(healthy.sum())
    return {
        "mean_iou": float(ious.mean()),
        "mean_dice": float(dices.mean()),
        "pixel_accuracy": float(np.mean(pb == tb)),
        "damaged_iou": float(ious[damaged].mean()) if n_damaged else None,
        "damaged_dice": float(dices[damaged].mean()) if n_damaged else None,
        "healthy_fpr": float(np.mean(n_pred[healthy] > 0)) if n_healthy else None,
        "micro_iou": float(inter.sum() / union) if (union := (n_pred + n_true - inter).sum()) else float(empty),
        "threshold": float(threshold),
        "n": int(ious.size),
        "n_damaged": n_damaged,
        "n_healthy": n_healthy,
    }


def crack_positions(mask: np.ndarray, widest: float | None = None) -> np.ndarray:
    """Centres (in columns, fractional) of the cracks of one boolean mask (H, W): runs of columns
    holding at least one crack pixel. ``widest`` (columns): a run wider splits into as few equal
    pieces no wider, each a crack at its centre (a mask white over the whole span was one crack at
    mid-span: it located a crack there, and was never a false one)."""
    cols = np.asarray(mask, dtype=bool).reshape(-1, np.shape(mask)[-1]).any(axis=0)
    out, start = [], None
    for i, on in enumerate(np.append(cols, False)):
        if on and start is None:
            start = i
        elif not on and start is not None:
            pieces = 1 if widest is None else max(1, math.ceil((i - start) / widest - 1e-9))
            size = (i - start) / pieces
            out.extend(start + size * (k + 0.5) - 0.5 for k in range(pieces))
            start = None
    return np.asarray(out, dtype=np.float64)


def crack_localisation(pred, target, threshold: float = 0.5, span_m: float = 1.0,
                       radius: float = 0.05) -> dict:
    """Where the predicted cracks are along the span, against the true ones.

    Columns are positions along the span (column ``c`` of ``W`` is at ``(c + 0.5) / W · span_m``).
    For every true crack: the distance to the nearest predicted crack of its mask (when the mask
    predicts any; one predicted crack may be the nearest of several); it is *missed* when no predicted
    crack lies within ``radius`` x span. A predicted crack with no true crack within that radius is
    *false*. A region wider than the matching diameter (2 x radius x span) is more than one place a
    crack is: it counts as that many cracks (:func:`crack_positions`), predicted or true alike, so a
    mask white over the span has its many false cracks, and a wide true zone predicted as it is has
    none. Returns
    ``crack_localisation_error_m`` (mean distance over true cracks that have a prediction to compare
    with; None without any), ``crack_missed_rate`` (share of true cracks), ``crack_false_rate`` (share of predicted cracks),
    and the counts."""
    pb, tb = _masks(pred, target, threshold)
    width = np.shape(pred)[-1]
    pb, tb = pb.reshape(len(pb), -1, width), tb.reshape(len(tb), -1, width)
    scale = span_m / width
    dists, n_true, n_missed, n_pred, n_false = [], 0, 0, 0, 0
    for p, t in zip(pb, tb):
        tp, pp = (crack_positions(m, widest=2 * radius * width) for m in (t, p))
        n_true += len(tp)
        n_pred += len(pp)
        for x in tp:
            d = float(np.min(np.abs(pp - x))) * scale if len(pp) else None
            if d is not None:
                dists.append(d)
            if d is None or d > radius * span_m:
                n_missed += 1
        for x in pp:
            if not len(tp) or float(np.min(np.abs(tp - x))) * scale > radius * span_m:
                n_false += 1
    return {"crack_localisation_error_m": float(np.mean(dists)) if dists else None,
            "crack_missed_rate": n_missed / n_true if n_true else None,
            "crack_false_rate": n_false / n_pred if n_pred else None,
            "n_true_cracks": n_true, "n_predicted_cracks": n_pred, "span_m": float(span_m),
            "match_radius_m": float(radius * span_m)}


def full_size_ious(prob, targets, threshold: float) -> dict:
    """IoU at the labels' own size: each crack probability of ``prob`` (n, h, w) or (n, 1, h, w), on a model's
    grid, brought to the size of its target in ``targets`` (n boolean arrays at full size, e.g. 512x1536, or an
    iterator of them) by bilinear interpolation (:func:`latentbridge.io.masks.upsample_mask`) and thresholded at
    ``threshold``. ``mask_iou_full_size`` (the mean over windows, empty vs empty 1), ``mask_damaged_iou_full_size``
    (over windows whose target has a crack; None without one): what the grid costs against the masks as drawn, thin
    cracks included."""
    from latentbridge.io.masks import upsample_mask

    p = np.asarray(prob, dtype=np.float32)
    p = p.reshape(len(p), *p.shape[-2:])
    ious, damaged, it = np.empty(len(p)), np.zeros(len(p), dtype=bool), iter(targets)
    for i, pi in enumerate(p):
        if (t := next(it, None)) is None:
            raise ValueError(f"{len(p)} probabilities and {i} targets")
        t = np.asarray(t, dtype=bool)
        pred = upsample_mask(pi, t.shape, threshold)[0] > threshold
        # (counted on booleans, the rule of iou(): float copies of camera-sized masks cost seconds each)
        inter, n_pred, n_true = _counts(pred.reshape(1, -1), t.reshape(1, -1))
        ious[i], damaged[i] = _iou_from_counts(inter, n_pred, n_true, 1.0)[0], n_true[0] > 0
    if next(it, None) is not None:
        raise ValueError(f"{len(p)} probabilities and more targets")
    return {"mask_iou_full_size": float(ious.mean()) if len(ious) else None,
            "mask_damaged_iou_full_size": float(ious[damaged].mean()) if damaged.any() else None}


def mask_metrics(prob: np.ndarray, target: np.ndarray, threshold: float, span_m: float | None) -> dict:
    """Segmentation figures (``mask_iou``, ``mask_dice``, ``mask_damaged_iou``, ``mask_healthy_fpr``, ...)
    and the crack localisation along the span of crack probabilities ``prob`` against labelled masks (``span_m``
    None: unknown, the crack figures in mask widths, ``crack_localisation_unit`` says so)."""
    seg = segmentation_summary(prob, target, threshold=threshold)
    out = {"mask_iou_micro": seg.pop("micro_iou"),
           "mask_iou_at_0.5": float(segmentation_summary(prob, target)["mean_iou"]),
           "mask_iou": seg["mean_iou"], "mask_dice": seg["mean_dice"],
           **{f"mask_{k}": v for k, v in seg.items() if k not in ("mean_iou", "mean_dice")}}
    out.update(crack_localisation(prob, target, threshold=threshold, span_m=span_m or 1.0))
    out["crack_localisation_unit"] = METRES if span_m else MASK_WIDTHS
    out["crack_operating_curve"] = crack_operating_curve(prob, target, span_m or 1.0)
    return out


def crack_operating_curve(prob: np.ndarray, target: np.ndarray, span_m: float) -> list[dict]:
    """The crack figures at every threshold of :data:`THRESHOLDS`: the localisation error falls as a mask predicts
    more cracks and the false-crack share rises with it, so two models are compared at equal false shares here, not
    only where each one's calibration puts it (the reports: the curve, the calibrated point marked)."""
    rows = []
    for t in THRESHOLDS:
        c = crack_localisation(prob, target, threshold=t, span_m=span_m)
        rows.append({"threshold": t, **{k: c[k] for k in ("crack_localisation_error_m", "crack_false_rate",
                                                           "crack_missed_rate")},
                     "mask_damaged_iou": segmentation_summary(prob, target, threshold=t)["damaged_iou"]})
    return rows
