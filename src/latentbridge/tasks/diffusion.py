"""Diffusion models of images (task ``diffusion``): training through the shared trainer, with
sample grids and a small-sample Fréchet distance per epoch (:class:`EpochMonitor`), EMA weights
for sampling and saving.

The run folder becomes a model folder (``config.json``, ``model.safetensors`` with the EMA
weights, ``README.md``) holding what the reference design's training leaves: sample grids at
chosen epochs (``samples_epoch_NNN.png``: one column per class, the same noise every epoch) and
the per-epoch history (``logs/epochs.csv``: losses, Fréchet distance and class accuracy). The
plots of that history (``training_loss.png``, ``metrics_vs_epoch.png``) and ``final_samples.png``
are written by the report step passed as ``report`` (:mod:`latentbridge.report.runs.diffusion`).
"""

from __future__ import annotations

import copy
import csv
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from latentbridge.errors import ConfigError
from latentbridge.io.images import write_grid

log = logging.getLogger(__name__)
EPOCH_COLUMNS = ["epoch", "step", "train_loss", "val_loss", "fd", "class_accuracy", "fd_samples", "seconds"]


#: the most classes a sample grid shows (one column each): with hundreds of class folders, grids of every class took
#: 142 of a 151-s epoch (2 x 2,400 samples) even with the per-epoch grids off
MAX_GRID_CLASSES = 20


def grid_columns(n_classes: int) -> int:
    """Columns of a sample grid: one per class shown (:data:`MAX_GRID_CLASSES` at most), 10 without classes."""
    return min(n_classes, MAX_GRID_CLASSES) if n_classes else 10


def grid_labels(n_per_class: int, n_classes: int) -> np.ndarray | None:
    """Labels of a grid with one column per class (row-major order); of more than :data:`MAX_GRID_CLASSES` classes,
    that many spread evenly over them."""
    if not n_classes:
        return None
    shown = np.unique(np.linspace(0, n_classes - 1, grid_columns(n_classes)).round().astype(np.int64))
    return np.tile(shown, n_per_class)


def read_epochs(path: str | Path) -> list[dict]:
    """Rows of ``logs/epochs.csv`` (numbers as floats, empty cells as None)."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: (float(v) if v not in ("", None) else None) for k, v in r.items()} for r in rows]


class EpochMonitor(Callback):
    """After every training epoch (and its validation): a sample grid at ``monitor.grid_epochs``
    (and the last epoch) and, every ``monitor.fd_every`` epochs, the Fréchet distance of
    ``monitor.fd_samples`` samples to the held-out images in the judge's feature space, plus
    their class accuracy. Samples come from the EMA weights when EMA is on, seeded alike every
    epoch. Rows go to ``logs/epochs.csv``; a resumed run drops the rows of epochs it redoes."""

    def __init__(self, cfg, run_dir: Path, judge=None, reference: np.ndarray | None = None, n_classes: int = 0,
                 conditions: np.ndarray | None = None, digit_classes: bool = True):
        self.cfg, self.dir = cfg, Path(run_dir)
        self.path = self.dir / "logs" / "epochs.csv"
        self.judge, self.n_classes, self.conditions = judge, int(n_classes), conditions
        self.digit_classes = digit_classes
        m = cfg.monitor
        self.fd_on = bool(m.fd_every) and judge is not None and reference is not None and len(reference) >= 2
        self.ref = judge.features(reference) if self.fd_on else None

    def on_train_start(self, trainer, pl_module):
        from latentbridge.training.callbacks import truncate_csv_steps

        if trainer.global_rank == 0:
            truncate_csv_steps(self.path, int(trainer.current_epoch) + 1, step_column="epoch")

    def _sampler(self, trainer, pl_module):
        from latentbridge.training.callbacks import EMA

        model = copy.deepcopy(pl_module.model).eval()  # on the training device (the GPU's samples take seconds)
        ema = next((c for c in trainer.callbacks if isinstance(c, EMA)), None)
        if ema is not None and ema.shadow is not None:
            model.load_state_dict(ema.shadow)
        return model

    def _conditions(self, n: int):
        if self.conditions is None or not len(self.conditions):
            return None
        return self.conditions[np.arange(n) % len(self.conditions)]

    def on_train_epoch_end(self, trainer, pl_module):
        from latentbridge.tasks.generate import generate

        if trainer.global_rank != 0 or trainer.sanity_checking:
            return
        epoch = int(trainer.current_epoch) + 1
        m, s = self.cfg.monitor, self.cfg.sampling
        last = epoch >= self.cfg.train.max_epochs
        want_grid = epoch in m.grid_epochs or last
        want_fd = self.fd_on and (epoch % m.fd_every == 0 or last)
        metrics = trainer.callback_metrics
        row = {"epoch": epoch, "step": int(trainer.global_step),
               "train_loss": _num(metrics.get("train/loss_epoch")), "val_loss": _num(metrics.get("val/loss")),
               "fd": None, "class_accuracy": None, "fd_samples": None, "seconds": None}
        if want_grid or want_fd:
            t0 = time.perf_counter()
            model = self._sampler(trainer, pl_module)
            common = dict(guidance=s.guidance, scheduler=m.scheduler, steps=m.steps, seed=s.seed,
                          batch_size=s.batch_size, device=pl_module.device)
            if want_grid:
                n = m.grid_per_class * grid_columns(self.n_classes)
                labels = grid_labels(m.grid_per_class, self.n_classes)
                images, _ = generate(model, n, labels=labels, conditions=self._conditions(n), **common)
                write_grid(self.dir / f"samples_epoch_{epoch:03d}.png", images, n_cols=grid_columns(self.n_classes))
            if want_fd:
                n = m.fd_samples
                labels = (np.arange(n) % self.n_classes).astype(np.int64) if self.n_classes else None
                images, _ = generate(model, n, labels=labels, conditions=self._conditions(n), **common)
                res = _fd_only(self.judge, images, labels, self.ref, self.digit_classes)
                row.update(fd=res["fd"], class_accuracy=res.get("class_accuracy"), fd_samples=n)
            row["seconds"] = round(time.perf_counter() - t0, 2)
        self._append(row)

    def _append(self, row: dict) -> None:
        new = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=EPOCH_COLUMNS)
            if new:
                w.writeheader()
            w.writerow({k: ("" if v is None else v) for k, v in row.items()})


def _num(v) -> float | None:
    if v is None:
        return None
    return float(v.item() if hasattr(v, "item") else v)


def _fd_only(judge, images, labels, ref_features, digit_classes: bool) -> dict:
    from latentbridge.metrics.classification import coherence
    from latentbridge.metrics.generative import frechet_distance

    out = {"fd": frechet_distance(judge.features(images), ref_features)}
    if labels is not None and judge.classifier is not None and digit_classes:
        out["class_accuracy"] = coherence(judge.classifier, images, labels)["accuracy"]
    return out


@dataclass
class FitResult:
    out_dir: Path
    n_train: int
    n_val: int
    epochs: int
    seconds: float
    seconds_training: float
    final_fd: float | None
    final_class_accuracy: float | None
    history: list[dict] = field(default_factory=list)
    final_samples: np.ndarray | None = None  # (N, C, H, W) in [0, 1], one column per class
    n_classes: int = 0
    split: str = ""
    prediction: str = "epsilon"
    """What the denoiser predicts (``diffusion.prediction``): the loss is that target's mean squared error."""

    @property
    def metrics(self) -> dict:
        return {"out_dir": str(self.out_dir), "n_train": self.n_train, "n_val": self.n_val, "epochs": self.epochs,
                "seconds": round(self.seconds, 1), "seconds_training": round(self.seconds_training, 1),
                "final_fd": self.final_fd, "final_class_accuracy": self.final_class_accuracy}


