"""Sampling and evaluation of diffusion model folders (task ``diffusion``): compute only; the
report step :mod:`latentbridge.report.runs.diffusion` writes the files.

* :func:`sample` draws images from a saved model (EMA weights) with any scheduler, step count,
  class, guidance scale and seed.
* :func:`evaluate` measures generated samples in the feature space of a :class:`Judge`: the
  MNIST classifier for 28 x 28 grey images (Fréchet distance, class accuracy of class-conditional
  samples, precision / recall), area-downsampled pixels otherwise. Every distance comes with
  the same distance between two disjoint real sets of the same size (``fd_real_floor``): the
  generated set against the test images, and as many training images against the same test
  images.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from latentbridge.errors import DataError, LatentbridgeError
from latentbridge.utils import inference_device, progress_bar
from latentbridge.sampling_args import (check_sampler_flags, class_index, condition_warning, sampler_eta,
                                        unlearnt_null_warning)

log = logging.getLogger(__name__)
DIGITS = [str(d) for d in range(10)]


@dataclass
class Judge:
    """The feature space (and, for digits, the classifier) that judges generated images."""

    kind: str
    classifier: object | None = None
    info: dict = field(default_factory=dict)

    def features(self, images: np.ndarray) -> np.ndarray:
        from latentbridge.metrics.generative import pixel_features

        if self.classifier is not None:
            return self.classifier.embed(images)
        return pixel_features(images)

    def predict(self, images: np.ndarray) -> np.ndarray | None:
        return None if self.classifier is None else self.classifier.predict(images)

    def describe(self) -> str:
        if self.classifier is not None:
            acc = self.info.get("test_accuracy")
            return (f"penultimate layer (128 units) of the MNIST classifier at {self.info.get('path')}"
                    + (f" (test accuracy {acc:.4f})" if acc is not None else ""))
        return "pixels, area-averaged to 16 x 16 per channel (no classifier knows these images)"


def make_judge(image_shape, mnist_root=None, *, cache_dir=None) -> Judge:
    """The MNIST classifier (trained on first use from ``mnist_root``) for (1, 28, 28) images;
    otherwise the pixel feature space."""
    from latentbridge.tasks.classify import load_classifier

    if tuple(image_shape) == (1, 28, 28):
        try:
            clf, info = load_classifier("mnist", data_root=mnist_root, cache_dir=cache_dir,
                                        train_if_missing=mnist_root is not None)
            return Judge("mnist_classifier", clf, {"path": info["path"], "test_accuracy": info.get("test_accuracy")})
        except LatentbridgeError as e:
            log.warning("no MNIST classifier (%s): judging in pixel space", e)
    return Judge("pixels16")


def balanced_labels(n: int, n_classes: int) -> np.ndarray:
    return (np.arange(n) % n_classes).astype(np.int64)


@dataclass
class SampleResult:
    images: np.ndarray  # (N, C, H, W) float32 in [0, 1]
    labels: np.ndarray | None
    conditions: np.ndarray | None
    settings: dict
    seconds: float
    class_names: list[str] = field(default_factory=list)  # ``labels`` index them
    condition_names: list[str] = field(default_factory=list)  # the columns of ``conditions``


def generate(model, n: int, *, labels=None, conditions=None, guidance: float = 2.0, scheduler: str = "ddim",
             steps: int | None = 50, eta: float = 0.0, seed: int = 0, batch_size: int = 250,
             progress: bool = False, device=None) -> tuple[np.ndarray, float]:
    """``n`` images from ``model`` (float32 [0, 1]) and the seconds it took, seeded by ``seed``, drawn on
    ``device`` (:func:`~latentbridge.utils.inference_device`: default the GPU when there is one); the
    model is back on its own device afterwards."""
    n_steps = model.process.train_timesteps if steps is None else steps
    home = next(model.parameters()).device
    t0 = time.perf_counter()
    try:
        model.to(inference_device(device))
        if int(batch_size) == batch_size and batch_size >= 1:  # (model.generate names a batch size below 1)
            batch_size = model.sampling_batch(batch_size, guided=labels is not None or conditions is not None)
        with progress_bar(-(-n // max(1, batch_size)) * n_steps, progress, "sampling") as bar:
            x = model.generate(n, y=None if labels is None else torch.as_tensor(labels),
                               c=None if conditions is None else torch.as_tensor(conditions, dtype=torch.float32),
                               guidance=guidance, scheduler=scheduler, steps=steps, eta=eta,
                               generator=torch.Generator().manual_seed(int(seed)), batch_size=batch_size,
                               progress=bar.update)
    finally:
        model.to(home)
    return x.numpy().astype(np.float32), time.perf_counter() - t0


def _settings(cfg, *, scheduler, steps, guidance, seed, eta) -> dict:
    s = cfg.sampling
    scheduler = scheduler or s.scheduler
    return {"scheduler": scheduler, "steps": int(s.steps if steps is None else steps),
            "guidance": float(s.guidance if guidance is None else guidance), "seed": int(s.seed if seed is None else seed),
            "eta": sampler_eta(scheduler, eta, s.eta)}


def _class_index(saved, label) -> int:
    names = [str(n) for n in saved.info.get("class_names") or []]
    return class_index(label, names, len(names), str(saved.path))


def sample(run_dir, n: int, *, label=None, guidance: float | None = None, steps: int | None = None,
           scheduler: str | None = None, seed: int | None = None, eta: float | None = None,
           condition: list[float] | None = None, progress: bool = False, batch_size: int | None = None) -> SampleResult:
    """``n`` samples of a diffusion model folder. ``label``: one class (its name or index) for all
    samples; default: the classes in turn (class-conditional models). ``condition``: the
    continuous condition values of every sample. Unset settings come from the run's ``sampling``
    section."""
    from latentbridge.models.hub import load_model

    return sample_saved(load_model(run_dir), n, label=label, guidance=guidance, steps=steps, scheduler=scheduler,
                        seed=seed, eta=eta, condition=condition, progress=progress, batch_size=batch_size)


def sample_saved(saved, n: int, *, label=None, guidance: float | None = None, steps: int | None = None,
                 scheduler: str | None = None, seed: int | None = None, eta: float | None = None,
                 condition: list[float] | None = None, progress: bool = False,
                 batch_size: int | None = None) -> SampleResult:
    """:func:`sample` of a loaded model folder (``latentbridge serve`` holds its models loaded)."""
    if n < 1:
        raise LatentbridgeError(f"--num-samples must be at least 1, got {n}")
    check_sampler_flags(steps=steps, eta=eta, batch_size=batch_size, seed=seed)
    run_dir = saved.path
    cfg = saved.workflow
    if cfg.task != "diffusion":
        raise LatentbridgeError(f"{run_dir}: a {cfg.task!r} model, not a diffusion model")
    model = saved.model
    settings = _settings(cfg, scheduler=scheduler, steps=steps, guidance=guidance, seed=seed, eta=eta)
    if settings["steps"] > model.process.train_timesteps:
        raise LatentbridgeError(f"--steps {settings['steps']} is more than the model's "
                                f"{model.process.train_timesteps} training timesteps")
    labels = None
    if label is not None:
        labels = np.full(n, _class_index(saved, label), dtype=np.int64)
    elif model.n_classes:
        labels = balanced_labels(n, model.n_classes)
    conditions = None
    if condition is not None and not len(condition) and not model.n_continuous:  # [] for none (a 500 from the server)
        condition = None
    if condition is not None:
        if len(condition) != model.n_continuous:
            raise LatentbridgeError(f"{run_dir}: the model takes {model.n_continuous} continuous condition(s) "
                                    f"({saved.info.get('condition_names')}), got {len(condition)}")
        if not np.all(np.isfinite(np.asarray(condition, dtype=np.float64))):
            raise LatentbridgeError(f"--condition: every value must be a finite number, got {list(condition)}")
        conditions = np.tile(np.asarray(condition, dtype=np.float32), (n, 1))
    if said := condition_warning(condition, saved.info.get("condition_names"), saved.info.get("condition_range"),
                                 model.n_continuous, cfg.diffusion.label_dropout):
        log.warning("%s", said)
    try:
        images, secs = generate(model, n, labels=labels, conditions=conditions, progress=progress,
                                batch_size=batch_size or cfg.sampling.batch_size, **settings)
    except LatentbridgeError as e:  # (it advised other --steps for a --condition of 1e30)
        if not said or "non-finite" not in str(e):
            raise
        raise LatentbridgeError(f"{e}; or rather a --condition within the training images' range (warned above)"
                                ) from None
    if labels is None and conditions is None:  # nothing to guide towards (it recorded a guidance that did nothing)
        if guidance is not None:
            log.warning("--guidance %g has no effect: %s (none recorded with the samples)", guidance,
                        "no --condition given" if model.n_continuous else "the model is unconditional")
        settings["guidance"] = None
    if (labels is not None or conditions is not None) and (
            said := unlearnt_null_warning(settings["guidance"], cfg.diffusion.label_dropout)):
        log.warning("%s", said)
    if settings["guidance"] == 0 and (labels is not None or conditions is not None):  # w = 0: the unconditional model
        if label is not None or condition is not None:  # (--class 3 was recorded as each sample's class)
            log.warning("--guidance 0 draws unconditional samples: --%s has no effect (none recorded with them)",
                        "class" if label is not None else "condition")
        labels = conditions = None
    return SampleResult(images, labels, conditions, {**settings, "n_samples": int(n)}, secs,
                        [str(c) for c in saved.info.get("class_names") or []],
                        [str(c) for c in saved.info.get("condition_names") or []])


@dataclass
class DiffusionEvaluation:
    metrics: dict
    images: np.ndarray  # generated (N, C, H, W) in [0, 1]
    labels: np.ndarray | None
    real: np.ndarray  # as many real test images, for a side-by-side grid


def measure(judge: Judge, generated: np.ndarray, labels, reference: np.ndarray, real_same_size: np.ndarray,
            k: int = 3, digit_classes: bool = True) -> dict:
    """Fréchet distance, precision / recall (and class accuracy) of ``generated`` against
    ``reference`` images, with the same figures of ``real_same_size`` (real images disjoint from
    the reference, as many as generated) as the floor."""
    from latentbridge.metrics.classification import coherence
    from latentbridge.metrics.generative import frechet_distance, precision_recall

    f_gen, f_ref, f_real = judge.features(generated), judge.features(reference), judge.features(real_same_size)
    fd, floor = frechet_distance(f_gen, f_ref), frechet_distance(f_real, f_ref)
    pr, pr_real = precision_recall(f_ref, f_gen, k), precision_recall(f_ref, f_real, k)
    out = {"fd": fd, "fd_real_floor": floor, "fd_ratio": fd / floor if floor > 0 else None,
           "precision": pr["precision"], "recall": pr["recall"], "precision_real": pr_real["precision"],
           "recall_real": pr_real["recall"], "k": k, "n_generated": int(len(generated)),
           "n_reference": int(len(reference)), "n_real_floor": int(len(real_same_size)),
           "feature_space": judge.kind}
    if labels is not None and judge.classifier is not None and digit_classes:
        coh = coherence(judge.classifier, generated, labels)
        out["class_accuracy"] = coh["accuracy"]
        out["class_accuracy_per_class"] = coh["per_class_accuracy"]
        out["mean_target_probability"] = coh.get("mean_target_probability")
    return out


def evaluate(run_dir, data: str | None = None, *, n_samples: int | None = None, scheduler: str | None = None,
             steps: int | None = None, guidance: float | None = None, seed: int | None = None,
             eta: float | None = None, judge: Judge | None = None, progress: bool = False) -> DiffusionEvaluation:
    """Generate ``evaluate.n_samples`` images (classes in turn) and measure them against the test
    images of the run's data (or of ``data``, a data root of the same source)."""
    from latentbridge.data.images import ImageData, load_image_data
    from latentbridge.models.hub import load_model

    saved = load_model(run_dir)
    cfg = saved.workflow
    if cfg.task != "diffusion":
        raise LatentbridgeError(f"{run_dir}: a {cfg.task!r} model, not a diffusion model")
    data_cfg = cfg.data.model_copy(update={"root": data}) if data else cfg.data
    if data and cfg.data.source == "folder":
        # another folder: its own images give the reference and, disjoint from it, the real-data floor (the run's
        # training images as the floor put it between two kinds of image: fd_ratio 1.2 for a model of bars
        # evaluated on digits; and the training folder itself as --data put the floor's images in the reference)
        from latentbridge.data.images import every_image

        every, test_info = every_image(cfg.data, data, cfg.train.seed, saved.info.get("class_names"),
                                       (saved.info.get("data") or {}).get("reading"))
        if len(every) < 4:
            raise DataError(data, f"{len(every)} image(s): an evaluation on another folder takes a real-data floor "
                                  "and a reference from it, 2 images each at least")
        order = np.random.default_rng(cfg.train.seed + 13).permutation(len(every))
        m = min(int(n_samples or cfg.evaluate.n_samples), len(every) // 2)
        floor, test = every.subset(np.sort(order[:m])), every.subset(np.sort(order[m:]))
        images = ImageData(floor, floor, test, {"root": str(data), "offline_split": False, "split": (
            f"{test_info['split']}; {len(test)} as the reference, {m} others as the real-data floor")})
    else:
        images = load_image_data(data_cfg, cfg.train.seed, read=(), run=saved.path)  # decoded below: the test split,
        # a floor's worth
        names, labels = images.test.class_names, images.test.labels
        if names and labels is not None and (absent := [n for k, n in enumerate(names) if not (labels == k).any()]):
            log.warning("%s: the run's test split holds no image of class(es) %s (too few images of them to split): "
                        "its samples of every class are compared with test images of %d of its %d classes",
                        data_cfg.root, ", ".join(map(str, absent)), len(names) - len(absent), len(names))
    if len(images.test) < 2:  # before the sampling: Fréchet distances need two test images at least
        raise DataError(data_cfg.root, f"{len(images.test)} test image(s) in the run's split: an evaluation "
                                       "compares samples with at least 2 (train on more images, or evaluate on "
                                       "another folder: --data DIR)")
    if len(images.train) < 2:  # the real floor: as many training images as samples, two at least
        raise DataError(data_cfg.root, f"{len(images.train)} training image(s) in the run's split: the real-data "
                                       "floor of an evaluation needs at least 2")
    model = saved.model
    n = int(n_samples or cfg.evaluate.n_samples)
    # the images, decoded (and scaled once) before the sampling: an unreadable one stops the evaluation there
    rng = np.random.default_rng(cfg.train.seed + 11)
    pool = images.train
    real = pool.subset(np.sort(rng.choice(len(pool), size=min(n, len(pool)), replace=False))).floats()
    reference = images.test.floats()
    if judge is None:
        judge = make_judge(model.image_shape, data_cfg.root if data_cfg.source == "mnist" else None)
    settings = _settings(cfg, scheduler=scheduler, steps=steps, guidance=guidance, seed=seed, eta=eta)
    labels = balanced_labels(n, model.n_classes) if model.n_classes else None
    conditions = None
    if model.n_continuous:  # the conditions of as many test images, in turn
        src = images.test.conditions
        conditions = src[np.arange(n) % len(src)] if src is not None and len(src) else None
    gen, secs = generate(model, n, labels=labels, conditions=conditions, progress=progress,
                         batch_size=cfg.sampling.batch_size, **settings)
    if len(real) < n:
        log.warning("only %d %s images for a real floor of %d", len(real), "of the folder's" if data else "training", n)
    names = saved.info.get("class_names") or []
    k = min(cfg.evaluate.k, len(images.test) - 1, len(real) - 1, n - 1)  # precision / recall: k neighbours within each set
    if k < cfg.evaluate.k:
        log.warning("precision / recall with k = %d nearest neighbours instead of evaluate.k = %d: %d test and %d "
                    "real images (a small set: the figures are rough)", k, cfg.evaluate.k, len(images.test), len(real))
    dim = judge.features(reference[:1]).shape[1]
    if len(images.test) <= dim:  # a covariance of rank below its size: the Fréchet distance is rough
        log.warning("the Fréchet distances compare with %d reference image(s) in %d features: with fewer images than "
                    "features the reference's covariance is rank-deficient and the figures are rough (compare runs on "
                    "the same reference only; more test images: data.test_fraction, or --data DIR)",
                    len(images.test), dim)
    m = measure(judge, gen, labels, reference, real, k, digit_classes=names == DIGITS)
    metrics = {
        "task": "diffusion", "model": str(saved.path), "model_class": saved.info["model_class"],
        **m, "sampler": settings, "seconds_sampling": round(secs, 2),
        "seconds_per_1000_samples": round(1000.0 * secs / n, 2), "torch_threads": torch.get_num_threads(),
        "judge": judge.describe(), "data": images.info["root"], "split": images.info["split"],
        "offline_split": images.info["offline_split"], "reference": f"{len(images.test)} test images",
        "process": model.process.config(),
    }
    order = np.arange(min(len(images.test), 100))
    return DiffusionEvaluation(metrics, gen, labels, reference[order])
