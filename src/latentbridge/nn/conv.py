"""Convolutional encoder/decoder over (C, H, W) maps of any size, and a feature normaliser.

Inputs are zero-padded up to a multiple of 2**depth and decoder outputs are cropped back, so
spectrograms with 513 bins or 63 frames work without resizing.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _padded(size: int, multiple: int) -> int:
    return int(math.ceil(size / multiple) * multiple)


class ConvEncoder(nn.Module):
    """Strided conv stack → flatten → linear to ``out_dim``."""

    def __init__(self, in_channels: int, channels: list[int], input_hw: tuple[int, int], out_dim: int,
                 kernel_size: int = 3):
        super().__init__()
        self.input_hw = tuple(input_hw)
        depth = len(channels)
        self.multiple = 2 ** depth
        hp, wp = (_padded(s, self.multiple) for s in self.input_hw)
        layers: list[nn.Module] = []
        prev = in_channels
        for c in channels:
            layers += [nn.Conv2d(prev, c, kernel_size, stride=2, padding=kernel_size // 2),
                       nn.BatchNorm2d(c), nn.SiLU()]
            prev = c
        self.conv = nn.Sequential(*layers)
        self.feature_shape = (prev, hp // self.multiple, wp // self.multiple)
        self.fc = nn.Linear(prev * self.feature_shape[1] * self.feature_shape[2], out_dim)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        if (h, w) != self.input_hw:
            raise ValueError(f"encoder expects input of size {self.input_hw}, got {(h, w)}")
        hp, wp = _padded(h, self.multiple), _padded(w, self.multiple)
        if (hp, wp) != (h, w):
            x = F.pad(x, (0, wp - w, 0, hp - h))
        return self.fc(self.conv(x).flatten(1))


class ConvDecoder(nn.Module):
    """Linear → reshape → transposed conv stack, cropped to ``output_hw``."""

    def __init__(self, latent_dim: int, channels: list[int], output_hw: tuple[int, int], out_channels: int,
                 output_activation: str = "none"):
        super().__init__()
        self.output_hw = tuple(output_hw)
        depth = len(channels)
        multiple = 2 ** depth
        hp, wp = (_padded(s, multiple) for s in self.output_hw)
        rev = list(reversed(channels))
        self.start_shape = (rev[0], hp // multiple, wp // multiple)
        self.fc = nn.Linear(latent_dim, rev[0] * self.start_shape[1] * self.start_shape[2])
        layers: list[nn.Module] = []
        prev = rev[0]
        for c in rev[1:]:
            layers += [nn.ConvTranspose2d(prev, c, 4, stride=2, padding=1), nn.BatchNorm2d(c), nn.SiLU()]
            prev = c
        layers.append(nn.ConvTranspose2d(prev, out_channels, 4, stride=2, padding=1))
        if output_activation == "sigmoid":
            layers.append(nn.Sigmoid())
        elif output_activation != "none":
            raise ValueError(f"output_activation must be 'none' or 'sigmoid', got {output_activation!r}")
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        x = self.fc(z).view(z.shape[0], *self.start_shape)
        x = self.deconv(x)
        return x[..., : self.output_hw[0], : self.output_hw[1]]


class FeatureNormalizer(nn.Module):
    """Per-row (frequency bin) standardisation with statistics stored as buffers.

    Statistics come from training data through :meth:`fit`; an unfitted normaliser is the
    identity, so models without ``standardize`` share the same code path.
    """

    def __init__(self, channels: int, rows: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("mean", torch.zeros(1, channels, rows, 1))
        self.register_buffer("std", torch.ones(1, channels, rows, 1))

    @torch.no_grad()
    def fit(self, x: Tensor, chunk: int = 1024) -> None:
        """``x``: (N, C, F, T) training features: each row's mean and standard deviation over the windows and frames,
        summed in float64 ``chunk`` windows at a time (a float64 copy of them all, and of their deviations, tripled the
        peak memory of a fit on hours of audio)."""
        n = x.shape[0] * x.shape[3]
        mean = sum(x[i:i + chunk].double().sum(dim=(0, 3), keepdim=True) for i in range(0, len(x), chunk)) / n
        std = (sum((x[i:i + chunk].double() - mean).square().sum(dim=(0, 3), keepdim=True)
                   for i in range(0, len(x), chunk)) / n).sqrt()
        self.mean.copy_(mean.float().squeeze(0).unsqueeze(0))
        self.std.copy_(std.clamp_min(self.eps).float().squeeze(0).unsqueeze(0))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def inverse(self, x: Tensor) -> Tensor:
        return x * self.std + self.mean
