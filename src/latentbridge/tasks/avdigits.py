"""Audio-visual digits: FSDD clips paired with MNIST images, one multimodal VAE over both.

``fit`` trains on the training pairs (FSDD official split: index 5-49; MNIST training images, or
the seeded offline split of the 10k test images when the 60k are absent); ``evaluate`` measures
cross-modal coherence on the test pairs (spoken digit → image, image → spectrogram → wav), with
classifiers trained by ``latentbridge classifier train`` (trained on first use and cached),
reconstruction errors, and clustering of the latents; ``analyze`` (see
:mod:`latentbridge.tasks.analyze`) studies the relationships between the two latent spaces.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from latentbridge.config import Config, config_to_dict, validate
from latentbridge.errors import ConfigError
from latentbridge.models.hub import load_model, save_model
from latentbridge.utils import atomic_path, atomic_write_json, stable_hash

log = logging.getLogger(__name__)


@dataclass
class DigitPairs:
    audio: np.ndarray  # (N, 1, n_mels, frames) dB log-mel
    image: np.ndarray  # (N, 1, 28, 28) in [0, 1]
    label: np.ndarray  # (N,)
    clip: np.ndarray  # (N,) clip id (index into the FSDD item list)
    speaker: list[str]
    waves: np.ndarray  # (N, T) clips at 8 kHz

    def subset(self, mask: np.ndarray) -> "DigitPairs":
        return DigitPairs(self.audio[mask], self.image[mask], self.label[mask], self.clip[mask],
                          [s for s, m in zip(self.speaker, mask) if m], self.waves[mask])

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"audio": torch.from_numpy(self.audio), "image": torch.from_numpy(self.image),
                "label": torch.from_numpy(self.label.astype(np.int64))}


def _sources(cfg: Config):
    from latentbridge.data.sources import FSDD, MNIST

    d = cfg.digits
    if not d.fsdd_root or not d.mnist_root:
        raise ConfigError("digits.fsdd_root and digits.mnist_root: both data folders are needed "
                          "(e.g. -o digits.fsdd_root=../shared/data/fsdd -o digits.mnist_root=../shared/data/mnist, "
                          "or -o digits.download=true to fetch them there)")
    return FSDD(d.fsdd_root, download=d.download), MNIST(d.mnist_root, download=d.download, seed=cfg.train.seed)


def _clip_features_cached(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Clips and their log-mel features, cached as .npy keyed by the files and the feature definition."""
    from latentbridge.data.audio import default_cache_dir
    from latentbridge.data.digits import TRANSFORM, clip_features, load_clips

    key = stable_hash({"transform": TRANSFORM, "files": [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns)
                                                          for p in paths]})
    folder = default_cache_dir().parent / "digits" / key
    if (folder / "features.npy").exists() and (folder / "waves.npy").exists():
        return np.load(folder / "waves.npy"), np.load(folder / "features.npy")
    waves = load_clips(paths)
    feats = clip_features(waves)
    try:
        with atomic_path(folder) as tmp:
            tmp.mkdir(parents=True)
            np.save(tmp / "waves.npy", waves)
            np.save(tmp / "features.npy", feats)
    except OSError as e:
        log.warning("digit feature cache %s not written: %s", folder, e)
    return waves, feats


def build_pairs(cfg: Config, split: str) -> tuple[DigitPairs, dict]:
    from latentbridge.data.digits import images_to_float
    from latentbridge.data.sources import pair_audio_visual

    fsdd, mnist = _sources(cfg)
    items = fsdd.items()
    images, labels, splits = mnist.pool()
    pairs = pair_audio_visual(items, labels, split, cfg.train.seed, cfg.digits.pairs_per_clip, image_splits=splits)
    limit = cfg.digits.limit_train_clips if split == "train" else cfg.digits.limit_test_clips
    if limit:
        clips = sorted({p.clip_idx for p in pairs})
        keep = set(np.random.default_rng(cfg.train.seed).permutation(clips)[:limit].tolist())
        pairs = [p for p in pairs if p.clip_idx in keep]
    clip_ids = sorted({p.clip_idx for p in pairs})
    waves, feats = _clip_features_cached([items[i].path for i in clip_ids])
    row = {c: r for r, c in enumerate(clip_ids)}
    idx = np.array([row[p.clip_idx] for p in pairs])
    img = np.array([p.image_idx for p in pairs])
    data = DigitPairs(audio=feats[idx], image=images_to_float(images[img]),
                      label=np.array([items[p.clip_idx].digit for p in pairs]),
                      clip=np.array([p.clip_idx for p in pairs]),
                      speaker=[items[p.clip_idx].speaker for p in pairs], waves=waves[idx])
    info = {"split": split, "n_pairs": len(pairs), "n_clips": len(clip_ids),
            "n_images": len(set(img.tolist())), "mnist_offline_split": bool(mnist.offline_split)}
    return data, info


