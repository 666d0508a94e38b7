"""Quality metrics of enhanced maps and the classical baselines."""

import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from latentbridge.metrics.spatial import coverage, enhancement_metrics, psnr, spectral_angle, ssim
from latentbridge.tasks import baselines as B


def _maps(seed=0, shape=(24, 28, 3)):
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, shape[0]), np.linspace(0, 1, shape[1]), indexing="ij")
    truth = np.stack([10 + 5 * np.sin(3 * yy + c) * np.cos(2 * xx) for c in range(shape[2])], axis=2)
    return truth.astype(np.float32), rng


def test_psnr_and_ssim_against_scikit_image():
    truth, rng = _maps()
    est = truth + rng.normal(0, 0.3, truth.shape).astype(np.float32)
    ref = np.mean([peak_signal_noise_ratio(truth[..., c].astype(np.float64), est[..., c].astype(np.float64),
                                           data_range=float(np.ptp(truth[..., c]))) for c in range(3)])
    assert psnr(truth, est) == pytest.approx(ref, rel=1e-6)
    maps = [structural_similarity(truth[..., c].astype(np.float64), est[..., c].astype(np.float64),
                                  data_range=float(np.ptp(truth[..., c])), full=True)[1].mean() for c in range(3)]
    assert ssim(truth, est) == pytest.approx(np.mean(maps), rel=1e-6)
    # only the pixels asked for count: errors elsewhere change nothing
    where = np.zeros(truth.shape[:2], dtype=bool)
    where[4:20, 4:20] = True
    worse = est.copy()
    worse[~where] += 50.0
    assert psnr(truth, worse, where) == pytest.approx(psnr(truth, est, where))
    assert ssim(truth, worse, where) == pytest.approx(ssim(truth, np.where(where[..., None], est, truth), where))
    assert ssim(truth, truth) == pytest.approx(1.0)
    # a constant clean channel (an m/z absent from the section) has no range: left out, not -260 dB in the mean;
    # a section under SSIM's 3 x 3 window has no SSIM (a traceback from scikit-image before)
    flat = truth.copy()
    flat[..., 1] = 0.0
    assert psnr(flat, est) == pytest.approx(np.mean([peak_signal_noise_ratio(
        truth[..., c].astype(np.float64), est[..., c].astype(np.float64), data_range=float(np.ptp(truth[..., c])))
        for c in (0, 2)]), rel=1e-6)
    assert np.isnan(psnr(np.zeros_like(truth), est)) and np.isnan(ssim(truth[:2], est[:2]))
    # nor an SSIM, which read a range of 1 in the data's units: 0.99 in one unit, 0.49 in a thousandth of it
    flat[..., 1] = 0.003
    rough = est.copy()
    rough[..., 1] = 0.003 + 0.003 * rng.normal(size=truth.shape[:2])
    assert ssim(flat, rough) == pytest.approx(np.mean([maps[0], maps[2]]), rel=1e-6)
    assert ssim(flat * 1000, rough * 1000) == pytest.approx(ssim(flat, rough), rel=1e-6)
    assert np.isnan(ssim(np.zeros_like(truth), est))


def test_spectral_angle_and_coverage():
    t = np.zeros((1, 2, 2), dtype=np.float32)
    t[0, 0] = [1, 0]
    t[0, 1] = [1, 1]
    e = np.zeros_like(t)
    e[0, 0] = [0, 3]   # orthogonal: 90 degrees
    e[0, 1] = [2, 2]   # same direction, other scale: 0 degrees
    assert spectral_angle(t, e) == pytest.approx(45.0, abs=1e-4)
    truth, rng = _maps(1, (60, 60, 4))
    sigma = np.full(truth.shape, 0.5, dtype=np.float32)
    est = truth + rng.normal(0, 0.5, truth.shape).astype(np.float32)
    assert coverage(truth, est, sigma) == pytest.approx(math.erf(2 / math.sqrt(2)), abs=0.01)
    m = enhancement_metrics(truth, est, sigma=sigma)
    assert m["coverage_1sigma"] == pytest.approx(0.683, abs=0.015) and m["relative_sigma"] == pytest.approx(
        0.5 / float(np.abs(truth).mean()), rel=1e-5)


def test_fill_block_mean_and_upscalers():
    x = np.arange(2 * 4 * 1, dtype=np.float32).reshape(2, 4, 1)
    valid = np.ones((2, 4), dtype=bool)
    valid[0, 1] = False
    filled = B.fill_invalid(x, valid)
    assert filled[0, 1, 0] in (x[0, 0, 0], x[0, 2, 0], x[1, 1, 0]) and np.array_equal(filled[valid], x[valid])
    low, lv = B.block_mean(x, valid)
    np.testing.assert_allclose(low[..., 0], [[(0 + 4 + 5) / 3, (2 + 3 + 6 + 7) / 4]])
    assert lv.all()
    ramp = np.tile(np.arange(16, dtype=np.float32)[None, :, None], (16, 1, 2))
    low, lv = B.block_mean(ramp, np.ones((16, 16), dtype=bool))
    assert np.array_equal(B.upscale_nearest(low, lv), np.repeat(np.repeat(low, 2, 0), 2, 1))
    for fn in (B.upscale_bicubic, B.upscale_lanczos):
        up = fn(low, lv)
        assert up.shape == ramp.shape
        np.testing.assert_allclose(up[:, 3:-3], ramp[:, 3:-3], atol=0.15)  # a linear ramp comes back


def test_denoisers_inpainting_and_tuning():
    truth, rng = _maps(2, (40, 44, 2))
    noisy = truth + rng.normal(0, 1.0, truth.shape).astype(np.float32)
    valid = np.ones(truth.shape[:2], dtype=bool)
    assert B.noise_sigma(noisy[..., 0] - truth[..., 0]) == pytest.approx(1.0, rel=0.1)
    base = psnr(truth, noisy)
    for name, b in B.DENOISERS.items():
        assert psnr(truth, B.run(b, (noisy, valid))) > base + 2, name
    cases = [((noisy, valid), truth, None)]
    assert B.tune(B.DENOISERS["gaussian"], cases) in (1.0, 1.5, 2.0)  # smooth truth: wide filters win
    # a tuning section with a constant clean map has no PSNR: the others choose (every value scored NaN, the first won)
    flat = ((noisy, valid), np.full_like(truth, 0.5), None)
    assert B.tune(B.DENOISERS["gaussian"], [*cases, flat]) == B.tune(B.DENOISERS["gaussian"], cases)
    assert B.tune(B.DENOISERS["gaussian"], [flat]) is None
    missing = rng.random(valid.shape) < 0.2
    filled = B.biharmonic(np.where(missing[..., None], 0, truth), valid & ~missing, missing)
    assert psnr(truth, filled, missing) > 45 and np.array_equal(filled[~missing], truth[~missing])


def test_spectral_angle_does_not_depend_on_the_datas_units():
    rng = np.random.default_rng(0)
    truth = rng.random((6, 6, 5)) + 0.1
    est = truth + 0.1 * rng.random(truth.shape)
    same = [spectral_angle(truth * s, truth * s) for s in (1, 1e-3, 1e-6, 1e-30)]
    assert max(same) < 1e-5  # (at 1e-6 an absolute guard on the norms read 30 degrees)
    noisy = [spectral_angle(truth * s, est * s) for s in (1, 1e-3, 1e-6, 1e-30)]
    assert np.ptp(noisy) < 1e-6 and 0.5 < noisy[0] < 10
    zero = np.zeros((2, 2, 3))
    assert spectral_angle(zero, zero) == 0.0 and spectral_angle(zero, zero + 1) == pytest.approx(90.0)