def _loader(dataset, train_cfg, shuffle: bool):
    from latentbridge.data.images import unit_batch
    from latentbridge.training.fit import DictDataset, make_loader

    tensors = {"x": torch.from_numpy(dataset.images)}  # uint8, scaled a batch at a time
    if dataset.labels is not None:
        tensors["y"] = torch.from_numpy(dataset.labels)
    if dataset.conditions is not None:
        tensors["c"] = torch.from_numpy(dataset.conditions)
    return make_loader(DictDataset(**tensors), train_cfg, shuffle, collate_fn=unit_batch)


def _card(cfg, data_info: dict, res: FitResult, model) -> str:
    d, s = cfg.diffusion, cfg.sampling
    classes = f"{model.n_classes} classes" if model.n_classes else "unconditional"
    extra = f", {model.n_continuous} continuous condition(s)" if model.n_continuous else ""
    final = (f"- Last epoch: Fréchet distance {res.final_fd:.4g} on {cfg.monitor.fd_samples} samples"
             + (f", class accuracy {res.final_class_accuracy:.3f}" if res.final_class_accuracy is not None else "")
             + " (small-sample figures; `latentbridge evaluate` measures properly)\n") if res.final_fd is not None else ""
    about = cfg.description or "Denoising diffusion model of images."
    if data_info["source"] == "folder" and "MNIST" in about:  # a preset's words, not this run's data
        about = f"Denoising diffusion model of the images in `{data_info['root']}` (the preset's description: {about})"
    return f"""# latentbridge diffusion model: {cfg.model.name}

{about}

## Data
- {data_info['source']} from `{data_info['root']}`: {data_info['split']}.
- {res.n_train} training / {res.n_val} held-out images, {tuple(model.image_shape)} (C, H, W), pixels / 255 in [0, 1]
  (the process runs in [-1, 1]); {classes}{extra}.

## Process and model
- {d.schedule} schedule over {d.train_timesteps} timesteps (beta {d.beta_start:g} to {d.beta_end:g}), predicts
  {'the noise' if d.prediction == 'epsilon' else 'the velocity'}; label dropout {d.label_dropout} (classifier-free guidance).
- {cfg.model.name}: {cfg.model.model_dump(exclude={'name'})}; EMA decay {cfg.train.ema_decay} (the saved weights).
- Training: {res.epochs} epochs, {res.seconds_training:.0f} s.
{final}
## Sampling defaults
- {s.scheduler} with {s.steps} steps, guidance {s.guidance}, seed {s.seed}:
  `latentbridge sample RUN --num-samples 64 --class 3 --out DIR`.
"""


