"""Single-modality latent models over (C, F, T) feature maps: VAE, AE and the DCASE 2020 dense AE.

All follow :class:`~latentbridge.models.base.LatentModel` (per-sample losses and scores, the
first-stage protocol). Scores: ``mse`` (mean squared reconstruction error), ``frame_max`` (the
squared error of the worst frame: short events such as clicks and knocks, which a mean over the
window dilutes), and for the VAE ``elbo`` and ``iwae`` (importance-sampled negative
log-likelihood). Reconstructions and scores live in the standardised space; ``reconstruct`` and
``decode`` map back to feature space.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from latentbridge.losses import GaussianNLLLoss
from latentbridge.models.base import LatentModel, ModelSpec, inference, reconstruction_errors
from latentbridge.models.outputs import AutoencoderOutput, DiagonalGaussian, standard_normal_log_prob
from latentbridge.nn.conv import ConvDecoder, ConvEncoder

AUDIO_TASKS = ("anomaly", "audio_ae")


class ConvVAEConfig(ModelSpec):
    name: Literal["conv_vae"] = "conv_vae"
    latent_dim: int = Field(16, gt=0)
    channels: list[int] = Field(default_factory=lambda: [16, 32, 64, 64])
    kernel_size: int = Field(3, gt=0)
    learn_sigma: bool = True
    """Learn the decoder's Gaussian noise scale (a calibrated decoder) instead of fixing it."""
    sigma: float = Field(1.0, gt=0)
    output_activation: Literal["none", "sigmoid"] = "none"


class ConvAEConfig(ModelSpec):
    name: Literal["conv_ae"] = "conv_ae"
    latent_dim: int = Field(16, gt=0)
    channels: list[int] = Field(default_factory=lambda: [16, 32, 64, 64])
    kernel_size: int = Field(3, gt=0)
    output_activation: Literal["none", "sigmoid"] = "none"


class DenseAEConfig(ModelSpec):
    name: Literal["dense_ae"] = "dense_ae"
    hidden_dims: list[int] = Field(default_factory=lambda: [128, 128, 128, 128])
    """Hidden layers (DCASE 2020 Task 2 baseline: 4 x 128, bottleneck 8)."""
    latent_dim: int = Field(8, gt=0)
    context_frames: int = Field(5, gt=0)
    """Consecutive frames stacked into one input vector."""


