"""Tests for latentbridge.metrics.signal with hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from latentbridge.metrics.signal import (
    cosine_similarity,
    log_spectral_distance,
    mae,
    mse,
    si_sdr,
    snr,
)

T = 1000
_t = np.arange(T)
SIG = np.sin(2 * np.pi * 5 * _t / T)  # zero mean, energy T / 2
ORTH = np.cos(2 * np.pi * 7 * _t / T)  # zero mean, orthogonal to SIG, energy T / 2


def test_si_sdr_orthogonal_noise_known_db():
    for a, want in ((0.1, 20.0), (1.0, 0.0), (10 ** (-30 / 20), 30.0)):
        est = SIG + a * ORTH
        assert float(si_sdr(est, SIG)) == pytest.approx(want, abs=1e-6)
        # scale invariance (negative scale included) and offset invariance (zero-mean)
        assert float(si_sdr(-3.5 * est + 2.0, SIG + 7.0)) == pytest.approx(want, abs=1e-6)


def test_si_sdr_scaled_copy_is_large_but_finite():
    # e_res = 0, so the value is capped by eps: 10 log10(||2 s||^2 / eps)
    v = float(si_sdr(2.0 * SIG, SIG))
    want = 10 * math.log10(4 * (T / 2) / 1e-8)  # ~113 dB
    assert math.isfinite(v)
    assert v == pytest.approx(want, abs=1e-3)
    assert float(si_sdr(2.0 * SIG, SIG, eps=1e-4)) == pytest.approx(10 * math.log10(4 * T / 2 / 1e-4), abs=1e-3)


def test_shapes_per_sample_and_channel():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(3, 2, 800))
    est = ref + 0.1 * rng.normal(size=ref.shape)
    for fn in (si_sdr, snr, log_spectral_distance, mae, mse, cosine_similarity):
        out = fn(est, ref)
        assert out.shape == (3, 2) and out.dtype == np.float64, fn.__name__
        np.testing.assert_allclose(out[1, 0], fn(est[1, 0], ref[1, 0]), err_msg=fn.__name__)
    assert np.shape(si_sdr(SIG, SIG)) == ()


def test_snr_hand_computed():
    assert float(snr(SIG + 0.1 * ORTH, SIG)) == pytest.approx(20.0, abs=1e-6)
    assert float(snr(2 * SIG, SIG)) == pytest.approx(0.0, abs=1e-6)  # error as loud as signal
    assert float(snr(SIG, SIG)) == pytest.approx(10 * math.log10((T / 2 + 1e-8) / 1e-8))


def test_lsd_identical_and_scaled():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 4000))
    np.testing.assert_array_equal(log_spectral_distance(x, x), [0.0, 0.0])
    # |2X|^2 = 4 |X|^2 in every bin -> every dB difference is 10 log10(4) = 20 log10(2)
    want = 20 * math.log10(2)  # 6.0206 dB
    np.testing.assert_allclose(log_spectral_distance(2 * x, x), [want, want], atol=1e-6)
    np.testing.assert_allclose(log_spectral_distance(x, 0.5 * x, n_fft=256, hop=100), [want, want], atol=1e-6)
    # shorter than n_fft: one zero-padded frame
    np.testing.assert_allclose(log_spectral_distance(2 * x[:, :100], x[:, :100]), [want, want], atol=1e-6)
    # silence vs silence is 0, not NaN
    assert float(log_spectral_distance(np.zeros(600), np.zeros(600))) == 0.0


def test_lsd_matches_scipy_stft():
    # independent reference: scipy's STFT (same periodic Hann frames, no padding when
    # T = n_fft + k * hop); its 1/sum(window) scaling cancels in the dB difference
    from scipy.signal import stft

    n_fft, hop = 128, 32
    rng = np.random.default_rng(2)
    x = rng.normal(size=n_fft + 20 * hop)
    y = x + 0.3 * rng.normal(size=x.size)
    _, _, zx = stft(x, window="hann", nperseg=n_fft, noverlap=n_fft - hop, boundary=None,
                    padded=False, detrend=False)
    _, _, zy = stft(y, window="hann", nperseg=n_fft, noverlap=n_fft - hop, boundary=None,
                    padded=False, detrend=False)
    d = 10 * np.log10(np.abs(zx) ** 2) - 10 * np.log10(np.abs(zy) ** 2)  # (freq, frames)
    assert d.shape == (n_fft // 2 + 1, 21)
    want = np.mean(np.sqrt(np.mean(d**2, axis=0)))
    got = float(log_spectral_distance(y, x, n_fft=n_fft, hop=hop, eps=1e-30))
    assert got == pytest.approx(want, rel=1e-9)


def _lsd_reference(estimate, reference, n_fft=512, hop=None, eps=1e-10):
    """The LSD as computed before it used the package's numpy STFT: scipy's periodic Hann,
    frames cut by hand from the tail-padded signal, rfft, one signal at a time."""
    from scipy.signal import get_window

    hop = n_fft // 4 if hop is None else hop
    window = get_window("hann", n_fft, fftbins=True)

    def power(x):
        t = x.shape[-1]
        n_frames = 1 if t <= n_fft else 1 + -(-(t - n_fft) // hop)
        x = np.pad(x, (0, max(0, n_fft + (n_frames - 1) * hop - t)))
        frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
        spec = np.fft.rfft(frames * window, axis=-1)
        return spec.real**2 + spec.imag**2  # (frames, F)

    e2 = np.asarray(estimate, np.float64).reshape(-1, np.shape(estimate)[-1])
    r2 = np.asarray(reference, np.float64).reshape(-1, np.shape(reference)[-1])
    out = []
    for e, r in zip(e2, r2):
        d = 10.0 * (np.log10(power(r) + eps) - np.log10(power(e) + eps))
        out.append(np.mean(np.sqrt(np.mean(d * d, axis=-1))))
    return np.array(out).reshape(np.shape(estimate)[:-1])


@pytest.mark.parametrize("n_fft,hop", [(512, None), (256, 100), (128, 32), (64, 64), (100, 7)])
def test_lsd_through_the_numpy_stft_matches_the_previous_formula(n_fft, hop):
    rng = np.random.default_rng(n_fft)
    step = n_fft // 4 if hop is None else hop
    # shorter than n_fft, exactly n_fft + k hops, and a zero-padded tail
    for t in (n_fft // 3, n_fft, n_fft + 5 * step, n_fft + 5 * step + step // 2 + 1, 3001):
        ref = rng.standard_normal((2, 3, t))
        est = ref + 0.5 * rng.standard_normal(ref.shape)
        est[1, 2] = 0.0  # silence: bins at the eps floor
        got = log_spectral_distance(est, ref, n_fft=n_fft, hop=hop)
        want = _lsd_reference(est, ref, n_fft=n_fft, hop=hop)
        assert got.shape == (2, 3) and np.all(want > 1.0)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0.0)


def test_mae_mse_cosine():
    ref = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]])
    est = np.array([[2.0, 2.0, 1.0, 4.0], [1.0, -1.0, 1.0, -1.0]])
    np.testing.assert_allclose(mae(est, ref), [0.75, 1.0])
    np.testing.assert_allclose(mse(est, ref), [1.25, 1.0])
    # row 0: <e, r> = 2 + 4 + 3 + 16 = 25, |e| = 5, |r| = sqrt(30); row 1: zero reference -> 0
    np.testing.assert_allclose(cosine_similarity(est, ref), [25 / (5 * math.sqrt(30)), 0.0])
    assert float(cosine_similarity(-3 * SIG, SIG)) == pytest.approx(-1.0)
    assert float(cosine_similarity(SIG, ORTH)) == pytest.approx(0.0, abs=1e-12)


def test_bad_inputs():
    with pytest.raises(ValueError, match="differ in shape"):
        si_sdr(np.zeros((2, 10)), np.zeros((2, 11)))
    with pytest.raises(ValueError, match="NaN"):
        mse(np.array([1.0, np.nan]), np.zeros(2))
    with pytest.raises(ValueError, match="no samples"):
        snr(np.zeros((2, 0)), np.zeros((2, 0)))
    with pytest.raises(ValueError, match="hop"):
        log_spectral_distance(np.zeros(10), np.zeros(10), hop=0)
