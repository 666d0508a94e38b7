"""Single-modality latent models over (C, F, T) feature maps: VAE, AE and the DCASE 2020 dense AE.

Every model shares one interface (:class:`LatentModel`):

- ``forward(x)`` → :class:`AutoencoderOutput` with per-sample losses,
- ``loss(x, beta)`` → per-sample training loss and the named parts that were logged,
- ``score(x, method)`` → one anomaly score per sample (higher = more anomalous): ``mse`` (mean
  squared reconstruction error), ``frame_max`` (the squared error of the worst frame: short
  events such as clicks and knocks, which a mean over the window dilutes), and for the VAE
  ``elbo`` and ``iwae`` (importance-sampled negative log-likelihood),
- ``reconstruct(x)`` / ``encode(x)`` for plots and latent analysis.

Inputs are raw features (e.g. dB mel); each model standardises them with its own
:class:`FeatureNormalizer`, whose statistics are saved with the weights. Reconstructions and
scores live in the standardised space; ``reconstruct`` maps back to feature space.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentbridge.losses import GaussianNLLLoss
from latentbridge.models.outputs import AutoencoderOutput, DiagonalGaussian, standard_normal_log_prob
from latentbridge.nn.conv import ConvDecoder, ConvEncoder, FeatureNormalizer


def reconstruction_errors(x_hat: Tensor, x: Tensor) -> dict[str, Tensor]:
    """Per-sample ``mse`` and ``frame_max`` (largest per-frame mean squared error) of (B, C, F, T) maps."""
    per_frame = (x_hat - x).pow(2).mean(dim=(1, 2))  # (B, T)
    return {"mse": per_frame.mean(1), "frame_max": per_frame.amax(1)}


class LatentModel(nn.Module):
    """Base class: holds the normaliser and the shared scoring/reconstruction logic."""

    score_methods: tuple[str, ...] = ("mse", "frame_max")
    deterministic_scores = ("mse", "frame_max")

    def __init__(self, input_shape: tuple[int, int, int], **params: Any):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.params = dict(params)
        c, f, _ = self.input_shape
        self.normalizer = FeatureNormalizer(c, f)

    # --- to implement -------------------------------------------------------------------
    def forward(self, x: Tensor) -> AutoencoderOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def loss(self, x: Tensor, beta: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:  # pragma: no cover
        raise NotImplementedError

    # --- shared -------------------------------------------------------------------------
    def check_input(self, x: Tensor) -> None:
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"{type(self).__name__} expects inputs of shape (B, {self.input_shape}), "
                             f"got {tuple(x.shape)}")

    def variational_forward(self, x: Tensor, sample: bool | None, losses) -> AutoencoderOutput:
        """The forward pass every VAE here shares: normalise, posterior (``self.posterior``), a
        reparameterised sample when ``sample`` (default: ``self.training``) else the mode, decode
        (``self.decode``); ``losses(x_hat, xn, q)`` gives the model's loss terms."""
        self.check_input(x)
        xn = self.normalizer(x)
        q = self.posterior(xn)
        z = q.sample() if (self.training if sample is None else sample) else q.mode()
        x_hat = self.decode(z)
        return AutoencoderOutput(reconstruction=x_hat, latent=q.mode(), posterior=q, losses=losses(x_hat, xn, q))

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """Deterministic reconstruction (posterior mode) in feature space."""
        return self.normalizer.inverse(self.forward(x).reconstruction)

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        return self.forward(x).latent

    def score(self, x: Tensor, method: str = "mse", n_samples: int = 32) -> Tensor:
        if method not in self.score_methods:
            raise ValueError(f"{type(self).__name__} supports scores {self.score_methods}, not {method!r}")
        return self.forward(x).losses[method]

    def config(self) -> dict[str, Any]:
        return {"input_shape": list(self.input_shape), **self.params}


