"""Digit classifiers (MNIST images, FSDD spoken digits) and the cross-modal coherence they measure.

Coherence of an audio-visual digit model: the digit of a generated image, as judged by
:class:`~latentbridge.models.classifiers.MNISTClassifier`, or of a generated spoken digit, as
judged by :class:`~latentbridge.models.classifiers.FSDDClassifier` on the shared log-mel features
(:mod:`latentbridge.data.digits`), matches the class of the input it was generated from.

* :func:`train_classifier` trains one classifier on its data set's train split and measures it
  on the test split (written to the model folder's ``config.json`` and ``metrics.json``).
  MNIST: ``MNIST(root).load("train"/"test")``; without the official training images this is
  the seeded 8,000 / 2,000 split of the t10k images (``offline_split`` in the config). FSDD:
  the official split (repetitions 5-49 train, 0-4 test). FSDD's six speakers are in both
  splits, so its test accuracy measures recognition of *new recordings of known speakers*,
  not of unseen speakers.
* :func:`load_classifier` returns a cached classifier, training it on first use.
* :func:`coherence` scores generated samples against their intended labels.

Training is plain PyTorch (seeded, fixed epochs, AdamW + one-cycle schedule, no model
selection on the test split), with light augmentation: small random affine transforms for
MNIST; time shift, gain and time/frequency masking of the log-mel features for FSDD.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from latentbridge.errors import LatentbridgeError, ModelFolderError

log = logging.getLogger(__name__)

__all__ = ["KINDS", "DEFAULTS", "classifier_dir", "train_classifier", "load_classifier", "coherence",
           "load_data"]

KINDS = ("mnist", "fsdd")
MODEL_NAMES = {"mnist": "mnist_classifier", "fsdd": "fsdd_classifier"}

#: default training settings per kind (``epochs`` can be overridden by train_classifier's argument)
DEFAULTS: dict[str, dict[str, Any]] = {
    "mnist": {"epochs": 12, "lr": 3e-3, "weight_decay": 1e-4, "label_smoothing": 0.05,
              "model": {"channels": [32, 64], "dropout": 0.25},
              "augment": {"max_rotation_deg": 10.0, "max_translate_px": 2.0, "scale": [0.9, 1.1]}},
    "fsdd": {"epochs": 16, "lr": 3e-3, "weight_decay": 1e-4, "label_smoothing": 0.05,
             "model": {"n_mels": 64, "n_frames": 128, "channels": [16, 32, 64], "dropout": 0.25},
             "augment": {"max_shift_frames": [-4, 16], "gain_db": 10.0, "time_mask": 12, "freq_mask": 8}},
}


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return kind


def classifier_dir(kind: str, cache_dir: str | Path | None = None) -> Path:
    """Cache folder of a classifier: ``cache_dir / kind``; by default
    ``default_cache_dir().parent / "classifiers" / kind`` (``~/.cache/latentbridge/classifiers/KIND``,
    or beside ``$LATENTBRIDGE_CACHE``)."""
    from latentbridge.data.audio import default_cache_dir

    _check_kind(kind)
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir().parent / "classifiers"
    return base / kind


# --------------------------------------------------------------------------- data


def _subset(x: np.ndarray, y: np.ndarray, n: int | None, seed: int, which: int):
    if n is None or n >= len(y):
        return x, y
    idx = np.sort(np.random.default_rng([seed, which]).permutation(len(y))[: int(n)])
    return x[idx], y[idx]


def load_data(kind: str, data_root: str | Path | None = None) -> dict[str, Any]:
    """``{"x_train", "y_train", "x_test", "y_test", "data_config"}`` as float32 model inputs and
    int64 labels, with a description of where they came from (for the model config)."""
    from latentbridge.data import digits

    _check_kind(kind)
    if kind == "mnist":
        import warnings

        from latentbridge.data.sources import MNIST

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*MNIST training images absent.*")
            ds = MNIST(data_root)
        xtr, ytr = ds.load("train")
        xte, yte = ds.load("test")
        split = ({"train": f"seeded (seed {ds.seed}) {len(ytr)} of the t10k images",
                  "test": f"the other {len(yte)} t10k images"} if ds.offline_split else
                 {"train": "official train (60,000)", "test": "official t10k (10,000)"})
        cfg = {"data_root": str(ds.root), "dataset": "MNIST", "offline_split": bool(ds.offline_split),
               "split_seed": ds.seed, "split": split}
        return {"x_train": digits.images_to_float(xtr), "y_train": ytr.astype(np.int64),
                "x_test": digits.images_to_float(xte), "y_test": yte.astype(np.int64), "data_config": cfg}

    from latentbridge.data.sources import FSDD

    ds = FSDD(data_root)
    out: dict[str, Any] = {}
    for split in ("train", "test"):
        items = ds.split(split)
        if not items:
            raise LatentbridgeError(f"{ds.recordings_dir}: no FSDD recordings in the {split!r} split")
        out[f"x_{split}"] = digits.clip_features(digits.load_clips([it.path for it in items]))
        out[f"y_{split}"] = np.array([it.digit for it in items], dtype=np.int64)
    out["data_config"] = {
        "data_root": str(ds.root), "dataset": "FSDD", "offline_split": False,
        "split": {"train": f"official: repetitions {FSDD.TEST_INDICES}-49", "test": f"official: repetitions 0-{FSDD.TEST_INDICES - 1}"},
        "speakers": ds.speakers, "speaker_overlap": True,
        "test_measures": "new recordings of the training speakers (every speaker is in both splits)",
    }
    return out


# --------------------------------------------------------------------------- augmentation


def _augment_mnist(x: torch.Tensor, g: torch.Generator, aug: dict) -> torch.Tensor:
    b = x.shape[0]
    u = lambda: torch.rand(b, generator=g) * 2 - 1  # noqa: E731 - uniform in [-1, 1]
    ang = u() * math.radians(aug["max_rotation_deg"])
    lo, hi = aug["scale"]
    s = lo + (hi - lo) * torch.rand(b, generator=g)
    t = torch.stack([u(), u()], dim=1) * (2.0 * aug["max_translate_px"] / x.shape[-1])
    cos, sin = torch.cos(ang) / s, torch.sin(ang) / s
    theta = torch.stack([torch.stack([cos, -sin, t[:, 0]], 1), torch.stack([sin, cos, t[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)


def _augment_fsdd(x: torch.Tensor, g: torch.Generator, aug: dict) -> torch.Tensor:
    b, _, n_mels, n_frames = x.shape
    floor = x.flatten(1).amin(dim=1).view(b, 1, 1, 1)
    # gain: a dB offset, above the data's own floor
    gain = (torch.rand(b, generator=g) * 2 - 1).view(b, 1, 1, 1) * aug["gain_db"]
    x = torch.maximum(x + gain, floor)
    # time shift, filling with the floor
    lo, hi = aug["max_shift_frames"]
    shift = torch.randint(int(lo), int(hi) + 1, (b,), generator=g)
    src = torch.arange(n_frames).view(1, -1) - shift.view(-1, 1)  # (b, T)
    valid = (src >= 0) & (src < n_frames)
    idx = src.clamp(0, n_frames - 1).view(b, 1, 1, n_frames).expand(b, 1, n_mels, n_frames)
    x = torch.where(valid.view(b, 1, 1, n_frames), x.gather(3, idx), floor)
    # one time mask and one frequency mask per sample
    for dim, size, width in ((3, n_frames, aug["time_mask"]), (2, n_mels, aug["freq_mask"])):
        w = torch.randint(0, int(width) + 1, (b,), generator=g)
        start = (torch.rand(b, generator=g) * (size - w + 1).float()).long()
        pos = torch.arange(size).view(1, -1)
        m = (pos >= start.view(-1, 1)) & (pos < (start + w).view(-1, 1))
        shape = [b, 1, 1, 1]
        shape[dim] = size
        x = torch.where(m.view(shape), floor, x)
    return x


# --------------------------------------------------------------------------- training


def _per_class(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = 10) -> dict[str, Any]:
    conf = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(conf, (y_true.astype(np.int64), y_pred.astype(np.int64)), 1)
    n = conf.sum(axis=1)
    per = {str(c): (float(conf[c, c] / n[c]) if n[c] else None) for c in range(n_classes)}
    return {"accuracy": float((y_true == y_pred).mean()) if len(y_true) else float("nan"),
            "per_class_accuracy": per, "per_class_n": {str(c): int(n[c]) for c in range(n_classes)},
            "confusion_matrix": conf.tolist()}


def _card(kind: str, metrics: dict, data_cfg: dict, train_cfg: dict) -> str:
    what = ("MNIST digit images (B, 1, 28, 28) in [0, 1]" if kind == "mnist" else
            "FSDD spoken digits as dB log-mel features (B, 1, 64, 128) of latentbridge.data.digits")
    if kind == "mnist":
        note = ("Offline split: train and test are a seeded 8,000 / 2,000 split of the official 10,000 "
                "MNIST test images (the 60,000 training images were absent)." if data_cfg["offline_split"]
                else "Official MNIST train / test split.")
    else:
        note = ("Official FSDD split (repetitions 0-4 of every digit and speaker are the test set). The six "
                "speakers appear in both splits: the test accuracy measures new recordings of known "
                "speakers, not unseen speakers.")
    per = ", ".join(f"{c}: {v:.3f}" for c, v in metrics["per_class_accuracy"].items() if v is not None)
    return (f"# {MODEL_NAMES[kind]}\n\nDigit classifier for {what}; the referee of cross-modal coherence "
            f"(`latentbridge.tasks.classify.coherence`).\n\n"
            f"- test accuracy: **{metrics['test_accuracy']:.4f}** on {metrics['n_test']} samples "
            f"(trained on {metrics['n_train']})\n- per class: {per}\n- data: {data_cfg['data_root']}\n"
            f"- {note}\n- training: {train_cfg['epochs']} epochs, seed {train_cfg['seed']}, batch "
            f"{train_cfg['batch_size']}, lr {train_cfg['lr']}, {metrics['seconds']:.0f} s\n")


def train_classifier(kind: str, out_dir: str | Path, *, data_root: str | Path | None = None,
                     epochs: int | None = None, seed: int = 0, batch_size: int = 128, force: bool = False,
                     lr: float | None = None, n_train: int | None = None, n_test: int | None = None,
                     data: dict | None = None) -> dict[str, Any]:
    """Train a ``"mnist"`` or ``"fsdd"`` classifier and save it as a model folder at ``out_dir``.

    The folder (``config.json``, ``model.safetensors``, ``README.md``, ``metrics.json``) is
    written beside ``out_dir`` and renamed onto it when complete. An existing non-empty
    ``out_dir`` is an error unless ``force``. ``n_train`` / ``n_test`` train / test on a seeded
    random subset (for quick tests); ``data`` passes already loaded arrays (see
    :func:`load_data`). Returns the metrics: ``test_accuracy``, ``per_class_accuracy``,
    ``confusion_matrix`` (rows: true digit, columns: predicted), ``train_accuracy``,
    ``n_train``, ``n_test``, ``seconds``, ``out_dir``, ...
    """
    from latentbridge.data import digits
    from latentbridge.models.hub import save_model
    from latentbridge.models.registry import get_model_class
    from latentbridge.utils import atomic_path, atomic_write_json

    _check_kind(kind)
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not force:
        raise LatentbridgeError(f"{out_dir}: exists and is not empty (use --force / force=True to replace it)")
    d = DEFAULTS[kind]
    epochs = int(d["epochs"] if epochs is None else epochs)
    lr = float(d["lr"] if lr is None else lr)
    if epochs < 1 or batch_size < 1:
        raise ValueError("epochs and batch_size must be positive")
    t0 = time.time()
    data = data if data is not None else load_data(kind, data_root)
    xtr, ytr = _subset(data["x_train"], data["y_train"], n_train, seed, 0)
    xte, yte = _subset(data["x_test"], data["y_test"], n_test, seed, 1)
    t_data = time.time() - t0

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = get_model_class(MODEL_NAMES[kind])(**d["model"])
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=d["weight_decay"])
    xt, yt = torch.from_numpy(np.ascontiguousarray(xtr)), torch.from_numpy(ytr)
    n = len(yt)
    steps_per_epoch = max(1, n // batch_size) if n > batch_size else 1
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch,
                                                pct_start=0.2)
    augment = _augment_mnist if kind == "mnist" else _augment_fsdd
    history = []
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=g)
        total, correct, seen = 0.0, 0, 0
        for s in range(steps_per_epoch):
            idx = perm[s * batch_size:(s + 1) * batch_size]
            xb, yb = augment(xt[idx], g, d["augment"]), yt[idx]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb, label_smoothing=d["label_smoothing"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(yb)
            correct += int((logits.argmax(1) == yb).sum())
            seen += len(yb)
        history.append({"epoch": epoch + 1, "loss": total / seen, "train_accuracy_augmented": correct / seen})
        log.info("%s epoch %d/%d: loss %.4f, accuracy (augmented) %.4f", kind, epoch + 1, epochs,
                 total / seen, correct / seen)
    model.eval()
    t_train = time.time() - t0 - t_data

    test = _per_class(yte, model.predict(xte))
    train_acc = float((model.predict(xtr) == ytr).mean())
    data_cfg = dict(data["data_config"])
    train_cfg = {"epochs": epochs, "seed": seed, "batch_size": batch_size, "lr": lr,
                 "weight_decay": d["weight_decay"], "label_smoothing": d["label_smoothing"],
                 "optimizer": "AdamW + OneCycleLR", "augment": d["augment"],
                 "n_train_limit": n_train, "n_test_limit": n_test}
    metrics = {
        "kind": kind, "model_class": MODEL_NAMES[kind], "test_accuracy": test["accuracy"],
        "per_class_accuracy": test["per_class_accuracy"], "per_class_n": test["per_class_n"],
        "confusion_matrix": test["confusion_matrix"], "train_accuracy": train_acc,
        "n_train": int(len(ytr)), "n_test": int(len(yte)), "offline_split": bool(data_cfg["offline_split"]),
        "test_split": data_cfg["split"]["test"], "seconds": time.time() - t0, "seconds_data": t_data,
        "seconds_train": t_train, "epochs": epochs, "history": history,
    }
    if kind == "fsdd":
        metrics["test_measures"] = data_cfg["test_measures"]
    config = {"task": "classifier", "kind": kind, **data_cfg, "train": train_cfg}
    transform = dict(digits.TRANSFORM) if kind == "fsdd" else {}
    extra = {"test_accuracy": test["accuracy"], "n_train": int(len(ytr)), "n_test": int(len(yte)),
             "train_accuracy": train_acc}
    with atomic_path(out_dir) as tmp:
        save_model(tmp, model, MODEL_NAMES[kind], config=config, transform=transform, extra=extra,
                   card=_card(kind, metrics, data_cfg, train_cfg))
        atomic_write_json(tmp / "metrics.json", metrics)
    metrics["out_dir"] = str(out_dir)
    return metrics


def load_classifier(kind: str, *, data_root: str | Path | None = None, cache_dir: str | Path | None = None,
                    train_if_missing: bool = True):
    """``(model, info)`` of the cached ``kind`` classifier (see :func:`classifier_dir`).

    When the folder is missing (or unreadable) and ``train_if_missing``, it is trained there
    with the defaults on ``data_root`` first (written to a temporary folder and renamed, so an
    interrupted run leaves no half-written cache). ``info`` is the folder's ``config.json``
    plus ``path`` and ``trained_now``. The model is in eval mode.
    """
    from latentbridge.models.hub import load_model

    folder = classifier_dir(kind, cache_dir)
    trained_now = False
    try:
        saved = load_model(folder)
    except ModelFolderError as exc:
        if not train_if_missing:
            raise LatentbridgeError(f"no usable {kind} classifier at {folder} ({exc.problem}); train it with "
                                    f"`latentbridge classifier train {kind} --data ROOT`") from None
        if folder.exists():
            log.warning("retraining the %s classifier: %s", kind, exc)
        else:
            log.info("training the %s classifier into %s (first use)", kind, folder)
        train_classifier(kind, folder, data_root=data_root, force=True)
        saved = load_model(folder)
        trained_now = True
    if saved.info["model_class"] != MODEL_NAMES[kind]:
        raise ModelFolderError(folder, f"holds a {saved.info['model_class']!r}, not a {MODEL_NAMES[kind]!r}")
    info = dict(saved.info, path=str(folder), trained_now=trained_now)
    return saved.model, info


def coherence(classifier, generated, target_labels) -> dict[str, Any]:
    """How often ``classifier`` recognises the intended digit in generated samples.

    ``generated``: what the classifier takes (images for the MNIST classifier, log-mel features
    for the FSDD classifier), numpy or torch; ``target_labels``: the digit each sample was
    generated from. Returns ``accuracy`` (the coherence), ``n``, ``per_class_accuracy`` and
    ``per_class_n`` (by intended digit; None for digits without samples), ``confusion_matrix``
    (rows: intended, columns: predicted), ``chance`` (0.1) and, when the classifier has
    ``predict_proba``, ``mean_target_probability``.
    """
    targets = np.asarray(target_labels.cpu() if isinstance(target_labels, torch.Tensor) else target_labels)
    targets = targets.reshape(-1).astype(np.int64)
    if targets.size == 0:
        raise ValueError("coherence needs at least one sample")
    if targets.min() < 0 or targets.max() > 9:
        raise ValueError("target labels must be digits 0-9")
    proba = None
    if hasattr(classifier, "predict_proba"):
        proba = np.asarray(classifier.predict_proba(generated))
        preds = proba.argmax(axis=1)
    else:
        preds = np.asarray(classifier.predict(generated)).reshape(-1)
    if len(preds) != len(targets):
        raise ValueError(f"{len(preds)} generated samples for {len(targets)} target labels")
    res = _per_class(targets, preds.astype(np.int64))
    out = {"accuracy": res["accuracy"], "n": int(len(targets)), "chance": 0.1,
           "per_class_accuracy": res["per_class_accuracy"], "per_class_n": res["per_class_n"],
           "confusion_matrix": res["confusion_matrix"]}
    if proba is not None:
        out["mean_target_probability"] = float(proba[np.arange(len(targets)), targets].mean())
    return out
