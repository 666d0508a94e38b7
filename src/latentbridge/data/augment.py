"""Training-only augmentations for multichannel vibration windows and their spectrograms.

Everything is batched torch code (no per-sample Python loops) and draws its randomness from an
optional :class:`torch.Generator` (``None``: torch's global RNG). Random numbers are drawn on the
generator's device (CPU for a default generator) and moved to the data, so one CPU generator
gives the same augmentation whatever device the batch lives on.

Probabilities are per sample: a sample is picked with probability ``p`` and then every channel
of it is augmented the same way (same flip, same shift, same spectrogram masks); the pink noise
is drawn independently per channel, at the requested SNR for each channel.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from latentbridge.config.sections import AugmentConfig

__all__ = [
    "SpecAugment",
    "WaveAugment",
    "add_pink_noise",
    "coloured_noise",
    "pink_noise",
    "shift_frames",
    "shift_windows",
    "sign_flip",
    "spec_augment",
    "spec_augment_masks",
    "time_shift",
]


def _gen_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def _rand(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    return torch.rand(shape, generator=generator, device=_gen_device(generator)).to(device)


def _randint(low: int, high: int, shape: tuple[int, ...], generator: torch.Generator | None,
             device: torch.device) -> Tensor:
    """Integers in [low, high) (like :func:`torch.randint`)."""
    return torch.randint(low, high, shape, generator=generator, device=_gen_device(generator)).to(device)


def _chosen(batch: int, p: float, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Bool (B,): which samples an augmentation with probability ``p`` touches."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p: must be in [0, 1], got {p}")
    return _rand((batch,), generator, device) < p


# --------------------------------------------------------------------------- SpecAugment


def _band_masks(batch: int, size: int, n_masks: int, max_width: int, generator: torch.Generator | None,
                device: torch.device) -> Tensor:
    """Bool (B, size): the union of ``n_masks`` bands per row, widths uniform in [0, max_width]."""
    if n_masks <= 0 or max_width <= 0 or size <= 0:
        return torch.zeros(batch, size, dtype=torch.bool, device=device)
    max_width = min(int(max_width), size)
    width = _randint(0, max_width + 1, (batch, n_masks), generator, device)
    # start uniform in [0, size - width]
    start = torch.floor(_rand((batch, n_masks), generator, device) * (size - width + 1)).long()
    start = torch.minimum(start, size - width)
    pos = torch.arange(size, device=device).view(1, 1, size)
    inside = (pos >= start.unsqueeze(-1)) & (pos < (start + width).unsqueeze(-1))
    return inside.any(dim=1)


def spec_augment_masks(batch: int, n_freq: int, n_frames: int, time_masks: int, time_width: int,
                       freq_masks: int, freq_width: int, generator: torch.Generator | None = None,
                       device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """The SpecAugment masks: bool ``(B, n_frames)`` time mask and ``(B, n_freq)`` frequency mask.

    Each row holds ``time_masks`` (``freq_masks``) bands of width uniform in
    ``[0, time_width]`` (``[0, freq_width]``, capped at the axis length) at uniform positions
    (Park et al. 2019); bands may overlap.
    """
    device = torch.device(device)
    t = _band_masks(batch, n_frames, time_masks, time_width, generator, device)
    f = _band_masks(batch, n_freq, freq_masks, freq_width, generator, device)
    return t, f


def spec_augment(spec: Tensor, time_masks: int, time_width: int, freq_masks: int, freq_width: int,
                 generator: torch.Generator | None = None, value: float = 0.0) -> Tensor:
    """SpecAugment time and frequency masking of ``spec`` (B, C, F, T) (any (B, ..., F, T)).

    Masked bins are set to ``value``; the masks are the same for every channel of a sample and
    drawn independently per sample (see :func:`spec_augment_masks`). Real or complex input.
    """
    if spec.dim() < 3:
        raise ValueError(f"spec_augment: expected (B, [C,] F, T), got shape {tuple(spec.shape)}")
    b, f, t = spec.shape[0], spec.shape[-2], spec.shape[-1]
    tm, fm = spec_augment_masks(b, f, t, time_masks, time_width, freq_masks, freq_width, generator, spec.device)
    mid = (1,) * (spec.dim() - 3)
    mask = tm.view(b, *mid, 1, t) | fm.view(b, *mid, f, 1)
    return torch.where(mask, torch.as_tensor(value, dtype=spec.dtype, device=spec.device), spec)


# --------------------------------------------------------------------------- waveform augmentations


def coloured_noise(shape: tuple[int, ...] | torch.Size, exponent: float = 1.0,
                   generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
                   device: torch.device | str = "cpu") -> Tensor:
    """Noise with power ∝ 1/f^``exponent`` along the last dim (0: white, 1: pink, 2: brown), zero mean
    and unit variance per series.

    White Gaussian noise is shaped in the frequency domain by ``f^(-exponent/2)``, the DC bin is
    zeroed, and every series is rescaled to mean square 1 (population variance 1).
    """
    shape = tuple(int(s) for s in shape)
    n = shape[-1]
    white = torch.randn(shape, generator=generator, device=_gen_device(generator), dtype=torch.float64)
    spec = torch.fft.rfft(white, dim=-1)
    freqs = torch.arange(spec.shape[-1], dtype=torch.float64, device=spec.device)
    gain = torch.where(freqs > 0, freqs.clamp(min=1.0).pow(-float(exponent) / 2), torch.zeros_like(freqs))
    x = torch.fft.irfft(spec * gain, n=n, dim=-1)
    x = x - x.mean(dim=-1, keepdim=True)
    x = x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + 1e-20)
    return x.to(device=device, dtype=dtype)


def pink_noise(shape: tuple[int, ...] | torch.Size, generator: torch.Generator | None = None,
               dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> Tensor:
    """Pink (1/f power) noise along the last dim, zero mean and unit variance per series
    (:func:`coloured_noise` with exponent 1)."""
    return coloured_noise(shape, 1.0, generator, dtype, device)


def add_pink_noise(wave: Tensor, snr_db: float | Tensor, p: float = 1.0,
                   generator: torch.Generator | None = None) -> Tensor:
    """Add pink noise at exactly ``snr_db`` to the chosen samples of ``wave`` (B, C, T) (or (B, T)).

    SNR is ``10 log10(mean(x^2) / mean(n^2))`` per sample and channel (power = mean square over
    time), so a silent channel gets no noise. ``snr_db`` is a float or a tensor broadcastable to
    (B, 1) (e.g. one SNR per sample). Each sample is picked with probability ``p``.
    """
    if wave.dim() < 2:
        raise ValueError(f"add_pink_noise: expected (B, [C,] T), got shape {tuple(wave.shape)}")
    b = wave.shape[0]
    chosen = _chosen(b, p, generator, wave.device)
    noise = pink_noise(wave.shape, generator, dtype=wave.dtype, device=wave.device)
    sig_pow = wave.pow(2).mean(dim=-1, keepdim=True)
    snr = torch.as_tensor(snr_db, dtype=wave.dtype, device=wave.device)
    if snr.dim() >= 1 and snr.numel() == b:
        snr = snr.reshape(b, *([1] * (wave.dim() - 1)))
    noise_pow = sig_pow * torch.pow(10.0, -snr / 10.0)
    noise = noise * torch.sqrt(noise_pow)  # pink_noise has mean square 1
    keep = chosen.view(b, *([1] * (wave.dim() - 1)))
    return torch.where(keep, wave + noise, wave)


def sign_flip(wave: Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """Negate each chosen sample (all its channels) with probability ``p``."""
    b = wave.shape[0]
    chosen = _chosen(b, p, generator, wave.device)
    sign = torch.where(chosen, -1.0, 1.0).to(wave.dtype).view(b, *([1] * (wave.dim() - 1)))
    return wave * sign


def time_shift(wave: Tensor, max_shift: int, p: float = 1.0, generator: torch.Generator | None = None,
               fill: Tensor | None = None) -> Tensor:
    """Circularly shift each chosen sample (all channels alike) by an integer in [-max_shift, max_shift].

    The result for a sample shifted by ``s`` equals ``torch.roll(wave[b], s, dims=-1)``; with ``fill`` the samples
    moved in take it instead (:func:`shift_frames`: no wrap-around).
    """
    max_shift = int(max_shift)
    if max_shift < 0:
        raise ValueError(f"time_shift: max_shift must be >= 0, got {max_shift}")
    b, t = wave.shape[0], wave.shape[-1]
    chosen = _chosen(b, p, generator, wave.device)
    shift = _randint(-max_shift, max_shift + 1, (b,), generator, wave.device)
    shift = torch.where(chosen, shift, torch.zeros_like(shift))
    if fill is not None:
        return shift_frames(wave, shift, fill)
    idx = (torch.arange(t, device=wave.device).view(1, t) - shift.view(b, 1)) % t
    idx = idx.view(b, *([1] * (wave.dim() - 2)), t).expand_as(wave)
    return torch.gather(wave, -1, idx)


# --------------------------------------------------------------------------- modules


class _Seeded(nn.Module):
    """Holds an optional private CPU generator (``seed``) and survives deepcopy/pickle."""

    def __init__(self, seed: int | None = None):
        super().__init__()
        self.seed = seed
        self._generator: torch.Generator | None = None
        if seed is not None:
            self._generator = torch.Generator().manual_seed(int(seed))

    def _gen(self, generator: torch.Generator | None) -> torch.Generator | None:
        return generator if generator is not None else self._generator

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        gen = state.pop("_generator", None)
        state["_generator_state"] = None if gen is None else gen.get_state()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        gen_state = state.pop("_generator_state", None)
        super().__setstate__(state)
        self._generator = None
        if gen_state is not None:
            self._generator = torch.Generator()
            self._generator.set_state(gen_state)


class WaveAugment(_Seeded):
    """Waveform augmentations from an :class:`AugmentConfig`, applied in train mode only.

    ``forward(wave (B, C, T), generator=None)``: time shift (``time_shift_max_s`` seconds,
    circular), sign flip, then pink noise at ``pink_noise_snr_db``, each with its per-sample
    probability. Identity in eval mode. Randomness: the ``generator`` argument, else the
    module's own generator (when built with ``seed``), else torch's global RNG.
    """

    def __init__(self, cfg: AugmentConfig | None = None, sample_rate: float = 1.0, seed: int | None = None):
        super().__init__(seed)
        cfg = cfg if cfg is not None else AugmentConfig()
        self.pink_noise_p = float(cfg.pink_noise_p)
        self.pink_noise_snr_db = float(cfg.pink_noise_snr_db)
        self.sign_flip_p = float(cfg.sign_flip_p)
        self.time_shift_p = float(cfg.time_shift_p)
        self.sample_rate = float(sample_rate)
        self.max_shift = int(round(cfg.time_shift_max_s * self.sample_rate))

    @property
    def active(self) -> bool:
        return (self.pink_noise_p > 0) or (self.sign_flip_p > 0) or (self.time_shift_p > 0 and self.max_shift > 0)

    def forward(self, wave: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if not self.training or not self.active:
            return wave
        gen = self._gen(generator)
        if self.time_shift_p > 0 and self.max_shift > 0:
            wave = time_shift(wave, self.max_shift, self.time_shift_p, gen)
        if self.sign_flip_p > 0:
            wave = sign_flip(wave, self.sign_flip_p, gen)
        if self.pink_noise_p > 0:
            wave = add_pink_noise(wave, self.pink_noise_snr_db, self.pink_noise_p, gen)
        return wave

    def extra_repr(self) -> str:
        return (f"pink_noise_p={self.pink_noise_p}, snr_db={self.pink_noise_snr_db}, "
                f"sign_flip_p={self.sign_flip_p}, time_shift_p={self.time_shift_p}, max_shift={self.max_shift}")


class SpecAugment(_Seeded):
    """SpecAugment masking from an :class:`AugmentConfig` (train mode only; identity in eval).

    ``forward(spec (B, C, F, T), generator=None)`` -> :func:`spec_augment` with
    ``spec_time_masks``/``spec_time_width``/``spec_freq_masks``/``spec_freq_width``.
    """

    def __init__(self, cfg: AugmentConfig | None = None, value: float = 0.0, seed: int | None = None):
        super().__init__(seed)
        cfg = cfg if cfg is not None else AugmentConfig()
        self.time_masks = int(cfg.spec_time_masks)
        self.time_width = int(cfg.spec_time_width)
        self.freq_masks = int(cfg.spec_freq_masks)
        self.freq_width = int(cfg.spec_freq_width)
        self.value = float(value)

    @property
    def active(self) -> bool:
        return self.time_masks > 0 or self.freq_masks > 0

    def forward(self, spec: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if not self.training or not self.active:
            return spec
        return spec_augment(spec, self.time_masks, self.time_width, self.freq_masks, self.freq_width,
                            self._gen(generator), self.value)

    def extra_repr(self) -> str:
        return (f"time_masks={self.time_masks}, time_width={self.time_width}, "
                f"freq_masks={self.freq_masks}, freq_width={self.freq_width}, value={self.value}")


# --------------------------------------------------------------------------- digit classifiers


def augment_digit_images(x: Tensor, g: torch.Generator, aug) -> Tensor:
    """Small random affine maps of (B, 1, H, W) images: rotation, scale, translation (``aug``: an
    :class:`~latentbridge.config.sections.MNISTAugment`)."""
    import math

    import torch.nn.functional as F

    b = x.shape[0]
    u = lambda: torch.rand(b, generator=g) * 2 - 1  # noqa: E731 - uniform in [-1, 1]
    ang = u() * math.radians(aug.max_rotation_deg)
    lo, hi = aug.scale
    s = lo + (hi - lo) * torch.rand(b, generator=g)
    t = torch.stack([u(), u()], dim=1) * (2.0 * aug.max_translate_px / x.shape[-1])
    cos, sin = torch.cos(ang) / s, torch.sin(ang) / s
    theta = torch.stack([torch.stack([cos, -sin, t[:, 0]], 1), torch.stack([sin, cos, t[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)


def shift_frames(x: Tensor, shift: Tensor, fill: Tensor) -> Tensor:
    """Each window of ``x`` (B, ..., T) moved ``shift[b]`` frames later (earlier when negative); the frames moved in
    take ``fill`` (broadcast against ``x``), not the frames moved out (no wrap-around)."""
    b, t = x.shape[0], x.shape[-1]
    src = torch.arange(t, device=x.device).view(1, t) - shift.to(x.device).view(b, 1)
    view = (b,) + (1,) * (x.dim() - 2) + (t,)
    idx = src.clamp(0, t - 1).view(view).expand_as(x)
    return torch.where(((src >= 0) & (src < t)).view(view), x.gather(-1, idx), fill)


def shift_windows(x: Tensor, g: torch.Generator, aug, max_frames: int) -> Tensor:
    """Feature windows (B, ..., T), each with probability ``aug.time_shift_p`` moved by up to ``max_frames`` frames
    either way; the frames moved in take the window's quietest value in each band (its pause or noise floor), so that
    an autoencoder of clips that all start with their sound also learns sound that starts, or stops, anywhere in a
    window (``aug``: a :class:`~latentbridge.config.sections.WindowShiftConfig`)."""
    return time_shift(x, max_frames, aug.time_shift_p, g, fill=x.amin(dim=-1, keepdim=True))


def augment_logmel(x: Tensor, g: torch.Generator, aug) -> Tensor:
    """dB log-mel (B, 1, M, T): a gain offset above the floor, a time shift filled with the floor, one
    time mask and one frequency mask (``aug``: an :class:`~latentbridge.config.sections.FSDDAugment`)."""
    b, _, n_mels, n_frames = x.shape
    floor = x.flatten(1).amin(dim=1).view(b, 1, 1, 1)
    gain = (torch.rand(b, generator=g) * 2 - 1).view(b, 1, 1, 1) * aug.gain_db
    x = torch.maximum(x + gain, floor)
    lo, hi = aug.max_shift_frames
    x = shift_frames(x, torch.randint(int(lo), int(hi) + 1, (b,), generator=g), floor)
    for dim, size, width in ((3, n_frames, aug.time_mask), (2, n_mels, aug.freq_mask)):
        w = torch.randint(0, int(width) + 1, (b,), generator=g)
        start = (torch.rand(b, generator=g) * (size - w + 1).float()).long()
        pos = torch.arange(size).view(1, -1)
        m = (pos >= start.view(-1, 1)) & (pos < (start + w).view(-1, 1))
        shape = [b, 1, 1, 1]
        shape[dim] = size
        x = torch.where(m.view(shape), floor, x)
    return x


class AugmentedBatches:
    """A DataLoader ``collate_fn`` that stacks ``(x, y)`` rows into ``{"x", "y"}`` (``(x,)`` rows into ``x``, dict rows
    into a dict) and augments ``x`` with ``fn(x, generator, aug)`` (seeded generator: reproducible runs)."""

    def __init__(self, fn, aug, seed: int):
        self.fn, self.aug, self.seed = fn, aug, int(seed)
        self.g = torch.Generator().manual_seed(self.seed)
        self._worker = None

    def _generator(self) -> torch.Generator:
        """A DataLoader worker's own stream (each worker holds a copy of this object: copies drew alike)."""
        info = torch.utils.data.get_worker_info()
        if info is not None and info.id != self._worker:
            self._worker = info.id
            self.g = torch.Generator().manual_seed(self.seed + 1_000_003 * (info.id + 1))
        return self.g

    def __call__(self, rows):
        if isinstance(rows[0], dict):
            batch = {k: torch.stack([r[k] for r in rows]) for k in rows[0]}
            return {**batch, "x": self.fn(batch["x"], self._generator(), self.aug)}
        x = self.fn(torch.stack([r[0] for r in rows]), self._generator(), self.aug)
        return {"x": x, "y": torch.stack([r[1] for r in rows])} if len(rows[0]) > 1 else x


