"""Per-workflow config schemas: a discriminated union on ``task``.

Each workflow validates only its own sections and its own cross-field rules. Its ``model`` section is a discriminated
union (on ``name``) of the configs of the registered models whose ``tasks`` name the workflow
(:func:`latentbridge.models.registry.models_for_task`), so a new model appears here by being registered.
:func:`transform_spec` builds the saved preprocessing description (:mod:`latentbridge.transforms.spec`) of each.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import Field, TypeAdapter, ValidationError, model_validator

from latentbridge.config.loading import (apply_overrides, deep_merge, format_validation_error, is_text_field, load_raw,
                                         model_key_hint, validation_problems)
from latentbridge.config.sections import (DIGIT_AUDIO, DIGIT_FEATURES, AnomalyConfig, AudioAEDataConfig, AudioConfig,
                                          AudioDataConfig, AudioVisualLossWeights, AugmentConfig, BetaConfig,
                                          BridgeDataConfig, BridgeLossWeights, ClassifierDataConfig, ClassifierSettings,
                                          DiffusionConfig, DiffusionEvalConfig, DiffusionMonitorConfig, DigitsConfig,
                                          FeatureConfig, FirstStageConfig, ImageDataConfig, MLDDataConfig,
                                          MLDDiffusionConfig, MLDEvalConfig, MLDSamplingConfig, PairedDataConfig,
                                          PatchConfig, SamplingConfig, SpatialDataConfig, SpatialLossWeights,
                                          TrainConfig, VibrationConfig, WindowShiftConfig)
from latentbridge.config.workflow_base import Workflow, _AudioWorkflow, _model_union, say_replaced
from latentbridge.errors import ConfigError
from latentbridge.sampling_args import guidance_problem
from latentbridge.models.registry import REGISTRY, models_for_task
from latentbridge.transforms.spec import (
    AudioTransform,
    ImageTransform,
    MaskParams,
    SpatialTransform,
    VibrationTransform,
)


class AnomalyWorkflow(_AudioWorkflow):
    """``anomaly fit``: a detector trained on normal recordings, with a calibrated threshold."""

    task: Literal["anomaly"] = "anomaly"
    default_model: ClassVar[str] = "knn_stats"
    data: AudioDataConfig = Field(default_factory=AudioDataConfig)
    model: _model_union("anomaly")  # type: ignore[valid-type]
    beta: BetaConfig = Field(default_factory=BetaConfig)
    anomaly: AnomalyConfig = Field(default_factory=AnomalyConfig)

    def _pending(self, key: str) -> bool:
        section, _, name = key.rpartition(".")
        return self.audio.auto and name not in (self.features if section == "features" else self.audio).model_fields_set

    @model_validator(mode="after")
    def _check_score(self):
        cls = REGISTRY[self.model.name]
        offered = tuple(getattr(cls, "score_methods", ())) + tuple(getattr(cls, "detector_scores", ()))
        score = self.anomaly.score
        if score is not None and score not in offered:
            raise ValueError(f"anomaly.score: {self.model.name} offers {list(offered)}, not {score!r}")
        if score == "level" and not self.features.level_norm:
            raise ValueError("anomaly.score: 'level' needs features.level_norm: true")
        if self.anomaly.synthetic_anomalies > 0 and not getattr(cls, "trainable", True):
            raise ValueError(f"anomaly.synthetic_anomalies: {self.model.name} is not trained by gradient descent")
        if score == "aux" and self.anomaly.synthetic_anomalies <= 0:
            raise ValueError("anomaly.score: 'aux' needs anomaly.synthetic_anomalies > 0")
        return self

    def model_data(self, input_shape) -> dict[str, Any]:
        """Constructor arguments the anomaly workflow adds to its models."""
        cls = REGISTRY[self.model.name]
        if not getattr(cls, "trainable", True):
            return {"input_shape": input_shape}
        return {"input_shape": input_shape, "level_norm": self.features.level_norm,
                "aux_weight": self.anomaly.synthetic_anomalies}

    def example_data(self) -> dict[str, Any]:
        return self.model_data(self.feature_shape)


class AudioAEWorkflow(_AudioWorkflow):
    """Mel (or spectrogram) autoencoders of recordings; audio comes back through Griffin-Lim."""

    task: Literal["audio_ae"] = "audio_ae"
    default_model: ClassVar[str] = "mel_ae"
    data: AudioAEDataConfig = Field(default_factory=AudioAEDataConfig)
    model: _model_union("audio_ae")  # type: ignore[valid-type]
    beta: BetaConfig = Field(default_factory=BetaConfig)
    augment: WindowShiftConfig = Field(default_factory=WindowShiftConfig)


def image_transform(d: ImageDataConfig) -> ImageTransform:
    """What a model of images of ``d`` reads: its shape, colour and resizing."""
    c, h, w = d.image_shape
    resize = "none" if d.source == "mnist" and d.image_size in (None, 28) else d.resize
    return ImageTransform(channels=c, height=h, width=w, resize=resize, color="rgb" if c == 3 else "grayscale",
                          value_range=(0.0, 1.0))


class ImageAEWorkflow(Workflow):
    """Autoencoders of images: MNIST's 28 x 28 digits or a folder of images (grey or RGB, resized)."""

    task: Literal["image_ae"] = "image_ae"
    default_model: ClassVar[str] = "image_conv_ae"
    data: ImageDataConfig = Field(default_factory=lambda: ImageDataConfig(val_fraction=0.2))
    model: _model_union("image_ae")  # type: ignore[valid-type]
    beta: BetaConfig = Field(default_factory=BetaConfig)

    def transform_spec(self, **data: Any) -> ImageTransform:
        return image_transform(self.data)

    def example_data(self) -> dict[str, Any]:
        return {"input_shape": self.data.image_shape}


