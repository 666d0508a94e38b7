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

import functools
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch
from pydantic import model_validator
from torch import Tensor, nn

from latentbridge.config.sections import Section
from latentbridge.io.levels import kept_offsets_note
from latentbridge.utils import batched  # noqa: F401 - re-exported: the one inference loop
from latentbridge.models.outputs import AutoencoderOutput, DiagonalGaussian
from latentbridge.nn.conv import FeatureNormalizer


class ModelSpec(Section):
    """Base of every model family's config; ``name`` is the registry key (the union tag). Its layer widths (every
    list of numbers under a name ending in ``channels`` or ``dims``) must be positive, the ``channels`` lists
    non-empty: an empty or a zero width was a traceback from the network's constructor, after the run folder was
    made."""

    name: str

    @model_validator(mode="after")
    def _widths(self):
        for key, value in self:
            if isinstance(value, (list, tuple)) and (key.endswith("channels") or key.endswith("dims")):
                if not value and key.endswith("channels"):  # hidden_dims may be empty: no hidden layer
                    raise ValueError(f"{key} must list at least one layer width, got []")
                if any(not isinstance(v, int) or v < 1 for v in value):
                    raise ValueError(f"{key} must list positive whole numbers, got {list(value)}")
        return self


def inference(fn):
    """A model's inference method: run under ``torch.no_grad`` in eval mode (dropout off, batch normalisation by its
    running statistics, which stay as trained), every submodule's own mode restored afterwards. Called on a model in
    train mode, such methods drew dropout and updated the normalisation statistics: two "deterministic"
    reconstructions differed, and the model's later predictions with them."""

    @functools.wraps(fn)
    def run(self, *args, **kwargs):
        modes = [(m, m.training) for m in self.modules()]
        self.eval()
        try:
            with torch.no_grad():
                return fn(self, *args, **kwargs)
        finally:
            for m, mode in modes:
                m.training = mode

    return run


def checked_input(model: nn.Module, key: str, x, shape: tuple[int, ...], unit: bool = False) -> Tensor:
    """``x`` as a floating tensor of ``(B, *shape)`` for ``model``'s input ``key``, or a ValueError naming what is
    wrong (the multimodal models met a 7-channel window, a numpy array or float64 with torch's messages of their
    layers). ``unit``: values in [0, 1] (masks, images), checked out of training (an 8-bit image read 0..255 was a
    mask of probability 0.35 without a word)."""
    name = type(model).__name__
    if not isinstance(x, Tensor):
        try:  # (on the model's device)
            x = torch.as_tensor(np.asarray(x), device=next(model.parameters()).device)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"{name}: {key} must be a tensor of shape (B, {', '.join(map(str, shape))}), "
                             f"got {type(x).__name__}") from None
    if x.dim() != len(shape) + 1 or tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(f"{name} expects {key} of shape (B, {', '.join(map(str, shape))}), got {tuple(x.shape)}")
    if not x.is_floating_point() or x.dtype == torch.float64:
        x = x.float()
    if unit and not model.training and len(x):
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name}: {key} holds NaN or infinite values")
        lo, hi = float(x.min()), float(x.max())
        if not (-1e-3 <= lo and hi <= 1.0 + 1e-3):  # (a resampled image's ringing overshoots a little)
            raise ValueError(f"{name}: {key} values must be in [0, 1], got {lo:g} .. {hi:g}"
                             + (" (8-bit pixels: divide by 255)" if hi > 2.0 else ""))
    return x


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
    def saved_note(cls, info: dict) -> str | None:
        """What changed in reading a model folder (its config.json ``info``) since it was saved, if anything: said by
        :func:`~latentbridge.models.hub.load_model`. The tasks whose models read audio files (anomaly detectors, audio
        autoencoders): the constant offset those lose since 2026-12-04."""
        if (info.get("config") or {}).get("task") in ("anomaly", "audio_ae"):
            return kept_offsets_note(info.get("created_utc"))
        return None

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


class WidenedStage:
    """A first-stage view whose latent is a stage's own (std-scaled) followed by a condition encoder's code
    (std-scaled): the diffusion conditions on both, the data decodes from the stage's part alone
    (the MLD's supervised stage, :data:`latentbridge.tasks.mld_stages.SUPERVISED`). Scale 1: the parts are scaled
    here."""

    def __init__(self, stage, condition):
        self.stage, self.condition = stage, condition
        self.own = int(np.prod(stage.latent_shape))
        self.latent_shape = (self.own + int(np.prod(condition.latent_shape)),)
        self.latent_scale = torch.tensor(1.0)

    def encode(self, x):
        z = torch.cat([self.stage.encode(x).mode().flatten(1) / self.stage.latent_scale,
                       self.condition.encode(x).mode().flatten(1) / self.condition.latent_scale], dim=1)
        return DiagonalGaussian(z, torch.full_like(z, -30.0))

    def decode(self, z):
        return self.stage.decode((z[:, :self.own] * self.stage.latent_scale).reshape(len(z), *self.stage.latent_shape))


