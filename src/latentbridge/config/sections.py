"""Config sections shared by the workflows: plain pydantic models, no torch.

Every section forbids unknown keys, so a typo is an error that names the key. The sections are
the low layer of the configuration: data readers, transforms and models import them; the
per-workflow schemas that combine them (and that know every model) live in
:mod:`latentbridge.config.workflows`.
"""

from __future__ import annotations

import math
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from latentbridge.utils import MAX_SEED


def _takes_bool(annotation) -> bool:
    """Whether a field's type admits true/false (``bool``, ``Any``, a union or ``Literal`` holding one)."""
    if annotation is bool or annotation is Any:
        return True
    return any(isinstance(a, bool) or _takes_bool(a) for a in get_args(annotation))


#: the largest whole number a config takes (2**53: counts, sizes and seeds far below it; floats hold it exactly)
MAX_INT = 2 ** 53


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @model_validator(mode="before")
    @classmethod
    def _no_yes_no_as_number(cls, data):
        """true/false (YAML also reads yes/no/on/off so) where a number belongs: pydantic took them as 1 and 0
        (``train.max_epochs=true`` trained one epoch, ``batch_size: yes`` batches of one)."""
        if isinstance(data, dict):
            for name, value in data.items():
                field = cls.model_fields.get(name)
                if isinstance(value, bool) and field is not None and not _takes_bool(field.annotation):
                    if (keys := _section_keys(field.annotation)) is not None:  # (recorded=false: "not a number")
                        raise ValueError(f"{name}: {str(value).lower()} is a yes/no value, and {name} a section of "
                                         "settings" + (f" ({', '.join(keys)}): set those, e.g. -o ... {name}.{keys[0]}"
                                                       "=VALUE" if keys else ": set its keys one by one"))
                    raise ValueError(f"{name}: {str(value).lower()} is a yes/no value (YAML reads true/false, yes/no "
                                     "and on/off so), not a number")
                if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:  # (a batch size
                    # of 1e20 passed, then a traceback: islice, torch.zeros overflowing; max_epochs ran without end)
                    raise ValueError(f"{name}: {value} is too large (at most {MAX_INT})")
                if field is not None and field.annotation in (float, float | None) and not _finite(value):
                    # (train.lr: .inf trained NaNs to a traceback; "inf", a word to YAML, passed `config` as one)
                    raise ValueError(f"{name}: must be a finite number, got {value}")
        return data


def _finite(value) -> bool:
    """Whether ``value`` is no float, or one pydantic would read (``"inf"``, ``"nan"`` as text too), finite."""
    try:
        return not isinstance(value, (float, str)) or math.isfinite(float(value))
    except ValueError:  # (a word: pydantic names it)
        return True


def _section_keys(annotation) -> list[str] | None:
    """The keys of the section of settings a field holds; [] for a mapping whose keys vary (a union of sections, a
    dict: a model by its name, the stages); None for a field that is no section."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    if annotation is dict or getattr(annotation, "__origin__", None) is dict:
        return []
    found = [k for a in get_args(annotation) if (k := _section_keys(a)) is not None]
    return found[0] if len(found) == 1 else [] if found else None


# ----------------------------------------------------------------------------- data


class AudioDataConfig(Section):
    """Folders of recordings (anomaly detection)."""

    train_dir: str | list[str] | None = None
    """Folder (or file) of the recordings used for training, or a list of them (``anomaly fit DIR1 DIR2 ...``)."""
    test_dir: str | None = None
    """Folder of test recordings for ``evaluate`` (labels from ``normal``/``anomalous`` folders)."""
    cache_dir: str | None = None
    """Where feature caches (``.npy``) go; default: ``$LATENTBRIDGE_CACHE`` or ``~/.cache/latentbridge/features``."""
    val_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    """Share of windows held out for validation and calibration: whole files, or each file's end (data.holdout)."""
    skip_bad_files: bool = False
    """Skip unreadable or invalid files with a warning instead of stopping (``fit --skip-bad``)."""


class AudioAEDataConfig(AudioDataConfig):
    """Folders of recordings (mel autoencoders)."""

    limit: int | None = Field(None, gt=0)
    """Use at most this many recordings, a seeded random subset."""
    stems: list[str] | None = None
    """``train_dir`` is a MUSDB-style root (``<track>/<stem>.wav``); train on these stems."""


