"""Audio transforms shared by models, datasets and exporters.

Everything here is batched torch code: leading dimensions are flattened, processed
in one call and restored, with no per-item Python loops.

Conventions
-----------
* Waves are ``(..., T)`` float tensors.
* Complex spectrograms are ``(..., n_freq, frames)`` with ``n_freq = n_fft // 2 + 1``.
* Windows are *periodic* (like ``torch.hann_window(..., periodic=True)`` and librosa's
  ``get_window(..., fftbins=True)``), zero-padded to ``n_fft`` in the centre when
  ``win_length < n_fft``.

:class:`SpectrogramTransform` is split into two stages: :meth:`~SpectrogramTransform.magnitude`
(STFT, can be reproduced with numpy only by :mod:`latentbridge.transforms.numpy_stft`) and
:meth:`~SpectrogramTransform.features_from_magnitude` (real-valued ops only, exportable to ONNX).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "SEED_PRESET",
    "STFT",
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

_LN10 = math.log(10.0)

WINDOWS = ("hann", "hamming", "blackman", "rectangular")
_WINDOW_ALIASES = {"hanning": "hann", "rect": "rectangular", "boxcar": "rectangular", "ones": "rectangular"}

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


# --------------------------------------------------------------------------- windows


def _canonical_window(name: str) -> str:
    key = str(name).lower()
    key = _WINDOW_ALIASES.get(key, key)
    if key not in WINDOWS:
        raise ValueError(f"window: unknown window {name!r}; expected one of {list(WINDOWS)}")
    return key


def make_window(window: str, win_length: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Periodic window of ``win_length`` samples (same values as ``torch.*_window(periodic=True)``)."""
    key = _canonical_window(window)
    if key == "hann":
        return torch.hann_window(win_length, periodic=True, dtype=dtype)
    if key == "hamming":
        return torch.hamming_window(win_length, periodic=True, dtype=dtype)
    if key == "blackman":
        return torch.blackman_window(win_length, periodic=True, dtype=dtype)
    return torch.ones(win_length, dtype=dtype)


# --------------------------------------------------------------------------- STFT


