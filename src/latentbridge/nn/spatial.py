"""Blocks of the conditional VAE of spatial maps: Fourier features of coordinates, the coordinate
processor, multi-scale and residual convolution blocks, and a learnable output scale."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from latentbridge.nn.attention import group_norm


class FourierFeatures(nn.Module):
    """``[c, sin(pi f_k c), cos(pi f_k c)]`` for every coordinate channel ``c`` of a (B, D, H, W) map
    and ``n_frequencies`` frequencies ``f_k`` spaced geometrically from 1 to ``max_frequency`` (a
    buffer): coordinates in [-1, 1] resolve details down to ``1 / max_frequency`` of the extent."""

    def __init__(self, in_channels: int = 2, n_frequencies: int = 8, max_frequency: float = 32.0):
        super().__init__()
        freqs = torch.exp(torch.linspace(0.0, math.log(max_frequency), n_frequencies)) if n_frequencies > 1 \
            else torch.ones(1)
        self.register_buffer("frequencies", freqs * math.pi, persistent=False)
        self.out_channels = in_channels * (1 + 2 * len(freqs))

    def forward(self, coords: Tensor) -> Tensor:
        b, _, h, w = coords.shape
        phase = coords.unsqueeze(2) * self.frequencies.view(1, 1, -1, 1, 1)  # (B, D, F, H, W)
        feats = torch.cat([phase.sin(), phase.cos()], dim=2).reshape(b, -1, h, w)
        return torch.cat([coords, feats], dim=1)


class CoordinateProcessor(nn.Module):
    """Coordinates (B, 2, H, W) → per-pixel condition features (B, out, H, W): Fourier features and a
    two-layer 1 x 1 convolution network."""

    def __init__(self, out_channels: int, n_frequencies: int = 8, max_frequency: float = 32.0):
        super().__init__()
        self.fourier = FourierFeatures(2, n_frequencies, max_frequency)
        self.net = nn.Sequential(nn.Conv2d(self.fourier.out_channels, out_channels, 1), nn.SiLU(),
                                 nn.Conv2d(out_channels, out_channels, 1))

    def forward(self, coords: Tensor) -> Tensor:
        return self.net(self.fourier(coords))


class ResidualBlock(nn.Module):
    """``skip(x) + conv(SiLU(norm(conv(SiLU(norm(x))))))`` (a 1 x 1 skip when the width changes)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.body = nn.Sequential(group_norm(in_channels), nn.SiLU(), nn.Conv2d(in_channels, out_channels, 3, padding=1),
                                  group_norm(out_channels), nn.SiLU(), nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.skip(x) + self.body(x)


class MultiScaleBlock(nn.Module):
    """Parallel paths with growing receptive fields (1 x 1, and 3 x 3 with dilations ``dilations``),
    concatenated, fused by a 1 x 1 convolution and added to the input (residual)."""

    def __init__(self, channels: int, dilations: tuple[int, ...] = (1, 2, 4)):
        super().__init__()
        self.norm = group_norm(channels)
        branch = max(4, channels // (len(dilations) + 1))
        self.paths = nn.ModuleList([nn.Conv2d(channels, branch, 1)] + [
            nn.Conv2d(channels, branch, 3, padding=d, dilation=d) for d in dilations])
        self.fuse = nn.Sequential(nn.SiLU(), nn.Conv2d(branch * len(self.paths), channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        h = nn.functional.silu(self.norm(x))
        return x + self.fuse(torch.cat([p(h) for p in self.paths], dim=1))


class Upsample(nn.Module):
    """Nearest-neighbour x2 followed by a 3 x 3 convolution."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(nn.functional.interpolate(x, scale_factor=2, mode="nearest"))


class OutputScale(nn.Module):
    """A learnable per-channel affine map ``gain * x + bias`` (gain 1, bias 0 at the start)."""

    def __init__(self, channels: int):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.gain * x + self.bias