class BridgeDataConfig(Section):
    root: str | None = None
    """Data root in the layout ``Data/Test_XX/*.csv`` + ``Labels/Test_XX/*.png``."""
    test_fraction: float = Field(0.25, ge=0.0, lt=1.0)
    """Share of damage states (tests) held out for evaluation."""
    test_ids: list[str] | None = None
    """Explicit held-out test ids (overrides ``test_fraction``)."""

    @field_validator("test_ids", mode="before")
    @classmethod
    def _names_as_text(cls, v):
        bad = [t for t in v if not isinstance(t, str)] if isinstance(v, list) else []
        if bad:  # YAML reads 007 as 7 and 2024-01-05 as a date: the folder's name is lost
            raise ValueError(f"{', '.join(map(repr, bad))}: not text; YAML read these test folder names as numbers "
                             "or dates, so quote them (e.g. data.test_ids=['007', '2024-01-05'])")
        return v
    val_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    """Share of the remaining states held out for validation (checkpoint selection)."""
    cache_dir: str | None = None


class PairedDataConfig(Section):
    val_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    """Share of training clips (with their pairs) held out for validation."""


class ClassifierDataConfig(Section):
    root: str | None = None
    """MNIST idx files / the FSDD folder holding ``recordings/``."""
    n_train: int | None = Field(None, gt=0)
    """Train on a seeded subset of this size (quick runs and tests)."""
    n_test: int | None = Field(None, gt=0)


class ImageDataConfig(Section):
    """Images for an image autoencoder or a diffusion model: MNIST (the named source) or a folder of
    PNG/JPEG/BMP/TIFF/WebP files (:func:`latentbridge.data.images.load_image_data`)."""

    source: Literal["mnist", "folder"] = "mnist"
    root: str | None = None
    """MNIST: the folder holding the ``*-ubyte.gz`` files; folder: the image folder."""
    image_size: int | None = Field(None, gt=0)
    """Side of the square images the model sees (resized); None: MNIST's 28, required for folders."""
    channels: Literal[1, 3] = 1
    """1: grey levels, 3: RGB (folder images are converted)."""
    limit: int | None = Field(None, gt=0)
    """Use at most this many training images, a seeded random subset."""
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    """Share of the training images held out (validation loss, reference of the per-epoch FD)."""
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    """Folders only: share of the images held out as the test (reference) set of ``evaluate``."""
    class_folders: bool = False
    """Folders only: each sub-folder of ``root`` is a class (its name, sorted order)."""
    conditions: str | None = None
    """Folders only: a CSV with a ``file`` column (paths relative to ``root``) and one numeric column
    per continuous condition (e.g. damage extent)."""
    resize: Literal["bilinear", "area"] = "area"
    """How images of another size are resampled to ``image_size`` (after ``fit``)."""
    fit: Literal["crop", "pad", "stretch"] = "crop"
    """Non-square images: their centre square, the whole image on a border of its edge colour, or squeezed."""

    @model_validator(mode="after")
    def _check_source(self) -> "ImageDataConfig":
        if self.source == "folder" and self.image_size is None:
            raise ValueError("data.image_size: required for a folder of images (the side images are resized to)")
        if self.source == "mnist" and (self.class_folders or self.conditions):
            raise ValueError("data.class_folders / data.conditions: only for data.source=folder (MNIST has labels)")
        if self.source == "mnist" and self.channels != 1:
            raise ValueError("data.channels: MNIST images have 1 channel")
        return self

    @property
    def image_shape(self) -> tuple[int, int, int]:
        side = self.image_size or 28
        return (self.channels, side, side)


# ----------------------------------------------------------------------------- signals


