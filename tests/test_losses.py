"""Multimodal reconstruction and mask losses: hand-computed values, reductions, invariances."""

from __future__ import annotations

import math

import pytest
import torch

from latentbridge.losses import (
    BCEWithLogitsLoss,
    DiceLoss,
    FocalLoss,
    MagnitudeL1Loss,
    MaskLoss,
    MultiResolutionSTFTLoss,
    PhaseGradientLoss,
    PhaseLaplacianLoss,
    ScaleInvariantL1Loss,
    WaveformL1Loss,
)

T = lambda *a: torch.tensor(*a, dtype=torch.float64)  # noqa: E731


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- hand-computed values


def test_waveform_l1_hand():
    x_hat = T([[[1.0, -1.0], [0.0, 2.0]], [[5.0, 5.0], [5.0, 5.0]]])
    x = T([[[0.0, 0.0], [0.0, 0.0]], [[5.0, 5.0], [5.0, 5.0]]])
    # sample 0: (1 + 1 + 0 + 2) / 4 = 1; sample 1: 0
    assert torch.allclose(WaveformL1Loss("none")(x_hat, x), T([1.0, 0.0]))
    assert WaveformL1Loss()(x_hat, x).item() == pytest.approx(0.5)
    assert WaveformL1Loss("sum")(x_hat, x).item() == pytest.approx(1.0)
    # (B, T) input
    assert torch.allclose(WaveformL1Loss("none")(T([[1.0, 3.0]]), T([[0.0, 0.0]])), T([2.0]))


def test_si_l1_hand():
    # channel 0: y = [1, 2], ŷ = [2, 1]: alpha = <ŷ,y>/<y,y> = 4/5 = 0.8, alpha*y = [0.8, 1.6],
    #   residual = [1.2, -0.6] -> mean 0.9; mean|ŷ| = 1.5 -> 0.6
    # channel 1: y = [1, 0], ŷ = [0, 1]: orthogonal, alpha = 0, residual mean 0.5 / level 0.5 -> 1.0
    x_hat = T([[[2.0, 1.0], [0.0, 1.0]]])
    x = T([[[1.0, 2.0], [1.0, 0.0]]])
    loss = ScaleInvariantL1Loss("none")(x_hat, x)
    assert loss.shape == (1,)
    assert loss.item() == pytest.approx((0.6 + 1.0) / 2, abs=1e-7)
    # (B, T): the first channel alone
    assert ScaleInvariantL1Loss()(x_hat[:, 0], x[:, 0]).item() == pytest.approx(0.6, abs=1e-7)


def test_si_l1_invariances():
    g = _gen(1)
    y = torch.randn(3, 2, 256, generator=g, dtype=torch.float64)
    y_hat = y + 0.3 * torch.randn(3, 2, 256, generator=g, dtype=torch.float64)
    loss = ScaleInvariantL1Loss("none")
    base = loss(y_hat, y)
    assert (base > 0).all()
    for c in (3.0, 0.01, -2.0):
        assert torch.allclose(loss(c * y_hat, y), base, atol=1e-6)  # scale of the estimate
        assert torch.allclose(loss(y_hat, c * y), base, atol=1e-6)  # scale of the reference
    # zero iff the estimate is a scaled copy of the reference
    assert torch.allclose(loss(y, y), torch.zeros(3, dtype=torch.float64), atol=1e-7)
    assert torch.allclose(loss(-0.5 * y, y), torch.zeros(3, dtype=torch.float64), atol=1e-7)
    # not offset-invariant by default, but with zero_mean
    shifted = ScaleInvariantL1Loss("none", zero_mean=True)
    assert torch.allclose(shifted(y_hat + 5.0, y - 1.0), shifted(y_hat, y), atol=1e-6)
    # silent inputs stay finite
    z = torch.zeros(2, 1, 16, requires_grad=True)
    out = ScaleInvariantL1Loss()(z, torch.zeros(2, 1, 16))
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(z.grad).all()


