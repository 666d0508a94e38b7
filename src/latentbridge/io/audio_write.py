"""Writing audio files atomically (:func:`write_audio`, :func:`write_wav`); reading is :mod:`latentbridge.io.audio`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentbridge.errors import DataError
from latentbridge.io.audio import _sf_error_text
from latentbridge.io.levels import full_scale
from latentbridge.utils import atomic_path, positive_integer

# soundfile format names for writing, by extension
_WRITE_FORMATS = {
    ".wav": "WAV",
    ".flac": "FLAC",
    ".ogg": "OGG",
    ".oga": "OGG",
    ".aiff": "AIFF",
    ".aif": "AIFF",
    ".mp3": "MP3",
}

_PCM_SUBTYPES = ("PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32")


def write_audio(
    path: str | Path,
    wave: np.ndarray,
    sample_rate: int,
    subtype: str | None = None,
    format: str | None = None,
) -> Path:
    """Write ``wave`` (``(T,)`` or ``(C, T)``) atomically; the format follows the extension.

    Samples must be finite; float samples are clipped to [-1, 1] for integer PCM subtypes, integer ones (int16 PCM,
    uint8's offset binary) read at their type's full scale.
    """
    import soundfile as sf

    path = Path(path)
    if format is None:
        format = _WRITE_FORMATS.get(path.suffix.lower())
        if format is None:
            raise DataError(
                path,
                f"cannot write audio with extension {path.suffix or '(none)'!r}; "
                f"use one of {', '.join(_WRITE_FORMATS)}",
            )
    positive_integer(sample_rate, "sample_rate")
    wave = np.asarray(wave)
    if np.issubdtype(wave.dtype, np.integer):  # PCM samples: read at their full scale (int16 32767 → 1.0), not as
        wave = full_scale(wave)  # floats clipped to [-1, 1] (a square wave)
    if wave.ndim == 1:
        data = wave
    elif wave.ndim == 2 and wave.shape[0] > wave.shape[1]:
        raise DataError(path, f"a waveform of shape {wave.shape} would be {wave.shape[0]} channels of {wave.shape[1]} "
                              "samples: (C, T) expected (a (T, C) array: pass its transpose)")
    elif wave.ndim == 2:
        data = wave.T  # soundfile wants (T, C)
    else:
        raise DataError(path, f"cannot write a waveform of shape {wave.shape}; expected (T,) or (C, T)")
    if data.shape[0] == 0:
        raise DataError(path, "refusing to write an empty waveform")
    if not np.all(np.isfinite(data)):
        raise DataError(path, "refusing to write a waveform with NaN or inf samples")
    if subtype is not None and subtype.upper() in _PCM_SUBTYPES:
        data = np.clip(data, -1.0, 1.0)
    data = np.ascontiguousarray(data, dtype=np.float32 if data.dtype != np.float64 else np.float64)
    with atomic_path(path) as tmp:
        try:
            sf.write(str(tmp), data, int(sample_rate), subtype=subtype, format=format)
        except Exception as exc:
            raise DataError(path, f"could not write audio ({_sf_error_text(exc)})") from exc
    return path


def write_wav(
    path: str | Path, wave: np.ndarray, sample_rate: int, subtype: str = "PCM_16"
) -> Path:
    """Write a WAV file atomically (``wave`` is ``(T,)`` or ``(C, T)``; PCM is clipped to [-1, 1])."""
    return write_audio(path, wave, sample_rate, subtype=subtype, format="WAV")
