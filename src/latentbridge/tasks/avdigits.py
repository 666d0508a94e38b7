"""Audio-visual digits: FSDD clips paired with MNIST images, one multimodal VAE over both.

``fit`` trains on the training pairs (FSDD official split: index 5-49; MNIST training images, or
the seeded offline split of the 10k test images when the 60k are absent) and fits the latent
bridge; ``evaluate`` measures cross-modal coherence on the test pairs (spoken digit → image,
image → spectrogram → wav) with the digit classifiers (trained on first use and cached),
reconstruction errors, and clustering of the latents (compute only; ``latentbridge.report.digits``
writes the files). ``analyze`` (:mod:`latentbridge.tasks.analyze`) studies the relationships
between the two latent spaces.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from latentbridge.data.digits import DigitPairs, RedrawnPairs, build_pairs, training_images
from latentbridge.models.hub import load_model
from latentbridge.tasks.crossmodal import to_waves
from latentbridge.utils import batched


def pairs(cfg, split: str) -> tuple[DigitPairs, dict]:
    """The config's audio-visual pairs of ``split`` with its own features."""
    from latentbridge.config.workflows import transform_spec

    return build_pairs(cfg.digits, transform_spec(cfg), split, cfg.train.seed)


@dataclass
class FitResult:
    out_dir: Path
    n_train_pairs: int
    n_val_pairs: int
    seconds: float


def fit(cfg, out_dir: str | Path, *, resume: bool = False, force: bool = False,
        notify=None) -> FitResult | None:
    from latentbridge.config.workflows import transform_spec
    from latentbridge.models.base import fit_latent_scale
    from latentbridge.models.registry import build_model
    from latentbridge.tasks.pipeline import training_run
    from latentbridge.training.fit import DictDataset, make_loader

    t0 = time.time()
    data, info = pairs(cfg, "train")
    pairs(cfg, "test")  # its recordings' problems surface before anything is trained (as evaluate's did, after it)
    train, val = data.split_val(cfg.data.val_fraction, cfg.train.seed)
    spec = transform_spec(cfg)
    with training_run(cfg, out_dir, resume=resume, force=force) as run:
        model = build_model(cfg.model, audio_shape=tuple(data.audio.shape[1:]), image_shape=tuple(data.image.shape[1:]),
                            loss_weights=cfg.losses.model_dump())
        model.normalizer.fit(torch.from_numpy(train.audio))
        train_set = (RedrawnPairs(train, *training_images(cfg.digits), cfg.train.seed)
                     if cfg.digits.redraw_images else DictDataset(**train.tensors()))
        run.fit(model, make_loader(train_set, cfg.train, True),
                make_loader(DictDataset(**val.tensors()), cfg.train, False) if len(val.label) else None)
        if run.outcome is None:
            return None
        model.eval()
        z = latent_modes(model, train)
        model.fit_bridge(torch.from_numpy(z["z_audio"]), torch.from_numpy(z["z_image"]))
        fit_latent_scale(model.first_stage("audio"), train.audio)
        fit_latent_scale(model.first_stage("image"), train.image)
        data_info = {**info, "n_train_pairs": int(len(train.label)), "n_val_pairs": int(len(val.label)),
                     "fsdd_root": cfg.digits.fsdd_root, "mnist_root": cfg.digits.mnist_root}
        training = run.summary
        f = spec.features
        card = (f"# latentbridge audio-visual digits model ({cfg.model.fusion} fusion)\n\n"
                f"Spoken digits ({info['audio_source']}, {f.sample_rate} Hz, {spec.windowing.window_s:g}-s clips → "
                f"{f.n_mels}-band dB log-mel, n_fft {f.n_fft}, hop {f.hop_length}, {f.n_frames} frames) paired with "
                f"{'MNIST images' if info['image_source'] == 'MNIST' else info['image_source']} of the same digit; "
                f"{len(train.label)} training pairs"
                + (" (MNIST offline split of the 10k test images)" if info["mnist_offline_split"] else "")
                + f". Latent size {cfg.model.latent_dim}; {training['epochs']} epochs, {training['seconds']} s.\n")
        run.save(model, transform=spec, extra={"data": data_info}, card=card)
        return FitResult(run.dir, int(len(train.label)), int(len(val.label)), time.time() - t0)


