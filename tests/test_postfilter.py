"""Global-variance post-filter of decoded log-mels: the DCT, ratios recovered from a known smoothing,
the smoothed spectra restored, silent frames untouched, storage and bad input."""

import numpy as np
import pytest
import torch

from latentbridge.transforms.postfilter import GlobalVariancePostFilter, dct_matrix

F, T, FLOOR = 16, 40, -100.0


def _pair(n=6, seed=0):
    """Real log-mels (speech in frames 5-29, padded silence at the floor elsewhere) and a copy whose
    cepstral deviations over time are shrunk by known factors (a decoder's smoothing)."""
    rng = np.random.default_rng(seed)
    d = dct_matrix(F).numpy()
    shrink = np.linspace(1.0, 0.25, F)  # fine envelope detail smoothed most
    real = np.full((n, 1, F, T), FLOOR)
    smooth = real.copy()
    for i in range(n):
        mean = rng.normal(0, 5, F)
        mean[0] = -40 * np.sqrt(F)  # a level of about -40 dB
        dev = rng.normal(0, 1, (F, 25)) * np.linspace(8, 2, F)[:, None]
        dev -= dev.mean(1, keepdims=True)
        real[i, 0, :, 5:30] = d.T @ (mean[:, None] + dev)
        smooth[i, 0, :, 5:30] = d.T @ (mean[:, None] + shrink[:, None] * dev)
    return real, smooth, shrink


def test_dct_matrix_is_orthonormal():
    d = dct_matrix(F)
    torch.testing.assert_close(d @ d.T, torch.eye(F, dtype=d.dtype))
    x = torch.randn(F, dtype=d.dtype)
    torch.testing.assert_close(d @ x, torch.as_tensor(__import__("scipy.fft").fft.dct(x.numpy(), norm="ortho")))


def test_fit_recovers_the_smoothing_and_apply_undoes_it():
    real, smooth, shrink = _pair()
    pf = GlobalVariancePostFilter.fit(real, smooth)
    assert pf.floor_db == FLOOR
    np.testing.assert_allclose(pf.ratio, 1 / shrink, rtol=1e-6)
    restored = pf.apply(smooth)
    np.testing.assert_allclose(restored, real, atol=1e-6)
    # in the speech frames the smoothed copy moved less from frame to frame; restored, it moves as much
    def flux(x):
        return np.abs(np.diff(x[..., 5:30], axis=-1)).mean()
    assert flux(smooth) < 0.85 * flux(real) and flux(restored) == pytest.approx(flux(real), rel=1e-6)


def test_silent_frames_and_types_are_kept():
    real, smooth, _ = _pair()
    pf = GlobalVariancePostFilter.fit(real, smooth)
    out = pf.apply(smooth.astype(np.float32))
    assert out.dtype == np.float32 and out.shape == smooth.shape
    np.testing.assert_array_equal(out[..., :5], smooth[..., :5].astype(np.float32))  # padding: untouched
    np.testing.assert_array_equal(out[..., 30:], smooth[..., 30:].astype(np.float32))
    assert out.min() >= FLOOR
    t = pf.apply(torch.from_numpy(smooth.astype(np.float32)))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), out, atol=1e-5)
    flat = np.where(smooth > FLOOR, smooth.mean(-1, keepdims=True), FLOOR)  # a decoder that does not move
    assert GlobalVariancePostFilter.fit(real, flat).ratio.max() == 8.0
    # a decoder with no smoothing: ratios 1, nothing changes
    same = GlobalVariancePostFilter.fit(real, real)
    np.testing.assert_allclose(same.ratio, 1.0)
    np.testing.assert_allclose(same.apply(real), real, atol=1e-9)


def test_storage_round_trip_and_bad_input():
    real, smooth, _ = _pair()
    pf = GlobalVariancePostFilter.fit(real, smooth)
    back = GlobalVariancePostFilter.from_dict(pf.to_dict())
    np.testing.assert_allclose(back.apply(smooth), pf.apply(smooth), atol=1e-4)
    assert GlobalVariancePostFilter.from_dict(None) is None
    with pytest.raises(ValueError, match="unknown post-filter kind 'x'"):
        GlobalVariancePostFilter.from_dict({"kind": "x"})
    with pytest.raises(ValueError, match="one shape"):
        GlobalVariancePostFilter.fit(real, smooth[:, :, :8])
    with pytest.raises(ValueError, match="16 mel bands, got log-mels with 8"):
        pf.apply(smooth[:, :, :8])
    with pytest.raises(ValueError, match="nothing to measure"):
        GlobalVariancePostFilter.fit(np.full((2, 1, F, T), FLOOR), np.full((2, 1, F, T), FLOOR))
