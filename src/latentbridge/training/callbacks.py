"""Training callbacks: the KL-weight log, the every-epoch (and every-N-steps) last checkpoint, the
exponential moving average of the weights, and the run clock."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback, Checkpoint, ProgressBar

from latentbridge.utils import atomic_path


def truncate_csv_steps(path: Path, first_bad_step: int, step_column: str = "step") -> None:
    """Drop the rows of ``path`` whose ``step_column`` is >= ``first_bad_step`` (rows a killed run wrote
    after its last checkpoint), atomically."""
    if not path.is_file():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or step_column not in rows[0]:
        return
    col = rows[0].index(step_column)
    keep = [rows[0]] + [r for r in rows[1:] if not (len(r) > col and r[col] and int(float(r[col])) >= first_bad_step)]
    if len(keep) == len(rows):
        return
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(keep)


class BetaTracker(Callback):
    """Writes the KL weight and loss of every training step to ``logs/beta_tracking.csv`` (``step``:
    steps completed, 1 for the first; ``beta`` the weight that step's loss was computed with: read after the step, the
    schedule gave the next step's); a resumed run first drops the rows written after its checkpoint, so no step appears
    twice."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_train_start(self, trainer, pl_module):
        if trainer.global_rank == 0:
            truncate_csv_steps(self.path, int(trainer.global_step) + 1)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_rank != 0:
            return
        new = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        loss = outputs["loss"].item() if isinstance(outputs, dict) else float(outputs)
        with open(self.path, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(["step", "epoch", "beta", "loss"])
            beta = getattr(pl_module, "step_beta", None)
            w.writerow([trainer.global_step, trainer.current_epoch, f"{pl_module.beta() if beta is None else beta:.6g}",
                        f"{loss:.6g}"])


def save_checkpoint_whole(trainer, path: str | Path, weights_only: bool) -> None:
    """``trainer.save_checkpoint`` to a hidden file beside ``path``, renamed onto it when whole. Lightning writes
    through a temporary file in the system's temporary folder, then copies it: a full disk left a truncated
    ``best.ckpt`` and an error naming that temporary file (on another disk); it names ``path`` now."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        # the full state (optimiser, loops) a resume needs, where not weights_only; said explicitly, which also
        # keeps Lightning from logging "weights_only was not set" at every epoch
        trainer.save_checkpoint(str(tmp), weights_only=weights_only)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OSError(e.errno, e.strerror, str(path)) from None
    if trainer.global_rank == 0:
        os.replace(tmp, path)


class LastCheckpoint(Checkpoint):
    """``checkpoints/last.ckpt``, rewritten atomically at the end of every training epoch (after its
    validation) and every ``every_n_steps`` steps when set, so a killed run loses at most one
    interval. Independent of the best-checkpoint callback. A :class:`Checkpoint`: Lightning runs the
    checkpoint callbacks after the others, in their order, so the file holds every callback's state of
    the epoch it ends (as a plain callback it was written before the best-checkpoint keeper had seen
    the epoch: a run resumed from it forgot its best score, and its best.ckpt was replaced by the
    next epoch however worse)."""

    def __init__(self, dirpath: str | Path, every_n_steps: int | None = None):
        self.path = Path(dirpath) / "last.ckpt"
        self.every_n_steps = every_n_steps

    def _save(self, trainer) -> None:
        save_checkpoint_whole(trainer, self.path, weights_only=False)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self._save(trainer)

    def on_train_epoch_end(self, trainer, pl_module):
        self._save(trainer)


class EMA(Callback):
    """Exponential moving average of the model's parameters and of BatchNorm's running statistics (the raw model's
    statistics are those of activations the averaged weights do not make; other buffers are the model's own, copied:
    fitted statistics, such as a latent diffusion's standardisation, were averaged with their initial values, 1e-5
    off): validation runs with the averaged weights, checkpoints carry them (``ema_state``), and the saved model is
    given them (``training.fit.final_weights``).

    ``warmup``: the decay of update ``n`` (0-based) is ``min(decay, (1 + n) / (10 + n))``, so the
    average forgets the initial weights within the first few hundred steps (with a fixed 0.999,
    41 % of the average would still be the random initialisation after 900 steps)."""

    def __init__(self, decay: float, warmup: bool = True):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.updates = 0
        self.shadow: dict[str, torch.Tensor] | None = None
        self._backup: dict[str, torch.Tensor] | None = None
        self._averaged: set[str] | None = None  # the state's names averaged: parameters, BatchNorm's statistics

    def current_decay(self) -> float:
        n = self.updates
        return min(self.decay, (1 + n) / (10 + n)) if self.warmup else self.decay

    def _model(self, pl_module):
        return pl_module.model

    def on_fit_start(self, trainer, pl_module):
        if self.shadow is None:
            self.shadow = {k: v.detach().clone() for k, v in self._model(pl_module).state_dict().items()}

    @torch.no_grad()
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        d = self.current_decay()
        self.updates += 1
        model = self._model(pl_module)
        if self._averaged is None:  # (the model's names, once: not at every step)
            self._averaged = {name for name, _ in model.named_parameters(remove_duplicate=False)} | {  # a tied weight:
                f"{name}.{stat}" if name else stat for name, m in model.named_modules(remove_duplicate=False)  # each
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats  # of its names
                for stat in ("running_mean", "running_var")}
        for k, v in model.state_dict().items():
            s = self.shadow[k]
            if k in self._averaged and v.dtype.is_floating_point:
                s.mul_(d).add_(v.detach().to(s.dtype), alpha=1.0 - d)
            else:
                s.copy_(v)

    def _swap_in(self, pl_module):
        model = self._model(pl_module)
        self._backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)

    def _swap_out(self, pl_module):
        if self._backup is not None:
            self._model(pl_module).load_state_dict(self._backup)
            self._backup = None

    def on_validation_epoch_start(self, trainer, pl_module):
        if self.shadow is not None and not trainer.sanity_checking:
            self._swap_in(pl_module)

    def on_validation_epoch_end(self, trainer, pl_module):
        self._swap_out(pl_module)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        if self.shadow is not None:
            checkpoint["ema_state"] = {k: v.detach().cpu().clone() for k, v in self.shadow.items()}
            checkpoint["ema_decay"] = self.decay
            checkpoint["ema_updates"] = self.updates

    def on_load_checkpoint(self, trainer, pl_module, checkpoint):
        if "ema_state" in checkpoint:
            self.shadow = {k: v.clone() for k, v in checkpoint["ema_state"].items()}
            self.updates = int(checkpoint.get("ema_updates", checkpoint.get("global_step", 0)))


class RunClock(Callback):
    """Training wall time accumulated over resumed sessions (stored in every checkpoint)."""

    def __init__(self):
        self.before = 0.0
        self.t0 = time.time()

    def on_fit_start(self, trainer, pl_module):
        self.t0 = time.time()

    def seconds(self) -> float:
        return self.before + (time.time() - self.t0)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        checkpoint["latentbridge_train_seconds"] = self.seconds()

    def on_load_checkpoint(self, trainer, pl_module, checkpoint):
        self.before = float(checkpoint.get("latentbridge_train_seconds", 0.0))


class RngState(Callback):
    """The random generators' states in every checkpoint (torch's, CUDA's, numpy's global one, Python's), put back on
    resume: the resumed session drew new ones from the seed, so its shuffles, dropout and noise were not the
    uninterrupted run's (threshold 0.3207 against 0.3200 after a resume at epoch 6 of 30). Tensors and plain numbers
    only: a resume reads the checkpoint with ``torch.load(weights_only=True)``."""

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        import random

        import numpy as np

        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        version, state, gauss_next = random.getstate()
        checkpoint["rng_states"] = {
            "torch": torch.get_rng_state(),
            "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
            "numpy": {"keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "gauss": float(gauss)},
            "python": {"version": int(version), "state": list(state), "gauss_next": gauss_next}}

    def on_load_checkpoint(self, trainer, pl_module, checkpoint):
        import random

        import numpy as np

        states = checkpoint.get("rng_states")
        if not states:  # a checkpoint of an earlier latentbridge
            return
        torch.set_rng_state(states["torch"])
        if states["cuda"] and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states["cuda"])
        n = states["numpy"]
        np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
        p = states["python"]
        random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


class LogProgressBar(ProgressBar):
    """Lightning's training bar for a log (stdout a file or a pipe): plain lines, one at each epoch's end with its
    losses, and one every :data:`~latentbridge.utils.LOG_PROGRESS_S` within a long epoch (Lightning's bar redrew on
    every step, twice: a log of 125 steps held 253 bar lines; redrawn less, its carriage returns and cursor moves still
    came before a log's next line). A class of the module, so that a spawned process unpickles it."""

    def __init__(self):
        super().__init__()
        self._enabled, self._drawn, self._validated = True, time.monotonic(), -1

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _say(self, trainer, pl_module, where: str) -> None:
        if not self._enabled or not trainer.is_global_zero:
            return
        stale = self._validated != trainer.current_epoch  # within an epoch, or one without validation (max_steps):
        shown = {k: v for k, v in self.get_metrics(trainer, pl_module).items()  # the epoch before's figures, as its own
                 if k != "v_num" and not (k.endswith("_step") and not where)  # (at an epoch's end: its means)
                 and not (stale and k.startswith("val/"))}
        values = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items())
        print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}{where}" + (f": {values}" if values else ""),
              flush=True)
        self._drawn = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        from latentbridge.utils import LOG_PROGRESS_S

        if time.monotonic() - self._drawn >= LOG_PROGRESS_S and batch_idx + 1 < self.total_train_batches:
            self._say(trainer, pl_module, f", step {batch_idx + 1}/{self.total_train_batches}")

    def on_validation_epoch_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self._validated = trainer.current_epoch

    def on_train_epoch_end(self, trainer, pl_module):
        self._say(trainer, pl_module, "")