class AudioConfig(Section):
    sample_rate: int = Field(16000, gt=0)
    window_s: float = Field(2.0, gt=0)
    hop_s: float = Field(1.0, gt=0)
    channel: int | Literal["all"] | None = None
    """Pick one channel (0-based); ``None`` averages all channels to mono; ``all`` models every channel
    (the axes of a multi-axis sensor: features per channel; every recording must hold as many)."""
    pad: Literal["wrap", "constant", "reflect"] = "wrap"
    """How a recording shorter than one window is filled up."""
    trim_db: float | None = Field(None, gt=0)
    """Cut leading and trailing silence from files (frames more than this many dB below the loudest
    one) before windowing; None keeps recordings whole. Live streams are never trimmed."""
    min_window_share: float = Field(0.25, ge=0, le=1)
    """Refuse recordings shorter than this share of one window (0.25: a 2-s window needs 0.5 s);
    shorter ones would be mostly padding. A clip dataset padded with silence can go lower."""
    csv_rate: float | None = Field(None, gt=0)
    """The sample rate (Hz) of recordings given as vibration CSVs without a time column, or as MATLAB files without
    a rate scalar; the file's own wins (a conflict over 1 % is an error)."""
    columns: list[str] | None = None
    """The sensor columns of vibration CSVs by header name, in the model's order: set by ``anomaly fit`` from the
    training files' headers; recordings are read by them (``[]``: by position)."""
    auto: bool = True
    """``anomaly fit``: choose every audio and feature setting not set explicitly from a survey of the
    training files (rate, window, hop, FFT size, mel bands, padding, silence trimming)."""

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
    level_norm: bool = False
    """Remove each window's level (its mean dB) before the model, so a sensor's gain does not move the
    score; the level is kept as a score of its own (``anomaly.score: level``, part of ``combined``)."""


#: The spoken-digit features every digit model shares (8-kHz, 1-s clips → 64 x 128 dB log-mel), so
#: a generated spectrogram can be judged by the FSDD classifier without a trip through audio.
#: (min_window_share 0.1: FSDD holds 164 clips under 0.25 s, the shortest 0.14 s, which the MLD's audio stage dropped)
DIGIT_AUDIO = dict(sample_rate=8000, window_s=1.0, hop_s=1.0, pad="constant", min_window_share=0.1)
DIGIT_FEATURES = dict(kind="mel", n_fft=256, hop_length=64, n_mels=64, fmin=0.0, fmax=4000.0, scale="db",
                      amin=1e-5, n_frames=128)


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
    span_m: float | None = Field(None, gt=0)
    """Length of the structure the masks' width covers, in metres (crack localisation errors); None:
    the data root's ``manifest.json`` ``length_m`` when there is one, else 1 (fractions of the span)."""
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


class WindowShiftConfig(Section):
    """Training-only time shifts of feature windows (audio autoencoders; the features are computed once, so the shift
    moves frames): the frames moved in take the window's quietest value in each band, not a wrap-around."""

    time_shift_p: float = Field(0.0, ge=0, le=1)
    """Share of training windows shifted (0: none)."""
    time_shift_max: float = Field(0.5, gt=0, lt=1)
    """Largest shift either way, as a share of the window (it follows ``audio.window_s``)."""


class DigitsConfig(Section):
    """Audio-visual digits: spoken digits (FSDD, or one's own) paired with written ones (MNIST, or one's own) of the
    same digit."""

    fsdd_root: str | None = None
    """Folder holding ``recordings/*.wav`` (or where to download FSDD to, with ``download``), or recordings of one's
    own named as FSDD's or in class folders named by digit (:class:`~latentbridge.data.sources.FSDD`)."""
    mnist_root: str | None = None
    """Folder holding the MNIST ``*-ubyte.gz`` files (or where to download them to), or images of one's own in class
    folders named by digit (:class:`~latentbridge.data.sources.DigitImages`)."""
    download: bool = False
    pairs_per_clip: int = Field(1, ge=1)
    redraw_images: bool = False
    """Training: draw each clip's image afresh, every time the clip is used, among all the training
    images of its digit (the pairing is by digit only, so fixed pairs are a needless constraint
    the model can memorise); validation and test keep their fixed seeded pairs."""
    limit_train_clips: int | None = Field(None, gt=0)
    """Use only this many training clips (quick runs and tests)."""
    limit_test_clips: int | None = Field(None, gt=0)
    held_out_speakers: list[str] = Field(default_factory=list)
    """FSDD speakers left out of every split (training, validation, test): their recordings measure a
    voice the model never heard (``benchmarks/mld_unseen_voice.py --fsdd-speakers``)."""


# ----------------------------------------------------------------------------- losses


