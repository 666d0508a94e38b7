"""Typed configuration: pydantic models, YAML presets, dotted ``key.sub=value`` overrides.

Unknown keys are rejected by name, wrong types are reported with the dotted key that holds them,
and the resolved config is what every run folder saves beside its results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from latentbridge.errors import ConfigError



class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Section):
    root: str | None = None
    """Multimodal data root in the layout ``Data/Test_XX/*.csv`` + ``Labels/Test_XX/*.png``."""
    test_fraction: float = Field(0.25, ge=0.0, lt=1.0)
    """Multimodal: share of damage states (tests) held out for evaluation."""
    test_ids: list[str] | None = None
    """Multimodal: explicit held-out test ids (overrides ``test_fraction``)."""
    train_dir: str | None = None
    """Folder (or file) of normal recordings used for training."""
    test_dir: str | None = None
    """Folder of test recordings for ``evaluate`` (labels from ``normal``/``anomalous`` folders)."""
    cache_dir: str | None = None
    """Where feature caches (``.npy``) go; default: ``$LATENTBRIDGE_CACHE`` or ``~/.cache/latentbridge/features``."""
    val_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    """Share of normal files held out for validation and threshold calibration."""
    skip_bad_files: bool = False
    """Skip unreadable or invalid files with a warning instead of stopping."""
    limit: int | None = Field(None, gt=0)
    """audio_ae / image_ae: use at most this many recordings (or training images), a seeded random subset."""
    stems: list[str] | None = None
    """audio_ae: ``data.train_dir`` is a MUSDB-style root (``<track>/<stem>.wav``); train on these stems."""


class AudioConfig(Section):
    sample_rate: int = Field(16000, gt=0)
    window_s: float = Field(2.0, gt=0)
    hop_s: float = Field(1.0, gt=0)
    channel: int | None = None
    """Pick one channel; ``None`` averages all channels to mono."""
    pad: Literal["wrap", "constant", "reflect"] = "wrap"
    """How a recording shorter than one window is filled up."""

    @property
    def window_samples(self) -> int:
        return int(round(self.window_s * self.sample_rate))

    @property
    def hop_samples(self) -> int:
        return max(1, int(round(self.hop_s * self.sample_rate)))


class FeatureConfig(Section):
    kind: Literal["stft", "mel"] = "mel"
    n_fft: int = Field(1024, gt=0)
    hop_length: int = Field(512, gt=0)
    win_length: int | None = None
    window: Literal["hann"] = "hann"
    center: bool = True
    n_mels: int = Field(64, gt=0)
    fmin: float = Field(0.0, ge=0)
    fmax: float | None = None
    scale: Literal["linear", "db", "log"] = "db"
    amin: float = Field(1e-5, gt=0)
    top_db: float | None = None
    normalize: Literal["none", "minmax"] = "none"
    power: float = Field(1.0, gt=0)
    n_frames: int | None = None
    standardize: bool = True
    """Per-frequency mean/std from the training windows, stored in the model (after ``normalize``)."""


class VibrationConfig(Section):
    """Multichannel vibration windows and their STFT (multimodal task)."""

    sample_rate: float | None = None
    """Hz; None: from the CSV time column (required when the CSVs have none)."""
    resample_to: float | None = None
    """Resample every recording to this rate (Hz) before windowing."""
    channels: list[int] | None = None
    """Sensor columns to use (0-based, time column excluded); None: all."""
    window_s: float = Field(10.0, gt=0)
    hop_s: float = Field(5.0, gt=0)
    n_fft: int = Field(128, gt=0)
    hop_length: int = Field(32, gt=0)
    mask_height: int = Field(32, gt=0)
    mask_width: int = Field(96, gt=0)
    mask_threshold: float = Field(0.5, gt=0, lt=1)
    """A mask pixel is 'crack' when its grey level (0-1) is above this."""
    mask_coverage: float = Field(0.25, gt=0, le=1)
    """After resizing, an output pixel is 'crack' when at least this share of its area is crack
    (below 0.5 so that cracks thinner than one output pixel survive downsampling)."""


class AugmentConfig(Section):
    """Training-only augmentations (multimodal task); probabilities per sample."""

    spec_time_masks: int = Field(0, ge=0)
    spec_time_width: int = Field(8, ge=1)
    spec_freq_masks: int = Field(0, ge=0)
    spec_freq_width: int = Field(8, ge=1)
    pink_noise_p: float = Field(0.0, ge=0, le=1)
    pink_noise_snr_db: float = 20.0
    sign_flip_p: float = Field(0.0, ge=0, le=1)
    time_shift_p: float = Field(0.0, ge=0, le=1)
    time_shift_max_s: float = Field(1.0, ge=0)


class DigitsConfig(Section):
    """Audio-visual digits (task ``avdigits``): FSDD clips paired with MNIST images of the same digit."""

    fsdd_root: str | None = None
    """Folder holding ``recordings/*.wav`` (or where to download FSDD to, with ``download``)."""
    mnist_root: str | None = None
    """Folder holding the MNIST ``*-ubyte.gz`` files (or where to download them to)."""
    download: bool = False
    pairs_per_clip: int = Field(1, ge=1)
    redraw_images: bool = False
    """Training: draw each clip's image afresh, every time the clip is used, among all the training
    images of its digit (the pairing is by digit only, so fixed pairs are a needless constraint
    the model can memorise); validation and test keep their fixed seeded pairs."""
    limit_train_clips: int | None = Field(None, gt=0)
    """Use only this many training clips (quick runs and tests)."""
    limit_test_clips: int | None = Field(None, gt=0)


class LossWeights(Section):
    """Weights of the multimodal reconstruction losses (0 switches a term off)."""

    magnitude_l1: float = Field(1.0, ge=0)
    phase_gradient: float = Field(0.1, ge=0)
    phase_laplacian: float = Field(0.05, ge=0)
    waveform_l1: float = Field(0.0, ge=0)
    waveform_si_l1: float = Field(0.1, ge=0)
    mrstft: float = Field(0.1, ge=0)
    mask_dice: float = Field(1.0, ge=0)
    mask_bce: float = Field(1.0, ge=0)
    mask_focal: float = Field(0.0, ge=0)
    focal_gamma: float = Field(2.0, ge=0)
    damage: float = Field(1.0, ge=0)
    """Damage-extent head (global mask mean), on samples that have a mask."""
    audio: float = Field(1.0, ge=0)
    """Audio-visual model: spectrogram reconstruction (L1 + ``audio_mse`` x MSE on standardised log-mel)."""
    audio_mse: float = Field(1.0, ge=0)
    """Audio-visual model: weight of the squared error next to the L1 error of the spectrogram. The
    L1 optimum is the conditional median, the MSE one the mean: a spectrogram generated from an
    image (where only the digit is known) is the median voice with ``audio_mse=0``, a blur of
    all voices with a large one."""
    image: float = Field(1.0, ge=0)
    """Audio-visual model: image reconstruction (binary cross-entropy)."""
    cross: float = Field(1.0, ge=0)
    """Audio-visual model: extra factor on a modality reconstructed from the other modality's
    posterior alone (the cross-modal terms of MoE / MoPoE / mmJSD)."""


class ModelConfig(Section):
    name: Literal["conv_vae", "conv_ae", "dense_ae", "mmvae", "spec2mask", "avmvae",
                  "mel_ae", "mel_vae", "image_dense_ae", "image_conv_ae"] = "conv_vae"
    fusion: Literal["poe", "moe", "mopoe", "jsd"] = "jsd"
    """Multimodal fusion: product, mixture, mixture of products of experts, Jensen-Shannon (mmJSD)."""
    mask_channels: list[int] = Field(default_factory=lambda: [16, 32, 64])
    image_channels: list[int] = Field(default_factory=lambda: [32, 64])
    latent_dim: int = Field(16, gt=0)
    private_dim: int = Field(0, ge=0)
    bridge_neighbours: int = Field(15, ge=1)
    """Audio-visual VAE: neighbours whose partners the latent bridge chooses among (route ``bridge``)."""
    """Audio-visual VAE: size of each modality's private latent (MMVAE+; 0 = shared latent only)."""
    channels: list[int] = Field(default_factory=lambda: [16, 32, 64, 64])
    kernel_size: int = Field(3, gt=0)
    hidden_dims: list[int] = Field(default_factory=lambda: [128, 128, 128, 128])
    """Dense autoencoder hidden layers (DCASE 2020 Task 2 baseline: 4 x 128, bottleneck 8)."""
    context_frames: int = Field(5, gt=0)
    """Dense autoencoder: consecutive frames stacked into one input vector."""
    learn_sigma: bool = True
    """VAE: learn the decoder's Gaussian noise scale (calibrated decoder) instead of fixing it."""
    sigma: float = Field(1.0, gt=0)
    output_activation: Literal["none", "sigmoid"] = "none"
    dropout: float = Field(0.1, ge=0, lt=1)
    """Autoencoders (mel_ae, mel_vae, image_*): dropout in the bottleneck."""
    res_blocks: int = Field(1, ge=0)
    """Mel autoencoders: residual blocks after each down-/up-sampling stage."""


class BetaConfig(Section):
    schedule: Literal["constant", "linear", "cyclical"] = "linear"
    value: float = Field(1.0, ge=0)
    start: float = Field(0.0, ge=0)
    warmup_steps: int = Field(200, ge=0)
    cycle_steps: int = Field(400, gt=0)
    ratio: float = Field(0.5, gt=0, le=1)
    """Cyclical: share of each cycle spent rising to ``value``."""


class TrainConfig(Section):
    seed: int = 0
    max_epochs: int = Field(30, gt=0)
    max_steps: int = -1
    batch_size: int = Field(32, gt=0)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    gradient_clip: float | None = 5.0
    num_workers: int = Field(0, ge=0)
    num_threads: int | None = Field(None, gt=0)
    """torch intra-op threads (``torch.set_num_threads``); None keeps torch's default."""
    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    precision: str = "32-true"
    log_every_n_steps: int = Field(5, gt=0)
    progress_bar: bool = True
    early_stopping_patience: int | None = None


class AnomalyConfig(Section):
    score: Literal["mse", "frame_max", "elbo", "iwae"] = "mse"
    iwae_samples: int = Field(32, gt=0)
    threshold_method: Literal["mean_std", "quantile"] = "mean_std"
    k: float = 2.0
    false_alarm_rate: float = Field(0.01, gt=0, lt=1)
    aggregate: Literal["mean", "max"] = "mean"
    """How window scores become one score per file."""


class Config(Section):
    task: Literal["anomaly", "multimodal", "avdigits", "audio_ae", "image_ae"] = "anomaly"
    description: str = ""
    data: DataConfig = Field(default_factory=DataConfig)
    audio: AudioConfig = Field(default_factory=AudioConfig)
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    beta: BetaConfig = Field(default_factory=BetaConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    anomaly: AnomalyConfig = Field(default_factory=AnomalyConfig)
    vibration: VibrationConfig = Field(default_factory=VibrationConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    losses: LossWeights = Field(default_factory=LossWeights)
    digits: DigitsConfig = Field(default_factory=DigitsConfig)

    @model_validator(mode="after")
    def _check(self) -> "Config":
        if self.task != "anomaly":
            return self
        if self.features.n_fft > self.audio.window_samples:
            raise ValueError(
                f"features.n_fft ({self.features.n_fft}) is longer than one window "
                f"(audio.window_s x audio.sample_rate = {self.audio.window_samples} samples)"
            )
        if self.features.fmax is not None and self.features.fmax > self.audio.sample_rate / 2:
            raise ValueError(
                f"features.fmax ({self.features.fmax}) is above Nyquist ({self.audio.sample_rate / 2})"
            )
        return self

    def transform_kwargs(self) -> dict[str, Any]:
        """Constructor arguments of :class:`~latentbridge.transforms.audio.SpectrogramTransform`."""
        f = self.features
        return dict(
            sample_rate=self.audio.sample_rate, n_fft=f.n_fft, hop_length=f.hop_length,
            win_length=f.win_length, window=f.window, center=f.center, kind=f.kind,
            n_mels=f.n_mels, fmin=f.fmin, fmax=f.fmax, scale=f.scale, amin=f.amin,
            top_db=f.top_db, normalize=f.normalize, n_frames=self.n_frames, power=f.power,
        )

    @property
    def n_frames(self) -> int:
        """Frames per window: the configured count, or what one window yields."""
        f = self.features
        if f.n_frames is not None:
            return f.n_frames
        n = self.audio.window_samples
        return 1 + n // f.hop_length if f.center else 1 + (n - f.n_fft) // f.hop_length


# ----------------------------------------------------------------------------- loading


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"unknown key '{key}'")
        else:
            lines.append(f"'{key}': {e['msg']} (got {e.get('input')!r})")
    return f"{source}: invalid config: " + "; ".join(lines)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.max_epochs=3"`` → (["train", "max_epochs"], 3); values are parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override '{text}': expected key.sub=value")
    key, value = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{text}': empty key")
    try:
        parsed = yaml.safe_load(value) if value.strip() != "" else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override '{text}': cannot parse value ({e})") from None
    return key.split("."), parsed


def apply_overrides(raw: dict, overrides: list[str] | None) -> dict:
    """Apply dotted overrides to a raw config dict (a copy); unknown keys surface at validation."""
    import copy

    out = copy.deepcopy(raw)
    for text in overrides or []:
        parts, value = parse_override(text)
        node = out
        for p in parts[:-1]:
            nxt = node.get(p)
            if nxt is None:
                nxt = node[p] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"override '{text}': '{p}' is not a section")
            node = nxt
        node[parts[-1]] = value
    return out


def load_raw(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections, got {type(raw).__name__}")
    return raw


def validate(raw: dict, source: str = "config") -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e, source)) from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config (or the defaults when ``path`` is None) and apply overrides."""
    raw = load_raw(path) if path is not None else {}
    raw = apply_overrides(raw, overrides)
    source = str(path) if path is not None else "defaults"
    if overrides:
        source += " with overrides " + " ".join(overrides)
    return validate(raw, source)


def config_to_dict(cfg: Config) -> dict:
    return cfg.model_dump(mode="json")


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