def test_mrstft_hand_doubling():
    # |2Y| = 2|Y| wherever |Y|^2 > eps: SC = ||Y|| / ||Y|| = 1 and log term = ln 2 -> 1 + ln 2
    y = torch.randn(1, 1, 2048, generator=_gen(2), dtype=torch.float64)
    loss = MultiResolutionSTFTLoss(fft_sizes=(64, 128), w_sc=1.0, w_log_mag=1.0)
    assert loss(2 * y, y).item() == pytest.approx(1.0 + math.log(2.0), abs=1e-3)
    lin = MultiResolutionSTFTLoss(fft_sizes=(64,), w_sc=0.0, w_log_mag=0.0, w_lin_mag=1.0)
    mag = torch.stft(y[0], 64, 16, 64, torch.hann_window(64, dtype=torch.float64), return_complex=True).abs()
    assert lin(2 * y, y).item() == pytest.approx(mag.mean().item(), rel=1e-4)


def test_mrstft_matches_auraloss():
    auraloss = pytest.importorskip("auraloss")
    g = _gen(3)
    ffts, hops, wins = [64, 128, 256], [16, 32, 64], [64, 128, 256]
    ref = auraloss.freq.MultiResolutionSTFTLoss(fft_sizes=ffts, hop_sizes=hops, win_lengths=wins)
    ours = MultiResolutionSTFTLoss(fft_sizes=ffts, hop_sizes=hops, win_lengths=wins)
    # one mono item: identical to auraloss's own value (reduction mean)
    x_hat, x = torch.randn(1, 1, 1024, generator=g), torch.randn(1, 1, 1024, generator=g)
    assert ours(x_hat, x).item() == pytest.approx(ref(x_hat, x).item(), rel=1e-5)
    # batch: per sample = mean over channels of auraloss on each mono item
    x_hat, x = torch.randn(3, 2, 1024, generator=g), torch.randn(3, 2, 1024, generator=g)
    x[1] = x_hat[1]  # a perfect sample
    per = ours.__class__(fft_sizes=ffts, hop_sizes=hops, win_lengths=wins, reduction="none")(x_hat, x)
    expect = torch.stack([
        torch.stack([ref(x_hat[b, c].view(1, 1, -1), x[b, c].view(1, 1, -1)) for c in range(2)]).mean()
        for b in range(3)
    ])
    assert per.shape == (3,)
    assert torch.allclose(per, expect, rtol=1e-5, atol=1e-6)
    assert per[1].item() == pytest.approx(0.0, abs=1e-6)
    assert ours(x_hat, x).item() == pytest.approx(per.mean().item(), rel=1e-6)
    # (B, T) input is one channel
    assert torch.allclose(ours.__class__(fft_sizes=ffts, hop_sizes=hops, win_lengths=wins,
                                         reduction="none")(x_hat[:, 0], x[:, 0]),
                          torch.stack([ref(x_hat[b, 0].view(1, 1, -1), x[b, 0].view(1, 1, -1)) for b in range(3)]),
                          rtol=1e-5)


def test_mrstft_defaults_and_dtype():
    loss = MultiResolutionSTFTLoss()
    assert loss.fft_sizes == [64, 128, 256] and loss.hop_sizes == [16, 32, 64] and loss.win_lengths == [64, 128, 256]
    x = torch.randn(2, 3, 512, dtype=torch.float64, requires_grad=True)
    out = loss(x, torch.randn(2, 3, 512, dtype=torch.float64))
    out.backward()
    assert out.dtype == torch.float64 and torch.isfinite(x.grad).all()
    with pytest.raises(ValueError):
        MultiResolutionSTFTLoss(fft_sizes=(64, 128), hop_sizes=(16,))


