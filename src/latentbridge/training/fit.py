"""The trainer factory and the one fit routine every workflow uses: run folder, resume checks,
checkpoints, logs, EMA, and the weights the model folder keeps."""

from __future__ import annotations

import json
import logging
import shlex
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from latentbridge.config.loading import PATH_KEY as _PATH_KEY
from latentbridge.errors import CheckpointError, ConfigError, DataError, LatentbridgeError
from latentbridge.training.callbacks import (EMA, BetaTracker, LastCheckpoint, LogProgressBar, RngState, RunClock,
                                             save_checkpoint_whole, truncate_csv_steps)
from latentbridge.training.module import TrainingModule
from latentbridge.utils import dotted, is_launched_child, lightning_interrupts, quiet_lightning

log = logging.getLogger(__name__)

#: sections whose keys must match between a run and its ``--resume`` (architecture, data, transform)
RESUME_SECTIONS = ("task", "model", "data", "audio", "features", "vibration", "digits", "diffusion", "first_stage")
#: and the training keys a resume takes from the checkpoint (the optimiser's and schedule's state): a new value had no
#: effect, while config.json recorded it; and the seed, which draws the splits of the data (a new one moved files
#: already trained on into the validation and test sets, whose figures were then no longer held out)
RESUME_KEYS = ("train.optimizer", "train.lr", "train.weight_decay", "train.scheduler", "train.min_lr_ratio",
               "train.ema_decay", "train.seed")


