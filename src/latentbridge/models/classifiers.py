"""Digit classifiers that judge generated samples: MNIST images and FSDD log-mel spectrograms.

Both are small CNNs returning logits ``(B, 10)``. They are the referees of cross-modal
coherence (:func:`latentbridge.tasks.classify.coherence`), so they accept inputs as a
generative model produces them:

* :class:`MNISTClassifier` takes ``(B, 1, 28, 28)`` or ``(B, 28, 28)`` floats in ``[0, 1]``
  (values outside are clipped; uint8 arrays given to :meth:`predict` are divided by 255).
* :class:`FSDDClassifier` takes the shared dB log-mel features of
  :mod:`latentbridge.data.digits` (``(B, 1, 64, 128)``). Each spectrogram is first floored at
  ``dynamic_range_db`` below its own maximum and then standardised by its own mean and
  standard deviation, so a constant dB offset (gain), a different silence floor or a different
  overall scale of a *generated* spectrogram does not change the prediction.

``predict`` / ``predict_proba`` take a numpy array or a tensor, run in eval mode without
gradients, in batches, and return numpy arrays.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from latentbridge.models.base import ModelFamily, ModelSpec, inference
from latentbridge.utils import batched

__all__ = ["DigitClassifier", "MNISTClassifier", "FSDDClassifier"]


class MNISTClassifierConfig(ModelSpec):
    name: Literal["mnist_classifier"] = "mnist_classifier"
    channels: list[int] = Field(default_factory=lambda: [32, 64])
    dropout: float = Field(0.25, ge=0, lt=1)


class FSDDClassifierConfig(ModelSpec):
    name: Literal["fsdd_classifier"] = "fsdd_classifier"
    channels: list[int] = Field(default_factory=lambda: [16, 32, 64])
    dropout: float = Field(0.25, ge=0, lt=1)
    dynamic_range_db: float = Field(80.0, gt=0)
    time_pool: int = Field(2, ge=1)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True), nn.MaxPool2d(2))


class DigitClassifier(ModelFamily, nn.Module):
    """Common prediction helpers and the training loss; subclasses define ``input_shape`` and
    ``forward``. Training batches are dicts ``{"x": inputs, "y": digits}``."""

    n_classes = 10
    input_shape: tuple[int, int, int]
    tasks = ("classifier",)
    kind: str
    label_smoothing: float = 0.0

    def example_batch(self, n: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        x = torch.rand(n, *self.input_shape, generator=generator)
        if self.kind == "fsdd":
            x = x * 60 - 80
        return {"x": x, "y": torch.randint(0, self.n_classes, (n,), generator=generator)}

    def loss(self, batch: dict, beta: float = 1.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per-sample cross-entropy (with ``label_smoothing``) and per-sample correctness."""
        logits = self(batch["x"])
        ce = F.cross_entropy(logits, batch["y"], label_smoothing=self.label_smoothing, reduction="none")
        return ce, {"cross_entropy": ce, "accuracy": (logits.argmax(1) == batch["y"]).float()}

    def _as_tensor(self, x) -> torch.Tensor:
        if isinstance(x, np.ndarray):
            if x.dtype == np.uint8:
                x = x.astype(np.float32) / 255.0
            x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        elif isinstance(x, torch.Tensor):
            x = x.detach().float() if x.dtype != torch.uint8 else x.detach().float() / 255.0
        else:
            raise TypeError(f"expected a numpy array or a torch tensor, got {type(x).__name__}")
        if x.dim() == len(self.input_shape):  # (B, H, W): add the channel axis
            x = x.unsqueeze(1)
        if tuple(x.shape[1:]) != tuple(self.input_shape):
            raise ValueError(f"{type(self).__name__} expects inputs of shape (B, {', '.join(map(str, self.input_shape))})"
                             f", got {tuple(x.shape)}")
        return x

    @inference
    def predict_proba(self, x, batch_size: int = 512) -> np.ndarray:
        """Class probabilities ``(N, 10)`` (float32 numpy)."""
        x = self._as_tensor(x)
        if not len(x):
            return np.zeros((0, self.n_classes), dtype=np.float32)
        dev = next(self.parameters()).device
        out = batched(lambda b: torch.softmax(self(b.to(dev)), dim=1).cpu(), x, batch_size=batch_size)
        return out.numpy().astype(np.float32)

    def predict(self, x, batch_size: int = 512) -> np.ndarray:
        """Predicted digit labels ``(N,)`` (int64 numpy)."""
        return self.predict_proba(x, batch_size=batch_size).argmax(axis=1).astype(np.int64)


