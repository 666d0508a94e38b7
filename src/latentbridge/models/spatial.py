"""A conditional VAE of spatial maps (mass-spectrometry ion images): q(z | x, c), p(x | z, c).

The condition ``c`` is the position of every pixel: its (row, column) mapped to [-1, 1] over the
section (:class:`~latentbridge.transforms.spec.SpatialTransform`), so the model can learn where in
a section which abundance is plausible. Inputs are patches of C normalised channels with two
indicator maps: ``observed`` (1 where the input holds a measured value; hidden and missing pixels
are 0) and ``coarse`` (1 where the value is a 2 x 2 block mean, the input of upscaling).

Encoder: coordinate processor (Fourier features → 1 x 1 network) → the input, its indicators and
the condition features → 3 x 3 stem → multi-scale block (parallel 1 x 1 and dilated 3 x 3 paths) →
stride-2 convolution → residual block → self-attention over the latent grid (keys and values pooled
2 x 2) → mean and log-variance
of ``z`` (``latent_dim`` x H/2 x W/2; the log-variance is the latent's uncertainty).

Decoder: ``z`` and the pooled condition → residual block → cross-attention from the latent grid to
the condition tokens (the condition pooled to a quarter of the patch) → upsampling (nearest x 2 +
convolution) with a residual block → the
full-resolution condition joined again (a skip connection from the condition) → residual block →
mean, with a learnable per-channel output scale, and a log-variance head (the aleatoric uncertainty of
each output). By default nothing bypasses the latent: the only path from ``x`` to the output is ``z``.

Skip connections (``skips``): the encoder's full-resolution features (after the multi-scale block)
also join the decoder's full-resolution stage, U-Net style: fine detail no longer has to pass the
H/2 x W/2 latent. The decoder then needs the input's features, so such a model offers no first-stage
protocol (``decode(z)`` alone is undefined). With ``residual`` as well, the decoder's mean is a
correction added to a local average of the input (:func:`local_average`: a normalised Gaussian
convolution of the observed pixels, σ = 1 pixel; for upscaling, a smooth interpolation of the
blocks): the network learns what the average gets wrong (edges, fine structure) instead of the
levels themselves.

Blind-spot inference (``blind_spot`` = K > 0, for models trained on measured maps; see
:class:`~latentbridge.data.spatial.PatchDataset`): a model with skips trained to reproduce the
measured values it sees would learn the identity and keep the noise. Such a model is trained to
predict only pixels hidden from its input, and :meth:`SpatialCVAE.enhance` never reads an observed
pixel's output from a pass that saw it: the observed pixels are split into K groups by a fixed
pseudo-random pattern, K passes each hide one group, and every observed pixel takes the prediction of
the pass that hid it (missing and coarse pixels take the mean of the passes). The output at a pixel is
then independent of that pixel's measured value (J-invariant, as in Noise2Self), so with noise that is
independent between pixels it estimates the clean value, learned from noisy maps alone. Costs K passes.

Fusion with the measurement (``fuse``, with the blind spot): the blind-spot prediction ignores
what the pixel itself measured. The variance head learned Var(y | neighbours) = s_p + s_n(level):
the prediction's own uncertainty plus the measurement noise. After training,
:meth:`SpatialCVAE.fit_noise_model` fits s_n = a * level + b per channel (the Poisson-Gaussian
model, in normalised units) as the lower envelope of the predicted variance over levels (a low
quantile per level bin: where the neighbours predict well, the variance left is the noise); each
measured pixel then takes the posterior mean of a Gaussian prior N(mean, s_p) and a Gaussian
measurement of variance s_n, ``(s_n * mean + s_p * y) / (s_n + s_p)``, with variance
``s_n * s_p / (s_n + s_p)`` (as in Laine et al., 2019, "High-quality self-supervised deep image
denoising"). Until the noise model is fitted (``noise_model`` all zero) nothing is fused.

Loss per sample (parts are logged): ``mse + w_bounds * bounds + beta * kl + w_l1 * l1 + w_spatial *
spatial + w_uncertainty * nll`` with the masked MSE against ``target`` at its valid pixels, the
penalty outside the training range (:class:`~latentbridge.losses.BoundedReconstructionLoss`), the
KL per data element with progressive free nats (:class:`~latentbridge.losses.ProgressiveKL`, the
step count is a buffer of the model), L1 on the posterior mean, the inverse-distance k-nearest
neighbour consistency of the output (:class:`~latentbridge.losses.SpatialConsistencyLoss`, distances
in pixels) and the Gaussian NLL of the variance head (its gradient does not reach the mean).

First-stage protocol: the decoder needs the condition, so :meth:`SpatialCVAE.first_stage` returns a
view bound to coordinates (:class:`SpatialStage`): ``model.first_stage("", coords=c)`` for patches
at positions ``c`` (B or 1, 2, H, W); without coordinates, the patch is taken as a whole section
(its pixels spread over [-1, 1]). ``encode(x)`` treats every pixel of ``x`` (normalised maps, B, C,
H, W) as observed; ``decode(z)`` returns the mean map at the bound coordinates.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

from latentbridge.losses import BoundedReconstructionLoss, LatentL1Loss, ProgressiveKL, SpatialConsistencyLoss
from latentbridge.models.base import ModelFamily, ModelSpec, inference
from latentbridge.models.outputs import DiagonalGaussian
from latentbridge.nn.attention import CrossAttention2d, SelfAttention2d, group_norm
from latentbridge.nn.spatial import CoordinateProcessor, MultiScaleBlock, OutputScale, ResidualBlock, Upsample

DEFAULT_LOSS_WEIGHTS = {"bounds": 1.0, "latent_l1": 1e-3, "spatial": 0.0, "spatial_k": 8, "spatial_eps": 0.5,
                        "free_nats": 0.0, "free_nats_steps": 0, "uncertainty": 1.0}


class SpatialCVAEConfig(ModelSpec):
    name: Literal["spatial_cvae"] = "spatial_cvae"
    latent_dim: int = Field(8, gt=0)
    """Latent channels on the H/2 x W/2 grid."""
    channels: list[int] = Field(default_factory=lambda: [32, 64], min_length=2, max_length=2)
    """Widths at full resolution and on the latent grid."""
    condition_dim: int = Field(32, gt=0)
    """Width of the coordinate processor's features."""
    fourier_frequencies: int = Field(8, gt=0)
    max_frequency: float = Field(32.0, gt=0)
    heads: int = Field(4, gt=0)
    skips: bool = True
    """U-Net skip connection from the encoder's full-resolution features to the decoder (no first-stage
    protocol); false: the latent is the only path (a first stage for latent models)."""
    residual: bool = True
    """With ``skips``: the mean is a correction to a local average of the input (see the module docstring)."""
    blind_spot: int = Field(4, ge=0)
    """K > 1: blind-spot training and K-pass inference (see the module docstring); 0 = off (needed
    off only for a model without skips; training on clean maps switches it off)."""
    fuse: bool = True
    """With the blind spot: fuse each measured pixel's prediction with its own value by a fitted noise model."""

    @model_validator(mode="after")
    def _blind_spot_groups(self):
        if self.blind_spot == 1:
            raise ValueError("blind_spot: the number of pixel groups must be 0 (off) or at least 2")
        if self.residual and not self.skips:
            raise ValueError("residual: needs skips (the local average is an input-side path)")
        return self