def lightning_trainer(**kw) -> L.Trainer:
    """``L.Trainer(**kw)``, its refusal of the hardware settings (an unknown strategy or accelerator, a GPU that is not
    there, DeepSpeed not installed) a ConfigError naming them: it was a Lightning traceback, exit 1."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    if str(kw.get("precision")) in ("16-mixed", "16") and str(kw.get("accelerator") or "auto") in ("cpu", "auto") \
            and (kw.get("accelerator") == "cpu" or not torch.cuda.is_available()):
        raise ConfigError(f"the hardware settings (precision {kw['precision']!r}): float16 mixed precision needs a "
                          "CUDA GPU (Lightning trained bf16-mixed on the CPU instead, while the run recorded "
                          f"{kw['precision']}); on the CPU use bf16-mixed")
    try:
        return L.Trainer(**kw)
    except (MisconfigurationException, ValueError, TypeError, ImportError) as e:  # (tpu: torch_xla missing)
        if isinstance(e, TypeError) and not isinstance(kw.get("devices"), (list, tuple, str)):
            raise  # (a TypeError of GPU indices on the CPU, --devices 0,1, is the user's; any other is this code's)
        given = ", ".join(f"{k} {kw[k]!r}" for k in ("accelerator", "devices", "strategy", "precision")
                          if kw.get(k) is not None)
        raise ConfigError(f"the hardware settings ({given}): {str(e).strip().splitlines()[0]}") from None


def check_hardware(**given) -> None:
    """The hardware flags of a command (``accelerator``, ``devices``, ``strategy``, ``precision``; None: not given),
    refused before any work where Lightning refuses them (:func:`lightning_trainer`)."""
    if given := {k: v for k, v in given.items() if v is not None}:
        quiet_lightning()
        lightning_trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                          enable_model_summary=False, **given)


#: and those of a one-cycle schedule, whose steps are fixed when it starts (a longer resume, or one in another number of
#: processes, stepped past them: a traceback)
ONE_CYCLE_KEYS = ("train.max_epochs", "train.max_steps", "train.batch_size", "train.devices")


def _one_cycle(config: dict) -> bool:
    return (config.get("train") or {}).get("scheduler") == "onecycle"


def _resume_checked(config: dict) -> dict[str, Any]:
    """The dotted keys of ``config`` a resume must keep (:data:`RESUME_SECTIONS`, :data:`RESUME_KEYS`,
    :data:`ONE_CYCLE_KEYS` of a one-cycle schedule)."""
    keys = RESUME_KEYS + (ONE_CYCLE_KEYS if _one_cycle(config) else ())
    return {k: v for k, v in dotted(config).items() if k.split(".")[0] in RESUME_SECTIONS or k in keys}


#: training keys a resume may change, said when it does (a batch size changed on resume went without a word, and
#: config.json recorded the new one alone)
RESUME_SAID = ("train.batch_size", "train.gradient_clip", "train.precision", "train.keep_weights")
#: the data keys whose files a run records (:func:`record_data`), so that a resume over others is refused by them
RECORDED_DATA = ("data.train_dir", "data.root")


def resume_differences(old: dict, new: dict, trained_in: str | None = None) -> list[tuple[str, Any, Any]]:
    """(key, run's value, new value) for every architecture / data / transform key that differs; the run's
    relative paths are read from ``trained_in``, the folder it was trained in, where known."""
    a, b = (_resume_checked(c) for c in (old, new))
    missing = object()

    def differs(k):
        x, y = a.get(k, missing), b.get(k, missing)
        if x != y and k in RECORDED_DATA and trained_in and _relative_data(k, x) and not Path(trained_in).is_dir():
            return False  # the folder it was trained in is gone (a project moved): the files' record decides
        if x != y:
            return not _same_path(x, y, trained_in)
        # the same relative path, from another folder than the run's: other data where it names another folder
        return (bool(trained_in) and _relative_data(k, x) and not _same_path(x, y, trained_in)
                and (Path(trained_in) / x).exists())

    return [(k, a.get(k, missing), b.get(k, missing)) for k in sorted(set(a) | set(b)) if differs(k)]


def relative_data_paths(config: dict) -> dict[str, str]:
    """The config's path keys that hold relative data paths, by dotted key (:func:`_relative_data`)."""
    return {k: v for k, v in dotted(config).items() if _relative_data(k, v)}


def _relative_data(key: str, value: Any) -> bool:
    """Whether a config key is a path key holding a relative path (a cache's is left out: it is not data)."""
    return _PATH_KEY.search(key) is not None and "cache" not in key and _relative(value)


def _relative(v: Any) -> bool:
    """Whether ``v`` is a relative path (non-empty text that is not absolute)."""
    return isinstance(v, str) and bool(v.strip()) and not Path(v).is_absolute()


def _same_path(a: Any, b: Any, trained_in: str | None = None) -> bool:
    """Whether two values are paths of one existing file or folder (``fsdd``, ``./fsdd/`` and its absolute path,
    seen from here; a relative ``a``, the run's, seen from ``trained_in`` where that is known)."""
    from latentbridge.utils import existing_path

    if isinstance(a, list) and isinstance(b, list):  # data.train_dir's folders, one by one
        return len(a) == len(b) and all(_same_path(x, y, trained_in) for x, y in zip(a, b))
    if not isinstance(a, str) or not isinstance(b, str):
        return False
    if trained_in and _relative(a):
        a = str(Path(trained_in) / a)
    pa = existing_path(a)
    return pa is not None and pa == existing_path(b)


def check_resume(cfg_dict: dict, out_dir: Path) -> dict:
    """Before anything is written: the run's last checkpoint is readable and was trained with the
    same architecture, data and transform keys as ``cfg_dict``. Returns the checkpoint."""
    import yaml

    from latentbridge.models.hub import read_lightning_checkpoint

    from latentbridge.outputs import resumable_run

    last = out_dir / "checkpoints" / "last.ckpt"
    if not resumable_run(out_dir):
        raise LatentbridgeError(f"{out_dir}: nothing to resume (no checkpoints/last.ckpt)")
    # a run stopped in its first stages, before a checkpoint of its own: checked against the config it saved
    ckpt = read_lightning_checkpoint(last) if last.is_file() else {}
    old = ((ckpt.get("hyper_parameters") or {}).get("config")) or None
    if not old and (out_dir / "config.yaml").is_file():
        old = yaml.safe_load((out_dir / "config.yaml").read_text(encoding="utf-8"))
    if not old:
        raise CheckpointError(last if ckpt else out_dir / "config.yaml", "records no run config to check a resume against")
    trained_in = (ckpt.get("hyper_parameters") or {}).get("trained_in")
    if ckpt and (out_dir / "config.yaml").is_file():  # a checkpoint copied from another run: its advice went round
        own = yaml.safe_load((out_dir / "config.yaml").read_text(encoding="utf-8")) or {}  # (--config of the run's own)
        if foreign := resume_differences(old, own):  # both the run's: paths compared as written
            raise CheckpointError(last, "was not written by this run's training: it records other settings than the "
                                        "run's config.yaml (" + "; ".join(f"{k}: checkpoint {a!r}, config.yaml {b!r}"
                                                                          for k, a, b in foreign[:4])
                                  + "): a checkpoint of another run? Put back the run's own, or train the run again "
                                    "(--force); nothing in the run folder was changed")
    diffs = resume_differences(old, cfg_dict, trained_in)
    if diffs:
        def show(v):
            return "(not set)" if type(v) is object else repr(v)

        def here(k, v):  # a relative path of the run trained in another folder (unknown where: naming nothing here)
            if not _PATH_KEY.search(k) or not _relative(v):
                return False
            return Path(trained_in).resolve() != Path.cwd().resolve() if trained_in else not Path(v).exists()

        where = f", {trained_in}" if trained_in else ""
        parts = [f"{k}: run {show(a)}" + (f" (relative to the folder the run was trained in{where})"
                                          if here(k, a) else "") + f", now {show(b)}" for k, a, b in diffs]
        relative = [k for k, a, _ in diffs if here(k, a)]

        def again(k, a) -> str:  # each override quoted for a shell (-o model.channels=[16, 32] was four words); None
            # as an empty value (unset); a list's text items quoted (["2024-01-05"]: unquoted, YAML read a date);
            # anomaly fit's folders as its arguments (-o data.train_dir beside them is refused); a relative path as
            # the folder it was trained in reads it (the relative one was the value just refused)
            if k in relative and trained_in:
                a = str(Path(trained_in) / a)
            value = "" if a is None else a
            if isinstance(a, list):
                value = "[" + ", ".join(json.dumps(x) if isinstance(x, str) else str(x) for x in a) + "]"
            if k == "data.train_dir" and cfg_dict.get("task", "anomaly") == "anomaly":
                folders = " ".join(shlex.quote(str(x)) for x in (a if isinstance(a, list) else [a]))
                return f"`anomaly fit {folders} ...` or, with train, -o " + shlex.quote(f"{k}={value}")
            return "-o " + shlex.quote(f"{k}={value}")

        keep = " ".join(again(k, a) for k, a, _ in diffs if type(a) is not object)
        why = ("; a one-cycle schedule's steps are fixed when it starts" if _one_cycle(old) and
               any(k in ONE_CYCLE_KEYS for k, _, _ in diffs) else "")
        own = "" if relative else (f", or with its own config (--config {shlex.quote(str(out_dir / 'config.yaml'))}, "
                                   "and no -o of these keys)")  # (whose relative paths read here as refused)
        raise LatentbridgeError(f"{out_dir}: cannot resume: the run was trained with other settings ("
                                + "; ".join(parts) + f"{why}). Resume with the run's values ({keep}){own}, or train a "
                                "new run; nothing in the run folder was changed")
    done = epochs_done(ckpt)
    wanted = (cfg_dict.get("train") or {}).get("max_epochs")
    before, now = dotted(old), dotted(cfg_dict)
    if changed := [(k, before.get(k), now.get(k)) for k in RESUME_SAID if before.get(k) != now.get(k)]:
        log.warning("%s: resumed with other training settings (%s): the epochs it trains now use the new values, and "
                    "config.json records those alone", out_dir, "; ".join(f"{k}: run {a!r}, now {b!r}"
                                                                      for k, a, b in changed))
    if ckpt and wanted not in (None, -1) and done >= int(wanted):
        more = ("its one-cycle schedule ended with it: train longer in a new run (--force, or another --out)"
                if _one_cycle(old) else f"resume with more (-o train.max_epochs={done + 10}, say)")
        raise LatentbridgeError(f"{out_dir}: cannot resume to train.max_epochs = {wanted}: the run has trained "
                                f"{done} epochs already, so there is nothing left to train; {more}; nothing in the run "
                                "folder was changed")
    return ckpt


def epochs_done(ckpt: dict) -> int:
    """Training epochs a Lightning checkpoint has completed. Its ``epoch`` is the 0-based index of the
    epoch it was saved in, so a checkpoint written at the end of the third epoch says 2; the fit loop's
    progress counts the epochs whose training was processed (3 there, 2 for one saved inside the third)."""
    progress = (((ckpt.get("loops") or {}).get("fit_loop") or {}).get("epoch_progress") or {}).get("total") or {}
    if "processed" in progress:
        return int(progress["processed"])
    return int(ckpt.get("epoch") or 0)


def start_run(cfg, out_dir: Path, resume: bool, data_files: list | None = None) -> None:
    """Check a resume (and that ``data_files``, the files the run reads, are those it recorded:
    :func:`~latentbridge.data.run_record.check_same_data`),
    save the resolved config (main process only; DDP's extra processes re-run the command), then set torch's threads
    and every seed. The caller owns ``out_dir`` (:func:`latentbridge.outputs.output_folder`)."""
    from latentbridge.config import config_to_dict, dump_yaml
    from latentbridge.utils import atomic_write_text

    if not is_launched_child():
        if resume:
            check_resume(config_to_dict(cfg), out_dir)
            if data_files is not None:
                from latentbridge.data.run_record import check_same_data

                check_same_data(out_dir, data_files)
        atomic_write_text(out_dir / "config.yaml", dump_yaml(cfg))
    if threads := cfg.train.thread_count():
        torch.set_num_threads(threads)
    L.seed_everything(cfg.train.seed, workers=True, verbose=False)


@dataclass
class TrainOutcome:
    """What a finished fit reports (main process)."""

    trainer: L.Trainer
    clock: RunClock
    weights_note: str | None = None  # the weights kept were not those train.keep_weights asked for, and why

    def summary(self) -> dict:
        """Epochs, steps, best monitored loss and wall time (accumulated over resumed sessions)."""
        cb = self.trainer.checkpoint_callback
        best = cb.best_model_score if cb else None
        best = None if best is None else float(best.item() if hasattr(best, "item") else best)
        on_train = cb is not None and cb.monitor == "train/loss_epoch"  # no validation data: the training loss
        return {"epochs": int(self.trainer.current_epoch), "global_step": int(self.trainer.global_step),
                "best_val_loss": None if on_train else best, **({"best_train_loss": best} if on_train else {}),
                "seconds": round(self.clock.seconds(), 2), **({"kept_weights": self.weights_note}
                                                               if self.weights_note else {})}


def best_loss_text(training: dict) -> str:
    """The best loss of a training summary as a model card says it: the validation loss, or the training loss
    (named so) when there was no validation data."""
    if training.get("best_val_loss") is None and training.get("best_train_loss") is not None:
        return f"no validation data (best training loss {training['best_train_loss']})"
    return f"best validation loss {training.get('best_val_loss')}"


class RunCheckpoint(ModelCheckpoint):
    """Lightning's best-checkpoint keeper, for a run folder that may have moved since its last session: Lightning
    forgets the best score when its folder's path changed, so a resumed copy of a run replaced the best checkpoint by
    the next epoch however worse (best.ckpt of epoch 61 at 2.5205 over epoch 55's 2.5190). The paths it kept are
    read in the run's folder now."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old = state_dict.get("dirpath")
        if old and self.dirpath and old != self.dirpath:
            def here(path):
                return str(Path(self.dirpath) / Path(path).name) if path else path

            state_dict = {**state_dict, "dirpath": self.dirpath,
                          **{k: here(state_dict.get(k)) for k in ("best_model_path", "kth_best_model_path",
                                                                   "last_model_path")},
                          "best_k_models": {here(k): v for k, v in (state_dict.get("best_k_models") or {}).items()}}
        super().load_state_dict(state_dict)

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        """Written whole (:func:`~latentbridge.training.callbacks.save_checkpoint_whole`: a full disk left a
        truncated best.ckpt), as Lightning's own then records it."""
        save_checkpoint_whole(trainer, filepath, self.save_weights_only)
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath


def make_trainer(t, run_dir: Path, monitor: str, beta: bool = True, extra_callbacks=()) -> tuple[L.Trainer, RunClock]:
    quiet_lightning()
    ckpt_dir = run_dir / "checkpoints"
    best = RunCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor, mode="min", save_top_k=1,
                           save_last=False, auto_insert_metric_name=False, enable_version_counter=False)
    clock = RunClock()
    callbacks: list[Callback] = [best, LastCheckpoint(ckpt_dir, t.checkpoint_every_n_steps), clock, RngState(),
                                 *extra_callbacks]
    if beta:
        callbacks.append(BetaTracker(run_dir / "logs" / "beta_tracking.csv"))
    if t.ema_decay:
        callbacks.append(EMA(t.ema_decay))
    if t.early_stopping_patience:
        callbacks.append(EarlyStopping(monitor=monitor, patience=t.early_stopping_patience, mode="min"))
    if t.progress_bar and not getattr(sys.stdout, "isatty", lambda: False)():  # (Lightning's bar: on stdout)
        callbacks.append(LogProgressBar())
    loggers = [
        # a new version folder per session, so a resumed run keeps the logs of the first
        CSVLogger(save_dir=str(run_dir / "logs"), name="csv"),
        TensorBoardLogger(save_dir=str(run_dir / "logs"), name="tensorboard", default_hp_metric=False),
    ]
    trainer = lightning_trainer(
        max_epochs=t.max_epochs, max_steps=t.max_steps, accelerator=t.accelerator, devices=t.devices,
        strategy=t.strategy, precision=t.precision, gradient_clip_val=t.gradient_clip,
        log_every_n_steps=t.log_every_n_steps, enable_progress_bar=t.progress_bar, callbacks=callbacks,
        logger=loggers, default_root_dir=str(run_dir), deterministic=False, enable_model_summary=False,
        num_sanity_val_steps=0, enable_checkpointing=True,
    )
    return trainer, clock


