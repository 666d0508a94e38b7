"""Tests for latentbridge.metrics.clustering (hand-checkable cases)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from latentbridge.metrics.clustering import (
    agreement_zones,
    cluster,
    clustering_scores,
    relationship_tables,
)


def _blobs(seed: int = 0, n_per: int = 60):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 5.0]])
    x = np.concatenate([c + rng.standard_normal((n_per, 3)) * 0.5 for c in centres])
    y = np.repeat(np.arange(3), n_per)
    return x, y


# Paired labels with the contingency table (rows A = 0, 1, 2; columns B = "x", "y", "z")
#   [[4, 1, 0],
#    [3, 0, 2],
#    [0, 2, 3]]
# Row-wise argmax sends A0 and A1 both to "x"; the Hungarian matching (max total 8 of 15)
# is A0 -> x, A1 -> z, A2 -> y.
TABLE = np.array([[4, 1, 0], [3, 0, 2], [0, 2, 3]])


def _paired_from_table(table, b_names=("x", "y", "z"), seed=0):
    a, b = [], []
    for i in range(table.shape[0]):
        for j in range(table.shape[1]):
            a += [i] * int(table[i, j])
            b += [b_names[j]] * int(table[i, j])
    order = np.random.default_rng(seed).permutation(len(a))  # order must not matter
    return np.array(a)[order], np.array(b)[order]


def test_perfect_and_permuted_clusterings_score_one():
    x, y = _blobs()
    s = clustering_scores(x, y, y)
    assert s["nmi"] == pytest.approx(1.0) and s["ari"] == pytest.approx(1.0)
    assert s["n_clusters"] == 3
    permuted = np.array([2, 0, 1])[y]  # renamed clusters
    s2 = clustering_scores(x, permuted, y)
    assert s2["nmi"] == pytest.approx(1.0) and s2["ari"] == pytest.approx(1.0)
    assert s2["silhouette"] == pytest.approx(s["silhouette"])
    json.dumps(s2)
    assert s["nmi_chance"] < 0.05  # 3 clusters of the blobs, the labels shuffled


def test_nmi_chance_rises_with_the_number_of_clusters():
    """NMI of many small clusters is high by itself: the chance reference says how high (200 random clusters of
    300 points score NMI about 0.5 against 10 labels, 10 clusters of 1,200 about 0.01)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 300)
    many = clustering_scores(rng.standard_normal((300, 2)), rng.integers(0, 200, 300), y)
    assert 0.4 < many["nmi_chance"] < 0.6 and abs(many["nmi"] - many["nmi_chance"]) < 0.05  # random: at chance
    y = rng.integers(0, 10, 1200)
    few = clustering_scores(rng.standard_normal((1200, 2)), y, y)
    assert few["nmi"] == pytest.approx(1.0) and few["nmi_chance"] < 0.02


def test_scores_without_truth_and_single_cluster():
    x, y = _blobs()
    s = clustering_scores(x, y)
    assert s["nmi"] is None and s["ari"] is None
    assert s["silhouette"] > 0.7
    one = clustering_scores(x, np.zeros(len(x), dtype=int), y)
    assert math.isnan(one["silhouette"])
    assert one["ari"] == pytest.approx(0.0) and one["nmi"] == pytest.approx(0.0)
    sub = clustering_scores(x, y, silhouette_sample_size=50)
    assert sub["silhouette"] > 0.7


def test_kmeans_recovers_blobs():
    x, y = _blobs()
    labels = cluster(x, "kmeans", n_clusters=3, seed=0)
    assert labels.shape == (len(x),) and labels.dtype == np.int64
    s = clustering_scores(x, labels, y)
    assert s["ari"] > 0.99 and s["silhouette"] > 0.7
    np.testing.assert_array_equal(labels, cluster(x, "kmeans", n_clusters=3, seed=0))


@pytest.mark.parametrize("cov", ["full", "diag"])
def test_gmm_recovers_blobs(cov):
    x, y = _blobs(seed=1)
    labels = cluster(x, "gmm", n_clusters=3, seed=0, covariance_type=cov)
    s = clustering_scores(x, labels, y)
    assert s["ari"] > 0.99 and s["silhouette"] > 0.7


def test_cluster_bad_arguments():
    x, _ = _blobs()
    with pytest.raises(ValueError, match="method"):
        cluster(x, "dbscan", n_clusters=3)
    with pytest.raises(ValueError, match="n_clusters"):
        cluster(x, n_clusters=0)
    with pytest.raises(ValueError, match="n_clusters"):
        cluster(x[:2], n_clusters=3)
    with pytest.raises(ValueError, match="covariance_type"):
        cluster(x, "gmm", n_clusters=3, covariance_type="weird")
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        cluster(bad, n_clusters=3)
    with pytest.raises(ValueError, match="entries"):
        clustering_scores(x, np.zeros(3))