class MNISTClassifier(DigitClassifier):
    """CNN on ``(B, 1, 28, 28)`` images in ``[0, 1]`` → logits ``(B, 10)``.

    One block of conv-BN-ReLU + max-pool per entry of ``channels``, then a 128-unit dense
    layer with dropout.
    """

    input_shape = (1, 28, 28)
    name = "mnist_classifier"
    config_class = MNISTClassifierConfig
    kind = "mnist"

    def __init__(self, channels=(32, 64), dropout: float = 0.25):
        super().__init__()
        self.channels = [int(c) for c in channels]
        if not self.channels:
            raise ValueError("channels must not be empty")
        self.dropout = float(dropout)
        blocks, c_in, side = [], 1, 28
        for c in self.channels:
            blocks.append(_block(c_in, c))
            c_in, side = c, side // 2
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(self.dropout), nn.Linear(c_in * side * side, 128), nn.ReLU(inplace=True),
            nn.Dropout(self.dropout), nn.Linear(128, self.n_classes),
        )

    def config(self) -> dict[str, Any]:
        return {"channels": list(self.channels), "dropout": self.dropout}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        return self.head(self.features(x.clamp(0.0, 1.0)))

    @inference
    def embed(self, x, batch_size: int = 512) -> np.ndarray:
        """The 128 activations before the output layer (ReLU, eval mode), ``(N, 128)`` float64 numpy:
        the feature space of the Fréchet distance and precision / recall of generated digits."""
        x = self._as_tensor(x)
        trunk = self.head[:4]  # flatten, dropout, linear, ReLU
        out = [trunk(self.features(x[i:i + batch_size].clamp(0.0, 1.0))) for i in range(0, len(x), batch_size)]
        return torch.cat(out).double().numpy() if out else np.zeros((0, 128))


class FSDDClassifier(DigitClassifier):
    """CNN on ``(B, 1, n_mels, n_frames)`` dB log-mel spectrograms → logits ``(B, 10)``.

    Input normalisation (inside the model, per sample): floor at ``max - dynamic_range_db``,
    then subtract the mean and divide by the standard deviation. Frames are averaged in groups
    of ``time_pool`` (16 ms instead of 8 ms: 3x faster, no loss of accuracy), then one block
    of conv-BN-ReLU + max-pool per entry of ``channels``, average and max pooling over time
    (not frequency: which mel bands a pattern occupies matters), and a dense layer with dropout.
    """

    name = "fsdd_classifier"
    config_class = FSDDClassifierConfig
    kind = "fsdd"

    def __init__(self, n_mels: int = 64, n_frames: int = 128, channels=(16, 32, 64), dropout: float = 0.25,
                 dynamic_range_db: float = 80.0, time_pool: int = 2):
        super().__init__()
        self.n_mels, self.n_frames = int(n_mels), int(n_frames)
        self.channels = [int(c) for c in channels]
        if not self.channels:
            raise ValueError("channels must not be empty")
        self.dropout = float(dropout)
        self.dynamic_range_db = float(dynamic_range_db)
        self.time_pool = int(time_pool)
        if self.time_pool < 1:
            raise ValueError("time_pool must be >= 1")
        self.input_shape = (1, self.n_mels, self.n_frames)
        blocks, c_in = [], 1
        for c in self.channels:
            blocks.append(_block(c_in, c))
            c_in = c
        self.features = nn.Sequential(*blocks)
        n_freq = self.n_mels
        for _ in self.channels:
            n_freq //= 2
        if n_freq < 1:
            raise ValueError(f"{len(self.channels)} pooling blocks are too many for {self.n_mels} mel bands")
        self.head = nn.Sequential(nn.Dropout(self.dropout), nn.Linear(2 * c_in * n_freq, 64), nn.ReLU(inplace=True),
                                  nn.Dropout(self.dropout), nn.Linear(64, self.n_classes))

    def config(self) -> dict[str, Any]:
        return {"n_mels": self.n_mels, "n_frames": self.n_frames, "channels": list(self.channels),
                "dropout": self.dropout, "dynamic_range_db": self.dynamic_range_db, "time_pool": self.time_pool}

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sample floor at ``max - dynamic_range_db`` and standardisation."""
        if x.dim() == 3:
            x = x.unsqueeze(1)
        flat = x.flatten(1)
        top = flat.amax(dim=1, keepdim=True)
        flat = torch.maximum(flat, top - self.dynamic_range_db)
        mean = flat.mean(dim=1, keepdim=True)
        std = flat.std(dim=1, keepdim=True)
        return ((flat - mean) / (std + 1e-5)).view_as(x)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Conv features pooled over time only: the mel band of a pattern matters, its onset time does not."""
        h = self.normalise(x)
        if self.time_pool > 1:
            h = F.avg_pool2d(h, (1, self.time_pool), ceil_mode=True)
        h = self.features(h)
        return torch.cat([h.mean(dim=3), h.amax(dim=3)], dim=1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled(x))

    @inference
    def embed(self, x, batch_size: int = 512) -> np.ndarray:
        """The 64 activations before the output layer (ReLU, eval mode), ``(N, 64)`` float64 numpy:
        the feature space of the Fréchet distance of generated log-mels."""
        x = self._as_tensor(x)
        trunk = self.head[:3]  # dropout, linear, ReLU
        out = [trunk(self.pooled(x[i:i + batch_size])) for i in range(0, len(x), batch_size)]
        return torch.cat(out).double().numpy() if out else np.zeros((0, 64))