class RedrawnPairs(torch.utils.data.Dataset):
    """Training pairs whose image is drawn afresh on every use among the training images of the
    clip's digit (``digits.redraw_images``). The draws are seeded by (seed, row, use count), so a
    run is reproducible."""

    def __init__(self, data: DigitPairs, images: np.ndarray, image_labels: np.ndarray, seed: int):
        from latentbridge.errors import DataError

        self.audio = torch.from_numpy(data.audio)
        self.label = torch.from_numpy(data.label.astype(np.int64))
        self.images = images
        self.rows = {int(d): np.flatnonzero(image_labels == d) for d in np.unique(data.label)}
        empty = [d for d, r in self.rows.items() if not len(r)]
        if empty:
            raise DataError("MNIST", f"no training image of digit(s) {empty} to pair with the clips")
        self.seed = seed
        self.uses = np.zeros(len(self.label), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.label)

    def __getitem__(self, i):
        from latentbridge.data.digits import images_to_float

        rows = self.rows[int(self.label[i])]
        r = rows[np.random.default_rng([self.seed, int(i), int(self.uses[i])]).integers(len(rows))]
        self.uses[i] += 1
        return {"audio": self.audio[i], "image": torch.from_numpy(images_to_float(self.images[r:r + 1])[0]),
                "label": self.label[i]}