class MultimodalWorkflow(Workflow):
    """Vibration spectrograms and crack masks (the bridge)."""

    task: Literal["multimodal"] = "multimodal"
    default_model: ClassVar[str] = "mmvae"
    data: BridgeDataConfig = Field(default_factory=BridgeDataConfig)
    vibration: VibrationConfig = Field(default_factory=VibrationConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    losses: BridgeLossWeights = Field(default_factory=BridgeLossWeights)
    model: _model_union("multimodal")  # type: ignore[valid-type]
    beta: BetaConfig = Field(default_factory=BetaConfig)

    @model_validator(mode="after")
    def _check(self) -> "MultimodalWorkflow":
        v = self.vibration
        rate = v.resample_to or v.sample_rate
        if rate is not None and v.n_fft > int(round(v.window_s * rate)):
            raise ValueError(f"vibration.n_fft ({v.n_fft}) is longer than one window "
                             f"(vibration.window_s x {rate:g} Hz = {int(round(v.window_s * rate))} samples)")
        if v.hop_length > v.n_fft:
            raise ValueError(f"vibration.hop_length ({v.hop_length}) is longer than vibration.n_fft ({v.n_fft})")
        return self

    def transform_spec(self, *, sample_rate: float, n_channels: int, **data: Any) -> VibrationTransform:
        v = self.vibration
        return VibrationTransform(
            sample_rate=float(sample_rate), n_channels=int(n_channels), channels=v.channels,
            resample_to=v.resample_to, window_s=v.window_s, hop_s=v.hop_s, n_fft=v.n_fft,
            hop_length=v.hop_length, mask=MaskParams(height=v.mask_height, width=v.mask_width,
                                                     threshold=v.mask_threshold, coverage=v.mask_coverage))

    def example_data(self) -> dict[str, Any]:
        v = self.vibration
        rate = v.resample_to or v.sample_rate or 100.0
        return {"n_channels": len(v.channels) if v.channels else 2, "n_samples": int(round(v.window_s * rate)),
                "sample_rate": rate, "n_fft": v.n_fft, "hop_length": v.hop_length,
                "mask_hw": (v.mask_height, v.mask_width), "loss_weights": self.losses.model_dump(),
                "augment": self.augment.model_dump()}


class AVDigitsWorkflow(_AudioWorkflow):
    """Spoken digits (FSDD) and written digits (MNIST) in one latent space."""

    task: Literal["avdigits"] = "avdigits"
    default_model: ClassVar[str] = "avmvae"
    data: PairedDataConfig = Field(default_factory=PairedDataConfig)
    digits: DigitsConfig = Field(default_factory=DigitsConfig)
    audio: AudioConfig = Field(default_factory=lambda: AudioConfig(**DIGIT_AUDIO))
    """Clip length (``window_s``: one centre-cropped clip per recording) and rate."""
    features: FeatureConfig = Field(default_factory=lambda: FeatureConfig(**DIGIT_FEATURES))
    losses: AudioVisualLossWeights = Field(default_factory=AudioVisualLossWeights)
    model: _model_union("avdigits")  # type: ignore[valid-type]
    beta: BetaConfig = Field(default_factory=BetaConfig)

    def transform_spec(self, **data: Any) -> AudioTransform:
        return self.audio_transform(clip="centre", standardize=True)

    def example_data(self) -> dict[str, Any]:
        return {"audio_shape": self.feature_shape, "image_shape": (1, 28, 28), "loss_weights": self.losses.model_dump()}


class DiffusionWorkflow(Workflow):
    """Image generation with a denoising diffusion model (MNIST or a folder of images)."""

    task: Literal["diffusion"] = "diffusion"
    default_model: ClassVar[str] = "ddpm_unet"
    data: ImageDataConfig = Field(default_factory=ImageDataConfig)
    diffusion: DiffusionConfig = Field(default_factory=DiffusionConfig)
    model: _model_union("diffusion")  # type: ignore[valid-type]
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(
        max_epochs=20, batch_size=64, lr=2e-3, weight_decay=0.0, scheduler="cosine", gradient_clip=1.0,
        ema_decay=0.999, keep_weights="last"))
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    monitor: DiffusionMonitorConfig = Field(default_factory=DiffusionMonitorConfig)
    evaluate: DiffusionEvalConfig = Field(default_factory=DiffusionEvalConfig)

    @model_validator(mode="after")
    def _check(self) -> "DiffusionWorkflow":
        d = self.data
        levels = len(getattr(self.model, "channels", None) or ())
        side = d.image_size or 28
        if levels > 1 and side % 2 ** (levels - 1):
            m = 2 ** (levels - 1)
            raise ValueError(f"data.image_size ({side}) must be a multiple of {m} for a U-Net of {levels} levels "
                             "(model.channels): e.g. " + " or ".join(map(str, sorted({max(m, side // m * m),
                                                                                     (side // m + 1) * m}))))
        if self.diffusion.schedule == "linear" and self.diffusion.beta_end <= self.diffusion.beta_start:
            raise ValueError("diffusion.beta_end must be above diffusion.beta_start")
        for key, steps in (("sampling.steps", self.sampling.steps), ("monitor.steps", self.monitor.steps)):
            if steps > self.diffusion.train_timesteps:
                raise ValueError(f"{key} ({steps}) is more than diffusion.train_timesteps "
                                 f"({self.diffusion.train_timesteps})")
        return self

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.data.image_shape

    def process_config(self) -> dict[str, Any]:
        d = self.diffusion
        return {"schedule": d.schedule, "prediction": d.prediction, "train_timesteps": d.train_timesteps,
                "beta_start": d.beta_start, "beta_end": d.beta_end, "clip_sample": d.clip_sample}

    def model_data(self, n_classes: int, n_continuous: int = 0) -> dict[str, Any]:
        """Constructor arguments of the denoiser that come from the data and the process."""
        cond = self.diffusion.conditional
        return {"image_shape": self.image_shape, "n_classes": n_classes if cond else 0,
                "n_continuous": n_continuous if cond else 0, "process": self.process_config(),
                "label_dropout": self.diffusion.label_dropout}

    def transform_spec(self, **data: Any) -> ImageTransform:
        return image_transform(self.data)

    def example_data(self) -> dict[str, Any]:
        return self.model_data(10 if self.data.source == "mnist" or self.data.class_folders else 0,
                               1 if self.data.conditions else 0)


#: the modalities of each kind of paired data, and the workflows that may train each first-stage key
MLD_MODALITIES = {"bridge": ("spec", "mask"), "digits": ("audio", "image")}
_STAGE_TASKS = {"bridge": {"multimodal": "multimodal", "supervised": "multimodal"},
                "digits": {"multimodal": "avdigits", "audio": "audio_ae", "image": "image_ae"}}


class MLDWorkflow(_AudioWorkflow):
    """Multimodal latent diffusion: one denoiser over the latents of frozen first stages with a
    timestep per modality, for the bridge (vibration ↔ crack masks) or the digits (spoken ↔ written)."""

    task: Literal["mld"] = "mld"
    default_model: ClassVar[str] = "mld_mlp"
    data: MLDDataConfig = Field(default_factory=MLDDataConfig)
    digits: DigitsConfig = Field(default_factory=lambda: DigitsConfig(pairs_per_clip=4))
    audio: AudioConfig = Field(default_factory=lambda: AudioConfig(**DIGIT_AUDIO))
    """Digits: the clips' length and rate (as the audio-visual workflow's)."""
    features: FeatureConfig = Field(default_factory=lambda: FeatureConfig(**DIGIT_FEATURES))
    first_stage: FirstStageConfig = Field(default_factory=FirstStageConfig)
    vibration: VibrationConfig = Field(default_factory=VibrationConfig)
    """Bridge: the keys set here to other values than the defaults (``-o vibration.window_s=5``) replace both first
    stages' own: the diffusion pairs their codes of the same windows."""
    diffusion: MLDDiffusionConfig = Field(default_factory=MLDDiffusionConfig)
    model: _model_union("mld")  # type: ignore[valid-type]
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(
        max_epochs=100, batch_size=256, lr=1e-3, weight_decay=0.0, scheduler="cosine", gradient_clip=1.0,
        ema_decay=0.999, keep_weights="last"))
    sampling: MLDSamplingConfig = Field(default_factory=MLDSamplingConfig)
    evaluate: MLDEvalConfig = Field(default_factory=MLDEvalConfig)

    @model_validator(mode="after")
    def _check_mld(self) -> "MLDWorkflow":
        keys = set(self.first_stage.stages)
        allowed = [{"multimodal"}] + ([set(MLD_MODALITIES["digits"])] if self.data.kind == "digits" else
                                      [{"multimodal", "supervised"}])
        if not keys and not self.first_stage.run:
            raise ValueError("first_stage: give the first stages' configs (first_stage.stages) or a trained "
                             "first stage (first_stage.run)")
        if keys and keys not in allowed:
            raise ValueError(f"first_stage.stages: {self.data.kind} data take the keys "
                             f"{' or '.join(str(sorted(a)) for a in allowed)}, got {sorted(keys)}")
        if set(self.vibration_given()) - ({"span_m"} if self.data.kind == "bridge" else set()) and (  # the span
                self.data.kind != "bridge" or not keys or self.first_stage.run):  # (evaluation's: any first stage)
            raise ValueError("vibration: sets the vibration windows of the bridge's first stages trained in this run"
                             + (f"; this run reads {self.data.kind}" if self.data.kind != "bridge" else
                                " (first_stage.run reuses trained ones, with theirs)"))
        for key in sorted(keys):
            if (task := self.stage_config(key).task) != (want := _STAGE_TASKS[self.data.kind][key]):
                raise ValueError(f"first_stage.stages.{key}: a {task!r} config, expected {want!r}")
        if keys == {"multimodal", "supervised"}:  # both code the same windows
            a, b = (self.stage_config(k).vibration.model_dump() for k in ("multimodal", "supervised"))
            if differ := [k for k in a if a[k] != b[k]]:
                raise ValueError("first_stage.stages: the multimodal and supervised stages read the vibration "
                                 "differently (" + "; ".join(f"vibration.{k}: {a[k]!r} and {b[k]!r}" for k in differ)
                                 + "), and the diffusion pairs their codes of the same windows: set it once for both, "
                                 + " ".join(f"-o vibration.{k}=..." for k in differ))
        if "supervised" in keys and not ((m := self.stage_config("supervised").model).name == "spec2mask"
                                         and m.mask_stage):
            raise ValueError("first_stage.stages.supervised: a spec2mask network with model.mask_stage: true (its "
                             "bottleneck holds the masks and conditions the diffusion)")
        for field, key in (("recorded", "audio"), ("written", "image")):
            if getattr(self.first_stage, field).copies and key not in keys:
                raise ValueError(f"first_stage.{field}: {field} copies train a digits {key} stage "
                                 f"(first_stage.stages.{key}); this config trains none")
        if self.sampling.steps > self.diffusion.train_timesteps:
            raise ValueError(f"sampling.steps ({self.sampling.steps}) is more than diffusion.train_timesteps "
                             f"({self.diffusion.train_timesteps})")
        if problem := guidance_problem(self.sampling.guidance, self.modalities):
            raise ValueError(f"sampling.guidance: {self.data.kind} data: {problem}")
        return self

    @property
    def modalities(self) -> tuple[str, ...]:
        return MLD_MODALITIES[self.data.kind]

    def vibration_given(self) -> dict:
        """The ``vibration`` keys given: those the stages take, whatever their value (``-o vibration.resample_to=null``
        was passed over, the default's value, and the stages resampled to their 100 Hz); of a saved config, which
        lists every key (the defaults too, which would replace the stages' own), those that differ from the
        defaults."""
        given, values = self.vibration.model_fields_set, self.vibration.model_dump()
        if given == set(VibrationConfig.model_fields):
            default = VibrationConfig().model_dump()
            given = {k for k, v in values.items() if v != default[k]}
        return {k: v for k, v in values.items() if k in given}

    def stage_raw(self, key: str) -> dict:
        """A first stage's raw config with this config's data sections and seed applied."""
        raw = {**self.first_stage.stages[key]}
        d = self.data.model_dump(exclude={"kind"})
        # the stages train with this config's seed and (unless they set theirs) its torch threads, accelerator,
        # precision and progress bar (``--accelerator gpu --precision bf16-mixed`` reach the first stages too)
        threads = {} if self.train.num_threads is None else {"num_threads": self.train.num_threads}
        hardware = {"accelerator": self.train.accelerator, "precision": self.train.precision,
                    **({} if self.train.progress_bar else {"progress_bar": False})}
        seed = {**threads, **hardware, **raw.get("train", {}), "seed": self.train.seed}
        if self.data.kind == "bridge":
            vib = self.vibration_given()
            return {**raw, "data": d, "train": seed, **({"vibration": {**raw.get("vibration", {}), **vib}} if vib
                                                         else {})}
        audio, feats = self.audio.model_dump(), self.features.model_dump()
        say_replaced(key, raw, audio=audio, features=feats)
        dg = self.digits
        if key == "multimodal":
            return {**raw, "digits": dg.model_dump(), "data": {"val_fraction": d["val_fraction"]}, "audio": audio,
                    "features": feats, "train": seed}
        if key == "audio":
            data = {**raw.get("data", {}), "val_fraction": d["val_fraction"],
                    "train_dir": f"{dg.fsdd_root}/recordings" if dg.fsdd_root else None}
            return {**raw, "audio": audio, "features": feats, "data": data, "train": seed}
        return {**raw, "data": {**raw.get("data", {}), "root": dg.mnist_root, "val_fraction": d["val_fraction"]},
                "train": seed}

    def stage_config(self, key: str) -> Workflow:
        try:
            return validate(self.stage_raw(key), f"first_stage.stages.{key}")
        except ConfigError as e:
            raise ValueError(str(e)) from None

    def stage_latent_dims(self) -> list[int]:
        """Each modality's latent size, from the first stages' configs (32 each without them)."""
        if not self.first_stage.stages:
            return [32] * len(self.modalities)
        out = []
        for m in self.modalities:
            model = self.stage_config("multimodal" if "multimodal" in self.first_stage.stages else m).model
            out.append(int(model.latent_dim) + int(getattr(model, "private_dim", 0)))
        if "supervised" in self.first_stage.stages:  # (vibration + its supervised code, the supervised mask code)
            d = int(self.stage_config("supervised").model.latent_dim)
            out = [out[0] + d, d]
        return out

    def process_config(self) -> dict[str, Any]:
        d = self.diffusion
        return {"schedule": d.schedule, "prediction": d.prediction, "train_timesteps": d.train_timesteps,
                "beta_start": d.beta_start, "beta_end": d.beta_end, "clip_sample": d.clip_sample}

    def model_data(self, latent_dims) -> dict[str, Any]:
        d = self.diffusion
        return {"modalities": list(self.modalities), "latent_dims": [int(x) for x in latent_dims],
                "process": self.process_config(), "condition_share": d.condition_share if d.conditional else 0.0,
                "null_share": d.label_dropout, **({"standardise": True} if d.standardise else {})}

    def transform_spec(self, **data: Any):
        if self.data.kind == "digits":
            return self.audio_transform(clip="centre", standardize=True)
        return self.stage_config("multimodal").transform_spec(**data)

    def example_data(self) -> dict[str, Any]:
        return self.model_data(self.stage_latent_dims())


_CLASSIFIER_DEFAULTS: dict[str, dict] = {
    "mnist_classifier": {"train": {"max_epochs": 12}, "classifier": {"augment": {"kind": "mnist"}}},
    "fsdd_classifier": {"train": {"max_epochs": 16}, "classifier": {"augment": {"kind": "fsdd"}}},
}


class ClassifierWorkflow(_AudioWorkflow):
    """The digit classifiers that judge generated samples (``classifier train mnist|fsdd``)."""

    task: Literal["classifier"] = "classifier"
    default_model: ClassVar[str] = "mnist_classifier"
    data: ClassifierDataConfig = Field(default_factory=ClassifierDataConfig)
    audio: AudioConfig = Field(default_factory=lambda: AudioConfig(**DIGIT_AUDIO))
    """FSDD only: the clips the log-mel features are computed from."""
    features: FeatureConfig = Field(default_factory=lambda: FeatureConfig(**DIGIT_FEATURES))
    """FSDD only: must equal the features of the models it judges."""
    model: _model_union("classifier")  # type: ignore[valid-type]
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(
        max_epochs=12, batch_size=128, lr=3e-3, weight_decay=1e-4, scheduler="onecycle", gradient_clip=None,
        keep_weights="last"))
    classifier: ClassifierSettings = Field(default_factory=ClassifierSettings)

    @classmethod
    def section_defaults(cls, data: dict) -> dict:
        """The workflow's, under those of the classifier's kind (its epochs, its augmentation)."""
        model = data.get("model")
        name = model.get("name", cls.default_model) if isinstance(model, dict) else cls.default_model
        kind = _CLASSIFIER_DEFAULTS.get(name, {})
        return deep_merge(super().section_defaults({**kind, **data}), kind)  # (its sections given in part too)

    @model_validator(mode="after")
    def _check(self):  # replaces the audio check: only FSDD classifiers read audio
        kind = REGISTRY[self.model.name].kind
        if self.classifier.augment.kind != kind:
            raise ValueError(f"classifier.augment: {self.classifier.augment.kind} augmentation for a {kind} classifier")
        if kind == "fsdd":
            self._check_features()
        return self

    @property
    def kind(self) -> str:
        return REGISTRY[self.model.name].kind

    def transform_spec(self, **data: Any):
        if self.kind == "fsdd":
            return self.audio_transform(clip="centre", standardize=False)
        return ImageTransform()

    def example_data(self) -> dict[str, Any]:
        if self.kind == "fsdd":
            return {"n_mels": self.feature_shape[1], "n_frames": self.n_frames}
        return {}


class SpatialWorkflow(Workflow):
    """Coordinate-conditioned enhancement of spatial maps (denoising, inpainting, 2x upscaling)."""

    task: Literal["spatial"] = "spatial"
    default_model: ClassVar[str] = "spatial_cvae"
    data: SpatialDataConfig = Field(default_factory=SpatialDataConfig)
    patches: PatchConfig = Field(default_factory=PatchConfig)
    losses: SpatialLossWeights = Field(default_factory=SpatialLossWeights)
    model: _model_union("spatial")  # type: ignore[valid-type]
    beta: BetaConfig = Field(default_factory=lambda: BetaConfig(schedule="sine", start=0.0, value=0.05,
                                                                cycle_steps=1000))

    @model_validator(mode="after")
    def _check(self) -> "SpatialWorkflow":
        p = self.patches
        if p.size % 2:
            raise ValueError(f"patches.size must be even (the latent grid is half the patch), got {p.size}")
        if 2 * p.overlap >= p.size:
            raise ValueError(f"patches.overlap ({p.overlap}) must be below half of patches.size ({p.size})")
        if p.denoise + p.inpaint + p.upscale <= 0:
            raise ValueError("patches: denoise, inpaint and upscale frequencies are all 0")
        lo, hi = p.hide_fraction
        if not 0 <= lo <= hi < 1:
            raise ValueError(f"patches.hide_fraction must be 0 <= low <= high < 1, got {p.hide_fraction}")
        return self

    def transform_spec(self, *, n_channels: int | None = None, center=None, scale=None, lower=None, upper=None,
                       mz=None, labels=None, normalized_over=None, **data: Any) -> SpatialTransform:
        """The saved input path; without the data's statistics (checks), the identity normalisation."""
        n = int(n_channels or (len(mz) if mz else len(self.data.mz) if self.data.mz else 20))
        d = self.data
        return SpatialTransform(
            channels=n, mz=list(mz) if mz is not None else d.mz, labels=list(labels or []), tolerance=d.tolerance,
            tolerance_unit=d.tolerance_unit, normalization=d.normalization, normalized_over=normalized_over,
            center=list(center) if center is not None else [0.0] * n,
            scale=list(scale) if scale is not None else [1.0] * n,
            lower=list(lower) if lower is not None else [-1e4] * n,
            upper=list(upper) if upper is not None else [1e4] * n,
            patch_size=self.patches.size, overlap=self.patches.overlap)

    def example_data(self) -> dict[str, Any]:
        return {"n_channels": len(self.data.mz) if self.data.mz else 20, "patch_size": self.patches.size,
                "loss_weights": self.losses.model_dump()}


WORKFLOWS: dict[str, type[Workflow]] = {w.model_fields["task"].default: w for w in (
    AnomalyWorkflow, AudioAEWorkflow, ImageAEWorkflow, MultimodalWorkflow, AVDigitsWorkflow, ClassifierWorkflow,
    DiffusionWorkflow, MLDWorkflow,
    SpatialWorkflow)}

Config = Annotated[Union[tuple(WORKFLOWS.values())], Field(discriminator="task")]
_ADAPTER: TypeAdapter = TypeAdapter(Config)
_TAGS, _ROOTS = set(WORKFLOWS) | set(REGISTRY) | {"mnist", "fsdd"}, tuple(WORKFLOWS.values())


def validate(raw: dict, source: str = "config") -> Workflow:
    """A raw (resolved) config dict → its workflow config; ``task`` defaults to ``anomaly``."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a config must be a mapping of sections, got {type(raw).__name__}")
    raw = {"task": "anomaly", **raw}
    if raw["task"] not in WORKFLOWS:
        raise ConfigError(f"{source}: invalid config: 'task': {raw['task']!r} is not one of {sorted(WORKFLOWS)}")
    try:
        return _ADAPTER.validate_python(raw)
    except ValidationError as e:
        hint = model_key_hint(e, models_for_task(raw["task"]))
        raise ConfigError(format_validation_error(e, source, _TAGS, _ROOTS) + hint,
                          problems=validation_problems(e, _TAGS, _ROOTS) + hint) from None


def load_config(path=None, overrides: list[str] | None = None, *, sets: dict[str, Any] | None = None) -> Workflow:
    """A preset (composed, see :mod:`latentbridge.config.loading`; the defaults when ``path`` is None)
    with ``key.sub=value`` overrides applied. Values are YAML, except for plain string fields (paths,
    names), which take the text as written (``-o data.root=2024`` is the folder ``2024``; an empty
    value unsets it). ``sets`` maps dotted keys to values taken as they are (command-line
    arguments); they win over the overrides."""
    from latentbridge.config.loading import apply_sets, expand_home, key_source, parse_override, preset_path, set_path

    path = None if path is None else preset_path(path)
    raw = load_raw(path) if path is not None else {}
    if path is not None and not raw:  # it became the anomaly defaults, refused later for a data folder it never named
        raise ConfigError(f"{path}: an empty config (no task, no section)")
    if path is not None and "task" in (sets or {}) and raw.get("task", sets["task"]) != sets["task"]:
        raise ConfigError(f"{path}: a preset for task {raw['task']!r} (`latentbridge train --config {path}`); this "
                          f"command takes {sets['task']!r} presets (its keys were read as another task's)")
    overridden = {".".join(parse_override(t)[0]) for t in overrides or []}  # the command line's, with sets
    raw = apply_sets(apply_overrides(raw, overrides), sets, overridden, path)
    workflow = WORKFLOWS.get(raw.get("task", "anomaly"))
    if workflow is not None:
        for text in overrides or []:
            (parts, _), value = parse_override(text), text.split("=", 1)[1]
            if is_text_field(workflow, parts, value) and ".".join(parts) not in (sets or {}):
                if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":  # quoted inside the shell's
                    value = value[1:-1]  # quotes ('data.root="sp ace"'): the quotes were kept in the path
                set_path(raw, parts, value if value.strip() else None, text)
    source = str(path) if path is not None else "defaults"
    if overrides:
        source += " with overrides " + " ".join(overrides)
    try:
        return validate(expand_home(raw, args=set(sets or ())), source)
    except ConfigError as e:  # an unknown key a preset it builds on writes: named there (blamed on the child)
        found = [(k, q) for k in re.findall(r"unknown key '([^']+)'", e.problems or "") if path is not None
                 and (q := key_source(path, k)) is not None and q.resolve() != Path(path).resolve()]
        if not found:
            raise
        said = "; ".join(f"'{k}' is written in {q}, a preset it builds on" for k, q in found)
        raise ConfigError(f"{e} ({said})", problems=f"{e.problems} ({said})") from None


def transform_spec(cfg: Workflow, **data: Any):
    """The saved preprocessing description of a model trained by ``cfg`` (``data``: what only the
    data knows, e.g. the vibration sample rate and channel count)."""
    return cfg.transform_spec(**data)


def config_to_dict(cfg: Workflow) -> dict:
    return cfg.model_dump(mode="json")


def dump_yaml(cfg: Workflow, surveyed: bool = False) -> str:
    """``cfg`` as YAML. ``surveyed`` (``latentbridge config``): for an anomaly detector with ``audio.auto``, the audio
    and feature keys it does not set are left out, with a comment saying so: the survey of the data chooses them at
    fit, and written out they are set, so a fit from the printed config chose nothing (another rate and n_fft than
    the same fit without it)."""
    from latentbridge.config.loading import dump_yaml_dict

    raw = config_to_dict(cfg)
    audio = getattr(cfg, "audio", None)
    if not (surveyed and cfg.task == "anomaly" and getattr(audio, "auto", False)):  # (only `anomaly fit` surveys)
        return dump_yaml_dict(raw)
    for name in ("audio", "features"):
        given = getattr(cfg, name).model_fields_set | ({"auto"} if name == "audio" else set())
        raw[name] = {k: v for k, v in raw[name].items() if k in given}
    return ("# audio.auto: the audio and feature settings not given here are chosen from the data by `anomaly fit` (it "
            "says which and why)\n" + dump_yaml_dict(raw))