class ConvVAE(LatentModel):
    """Convolutional VAE with a Gaussian decoder whose noise scale can be learned.

    Training loss per sample: -log p(x|z) + beta * KL(q(z|x) || N(0, I)). With
    ``learn_sigma`` the decoder variance is one learned scalar (a calibrated decoder), which
    balances reconstruction and KL without hand tuning and makes the ELBO and the
    importance-sampled NLL meaningful anomaly scores.
    """

    score_methods = ("mse", "frame_max", "elbo", "iwae")

    def __init__(self, input_shape, latent_dim: int = 16, channels=(16, 32, 64, 64), kernel_size: int = 3,
                 learn_sigma: bool = True, sigma: float = 1.0, output_activation: str = "none"):
        channels = list(channels)
        super().__init__(input_shape, latent_dim=latent_dim, channels=channels, kernel_size=kernel_size,
                         learn_sigma=learn_sigma, sigma=sigma, output_activation=output_activation)
        c, f, t = self.input_shape
        self.latent_dim = latent_dim
        self.encoder = ConvEncoder(c, channels, (f, t), 2 * latent_dim, kernel_size)
        self.decoder = ConvDecoder(latent_dim, channels, (f, t), c, output_activation)
        self.log_sigma = nn.Parameter(torch.tensor(math.log(sigma)), requires_grad=learn_sigma)
        self.nll = GaussianNLLLoss(reduction="none")

    def posterior(self, xn: Tensor) -> DiagonalGaussian:
        return DiagonalGaussian.from_params(self.encoder(xn), dim=1)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)

    def forward(self, x: Tensor, sample: bool | None = None) -> AutoencoderOutput:
        """``sample`` defaults to ``self.training``: a reparameterised sample when training."""
        return self.variational_forward(x, sample, lambda x_hat, xn, q: {
            "nll": self.nll(x_hat, xn, self.log_sigma), "kl": q.kl(), **reconstruction_errors(x_hat, xn)})

    def loss(self, x: Tensor, beta: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        out = self.forward(x)
        total = out.losses["nll"] + beta * out.losses["kl"]
        return total, {**out.losses, "sigma": torch.exp(self.log_sigma).expand_as(total)}

    def log_likelihood(self, xn: Tensor, z: Tensor) -> Tensor:
        """log p(x|z) per sample for z of shape (K, B, D) → (K, B)."""
        k, b, d = z.shape
        x_hat = self.decode(z.reshape(k * b, d)).reshape(k, b, *xn.shape[1:])
        return -self.nll(x_hat.flatten(0, 1), xn.unsqueeze(0).expand_as(x_hat).flatten(0, 1),
                         self.log_sigma).reshape(k, b)

    @torch.no_grad()
    def negative_elbo(self, x: Tensor, n_samples: int = 1) -> Tensor:
        xn = self.normalizer(x)
        q = self.posterior(xn)
        z = q.rsample_n(n_samples)
        return -self.log_likelihood(xn, z).mean(0) + q.kl()

    @torch.no_grad()
    def importance_sampled_nll(self, x: Tensor, n_samples: int = 32) -> Tensor:
        """-log p(x) ≈ -log mean_k p(x|z_k) p(z_k) / q(z_k|x), z_k ~ q(z|x) (Burda et al. 2016)."""
        xn = self.normalizer(x)
        q = self.posterior(xn)
        z = q.rsample_n(n_samples)
        log_w = self.log_likelihood(xn, z) + standard_normal_log_prob(z) - q.log_prob(z)
        return -(torch.logsumexp(log_w, dim=0) - math.log(n_samples))

    def score(self, x: Tensor, method: str = "mse", n_samples: int = 32) -> Tensor:
        if method == "elbo":
            return self.negative_elbo(x, n_samples=max(1, n_samples // 4))
        if method == "iwae":
            return self.importance_sampled_nll(x, n_samples=n_samples)
        return super().score(x, method, n_samples)


class ConvAE(LatentModel):
    """Deterministic convolutional autoencoder with the same encoder/decoder as :class:`ConvVAE`."""

    def __init__(self, input_shape, latent_dim: int = 16, channels=(16, 32, 64, 64), kernel_size: int = 3,
                 output_activation: str = "none"):
        channels = list(channels)
        super().__init__(input_shape, latent_dim=latent_dim, channels=channels, kernel_size=kernel_size,
                         output_activation=output_activation)
        c, f, t = self.input_shape
        self.encoder = ConvEncoder(c, channels, (f, t), latent_dim, kernel_size)
        self.decoder = ConvDecoder(latent_dim, channels, (f, t), c, output_activation)

    def forward(self, x: Tensor) -> AutoencoderOutput:
        self.check_input(x)
        xn = self.normalizer(x)
        z = self.encoder(xn)
        x_hat = self.decoder(z)
        return AutoencoderOutput(reconstruction=x_hat, latent=z, losses=reconstruction_errors(x_hat, xn))

    def loss(self, x: Tensor, beta: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        out = self.forward(x)
        return out.losses["mse"], dict(out.losses)


class DenseAE(LatentModel):
    """The DCASE 2020 Task 2 baseline: a dense autoencoder on stacked log-mel frames.

    ``context_frames`` consecutive frames of ``F`` mel bins form one input vector
    (5 x 128 = 640 in the reference); every hidden layer is Linear → BatchNorm → ReLU, with an
    8-unit bottleneck. The loss and score are the MSE over all vectors of a window.
    """

    def __init__(self, input_shape, hidden_dims=(128, 128, 128, 128), latent_dim: int = 8,
                 context_frames: int = 5):
        hidden_dims = list(hidden_dims)
        super().__init__(input_shape, hidden_dims=hidden_dims, latent_dim=latent_dim,
                         context_frames=context_frames)
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
        """Inverse of :meth:`_vectors`, averaging overlapping frames."""
        b, c, f, t = shape
        n = t - self.context + 1
        cols = v.reshape(b, n, self.context, c * f).permute(0, 3, 2, 1).reshape(b, c * f * self.context, n)
        ones = torch.ones(1, self.context, n, dtype=v.dtype, device=v.device)
        summed = F.fold(cols, (1, t), (1, self.context)).reshape(b, c * f, t)
        counts = F.fold(ones, (1, t), (1, self.context)).reshape(1, 1, t)
        return (summed / counts).reshape(b, c, f, t)

    def forward(self, x: Tensor) -> AutoencoderOutput:
        self.check_input(x)
        xn = self.normalizer(x)
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
        return out.losses["mse"], dict(out.losses)


MODELS: dict[str, type[LatentModel]] = {"conv_vae": ConvVAE, "conv_ae": ConvAE, "dense_ae": DenseAE}
#: LatentModels defined in :mod:`latentbridge.models.autoencoders` (imported on demand)
AUTOENCODERS = ("mel_ae", "mel_vae", "image_dense_ae", "image_conv_ae")


def model_kwargs(name: str, model_cfg) -> dict[str, Any]:
    """Constructor arguments for ``MODELS[name]`` from a :class:`~latentbridge.config.ModelConfig`."""
    m = model_cfg
    if name == "conv_vae":
        return dict(latent_dim=m.latent_dim, channels=list(m.channels), kernel_size=m.kernel_size,
                    learn_sigma=m.learn_sigma, sigma=m.sigma, output_activation=m.output_activation)
    if name == "conv_ae":
        return dict(latent_dim=m.latent_dim, channels=list(m.channels), kernel_size=m.kernel_size,
                    output_activation=m.output_activation)
    if name == "dense_ae":
        return dict(hidden_dims=list(m.hidden_dims), latent_dim=m.latent_dim, context_frames=m.context_frames)
    if name in AUTOENCODERS:
        from latentbridge.models.autoencoders import autoencoder_kwargs

        return autoencoder_kwargs(name, m)
    raise ValueError(f"unknown model {name!r}; known: {sorted(MODELS)}")


def build_model(name: str, input_shape, model_cfg) -> LatentModel:
    if name in AUTOENCODERS:  # latentbridge.models.autoencoders, resolved through the registry
        from latentbridge.models.registry import get_model_class

        return get_model_class(name)(input_shape, **model_kwargs(name, model_cfg))
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODELS) + sorted(AUTOENCODERS)}")
    return MODELS[name](input_shape, **model_kwargs(name, model_cfg))
