"""Plain autoencoders: mel-spectrogram AE/VAE for audio and dense/conv AEs for MNIST-like images.

All four follow :class:`~latentbridge.models.base.LatentModel` (``forward`` → per-sample losses,
``loss``, ``score``, ``reconstruct``, and the first-stage protocol ``encode`` / ``decode`` /
``latent_shape`` / ``latent_scale``), so they train with the shared trainer and save/load through
:mod:`latentbridge.models.hub`.

Mel models (:class:`MelAE`, :class:`MelVAE`)
    Input ``(B, 1, n_mels, frames)`` dB mel features. The mel bins are the *channels* of 1-D
    convolutions over time: every layer sees the whole spectrum of a frame (harmonics far apart
    in frequency are related, and a mel axis is not translation invariant the way an image is),
    and 1-D convolutions over 128-256 frames are several times cheaper on a CPU than 2-D ones of
    the same width. The encoder has ``len(channels)`` stride-2 stages (4 in the presets), each
    followed by ``res_blocks`` pre-activation residual blocks; a dropout layer and a linear map
    form the bottleneck (latent 128 by default). Frame counts that are not a multiple of
    ``2 ** len(channels)`` are padded (in the standardised space, with zeros = the bin means)
    and the output cropped back. Losses on the standardised mel: per-sample ``mse`` and ``l1``;
    the VAE adds ``beta * kl`` (:class:`~latentbridge.models.outputs.DiagonalGaussian`).
    Both reconstruction terms are *means* over bins and frames while the KL is a *sum* over the
    latent dimensions, so useful ``beta`` values are small (about 1e-4 to 1e-2).

Image models (:class:`DenseImageAE`, :class:`ConvImageAE`)
    Input ``(B, 1, 28, 28)`` in [0, 1], sigmoid output; training loss per sample is the mean
    binary cross-entropy plus the mean squared error. Images are not standardised (the
    normaliser stays the identity).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import Tensor, nn

from latentbridge.models.base import LatentModel, ModelSpec, inference
from latentbridge.models.outputs import AutoencoderOutput, DiagonalGaussian

__all__ = ["MelAE", "MelVAE", "DenseImageAE", "ConvImageAE", "ResBlock1d"]


class MelAEConfig(ModelSpec):
    name: Literal["mel_ae"] = "mel_ae"
    latent_dim: int = Field(128, gt=0)
    channels: list[int] = Field(default_factory=lambda: [128, 128, 256, 256])
    """One stride-2 stage per entry."""
    kernel_size: int = Field(3, gt=0)
    res_blocks: int = Field(1, ge=0)
    """Residual blocks after each down-/up-sampling stage."""
    dropout: float = Field(0.1, ge=0, lt=1)
    """Dropout in the bottleneck."""
    delta_weight: float = Field(0.0, ge=0)
    """Weight of an L1 loss on the frame-to-frame differences of the standardised mel (the reconstruction's
    onsets and transitions; a bottleneck otherwise smooths them over time)."""
    label_classes: int = Field(0, ge=0)
    """With N > 0, a linear head on the latent learns each training example's label (one of N: the spoken
    digit) and its cross-entropy, weighted by ``label_weight``, joins the loss: the latents keep what tells
    the labels apart, also for voices the training set lacks. Needs labelled training examples (the digits'
    audio stage of a multimodal latent diffusion run); 0: none."""
    label_weight: float = Field(1.0, ge=0)

    @field_validator("kernel_size")
    @classmethod
    def _odd_kernel(cls, v: int) -> int:
        if v % 2 == 0:  # "same" padding of an even kernel lengthens every frame axis by one
            raise ValueError(f"must be odd (the convolutions keep the frame count with an odd kernel); try {v + 1}")
        return v


class MelVAEConfig(MelAEConfig):
    name: Literal["mel_vae"] = "mel_vae"  # type: ignore[assignment]


class DenseImageAEConfig(ModelSpec):
    name: Literal["image_dense_ae"] = "image_dense_ae"
    latent_dim: int = Field(32, gt=0)
    hidden_dims: list[int] = Field(default_factory=lambda: [512, 256])
    dropout: float = Field(0.0, ge=0, lt=1)


class ConvImageAEConfig(ModelSpec):
    name: Literal["image_conv_ae"] = "image_conv_ae"
    latent_dim: int = Field(32, gt=0)
    channels: list[int] = Field(default_factory=lambda: [32, 64])
    kernel_size: int = Field(3, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)


def _groups(c: int) -> int:
    for g in (8, 4, 2):
        if c % g == 0:
            return g
    return 1


class ResBlock1d(nn.Module):
    """Pre-activation residual block: x + conv(act(norm(conv(act(norm(x))))))."""

    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__()
        pad = kernel_size // 2
        self.body = nn.Sequential(
            nn.GroupNorm(_groups(channels), channels), nn.SiLU(),
            nn.Conv1d(channels, channels, kernel_size, padding=pad),
            nn.GroupNorm(_groups(channels), channels), nn.SiLU(),
            nn.Conv1d(channels, channels, kernel_size, padding=pad),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class _MelBase(LatentModel):
    """Shared encoder/decoder of :class:`MelAE` and :class:`MelVAE` (1-D convs, mel bins as channels)."""

    score_methods = ("mse", "frame_max", "l1")
    deterministic_scores = ("mse", "frame_max", "l1")
    tasks = ("audio_ae", "anomaly")
    _posterior = False

    def __init__(self, input_shape, latent_dim: int = 128, channels=(128, 128, 256, 256), kernel_size: int = 3,
                 res_blocks: int = 1, dropout: float = 0.1, delta_weight: float = 0.0, label_classes: int = 0,
                 label_weight: float = 1.0, **common):
        channels = [int(c) for c in channels]
        labels = {"label_classes": int(label_classes), "label_weight": float(label_weight)} if label_classes else {}
        super().__init__(input_shape, latent_dim=int(latent_dim), channels=channels, kernel_size=int(kernel_size),
                         res_blocks=int(res_blocks), dropout=float(dropout), delta_weight=float(delta_weight),
                         **labels, **common)
        self.delta_weight = float(delta_weight)
        self.label_weight = float(label_weight)
        self.label_head = nn.Linear(int(latent_dim), int(label_classes)) if label_classes else None
        c, f, t = self.input_shape
        if not channels:
            raise ValueError("channels must list at least one stage")
        self.latent_dim = int(latent_dim)
        self.in_rows = c * f
        self.factor = 2 ** len(channels)
        self.padded_frames = -(-t // self.factor) * self.factor
        self.bottom_frames = self.padded_frames // self.factor
        pad = kernel_size // 2

        enc: list[nn.Module] = [nn.Conv1d(self.in_rows, channels[0], kernel_size, padding=pad)]
        prev = channels[0]
        for ch in channels:
            enc.append(nn.Conv1d(prev, ch, 4, stride=2, padding=1))
            enc += [ResBlock1d(ch, kernel_size) for _ in range(res_blocks)]
            prev = ch
        enc += [nn.GroupNorm(_groups(prev), prev), nn.SiLU()]
        self.encoder = nn.Sequential(*enc)
        flat = prev * self.bottom_frames
        out = 2 * self.latent_dim if self._posterior else self.latent_dim
        self.to_latent = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(flat, out))
        self.from_latent = nn.Sequential(nn.Linear(self.latent_dim, flat), nn.Dropout(dropout))
        self.bottom_channels = prev

        dec: list[nn.Module] = []
        rev = list(reversed(channels))
        for i, ch in enumerate(rev):
            nxt = rev[i + 1] if i + 1 < len(rev) else channels[0]
            dec += [ResBlock1d(ch, kernel_size) for _ in range(res_blocks)]
            dec += [nn.GroupNorm(_groups(ch), ch), nn.SiLU(), nn.ConvTranspose1d(ch, nxt, 4, stride=2, padding=1)]
        dec += [nn.GroupNorm(_groups(channels[0]), channels[0]), nn.SiLU(),
                nn.Conv1d(channels[0], self.in_rows, kernel_size, padding=pad)]
        self.decoder = nn.Sequential(*dec)

    # --- pieces ------------------------------------------------------------------------------
    def _encode_params(self, xn: Tensor) -> Tensor:
        b, c, f, t = xn.shape
        h = xn.reshape(b, c * f, t)
        if self.padded_frames != t:
            h = F.pad(h, (0, self.padded_frames - t))
        return self.to_latent(self.encoder(h))

    def decode_normalized(self, z: Tensor) -> Tensor:
        """Latent (B, D) → standardised mel (B, C, F, T)."""
        c, f, t = self.input_shape
        h = self.from_latent(z).reshape(z.shape[0], self.bottom_channels, self.bottom_frames)
        return self.decoder(h)[..., :t].reshape(z.shape[0], c, f, t)

    def _recon_losses(self, x_hat: Tensor, xn: Tensor) -> dict[str, Tensor]:
        diff = x_hat - xn
        per_frame = diff.pow(2).mean(dim=(1, 2))  # (B, T)
        out = {"mse": per_frame.mean(1), "frame_max": per_frame.amax(1), "l1": diff.abs().flatten(1).mean(1)}
        if self.delta_weight:  # L1 distance of the frame-to-frame differences
            out["delta"] = (diff[..., 1:] - diff[..., :-1]).abs().flatten(1).mean(1)
        return out

    def _recon_loss(self, losses: dict[str, Tensor]) -> Tensor:
        """The training loss's reconstruction part: ``mse + l1 (+ delta_weight * delta)``."""
        total = losses["mse"] + losses["l1"]
        return total + self.delta_weight * losses["delta"] if self.delta_weight else total

    def _inputs(self, batch) -> tuple[Tensor, Tensor | None]:
        """(features, labels or None) of a training batch: a tensor, or ``{"x", "label"}``."""
        if isinstance(batch, dict):
            x, y = batch["x"], batch.get("label")
        else:
            x, y = batch, None
        if self.label_head is not None and y is None:
            raise ValueError(f"{type(self).__name__} with label_classes={self.label_head.out_features} trains on "
                             "labelled examples ({'x', 'label'} batches); these carry no labels")
        return x, y

    def _with_label_loss(self, total: Tensor, parts: dict, z: Tensor, y: Tensor | None) -> Tensor:
        if self.label_head is None or y is None:
            return total
        ce = F.cross_entropy(self.label_head(z.flatten(1)), y.long(), reduction="none")
        parts["label_ce"] = ce
        return total + self.label_weight * ce


