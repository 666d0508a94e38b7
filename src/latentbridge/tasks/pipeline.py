"""What every training workflow shares: an owned run folder with resume checks
(:func:`training_run`), and the one fit pipeline of the models trained on windows of recordings
(:func:`feature_training`: anomaly detectors and audio autoencoders)."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from latentbridge.errors import ConfigError, DataError
from latentbridge.utils import listed

#: ``train`` keys that only gradient descent reads: set for a model fitted in closed form, they are named as unused
GRADIENT_KEYS = ("max_epochs", "max_steps", "batch_size", "optimizer", "lr", "weight_decay", "scheduler",
                 "min_lr_ratio", "ema_decay", "gradient_clip", "precision", "log_every_n_steps",
                 "early_stopping_patience", "keep_weights", "checkpoint_every_n_steps", "accelerator", "devices",
                 "strategy", "num_workers")

log = logging.getLogger(__name__)


@dataclass
class TrainingRun:
    """An owned run folder during training: ``fit`` trains, ``save`` writes the model folder."""

    cfg: object
    dir: Path
    resume: bool
    outcome: object = None
    data_files: list | None = None  # the files the run reads, recorded for a resume's check (trained runs only)
    held_out: list | None = None  # those of them held out of training (validation), recorded with them

    def fit(self, model, train_loader, val_loader=None, beta: bool = True, callbacks=()):
        from latentbridge.data.run_record import record_data
        from latentbridge.training.fit import fit_model
        from latentbridge.utils import is_launched_child

        if self.data_files is not None and not is_launched_child():
            record_data(self.dir, self.data_files, self.held_out)
        self.outcome = fit_model(model, self.cfg, self.dir, train_loader, val_loader, resume=self.resume, beta=beta,
                                 callbacks=callbacks)
        return self.outcome

    def fit_closed_form(self, model, features, groups=None, short=None) -> "ClosedFormOutcome":
        """Fit a model that is not trained by gradient descent (``trainable = False``) on ``features`` (``groups``:
        each window's recording; ``short``: the windows of recordings shorter than one window)."""
        import time

        from latentbridge.utils import is_launched_child

        t0 = time.time()
        if is_launched_child():  # nothing to share between processes: the main process fits
            self.outcome = None
            return None
        t = self.cfg.train  # keys set to other values than their defaults (a run's own config.yaml lists them all)
        if unused := [f"train.{k}" for k in GRADIENT_KEYS if k in t.model_fields_set
                      and getattr(t, k) != type(t).model_fields[k].default]:
            import logging

            logging.getLogger(__name__).warning(
                "%s not used: model %s is fitted in closed form, without training steps (a trained model reads them: "
                "-o model.name=mel_vae, or a preset such as configs/anomaly_vae.yaml)", ", ".join(unused),
                self.cfg.model.name)
        details = model.fit_closed_form(features, seed=self.cfg.train.seed, groups=groups, short=short)
        model.eval()
        self.outcome = ClosedFormOutcome(time.time() - t0, details)
        return self.outcome

    @property
    def summary(self) -> dict:
        return self.outcome.summary()

    def save(self, model, *, transform, extra: dict, card: str) -> Path:
        from latentbridge.config import config_to_dict
        from latentbridge.models.hub import save_model

        return save_model(self.dir, model, config=config_to_dict(self.cfg), transform=transform,
                          extra={**extra, "training": self.summary, "trained_in": str(Path.cwd())}, card=card)


@dataclass
class ClosedFormOutcome:
    seconds: float
    details: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {"epochs": 0, "global_step": 0, "best_val_loss": None, "seconds": round(self.seconds, 2),
                "closed_form": self.details}


@contextlib.contextmanager
def training_run(cfg, out_dir: str | Path, *, resume: bool = False, force: bool = False,
                 data_files: list | None = None) -> Iterator[TrainingRun]:
    """Own ``out_dir`` (lock; emptied with ``force``; kept with ``resume`` after checking that the
    run's architecture, data and transform match), save the resolved config, seed everything. ``data_files``: the
    files the run reads, recorded by a gradient training so that a resume over a changed listing is refused
    (:func:`latentbridge.data.run_record.check_same_data`)."""
    from latentbridge.config.workflows import config_to_dict
    from latentbridge.outputs import output_folder, protect_inputs
    from latentbridge.training.fit import start_run
    from latentbridge.utils import is_launched_child

    # the data (and first stages) the config reads are inputs that --force never replaces; caches are written
    protect_inputs([config_to_dict(cfg)], skip=("cache",))

    threads = torch.get_num_threads()  # train.num_threads holds for this run only, and so do its seeds: a notebook's
    rngs = _global_rngs()  # generators and environment are as they were (every fit reset them to seed 0's)
    try:
        if is_launched_child():  # an extra DDP process: the main process owns and prepared the folder
            start_run(cfg, Path(out_dir), resume)
            yield TrainingRun(cfg, Path(out_dir), resume)
            return
        with output_folder(out_dir, force=force, in_place=True, resume=resume) as folder:
            start_run(cfg, folder, resume, data_files)
            yield TrainingRun(cfg, folder, resume, data_files=data_files)
    finally:
        torch.set_num_threads(threads)
        _global_rngs(rngs)


def _global_rngs(restore: dict | None = None) -> dict:
    """Python's, numpy's and torch's global (CPU) generators and Lightning's seed variables, as they are (``restore``:
    set back to those of an earlier call)."""
    import os
    import random

    if restore is None:
        return {"random": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
                "env": {k: os.environ.get(k) for k in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")}}
    random.setstate(restore["random"])
    np.random.set_state(restore["numpy"])
    torch.set_rng_state(restore["torch"])
    for k, v in restore["env"].items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    return restore


def loader_of(x: np.ndarray, train_cfg, shuffle: bool, labels: np.ndarray | None = None, collate=None):
    """Batches of ``x`` (``(x,)`` tuples), or with ``labels`` ``{"x", "label"}`` dicts; ``collate``: the loader's
    ``collate_fn`` (augmentation)."""
    from latentbridge.training.fit import DictDataset, make_loader

    x = torch.from_numpy(np.ascontiguousarray(x))
    if labels is None:
        return make_loader(torch.utils.data.TensorDataset(x), train_cfg, shuffle, collate_fn=collate)
    return make_loader(DictDataset(x=x, label=torch.from_numpy(np.asarray(labels, dtype=np.int64))), train_cfg, shuffle,
                       collate_fn=collate)


def window_shift(cfg):
    """The training batches' collate that shifts windows in time (``augment``, audio autoencoders), or None."""
    from functools import partial

    from latentbridge.config.sections import WindowShiftConfig

    aug = getattr(cfg, "augment", None)
    if not isinstance(aug, WindowShiftConfig) or not aug.time_shift_p:  # (a multimodal run's augment is waveforms')
        return None

    from latentbridge.data.augment import AugmentedBatches, shift_windows

    frames = max(1, round(aug.time_shift_max * cfg.n_frames))
    return AugmentedBatches(partial(shift_windows, max_frames=frames), aug, cfg.train.seed)


@dataclass
class FeatureFit:
    run: TrainingRun
    model: torch.nn.Module
    spec: object
    windows: object  # every file's WindowFeatures
    train: object
    val: object
    data_info: dict = field(default_factory=dict)
    val_copies: np.ndarray | None = None  # (len(val),) True: a held-out window equal to a training window

    @property
    def trained(self) -> bool:
        """False in the extra processes of a DDP run (they save nothing)."""
        return self.run.outcome is not None


@contextlib.contextmanager
def feature_training(cfg, out_dir, paths, *, resume: bool = False, force: bool = False,
                     files: list | None = None) -> Iterator[FeatureFit]:
    """Read, window and featurise ``paths`` (errors before the run folder is touched), hold out whole
    files (``data.val_fraction``), build ``cfg.model``, fit its normaliser, train it and fit its
    latent scale. The caller saves the model inside the block (``fit.run.save``)."""
    from latentbridge.config.workflows import transform_spec
    from latentbridge.data.audio import FeatureExtractor
    from latentbridge.data.holdout import copied_windows, held_out_record, split_train_val
    from latentbridge.models.base import fit_latent_scale
    from latentbridge.models.registry import build_model

    if getattr(cfg.model, "label_classes", 0):
        raise ConfigError("model.label_classes: a folder of recordings carries no labels to learn; the label head "
                          "trains as the audio stage of a digits MLD run (first_stage.stages.audio)")
    spec = transform_spec(cfg)
    workers = getattr(cfg.train, "decode_workers", None)
    extractor = FeatureExtractor.from_spec(spec, cache_dir=cfg.data.cache_dir,
                                           **({} if workers is None else {"num_workers": workers}))
    extractor.training = True
    wf = extractor.extract(paths, skip_bad=cfg.data.skip_bad_files, files=files, progress=True)
    train_wf, val_wf = split_train_val(wf, cfg.data.val_fraction, cfg.train.seed)
    if len(train_wf) < 2:
        raise DataError(cfg.data.train_dir, f"{len(train_wf)} training window(s) from {len(train_wf.files)} "
                        f"file(s) ({len(val_wf)} more held out for validation): a model needs at least 2; give "
                        "more recordings, or shorter windows (-o audio.window_s=...)")
    held = held_out_record(train_wf, val_wf)
    copies = copied_windows(val_wf.features, train_wf.features)
    if copies.any() and cfg.task != "anomaly":  # (anomaly fit leaves them out of its threshold, and says so)
        log.warning("%d of the %d validation windows are copies of training windows (the same samples under another "
                    "name: %s): the validation loss measures windows the model is trained on", int(copies.sum()),
                    len(copies), listed(sorted({str(val_wf.files[i]) for i in val_wf.file_index[copies]})))
    data_info = {
        "train_dir": cfg.data.train_dir if isinstance(cfg.data.train_dir, list) else str(cfg.data.train_dir),
        "n_files": len(wf.files), "n_train_files": held["n_train_files"],
        "n_val_files": held["n_val_files"], "n_train_windows": len(train_wf), "n_val_windows": len(val_wf),
        "total_duration_s": float(wf.durations_s.sum()), "skipped_files": wf.skipped,
        "n_padded_files": len(wf.padded), "val_files": held["val_files"], "val_split": held["val_split"],
        **({"val_from_s": held["val_from_s"]} if "val_from_s" in held else {}),
    }
    listed_files = list(wf.files) + [Path(p) for p, _ in wf.skipped]
    with training_run(cfg, out_dir, resume=resume, force=force, data_files=listed_files) as run:
        run.held_out = held["held_out"]  # a recording whose last part is held out was trained on
        shape = tuple(train_wf.features.shape[1:])
        data = cfg.model_data(shape) if hasattr(cfg, "model_data") else {"input_shape": shape}
        model = build_model(cfg.model, **data)
        if cfg.features.standardize:
            model.fit_normalizer(torch.from_numpy(train_wf.features))
        if getattr(model, "trainable", True):
            val = loader_of(val_wf.features, cfg.train, False) if len(val_wf) else None
            run.fit(model, loader_of(train_wf.features, cfg.train, True, collate=window_shift(cfg)), val)
        else:
            run.fit_closed_form(model, train_wf.features, train_wf.file_index, padded_windows(train_wf, wf.padded))
        if run.outcome is not None:
            if model.first_stage_modalities:
                fit_latent_scale(model, train_wf.features)
            if hasattr(model, "fit_detector") and cfg.task == "anomaly":
                model.fit_detector(train_wf.features, seed=cfg.train.seed)
        yield FeatureFit(run, model, spec, wf, train_wf, val_wf, data_info, copies)


def padded_windows(wf, padded: list[str] | None = None) -> np.ndarray:
    """(N,) True for the windows of ``wf``'s recordings shorter than one window (``padded``: their names; by default
    ``wf.padded``, which a subset of files does not carry)."""
    names = set(wf.padded if padded is None else padded)
    return np.isin(wf.file_index, [i for i, f in enumerate(wf.files) if str(f) in names])
