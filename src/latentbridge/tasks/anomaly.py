"""Acoustic anomaly detection: fit on normal recordings, calibrate, score files, listen live.

Every step reuses the same pieces: :class:`~latentbridge.data.audio.FeatureExtractor` for
features, the model's own per-sample ``score`` for scores, and
:mod:`latentbridge.metrics.anomaly` for thresholds and metrics.
"""

from __future__ import annotations

import csv
import functools
import io as _io
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from latentbridge.config import Config, config_to_dict, validate
from latentbridge.data.audio import FeatureExtractor, WindowFeatures, split_train_val
from latentbridge.errors import ConfigError, DataError, LatentbridgeError
from latentbridge.metrics.anomaly import calibrate_threshold, detection_metrics, partial_auc, roc_auc
from latentbridge.models.hub import SavedModel, load_model, save_model
from latentbridge.models.vae import LatentModel, build_model
from latentbridge.transforms.audio import SpectrogramTransform
from latentbridge.utils import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

LABEL_NAMES = {"normal": 0, "anomalous": 1, "anomaly": 1, "0": 0, "1": 1, "abnormal": 1}


# ----------------------------------------------------------------------------- scoring core


@torch.no_grad()
def score_features(model: LatentModel, features: np.ndarray, method: str = "mse", n_samples: int = 32,
                   batch_size: int = 256) -> np.ndarray:
    """One score per window; deterministic for ``mse``, seeded Monte Carlo for ``elbo``/``iwae``."""
    model.eval()
    out = []
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(0)
    try:
        for i in range(0, len(features), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(features[i:i + batch_size]))
            out.append(model.score(x, method=method, n_samples=n_samples).double().numpy())
    finally:
        torch.random.set_rng_state(gen_state)
    return np.concatenate(out) if out else np.zeros(0)


def aggregate_scores(scores: np.ndarray, file_index: np.ndarray, n_files: int, how: str = "mean") -> np.ndarray:
    agg = np.empty(n_files)
    for i in range(n_files):
        s = scores[file_index == i]
        agg[i] = s.max() if how == "max" else s.mean()
    return agg


class Detector:
    """A saved anomaly model ready to score waveforms or files."""

    def __init__(self, saved: SavedModel):
        self.saved = saved
        self.model = saved.model
        self.cfg: Config = validate(saved.config, f"{saved.path}/config.json")
        self.transform = SpectrogramTransform.from_dict(saved.info["transform"])
        self.anomaly = saved.info.get("anomaly") or {}
        if "threshold" not in self.anomaly:
            raise LatentbridgeError(f"model folder {saved.path}: no calibrated threshold in config.json "
                                    "(was it trained by 'anomaly fit' or 'train'?)")
        self.threshold = float(self.anomaly["threshold"])
        self.method = self.anomaly.get("score", self.cfg.anomaly.score)

    @classmethod
    def load(cls, model_dir: str | Path) -> "Detector":
        return cls(load_model(model_dir))

    @property
    def sample_rate(self) -> int:
        return self.cfg.audio.sample_rate

    def extractor(self, **kw) -> FeatureExtractor:
        return FeatureExtractor.from_config(self.cfg, self.transform, **kw)

    @functools.cached_property
    def _stream_extractor(self) -> FeatureExtractor:
        return self.extractor(use_cache=False)

    def score_windows(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, window_samples) waveforms at the model's rate → (scores, decisions)."""
        feats = self._stream_extractor.features_of_windows(windows.astype(np.float32))
        scores = score_features(self.model, feats, self.method, self.cfg.anomaly.iwae_samples)
        return scores, scores > self.threshold


# ----------------------------------------------------------------------------- fit


@dataclass
class FitResult:
    out_dir: Path
    threshold: float
    n_train_windows: int
    n_val_windows: int
    seconds: float


