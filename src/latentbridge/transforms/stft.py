"""Windows, the batched STFT / ISTFT and element-wise spectrogram helpers (torch).

The one STFT of the package: the feature pipeline (:mod:`latentbridge.transforms.audio`),
Griffin-Lim (:mod:`latentbridge.transforms.mel`), the models and the multi-resolution STFT loss
all use :class:`STFT`; :mod:`latentbridge.transforms.numpy_stft` reproduces it with numpy only.

Conventions
-----------
* Waves are ``(..., T)`` float tensors; leading dimensions are flattened, processed in one
  call and restored, with no per-item Python loops.
* Complex spectrograms are ``(..., n_freq, frames)`` with ``n_freq = n_fft // 2 + 1``.
* Windows are *periodic* (like ``torch.hann_window(..., periodic=True)`` and librosa's
  ``get_window(..., fftbins=True)``), zero-padded to ``n_fft`` in the centre when
  ``win_length < n_fft``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from latentbridge.transforms.numpy_stft import num_frames

__all__ = [
    "STFT",
    "WINDOWS",
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
    but is not written to state dicts, since it is fully determined by the arguments);
    float64 input gets a float64-exact copy, built on first use.
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
        self._window64: torch.Tensor | None = None  # for float64 input (see _window_for)

    @property
    def n_freq(self) -> int:
        return self.n_fft // 2 + 1

    def num_frames(self, n_samples: int) -> int:
        """Frames ``forward`` gives for a wave of ``n_samples`` samples
        (:func:`latentbridge.transforms.numpy_stft.num_frames`)."""
        return num_frames(n_samples, self.n_fft, self.hop_length, self.center)

    def _window_for(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.real.dtype if x.is_complex() else x.dtype
        if dtype == torch.float64 and self.window.dtype != torch.float64:
            # a float64-exact window rather than an upcast one, built once per device
            cached = self._window64
            if cached is None or cached.device != x.device:
                cached = make_window(self.window_name, self.win_length, torch.float64).to(x.device)
                self._window64 = cached
            return cached
        return self.window.to(device=x.device, dtype=dtype)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.is_complex():
            raise TypeError("STFT.forward: expected a real wave")
        if not wave.is_floating_point() or wave.dtype in (torch.float16, torch.bfloat16):
            wave = wave.float()  # torch.stft takes neither (a decoded wave under mixed precision)
        lead, n = wave.shape[:-1], wave.shape[-1]
        if self.center and self.pad_mode == "reflect" and n <= self.n_fft // 2 or not self.center and n < self.n_fft:
            raise ValueError(f"STFT: a wave of {n} samples is too short for n_fft {self.n_fft} (" + (
                f"reflect padding needs more than {self.n_fft // 2}" if self.center else "one frame needs n_fft") +
                " samples)")  # (torch's own message spoke of padding sizes and dimensions)
        flat = wave.reshape(-1, n)
        frames = self._frames(flat)
        if self.center and self.pad_mode == "reflect":
            # torch.stft's own reflect padding (F.pad) took a quarter of its time on CPU; the same samples
            half = self.n_fft // 2
            flat = torch.cat([flat[:, 1:half + 1].flip(-1), flat, flat[:, -half - 1:-1].flip(-1)], -1)
            frames["center"] = False
        spec = torch.stft(flat, **frames, pad_mode=self.pad_mode, return_complex=True)
        return spec.reshape(*lead, spec.shape[-2], spec.shape[-1])

    def _frames(self, x: torch.Tensor) -> dict:
        """The framing both directions share."""
        return {"n_fft": self.n_fft, "hop_length": self.hop_length, "win_length": self.win_length,
                "window": self._window_for(x), "center": self.center, "normalized": False, "onesided": True}

    def inverse(self, spec: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Inverse STFT of complex ``(..., n_freq, frames)`` -> ``(..., T)``."""
        if not spec.is_complex():
            raise TypeError("STFT.inverse: expected a complex spectrogram")
        if spec.shape[-2] != self.n_freq:
            raise ValueError(f"STFT.inverse: expected {self.n_freq} frequency rows, got {spec.shape[-2]}")
        lead = spec.shape[:-2]
        flat = spec.reshape(-1, spec.shape[-2], spec.shape[-1])
        try:
            wave = torch.istft(flat, **self._frames(flat), length=None if length is None else int(length),
                               return_complex=False)
        except RuntimeError as e:  # torch's "window overlap add min: 1 [CPUBoolType{}]"
            if "overlap add" not in str(e):
                raise
            raise ValueError(f"STFT.inverse: {self.extra_repr()} cannot be inverted: some samples lie under no window "
                             "(the squared windows' overlap-add is zero there: " + (
                                 "the first and last samples, with center=False" if not self.center else
                                 f"hop {self.hop_length} leaves samples where every window is zero") + ")") from None
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
    """Complex spectrogram ``mag * exp(i * phase)`` (complex64 for half-precision input: a decoder's
    output under mixed precision; there is no complex bfloat16)."""
    if mag.dtype in (torch.float16, torch.bfloat16):
        mag = mag.float()
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
