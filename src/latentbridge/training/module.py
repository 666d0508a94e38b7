"""Lightning training for any :class:`~latentbridge.models.vae.LatentModel`, and the trainer factory."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from latentbridge.errors import LatentbridgeError
from latentbridge.losses import beta_at


class LatentModule(L.LightningModule):
    """Wraps a model; the model owns its loss (per sample), this class owns the optimisation.

    ``batch`` is a tensor of features, a one-element tuple/list holding it, or a dict of
    modality tensors (multimodal models); it goes to ``model.loss(batch, beta)`` as it is.
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

    @staticmethod
    def _size(x) -> int:
        return int(next(iter(x.values())).shape[0]) if isinstance(x, dict) else int(x.shape[0])

    def training_step(self, batch, batch_idx):
        x = self._x(batch)
        n = self._size(x)
        beta = self.beta()
        loss, parts = self.model.loss(x, beta=beta)
        loss = loss.mean()
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=n)
        self.log("train/beta", beta, on_step=True, on_epoch=False, batch_size=n)
        for k, v in parts.items():
            self.log(f"train/{k}", v.mean(), on_step=False, on_epoch=True, batch_size=n)
        return loss

    def validation_step(self, batch, batch_idx):
        x = self._x(batch)
        n = self._size(x)
        # the full KL weight, so that validation losses of different epochs compare
        loss, parts = self.model.loss(x, beta=float(self.beta_cfg["value"]))
        self.log("val/loss", loss.mean(), prog_bar=True, on_epoch=True, sync_dist=True, batch_size=n)
        for k, v in parts.items():
            self.log(f"val/{k}", v.mean(), on_epoch=True, sync_dist=True, batch_size=n)

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


def prepare_run_dir(out_dir: Path, resume: bool, force: bool) -> None:
    """A run folder: new or empty; replaced with ``force``; kept as it is with ``resume``."""
    if resume:
        if not (out_dir / "checkpoints" / "last.ckpt").exists():
            raise LatentbridgeError(f"{out_dir}: nothing to resume (no checkpoints/last.ckpt)")
        return
    if out_dir.exists() and any(out_dir.iterdir()):
        if not force:
            raise LatentbridgeError(f"{out_dir}: exists and is not empty (use --force to replace it, "
                                    "or --resume to continue its training)")
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)


def start_run(cfg, out_dir: Path, resume: bool, force: bool) -> None:
    """Prepare the run folder and save the resolved config (main process only; DDP's extra
    processes re-run the command), then set torch's threads and every seed."""
    from latentbridge.config import dump_yaml
    from latentbridge.utils import atomic_write_text

    if not is_launched_child():
        prepare_run_dir(out_dir, resume, force)
        atomic_write_text(out_dir / "config.yaml", dump_yaml(cfg))
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    L.seed_everything(cfg.train.seed, workers=True, verbose=False)


def training_summary(trainer: L.Trainer, t0: float) -> dict:
    """Epochs, steps, best monitored loss and wall time of a finished fit (for config.json and cards)."""
    import time

    best = trainer.checkpoint_callback.best_model_score
    return {"epochs": int(trainer.current_epoch), "global_step": int(trainer.global_step),
            "best_val_loss": None if best is None else float(best.item() if hasattr(best, "item") else best),
            "seconds": round(time.time() - t0, 2)}


def fit_model(model: torch.nn.Module, cfg, out_dir: Path, train_loader, val_loader=None, resume: bool = False):
    """Train ``model`` with Lightning into ``out_dir``; load the best checkpoint's weights into it.

    Returns the trainer on the main process and None in the extra processes of a DDP run.
    """
    from latentbridge.models.hub import state_dict_from_lightning_checkpoint

    module = LatentModule(model, cfg.train.model_dump(), cfg.beta.model_dump())
    trainer = make_trainer(cfg.train, out_dir, monitor="val/loss" if val_loader is not None else "train/loss_epoch")
    trainer.fit(module, train_loader, val_loader,
                ckpt_path=str(out_dir / "checkpoints" / "last.ckpt") if resume else None, weights_only=True)
    if trainer.global_rank != 0 or is_launched_child():
        return None
    best = out_dir / "checkpoints" / "best.ckpt"
    if best.exists():
        model.load_state_dict(state_dict_from_lightning_checkpoint(best))
    model.eval()
    return trainer


class DictDataset(torch.utils.data.Dataset):
    """Rows of equally long tensors, returned as dicts (the default collate stacks them)."""

    def __init__(self, **tensors: torch.Tensor):
        lengths = {len(t) for t in tensors.values()}
        if len(lengths) != 1:
            raise ValueError(f"tensors of different lengths: { {k: len(v) for k, v in tensors.items()} }")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def __getitem__(self, i):
        return {k: v[i] for k, v in self.tensors.items()}


def make_loader(dataset, train_cfg, shuffle: bool) -> torch.utils.data.DataLoader:
    drop = shuffle and len(dataset) > train_cfg.batch_size
    return torch.utils.data.DataLoader(dataset, batch_size=train_cfg.batch_size, shuffle=shuffle, drop_last=drop,
                                       num_workers=train_cfg.num_workers,
                                       persistent_workers=train_cfg.num_workers > 0)
