"""The saved preprocessing description: one typed, versioned object per model folder.

``config.json["transform"]`` holds one of these (tagged by ``type``). The training path, the
streaming path, the server and the torch-free edge scorer all rebuild the same features from
it: audio models through :class:`~latentbridge.transforms.audio.SpectrogramTransform`
(``SpectrogramTransform.from_spec``) and :mod:`latentbridge.transforms.numpy_stft`, vibration
models through their own codec, image models by the stated scaling, spatial-map models by the
per-channel normalisation and coordinate mapping of :class:`SpatialTransform`. Pure pydantic (no torch),
so the edge scorer can read it. :func:`latentbridge.config.workflows.transform_spec` builds it
from a workflow config; nothing else does.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, TypeAdapter, model_validator

from latentbridge.config.sections import Section

TRANSFORM_VERSION = 1


class SpectrogramParams(Section):
    """Constructor arguments of :class:`~latentbridge.transforms.audio.SpectrogramTransform`."""

    sample_rate: int = Field(gt=0)
    n_fft: int = Field(gt=0)
    hop_length: int = Field(gt=0)
    win_length: int | None = None
    window: str = "hann"
    center: bool = True
    kind: Literal["stft", "mel"] = "mel"
    n_mels: int = Field(64, gt=0)
    fmin: float = 0.0
    fmax: float | None = None
    scale: Literal["linear", "db", "log"] = "db"
    amin: float = Field(1e-5, gt=0)
    top_db: float | None = None
    normalize: Literal["none", "minmax"] = "none"
    n_frames: int | None = None
    power: float = Field(1.0, gt=0)


class Windowing(Section):
    """How a recording becomes model inputs."""

    window_s: float = Field(gt=0)
    hop_s: float = Field(gt=0)
    pad: Literal["wrap", "constant", "reflect"] = "wrap"
    """Filling of a recording shorter than one window (and of a trailing partial window)."""
    channel: int | Literal["all"] | None = None
    """One channel of the file; None: the mono mix; ``all``: every channel (features ``(C, F, T)``)."""
    clip: Literal["windows", "centre"] = "windows"
    """``windows``: sliding windows of ``window_s`` every ``hop_s``; ``centre``: one clip of
    ``window_s`` per recording (centre-cropped when longer, zero-padded after it when shorter)."""
    trim_db: float | None = None
    """Files (never live streams) lose leading and trailing frames more than this many dB below
    their loudest frame before windowing (:func:`latentbridge.io.trim_silence`)."""
    min_share: float = Field(0.25, ge=0, le=1)
    """Recordings shorter than this share of a window are refused (:func:`latentbridge.io.check_recording_length`)."""
    csv_rate: float | None = Field(None, gt=0)
    """The sample rate of vibration CSVs without a time column and MATLAB files without a rate
    (:func:`latentbridge.io.read_audio`)."""
    columns: list[str] | None = None
    """The sensor columns of the vibration CSVs the model was fitted on, by header name, in its order: a CSV is read
    by them (its columns put in this order; other names refused); None or empty: by position."""


class AudioTransform(Section):
    type: Literal["audio"] = "audio"
    version: Literal[1] = TRANSFORM_VERSION
    windowing: Windowing
    features: SpectrogramParams
    standardize: bool = True
    """Per-bin standardisation with statistics stored in the model's weights (inside the model)."""

    @property
    def sample_rate(self) -> int:
        return self.features.sample_rate

    @property
    def window_samples(self) -> int:
        return int(round(self.windowing.window_s * self.features.sample_rate))

    @property
    def hop_samples(self) -> int:
        return max(1, int(round(self.windowing.hop_s * self.features.sample_rate)))


class MaskParams(Section):
    height: int = Field(gt=0)
    width: int = Field(gt=0)
    threshold: float = Field(0.5, gt=0, lt=1)
    coverage: float = Field(0.25, gt=0, le=1)