def latent_modes(model, data: DigitPairs, batch: int = 512) -> dict[str, np.ndarray]:
    """Posterior modes of each modality alone: ``z_audio``, ``z_image`` (N, D)."""
    out = batched(lambda b: {f"z_{m}": model.infer(b, use=(m,)).mode() for m in ("audio", "image")},
                  data.tensors(), batch_size=batch)
    return {k: v.numpy() for k, v in out.items()}


def predict_all(model, data: DigitPairs, batch: int = 256) -> dict[str, np.ndarray]:
    """Latents of each modality alone and together, and cross-modal generations by both routes
    (``*_bridge`` keys when the model's latent bridge is fitted)."""
    bridged = model.bridge_fitted

    def step(b):
        a2 = model.predict(b, use=("audio",))
        i2 = model.predict(b, use=("image",))
        res = {"z_audio": a2["latent"], "z_image": i2["latent"], "z_joint": model.infer(b, use=("audio", "image")).mode(),
               "audio_to_image": a2["image"], "image_to_audio": i2["audio"],
               "audio_recon": a2["audio"], "image_recon": i2["image"]}
        if bridged:
            za2i, zi2a = model.bridge(a2["latent"], "audio", "image"), model.bridge(i2["latent"], "image", "audio")
            res.update({"z_audio_bridged": za2i, "z_image_bridged": zi2a,
                        "audio_to_image_bridge": model.decode_modality("image", za2i),
                        "image_to_audio_bridge": model.decode_modality("audio", zi2a)})
        return res

    return {k: v.numpy() for k, v in batched(step, data.tensors(), batch_size=batch).items()}


def classifiers(cfg, spec):
    """The MNIST and FSDD judges (the FSDD one reads the run's own features)."""
    from latentbridge.tasks.classify import load_classifier

    mnist = load_classifier("mnist", data_root=cfg.digits.mnist_root)
    fsdd = load_classifier("fsdd", data_root=cfg.digits.fsdd_root, spec=spec)
    return mnist, fsdd


@dataclass
class DigitsEvaluation:
    metrics: dict
    sample_rate: int
    routes: list[str]
    test: DigitPairs
    pred: dict
    pick: np.ndarray  # one test pair per digit
    wavs: list[tuple[str, np.ndarray]] = field(default_factory=list)  # (file name, wave) examples
    samples: dict = field(default_factory=dict)  # prior samples: image (10, H, W), audio (10, F, T)
    features: object = None  # the spectrogram parameters (SpectrogramParams): the plots' frequencies, times, unit


def space_clusters(test: DigitPairs, latents: dict, space: str, method: str, n_clusters: int, **kw
                   ) -> tuple[np.ndarray, dict]:
    """(cluster of each test pair, clustering scores) of one latent space: the audio latent clustered and scored
    over the distinct clips, whose latent each of their pairs repeats (counted once per pair, a clip's copies sat
    together: silhouettes rose, to 1.0 at 200 clusters of 100 clips), their clusters spread back to the pairs; the
    joint latent too, of each clip's first pair (its pairs' joint latents lie close together: k-means grouped a
    clip's copies, a joint NMI of 0.66 against a chance of 0.25 where a chance shuffled by clip was 0.63)."""
    from latentbridge.metrics.clustering import cluster, clustering_scores

    every, y, back = latents[space], test.label, None
    x = every
    if space in ("z_audio", "z_joint"):
        _, first, back = np.unique(test.clip, return_index=True, return_inverse=True)
        x, y = x[first], y[first]
    labels = cluster(x, method, n_clusters, seed=0, **kw)
    scores = clustering_scores(x, labels, y)
    if space == "z_joint":  # each pair to the nearest cluster's mean (its own joint latent: not its clip's first)
        ks = np.unique(labels)
        means = np.stack([x[labels == k].mean(0) for k in ks])
        return ks[((every[:, None, :] - means[None]) ** 2).sum(-1).argmin(1)], scores
    return (labels if back is None else labels[back.reshape(-1)]), scores


def distinct_clips(test: DigitPairs) -> int:
    return int(len(np.unique(test.clip)))