# --------------------------------------------------------------------------- synthetic anomalies


def synthetic_anomalies(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Anomalous copies of normal dB feature windows ``x`` (B, C, F, T), one corruption each, drawn
    among: a tone (a narrow band raised 10–25 dB over a third of the window or more), clicks (one to
    three frames raised 10–25 dB across all bands), a band boosted or cut by 8–15 dB (a filtered
    copy), a shift of 2–6 bands up or down (a pitch change), and a time stretch by 0.7–1.4 (a speed
    change, never nearly 1). For self-supervised training of detectors on normal data only."""
    import torch.nn.functional as F

    b, c, f, t = x.shape
    out = x.clone()
    kind = _randint(0, 5, (b,), generator, x.device)
    u = lambda: _rand((1,), generator, x.device).item()  # noqa: E731
    for i in range(b):
        k = int(kind[i])
        if k == 0:  # tone
            row = int(u() * f)
            width = max(1, f // 32)
            start = int(u() * t * 0.66)
            length = max(1, int(t / 3 + u() * (t - start - t / 3)))
            out[i, :, row:row + width, start:start + length] += 10 + 15 * u()
        elif k == 1:  # clicks
            for _ in range(1 + int(u() * 3)):
                col = int(u() * t)
                out[i, :, :, col:col + 1 + int(u() * 2)] += 10 + 15 * u()
        elif k == 2:  # band boost or cut
            lo = int(u() * f * 0.8)
            hi = min(f, lo + max(2, int(f * (0.05 + 0.25 * u()))))
            out[i, :, lo:hi, :] += (1 if u() < 0.5 else -1) * (8 + 7 * u())
        elif k == 3:  # shift along frequency
            shift = (2 + int(u() * 5)) * (1 if u() < 0.5 else -1)
            out[i] = torch.roll(x[i], shifts=shift, dims=1)
            floor = x[i].amin()
            if shift > 0:
                out[i, :, :shift] = floor
            else:
                out[i, :, shift:] = floor
        else:  # time stretch, by 0.7-0.9 or 1.15-1.4 (never nearly 1)
            factor = 0.7 + 0.2 * u() if u() < 0.5 else 1.15 + 0.25 * u()
            n = max(2, int(round(t * factor)))
            stretched = F.interpolate(x[i:i + 1], size=(f, n), mode="bilinear", align_corners=False)[0]
            out[i] = stretched[..., :t] if n >= t else F.pad(stretched, (0, t - n), value=float(x[i].amin()))
    return out
