"""What every model shares: its config base class, the first-stage protocol, single-modality
latent models, and one batched-inference helper.

First-stage protocol (:class:`FirstStage`)
    Every autoencoder-like model, and each modality of a multimodal one
    (``model.first_stage("mask")``), offers ``encode(x) -> DiagonalGaussian`` (deterministic
    models: zero variance), ``decode(z)`` in data space (the same space ``encode`` takes),
    ``latent_shape`` and ``latent_scale``: the standard deviation of the training latents,
    stored with the weights (:func:`fit_latent_scale`). Latent diffusion, clustering, export and
    the server use only this.

Model families
    Each family is an ``nn.Module`` subclass with class attributes ``name`` (its registry key),
    ``config_class`` (a :class:`ModelSpec` subclass whose fields are its constructor
    arguments) and ``tasks`` (the workflows that train it), and ``from_config(cfg, **data)``
    that builds it from that config plus what only the data knows (input shapes, rates).
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from latentbridge.config.sections import Section
from latentbridge.utils import batched  # noqa: F401 - re-exported: the one inference loop
from latentbridge.models.outputs import AutoencoderOutput, DiagonalGaussian
from latentbridge.nn.conv import FeatureNormalizer


class ModelSpec(Section):
    """Base of every model family's config; ``name`` is the registry key (the union tag)."""

    name: str


def round_trip_error(stage, x_hat: Tensor, x: Tensor) -> Tensor:
    """Per-sample distance between ``x`` and its reconstruction ``x_hat`` that the first stage is
    trained to reduce: the stage's own ``error`` when it has one (waveforms: log-magnitude spectra,
    whose phase the model does not fix), else the mean squared error."""
    fn = getattr(stage, "error", None)
    return fn(x_hat, x) if fn is not None else (x_hat - x).pow(2).flatten(1).mean(1)


@runtime_checkable
class FirstStage(Protocol):
    latent_shape: tuple[int, ...]
    latent_scale: Tensor

    def encode(self, x: Tensor) -> DiagonalGaussian: ...

    def decode(self, z: Tensor) -> Tensor: ...


class ModelFamily:
    """Mixin of the class-level contract every registered model follows."""

    name: ClassVar[str]
    config_class: ClassVar[type[ModelSpec]]
    tasks: ClassVar[tuple[str, ...]] = ()
    #: modalities offered through the first-stage protocol (``("",)``: the model itself)
    first_stage_modalities: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_config(cls, cfg: ModelSpec, **data: Any):
        """The model for ``cfg`` (its fields are constructor arguments) and the data-derived ``data``."""
        if not isinstance(cfg, cls.config_class):
            raise TypeError(f"{cls.__name__}.from_config expects a {cls.config_class.__name__}, "
                            f"got {type(cfg).__name__}")
        return cls(**data, **cfg.model_dump(exclude={"name"}))

    def first_stage(self, modality: str = ""):
        """The first-stage view of one modality (single-modality models: the model itself)."""
        if modality not in self.first_stage_modalities:
            raise ValueError(f"{type(self).__name__} offers the first-stage protocol for "
                             f"{list(self.first_stage_modalities) or 'no modality'}, not {modality!r}")
        return self


class ModalityStage:
    """The first-stage view of one modality of a multimodal model: delegates to the model's
    ``first_stage_encode(m, x)`` / ``first_stage_decode(m, z)`` / ``first_stage_latent_shape(m)``
    and its ``latent_scale_<m>`` buffer (saved with the weights)."""

    def __init__(self, model: nn.Module, modality: str):
        self.model = model
        self.modality = modality

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return tuple(self.model.first_stage_latent_shape(self.modality))

    @property
    def latent_scale(self) -> Tensor:
        return getattr(self.model, f"latent_scale_{self.modality}")

    def encode(self, x: Tensor) -> DiagonalGaussian:
        return self.model.first_stage_encode(self.modality, x)

    def decode(self, z: Tensor) -> Tensor:
        return self.model.first_stage_decode(self.modality, z)

    def error(self, x_hat: Tensor, x: Tensor) -> Tensor:
        """Per-sample distance of a round trip in the modality's own terms (:func:`round_trip_error`)."""
        fn = getattr(self.model, "first_stage_error", None)
        return fn(self.modality, x_hat, x) if fn is not None else (x_hat - x).pow(2).flatten(1).mean(1)


class MultimodalFamily(ModelFamily):
    """Mixin for multimodal models: one first-stage view per modality (:class:`ModalityStage`)."""

    def register_latent_scales(self) -> None:
        for m in self.first_stage_modalities:
            self.register_buffer(f"latent_scale_{m}", torch.ones(()))

    def first_stage(self, modality: str = "") -> ModalityStage:
        if modality not in self.first_stage_modalities:
            raise ValueError(f"{type(self).__name__} offers the first-stage protocol for "
                             f"{list(self.first_stage_modalities) or 'no modality'}, not {modality!r}")
        return ModalityStage(self, modality)


@torch.no_grad()
def fit_latent_scale(stage: FirstStage, x, batch_size: int = 256) -> float:
    """Set ``stage.latent_scale`` to the standard deviation of the posterior modes of ``x``
    (training data, in the space ``stage.encode`` takes); returns it."""
    z = batched(lambda b: stage.encode(b).mode(), x, batch_size=batch_size)
    scale = float(z.double().std().clamp_min(1e-8)) if z.numel() > 1 else 1.0
    stage.latent_scale.fill_(scale)
    return scale


