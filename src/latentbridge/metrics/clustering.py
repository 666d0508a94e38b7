"""Clustering of latent spaces and cross-modal cluster relationships (convergence/divergence).

Conventions: ``latents`` is an (N, D) array, one row per sample (an (N,) array is one
feature, D = 1). Cluster labels are (N,) arrays of any hashable values (ints, strings); two
labelings passed together are *paired*: entry i of each belongs to the same sample i (e.g.
the audio and the vibration view of one recording).

- :func:`cluster` -- k-means or Gaussian-mixture labels for latents.
- :func:`clustering_scores` -- silhouette (internal) and NMI / ARI (against true labels).
- :func:`relationship_tables` -- contingency table of two paired clusterings, conditional
  probabilities both ways, best matches, a one-to-one (Hungarian) matching and one-to-many
  coverage lists.
- :func:`agreement_zones` -- per sample, whether the two modalities *converge* (the sample's
  B cluster is the one matched to its A cluster) or *diverge*; rates per A cluster and overall.

Results are plain Python floats/ints/lists/dicts (labels as Python scalars) so they can go to
JSON, except per-sample arrays and the tables, which are numpy arrays.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "cluster",
    "clustering_scores",
    "relationship_tables",
    "agreement_zones",
]


def _latents(latents) -> np.ndarray:
    x = np.asarray(latents, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"latents must be (N, D) (or (N,)), got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"latents hold no samples or no features (shape {x.shape})")
    if not np.all(np.isfinite(x)):
        bad = int((~np.isfinite(x)).sum())
        raise ValueError(f"latents contain {bad} NaN or inf values")
    return x


def _labels(labels, name: str, n: int | None = None) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1:
        y = y.reshape(-1)
    if y.size == 0:
        raise ValueError(f"{name} is empty")
    if n is not None and y.shape[0] != n:
        raise ValueError(f"{name} has {y.shape[0]} entries but there are {n} samples")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise ValueError(f"{name} contains NaN or inf values")
    return y


def _py(v):
    """numpy scalar -> Python scalar (JSON-friendly); anything else unchanged."""
    return v.item() if isinstance(v, np.generic) else v


def cluster(
    latents,
    method: str = "kmeans",
    n_clusters: int = 8,
    seed: int = 0,
    *,
    n_init: int = 10,
    covariance_type: str = "full",
) -> np.ndarray:
    """Cluster labels (N,) int64 in ``0 .. n_clusters - 1`` for (N, D) ``latents``.

    - ``method="kmeans"``: scikit-learn ``KMeans`` (k-means++ initialisation) run ``n_init``
      times from different seeds; the run with the lowest inertia wins.
    - ``method="gmm"``: scikit-learn ``GaussianMixture`` with ``covariance_type`` ``"full"``
      (one full covariance per component; default) or ``"diag"`` (axis-aligned, cheaper and
      steadier for high-dimensional latents; ``"tied"``/``"spherical"`` are accepted too),
      k-means initialisation, ``n_init`` EM restarts (best likelihood kept); each sample gets
      its most probable component. A component may end up with no sample, so fewer than
      ``n_clusters`` distinct labels can occur.

    ``seed`` makes both deterministic. ValueError when ``n_clusters`` is not in 1..N.
    """
    x = _latents(latents)
    k = int(n_clusters)
    if k < 1 or k > x.shape[0]:
        raise ValueError(
            f"n_clusters must be between 1 and the {x.shape[0]} samples, got {n_clusters}"
        )
    n_init = int(n_init)
    if n_init < 1:
        raise ValueError(f"n_init must be at least 1, got {n_init}")
    if method == "kmeans":
        from sklearn.cluster import KMeans

        model = KMeans(n_clusters=k, n_init=n_init, random_state=seed)
        labels = model.fit_predict(x)
    elif method == "gmm":
        from sklearn.mixture import GaussianMixture

        if covariance_type not in ("full", "diag", "tied", "spherical"):
            raise ValueError(
                "covariance_type must be 'full', 'diag', 'tied' or 'spherical', got "
                f"{covariance_type!r}"
            )
        model = GaussianMixture(
            n_components=k, covariance_type=covariance_type, n_init=n_init, random_state=seed
        )
        labels = model.fit(x).predict(x)
    else:
        raise ValueError(f"method must be 'kmeans' or 'gmm', got {method!r}")
    return np.asarray(labels, dtype=np.int64)


def clustering_scores(
    latents,
    labels_pred,
    labels_true=None,
    *,
    silhouette_sample_size: int | None = None,
    seed: int = 0,
) -> dict:
    """Quality of a clustering: ``{"n_clusters", "silhouette", "nmi", "ari"}`` as plain floats.

    - ``silhouette``: mean silhouette coefficient of ``labels_pred`` on the (N, D) ``latents``
      (Euclidean; -1 to 1, higher = tighter, better separated clusters). NaN when it is
      undefined: a single cluster, or as many clusters as samples. It costs O(N^2); pass
      ``silhouette_sample_size`` to score a random subset of that many samples (``seed``).
    - ``nmi`` (normalized mutual information, arithmetic normalisation) and ``ari`` (adjusted
      Rand index) of ``labels_pred`` against ``labels_true``; both 1 for a perfect clustering
      up to renaming of the clusters, about 0 (ARI may go negative) for a random one. None
      when ``labels_true`` is not given.
    - ``nmi_chance``: the NMI of the same clusters against the true labels shuffled (mean of
      :data:`CHANCE_DRAWS`, ``seed``): what the clusters' number and sizes give by themselves (NMI rises
      with the number of clusters: 0.01 for 10 clusters of 1,200 points, near 0.5 for 200 of 300).
    - ``n_clusters``: number of distinct predicted labels.
    """
    from sklearn.metrics import (
        adjusted_rand_score,
        normalized_mutual_info_score,
        silhouette_score,
    )

    x = _latents(latents)
    pred = _labels(labels_pred, "labels_pred", x.shape[0])
    k = int(np.unique(pred).size)
    if 2 <= k <= x.shape[0] - 1:
        size = silhouette_sample_size
        if size is not None and int(size) >= x.shape[0]:
            size = None
        try:
            sil = float(silhouette_score(x, pred, sample_size=size, random_state=seed))
        except ValueError as e:  # a subset drawn from one cluster: sklearn's "Number of labels is 1"
            raise ValueError(f"silhouette_sample_size {size}: the subset it drew holds one cluster ({e}); take a "
                             "larger one") from None
    else:
        sil = float("nan")
    out = {"n_clusters": k, "silhouette": sil, "nmi": None, "ari": None}
    if labels_true is not None:
        true = _labels(labels_true, "labels_true", x.shape[0])
        out["nmi"] = float(normalized_mutual_info_score(true, pred))
        out["ari"] = float(adjusted_rand_score(true, pred))
        rng = np.random.default_rng(seed)
        out["nmi_chance"] = float(np.mean([normalized_mutual_info_score(rng.permutation(true), pred)
                                           for _ in range(CHANCE_DRAWS)]))
    return out


#: shuffles of the labels behind a chance reference
CHANCE_DRAWS = 20


def _contingency(clusters_a, clusters_b):
    a = _labels(clusters_a, "clusters_a")
    b = _labels(clusters_b, "clusters_b", a.shape[0])
    la, ia = np.unique(a, return_inverse=True)
    lb, ib = np.unique(b, return_inverse=True)
    counts = np.zeros((la.size, lb.size), dtype=np.int64)
    np.add.at(counts, (ia.reshape(-1), ib.reshape(-1)), 1)
    return la, lb, ia.reshape(-1), ib.reshape(-1), counts


def _hungarian(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(counts, maximize=True)
    return rows, cols


def relationship_tables(clusters_a, clusters_b, coverage: float = 0.8) -> dict:
    """How the clusters of modality A relate to those of modality B, from paired labels.

    ``clusters_a`` and ``clusters_b`` are (N,) labels of the same N samples. Clusters are the
    distinct labels present, sorted (``labels_a``, ``labels_b``; K_a and K_b of them); row i /
    column j of every table below is ``labels_a[i]`` / ``labels_b[j]``. Returns a dict:

    - ``labels_a``, ``labels_b``: lists of the cluster labels (Python scalars);
    - ``counts``: (K_a, K_b) int64 contingency table, ``counts[i, j]`` = samples in A cluster
      i and B cluster j;
    - ``p_b_given_a``: (K_a, K_b) float, ``counts / row sums`` -- each row sums to 1;
    - ``p_a_given_b``: (K_a, K_b) float, ``counts / column sums`` -- each *column* sums to 1
      (same orientation as ``counts``: entry [i, j] is P(A = i | B = j));
    - ``best_match_a_to_b``: per A cluster ``{"a", "b", "p", "count"}`` with ``b`` the
      argmax of its row of ``p_b_given_a`` (ties: the first in ``labels_b`` order) and ``p``
      that probability; ``best_match_b_to_a`` likewise per B cluster (``p`` = P(a | b));
    - ``one_to_one``: Hungarian matching (``scipy.optimize.linear_sum_assignment``,
      maximising the matched counts) -- ``{"pairs": [{"a", "b", "count"}...], "mapping":
      {a: b}, "agreement_count": sum of matched counts, "agreement": that / N,
      "unmatched_a": [...], "unmatched_b": [...]}``. With K_a != K_b only min(K_a, K_b)
      pairs exist; the remaining clusters are listed as unmatched;
    - ``one_to_many``: per A cluster ``{"a", "b": [...], "coverage": float}``: the fewest B
      clusters (largest P(b | a) first) that together hold at least ``coverage`` (default
      80 %) of the A cluster's samples, and the fraction they actually hold;
    - ``n``: number of samples.
    """
    coverage = float(coverage)
    if not 0.0 < coverage <= 1.0:
        raise ValueError(f"coverage must be in (0, 1], got {coverage}")
    la, lb, _, _, counts = _contingency(clusters_a, clusters_b)
    n = int(counts.sum())
    row = counts.sum(axis=1, keepdims=True)
    col = counts.sum(axis=0, keepdims=True)
    p_b_a = counts / row  # every present cluster has >= 1 sample: no zero division
    p_a_b = counts / col
    labels_a = [_py(v) for v in la]
    labels_b = [_py(v) for v in lb]

    best_ab = []
    for i in range(la.size):
        j = int(np.argmax(p_b_a[i]))
        best_ab.append(
            {
                "a": labels_a[i],
                "b": labels_b[j],
                "p": float(p_b_a[i, j]),
                "count": int(counts[i, j]),
            }
        )
    best_ba = []
    for j in range(lb.size):
        i = int(np.argmax(p_a_b[:, j]))
        best_ba.append(
            {
                "b": labels_b[j],
                "a": labels_a[i],
                "p": float(p_a_b[i, j]),
                "count": int(counts[i, j]),
            }
        )

    rows, cols = _hungarian(counts)
    pairs = [
        {"a": labels_a[i], "b": labels_b[j], "count": int(counts[i, j])} for i, j in zip(rows, cols)
    ]
    matched = int(counts[rows, cols].sum())
    one_to_one = {
        "pairs": pairs,
        "mapping": {p["a"]: p["b"] for p in pairs},
        "agreement_count": matched,
        "agreement": matched / n,
        "unmatched_a": [labels_a[i] for i in range(la.size) if i not in set(rows.tolist())],
        "unmatched_b": [labels_b[j] for j in range(lb.size) if j not in set(cols.tolist())],
    }

    one_to_many = []
    for i in range(la.size):
        order = np.argsort(-p_b_a[i], kind="stable")
        cum = np.cumsum(p_b_a[i, order])
        m = int(np.searchsorted(cum, coverage - 1e-12, side="left")) + 1
        m = min(m, lb.size)
        one_to_many.append(
            {
                "a": labels_a[i],
                "b": [labels_b[j] for j in order[:m]],
                "coverage": float(min(cum[m - 1], 1.0)),
            }
        )

    return {
        "labels_a": labels_a,
        "labels_b": labels_b,
        "counts": counts,
        "p_b_given_a": p_b_a,
        "p_a_given_b": p_a_b,
        "best_match_a_to_b": best_ab,
        "best_match_b_to_a": best_ba,
        "one_to_one": one_to_one,
        "one_to_many": one_to_many,
        "n": n,
    }


def agreement_zones(clusters_a, clusters_b, mapping: dict | None = None) -> dict:
    """Convergence / divergence of two paired clusterings, per sample and per A cluster.

    Sample i *converges* when its B cluster is the one matched to its A cluster,
    ``clusters_b[i] == mapping[clusters_a[i]]``, and *diverges* otherwise. ``mapping``
    (A label -> B label) defaults to the Hungarian one-to-one matching of
    :func:`relationship_tables`; an A cluster absent from the mapping (with K_a > K_b some
    are unmatched) diverges for all of its samples. Returns:

    - ``converges``: (N,) bool array; ``zone``: (N,) array of ``"converges"``/``"diverges"``;
    - ``mapping``: the A -> B mapping used (dict of Python scalars);
    - ``per_cluster_a``: per A cluster (sorted labels) ``{"a", "matched_b" (None when
      unmatched), "n", "n_converge", "rate"}``; ``rate_by_a``: ``{a: rate}``;
    - ``n``, ``n_converge``, ``n_diverge`` and ``overall_rate`` = n_converge / n (equal to
      the Hungarian ``agreement`` when the default mapping is used).
    """
    la, _, ia, _, _ = _contingency(clusters_a, clusters_b)
    a = _labels(clusters_a, "clusters_a")
    b = _labels(clusters_b, "clusters_b", a.shape[0])
    if mapping is None:
        mapping = relationship_tables(a, b)["one_to_one"]["mapping"]
    else:
        mapping = {_py(k): _py(v) for k, v in dict(mapping).items()}
    labels_a = [_py(v) for v in la]
    if mapping and not any(lab in mapping for lab in labels_a):  # (keys read back from JSON as strings: all diverged)
        raise ValueError(f"the mapping covers none of clusters_a's labels {labels_a[:10]} (its keys: "
                         f"{list(mapping)[:10]}): keys of another type, e.g. strings read from JSON?")
    converges = np.zeros(a.shape[0], dtype=bool)
    for i, lab in enumerate(labels_a):
        if lab not in mapping:
            continue
        rows = ia == i
        converges[rows] = b[rows] == mapping[lab]
    per = []
    for i, lab in enumerate(labels_a):
        rows = ia == i
        n_i = int(rows.sum())
        c_i = int(converges[rows].sum())
        per.append(
            {
                "a": lab,
                "matched_b": mapping.get(lab),
                "n": n_i,
                "n_converge": c_i,
                "rate": c_i / n_i,
            }
        )
    n = int(a.shape[0])
    n_conv = int(converges.sum())
    return {
        "converges": converges,
        "zone": np.where(converges, "converges", "diverges"),
        "mapping": mapping,
        "per_cluster_a": per,
        "rate_by_a": {p["a"]: p["rate"] for p in per},
        "n": n,
        "n_converge": n_conv,
        "n_diverge": n - n_conv,
        "overall_rate": n_conv / n if n else math.nan,
    }
