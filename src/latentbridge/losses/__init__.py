"""Losses as modules with a torch-style ``reduction`` ("none" gives one value per sample).

Losses know nothing of models. Every log and sqrt carries an epsilon. The losses of the spatial
conditional VAE live in :mod:`latentbridge.losses.spatial` (re-exported here).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from latentbridge.transforms.stft import STFT


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


def _wide(t: Tensor) -> Tensor:
    """``t`` in float32 at least (bfloat16 / float16 activations under autocast)."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def gaussian_kl(mean: Tensor, logvar: Tensor, other_mean: Tensor | None = None,
                other_logvar: Tensor | None = None) -> Tensor:
    """Element-wise KL(N(mean, exp(logvar)) || N(other_mean, exp(other_logvar))), against N(0, 1) by default:
    the one formula of the VAEs' KL terms. In float32 at least and through ``expm1``: from bfloat16 terms,
    ``var - 1 - logvar`` cancels near the prior (the KL of a posterior close to it was 17-63 % off)."""
    mean, logvar = _wide(mean), _wide(logvar)
    if other_mean is None:
        return 0.5 * (mean.pow(2) + torch.expm1(logvar) - logvar)
    other_logvar = _wide(other_logvar)
    d = logvar - other_logvar
    return 0.5 * ((mean - _wide(other_mean)).pow(2) * torch.exp(-other_logvar) + torch.expm1(d) - d)


class KLDivergence(nn.Module):
    """KL(N(mean, exp(logvar)) || N(0, I)) summed over latent dims, per sample."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, mean: Tensor, logvar: Tensor) -> Tensor:
        return _reduce(gaussian_kl(mean, logvar).flatten(1).sum(dim=1), self.reduction)


def beta_at(step: int, schedule: str, value: float, start: float = 0.0, warmup_steps: int = 0,
            cycle_steps: int = 1, ratio: float = 0.5) -> float:
    """KL weight at a training step.

    constant: ``value``; linear: ``start`` → ``value`` over ``warmup_steps`` then flat;
    cyclical (Fu et al. 2019): every ``cycle_steps`` restart at ``start`` and rise linearly to
    ``value`` over the first ``ratio`` of the cycle, then hold; sine (the spatial CVAE's cyclical
    annealing): ``start + (value - start) * (1 + sin(pi * (step / cycle_steps - 1/2))) / 2``, which
    rises smoothly from ``start`` to ``value`` over ``cycle_steps`` steps and falls back over the
    next ``cycle_steps`` (period ``2 * cycle_steps``).
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
    if schedule == "sine":
        return float(start + (value - start) * 0.5 * (1.0 + math.sin(math.pi * (step / cycle_steps - 0.5))))
    raise ValueError(f"unknown beta schedule {schedule!r} (constant, linear, cyclical, sine)")


# =========================================================================== multimodal losses
#
# Every loss below maps a batch to one value per sample with ``reduction="none"`` (shape (B,)),
# "mean"/"sum" reduce those per-sample values. Epsilons sit in every log, sqrt and division.


def _wrap(x: Tensor) -> Tensor:
    """Wrap angles to (-pi, pi]: ``atan2(sin x, cos x)``."""
    return torch.atan2(torch.sin(x), torch.cos(x))


def _as_phase(x: Tensor) -> Tensor:
    return x.angle() if x.is_complex() else x


