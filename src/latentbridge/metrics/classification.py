"""Classification metrics: per-class accuracy and confusion, and the cross-modal coherence of
generated samples judged by a classifier."""

from __future__ import annotations

from typing import Any

import numpy as np


def class_labels(values, n_classes: int, what: str) -> np.ndarray:
    """``values`` as int64 class indices (flattened), refused unless each is a whole number in 0 ... n_classes - 1
    (1.7 was read as 1; -1 counted in the last row of the confusion matrix)."""
    raw = np.asarray(values).reshape(-1)
    labels = raw.astype(np.int64)
    wrong = (labels != raw) | (labels < 0) | (labels >= n_classes)
    if wrong.any():
        raise ValueError(f"{what} must be whole numbers 0-{n_classes - 1}, got {raw[wrong][0].item()!r}")
    return labels


def per_class(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = 10) -> dict[str, Any]:
    """Accuracy, per-class accuracy (None for classes without samples), counts and the confusion
    matrix (rows: true class, columns: predicted)."""
    y_true = class_labels(y_true, n_classes, "labels")
    y_pred = class_labels(y_pred, n_classes, "predictions")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{len(y_pred)} predictions for {len(y_true)} labels")
    conf = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(conf, (y_true, y_pred), 1)
    n = conf.sum(axis=1)
    per = {str(c): (float(conf[c, c] / n[c]) if n[c] else None) for c in range(n_classes)}
    return {"accuracy": float((y_true == y_pred).mean()) if len(y_true) else float("nan"),
            "per_class_accuracy": per, "per_class_n": {str(c): int(n[c]) for c in range(n_classes)},
            "confusion_matrix": conf.tolist()}


def coherence(classifier, generated, target_labels) -> dict[str, Any]:
    """How often ``classifier`` recognises the intended digit in generated samples.

    ``generated``: what the classifier takes (images for the MNIST classifier, log-mel features
    for the FSDD classifier), numpy or torch; ``target_labels``: the digit each sample was
    generated from. Returns ``accuracy`` (the coherence), ``n``, ``per_class_accuracy`` and
    ``per_class_n`` (by intended digit; None for digits without samples), ``confusion_matrix``
    (rows: intended, columns: predicted), ``chance`` (0.1) and, when the classifier has
    ``predict_proba``, ``mean_target_probability``.
    """
    if hasattr(target_labels, "detach"):
        target_labels = target_labels.detach().cpu().numpy()
    if np.asarray(target_labels).size == 0:
        raise ValueError("coherence needs at least one sample")
    targets = class_labels(target_labels, 10, "target labels")
    proba = None
    if hasattr(classifier, "predict_proba"):
        proba = np.asarray(classifier.predict_proba(generated))
        preds = proba.argmax(axis=1)
    else:
        preds = np.asarray(classifier.predict(generated)).reshape(-1)
    if len(preds) != len(targets):
        raise ValueError(f"{len(preds)} generated samples for {len(targets)} target labels")
    if len(preds) and (preds.min() < 0 or preds.max() > 9):  # (a -1 was counted as a 9)
        raise ValueError(f"the classifier predicted {preds[(preds < 0) | (preds > 9)][0].item()!r}, not a digit 0-9")
    res = per_class(targets, preds)
    out = {"accuracy": res["accuracy"], "n": int(len(targets)), "chance": 0.1,
           "per_class_accuracy": res["per_class_accuracy"], "per_class_n": res["per_class_n"],
           "confusion_matrix": res["confusion_matrix"]}
    if proba is not None:
        out["mean_target_probability"] = float(proba[np.arange(len(targets)), targets].mean())
    return out


def retrieval_accuracy(query: np.ndarray, gallery: np.ndarray, q_labels: np.ndarray, g_labels: np.ndarray) -> float:
    """Top-1 retrieval: the nearest gallery vector (cosine) has the query's label."""
    qn = query / (np.linalg.norm(query, axis=1, keepdims=True) + 1e-9)
    gn = gallery / (np.linalg.norm(gallery, axis=1, keepdims=True) + 1e-9)
    return float((np.asarray(g_labels)[np.argmax(qn @ gn.T, axis=1)] == np.asarray(q_labels)).mean())