def fit(cfg, out_dir: str | Path, *, resume: bool = False, force: bool = False, report=None,
        judge=None) -> FitResult | None:
    """Train ``cfg.model`` on ``cfg.data`` into the model folder ``out_dir``.

    ``report(result, folder)``: called inside the run (the folder's lock held) to write figures;
    ``judge``: the feature space of the per-epoch Fréchet distance (default: the MNIST classifier
    for 28 x 28 grey images, trained on first use; pixels otherwise). Returns None in the extra
    processes of a DDP run."""
    from latentbridge.config.workflows import transform_spec
    from latentbridge.data.images import load_image_data
    from latentbridge.models.registry import build_model
    from latentbridge.tasks.generate import DIGITS, generate, make_judge
    from latentbridge.sampling_args import unlearnt_null_warning
    from latentbridge.tasks.pipeline import training_run

    if cfg.task != "diffusion":
        raise ConfigError(f"task: latentbridge.tasks.diffusion trains 'diffusion', not {cfg.task!r}")
    t0 = time.time()
    data = load_image_data(cfg.data, cfg.train.seed)
    n_classes = data.n_classes if cfg.diffusion.conditional else 0
    n_cont = data.n_continuous if cfg.diffusion.conditional else 0
    if cfg.diffusion.conditional and not (n_classes or n_cont):
        log.info("the data have no labels or conditions: training an unconditional model")
    elif n_classes or n_cont:  # its grids, and later its samples by default, at sampling.guidance
        if said := unlearnt_null_warning(cfg.sampling.guidance, cfg.diffusion.label_dropout):
            log.warning("sampling.guidance %g: %s", cfg.sampling.guidance, said)
    if cfg.monitor.fd_every and judge is None:
        judge = make_judge(cfg.image_shape, cfg.data.root if cfg.data.source == "mnist" else None)
    ref = data.val if len(data.val) >= 2 else data.test  # the Fréchet distance's reference
    if cfg.monitor.fd_every and ref is data.test:
        data.read("test")  # before the run folder is made: an unreadable image stops the run there
    with training_run(cfg, out_dir, resume=resume, force=force, data_files=data.files or None) as run:
        run.held_out = data.held_out_files
        model = build_model(cfg.model, **cfg.model_data(n_classes, n_cont))
        digit_classes = data.train.class_names == DIGITS
        monitor = EpochMonitor(cfg, run.dir, judge, ref.floats() if cfg.monitor.fd_every else None, n_classes,
                               data.val.conditions if n_cont else None, digit_classes)
        val = _loader(data.val, cfg.train, False) if len(data.val) else None
        no_fd = "" if monitor.fd_on or not cfg.monitor.fd_every or judge is None else (
            f"the Fréchet distance of each epoch's samples is not measured: it needs 2 reference images or more, and "
            f"the {'validation' if ref is data.val else 'test'} images are {len(ref)}")
        if val is None:
            log.warning("no validation images (%d training images; data.val_fraction %g of each class rounds to none): "
                        "no validation loss is logged, and %s", len(data.train), cfg.data.val_fraction,
                        no_fd or "the Fréchet distance is measured against the test images")
        elif no_fd:
            log.warning(no_fd)
        run.fit(model, _loader(data.train, cfg.train, True), val, beta=False, callbacks=[monitor])
        if run.outcome is None:
            return None
        history = read_epochs(monitor.path)
        with_fd = [r for r in history if r.get("fd") is not None]
        s = cfg.sampling
        n_per = cfg.monitor.grid_per_class
        final, _ = generate(model, n_per * grid_columns(n_classes), labels=grid_labels(n_per, n_classes),
                            conditions=monitor._conditions(n_per * grid_columns(n_classes)), guidance=s.guidance,
                            scheduler=s.scheduler, steps=s.steps, eta=s.eta, seed=s.seed, batch_size=s.batch_size)
        summary = run.summary
        res = FitResult(run.dir, len(data.train), len(data.val), summary["epochs"], time.time() - t0,
                        summary["seconds"], with_fd[-1]["fd"] if with_fd else None,
                        with_fd[-1].get("class_accuracy") if with_fd else None, history, final, n_classes,
                        data.info["split"], cfg.diffusion.prediction)
        extra = {"data": data.info, "class_names": data.train.class_names if n_classes else [],
                 "condition_names": data.train.condition_names if n_cont else [],
                 "condition_range": [[float(c.min()), float(c.max())] for c in data.train.conditions.T] if n_cont
                 else [],
                 "judge": None if judge is None else judge.describe()}
        run.save(model, transform=transform_spec(cfg), extra=extra, card=_card(cfg, data.info, res, model))
        if report is not None:
            report(res, run.dir)
        res.seconds = time.time() - t0
        return res
