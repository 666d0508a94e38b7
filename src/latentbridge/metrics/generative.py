"""Sample quality of generative models in a feature space: the Fréchet distance between Gaussian
fits of two feature sets, and the k-nearest-neighbour precision / recall manifold estimate
(Kynkäänniemi et al., 2019).

The feature space is the caller's: for digits, the penultimate layer of the MNIST classifier
(:meth:`~latentbridge.models.classifiers.MNISTClassifier.embed`); Inception features mean nothing
for 1-channel 28 x 28 digits. :func:`pixel_features` (area-downsampled pixels) is the generic
fallback for images no classifier knows. Both statistics are biased at small sample counts, so a
figure is only read against the same statistic of two disjoint *real* sets of the same size
(the "real floor").
"""

from __future__ import annotations

import warnings

import numpy as np


def _finite(a: np.ndarray, what: str) -> np.ndarray:
    """``a``, or ValueError naming ``what`` when it holds NaN or inf (a NaN mean read as a Fréchet distance of 0)."""
    if not np.isfinite(a).all():
        raise ValueError(f"{what}: {int((~np.isfinite(a)).sum())} non-finite value(s) (NaN or inf)")
    return a


def gaussian_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and covariance (d, d) (unbiased, float64) of (N, d) features, N >= 2."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"features must be (N >= 2, d), got shape {f.shape}")
    _finite(f, "the features")
    return f.mean(axis=0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def frechet_distance_from_stats(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``, the squared 2-Wasserstein distance between
    two Gaussians. A singular product gets ``eps`` on the diagonals; the imaginary round-off of the
    matrix square root is dropped."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"mismatched statistics: means {mu1.shape} / {mu2.shape}, covariances {s1.shape} / {s2.shape}")
    for a, what in ((mu1, "the first mean"), (mu2, "the second mean"), (s1, "the first covariance"),
                    (s2, "the second covariance")):
        _finite(a, what)
    diff = mu1 - mu2
    with warnings.catch_warnings():  # singular products (dead features, collapsed samples) are handled below
        warnings.simplefilter("ignore")
        covmean = linalg.sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():
            off = np.eye(s1.shape[0]) * eps
            covmean = linalg.sqrtm((s1 + off) @ (s2 + off))
    covmean = np.real(covmean)
    return float(max(0.0, diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean)))


def frechet_distance(a, b) -> float:
    """Fréchet distance between the Gaussian fits of feature sets ``a`` (N, d) and ``b`` (M, d)."""
    return frechet_distance_from_stats(*gaussian_stats(a), *gaussian_stats(b))


def _sq_dists(a: np.ndarray, b: np.ndarray, chunk: int = 2048) -> np.ndarray:
    bb = (b * b).sum(1)
    out = np.empty((len(a), len(b)), dtype=np.float64)
    for i in range(0, len(a), chunk):
        x = a[i:i + chunk]
        out[i:i + chunk] = np.maximum((x * x).sum(1)[:, None] + bb[None, :] - 2.0 * x @ b.T, 0.0)
    return out


def _knn_radii(f: np.ndarray, k: int) -> np.ndarray:
    """Squared distance of each row to its k-th nearest other row."""
    d = _sq_dists(f, f)
    np.fill_diagonal(d, np.inf)
    return np.partition(d, k - 1, axis=1)[:, k - 1]


def precision_recall(real, fake, k: int = 3) -> dict[str, float]:
    """k-NN manifold precision (share of ``fake`` inside the real manifold: the union of balls
    around each real point reaching its k-th nearest real neighbour) and recall (share of
    ``real`` inside the fake manifold). Both in [0, 1]; 1 / 1 for identical sets."""
    r = np.asarray(real, dtype=np.float64)
    g = np.asarray(fake, dtype=np.float64)
    if r.ndim != 2 or g.ndim != 2 or r.shape[1] != g.shape[1]:
        raise ValueError(f"real and fake must be (N, d) with the same d, got {r.shape} and {g.shape}")
    if min(len(r), len(g)) <= k:
        raise ValueError(f"precision / recall with k={k} needs more than {k} samples per set")
    _finite(r, "the real features")
    _finite(g, "the fake features")
    r_radii, g_radii = _knn_radii(r, k), _knn_radii(g, k)
    d = _sq_dists(g, r)  # (fake, real)
    precision = float((d <= r_radii[None, :]).any(axis=1).mean())
    recall = float((d.T <= g_radii[None, :]).any(axis=1).mean())
    return {"precision": precision, "recall": recall, "k": int(k)}


def pixel_features(images, side: int = 16) -> np.ndarray:
    """Generic features of (N, C, H, W) images in [0, 1]: area-averaged to ``side`` x ``side`` per
    channel (smaller images keep their size) and flattened, (N, C * side' * side') float64."""
    import torch
    import torch.nn.functional as F

    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    if x.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(x.shape)}")
    size = (min(side, x.shape[2]), min(side, x.shape[3]))
    return F.adaptive_avg_pool2d(x, size).flatten(1).double().numpy()


def _flat(x) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    return a.reshape(len(a), -1)


def mean_pairwise_distance(samples) -> float:
    """Mean root-mean-square distance (per element) between every two of ``samples`` (N, ...);
    0 for fewer than two samples. A measure of diversity in data space (pixels, dB)."""
    f = _flat(samples)
    if len(f) < 2:
        return 0.0
    d = np.sqrt(_sq_dists(f, f) / f.shape[1])
    return float(d[np.triu_indices(len(f), k=1)].mean())


def diversity(samples, groups) -> float:
    """Mean over the groups (e.g. the digit, or the input, each sample was generated for) of the
    :func:`mean_pairwise_distance` of the group's samples; groups of one sample are skipped."""
    groups = np.asarray(groups)
    values = [mean_pairwise_distance(np.asarray(samples)[groups == g]) for g in np.unique(groups)
              if int((groups == g).sum()) >= 2]
    return float(np.mean(values)) if values else 0.0


def nearest_distance(samples, reference) -> np.ndarray:
    """Root-mean-square distance (per element) of each of ``samples`` (N, ...) to its nearest row of
    ``reference`` (M, ...): memorisation reads as distances near 0 (a copy of a training example)."""
    f, r = _flat(samples), _flat(reference)
    if f.shape[1] != r.shape[1] or not len(r):
        raise ValueError(f"samples and reference must have the same shape per row, got {f.shape} and {r.shape}")
    return np.sqrt(_sq_dists(f, r).min(axis=1) / f.shape[1]) if len(f) else np.zeros(0)