def fit(cfg: Config, out_dir: str | Path, *, resume: bool = False, force: bool = False) -> FitResult | None:
    """Train on normal recordings, calibrate the threshold on held-out normal windows, save the model.

    Returns None in the extra processes of a multi-process (DDP) run.
    """
    from latentbridge.training.module import fit_model, make_loader, start_run, training_summary

    t0 = time.time()
    out_dir = Path(out_dir)
    if not cfg.data.train_dir:
        raise ConfigError("data.train_dir: no training recordings given (a folder of normal recordings)")
    transform = SpectrogramTransform(**cfg.transform_kwargs())
    extractor = FeatureExtractor.from_config(cfg, transform)
    wf = extractor.extract(cfg.data.train_dir, skip_bad=cfg.data.skip_bad_files)
    train_wf, val_wf = split_train_val(wf, cfg.data.val_fraction, cfg.train.seed)
    if len(train_wf) == 0:
        raise DataError(cfg.data.train_dir, "no training windows")
    start_run(cfg, out_dir, resume, force)
    input_shape = tuple(train_wf.features.shape[1:])
    model = build_model(cfg.model.name, input_shape, cfg.model)
    if cfg.features.standardize:
        model.normalizer.fit(torch.from_numpy(train_wf.features))

    def loader(wf_: WindowFeatures, shuffle: bool):
        return make_loader(torch.utils.data.TensorDataset(torch.from_numpy(wf_.features)), cfg.train, shuffle)

    has_val = len(val_wf) > 0
    trainer = fit_model(model, cfg, out_dir, loader(train_wf, True), loader(val_wf, False) if has_val else None,
                        resume=resume)
    if trainer is None:
        return None
    calib_wf = val_wf if has_val else train_wf
    if not has_val:
        log.warning("no held-out normal files: the threshold is calibrated on training windows (optimistic)")
    calib_scores = score_features(model, calib_wf.features, cfg.anomaly.score, cfg.anomaly.iwae_samples)
    calib = calibrate_threshold(calib_scores, method=cfg.anomaly.threshold_method, k=cfg.anomaly.k,
                                false_alarm_rate=cfg.anomaly.false_alarm_rate)
    anomaly_info = {"score": cfg.anomaly.score, **calib, "calibrated_on": "held-out normal files" if has_val
                    else "training windows", "n_calibration_windows": int(len(calib_wf))}
    if cfg.anomaly.score not in model.deterministic_scores:  # ONNX exports MSE for sampled scores
        mse_scores = score_features(model, calib_wf.features, "mse")
        anomaly_info["mse_threshold"] = calibrate_threshold(
            mse_scores, method=cfg.anomaly.threshold_method, k=cfg.anomaly.k,
            false_alarm_rate=cfg.anomaly.false_alarm_rate)["threshold"]
    data_info = {
        "train_dir": str(cfg.data.train_dir), "n_files": len(wf.files), "n_train_files": len(train_wf.files),
        "n_val_files": len(val_wf.files), "n_train_windows": len(train_wf), "n_val_windows": len(val_wf),
        "total_duration_s": float(wf.durations_s.sum()), "skipped_files": wf.skipped,
    }
    training_info = training_summary(trainer, t0)
    atomic_write_json(out_dir / "calibration.json", {**anomaly_info, "scores": calib_scores.tolist()})
    save_model(out_dir, model, cfg.model.name, config=config_to_dict(cfg), transform=transform.to_dict(),
               extra={"anomaly": anomaly_info, "data": data_info, "training": training_info},
               card=model_card(cfg, transform, anomaly_info, data_info, training_info))
    return FitResult(out_dir, float(calib["threshold"]), len(train_wf), len(val_wf), time.time() - t0)



