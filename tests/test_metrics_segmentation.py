"""Tests for latentbridge.metrics.segmentation with hand-computed values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from latentbridge.metrics.segmentation import dice, iou, segmentation_summary


def _masks():
    """Four 4x4 samples: partial overlap, perfect, healthy+clean, healthy+false alarm."""
    t = np.zeros((4, 4, 4))
    p = np.zeros((4, 4, 4))
    # sample 0: target 4 px (row 0), prediction 2 of them + 2 elsewhere -> I=2, U=6
    t[0, 0, :] = 1
    p[0, 0, :2] = 0.9
    p[0, 3, :2] = 0.6
    # sample 1: perfect match of 3 px (probabilities above threshold)
    t[1, 1, 1:4] = 1
    p[1, 1, 1:4] = 0.7
    # sample 2: healthy, prediction below threshold everywhere
    p[2] = 0.4
    # sample 3: healthy, one false-positive pixel
    p[3, 2, 2] = 0.51
    return p, t


def test_iou_dice_hand_computed():
    p, t = _masks()
    np.testing.assert_allclose(iou(p, t), [2 / 6, 1.0, 1.0, 0.0])
    # Dice = 2I / (|P| + |T|): sample 0 -> 4 / 8
    np.testing.assert_allclose(dice(p, t), [0.5, 1.0, 1.0, 0.0])
    # the empty/empty value is configurable
    np.testing.assert_allclose(iou(p, t, empty=0.0), [2 / 6, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(dice(p, t, empty=np.nan), [0.5, 1.0, np.nan, 0.0])
    # threshold: at 0.75 sample 0 keeps only its 0.9 pixels (I=2, U=4), sample 1 loses all,
    # sample 3's false alarm (0.51) disappears
    np.testing.assert_allclose(iou(p, t, threshold=0.75), [0.5, 0.0, 1.0, 1.0])
    # pred > threshold is strict
    assert iou(np.full((1, 2, 2), 0.5), np.ones((1, 2, 2)))[0] == 0.0


def test_dice_iou_relation_and_dtypes():
    rng = np.random.default_rng(0)
    p = rng.random((10, 1, 8, 8))
    t = rng.random((10, 1, 8, 8)) > 0.6  # bool target, (N, 1, H, W)
    j = iou(p, t)
    d = dice(p, t)
    assert j.shape == d.shape == (10,) and j.dtype == np.float64
    nonempty = (p > 0.5).reshape(10, -1).any(1) | t.reshape(10, -1).any(1)
    np.testing.assert_allclose(d[nonempty], 2 * j[nonempty] / (1 + j[nonempty]))
    # binary int masks work the same as probabilities
    np.testing.assert_allclose(iou((p > 0.5).astype(np.uint8), t.astype(np.int64)), j)


def test_summary_hand_computed():
    p, t = _masks()
    s = segmentation_summary(p, t)
    assert s["mean_iou"] == pytest.approx((2 / 6 + 1 + 1 + 0) / 4)
    assert s["mean_dice"] == pytest.approx((0.5 + 1 + 1 + 0) / 4)
    # wrong pixels: sample 0 -> 2 missed + 2 false = 4; sample 3 -> 1; of 64
    assert s["pixel_accuracy"] == pytest.approx(1 - 5 / 64)
    assert s["damaged_iou"] == pytest.approx((2 / 6 + 1) / 2)
    assert s["damaged_dice"] == pytest.approx((0.5 + 1) / 2)
    assert s["healthy_fpr"] == pytest.approx(0.5)
    assert (s["n"], s["n_damaged"], s["n_healthy"]) == (4, 2, 2)
    json.dumps(s)  # plain Python types
    assert all(type(v) in (float, int) for v in s.values())


def test_summary_one_group_missing():
    t = np.ones((2, 3, 3))
    s = segmentation_summary(t, t)
    assert s["healthy_fpr"] is None and s["damaged_iou"] == 1.0 and s["pixel_accuracy"] == 1.0
    z = np.zeros((2, 3, 3))
    s = segmentation_summary(z, z)
    assert s["damaged_iou"] is None and s["damaged_dice"] is None
    assert s["healthy_fpr"] == 0.0 and s["mean_iou"] == 1.0
    assert s["micro_iou"] == 1.0  # (it was 0: no union pooled, a perfect prediction read as a total failure)
    assert segmentation_summary(z, z, empty=0.0)["micro_iou"] == 0.0
    assert segmentation_summary(z, t)["micro_iou"] == 0.0  # predicting nothing of something


def test_bad_inputs():
    with pytest.raises(ValueError, match="differ in shape"):
        iou(np.zeros((2, 3, 3)), np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        dice(np.zeros((3, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        iou(np.full((1, 2, 2), np.nan), np.zeros((1, 2, 2)))
    with pytest.raises(ValueError, match="no samples"):
        segmentation_summary(np.zeros((0, 2, 2)), np.zeros((0, 2, 2)))


def test_crack_localisation_on_hand_made_masks():
    from latentbridge.metrics.segmentation import crack_localisation, crack_positions

    true = np.zeros((2, 4, 100), bool)
    true[0, 2:, 19:22] = True  # a crack at column 20 (4.1 m of 20 m)
    true[0, 1:, 70:72] = True  # and one at column 70.5
    pred = np.zeros((2, 4, 100), bool)
    pred[0, 3:, 24:25] = True  # 4 columns = 0.8 m from the first: found (radius 1 m)
    pred[0, 3:, 40:41] = True  # 19.5 columns from the nearest: a false crack
    pred[1, 3:, 50:51] = True  # a crack predicted on a healthy window: false
    np.testing.assert_allclose(crack_positions(true[0]), [20.0, 70.5])
    m = crack_localisation(pred, true, span_m=20.0)
    # distances: 0.8 m to the first true crack, 30.5 columns = 6.1 m to the second (missed)
    assert m["crack_localisation_error_m"] == pytest.approx((0.8 + 6.1) / 2)
    assert m["crack_missed_rate"] == pytest.approx(0.5)
    assert m["crack_false_rate"] == pytest.approx(2 / 3)
    assert (m["n_true_cracks"], m["n_predicted_cracks"]) == (2, 3)
    perfect = crack_localisation(true, true, span_m=20.0)
    assert perfect["crack_localisation_error_m"] == 0.0 and perfect["crack_missed_rate"] == 0.0
    nothing = crack_localisation(np.zeros_like(true), true, span_m=20.0)
    assert nothing["crack_localisation_error_m"] is None and nothing["crack_missed_rate"] == 1.0
    # a mask white over the span is not one crack at mid-span (it was: no false crack, and a "hit" where a true crack
    # lay near the middle): it claims a crack within every 2 m (the matching diameter), and most are false
    white = crack_localisation(np.ones_like(true), true, span_m=20.0)
    assert white["n_predicted_cracks"] == 20 and white["crack_false_rate"] == pytest.approx(18 / 20)  # 2 near a true one
    assert white["crack_missed_rate"] == 0.0
    np.testing.assert_allclose(crack_positions(np.ones((1, 100), bool), widest=10), np.arange(4.5, 100, 10))
    np.testing.assert_allclose(crack_positions(np.ones((1, 100), bool), widest=10.0001), np.arange(4.5, 100, 10))
    np.testing.assert_allclose(crack_positions(np.ones((1, 21), bool), widest=10), [3, 10, 17])
    wide = np.zeros((1, 4, 100), bool)  # a predicted run as wide as the diameter stays one crack at its centre
    wide[0, :, 15:25] = True
    assert crack_localisation(wide, true[:1], span_m=20.0)["n_predicted_cracks"] == 1
    zone = np.zeros((1, 4, 100), bool)  # a true damaged zone of 25 columns (5 m), predicted as it is: three cracks
    zone[0, :, 40:65] = True          # each side, all found, none false
    same = crack_localisation(zone, zone, span_m=20.0)
    assert (same["n_true_cracks"], same["n_predicted_cracks"], same["crack_false_rate"]) == (3, 3, 0.0)
    assert same["crack_localisation_error_m"] == 0.0 and same["crack_missed_rate"] == 0.0


def test_crack_operating_curve_and_its_plot(tmp_path, monkeypatch):
    """Localisation improves as a lower threshold adds cracks, at the price of false ones: the curve over the
    thresholds (metrics.json crack_operating_curve, plotted in the bridge reports) shows both."""
    from latentbridge.report.charts import plot_crack_operating_curve
    from latentbridge.metrics.segmentation import THRESHOLDS, crack_operating_curve

    true = np.zeros((1, 4, 100))
    true[0, 2:, 20] = 1  # a crack at column 20 (4.1 m of 20 m)
    prob = np.zeros((1, 4, 100))
    prob[0, 3, 26] = 0.6  # confident, 6 columns (1.2 m) away: missed at the 1-m radius
    prob[0, 3, 21] = 0.04  # faint, 1 column (0.2 m) away
    prob[0, 3, 80] = 0.04  # faint and false
    curve = {r["threshold"]: r for r in crack_operating_curve(prob, true, span_m=20.0)}
    assert list(curve) == list(THRESHOLDS)
    low, high = curve[0.03], curve[0.05]
    assert low["crack_localisation_error_m"] == pytest.approx(0.2) and low["crack_missed_rate"] == 0.0
    assert low["crack_false_rate"] == pytest.approx(2 / 3)  # the confident crack and the one at column 80
    assert high["crack_localisation_error_m"] == pytest.approx(1.2) and high["crack_missed_rate"] == 1.0
    assert high["crack_false_rate"] == 1.0
    assert curve[0.5]["crack_localisation_error_m"] == pytest.approx(1.2) and curve[0.5]["crack_false_rate"] == 1.0
    png = plot_crack_operating_curve(list(curve.values()), 0.05, tmp_path / "curve.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    # a threshold that was never calibrated is not called calibrated, in the legend nor in the report's text
    from matplotlib.figure import Figure

    from latentbridge.report.runs.multimodal import crack_curve_section

    figures, savefig = [], Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: (figures.append(fig), savefig(fig, *a, **k))[1])
    metrics = {"crack_operating_curve": list(curve.values())}
    for calibrated, name in ((True, "calibrated threshold 0.05"), (False, "default threshold (not calibrated) 0.05")):
        section = crack_curve_section(metrics, 0.05, tmp_path, calibrated=calibrated)
        legend = [t.get_text() for t in figures[-1].axes[0].get_legend().get_texts()]
        assert legend == [name], legend
        assert ("here the default threshold" in section[0]["text"]) is not calibrated
    with pytest.raises(ValueError, match="no threshold predicts a crack"):
        plot_crack_operating_curve(crack_operating_curve(np.zeros_like(prob), true, 20.0), 0.5, tmp_path / "x.png")


def test_ious_at_the_labels_size_count_what_the_grid_loses():
    from latentbridge.metrics.segmentation import full_size_ious

    # a 4 x 12 grid, labels 8 x larger; the prediction: crack in grid column 5 (full-size columns 40-47)
    prob = np.zeros((3, 1, 4, 12), dtype=np.float32)
    prob[:2, 0, :, 5] = 1.0
    wide, thin, healthy = (np.zeros((32, 96), dtype=bool) for _ in range(3))
    wide[:, 40:48] = True  # a crack as wide as the grid's cell: bilinear, then thresholded, gives it back
    thin[:, 44] = True  # one pixel wide: the grid draws it 8 pixels wide
    got = full_size_ious(prob, [wide, thin, healthy], threshold=0.5)
    assert got["mask_damaged_iou_full_size"] == pytest.approx((1.0 + 1 / 8) / 2)
    assert got["mask_iou_full_size"] == pytest.approx((1.0 + 1 / 8 + 1.0) / 3)  # empty vs empty: 1
    assert full_size_ious(prob[2:], [healthy], 0.5)["mask_damaged_iou_full_size"] is None
    with pytest.raises(ValueError, match="3 probabilities and 2 targets"):
        full_size_ious(prob, [wide, thin], 0.5)
    with pytest.raises(ValueError, match="2 probabilities and more targets"):
        full_size_ious(prob[:2], iter([wide, thin, healthy]), 0.5)
    assert full_size_ious(prob, iter([wide, thin, healthy]), 0.5) == got  # (an iterator: one state's mask at a time)