def local_average(x: Tensor, observed: Tensor, sigma: float = 1.0, radius: int = 2) -> Tensor:
    """Normalised Gaussian convolution: at every pixel, the Gaussian-weighted mean of the observed
    values of ``x`` (B, C, H, W) within ``radius`` (0 where none is observed)."""
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (g[:, None] * g[None, :]).view(1, 1, 2 * radius + 1, 2 * radius + 1)
    c = x.shape[1]
    num = nn.functional.conv2d(x * observed, k.expand(c, 1, -1, -1), padding=radius, groups=c)
    den = nn.functional.conv2d(observed, k, padding=radius)
    return num / den.clamp_min(1e-3) * (den > 1e-3)


#: seed of the fixed pattern that splits a tile's pixels into the blind-spot groups
BLIND_SPOT_SEED = 20261130
#: the prediction's own variance is taken as at least this share of the noise variance when fusing (its
#: head can undershoot where the noise model's lower envelope is above it; 0.2 scored best of 0.05-0.3 on
#: the validation section of the benchmark run, benchmarks/README.md §9)
SP_FLOOR = 0.2


def blind_spot_groups(h: int, w: int, k: int, device=None) -> Tensor:
    """(h, w) group index in [0, k) of every pixel: a fixed pseudo-random pattern (the same for every
    tile), each pixel in a group with probability 1 / k like the pixels hidden in training."""
    g = torch.randint(0, k, (h, w), generator=torch.Generator().manual_seed(BLIND_SPOT_SEED))
    return g.to(device)


