"""``latentbridge analyze RUN_DIR --out DIR``: clusters and relationships between two latent spaces.

For an audio-visual digits run: k-means and a Gaussian mixture on each modality's latent and on
the joint latent; one-to-one and one-to-many relationship tables between image clusters and
audio clusters from paired samples; a learned association between the two latent spaces (the
model's latent bridge: the paired latents of the training pairs, see
:meth:`~latentbridge.models.audiovisual.AudioVisualVAE.fit_bridge`), used to retrieve and to
generate across modalities;
convergence and divergence zones where the two clusterings agree or disagree, per cluster and
per sample; t-SNE and UMAP plots. Runs separately from training and evaluation, from the same
run folder (stages train / evaluate / visualize).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from latentbridge.config import validate
from latentbridge.errors import LatentbridgeError
from latentbridge.models.hub import load_model
from latentbridge.utils import atomic_write_json


def _retrieval_accuracy(query: np.ndarray, gallery: np.ndarray, q_labels: np.ndarray, g_labels: np.ndarray) -> float:
    """Top-1: the nearest gallery latent (cosine) has the query's digit."""
    qn = query / (np.linalg.norm(query, axis=1, keepdims=True) + 1e-9)
    gn = gallery / (np.linalg.norm(gallery, axis=1, keepdims=True) + 1e-9)
    return float((g_labels[np.argmax(qn @ gn.T, axis=1)] == q_labels).mean())


