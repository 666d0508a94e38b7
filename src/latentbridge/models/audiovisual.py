"""Audio-visual multimodal VAE: spoken digits (log-mel) and written digits (images) in one latent space.

The same four fusions as the vibration/mask model (:mod:`latentbridge.models.multimodal`):
every expert is a conv encoder, every decoder a transposed-conv stack. Spectrograms are
standardised per mel band (statistics stored with the weights) and reconstructed with an L1 (+
weighted MSE) loss; images are Bernoulli (binary cross-entropy on logits). Both losses are means over
their elements, weighted by ``loss_weights["audio"]`` and ``["image"]``.

With ``private_dim > 0`` each modality also has a private latent (MMVAE+, Palumbo et al. 2023):
the encoder of modality m gives a shared posterior q(z|x_m) and a private one q(w_m|x_m), and
decoder m reads [z, w_m]. A modality reconstructed from its own posterior uses its own w_m; one
reconstructed across modalities draws w_m from the prior, so only the shared z can carry what
the modalities have in common (the digit) and the private latents keep what they do not (the
speaker's voice, the handwriting). Cross-modal generation decodes the shared latent with the
private latent at the prior mode (or drawn from the prior, for varied samples).

Cross-modal generation has two routes. ``route="posterior"`` decodes the source modality's
posterior mode with the target decoder: trained by the cross-modal terms, that decoder gives the
average of everything the source leaves open (a blurred digit, an average of voices).
``route="bridge"`` goes through the latent bridge (:meth:`fit_bridge`, stored with the weights):
the paired posterior modes of the training pairs. The source latent's ``bridge_neighbours``
nearest training source latents are found, and the medoid of their partners' target latents
(the most central of those codes: a typical example, not an average) is decoded. The bridge is
exemplar-based: the generated sample is a decoding of a training partner's code, i.e. in the
voice or handwriting of a training example, chosen for how typical it is among the source's
neighbours.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from latentbridge.models.base import ModelSpec, MultimodalFamily, checked_input, inference
from latentbridge.models.multimodal import FUSIONS, fuse_for_inference, fusion_objective
from latentbridge.models.outputs import DiagonalGaussian
from latentbridge.nn.conv import ConvDecoder, ConvEncoder, FeatureNormalizer

MODALITIES = ("audio", "image")


class AudioVisualVAEConfig(ModelSpec):
    name: Literal["avmvae"] = "avmvae"
    fusion: Literal["poe", "moe", "mopoe", "jsd"] = "mopoe"
    latent_dim: int = Field(32, gt=0)
    channels: list[int] = Field(default_factory=lambda: [32, 64, 128])
    """Audio encoder/decoder stages."""
    image_channels: list[int] = Field(default_factory=lambda: [32, 64])
    kernel_size: int = Field(3, gt=0)
    private_dim: int = Field(0, ge=0)
    """Size of each modality's private latent (MMVAE+; 0 = shared latent only)."""
    bridge_neighbours: int = Field(15, ge=1)
    """Neighbours whose partners the latent bridge chooses among (route ``bridge``)."""


