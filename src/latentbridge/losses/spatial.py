"""Losses of the conditional VAE of spatial maps (:mod:`latentbridge.models.spatial`): bounded
reconstruction, L1 on the latent, KL with a progressively tightened free-nats constraint, and the
inverse-distance neighbour consistency of the output. Same conventions as the package's other
losses: a torch-style ``reduction`` ("none": one value per sample), an epsilon in every sqrt and
division.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from latentbridge.losses import _reduce, gaussian_kl, per_sample

_NORM_EPS = 1e-12


class BoundedReconstructionLoss(nn.Module):
    """Masked MSE plus a penalty on values outside the data range, per sample::

        mse     = sum(w (x̂ - x)^2) / (C sum(w) + eps)         w: valid-pixel weights (B, 1, H, W)
        penalty = mean(relu(lower - x̂)^2 + relu(x̂ - upper)^2)  over every element
        loss    = mse + weight * penalty

    ``lower`` / ``upper`` are per-channel bounds (shape (C,)) or scalars. ``forward`` returns the
    total; with ``return_parts=True`` also ``{"mse": ..., "bounds": ...}`` (identically reduced).
    """

    def __init__(self, weight: float = 1.0, reduction: str = "mean", eps: float = 1e-8):
        super().__init__()
        self.weight = float(weight)
        self.reduction = reduction
        self.eps = float(eps)

    def forward(self, x_hat: Tensor, x: Tensor, lower, upper, mask: Tensor | None = None,
                return_parts: bool = False):
        c = x.shape[1]
        lower = torch.as_tensor(lower, dtype=x_hat.dtype, device=x_hat.device)
        upper = torch.as_tensor(upper, dtype=x_hat.dtype, device=x_hat.device)
        if lower.dim() == 1:
            lower, upper = lower.view(1, -1, *([1] * (x_hat.dim() - 2))), upper.view(1, -1, *([1] * (x_hat.dim() - 2)))
        sq = (x_hat - x).pow(2)
        if mask is None:
            mse = per_sample(sq)
        else:
            w = mask.to(sq.dtype).expand_as(sq[:, :1])
            mse = (sq * w).flatten(1).sum(1) / (c * w.flatten(1).sum(1) + self.eps)
        penalty = per_sample(torch.relu(lower - x_hat).pow(2) + torch.relu(x_hat - upper).pow(2))
        total = mse + self.weight * penalty
        if return_parts:
            return _reduce(total, self.reduction), {"mse": _reduce(mse, self.reduction),
                                                    "bounds": _reduce(penalty, self.reduction)}
        return _reduce(total, self.reduction)


class LatentL1Loss(nn.Module):
    """Mean absolute value of a latent (e.g. the posterior mean) per sample: a sparsity prior."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, z: Tensor) -> Tensor:
        return _reduce(per_sample(z.abs()), self.reduction)


def free_nats_at(step: int, start: float, steps: int) -> float:
    """The free-nats allowance of :class:`ProgressiveKL` at a training step: ``start`` falling
    linearly to 0 over ``steps`` steps (0 from then on)."""
    if steps <= 0 or step >= steps:
        return 0.0
    return float(start) * (1.0 - step / steps)


class ProgressiveKL(nn.Module):
    """KL(q || N(0, I)) per sample, with the constraint introduced gradually (free nats).

    The KL of latent channel ``c`` (dim 1 of the mean, summed over its other dims) counts as
    ``max(KL_c, n_c * free)`` where ``n_c`` is the number of elements of the channel and
    ``free = free_nats_at(step, start, steps)`` nats per element: early in training a channel may
    carry up to ``free`` nats per element without cost (no gradient pulls it towards the prior),
    and the allowance shrinks to 0 over ``steps`` steps, after which this is the plain KL.
    ``forward(mean, logvar, step)``; ``step=None`` gives the plain KL (evaluation).
    """

    def __init__(self, start: float = 0.0, steps: int = 0, reduction: str = "mean"):
        super().__init__()
        self.start, self.steps = float(start), int(steps)
        self.reduction = reduction

    def forward(self, mean: Tensor, logvar: Tensor, step: int | None = None) -> Tensor:
        kl = gaussian_kl(mean, logvar)
        per_channel = kl.flatten(2).sum(2) if kl.dim() > 2 else kl  # (B, C)
        free = 0.0 if step is None else free_nats_at(step, self.start, self.steps)
        if free > 0:
            n = kl[0, 0].numel()
            per_channel = torch.clamp(per_channel, min=free * n)
        return _reduce(per_channel.sum(1), self.reduction)


