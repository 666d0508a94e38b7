"""Closed-form anomaly detectors: the honest baselines beside the VAE, fitted on normal windows
without gradient descent, each usable with ``anomaly fit / score / export / listen``.

- :class:`PCADetector` (``pca``): principal components of the standardised log-mel frames; the
  score of a window is the mean (``mse``) or largest (``frame_max``) squared reconstruction error
  of its frames.
- :class:`GaussianStatsDetector` (``gaussian_stats``): a Gaussian (Ledoit-Wolf shrunk covariance)
  of the windows' statistics (:func:`latentbridge.transforms.stats.window_statistics`: band and
  cepstral means and spreads over the active frames); the score is the Mahalanobis distance.
- :class:`KNNStatsDetector` (``knn_stats``): the distance of the standardised statistics to the
  nearest ``k`` training windows' (mean over the k).

The statistics of both keep the window's level in every band mean (the plain baselines), or, with
``separate_level: true`` (the default of ``knn_stats``, which ``anomaly fit`` uses when no preset is
given), split it out: band means relative to their average, the cepstra without c0, and the level
(the average band mean, dB) as one feature of its own — so that a gain change counts as one feature
among the others instead of dominating all 2·bands+1 level-bearing ones, and is still a cue
(measured in ``benchmarks/bench_detection.py``).

All are :class:`WindowDetector`: same input (C, F, T) windows, per-sample ``score``, a
``forward`` whose ``losses`` hold the scores (so the ONNX scoring graph and the edge scorer work
unchanged), ``fit_closed_form(features)``; ``trainable = False`` tells the fit pipeline to call
that instead of the trainer.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

from latentbridge.models.base import ModelFamily, ModelSpec
from latentbridge.models.outputs import AutoencoderOutput
from latentbridge.nn.conv import FeatureNormalizer
from latentbridge.transforms.stats import dct_matrix, separate_level, squared_distances, window_statistics

log = logging.getLogger(__name__)


class PCAConfig(ModelSpec):
    name: Literal["pca"] = "pca"
    n_components: int = Field(16, gt=0)
    """Principal components kept (at most the number of bands)."""


class GaussianStatsConfig(ModelSpec):
    name: Literal["gaussian_stats"] = "gaussian_stats"
    n_mfcc: int = Field(20, gt=0)
    top_db: float = Field(40.0, gt=0)
    """Frames more than this far below the window's loudest frame are silence (left out)."""
    separate_level: bool = False
    """The window's level as one feature of its own (band means relative to it, no c0) instead of
    inside every band mean."""


class KNNStatsConfig(GaussianStatsConfig):
    name: Literal["knn_stats"] = "knn_stats"  # type: ignore[assignment]
    k: int = Field(1, gt=0)
    """Neighbours averaged (1: the nearest-neighbour distance)."""
    separate_level: bool = True
    max_bank: int = Field(20000, gt=0)
    """Training windows kept as neighbours at most (a seeded subset of a larger training set)."""