def _drop_logged_after(run_dir: Path, step: int) -> None:
    """Rows the killed session logged after its last checkpoint (the resumed session logs them again)."""
    for f in (run_dir / "logs" / "csv").glob("version_*/metrics.csv"):
        truncate_csv_steps(f, step)


def final_weights(trainer: L.Trainer, model: torch.nn.Module, keep: str, run_dir: Path) -> str | None:
    """Load into ``model`` the weights the model folder keeps: the best checkpoint's (its EMA
    weights when EMA is on) or the last epoch's (EMA weights when on). Returns a note where they are not those
    ``keep`` asks for (the training summary keeps it: ``kept_weights``)."""
    from latentbridge.models.hub import read_lightning_checkpoint

    ema = next((c for c in trainer.callbacks if isinstance(c, EMA)), None)
    best = run_dir / "checkpoints" / "best.ckpt"
    ckpt, note = None, None
    if keep == "best" and best.is_file():
        try:
            ckpt = read_lightning_checkpoint(best)
        except CheckpointError as e:  # damaged on disk: the run ended unsaved, and could never be finished
            log.warning("%s; the model keeps the last epoch's weights instead of the best epoch's", e)
            note = "the last epoch's: checkpoints/best.ckpt was unreadable"
    if ckpt is not None:
        if "ema_state" in ckpt:
            model.load_state_dict(ckpt["ema_state"])
        else:
            model.load_state_dict({k[len("model."):]: v for k, v in ckpt["state_dict"].items()
                                   if k.startswith("model.")})
    elif ema is not None and ema.shadow is not None:
        model.load_state_dict(ema.shadow)
    model.eval()
    return note


