"""Files of a finished training (every workflow but diffusion, whose own figures are in
:mod:`~latentbridge.report.runs.diffusion`): ``training_loss.png`` beside each ``logs/`` folder of the run (the run's
and, for a latent diffusion run, each first stage's), from the CSV logs of every session of a resumed run."""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

from latentbridge.report.charts import plot_lines

#: the per-epoch means Lightning logs for every workflow
TRAIN, VAL = "train/loss_epoch", "val/loss"


def epoch_losses(run_dir: str | Path) -> dict[int, dict[str, float]]:
    """``{epoch (from 1): {"training": loss, "validation": loss}}`` from ``logs/csv/version_*/metrics.csv``, read in
    the order of the sessions (a resumed run's later session has the last word on an epoch it trained again)."""
    folders = list((Path(run_dir) / "logs" / "csv").glob("version_*"))
    number = lambda p: int(m.group(1)) if (m := re.fullmatch(r"version_(\d+)", p.name)) else -1  # noqa: E731
    out: dict[int, dict[str, float]] = {}
    for folder in sorted(folders, key=number):
        path = folder / "metrics.csv"
        if not path.is_file():
            continue
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                try:
                    epoch = int(float(row.get("epoch") or "nan")) + 1
                except ValueError:
                    continue
                for key, name in ((TRAIN, "training"), (VAL, "validation")):
                    value = _number(row.get(key))
                    if value is not None:
                        out.setdefault(epoch, {})[name] = value
    return out


def _number(text) -> float | None:
    try:
        v = float(text)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def write_training_loss(run_dir: str | Path, title: str = "training loss") -> Path | None:
    """``training_loss.png`` of ``run_dir``: training and validation loss per epoch (None: no epoch logged)."""
    losses = epoch_losses(run_dir)
    if not losses:
        return None
    epochs = sorted(losses)
    ys = {name: [losses[e].get(name, math.nan) for e in epochs] for name in ("training", "validation")
          if any(name in losses[e] for e in epochs)}
    return plot_lines(epochs, ys, Path(run_dir) / "training_loss.png", xlabel="epoch",
                      ylabel="loss (per-epoch mean)", title=title)


def write_training(run_dir: str | Path) -> list[Path]:
    """:func:`write_training_loss` of the run and of each stage trained inside it (a folder below holding its own
    ``logs/csv``); the files written."""
    run_dir = Path(run_dir)
    written = []
    for logs in sorted(run_dir.glob("**/logs/csv")):
        folder = logs.parent.parent
        name = "" if folder == run_dir else f" ({folder.relative_to(run_dir).as_posix()})"
        path = write_training_loss(folder, title=f"training loss{name}")
        if path is not None:
            written.append(path)
    return written
