"""Denoising networks for images: a 2-D U-Net with residual blocks, and the small two-block
U-Net of the reference design; plus the timestep and condition embeddings they share.

The networks know nothing of a noise schedule: they map ``(x_t, t, cond)`` to a tensor of the
shape of ``x_t`` (the noise, or the velocity, as the process that trains them decides).
``t`` is the integer (or real) training timestep; ``cond`` is an optional (B, emb_dim) vector
added to the timestep embedding (:class:`ConditionEmbedding` builds it from class labels and
continuous conditions).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal position encoding of timesteps ``t`` (B,) → (B, dim): ``[cos(t f_k), sin(t f_k)]``
    with frequencies ``f_k = max_period^(-k / (dim/2))`` (an odd ``dim`` gets one zero column)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float().reshape(-1, 1) * freqs.reshape(1, -1)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class TimestepMLP(nn.Module):
    """Sinusoidal encoding of ``t`` followed by a two-layer MLP."""

    def __init__(self, base_dim: int, out_dim: int):
        super().__init__()
        self.base_dim = int(base_dim)
        self.mlp = nn.Sequential(nn.Linear(self.base_dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(timestep_embedding(t, self.base_dim))


class ConditionEmbedding(nn.Module):
    """Class labels and continuous conditions → one (B, dim) vector, added to the timestep embedding.

    Class ``n_classes`` is the null class (no label: classifier-free guidance trains it by label
    dropout). Continuous conditions (B, n_continuous) go through a small MLP; where ``drop`` is
    True they are replaced by a learned null vector, as labels are by the null class. A model
    without conditions returns zeros."""

    def __init__(self, dim: int, n_classes: int = 0, n_continuous: int = 0):
        super().__init__()
        self.dim, self.n_classes, self.n_continuous = int(dim), int(n_classes), int(n_continuous)
        self.classes = nn.Embedding(self.n_classes + 1, self.dim) if self.n_classes else None
        if self.n_continuous:
            self.continuous = nn.Sequential(nn.Linear(self.n_continuous, self.dim), nn.SiLU(),
                                            nn.Linear(self.dim, self.dim))
            self.null_continuous = nn.Parameter(torch.zeros(self.dim))
        else:
            self.continuous = None

    @property
    def null_class(self) -> int:
        return self.n_classes

    def forward(self, batch: int, y: Tensor | None = None, c: Tensor | None = None,
                drop: Tensor | None = None, device=None) -> Tensor:
        """``y``: (B,) labels (``null_class`` = unconditional), ``c``: (B, n_continuous) values,
        ``drop``: (B,) bool, conditions to replace by their null (both kinds)."""
        out = torch.zeros(batch, self.dim, device=device)
        if self.classes is not None:
            if y is None:
                y = torch.full((batch,), self.null_class, dtype=torch.long, device=device)
            y = y.long()
            if drop is not None:
                y = torch.where(drop, torch.full_like(y, self.null_class), y)
            out = out + self.classes(y)
        if self.continuous is not None:
            null = self.null_continuous.expand(batch, -1)
            if c is None:
                out = out + null
            else:
                e = self.continuous(c.float().reshape(batch, self.n_continuous))
                out = out + (torch.where(drop.reshape(-1, 1), null, e) if drop is not None else e)
        return out


def _groups(channels: int, groups: int) -> int:
    g = min(groups, channels)
    while channels % g:
        g -= 1
    return g


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, the embedding added as a per-channel shift in between, and a
    (1x1 when the width changes) residual connection."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int = 8, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in, groups), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out, groups), c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over the pixels of a (low-resolution) feature map, residual."""

    def __init__(self, channels: int, heads: int = 4, groups: int = 8):
        super().__init__()
        if channels % heads:
            raise ValueError(f"attention: {channels} channels are not divisible by {heads} heads")
        self.heads = heads
        self.norm = nn.GroupNorm(_groups(channels, groups), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        attn = torch.softmax(torch.einsum("bhdi,bhdj->bhij", q, k) / math.sqrt(c // self.heads), dim=-1)
        out = torch.einsum("bhij,bhdj->bhdi", attn, v).reshape(b, c, h, w)
        return x + self.proj(out)


class _Level(nn.Module):
    def __init__(self, blocks: Sequence[ResBlock], attns: Sequence[nn.Module]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.attns = nn.ModuleList(attns)


class UNet2D(nn.Module):
    """U-Net over (B, C, H, W) images: ``len(channels)`` resolutions (H and W divisible by
    ``2 ** (len(channels) - 1)``), ``blocks`` residual blocks per resolution on the way down and
    ``blocks + 1`` on the way up (each taking one skip connection), self-attention at the
    resolutions where ``attention`` is True and in the middle, strided-conv downsampling and
    nearest-neighbour upsampling."""

    def __init__(self, in_channels: int = 1, channels: Sequence[int] = (32, 64, 64), blocks: int = 1,
                 attention: Sequence[bool] = (False, False, True), emb_dim: int | None = None, groups: int = 8,
                 heads: int = 4, dropout: float = 0.0, out_channels: int | None = None):
        super().__init__()
        channels = [int(c) for c in channels]
        attention = [bool(a) for a in attention]
        if not channels or len(attention) != len(channels):
            raise ValueError(f"UNet2D: attention {attention} must have one flag per level of channels {channels}")
        if blocks < 1:
            raise ValueError("UNet2D: blocks must be >= 1")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels or in_channels)
        self.emb_dim = int(emb_dim or 4 * channels[0])
        self.multiple = 2 ** (len(channels) - 1)
        self.time = TimestepMLP(channels[0], self.emb_dim)
        self.conv_in = nn.Conv2d(self.in_channels, channels[0], 3, padding=1)

        def attn(c: int, on: bool) -> nn.Module:
            return AttentionBlock(c, heads, groups) if on else nn.Identity()

        skips = [channels[0]]
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        c_prev = channels[0]
        for i, c in enumerate(channels):
            rbs, ats = [], []
            for _ in range(blocks):
                rbs.append(ResBlock(c_prev, c, self.emb_dim, groups, dropout))
                ats.append(attn(c, attention[i]))
                c_prev = c
                skips.append(c)
            self.down.append(_Level(rbs, ats))
            last = i == len(channels) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))
            if not last:
                skips.append(c)
        self.mid1 = ResBlock(c_prev, c_prev, self.emb_dim, groups, dropout)
        self.mid_attn = AttentionBlock(c_prev, heads, groups)
        self.mid2 = ResBlock(c_prev, c_prev, self.emb_dim, groups, dropout)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, c in reversed(list(enumerate(channels))):
            rbs, ats = [], []
            for _ in range(blocks + 1):
                rbs.append(ResBlock(c_prev + skips.pop(), c, self.emb_dim, groups, dropout))
                ats.append(attn(c, attention[i]))
                c_prev = c
            self.up.append(_Level(rbs, ats))
            self.upsample.append(nn.Identity() if i == 0 else nn.Conv2d(c, c, 3, padding=1))
        self.norm_out = nn.GroupNorm(_groups(c_prev, groups), c_prev)
        self.conv_out = nn.Conv2d(c_prev, self.out_channels, 3, padding=1)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        h_, w_ = x.shape[-2:]
        if h_ % self.multiple or w_ % self.multiple:
            raise ValueError(f"UNet2D with {len(self.down)} levels needs H and W divisible by {self.multiple}, "
                             f"got {(h_, w_)}")
        emb = self.time(t.reshape(-1).expand(x.shape[0]) if t.numel() == 1 else t)
        if cond is not None:
            emb = emb + cond
        h = self.conv_in(x)
        hs = [h]
        for level, down in zip(self.down, self.downsample):
            for block, att in zip(level.blocks, level.attns):
                h = att(block(h, emb))
                hs.append(h)
            if not isinstance(down, nn.Identity):
                h = down(h)
                hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for level, up in zip(self.up, self.upsample):
            for block, att in zip(level.blocks, level.attns):
                h = att(block(torch.cat([h, hs.pop()], dim=1), emb))
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


class SimpleUNet(nn.Module):
    """The reference design's small U-Net: two encoder blocks (two 3x3 conv + ReLU each) with max
    pooling, a bottleneck block, two transposed-convolution decoder blocks that concatenate the
    encoder features of their resolution, and a 1x1 output convolution. The sinusoidal timestep
    encoding (and the condition vector) enter every block as a per-channel bias."""

    def __init__(self, in_channels: int = 1, channels: Sequence[int] = (64, 128), emb_dim: int = 128,
                 out_channels: int | None = None):
        super().__init__()
        c1, c2 = (int(c) for c in channels)
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels or in_channels)
        self.emb_dim = int(emb_dim)
        self.multiple = 4
        self.time = TimestepMLP(self.emb_dim, self.emb_dim)

        def block(a: int, b: int) -> nn.ModuleDict:
            return nn.ModuleDict({"conv1": nn.Conv2d(a, b, 3, padding=1), "emb": nn.Linear(self.emb_dim, b),
                                  "conv2": nn.Conv2d(b, b, 3, padding=1)})

        self.enc1, self.enc2, self.mid = block(self.in_channels, c1), block(c1, c2), block(c2, c2)
        self.up2 = nn.ConvTranspose2d(c2, c2, 2, stride=2)
        self.dec2 = block(2 * c2, c1)
        self.up1 = nn.ConvTranspose2d(c1, c1, 2, stride=2)
        self.dec1 = block(2 * c1, c1)
        self.out = nn.Conv2d(c1, self.out_channels, 1)

    @staticmethod
    def _run(block: nn.ModuleDict, x: Tensor, emb: Tensor) -> Tensor:
        h = F.relu(block["conv1"](x) + block["emb"](emb)[:, :, None, None])
        return F.relu(block["conv2"](h))

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        h_, w_ = x.shape[-2:]
        if h_ % 4 or w_ % 4:
            raise ValueError(f"SimpleUNet needs H and W divisible by 4, got {(h_, w_)}")
        emb = self.time(t.reshape(-1).expand(x.shape[0]) if t.numel() == 1 else t)
        if cond is not None:
            emb = emb + cond
        e1 = self._run(self.enc1, x, emb)
        e2 = self._run(self.enc2, F.max_pool2d(e1, 2), emb)
        m = self._run(self.mid, F.max_pool2d(e2, 2), emb)
        d2 = self._run(self.dec2, torch.cat([self.up2(m), e2], dim=1), emb)
        d1 = self._run(self.dec1, torch.cat([self.up1(d2), e1], dim=1), emb)
        return self.out(d1)
