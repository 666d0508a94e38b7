"""Mel filterbank projection and its approximate inverse; Griffin-Lim phase reconstruction (torch).

Both are batched: the batch is processed at once, loops run over iterations only.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from latentbridge.transforms.stft import STFT, fix_frames

__all__ = ["GriffinLim", "MelScale", "mel_bands_without_bins"]


# --------------------------------------------------------------------------- mel


def mel_bands_without_bins(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                           fmax: float | None = None) -> tuple[int, int]:
    """``(empty, most)``: how many of the ``n_mels`` bands of :class:`MelScale`'s filterbank hold no FFT bin
    (they read 0, -100 dB, whatever the sound: ``n_fft`` too short for so many bands), and the most bands
    with none empty (0 when even one band is)."""
    import warnings

    import librosa

    def empty(n: int) -> int:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # librosa's "Empty filters detected": counted here
            fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n, fmin=fmin, fmax=fmax, htk=False,
                                     norm="slaney")
        return int((fb.max(axis=1) <= 0).sum())

    n_empty = empty(n_mels)
    if not n_empty:
        return 0, n_mels
    lo, hi = 0, n_mels  # empty(lo) == 0 (no bands), empty(hi) > 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if not empty(mid) else (lo, mid)
    return n_empty, lo


def _band_blocks(fb: np.ndarray, groups: int) -> list[tuple[int, int, int, int]]:
    """``(first band, end band, first bin, end bin)`` of ``groups`` runs of neighbouring mel bands and the bins their
    filters cover (at least one bin: an empty band's run reads bin 0 with weight 0)."""
    n = fb.shape[0]
    out = []
    for g in range(groups):
        r0, r1 = g * n // groups, (g + 1) * n // groups
        if r1 <= r0:
            continue
        cols = np.flatnonzero(np.abs(fb[r0:r1]).sum(axis=0) > 0)
        lo, hi = (int(cols[0]), int(cols[-1]) + 1) if len(cols) else (0, 1)
        out.append((r0, r1, lo, hi))
    return out


class MelScale(nn.Module):
    """Linear-frequency magnitude -> mel bands with librosa's (Slaney) filterbank.

    ``forward`` is a few matmuls, one per run of neighbouring bands over the bins they cover (ONNX friendly).
    ``inverse`` is approximate and non-negative: it starts from the pseudo-inverse solution clamped at 0, then (when
    ``n_iter > 0``) refines it with projected-gradient NNLS steps minimising
    ``||fb @ x - mel||^2`` subject to ``x >= 0`` (step ``1 / ||fb||_2^2``).
    """

    fb: torch.Tensor
    fb_pinv: torch.Tensor

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        n_mels: int = 64,
        fmin: float = 0.0,
        fmax: float | None = None,
    ):
        super().__init__()
        import librosa  # heavy import kept local

        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft)
        self.n_mels = int(n_mels)
        self.fmin = float(fmin)
        self.fmax = None if fmax is None else float(fmax)
        fb = librosa.filters.mel(
            sr=self.sample_rate,
            n_fft=self.n_fft,
            n_mels=self.n_mels,
            fmin=self.fmin,
            fmax=self.fmax,
            htk=False,
            norm="slaney",
            dtype=np.float64,
        )
        pinv = np.linalg.pinv(fb)
        lipschitz = float(np.linalg.norm(fb, 2) ** 2)
        self.step = 1.0 / lipschitz if lipschitz > 0 else 0.0
        self.register_buffer("fb", torch.from_numpy(fb.astype(np.float32)), persistent=False)
        self.register_buffer("fb_pinv", torch.from_numpy(pinv.astype(np.float32)), persistent=False)
        self.blocks = _band_blocks(fb, groups=max(1, min(8, self.n_mels // 4)))

    @property
    def n_freq(self) -> int:
        return self.n_fft // 2 + 1

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        """``(..., n_freq, T)`` -> ``(..., n_mels, T)``."""
        if not torch.jit.is_tracing() and mag.shape[-2] != self.n_freq:
            raise ValueError(f"MelScale: expected {self.n_freq} frequency rows, got {mag.shape[-2]}")
        if len(self.blocks) == 1:
            return torch.matmul(self.fb.to(mag.dtype), mag)
        # the filterbank is band-sparse (997 of 32,832 entries non-zero at 64 bands of a 1024-point STFT): each group of
        # neighbouring bands times only the bins it covers, 4x faster than the dense product on CPU, the same sums
        fb = self.fb.to(mag.dtype)
        return torch.cat([torch.matmul(fb[r0:r1, lo:hi], mag[..., lo:hi, :]) for r0, r1, lo, hi in self.blocks],
                         dim=-2)

    def inverse(self, mel: torch.Tensor, n_iter: int = 16) -> torch.Tensor:
        """Approximate non-negative ``(..., n_mels, T)`` -> ``(..., n_freq, T)``."""
        if mel.shape[-2] != self.n_mels:
            raise ValueError(f"MelScale.inverse: expected {self.n_mels} mel rows, got {mel.shape[-2]}")
        fb = self.fb.to(mel.dtype)
        x = torch.clamp(torch.matmul(self.fb_pinv.to(mel.dtype), mel), min=0.0)
        fbt = fb.transpose(0, 1)
        for _ in range(int(n_iter)):  # iterations, not items: the batch is processed at once
            grad = torch.matmul(fbt, torch.matmul(fb, x) - mel)
            x = torch.clamp(x - self.step * grad, min=0.0)
        return x

    def extra_repr(self) -> str:
        return f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, n_mels={self.n_mels}, fmin={self.fmin}, fmax={self.fmax}"


# --------------------------------------------------------------------------- Griffin-Lim


class GriffinLim(nn.Module):
    """Batched fast Griffin-Lim (Perraudin, Balazs & Sondergaard 2013), as in librosa.

    Each iteration: ``rebuilt = STFT(ISTFT(S * angles))``;
    ``angles = rebuilt - momentum / (1 + momentum) * previous_rebuilt``; normalise to unit modulus.
    ``momentum=0`` gives plain Griffin-Lim. ``init`` is ``"random"`` (uniform phase drawn
    from a generator seeded with ``seed``, so results are reproducible) or ``"zeros"``.
    """

    def __init__(self, stft: STFT, n_iter: int = 32, momentum: float = 0.99, init: str = "random", seed: int = 0):
        super().__init__()
        if init not in ("random", "zeros"):
            raise ValueError(f"init: expected 'random' or 'zeros', got {init!r}")
        if momentum < 0:
            raise ValueError(f"momentum: must be >= 0, got {momentum}")
        if n_iter < 0:
            raise ValueError(f"n_iter: must be >= 0, got {n_iter}")
        self.stft = stft
        self.n_iter = int(n_iter)
        self.momentum = float(momentum)
        self.init = init
        self.seed = int(seed)

    def initial_angles(self, mag: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Unit-modulus complex starting phases shaped like ``mag`` (seeded, device-independent); ``generator``: a CPU
        generator to draw them from in place of one seeded with ``seed`` (drawn on through a batch's chunks in turn,
        the chunks' phases are those of the whole batch at once)."""
        if self.init == "zeros":
            phase = torch.zeros(mag.shape, dtype=mag.dtype)
        else:
            gen = generator if generator is not None else torch.Generator(device="cpu").manual_seed(self.seed)
            phase = torch.rand(mag.shape, generator=gen, dtype=mag.dtype) * (2.0 * math.pi)
        return torch.polar(torch.ones_like(phase), phase).to(mag.device)

    def forward(self, mag: torch.Tensor, length: int | None = None, n_iter: int | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Magnitude ``(..., n_freq, frames)`` -> wave ``(..., T)`` (``generator``: :meth:`initial_angles`')."""
        if mag.is_complex():
            raise TypeError("GriffinLim: expected a real magnitude")
        if not mag.is_floating_point() or mag.dtype in (torch.float16, torch.bfloat16):  # (no complex half on CPU)
            mag = mag.float()
        n_iter = self.n_iter if n_iter is None else int(n_iter)
        if n_iter < 0:
            raise ValueError(f"n_iter: must be >= 0, got {n_iter}")
        frames = mag.shape[-1]
        eps = torch.finfo(mag.dtype).tiny
        alpha = self.momentum / (1.0 + self.momentum)
        angles = self.initial_angles(mag, generator)
        rebuilt = None
        for _ in range(n_iter):  # iterations, not items: the batch is processed at once
            tprev = rebuilt
            inverse = self.stft.inverse(mag * angles, length=length)
            rebuilt = fix_frames(self.stft(inverse), frames)
            angles = rebuilt if tprev is None else rebuilt - alpha * tprev
            angles = angles / (angles.abs() + eps)
        return self.stft.inverse(mag * angles, length=length)