def test_relationship_tables_hand_checked():
    a, b = _paired_from_table(TABLE)
    r = relationship_tables(a, b)
    assert r["labels_a"] == [0, 1, 2] and r["labels_b"] == ["x", "y", "z"]
    assert r["n"] == 15
    np.testing.assert_array_equal(r["counts"], TABLE)
    np.testing.assert_allclose(
        r["p_b_given_a"], [[0.8, 0.2, 0.0], [0.6, 0.0, 0.4], [0.0, 0.4, 0.6]]
    )
    np.testing.assert_allclose(
        r["p_a_given_b"], [[4 / 7, 1 / 3, 0.0], [3 / 7, 0.0, 2 / 5], [0.0, 2 / 3, 3 / 5]]
    )
    best = [(m["a"], m["b"], m["p"], m["count"]) for m in r["best_match_a_to_b"]]
    assert best == [(0, "x", pytest.approx(0.8), 4), (1, "x", pytest.approx(0.6), 3),
                    (2, "z", pytest.approx(0.6), 3)]
    best_b = [(m["b"], m["a"], m["p"]) for m in r["best_match_b_to_a"]]
    assert best_b == [("x", 0, pytest.approx(4 / 7)), ("y", 2, pytest.approx(2 / 3)),
                      ("z", 2, pytest.approx(3 / 5))]
    oto = r["one_to_one"]
    assert oto["mapping"] == {0: "x", 1: "z", 2: "y"}
    assert oto["agreement_count"] == 8 and oto["agreement"] == pytest.approx(8 / 15)
    assert oto["unmatched_a"] == [] and oto["unmatched_b"] == []
    otm = {m["a"]: (m["b"], m["coverage"]) for m in r["one_to_many"]}
    assert otm[0] == (["x"], pytest.approx(0.8))  # exactly 80 % is enough
    assert otm[1] == (["x", "z"], pytest.approx(1.0))
    assert otm[2] == (["z", "y"], pytest.approx(1.0))
    # JSON-friendly apart from the numpy tables
    json.dumps({k: v for k, v in r.items() if not isinstance(v, np.ndarray)})


def test_relationship_tables_unequal_cluster_counts():
    # A has 3 clusters, B has 2: one A cluster stays unmatched.
    a = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    b = np.array([5, 5, 5, 7, 7, 7, 7, 5])
    r = relationship_tables(a, b)
    assert r["one_to_one"]["mapping"] == {0: 5, 1: 7}
    assert r["one_to_one"]["unmatched_a"] == [2]
    assert r["one_to_one"]["agreement"] == pytest.approx(6 / 8)
    z = agreement_zones(a, b)
    assert z["rate_by_a"] == {0: 1.0, 1: 1.0, 2: 0.0}
    assert z["per_cluster_a"][2]["matched_b"] is None
    with pytest.raises(ValueError, match="entries"):
        relationship_tables(a, b[:-1])


def test_agreement_zones_hand_checked():
    a, b = _paired_from_table(TABLE)
    z = agreement_zones(a, b)
    assert z["mapping"] == {0: "x", 1: "z", 2: "y"}
    expected = np.array([b[i] == {0: "x", 1: "z", 2: "y"}[a[i]] for i in range(len(a))])
    np.testing.assert_array_equal(z["converges"], expected)
    assert set(z["zone"][expected]) == {"converges"} and set(z["zone"][~expected]) == {"diverges"}
    assert z["rate_by_a"] == {
        0: pytest.approx(4 / 5),
        1: pytest.approx(2 / 5),
        2: pytest.approx(2 / 5),
    }
    assert (z["n"], z["n_converge"], z["n_diverge"]) == (15, 8, 7)
    assert z["overall_rate"] == pytest.approx(8 / 15)
    # a user mapping (row-wise best match, not one-to-one)
    z2 = agreement_zones(a, b, mapping={0: "x", 1: "x", 2: "z"})
    assert z2["n_converge"] == 4 + 3 + 3
    assert z2["rate_by_a"] == {0: pytest.approx(0.8), 1: pytest.approx(0.6), 2: pytest.approx(0.6)}


def test_agreement_perfect_and_permuted():
    _, y = _blobs()
    z = agreement_zones(y, np.array([2, 0, 1])[y])
    assert z["overall_rate"] == 1.0 and z["n_diverge"] == 0
    r = relationship_tables(y, np.array([2, 0, 1])[y])
    assert r["one_to_one"]["mapping"] == {0: 2, 1: 0, 2: 1}
    assert all(m["b"] == [r["one_to_one"]["mapping"][m["a"]]] for m in r["one_to_many"])
