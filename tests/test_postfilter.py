"""Global-variance post-filter of decoded log-mels: the DCT, ratios recovered from a known smoothing,
the smoothed spectra restored, silent frames untouched, storage and bad input."""

import numpy as np
import pytest
import torch

from latentbridge.transforms.postfilter import GlobalVariancePostFilter
from latentbridge.transforms.stats import dct_matrix

F, T, FLOOR = 16, 40, -100.0


def _pair(n=6, seed=0):
    """Real log-mels (speech in frames 5-29, padded silence at the floor elsewhere) and a copy whose
    cepstral deviations over time are shrunk by known factors (a decoder's smoothing)."""
    rng = np.random.default_rng(seed)
    d = dct_matrix(F, F, torch.float64).numpy()
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
    d = dct_matrix(F, F, torch.float64)
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
    with pytest.raises(ValueError, match=r"16 mel bands, got log-mels of shape \(6, 1, 8, 40\)"):
        pf.apply(smooth[:, :, :8])
    with pytest.raises(ValueError, match="nothing to measure"):
        GlobalVariancePostFilter.fit(np.full((2, 1, F, T), FLOOR), np.full((2, 1, F, T), FLOOR))


def test_frames_silent_in_the_decoded_copy_are_left_out_of_the_fit():
    """A frame the decoder returns as silence (at the floor, or within ``active_db`` of it) while the real
    clip speaks is measured in neither: the ratios stay those of the frames both have."""
    real, smooth, shrink = _pair()
    smooth[:, :, :, 5] = FLOOR + 0.03  # e.g. a decoded -99.97 dB where the real frame speaks
    smooth[:, :, :, 29] = FLOOR
    np.testing.assert_allclose(GlobalVariancePostFilter.fit(real, smooth).ratio, 1 / shrink, rtol=1e-6)


def test_output_stays_between_the_training_floor_and_ceiling():
    real, smooth, _ = _pair()
    pf = GlobalVariancePostFilter.fit(real, smooth)
    assert pf.ceiling_db == real.max()
    loud = smooth.copy()
    loud[..., 10] = real.max() - 1.0  # a loud frame ...
    loud[..., 3:13, 10] += 60.0  # ... with a sharp peak and a deep valley for the filter to deepen
    loud[..., 13:, 10] = FLOOR + 2.0
    out = pf.apply(loud)
    assert out[..., 10].max() == pytest.approx(pf.ceiling_db) and out[..., 10].min() == pytest.approx(FLOOR)
    unbounded = GlobalVariancePostFilter(pf.ratio, FLOOR).apply(loud)  # no ceiling stored (older stages)
    assert unbounded.max() > pf.ceiling_db + 10


def test_channels_are_clips_of_their_own():
    real, smooth, shrink = _pair(n=6)
    two = GlobalVariancePostFilter.fit(real.reshape(3, 2, F, T), smooth.reshape(3, 2, F, T))
    np.testing.assert_allclose(two.ratio, 1 / shrink, rtol=1e-6)
    np.testing.assert_allclose(two.apply(smooth.reshape(3, 2, F, T)), real.reshape(3, 2, F, T), atol=1e-6)


def test_stored_values_are_checked():
    real, smooth, _ = _pair()
    d = GlobalVariancePostFilter.fit(real, smooth).to_dict()
    for bad, says in (([1, 2], "a mapping"), ({**d, "ratio": [1.0, -2.0]}, "finite numbers > 0"),
                      ({**d, "ratio": 3.0}, "finite numbers > 0"), ({**d, "ratio": [1.0, float("nan")]}, "finite"),
                      ({k: v for k, v in d.items() if k != "floor_db"}, "missing or not numbers"),
                      ({**d, "ceiling_db": -200.0}, "out of order")):
        with pytest.raises(ValueError, match=says):
            GlobalVariancePostFilter.from_dict(bad)