class BridgeLossWeights(Section):
    """Weights of the vibration/mask model's losses (0 switches a term off)."""

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


class AudioVisualLossWeights(Section):
    """Weights of the audio-visual model's losses."""

    audio: float = Field(1.0, ge=0)
    """Spectrogram reconstruction (L1 + ``audio_mse`` x MSE on standardised log-mel)."""
    audio_mse: float = Field(1.0, ge=0)
    """Weight of the squared error next to the L1 error of the spectrogram. The L1 optimum is the
    conditional median, the MSE one the mean: a spectrogram generated from an image (where only
    the digit is known) is the median voice with ``audio_mse=0``, a blur of all voices with a
    large one."""
    image: float = Field(1.0, ge=0)
    """Image reconstruction (binary cross-entropy)."""
    cross: float = Field(1.0, ge=0)
    """Extra factor on a modality reconstructed from the other modality's posterior alone (the
    cross-modal terms of MoE / MoPoE / mmJSD)."""


# ----------------------------------------------------------------------------- training


class BetaConfig(Section):
    schedule: Literal["constant", "linear", "cyclical", "sine"] = "linear"
    """``sine``: the smooth cyclical ramp ``start`` → ``value`` over ``cycle_steps``, back over the next
    ``cycle_steps`` (:func:`latentbridge.losses.beta_at`)."""
    value: float = Field(1.0, ge=0)
    """The KL weight, against the model's own reconstruction losses: the conv VAE of ``anomaly`` sums both over the
    elements and latent dimensions (1 is the ELBO); the multimodal, audio-visual and mel VAEs average their
    reconstruction losses over the elements and sum the KL over the latent dimensions, so 1 weighs the KL thousands
    of times more than the ELBO would (their presets: 0.001-0.01); the spatial CVAE averages both over the elements
    (1 is its ELBO per element)."""
    start: float = Field(0.0, ge=0)
    warmup_steps: int = Field(200, ge=0)
    cycle_steps: int = Field(400, gt=0)
    ratio: float = Field(0.5, gt=0, le=1)
    """Cyclical: share of each cycle spent rising to ``value``."""


def devices_value(value, choices: bool = True):
    """A number of devices (``train.devices``, ``--devices``), 1 to :data:`MAX_DEVICES`, as an int; with ``choices``
    also Lightning's ``auto`` and GPU indices (``0,1``), as given; None for anything else (0 and negatives reached
    Lightning as a traceback)."""
    text = str(value).strip()
    if choices and (text == "auto" or "," in text or text.startswith("[")):
        return value
    # (10**12 processes were an allocation that failed, said as too little memory for the recordings)
    return int(text) if text.isdigit() and 1 <= int(text) <= MAX_DEVICES else None


#: the most devices (processes) on one machine
MAX_DEVICES = 1024


def spawned_strategy(v) -> str | None:
    """What is wrong with a training strategy that spawns its processes (``ddp_spawn``, ``ddp_fork``,
    ``ddp_notebook``, with ``_find_unused_parameters_*``), or None: a spawned training's steps stay in its processes,
    the main one found none and saved no model, after all of training (scoring spawns well: `anomaly score --strategy
    ddp_spawn` is not ``train.strategy``)."""
    if isinstance(v, str) and v.split("_find")[0] in ("ddp_spawn", "ddp_fork", "ddp_notebook"):
        return (f"strategy {v!r} trains in processes whose model the command never gets back: use 'ddp' (the command "
                "started again in each process)")
    return None


#: precisions that hold the weights in half precision (Lightning's names)
HALF_WEIGHTS = ("bf16-true", "16-true", "transformer-engine", "transformer-engine-float16")


