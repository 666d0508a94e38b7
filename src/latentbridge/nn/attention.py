"""Attention over the pixels of 2-D feature maps: self-attention (every position attends to every
other) and cross-attention (positions of one map attend to the tokens of a condition map).

Both are pre-norm residual blocks: ``x + out(attend(norm(x)))``, so they start close to the identity
and can be inserted into a convolutional stack. The cost is O((H W)^2) per map: use them at a coarse
resolution (the conditional VAE uses them on its latent grid).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def group_norm(channels: int, groups: int = 8) -> nn.GroupNorm:
    """GroupNorm of ``gcd(channels, groups)`` groups (12 channels, 8 groups: 4; the U-Net's own ``_groups`` takes the
    largest divisor <= ``groups``, 6: each model keeps its rule, its saved weights normalise by it)."""
    return nn.GroupNorm(math.gcd(channels, groups), channels)


def _heads(channels: int, heads: int) -> int:
    return math.gcd(channels, heads) or 1


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention with ``heads`` heads over token sequences (B, N, C) → (B, Nq, C),
    written with batched matrix products (on CPU, faster than the fused kernels at the small head
    sizes used here). ``weights=True`` also returns the attention weights averaged over heads."""

    def __init__(self, channels: int, heads: int, kv_channels: int | None = None):
        super().__init__()
        self.heads = _heads(channels, heads)
        kv = kv_channels or channels
        self.q = nn.Linear(channels, channels)
        self.kv = nn.Linear(kv, 2 * channels)
        self.out = nn.Linear(channels, channels)

    def forward(self, query: Tensor, context: Tensor, weights: bool = False):
        b, nq, c = query.shape
        h, dh = self.heads, c // self.heads
        q = (self.q(query) / math.sqrt(dh)).view(b, nq, h, dh).transpose(1, 2).reshape(b * h, nq, dh)
        k, v = self.kv(context).chunk(2, dim=-1)
        k = k.reshape(b, -1, h, dh).transpose(1, 2).reshape(b * h, -1, dh)
        v = v.reshape(b, -1, h, dh).transpose(1, 2).reshape(b * h, -1, dh)
        att = torch.softmax(torch.bmm(q, k.transpose(1, 2)), dim=-1)
        out = torch.bmm(att, v).view(b, h, nq, dh).transpose(1, 2).reshape(b, nq, c)
        out = self.out(out)
        return (out, att.view(b, h, nq, -1).mean(1)) if weights else out


class SelfAttention2d(nn.Module):
    """Multi-head self-attention over the H x W positions of a (B, C, H, W) map. With ``reduction``
    r > 1 the keys and values are the map average-pooled r x r (spatial-reduction attention: r^2
    times less work; every position still sees the whole map)."""

    def __init__(self, channels: int, heads: int = 4, reduction: int = 1):
        super().__init__()
        self.norm = group_norm(channels)
        self.reduction = int(reduction)
        self.attn = MultiHeadAttention(channels, heads)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        n = self.norm(x)
        t = n.flatten(2).transpose(1, 2)  # (B, HW, C)
        kv = t if self.reduction == 1 else nn.functional.avg_pool2d(n, self.reduction).flatten(2).transpose(1, 2)
        return x + self.attn(t, kv).transpose(1, 2).reshape(b, c, h, w)


class CrossAttention2d(nn.Module):
    """Positions of ``x`` (B, C, H, W) attend to the tokens of a condition map ``cond`` (B, Cc, H', W');
    ``weights(x, cond)`` returns the attention weights (B, HW, H'W') for inspection."""

    def __init__(self, channels: int, cond_channels: int, heads: int = 4):
        super().__init__()
        self.norm = group_norm(channels)
        self.norm_cond = group_norm(cond_channels)
        self.attn = MultiHeadAttention(channels, heads, cond_channels)

    def _tokens(self, x: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        q = self.norm(x).flatten(2).transpose(1, 2)
        kv = self.norm_cond(cond).flatten(2).transpose(1, 2)
        return q, kv

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, kv = self._tokens(x, cond)
        return x + self.attn(q, kv).transpose(1, 2).reshape(b, c, h, w)

    @torch.no_grad()
    def weights(self, x: Tensor, cond: Tensor) -> Tensor:
        q, kv = self._tokens(x, cond)
        return self.attn(q, kv, weights=True)[1]
