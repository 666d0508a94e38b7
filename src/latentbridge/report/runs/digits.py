"""Files of ``evaluate`` and ``analyze`` for audio-visual digit runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentbridge.io import write_wav
from latentbridge.report.audio import feature_axes, plot_spectrogram_pairs
from latentbridge.report.charts import plot_heatmap
from latentbridge.report.common import _finite_range
from latentbridge.report.embedding import plot_embedding, project_2d
from latentbridge.report.html import write_html_report
from latentbridge.report.images import plot_image_grid
from latentbridge.utils import atomic_write_json


def write_evaluation(res, folder: Path) -> None:
    folder = Path(folder)
    atomic_write_json(folder / "metrics.json", res.metrics)
    test, pred, pick, routes = res.test, res.pred, res.pick, res.routes
    names = {"": "", "_bridge": ", bridge"}
    cols = [str(test.label[i]) for i in pick]
    plot_image_grid(np.stack([test.image[pick, 0]] + [pred["audio_to_image" + r][pick, 0] for r in routes]),
                    ["paired image"] + [f"from the clip{names[r]}" for r in routes], cols,
                    folder / "audio_to_image.png", cmap="gray", origin="upper", value_range=(0.0, 1.0))
    axes = feature_axes(res.features) if res.features is not None else {}
    mels = np.stack([test.audio[pick, 0]] + [pred["image_to_audio" + r][pick, 0] for r in routes])
    plot_image_grid(mels, ["spoken digit"] + [f"from the image{names[r]}" for r in routes], cols,
                    folder / "image_to_audio.png", value_range=_finite_range(mels), unit=axes.get("unit", ""))
    plot_image_grid(np.stack([test.image[pick, 0], pred["image_recon"][pick, 0]]),
                    ["image", "reconstruction (from the image)"], cols, folder / "image_reconstructions.png",
                    cmap="gray", origin="upper", value_range=(0.0, 1.0))
    plot_spectrogram_pairs(test.audio[pick, 0], pred["audio_recon"][pick, 0],
                           [f"digit {test.label[i]} ({test.speaker[i]})" for i in pick],
                           folder / "audio_reconstructions.png", **axes)
    for name, wave in res.wavs:
        write_wav(folder / name, wave, res.sample_rate)
    s = res.samples
    plot_image_grid(s["image"][None], ["synthetic image"], [str(i) for i in range(len(s["image"]))],
                    folder / "synthetic_images.png", cmap="gray", origin="upper", value_range=(0.0, 1.0))
    plot_image_grid(np.asarray(s["audio"])[None], ["synthetic spectrogram"],
                    [str(i) for i in range(len(s["audio"]))], folder / "synthetic_audio.png", unit=axes.get("unit", ""))
    z2, how = project_2d(pred["z_joint"], method="umap", seed=0)
    plot_embedding(z2, test.label, folder / "latent_joint.png", f"joint latent ({how}) by digit", categorical=True)
    write_html_report(folder / "report.html", "latentbridge audio-visual digits", [
        {"heading": "Metrics", "text": "Coherence: the digit class of the generated sample (by the MNIST / FSDD "
                                       "classifier) matches the input's class. Keys without a suffix: the "
                                       "posterior route (the source's latent decoded by the target decoder); "
                                       "'_bridge': the latent bridge route (the source's latent mapped to the "
                                       "target modality's latent first).", "table": res.metrics},
        {"heading": "Reconstructions", "images": ["image_reconstructions.png", "audio_reconstructions.png"]},
        {"heading": "Cross-modal generation", "text": "image_to_audio[_bridge]_<digit>.wav: the spectrogram generated "
         "from an image, through Griffin-Lim", "images": ["audio_to_image.png", "image_to_audio.png"],
         "audio": [name for name, _ in res.wavs]},
        {"heading": "Synthesis from the prior (the same latent sample in each column)",
         "images": ["synthetic_images.png", "synthetic_audio.png"]},
        {"heading": "Latent space", "images": ["latent_joint.png"]},
    ])


def write_analysis(res, folder: Path, max_points: int = 2000) -> None:
    folder = Path(folder)
    atomic_write_json(folder / "metrics.json", res.metrics)
    atomic_write_json(folder / "relationships.json", res.relationships)
    plot_heatmap(res.p_audio_given_image, res.image_cluster_names, res.audio_cluster_names,
                 folder / "relationship_p_audio_given_image.png", "P(audio cluster | image cluster)",
                 "audio cluster", "image cluster")
    plot_heatmap(res.cluster_digits, res.cluster_names, [str(d) for d in range(10)] + ["conv."],
                 folder / "zones_by_cluster.png", "digit share per image cluster, and convergence rate",
                 "digit / convergence", "image cluster")
    y = res.labels
    sub = np.sort(np.random.default_rng(0).permutation(len(y))[:max_points])
    images, joint = [], None
    for space in ("z_audio", "z_image", "z_joint"):
        for method in ("tsne", "umap"):
            pts, how = project_2d(res.latents[space][sub], method=method, seed=0)
            name = f"{space}_{method}.png"
            plot_embedding(pts, y[sub], folder / name, f"{space[2:]} latent ({how}) by digit", categorical=True,
                           label="digit")
            images.append(name)
            if (space, method) == ("z_joint", "umap"):
                joint = pts  # the zones and clusters drawn on this map (it was computed again)
    pts = joint
    plot_embedding(pts, np.array(res.zones)[sub], folder / "zones_samples.png",
                   "joint latent: image and audio clusters agree (converges) or not", categorical=True)
    plot_embedding(pts, res.clusters["z_joint_kmeans"][sub], folder / "joint_clusters.png",
                   "joint latent: k-means clusters", categorical=True, label="cluster")
    write_html_report(folder / "report.html", "latentbridge analysis", [
        {"heading": "Clustering and association", "table": res.metrics},
        {"heading": "Relationships between image and audio clusters",
         "text": "P(audio cluster | image cluster) from paired test samples; relationships.json holds the counts, "
                 "both conditional tables, best matches, the one-to-one (Hungarian) and one-to-many tables.",
         "images": ["relationship_p_audio_given_image.png"]},
        {"heading": "Convergence and divergence zones",
         "text": "A pair converges when its audio cluster is the one matched one-to-one to its image cluster.",
         "images": ["zones_by_cluster.png", "zones_samples.png", "joint_clusters.png"]},
        {"heading": "Latent spaces", "images": images},
    ])