class VibrationTransform(Section):
    type: Literal["vibration"] = "vibration"
    version: Literal[1] = TRANSFORM_VERSION
    sample_rate: float = Field(gt=0)
    """Rate of the windows the model sees (after ``resample_to``)."""
    n_channels: int = Field(gt=0)
    channels: list[int] | None = None
    resample_to: float | None = None
    window_s: float = Field(gt=0)
    hop_s: float = Field(gt=0)
    n_fft: int = Field(gt=0)
    hop_length: int = Field(gt=0)
    mask: MaskParams


class ImageTransform(Section):
    """Images as a model sees them: ``channels`` x ``height`` x ``width``, pixels ``uint8 / 255``.

    Version 2 adds how images of another size or colour mode get there (``resize``, ``color``)
    and the value range the model's data space uses (``value_range``); version 1 folders (the
    28 x 28 grey-level MNIST defaults) read unchanged."""

    type: Literal["image"] = "image"
    version: Literal[1, 2] = 2
    channels: int = Field(1, gt=0)
    height: int = Field(28, gt=0)
    width: int = Field(28, gt=0)
    scaling: Literal["uint8/255"] = "uint8/255"
    """Pixels are divided by 255 (values in [0, 1])."""
    resize: Literal["none", "bilinear", "area"] = "none"
    """How an image of another size is brought to ``height`` x ``width`` (``none``: it must match)."""
    color: Literal["grayscale", "rgb"] = "grayscale"
    """Colour mode images are converted to (``channels`` 1 or 3)."""
    value_range: tuple[float, float] = (0.0, 1.0)
    """Range of the model's data space (inputs and generated images)."""

    @model_validator(mode="after")
    def _check(self) -> "ImageTransform":
        if (self.color == "rgb") != (self.channels == 3):
            raise ValueError(f"color {self.color!r} does not fit {self.channels} channels")
        return self


class SpatialTransform(Section):
    """How sections of spatial maps become the conditional VAE's inputs, and back.

    Reading: ion images of ``mz`` (imzML, ``tolerance`` in ``tolerance_unit``) or array channels,
    per-pixel ``normalization``. Values: ``(x - center) / scale`` per channel (the mean of the valid
    training pixels; their standard deviation or the channel's noise level); enhanced maps come back
    through the inverse. ``lower`` / ``upper``: the
    training range in those units (the bounded reconstruction). Coordinates: every pixel's (row,
    column) mapped linearly to [-1, 1] over the bounding box of the section's valid pixels (of the
    output grid, for upscaling). Whole sections: tiles of ``patch_size`` overlapping by ``overlap``.
    """

    type: Literal["spatial"] = "spatial"
    version: Literal[1] = TRANSFORM_VERSION
    channels: int = Field(gt=0)
    mz: list[float] | None = None
    labels: list[str] = Field(default_factory=list)
    tolerance: float = Field(10.0, gt=0)
    tolerance_unit: Literal["ppm", "da"] = "ppm"
    normalization: Literal["none", "tic", "rms"] = "none"
    normalized_over: Literal["spectrum", "channels"] | None = None
    """What ``tic`` / ``rms`` sums over: each pixel's whole spectrum (trained on imzML; an array input has none) or
    the model's channels (trained on arrays; imzML inputs are divided alike). None: a model saved before this was
    recorded (an imzML input by its spectrum, an array by its channels)."""
    center: list[float]
    scale: list[float]
    lower: list[float]
    upper: list[float]
    patch_size: int = Field(gt=0)
    overlap: int = Field(0, ge=0)
    upscale_factor: int = Field(2, ge=2)
    coordinates: Literal["bounding_box"] = "bounding_box"


TransformSpec = Annotated[Union[AudioTransform, VibrationTransform, ImageTransform, SpatialTransform],
                          Field(discriminator="type")]
_ADAPTER = TypeAdapter(TransformSpec)


def parse_transform(d) -> AudioTransform | VibrationTransform | ImageTransform | SpatialTransform:
    """A saved ``transform`` dict → its typed object (pydantic ``ValidationError`` when it is not one)."""
    return _ADAPTER.validate_python(d)


def build_spectrogram(spec: AudioTransform):
    """The :class:`~latentbridge.transforms.audio.SpectrogramTransform` of an audio spec (eval mode)."""
    from latentbridge.transforms.audio import SpectrogramTransform

    return SpectrogramTransform(**spec.features.model_dump()).eval()
