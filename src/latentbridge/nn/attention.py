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
    """GroupNorm with the largest group count <= ``groups`` that divides ``channels``."""
    return nn.GroupNorm(math.gcd(channels, groups), channels)


def _heads(channels: int, heads: int) -> int:
    return math.gcd(channels, heads) or 1


class SelfAttention2d(nn.Module):
    """Multi-head self-attention over the H x W positions of a (B, C, H, W) map."""

    def __init__(self, channels: int, heads: int = 4):
        super().__init__()
        self.norm = group_norm(channels)
        self.attn = nn.MultiheadAttention(channels, _heads(channels, heads), batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        t = self.norm(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        out, _ = self.attn(t, t, t, need_weights=False)
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class CrossAttention2d(nn.Module):
    """Positions of ``x`` (B, C, H, W) attend to the tokens of a condition map ``cond`` (B, Cc, H', W');
    ``weights(x, cond)`` returns the attention weights (B, HW, H'W') for inspection."""

    def __init__(self, channels: int, cond_channels: int, heads: int = 4):
        super().__init__()
        self.norm = group_norm(channels)
        self.norm_cond = group_norm(cond_channels)
        self.attn = nn.MultiheadAttention(channels, _heads(channels, heads), kdim=cond_channels,
                                          vdim=cond_channels, batch_first=True)

    def _tokens(self, x: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        q = self.norm(x).flatten(2).transpose(1, 2)
        kv = self.norm_cond(cond).flatten(2).transpose(1, 2)
        return q, kv

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, kv = self._tokens(x, cond)
        out, _ = self.attn(q, kv, kv, need_weights=False)
        return x + out.transpose(1, 2).reshape(b, c, h, w)

    @torch.no_grad()
    def weights(self, x: Tensor, cond: Tensor) -> Tensor:
        q, kv = self._tokens(x, cond)
        return self.attn(q, kv, kv, need_weights=True, average_attn_weights=True)[1]
