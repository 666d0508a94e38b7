"""Multimodal workflow: train the spectrogram + mask VAE on damage states, evaluate on held-out ones.

``fit`` holds out whole damage states (tests) for evaluation and a further share of the
training states for validation (checkpoint selection), so no window of an evaluation state is
seen in training. ``evaluate`` predicts masks and damage extent from vibration alone, measures
reconstructions, and writes metrics, plots and one HTML report.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from latentbridge.config import Config, config_to_dict, validate
from latentbridge.errors import ConfigError, DataError
from latentbridge.models.hub import SavedModel, load_model, save_model
from latentbridge.utils import atomic_write_json


def _data(cfg: Config, root: str | None = None):
    from latentbridge.data.bridge import build_windows

    root = root or cfg.data.root
    if not root:
        raise ConfigError("data.root: no data folder given (expected ROOT/Data/Test_XX/*.csv and "
                          "ROOT/Labels/Test_XX/*.png; `latentbridge data synth bridge --out DIR` makes one)")
    return build_windows(root, cfg.vibration, cache_dir=cfg.data.cache_dir)


def _tensors(data) -> dict[str, torch.Tensor]:
    return {
        "wave": torch.from_numpy(np.ascontiguousarray(data.waves, dtype=np.float32)),
        "mask": torch.from_numpy(np.ascontiguousarray(data.masks, dtype=np.float32)),
        "has_mask": torch.from_numpy(np.asarray(data.has_mask, dtype=bool)),
        "extent": torch.from_numpy(np.nan_to_num(np.asarray(data.extent, dtype=np.float32), nan=0.0)),
    }


def build(cfg: Config, n_channels: int, n_samples: int, sample_rate: float):
    from latentbridge.models.registry import get_model_class

    m, v = cfg.model, cfg.vibration
    cls = get_model_class(m.name)
    return cls(n_channels=n_channels, n_samples=n_samples, sample_rate=sample_rate, n_fft=v.n_fft,
               hop_length=v.hop_length, mask_hw=(v.mask_height, v.mask_width), latent_dim=m.latent_dim,
               channels=list(m.channels), mask_channels=list(m.mask_channels), kernel_size=m.kernel_size,
               fusion=m.fusion, loss_weights=cfg.losses.model_dump(), augment=cfg.augment.model_dump())


def fit(cfg: Config, out_dir: str | Path, *, resume: bool = False, force: bool = False):
    from latentbridge.training.module import DictDataset, fit_model, make_loader, start_run, training_summary

    if cfg.model.name not in ("mmvae", "spec2mask"):
        raise ConfigError(f"model.name: the multimodal task trains 'mmvae' or 'spec2mask', not '{cfg.model.name}'")
    t0 = time.time()
    out_dir = Path(out_dir)
    data = _data(cfg)
    train_all, test = data.split(cfg.data.test_fraction, cfg.train.seed, test_ids=cfg.data.test_ids)
    train, val = train_all.split(cfg.data.val_fraction, cfg.train.seed + 1)
    if len(train.waves) == 0:
        raise DataError(cfg.data.root, "no training windows after holding out test and validation states")
    if cfg.model.name == "spec2mask":  # the supervised reference learns from labelled windows only
        train = train.subset_tests([t for i, t in enumerate(train.tests) if train.has_mask[train.test_index == i].any()])
    start_run(cfg, out_dir, resume, force)
    n, c, t = train.waves.shape
    model = build(cfg, c, t, data.sample_rate)
    with torch.no_grad():
        logmag, _ = model.codec.analyse(torch.from_numpy(train.waves))
        model.codec.normalizer.fit(logmag)
    trainer = fit_model(model, cfg, out_dir, make_loader(DictDataset(**_tensors(train)), cfg.train, True),
                        make_loader(DictDataset(**_tensors(val)), cfg.train, False) if len(val.waves) else None,
                        resume=resume)
    if trainer is None:
        return None
    mask_threshold = calibrate_mask_threshold(model, val)
    split = {"train_tests": train.tests, "val_tests": val.tests, "test_tests": test.tests}
    data_info = {"root": str(cfg.data.root), "sample_rate": data.sample_rate, "n_channels": c, "window_samples": t,
                 "n_train_windows": int(n), "n_val_windows": int(len(val.waves)),
                 "n_test_windows": int(len(test.waves)), **split}
    training_info = training_summary(trainer, t0)
    save_model(out_dir, model, cfg.model.name, config=config_to_dict(cfg), transform={
        "n_fft": cfg.vibration.n_fft, "hop_length": cfg.vibration.hop_length, "sample_rate": data.sample_rate},
        extra={"data": data_info, "training": training_info, "mask_threshold": mask_threshold},
        card=model_card(cfg, data_info, training_info, mask_threshold))
    return {"out_dir": out_dir, "seconds": time.time() - t0, **data_info}



THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 11))  # 0.05 ... 0.5


def calibrate_mask_threshold(model, val) -> dict:
    """The crack-probability threshold with the best pooled (micro) IoU on the labelled validation
    windows.

    Cracks cover a few per cent of a mask, so sigmoid outputs stay below 0.5 long before they
    stop carrying the crack position; the threshold is chosen on validation states, never on the
    held-out evaluation states. Pooled IoU, not the mean of per-window IoUs: the mean scores a
    healthy window with an empty prediction as 1 and so rewards predicting nothing at all.
    """
    from latentbridge.metrics.segmentation import segmentation_summary

    labelled = np.asarray(val.has_mask, dtype=bool) if len(val.waves) else np.zeros(0, dtype=bool)
    if not labelled.any():
        return {"threshold": 0.5, "calibrated_on": "default (no labelled validation windows)"}
    prob = _predict(model, val)["mask_prob"][labelled]
    target = val.masks[labelled]
    scores = {t: segmentation_summary(prob, target, threshold=t)["micro_iou"] for t in THRESHOLDS}
    best = max(scores, key=lambda t: (scores[t], t))
    return {"threshold": best, "calibrated_on": f"{int(labelled.sum())} labelled validation windows",
            "val_micro_iou_by_threshold": scores}


def model_card(cfg: Config, data: dict, training: dict, mask_threshold: dict) -> str:
    v, m = cfg.vibration, cfg.model
    return f"""# latentbridge multimodal model: {m.name} ({m.fusion} fusion)

