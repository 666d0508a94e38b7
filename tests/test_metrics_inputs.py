"""Metrics against invalid inputs and against their references where they drifted: a NaN in an estimate raises
instead of leaving a channel out (PSNR rose from 30 to 40 dB), NaN features raise instead of a Fréchet distance of 0,
the PSD distance takes Welch's frames (scipy.signal.welch), a silent estimate gets PESQ's floor, labels and parameters
outside their range are named."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from latentbridge.metrics import anomaly as A
from latentbridge.metrics import clustering as K
from latentbridge.metrics import generative as G
from latentbridge.metrics import signal as S
from latentbridge.metrics import spatial as P
from latentbridge.metrics.classification import coherence

rng = np.random.default_rng(0)


@pytest.mark.parametrize("metric", [P.psnr, P.ssim, P.spectral_angle])
def test_spatial_metrics_refuse_a_non_finite_estimate_on_the_evaluated_pixels(metric):
    truth = rng.random((16, 16, 3))
    est = truth + 0.01 * rng.normal(size=truth.shape)
    good = metric(truth, est)
    assert np.isfinite(good)
    bad = est.copy()
    bad[5, 5, 2] = np.nan
    with pytest.raises(ValueError, match="estimate holds 1 non-finite"):
        metric(truth, bad)
    where = np.ones((16, 16), bool)
    where[5, 5] = False  # outside the evaluated pixels (enhance writes NaN there): not counted
    assert np.isfinite(metric(truth, bad, where))


def test_ssim_keeps_a_channel_whose_truth_is_nan_outside_the_evaluated_pixels():
    """A section's edge: NaN truth outside the evaluated pixels reached SSIM's windows and left the channel out."""
    truth = rng.random((16, 16, 2))
    est = truth + 0.05 * rng.normal(size=truth.shape)
    est[..., 0] += 0.2 * rng.normal(size=(16, 16))  # channel 0 worse: leaving it out raised the mean
    where = np.ones((16, 16), bool)
    where[:, :4] = False
    edged = truth.copy()
    edged[:, :4, 0] = np.nan
    both = P.ssim(truth, est, where)
    assert P.ssim(edged, est, where) == pytest.approx(both, abs=0.01)
    assert P.ssim(truth[..., 1:], est[..., 1:], where) > both + 0.05


def test_frechet_and_precision_recall_refuse_nan_features():
    a, b = rng.normal(size=(10, 2)), rng.normal(size=(10, 2))
    assert G.frechet_distance(a, b) > 0
    a[0, 0] = np.nan
    with pytest.raises(ValueError, match="features: 1 non-finite"):
        G.frechet_distance(a, b)  # was 0.0 (a NaN clamped by max(0, nan))
    with pytest.raises(ValueError, match="first mean: 1 non-finite"):
        G.frechet_distance_from_stats(np.array([np.nan, 0.0]), np.eye(2), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="real features"):
        G.precision_recall(a, rng.normal(size=(10, 2)))


def test_psd_distance_is_welchs_estimate():
    from scipy.signal import welch

    x = 1 + 0.01 * rng.normal(size=(20, 1, 4096))  # an offset: a tail cut off by zeros spread it over every bin
    y = 1 + 0.01 * rng.normal(size=(20, 1, 4097))
    ref = [np.mean([welch(s[0], nperseg=128, noverlap=96, window="hann", detrend=False)[1] for s in z], 0)
           for z in (x, y)]
    d = 10 * np.log10(ref[0] / ref[1])
    assert S.psd_distance(x, y) == pytest.approx(float(np.sqrt(np.mean(d * d))), rel=1e-6)  # 3.73 dB before
    assert S.psd_distance(x, y) < 0.2
    with pytest.raises(ValueError, match="hop must be at least 1"):
        S.psd_distance(x, y, hop=0)


def test_pesq_of_a_silent_estimate_is_the_floor():
    pytest.importorskip("pesq")
    t = np.arange(8000) / 8000
    speech = np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = S.pesq_score(np.zeros_like(speech), speech, 8000)  # the package failed: NaN to integer
    assert value == pytest.approx(1.0168, abs=1e-4) and "silent" in str(caught[0].message)
    assert S.pesq_batch(np.stack([np.zeros_like(speech), speech]), np.stack([speech, speech]), 8000)[0] == value


def test_labels_and_parameters_out_of_range_are_named():
    with pytest.raises(ValueError, match=r"got values \[0, 1, 2\]"):
        A.bootstrap_indices([0, 2, 1, 1])  # was "no normal (0) samples"
    with pytest.raises(ValueError, match="0.5"):
        A.bootstrap_indices([0, 0.5, 1], n_boot=1)  # was read as 0
    with pytest.raises(ValueError, match="n_boot must be at least 1"):
        A.bootstrap_interval([0, 1, 0, 1], [1, 2, 3, 4], n_boot=0)
    with pytest.raises(ValueError, match="k must be a finite number"):
        A.calibrate_threshold([1.0, 2.0, 3.0], k=float("nan"))
    with pytest.raises(ValueError, match="covers none"):
        K.agreement_zones(np.array([0, 0, 1, 1]), np.array([7, 7, 8, 8]), mapping={"0": 7, "1": 8})
    assert K.agreement_zones(np.array([0, 0, 1, 1]), np.array([7, 7, 8, 8]), mapping={0: 7, 1: 8})["overall_rate"] == 1
    with pytest.raises(ValueError, match="silhouette_sample_size 1: the subset it drew holds one cluster"):
        K.clustering_scores(rng.normal(size=(20, 2)), np.repeat([0, 1], 10), silhouette_sample_size=1)

    class Judge:
        def __init__(self, preds):
            self.preds = preds

        def predict(self, x):
            return np.asarray(self.preds)

    with pytest.raises(ValueError, match="1.7"):
        coherence(Judge([1, 2]), None, [1.7, 2])  # was read as 1: accuracy 1.0
    with pytest.raises(ValueError, match="predicted -1"):
        coherence(Judge([-1, 2]), None, [9, 2])  # was counted as a 9