def coordinate_grid(h: int, w: int, n: int = 1, device=None, dtype=torch.float32) -> Tensor:
    """(n, 2, h, w) coordinates of an h x w grid spread over [-1, 1] (row, column)."""
    ys = torch.linspace(-1.0, 1.0, h, device=device, dtype=dtype) if h > 1 else torch.zeros(1, device=device)
    xs = torch.linspace(-1.0, 1.0, w, device=device, dtype=dtype) if w > 1 else torch.zeros(1, device=device)
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"))
    return grid.unsqueeze(0).expand(n, -1, -1, -1)


class SpatialStage:
    """The first-stage view of a :class:`SpatialCVAE` at fixed coordinates (see the module docstring)."""

    def __init__(self, model: SpatialCVAE, coords: Tensor | None = None):
        self.model = model
        self.coords = coords

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return self.model.latent_shape

    @property
    def latent_scale(self) -> Tensor:
        return self.model.latent_scale

    def _coords(self, n: int, h: int, w: int, like: Tensor) -> Tensor:
        if self.coords is None:
            return coordinate_grid(h, w, n, like.device, like.dtype)
        c = self.coords.to(like.device, like.dtype)
        return c.expand(n, -1, -1, -1) if c.shape[0] == 1 else c

    def encode(self, x: Tensor) -> DiagonalGaussian:
        n, _, h, w = x.shape
        ones, zeros = x.new_ones(n, 1, h, w), x.new_zeros(n, 1, h, w)
        return self.model.posterior(x, ones, zeros, self.model.condition(self._coords(n, h, w, x)))

    def decode(self, z: Tensor) -> Tensor:
        n, _, h, w = z.shape
        return self.model.decode_condition(z, self.model.condition(self._coords(n, 2 * h, 2 * w, z)))[0]