def refuse_other_data(data) -> None:
    """``evaluate --data`` of a digits run (audio-visual or latent diffusion): refused, not ignored (the metrics of
    the config's test pairs came back as if of the folder given)."""
    if data:
        from latentbridge.errors import DataError

        raise DataError(data, "digits runs are evaluated on the test pairs of their config (drop --data); a spoken or "
                              "written digit of your own: latentbridge sample RUN --condition FILE --out DIR")


def evaluate(run_dir: str | Path, data: str | None = None, n_audio_examples: int = 10, gl_iterations: int = 32,
             max_wav_pairs: int = 600) -> DigitsEvaluation:
    """Coherence, Fréchet distances, diversity and memorisation of both routes on the test pairs
    (:mod:`latentbridge.tasks.crossmodal`), reconstructions and clustering of the latents."""
    from latentbridge.tasks.crossmodal import digit_judges, generation_metrics, reference_metrics, wav_subset

    refuse_other_data(data)
    saved = load_model(run_dir)
    cfg, spec = saved.workflow, saved.transform
    model = saved.model.eval()
    test, info = pairs(cfg, "test")
    pred = predict_all(model, test)
    judges = digit_judges(cfg, spec)
    sub = wav_subset(len(test.label), max_wav_pairs)
    metrics: dict = {"fusion": cfg.model.fusion, "n_test_pairs": int(len(test.label)), **info}
    routes = [""] + (["_bridge"] if "audio_to_image_bridge" in pred else [])  # posterior route, bridge route
    for suffix in routes:
        metrics.update(generation_metrics(judges, test, pred["audio_to_image" + suffix],
                                          pred["image_to_audio" + suffix], sub, suffix, gl_iterations))
    metrics.update(reference_metrics(judges, test, sub, gl_iterations))
    mnist_info, fsdd_info = judges.mnist_info, judges.fsdd_info
    metrics.update({
        "n_image_to_wav": int(len(sub)),
        "mnist_classifier_test_accuracy": mnist_info.get("test_accuracy"),
        "fsdd_classifier_test_accuracy": fsdd_info.get("test_accuracy"),
        "audio_recon_rmse_db": float(np.sqrt(np.mean((pred["audio_recon"] - test.audio) ** 2))),
        "image_recon_bce": float(np.mean(-(test.image * np.log(pred["image_recon"] + 1e-7)
                                           + (1 - test.image) * np.log(1 - pred["image_recon"] + 1e-7)))),
    })
    for space in ("z_audio", "z_image", "z_joint"):
        _, sc = space_clusters(test, pred, space, "kmeans", 10)
        metrics.update({f"{space}_kmeans_nmi": sc["nmi"], f"{space}_kmeans_ari": sc["ari"],
                        f"{space}_silhouette": sc["silhouette"]})
    order = np.argsort(test.label, kind="stable")
    pick = np.array([order[np.searchsorted(test.label[order], d)] for d in range(10) if d in set(test.label)])
    wavs = [(f"image_to_audio{r}_{test.label[i]}.wav",
             to_waves(spec, pred["image_to_audio" + r][i:i + 1], gl_iterations)[0])
            for i in pick[:n_audio_examples] for r in routes]
    s = model.sample(10, generator=torch.Generator().manual_seed(0))
    samples = {"image": s["image"][:, 0].numpy(), "audio": s["audio"][:, 0].numpy()}
    return DigitsEvaluation(metrics, spec.sample_rate, routes, test, pred, pick, wavs, samples, spec.features)


# ----------------------------------------------------------------------------- one input at a time


@dataclass
class Translation:
    """One cross-modal generation: a spoken digit → an image, or an image → a spoken digit."""

    direction: str  # "audio_to_image" or "image_to_audio"
    route: str  # "posterior" or "bridge" (see AudioVisualVAE.predict)
    image: np.ndarray  # (H, W) in [0, 1]: generated (audio → image) or the model's input (image → audio)
    audio: np.ndarray  # (F, T) dB log-mel: the input's features (audio → image) or generated (image → audio)
    wave: np.ndarray | None  # image → audio: the generated spectrogram as audio (Griffin-Lim)
    sample_rate: int


def _check_route(model, route: str) -> None:
    from latentbridge.errors import LatentbridgeError

    if route not in ("posterior", "bridge"):
        raise LatentbridgeError(f"route must be 'posterior' or 'bridge', got {route!r}")
    if route == "bridge" and not model.bridge_fitted:
        raise LatentbridgeError("this model's latent bridge is not fitted: use route 'posterior'")