class AudioVisualVAE(MultimodalFamily, nn.Module):
    """Batches are dicts with ``audio`` (B, 1, n_mels, frames) dB log-mel, ``image`` (B, 1, H, W) in
    [0, 1], and optional ``has_audio`` / ``has_image`` (B,) bools for missing modalities.

    First stages (``first_stage("audio")`` / ``("image")``): dB log-mel ↔ the audio expert's latent,
    images in [0, 1] ↔ the image expert's latent; with private latents the first-stage latent is
    the shared latent followed by the modality's private one."""

    name = "avmvae"
    config_class = AudioVisualVAEConfig
    tasks = ("avdigits",)
    first_stage_modalities = MODALITIES

    def __init__(self, audio_shape=(1, 64, 128), image_shape=(1, 28, 28), latent_dim: int = 32,
                 channels=(32, 64, 128), image_channels=(32, 64), kernel_size: int = 3, fusion: str = "mopoe",
                 loss_weights: dict | None = None, private_dim: int = 0, bridge_size: int = 0,
                 bridge_neighbours: int = 15):
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        self.kwargs = dict(audio_shape=list(audio_shape), image_shape=list(image_shape), latent_dim=latent_dim,
                           channels=list(channels), image_channels=list(image_channels), kernel_size=kernel_size,
                           fusion=fusion, loss_weights=dict(loss_weights or {}), private_dim=private_dim,
                           bridge_size=bridge_size, bridge_neighbours=bridge_neighbours)
        if private_dim < 0:
            raise ValueError(f"private_dim must be >= 0, got {private_dim}")
        self.fusion = fusion
        self.latent_dim = latent_dim
        self.private_dim = private_dim
        enc_out, dec_in = 2 * (latent_dim + private_dim), latent_dim + private_dim
        ca, fa, ta = audio_shape
        ci, hi, wi = image_shape
        self.normalizer = FeatureNormalizer(ca, fa)
        self.encoders = nn.ModuleDict({
            "audio": ConvEncoder(ca, list(channels), (fa, ta), enc_out, kernel_size),
            "image": ConvEncoder(ci, list(image_channels), (hi, wi), enc_out, kernel_size),
        })
        self.decoders = nn.ModuleDict({
            "audio": ConvDecoder(dec_in, list(channels), (fa, ta), ca),
            "image": ConvDecoder(dec_in, list(image_channels), (hi, wi), ci),
        })
        # the latent bridge: paired posterior modes of the training pairs (fit_bridge)
        if bridge_neighbours < 1:
            raise ValueError(f"bridge_neighbours must be >= 1, got {bridge_neighbours}")
        self.bridge_neighbours = bridge_neighbours
        for m in MODALITIES:
            self.register_buffer(f"bridge_{m}", torch.zeros(bridge_size, latent_dim))
        self.w = {"audio": 1.0, "image": 1.0, "cross": 1.0, "audio_mse": 1.0,
                  **{k: v for k, v in (loss_weights or {}).items() if k in ("audio", "image", "cross", "audio_mse")}}
        self.register_latent_scales()

    def config(self) -> dict[str, Any]:
        return dict(self.kwargs)

    # ------------------------------------------------------------------ encoding / decoding
    def _input(self, m: str, x: Tensor) -> Tensor:
        x = checked_input(self, m, x, tuple(self.kwargs[f"{m}_shape"]), unit=m == "image")
        return self.normalizer(x) if m == "audio" else x * 2.0 - 1.0

    def posteriors(self, batch: dict, use: tuple[str, ...] = MODALITIES
                   ) -> tuple[dict[str, DiagonalGaussian], dict[str, DiagonalGaussian]]:
        """Shared and private posteriors of each modality in ``use`` that the batch holds (the
        private dict is empty without private latents)."""
        shared, private = {}, {}
        d = self.latent_dim
        for m in use:
            if m not in batch:
                continue
            h = self.encoders[m](self._input(m, batch[m]))
            if self.private_dim:
                mu, logvar = h.chunk(2, dim=-1)
                shared[m] = DiagonalGaussian(mu[:, :d], logvar[:, :d])
                private[m] = DiagonalGaussian(mu[:, d:], logvar[:, d:])
            else:
                shared[m] = DiagonalGaussian.from_params(h)
        return shared, private

    def experts(self, batch: dict, use: tuple[str, ...] = MODALITIES) -> dict[str, DiagonalGaussian]:
        """The shared-latent posterior of each modality."""
        return self.posteriors(batch, use)[0]

    def availability(self, batch: dict, experts: dict) -> dict[str, Tensor]:
        ref = next(iter(experts.values())).mean
        return {m: batch.get(f"has_{m}", torch.ones(ref.shape[0], dtype=torch.bool, device=ref.device)).float()
                for m in experts}

    def _posterior(self, batch: dict, use: tuple[str, ...]
                   ) -> tuple[DiagonalGaussian, dict[str, DiagonalGaussian], tuple[str, ...]]:
        """The fused shared posterior of ``use``, the private posteriors, and the modalities used."""
        if unknown := [m for m in use if m not in MODALITIES]:
            raise ValueError(f"unknown modality {unknown[0]!r}: the modalities are {', '.join(MODALITIES)}")
        ex, priv = self.posteriors(batch, use)
        if not ex:
            raise ValueError(f"none of the modalities {use} is in the batch")
        return fuse_for_inference(self.fusion, ex, self.availability(batch, ex)), priv, tuple(ex)

    def infer(self, batch: dict, use: tuple[str, ...] = MODALITIES) -> DiagonalGaussian:
        return self._posterior(batch, use)[0]

    def _decoder_input(self, m: str, z: Tensor, private: dict[str, Tensor] | None) -> Tensor:
        if not self.private_dim:
            return z
        w = (private or {}).get(m)
        if w is None:
            w = torch.zeros(z.shape[0], self.private_dim, dtype=z.dtype, device=z.device)
        return torch.cat([z, w], dim=-1)

    def decode_modality(self, m: str, z: Tensor, private: dict[str, Tensor] | None = None) -> Tensor:
        """Modality ``m`` decoded from the shared latent ``z`` and, with private latents, its
        private latent (``private[m]``; the prior mode, zero, where not given): audio in feature
        space (dB log-mel), images as probabilities."""
        y = self.decoders[m](self._decoder_input(m, z, private))
        return self.normalizer.inverse(y) if m == "audio" else torch.sigmoid(y)

    def decode(self, z: Tensor, private: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Both modalities (:meth:`decode_modality`)."""
        return {m: self.decode_modality(m, z, private) for m in MODALITIES}

    # ------------------------------------------------------------------ first-stage protocol
    def first_stage_latent_shape(self, m: str) -> tuple[int, ...]:
        return (self.latent_dim + self.private_dim,)

    def example_batch(self, n: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Distinct dB spectrogram-like maps and stroke-like images (checks)."""
        ca, fa, ta = self.kwargs["audio_shape"]
        ci, hi, wi = self.kwargs["image_shape"]
        band = torch.randint(0, fa, (n,), generator=generator)
        audio = -60 + 5 * torch.randn(n, ca, fa, ta, generator=generator)
        image = torch.zeros(n, ci, hi, wi)
        col = torch.randint(2, wi - 2, (n,), generator=generator)
        for i in range(n):
            audio[i, :, max(0, int(band[i]) - 2):int(band[i]) + 2, ta // 4: 3 * ta // 4] += 40
            image[i, :, 4:hi - 4, int(col[i]) - 1:int(col[i]) + 1] = 1.0
        return {"audio": audio, "image": image, "label": torch.randint(0, 10, (n,), generator=generator)}

    def example_modality(self, m: str, batch: dict) -> Tensor:
        return batch[m]

    def first_stage_encode(self, m: str, x: Tensor) -> DiagonalGaussian:
        shared, private = self.posteriors({m: x}, (m,))
        if not self.private_dim:
            return shared[m]
        s, p = shared[m], private[m]
        return DiagonalGaussian(torch.cat([s.mean, p.mean], -1), torch.cat([s.logvar, p.logvar], -1))

    def first_stage_decode(self, m: str, z: Tensor) -> Tensor:
        d = self.latent_dim
        return self.decode_modality(m, z[:, :d], {m: z[:, d:]} if self.private_dim else None)

    # ------------------------------------------------------------------ training
    def recon(self, z: Tensor, batch: dict, avail: dict[str, Tensor], logs: dict, tag: str,
              private: dict[str, Tensor] | None = None, source: tuple[str, ...] = MODALITIES) -> Tensor:
        """Weighted reconstruction losses of the modalities in ``avail`` from ``z``, a sample of the
        posterior of the modalities in ``source`` (a modality outside it is a cross-modal term)."""
        total = torch.zeros(z.shape[0], device=z.device)
        cross = {m: 1.0 if m in source else self.w["cross"] for m in MODALITIES}
        src = "+".join(source)
        if "audio" in avail:
            target = self.normalizer(batch["audio"])
            y = self.decoders["audio"](self._decoder_input("audio", z, private))
            a = (y - target).abs().flatten(1).mean(1) + self.w["audio_mse"] * (y - target).pow(2).flatten(1).mean(1)
            total = total + avail["audio"] * self.w["audio"] * cross["audio"] * a
            logs.setdefault(f"{tag}{src}_to_audio", a)
        if "image" in avail:
            logits = self.decoders["image"](self._decoder_input("image", z, private))
            b = F.binary_cross_entropy_with_logits(logits, batch["image"], reduction="none").flatten(1).mean(1)
            total = total + avail["image"] * self.w["image"] * cross["image"] * b
            logs.setdefault(f"{tag}{src}_to_image", b)
        return total

    def loss(self, batch: dict, beta: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        ex, priv = self.posteriors(batch)
        avail = self.availability(batch, ex)
        logs: dict[str, Tensor] = {}
        own = {m: q.sample() for m, q in priv.items()}

        def recon(z: Tensor, av: dict, tag: str, source: tuple[str, ...]) -> Tensor:
            # own private latent for a modality in the source subset, a prior draw across modalities
            w = {m: own[m] if m in source else torch.randn_like(own[m]) for m in own}
            return self.recon(z, batch, av, logs, tag, w, source)

        total, kl = fusion_objective(self.fusion, ex, avail, recon, beta)
        if priv:
            kl_private = sum(avail[m] * q.kl() for m, q in priv.items())
            total = total + beta * kl_private
            logs["kl_private"] = kl_private
        logs["kl"] = kl
        return total, logs

    # ------------------------------------------------------------------ latent bridge
    @torch.no_grad()
    def fit_bridge(self, z_audio: Tensor, z_image: Tensor) -> None:
        """Stores the paired posterior modes ``z_audio``, ``z_image`` (N, D) of the training pairs."""
        if z_audio.shape != z_image.shape or z_audio.dim() != 2 or z_audio.shape[1] != self.latent_dim \
                or not len(z_audio):
            raise ValueError(f"paired latents of shape (N >= 1, {self.latent_dim}) expected, got "
                             f"{tuple(z_audio.shape)} and {tuple(z_image.shape)}")
        self.bridge_audio = z_audio.detach().float().clone()
        self.bridge_image = z_image.detach().float().clone()
        self.kwargs["bridge_size"] = int(len(z_audio))

    @property
    def bridge_fitted(self) -> bool:
        return len(self.bridge_audio) > 0

    @torch.no_grad()
    def bridge(self, z: Tensor, src: str, dst: str, chunk: int = 1024) -> Tensor:
        """``dst`` latents for the ``src`` latents ``z`` (Q, D): for each, the medoid of the ``dst``
        partners of its ``bridge_neighbours`` nearest stored ``src`` latents."""
        if not self.bridge_fitted:
            raise RuntimeError("the latent bridge is not fitted (fit_bridge on training pairs)")
        if src not in MODALITIES or dst not in MODALITIES:
            raise ValueError(f"the bridge translates between {' and '.join(MODALITIES)}, got {src!r} -> {dst!r}")
        keys, partners = getattr(self, f"bridge_{src}"), getattr(self, f"bridge_{dst}")
        k = min(self.bridge_neighbours, len(keys))
        out = []
        for i in range(0, len(z), chunk):
            idx = torch.cdist(z[i:i + chunk].float(), keys).topk(k, dim=1, largest=False).indices  # (q, k)
            cand = partners[idx]  # (q, k, D)
            central = torch.cdist(cand, cand).sum(-1).argmin(-1)  # the partner nearest to the others
            out.append(cand[torch.arange(len(cand)), central])
        return torch.cat(out) if out else z.new_zeros(0, self.latent_dim)

    # ------------------------------------------------------------------ use
    @inference
    def predict(self, batch: dict, use: tuple[str, ...], route: str = "posterior") -> dict[str, Tensor]:
        """Both modalities decoded from the posterior mode of the given ones (cross-modal when
        ``use`` holds one modality; a modality not in ``use`` gets its private latent at the prior
        mode). ``latent`` is the shared latent. With ``route="bridge"`` and one modality in
        ``use``, the other one is decoded from the bridged latent (see the module doc)."""
        if route not in ("posterior", "bridge"):
            raise ValueError(f"route must be 'posterior' or 'bridge', got {route!r}")
        q, priv, used = self._posterior(batch, use)
        if route == "bridge" and len(used) != 1:
            raise ValueError("the bridge route translates from one modality")
        z = q.mode()
        private = {m: p.mode() for m, p in priv.items()}
        out = {"latent": z}
        for m in MODALITIES:
            if route == "bridge" and m not in used:
                out[m] = self.decode_modality(m, self.bridge(z, used[0], m))
            else:
                out[m] = self.decode_modality(m, z, private)
        return out

    @inference
    def sample(self, n: int, generator: torch.Generator | None = None, given: dict | None = None
               ) -> dict[str, Tensor]:
        """Synthetic pairs from the prior (shared and private latents). With ``given`` (a batch of one example
        of one modality), ``n`` pairs given it: the shared latent drawn from the example's posterior, the given
        modality's private latent at its posterior mode, the other's drawn from the prior (cross-modal generation:
        :meth:`predict` decodes the posterior mode alone)."""
        if given:  # (its has_audio / has_image flags, a label: not modalities)
            q, priv, _ = self._posterior(given, tuple(m for m in MODALITIES if m in given) or tuple(given))
            if q.mean.shape[0] != 1:
                raise ValueError(f"given holds {q.mean.shape[0]} examples; sample() draws for one")
            z = q.rsample_n(n, generator)[:, 0]
        else:
            z, priv = torch.randn(n, self.latent_dim, generator=generator), {}
        private = {m: priv[m].mode().expand(n, -1) if m in priv else torch.randn(n, self.private_dim,
                                                                                 generator=generator)
                   for m in MODALITIES} if self.private_dim else None
        return {"latent": z, **self.decode(z, private)}