def model_card(cfg: Config, transform: SpectrogramTransform, anomaly: dict, data: dict, training: dict) -> str:
    f, a = cfg.features, cfg.audio
    feat = (f"{f.kind} spectrogram, n_fft {f.n_fft}, hop {f.hop_length}, window {f.window}, "
            + (f"{f.n_mels} mel bands {f.fmin:g}–{f.fmax or a.sample_rate / 2:g} Hz, " if f.kind == "mel" else "")
            + f"scale {f.scale}, normalize {f.normalize}, {cfg.n_frames} frames per window"
            + (", per-bin standardisation from training data" if f.standardize else ""))
    thr = anomaly["threshold"]
    rule = (f"mean + {anomaly.get('k')}·σ" if anomaly["method"] == "mean_std"
            else f"quantile for a {anomaly.get('false_alarm_rate')} false-alarm rate")
    return f"""# latentbridge anomaly model: {cfg.model.name}

{cfg.description or 'Acoustic anomaly detector trained on normal recordings only.'}

## Data
- Training recordings: `{data['train_dir']}` ({data['n_files']} files, {data['total_duration_s']:.1f} s;
  {data['n_train_files']} files / {data['n_train_windows']} windows for training,
  {data['n_val_files']} files / {data['n_val_windows']} windows held out for calibration)
- Skipped files: {len(data['skipped_files'])}

## Input
- Sample rate: {a.sample_rate} Hz ({'mono mix' if a.channel is None else f'channel {a.channel}'})
- Windows: {a.window_s:g} s, hop {a.hop_s:g} s; shorter recordings padded ({a.pad})
- Features: {feat}

## Decision
- Score: {anomaly['score']} (higher = more anomalous)
- Threshold: {thr:.6g} ({rule}, calibrated on {anomaly['calibrated_on']}; observed false-alarm rate
  there {anomaly.get('observed_false_alarm_rate', float('nan')):.3f})

## Training
- Model: {cfg.model.name}, latent size {cfg.model.latent_dim}; {training['epochs']} epochs,
  best validation loss {training['best_val_loss']}; {training['seconds']} s
- Files: `config.json` (everything needed to rebuild the model and its preprocessing),
  `model.safetensors` (weights), `config.yaml` (resolved training config), `logs/`, `checkpoints/`.

## Limits
Trained on one set of normal conditions: a new microphone, position or machine changes the score
distribution, so recalibrate (or refit) before trusting the threshold there.
"""


# ----------------------------------------------------------------------------- labels


def label_from_path(path: Path) -> int | None:
    for part in reversed(path.parts[:-1]):
        if part.lower() in ("normal",):
            return 0
        if part.lower() in ("anomalous", "anomaly", "abnormal"):
            return 1
    name = path.name.lower()
    if name.startswith("normal_"):
        return 0
    if name.startswith(("anomalous_", "anomaly_", "abnormal_")):
        return 1
    return None


def read_label_csv(path: str | Path) -> dict[str, int]:
    path = Path(path)
    if not path.exists():
        raise DataError(path, "label file does not exist")
    try:
        rows = list(csv.DictReader(_io.StringIO(path.read_text(encoding="utf-8"))))
    except UnicodeDecodeError:
        raise DataError(path, "label file is not UTF-8 text") from None
    if not rows or not {"path", "label"} <= set(rows[0].keys()):
        raise DataError(path, "label CSV needs the columns 'path,label'")
    out: dict[str, int] = {}
    for n, r in enumerate(rows, start=2):
        lab = str(r["label"]).strip().lower()
        if lab not in LABEL_NAMES:
            raise DataError(path, f"line {n}: label {r['label']!r} is not one of normal/anomalous/0/1")
        p = Path(r["path"].strip())
        if not p.is_absolute():
            p = path.parent / p
        out[str(p.resolve())] = LABEL_NAMES[lab]
        out.setdefault("name:" + p.name, LABEL_NAMES[lab])
    return out


def resolve_labels(files: list[Path], labels: str | None) -> np.ndarray | None:
    if labels is None:
        return None
    out = []
    table = None if labels == "auto" else read_label_csv(labels)
    for f in files:
        if table is None:
            lab = label_from_path(f)
            where = "no path component named 'normal' or 'anomalous'"
        else:
            lab = table.get(str(f.resolve()), table.get("name:" + f.name))
            where = f"not listed in {labels}"
        if lab is None:
            raise DataError(f, f"no label ({where})")
        out.append(lab)
    return np.asarray(out, dtype=int)


# ----------------------------------------------------------------------------- score


