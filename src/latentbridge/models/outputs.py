"""Typed model outputs and the diagonal Gaussian posterior."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from latentbridge.losses import gaussian_kl

LOG_2PI = math.log(2 * math.pi)


class DiagonalGaussian:
    """A diagonal Gaussian over the trailing dimensions of ``mean``.

    ``sample`` uses the reparameterisation trick; ``kl`` is against another diagonal Gaussian
    (standard normal by default); ``nll``/``log_prob`` sum over every non-batch dimension, so
    all of them return one value per sample.
    """

    def __init__(self, mean: Tensor, logvar: Tensor, clamp: tuple[float, float] = (-30.0, 20.0)):
        self.mean = mean
        self.logvar = logvar.clamp(*clamp)
        self.std = torch.exp(0.5 * self.logvar)
        self.var = torch.exp(self.logvar)
        self.deterministic = False

    @classmethod
    def point(cls, mean: Tensor) -> "DiagonalGaussian":
        """A point mass at ``mean`` (the posterior of a deterministic encoder): zero variance, so
        ``sample`` returns ``mean``; ``kl`` and ``log_prob`` are undefined (errors)."""
        q = cls.__new__(cls)
        q.mean = mean
        q.logvar = torch.full_like(mean, float("-inf"))
        q.std = torch.zeros_like(mean)
        q.var = torch.zeros_like(mean)
        q.deterministic = True
        return q

    def _check_stochastic(self, what: str) -> None:
        if self.deterministic:
            raise ValueError(f"{what} of a point mass (a deterministic encoder's posterior) is undefined")

    @classmethod
    def from_params(cls, params: Tensor, dim: int = 1) -> "DiagonalGaussian":
        mean, logvar = params.chunk(2, dim=dim)
        return cls(mean, logvar)

    def _sum(self, x: Tensor) -> Tensor:
        """One value per sample, summed in float32 at least (under bf16 autocast the terms are bfloat16)."""
        return x.flatten(1).sum(dim=1, dtype=torch.promote_types(x.dtype, torch.float32))

    def _noise(self, shape, generator: torch.Generator | None) -> Tensor:
        """Standard normal noise on the mean's device, drawn from ``generator`` on its own device (a CPU
        generator scoring a model on a GPU: the same draws, so the same scores, on every device)."""
        m = self.mean
        if generator is None or generator.device == m.device:
            return torch.randn(shape, generator=generator, device=m.device, dtype=m.dtype)
        return torch.randn(shape, generator=generator, device=generator.device, dtype=m.dtype).to(m.device)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        if self.deterministic:
            return self.mean
        return self.mean + self.std * self._noise(self.mean.shape, generator)

    def rsample_n(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` reparameterised samples, shape (n, *mean.shape)."""
        eps = self._noise((n, *self.mean.shape), generator)
        return self.mean.unsqueeze(0) + self.std.unsqueeze(0) * eps

    def mode(self) -> Tensor:
        return self.mean

    def kl(self, other: "DiagonalGaussian | None" = None) -> Tensor:
        self._check_stochastic("KL")
        if other is None:
            return self._sum(gaussian_kl(self.mean, self.logvar))
        return self._sum(gaussian_kl(self.mean, self.logvar, other.mean, other.logvar))

    def log_prob(self, x: Tensor) -> Tensor:
        """log N(x; mean, var) summed per sample; ``x`` may carry extra leading sample dims."""
        self._check_stochastic("log_prob")
        lp = -0.5 * (LOG_2PI + self.logvar + (x - self.mean).pow(2) / self.var)
        return lp.flatten(lp.dim() - self.mean.dim() + 1).sum(-1)

    def nll(self, x: Tensor) -> Tensor:
        return -self.log_prob(x)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I) summed over the last dimension."""
    return -0.5 * (LOG_2PI + z.pow(2)).sum(-1)


@dataclass
class AutoencoderOutput:
    """What every model's ``forward`` returns. Per-sample tensors have shape (B,)."""

    reconstruction: Tensor
    latent: Tensor
    posterior: DiagonalGaussian | None = None
    losses: dict[str, Tensor] = field(default_factory=dict)