class SpatialCVAE(ModelFamily, nn.Module):
    name: ClassVar[str] = "spatial_cvae"
    config_class: ClassVar[type[ModelSpec]] = SpatialCVAEConfig
    tasks: ClassVar[tuple[str, ...]] = ("spatial",)
    first_stage_modalities: ClassVar[tuple[str, ...]] = ("",)

    def __init__(self, n_channels: int, patch_size: int, loss_weights: dict | None = None, latent_dim: int = 8,
                 channels: list[int] | tuple[int, int] = (32, 64), condition_dim: int = 32,
                 fourier_frequencies: int = 8, max_frequency: float = 32.0, heads: int = 4, skips: bool = False,
                 residual: bool = False, blind_spot: int = 0, fuse: bool = False):
        super().__init__()
        if patch_size % 2:
            raise ValueError(f"patch_size must be even (the latent grid is half the patch), got {patch_size}")
        self.n_channels, self.patch_size = int(n_channels), int(patch_size)
        self.weights = {**DEFAULT_LOSS_WEIGHTS, **(loss_weights or {})}
        self.params = dict(latent_dim=int(latent_dim), channels=[int(c) for c in channels],
                           condition_dim=int(condition_dim), fourier_frequencies=int(fourier_frequencies),
                           max_frequency=float(max_frequency), heads=int(heads), skips=bool(skips),
                           residual=bool(residual), blind_spot=int(blind_spot),
                           fuse=bool(fuse) and int(blind_spot) >= 2)
        if residual and not skips:
            raise ValueError("residual needs skips (the local average is an input-side path)")
        if blind_spot == 1 or blind_spot < 0:
            raise ValueError(f"blind_spot must be 0 (off) or at least 2 pixel groups, got {blind_spot}")
        if skips:  # the decoder needs the input's features: decode(z) alone is undefined
            self.first_stage_modalities = ()
        w0, w1 = self.params["channels"]
        c, d, dc = self.n_channels, int(latent_dim), int(condition_dim)
        self.coordinates = CoordinateProcessor(dc, fourier_frequencies, max_frequency)
        self.stem = nn.Conv2d(c + 2 + dc, w0, 3, padding=1)
        self.multiscale = MultiScaleBlock(w0)
        self.down = nn.Conv2d(w0, w1, 3, stride=2, padding=1)
        self.enc_block = ResidualBlock(w1, w1)
        self.enc_attention = SelfAttention2d(w1, heads, reduction=2)
        self.to_posterior = nn.Sequential(group_norm(w1), nn.SiLU(), nn.Conv2d(w1, 2 * d, 1))
        self.dec_in = nn.Conv2d(d + dc, w1, 3, padding=1)
        self.dec_block = ResidualBlock(w1, w1)
        self.cross_attention = CrossAttention2d(w1, dc, heads)
        self.up = Upsample(w1, w0)
        self.up_block = ResidualBlock(w0 + dc + (w0 if skips else 0), w0)
        self.out_block = ResidualBlock(w0, w0)
        self.to_mean = nn.Sequential(group_norm(w0), nn.SiLU(), nn.Conv2d(w0, c, 3, padding=1))
        self.to_logvar = nn.Sequential(group_norm(w0), nn.SiLU(), nn.Conv2d(w0, c, 3, padding=1))
        self.output_scale = OutputScale(c)
        self.register_buffer("lower", torch.full((c,), -1e4))
        self.register_buffer("upper", torch.full((c,), 1e4))
        self.register_buffer("latent_scale", torch.ones(()))
        #: calibration factors of the predicted standard deviation for observed, missing and coarse pixels
        self.register_buffer("sigma_scale", torch.ones(3))
        self.register_buffer("train_steps", torch.zeros((), dtype=torch.long))
        if self.params["fuse"]:  # (C, 2): noise variance a * level + b per channel (normalised units); 0: not fitted
            self.register_buffer("noise_model", torch.zeros(c, 2))
        self.recon = BoundedReconstructionLoss(self.weights["bounds"], reduction="none")
        self.kl = ProgressiveKL(self.weights["free_nats"], int(self.weights["free_nats_steps"]), reduction="none")
        self.l1 = LatentL1Loss(reduction="none")
        self.spatial = SpatialConsistencyLoss(int(self.weights["spatial_k"]), float(self.weights["spatial_eps"]),
                                              reduction="none")
        self.to(memory_format=torch.channels_last)  # ~20 % faster convolutions on CPU (oneDNN)

    # --- configuration ------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {"n_channels": self.n_channels, "patch_size": self.patch_size, "loss_weights": dict(self.weights),
                **self.params}

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.params["latent_dim"], self.patch_size // 2, self.patch_size // 2)

    @torch.no_grad()
    def set_bounds(self, lower, upper) -> None:
        """The data range (per channel, normalised units) of the bounded reconstruction."""
        self.lower.copy_(torch.as_tensor(lower, dtype=self.lower.dtype))
        self.upper.copy_(torch.as_tensor(upper, dtype=self.upper.dtype))

    # --- the networks -------------------------------------------------------------------
    def condition(self, coords: Tensor) -> Tensor:
        """Per-pixel condition features of coordinates (B, 2, H, W)."""
        return self.coordinates(coords)

    def posterior(self, x: Tensor, observed: Tensor, coarse: Tensor, cond: Tensor) -> DiagonalGaussian:
        return self.encode_input(x, observed, coarse, cond)[0]

    def encode_input(self, x: Tensor, observed: Tensor, coarse: Tensor,
                     cond: Tensor) -> tuple[DiagonalGaussian, Tensor | None]:
        """The posterior and (with ``skips``) what the decoder takes from the input: the full-resolution
        features and (with ``residual``) the local average of the observed values."""
        if x.shape[1] != self.n_channels or x.shape[-1] % 2 or x.shape[-2] % 2:
            raise ValueError(f"{type(self).__name__} expects (B, {self.n_channels}, H, W) maps with even H and W, "
                             f"got {tuple(x.shape)}")
        h = self.stem(torch.cat([x * observed, observed, coarse, cond], dim=1).contiguous(
            memory_format=torch.channels_last))
        full = self.multiscale(h)
        h = self.enc_attention(self.enc_block(self.down(full)))
        skip = None
        if self.params["skips"]:
            skip = (full, local_average(x, observed) if self.params["residual"] else None)
        return DiagonalGaussian.from_params(self.to_posterior(h)), skip

    def decode_condition(self, z: Tensor, cond: Tensor, skip: tuple | None = None) -> tuple[Tensor, Tensor]:
        """Mean and log-variance maps (B, C, 2h, 2w) of latents ``z`` (B, d, h, w) at the condition ``cond``
        (with ``skips``, also the encoder's features ``skip`` of the same input)."""
        if self.params["skips"] and skip is None:
            raise ValueError(f"{type(self).__name__} with skip connections decodes only with the encoder's "
                             "features of an input (encode_input)")
        pooled = nn.functional.avg_pool2d(cond, 2)
        h = self.dec_block(self.dec_in(torch.cat([z, pooled], dim=1).contiguous(memory_format=torch.channels_last)))
        h = self.cross_attention(h, nn.functional.avg_pool2d(pooled, 2))
        h = self.up_block(torch.cat([self.up(h), cond] + ([skip[0]] if self.params["skips"] else []), dim=1))
        h = self.out_block(h)
        mean = self.output_scale(self.to_mean(h))
        if skip is not None and skip[1] is not None:
            mean = mean + skip[1]
        return mean, self.to_logvar(h).clamp(-12.0, 8.0)

    def forward(self, batch: dict[str, Tensor], sample: bool | None = None,
                generator: torch.Generator | None = None) -> dict[str, Any]:
        cond = self.condition(batch["coords"])
        q, skip = self.encode_input(batch["x"], batch["observed"], batch["coarse"], cond)
        z = q.sample(generator) if (self.training if sample is None else sample) else q.mode()
        mean, logvar = self.decode_condition(z, cond, skip)
        return {"mean": mean, "logvar": logvar, "posterior": q, "z": z}

    # --- training -----------------------------------------------------------------------
    def loss(self, batch: dict[str, Tensor], beta: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        out = self(batch)
        target, valid = batch["target"], batch["target_valid"]
        q = out["posterior"]
        mean = out["mean"]
        total, parts = self.recon(mean, target, self.lower, self.upper, mask=valid, return_parts=True)
        step = int(self.train_steps) if self.training else None
        n_data = (valid.flatten(1).sum(1) * self.n_channels).clamp_min(1.0)
        kl = self.kl(q.mean, q.logvar, step) / n_data
        l1 = self.l1(q.mean)
        w = self.weights
        total = total + beta * kl + w["latent_l1"] * l1
        parts = {**parts, "kl": kl, "l1": l1}
        if w["spatial"]:
            _, _, h, wd = mean.shape
            pixels = coordinate_grid(h, wd, 1, mean.device, mean.dtype) * torch.tensor(
                [(h - 1) / 2, (wd - 1) / 2], device=mean.device, dtype=mean.dtype).view(1, 2, 1, 1)
            parts["spatial"] = self.spatial(mean, pixels, valid)
            total = total + w["spatial"] * parts["spatial"]
        if w["uncertainty"]:
            lv = out["logvar"]
            e2 = (target - mean.detach()).pow(2)
            nll = 0.5 * (e2 * torch.exp(-lv) + lv)
            m = valid.expand_as(nll)
            parts["nll"] = (nll * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1.0)
            total = total + w["uncertainty"] * parts["nll"]
        if self.training:
            self.train_steps += 1
        return total, parts

    # --- inference ----------------------------------------------------------------------
    @inference
    def enhance(self, x: Tensor, observed: Tensor, coarse: Tensor, coords: Tensor, n_samples: int = 8,
                generator: torch.Generator | None = None, fuse: bool = True) -> dict[str, Tensor]:
        """The posterior-mode reconstruction ``mean``, its aleatoric variance (the variance head),
        the variance of the decoded latent samples (``n_samples`` draws with ``generator``) and the
        posterior mode ``latent``; with ``blind_spot``, through K passes (see the module docstring)."""
        k = self.params["blind_spot"]
        plain = observed * (1 - coarse)  # measured pixels given as they are
        if k < 2 or not bool(plain.any()):
            return self._enhance_pass(x, observed, coarse, coords, n_samples, generator)
        b, _, h, w = x.shape
        groups = blind_spot_groups(h, w, k, x.device).view(1, 1, 1, h, w)
        hide = plain.unsqueeze(0) * (groups == torch.arange(k, device=x.device).view(k, 1, 1, 1, 1))  # (K, B, 1, H, W)
        obs_k = (observed.unsqueeze(0) - hide).flatten(0, 1)
        rep = lambda t: t.unsqueeze(0).expand(k, *t.shape).flatten(0, 1)  # noqa: E731
        out = self._enhance_pass(rep(x) * obs_k, obs_k, rep(coarse), rep(coords), n_samples, generator)
        res = {}
        for name in ("mean", "aleatoric_var", "latent_var"):
            v = out[name].view(k, b, *out[name].shape[1:])
            own = (v * hide).sum(0)  # each measured pixel from the pass that hid it
            res[name] = torch.where(plain > 0, own, v.mean(0))
        res["latent"] = out["latent"].view(k, b, *out["latent"].shape[1:]).mean(0)
        if fuse and self.params["fuse"] and bool(self.noise_model.any()):
            self._fuse(res, x, plain)
        return res

    def _fuse(self, res: dict[str, Tensor], x: Tensor, plain: Tensor) -> None:
        """Posterior mean and variance of every measured pixel (see the module docstring), in place."""
        a, b = (t.view(1, -1, 1, 1) for t in self.noise_model.unbind(1))
        mean, total = res["mean"], res["aleatoric_var"]
        s_n = (a * mean + b).clamp_min(1e-6)
        s_p = (total - s_n).clamp_min(SP_FLOOR * s_n)
        w = s_n / (s_n + s_p)  # weight of the prediction; 1 - w of the measurement
        sel = plain > 0
        res["mean"] = torch.where(sel, w * mean + (1 - w) * x, mean)
        res["aleatoric_var"] = torch.where(sel, w * s_p, total)
        res["latent_var"] = torch.where(sel, w * w * res["latent_var"], res["latent_var"])

    @torch.no_grad()
    def fit_noise_model(self, x: Tensor, observed: Tensor, coarse: Tensor, coords: Tensor, *, bins: int = 16,
                        quantile: float = 0.1, batch_size: int = 64) -> dict[str, list[float]]:
        """Fit ``noise_model`` on patches (normalised, as :meth:`enhance` takes them): per channel,
        the ``quantile`` of the predicted variance in each of ``bins`` level bins (equal counts) of
        the blind-spot predictions at measured pixels, and a least-squares line through them
        (``a`` >= 0; the variance floored at 1 % of its median); fewer bins when there are fewer
        than 20 measured pixels per bin. Returns the coefficients."""
        if not self.params["fuse"]:
            raise ValueError(f"{type(self).__name__} was built without fuse (or without the blind spot)")
        from latentbridge.utils import batched

        self.eval()
        mean, var = batched(lambda *bt: tuple(self.enhance(*bt, n_samples=0, fuse=False)[k]
                                              for k in ("mean", "aleatoric_var")),
                            x, observed, coarse, coords, batch_size=batch_size)
        sel = ((observed > 0) & (coarse == 0))[:, 0]  # (N, H, W)
        n = int(sel.sum())
        bins = min(bins, n // 20)
        if bins < 2:
            raise ValueError(f"too few measured pixels ({n}) to fit the noise model (at least 40)")
        coef = torch.zeros(self.n_channels, 2, dtype=torch.float64)
        for c in range(self.n_channels):
            lv, vv = mean[:, c][sel].double(), var[:, c][sel].double()
            order = lv.argsort()
            pts = [(float(lv[idx].median()), float(torch.quantile(vv[idx], quantile)))
                   for idx in order.tensor_split(bins)]
            xs, ys = torch.tensor(pts, dtype=torch.float64).unbind(1)
            slope = float(((xs - xs.mean()) * (ys - ys.mean())).sum() / ((xs - xs.mean()) ** 2).sum().clamp_min(1e-12))
            slope = max(slope, 0.0)
            intercept = float(ys.mean() - slope * xs.mean())
            floor = 0.01 * float(vv.median())
            intercept = max(intercept, floor - slope * float(lv.min()))  # positive over the levels seen
            coef[c] = torch.tensor([slope, intercept])
        self.noise_model.copy_(coef.to(self.noise_model.dtype))
        return {"a": coef[:, 0].tolist(), "b": coef[:, 1].tolist()}

    def _enhance_pass(self, x: Tensor, observed: Tensor, coarse: Tensor, coords: Tensor, n_samples: int,
                      generator: torch.Generator | None) -> dict[str, Tensor]:
        cond = self.condition(coords)
        q, skip = self.encode_input(x, observed, coarse, cond)
        mean, logvar = self.decode_condition(q.mode(), cond, skip)
        if n_samples > 0:
            draws = torch.stack([self.decode_condition(q.sample(generator), cond, skip)[0] for _ in range(n_samples)])
            sample_var = draws.var(0, unbiased=n_samples > 1) if n_samples > 1 else torch.zeros_like(mean)
        else:
            sample_var = torch.zeros_like(mean)
        return {"mean": mean, "aleatoric_var": logvar.exp(), "latent_var": sample_var, "latent": q.mode()}

    # --- first-stage protocol and checks ------------------------------------------------
    def first_stage(self, modality: str = "", coords: Tensor | None = None) -> SpatialStage:
        if self.params["skips"]:
            raise ValueError(f"{type(self).__name__} with skip connections offers no first-stage protocol "
                             "(its decoder needs the input's features)")
        if modality != "":
            raise ValueError(f"{type(self).__name__} offers the first-stage protocol for [''], not {modality!r}")
        return SpatialStage(self, coords)

    def example_batch(self, n: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Smooth region-like maps (every channel a mix of a few shared patterns) with noise, random
        hidden pixels for half of the samples, at the whole-patch coordinates."""
        p, c = self.patch_size, self.n_channels
        coords = coordinate_grid(p, p, n)
        k = 3
        centres = torch.rand(n, k, 2, 1, 1, generator=generator) * 2 - 1
        dist = (coords.unsqueeze(1) - centres).pow(2).sum(2)  # (n, k, p, p)
        patterns = torch.softmax(-4.0 * dist, dim=1)
        mixing = torch.rand(k, c, generator=generator) * 2 - 1
        target = torch.einsum("nkhw,kc->nchw", patterns, mixing) * 2
        x = target + 0.1 * torch.randn(target.shape, generator=generator)
        observed = torch.ones(n, 1, p, p)
        observed[n // 2:] = (torch.rand(n - n // 2, 1, p, p, generator=generator) > 0.2).float()
        return {"x": x, "observed": observed, "coarse": torch.zeros(n, 1, p, p), "coords": coords,
                "target": target, "target_valid": torch.ones(n, 1, p, p)}

    def example_modality(self, modality: str, batch: dict[str, Tensor]) -> Tensor:
        return batch["target"]
