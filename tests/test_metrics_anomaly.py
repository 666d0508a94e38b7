"""Tests for latentbridge.metrics.anomaly against hand-computed numbers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from latentbridge.metrics.anomaly import (
    calibrate_threshold,
    detection_metrics,
    partial_auc,
    roc_auc,
    threshold_mean_std,
    threshold_quantile,
)

# McClish-standardised value for a raw partial area A with max_fpr = 0.1
def mcclish(area, max_fpr=0.1):
    lo, hi = max_fpr**2 / 2, max_fpr
    return 0.5 * (1 + (area - lo) / (hi - lo))


def test_auc_perfect_inverted_and_ties():
    y = [0, 0, 0, 1, 1]
    s = [0.1, 0.2, 0.3, 0.8, 0.9]
    assert roc_auc(y, s) == 1.0
    assert roc_auc(y, [-v for v in s]) == 0.0
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5
    assert roc_auc(np.array([False, True]), [0.0, 1.0]) == 1.0


def test_auc_small_hand_example():
    # pairs (anomalous > normal): 0.35 beats 0.1 only, 0.8 beats both -> 3 of 4
    y = [0, 0, 1, 1]
    s = [0.1, 0.4, 0.35, 0.8]
    assert roc_auc(y, s) == pytest.approx(0.75)


def test_pauc_hand_example():
    # ROC points: (0, .5) (.5, .5) (.5, 1) (1, 1); over FPR in [0, .1] TPR is 0.5 -> area 0.05
    y = [0, 0, 1, 1]
    s = [0.1, 0.4, 0.35, 0.8]
    assert partial_auc(y, s, standardized=False) == pytest.approx(0.5)
    assert partial_auc(y, s) == pytest.approx(mcclish(0.05))
    assert partial_auc(y, s) == pytest.approx(0.7368421, abs=1e-6)


def test_pauc_perfect_and_inverted():
    y = [0, 0, 0, 1, 1]
    s = [0.1, 0.2, 0.3, 0.8, 0.9]
    assert partial_auc(y, s) == pytest.approx(1.0)
    assert partial_auc(y, s, standardized=False) == pytest.approx(1.0)
    inv = [-v for v in s]
    assert partial_auc(y, inv, standardized=False) == pytest.approx(0.0)
    # McClish standardisation maps the worst case to 0.5 * (1 - A_min / (A_max - A_min))
    assert partial_auc(y, inv) == pytest.approx(mcclish(0.0))
    assert partial_auc(y, inv) == pytest.approx(0.4736842, abs=1e-6)


def test_pauc_max_fpr_one_is_auc():
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(50), np.ones(50)]
    s = np.r_[rng.normal(0, 1, 50), rng.normal(1, 1, 50)]
    assert partial_auc(y, s, max_fpr=1.0) == pytest.approx(roc_auc(y, s))
    assert partial_auc(y, s, max_fpr=1.0, standardized=False) == pytest.approx(roc_auc(y, s))


def test_missing_class_and_bad_input():
    with pytest.raises(ValueError, match="no anomalous"):
        roc_auc([0, 0, 0], [1, 2, 3])
    with pytest.raises(ValueError, match="no normal"):
        partial_auc([1, 1], [1, 2])
    with pytest.raises(ValueError, match="differ in length"):
        roc_auc([0, 1], [1, 2, 3])
    with pytest.raises(ValueError, match="labels must be 0"):
        roc_auc([0, 2], [1, 2])
    with pytest.raises(ValueError, match="NaN or inf"):
        roc_auc([0, 1], [1, float("nan")])
    with pytest.raises(ValueError, match="max_fpr"):
        partial_auc([0, 1], [0, 1], max_fpr=0)


def test_threshold_mean_std_known_numbers():
    s = [1.0, 2.0, 3.0, 4.0, 5.0]  # mean 3, population std sqrt(2)
    assert threshold_mean_std(s) == pytest.approx(3 + 2 * math.sqrt(2))
    assert threshold_mean_std(s, k=3) == pytest.approx(3 + 3 * math.sqrt(2))
    cal = calibrate_threshold(s, method="mean_std", k=1.0)
    assert cal == {
        "threshold": pytest.approx(3 + math.sqrt(2)),
        "method": "mean_std",
        "k": 1.0,
        "n": 5,
        "mean": 3.0,
        "std": pytest.approx(math.sqrt(2)),
        "observed_false_alarm_rate": 0.2,  # only 5 > 4.414
    }


def test_threshold_quantile_false_alarm_rate_on_held_out():
    rng = np.random.default_rng(0)
    train = rng.gamma(2.0, 1.0, 20000)
    held = rng.gamma(2.0, 1.0, 20000)
    for far in (0.01, 0.05):
        thr = threshold_quantile(train, false_alarm_rate=far)
        assert np.mean(held > thr) == pytest.approx(far, abs=max(0.004, 0.15 * far))
    cal = calibrate_threshold(train, method="quantile", false_alarm_rate=0.05)
    assert cal["method"] == "quantile" and cal["false_alarm_rate"] == 0.05
    assert cal["observed_false_alarm_rate"] == pytest.approx(0.05, abs=1e-3)
    assert "k" not in cal
    with pytest.raises(ValueError):
        threshold_quantile(train, false_alarm_rate=1.0)
    with pytest.raises(ValueError, match="unknown threshold method"):
        calibrate_threshold(train, method="otsu")
    with pytest.raises(ValueError, match="empty"):
        calibrate_threshold([])


def test_detection_metrics_confusion_matrix():
    y = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
    s = [0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.5, 0.8, 0.9, 0.55]
    m = detection_metrics(y, s, threshold=0.5)
    # score > 0.5: normals 0.6, 0.7 (FP=2, TN=4); anomalies 0.8, 0.9, 0.55 (TP=3), 0.5 (FN=1)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (3, 2, 4, 1)
    assert m["precision"] == pytest.approx(0.6)
    assert m["recall"] == m["tpr"] == pytest.approx(0.75)
    assert m["f1"] == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["fpr"] == pytest.approx(2 / 6)
    assert m["balanced_accuracy"] == pytest.approx(0.5 * (0.75 + 4 / 6))
    assert m["auc"] == pytest.approx(20 / 24)
    assert m["pauc"] == pytest.approx(partial_auc(y, s))
    assert (m["n_normal"], m["n_anomalous"], m["n"]) == (6, 4, 10)
    assert m["threshold"] == 0.5
    for k, v in m.items():
        assert v is None or type(v) in (int, float), (k, type(v))
    json.dumps(m)


def test_detection_metrics_zero_division_and_one_class():
    m = detection_metrics([0, 0, 1], [0.1, 0.2, 0.3], threshold=10.0)
    assert m["precision"] == 0.0 and m["recall"] == 0.0 and m["f1"] == 0.0 and m["fpr"] == 0.0
    assert m["accuracy"] == pytest.approx(2 / 3)
    m = detection_metrics([0, 0, 0], [0.1, 0.2, 0.3], threshold=0.15)
    assert m["auc"] is None and m["pauc"] is None
    assert m["fpr"] == pytest.approx(2 / 3) and m["recall"] == 0.0
    # balanced accuracy over the classes present, as scikit-learn's (0.5 * (0 + 1/3) = 0.167 before)
    from sklearn.metrics import balanced_accuracy_score

    with pytest.warns(UserWarning):
        assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score([0, 0, 0], [0, 1, 1])) == 1 / 3
    assert detection_metrics([1, 1, 1, 1], [0.1, 0.2, 0.3, 0.4], threshold=0.15)["balanced_accuracy"] == 0.75
    json.dumps(m)


def test_bootstrap_interval_keeps_the_classes_and_covers_the_estimate():
    from latentbridge.metrics.anomaly import bootstrap_indices, bootstrap_interval

    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(40), np.ones(30)].astype(int)
    s = rng.normal(size=70) + 1.0 * y  # AUC about 0.76
    idx = bootstrap_indices(y, n_boot=500, seed=1)
    assert idx.shape == (500, 70)
    assert ((y[idx] == 1).sum(axis=1) == 30).all()  # every resample keeps 30 anomalous, 40 normal
    lo, hi = bootstrap_interval(y, s, indices=idx)
    auc = roc_auc(y, s)
    assert lo < auc < hi and 0.1 < hi - lo < 0.35
    # more samples, narrower interval; a perfect detector has a degenerate one
    y4, s4 = np.tile(y, 4), np.r_[s, rng.normal(size=210) + np.tile(y, 3)]
    lo4, hi4 = bootstrap_interval(y4, s4, n_boot=500)
    assert hi4 - lo4 < 0.7 * (hi - lo)
    assert bootstrap_interval(y, y.astype(float), n_boot=50) == (1.0, 1.0)
    lo_p, hi_p = bootstrap_interval(y, s, metric=partial_auc, indices=idx)
    assert lo_p < partial_auc(y, s) < hi_p
    with pytest.raises(ValueError):
        bootstrap_indices(np.zeros(5))


def test_file_scores_from_window_scores_in_one_pass():
    """Each file's mean / max of its windows, files in any order, a file without windows NaN; a million windows of
    100,000 files in well under a second (a mask per file took minutes there)."""
    import time

    from latentbridge.tasks.anomaly import aggregate_scores

    scores = np.array([1.0, 3.0, 10.0, 2.0, 4.0])
    files = np.array([2, 0, 1, 0, 2])
    np.testing.assert_allclose(aggregate_scores(scores, files, 4, "mean")[:3], [2.5, 10.0, 2.5])
    np.testing.assert_allclose(aggregate_scores(scores, files, 4, "max")[:3], [3.0, 10.0, 4.0])
    assert np.isnan(aggregate_scores(scores, files, 4)[3]) and np.isnan(aggregate_scores(scores, files, 4, "max")[3])
    rng = np.random.default_rng(0)
    files = rng.integers(0, 100_000, 1_000_000)
    scores = rng.random(len(files))
    t = time.perf_counter()
    mean = aggregate_scores(scores, files, 100_000)
    assert time.perf_counter() - t < 2.0
    for i in (0, 17, 99_999):
        assert mean[i] == pytest.approx(scores[files == i].mean())
