"""The feature pipeline: :class:`SpectrogramTransform` (wave -> spectrogram features and back).

Shared by models, datasets and exporters; batched torch code, no per-item Python loops.
:class:`SpectrogramTransform` is split into two stages: :meth:`~SpectrogramTransform.magnitude`
(STFT, can be reproduced with numpy only by :mod:`latentbridge.transforms.numpy_stft`) and
:meth:`~SpectrogramTransform.features_from_magnitude` (real-valued ops only, exportable to ONNX).

Its building blocks live in :mod:`latentbridge.transforms.stft` (windows, :class:`STFT`, dB and
other element-wise helpers) and :mod:`latentbridge.transforms.mel` (:class:`MelScale`,
:class:`GriffinLim`); they are re-exported here, so ``from latentbridge.transforms.audio import
STFT`` keeps working.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from latentbridge.transforms.mel import GriffinLim, MelScale
from latentbridge.transforms.stft import (
    STFT,
    WINDOWS,
    amplitude_to_db,
    db_to_amplitude,
    fix_frames,
    from_magnitude_phase,
    magnitude_phase,
    make_window,
    minmax_normalize,
)

__all__ = [
    "SEED_PRESET",
    "STFT",
    "WINDOWS",
    "FeatureStage",
    "GriffinLim",
    "MelScale",
    "SpectrogramTransform",
    "amplitude_to_db",
    "db_to_amplitude",
    "fix_frames",
    "from_magnitude_phase",
    "magnitude_phase",
    "make_window",
    "minmax_normalize",
]

#: 2-s windows at 44.1 kHz -> 513 x 128 dB spectrogram, min-max normalised per window.
SEED_PRESET: dict[str, Any] = dict(
    sample_rate=44100,
    n_fft=1024,
    hop_length=512,
    n_frames=128,
    kind="stft",
    scale="db",
    normalize="minmax",
)


# --------------------------------------------------------------------------- feature pipeline

_KINDS = ("stft", "mel")
_SCALES = ("linear", "db", "log")
_NORMALIZE = ("none", "minmax")


class FeatureStage(nn.Module):
    """Module wrapper whose ``forward`` is ``transform.features_from_magnitude`` (for ONNX export)."""

    def __init__(self, transform: "SpectrogramTransform"):
        super().__init__()
        self.transform = transform

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        return self.transform.features_from_magnitude(mag)


class SpectrogramTransform(nn.Module):
    """Wave -> spectrogram features, in two stages.

    1. :meth:`magnitude`: ``(B, T)`` or ``(B, C, T)`` wave -> linear magnitude
       ``(B, C, n_freq, frames)`` raised to ``power``; frames fixed to ``n_frames`` when set
       (zero padding, i.e. silence). Reproducible with numpy only
       (:func:`latentbridge.transforms.numpy_stft.stft_magnitude`).
    2. :meth:`features_from_magnitude`: mel projection (``kind="mel"``), scale
       (``"db"``: ``(20 / power) * log10``, so 10*log10 for power 2; ``"log"``: ``log(x + amin)``),
       normalisation (``"minmax"`` per item over the last two dims). Real-valued,
       ONNX-exportable ops only.

    ``forward(wave) = features_from_magnitude(magnitude(wave))`` as float32, shape
    ``(B, C, n_features, frames)``. The module holds no persistent state (empty state dict).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        hop_length: int = 512,
        win_length: int | None = None,
        window: str = "hann",
        center: bool = True,
        kind: str = "stft",
        n_mels: int = 64,
        fmin: float = 0.0,
        fmax: float | None = None,
        scale: str = "linear",
        amin: float = 1e-5,
        top_db: float | None = None,
        normalize: str = "none",
        n_frames: int | None = None,
        power: float = 1.0,
    ):
        super().__init__()
        if kind not in _KINDS:
            raise ValueError(f"kind: expected one of {list(_KINDS)}, got {kind!r}")
        if scale not in _SCALES:
            raise ValueError(f"scale: expected one of {list(_SCALES)}, got {scale!r}")
        if normalize not in _NORMALIZE:
            raise ValueError(f"normalize: expected one of {list(_NORMALIZE)}, got {normalize!r}")
        if not float(power) > 0:
            raise ValueError(f"power: must be > 0, got {power}")
        if not float(amin) > 0:
            raise ValueError(f"amin: must be > 0, got {amin}")
        if n_frames is not None and int(n_frames) < 1:
            raise ValueError(f"n_frames: must be >= 1 or None, got {n_frames}")
        if int(sample_rate) < 1:
            raise ValueError(f"sample_rate: must be >= 1, got {sample_rate}")
        self.sample_rate = int(sample_rate)
        self.kind = kind
        self.n_mels = int(n_mels)
        self.fmin = float(fmin)
        self.fmax = None if fmax is None else float(fmax)
        self.scale = scale
        self.amin = float(amin)
        self.top_db = None if top_db is None else float(top_db)
        self.normalize = normalize
        self.n_frames = None if n_frames is None else int(n_frames)
        self.power = float(power)
        self.stft = STFT(n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window, center=center)
        self.mel = (
            MelScale(self.sample_rate, self.stft.n_fft, self.n_mels, self.fmin, self.fmax) if kind == "mel" else None
        )

    # ----------------------------------------------------------------- properties

    @property
    def n_fft(self) -> int:
        return self.stft.n_fft

    @property
    def hop_length(self) -> int:
        return self.stft.hop_length

    @property
    def n_freq(self) -> int:
        return self.stft.n_freq

    @property
    def n_features(self) -> int:
        """Rows of the output (``n_mels`` for mel, else ``n_fft // 2 + 1``)."""
        return self.n_mels if self.kind == "mel" else self.stft.n_freq

    @property
    def db_multiplier(self) -> float:
        """20 / power: dB of an amplitude raised to ``power``."""
        return 20.0 / self.power

    def frames_for(self, n_samples: int) -> int:
        """Frames in the output for a wave of ``n_samples`` samples."""
        return self.n_frames if self.n_frames is not None else self.stft.num_frames(n_samples)

    # ----------------------------------------------------------------- serialisation

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable constructor kwargs."""
        return dict(
            sample_rate=self.sample_rate,
            n_fft=self.stft.n_fft,
            hop_length=self.stft.hop_length,
            win_length=self.stft.win_length,
            window=self.stft.window_name,
            center=self.stft.center,
            kind=self.kind,
            n_mels=self.n_mels,
            fmin=self.fmin,
            fmax=self.fmax,
            scale=self.scale,
            amin=self.amin,
            top_db=self.top_db,
            normalize=self.normalize,
            n_frames=self.n_frames,
            power=self.power,
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SpectrogramTransform":
        import inspect

        allowed = set(inspect.signature(cls.__init__).parameters) - {"self"}
        unknown = sorted(set(d) - allowed)
        if unknown:
            raise ValueError(f"SpectrogramTransform.from_dict: unknown keys {unknown}")
        return cls(**d)

    # ----------------------------------------------------------------- stages

    def magnitude(self, wave: torch.Tensor | np.ndarray) -> torch.Tensor:
        """``(B, T)`` / ``(B, C, T)`` (or ``(T,)``) wave -> ``(B, C, n_freq, frames)`` magnitude ** power."""
        wave = torch.as_tensor(wave)
        if wave.dim() == 1:
            wave = wave[None, None]
        elif wave.dim() == 2:
            wave = wave[:, None]
        elif wave.dim() != 3:
            raise ValueError(f"magnitude: expected a (B, T) or (B, C, T) wave, got shape {tuple(wave.shape)}")
        wave = wave.to(torch.float32)
        if self.n_frames is not None:
            # samples beyond the last kept frame do not change it: skip computing frames to crop
            stft = self.stft
            need = (self.n_frames - 1) * stft.hop_length + (stft.n_fft // 2 if stft.center else stft.n_fft)
            if wave.shape[-1] > need + 1:
                wave = wave[..., : need + 1]
        spec = self.stft(wave)
        # re^2 + im^2 in one buffer (a fifth faster than adding two squares); for other powers the sqrt of that:
        # faster on CPU than complex abs and hypot (1.9x / 1.6x), no overflow or underflow concern at audio
        # magnitudes (float32 squares reach 1e38)
        mag = spec.real.square().addcmul_(spec.imag, spec.imag)
        if self.power != 2.0:
            mag = mag.sqrt_()
            if self.power != 1.0:
                mag = mag.pow(self.power)
        if self.n_frames is not None:
            mag = fix_frames(mag, self.n_frames, 0.0)
        return mag

    def features_from_magnitude(self, mag: torch.Tensor) -> torch.Tensor:
        """``(..., n_freq, frames)`` magnitude -> ``(..., n_features, frames)`` features (ONNX-exportable)."""
        x = mag
        if self.mel is not None:
            x = self.mel(x)
        if self.scale == "db":
            x = amplitude_to_db(x, amin=self.amin, top_db=self.top_db, ref=1.0, multiplier=self.db_multiplier)
        elif self.scale == "log":
            x = torch.log(x + self.amin)
        if self.normalize == "minmax":
            x = minmax_normalize(x)
        return x

    def forward(self, wave: torch.Tensor | np.ndarray) -> torch.Tensor:
        return self.features_from_magnitude(self.magnitude(wave)).to(torch.float32)

    def feature_stage(self) -> FeatureStage:
        """An ``nn.Module`` running only :meth:`features_from_magnitude` (export it to ONNX)."""
        return FeatureStage(self)

    # ----------------------------------------------------------------- inversion

    def invert(
        self,
        features: torch.Tensor,
        length: int | None = None,
        phase: torch.Tensor | None = None,
        n_iter: int = 32,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Features ``(..., n_features, frames)`` -> wave ``(..., T)``: :meth:`features_to_magnitude`, then
        :meth:`magnitude_to_wave` (the ISTFT with ``phase`` when given, else Griffin-Lim with ``n_iter``
        iterations, its starting phases from ``generator`` when given)."""
        return self.magnitude_to_wave(self.features_to_magnitude(features), length, phase, n_iter, generator)

    def features_to_magnitude(self, features: torch.Tensor) -> torch.Tensor:
        """Features ``(..., n_features, frames)`` -> the STFT magnitude ``(..., n_freq, frames)``: undoes the scale
        exactly (except for ``amin``/``top_db`` clamping), the mel projection approximately (:meth:`MelScale.inverse`)
        and ``power``. Min-max normalisation discards the level, so it cannot be undone: ValueError."""
        if self.normalize == "minmax":
            raise ValueError(
                "SpectrogramTransform.invert: features were min-max normalised per item; "
                "the original level and range are lost, so they cannot be inverted"
            )
        x = torch.as_tensor(features).to(torch.float32)
        if x.shape[-2] != self.n_features:
            raise ValueError(f"invert: expected {self.n_features} feature rows, got {x.shape[-2]}")
        if self.scale == "db":
            x = db_to_amplitude(x, ref=1.0, multiplier=self.db_multiplier)
        elif self.scale == "log":
            x = torch.clamp(torch.exp(x) - self.amin, min=0.0)
        if self.mel is not None:
            x = self.mel.inverse(x)
        x = torch.clamp(x, min=0.0)
        if self.power != 1.0:
            x = x.pow(1.0 / self.power)
        return x

    def magnitude_to_wave(self, magnitude: torch.Tensor, length: int | None = None, phase: torch.Tensor | None = None,
                          n_iter: int = 32, generator: torch.Generator | None = None) -> torch.Tensor:
        """An STFT magnitude ``(..., n_freq, frames)`` -> wave ``(..., T)``: the ISTFT with ``phase``, else Griffin-Lim
        with ``n_iter`` iterations."""
        x = torch.as_tensor(magnitude).to(torch.float32)
        if phase is not None:
            phase = torch.as_tensor(phase).to(device=x.device, dtype=x.dtype)
            return self.stft.inverse(from_magnitude_phase(x, phase), length=length)
        return GriffinLim(self.stft, n_iter=n_iter)(x, length=length, generator=generator)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