def analyze(run_dir: str | Path, out_dir: str | Path, n_clusters: int = 10, max_points: int = 2000) -> dict:
    from latentbridge import report
    from latentbridge.metrics.clustering import agreement_zones, cluster, clustering_scores, relationship_tables
    from latentbridge.tasks.avdigits import build_pairs, latent_modes, predict_all
    from latentbridge.tasks.classify import coherence, load_classifier

    saved = load_model(run_dir)
    cfg = validate(saved.config, f"{run_dir}/config.json")
    if cfg.task != "avdigits":
        raise LatentbridgeError(f"{run_dir}: analyze studies two modalities' latent spaces of an 'avdigits' run; "
                                f"this run is '{cfg.task}'")
    model = saved.model.eval()
    if not model.bridge_fitted:  # a model saved without training through ``fit``
        ptr = latent_modes(model, build_pairs(cfg, "train")[0])
        model.fit_bridge(torch.from_numpy(ptr["z_audio"]), torch.from_numpy(ptr["z_image"]))
    test, _ = build_pairs(cfg, "test")
    pte = predict_all(model, test)
    y = test.label
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics: dict = {"n_test_pairs": int(len(y)), "n_clusters": n_clusters}
    clusters: dict[str, np.ndarray] = {}
    for space in ("z_audio", "z_image", "z_joint"):
        for method in ("kmeans", "gmm"):
            labels = cluster(pte[space], method, n_clusters, seed=0, covariance_type="diag")
            clusters[f"{space}_{method}"] = labels
            sc = clustering_scores(pte[space], labels, y)
            metrics.update({f"{space}_{method}_{k}": sc[k] for k in ("nmi", "ari", "silhouette")})

    # relationships between image clusters and audio clusters of the same pairs
    img_c, aud_c = clusters["z_image_kmeans"], clusters["z_audio_kmeans"]
    rel = relationship_tables(img_c, aud_c)
    zones = agreement_zones(img_c, aud_c)
    metrics.update({"one_to_one_agreement": rel["one_to_one"]["agreement"], "convergence_rate": zones["overall_rate"]})
    atomic_write_json(out_dir / "relationships.json", {
        "image_clusters": rel["labels_a"], "audio_clusters": rel["labels_b"], "counts": np.asarray(rel["counts"]).tolist(),
        "p_audio_given_image": np.asarray(rel["p_b_given_a"]).tolist(),
        "p_image_given_audio": np.asarray(rel["p_a_given_b"]).tolist(),
        "best_match_image_to_audio": rel["best_match_a_to_b"], "best_match_audio_to_image": rel["best_match_b_to_a"],
        "one_to_one": rel["one_to_one"], "one_to_many": rel["one_to_many"],
        "convergence_by_image_cluster": zones["rate_by_a"], "convergence_rate": zones["overall_rate"],
        "per_sample": [{"label": int(y[i]), "image_cluster": int(img_c[i]), "audio_cluster": int(aud_c[i]),
                        "zone": zones["zone"][i]} for i in range(len(y))],
    })
    report.plot_heatmap(np.asarray(rel["p_b_given_a"]), [f"I{c}" for c in rel["labels_a"]],
                        [f"A{c}" for c in rel["labels_b"]], out_dir / "relationship_p_audio_given_image.png",
                        "P(audio cluster | image cluster)", "audio cluster", "image cluster")
    rate = zones["rate_by_a"]
    keys = sorted(rate, key=lambda k: int(k) if str(k).lstrip("-").isdigit() else str(k))
    # per image cluster: convergence rate and the digits it holds
    digit_mix = np.array([[float(np.mean(y[img_c == int(k)] == d)) if np.any(img_c == int(k)) else 0.0
                           for d in range(10)] for k in keys])
    report.plot_heatmap(np.column_stack([digit_mix, [rate[k] for k in keys]]), [f"I{k}" for k in keys],
                        [str(d) for d in range(10)] + ["conv."], out_dir / "zones_by_cluster.png",
                        "digit share per image cluster, and convergence rate", "digit / convergence", "image cluster")

    # learned association between the latent spaces
    z_a2i, z_i2a = pte["z_audio_bridged"], pte["z_image_bridged"]
    metrics.update({
        "retrieval_audio_to_image_top1": _retrieval_accuracy(z_a2i, pte["z_image"], y, y),
        "retrieval_image_to_audio_top1": _retrieval_accuracy(z_i2a, pte["z_audio"], y, y),
    })
    gen_img, gen_aud = pte["audio_to_image_bridge"], pte["image_to_audio_bridge"]
    mnist_clf, _ = load_classifier("mnist", data_root=cfg.digits.mnist_root)
    fsdd_clf, _ = load_classifier("fsdd", data_root=cfg.digits.fsdd_root)
    metrics["association_generation_audio_to_image_coherence"] = coherence(mnist_clf, gen_img, y)["accuracy"]
    metrics["association_generation_image_to_audio_coherence"] = coherence(fsdd_clf, gen_aud, y)["accuracy"]
    atomic_write_json(out_dir / "metrics.json", metrics)

    # embeddings
    rng = np.random.default_rng(0)
    sub = np.sort(rng.permutation(len(y))[:max_points])
    images = []
    for space in ("z_audio", "z_image", "z_joint"):
        for method in ("tsne", "umap"):
            pts = report.embed_2d(pte[space][sub], method=method, seed=0)
            name = f"{space}_{method}.png"
            report.plot_embedding(pts, y[sub], out_dir / name, f"{space[2:]} latent ({method}) by digit",
                                  categorical=True, label="digit")
            images.append(name)
    pts = report.embed_2d(pte["z_joint"][sub], method="umap", seed=0)
    report.plot_embedding(pts, np.array(zones["zone"])[sub], out_dir / "zones_samples.png",
                          "joint latent: image and audio clusters agree (converges) or not", categorical=True)
    report.plot_embedding(pts, clusters["z_joint_kmeans"][sub], out_dir / "joint_clusters.png",
                          "joint latent: k-means clusters", categorical=True, label="cluster")
    report.write_html_report(out_dir / "report.html", f"latentbridge analysis: {Path(run_dir).name}", [
        {"heading": "Clustering and association", "table": metrics},
        {"heading": "Relationships between image and audio clusters",
         "text": "P(audio cluster | image cluster) from paired test samples; relationships.json holds the counts, "
                 "both conditional tables, best matches, the one-to-one (Hungarian) and one-to-many tables.",
         "images": ["relationship_p_audio_given_image.png"]},
        {"heading": "Convergence and divergence zones",
         "text": "A pair converges when its audio cluster is the one matched one-to-one to its image cluster.",
         "images": ["zones_by_cluster.png", "zones_samples.png", "joint_clusters.png"]},
        {"heading": "Latent spaces", "images": images},
    ])
    return metrics
