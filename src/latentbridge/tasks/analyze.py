"""``latentbridge analyze RUN_DIR --out DIR``: clusters and relationships between two latent spaces.

For an audio-visual digits run: k-means and a Gaussian mixture on each modality's latent and on
the joint latent; one-to-one and one-to-many relationship tables between image clusters and
audio clusters from paired samples; the learned association between the two latent spaces (the
model's latent bridge: the paired latents of the training pairs, see
:meth:`~latentbridge.models.audiovisual.AudioVisualVAE.fit_bridge`), used to retrieve and to
generate across modalities; convergence and divergence zones where the two clusterings agree or
disagree, per cluster and per sample. Compute only: ``latentbridge.report.digits`` writes
``relationships.json``, the t-SNE / UMAP plots and the HTML report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from latentbridge.errors import LatentbridgeError
from latentbridge.models.hub import load_model


@dataclass
class Analysis:
    metrics: dict
    relationships: dict
    labels: np.ndarray  # digit of each test pair
    latents: dict  # z_audio, z_image, z_joint (N, D)
    clusters: dict  # "<space>_<method>" → cluster of each pair
    zones: list  # per pair: "converges" / "diverges"
    cluster_digits: np.ndarray  # (image clusters, 10 digits + convergence rate)
    cluster_names: list[str]
    p_audio_given_image: np.ndarray
    image_cluster_names: list[str]
    audio_cluster_names: list[str]


def check_clusters(n_clusters: int, n_clips: int | None = None) -> None:
    """``--clusters`` must split the test clips: one cluster, or one per clip (the audio latent is one per clip,
    repeated by its pairs), makes the two modalities' clusterings agree trivially (agreement and convergence 1,
    silhouette undefined), not a finding."""
    if int(n_clusters) < 2:
        raise LatentbridgeError(f"--clusters must be at least 2 (one cluster relates nothing), got {n_clusters}")
    if n_clips is not None and n_clips < 3:  # ("use at most 0" clusters, where at least 2 are needed)
        raise LatentbridgeError(f"the run's test split holds {n_clips} distinct clip(s): analyze needs 3 or more to "
                                "cluster (train with a larger digits.limit_test_clips)")
    if n_clips is not None and int(n_clusters) >= n_clips:
        raise LatentbridgeError(f"--clusters {n_clusters}: as many or more clusters than the run's {n_clips} distinct "
                                f"test clips (each clip alone in a cluster agrees trivially); use at most "
                                f"{n_clips - 1}")


def shuffled_by_clip(clusters: np.ndarray, clips: np.ndarray, draws: int, seed: int = 0) -> list[np.ndarray]:
    """``draws`` shuffles of the per-pair ``clusters`` between the ``clips`` (each clip's pairs share one)."""
    rng = np.random.default_rng(seed)
    _, first, back = np.unique(clips, return_index=True, return_inverse=True)
    return [rng.permutation(clusters[first])[back.reshape(-1)] for _ in range(draws)]


def analyze(run_dir: str | Path, n_clusters: int = 10) -> Analysis:
    from latentbridge.metrics.classification import coherence, retrieval_accuracy
    from latentbridge.metrics.clustering import CHANCE_DRAWS, agreement_zones, relationship_tables
    from latentbridge.tasks.avdigits import classifiers, distinct_clips, latent_modes, pairs, predict_all, space_clusters

    check_clusters(n_clusters)
    saved = load_model(run_dir)
    cfg = saved.workflow
    if cfg.task != "avdigits":
        raise LatentbridgeError(f"{run_dir}: analyze studies two modalities' latent spaces of an 'avdigits' run; "
                                f"this run is '{cfg.task}'")
    model = saved.model.eval()
    if not model.bridge_fitted:  # a model saved without training through ``fit``
        ptr = latent_modes(model, pairs(cfg, "train")[0])
        model.fit_bridge(torch.from_numpy(ptr["z_audio"]), torch.from_numpy(ptr["z_image"]))
    test, info = pairs(cfg, "test")
    check_clusters(n_clusters, distinct_clips(test))
    pte = predict_all(model, test)
    if bad := [s for s in ("z_audio", "z_image", "z_joint") if not np.all(np.isfinite(pte[s]))]:
        raise LatentbridgeError(f"{run_dir}: the model's {' and '.join(bad)} latents of the test pairs hold NaN or inf "
                                "(a training that diverged): nothing to cluster")
    y = test.label
    metrics: dict = {"n_test_pairs": int(len(y)), "n_test_clips": distinct_clips(test), "n_clusters": n_clusters,
                     "mnist_offline_split": info["mnist_offline_split"]}
    clusters: dict[str, np.ndarray] = {}
    for space in ("z_audio", "z_image", "z_joint"):
        for method in ("kmeans", "gmm"):
            labels, sc = space_clusters(test, pte, space, method, n_clusters, covariance_type="diag")
            clusters[f"{space}_{method}"] = labels
            metrics.update({f"{space}_{method}_{k}": sc[k] for k in ("nmi", "nmi_chance", "ari", "silhouette")})

    img_c, aud_c = clusters["z_image_kmeans"], clusters["z_audio_kmeans"]
    rel = relationship_tables(img_c, aud_c)
    zones = agreement_zones(img_c, aud_c)
    metrics.update({"one_to_one_agreement": rel["one_to_one"]["agreement"], "convergence_rate": zones["overall_rate"]})
    # what two unrelated clusterings of these sizes reach: the audio clusters shuffled between the clips, each clip's
    # pairs keeping one (shuffled over the pairs, a clip's pairs were split: the chance read 0.19 where it is 0.21)
    shuffled = shuffled_by_clip(aud_c, test.clip, CHANCE_DRAWS)
    metrics["one_to_one_agreement_chance"] = float(np.mean([relationship_tables(img_c, a)["one_to_one"]["agreement"]
                                                            for a in shuffled]))
    metrics["convergence_rate_chance"] = float(np.mean([agreement_zones(img_c, a)["overall_rate"] for a in shuffled]))
    relationships = {
        "image_clusters": rel["labels_a"], "audio_clusters": rel["labels_b"], "counts": np.asarray(rel["counts"]).tolist(),
        "p_audio_given_image": np.asarray(rel["p_b_given_a"]).tolist(),
        "p_image_given_audio": np.asarray(rel["p_a_given_b"]).tolist(),
        "best_match_image_to_audio": rel["best_match_a_to_b"], "best_match_audio_to_image": rel["best_match_b_to_a"],
        "one_to_one": rel["one_to_one"], "one_to_many": rel["one_to_many"],
        "convergence_by_image_cluster": zones["rate_by_a"], "convergence_rate": zones["overall_rate"],
        "per_sample": [{"label": int(y[i]), "image_cluster": int(img_c[i]), "audio_cluster": int(aud_c[i]),
                        "zone": zones["zone"][i]} for i in range(len(y))],
    }
    rate = zones["rate_by_a"]
    keys = sorted(rate, key=lambda k: int(k) if str(k).lstrip("-").isdigit() else str(k))
    digit_mix = np.array([[float(np.mean(y[img_c == int(k)] == d)) if np.any(img_c == int(k)) else 0.0
                           for d in range(10)] for k in keys])

    # the learned association between the latent spaces
    metrics.update({
        "retrieval_audio_to_image_top1": retrieval_accuracy(pte["z_audio_bridged"], pte["z_image"], y, y),
        "retrieval_image_to_audio_top1": retrieval_accuracy(pte["z_image_bridged"], pte["z_audio"], y, y),
    })
    (mnist_clf, _), (fsdd_clf, _) = classifiers(cfg, saved.transform)
    metrics["association_generation_audio_to_image_coherence"] = coherence(
        mnist_clf, pte["audio_to_image_bridge"], y)["accuracy"]
    metrics["association_generation_image_to_audio_coherence"] = coherence(
        fsdd_clf, pte["image_to_audio_bridge"], y)["accuracy"]
    return Analysis(metrics, relationships, y, {k: pte[k] for k in ("z_audio", "z_image", "z_joint")}, clusters,
                    list(zones["zone"]), np.column_stack([digit_mix, [rate[k] for k in keys]]), [f"I{k}" for k in keys],
                    np.asarray(rel["p_b_given_a"]), [f"I{c}" for c in rel["labels_a"]],
                    [f"A{c}" for c in rel["labels_b"]])