def spoken_to_image(saved, path: str | Path, route: str = "posterior") -> Translation:
    """The image a saved audio-visual model draws for a spoken digit (any audio file; prepared as the
    training clips are: :func:`~latentbridge.data.digits.spoken_digit_features`)."""
    from latentbridge.data.digits import spoken_digit_features

    spec, model = saved.transform, saved.model.eval()
    _check_route(model, route)
    feats = spoken_digit_features(Path(path), spec)
    with torch.no_grad():
        out = model.predict({"audio": torch.from_numpy(feats)}, use=("audio",), route=route)
    return Translation("audio_to_image", route, out["image"][0, 0].numpy(), feats[0, 0], None, spec.sample_rate)


def image_to_spoken(saved, path: str | Path, route: str = "posterior", gl_iterations: int = 32) -> Translation:
    """The spoken digit a saved audio-visual model says for an image of a written digit (a photo, scan
    or drawing of any size and format, framed as MNIST's digits: :func:`latentbridge.data.digits.read_digit_image`),
    as log-mel features and as audio through Griffin-Lim (seeded: reproducible)."""
    from latentbridge.data.digits import read_digit_image

    spec, model = saved.transform, saved.model.eval()
    _check_route(model, route)
    _, h, w = model.kwargs["image_shape"]
    img = read_digit_image(path, h, w)
    with torch.no_grad():
        out = model.predict({"image": torch.from_numpy(img)[None, None]}, use=("image",), route=route)
    wave = to_waves(spec, out["audio"], gl_iterations)
    return Translation("image_to_audio", route, img, out["audio"][0, 0].numpy(), wave.reshape(-1), spec.sample_rate)


def sample(run_dir, n: int, conditions: list[str] | None = None, *, seed: int = 0, gl_iterations: int = 32):
    """``latentbridge sample`` of an audio-visual run folder (:func:`sample_saved`)."""
    return sample_saved(load_model(run_dir), n, conditions, seed=seed, gl_iterations=gl_iterations)


def sample_saved(saved, n: int, conditions: list[str] | None = None, *, seed: int = 0, gl_iterations: int = 32):
    """``n`` pairs per condition file drawn given it (a spoken digit: written digits; a written digit: spoken ones,
    :meth:`AudioVisualVAE.sample`), or ``n`` pairs from the prior (the server's samples too); seeded, the global RNG
    untouched. Returned as :class:`latentbridge.tasks.mld.MLDSamples` (one writer for both kinds of run): images
    (n, H, W), dB log-mels ``audio`` (n, F, T) and ``waves`` through Griffin-Lim."""
    from latentbridge.errors import LatentbridgeError
    from latentbridge.tasks.mld import MLDSamples
    from latentbridge.tasks.mld_eval import digit_condition, read_conditions
    from latentbridge.utils import output_names

    if n < 1:
        raise LatentbridgeError(f"--num-samples must be at least 1, got {n}")
    spec, model = saved.transform, saved.model.eval()
    read = read_conditions(conditions or [], lambda p: digit_condition(p, spec, tuple(model.kwargs["image_shape"][1:])))
    t0 = time.perf_counter()
    out = MLDSamples("digits", {"n_samples": int(n), "seed": int(seed), "gl_iterations": int(gl_iterations),
                                "route": "prior" if not conditions else "posterior"})
    names = output_names(conditions, out.names) if conditions else ["joint"]  # one rule with the MLD's
    for path, name in zip(conditions or [None], names):
        g = torch.Generator().manual_seed(int(seed))  # each condition's samples whatever its place on the command line
        m, x = (None, None) if path is None else read[path]
        s = model.sample(int(n), generator=g, given=None if m is None else {m: torch.from_numpy(np.asarray(x))})
        group = {"name": name, "given": m, "source": path and str(path)}
        if m != "image":
            group["image"] = s["image"][:, 0].numpy()
        else:
            group["condition_image"] = np.asarray(x)[0, 0]
        if m != "audio":
            group["audio"] = s["audio"][:, 0].numpy()
            group["waves"] = to_waves(spec, s["audio"], gl_iterations)
        out.groups.append(group)
    out.seconds = time.perf_counter() - t0
    out.sample_rate = float(spec.sample_rate)
    return out