class WindowDetector(ModelFamily, nn.Module):
    """Base of the closed-form detectors over (C, F, T) feature windows."""

    tasks = ("anomaly",)
    trainable: ClassVar[bool] = False
    score_methods: ClassVar[tuple[str, ...]] = ()
    deterministic_scores: ClassVar[tuple[str, ...]] = ()
    default_score: ClassVar[str] = ""
    has_reconstruction: ClassVar[bool] = False

    def __init__(self, input_shape, **params: Any):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.params = dict(params)
        c, f, _ = self.input_shape
        self.normalizer = FeatureNormalizer(c, f)
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def config(self) -> dict[str, Any]:
        return {"input_shape": list(self.input_shape), **self.params}

    def check_input(self, x: Tensor) -> None:
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"{type(self).__name__} expects inputs of shape (B, {self.input_shape}), "
                             f"got {tuple(x.shape)}")

    def fit_normalizer(self, x: Tensor) -> None:
        self.normalizer.fit(x)

    @property
    def all_scores(self) -> tuple[str, ...]:
        return self.score_methods

    def supports_score(self, method: str) -> bool:
        return method in self.score_methods

    def scores(self, x: Tensor) -> tuple[dict[str, Tensor], Tensor, Tensor]:  # pragma: no cover - abstract
        """(scores by name, reconstruction or the input, a latent per window)."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> AutoencoderOutput:
        self.check_input(x)
        scores, rec, latent = self.scores(x)
        return AutoencoderOutput(reconstruction=rec, latent=latent, losses=scores)

    def score(self, x: Tensor, method: str | None = None, n_samples: int = 0,
              generator: torch.Generator | None = None) -> Tensor:
        method = method or self.default_score
        if method not in self.score_methods:
            raise ValueError(f"{type(self).__name__} supports scores {self.score_methods}, not {method!r}")
        if not bool(self.fitted):
            raise ValueError(f"{type(self).__name__} is not fitted (fit_closed_form on normal windows)")
        return self.forward(x).losses[method]

    def loss(self, x: Tensor, beta: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        """The default score as a per-sample 'loss' (nothing to train: ``trainable`` is False)."""
        out = self.forward(x)
        return out.losses[self.default_score], dict(out.losses)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        return self.forward(x).reconstruction

    def example_batch(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        c, f, t = self.input_shape
        base = torch.linspace(-60, -20, f).view(1, 1, f, 1)
        return base + 5 * torch.randn(n, c, f, t, generator=generator)

    def fit_closed_form(self, features: np.ndarray, seed: int = 0) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError


class PCADetector(WindowDetector):
    """PCA reconstruction error of standardised log-mel frames (a linear autoencoder of frames)."""

    name = "pca"
    config_class = PCAConfig
    score_methods = ("mse", "frame_max")
    deterministic_scores = ("mse", "frame_max")
    default_score = "mse"
    has_reconstruction = True

    def __init__(self, input_shape, n_components: int = 16):
        super().__init__(input_shape, n_components=int(n_components))
        c, f, _ = self.input_shape
        k = min(int(n_components), c * f)
        self.k = k
        self.register_buffer("mean", torch.zeros(c * f))
        self.register_buffer("components", torch.zeros(k, c * f))

    def _frames(self, xn: Tensor) -> Tensor:
        b, c, f, t = xn.shape
        return xn.reshape(b, c * f, t).transpose(1, 2)  # (B, T, C·F)

    def scores(self, x: Tensor):
        xn = self.normalizer(x)
        v = self._frames(xn) - self.mean
        rec = (v @ self.components.T) @ self.components
        err = (rec - v).pow(2).mean(-1)  # (B, T)
        b, c, f, t = xn.shape
        x_hat = self.normalizer.inverse((rec + self.mean).transpose(1, 2).reshape(b, c, f, t))
        latent = (v @ self.components.T).mean(1)
        return {"mse": err.mean(1), "frame_max": err.amax(1)}, x_hat, latent

    @torch.no_grad()
    def fit_closed_form(self, features: np.ndarray, seed: int = 0) -> dict:
        x = self._frames(self.normalizer(torch.from_numpy(np.ascontiguousarray(features)))).reshape(-1, self.mean.numel())
        x = x.double()
        mean = x.mean(0)
        _, s, vt = torch.linalg.svd(x - mean, full_matrices=False)
        self.mean.copy_(mean.float())
        self.components.copy_(vt[: self.k].float())
        self.fitted.fill_(True)
        var = s.pow(2)
        return {"explained_variance": float(var[: self.k].sum() / var.sum().clamp_min(1e-12))}


class GaussianStatsDetector(WindowDetector):
    """Mahalanobis distance of a window's statistics under a shrunk Gaussian of the training windows'."""

    name = "gaussian_stats"
    config_class = GaussianStatsConfig
    score_methods = ("mahalanobis",)
    deterministic_scores = ("mahalanobis",)
    default_score = "mahalanobis"
    reads_active_frames: ClassVar[bool] = True
    """Statistics over the frames within ``top_db`` of the loudest: the silence of a padded window is not read."""

    def __init__(self, input_shape, n_mfcc: int = 20, top_db: float = 40.0, separate_level: bool = False, **params):
        super().__init__(input_shape, n_mfcc=int(n_mfcc), top_db=float(top_db), separate_level=bool(separate_level),
                         **params)
        c, f, _ = self.input_shape
        self.top_db = float(top_db)
        self.separate_level = bool(separate_level)
        self.register_buffer("dct", dct_matrix(min(int(n_mfcc), f), f))
        d = c * (2 * f + 2 * self.dct.shape[0])  # each channel's statistics (the axes of a multi-axis sensor)
        self.dim = d
        self.register_buffer("stat_mean", torch.zeros(d))
        self.register_buffer("stat_std", torch.ones(d))
        self.register_buffer("precision", torch.eye(d))

    def statistics(self, x: Tensor) -> Tensor:
        """Standardised window statistics (B, D)."""
        return (self.raw_statistics(x) - self.stat_mean) / self.stat_std

    def raw_statistics(self, x: Tensor) -> Tensor:
        """(B, C, F, T) → (B, D): :func:`window_statistics` of each channel on its own (its active frames, its
        cepstra, its level), side by side."""
        b, c, f, t = x.shape
        s = window_statistics(x.reshape(b * c, 1, f, t), self.dct, self.top_db)
        s = separate_level(s, f) if self.separate_level else s
        return s.reshape(b, -1)

    def scores(self, x: Tensor):
        s = self.statistics(x)
        return {"mahalanobis": torch.einsum("bi,ij,bj->b", s, self.precision, s)}, x, s

    @torch.no_grad()
    def _fit_standardisation(self, features: np.ndarray) -> Tensor:
        from latentbridge.utils import batched

        raw = batched(self.raw_statistics, features).double()
        self.stat_mean.copy_(raw.mean(0).float())
        self.stat_std.copy_(raw.std(0).clamp_min(1e-6).float())
        return (raw.float() - self.stat_mean) / self.stat_std

    def fit_closed_form(self, features: np.ndarray, seed: int = 0) -> dict:
        from sklearn.covariance import LedoitWolf

        s = self._fit_standardisation(features)
        if len(s) < 2:  # one window: no covariance to estimate, the identity
            self.precision.copy_(torch.eye(s.shape[1]))
            shrinkage = 1.0
        else:
            lw = LedoitWolf(assume_centered=True).fit(s.double().numpy())
            self.precision.copy_(torch.from_numpy(lw.precision_).float())
            shrinkage = float(lw.shrinkage_)
        self.fitted.fill_(True)
        return {"shrinkage": shrinkage, "n_windows": int(len(s))}


class KNNStatsDetector(GaussianStatsDetector):
    """Distance of a window's standardised statistics to its nearest training windows'."""

    name = "knn_stats"
    config_class = KNNStatsConfig
    score_methods = ("knn", "knn_channel_max")
    deterministic_scores = ("knn", "knn_channel_max")
    default_score = "knn"

    def __init__(self, input_shape, n_mfcc: int = 20, top_db: float = 40.0, separate_level: bool = False, k: int = 1,
                 max_bank: int = 20000, bank_size: int = 0, channel_scale: list[float] | None = None):
        super().__init__(input_shape, n_mfcc=n_mfcc, top_db=top_db, separate_level=separate_level, k=int(k),
                         max_bank=int(max_bank), bank_size=int(bank_size),
                         **({"channel_scale": [float(v) for v in channel_scale]} if channel_scale else {}))
        self.k = int(k)
        self.register_buffer("bank", torch.zeros(int(bank_size), self.dim))

    def _nearest(self, s: Tensor, bank: Tensor, exclude: Tensor | None = None) -> Tensor:
        """Mean distance of each row of ``s`` to its k nearest rows of ``bank`` (``exclude``: for each row, the
        index of its own copy in ``bank``, left out)."""
        d2 = squared_distances(s, bank)
        if exclude is not None:
            d2[torch.arange(len(s)), exclude] = float("inf")
        k = min(self.k, d2.shape[1] - (1 if exclude is not None else 0))
        return d2.topk(max(k, 1), dim=1, largest=False).values.clamp_min(0).sqrt().mean(1)

    def scores(self, x: Tensor):
        """``knn``: the distance of the whole window's statistics (every channel) to the nearest training windows';
        ``knn_channel_max``: each channel's own nearest-neighbour distance over its training windows' median, the
        largest of them (a fault on one axis of many is not diluted by the others' distances)."""
        s = self.statistics(x)
        knn = self._nearest(s, self.bank)
        c = self.input_shape[0]
        scale = self.params.get("channel_scale") or [1.0] * c
        if c == 1:
            per_channel = knn / scale[0]
        else:
            w = s.shape[1] // c
            per_channel = torch.stack([self._nearest(s[:, j * w:(j + 1) * w], self.bank[:, j * w:(j + 1) * w])
                                       / scale[j] for j in range(c)], dim=1).amax(1)
        return {"knn": knn, "knn_channel_max": per_channel}, x, s

    @torch.no_grad()
    def fitted_windows(self, x: Tensor) -> Tensor:
        """Whether each window of ``x`` is one the bank holds (its statistics equal a stored row's, to rounding):
        scored against itself, its distance is 0, which says nothing of how far new normal windows lie."""
        s = self.statistics(x)
        gap = (s - self.bank[squared_distances(s, self.bank).argmin(1)]).pow(2).sum(1)
        return gap <= 1e-8 * (1.0 + s.pow(2).sum(1))

    @torch.no_grad()
    def fit_closed_form(self, features: np.ndarray, seed: int = 0) -> dict:
        s = self._fit_standardisation(features)
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.permutation(len(s))[: self.params["max_bank"]])
        self.bank = s[keep].clone()
        self.params["bank_size"] = int(len(keep))
        if self.k > len(keep):  # the mean over k neighbours would be over every training window there is
            log.warning("model.k = %d, but the bank holds %d training windows: each score is the mean distance to all "
                        "%d of them (set k below the training window count)", self.k, len(keep), len(keep))
        # each channel's scale: the median leave-one-out distance of (up to 2000) training windows in that channel
        c, w = self.input_shape[0], s.shape[1] // self.input_shape[0]
        ref = torch.from_numpy(np.sort(rng.permutation(len(keep))[:2000]))
        if len(keep) > 1:  # 256 reference windows at a time: a (256, bank) distance matrix, not (2000, bank)
            self.params["channel_scale"] = [max(float(torch.cat([self._nearest(
                self.bank[ref[i:i + 256], j * w:(j + 1) * w], self.bank[:, j * w:(j + 1) * w], exclude=ref[i:i + 256])
                for i in range(0, len(ref), 256)]).median()), 1e-6) for j in range(c)]
        self.fitted.fill_(True)
        return {"n_neighbours_stored": int(len(keep))}
