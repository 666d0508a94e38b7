"""Lightning training for any :class:`~latentbridge.models.vae.LatentModel`, and the trainer factory."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from latentbridge.losses import beta_at


class LatentModule(L.LightningModule):
    """Wraps a model; the model owns its loss (per sample), this class owns the optimisation.

    ``batch`` is a tensor of features or a one-element tuple/list holding it.
    """

    def __init__(self, model: torch.nn.Module, train_cfg: dict, beta_cfg: dict):
        super().__init__()
        self.model = model
        self.train_cfg = dict(train_cfg)
        self.beta_cfg = dict(beta_cfg)
        self.save_hyperparameters({"train": self.train_cfg, "beta": self.beta_cfg})

    def beta(self) -> float:
        b = self.beta_cfg
        return beta_at(int(self.global_step), b["schedule"], b["value"], b["start"], b["warmup_steps"],
                       b["cycle_steps"], b["ratio"])

    @staticmethod
    def _x(batch):
        return batch[0] if isinstance(batch, (tuple, list)) else batch

    def training_step(self, batch, batch_idx):
        x = self._x(batch)
        beta = self.beta()
        loss, parts = self.model.loss(x, beta=beta)
        loss = loss.mean()
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=x.shape[0])
        self.log("train/beta", beta, on_step=True, on_epoch=False, batch_size=x.shape[0])
        for k, v in parts.items():
            self.log(f"train/{k}", v.mean(), on_step=False, on_epoch=True, batch_size=x.shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        x = self._x(batch)
        # the full KL weight, so that validation losses of different epochs compare
        loss, parts = self.model.loss(x, beta=float(self.beta_cfg["value"]))
        self.log("val/loss", loss.mean(), prog_bar=True, on_epoch=True, sync_dist=True, batch_size=x.shape[0])
        for k, v in parts.items():
            self.log(f"val/{k}", v.mean(), on_epoch=True, sync_dist=True, batch_size=x.shape[0])

    def configure_optimizers(self):
        t = self.train_cfg
        opt = torch.optim.AdamW(self.model.parameters(), lr=t["lr"], weight_decay=t["weight_decay"])
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, t["max_epochs"]), eta_min=t["lr"] * 0.05)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}


class BetaTracker(Callback):
    """Writes the KL weight of every training step to ``logs/beta_tracking.csv``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

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
            w.writerow([trainer.global_step, trainer.current_epoch, f"{pl_module.beta():.6g}", f"{loss:.6g}"])


def is_launched_child() -> bool:
    """True in the extra processes Lightning's DDP launcher starts (they re-run the command)."""
    return int(os.environ.get("LOCAL_RANK", "0")) > 0 or int(os.environ.get("NODE_RANK", "0")) > 0


def make_trainer(train_cfg, run_dir: str | Path, monitor: str = "val/loss", extra_callbacks=()) -> L.Trainer:
    run_dir = Path(run_dir)
    t = train_cfg
    ckpt = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor=monitor, mode="min",
                           save_top_k=1, save_last=True, auto_insert_metric_name=False)
    callbacks: list[Callback] = [ckpt, BetaTracker(run_dir / "logs" / "beta_tracking.csv"), *extra_callbacks]
    if t.early_stopping_patience:
        callbacks.append(EarlyStopping(monitor=monitor, patience=t.early_stopping_patience, mode="min"))
    loggers = [
        # a new version folder per session, so a resumed run keeps the logs of the first
        CSVLogger(save_dir=str(run_dir / "logs"), name="csv"),
        TensorBoardLogger(save_dir=str(run_dir / "logs"), name="tensorboard", default_hp_metric=False),
    ]
    return L.Trainer(
        max_epochs=t.max_epochs, max_steps=t.max_steps, accelerator=t.accelerator, devices=t.devices,
        strategy=t.strategy, precision=t.precision, gradient_clip_val=t.gradient_clip,
        log_every_n_steps=t.log_every_n_steps, enable_progress_bar=t.progress_bar, callbacks=callbacks,
        logger=loggers, default_root_dir=str(run_dir), deterministic=False, enable_model_summary=False,
        num_sanity_val_steps=0,
    )