def reconstruction_errors(x_hat: Tensor, x: Tensor) -> dict[str, Tensor]:
    """Per-sample ``mse`` and ``frame_max`` (largest per-frame mean squared error) of (B, C, F, T) maps."""
    per_frame = (x_hat - x).pow(2).mean(dim=(1, 2))  # (B, T)
    return {"mse": per_frame.mean(1), "frame_max": per_frame.amax(1)}


class LatentModel(ModelFamily, nn.Module):
    """A single-modality autoencoder-like model over (C, H, W) inputs (feature maps or images).

    - ``forward(x)`` → :class:`AutoencoderOutput` with per-sample losses,
    - ``loss(x, beta)`` → per-sample training loss and the named parts that are logged,
    - ``score(x, method, n_samples, generator)`` → one anomaly score per sample (higher = more
      anomalous),
    - the first-stage protocol: ``encode`` / ``decode`` / ``latent_shape`` / ``latent_scale``,
    - ``reconstruct(x)``: the deterministic reconstruction in data space.

    Inputs are raw features (e.g. dB mel); each model standardises them with its own
    :class:`FeatureNormalizer` (statistics saved with the weights; the identity until fitted).
    Subclasses implement ``posterior(xn)`` (deterministic models return a point mass),
    ``decode_normalized(z)``, ``forward`` and ``loss``.
    """

    score_methods: ClassVar[tuple[str, ...]] = ("mse", "frame_max")
    deterministic_scores: ClassVar[tuple[str, ...]] = ("mse", "frame_max")
    first_stage_modalities = ("",)

    def __init__(self, input_shape: tuple[int, int, int], **params: Any):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.params = dict(params)
        c, f, _ = self.input_shape
        self.normalizer = FeatureNormalizer(c, f)
        self.register_buffer("latent_scale", torch.ones(()))

    # --- to implement -------------------------------------------------------------------
    def posterior(self, xn: Tensor) -> DiagonalGaussian:  # pragma: no cover - abstract
        raise NotImplementedError

    def decode_normalized(self, z: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: Tensor) -> AutoencoderOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def loss(self, x: Tensor, beta: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:  # pragma: no cover
        raise NotImplementedError

    # --- first-stage protocol -----------------------------------------------------------
    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (int(self.params["latent_dim"]),)

    def encode(self, x: Tensor) -> DiagonalGaussian:
        """Posterior over the latent for inputs ``x`` in data space."""
        self.check_input(x)
        return self.posterior(self.normalizer(x))

    def decode(self, z: Tensor) -> Tensor:
        """Latents → data space (the space :meth:`encode` takes)."""
        return self.normalizer.inverse(self.decode_normalized(z))

    # --- shared -------------------------------------------------------------------------
    def check_input(self, x: Tensor) -> None:
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"{type(self).__name__} expects inputs of shape (B, {self.input_shape}), "
                             f"got {tuple(x.shape)}")

    def variational_forward(self, x: Tensor, sample: bool | None, losses) -> AutoencoderOutput:
        """The forward pass every model here shares: normalise, posterior, a reparameterised sample
        when ``sample`` (default: ``self.training``) else the mode, decode; ``losses(x_hat, xn, q)``
        gives the model's loss terms (in the standardised space)."""
        self.check_input(x)
        xn = self.normalizer(x)
        q = self.posterior(xn)
        z = q.sample() if (self.training if sample is None else sample) else q.mode()
        x_hat = self.decode_normalized(z)
        return AutoencoderOutput(reconstruction=x_hat, latent=q.mode(), posterior=q, losses=losses(x_hat, xn, q))

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """Deterministic reconstruction (posterior mode) in data space."""
        return self.normalizer.inverse(self.forward(x).reconstruction)

    def score(self, x: Tensor, method: str = "mse", n_samples: int = 32,
              generator: torch.Generator | None = None) -> Tensor:
        if method not in self.score_methods:
            raise ValueError(f"{type(self).__name__} supports scores {self.score_methods}, not {method!r}")
        return self.forward(x).losses[method]

    def config(self) -> dict[str, Any]:
        """Constructor arguments (saved in ``config.json`` as ``model_kwargs``)."""
        return {"input_shape": list(self.input_shape), **self.params}

    def example_batch(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """A small batch of plausible inputs (distinct structured maps; images in [0, 1]) for checks."""
        c, h, w = self.input_shape
        rows = torch.linspace(0, 1, h).view(1, 1, h, 1)
        cols = torch.linspace(0, 1, w).view(1, 1, 1, w)
        phase = torch.rand(n, c, 1, 1, generator=generator) * 6.28
        freq = 1 + torch.rand(n, c, 1, 1, generator=generator) * 3
        x = torch.sin(6.28 * freq * rows + phase) * torch.cos(3.14 * cols * freq) + 0.05 * torch.randn(
            n, c, h, w, generator=generator)
        if "image_ae" in self.tasks:
            return (x.clamp(-1, 1) + 1) / 2
        return 10 * x - 40

    def example_modality(self, modality: str, batch: Tensor) -> Tensor:
        return batch