def training_images(cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """The MNIST training images (uint8) and their digits: the pool the training pairs draw from."""
    _, mnist = _sources(cfg)
    images, labels, splits = mnist.pool()
    return images[splits["train"]], np.asarray(labels)[splits["train"]]


def _split_val(data: DigitPairs, fraction: float, seed: int) -> tuple[DigitPairs, DigitPairs]:
    clips = np.unique(data.clip)
    n_val = int(round(fraction * len(clips)))
    val_clips = set(np.random.default_rng(seed).permutation(clips)[:n_val].tolist())
    mask = np.array([c in val_clips for c in data.clip])
    return data.subset(~mask), data.subset(mask)


def build_model(cfg: Config):
    from latentbridge.data.digits import TRANSFORM
    from latentbridge.models.audiovisual import AudioVisualVAE

    m = cfg.model
    return AudioVisualVAE(audio_shape=(1, TRANSFORM["n_mels"], TRANSFORM["n_frames"]), image_shape=(1, 28, 28),
                          latent_dim=m.latent_dim, channels=list(m.channels), image_channels=list(m.image_channels),
                          kernel_size=m.kernel_size, fusion=m.fusion, loss_weights=cfg.losses.model_dump(),
                          private_dim=m.private_dim, bridge_neighbours=m.bridge_neighbours)


def fit(cfg: Config, out_dir: str | Path, *, resume: bool = False, force: bool = False):
    from latentbridge.data.digits import TRANSFORM
    from latentbridge.training.module import DictDataset, fit_model, make_loader, start_run, training_summary

    if cfg.model.name != "avmvae":
        raise ConfigError(f"model.name: the avdigits task trains 'avmvae', not '{cfg.model.name}'")
    t0 = time.time()
    out_dir = Path(out_dir)
    data, info = build_pairs(cfg, "train")
    train, val = _split_val(data, cfg.data.val_fraction, cfg.train.seed)
    start_run(cfg, out_dir, resume, force)
    model = build_model(cfg)
    model.normalizer.fit(torch.from_numpy(train.audio))
    train_set = (RedrawnPairs(train, *training_images(cfg), cfg.train.seed) if cfg.digits.redraw_images
                 else DictDataset(**train.tensors()))
    trainer = fit_model(model, cfg, out_dir, make_loader(train_set, cfg.train, True),
                        make_loader(DictDataset(**val.tensors()), cfg.train, False) if len(val.label) else None,
                        resume=resume)
    if trainer is None:
        return None
    model.eval()
    z = latent_modes(model, train)
    model.fit_bridge(torch.from_numpy(z["z_audio"]), torch.from_numpy(z["z_image"]))
    data_info = {**info, "n_train_pairs": int(len(train.label)), "n_val_pairs": int(len(val.label)),
                 "fsdd_root": cfg.digits.fsdd_root, "mnist_root": cfg.digits.mnist_root}
    training = training_summary(trainer, t0)
    card = (f"# latentbridge audio-visual digits model ({cfg.model.fusion} fusion)\n\n"
            f"Spoken digits (FSDD, 8 kHz, 1-s clips → {TRANSFORM['n_mels']}-band dB log-mel, n_fft "
            f"{TRANSFORM['n_fft']}, hop {TRANSFORM['hop_length']}, {TRANSFORM['n_frames']} frames) paired with MNIST "
            f"images of the same digit; {len(train.label)} training pairs"
            + (" (MNIST offline split of the 10k test images)" if info["mnist_offline_split"] else "")
            + f". Latent size {cfg.model.latent_dim}; {training['epochs']} epochs, {training['seconds']} s.\n")
    save_model(out_dir, model, "avmvae", config=config_to_dict(cfg), transform=dict(TRANSFORM),
               extra={"data": data_info, "training": training}, card=card)
    return {"out_dir": out_dir, **{k: v for k, v in data_info.items() if isinstance(v, (int, float))},
            "seconds": time.time() - t0}


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def latent_modes(model, data: DigitPairs, batch: int = 512) -> dict[str, np.ndarray]:
    """Posterior modes of each modality alone: ``z_audio``, ``z_image`` (N, D)."""
    t = data.tensors()
    out: dict[str, list] = {"z_audio": [], "z_image": []}
    for i in range(0, len(data.label), batch):
        b = {k: v[i:i + batch] for k, v in t.items()}
        for m in ("audio", "image"):
            out[f"z_{m}"].append(model.infer(b, use=(m,)).mode().numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


@torch.no_grad()
def predict_all(model, data: DigitPairs, batch: int = 256) -> dict[str, np.ndarray]:
    """Latents of each modality alone and together, and cross-modal generations by both routes
    (``*_bridge`` keys when the model's latent bridge is fitted)."""
    out: dict[str, list] = {}
    t = data.tensors()
    bridged = model.bridge_fitted
    for i in range(0, len(data.label), batch):
        b = {k: v[i:i + batch] for k, v in t.items()}
        a2 = model.predict(b, use=("audio",))
        i2 = model.predict(b, use=("image",))
        j = model.infer(b, use=("audio", "image")).mode()
        res = {"z_audio": a2["latent"], "z_image": i2["latent"], "z_joint": j,
               "audio_to_image": a2["image"], "image_to_audio": i2["audio"],
               "audio_recon": a2["audio"], "image_recon": i2["image"]}
        if bridged:
            za2i, zi2a = model.bridge(a2["latent"], "audio", "image"), model.bridge(i2["latent"], "image", "audio")
            res.update({"z_audio_bridged": za2i, "z_image_bridged": zi2a,
                        "audio_to_image_bridge": model.decode_modality("image", za2i),
                        "image_to_audio_bridge": model.decode_modality("audio", zi2a)})
        for k, v in res.items():
            out.setdefault(k, []).append(v.numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def evaluate(run_dir: str | Path, out_dir: str | Path, data: str | None = None, n_audio_examples: int = 10,
             gl_iterations: int = 32, max_wav_pairs: int = 600) -> dict:
    from latentbridge import report
    from latentbridge.data.digits import digit_transform
    from latentbridge.io import write_wav
    from latentbridge.metrics.clustering import cluster, clustering_scores
    from latentbridge.tasks.classify import coherence, load_classifier

    saved = load_model(run_dir)
    cfg = validate(saved.config, f"{run_dir}/config.json")
    model = saved.model.eval()
    test, info = build_pairs(cfg, "test")
    pred = predict_all(model, test)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    mnist_clf, mnist_info = load_classifier("mnist", data_root=cfg.digits.mnist_root)
    fsdd_clf, fsdd_info = load_classifier("fsdd", data_root=cfg.digits.fsdd_root)
    transform = digit_transform().eval()
    # a seeded random subset (pairs are sorted by digit, so the first N would hold a few digits only)
    sub = np.sort(np.random.default_rng(0).permutation(len(test.label))[:min(len(test.label), max_wav_pairs)])
    metrics: dict = {"fusion": cfg.model.fusion, "n_test_pairs": int(len(test.label)), **info}
    routes = [""] + (["_bridge"] if "audio_to_image_bridge" in pred else [])  # posterior route, bridge route
    for suffix in routes:
        a2i = coherence(mnist_clf, torch.from_numpy(pred["audio_to_image" + suffix]), test.label)
        i2a = coherence(fsdd_clf, torch.from_numpy(pred["image_to_audio" + suffix]), test.label)
        # the stronger test of image → spectrogram → wav: re-analyse the Griffin-Lim audio
        wav = transform.invert(torch.from_numpy(pred["image_to_audio" + suffix][sub]), length=test.waves.shape[-1],
                               n_iter=gl_iterations)
        i2wav = coherence(fsdd_clf, transform(wav.reshape(len(sub), -1)), test.label[sub])
        metrics.update({f"coherence_audio_to_image{suffix}": a2i["accuracy"],
                        f"coherence_image_to_audio{suffix}": i2a["accuracy"],
                        f"coherence_image_to_wav{suffix}": i2wav["accuracy"]})
    metrics.update({
        "n_image_to_wav": int(len(sub)),
        "mnist_classifier_test_accuracy": mnist_info.get("test_accuracy"),
        "fsdd_classifier_test_accuracy": fsdd_info.get("test_accuracy"),
        "audio_recon_mse_db": float(np.mean((pred["audio_recon"] - test.audio) ** 2)),
        "image_recon_bce": float(np.mean(-(test.image * np.log(pred["image_recon"] + 1e-7)
                                           + (1 - test.image) * np.log(1 - pred["image_recon"] + 1e-7)))),
    })
    for space in ("z_audio", "z_image", "z_joint"):
        km = cluster(pred[space], "kmeans", 10, seed=0)
        sc = clustering_scores(pred[space], km, test.label)
        metrics.update({f"{space}_kmeans_nmi": sc["nmi"], f"{space}_kmeans_ari": sc["ari"],
                        f"{space}_silhouette": sc["silhouette"]})
    atomic_write_json(out_dir / "metrics.json", metrics)

    # examples: spoken digit → image, image → spectrogram → wav
    order = np.argsort(test.label, kind="stable")
    pick = np.array([order[np.searchsorted(test.label[order], d)] for d in range(10) if d in set(test.label)])
    names = {"": "", "_bridge": ", bridge"}
    report.plot_image_grid(np.stack([test.image[pick, 0]] + [pred["audio_to_image" + r][pick, 0] for r in routes]),
                           ["paired image"] + [f"from the clip{names[r]}" for r in routes],
                           [str(test.label[i]) for i in pick], out_dir / "audio_to_image.png", cmap="gray")
    norm = lambda x: (x - x.min()) / max(1e-9, float(x.max() - x.min()))  # noqa: E731
    report.plot_image_grid(np.stack([np.stack([norm(test.audio[i, 0]) for i in pick])]
                                    + [np.stack([norm(pred["image_to_audio" + r][i, 0]) for i in pick]) for r in routes]),
                           ["spoken digit"] + [f"from the image{names[r]}" for r in routes],
                           [str(test.label[i]) for i in pick], out_dir / "image_to_audio.png")
    report.plot_image_grid(np.stack([test.image[pick, 0], pred["image_recon"][pick, 0]]),
                           ["image", "reconstruction (from the image)"], [str(test.label[i]) for i in pick],
                           out_dir / "image_reconstructions.png", cmap="gray")
    report.plot_spectrogram_pairs(test.audio[pick, 0], pred["audio_recon"][pick, 0],
                                  [f"digit {test.label[i]} ({test.speaker[i]})" for i in pick],
                                  out_dir / "audio_reconstructions.png")
    for i in pick[:n_audio_examples]:
        for r in routes:
            w = transform.invert(torch.from_numpy(pred["image_to_audio" + r][i:i + 1]), length=test.waves.shape[-1],
                                 n_iter=gl_iterations)
            write_wav(out_dir / f"image_to_audio{r}_{test.label[i]}.wav", w.reshape(-1).numpy(), 8000)
    samples = model.sample(10, generator=torch.Generator().manual_seed(0))
    report.plot_image_grid(samples["image"][:, 0].numpy()[None], ["synthetic image"], [str(i) for i in range(10)],
                           out_dir / "synthetic_images.png", cmap="gray")
    report.plot_image_grid(np.stack([norm(s) for s in samples["audio"][:, 0].numpy()])[None],
                           ["synthetic spectrogram"], [str(i) for i in range(10)], out_dir / "synthetic_audio.png")
    z2 = report.embed_2d(pred["z_joint"], method="umap", seed=0)
    report.plot_embedding(z2, test.label, out_dir / "latent_joint.png", "joint latent (UMAP) by digit",
                          categorical=True)
    report.write_html_report(out_dir / "report.html", f"latentbridge audio-visual digits: {Path(run_dir).name}", [
        {"heading": "Metrics", "text": "Coherence: the digit class of the generated sample (by the MNIST / FSDD "
                                       "classifier) matches the input's class. Keys without a suffix: the "
                                       "posterior route (the source's latent decoded by the target decoder); "
                                       "'_bridge': the latent bridge route (the source's latent mapped to the "
                                       "target modality's latent first).", "table": metrics},
        {"heading": "Reconstructions", "images": ["image_reconstructions.png", "audio_reconstructions.png"]},
        {"heading": "Cross-modal generation", "text": "image_to_audio[_bridge]_<digit>.wav: the spectrogram generated from "
         "an image, through Griffin-Lim", "images": ["audio_to_image.png", "image_to_audio.png"]},
        {"heading": "Synthesis from the prior (the same latent sample in each column)",
         "images": ["synthetic_images.png", "synthetic_audio.png"]},
        {"heading": "Latent space", "images": ["latent_joint.png"]},
    ])
    return metrics