class STFT(nn.Module):
    """Batched STFT / ISTFT around :func:`torch.stft` / :func:`torch.istft`.

    ``forward`` maps ``(..., T)`` real waves to complex ``(..., n_freq, frames)``;
    ``inverse`` maps back. The window is a non-persistent buffer (it follows ``.to()``
    but is not written to state dicts, since it is fully determined by the arguments).
    """

    window: torch.Tensor

    def __init__(
        self,
        n_fft: int = 1024,
        hop_length: int = 512,
        win_length: int | None = None,
        window: str = "hann",
        center: bool = True,
        pad_mode: str = "reflect",
    ):
        super().__init__()
        n_fft = int(n_fft)
        hop_length = int(hop_length)
        win_length = n_fft if win_length is None else int(win_length)
        if n_fft < 2:
            raise ValueError(f"n_fft: must be >= 2, got {n_fft}")
        if hop_length < 1:
            raise ValueError(f"hop_length: must be >= 1, got {hop_length}")
        if not 1 <= win_length <= n_fft:
            raise ValueError(f"win_length: must be in [1, n_fft={n_fft}], got {win_length}")
        if pad_mode not in ("reflect", "constant", "replicate", "circular"):
            raise ValueError(f"pad_mode: unknown {pad_mode!r}")
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.win_length = win_length
        self.window_name = _canonical_window(window)
        self.center = bool(center)
        self.pad_mode = pad_mode
        self.register_buffer("window", make_window(self.window_name, win_length), persistent=False)

    @property
    def n_freq(self) -> int:
        return self.n_fft // 2 + 1

    def num_frames(self, n_samples: int) -> int:
        """Frames ``forward`` gives for a wave of ``n_samples`` samples."""
        n_samples = int(n_samples)
        if self.center:
            return 1 + n_samples // self.hop_length
        if n_samples < self.n_fft:
            return 0
        return 1 + (n_samples - self.n_fft) // self.hop_length

    def _window_for(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.real.dtype if x.is_complex() else x.dtype
        if dtype == torch.float64 and self.window.dtype != torch.float64:
            # rebuild rather than upcast, so float64 input gets a float64-exact window
            return make_window(self.window_name, self.win_length, torch.float64).to(x.device)
        return self.window.to(device=x.device, dtype=dtype)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.is_complex():
            raise TypeError("STFT.forward: expected a real wave")
        if not wave.is_floating_point():
            wave = wave.float()
        lead = wave.shape[:-1]
        flat = wave.reshape(-1, wave.shape[-1])
        spec = torch.stft(
            flat,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self._window_for(flat),
            center=self.center,
            pad_mode=self.pad_mode,
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        return spec.reshape(*lead, spec.shape[-2], spec.shape[-1])

    def inverse(self, spec: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Inverse STFT of complex ``(..., n_freq, frames)`` -> ``(..., T)``."""
        if not spec.is_complex():
            raise TypeError("STFT.inverse: expected a complex spectrogram")
        if spec.shape[-2] != self.n_freq:
            raise ValueError(f"STFT.inverse: expected {self.n_freq} frequency rows, got {spec.shape[-2]}")
        lead = spec.shape[:-2]
        flat = spec.reshape(-1, spec.shape[-2], spec.shape[-1])
        wave = torch.istft(
            flat,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self._window_for(flat),
            center=self.center,
            normalized=False,
            onesided=True,
            length=None if length is None else int(length),
            return_complex=False,
        )
        return wave.reshape(*lead, wave.shape[-1])

    def extra_repr(self) -> str:
        return (
            f"n_fft={self.n_fft}, hop_length={self.hop_length}, win_length={self.win_length}, "
            f"window={self.window_name!r}, center={self.center}, pad_mode={self.pad_mode!r}"
        )


# --------------------------------------------------------------------------- elementwise helpers


def magnitude_phase(spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a complex spectrogram into (magnitude, phase in radians)."""
    return spec.abs(), spec.angle()


def from_magnitude_phase(mag: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """Complex spectrogram ``mag * exp(i * phase)``."""
    return torch.polar(mag, phase.to(mag.dtype))


def amplitude_to_db(
    x: torch.Tensor,
    amin: float = 1e-5,
    top_db: float | None = None,
    ref: float = 1.0,
    multiplier: float = 20.0,
) -> torch.Tensor:
    """``multiplier * log10(max(x, amin) / max(ref, amin))``.

    ``multiplier`` is 20 for amplitudes and 10 for powers. With ``top_db`` the result is
    clamped from below at (per-item max over the last two dims) - ``top_db``.
    Uses only ONNX-exportable ops (clamp, log, max reduction).
    """
    if amin <= 0:
        raise ValueError(f"amin: must be > 0, got {amin}")
    scale = multiplier / _LN10
    db = scale * torch.log(torch.clamp(x, min=amin))
    offset = scale * math.log(max(float(ref), float(amin)))
    if offset != 0.0:
        db = db - offset
    if top_db is not None:
        if top_db < 0:
            raise ValueError(f"top_db: must be >= 0, got {top_db}")
        peak = torch.amax(db, dim=(-2, -1), keepdim=True)
        db = torch.maximum(db, peak - float(top_db))
    return db


def db_to_amplitude(db: torch.Tensor, ref: float = 1.0, multiplier: float = 20.0) -> torch.Tensor:
    """Inverse of :func:`amplitude_to_db` (ignoring the ``amin``/``top_db`` clamping)."""
    return float(ref) * torch.exp(db * (_LN10 / multiplier))


def fix_frames(x: torch.Tensor, n_frames: int, pad_value: float = 0.0) -> torch.Tensor:
    """Pad (with ``pad_value``) or crop the last dim to exactly ``n_frames``."""
    n_frames = int(n_frames)
    cur = x.shape[-1]
    if cur == n_frames:
        return x
    if cur > n_frames:
        return x[..., :n_frames]
    return F.pad(x, (0, n_frames - cur), mode="constant", value=float(pad_value))


def minmax_normalize(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale each item to [0, 1] using its min and max over the last two dims."""
    lo = torch.amin(x, dim=(-2, -1), keepdim=True)
    hi = torch.amax(x, dim=(-2, -1), keepdim=True)
    return (x - lo) / (hi - lo + eps)


# --------------------------------------------------------------------------- mel


class MelScale(nn.Module):
    """Linear-frequency magnitude -> mel bands with librosa's (Slaney) filterbank.

    ``forward`` is a single matmul (ONNX friendly). ``inverse`` is approximate and
    non-negative: it starts from the pseudo-inverse solution clamped at 0, then (when
    ``n_iter > 0``) refines it with projected-gradient NNLS steps minimising
    ``||fb @ x - mel||^2`` subject to ``x >= 0`` (step ``1 / ||fb||_2^2``).
    """

    fb: torch.Tensor
    fb_pinv: torch.Tensor

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        n_mels: int = 64,
        fmin: float = 0.0,
        fmax: float | None = None,
    ):
        super().__init__()
        import librosa  # heavy import kept local

        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft)
        self.n_mels = int(n_mels)
        self.fmin = float(fmin)
        self.fmax = None if fmax is None else float(fmax)
        fb = librosa.filters.mel(
            sr=self.sample_rate,
            n_fft=self.n_fft,
            n_mels=self.n_mels,
            fmin=self.fmin,
            fmax=self.fmax,
            htk=False,
            norm="slaney",
            dtype=np.float64,
        )
        pinv = np.linalg.pinv(fb)
        lipschitz = float(np.linalg.norm(fb, 2) ** 2)
        self.step = 1.0 / lipschitz if lipschitz > 0 else 0.0
        self.register_buffer("fb", torch.from_numpy(fb.astype(np.float32)), persistent=False)
        self.register_buffer("fb_pinv", torch.from_numpy(pinv.astype(np.float32)), persistent=False)

    @property
    def n_freq(self) -> int:
        return self.n_fft // 2 + 1

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        """``(..., n_freq, T)`` -> ``(..., n_mels, T)``."""
        if not torch.jit.is_tracing() and mag.shape[-2] != self.n_freq:
            raise ValueError(f"MelScale: expected {self.n_freq} frequency rows, got {mag.shape[-2]}")
        return torch.matmul(self.fb.to(mag.dtype), mag)

    def inverse(self, mel: torch.Tensor, n_iter: int = 16) -> torch.Tensor:
        """Approximate non-negative ``(..., n_mels, T)`` -> ``(..., n_freq, T)``."""
        if mel.shape[-2] != self.n_mels:
            raise ValueError(f"MelScale.inverse: expected {self.n_mels} mel rows, got {mel.shape[-2]}")
        fb = self.fb.to(mel.dtype)
        x = torch.clamp(torch.matmul(self.fb_pinv.to(mel.dtype), mel), min=0.0)
        fbt = fb.transpose(0, 1)
        for _ in range(int(n_iter)):  # iterations, not items: the batch is processed at once
            grad = torch.matmul(fbt, torch.matmul(fb, x) - mel)
            x = torch.clamp(x - self.step * grad, min=0.0)
        return x

    def extra_repr(self) -> str:
        return f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, n_mels={self.n_mels}, fmin={self.fmin}, fmax={self.fmax}"


# --------------------------------------------------------------------------- Griffin-Lim


class GriffinLim(nn.Module):
    """Batched fast Griffin-Lim (Perraudin, Balazs & Sondergaard 2013), as in librosa.

    Each iteration: ``rebuilt = STFT(ISTFT(S * angles))``;
    ``angles = rebuilt - momentum / (1 + momentum) * previous_rebuilt``; normalise to unit modulus.
    ``momentum=0`` gives plain Griffin-Lim. ``init`` is ``"random"`` (uniform phase drawn
    from a generator seeded with ``seed``, so results are reproducible) or ``"zeros"``.
    """

    def __init__(self, stft: STFT, n_iter: int = 32, momentum: float = 0.99, init: str = "random", seed: int = 0):
        super().__init__()
        if init not in ("random", "zeros"):
            raise ValueError(f"init: expected 'random' or 'zeros', got {init!r}")
        if momentum < 0:
            raise ValueError(f"momentum: must be >= 0, got {momentum}")
        if n_iter < 0:
            raise ValueError(f"n_iter: must be >= 0, got {n_iter}")
        self.stft = stft
        self.n_iter = int(n_iter)
        self.momentum = float(momentum)
        self.init = init
        self.seed = int(seed)

    def initial_angles(self, mag: torch.Tensor) -> torch.Tensor:
        """Unit-modulus complex starting phases shaped like ``mag`` (seeded, device-independent)."""
        if self.init == "zeros":
            phase = torch.zeros(mag.shape, dtype=mag.dtype)
        else:
            gen = torch.Generator(device="cpu").manual_seed(self.seed)
            phase = torch.rand(mag.shape, generator=gen, dtype=mag.dtype) * (2.0 * math.pi)
        return torch.polar(torch.ones_like(phase), phase).to(mag.device)

    def forward(self, mag: torch.Tensor, length: int | None = None, n_iter: int | None = None) -> torch.Tensor:
        """Magnitude ``(..., n_freq, frames)`` -> wave ``(..., T)``."""
        if mag.is_complex():
            raise TypeError("GriffinLim: expected a real magnitude")
        if not mag.is_floating_point():
            mag = mag.float()
        n_iter = self.n_iter if n_iter is None else int(n_iter)
        frames = mag.shape[-1]
        eps = torch.finfo(mag.dtype).tiny
        alpha = self.momentum / (1.0 + self.momentum)
        angles = self.initial_angles(mag)
        rebuilt = None
        for _ in range(n_iter):  # iterations, not items: the batch is processed at once
            tprev = rebuilt
            inverse = self.stft.inverse(mag * angles, length=length)
            rebuilt = fix_frames(self.stft(inverse), frames)
            angles = rebuilt if tprev is None else rebuilt - alpha * tprev
            angles = angles / (angles.abs() + eps)
        return self.stft.inverse(mag * angles, length=length)


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
        if self.power == 2.0:
            mag = spec.real.square() + spec.imag.square()
        else:
            mag = torch.hypot(spec.real, spec.imag)  # faster than complex abs on CPU
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
    ) -> torch.Tensor:
        """Features ``(..., n_features, frames)`` -> wave ``(..., T)``.

        Undoes the scale exactly (except for ``amin``/``top_db`` clamping), the mel
        projection approximately (:meth:`MelScale.inverse`) and ``power``, then runs the
        ISTFT with ``phase`` when given, else Griffin-Lim with ``n_iter`` iterations.
        Min-max normalisation discards the level, so it cannot be undone: ValueError.
        """
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
        if phase is not None:
            phase = torch.as_tensor(phase).to(device=x.device, dtype=x.dtype)
            return self.stft.inverse(from_magnitude_phase(x, phase), length=length)
        return GriffinLim(self.stft, n_iter=n_iter)(x, length=length)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