class WaveformL1Loss(nn.Module):
    """Mean absolute error per sample over every non-batch dim ((B, C, T) or (B, T))."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, x_hat: Tensor, x: Tensor) -> Tensor:
        return _reduce(per_sample((x_hat - x).abs()), self.reduction)


class ScaleInvariantL1Loss(nn.Module):
    """Scale-invariant L1 (SI-L1), the L1 analogue of SI-SDR's distortion ratio.

    Per sample and channel, over time (``y`` the reference, ``ŷ`` the estimate)::

        alpha = <ŷ, y> / (<y, y> + eps)            # optimal scaling of the reference, as in SI-SDR
        loss  = mean_t |ŷ - alpha*y| / (mean_t |ŷ| + eps)

    then averaged over channels. The residual ``ŷ - alpha*y`` is the part of the estimate that
    no rescaling of the reference explains. It is divided by the estimate's own level (not by
    ``|alpha*y|``) so the loss stays bounded: an estimate orthogonal to the reference gives
    ``alpha = 0`` and a loss of 1 instead of ``|ŷ| / eps`` (in L2 the ratio is ``sin`` of the
    angle between ``ŷ`` and ``y``). It is zero iff ``ŷ = c*y`` and is invariant to rescaling
    the estimate (``ŷ -> c*ŷ``, any c != 0) and the reference (``y -> c*y``, c != 0), up to eps.
    ``zero_mean`` removes each channel's mean first (as SI-SDR implementations often do).

    Inputs are (B, C, T) or (B, T).
    """

    def __init__(self, reduction: str = "mean", eps: float = 1e-8, zero_mean: bool = False):
        super().__init__()
        self.reduction = reduction
        self.eps = float(eps)
        self.zero_mean = bool(zero_mean)

    def forward(self, x_hat: Tensor, x: Tensor) -> Tensor:
        if x_hat.dim() == 2:
            x_hat, x = x_hat.unsqueeze(1), x.unsqueeze(1)
        if self.zero_mean:
            x_hat = x_hat - x_hat.mean(dim=-1, keepdim=True)
            x = x - x.mean(dim=-1, keepdim=True)
        alpha = (x_hat * x).sum(dim=-1, keepdim=True) / (x.pow(2).sum(dim=-1, keepdim=True) + self.eps)
        resid = (x_hat - alpha * x).abs().mean(dim=-1)
        level = x_hat.abs().mean(dim=-1)
        return _reduce(per_sample(resid / (level + self.eps)), self.reduction)


class MultiResolutionSTFTLoss(nn.Module):
    """Multi-resolution STFT loss with per-sample output; the same value as auraloss's.

    For each resolution (Yamamoto et al. 2019, as in ``auraloss.freq.STFTLoss``)::

        |X| = sqrt(clamp(re^2 + im^2, min=eps))          # transforms.STFT: centred, reflect pad, hann
        sc  = ||  |Y| - |X|  ||_F / (|| |Y| ||_F + eps)   # spectral convergence
        log = mean | log|X| - log|Y| |
        lin = mean |  |X| - |Y|  |
        loss_r = w_sc*sc + w_log_mag*log + w_lin_mag*lin

    and the loss is the mean over resolutions. (B, C, T) inputs are folded to (B*C, T), every
    mono item gets its own value, and a sample's value is the mean over its channels.

    Why not call auraloss directly: its ``reduction="none"`` is not per sample (spectral
    convergence is a single Frobenius ratio over the whole batch, the magnitude terms come back
    element-wise), so here the same formulas are computed per item, vectorised over the batch.
    For a single mono item this equals ``auraloss.freq.MultiResolutionSTFTLoss`` (to the eps in
    the SC denominator, which auraloss does not have); with several items ``reduction="mean"``
    is the mean of the per-item auraloss values, whereas auraloss's batch value pools the SC
    norms over the batch. The spectra come from :class:`latentbridge.transforms.stft.STFT`, whose
    windows are buffers, so they follow ``.to()`` and the dtype; ``window`` names a periodic
    window as torch does (``"hann_window"``, ``"hamming_window"``, ``"blackman_window"``) or as
    the STFT does (``"hann"``, ...).

    ``hop_sizes`` default to ``fft_size // 4`` and ``win_lengths`` to ``fft_size``. Defaults
    suit short vibration windows; the signal must be longer than ``max(fft_sizes) // 2``.
    """

    def __init__(
        self,
        fft_sizes: tuple[int, ...] | list[int] = (64, 128, 256),
        hop_sizes: tuple[int, ...] | list[int] | None = None,
        win_lengths: tuple[int, ...] | list[int] | None = None,
        window: str = "hann_window",
        w_sc: float = 1.0,
        w_log_mag: float = 1.0,
        w_lin_mag: float = 0.0,
        eps: float = 1e-8,
        reduction: str = "mean",
    ):
        super().__init__()
        fft_sizes = [int(n) for n in fft_sizes]
        hop_sizes = [n // 4 for n in fft_sizes] if hop_sizes is None else [int(h) for h in hop_sizes]
        win_lengths = list(fft_sizes) if win_lengths is None else [int(w) for w in win_lengths]
        if not (len(fft_sizes) == len(hop_sizes) == len(win_lengths)) or not fft_sizes:
            raise ValueError("MultiResolutionSTFTLoss: fft_sizes, hop_sizes, win_lengths need the same non-zero length")
        self.fft_sizes, self.hop_sizes, self.win_lengths = fft_sizes, hop_sizes, win_lengths
        self.w_sc, self.w_log_mag, self.w_lin_mag = float(w_sc), float(w_log_mag), float(w_lin_mag)
        self.eps = float(eps)
        self.reduction = reduction
        # the package's STFT (centred, reflect padding, periodic window as a buffer): the same
        # frames auraloss computes with torch.stft and getattr(torch, window)(win_length)
        try:
            self.stfts = nn.ModuleList(
                STFT(n_fft=n, hop_length=h, win_length=w, window=str(window).removesuffix("_window"))
                for n, h, w in zip(fft_sizes, hop_sizes, win_lengths)
            )
        except ValueError as e:  # an unknown window or an impossible size
            raise ValueError(f"MultiResolutionSTFTLoss: {e}") from None

    def _mag(self, x: Tensor, i: int) -> Tensor:
        spec = self.stfts[i](x)
        return torch.sqrt(torch.clamp(spec.real.pow(2) + spec.imag.pow(2), min=self.eps))

    def per_item(self, x_hat: Tensor, x: Tensor) -> Tensor:
        """Loss of every mono item: (N, T) -> (N,)."""
        total = x_hat.new_zeros(x_hat.shape[0])
        for i in range(len(self.fft_sizes)):
            xm, ym = self._mag(x_hat, i), self._mag(x, i)
            if self.w_sc:
                num = (ym - xm).pow(2).sum(dim=(-2, -1)).sqrt()
                den = ym.pow(2).sum(dim=(-2, -1)).sqrt()
                total = total + self.w_sc * num / (den + self.eps)
            if self.w_log_mag:
                total = total + self.w_log_mag * (torch.log(xm) - torch.log(ym)).abs().mean(dim=(-2, -1))
            if self.w_lin_mag:
                total = total + self.w_lin_mag * (xm - ym).abs().mean(dim=(-2, -1))
        return total / len(self.fft_sizes)

    def forward(self, x_hat: Tensor, x: Tensor) -> Tensor:
        if x_hat.shape != x.shape:
            raise ValueError(f"MultiResolutionSTFTLoss: shapes differ {tuple(x_hat.shape)} vs {tuple(x.shape)}")
        if x_hat.dim() == 2:
            x_hat, x = x_hat.unsqueeze(1), x.unsqueeze(1)
        b, c, t = x_hat.shape
        items = self.per_item(x_hat.reshape(b * c, t), x.reshape(b * c, t))
        return _reduce(items.reshape(b, c).mean(dim=1), self.reduction)


class MagnitudeL1Loss(nn.Module):
    """Mean |M̂ - M| per sample; ``log=True`` compares ``log(M + eps)``. Complex inputs: abs first."""

    def __init__(self, reduction: str = "mean", log: bool = False, eps: float = 1e-6):
        super().__init__()
        self.reduction = reduction
        self.log = bool(log)
        self.eps = float(eps)

    def forward(self, m_hat: Tensor, m: Tensor) -> Tensor:
        if m_hat.is_complex():
            m_hat = m_hat.abs()
        if m.is_complex():
            m = m.abs()
        if self.log:
            m_hat, m = torch.log(m_hat + self.eps), torch.log(m + self.eps)
        return _reduce(per_sample((m_hat - m).abs()), self.reduction)


def _weighted_mean(d: Tensor, w: Tensor | None, eps: float) -> Tensor:
    """Per-sample mean of ``d`` (B, ...), or ``sum(w d) / (sum(w) + eps)`` when ``w`` is given."""
    if w is None:
        return per_sample(d)
    w = w.expand_as(d)
    return (w * d).flatten(1).sum(dim=1) / (w.flatten(1).sum(dim=1) + eps)


def _check_phase_pair(phi_hat: Tensor, phi: Tensor, weight: Tensor | None, name: str) -> None:
    if phi_hat.shape != phi.shape:
        raise ValueError(f"{name}: shapes differ {tuple(phi_hat.shape)} vs {tuple(phi.shape)}")
    if phi_hat.dim() < 3:
        raise ValueError(f"{name}: expected (B, [C,] F, T) phases, got shape {tuple(phi_hat.shape)}")
    if weight is not None and weight.shape[-2:] != phi.shape[-2:]:
        raise ValueError(f"{name}: weight shape {tuple(weight.shape)} does not match {tuple(phi.shape)}")


class PhaseGradientLoss(nn.Module):
    """Phase-derivative loss along time (instantaneous frequency) and frequency (group delay).

    Inputs are phases in radians (or complex spectrograms, whose angle is taken) of shape
    (B, C, F, T) or (B, F, T). Along each axis ``a`` (time = last dim, frequency = dim -2)::

        d_a = wrap(wrap(Δ_a φ̂) - wrap(Δ_a φ))      wrap(x) = atan2(sin x, cos x) in (-pi, pi]
        loss = (mean |d_time| + mean |d_freq|) / 2

    Invariant to a constant phase offset and to adding 2πk to any bin; *not* invariant to a
    linear phase ramp (a ramp of slope ``a`` along time adds ``|wrap(a)| / 2``).

    ``weight`` (e.g. the target magnitude, (B, C, F, T) or broadcastable over C) weights each
    difference by the smaller weight of the bins it joins (a phase difference means little if
    either bin is silent) and is normalised per sample: ``sum(w |d|) / (sum(w) + eps)``.
    """

    order = 1

    def __init__(self, reduction: str = "mean", eps: float = 1e-8):
        super().__init__()
        self.reduction = reduction
        self.eps = float(eps)

    @staticmethod
    def _diff(x: Tensor, dim: int, order: int) -> Tensor:
        if order == 1:
            return _wrap(x.diff(dim=dim))
        n = x.shape[dim]
        a, b, c = x.narrow(dim, 0, n - 2), x.narrow(dim, 1, n - 2), x.narrow(dim, 2, n - 2)
        return _wrap(c - 2.0 * b + a)

    @staticmethod
    def _pair_weight(w: Tensor, dim: int, order: int) -> Tensor:
        n = w.shape[dim]
        parts = [w.narrow(dim, k, n - order) for k in range(order + 1)]
        out = parts[0]
        for p in parts[1:]:
            out = torch.minimum(out, p)
        return out

    def forward(self, phi_hat: Tensor, phi: Tensor, weight: Tensor | None = None) -> Tensor:
        phi_hat, phi = _as_phase(phi_hat), _as_phase(phi)
        _check_phase_pair(phi_hat, phi, weight, type(self).__name__)
        if weight is not None:
            weight = weight.to(phi.dtype).expand(phi.shape)
        terms = []
        for dim in (-1, -2):
            if phi.shape[dim] <= self.order:
                continue
            d = _wrap(self._diff(phi_hat, dim, self.order) - self._diff(phi, dim, self.order)).abs()
            w = None if weight is None else self._pair_weight(weight, dim, self.order)
            terms.append(_weighted_mean(d, w, self.eps))
        if not terms:
            raise ValueError(f"{type(self).__name__}: need more than {self.order} bins along time or frequency")
        return _reduce(torch.stack(terms).mean(dim=0), self.reduction)


class PhaseLaplacianLoss(PhaseGradientLoss):
    """:class:`PhaseGradientLoss` on wrapped second differences (discrete Laplacian per axis).

    Along each axis ``L_a φ = wrap(φ[k+1] - 2 φ[k] + φ[k-1])``; ``d_a = wrap(L_a φ̂ - L_a φ)``;
    loss = (mean |d_time| + mean |d_freq|) / 2 (the axes are compared separately, so curvature
    along time and along frequency cannot cancel). Invariant to a constant offset, to 2πk per
    bin *and* to linear phase ramps along either axis (``a t + b f + c``). ``weight``: the
    smallest of the three bins' weights, normalised per sample.
    """

    order = 2


class DiceLoss(nn.Module):
    """Soft Dice loss on ``sigmoid(logits)`` per sample::

        1 - (2 Σ p t + smooth) / (Σ p + Σ t + smooth)

    over every non-batch dim. The smoothing makes an empty target with an empty prediction a
    loss of 0 (and a perfect match close to 0).
    """

    def __init__(self, reduction: str = "mean", smooth: float = 1.0):
        super().__init__()
        if smooth <= 0:
            raise ValueError(f"DiceLoss: smooth must be > 0, got {smooth}")
        self.reduction = reduction
        self.smooth = float(smooth)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        p = torch.sigmoid(logits).flatten(1)
        t = target.to(p.dtype).flatten(1)
        inter = (p * t).sum(dim=1)
        dice = (2.0 * inter + self.smooth) / (p.sum(dim=1) + t.sum(dim=1) + self.smooth)
        return _reduce(1.0 - dice, self.reduction)


class BCEWithLogitsLoss(nn.Module):
    """Binary cross-entropy on logits, mean per sample (soft targets in [0, 1] allowed)."""

    def __init__(self, reduction: str = "mean", pos_weight: float | None = None):
        super().__init__()
        self.reduction = reduction
        self.pos_weight = None if pos_weight is None else float(pos_weight)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        target = target.to(logits.dtype)
        pw = None if self.pos_weight is None else logits.new_tensor(self.pos_weight)
        bce = nn.functional.binary_cross_entropy_with_logits(logits, target, pos_weight=pw, reduction="none")
        return _reduce(per_sample(bce), self.reduction)


class FocalLoss(nn.Module):
    """Sigmoid focal loss (Lin et al. 2017), mean per sample::

        p_t = p t + (1 - p)(1 - t),   FL = -alpha_t (1 - p_t)^gamma log(p_t)

    with ``log(p_t)`` taken from the numerically stable BCE on logits and
    ``alpha_t = alpha t + (1 - alpha)(1 - t)`` (no class weighting when ``alpha`` is None).
    ``gamma = 0`` and ``alpha = None`` give the BCE.
    """

    def __init__(self, gamma: float = 2.0, alpha: float | None = None, reduction: str = "mean"):
        super().__init__()
        if gamma < 0:
            raise ValueError(f"FocalLoss: gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)
        self.alpha = None if alpha is None else float(alpha)
        self.reduction = reduction

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        t = target.to(logits.dtype)
        ce = nn.functional.binary_cross_entropy_with_logits(logits, t, reduction="none")
        p = torch.sigmoid(logits)
        p_t = p * t + (1.0 - p) * (1.0 - t)
        loss = ce * (1.0 - p_t).clamp(min=0.0).pow(self.gamma)
        if self.alpha is not None:
            loss = (self.alpha * t + (1.0 - self.alpha) * (1.0 - t)) * loss
        return _reduce(per_sample(loss), self.reduction)


class MaskLoss(nn.Module):
    """Weighted sum ``dice * Dice + bce * BCE + focal * Focal`` per sample.

    ``forward(logits, target)`` returns the (reduced) total; with ``return_parts=True`` it
    returns ``(total, parts)`` where ``parts`` maps "dice"/"bce"/"focal" to the unweighted,
    identically reduced terms (only the terms with a non-zero weight are computed).
    """

    def __init__(self, dice: float = 1.0, bce: float = 1.0, focal: float = 0.0, gamma: float = 2.0,
                 alpha: float | None = None, smooth: float = 1.0, reduction: str = "mean"):
        super().__init__()
        self.weights = {"dice": float(dice), "bce": float(bce), "focal": float(focal)}
        self.reduction = reduction
        self.dice = DiceLoss(reduction="none", smooth=smooth)
        self.bce = BCEWithLogitsLoss(reduction="none")
        self.focal = FocalLoss(gamma=gamma, alpha=alpha, reduction="none")

    def forward(self, logits: Tensor, target: Tensor, return_parts: bool = False):
        total = logits.new_zeros(logits.shape[0])
        parts: dict[str, Tensor] = {}
        for name, w in self.weights.items():
            if w == 0.0:
                continue
            value = getattr(self, name)(logits, target)
            parts[name] = _reduce(value, self.reduction)
            total = total + w * value
        total = _reduce(total, self.reduction)
        return (total, parts) if return_parts else total


# the spatial-map losses (their module imports the helpers above)
from latentbridge.losses.spatial import (  # noqa: E402, F401 (re-exported)
    BoundedReconstructionLoss,
    LatentL1Loss,
    ProgressiveKL,
    SpatialConsistencyLoss,
    free_nats_at,
)
