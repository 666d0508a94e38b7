"""Files of diffusion runs: the training figures (``training_loss.png``, ``metrics_vs_epoch.png``,
``final_samples.png``), ``latentbridge sample`` (one PNG per sample, a grid, ``samples.npz``) and
``latentbridge evaluate`` (``metrics.json``, sample grids, ``report.html``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentbridge.io.images import write_grid, write_image_samples
from latentbridge.report.charts import plot_lines
from latentbridge.report.common import _new_figure, _save, _tight, _whole_epochs
from latentbridge.report.html import write_html_report
from latentbridge.tasks.diffusion import grid_columns
from latentbridge.utils import atomic_write_json

EVAL_NOTE = ("fd: Fréchet distance between the Gaussian fits of generated and test-image features; "
             "fd_real_floor: the same distance for as many real training images (disjoint from the test "
             "images; with --data DIR, other images of that folder): what a perfect model of the data would score "
             "at this sample count. precision / recall: "
             "k-nearest-neighbour manifold estimate in the same feature space (precision_real / recall_real: "
             "the real floor's). class_accuracy: share of class-conditional samples the classifier assigns "
             "to the requested class.")


def _series(history: list[dict], key: str) -> tuple[list[float], list[float]]:
    rows = [r for r in history if r.get(key) is not None]
    return [r["epoch"] for r in rows], [r[key] for r in rows]


def loss_name(prediction: str) -> str:
    """The training loss by what the denoiser predicts (``diffusion.prediction``): the noise's or the velocity's
    mean squared error."""
    return "velocity MSE" if prediction == "v_prediction" else "noise MSE"


def plot_metrics_vs_epoch(history: list[dict], path: str | Path, prediction: str = "epsilon") -> Path:
    """Two panels over epochs: training / validation loss (of the ``prediction``'s target), and the Fréchet distance
    (with the class accuracy on a second axis when measured)."""
    fig = _new_figure(11.0, 4.0)
    ax = fig.add_subplot(1, 2, 1)
    for key, label in (("train_loss", "training loss"), ("val_loss", "validation loss")):
        x, y = _series(history, key)
        if y:
            ax.plot(x, y, marker=".", label=label)
    ax.set_xlabel("epoch")
    _whole_epochs(ax)
    ax.set_ylabel(loss_name(prediction))
    ax.set_title("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax2 = fig.add_subplot(1, 2, 2)
    x, y = _series(history, "fd")
    n = next((int(r["fd_samples"]) for r in history if r.get("fd_samples")), None)
    if y:
        ax2.plot(x, y, marker="o", color="tab:red", label="Fréchet distance")
        ax2.set_ylabel("Fréchet distance (lower is better)")
    ax2.set_xlabel("epoch")
    _whole_epochs(ax2)
    ax2.set_title(f"Fréchet distance on {n} samples per epoch" if n else "Fréchet distance (not measured)")
    ax2.grid(alpha=0.3)
    xa, ya = _series(history, "class_accuracy")
    if ya:
        twin = ax2.twinx()
        twin.plot(xa, ya, marker="s", color="tab:green", label="class accuracy")
        twin.set_ylim(0, 1.02)
        twin.set_ylabel("class accuracy")
        twin.legend(loc="upper center", fontsize=8)
    if y:
        ax2.legend(loc="upper right", fontsize=8)
    _tight(fig)
    return _save(fig, path)


def write_training(res, folder: Path) -> None:
    """The figures of a finished training run, into the run folder."""
    folder = Path(folder)
    x, train = _series(res.history, "train_loss")
    ys = {"training": train}
    xv, val = _series(res.history, "val_loss")
    if val and xv == x:
        ys["validation"] = val
    if train:
        plot_lines(x, ys, folder / "training_loss.png", xlabel="epoch",
                   ylabel=f"{loss_name(res.prediction)} (per-epoch mean)", title="training loss")
    if res.history:
        plot_metrics_vs_epoch(res.history, folder / "metrics_vs_epoch.png", res.prediction)
    if res.final_samples is not None and len(res.final_samples):
        write_grid(folder / "final_samples.png", res.final_samples, n_cols=grid_columns(res.n_classes))


def write_samples(res, folder: Path) -> dict:
    """``latentbridge sample``'s folder (:func:`~latentbridge.io.images.write_image_samples`)."""
    return write_image_samples(folder, res.images, {**res.settings, "seconds": round(res.seconds, 2)}, res.labels,
                               res.class_names, res.conditions, res.condition_names)


def write_evaluation(res, folder: Path) -> None:
    folder = Path(folder)
    m = res.metrics
    atomic_write_json(folder / "metrics.json", m)
    n_cls = 10 if res.labels is not None and len(np.unique(res.labels)) == 10 else None
    k = min(len(res.images), 100)
    write_grid(folder / "samples.png", res.images[:k], n_cols=n_cls)
    write_grid(folder / "real.png", res.real, n_cols=10)
    table = {key: v for key, v in m.items() if not isinstance(v, dict)}
    sections = [{"heading": "Metrics", "table": table, "text": EVAL_NOTE},
                {"heading": "Sampler", "table": m["sampler"]},
                *([{"heading": "Diffusion process", "table": m["process"]}] if isinstance(m.get("process"), dict)
                  else []),
                {"heading": f"Generated ({'first ' if k < len(res.images) else ''}{k}) and real test images "
                            f"({len(res.real)})", "images": ["samples.png", "real.png"]}]
    if isinstance(m.get("class_accuracy_per_class"), dict):
        sections.insert(1, {"heading": "Class accuracy per requested class", "table": m["class_accuracy_per_class"]})
    write_html_report(folder / "report.html", "latentbridge diffusion model report", sections)