def fit_model(model: torch.nn.Module, cfg, out_dir: Path, train_loader, val_loader=None, resume: bool = False,
              beta: bool = True, callbacks=()) -> TrainOutcome | None:
    """Train ``model`` with Lightning into ``out_dir``, then load the kept weights into it
    (``train.keep_weights``). ``callbacks``: extra Lightning callbacks of the workflow (they run
    before EMA's, and before the checkpoint callbacks, which Lightning runs last). Returns None in
    the extra processes of a DDP run."""
    from latentbridge.config import config_to_dict

    beta_cfg = cfg.beta.model_dump() if beta and hasattr(cfg, "beta") else None
    module = TrainingModule(model, cfg.train.model_dump(), beta_cfg, config_to_dict(cfg))
    monitor = "val/loss" if val_loader is not None else "train/loss_epoch"
    trainer, clock = make_trainer(cfg.train, out_dir, monitor, beta=beta_cfg is not None,
                                  extra_callbacks=callbacks)
    ckpt_path = None
    last = out_dir / "checkpoints" / "last.ckpt"
    per_epoch = len(train_loader) if hasattr(train_loader, "__len__") and trainer.world_size == 1 else 0  # (0: unknown)
    if resume and last.is_file():  # (a run stopped in its first stages trains its own model from the start)
        ckpt_path = str(last)
        if not is_launched_child():
            from latentbridge.models.hub import read_lightning_checkpoint

            step = int(read_lightning_checkpoint(last).get("global_step", 0))
            _drop_logged_after(out_dir, step)
            if per_epoch and step % per_epoch:  # (Lightning's own warning named its source file, for developers)
                log.warning("%s: resumed from a checkpoint taken inside an epoch (train.checkpoint_every_n_steps, at "
                            "step %d of the epoch's %d): that epoch's batches are drawn again from its start, so the "
                            "result is close to an uninterrupted run's, not the same", last, step % per_epoch,
                            per_epoch)
    inside = _say_max_steps(cfg.train, per_epoch)
    try:
        with lightning_interrupts(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"You're resuming from a checkpoint that ended before")
            if inside:  # said above (Lightning's own warning gave its source file and a developer's hint)
                warnings.filterwarnings("ignore", message=r".*could not find the monitored key")
            trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt_path, weights_only=True)
    except RuntimeError as e:
        if resume and ("size mismatch" in str(e) or "Missing key" in str(e) or "Unexpected key" in str(e)):
            raise CheckpointError(ckpt_path, "its weights do not fit the model built from this run's data "
                                             f"({str(e).splitlines()[0][:200]})") from None
        raise
    if trainer.global_rank != 0 or is_launched_child():
        return None
    if trainer.global_step == 0:  # every batch dropped (or none): the model would be saved untrained, as if fitted
        n, procs = len(train_loader.dataset), trainer.world_size
        raise LatentbridgeError(
            f"{out_dir}: training made no optimizer step, so no model was saved: {n} training examples in {procs} "
            f"process(es) leave {-(-n // procs)} per process, too few for train.batch_size = {cfg.train.batch_size}; "
            "use a smaller train.batch_size (-o train.batch_size=...), fewer --devices, or more training data")
    stopper = next((c for c in trainer.callbacks if isinstance(c, EarlyStopping)), None)
    if stopper is not None and stopper.stopped_epoch:  # (the log ended at "epoch 8/14", and nothing said why)
        log.info("early stopping: no better %s in %d epochs (train.early_stopping_patience); stopped after epoch %d of "
                 "%d", stopper.monitor, stopper.patience, trainer.current_epoch, cfg.train.max_epochs)
    return TrainOutcome(trainer, clock, final_weights(trainer, model, cfg.train.keep_weights, out_dir))


