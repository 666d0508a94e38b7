"""Training-only augmentations: exact SNR, pink spectrum, SpecAugment masks, flips, shifts, seeding."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch
from scipy.signal import welch

from latentbridge.config import AugmentConfig
from latentbridge.data.augment import (
    SpecAugment,
    WaveAugment,
    add_pink_noise,
    coloured_noise,
    AugmentedBatches,
    pink_noise,
    shift_frames,
    shift_windows,
    sign_flip,
    spec_augment,
    spec_augment_masks,
    time_shift,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _wave(b=4, c=3, t=2048, seed=0):
    g = _gen(seed)
    tt = torch.arange(t) / 1000.0
    amp = torch.rand(b, c, 1, generator=g) * 3 + 0.1
    freq = torch.rand(b, c, 1, generator=g) * 200 + 5
    return amp * torch.sin(2 * torch.pi * freq * tt) + 0.1 * torch.randn(b, c, t, generator=g)


def _snr_db(signal, noise):
    return 10 * torch.log10(signal.double().pow(2).mean(-1) / noise.double().pow(2).mean(-1))


# --------------------------------------------------------------------------- pink noise


@pytest.mark.parametrize("snr", [-5.0, 0.0, 10.0, 30.0])
def test_add_pink_noise_exact_snr(snr):
    wave = _wave()
    out = add_pink_noise(wave, snr, p=1.0, generator=_gen(1))
    measured = _snr_db(wave, out - wave)
    assert measured.shape == (4, 3)
    assert torch.allclose(measured, torch.full_like(measured, snr), atol=0.1)


def test_add_pink_noise_per_sample_snr_and_silence():
    wave = _wave(b=3)
    wave[2, 1] = 0.0
    snr = torch.tensor([0.0, 6.0, 20.0])
    out = add_pink_noise(wave, snr, p=1.0, generator=_gen(2))
    measured = _snr_db(wave, out - wave)
    assert torch.allclose(measured[:2], snr[:2, None].double().expand(2, 3), atol=0.1)
    assert torch.allclose(measured[2, [0, 2]], torch.full((2,), 20.0, dtype=torch.float64), atol=0.1)
    assert torch.equal(out[2, 1], wave[2, 1])  # a silent channel gets no noise


def test_pink_noise_unit_variance_and_slope():
    x = pink_noise((16, 1 << 14), generator=_gen(3), dtype=torch.float64)
    assert torch.allclose(x.mean(-1), torch.zeros(16, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(x.var(-1, unbiased=False), torch.ones(16, dtype=torch.float64), atol=1e-9)
    f, psd = welch(x.numpy(), fs=1.0, nperseg=1024, axis=-1)
    psd = psd.mean(axis=0)
    band = (f > 4 / 1024) & (f < 0.45)
    slope = np.polyfit(np.log10(f[band]), np.log10(psd[band]), 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.2)
    # white noise for contrast: slope ~ 0
    w = torch.randn(16, 1 << 14, generator=_gen(4), dtype=torch.float64).numpy()
    fw, pw = welch(w, fs=1.0, nperseg=1024, axis=-1)
    assert abs(np.polyfit(np.log10(fw[band]), np.log10(pw.mean(0)[band]), 1)[0]) < 0.2


@pytest.mark.parametrize("exponent", [0.0, 2.0])
def test_coloured_noise_slope(exponent):
    """White and brown noise: power falling as 1/f^exponent, unit variance; exponent 1 is pink_noise itself."""
    x = coloured_noise((16, 1 << 14), exponent, generator=_gen(30), dtype=torch.float64)
    assert torch.allclose(x.var(-1, unbiased=False), torch.ones(16, dtype=torch.float64), atol=1e-9)
    f, psd = welch(x.numpy(), fs=1.0, nperseg=1024, axis=-1)
    band = (f > 4 / 1024) & (f < 0.45)
    slope = np.polyfit(np.log10(f[band]), np.log10(psd.mean(0)[band]), 1)[0]
    assert slope == pytest.approx(-exponent, abs=0.2)
    torch.testing.assert_close(coloured_noise((2, 256), 1.0, generator=_gen(31)), pink_noise((2, 256), generator=_gen(31)))


# --------------------------------------------------------------------------- p=0 / p=1


def test_probabilities():
    wave = _wave(b=400, c=2, t=64)
    for fn, kw in [(add_pink_noise, {"snr_db": 10.0}), (sign_flip, {}), (time_shift, {"max_shift": 8})]:
        assert torch.equal(fn(wave, p=0.0, generator=_gen(5), **kw), wave)
    changed = (add_pink_noise(wave, 10.0, p=1.0, generator=_gen(6)) != wave).flatten(1).any(1)
    assert changed.all()
    assert torch.equal(sign_flip(wave, p=1.0, generator=_gen(7)), -wave)
    frac = (add_pink_noise(wave, 10.0, p=0.3, generator=_gen(8)) != wave).flatten(1).any(1).float().mean()
    assert frac.item() == pytest.approx(0.3, abs=0.08)
    with pytest.raises(ValueError):
        sign_flip(wave, p=1.5)


def test_sign_flip_exact():
    wave = _wave(b=500, c=3, t=32)
    out = sign_flip(wave, p=0.4, generator=_gen(9))
    flipped = torch.tensor([torch.equal(out[b], -wave[b]) for b in range(500)])
    kept = torch.tensor([torch.equal(out[b], wave[b]) for b in range(500)])
    assert (flipped ^ kept).all()  # every sample is exactly itself or exactly its negation
    assert flipped.float().mean().item() == pytest.approx(0.4, abs=0.07)


def test_time_shift_equals_roll():
    wave = _wave(b=64, c=2, t=50)
    max_shift = 7
    out = time_shift(wave, max_shift, p=1.0, generator=_gen(10))
    shifts = []
    for b in range(64):
        found = [s for s in range(-max_shift, max_shift + 1) if torch.equal(out[b], torch.roll(wave[b], s, dims=-1))]
        assert len(found) == 1, f"sample {b} is not a roll by at most {max_shift}"
        shifts.append(found[0])
    assert len(set(shifts)) > 5 and min(shifts) < 0 < max(shifts)
    assert torch.equal(time_shift(wave, 0, p=1.0, generator=_gen(10)), wave)
    # (B, T) input
    w2 = wave[:, 0]
    o2 = time_shift(w2, 3, p=1.0, generator=_gen(11))
    assert all(any(torch.equal(o2[b], torch.roll(w2[b], s)) for s in range(-3, 4)) for b in range(64))


def test_shift_frames_moves_content_and_fills_without_wrapping():
    x = torch.arange(2 * 3 * 6, dtype=torch.float32).view(2, 1, 3, 6)
    fill = torch.full((2, 1, 3, 1), -50.0)
    out = shift_frames(x, torch.tensor([2, -3]), fill)
    assert torch.equal(out[0, ..., 2:], x[0, ..., :4]) and (out[0, ..., :2] == -50).all()
    assert torch.equal(out[1, ..., :3], x[1, ..., 3:]) and (out[1, ..., 3:] == -50).all()
    assert torch.equal(shift_frames(x, torch.zeros(2, dtype=torch.long), fill), x)


def test_shift_windows_fills_with_each_bands_floor_and_respects_p():
    from latentbridge.config.sections import WindowShiftConfig

    g = _gen(3)
    x = torch.randn(256, 2, 4, 40, generator=g)
    out = shift_windows(x, _gen(4), WindowShiftConfig(time_shift_p=1.0), max_frames=5)
    floor = x.amin(dim=-1, keepdim=True)
    shifts = []
    for b in range(256):
        found = [s for s in range(-5, 6) if torch.equal(out[b], shift_frames(x[b:b + 1], torch.tensor([s]),
                                                                            floor[b:b + 1])[0])]
        assert len(found) >= 1, b
        shifts.append(found[0])
    assert min(shifts) == -5 and max(shifts) == 5 and shifts.count(0) < 60
    half = shift_windows(x, _gen(4), WindowShiftConfig(time_shift_p=0.5), max_frames=5)
    kept = sum(torch.equal(half[b], x[b]) for b in range(256))
    assert 100 < kept < 170  # about half untouched (plus the ~1/11 drawn a shift of 0)
    assert torch.equal(shift_windows(x, _gen(4), WindowShiftConfig(time_shift_p=0.0), max_frames=5), x)


def test_augmented_batches_rows_of_one_two_and_named_tensors():
    double = AugmentedBatches(lambda x, g, aug: 2 * x, None, seed=0)
    x = [torch.full((3,), float(i)) for i in range(4)]
    assert torch.equal(double([(v,) for v in x]), 2 * torch.stack(x))
    two = double([(v, torch.tensor(i)) for i, v in enumerate(x)])
    assert torch.equal(two["x"], 2 * torch.stack(x)) and two["y"].tolist() == [0, 1, 2, 3]
    named = double([{"x": v, "label": torch.tensor(i)} for i, v in enumerate(x)])
    assert torch.equal(named["x"], 2 * torch.stack(x)) and named["label"].tolist() == [0, 1, 2, 3]


# --------------------------------------------------------------------------- SpecAugment


def _runs(row: torch.Tensor) -> list[int]:
    """Lengths of the True runs in a 1-D bool tensor."""
    out, n = [], 0
    for v in row.tolist() + [False]:
        if v:
            n += 1
        elif n:
            out.append(n)
            n = 0
    return out


def test_spec_augment_masks_bounds():
    tm, fm = spec_augment_masks(200, 33, 40, time_masks=1, time_width=6, freq_masks=1, freq_width=4,
                                generator=_gen(12))
    assert tm.shape == (200, 40) and fm.shape == (200, 33)
    for row in tm:
        runs = _runs(row)
        assert len(runs) <= 1 and all(1 <= r <= 6 for r in runs)
    for row in fm:
        runs = _runs(row)
        assert len(runs) <= 1 and all(1 <= r <= 4 for r in runs)
    widths = tm.sum(1)
    assert widths.max().item() == 6 and (widths == 0).any()  # widths uniform in [0, W]
    # several masks: total width bounded by count * width, at most `count` runs
    tm, fm = spec_augment_masks(200, 33, 40, time_masks=3, time_width=5, freq_masks=2, freq_width=7,
                                generator=_gen(13))
    assert (tm.sum(1) <= 15).all() and (fm.sum(1) <= 14).all()
    assert all(len(_runs(r)) <= 3 for r in tm) and all(len(_runs(r)) <= 2 for r in fm)
    assert tm.sum(1).max().item() > 5  # they do add up
    # masks differ across samples
    assert len({tuple(r.tolist()) for r in tm}) > 100
    # width larger than the axis is capped
    tm, _ = spec_augment_masks(10, 5, 4, time_masks=1, time_width=50, freq_masks=0, freq_width=1, generator=_gen(14))
    assert (tm.sum(1) <= 4).all()


def test_spec_augment_applies_shared_masks():
    g = _gen(15)
    spec = torch.rand(8, 3, 17, 21, generator=g) + 1.0
    out = spec_augment(spec, 2, 5, 2, 4, generator=_gen(16), value=-1.0)
    tm, fm = spec_augment_masks(8, 17, 21, 2, 5, 2, 4, generator=_gen(16))
    mask = tm[:, None, None, :] | fm[:, None, :, None]
    assert torch.equal(out == -1.0, mask.expand_as(spec))  # shared across channels
    assert torch.equal(out[~mask.expand_as(spec)], spec[~mask.expand_as(spec)])
    assert torch.equal(spec_augment(spec, 0, 5, 0, 4, generator=_gen(16)), spec)
    # complex spectrograms and (B, F, T)
    cspec = torch.polar(spec, spec)
    cout = spec_augment(cspec, 2, 5, 2, 4, generator=_gen(16))
    assert torch.equal(cout == 0, mask.expand_as(spec))
    out3 = spec_augment(spec[:, 0], 2, 5, 2, 4, generator=_gen(16), value=-1.0)
    assert torch.equal(out3, out[:, 0])


# --------------------------------------------------------------------------- modules and seeding


def _cfg(**kw) -> AugmentConfig:
    base = dict(pink_noise_p=1.0, pink_noise_snr_db=15.0, sign_flip_p=0.5, time_shift_p=1.0,
                time_shift_max_s=0.01, spec_time_masks=2, spec_time_width=4, spec_freq_masks=1, spec_freq_width=3)
    base.update(kw)
    return AugmentConfig(**base)


def test_wave_augment_train_eval():
    aug = WaveAugment(_cfg(), sample_rate=1000)
    assert aug.max_shift == 10
    wave = _wave(b=6, c=2, t=256)
    out = aug(wave, generator=_gen(17))
    assert out.shape == wave.shape and not torch.equal(out, wave)
    # noise at the requested SNR on top of the (power-preserving) flip and shift
    wave_only = WaveAugment(_cfg(pink_noise_p=0.0), sample_rate=1000)(wave, generator=_gen(17))
    assert torch.allclose(wave_only.pow(2).mean(-1), wave.pow(2).mean(-1), rtol=1e-5)
    aug.eval()
    assert aug(wave) is wave
    spec = SpecAugment(_cfg())
    s = torch.rand(4, 2, 9, 30) + 1
    assert not torch.equal(spec(s, generator=_gen(18)), s)
    spec.eval()
    assert spec(s) is s
    # nothing configured: identity even in train mode
    assert WaveAugment(AugmentConfig(), 1000)(wave) is wave
    assert SpecAugment(AugmentConfig())(s) is s


def test_seeding():
    wave = _wave(b=5, c=2, t=128)
    s = torch.rand(5, 2, 9, 16)
    a1 = WaveAugment(_cfg(), 1000)(wave, generator=_gen(19))
    a2 = WaveAugment(_cfg(), 1000)(wave, generator=_gen(19))
    a3 = WaveAugment(_cfg(), 1000)(wave, generator=_gen(20))
    assert torch.equal(a1, a2) and not torch.equal(a1, a3)
    assert torch.equal(SpecAugment(_cfg())(s, generator=_gen(21)), SpecAugment(_cfg())(s, generator=_gen(21)))
    # a module's own seeded generator: reproducible, advances between calls, survives copy/pickle
    m1, m2 = WaveAugment(_cfg(), 1000, seed=3), WaveAugment(_cfg(), 1000, seed=3)
    first = m1(wave)
    assert torch.equal(first, m2(wave))
    assert not torch.equal(m1(wave), first)
    clones = [copy.deepcopy(m2), pickle.loads(pickle.dumps(m2))]
    expected = m2(wave)
    for clone in clones:
        assert torch.equal(clone(wave), expected)


def test_augmented_batches_draw_apart_in_each_loader_worker():
    """Each DataLoader worker holds a copy of the collate: the copies drew the same shifts, batch for batch."""
    data = torch.utils.data.TensorDataset(torch.zeros(8, 1))
    draws = AugmentedBatches(lambda x, g, aug: torch.rand(len(x), generator=g), None, seed=0)
    got = [b.tolist() for b in torch.utils.data.DataLoader(data, batch_size=2, num_workers=2, collate_fn=draws)]
    assert len(got) == 4 and got[0] != got[1] and got[2] != got[3]  # batches 0 and 1 come from the two workers
    again = [b.tolist() for b in torch.utils.data.DataLoader(data, batch_size=2, num_workers=2, collate_fn=draws)]
    assert again == got  # seeded: the same run twice
