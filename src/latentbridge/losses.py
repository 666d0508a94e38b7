"""Losses as modules with a torch-style ``reduction`` ("none" gives one value per sample).

Losses know nothing of models. Every log and sqrt carries an epsilon.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def _reduce(x: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return x
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")


def per_sample(x: Tensor) -> Tensor:
    """Mean over every non-batch dimension."""
    return x.flatten(1).mean(dim=1)


class MSELoss(nn.Module):
    """Mean squared error per sample (mean over all non-batch elements)."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, x_hat: Tensor, x: Tensor) -> Tensor:
        return _reduce(per_sample((x_hat - x).pow(2)), self.reduction)


class GaussianNLLLoss(nn.Module):
    """-log N(x; x_hat, sigma^2) summed over elements, per sample; ``log_sigma`` broadcasts."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, x_hat: Tensor, x: Tensor, log_sigma: Tensor) -> Tensor:
        log_sigma = log_sigma.expand_as(x)
        nll = 0.5 * ((x - x_hat) / torch.exp(log_sigma)).pow(2) + log_sigma + 0.5 * math.log(2 * math.pi)
        return _reduce(nll.flatten(1).sum(dim=1), self.reduction)


class KLDivergence(nn.Module):
    """KL(N(mean, exp(logvar)) || N(0, I)) summed over latent dims, per sample."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, mean: Tensor, logvar: Tensor) -> Tensor:
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)
        return _reduce(kl.flatten(1).sum(dim=1), self.reduction)


def beta_at(step: int, schedule: str, value: float, start: float = 0.0, warmup_steps: int = 0,
            cycle_steps: int = 1, ratio: float = 0.5) -> float:
    """KL weight at a training step.

    constant: ``value``; linear: ``start`` → ``value`` over ``warmup_steps`` then flat;
    cyclical (Fu et al. 2019): every ``cycle_steps`` restart at ``start`` and rise linearly to
    ``value`` over the first ``ratio`` of the cycle, then hold.
    """
    if schedule == "constant":
        return float(value)
    if schedule == "linear":
        if warmup_steps <= 0 or step >= warmup_steps:
            return float(value)
        return float(start + (value - start) * step / warmup_steps)
    if schedule == "cyclical":
        pos = (step % cycle_steps) / cycle_steps
        frac = min(1.0, pos / ratio)
        return float(start + (value - start) * frac)
    raise ValueError(f"unknown beta schedule {schedule!r} (constant, linear, cyclical)")
