"""Spoken and written digits: fixed-length FSDD clips, their log-mel features, MNIST images.

One feature definition serves every digit model (mel autoencoders, the audio-visual VAE, the
FSDD classifier that scores cross-modal coherence), so a generated spectrogram can be judged by
the classifier without a trip through audio.
"""

from __future__ import annotations

import numpy as np
import torch

from latentbridge.errors import DataError
from latentbridge.io import audio_info, read_audio

SAMPLE_RATE = 8000
CLIP_SAMPLES = 8000  # 1 s: FSDD clips are 0.2-1 s (a few longer ones are centre-cropped)
TRANSFORM = dict(sample_rate=SAMPLE_RATE, n_fft=256, hop_length=64, kind="mel", n_mels=64, fmin=0.0,
                 fmax=4000.0, scale="db", amin=1e-5, n_frames=128)


def digit_transform():
    from latentbridge.transforms.audio import SpectrogramTransform

    return SpectrogramTransform(**TRANSFORM)


def fit_length(wave: np.ndarray, length: int = CLIP_SAMPLES) -> np.ndarray:
    """Centre-crop a longer clip; pad a shorter one with zeros after it."""
    n = wave.shape[-1]
    if n >= length:
        start = (n - length) // 2
        return wave[..., start:start + length]
    return np.pad(wave, [(0, 0)] * (wave.ndim - 1) + [(0, length - n)])


def load_clips(paths, sample_rate: int = SAMPLE_RATE, length: int = CLIP_SAMPLES, strict: bool = True) -> np.ndarray:
    """(N, length) float32 mono clips at ``sample_rate``.

    With ``strict`` (FSDD), a recording that is not mono at ``sample_rate`` is an error naming
    the file rather than silently converted: a folder that mixes in other recordings is a data
    problem worth seeing.
    """
    out = np.zeros((len(paths), length), dtype=np.float32)
    for i, p in enumerate(paths):
        if strict:
            info = audio_info(p)
            if info.channels != 1 or info.sample_rate != sample_rate:
                raise DataError(p, f"expected a mono {sample_rate} Hz recording, got {info.channels} channel(s) "
                                   f"at {info.sample_rate} Hz")
        wave, _ = read_audio(p, sample_rate=sample_rate, mono=True)
        out[i] = fit_length(wave, length)
    return out


@torch.no_grad()
def clip_features(waves: np.ndarray, batch: int = 256) -> np.ndarray:
    """(N, T) clips → (N, 1, n_mels, n_frames) dB log-mel features."""
    t = digit_transform().eval()
    feats = [t(torch.from_numpy(np.ascontiguousarray(waves[i:i + batch]))).numpy()
             for i in range(0, len(waves), batch)]
    return np.concatenate(feats) if feats else np.zeros((0, 1, TRANSFORM["n_mels"], TRANSFORM["n_frames"]), np.float32)


def images_to_float(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) → float32 (N, 1, 28, 28) in [0, 1]."""
    return (np.asarray(images, dtype=np.float32) / 255.0)[:, None]
