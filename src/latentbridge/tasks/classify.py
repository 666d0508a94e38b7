"""Digit classifiers (MNIST images, FSDD spoken digits): the referees of cross-modal coherence.

Coherence of an audio-visual digit model: the digit of a generated image, as judged by
:class:`~latentbridge.models.classifiers.MNISTClassifier`, or of a generated spoken digit, as
judged by :class:`~latentbridge.models.classifiers.FSDDClassifier` on the shared log-mel features
(:mod:`latentbridge.data.digits`), matches the class of the input it was generated from
(:func:`latentbridge.metrics.classification.coherence`).

* :func:`train_classifier` trains one classifier (a ``classifier`` workflow config: defaults per
  kind, ``-o`` overrides) through the shared trainer, on its data set's train split, and measures
  it on the test split (``config.json`` and ``metrics.json``). MNIST without the official training
  images: the seeded 8,000 / 2,000 split of the t10k images. FSDD: the official split; its six
  speakers are in both splits, so its test accuracy measures *new recordings of known speakers*.
* :func:`load_classifier` returns a cached classifier, training it on first use.

Training: fixed epochs, AdamW + one-cycle schedule, the last epoch's weights (no model selection
on the test split), light augmentation (:mod:`latentbridge.data.augment`).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentbridge.errors import BusyError, LatentbridgeError, ModelFolderError, os_reason

log = logging.getLogger(__name__)

KINDS = ("mnist", "fsdd")
MODEL_NAMES = {"mnist": "mnist_classifier", "fsdd": "fsdd_classifier"}


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return kind


def classifier_config(kind: str, data_root=None, overrides: list[str] | None = None, **sets: Any):
    """The ``classifier`` workflow config of ``kind`` (its defaults, then ``overrides``, then ``sets``:
    dotted keys → values taken as they are)."""
    from latentbridge.config import load_config

    _check_kind(kind)
    base = {"task": "classifier", "model.name": MODEL_NAMES[kind]}
    if data_root is not None:
        base["data.root"] = str(data_root)
    return load_config(None, ["task=classifier", f"model.name={MODEL_NAMES[kind]}", *(overrides or [])],
                       sets={**base, **{k: v for k, v in sets.items() if v is not None}})


def classifier_dir(kind: str, cache_dir: str | Path | None = None, spec=None) -> Path:
    """Cache folder of a classifier: ``cache_dir / kind`` (FSDD classifiers of non-default features:
    ``fsdd-<hash>``); by default ``cache_home() / "classifiers" / ...``
    (``~/.cache/latentbridge/classifiers/KIND``, or inside ``$LATENTBRIDGE_CACHE``)."""
    from latentbridge.data.feature_cache import cache_home
    from latentbridge.data.digits import default_digit_spec
    from latentbridge.utils import stable_hash

    _check_kind(kind)
    base = Path(cache_dir) if cache_dir is not None else cache_home() / "classifiers"
    name = kind
    if kind == "fsdd" and spec is not None and spec.features != default_digit_spec().features:
        name = f"fsdd-{stable_hash(spec.features.model_dump(mode='json'), 10)}"
    return base / name


def data_path(root) -> Path:
    """The data folder ``root`` names, resolved (FSDD's ``recordings`` folder named by its parent)."""
    path = Path(root).expanduser().resolve()
    return path.parent if path.name == "recordings" else path


def same_data(recorded, root, stamp: str | None = None, kind: str = "fsdd") -> bool:
    """Whether a cached judge trained on ``recorded`` (None: not recorded) is one of the data folder ``root``, and
    where it recorded the folder's :func:`data_stamp` (``stamp``), of the folder as it is now (a folder of one's own
    digits edited since, or split by another rule, was judged by a judge trained on its test files)."""
    return recorded is not None and data_path(recorded) == data_path(root) and (
        stamp is None or stamp == data_stamp(kind, root))


def data_stamp(kind: str, root) -> str:
    """A hash of the files a ``kind`` judge reads from the data folder ``root`` as its reader lists them now (names,
    sizes, modification times; a hidden file, a .git folder or a notes file beside them changes nothing), and of the
    split rules' version."""
    import os

    from latentbridge.data.sources import FSDD, written_digits
    from latentbridge.utils import stable_hash

    if kind == "fsdd":
        files = [it.path for it in FSDD(root, fetch=None).items()]
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (said where the data are read)
            files = written_digits(root, fetch=None).files
    top = os.path.realpath(root)  # (each path below the folder: the same stamp whether it is given relative or not)
    stats = [(os.path.relpath(os.path.realpath(p), top), os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in files]
    return stable_hash({"files": stats, "split": 2})


def data_folder(folder: Path, root) -> Path:
    """Where a judge cached at ``folder`` is kept for the data folder ``root`` when the one there was trained on
    another: beside it, named by the folder (a judge of other voices read a run's FSDD test clips 0.61 right where
    its own read them 1.00, and the coherence and FD figures moved with it, without a word)."""
    from latentbridge.utils import stable_hash

    return folder.parent / f"{folder.name}-data-{stable_hash(str(data_path(root)), 10)}"


def judge_place(folder: Path, root, record: str, *keys: str) -> Path:
    """Where the judge of the data folder ``root`` is kept: ``folder`` while it is free (``record``, the JSON file a
    judge there writes, absent or unreadable) or holds a judge of ``root`` (the data folder at ``keys`` in it), else
    :func:`data_folder` (a judge there that records no data is not one of ``root``)."""
    import json

    try:
        recorded = json.loads((folder / record).read_text())
    except (OSError, ValueError):
        return folder
    for key in keys:
        recorded = recorded.get(key) if isinstance(recorded, dict) else None
    return folder if same_data(recorded, root) else data_folder(folder, root)


def stale_judge(kind: str, info: dict, root) -> bool:
    """Whether a judge's ``data`` record names the folder ``root`` as it was before an edit (:func:`same_data`)."""
    data = info.get("data") or {}
    return root is not None and not same_data(data.get("data_root"), root, data.get("files_stamp"), kind)


def _card(kind: str, metrics: dict, data_cfg: dict, cfg) -> str:
    own = data_cfg.get("dataset") not in (None, "MNIST", "FSDD")  # a folder of one's own digits
    what = ((f"{data_cfg['dataset']}" if own else "MNIST digit images") + " as (B, 1, 28, 28) in [0, 1]"
            if kind == "mnist" else (f"{data_cfg['dataset']}" if own else "FSDD spoken digits")
            + " as dB log-mel features of latentbridge.data.digits")
    split = data_cfg.get("split") or {}
    if own:
        note = f"Split: test {split.get('test')}; train {split.get('train')}." + (
            f" {data_cfg['test_measures'][0].upper()}{data_cfg['test_measures'][1:]}." if kind == "fsdd" else "")
    elif kind == "mnist":
        note = ("Offline split: train and test are a seeded 8,000 / 2,000 split of the official 10,000 "
                "MNIST test images (the 60,000 training images were absent)." if data_cfg["offline_split"]
                else "Official MNIST train / test split.")
    else:
        speakers = data_cfg.get("speakers") or []
        note = (f"Official FSDD split (repetitions 0-4 of every digit and speaker are the test set). The "
                f"{len(speakers)} speaker(s) ({', '.join(speakers)}) appear in both splits: the test accuracy "
                "measures new recordings of known speakers, not unseen speakers.")
    per = ", ".join(f"{c}: {v:.3f}" for c, v in metrics["per_class_accuracy"].items() if v is not None)
    t = cfg.train
    return (f"# {MODEL_NAMES[kind]}\n\nDigit classifier for {what}; the referee of cross-modal coherence "
            f"(`latentbridge.metrics.classification.coherence`).\n\n"
            f"- test accuracy: **{metrics['test_accuracy']:.4f}** on {metrics['n_test']} samples "
            f"(trained on {metrics['n_train']})\n- per class: {per}\n- data: {data_cfg['data_root']}\n"
            f"- {note}\n- training: {t.max_epochs} epochs, seed {t.seed}, batch {t.batch_size}, lr {t.lr}, "
            f"{t.optimizer} + {t.scheduler}, {metrics['seconds']:.0f} s\n")


def train_classifier(cfg, out_dir: str | Path, *, force: bool = False, data: dict | None = None) -> dict[str, Any]:
    """Train the classifier of a ``classifier`` workflow config into the model folder ``out_dir``
    (``config.json``, ``model.safetensors``, ``README.md``, ``metrics.json``, checkpoints, logs).

    ``data``: already loaded arrays (:func:`latentbridge.data.digits.classifier_data`). Returns the
    metrics: ``test_accuracy``, ``per_class_accuracy``, ``confusion_matrix`` (rows: true digit,
    columns: predicted), ``train_accuracy``, ``n_train``, ``n_test``, ``seconds``, ``out_dir``."""
    from latentbridge.config.workflows import transform_spec
    from latentbridge.data.augment import AugmentedBatches, augment_digit_images, augment_logmel
    from latentbridge.data.digits import classifier_data
    from latentbridge.metrics.classification import per_class
    from latentbridge.models.registry import build_model
    from latentbridge.tasks.pipeline import training_run
    from latentbridge.training.fit import make_loader
    from latentbridge.utils import atomic_write_json

    if cfg.task != "classifier":
        raise LatentbridgeError(f"train_classifier needs a 'classifier' config, got task {cfg.task!r}")
    kind = cfg.kind
    t0 = time.time()
    spec = transform_spec(cfg)
    if data is None:
        data = classifier_data(kind, cfg.data.root, spec if kind == "fsdd" else None, n_train=cfg.data.n_train,
                               n_test=cfg.data.n_test, seed=cfg.train.seed)
    xtr, ytr, xte, yte = data["x_train"], data["y_train"], data["x_test"], data["y_test"]
    absent = sorted(set(range(10)) - set(np.asarray(ytr).tolist()))
    if absent:  # a digit the model never sees is one it never predicts: a referee that cannot judge it
        log.warning("%s: no training %s of digit(s) %s: the classifier will never predict them (as a coherence "
                    "referee it misjudges every sample of those digits); train on all ten", data["data_config"]
                    ["data_root"], "image" if kind == "mnist" else "recording", ", ".join(map(str, absent)))
    t_data = time.time() - t0
    with training_run(cfg, out_dir, force=force) as run:
        extra_args = {"n_mels": xtr.shape[2], "n_frames": xtr.shape[3]} if kind == "fsdd" else {}
        model = build_model(cfg.model, **extra_args)
        model.label_smoothing = cfg.classifier.label_smoothing
        dataset = torch.utils.data.TensorDataset(torch.from_numpy(np.ascontiguousarray(xtr)), torch.from_numpy(ytr))
        augment = augment_digit_images if kind == "mnist" else augment_logmel
        loader = make_loader(dataset, cfg.train, True,
                             collate_fn=AugmentedBatches(augment, cfg.classifier.augment, cfg.train.seed))
        run.fit(model, loader, None, beta=False)
        if run.outcome is None:
            return {}
        model.eval()
        test = per_class(yte, model.predict(xte))
        train_acc = float((model.predict(xtr) == ytr).mean())
        data_cfg = {**data["data_config"], "files_stamp": data_stamp(kind, data["data_config"]["data_root"])}
        history = run.outcome.trainer.callback_metrics
        metrics = {
            "kind": kind, "model_class": MODEL_NAMES[kind], "test_accuracy": test["accuracy"],
            "per_class_accuracy": test["per_class_accuracy"], "per_class_n": test["per_class_n"],
            "confusion_matrix": test["confusion_matrix"], "train_accuracy": train_acc,
            "n_train": int(len(ytr)), "n_test": int(len(yte)), "offline_split": bool(data_cfg["offline_split"]),
            "test_split": data_cfg["split"]["test"], "seconds": time.time() - t0, "seconds_data": t_data,
            "seconds_train": run.summary["seconds"], "epochs": int(cfg.train.max_epochs),
            "final_train_loss": float(history["train/loss_epoch"]) if "train/loss_epoch" in history else None,
        }
        if kind == "fsdd":
            metrics["test_measures"] = data_cfg["test_measures"]
        run.save(model, transform=spec, extra={"test_accuracy": test["accuracy"], "n_train": int(len(ytr)),
                                               "n_test": int(len(yte)), "train_accuracy": train_acc,
                                               "data": data_cfg},
                 card=_card(kind, metrics, data_cfg, cfg))
        atomic_write_json(run.dir / "metrics.json", metrics)
    metrics["out_dir"] = str(out_dir)
    return metrics


def load_classifier(kind: str, *, data_root: str | Path | None = None, cache_dir: str | Path | None = None,
                    train_if_missing: bool = True, spec=None):
    """``(model, info)`` of the cached ``kind`` classifier (see :func:`classifier_dir`); ``spec``: the
    features an FSDD classifier must read (default: the built-in digit features).

    When the folder is missing (or unreadable) and ``train_if_missing``, it is trained there with
    the defaults on ``data_root`` first. ``info`` is the folder's ``config.json`` plus ``path`` and
    ``trained_now``. The model is in eval mode."""
    from latentbridge.models.hub import load_model

    folder = classifier_dir(kind, cache_dir, spec)
    if data_root is not None:  # one trained on another folder (other voices or images) is a referee of other data
        folder = judge_place(folder, data_root, "config.json", "data", "data_root")
    trained_now = False
    try:
        saved = load_model(folder)
        if stale_judge(kind, saved.info, data_root):
            raise ModelFolderError(folder, "its data folder changed since it was trained (files added, removed or "
                                           "changed)")
    except ModelFolderError as exc:
        if not train_if_missing:
            raise LatentbridgeError(f"no usable {kind} classifier at {folder} ({exc.problem}); train it with "
                                    f"`latentbridge classifier train {kind} --data ROOT`") from None
        from latentbridge.outputs import FolderLock, kept_aside

        def trained_by_another() -> bool:  # its classifier, once trained (the second of two evaluations judged in
            return FolderLock(folder).wait_free(f"trains the {kind} classifier")  # pixel space: FD 35 for 3780)

        if trained_by_another():
            return load_classifier(kind, data_root=data_root, cache_dir=cache_dir, spec=spec)
        for kept in kept_aside(folder):  # a killed retraining's: the cache's own, not handed to the user to sort out
            shutil.rmtree(kept, ignore_errors=True)
        from latentbridge.data.feature_cache import write_error

        place, unwritable = folder, write_error(folder.parent)  # (its lock and its staged files go beside it)
        if unwritable:  # trained for this run (it was not, and the images were judged in pixel space, 100x apart)
            place = Path(tempfile.mkdtemp(prefix=f"latentbridge-{kind}-classifier-")) / "model"
            log.warning("training the %s classifier for this run only: its cache folder %s cannot be written (%s; "
                        "LATENTBRIDGE_CACHE=DIR keeps it in a writable folder)", kind, folder, os_reason(unwritable))
        elif folder.exists():  # (an unfinished one was told to `latentbridge train --resume`, which the user never ran)
            log.warning("retraining the %s classifier: %s", kind, "an earlier training of it did not finish"
                        if not (folder / "config.json").exists() else exc)
        else:
            log.warning("training the %s classifier into %s (first use; kept for later runs)", kind, folder)
        sets = {}
        if kind == "fsdd" and spec is not None:
            sets = {"audio": {"sample_rate": spec.sample_rate, "window_s": spec.windowing.window_s,
                              "hop_s": spec.windowing.hop_s, "pad": spec.windowing.pad},
                    "features": {k: v for k, v in spec.features.model_dump().items() if k != "sample_rate"}}
        cfg = classifier_config(kind, data_root, **sets)
        try:
            try:
                train_classifier(cfg, place, force=True)
            except BusyError:  # another process began it a moment before
                trained_by_another()
                return load_classifier(kind, data_root=data_root, cache_dir=cache_dir, spec=spec)
            saved = load_model(place)
        finally:
            if place != folder:
                shutil.rmtree(place.parent, ignore_errors=True)
        trained_now = True
    if saved.info["model_class"] != MODEL_NAMES[kind]:
        raise ModelFolderError(folder, f"holds a {saved.info['model_class']!r}, not a {MODEL_NAMES[kind]!r}")
    info = dict(saved.info, path=str(folder), trained_now=trained_now)
    return saved.model, info