class TrainConfig(Section):
    seed: int = Field(0, ge=0, le=MAX_SEED)
    max_epochs: int = Field(30, gt=0)
    max_steps: int = -1
    """Stop after this many optimizer steps (-1: no limit; ``max_epochs`` stops it too)."""
    batch_size: int = Field(32, gt=0)
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    scheduler: Literal["cosine", "onecycle", "constant"] = "cosine"
    """Learning-rate schedule: cosine annealing per epoch down to ``min_lr_ratio`` x ``lr``, one-cycle
    per step (20 % warm-up), or constant."""
    min_lr_ratio: float = Field(0.05, ge=0, le=1)
    ema_decay: float | None = Field(None, gt=0, lt=1)
    """Keep an exponential moving average of the weights (e.g. 0.999): validation, the best
    checkpoint and the saved model use the averaged weights."""
    gradient_clip: float | None = Field(5.0, gt=0)
    """Clip the gradients' norm to this (null: no clipping; 0 and negatives were no clipping, without a word)."""
    num_workers: int = Field(0, ge=0)
    decode_workers: int | None = Field(None, ge=0)
    """Recordings decoded at once before training (``--workers``; None: one per core, at most 4; 0: in this thread)."""
    num_threads: int | Literal["all"] | None = None
    """torch intra-op threads (``torch.set_num_threads``): a count, ``all`` (every core,
    ``os.cpu_count()``), or None for torch's default (the CLI's: all cores but one unless
    ``OMP_NUM_THREADS`` is set)."""
    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    precision: str = "32-true"
    log_every_n_steps: int = Field(5, gt=0)
    progress_bar: bool = True
    early_stopping_patience: int | None = Field(None, gt=0)
    """Stop after this many epochs without a better validation loss (null: never; 0 was never, -1 one epoch)."""
    keep_weights: Literal["best", "last"] = "best"
    """The weights the model folder keeps: the best validation epoch's, or the last epoch's."""
    checkpoint_every_n_steps: int | None = Field(None, gt=0)
    """Also rewrite ``checkpoints/last.ckpt`` every this many training steps (long epochs);
    it is always rewritten at the end of every epoch."""

    @field_validator("max_steps")
    @classmethod
    def _max_steps(cls, v):  # (-5 was refused as a hardware setting after the data was read, 0 as too little data)
        if v < 1 and v != -1:
            raise ValueError(f"max_steps must be a positive count of optimizer steps, or -1 (no limit), got {v}")
        return v

    @field_validator("precision")
    @classmethod
    def _precision(cls, v):  # (weights held in half precision: a traceback after the training, or NaN at step 1)
        if str(v) in HALF_WEIGHTS:
            raise ValueError(f"precision {v}: weights held in half precision are not supported; bf16-mixed (or "
                             "16-mixed on a CUDA GPU) keeps them in float32 and computes in half")
        return v

    @field_validator("num_threads")
    @classmethod
    def _positive_threads(cls, v):
        # one message naming the key (a Field(gt=0) inside the union reports once per union member)
        if isinstance(v, int) and v < 1:
            raise ValueError("num_threads must be a positive count, 'all' or null")
        return v

    @field_validator("devices")
    @classmethod
    def _devices(cls, v):
        # as --devices takes them (0 and negatives reached Lightning as a traceback)
        if (out := devices_value(v)) is None:
            raise ValueError(f"devices must be a number of devices, 1 to {MAX_DEVICES}, 'auto' or GPU indices (0,1)")
        return out

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, v):
        if problem := spawned_strategy(v):
            raise ValueError(problem)
        return v

    def thread_count(self) -> int | None:
        """The number of torch threads to set (None: leave torch's)."""
        import os

        return (os.cpu_count() or 1) if self.num_threads == "all" else self.num_threads


class DiffusionConfig(Section):
    """The forward process (the noise schedule, held by diffusers' schedulers) and its training."""

    schedule: Literal["linear", "cosine"] = "linear"
    """``linear``: betas from ``beta_start`` to ``beta_end`` (DDPM); ``cosine``: Nichol & Dhariwal."""
    prediction: Literal["epsilon", "v_prediction"] = "epsilon"
    """What the denoiser predicts: the noise, or the velocity ``alpha_t * noise - sigma_t * x0``."""
    train_timesteps: int = Field(1000, ge=2)
    beta_start: float = Field(1e-4, gt=0, lt=1)
    beta_end: float = Field(0.02, gt=0, lt=1)
    clip_sample: float | None = Field(1.0, gt=0)
    """Clip the predicted clean image to [-v, v] while sampling (images live in [-1, 1]); None: off."""
    conditional: bool = True
    """Condition on the data's class labels (and continuous conditions) when it has them."""
    label_dropout: float = Field(0.1, ge=0, le=1)
    """Training: share of samples whose conditions are replaced by the null condition (classifier-free
    guidance needs it > 0)."""


