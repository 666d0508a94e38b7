"""Closed-form anomaly detectors: the honest baselines beside the VAE, fitted on normal windows
without gradient descent, each usable with ``anomaly fit / score / export / listen``.

- :class:`PCADetector` (``pca``): principal components of the standardised log-mel frames; the
  score of a window is the mean (``mse``) or largest (``frame_max``) squared reconstruction error
  of its frames.
- :class:`GaussianStatsDetector` (``gaussian_stats``): a Gaussian (Ledoit-Wolf shrunk covariance)
  of the windows' statistics (:func:`latentbridge.transforms.stats.window_statistics`: band and
  cepstral means and spreads over the active frames); the score is the Mahalanobis distance.
- :class:`KNNStatsDetector` (``knn_stats``): the distance of the standardised statistics to the
  nearest ``k`` training windows' (mean over the k); with ``timing``, the level envelope's autocorrelation
  beside them (:func:`latentbridge.transforms.stats.envelope_autocorrelation`: events late or missing); with
  ``duration``, the window's longest event against the training windows' (:func:`~latentbridge.transforms.stats.
  longest_event`: an event that lasts too long), in quadrature with the distance.

The statistics of both keep the window's level in every band mean (the plain baselines), or, with
``separate_level: true`` (the default of ``knn_stats``, which ``anomaly fit`` uses when no preset is
given), split it out: band means relative to their average, the cepstra without c0, and the level
(the average band mean, dB) as one feature of its own — so that a gain change counts as one feature
among the others instead of dominating all 2·bands+1 level-bearing ones, and is still a cue
(measured in ``benchmarks/bench_detection.py``).

Both statistics detectors divide a window's scores by what normal windows that fill the same share of
their frames score, over whole ones (``length_factor``, measured at fit on training windows cut short):
a recording shorter than the window, padded with silence, is read from fewer frames, whose statistics
scatter more, and scored by the whole windows' threshold it was flagged however normal.

All are :class:`WindowDetector`: same input (C, F, T) windows, per-sample ``score``, a
``forward`` whose ``losses`` hold the scores (so the ONNX scoring graph and the edge scorer work
unchanged), ``fit_closed_form(features)``; ``trainable = False`` tells the fit pipeline to call
that instead of the trainer.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

from latentbridge.models.base import ModelFamily, ModelSpec, inference
from latentbridge.models.outputs import AutoencoderOutput
from latentbridge.nn.conv import FeatureNormalizer
from latentbridge.transforms.stats import (dct_matrix, envelope_autocorrelation, filled_frames, longest_event,
                                           separate_level, squared_distances, window_statistics)

log = logging.getLogger(__name__)

#: shares of a window's frames at which the statistics detectors' scores are calibrated for recordings that fill
#: only part of a window (:meth:`GaussianStatsDetector.fit_length_scale`); a uniform grid up to the whole window
LENGTH_GRID = tuple(round(0.1 * i, 1) for i in range(1, 11))
#: training windows cut to each share of the grid for the calibration, and windows a share needs to be measured
LENGTH_REFS, LENGTH_MIN_COUNT = 512, 20
#: training windows of recordings shorter than a window (padded) from this share of them on: no windows are cut, the
#: factors stay 1 (the training set's own short recordings are among the reference)
LENGTH_PARTIAL_SHARE = 0.05


#: the share of the training windows whose longest event a window's may reach without a word (``duration``; chosen
#: on benchmarks/README.md §3's duration sets and normal events of varied length)
EVENT_QUANTILE = 0.75


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
    timing: float = Field(0.0, ge=0)
    """Weight of the window's level envelope autocorrelation beside the statistics (standardised, each lag times
    this): when in the window the sound is loud. 0: the statistics alone; ``anomaly fit`` chooses 0.5 for sound in
    short events (the median recording loud in under a quarter of its frames), where a late or missing event is a
    fault the statistics miss."""
    duration: float = Field(0.0, ge=0)
    """Weight of the window's longest event (:func:`latentbridge.transforms.stats.longest_event`) beside the
    statistics' distance: by how many training standard deviations (at least one frame) it lasts longer than 75 % of
    the training windows' longest events, times this, added in quadrature to the nearest-neighbour distance (an
    event that lasts too long; one shorter than usual adds nothing). 0: not read; ``anomaly fit`` chooses 8 for sound
    in short events (dB features)."""


class WindowDetector(ModelFamily, nn.Module):
    """Base of the closed-form detectors over (C, F, T) feature windows."""

    tasks = ("anomaly",)
    trainable: ClassVar[bool] = False
    score_methods: ClassVar[tuple[str, ...]] = ()
    deterministic_scores: ClassVar[tuple[str, ...]] = ()
    default_score: ClassVar[str] = ""
    has_reconstruction: ClassVar[bool] = False
    #: a window's frames are read as a set (statistics over them, or one at a time): not when within it things happen
    reads_frame_order: ClassVar[bool] = False

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

    @inference
    def reconstruct(self, x: Tensor) -> Tensor:
        return self.forward(x).reconstruction

    def example_batch(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        c, f, t = self.input_shape
        base = torch.linspace(-60, -20, f).view(1, 1, f, 1)
        return base + 5 * torch.randn(n, c, f, t, generator=generator)

    def fit_closed_form(self, features: np.ndarray, seed: int = 0, groups: np.ndarray | None = None,
                        short: np.ndarray | None = None) -> dict:  # pragma: no cover - abstract
        """Fit on normal windows ``features`` (N, C, F, T); ``groups``: each window's recording (an index);
        ``short``: True for the windows of recordings shorter than one window (padded)."""
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
    def fit_closed_form(self, features: np.ndarray, seed: int = 0, groups: np.ndarray | None = None,
                        short: np.ndarray | None = None) -> dict:
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
    n_lags: ClassVar[int] = 0
    """Lags of the level envelope's autocorrelation beside the statistics (``KNNStatsDetector``'s ``timing``)."""
    timing: float = 0.0
    n_events: ClassVar[int] = 0
    """1 where the window's longest event is the last column (``KNNStatsDetector``'s ``duration``), else 0."""
    duration: float = 0.0

    def __init__(self, input_shape, n_mfcc: int = 20, top_db: float = 40.0, separate_level: bool = False,
                 length_scale: dict[str, list[float]] | None = None, **params):
        super().__init__(input_shape, n_mfcc=int(n_mfcc), top_db=float(top_db), separate_level=bool(separate_level),
                         **params, **({"length_scale": length_scale} if length_scale else {}))
        c, f, _ = self.input_shape
        self.top_db = float(top_db)
        self.separate_level = bool(separate_level)
        self.register_buffer("dct", dct_matrix(min(int(n_mfcc), f), f))
        d = c * (2 * f + 2 * self.dct.shape[0])  # each channel's statistics (the axes of a multi-axis sensor)
        self.channel_dim = d // c
        d += self.n_lags + self.n_events  # and the envelope's autocorrelation and the longest event, one for all
        # channels (KNNStatsDetector's timing and duration)
        self.dim = d
        self.register_buffer("stat_mean", torch.zeros(d))
        self.register_buffer("stat_std", torch.ones(d))
        self.register_buffer("precision", torch.eye(d))
        # (in config.json, not the weights: a folder written before the calibration loads with factors of 1)
        self.register_buffer("length_grid", torch.tensor(LENGTH_GRID), persistent=False)
        self.register_buffer("length_table", torch.ones(len(self.score_methods), len(LENGTH_GRID)), persistent=False)
        if length_scale:
            self.length_table.copy_(torch.tensor([length_scale[m] for m in self.score_methods]))

    def statistics(self, x: Tensor) -> Tensor:
        """Standardised window statistics (B, D)."""
        return self._weighted((self.raw_statistics(x) - self.stat_mean) / self.stat_std)

    def _weighted(self, s: Tensor) -> Tensor:
        """Standardised statistics (B, D) with the envelope's autocorrelation times ``timing`` and the longest event
        times ``duration``, last."""
        if not self.n_lags + self.n_events:
            return s
        d = s.shape[1] - self.n_lags - self.n_events
        return torch.cat([s[:, :d], self.timing * s[:, d:d + self.n_lags], self.duration * s[:, d + self.n_lags:]],
                         dim=1)

    def raw_statistics(self, x: Tensor) -> Tensor:
        """(B, C, F, T) → (B, D): :func:`window_statistics` of each channel on its own (its active frames, its
        cepstra, its level), side by side; then, with ``timing``, :func:`envelope_autocorrelation` at lags up to half
        the window, and with ``duration`` the window's :func:`longest_event`."""
        b, c, f, t = x.shape
        s = window_statistics(x.reshape(b * c, 1, f, t), self.dct, self.top_db)
        s = (separate_level(s, f) if self.separate_level else s).reshape(b, -1)
        return torch.cat([s, *([envelope_autocorrelation(x, self.n_lags)] if self.n_lags else []),
                          *([longest_event(x).unsqueeze(1)] if self.n_events else [])], dim=1)

    def filled_share(self, x: Tensor) -> Tensor:
        """(B, C, F, T) → (B,): the share of the window's frames that hold any signal in any channel (padding
        silences every channel alike; one dead channel of three is no shorter recording). A frame of one value in
        every band is digital silence (as :func:`latentbridge.data.audio.silent_frame_shares` reads it): the padding of
        a recording shorter than the window (or a muted input), never sound, however quiet (an impact over a hum
        leaves the hum's frames out of the statistics, 40 dB below it, but they are filled)."""
        return filled_frames(x).mean(1)

    @property
    def length_calibrated(self) -> bool:
        """Whether any factor of the table differs from 1 (a model fitted before the calibration, or on a training
        set with short recordings of its own, scores as it did, to the bit)."""
        return bool(self.params.get("length_scale")) and bool((self.length_table != 1.0).any())

    def length_factor(self, x: Tensor) -> Tensor:
        """(B, C, F, T) → (B, score methods): what each score of normal windows filling this share of their frames
        (:meth:`filled_share`) is, in typical training windows' scores (1 for whole windows, and for a window of
        digital silence alone, whose score is no short recording's; linear between the points of
        :data:`LENGTH_GRID`, the first point's below it)."""
        step = LENGTH_GRID[1] - LENGTH_GRID[0]
        share = self.filled_share(x)
        r = torch.where(share > 0, share, torch.ones_like(share)).clamp(LENGTH_GRID[0], 1.0)
        w = (1.0 - (r.unsqueeze(1) - self.length_grid).abs() / step).clamp_min(0.0)  # (B, grid): hat functions
        return w @ self.length_table.T

    def stat_scores(self, s: Tensor, precision: Tensor | None = None) -> dict[str, Tensor]:
        """Each score of standardised statistics ``s`` (B, D), before the length calibration (``precision``:
        another than the model's)."""
        return {"mahalanobis": torch.einsum("bi,ij,bj->b", s, self.precision if precision is None else precision, s)}

    def scores(self, x: Tensor):
        """The scores of :meth:`stat_scores` over the window's :meth:`length_factor`: a normal recording that fills
        a fifth of the window scores as a whole window does, though its statistics, read from fewer frames, scatter
        more (normal clips of a fitted machine set cut to a quarter of the window were all flagged)."""
        s = self.statistics(x)
        if not self.length_calibrated:
            return self.stat_scores(s), x, s
        factor = self.length_factor(x)
        return {m: v / factor[:, i] for i, (m, v) in enumerate(self.stat_scores(s).items())}, x, s

    @torch.no_grad()
    def fit_length_scale(self, features: np.ndarray, rows: np.ndarray, held_out: Callable[[Tensor, slice], dict],
                         short: np.ndarray | None = None):
        """Calibrate :meth:`length_factor`: training windows ``features[rows]`` cut to each share of
        :data:`LENGTH_GRID` of their frames (the rest one value below the active frames' floor, as silence pads a
        short recording), scored by ``held_out(statistics, positions in rows)`` as new recordings (their own
        recording's windows left out: a window that overlaps the one cut holds its frames); each grid point's
        factor is the median score of the windows whose share lies nearest it over the median score of the whole
        windows, at least 1 and never smaller at a smaller share; points with fewer than :data:`LENGTH_MIN_COUNT`
        windows (or half the windows cut) follow their neighbours. Normal clips of machine hum 0.5 ... 1.6 s long
        scored by a model of 2-s windows needed factors within 4 % of the table's; leaving out only the window
        itself, they were flagged to 16 times in 40 (1.1 s; whole ones once).

        A training set with short recordings of its own (``short``: :data:`LENGTH_PARTIAL_SHARE` of the windows
        padded; not windows with gaps of digital silence: a dropout is no short recording) keeps factors of 1: its
        short recordings are among the reference, and cut windows of speech or events (a word's first syllables) are
        unlike a short recording of a whole one. Measured on FSDD speaker tasks: cut windows gave factors to 2.5 and
        the unseen speaker's shorter clips AUC 0.98 -> 0.83; the training set's own short windows score 1.0-1.2 times
        the median, and dividing by that still cost 0.98 -> 0.97 (benchmarks/README.md §3)."""
        x = torch.from_numpy(np.ascontiguousarray(features[rows]))
        t = x.shape[-1]
        self.length_table.fill_(1.0)
        self.params["length_scale"] = dict(zip(self.score_methods, self.length_table.tolist()))
        if short is not None and float(np.mean(short)) >= LENGTH_PARTIAL_SHARE:
            return
        floor = x.amin(dim=(1, 2, 3), keepdim=True) - self.top_db - 1.0
        shares, scores = [], []
        for g in LENGTH_GRID:
            cut = x.clone()
            cut[..., max(1, int(round(g * t))):] = floor
            for i in range(0, len(cut), 256):
                part = cut[i:i + 256]
                shares.append(self.filled_share(part))
                raw = held_out(self.statistics(part), slice(i, i + 256))
                scores.append(torch.stack([raw[m] for m in self.score_methods], dim=1))
        share, score = torch.cat(shares), torch.cat(scores).double()
        whole = score[-len(x):].median(0).values.clamp_min(1e-12)  # the last share of the grid: the windows uncut
        grid = torch.tensor(LENGTH_GRID, dtype=share.dtype)
        nearest = (share.unsqueeze(1) - grid).abs().argmin(1)
        table = torch.full((len(self.score_methods), len(grid)), float("nan"), dtype=torch.float64)
        enough = min(LENGTH_MIN_COUNT, max(3, len(x) // 2))  # (a small training set: half its windows)
        for j in range(len(grid)):
            if int((nearest == j).sum()) >= enough:
                table[:, j] = score[nearest == j].median(0).values / whole
        measured = ~torch.isnan(table[0])
        if not bool(measured.any()):
            return
        points = torch.nonzero(measured).flatten().numpy()
        for m in range(len(table)):
            row = np.interp(np.arange(len(grid)), points, table[m, points].numpy())
            row[points[-1] + 1:] = 1.0  # a larger share than any measured: the whole windows' scores
            row = np.maximum.accumulate(np.maximum(row, 1.0)[::-1])[::-1]  # never smaller at a smaller share
            table[m] = torch.from_numpy(row.copy())
        self.length_table.copy_(table.float())
        self.params["length_scale"] = dict(zip(self.score_methods, self.length_table.tolist()))

    @torch.no_grad()
    def _fit_standardisation(self, features: np.ndarray) -> Tensor:
        from latentbridge.utils import batched

        raw = batched(self.raw_statistics, features).double()
        self.stat_mean.copy_(raw.mean(0).float())
        self.stat_std.copy_(raw.std(0).clamp_min(1e-6).float())
        if self.n_events:  # the longest event counted from the training windows' upper quartile, not their mean
            # (normal events of varied length, 30-300 ms: 5 of 60 normal files flagged from the mean, 4 from the upper
            # quartile, 2 from the 95th percentile, 0 without; a burst three / two times as long: 0.99 / 0.86 from the
            # upper quartile, 0.95 / 0.68 from the 95th percentile), in their spread, at least one frame
            self.stat_mean[-1] = float(torch.quantile(raw[:, -1], EVENT_QUANTILE))
            self.stat_std[-1].clamp_(min=1.0)
        return self._weighted((raw.float() - self.stat_mean) / self.stat_std)

    def fit_closed_form(self, features: np.ndarray, seed: int = 0, groups: np.ndarray | None = None,
                        short: np.ndarray | None = None) -> dict:
        """``groups``: each window's recording (its index), for the length calibration's held-out scores;
        ``short``: True for the windows of recordings shorter than one window (padded)."""
        s = self._fit_standardisation(features)
        if len(s) < 2:  # one window: no covariance to estimate, the identity
            self.precision.copy_(torch.eye(s.shape[1]))
            shrinkage = 1.0
        else:
            precision, shrinkage = _shrunk_precision(s)
            self.precision.copy_(precision)
            rows = np.sort(np.random.default_rng(seed).permutation(len(s))[:LENGTH_REFS])
            self.fit_length_scale(features, rows, self._held_out_scorer(s, rows, groups, seed), short)
        self.fitted.fill_(True)
        return {"shrinkage": shrinkage, "n_windows": int(len(s))}

    def _held_out_scorer(self, s: Tensor, rows: np.ndarray, groups: np.ndarray | None, seed: int):
        """Scores of ``rows`` as new recordings: the recordings in two folds, each row's Mahalanobis distance under
        the Gaussian of the other fold's windows (one recording, or none named: the model's own)."""
        names = np.unique(groups) if groups is not None else np.zeros(0)
        if len(names) < 2:
            return lambda stats, part: self.stat_scores(stats)
        fold_of = dict(zip(names, np.random.default_rng(seed).permutation(len(names)) % 2))
        fold = torch.from_numpy(np.array([fold_of[g] for g in groups]))
        other = [_shrunk_precision(s[fold != k])[0] if int((fold != k).sum()) > 1 else self.precision for k in (0, 1)]
        first = fold[torch.from_numpy(rows)] == 0  # rows of the first fold, scored under the second's Gaussian

        def held_out(stats: Tensor, part: slice) -> dict[str, Tensor]:
            a, b = (self.stat_scores(stats, p)["mahalanobis"] for p in other)
            return {"mahalanobis": torch.where(first[part], a, b)}

        return held_out


def _shrunk_precision(s: Tensor) -> tuple[Tensor, float]:
    """The Ledoit-Wolf shrunk precision of centred standardised statistics (N, D), and its shrinkage."""
    from sklearn.covariance import LedoitWolf

    lw = LedoitWolf(assume_centered=True).fit(s.double().numpy())
    return torch.from_numpy(lw.precision_).float(), float(lw.shrinkage_)


class KNNStatsDetector(GaussianStatsDetector):
    """Distance of a window's standardised statistics to its nearest training windows'."""

    name = "knn_stats"
    config_class = KNNStatsConfig
    score_methods = ("knn", "knn_channel_max")
    deterministic_scores = ("knn", "knn_channel_max")
    default_score = "knn"

    def __init__(self, input_shape, n_mfcc: int = 20, top_db: float = 40.0, separate_level: bool = False, k: int = 1,
                 max_bank: int = 20000, bank_size: int = 0, channel_scale: list[float] | None = None,
                 length_scale: dict[str, list[float]] | None = None, timing: float = 0.0, duration: float = 0.0):
        self.timing, self.duration = float(timing), float(duration)  # (before the statistics' width is counted)
        self.n_lags = int(input_shape[-1]) // 2 if self.timing > 0 else 0
        self.n_events = 1 if self.duration > 0 else 0
        super().__init__(input_shape, n_mfcc=n_mfcc, top_db=top_db, separate_level=separate_level,
                         length_scale=length_scale, k=int(k),
                         max_bank=int(max_bank), bank_size=int(bank_size),
                         **({"channel_scale": [float(v) for v in channel_scale]} if channel_scale else {}),
                         **({"timing": self.timing} if self.timing > 0 else {}),
                         **({"duration": self.duration} if self.duration > 0 else {}))
        self.k = int(k)
        self.register_buffer("bank", torch.zeros(int(bank_size), self.dim))

    def _nearest(self, s: Tensor, bank: Tensor, leave_out: Tensor | None = None) -> Tensor:
        """Mean distance of each row of ``s`` to its k nearest rows of ``bank`` (``leave_out``: (rows, bank) True
        where a bank row is left out of that row's neighbours)."""
        d2 = squared_distances(s, bank)
        if leave_out is not None:
            d2 = d2.masked_fill(leave_out, float("inf"))
        k = min(self.k, d2.shape[1] - (int(leave_out.sum(1).max()) if leave_out is not None else 0))
        return d2.topk(max(k, 1), dim=1, largest=False).values.clamp_min(0).sqrt().mean(1)

    def stat_scores(self, s: Tensor, leave_out: Tensor | None = None) -> dict[str, Tensor]:
        """``knn``: the distance of the whole window's statistics (every channel) to the nearest training windows';
        ``knn_channel_max``: each channel's own nearest-neighbour distance over its training windows' median, the
        largest of them (a fault on one axis of many is not diluted by the others' distances). ``leave_out``: bank
        rows left out of each row's neighbours (:meth:`_nearest`). With ``duration``, the longest event's excess
        over the training windows' upper quartile (in their standard deviations, weighted, where positive) is added
        to each in quadrature."""
        d = self.dim - self.n_events
        knn = self._with_event(self._nearest(s[:, :d], self.bank[:, :d], leave_out), s)
        c = self.input_shape[0]
        scale = self.params.get("channel_scale") or [1.0] * c
        if c == 1:
            per_channel = knn / scale[0]
        else:
            per_channel = torch.stack([self._with_event(self._nearest(self._channel(s, j), self._channel(self.bank, j),
                                                                      leave_out), s) / scale[j] for j in range(c)],
                                      dim=1).amax(1)
        return {"knn": knn, "knn_channel_max": per_channel}

    def _with_event(self, distance: Tensor, s: Tensor) -> Tensor:
        """``distance`` (B,) with the longest event's weighted excess of standardised statistics ``s`` in quadrature
        (itself where ``duration`` is 0)."""
        if not self.n_events:
            return distance
        return torch.sqrt(distance * distance + s[:, -1].clamp_min(0.0) ** 2)

    def _channel(self, s: Tensor, j: int) -> Tensor:
        """Channel ``j``'s columns of standardised statistics (B, D), and the envelope's, which all channels share
        (not the longest event: :meth:`_with_event`)."""
        w = self.channel_dim
        own = s[:, j * w:(j + 1) * w]
        d = self.dim - self.n_events
        return torch.cat([own, s[:, d - self.n_lags:d]], dim=1) if self.n_lags else own

    @torch.no_grad()
    def fitted_windows(self, x: Tensor) -> Tensor:
        """Whether each window of ``x`` is one the bank holds (its statistics equal a stored row's, to rounding):
        scored against itself, its distance is 0, which says nothing of how far new normal windows lie."""
        s = self.statistics(x)
        gap = (s - self.bank[squared_distances(s, self.bank).argmin(1)]).pow(2).sum(1)
        return gap <= 1e-8 * (1.0 + s.pow(2).sum(1))

    @torch.no_grad()
    def fit_closed_form(self, features: np.ndarray, seed: int = 0, groups: np.ndarray | None = None,
                        short: np.ndarray | None = None) -> dict:
        """``groups``: each window's recording (its index), left out of its neighbours in the length calibration;
        ``short``: True for the windows of recordings shorter than one window (padded)."""
        s = self._fit_standardisation(features)
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.permutation(len(s))[: self.params["max_bank"]])
        self.bank = s[keep].clone()
        self.params["bank_size"] = int(len(keep))
        if self.k > len(keep):  # the mean over k neighbours would be over every training window there is
            log.warning("model.k = %d, but the bank holds %d training windows: each score is the mean distance to all "
                        "%d of them (set k below the training window count)", self.k, len(keep), len(keep))
        # each channel's scale: the median leave-one-out distance of (up to 2000) training windows in that channel
        c = self.input_shape[0]
        ref = torch.from_numpy(np.sort(rng.permutation(len(keep))[:2000]))
        if len(keep) > 1:  # 256 reference windows at a time: a (256, bank) distance matrix, not (2000, bank)
            self.params["channel_scale"] = [max(float(torch.cat([self._nearest(
                self._channel(self.bank[ref[i:i + 256]], j), self._channel(self.bank, j),
                _own_rows(ref[i:i + 256], len(keep))) for i in range(0, len(ref), 256)]).median()), 1e-6)
                for j in range(c)]
            cal = np.sort(rng.permutation(ref.numpy())[:LENGTH_REFS])  # bank rows of the length calibration
            if groups is not None and len(np.unique(groups[keep])) > 1:  # each row's recording left out
                bank_groups, row_groups = torch.from_numpy(groups[keep]), torch.from_numpy(groups[keep[cal]])
                leave = lambda part: row_groups[part].unsqueeze(1) == bank_groups  # noqa: E731
            else:
                leave = lambda part: _own_rows(torch.from_numpy(cal[part]), len(keep))  # noqa: E731
            self.fit_length_scale(features, keep[cal], lambda stats, part: self.stat_scores(stats, leave(part)), short)
        self.fitted.fill_(True)
        return {"n_neighbours_stored": int(len(keep))}


def _own_rows(rows: Tensor, n: int) -> Tensor:
    """(len(rows), n) True at each row's own index ``rows[i]`` in a bank of ``n``."""
    mask = torch.zeros(len(rows), n, dtype=torch.bool)
    mask[torch.arange(len(rows)), rows] = True
    return mask
