"""What the server sends back besides numbers: PNG images and WAV audio (base64, in memory, never
a file), and a display spectrogram of an uploaded recording."""

from __future__ import annotations

import base64
import io

import numpy as np

__all__ = ["png_base64", "npy_base64", "wav_base64", "display_spectrogram"]


def png_base64(image: np.ndarray, scale: int = 1) -> str:
    """``(H, W)`` (grey) or ``(H, W, 3)`` (RGB) values in [0, 1] → base64 of an 8-bit PNG (each pixel
    ``scale`` x ``scale``)."""
    from PIL import Image

    a = np.round(np.clip(np.nan_to_num(np.asarray(image, dtype=np.float64)), 0.0, 1.0) * 255.0).astype(np.uint8)
    if scale > 1:
        a = a.repeat(scale, axis=0).repeat(scale, axis=1)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def npy_base64(array: np.ndarray) -> str:
    """An array → base64 of its ``.npy`` file (``np.load(io.BytesIO(base64.b64decode(s)))`` reads it)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def wav_base64(wave: np.ndarray, sample_rate: int) -> str:
    """``(T,)`` samples → base64 of a 16-bit PCM WAV, peak-normalised to 0.9 when it clips or is quiet."""
    import soundfile as sf

    w = np.nan_to_num(np.asarray(wave, dtype=np.float32).reshape(-1))
    peak = float(np.max(np.abs(w))) if w.size else 0.0
    if peak > 0:
        w = w * (0.9 / peak)
    buf = io.BytesIO()
    sf.write(buf, w, int(sample_rate), format="WAV", subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def display_spectrogram(wave: np.ndarray, spec, start_s: float = 0.0, max_columns: int = 480) -> dict:
    """The model's own spectrogram (its saved feature parameters, dB, un-normalised, every frame)
    of a whole recording at the model's rate, max-pooled to at most ``max_columns`` frames for
    display: ``{"db": [[...] per frequency row, low to high], "seconds_per_column", "f_max_hz",
    "kind", "row_hz", "start_s"}`` (``row_hz``: each row's centre frequency, mel bands spaced as they are; ``start_s``:
    where ``wave`` starts in the recording, after the silence a model trims). A recording of several channels (a model
    of every channel) shows the loudest channel in each cell."""
    from latentbridge.data.survey import band_centres_hz
    import torch

    from latentbridge.transforms.audio import SpectrogramTransform

    f = spec.features
    t = SpectrogramTransform(**{**f.model_dump(), "n_frames": None, "normalize": "none", "scale": "db"}).eval()
    with torch.no_grad():
        db = t(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None]).numpy()
    db = db.reshape(-1, db.shape[-2], db.shape[-1]).max(axis=0)  # (channels, rows, frames) -> the loudest
    pool = max(1, int(np.ceil(db.shape[1] / max_columns)))
    n = db.shape[1] // pool * pool
    if n:
        pooled = db[:, :n].reshape(db.shape[0], -1, pool).max(axis=2)
        if n < db.shape[1]:
            pooled = np.concatenate([pooled, db[:, n:].max(axis=1, keepdims=True)], axis=1)
    else:
        pooled = db
    return {"db": np.round(pooled, 1).tolist(), "seconds_per_column": pool * f.hop_length / f.sample_rate,
            "f_max_hz": f.fmax or f.sample_rate / 2, "kind": f.kind,
            "row_hz": np.round(band_centres_hz(f, f.sample_rate), 1).tolist(), "start_s": float(start_s)}
