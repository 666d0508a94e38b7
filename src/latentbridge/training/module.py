"""The one LightningModule: wraps any registered model; the model owns its per-sample loss, this
class owns the optimisation (optimiser, learning-rate schedule, KL-weight schedule, logging)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import lightning as L
import torch

from latentbridge.errors import LatentbridgeError
from latentbridge.losses import beta_at


class TrainingModule(L.LightningModule):
    """``model.loss(batch, beta)`` → (per-sample loss (B,), named per-sample parts).

    ``batch`` is a tensor of features, a one-element tuple/list holding it, or a dict of tensors
    (multimodal models, classifiers); it reaches the model as it is. ``beta_cfg`` is None for
    models without a KL term (classifiers)."""

    def __init__(self, model: torch.nn.Module, train_cfg: dict, beta_cfg: dict | None = None, config: dict | None = None):
        super().__init__()
        self.model = model
        self.train_cfg = dict(train_cfg)
        self.beta_cfg = dict(beta_cfg) if beta_cfg is not None else None
        # the resolved run config travels in every checkpoint (resume checks compare against it), with the folder
        # its relative paths are relative to (a resume from another folder reads them from there)
        self.save_hyperparameters({"train": self.train_cfg, "beta": self.beta_cfg, "config": config or {},
                                   "trained_in": str(Path.cwd())})

    def beta(self) -> float:
        b = self.beta_cfg
        if b is None:
            return 0.0
        return beta_at(int(self.global_step), b["schedule"], b["value"], b["start"], b["warmup_steps"],
                       b["cycle_steps"], b["ratio"])

    @staticmethod
    def _x(batch):
        return batch[0] if isinstance(batch, (tuple, list)) else batch

    @staticmethod
    def _size(x) -> int:
        return int(next(iter(x.values())).shape[0]) if isinstance(x, dict) else int(x.shape[0])

    def training_step(self, batch, batch_idx):
        x = self._x(batch)
        n = self._size(x)
        beta = self.step_beta = self.beta()  # the step's own (read by BetaTracker after global_step has moved on)
        loss, parts = self._loss(x, beta)
        loss = loss.mean()
        if not torch.isfinite(loss):  # every later step is NaN too: said now, not as a traceback of what reads them
            self._diverged(f"the loss is {float(loss.detach())}")  # (a float of a tensor with its graph: a torch
            # warning printed beside the message)
        # each step's loss as this process saw it; the epoch's over every process (under DDP the main process's share
        # alone was logged, plotted and monitored: 2.0255 where one process read 2.0627)
        self.log("train/loss_step", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=n)
        self.log("train/loss_epoch", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        if self.beta_cfg is not None:
            self.log("train/beta", beta, on_step=True, on_epoch=False, batch_size=n)
        for k, v in parts.items():
            self.log(f"train/{k}", v.mean(), on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        return loss

    def on_load_checkpoint(self, checkpoint):
        """A run saved before its best-checkpoint keeper was ``RunCheckpoint`` (2026-12-05) holds the keeper's state
        under Lightning's class name: read as the keeper's (Lightning dropped it, warning with a developer's hint)."""
        states = checkpoint.get("callbacks") or {}
        for key in [k for k in states if k.startswith("ModelCheckpoint{")]:
            states.setdefault("RunCheckpoint" + key[len("ModelCheckpoint"):], states.pop(key))

    def on_train_epoch_end(self):
        # weights blown up by a step too large can still give finite losses; what reads the model then fails
        if not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
            self._diverged("the weights hold NaN or inf")

    def _loss(self, x, beta: float):
        """The model's loss, and a training whose weights blew up said so where the loss refuses their NaN outputs
        (binary cross-entropy: 'all elements of input should be between 0 and 1', a traceback)."""
        try:
            return self.model.loss(x, beta=beta)
        except RuntimeError:  # weights past 1e12 (finite: train.lr = 1e30) overflow the activations to NaN as well
            if not all(bool((p.abs() < 1e12).all()) for p in self.model.parameters()):
                self._diverged("the weights hold NaN, inf or values past 1e12")
            raise

    def _diverged(self, what: str):
        raise LatentbridgeError(
            f"training diverged: {what} at epoch {self.current_epoch}, step {self.global_step} (train.lr = "
            f"{self.train_cfg['lr']:g}); train again with a lower train.lr (or train.gradient_clip set), into a new "
            "--out or with --force (not --resume: a checkpoint left, if any was written, is of the diverging run)")

    def validation_step(self, batch, batch_idx):
        x = self._x(batch)
        n = self._size(x)
        # the full KL weight, so that validation losses of different epochs compare
        loss, parts = self._loss(x, float(self.beta_cfg["value"]) if self.beta_cfg else 0.0)
        self.log("val/loss", loss.mean(), prog_bar=True, on_epoch=True, sync_dist=True, batch_size=n)
        for k, v in parts.items():
            self.log(f"val/{k}", v.mean(), on_epoch=True, sync_dist=True, batch_size=n)

    def on_validation_epoch_end(self):
        # an epoch that ends with a NaN validation loss diverged (in a training of one epoch, it was saved: the
        # model's outputs NaN, and evaluate a traceback)
        loss = self.trainer.callback_metrics.get("val/loss")
        if not self.trainer.sanity_checking and loss is not None and not torch.isfinite(loss):
            self._diverged(f"the validation loss is {float(loss.detach())}")

    def on_train_start(self) -> None:
        """A run resumed to another ``train.max_epochs``: its cosine schedule spans the new number of epochs, the
        learning rate set where that schedule stands (the checkpoint's schedule ended at its own old length and
        climbed back to the full rate, while config.json recorded the new length)."""
        for conf in self.trainer.lr_scheduler_configs:
            s, epochs = conf.scheduler, max(1, int(self.train_cfg["max_epochs"]))
            if not isinstance(s, torch.optim.lr_scheduler.CosineAnnealingLR) or s.T_max == epochs:
                continue
            old, s.T_max, at = s.T_max, epochs, min(s.last_epoch, epochs)
            for group, base in zip(s.optimizer.param_groups, s.base_lrs):
                group["lr"] = s.eta_min + (base - s.eta_min) * (1 + math.cos(math.pi * at / epochs)) / 2
            s._last_lr = [group["lr"] for group in s.optimizer.param_groups]
            logging.getLogger("latentbridge").warning(
                "the cosine learning-rate schedule now spans %d epochs (it spanned %d): epoch %d of it at a learning "
                "rate of %.3g", epochs, old, at + 1, s._last_lr[0])

    def configure_optimizers(self):
        t = self.train_cfg
        params = self.model.parameters()
        if t["optimizer"] == "adamw":
            opt = torch.optim.AdamW(params, lr=t["lr"], weight_decay=t["weight_decay"])
        elif t["optimizer"] == "adam":
            opt = torch.optim.Adam(params, lr=t["lr"], weight_decay=t["weight_decay"])
        elif t["optimizer"] == "sgd":
            opt = torch.optim.SGD(params, lr=t["lr"], momentum=0.9, weight_decay=t["weight_decay"])
        else:
            raise ValueError(f"train.optimizer: unknown {t['optimizer']!r}")
        if t["scheduler"] == "constant":
            return opt
        if t["scheduler"] == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, t["max_epochs"]),
                                                               eta_min=t["lr"] * t["min_lr_ratio"])
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
        if t["scheduler"] == "onecycle":
            total = int(self.trainer.estimated_stepping_batches)
            if total < 2:  # one step: no cycle to run
                return opt
            # a warm-up of 20 % of the steps, one and a half at least (at 5 steps torch's schedule divided by 0)
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=t["lr"], total_steps=total,
                                                        pct_start=max(0.2, 1.5 / total))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        raise ValueError(f"train.scheduler: unknown {t['scheduler']!r}")