class ConvVAE(LatentModel):
    """Convolutional VAE with a Gaussian decoder whose noise scale can be learned.

    Training loss per sample: -log p(x|z) + beta * KL(q(z|x) || N(0, I)). With
    ``learn_sigma`` the decoder variance is one learned scalar (a calibrated decoder), which
    balances reconstruction and KL without hand tuning and makes the ELBO and the
    importance-sampled NLL meaningful anomaly scores.
    """

    name = "conv_vae"
    config_class = ConvVAEConfig
    tasks = AUDIO_TASKS
    score_methods = ("mse", "frame_max", "elbo", "iwae")

    def __init__(self, input_shape, latent_dim: int = 16, channels=(16, 32, 64, 64), kernel_size: int = 3,
                 learn_sigma: bool = True, sigma: float = 1.0, output_activation: str = "none", **common):
        channels = list(channels)
        super().__init__(input_shape, latent_dim=latent_dim, channels=channels, kernel_size=kernel_size,
                         learn_sigma=learn_sigma, sigma=sigma, output_activation=output_activation, **common)
        c, f, t = self.input_shape
        self.latent_dim = latent_dim
        self.encoder = ConvEncoder(c, channels, (f, t), 2 * latent_dim, kernel_size)
        self.decoder = ConvDecoder(latent_dim, channels, (f, t), c, output_activation)
        self.log_sigma = nn.Parameter(torch.tensor(math.log(sigma)), requires_grad=learn_sigma)
        self.nll = GaussianNLLLoss(reduction="none")

    def posterior(self, xn: Tensor) -> DiagonalGaussian:
        return DiagonalGaussian.from_params(self.encoder(xn), dim=1)

    def decode_normalized(self, z: Tensor) -> Tensor:
        return self.decoder(z)

    def forward(self, x: Tensor, sample: bool | None = None) -> AutoencoderOutput:
        """``sample`` defaults to ``self.training``: a reparameterised sample when training."""
        return self.variational_forward(x, sample, lambda x_hat, xn, q: {
            "nll": self.nll(x_hat, xn, self.log_sigma), "kl": q.kl(), **reconstruction_errors(x_hat, xn)})

    def loss(self, x: Tensor, beta: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        out = self.forward(x)
        total = out.losses["nll"] + beta * out.losses["kl"]
        parts = {**out.losses, "sigma": torch.exp(self.log_sigma).expand_as(total)}
        return self.loss_with_synthetic_anomalies(x, total, parts), parts

    def log_likelihood(self, xn: Tensor, z: Tensor) -> Tensor:
        """log p(x|z) per sample for z of shape (K, B, D) → (K, B)."""
        k, b, d = z.shape
        x_hat = self.decode_normalized(z.reshape(k * b, d)).reshape(k, b, *xn.shape[1:])
        return -self.nll(x_hat.flatten(0, 1), xn.unsqueeze(0).expand_as(x_hat).flatten(0, 1),
                         self.log_sigma).reshape(k, b)

    @inference
    def negative_elbo(self, x: Tensor, n_samples: int = 1, generator: torch.Generator | None = None) -> Tensor:
        xn = self.standardize(x)
        q = self.posterior(xn)
        z = q.rsample_n(n_samples, generator)
        return -self.log_likelihood(xn, z).mean(0) + q.kl()

    @inference
    def importance_sampled_nll(self, x: Tensor, n_samples: int = 32,
                               generator: torch.Generator | None = None) -> Tensor:
        """-log p(x) ≈ -log mean_k p(x|z_k) p(z_k) / q(z_k|x), z_k ~ q(z|x) (Burda et al. 2016)."""
        xn = self.standardize(x)
        q = self.posterior(xn)
        z = q.rsample_n(n_samples, generator)
        log_w = self.log_likelihood(xn, z) + standard_normal_log_prob(z) - q.log_prob(z)
        return -(torch.logsumexp(log_w, dim=0) - math.log(n_samples))

    def score(self, x: Tensor, method: str = "mse", n_samples: int = 32,
              generator: torch.Generator | None = None) -> Tensor:
        """Sampled scores (``elbo``, ``iwae``) draw from ``generator`` (never the global RNG when given)."""
        if method == "elbo":
            return self.negative_elbo(x, n_samples=max(1, n_samples // 4), generator=generator)
        if method == "iwae":
            return self.importance_sampled_nll(x, n_samples=n_samples, generator=generator)
        return super().score(x, method, n_samples)


class ConvAE(LatentModel):
    """Deterministic convolutional autoencoder with the same encoder/decoder as :class:`ConvVAE`."""

    name = "conv_ae"
    config_class = ConvAEConfig
    tasks = AUDIO_TASKS

    def __init__(self, input_shape, latent_dim: int = 16, channels=(16, 32, 64, 64), kernel_size: int = 3,
                 output_activation: str = "none", **common):
        channels = list(channels)
        super().__init__(input_shape, latent_dim=latent_dim, channels=channels, kernel_size=kernel_size,
                         output_activation=output_activation, **common)
        c, f, t = self.input_shape
        self.encoder = ConvEncoder(c, channels, (f, t), latent_dim, kernel_size)
        self.decoder = ConvDecoder(latent_dim, channels, (f, t), c, output_activation)

    def posterior(self, xn: Tensor) -> DiagonalGaussian:
        return DiagonalGaussian.point(self.encoder(xn))

    def decode_normalized(self, z: Tensor) -> Tensor:
        return self.decoder(z)

    def forward(self, x: Tensor) -> AutoencoderOutput:
        return self.variational_forward(x, False, lambda x_hat, xn, q: reconstruction_errors(x_hat, xn))

    def loss(self, x: Tensor, beta: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        out = self.forward(x)
        parts = dict(out.losses)
        return self.loss_with_synthetic_anomalies(x, out.losses["mse"], parts), parts


class DenseAE(LatentModel):
    """The DCASE 2020 Task 2 baseline: a dense autoencoder on stacked log-mel frames.

    ``context_frames`` consecutive frames of ``F`` mel bins form one input vector
    (5 x 128 = 640 in the reference); every hidden layer is Linear → BatchNorm → ReLU, with an
    8-unit bottleneck. The loss and score are the MSE over all vectors of a window.
    """

    name = "dense_ae"
    config_class = DenseAEConfig
    tasks = AUDIO_TASKS

    def __init__(self, input_shape, hidden_dims=(128, 128, 128, 128), latent_dim: int = 8,
                 context_frames: int = 5, **common):
        hidden_dims = list(hidden_dims)
        super().__init__(input_shape, hidden_dims=hidden_dims, latent_dim=latent_dim,
                         context_frames=context_frames, **common)
        c, f, t = self.input_shape
        if t < context_frames:
            raise ValueError(f"DenseAE needs at least {context_frames} frames per window, got {t}")
        self.context = context_frames
        self.dim = c * f * context_frames

        def block(i: int, o: int) -> list[nn.Module]:
            return [nn.Linear(i, o), nn.BatchNorm1d(o), nn.ReLU()]

        enc: list[nn.Module] = []
        prev = self.dim
        for h in hidden_dims:
            enc += block(prev, h)
            prev = h
        enc += block(prev, latent_dim)
        dec: list[nn.Module] = []
        prev = latent_dim
        for h in hidden_dims:
            dec += block(prev, h)
            prev = h
        dec.append(nn.Linear(prev, self.dim))
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)

    def _vectors(self, xn: Tensor) -> Tensor:
        """(B, C, F, T) → (B, T - context + 1, C * F * context), frames stacked in time order."""
        b, c, f, t = xn.shape
        win = xn.unfold(3, self.context, 1)  # (B, C, F, n, context)
        return win.permute(0, 3, 4, 1, 2).reshape(b, t - self.context + 1, self.dim)

    def _fold(self, v: Tensor, shape: torch.Size) -> Tensor:
        """Inverse of :meth:`_vectors`, averaging overlapping frames (shifted sums: exports to ONNX)."""
        b, c, f, t = shape
        n = t - self.context + 1
        v = v.reshape(b, n, self.context, c * f)
        out = v.new_zeros(b, t, c * f)
        for j in range(self.context):
            out = out + F.pad(v[:, :, j], (0, 0, j, t - n - j))
        counts = torch.tensor([sum(1 for j in range(self.context) if 0 <= tau - j < n) for tau in range(t)],
                              dtype=v.dtype, device=v.device)
        return (out / counts.view(1, t, 1)).permute(0, 2, 1).reshape(b, c, f, t)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """One code per stacked-frame vector: (vectors per window, latent_dim)."""
        return (self.input_shape[2] - self.context + 1, int(self.params["latent_dim"]))

    def posterior(self, xn: Tensor) -> DiagonalGaussian:
        v = self._vectors(xn)
        b, n, d = v.shape
        return DiagonalGaussian.point(self.encoder(v.reshape(b * n, d)).reshape(b, n, -1))

    def decode_normalized(self, z: Tensor) -> Tensor:
        b, n, k = z.shape
        c, f, t = self.input_shape
        v_hat = self.decoder(z.reshape(b * n, k)).reshape(b, n, self.dim)
        return self._fold(v_hat, torch.Size((b, c, f, t)))

    def forward(self, x: Tensor) -> AutoencoderOutput:
        self.check_input(x)
        xn = self.standardize(x)
        v = self._vectors(xn)
        b, n, d = v.shape
        z = self.encoder(v.reshape(b * n, d))
        v_hat = self.decoder(z).reshape(b, n, d)
        per_vector = (v_hat - v).pow(2).mean(-1)  # (B, n)
        losses = {"mse": per_vector.mean(1), "frame_max": per_vector.amax(1)}
        return AutoencoderOutput(reconstruction=self._fold(v_hat, xn.shape), latent=z.reshape(b, n, -1).mean(1),
                                 losses=losses)

    def loss(self, x: Tensor, beta: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        out = self.forward(x)
        parts = dict(out.losses)
        return self.loss_with_synthetic_anomalies(x, out.losses["mse"], parts), parts