def _mrstft_reference(x_hat, x, ffts, hops, wins, window="hann_window", w_sc=1.0, w_log_mag=1.0,
                      w_lin_mag=0.0, eps=1e-8, window_dtype=torch.float32):
    """The loss as it was computed before it used transforms.STFT: torch.stft with a window built
    by ``getattr(torch, window)(win_length)`` (float32, cast to the input's dtype), per item."""
    b, c, t = x_hat.shape
    xh, xr = x_hat.reshape(b * c, t), x.reshape(b * c, t)
    total = xh.new_zeros(b * c)
    for n_fft, hop, wl in zip(ffts, hops, wins):
        win = getattr(torch, window)(wl, dtype=window_dtype).to(x_hat.dtype)

        def mag(v):
            spec = torch.stft(v, n_fft, hop, wl, win, return_complex=True)
            return torch.sqrt(torch.clamp(spec.real.pow(2) + spec.imag.pow(2), min=eps))

        xm, ym = mag(xh), mag(xr)
        total = total + w_sc * (ym - xm).pow(2).sum(dim=(-2, -1)).sqrt() / (ym.pow(2).sum(dim=(-2, -1)).sqrt() + eps)
        total = total + w_log_mag * (torch.log(xm) - torch.log(ym)).abs().mean(dim=(-2, -1))
        total = total + w_lin_mag * (xm - ym).abs().mean(dim=(-2, -1))
    return (total / len(ffts)).reshape(b, c).mean(dim=1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("window", ["hann_window", "hamming_window", "blackman_window"])
def test_mrstft_through_transforms_stft_matches_the_torch_stft_formula(dtype, window):
    g = _gen(30)
    ffts, hops, wins = [64, 128, 256], [16, 32, 50], [64, 100, 256]  # a window shorter than n_fft too
    kw = dict(w_sc=1.0, w_log_mag=0.7, w_lin_mag=0.3)
    loss = MultiResolutionSTFTLoss(ffts, hops, wins, window=window, reduction="none", **kw)
    for _ in range(2):
        x = torch.randn(4, 2, 1500, generator=g, dtype=dtype)
        x_hat = x + 0.5 * torch.randn(4, 2, 1500, generator=g, dtype=dtype)
        want = _mrstft_reference(x_hat, x, ffts, hops, wins, window=window, **kw)
        got = loss(x_hat, x)
        assert got.dtype == dtype and got.shape == (4,)
        if dtype == torch.float32:  # the same ops on the same window
            torch.testing.assert_close(got, want, rtol=1e-6, atol=0.0)
        else:
            # float64 input now gets a float64-exact window instead of a float32 one cast up:
            # the old value moves by the float32 rounding of the window only ...
            torch.testing.assert_close(got, want, rtol=1e-7, atol=0.0)
            # ... and the new one is the formula with a float64 window, to float64 rounding
            exact = _mrstft_reference(x_hat, x, ffts, hops, wins, window=window, window_dtype=torch.float64, **kw)
            torch.testing.assert_close(got, exact, rtol=1e-12, atol=0.0)


def test_mrstft_windows_are_stft_buffers():
    loss = MultiResolutionSTFTLoss(fft_sizes=(64, 128), win_lengths=(48, 128))
    assert [s.n_fft for s in loss.stfts] == [64, 128] and [s.hop_length for s in loss.stfts] == [16, 32]
    assert torch.equal(loss.stfts[0].window, torch.hann_window(48))  # periodic, as torch builds it
    assert loss.state_dict() == {}  # nothing saved with a model that holds the loss
    x = torch.randn(2, 1, 512, generator=_gen(31), dtype=torch.float64)
    loss(x, x.flip(-1))
    w64 = loss.stfts[0]._window64  # float64 input: a float64-exact window, built once
    assert w64.dtype == torch.float64 and torch.equal(w64, torch.hann_window(48, dtype=torch.float64))
    loss(x.flip(-1), x)
    assert loss.stfts[0]._window64 is w64
    assert torch.equal(MultiResolutionSTFTLoss(window="hann").stfts[2].window, torch.hann_window(256))
    with pytest.raises(ValueError, match="unknown window"):
        MultiResolutionSTFTLoss(window="kaiser_window")


def test_magnitude_l1_hand():
    m_hat = T([[[1.0, 2.0], [3.0, 4.0]]])
    m = T([[[1.0, 1.0], [1.0, 1.0]]])
    assert MagnitudeL1Loss()(m_hat, m).item() == pytest.approx((0 + 1 + 2 + 3) / 4)
    # log: log(e*m + eps) - log(m + eps) ≈ 1 everywhere
    m = T([[[0.5, 2.0], [1.0, 4.0]]])
    assert MagnitudeL1Loss(log=True)(math.e * m, m).item() == pytest.approx(1.0, abs=1e-5)
    # complex spectrograms: magnitudes are compared, phases ignored
    spec = torch.polar(m, T([[[0.1, 2.0], [-3.0, 1.0]]]))
    assert MagnitudeL1Loss()(spec, m).item() == pytest.approx(0.0, abs=1e-12)
    # silent bins stay finite in log mode
    z = torch.zeros(1, 2, 3, requires_grad=True)
    out = MagnitudeL1Loss(log=True)(z, torch.zeros(1, 2, 3))
    out.backward()
    assert out.item() == 0.0 and torch.isfinite(z.grad).all()


def test_phase_gradient_hand():
    phi = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    # time diffs: row0 1, row1 0 -> 0.5; freq diffs: col0 0, col1 -1 -> 0.5; loss (0.5 + 0.5) / 2
    phi_hat = T([[[[0.0, 1.0], [0.0, 0.0]]]])
    assert PhaseGradientLoss()(phi_hat, phi).item() == pytest.approx(0.5)
    # wrapping: Δφ̂ = 3, Δφ = -3 -> wrap(6) = 6 - 2π; along freq wrap(-6) = 2π - 6
    phi_hat = T([[[[0.0, 3.0], [0.0, 0.0]]]])
    phi2 = T([[[[0.0, -3.0], [0.0, 0.0]]]])
    expect = (2 * math.pi - 6.0) / 2  # each axis: mean of [2π - 6, 0]; then the mean of the axes
    assert PhaseGradientLoss()(phi_hat, phi2).item() == pytest.approx(expect, abs=1e-12)
    # weight: differences weighted by the smaller weight of the two bins, normalised per sample
    w = T([[[[1.0, 1.0], [0.0, 1.0]]]])
    phi_hat = T([[[[0.0, 1.0], [0.0, 0.0]]]])
    # time: row0 weight 1 (|d| = 1), row1 weight 0 -> 1; freq: col0 weight 0, col1 weight 1 (|d| = 1) -> 1
    assert PhaseGradientLoss()(phi_hat, phi, weight=w).item() == pytest.approx(1.0, abs=1e-7)
    # (B, F, T) and complex inputs
    assert PhaseGradientLoss()(phi_hat[:, 0], phi[:, 0]).item() == pytest.approx(0.5)
    spec_hat = torch.polar(torch.ones_like(phi_hat), phi_hat)
    assert PhaseGradientLoss()(spec_hat, torch.polar(torch.ones_like(phi), phi)).item() == pytest.approx(0.5)


def test_phase_laplacian_hand():
    phi = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    phi_hat = phi.clone()
    phi_hat[..., 1, 1] = 1.0
    # time second diffs (interior column): rows 0, 2 -> 0, row 1 -> 0 - 2 + 0 = -2: mean 2/3; freq same
    assert PhaseLaplacianLoss()(phi_hat, phi).item() == pytest.approx(2.0 / 3.0)
    phi_hat[..., 1, 1] = 1.0 + 2 * math.pi  # 2πk on one bin changes nothing
    assert PhaseLaplacianLoss()(phi_hat, phi).item() == pytest.approx(2.0 / 3.0)


def _random_phase(shape, seed=0):
    return (torch.rand(shape, generator=_gen(seed), dtype=torch.float64) * 2 - 1) * math.pi


@pytest.mark.parametrize("cls", [PhaseGradientLoss, PhaseLaplacianLoss])
def test_phase_losses_offset_invariance(cls):
    phi = _random_phase((2, 3, 9, 11), 4)
    phi_hat = phi + 0.3 * _random_phase((2, 3, 9, 11), 5)
    loss = cls("none")
    base = loss(phi_hat, phi)
    assert (base > 0).all()
    assert torch.allclose(loss(phi, phi), torch.zeros(2, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(loss(phi_hat + 1.234, phi), base, atol=1e-10)  # constant offset
    k = torch.randint(-3, 4, phi.shape, generator=_gen(6)).to(phi.dtype)
    assert torch.allclose(loss(phi_hat + 2 * math.pi * k, phi - 2 * math.pi * k.flip(-1)), base, atol=1e-10)
    w = torch.rand(2, 3, 9, 11, generator=_gen(7), dtype=torch.float64)
    base_w = loss(phi_hat, phi, weight=w)
    assert torch.allclose(loss(phi_hat - 0.7 + 2 * math.pi * k, phi, weight=w), base_w, atol=1e-10)
    assert torch.allclose(loss(phi_hat, phi, weight=5 * w), base_w, atol=1e-7)  # per-sample normalisation


def test_linear_phase_ramp():
    phi = _random_phase((1, 2, 8, 10), 8)
    t = torch.arange(10, dtype=torch.float64)
    f = torch.arange(8, dtype=torch.float64).view(8, 1)
    a, b = 0.3, -0.2
    ramp_t, ramp_tf = a * t, a * t + b * f
    grad, lap = PhaseGradientLoss(), PhaseLaplacianLoss()
    # the gradient loss sees a ramp: |a| along time, 0 along frequency -> |a| / 2
    assert grad(phi + ramp_t, phi).item() == pytest.approx(abs(a) / 2, abs=1e-10)
    assert grad(phi + ramp_tf, phi).item() == pytest.approx((abs(a) + abs(b)) / 2, abs=1e-10)
    # the Laplacian loss does not
    assert lap(phi + ramp_t, phi).item() == pytest.approx(0.0, abs=1e-10)
    assert lap(phi + ramp_tf, phi).item() == pytest.approx(0.0, abs=1e-10)


def test_phase_losses_gradients_finite():
    phi_hat = _random_phase((2, 1, 5, 6), 9).requires_grad_(True)
    out = PhaseGradientLoss()(phi_hat, _random_phase((2, 1, 5, 6), 10)) + PhaseLaplacianLoss()(
        phi_hat, _random_phase((2, 1, 5, 6), 10))
    out.backward()
    assert torch.isfinite(phi_hat.grad).all() and phi_hat.grad.abs().sum() > 0


def test_dice_hand():
    logits = torch.zeros(1, 1, 2, 2)  # p = 0.5 everywhere
    target = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    # 1 - (2*0.5 + 1) / (2 + 1 + 1) = 0.5
    assert DiceLoss()(logits, target).item() == pytest.approx(0.5)
    # empty target, empty prediction -> 0; confident perfect prediction -> ~0; all wrong -> high
    assert DiceLoss()(torch.full((1, 1, 4, 4), -100.0), torch.zeros(1, 1, 4, 4)).item() == pytest.approx(0.0, abs=1e-7)
    t = (torch.rand(1, 1, 8, 8, generator=_gen(11)) > 0.5).float()
    assert DiceLoss()(200 * (t - 0.5), t).item() == pytest.approx(0.0, abs=1e-6)
    assert DiceLoss()(-200 * (t - 0.5), t).item() > 0.9
    with pytest.raises(ValueError):
        DiceLoss(smooth=0.0)


def test_bce_and_focal_hand():
    logits = torch.tensor([[0.0, math.log(3.0)]], dtype=torch.float64)  # p = 0.5, 0.75
    ones = torch.ones_like(logits)
    assert BCEWithLogitsLoss()(logits, ones).item() == pytest.approx((math.log(2) + math.log(4 / 3)) / 2)
    # focal: p = 0.75, t = 1: p_t = 0.75, CE = ln(4/3), (1 - p_t)^2 = 1/16
    #        p = 0.75, t = 0: p_t = 0.25, CE = ln 4,   (1 - p_t)^2 = 9/16
    x = torch.tensor([[math.log(3.0), math.log(3.0)]], dtype=torch.float64)
    t = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    fl1, fl0 = math.log(4 / 3) / 16, 9 * math.log(4) / 16
    assert FocalLoss(gamma=2)(x, t).item() == pytest.approx((fl1 + fl0) / 2)
    assert FocalLoss(gamma=2, alpha=0.25)(x, t).item() == pytest.approx((0.25 * fl1 + 0.75 * fl0) / 2)
    # gamma = 0 without alpha is the BCE
    z = torch.randn(3, 1, 4, 4, generator=_gen(12))
    tt = (torch.rand(3, 1, 4, 4, generator=_gen(13)) > 0.5).float()
    assert torch.allclose(FocalLoss(gamma=0.0, reduction="none")(z, tt), BCEWithLogitsLoss("none")(z, tt))
    # focal down-weights easy examples
    assert FocalLoss()(z, tt).item() < BCEWithLogitsLoss()(z, tt).item()


def test_mask_loss_parts():
    z = torch.randn(4, 1, 6, 6, generator=_gen(14))
    t = (torch.rand(4, 1, 6, 6, generator=_gen(15)) > 0.6).float()
    loss = MaskLoss(dice=1.0, bce=2.0, focal=0.5, gamma=2.0, reduction="none")
    total, parts = loss(z, t, return_parts=True)
    assert set(parts) == {"dice", "bce", "focal"}
    assert total.shape == (4,) and all(v.shape == (4,) for v in parts.values())
    assert torch.allclose(parts["dice"], DiceLoss("none")(z, t))
    assert torch.allclose(parts["bce"], BCEWithLogitsLoss("none")(z, t))
    assert torch.allclose(parts["focal"], FocalLoss(2.0, reduction="none")(z, t))
    assert torch.allclose(total, parts["dice"] + 2 * parts["bce"] + 0.5 * parts["focal"])
    assert torch.equal(loss(z, t), total)
    # default: dice + bce, focal off (not computed); mean reduction of total and parts
    total, parts = MaskLoss()(z, t, return_parts=True)
    assert set(parts) == {"dice", "bce"} and total.dim() == 0
    assert total.item() == pytest.approx(parts["dice"].item() + parts["bce"].item(), rel=1e-6)


# --------------------------------------------------------------------------- reductions, zero loss

_B = 3


def _wave_pair():
    g = _gen(20)
    return torch.randn(_B, 2, 512, generator=g), torch.randn(_B, 2, 512, generator=g)


def _spec_pair():
    g = _gen(21)
    return torch.rand(_B, 2, 9, 12, generator=g), torch.rand(_B, 2, 9, 12, generator=g)


def _mask_pair():
    g = _gen(22)
    return torch.randn(_B, 1, 8, 8, generator=g), (torch.rand(_B, 1, 8, 8, generator=g) > 0.5).float()


CASES = [
    (WaveformL1Loss, {}, _wave_pair),
    (ScaleInvariantL1Loss, {}, _wave_pair),
    (MultiResolutionSTFTLoss, {}, _wave_pair),
    (MagnitudeL1Loss, {}, _spec_pair),
    (MagnitudeL1Loss, {"log": True}, _spec_pair),
    (PhaseGradientLoss, {}, _spec_pair),
    (PhaseLaplacianLoss, {}, _spec_pair),
    (DiceLoss, {}, _mask_pair),
    (BCEWithLogitsLoss, {}, _mask_pair),
    (FocalLoss, {}, _mask_pair),
    (MaskLoss, {"focal": 1.0}, _mask_pair),
]


@pytest.mark.parametrize("cls,kw,data", CASES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_reductions(cls, kw, data):
    a, b = data()
    none = cls(reduction="none", **kw)(a, b)
    assert none.shape == (_B,)
    assert torch.isfinite(none).all()
    assert cls(reduction="mean", **kw)(a, b).item() == pytest.approx(none.mean().item(), rel=1e-6)
    assert cls(reduction="sum", **kw)(a, b).item() == pytest.approx(none.sum().item(), rel=1e-6)
    assert cls(**kw)(a, b).dim() == 0  # default: mean
    # each sample's value depends on that sample only
    assert torch.allclose(cls(reduction="none", **kw)(a[1:2], b[1:2]), none[1:2], rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError):
        cls(reduction="avg", **kw)(a, b)


@pytest.mark.parametrize("cls,kw,data", CASES[:7], ids=lambda v: getattr(v, "__name__", str(v)))
def test_zero_on_identical(cls, kw, data):
    a, _ = data()
    out = cls(reduction="none", **kw)(a, a.clone())
    assert torch.allclose(out, torch.zeros(_B), atol=1e-6)