{cfg.description or 'Vibration spectrograms and crack masks in one latent space.'}

## Data
- Root: `{data['root']}`; {data['n_channels']} sensor channels at {data['sample_rate']:g} Hz
- Windows: {v.window_s:g} s (hop {v.hop_s:g} s) = {data['window_samples']} samples;
  {data['n_train_windows']} training / {data['n_val_windows']} validation / {data['n_test_windows']} test windows
- Held-out damage states (evaluation): {', '.join(data['test_tests']) or 'none'}
- Validation states: {', '.join(data['val_tests']) or 'none'}

## Input
- STFT per channel: n_fft {v.n_fft}, hop {v.hop_length}, Hann window; network input = standardised
  log-magnitude, cos and sin of the phase; reconstruction through the ISTFT
- Masks: binarised at {v.mask_threshold:g}, resized to {v.mask_height} x {v.mask_width}
- Predicted crack probability threshold: {mask_threshold['threshold']:g} (calibrated on
  {mask_threshold['calibrated_on']})

## Model
- Latent size {m.latent_dim}; fusion {m.fusion}; damage head on the vibration-only latent
- Training: {training['epochs']} epochs, best validation loss {training['best_val_loss']}, {training['seconds']} s

## Use
`latentbridge evaluate RUN_DIR --out DIR` predicts crack masks and damage extent from vibration alone.
"""


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def _predict(model, data, batch_size: int = 64) -> dict[str, np.ndarray]:
    out: dict[str, list] = {}
    tensors = _tensors(data)
    for i in range(0, len(data.waves), batch_size):
        batch = {k: v[i:i + batch_size] for k, v in tensors.items()}
        pred = model.predict(batch, use=("spec",))
        for k in ("latent", "mask_prob", "extent", "wave", "logmag"):
            out.setdefault(k, []).append(pred[k].numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def evaluate(run_dir: str | Path, out_dir: str | Path, data_root: str | None = None, n_examples: int = 4) -> dict:
    """Predict masks and damage extent from vibration alone on held-out states (or on ``data_root``)."""
    from latentbridge import report
    from latentbridge.metrics.segmentation import segmentation_summary
    from latentbridge.metrics.signal import log_spectral_distance, si_sdr

    saved: SavedModel = load_model(run_dir)
    cfg = validate(saved.config, f"{run_dir}/config.json")
    model = saved.model.eval()
    data = _data(cfg, data_root)
    split = saved.info.get("data", {})
    if data_root is None and split.get("test_tests"):
        data = data.subset_tests(split["test_tests"])
        scope = "held-out damage states " + ", ".join(split["test_tests"])
    else:
        scope = "every state of " + str(data_root or cfg.data.root)
    if len(data.waves) == 0:
        raise DataError(data_root or cfg.data.root, "no windows to evaluate")
    pred = _predict(model, data)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    labelled = np.asarray(data.has_mask, dtype=bool)
    threshold = float((saved.info.get("mask_threshold") or {}).get("threshold", 0.5))
    metrics: dict = {"model": saved.info["model_class"], "fusion": cfg.model.fusion, "scope": scope,
                     "n_windows": int(len(data.waves)), "n_labelled_windows": int(labelled.sum())}
    if labelled.any():
        seg = segmentation_summary(pred["mask_prob"][labelled], data.masks[labelled], threshold=threshold)
        metrics["mask_iou_micro"] = seg.pop("micro_iou")
        metrics["mask_iou_at_0.5"] = float(
            segmentation_summary(pred["mask_prob"][labelled], data.masks[labelled])["mean_iou"])
        metrics.update({"mask_iou": seg["mean_iou"], "mask_dice": seg["mean_dice"],
                        **{f"mask_{k}": v for k, v in seg.items() if k not in ("mean_iou", "mean_dice")}})
        extent = np.asarray(data.extent)[labelled]
        metrics["damage_extent_mae"] = float(np.abs(pred["extent"][labelled] - extent).mean())
        metrics["damage_extent_from_mask_mae"] = float(
            np.abs((pred["mask_prob"][labelled] > threshold).mean(axis=(1, 2, 3)) - extent).mean())
    if saved.info["model_class"] != "spec2mask":
        sdr = si_sdr(pred["wave"], data.waves)
        lsd = log_spectral_distance(pred["wave"], data.waves, n_fft=cfg.vibration.n_fft,
                                    hop=cfg.vibration.hop_length)
        metrics["waveform_si_sdr_db"] = float(np.mean(sdr))
        metrics["log_spectral_distance_db"] = float(np.mean(lsd))
    atomic_write_json(out_dir / "metrics.json", metrics)
    sections = [{"heading": "Metrics", "text": f"Evaluated on {scope}; masks and damage extent predicted "
                                              "from vibration alone.", "table": metrics}]
    sections += _plots(model, data, pred, out_dir, n_examples, threshold)
    report.write_html_report(out_dir / "report.html", f"latentbridge multimodal evaluation: {Path(run_dir).name}",
                             sections)
    return metrics


def _plots(model, data, pred, out_dir: Path, n: int, threshold: float) -> list[dict]:
    from latentbridge import report

    sections = []
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(data.waves), size=min(n, len(data.waves)), replace=False))
    titles = [f"{data.tests[data.test_index[i]]} @{data.starts_s[i]:.0f}s" for i in idx]
    report.plot_mask_triplets(None, data.masks[idx, 0], pred["mask_prob"][idx, 0], titles, out_dir / "masks.png",
                              threshold=threshold)
    sections.append({"heading": "Crack masks from vibration alone", "text": "target | predicted probability | "
                     f"prediction above the calibrated threshold {threshold:g}", "images": ["masks.png"]})
    if model.name != "spec2mask":
        with torch.no_grad():
            logmag, _ = model.codec.analyse(torch.from_numpy(data.waves[idx]))
        report.plot_spectrogram_pairs(logmag[:, 0].numpy(), pred["logmag"][idx, 0], titles, out_dir / "spectrograms.png")
        report.plot_waveform_overlay(data.waves[idx[0]], pred["wave"][idx[0]], data.sample_rate,
                                     out_dir / "waveform.png", title=titles[0])
        sections.append({"heading": "Reconstructions", "text": "log-magnitude (channel 1): input, reconstruction, "
                         "difference; waveform through the ISTFT of the reconstructed magnitude and phase",
                         "images": ["spectrograms.png", "waveform.png"]})
        sections.append(_interpolation(model, data, pred, out_dir))
    z2 = report.embed_2d(pred["latent"], method="umap", seed=0)
    extent = np.nan_to_num(np.asarray(data.extent, dtype=float), nan=-0.05)
    report.plot_embedding(z2, extent, out_dir / "latent_extent.png", "latent (UMAP) by damage extent",
                          label="mask mean (-0.05: unlabelled)")
    report.plot_embedding(z2, np.array([data.tests[i] for i in data.test_index]), out_dir / "latent_tests.png",
                          "latent (UMAP) by test", categorical=True)
    sections.append({"heading": "Latent space", "images": ["latent_extent.png", "latent_tests.png"]})
    return sections


def _interpolation(model, data, pred, out_dir: Path, steps: int = 7) -> dict:
    """Decode a straight line in latent space between the least and the most damaged state."""
    from latentbridge import report

    ext = np.nan_to_num(np.asarray(data.extent, dtype=float), nan=np.nan)
    order = np.argsort(np.where(np.isnan(ext), np.inf, ext))
    a, b = int(order[0]), int(np.nanargmax(np.where(np.isnan(ext), -np.inf, ext)))
    za, zb = torch.from_numpy(pred["latent"][a]), torch.from_numpy(pred["latent"][b])
    alphas = torch.linspace(0, 1, steps)
    z = torch.stack([(1 - t) * za + t * zb for t in alphas])
    with torch.no_grad():
        masks = torch.sigmoid(model.decode_mask(z))[:, 0].numpy()
        specs = model.decode_spec(z, with_wave=False)["logmag"][:, 0].numpy()

    def norm(x):
        return (x - x.min()) / max(1e-9, float(x.max() - x.min()))

    cols = [f"{t:.2f}" for t in alphas.tolist()]
    report.plot_image_grid(np.stack([norm(s) for s in specs])[None], ["log-magnitude (ch 1)"], cols,
                           out_dir / "interpolation_spectrogram.png")
    report.plot_image_grid(masks[None], ["crack probability"], cols, out_dir / "interpolation_mask.png",
                           cmap="gray")
    name = lambda i: data.tests[data.test_index[i]]  # noqa: E731
    return {"heading": "Latent interpolation",
            "text": f"from {name(a)} (extent {ext[a]:.3f}) to {name(b)} (extent {ext[b]:.3f})",
            "images": ["interpolation_spectrogram.png", "interpolation_mask.png"]}