def _say_max_steps(t, per_epoch: int) -> bool:
    """What ``train.max_steps`` cuts short (``per_epoch``: steps an epoch, 0 unknown): the epoch it ends inside goes
    without its validation and checkpoint, and a cosine schedule set for ``max_epochs`` does not anneal (both unsaid:
    Lightning's warning of a missing monitored key named its own file). True where it ends inside an epoch."""
    if not per_epoch or not 0 < t.max_steps < t.max_epochs * per_epoch or is_launched_child():
        return False
    inside, whole = t.max_steps % per_epoch, -(-t.max_steps // per_epoch)
    # the cosine schedule steps by epochs: ended inside the last one, it has reached its end (max_epochs 1: it is flat)
    log.warning("train.max_steps %d stops the training %s of train.max_epochs %d (%d steps an epoch)%s%s", t.max_steps,
                f"inside epoch {t.max_steps // per_epoch + 1}" if inside else f"after epoch {t.max_steps // per_epoch}",
                t.max_epochs, per_epoch, ": that epoch ends without its validation and checkpoint" if inside else "",
                "; the cosine learning-rate schedule spans train.max_epochs, so it stops before annealing (-o "
                f"train.max_epochs={whole} for a whole one)" if t.scheduler == "cosine" and whole < t.max_epochs
                else "")
    return bool(inside)


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


class RedrawnLatents(torch.utils.data.Dataset):
    """Scaled latent pairs whose second part is drawn afresh on every use among the rows of the
    pool with the same label (seeded by (seed, row, use count): reproducible)."""

    def __init__(self, first: torch.Tensor, labels: np.ndarray, pool: torch.Tensor, pool_labels: np.ndarray,
                 seed: int):
        self.first, self.labels, self.pool, self.seed = first, np.asarray(labels), pool, int(seed)
        self.rows = {int(d): np.flatnonzero(np.asarray(pool_labels) == d) for d in np.unique(self.labels)}
        if any(not len(r) for r in self.rows.values()):
            raise DataError("MNIST", "a digit of the clips has no training image to pair with")
        self.uses = np.zeros(len(self.first), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.first)

    def __getitem__(self, i):
        rows = self.rows[int(self.labels[i])]
        r = rows[np.random.default_rng([self.seed, int(i), int(self.uses[i])]).integers(len(rows))]
        self.uses[i] += 1
        return {"z": torch.cat([self.first[i], self.pool[r]])}


def world_size(t) -> int:
    """The processes a fit with the train settings ``t`` runs in, each on its share of the data: the devices Lightning
    is given (a count; GPU indices such as "0,1"; -1 or "auto": every visible GPU, or one process on a CPU), on one
    node (:func:`make_trainer` sets no ``num_nodes``). More than one device means a distributed strategy in Lightning
    ("auto" picks DDP)."""
    d = t.devices
    if isinstance(d, str):
        s = d.strip().strip("[]")
        if "," in s:
            return len([x for x in s.split(",") if x.strip()])
        d = int(s) if s.lstrip("-").isdigit() else s
    if d in (-1, "auto"):
        gpus = str(t.accelerator) in ("gpu", "cuda", "auto") and torch.cuda.is_available()
        return torch.cuda.device_count() if gpus else 1
    return max(d, 1) if isinstance(d, int) else 1


def drops_last(n: int, t) -> bool:
    """Whether a shuffled training loader of ``n`` rows drops its last, short batch (train settings ``t``): only when
    each process's share holds more than a batch (a distributed sampler gives each ceil(n / processes) rows; 39
    windows in 2 processes with batches of 32 dropped every batch, and trained nothing)."""
    return -(-n // world_size(t)) > t.batch_size


def make_loader(dataset, train_cfg, shuffle: bool, collate_fn=None) -> torch.utils.data.DataLoader:
    drop = shuffle and drops_last(len(dataset), train_cfg)
    return torch.utils.data.DataLoader(dataset, batch_size=train_cfg.batch_size, shuffle=shuffle, drop_last=drop,
                                       num_workers=train_cfg.num_workers, collate_fn=collate_fn,
                                       persistent_workers=train_cfg.num_workers > 0)
