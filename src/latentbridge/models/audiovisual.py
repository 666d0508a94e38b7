"""Audio-visual multimodal VAE: spoken digits (log-mel) and written digits (images) in one latent space.

The same four fusions as the vibration/mask model (:mod:`latentbridge.models.multimodal`):
every expert is a conv encoder, every decoder a transposed-conv stack. Spectrograms are
standardised per mel band (statistics stored with the weights) and reconstructed with an L1 +
MSE loss; images are Bernoulli (binary cross-entropy on logits). Both losses are means over
their elements, weighted by ``loss_weights["audio"]`` and ``["image"]``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentbridge.models.multimodal import FUSIONS, fuse_for_inference, fusion_objective
from latentbridge.models.outputs import DiagonalGaussian
from latentbridge.nn.conv import ConvDecoder, ConvEncoder, FeatureNormalizer

MODALITIES = ("audio", "image")


class AudioVisualVAE(nn.Module):
    """Batches are dicts with ``audio`` (B, 1, n_mels, frames) dB log-mel, ``image`` (B, 1, H, W) in
    [0, 1], and optional ``has_audio`` / ``has_image`` (B,) bools for missing modalities."""

    name = "avmvae"

    def __init__(self, audio_shape=(1, 64, 128), image_shape=(1, 28, 28), latent_dim: int = 32,
                 channels=(32, 64, 128), image_channels=(32, 64), kernel_size: int = 3, fusion: str = "mopoe",
                 loss_weights: dict | None = None):
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        self.kwargs = dict(audio_shape=list(audio_shape), image_shape=list(image_shape), latent_dim=latent_dim,
                           channels=list(channels), image_channels=list(image_channels), kernel_size=kernel_size,
                           fusion=fusion, loss_weights=dict(loss_weights or {}))
        self.fusion = fusion
        self.latent_dim = latent_dim
        ca, fa, ta = audio_shape
        ci, hi, wi = image_shape
        self.normalizer = FeatureNormalizer(ca, fa)
        self.encoders = nn.ModuleDict({
            "audio": ConvEncoder(ca, list(channels), (fa, ta), 2 * latent_dim, kernel_size),
            "image": ConvEncoder(ci, list(image_channels), (hi, wi), 2 * latent_dim, kernel_size),
        })
        self.decoders = nn.ModuleDict({
            "audio": ConvDecoder(latent_dim, list(channels), (fa, ta), ca),
            "image": ConvDecoder(latent_dim, list(image_channels), (hi, wi), ci),
        })
        self.w = {"audio": 1.0, "image": 1.0, **{k: v for k, v in (loss_weights or {}).items()
                                                   if k in ("audio", "image")}}

    def config(self) -> dict[str, Any]:
        return dict(self.kwargs)

    # ------------------------------------------------------------------ encoding / decoding
    def _input(self, m: str, x: Tensor) -> Tensor:
        return self.normalizer(x) if m == "audio" else x * 2.0 - 1.0

    def experts(self, batch: dict, use: tuple[str, ...] = MODALITIES) -> dict[str, DiagonalGaussian]:
        return {m: DiagonalGaussian.from_params(self.encoders[m](self._input(m, batch[m])))
                for m in use if m in batch}

    def availability(self, batch: dict, experts: dict) -> dict[str, Tensor]:
        ref = next(iter(experts.values())).mean
        return {m: batch.get(f"has_{m}", torch.ones(ref.shape[0], dtype=torch.bool, device=ref.device)).float()
                for m in experts}

    def infer(self, batch: dict, use: tuple[str, ...] = MODALITIES) -> DiagonalGaussian:
        ex = self.experts(batch, use)
        if not ex:
            raise ValueError(f"none of the modalities {use} is in the batch")
        return fuse_for_inference(self.fusion, ex, self.availability(batch, ex))

    def decode(self, z: Tensor) -> dict[str, Tensor]:
        """Audio in feature space (dB log-mel) and image probabilities."""
        return {"audio": self.normalizer.inverse(self.decoders["audio"](z)),
                "image": torch.sigmoid(self.decoders["image"](z))}

    # ------------------------------------------------------------------ training
    def recon(self, z: Tensor, batch: dict, avail: dict[str, Tensor], logs: dict, tag: str) -> Tensor:
        total = torch.zeros(z.shape[0], device=z.device)
        if "audio" in avail:
            target = self.normalizer(batch["audio"])
            y = self.decoders["audio"](z)
            a = (y - target).abs().flatten(1).mean(1) + (y - target).pow(2).flatten(1).mean(1)
            total = total + avail["audio"] * self.w["audio"] * a
            logs.setdefault(f"{tag}audio", a)
        if "image" in avail:
            logits = self.decoders["image"](z)
            b = F.binary_cross_entropy_with_logits(logits, batch["image"], reduction="none").flatten(1).mean(1)
            total = total + avail["image"] * self.w["image"] * b
            logs.setdefault(f"{tag}image", b)
        return total

    def loss(self, batch: dict, beta: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        ex = self.experts(batch)
        avail = self.availability(batch, ex)
        logs: dict[str, Tensor] = {}
        total, kl = fusion_objective(self.fusion, ex, avail, lambda z, av, tag: self.recon(z, batch, av, logs, tag),
                                     beta)
        logs["kl"] = kl
        return total, logs

    # ------------------------------------------------------------------ use
    @torch.no_grad()
    def predict(self, batch: dict, use: tuple[str, ...]) -> dict[str, Tensor]:
        """Both modalities decoded from the posterior mode of the given ones (cross-modal when
        ``use`` holds one modality)."""
        z = self.infer(batch, use).mode()
        return {"latent": z, **self.decode(z)}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Synthetic pairs from the prior."""
        z = torch.randn(n, self.latent_dim, generator=generator)
        return {"latent": z, **self.decode(z)}