class MelAE(_MelBase):
    """Deterministic mel autoencoder; training loss per sample: ``mse + l1`` (standardised mel; + ``delta_weight``
    × the L1 distance of frame-to-frame differences)."""

    name = "mel_ae"
    config_class = MelAEConfig

    def posterior(self, xn: Tensor) -> DiagonalGaussian:
        return DiagonalGaussian.point(self._encode_params(xn))

    def forward(self, x: Tensor) -> AutoencoderOutput:
        return self.variational_forward(x, False, lambda x_hat, xn, q: self._recon_losses(x_hat, xn))

    def loss(self, x, beta: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        x, y = self._inputs(x)
        out = self.forward(x)
        parts = dict(out.losses)
        total = self._with_label_loss(self._recon_loss(out.losses), parts, out.latent, y)
        return self.loss_with_synthetic_anomalies(x, total, parts), parts


class MelVAE(_MelBase):
    """Mel VAE; training loss per sample: ``mse + l1 + beta * KL(q(z|x) || N(0, I))``.

    ``forward`` samples z when training and uses the posterior mean otherwise (``sample``
    overrides), so ``reconstruct``/``encode`` are deterministic.
    """

    name = "mel_vae"
    config_class = MelVAEConfig
    _posterior = True

    def posterior(self, xn: Tensor) -> DiagonalGaussian:
        return DiagonalGaussian.from_params(self._encode_params(xn), dim=1)

    def forward(self, x: Tensor, sample: bool | None = None) -> AutoencoderOutput:
        return self.variational_forward(x, sample, lambda x_hat, xn, q: {**self._recon_losses(x_hat, xn),
                                                                          "kl": q.kl()})

    def loss(self, x, beta: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        x, y = self._inputs(x)
        out = self.forward(x)
        parts = dict(out.losses)
        total = self._with_label_loss(self._recon_loss(out.losses) + beta * out.losses["kl"], parts, out.latent, y)
        return self.loss_with_synthetic_anomalies(x, total, parts), parts

    @inference
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` mel spectrograms (feature space) decoded from z ~ N(0, I)."""
        z = torch.randn(n, self.latent_dim, generator=generator)
        return self.decode(z.to(self.normalizer.mean.device))


# ----------------------------------------------------------------------------- images


class _ImageBase(LatentModel):
    score_methods = ("mse", "bce")
    deterministic_scores = ("mse", "bce")
    tasks = ("image_ae",)

    def _check_image_shape(self) -> None:
        if len(self.input_shape) != 3:
            raise ValueError(f"{type(self).__name__}: input_shape must be (C, H, W), got {self.input_shape}")

    @staticmethod
    def _image_losses(x_hat: Tensor, x: Tensor) -> dict[str, Tensor]:
        # in float32 outside autocast: CUDA autocast refuses binary_cross_entropy of probabilities, and a
        # bfloat16 clamp at 1 - 1e-6 rounds to 1 (log 0)
        with torch.autocast(x_hat.device.type, enabled=False):
            x_hat, x = x_hat.float(), x.float()
            bce = F.binary_cross_entropy(x_hat.clamp(1e-6, 1 - 1e-6), x, reduction="none").flatten(1).mean(1)
            return {"mse": (x_hat - x).pow(2).flatten(1).mean(1), "bce": bce}

    def posterior(self, xn: Tensor) -> DiagonalGaussian:
        return DiagonalGaussian.point(self.encoder(xn))

    def decode_normalized(self, z: Tensor) -> Tensor:
        return self.decoder(z)

    def forward(self, x: Tensor) -> AutoencoderOutput:
        return self.variational_forward(x, False, lambda x_hat, xn, q: self._image_losses(x_hat, xn))

    def loss(self, x: Tensor, beta: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        out = self.forward(x)
        return out.losses["bce"] + out.losses["mse"], dict(out.losses)


class DenseImageAE(_ImageBase):
    """Dense autoencoder, e.g. 784 → 512 → 256 → latent → 256 → 512 → 784 (ReLU, sigmoid output)."""

    name = "image_dense_ae"
    config_class = DenseImageAEConfig

    def __init__(self, input_shape=(1, 28, 28), latent_dim: int = 32, hidden_dims=(512, 256), dropout: float = 0.0,
                 **common):
        hidden_dims = [int(h) for h in hidden_dims]
        super().__init__(input_shape, latent_dim=int(latent_dim), hidden_dims=hidden_dims, dropout=float(dropout),
                         **common)
        self._check_image_shape()
        c, h, w = self.input_shape
        dim = c * h * w
        enc: list[nn.Module] = [nn.Flatten()]
        prev = dim
        for hd in hidden_dims:
            enc += [nn.Linear(prev, hd), nn.ReLU()]
            prev = hd
        if dropout > 0:
            enc.append(nn.Dropout(dropout))
        enc.append(nn.Linear(prev, latent_dim))
        dec: list[nn.Module] = []
        prev = latent_dim
        for hd in reversed(hidden_dims):
            dec += [nn.Linear(prev, hd), nn.ReLU()]
            prev = hd
        dec += [nn.Linear(prev, dim), nn.Sigmoid(), nn.Unflatten(1, (c, h, w))]
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)


class ConvImageAE(_ImageBase):
    """Convolutional autoencoder: stride-2 3x3 convs (28 → 14 → 7 for two stages), a linear
    bottleneck, and transposed convs back to the input size (sigmoid output)."""

    name = "image_conv_ae"
    config_class = ConvImageAEConfig

    def __init__(self, input_shape=(1, 28, 28), latent_dim: int = 32, channels=(32, 64), kernel_size: int = 3,
                 dropout: float = 0.0, **common):
        channels = [int(ch) for ch in channels]
        super().__init__(input_shape, latent_dim=int(latent_dim), channels=channels, kernel_size=int(kernel_size),
                         dropout=float(dropout), **common)
        self._check_image_shape()
        if not channels:
            raise ValueError("channels must list at least one stage")
        c, h, w = self.input_shape
        k, p = int(kernel_size), int(kernel_size) // 2
        sizes = [(h, w)]
        for _ in channels:
            hh, ww = sizes[-1]
            sizes.append(((hh + 2 * p - k) // 2 + 1, (ww + 2 * p - k) // 2 + 1))
        enc: list[nn.Module] = []
        prev = c
        for ch in channels:
            enc += [nn.Conv2d(prev, ch, k, stride=2, padding=p), nn.BatchNorm2d(ch), nn.ReLU()]
            prev = ch
        bh, bw = sizes[-1]
        enc += [nn.Flatten()]
        if dropout > 0:
            enc.append(nn.Dropout(dropout))
        enc.append(nn.Linear(prev * bh * bw, latent_dim))
        dec: list[nn.Module] = [nn.Linear(latent_dim, prev * bh * bw), nn.ReLU(), nn.Unflatten(1, (prev, bh, bw))]
        outs = list(reversed(channels[:-1])) + [c]
        for i, ch in enumerate(outs):
            (ih, iw), (th, tw) = sizes[-1 - i], sizes[-2 - i]
            op = (th - ((ih - 1) * 2 - 2 * p + k), tw - ((iw - 1) * 2 - 2 * p + k))
            dec.append(nn.ConvTranspose2d(prev, ch, k, stride=2, padding=p, output_padding=op))
            if i < len(outs) - 1:
                dec += [nn.BatchNorm2d(ch), nn.ReLU()]
            prev = ch
        dec.append(nn.Sigmoid())
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)
