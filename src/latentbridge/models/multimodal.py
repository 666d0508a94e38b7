"""Multimodal VAE over vibration spectrograms and crack masks, with four fusions.

Modalities: ``spec`` — multichannel STFT of a vibration window, fed to the network as
[standardised log-magnitude, cos(phase), sin(phase)] per sensor channel, decoded back to
magnitude and phase and through the ISTFT to a waveform; ``mask`` — a binary crack mask.
Each modality has its own conv encoder (a diagonal Gaussian expert) and decoder.

Fusions (``fusion``):

- ``poe`` (MVAE, Wu & Goodman 2018): the joint posterior is the product of the available
  experts and the prior expert; trained on the joint ELBO plus the unimodal ELBOs.
- ``moe`` (MMVAE, Shi et al. 2019): a uniform mixture of the unimodal experts; each expert's
  sample reconstructs every available modality.
- ``mopoe`` (Sutter et al. 2021): a mixture over every non-empty subset of the available
  modalities of the product of that subset's experts.
- ``jsd`` (mmJSD, Sutter et al. 2020): unimodal experts reconstruct every available modality;
  the KL term is replaced by a Jensen-Shannon divergence of the experts and the prior to a
  dynamic prior, their geometric mean (prior included, weighted alike).

Any subset of modalities can be encoded (:meth:`MultimodalVAE.infer`); a missing mask is the
normal case (``has_mask`` per sample), so every loss is masked per sample. A damage head
predicts the global mask mean (damage extent) from the vibration-only latent, trained where a
mask exists (semi-supervised).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from latentbridge.config.sections import AugmentConfig
from latentbridge.data.augment import SpecAugment, WaveAugment
from latentbridge.losses import (
    MagnitudeL1Loss,
    MaskLoss,
    MultiResolutionSTFTLoss,
    PhaseGradientLoss,
    PhaseLaplacianLoss,
    ScaleInvariantL1Loss,
    WaveformL1Loss,
)
from latentbridge.models.base import ModelSpec, MultimodalFamily, checked_input, inference
from latentbridge.models.outputs import DiagonalGaussian
from latentbridge.nn.conv import ConvDecoder, ConvEncoder, FeatureNormalizer
from latentbridge.transforms.audio import STFT
from latentbridge.transforms.stft import from_magnitude_phase

FUSIONS = ("poe", "moe", "mopoe", "jsd")
MODALITIES = ("spec", "mask")
LOG_EPS = 1e-6


class MultimodalVAEConfig(ModelSpec):
    name: Literal["mmvae"] = "mmvae"
    fusion: Literal["poe", "moe", "mopoe", "jsd"] = "jsd"
    """Product, mixture, mixture of products of experts, Jensen-Shannon (mmJSD)."""
    latent_dim: int = Field(16, gt=0)
    channels: list[int] = Field(default_factory=lambda: [16, 32, 64, 64])
    """Spectrogram encoder/decoder stages."""
    mask_channels: list[int] = Field(default_factory=lambda: [16, 32, 64])
    kernel_size: int = Field(3, gt=0)


class Spec2MaskConfig(ModelSpec):
    name: Literal["spec2mask"] = "spec2mask"
    latent_dim: int = Field(16, gt=0)
    channels: list[int] = Field(default_factory=lambda: [16, 32, 64, 64])
    mask_channels: list[int] = Field(default_factory=lambda: [16, 32, 64])
    kernel_size: int = Field(3, gt=0)
    mask_stage: bool = False
    """Also learn, after training, a mask encoder into the bottleneck (the mask decoder frozen), so that the
    network serves a multimodal latent diffusion as its ``supervised`` first stage: masks live in its
    bottleneck and its vibration code conditions the diffusion."""


def product_of_experts(experts: list[DiagonalGaussian], weights: list[Tensor], prior: bool) -> DiagonalGaussian:
    """Product of Gaussian experts, each expert's precision times its weight (B,): 0 or 1 switches an expert off per
    sample; weights summing to 1 give their geometric mean. Without the prior expert, a sample none of whose experts
    is on gets the standard normal: every objective weights it 0, but its sample is still decoded in the batch (the
    N(0, 1e8) of an empty product shook the decoders' BatchNorm statistics by 1e5)."""
    ref = experts[0].mean
    precision = torch.ones_like(ref) if prior else torch.zeros_like(ref)
    weighted_mean = torch.zeros_like(ref)
    for q, w in zip(experts, weights):
        w = w.to(ref.dtype).view(-1, *([1] * (ref.dim() - 1)))
        p = w / q.var
        precision = precision + p
        weighted_mean = weighted_mean + p * q.mean
    if not prior:
        present = sum(w.to(ref.dtype) for w in weights).view(-1, *([1] * (ref.dim() - 1)))
        precision = precision + (present == 0).to(ref.dtype)
    precision = precision.clamp_min(1e-8)
    return DiagonalGaussian(weighted_mean / precision, -torch.log(precision))


def dynamic_prior(experts: list[DiagonalGaussian], weights: list[Tensor]) -> DiagonalGaussian:
    """mmJSD's dynamic prior: the geometric mean of the available experts and the standard-normal prior, weighted
    alike (1 / (available + 1) each), so that it equals the prior when every expert does (an unweighted product was
    narrower than each: a divergence of 0.45 nats a latent dimension between identical experts)."""
    n = 1 + sum(w.to(experts[0].mean.dtype) for w in weights)
    standard = DiagonalGaussian(torch.zeros_like(experts[0].mean), torch.zeros_like(experts[0].mean))
    return product_of_experts(list(experts) + [standard], [w / n for w in weights] + [1 / n], prior=False)


def _masked_mean(values: list[Tensor], weights: list[Tensor]) -> Tensor:
    num = sum(v * w for v, w in zip(values, weights))
    den = sum(weights)
    return num / den.clamp_min(1.0)


def fuse_for_inference(fusion: str, experts: dict[str, DiagonalGaussian], avail: dict[str, Tensor]) -> DiagonalGaussian:
    """The posterior of the given experts: a single expert by itself for MoE and mmJSD (whose decoders learn from the
    unimodal experts' samples; for mmJSD also where one of several is available to a sample: a window without its
    mask), several experts' dynamic prior for mmJSD, else their product (with the prior expert for PoE)."""
    names = list(experts)
    if fusion in ("moe", "jsd") and len(names) == 1:
        return experts[names[0]]
    if fusion == "jsd":
        dyn = dynamic_prior([experts[m] for m in names], [avail[m] for m in names])
        ref = dyn.mean
        on = {m: avail[m].to(ref.dtype).view(-1, *([1] * (ref.dim() - 1))) for m in names}
        one = sum(on.values()) == 1
        return DiagonalGaussian(torch.where(one, sum(on[m] * experts[m].mean for m in names), dyn.mean),
                                torch.where(one, sum(on[m] * experts[m].logvar for m in names), dyn.logvar))
    return product_of_experts([experts[m] for m in names], [avail[m] for m in names], prior=fusion == "poe")


def fusion_objective(fusion: str, ex: dict[str, DiagonalGaussian], avail: dict[str, Tensor], recon,
                     beta: float) -> tuple[Tensor, Tensor]:
    """Per-sample training objective of a fusion; ``recon(z, avail_subset, tag, source)`` returns the
    summed reconstruction losses of the modalities in ``avail_subset`` decoded from ``z``, a sample
    of the posterior of the modalities in ``source`` (a tuple of names).

    Returns (total loss, the KL-like regulariser that was weighted by ``beta``)."""
    names = list(ex)
    if fusion == "poe":
        joint = product_of_experts([ex[m] for m in names], [avail[m] for m in names], prior=True)
        kl = joint.kl()
        total = recon(joint.sample(), avail, "", tuple(names)) + beta * kl
        for m in names:  # unimodal (sub-sampled) ELBOs: each expert with the prior, its own modality
            q = product_of_experts([ex[m]], [avail[m]], prior=True)
            total = total + avail[m] * (recon(q.sample(), {m: avail[m]}, f"uni_{m}_", (m,)) + beta * q.kl())
        return total, kl
    if fusion in ("moe", "jsd"):
        weights = [avail[m] for m in names]
        rec = _masked_mean([recon(ex[m].sample(), avail, "", (m,)) for m in names], weights)
        if fusion == "moe":
            kl = _masked_mean([ex[m].kl() for m in names], weights)
        else:
            dyn = dynamic_prior([ex[m] for m in names], weights)
            prior = DiagonalGaussian(torch.zeros_like(dyn.mean), torch.zeros_like(dyn.mean))
            kl = _masked_mean([ex[m].kl(dyn) for m in names] + [prior.kl(dyn)],
                              weights + [torch.ones_like(weights[0])])
        return rec + beta * kl, kl
    if fusion == "mopoe":
        terms, weights, kls = [], [], []
        for subset in (c for r in range(1, len(names) + 1) for c in _combinations(names, r)):
            q = product_of_experts([ex[m] for m in subset], [avail[m] for m in subset], prior=False)
            terms.append(recon(q.sample(), avail, "", tuple(subset)) + beta * q.kl())
            kls.append(q.kl())
            weights.append(torch.stack([avail[m] for m in subset]).prod(0))
        return _masked_mean(terms, weights), _masked_mean(kls, weights)
    raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")


class SpecCodec(nn.Module):
    """Waveform windows ↔ network-side spectrogram tensors (log-magnitude, cos, sin per channel)."""

    def __init__(self, n_channels: int, n_samples: int, n_fft: int, hop_length: int):
        super().__init__()
        self.n_channels, self.n_samples = n_channels, n_samples
        self.stft = STFT(n_fft=n_fft, hop_length=hop_length)
        self.n_freq = self.stft.n_freq
        self.n_frames = self.stft.num_frames(n_samples)
        self.normalizer = FeatureNormalizer(n_channels, self.n_freq)

    def analyse(self, wave: Tensor) -> tuple[Tensor, Tensor]:
        spec = self.stft(wave)  # (B, C, F, T) complex
        return torch.log(spec.abs() + LOG_EPS), torch.angle(spec)

    def encode_input(self, logmag: Tensor, phase: Tensor) -> Tensor:
        return torch.cat([self.normalizer(logmag), torch.cos(phase), torch.sin(phase)], dim=1)

    def split_output(self, y: Tensor) -> dict[str, Tensor]:
        c = self.n_channels
        logmag_n, cos, sin = y[:, :c], y[:, c:2 * c], y[:, 2 * c:]
        phase = torch.atan2(sin, cos)
        logmag = self.normalizer.inverse(logmag_n)
        mag = (torch.exp(logmag) - LOG_EPS).clamp_min(0.0)
        return {"logmag_n": logmag_n, "logmag": logmag, "phase": phase, "mag": mag}

    def synthesise(self, mag: Tensor, phase: Tensor) -> Tensor:
        return self.stft.inverse(from_magnitude_phase(mag, phase), length=self.n_samples)


class MultimodalVAE(MultimodalFamily, nn.Module):
    """Vibration spectrogram + crack mask VAE. ``batch`` dicts hold ``wave`` (B, C, T),
    ``mask`` (B, 1, H, W), ``has_mask`` (B,) bool and ``extent`` (B,).

    First stages (``first_stage("spec")`` / ``("mask")``): waveform windows (B, C, T) ↔ the
    spectrogram expert's latent (decoded back to a waveform through the ISTFT of the decoded
    magnitude and phase); masks (B, 1, H, W) in [0, 1] ↔ the mask expert's latent (decoded to
    crack probabilities)."""

    name = "mmvae"
    config_class = MultimodalVAEConfig
    tasks = ("multimodal",)
    first_stage_modalities = MODALITIES

    def __init__(self, n_channels: int, n_samples: int, sample_rate: float, n_fft: int = 128, hop_length: int = 32,
                 mask_hw: tuple[int, int] = (32, 96), latent_dim: int = 32, channels=(32, 64, 128),
                 mask_channels=(16, 32, 64), kernel_size: int = 3, fusion: str = "jsd",
                 loss_weights: dict | None = None, augment: dict | None = None):
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        self.kwargs = dict(n_channels=n_channels, n_samples=n_samples, sample_rate=float(sample_rate), n_fft=n_fft,
                           hop_length=hop_length, mask_hw=list(mask_hw), latent_dim=latent_dim,
                           channels=list(channels), mask_channels=list(mask_channels), kernel_size=kernel_size,
                           fusion=fusion, loss_weights=dict(loss_weights or {}), augment=dict(augment or {}))
        self.fusion = fusion
        self.latent_dim = latent_dim
        self.codec = SpecCodec(n_channels, n_samples, n_fft, hop_length)
        f, t = self.codec.n_freq, self.codec.n_frames
        self.spec_encoder = ConvEncoder(3 * n_channels, list(channels), (f, t), 2 * latent_dim, kernel_size)
        self.spec_decoder = ConvDecoder(latent_dim, list(channels), (f, t), 3 * n_channels)
        self.mask_encoder = ConvEncoder(1, list(mask_channels), tuple(mask_hw), 2 * latent_dim, kernel_size)
        self.mask_decoder = ConvDecoder(latent_dim, list(mask_channels), tuple(mask_hw), 1)
        self.damage_head = nn.Sequential(nn.Linear(latent_dim, 64), nn.SiLU(), nn.Linear(64, 1))
        w = {"magnitude_l1": 1.0, "phase_gradient": 0.1, "phase_laplacian": 0.05, "waveform_l1": 0.0,
             "waveform_si_l1": 0.1, "mrstft": 0.1, "mask_dice": 1.0, "mask_bce": 1.0, "mask_focal": 0.0,
             "focal_gamma": 2.0, "damage": 1.0, **(loss_weights or {})}
        self.w = w
        self.magnitude_loss = MagnitudeL1Loss(reduction="none")
        self.phase_gradient_loss = PhaseGradientLoss(reduction="none")
        self.phase_laplacian_loss = PhaseLaplacianLoss(reduction="none")
        self.waveform_l1_loss = WaveformL1Loss(reduction="none")
        self.si_l1_loss = ScaleInvariantL1Loss(reduction="none")
        short = max(16, 2 ** int(math.log2(max(16, n_samples // 8))))
        ffts = sorted({max(16, short // 4), max(16, short // 2), short})
        self.mrstft_loss = MultiResolutionSTFTLoss(fft_sizes=ffts, reduction="none")
        self.mask_loss = MaskLoss(dice=w["mask_dice"], bce=w["mask_bce"], focal=w["mask_focal"],
                                  gamma=w["focal_gamma"], reduction="none")
        aug = AugmentConfig(**(augment or {}))
        self.wave_augment = WaveAugment(aug, sample_rate=sample_rate)
        self.spec_augment = SpecAugment(aug)
        self.register_latent_scales()

    # ------------------------------------------------------------------ encoding
    def config(self) -> dict[str, Any]:
        return dict(self.kwargs)

    def spec_targets(self, wave: Tensor) -> dict[str, Tensor]:
        logmag, phase = self.codec.analyse(wave)
        return {"wave": wave, "logmag": logmag, "logmag_n": self.codec.normalizer(logmag), "phase": phase,
                "mag": torch.exp(logmag)}

    def experts(self, batch: dict, targets: dict | None = None) -> dict[str, DiagonalGaussian]:
        out = {}
        if "wave" in batch:
            wave = checked_input(self, "wave", batch["wave"], (self.codec.n_channels, self.codec.n_samples))
            t = targets or self.spec_targets(wave)
            x = self.codec.encode_input(t["logmag"], t["phase"])
            if self.training:
                x = self.spec_augment(x)
            out["spec"] = DiagonalGaussian.from_params(self.spec_encoder(x))
        if "mask" in batch:
            mask = checked_input(self, "mask", batch["mask"], (1, *self.kwargs["mask_hw"]), unit=True)
            out["mask"] = DiagonalGaussian.from_params(self.mask_encoder(mask * 2.0 - 1.0))
        return out

    def availability(self, batch: dict, experts: dict) -> dict[str, Tensor]:
        b = next(iter(experts.values())).mean.shape[0]
        dev = next(iter(experts.values())).mean.device
        avail = {}
        for m in experts:
            if m == "mask":
                avail[m] = batch.get("has_mask", torch.ones(b, dtype=torch.bool, device=dev)).float()
            else:
                avail[m] = torch.ones(b, device=dev)
        return avail

    def infer(self, batch: dict, use: tuple[str, ...] = ("spec",)) -> DiagonalGaussian:
        """Posterior from the given modalities only (e.g. vibration alone → crack mask)."""
        batch = {k: v for k, v in batch.items() if k not in MODALITY_KEYS or MODALITY_KEYS[k] in use}
        ex = self.experts(batch)
        if not ex:
            raise ValueError(f"none of the modalities {use} is in the batch")
        return fuse_for_inference(self.fusion, ex, self.availability(batch, ex))

    # ------------------------------------------------------------------ decoding
    def decode_spec(self, z: Tensor, with_wave: bool = True) -> dict[str, Tensor]:
        out = self.codec.split_output(self.spec_decoder(z))
        if with_wave:
            out["wave"] = self.codec.synthesise(out["mag"], out["phase"])
        return out

    def decode_mask(self, z: Tensor) -> Tensor:
        """Mask logits (B, 1, H, W)."""
        return self.mask_decoder(z)

    def decode_modality(self, m: str, z: Tensor) -> Tensor:
        """Modality ``m`` in data space from the latent ``z``: ``spec`` → waveform windows (B, C, T)
        (ISTFT of the decoded magnitude and phase), ``mask`` → crack probabilities (B, 1, H, W)."""
        if m == "spec":
            return self.decode_spec(z)["wave"]
        if m == "mask":
            return torch.sigmoid(self.decode_mask(z))
        raise ValueError(f"unknown modality {m!r}; known: {MODALITIES}")

    # ------------------------------------------------------------------ first-stage protocol
    def first_stage_latent_shape(self, m: str) -> tuple[int, ...]:
        return (self.latent_dim,)

    def example_batch(self, n: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Distinct decaying tones per sample and channel, with a crack band in the mask (checks)."""
        c, t = self.kwargs["n_channels"], self.kwargs["n_samples"]
        h, w = self.kwargs["mask_hw"]
        sr = self.kwargs["sample_rate"]
        time = torch.arange(t) / sr
        f = (0.05 + 0.3 * torch.rand(n, c, 1, generator=generator)) * sr
        wave = torch.sin(6.28 * f * time) * torch.exp(-time / time[-1].clamp_min(1e-6)) \
            + 0.05 * torch.randn(n, c, t, generator=generator)
        pos = torch.randint(0, w - 2, (n,), generator=generator)
        mask = torch.zeros(n, 1, h, w)
        for i, p_ in enumerate(pos.tolist()):
            mask[i, 0, h // 2:, p_:p_ + 2] = 1.0
        return {"wave": wave, "mask": mask, "has_mask": torch.ones(n, dtype=torch.bool),
                "extent": mask.flatten(1).mean(1)}

    def example_modality(self, m: str, batch: dict) -> Tensor:
        return batch[{"spec": "wave", "mask": "mask"}[m]]

    def first_stage_encode(self, m: str, x: Tensor) -> DiagonalGaussian:
        key = {"spec": "wave", "mask": "mask"}[m]
        return self.experts({key: x})[m]

    def first_stage_decode(self, m: str, z: Tensor) -> Tensor:
        return self.decode_modality(m, z)

    def first_stage_error(self, m: str, x_hat: Tensor, x: Tensor) -> Tensor:
        """Per-sample round-trip distance: waveforms by the L1 distance of their standardised
        log-magnitude spectra (the phase of an ambient vibration is not predictable), masks by MSE."""
        if m == "spec":
            a, _ = self.codec.analyse(x_hat)
            b, _ = self.codec.analyse(x)
            return (self.codec.normalizer(a) - self.codec.normalizer(b)).abs().flatten(1).mean(1)
        return (x_hat - x).pow(2).flatten(1).mean(1)

    def predict_extent(self, z: Tensor) -> Tensor:
        return self.damage_head(z).squeeze(-1)

    # ------------------------------------------------------------------ losses
    def spec_loss(self, z: Tensor, t: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        w = self.w
        need_wave = any(w[k] > 0 for k in ("waveform_l1", "waveform_si_l1", "mrstft"))
        y = self.decode_spec(z, with_wave=need_wave)
        parts = {"magnitude_l1": self.magnitude_loss(y["logmag_n"], t["logmag_n"])}
        weight = t["mag"]
        if w["phase_gradient"] > 0:
            parts["phase_gradient"] = self.phase_gradient_loss(y["phase"], t["phase"], weight=weight)
        if w["phase_laplacian"] > 0:
            parts["phase_laplacian"] = self.phase_laplacian_loss(y["phase"], t["phase"], weight=weight)
        if need_wave:
            if w["waveform_l1"] > 0:
                parts["waveform_l1"] = self.waveform_l1_loss(y["wave"], t["wave"])
            if w["waveform_si_l1"] > 0:
                parts["waveform_si_l1"] = self.si_l1_loss(y["wave"], t["wave"])
            if w["mrstft"] > 0:
                parts["mrstft"] = self.mrstft_loss(y["wave"], t["wave"])
        total = sum(w[k] * v for k, v in parts.items())
        return total, parts

    def mask_loss_of(self, z: Tensor, batch: dict) -> Tensor:
        return self.mask_loss(self.decode_mask(z), batch["mask"])

    def recon(self, z: Tensor, batch: dict, t: dict, avail: dict[str, Tensor], logs: dict, tag: str) -> Tensor:
        """Sum over available modalities of their reconstruction losses from ``z`` (per sample)."""
        total = torch.zeros(z.shape[0], device=z.device)
        if "spec" in avail:
            s, parts = self.spec_loss(z, t)
            total = total + avail["spec"] * s
            logs.setdefault(f"{tag}spec", s)
            for k, v in parts.items():
                logs.setdefault(f"{tag}{k}", v)
        if "mask" in avail:
            m = self.mask_loss_of(z, batch)
            total = total + avail["mask"] * m
            logs.setdefault(f"{tag}mask", m)
        return total

    def loss(self, batch: dict, beta: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        if self.training and "wave" in batch:
            batch = {**batch, "wave": self.wave_augment(batch["wave"])}
        t = self.spec_targets(batch["wave"])
        ex = self.experts(batch, t)
        avail = self.availability(batch, ex)
        logs: dict[str, Tensor] = {}
        total, kl = fusion_objective(self.fusion, ex, avail,
                                     lambda z, av, tag, _src: self.recon(z, batch, t, av, logs, tag), beta)
        # damage extent from vibration alone, where a mask (label) exists
        has = batch.get("has_mask", torch.ones_like(total, dtype=torch.bool)).float()
        z_spec = fuse_for_inference(self.fusion, {"spec": ex["spec"]}, {"spec": avail["spec"]}).sample()
        extent = torch.nan_to_num(batch.get("extent", torch.zeros_like(total)), nan=0.0)
        damage = (self.predict_extent(z_spec) - extent).pow(2) * has
        total = total + self.w["damage"] * damage
        logs.update({"kl": kl, "damage_mse": damage})
        return total, logs

    # ------------------------------------------------------------------ inference helpers
    @inference
    def predict(self, batch: dict, use: tuple[str, ...] = ("spec",)) -> dict[str, Tensor]:
        """Deterministic cross- and self-reconstruction from the given modalities."""
        q = self.infer(batch, use)
        z = q.mode()
        spec = self.decode_spec(z)
        return {"latent": z, "mask_logits": self.decode_mask(z), "mask_prob": torch.sigmoid(self.decode_mask(z)),
                "extent": self.predict_extent(z), "wave": spec["wave"], "logmag": spec["logmag"],
                "phase": spec["phase"]}


class Spec2Mask(MultimodalVAE):
    """Supervised reference: the same spectrogram encoder (deterministic) → mask decoder + damage head.

    Trained only on labelled windows; no latent prior and no spectrogram reconstruction. With
    ``mask_stage`` (:meth:`fit_mask_encoder` after training) it offers two first stages: ``mask`` (a mask
    encoder into the bottleneck, the network's own mask decoder) and ``condition`` (the vibration
    encoder's bottleneck; encode only)."""

    name = "spec2mask"
    config_class = Spec2MaskConfig
    first_stage_modalities = ()

    def __init__(self, *args, mask_stage: bool = False, **kwargs):
        self.first_stage_modalities = ("mask", "condition") if mask_stage else ()  # before the scale buffers
        super().__init__(*args, **kwargs)
        self.kwargs["mask_stage"] = bool(mask_stage)

    def first_stage_encode(self, m: str, x: Tensor) -> DiagonalGaussian:
        if m == "condition":
            return self.infer({"wave": x})
        return super().first_stage_encode(m, x)

    def first_stage_decode(self, m: str, z: Tensor) -> Tensor:
        if m == "condition":
            raise ValueError("the condition stage of a supervised network encodes vibration only")
        return super().first_stage_decode(m, z)

    def fit_mask_encoder(self, masks: Tensor, seed: int, epochs: int = 60, lr: float = 2e-3, batch_size: int = 32
                         ) -> float:
        """Train the mask encoder (fresh weights, seeded) so that the frozen mask decoder reconstructs
        ``masks`` (B, 1, H, W) from its code, with the mask losses of training; returns the last epoch's
        mean loss."""
        was = self.training
        with torch.random.fork_rng(devices=[]):  # fresh weights from the seed, the process's generator left as it was
            torch.manual_seed(seed)
            for mod in self.mask_encoder.modules():
                if hasattr(mod, "reset_parameters"):
                    mod.reset_parameters()
        params = {id(p) for p in self.mask_encoder.parameters()}
        frozen = [p for p in self.parameters() if id(p) not in params and p.requires_grad]
        for p in frozen:
            p.requires_grad_(False)
        self.eval()  # the decoder's normalisation statistics stay as trained
        self.mask_encoder.train()
        opt = torch.optim.Adam(self.mask_encoder.parameters(), lr)
        g = torch.Generator().manual_seed(seed)
        masks = torch.as_tensor(masks, dtype=torch.float32)
        try:
            for _ in range(epochs):
                perm, total = torch.randperm(len(masks), generator=g), 0.0
                for i in range(0, len(masks), batch_size):
                    b = masks[perm[i:i + batch_size]]
                    z = self.experts({"mask": b})["mask"].mean
                    loss = self.mask_loss(self.decode_mask(z), b).mean()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(b)
        finally:
            for p in frozen:
                p.requires_grad_(True)
            self.train(was)
        return total / max(len(masks), 1)

    def infer(self, batch: dict, use: tuple[str, ...] = ("spec",)) -> DiagonalGaussian:
        q = self.experts({"wave": batch["wave"]})["spec"]
        return DiagonalGaussian(q.mean, torch.full_like(q.mean, -30.0))

    def loss(self, batch: dict, beta: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        if self.training:
            batch = {**batch, "wave": self.wave_augment(batch["wave"])}
        z = self.infer(batch).mode()
        has = batch.get("has_mask", torch.ones(z.shape[0], dtype=torch.bool, device=z.device)).float()
        mask = self.mask_loss_of(z, batch) * has
        extent = torch.nan_to_num(batch.get("extent", torch.zeros_like(mask)), nan=0.0)
        damage = (self.predict_extent(z) - extent).pow(2) * has
        return mask + self.w["damage"] * damage, {"mask": mask, "damage_mse": damage}


MODALITY_KEYS = {"wave": "spec", "mask": "mask", "has_mask": "mask"}


def _combinations(items: list[str], r: int) -> list[tuple[str, ...]]:
    import itertools

    return list(itertools.combinations(items, r))