def score_paths(model_dir: str | Path, paths: list[str | Path], out_dir: str | Path, *, labels: str | None = None,
                aggregate: str | None = None, skip_bad: bool = False, n_examples: int = 4) -> dict:
    """Score every window of ``paths`` and write scores.csv (+ metrics.json, plots, report.html)."""
    from latentbridge import report

    det = Detector.load(model_dir)
    aggregate = aggregate or det.cfg.anomaly.aggregate
    wf = det.extractor().extract(list(paths), skip_bad=skip_bad)
    y_files = resolve_labels(wf.files, labels)
    scores = score_features(det.model, wf.features, det.method, det.cfg.anomaly.iwae_samples)
    file_scores = aggregate_scores(scores, wf.file_index, len(wf.files), aggregate)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    buf = _io.StringIO()
    w = csv.writer(buf)
    w.writerow(["path", "start_s", "end_s", "score", "is_anomaly", "level"])
    ends = wf.ends_s
    for i, f in enumerate(wf.files):
        for j in np.flatnonzero(wf.file_index == i):
            w.writerow([str(f), f"{wf.starts_s[j]:.3f}", f"{ends[j]:.3f}", f"{scores[j]:.6g}",
                        int(scores[j] > det.threshold), "window"])
        w.writerow([str(f), "0.000", f"{wf.durations_s[i]:.3f}", f"{file_scores[i]:.6g}",
                    int(file_scores[i] > det.threshold), f"file-{aggregate}"])
    atomic_write_text(out_dir / "scores.csv", buf.getvalue())

    summary = {"model": str(model_dir), "score": det.method, "aggregate": aggregate, "threshold": det.threshold,
               "n_files": len(wf.files), "n_windows": len(wf), "skipped_files": wf.skipped,
               "n_anomalous_files_flagged": int((file_scores > det.threshold).sum())}
    if y_files is None:
        atomic_write_json(out_dir / "summary.json", summary)
        return summary
    y_windows = y_files[wf.file_index]
    if len(set(y_files.tolist())) < 2:
        raise DataError(out_dir, "labels hold only one class; AUC needs normal and anomalous recordings")
    metrics = detection_metrics(y_files, file_scores, det.threshold)
    metrics.update({
        "level": f"file ({aggregate} of window scores)",
        "window_auc": roc_auc(y_windows, scores), "window_pauc": partial_auc(y_windows, scores),
        **{k: v for k, v in summary.items() if k not in metrics},
    })
    atomic_write_json(out_dir / "metrics.json", metrics)
    report.plot_roc(y_files, file_scores, out_dir / "roc.png", title=f"ROC (AUC {metrics['auc']:.3f})")
    report.plot_score_histogram(file_scores, y_files, det.threshold, out_dir / "histogram.png",
                                title="File scores")
    report.plot_score_histogram(scores, y_windows, det.threshold, out_dir / "histogram_windows.png",
                                title="Window scores")
    _plot_examples(det, wf, scores, y_windows, out_dir / "examples.png", n_examples)
    report.write_html_report(out_dir / "report.html", "latentbridge anomaly report", [
        {"heading": "Metrics", "table": metrics},
        {"heading": "ROC and scores", "images": ["roc.png", "histogram.png", "histogram_windows.png"]},
        {"heading": "Example windows and their reconstructions",
         "text": "Lowest- and highest-scoring windows: input, reconstruction, absolute difference.",
         "images": ["examples.png"]},
    ])
    return metrics


def _plot_examples(det: Detector, wf: WindowFeatures, scores: np.ndarray, y: np.ndarray, path: Path, n: int) -> None:
    from latentbridge import report

    order = np.argsort(scores)
    picks = list(order[: n // 2]) + list(order[::-1][: n - n // 2])
    x = torch.from_numpy(wf.features[picks])
    rec = det.model.reconstruct(x).numpy()
    titles = [f"{wf.files[wf.file_index[i]].name} @{wf.starts_s[i]:.1f}s  score {scores[i]:.3g} "
              f"({'anomalous' if y[i] else 'normal'})" for i in picks]
    report.plot_spectrogram_pairs(wf.features[picks][:, 0], rec[:, 0], titles, path)


def evaluate(run_dir: str | Path, out_dir: str | Path, data: str | None = None) -> dict:
    """``latentbridge evaluate`` for anomaly runs: score the test folder with folder-name labels."""
    det_cfg = validate(json.loads((Path(run_dir) / "config.json").read_text())["config"]) \
        if (Path(run_dir) / "config.json").exists() else None
    test_dir = data or (det_cfg.data.test_dir if det_cfg else None)
    if not test_dir:
        raise ConfigError("data.test_dir: no test recordings (give --data DIR with normal/ and anomalous/ folders)")
    return score_paths(run_dir, [test_dir], out_dir, labels="auto")