class SamplingConfig(Section):
    """Sampler defaults (``latentbridge sample`` flags override them)."""

    scheduler: Literal["ddpm", "ddim", "dpm"] = "ddim"
    """``ddpm``: ancestral DDPM; ``ddim``: DDIM (``eta`` = 0: deterministic); ``dpm``: DPM-Solver++ (2M)."""
    steps: int = Field(50, gt=0)
    guidance: float = Field(2.0, ge=0)
    """Classifier-free guidance: 0 = unconditional, 1 = conditional, > 1 = pushed further from the
    unconditional prediction."""
    eta: float = Field(0.0, ge=0, le=1)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    batch_size: int = Field(250, gt=0)


class DiffusionMonitorConfig(Section):
    """What training shows on the way: sample grids and a small-sample Fréchet distance per epoch."""

    grid_epochs: list[int] = Field(default_factory=lambda: [1, 5, 10, 20])
    """Epochs (1-based) whose sample grid is saved as ``samples_epoch_NNN.png`` (the last epoch too)."""
    grid_per_class: int = Field(8, gt=0)
    """Samples per class in a grid (unconditional models: ``grid_per_class`` x 10)."""
    fd_every: int = Field(1, ge=0)
    """Measure the Fréchet distance every this many epochs (0: never)."""
    fd_samples: int = Field(100, ge=2)
    scheduler: Literal["ddpm", "ddim", "dpm"] = "dpm"
    steps: int = Field(10, gt=0)


class DiffusionEvalConfig(Section):
    n_samples: int = Field(1000, ge=2)
    """Generated samples of ``evaluate`` (classes balanced); the real floor uses as many real images."""
    k: int = Field(3, gt=0)
    """Nearest neighbours of the precision / recall manifold estimate."""


class AnomalyConfig(Section):
    score: str | None = None
    """The window score: the model's default (None: reconstruction ``mse`` for autoencoders, the
    distance for the statistical detectors) or one it offers — autoencoders: ``mse``, ``frame_max``,
    ``elbo``/``iwae`` (VAEs), ``latent_mahalanobis``, ``latent_knn``, ``level`` (with
    ``features.level_norm``), ``aux`` (with ``synthetic_anomalies``), ``combined``."""
    synthetic_anomalies: float = Field(0.0, ge=0)
    """Weight of a self-supervised term: a head on the latent learns normal windows from synthetic
    anomalies made of them (tones, clicks, band boosts/cuts, pitch and speed changes); 0: off."""
    iwae_samples: int = Field(32, gt=0)
    threshold_method: Literal["mean_std", "quantile"] = "mean_std"
    k: float = Field(2.0, ge=0, allow_inf_nan=False)
    false_alarm_rate: float = Field(0.01, gt=0, lt=1)
    aggregate: Literal["mean", "max"] = "mean"
    """How window scores become one score per file."""


class MNISTAugment(Section):
    kind: Literal["mnist"] = "mnist"
    max_rotation_deg: float = Field(10.0, ge=0)
    max_translate_px: float = Field(2.0, ge=0)
    scale: tuple[float, float] = (0.9, 1.1)


class FSDDAugment(Section):
    kind: Literal["fsdd"] = "fsdd"
    max_shift_frames: tuple[int, int] = (-4, 16)
    gain_db: float = Field(10.0, ge=0)
    time_mask: int = Field(12, ge=0)
    freq_mask: int = Field(8, ge=0)


class ClassifierSettings(Section):
    label_smoothing: float = Field(0.05, ge=0, lt=1)
    augment: MNISTAugment | FSDDAugment = Field(default_factory=MNISTAugment, discriminator="kind")


# the spatial maps' and the multimodal latent diffusion's sections live in their own modules; importable from here
from latentbridge.config.mld_sections import (FirstStageConfig, MLDDataConfig, MLDDiffusionConfig,  # noqa: E402,F401
                                              MLDEvalConfig, MLDSamplingConfig, RecordedConditionsConfig)
from latentbridge.config.spatial_sections import PatchConfig, SpatialDataConfig, SpatialLossWeights  # noqa: E402,F401
