"""Multimodal workflow: train the spectrogram + mask VAE on damage states, evaluate on held-out ones.

``fit`` holds out whole damage states (tests) for evaluation and a further share of the
training states for validation (checkpoint selection and the crack-probability threshold), so
no window of an evaluation state is seen in training. ``evaluate`` predicts masks and damage
extent from vibration alone and measures reconstructions (compute only; the
``latentbridge.report.multimodal`` step writes metrics, plots and the HTML report).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from latentbridge.training.fit import best_loss_text
from latentbridge.errors import ConfigError, DataError, LatentbridgeError
from latentbridge.metrics.segmentation import THRESHOLDS, mask_metrics
from latentbridge.models.hub import load_model
from latentbridge.utils import batched, first_time

log = logging.getLogger(__name__)


def new_data_rates(vibration, sample_rate: float | None):
    """``(vibration section, fallback rate)`` by which a trained model reads recordings it was not trained on:
    ``sample_rate`` given now (``--sample-rate`` of ``evaluate --data`` and ``sample``) for CSVs without a time column,
    checked against one a file gives; else the training's ``vibration.sample_rate`` as the rate of files that give
    none, named where used (it refused a file with a time column as 'another rate given', and read another logger's
    files without one at the training's rate without a word)."""
    if sample_rate is not None:
        return vibration.model_copy(update={"sample_rate": float(sample_rate)}), None
    if vibration.sample_rate is None:
        return vibration, None
    return vibration.model_copy(update={"sample_rate": None}), float(vibration.sample_rate)


def bridge_data(cfg, root: str | None = None, sample_rate: float | None = None, channel_names=None,
                new: bool = False):
    """The bridge windows of ``root`` (None: the config's ``data.root``), read as configured with ``sample_rate`` for
    CSVs without a time column, or, ``new``, as a trained model reads recordings it was not trained on
    (:func:`new_data_rates`)."""
    from latentbridge.data.bridge import build_windows

    # a rate given now is the rate of CSVs without a time column either way (new_data_rates' first case)
    vib, fallback = new_data_rates(cfg.vibration, sample_rate) if new or sample_rate is not None else (cfg.vibration,
                                                                                                       None)
    root = root or cfg.data.root
    if not root:
        raise ConfigError("data.root: no data folder given (expected ROOT/Data/Test_XX/*.csv and "
                          "ROOT/Labels/Test_XX/*.png; `latentbridge data synth bridge --out DIR` makes one)")
    return build_windows(root, vib, cache_dir=cfg.data.cache_dir, channel_names=channel_names,
                         fallback_rate=fallback)


def channel_names_of(saved) -> list[str] | None:
    """The sensor columns' header names a saved multimodal model was trained on, in its channel order (None: the
    recordings had no header, or the run is older than this record)."""
    return (saved.info.get("data") or {}).get("channel_names")


def bridge_windows(saved, root: str | None = None, sample_rate: float | None = None):
    """Every window of the bridge data at ``root`` (None: the data a saved multimodal model (``saved``) was
    trained on), read as that model reads vibration (its sensor columns in its order, by name) and checked against
    its channels and rate (``sample_rate``: of CSVs without a time column)."""
    new = other_folder(saved, root)
    root = root or saved.info.get("data", {}).get("root")
    data = bridge_data(saved.workflow, root, sample_rate, channel_names_of(saved), new=new)
    if new:
        say_level(saved, data.waves, root)
    check_fits_model(data.n_channels, data.sample_rate, saved.transform, root)
    return data


#: new recordings whose windows' median level lies this far (dB) from the training windows' are named (g for m/s2 is
#: 19.8 dB: at 20, a folder in g, 19.84 dB under the training's, went without a word)
LEVEL_GAP_DB = 15.0


def window_level_db(waves) -> float | None:
    """The median RMS level (dB re 1 of the recordings' unit) of windows ``(N, C, T)``; None without any."""
    if not len(waves):
        return None
    power = []
    for i in range(0, len(waves), 1024):  # in blocks: no float64 copy of the whole set
        w = np.asarray(waves[i:i + 1024], dtype=np.float32).reshape(len(waves[i:i + 1024]), -1)
        power.append(np.einsum("nk,nk->n", w, w, dtype=np.float64) / w.shape[1])
    return round(float(np.median(10 * np.log10(np.maximum(np.concatenate(power), 1e-60)))), 2)


def say_level(saved, waves, where) -> None:
    """Warn when new recordings' windows lie :data:`LEVEL_GAP_DB` or more from the level of those a saved bridge
    model was trained on (``level_db``; runs before the record are not checked): another unit (milli-g for m/s² is
    40 dB) or gain, read as they are (a damage extent error of 0.37 against 0.011, without a word)."""
    trained = (saved.info.get("data") or {}).get("level_db")
    level = window_level_db(waves)
    if trained is None or level is None or abs(level - trained) < LEVEL_GAP_DB:
        return
    log.warning("%s: its windows' level, %.1f dB (median RMS), is %.0f dB %s the training recordings' (%.1f dB): "
                "recordings in another unit (g for m/s2 is 20 dB, milli-g 40 dB) or of another gain; the model reads "
                "them as they are, so its figures are not those of its own kind of data; convert them to the "
                "training recordings' unit", where, level, abs(level - trained),
                "above" if level > trained else "below", trained)


def trained_on(saved, root) -> bool:
    """Whether ``root`` is the folder a saved bridge model was trained on (a relative ``data.root`` read from the
    folder `train` ran in, ``trained_in``: from elsewhere it named another folder)."""
    trained = saved.info.get("data", {}).get("root")
    if not trained or root is None:
        return False
    path, base = Path(trained), saved.info.get("trained_in")
    if not path.is_absolute() and base:
        path = Path(base) / path
    return path.resolve() == Path(root).resolve()


def other_folder(saved, root) -> bool:
    """Whether ``root`` (None: the model's own data) is a folder the model was not trained on: read as new
    recordings (:func:`new_data_rates`, :func:`say_level`), its own manifest's span first (:func:`span_of`)."""
    return root is not None and not trained_on(saved, root)


def say_training_folder(saved, root) -> str:
    """Warn that ``evaluate --data`` was given the folder the model was trained on: its figures take in the states it
    learnt (a damaged-state IoU of 0.445 against 0.049 on the held-out ones, without a word). Returns what the
    evaluation's ``scope`` adds (nothing for another folder)."""
    if not trained_on(saved, root):
        return ""
    split = saved.info.get("data", {})
    seen = len(split.get("train_tests") or []) + len(split.get("val_tests") or [])
    log.warning("%s: the folder the model was trained on: every state is evaluated, the %d it was trained or "
                "validated on among them, so the figures are above what it does on states it never saw "
                "(evaluate without --data scores its %d held-out states)", root, seen,
                len(split.get("test_tests") or []))
    return f" (the folder the model was trained on: {seen} of its states trained or validated on)"


def tensors(data) -> dict[str, torch.Tensor]:
    return {
        "wave": torch.from_numpy(np.ascontiguousarray(data.waves, dtype=np.float32)),
        "mask": torch.from_numpy(np.ascontiguousarray(data.masks, dtype=np.float32)),
        "has_mask": torch.from_numpy(np.asarray(data.has_mask, dtype=bool)),
        "extent": torch.from_numpy(np.nan_to_num(np.asarray(data.extent, dtype=np.float32), nan=0.0)),
    }


@dataclass
class FitResult:
    out_dir: Path
    n_train_windows: int
    n_val_windows: int
    n_test_windows: int
    mask_threshold: float
    seconds: float


def fit(cfg, out_dir: str | Path, *, resume: bool = False, force: bool = False,
        notify=None) -> FitResult | None:
    from latentbridge.config.workflows import transform_spec
    from latentbridge.models.base import fit_latent_scale
    from latentbridge.models.registry import build_model
    from latentbridge.tasks.pipeline import training_run
    from latentbridge.training.fit import DictDataset, make_loader

    t0 = time.time()
    data = bridge_data(cfg)
    span = span_of(cfg, cfg.data.root)  # before training: a bad manifest.json stopped a finished run unsaved
    train_all, test = data.split(cfg.data.test_fraction, cfg.train.seed, test_ids=cfg.data.test_ids)
    train, val = train_all.split(cfg.data.val_fraction, cfg.train.seed + 1, held_for="validation")
    if len(train.waves) == 0:
        raise DataError(cfg.data.root, "no training windows after holding out test and validation states")
    if cfg.model.name == "spec2mask":  # the supervised reference learns from labelled windows only
        train = train.subset_tests([t for i, t in enumerate(train.tests) if train.has_mask[train.test_index == i].any()])
    n, c, t = train.waves.shape
    v = cfg.vibration
    from latentbridge.data.bridge import folder_files, mask_labels_size

    mask_size = mask_labels_size(cfg.data.root)  # (before training, as the span: nothing read after it)
    with training_run(cfg, out_dir, resume=resume, force=force, data_files=folder_files(cfg.data.root)) as run:
        run.held_out = folder_files(cfg.data.root, set(val.tests) | set(test.tests))
        model = build_model(cfg.model, n_channels=c, n_samples=t, sample_rate=data.sample_rate, n_fft=v.n_fft,
                            hop_length=v.hop_length, mask_hw=(v.mask_height, v.mask_width),
                            loss_weights=cfg.losses.model_dump(), augment=cfg.augment.model_dump())
        with torch.no_grad():
            logmag, _ = model.codec.analyse(torch.from_numpy(train.waves))
            model.codec.normalizer.fit(logmag)
        run.fit(model, make_loader(DictDataset(**tensors(train)), cfg.train, True),
                make_loader(DictDataset(**tensors(val)), cfg.train, False) if len(val.waves) else None)
        if run.outcome is None:
            return None
        labelled = np.asarray(train.has_mask, dtype=bool)
        if "condition" in model.first_stage_modalities:  # a supervised network that serves an MLD
            model.fit_mask_encoder(torch.from_numpy(train.masks[labelled]), cfg.train.seed)
        for m in model.first_stage_modalities:
            if m != "mask" or labelled.any():
                fit_latent_scale(model.first_stage(m), train.masks[labelled] if m == "mask" else train.waves)
        mask_threshold = calibrate_mask_threshold(model, val)
        data_info = {"root": str(cfg.data.root), "sample_rate": data.sample_rate, "n_channels": c,
                     "window_samples": t, "n_train_windows": int(n), "n_val_windows": int(len(val.waves)),
                     "n_test_windows": int(len(test.waves)), "train_tests": train.tests, "val_tests": val.tests,
                     "test_tests": test.tests, "span_m": span, "mask_size": mask_size,
                     "channel_names": data.channel_names, "level_db": window_level_db(train.waves)}
        run.save(model, transform=transform_spec(cfg, sample_rate=data.sample_rate, n_channels=c),
                 extra={"data": data_info, "mask_threshold": mask_threshold},
                 card=model_card(cfg, data_info, run.summary, mask_threshold))
        return FitResult(run.dir, int(n), int(len(val.waves)), int(len(test.waves)), float(mask_threshold["threshold"]),
                         time.time() - t0)


def calibrate_mask_threshold(model, val) -> dict:
    """The crack-probability threshold with the best pooled (micro) IoU on the labelled validation
    windows.

    Cracks cover a few per cent of a mask, so sigmoid outputs stay below 0.5 long before they
    stop carrying the crack position; the threshold is chosen on validation states, never on the
    held-out evaluation states. Pooled IoU, not the mean of per-window IoUs: the mean scores a
    healthy window with an empty prediction as 1 and so rewards predicting nothing at all.
    """
    labelled = np.asarray(val.has_mask, dtype=bool) if len(val.waves) else np.zeros(0, dtype=bool)
    if not labelled.any():
        return {"threshold": 0.5, "calibrated_on": "default (no labelled validation windows)"}
    return best_threshold(predict(model, val)["mask_prob"][labelled], val.masks[labelled])


def best_threshold(prob: np.ndarray, target: np.ndarray) -> dict:
    """The threshold of :data:`THRESHOLDS` with the best pooled IoU of crack probabilities ``prob``
    against the labelled validation masks ``target`` (see :func:`calibrate_mask_threshold`)."""
    from latentbridge.metrics.segmentation import segmentation_summary

    scores = {t: segmentation_summary(prob, target, threshold=t)["micro_iou"] for t in THRESHOLDS}
    best = max(scores, key=lambda t: (scores[t], t))
    return {"threshold": best, "calibrated_on": f"{len(target)} labelled validation windows",
            "val_micro_iou_by_threshold": scores}


def model_card(cfg, data: dict, training: dict, mask_threshold: dict) -> str:
    v, m = cfg.vibration, cfg.model
    fusion = getattr(m, "fusion", None)
    return f"""# latentbridge multimodal model: {m.name}{f' ({fusion} fusion)' if fusion else ''}

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
- Latent size {m.latent_dim}; damage head on the vibration-only latent
- Training: {training['epochs']} epochs, {best_loss_text(training)}, {training['seconds']} s

## Use
`latentbridge evaluate RUN_DIR --out DIR` predicts crack masks and damage extent from vibration alone.
"""


# ----------------------------------------------------------------------------- evaluation


def predict(model, data, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Masks, damage extent (a share of the span: the regression head's output clipped to [0, 1], as a prediction of
    a recording gives it; evaluated unclipped, its error was up to 7x what users get), latents and reconstructions
    from vibration alone."""
    keys = ("latent", "mask_prob", "extent", "wave", "logmag")
    out = batched(lambda b: {k: v for k, v in model.predict(b, use=("spec",)).items() if k in keys},
                  tensors(data), batch_size=batch_size)
    out = {k: v.numpy() for k, v in out.items()}
    if "extent" in out:
        out["extent"] = np.clip(out["extent"], 0.0, 1.0)
    return out


@dataclass
class MultimodalEvaluation:
    metrics: dict
    scope: str
    threshold: float
    sample_rate: float
    has_reconstruction: bool
    examples: dict = field(default_factory=dict)
    """Plot data: ``titles``, ``masks`` (target; None when no window is labelled) / ``mask_prob`` (n, H, W) of
    labelled windows (of any window when none is), ``logmag`` / ``logmag_rec`` (n, F, T) (natural-log STFT magnitudes
    of ``n_fft`` and ``hop_length``), ``wave`` / ``wave_rec`` (T,) of the first example."""
    interpolation: dict | None = None
    """``alphas``, ``masks`` (steps, H, W), ``spectrograms`` (steps, F, T), ``from`` / ``to`` text; None without
    two labelled states of different extent (``interpolation_note`` says why)."""
    latent: np.ndarray | None = None
    extent: np.ndarray | None = None
    """Each window's damage extent (its mask's mean); NaN for a window without a mask."""
    tests: np.ndarray | None = None
    threshold_calibrated_on: str | None = None
    """Where the threshold was calibrated (``calibrated_on`` of the run's ``mask_threshold``); None: not calibrated
    (the default 0.5)."""
    threshold_note: str = ""
    """Why the threshold is not calibrated (empty when it is)."""
    interpolation_note: str = ""


def evaluate(run_dir: str | Path, data_root: str | None = None, n_examples: int = 4,
             sample_rate: float | None = None) -> MultimodalEvaluation:
    """Predict masks and damage extent from vibration alone on held-out states (or on ``data_root``,
    its CSVs without a time column read at ``sample_rate``)."""
    from latentbridge.data.bridge import full_size_examples, full_size_scores
    from latentbridge.metrics.signal import log_spectral_distance, si_sdr

    saved = load_model(run_dir)
    cfg = saved.workflow
    model = saved.model.eval()
    trained_here = say_training_folder(saved, data_root)
    data = bridge_windows(saved, data_root, sample_rate)
    split = saved.info.get("data", {})
    if data_root is None and split.get("test_tests"):
        data = data.subset_tests(split["test_tests"])
        from latentbridge.data.bridge import folder_files
        from latentbridge.data.run_record import held_out_changed

        scope = "held-out damage states " + ", ".join(split["test_tests"]) + held_out_changed(
            Path(run_dir), folder_files(cfg.data.root))
    else:
        scope = "every state of " + str(data_root or cfg.data.root) + trained_here
        if data_root is None:
            scope += " (the run held none out: its training states included)"
            log.warning("%s: the run held out no labelled damage states, so these figures include the states it "
                        "was trained on; evaluate other data with --data DIR", run_dir)
    if len(data.waves) == 0:
        raise DataError(data_root or cfg.data.root, "no windows to evaluate")
    pred = predict(model, data)
    labelled = np.asarray(data.has_mask, dtype=bool)
    threshold = float((saved.info.get("mask_threshold") or {}).get("threshold", 0.5))
    calibrated_on, threshold_note = threshold_calibration(saved.info.get("mask_threshold"))
    metrics: dict = {"model": saved.info["model_class"], "fusion": getattr(cfg.model, "fusion", None), "scope": scope,
                     "n_windows": int(len(data.waves)), "n_labelled_windows": int(labelled.sum())}
    if labelled.any():
        span = span_of(cfg, data_root or cfg.data.root, (saved.info.get("data") or {}).get("span_m"),
                       other=other_folder(saved, data_root))
        metrics.update(mask_metrics(pred["mask_prob"][labelled], data.masks[labelled], threshold, span))
        metrics.update(full_size_scores(data, pred["mask_prob"][labelled], labelled, data_root or cfg.data.root,
                                        cfg.vibration, threshold))
        extent = np.asarray(data.extent)[labelled]
        metrics["damage_extent_mae"] = float(np.abs(pred["extent"][labelled] - extent).mean())
        metrics["damage_extent_from_mask_mae"] = float(
            np.abs((pred["mask_prob"][labelled] > threshold).mean(axis=(1, 2, 3)) - extent).mean())
    recon = saved.info["model_class"] != "spec2mask"
    if recon:
        metrics["waveform_si_sdr_db"] = float(np.mean(si_sdr(pred["wave"], data.waves)))
        metrics["log_spectral_distance_db"] = float(np.mean(log_spectral_distance(
            pred["wave"], data.waves, n_fft=cfg.vibration.n_fft, hop=cfg.vibration.hop_length)))
    # examples from the labelled windows (as the MLD evaluation picks them); from any window when none is labelled,
    # then without a target to compare with
    lab_idx = np.flatnonzero(labelled)
    pool = lab_idx if len(lab_idx) else np.arange(len(data.waves))
    idx = pool[np.sort(np.random.default_rng(0).choice(len(pool), size=min(n_examples, len(pool)), replace=False))]
    examples = {"titles": [window_title(data, i) for i in idx],
                "masks": data.masks[idx, 0] if len(lab_idx) else None, "mask_prob": pred["mask_prob"][idx, 0],
                **(full_size_examples(data, idx, pred["mask_prob"][idx], data_root or cfg.data.root, cfg.vibration)
                   if len(lab_idx) else {})}
    interp, interp_note = None, ""
    if recon:
        with torch.no_grad():
            logmag, _ = model.codec.analyse(torch.from_numpy(data.waves[idx]))
        examples.update({"logmag": logmag[:, 0].numpy(), "logmag_rec": pred["logmag"][idx, 0],
                         "wave": data.waves[idx[0]], "wave_rec": pred["wave"][idx[0]],
                         "n_fft": saved.transform.n_fft, "hop_length": saved.transform.hop_length})
        interp, interp_note = _interpolation(model, data, pred, lab_idx)
        if interp is None:
            log.info("%s: no latent interpolation: %s", data_root or cfg.data.root, interp_note)
    return MultimodalEvaluation(
        metrics, scope, threshold, float(data.sample_rate), recon, examples, interp, pred["latent"],
        np.asarray(data.extent, dtype=float),
        np.array([data.tests[i] for i in data.test_index]), calibrated_on, threshold_note, interp_note)


def window_title(data, i: int) -> str:
    """A figure's title of window ``i`` of bridge ``data``: its test and start time, to the millisecond (windows of
    a 0.25-s hop all read "@0s")."""
    return f"{data.tests[data.test_index[i]]} @{float(data.starts_s[i]):.3f}".rstrip("0").rstrip(".") + "s"


def threshold_calibration(info: dict | None) -> tuple[str | None, str]:
    """(where a run's mask threshold was calibrated, or None; why it was not, or "") of its ``mask_threshold``."""
    on = (info or {}).get("calibrated_on")
    if not info:
        return None, "the run saved no calibrated threshold"
    if not on or str(on).startswith("default"):
        return None, str(on or "no calibration recorded")
    return str(on), ""


def manifest_span(root) -> float | None:
    """The span (m) a bridge data folder's ``manifest.json`` gives (``length_m``, or ``beam.length_m``); None without
    one; DataError naming the manifest for a value that is no positive number of metres (-20 gave localisation
    errors of -2.07 m, NaN none, and "20 m" was passed over without a word)."""
    import json
    import math

    manifest = Path(root) / "manifest.json" if root else None
    if manifest is None or not manifest.is_file():
        return None
    try:
        info = json.loads(manifest.read_text(encoding="utf-8"))
    except (ValueError, OSError) as e:
        raise DataError(manifest, f"unreadable ({e})") from None
    if not isinstance(info, dict):
        return None
    beam = info.get("beam") if isinstance(info.get("beam"), dict) else {}
    length = beam.get("length_m") if beam.get("length_m") is not None else info.get("length_m")
    if length is None:
        return None
    if isinstance(length, bool) or not isinstance(length, (int, float)) or not math.isfinite(length) or length <= 0:
        raise DataError(manifest, f"length_m = {json.dumps(length)}: the span the masks' width covers must be a "
                                  "positive number of metres (e.g. 20)")
    return float(length)


def span_of(cfg, root, learned: float | None = None, other: bool = False) -> float | None:
    """The span (m) the masks' width covers: for ``other`` data (a folder the model was not trained on) its
    manifest's ``length_m`` first (another structure), then ``vibration.span_m``, the data's manifest, ``learned``
    (the span the run read from its training data); None when none gives it (warned: localisation in mask widths).
    Where two of them disagree the one taken is named in a warning."""
    found = manifest_span(root)
    given = float(cfg.vibration.span_m) if cfg.vibration.span_m else None
    trained = given or (float(learned) if learned else None)
    if other and found is not None:
        span, beside = found, trained
        said = "the folder's manifest.json length_m, %g m, is taken (the model was trained on a span of %g m)"
    else:
        span = given or found or (float(learned) if learned else None)
        beside = found if given else None
        said = "vibration.span_m, %g m, is taken; its manifest.json gives length_m %g m"
    if span is not None and beside is not None and abs(span - beside) > 1e-6 * span:
        log.warning("%s: " + said, root, span, beside)
    if span is None and first_time(("span unknown", str(root))):  # (once: a latent diffusion's two stages said it)
        log.warning("%s: the span the masks' width covers is unknown (no vibration.span_m, no manifest.json with "
                    "length_m): crack localisation errors are in mask widths (span 1), not metres (metrics.json: "
                    "crack_localisation_unit); give the span with -o vibration.span_m=METRES when training, or a "
                    "manifest.json of {\"length_m\": METRES} in the data folder", root)
    return span


def _interpolation(model, data, pred, labelled: np.ndarray, steps: int = 7) -> tuple[dict | None, str]:
    """Decode a straight line in latent space between the least and the most damaged labelled window (indices
    ``labelled``); (None, why) without two labelled windows of different extent."""
    if len(labelled) == 0:
        return None, "no labelled window (no mask in Labels/) to give the damage states' extent"
    ext = np.asarray(data.extent, dtype=float)
    a, b = int(labelled[np.argmin(ext[labelled])]), int(labelled[np.argmax(ext[labelled])])
    if not ext[b] > ext[a]:
        return None, f"every labelled window has the same damage extent ({ext[a]:.3f})"
    za, zb = torch.from_numpy(pred["latent"][a]), torch.from_numpy(pred["latent"][b])
    alphas = torch.linspace(0, 1, steps)
    z = torch.stack([(1 - t) * za + t * zb for t in alphas])
    with torch.no_grad():
        masks = model.decode_modality("mask", z)[:, 0].numpy()
        specs = model.decode_spec(z, with_wave=False)["logmag"][:, 0].numpy()
    name = lambda i: data.tests[data.test_index[i]]  # noqa: E731
    return {"alphas": alphas.numpy(), "masks": masks, "spectrograms": specs,
            "from": f"{name(a)} (extent {ext[a]:.3f})", "to": f"{name(b)} (extent {ext[b]:.3f})"}, ""


# ----------------------------------------------------------------------------- one recording


@dataclass
class RecordingPrediction:
    """A crack mask and damage extent predicted from one vibration recording alone."""

    mask_prob: np.ndarray  # (H, W): mean over the recording's windows of the crack probability
    mask: np.ndarray  # (H, W) 0/1: mask_prob above the model's calibrated threshold
    threshold: float
    extent: float  # mean over windows of the damage head's extent
    window_extent: np.ndarray  # (n,) per window
    starts_s: np.ndarray  # (n,)
    sample_rate: float
    n_channels: int
    mask_full: np.ndarray | None = None  # (H', W') 0/1: mask_prob brought to the training labels' size, thresholded


def predict_recording(saved, path: str | Path, sample_rate: float | None = None) -> RecordingPrediction:
    """Predict a crack mask and the damage extent of one vibration CSV with a saved multimodal
    model (``saved``: :class:`~latentbridge.models.hub.SavedModel`). The CSV is read and windowed
    as in training (:func:`latentbridge.data.bridge.read_recording`,
    :func:`~latentbridge.data.bridge.recording_windows`); every window of a recording shares its
    damage state, so the mask is the mean of the windows' crack probabilities. ``sample_rate``: of a
    CSV without a time column (else the config's)."""
    from latentbridge.io.masks import upsample_mask

    cfg, spec = saved.workflow, saved.transform
    if cfg.task != "multimodal":  # (a latent diffusion run read the recording, then failed on an AttributeError)
        raise LatentbridgeError(f"{saved.path}: a {cfg.task!r} run, not a multimodal one" + (
            f": `latentbridge sample {saved.path} --condition {path}` draws its masks, or predict with its first stage "
            f"({Path(saved.path) / 'first_stage' / 'multimodal'})" if cfg.task == "mld" else ""))
    windows, starts_s, sr, n_channels = windows_of_recording(cfg.vibration, spec, path, channel_names_of(saved),
                                                             sample_rate)
    say_level(saved, windows, path)
    model = saved.model.eval()
    out = batched(lambda w: {k: v for k, v in model.predict({"wave": w}, use=("spec",)).items()
                             if k in ("mask_prob", "extent")}, windows, batch_size=64)
    prob = out["mask_prob"].numpy().mean(axis=0)[0]
    if not (np.isfinite(prob).all() and np.isfinite(out["extent"].numpy()).all()):  # (a 500 from the server)
        raise DataError(path, "the model gave non-finite crack probabilities for its windows: values far from the "
                              "training recordings' scale, or corrupt ones")
    threshold = float((saved.info.get("mask_threshold") or {}).get("threshold", 0.5))
    extent = np.clip(out["extent"].numpy().reshape(-1), 0.0, 1.0)  # a share of the span: a regression head can overshoot
    size = (saved.info.get("data") or {}).get("mask_size")  # the labels' (a run from before: none)
    full = upsample_mask(prob, size, threshold)[1] if size and list(size) != list(prob.shape) else None
    return RecordingPrediction(prob, (prob > threshold).astype(np.float32), threshold, float(extent.mean()), extent,
                               starts_s, float(sr), n_channels, full)


def check_fits_model(n_channels: int, sample_rate: float, spec, where) -> None:
    """Refuse vibration (a recording or a data folder, ``where``) whose channel count or sample rate
    (after ``vibration.resample_to``) is not the model's (``spec``: its saved transform)."""
    if n_channels != spec.n_channels:
        raise DataError(where, f"{n_channels} sensor channel{'s' if n_channels != 1 else ''}; the model was trained on "
                               f"{spec.n_channels}")
    if abs(sample_rate - spec.sample_rate) > 1e-4 * spec.sample_rate:
        raise DataError(where, f"sample rate {sample_rate:g} Hz; the model was trained at {spec.sample_rate:g} Hz "
                               "(resample the recordings, or train with vibration.resample_to)")


def windows_of_recording(vibration, spec, path: str | Path, channel_names: list[str] | None = None,
                         sample_rate: float | None = None):
    """(windows (W, C, T), starts_s, rate, channels) of one vibration CSV, read and windowed as in
    training (``vibration``: the config section; ``spec``: the model's saved transform; ``channel_names``: the
    sensor columns it was trained on, in its order: a file naming them in another order is read in the model's;
    ``sample_rate``: of a CSV without a time column, :func:`new_data_rates`)."""
    from latentbridge.data.bridge import model_picks, read_recording, recording_windows
    from latentbridge.data.bridge_rates import training_rate_text
    from latentbridge.io.levels import constant_channels
    from latentbridge.io.columns import model_order

    vibration, fallback = new_data_rates(vibration, sample_rate)
    names: list[str] = []
    rate_from: list[str] = []
    wave, sr = read_recording(path, vibration, names=names,
                              pick_names=model_picks(vibration, channel_names),
                              fallback_rate=fallback, rate_from=rate_from)
    if rate_from == ["fallback"]:
        log.warning(training_rate_text(path, 1, 1, fallback))
    if (idx := model_order(names, channel_names, path)) is not None:
        wave, names = wave[idx], [names[i] for i in idx]
    check_fits_model(wave.shape[0], sr, spec, path)
    if (dead := constant_channels(wave)).size:  # a mask was predicted from a dead sensor's zeros
        which = ", ".join(f"{c}" + (f" ({names[c]})" if len(names) == wave.shape[0] else "") for c in dead)
        if dead.size == wave.shape[0]:
            raise DataError(path, "every channel is constant over the whole recording (dead or unplugged sensors?): "
                                  "there is no vibration to predict from")
        log.warning("%s: channel(s) %s constant over the whole recording (a dead or unplugged sensor?): the "
                    "prediction has no vibration from it", path, which)
    windows, starts_s = recording_windows(wave, sr, spec.window_s, spec.hop_s, path)
    return windows, starts_s, float(sr), int(wave.shape[0])