class MultimodalFamily(ModelFamily):
    """Mixin for multimodal models: one first-stage view per modality (:class:`ModalityStage`)."""

    #: when the mmJSD fusion's dynamic prior became the experts' weighted geometric mean, and one modality's posterior
    #: its expert alone (the prior had halved its mean)
    JSD_CHANGED = "2026-12-07T12:19:16+00:00"

    @classmethod
    def saved_note(cls, info: dict) -> str | None:
        if (info.get("model_kwargs") or {}).get("fusion") == "jsd" and str(info.get("created_utc") or "") < \
                cls.JSD_CHANGED:
            return (f"trained with the jsd fusion before {cls.JSD_CHANGED[:10]}, whose divergence had a floor of 0.45 "
                    "nats a latent dimension and whose posterior of one modality was halved by the prior: read now "
                    "without the halving, its predictions (and the mask threshold calibrated then) differ; retrain it")
        return super().saved_note(info)

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
    #: scores computed from the fitted detector statistics (:meth:`fit_detector`), for every model
    detector_scores: ClassVar[tuple[str, ...]] = ("latent_mahalanobis", "latent_knn", "level", "aux", "combined")
    default_score: ClassVar[str] = "mse"
    first_stage_modalities = ("",)
    trainable: ClassVar[bool] = True

    def __init__(self, input_shape: tuple[int, int, int], *, level_norm: bool = False, latent_bank: int = 0,
                 aux_weight: float = 0.0, **params: Any):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.params = dict(params, level_norm=bool(level_norm), latent_bank=int(latent_bank),
                           aux_weight=float(aux_weight))
        c, f, _ = self.input_shape
        self.level_norm = bool(level_norm)
        self.aux_weight = float(aux_weight)
        self.normalizer = FeatureNormalizer(c, f)
        self.register_buffer("latent_scale", torch.ones(()))
        d = int(params["latent_dim"])
        # the detector's statistics of the training windows (fit_detector): latent mean and precision,
        # a bank of training latents, and the mean/std of each component of the combined score
        self.register_buffer("det_latent_mean", torch.zeros(d))
        self.register_buffer("det_latent_prec", torch.eye(d))
        self.register_buffer("det_bank", torch.zeros(int(latent_bank), d))
        self.register_buffer("det_level", torch.tensor([0.0, 1.0]))
        self.register_buffer("det_stats", torch.tensor([[0.0, 1.0]] * 4))  # recon, latent, level, aux
        self.register_buffer("det_fitted", torch.zeros((), dtype=torch.bool))
        self.aux_head = nn.Linear(d, 1) if aux_weight > 0 else None

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
        return self.posterior(self.standardize(x))

    def decode(self, z: Tensor) -> Tensor:
        """Latents → data space (the space :meth:`encode` takes; level-normalised with ``level_norm``)."""
        return self.normalizer.inverse(self.decode_normalized(z))

    # --- standardisation and level ------------------------------------------------------
    @staticmethod
    def level(x: Tensor) -> Tensor:
        """Per-window level: the mean of the features (dB features: the mean level in dB)."""
        return x.mean(dim=tuple(range(1, x.dim())))

    def standardize(self, x: Tensor) -> Tensor:
        """Features → the network's input: the window's level removed (``level_norm``), then the
        per-bin standardisation fitted on the training windows."""
        if self.level_norm:
            x = x - self.level(x).view(-1, *([1] * (x.dim() - 1)))
        return self.normalizer(x)

    def fit_normalizer(self, x: Tensor) -> None:
        """Per-bin statistics of training windows (after level removal with ``level_norm``)."""
        if self.level_norm:
            x = x - self.level(x).view(-1, *([1] * (x.dim() - 1)))
        self.normalizer.fit(x)

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
        xn = self.standardize(x)
        q = self.posterior(xn)
        z = q.sample() if (self.training if sample is None else sample) else q.mode()
        x_hat = self.decode_normalized(z)
        return AutoencoderOutput(reconstruction=x_hat, latent=q.mode(), posterior=q, losses=losses(x_hat, xn, q))

    @inference
    def reconstruct(self, x: Tensor) -> Tensor:
        """Deterministic reconstruction (posterior mode) in data space (the input's level restored)."""
        y = self.normalizer.inverse(self.forward(x).reconstruction)
        return y + self.level(x).view(-1, *([1] * (x.dim() - 1))) if self.level_norm else y

    # --- anomaly scores -----------------------------------------------------------------
    @property
    def all_scores(self) -> tuple[str, ...]:
        return self.score_methods + self.detector_scores

    def window_latent(self, x: Tensor) -> Tensor:
        """One latent vector per window (the posterior mode; models with several codes per window average them)."""
        z = self.encode(x).mode()
        return z.flatten(1) if z.dim() == 2 else z.mean(dim=tuple(range(1, z.dim() - 1)))

    def loss_with_synthetic_anomalies(self, x: Tensor, total: Tensor, parts: dict) -> Tensor:
        """With ``aux_weight``: a head on the latent learns normal windows (0) from synthetic anomalies
        made of them (1) — tones, clicks, band boosts and cuts, shifted and stretched copies
        (:func:`latentbridge.data.augment.synthetic_anomalies`) — and its cross-entropy joins the loss."""
        if self.aux_head is None or not self.training:
            return total
        import torch.nn.functional as F

        from latentbridge.data.augment import synthetic_anomalies

        fake = synthetic_anomalies(x.detach())
        logits = self.aux_head(torch.cat([self.window_latent(x), self.window_latent(fake)]))[:, 0]
        target = torch.cat([torch.zeros(len(x)), torch.ones(len(fake))]).to(logits)
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        aux = bce[: len(x)] + bce[len(x):]
        parts["aux_bce"] = aux
        return total + self.aux_weight * aux

    @torch.no_grad()
    def _components(self, x: Tensor, n_samples: int, generator) -> dict[str, Tensor]:
        z = self.window_latent(x)
        d = z - self.det_latent_mean
        out = {"recon": self.score(x, self.default_score, n_samples, generator),
               "latent": torch.einsum("bi,ij,bj->b", d, self.det_latent_prec, d)}
        if self.level_norm:
            lv = self.level(x)
            out["level"] = ((lv - self.det_level[0]) / self.det_level[1]).abs()
        if self.aux_head is not None:
            out["aux"] = self.aux_head(z)[:, 0]
        return out

    @inference
    def fit_detector(self, x, bank: int = 4096, seed: int = 0, n_samples: int = 8) -> None:
        """Statistics of the training windows ``x`` for the detector scores: the latent mean and
        (Ledoit-Wolf) precision, a seeded bank of at most ``bank`` training latents, the level's mean
        and spread, and the mean/std of each component of the ``combined`` score."""
        from sklearn.covariance import LedoitWolf

        x = torch.as_tensor(np.ascontiguousarray(x)) if not isinstance(x, Tensor) else x
        z = batched(self.window_latent, x).double()
        lw = LedoitWolf().fit(z.numpy())
        self.det_latent_mean.copy_(torch.from_numpy(lw.location_).float())
        self.det_latent_prec.copy_(torch.from_numpy(lw.precision_).float())
        keep = np.sort(np.random.default_rng(seed).permutation(len(z))[:bank])
        self.det_bank = z[keep].float().clone()
        self.params["latent_bank"] = int(len(keep))
        lv = batched(self.level, x).double()
        self.det_level.copy_(torch.tensor([float(lv.mean()), float(lv.std().clamp_min(1e-6))]))
        g = torch.Generator().manual_seed(seed)
        comps = batched(lambda b: self._components(b, n_samples, g), x)
        for i, name in enumerate(("recon", "latent", "level", "aux")):
            if name in comps:
                v = comps[name].double()
                self.det_stats[i] = torch.tensor([float(v.mean()), float(v.std().clamp_min(1e-9))])
        self.det_fitted.fill_(True)

    def score(self, x: Tensor, method: str = "mse", n_samples: int = 32,
              generator: torch.Generator | None = None) -> Tensor:
        """One anomaly score per window (higher = more anomalous). Besides the model's own
        (``score_methods``), after :meth:`fit_detector`: ``latent_mahalanobis`` (of the posterior mean),
        ``latent_knn`` (distance to the nearest training latent), ``level`` (standardised distance of
        the window's level from the training level, with ``level_norm``), ``aux`` (the synthetic-anomaly
        head's logit, with ``aux_weight``) and ``combined`` (the sum of the standardised reconstruction,
        latent, level and aux scores)."""
        if method in self.score_methods:
            return self.forward(x).losses[method]
        if method not in self.detector_scores:
            raise ValueError(f"{type(self).__name__} supports scores {self.all_scores}, not {method!r}")
        if method == "level" and not self.level_norm:
            raise ValueError("score 'level' needs level_norm")
        if method == "aux" and self.aux_head is None:
            raise ValueError("score 'aux' needs a model trained with synthetic anomalies (aux_weight > 0)")
        if not bool(self.det_fitted):
            raise ValueError(f"score {method!r} needs the detector statistics of training windows (fit_detector)")
        if method == "latent_knn":
            if not len(self.det_bank):
                raise ValueError("score 'latent_knn' needs a bank of training latents (latent_bank > 0)")
            from latentbridge.transforms.stats import squared_distances

            return squared_distances(self.window_latent(x).float(), self.det_bank).amin(dim=1).sqrt()
        comps = self._components(x, n_samples, generator)
        if method == "latent_mahalanobis":
            return comps["latent"]
        if method in ("level", "aux"):
            return comps[method]
        total = torch.zeros(x.shape[0], dtype=torch.float32, device=x.device)
        for i, name in enumerate(("recon", "latent", "level", "aux")):
            if name in comps:
                total = total + (comps[name].float() - self.det_stats[i, 0]) / self.det_stats[i, 1]
        return total

    def supports_score(self, method: str) -> bool:
        """Whether ``method`` applies to this model (``level`` needs ``level_norm``, ``aux`` a head, every detector
        score the statistics of :meth:`fit_detector`: an autoencoder trained outside ``anomaly fit`` has none)."""
        if method in self.detector_scores and not bool(self.det_fitted):
            return False
        if method == "level":
            return self.level_norm
        if method == "aux":
            return self.aux_head is not None
        return method in self.all_scores

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