class SpatialConsistencyLoss(nn.Module):
    """Neighbour consistency of a map, weighted by the inverse distance of the coordinates::

        L = sum_(i, j in kNN(i)) w_ij ||x̂_i - x̂_j||,    w_ij = 1 / (d(c_i, c_j) + eps)

    divided by the number of (i, j) pairs, so the value does not grow with the map size. Pixels lie
    on a grid (B, C, H, W) with coordinates ``coords`` (B, 2, H, W) (any units: pixel indices,
    normalised positions); the k nearest neighbours of each pixel (by coordinate distance, valid
    ones only when ``valid`` (B, 1, H, W) is given) are searched in the ``(2r+1)^2`` window around it
    (``r = radius``, default ``ceil(sqrt(k))``), so the cost is O(N k), never O(N^2); on a regular or
    mildly distorted grid the window holds the exact k nearest. ``||.||`` is the Euclidean norm
    over channels (``sqrt(. + 1e-12) - 1e-6``: 0 for equal values, a finite gradient). Per-sample
    values (B,).
    """

    def __init__(self, k: int = 8, eps: float = 1e-3, radius: int | None = None, reduction: str = "mean"):
        super().__init__()
        if k < 1:
            raise ValueError(f"SpatialConsistencyLoss: k must be >= 1, got {k}")
        self.k, self.eps = int(k), float(eps)
        self.radius = int(radius) if radius is not None else max(1, math.ceil(math.sqrt(k)))
        self.reduction = reduction
        r = self.radius
        self.offsets = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1) if (dy, dx) != (0, 0)]
        if len(self.offsets) < self.k:
            raise ValueError(f"SpatialConsistencyLoss: a radius of {r} holds fewer than k={k} neighbours")

    def _shift(self, t: Tensor, dy: int, dx: int, fill: float) -> Tensor:
        """``t`` moved so that position (y, x) holds t[y + dy, x + dx] (``fill`` outside)."""
        h, w = t.shape[-2:]
        out = torch.full_like(t, fill)
        if abs(dy) >= h or abs(dx) >= w:
            return out
        ys, yd = (slice(dy, h), slice(0, h - dy)) if dy >= 0 else (slice(0, h + dy), slice(-dy, h))
        xs, xd = (slice(dx, w), slice(0, w - dx)) if dx >= 0 else (slice(0, w + dx), slice(-dx, w))
        out[..., yd, xd] = t[..., ys, xs]
        return out

    def forward(self, x_hat: Tensor, coords: Tensor, valid: Tensor | None = None) -> Tensor:
        if coords.shape[0] != x_hat.shape[0] and coords.shape[0] == 1:
            coords = coords.expand(x_hat.shape[0], -1, -1, -1)
        ok = torch.ones_like(x_hat[:, :1], dtype=torch.bool) if valid is None else valid.bool()
        dists, norms = [], []
        for dy, dx in self.offsets:
            c_j = self._shift(coords, dy, dx, 0.0)
            ok_j = self._shift(ok, dy, dx, False) & ok
            d = (coords - c_j).pow(2).sum(1, keepdim=True).sqrt()
            dists.append(torch.where(ok_j, d, torch.full_like(d, float("inf"))))
            diff = (x_hat - self._shift(x_hat, dy, dx, 0.0)).pow(2).sum(1, keepdim=True)
            norms.append(torch.sqrt(diff + _NORM_EPS) - _NORM_EPS ** 0.5)
        dist, norm = torch.cat(dists, 1), torch.cat(norms, 1)  # (B, K, H, W)
        near, idx = dist.topk(self.k, dim=1, largest=False)
        exists = torch.isfinite(near)
        w = torch.where(exists, 1.0 / (near.clamp_max(1e30) + self.eps), torch.zeros_like(near))
        total = (w * norm.gather(1, idx)).flatten(1).sum(1)
        return _reduce(total / exists.flatten(1).sum(1).clamp_min(1), self.reduction)
