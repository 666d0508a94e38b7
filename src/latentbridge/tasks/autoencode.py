"""Plain autoencoding: mel-spectrogram autoencoders of audio (task ``audio_ae``) and image
autoencoders of MNIST (task ``image_ae``): fit, evaluate, and rebuild audio files.

Audio (``audio_ae``)
    ``data.train_dir`` is a folder of recordings (e.g. FSDD ``recordings/``), or, with
    ``data.stems=[vocals]``, a MUSDB-style root whose ``<track>/<stem>.wav`` files are used
    (each stem file counts as one recording). Recordings are read at ``audio.sample_rate``, cut
    into ``audio.window_s`` windows and turned into features with the config's ``features``
    (:class:`~latentbridge.data.audio.FeatureExtractor`, cached). Whole recordings are held out
    for validation (``data.val_fraction``, seeded by ``train.seed``); their paths are saved in
    ``config.json`` (``data.val_files``) so :func:`evaluate` measures reconstruction on audio the
    model never saw. ``config.json`` carries the feature transform (``transform``), so
    :func:`reconstruct` can rebuild audio from the model folder alone.

Phase
    Mel features keep no phase (and the mel projection loses detail), so audio comes back
    through Griffin-Lim (``n_iter`` iterations) after an approximate non-negative mel
    inversion. SI-SDR of such audio is low by construction (its phase is not the original's);
    PESQ, STOI and the log-spectral distance are the meaningful numbers. :func:`evaluate` also
    reports the same metrics for Griffin-Lim of the *input* features ("oracle"): the ceiling the
    feature representation itself sets, whatever the model. Linear-STFT models (``features.kind:
    stft``) may instead reuse the input's phase (``reconstruct(..., phase="input")``, an ISTFT).

Images (``image_ae``)
    ``data.root`` holds the MNIST ``*-ubyte.gz`` files. Without the 60,000 training images the
    10,000 official test images are split 8,000 / 2,000 (seeded by ``train.seed``; see
    :class:`~latentbridge.data.sources.MNIST`); the model card and metrics say so.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from latentbridge.config import Config, config_to_dict, validate
from latentbridge.errors import ConfigError, DataError, LatentbridgeError
from latentbridge.utils import atomic_write_json

log = logging.getLogger(__name__)

AUDIO_MODELS = ("mel_ae", "mel_vae", "conv_ae", "conv_vae", "dense_ae")
IMAGE_MODELS = ("image_dense_ae", "image_conv_ae")


@dataclass
class FitResult:
    out_dir: Path
    n_train: int
    n_val: int
    best_val_loss: float | None
    epochs: int
    seconds: float



def fit(cfg: Config, out_dir: str | Path, resume: bool = False, force: bool = False) -> FitResult | None:
    """Train ``cfg.model`` on ``cfg.task`` data into ``out_dir`` (a model folder when done).

    Returns None in the extra processes of a multi-process (DDP) run.
    """
    if cfg.task == "audio_ae":
        return _fit_audio(cfg, Path(out_dir), resume, force)
    if cfg.task == "image_ae":
        return _fit_image(cfg, Path(out_dir), resume, force)
    raise ConfigError(f"task: latentbridge.tasks.autoencode trains 'audio_ae' and 'image_ae', not {cfg.task!r}")


def _train(cfg: Config, model, out_dir: Path, train_x: np.ndarray, val_x: np.ndarray, resume: bool, force: bool):
    from latentbridge.training.module import fit_model, make_loader, start_run

    start_run(cfg, out_dir, resume, force)

    def loader(x: np.ndarray, shuffle: bool):
        return make_loader(torch.utils.data.TensorDataset(torch.from_numpy(np.ascontiguousarray(x))), cfg.train,
                           shuffle)

    has_val = len(val_x) > 0
    return fit_model(model, cfg, out_dir, loader(train_x, True), loader(val_x, False) if has_val else None,
                     resume=resume)


def _seeded_subset(n: int, limit: int | None, seed: int) -> np.ndarray:
    if not limit or n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


# ----------------------------------------------------------------------------- audio


def audio_files(cfg: Config) -> list[Path]:
    """The recordings ``fit`` trains on: ``data.train_dir`` (or its MUSDB stems), ``data.limit`` of them."""
    from latentbridge.io import list_audio_files

    if not cfg.data.train_dir:
        raise ConfigError("data.train_dir: no recordings given (a folder of audio files, or a MUSDB root "
                          "with data.stems)")
    root = Path(cfg.data.train_dir)
    if cfg.data.stems:
        from latentbridge.data.sources import MUSDB_STEMS

        bad = [s for s in cfg.data.stems if s not in MUSDB_STEMS]
        if bad:
            raise ConfigError(f"data.stems: unknown stem(s) {bad}; stems are {list(MUSDB_STEMS)}")
        if not root.is_dir():
            raise DataError(root, "MUSDB folder does not exist")
        files = [p for stem in cfg.data.stems for p in sorted(root.glob(f"*/{stem}.wav"))]
        if not files:
            raise DataError(root, f"no <track>/{{{','.join(cfg.data.stems)}}}.wav files (MUSDB-style layout)")
    else:
        files = list_audio_files(root)
    return [files[i] for i in _seeded_subset(len(files), cfg.data.limit, cfg.train.seed)]


def _fit_audio(cfg: Config, out_dir: Path, resume: bool, force: bool) -> FitResult | None:
    from latentbridge.data.audio import FeatureExtractor, split_train_val
    from latentbridge.models.hub import save_model
    from latentbridge.models.vae import build_model
    from latentbridge.training.module import training_summary
    from latentbridge.transforms.audio import SpectrogramTransform

    t0 = time.time()
    if cfg.model.name not in AUDIO_MODELS:
        raise ConfigError(f"model.name: task audio_ae trains {list(AUDIO_MODELS)}, not {cfg.model.name!r}")
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    transform = SpectrogramTransform(**cfg.transform_kwargs())
    files = audio_files(cfg)
    extractor = FeatureExtractor.from_config(cfg, transform)
    wf = extractor.extract(files, skip_bad=cfg.data.skip_bad_files)
    train_wf, val_wf = split_train_val(wf, cfg.data.val_fraction, cfg.train.seed)
    if len(train_wf) == 0:
        raise DataError(cfg.data.train_dir, "no training windows")
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model.name, tuple(train_wf.features.shape[1:]), cfg.model)
    if cfg.features.standardize:
        model.normalizer.fit(torch.from_numpy(train_wf.features))
    trainer = _train(cfg, model, out_dir, train_wf.features, val_wf.features, resume, force)
    if trainer is None:
        return None
    data_info = {
        "train_dir": str(cfg.data.train_dir), "stems": cfg.data.stems, "n_files": len(wf.files),
        "n_train_files": len(train_wf.files), "n_val_files": len(val_wf.files),
        "n_train_windows": len(train_wf), "n_val_windows": len(val_wf),
        "total_duration_s": float(wf.durations_s.sum()), "skipped_files": wf.skipped,
        "val_files": [str(f) for f in val_wf.files],
    }
    training = training_summary(trainer, t0)
    save_model(out_dir, model, cfg.model.name, config=config_to_dict(cfg), transform=transform.to_dict(),
               extra={"data": data_info, "training": training},
               card=_audio_card(cfg, data_info, training))
    return FitResult(out_dir, len(train_wf), len(val_wf), training["best_val_loss"], training["epochs"],
                     time.time() - t0)


def _audio_card(cfg: Config, data: dict, training: dict) -> str:
    f, a = cfg.features, cfg.audio
    src = (f"MUSDB-style root `{data['train_dir']}`, stems {data['stems']}" if data["stems"]
           else f"`{data['train_dir']}`")
    return f"""# latentbridge mel autoencoder: {cfg.model.name}

{cfg.description or 'Autoencoder of log-mel spectrogram windows.'}

## Data
- Recordings: {src} ({data['n_files']} files{f", a seeded subset of {cfg.data.limit}" if cfg.data.limit else ""},
  {data['total_duration_s']:.1f} s); {data['n_train_files']} files / {data['n_train_windows']} windows for
  training, {data['n_val_files']} files / {data['n_val_windows']} windows held out (listed in `config.json`,
  `data.val_files`).

## Input
- {a.sample_rate} Hz mono, windows of {a.window_s:g} s (hop {a.hop_s:g} s, short recordings padded: {a.pad})
- {f.kind} features: n_fft {f.n_fft}, hop {f.hop_length}, {f.n_mels} mel bands, scale {f.scale},
  {cfg.n_frames} frames per window; per-bin standardisation stored with the weights
  ({'on' if f.standardize else 'off'})

## Model
- {cfg.model.name}: latent {cfg.model.latent_dim}, channels {list(cfg.model.channels)}, residual blocks per
  stage {cfg.model.res_blocks}, bottleneck dropout {cfg.model.dropout}
- Training: {training['epochs']} epochs, best validation loss {training['best_val_loss']}, {training['seconds']} s

## Audio
Mel features keep no phase: audio is rebuilt with Griffin-Lim (`latentbridge audio reconstruct`), so
expect phase artefacts; `latentbridge evaluate` reports PESQ/STOI of that audio next to the
Griffin-Lim ceiling of the unprocessed features.
"""


def _windows_of_files(cfg: Config, transform, files: list[Path], max_windows: int):
    """(waveform windows (N, window), features (N, C, F, T), window labels) of ``files``."""
    from latentbridge.data.audio import FeatureExtractor

    ex = FeatureExtractor.from_config(cfg, transform, use_cache=False)
    waves, labels = [], []
    for f in files:
        w, starts = ex.windows_of(ex.read(Path(f)), f)
        waves.append(w)
        labels += [f"{Path(f).name}@{s:.2f}s" for s in starts]
    windows = np.concatenate(waves)
    if len(windows) > max_windows:  # evenly spread over the files
        keep = np.unique(np.linspace(0, len(windows) - 1, max_windows).round().astype(int))
        windows = windows[keep]
        labels = [labels[i] for i in keep]
    return windows, ex.features_of_windows(windows), labels


@torch.no_grad()
def _reconstruct_features(model, feats: np.ndarray, batch: int = 64) -> np.ndarray:
    model.eval()
    out = [model.reconstruct(torch.from_numpy(np.ascontiguousarray(feats[i:i + batch]))).numpy()
           for i in range(0, len(feats), batch)]
    return np.concatenate(out)


def _safe_audio_metrics(est: np.ndarray, ref: np.ndarray, sr: int) -> dict:
    """:func:`audio_metrics`; without PESQ/STOI (None) for signals shorter than PESQ needs."""
    from latentbridge.metrics import signal

    try:
        return signal.audio_metrics(est, ref, sr)
    except ValueError as e:
        log.warning("PESQ/STOI skipped: %s", e)
        m = lambda fn: float(np.mean(fn(est, ref)))  # noqa: E731
        return {"n": int(np.prod(est.shape[:-1])), "si_sdr": m(signal.si_sdr), "snr": m(signal.snr),
                "lsd": m(signal.log_spectral_distance), "mae": m(signal.mae), "mse": m(signal.mse),
                "cosine": m(signal.cosine_similarity), "pesq": None, "stoi": None}


def _evaluate_audio(saved, cfg: Config, out_dir: Path, data: str | None, n_iter: int, max_windows: int,
                    n_examples: int) -> dict:
    from latentbridge import report
    from latentbridge.io import list_audio_files, write_wav
    from latentbridge.transforms.audio import SpectrogramTransform

    transform = SpectrogramTransform.from_dict(saved.info["transform"]).eval()
    if data:
        files, source = list_audio_files(data), str(data)
    else:
        files = [Path(p) for p in (saved.info.get("data") or {}).get("val_files", [])]
        source = "held-out validation files"
        if not files:
            log.warning("no held-out files recorded: evaluating on the training recordings (optimistic)")
            files, source = audio_files(cfg), "training files (no held-out files)"
    missing = [f for f in files if not f.exists()]
    if missing:
        raise DataError(missing[0], f"evaluation recording missing ({len(missing)} of {len(files)}); "
                                    "pass --data DIR")
    windows, feats, labels = _windows_of_files(cfg, transform, files, max_windows)
    rec = _reconstruct_features(saved.model, feats)
    sr, length = cfg.audio.sample_rate, windows.shape[-1]

    with torch.no_grad():
        xn = saved.model.normalizer(torch.from_numpy(feats))
        rn = saved.model.normalizer(torch.from_numpy(rec))
        std_mse = float((xn - rn).pow(2).mean())
    a, b = feats.reshape(len(feats), -1).astype(np.float64), rec.reshape(len(rec), -1).astype(np.float64)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    t1 = time.time()
    with torch.no_grad():
        wave_rec = transform.invert(torch.from_numpy(rec), length=length, n_iter=n_iter)[:, 0].numpy()
        wave_orc = transform.invert(torch.from_numpy(feats), length=length, n_iter=n_iter)[:, 0].numpy()
    gl_s = time.time() - t1
    model_audio = _safe_audio_metrics(wave_rec, windows, sr)
    oracle_audio = _safe_audio_metrics(wave_orc, windows, sr)
    metrics = {
        "task": "audio_ae", "model": str(saved.path), "model_class": saved.info["model_class"], "data": source,
        "n_files": len(files), "n_windows": int(len(windows)), "sample_rate": sr, "window_s": length / sr,
        "mel_mse": float(((a - b) ** 2).mean()), "mel_mae": float(np.abs(a - b).mean()),
        "mel_cosine": float(cos.mean()), "mel_mse_standardized": std_mse,
        "griffin_lim_iters": int(n_iter), "phase": "Griffin-Lim (mel features keep no phase)",
        "pesq": model_audio["pesq"], "stoi": model_audio["stoi"], "si_sdr_db": model_audio["si_sdr"],
        "lsd_db": model_audio["lsd"], "pesq_nan": model_audio.get("pesq_nan"), "stoi_nan": model_audio.get("stoi_nan"),
        "oracle_pesq": oracle_audio["pesq"], "oracle_stoi": oracle_audio["stoi"],
        "oracle_lsd_db": oracle_audio["lsd"],
        "audio": model_audio, "oracle_audio": oracle_audio, "griffin_lim_seconds": round(gl_s, 2),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "metrics.json", metrics)
    k = min(n_examples, len(windows))
    picks = np.unique(np.linspace(0, len(windows) - 1, k).round().astype(int)) if k else np.arange(0)
    wavs = []
    for j, i in enumerate(picks):
        for tag, w in (("original", windows[i]), ("reconstructed", wave_rec[i]), ("features_only", wave_orc[i])):
            p = out_dir / f"example_{j}_{tag}.wav"
            write_wav(p, np.clip(w, -1, 1), sr)
            wavs.append(p.name)
    if len(picks):
        report.plot_spectrogram_pairs(feats[picks][:, 0], rec[picks][:, 0], [labels[i] for i in picks],
                                      out_dir / "spectrograms.png", sample_rate=sr, hop_length=transform.hop_length)
    table = {k_: v for k_, v in metrics.items() if not isinstance(v, dict)}
    report.write_html_report(out_dir / "report.html", "latentbridge mel autoencoder report", [
        {"heading": "Metrics", "table": table,
         "text": "mel_* compare the features (dB) of held-out windows with their reconstructions. pesq/stoi/"
                 "si_sdr_db/lsd_db compare audio rebuilt from the reconstructed mel by Griffin-Lim with the "
                 "original window; oracle_* do the same for the input mel without the model (the ceiling of "
                 "mel features + Griffin-Lim). SI-SDR is low by construction: Griffin-Lim does not recover "
                 "the original phase. pesq_nan/stoi_nan count windows where the metric is undefined (PESQ: "
                 "no utterance; STOI: under ~0.4 s of speech after silence removal) and left out of the means."},
        {"heading": "Model audio (Griffin-Lim of the reconstruction)", "table": model_audio},
        {"heading": "Features-only audio (Griffin-Lim of the input mel)", "table": oracle_audio},
        {"heading": "Spectrograms", "images": ["spectrograms.png"] if len(picks) else [],
         "text": "Examples written beside this report: " + ", ".join(wavs)},
    ])
    return metrics


# ----------------------------------------------------------------------------- reconstruct files


def _overlap_add(frames: np.ndarray, hop: int, total: int) -> np.ndarray:
    """(n, window) → (total,): windows at 0, hop, 2·hop, … blended with Hann-shaped weights."""
    n, window = frames.shape
    w = np.ones(window) if hop >= window else 1e-3 + np.hanning(window + 2)[1:-1]
    out = np.zeros((n - 1) * hop + window)
    wsum = np.zeros_like(out)
    for i in range(n):
        out[i * hop:i * hop + window] += w * frames[i]
        wsum[i * hop:i * hop + window] += w
    return (out / np.maximum(wsum, 1e-12))[:total]


@torch.no_grad()
def reconstruct(model_dir: str | Path, files, out_dir: str | Path, n_iter: int = 64, phase: str = "griffinlim",
                ) -> dict:
    """Encode/decode every audio file window by window and write ``<name>_reconstructed.wav`` and
    ``<name>_spectrogram.png`` (input vs rebuilt audio) into ``out_dir``.

    Each file is read at the model's rate (mono mix, or the model's channel), cut into the
    model's windows (hop ``audio.hop_s``; the last window zero-padded), reconstructed, inverted
    window by window and overlap-added back to the file's length; when the file's own rate
    differs, the result is resampled back to it, so the output has the input's rate and length.
    ``phase``: ``"griffinlim"`` (``n_iter`` iterations; the only choice for mel features, which
    keep no phase) or ``"input"`` (linear-STFT models: the ISTFT with the input's phase).
    Returns ``{"files": [per-file metrics at the model's rate], ...}`` and writes
    ``reconstruct.json``.
    """
    from latentbridge import report
    from latentbridge.io import audio_info, list_audio_files, read_audio, write_wav
    from latentbridge.models.hub import load_model
    from latentbridge.transforms.audio import SpectrogramTransform, fix_frames

    saved = load_model(model_dir)
    cfg = validate(saved.config, f"{model_dir}/config.json")
    if cfg.task != "audio_ae" and saved.info["model_class"] not in AUDIO_MODELS:
        raise LatentbridgeError(f"{model_dir}: not an audio model (task {cfg.task!r})")
    transform = SpectrogramTransform.from_dict(saved.info["transform"]).eval()
    if phase not in ("griffinlim", "input"):
        raise ValueError(f"phase must be 'griffinlim' or 'input', got {phase!r}")
    if phase == "input" and transform.kind != "stft":
        raise ValueError("phase='input' needs linear-STFT features; mel features keep no phase "
                         "(use Griffin-Lim)")
    sr, window, hop = cfg.audio.sample_rate, cfg.audio.window_samples, cfg.audio.hop_samples
    full = SpectrogramTransform.from_dict({**transform.to_dict(), "n_frames": None}).eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for f in [files] if isinstance(files, (str, Path)) else list(files):
        paths.extend(list_audio_files(f))
    results, used = [], set()
    for path in paths:
        native = audio_info(path)
        wave, _ = read_audio(path, sample_rate=sr, mono=cfg.audio.channel is None, channel=cfg.audio.channel)
        wave = wave.reshape(-1)
        total = wave.shape[-1]
        n = 1 if total <= window else math.ceil((total - window) / hop) + 1
        padded = np.zeros((n - 1) * hop + window, dtype=np.float32)
        padded[:total] = wave
        windows = np.stack([padded[i * hop:i * hop + window] for i in range(n)])
        x = torch.from_numpy(windows)
        feats = transform(x)
        rec = saved.model.reconstruct(feats)
        if phase == "input":
            ang = fix_frames(transform.stft(x).angle(), rec.shape[-1])
            waves = transform.invert(rec[:, 0], length=window, phase=ang)
        else:
            waves = transform.invert(rec[:, 0], length=window, n_iter=n_iter)
        out = _overlap_add(waves.numpy().astype(np.float64), hop, total).astype(np.float32)
        metrics = _safe_audio_metrics(out, wave, sr)
        written = out
        if native.sample_rate != sr:
            from latentbridge.io import resample

            written = resample(out, sr, native.sample_rate)
            written = np.pad(written, (0, max(0, native.frames - len(written))))[:native.frames]
        stem = path.stem
        while stem in used:
            stem += "_"
        used.add(stem)
        wav_path = write_wav(out_dir / f"{stem}_reconstructed.wav", np.clip(written, -1, 1), native.sample_rate)
        a, b = full(torch.from_numpy(wave)[None])[0, 0].numpy(), full(torch.from_numpy(out)[None])[0, 0].numpy()
        plot = report.plot_spectrogram_pairs(a[None], b[None], [f"{path.name} (audio → {transform.kind} → model "
                                                                 f"→ audio)"], out_dir / f"{stem}_spectrogram.png",
                                             sample_rate=sr, hop_length=transform.hop_length)
        results.append({"path": str(path), "output": str(wav_path), "plot": str(plot), "n_windows": int(n),
                        "duration_s": total / sr, "sample_rate": native.sample_rate, **metrics})
    summary = {"model": str(model_dir), "phase": "input phase (ISTFT)" if phase == "input"
               else f"Griffin-Lim, {n_iter} iterations (mel features keep no phase)",
               "model_sample_rate": sr, "files": results}
    atomic_write_json(out_dir / "reconstruct.json", summary)
    return summary


# ----------------------------------------------------------------------------- images


def _mnist(root, seed: int):
    import warnings

    from latentbridge.data.sources import MNIST

    if not root:
        raise ConfigError("data.root: no MNIST folder given (the folder holding the *-ubyte.gz files)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the offline split is recorded instead
        return MNIST(root, seed=seed)


def _fit_image(cfg: Config, out_dir: Path, resume: bool, force: bool) -> FitResult | None:
    from latentbridge.data.digits import images_to_float
    from latentbridge.models.hub import save_model
    from latentbridge.models.vae import build_model
    from latentbridge.training.module import training_summary

    t0 = time.time()
    if cfg.model.name not in IMAGE_MODELS:
        raise ConfigError(f"model.name: task image_ae trains {list(IMAGE_MODELS)}, not {cfg.model.name!r}")
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    mn = _mnist(cfg.data.root, cfg.train.seed)
    images, _ = mn.load("train")
    images = images[_seeded_subset(len(images), cfg.data.limit, cfg.train.seed)]
    x = images_to_float(images)
    perm = np.random.default_rng(cfg.train.seed + 1).permutation(len(x))
    n_val = int(round(cfg.data.val_fraction * len(x))) if len(x) > 1 else 0
    val_x, train_x = x[np.sort(perm[:n_val])], x[np.sort(perm[n_val:])]
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model.name, tuple(x.shape[1:]), cfg.model)
    trainer = _train(cfg, model, out_dir, train_x, val_x, resume, force)
    if trainer is None:
        return None
    data_info = {"root": str(cfg.data.root), "offline_split": bool(mn.offline_split),
                 "n_train": int(len(train_x)), "n_val": int(len(val_x)), "limit": cfg.data.limit}
    training = training_summary(trainer, t0)
    split = ("an offline split: the 60,000 training images were absent, so 'train' and 'test' are a seeded "
             f"(seed {cfg.train.seed}) 8,000 / 2,000 split of the 10,000 official test images; figures are "
             "not comparable with results on the official split" if mn.offline_split
             else "the official 60,000 / 10,000 split")
    card = f"""# latentbridge image autoencoder: {cfg.model.name}

{cfg.description or 'Autoencoder of 28x28 grey-level digits.'}

## Data
- MNIST from `{cfg.data.root}`: {split}.
- {len(train_x)} training / {len(val_x)} validation images (held out from the training split, seeded)
  {f"from a seeded subset of {cfg.data.limit}" if cfg.data.limit else ""}

## Model
- {cfg.model.name}, latent {cfg.model.latent_dim}; input (1, 28, 28) in [0, 1] (uint8 / 255), sigmoid output;
  loss BCE + MSE (per-pixel means)
- Training: {training['epochs']} epochs, best validation loss {training['best_val_loss']}, {training['seconds']} s
"""
    save_model(out_dir, model, cfg.model.name, config=config_to_dict(cfg), transform={},
               extra={"data": data_info, "training": training,
                      "image": {"shape": [1, 28, 28], "scale": "uint8 / 255"}}, card=card)
    return FitResult(out_dir, len(train_x), len(val_x), training["best_val_loss"], training["epochs"],
                     time.time() - t0)


@torch.no_grad()
def _evaluate_image(saved, cfg: Config, out_dir: Path, data: str | None) -> dict:
    from latentbridge import report
    from latentbridge.data.digits import images_to_float

    mn = _mnist(data or cfg.data.root, cfg.train.seed)
    images, labels = mn.load("test")
    x = torch.from_numpy(images_to_float(images))
    model = saved.model.eval()
    mse, bce, recs = [], [], []
    for i in range(0, len(x), 500):
        out = model(x[i:i + 500])
        mse.append(out.losses["mse"].numpy())
        bce.append(out.losses["bce"].numpy())
        recs.append(model.normalizer.inverse(out.reconstruction).numpy())
    mse_a, bce_a, rec = np.concatenate(mse), np.concatenate(bce), np.concatenate(recs)
    labels = np.asarray(labels, dtype=int)
    metrics = {
        "task": "image_ae", "model": str(saved.path), "model_class": saved.info["model_class"],
        "data": str(data or cfg.data.root), "split": "test (offline split of t10k)" if mn.offline_split
        else "test (official t10k)", "offline_split": bool(mn.offline_split), "n_images": int(len(x)),
        "test_mse": float(mse_a.mean()), "test_bce": float(bce_a.mean()),
        "test_mse_per_digit": {str(d): float(mse_a[labels == d].mean()) for d in range(10) if (labels == d).any()},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "metrics.json", metrics)
    picks = [int(np.flatnonzero(labels == d)[0]) for d in range(10) if (labels == d).any()]
    grid = np.stack([x.numpy()[picks, 0], rec[picks, 0]])
    report.plot_image_grid(grid, ["input", "reconstruction"], [str(labels[i]) for i in picks],
                           out_dir / "reconstructions.png", cmap="gray", origin="upper")
    report.write_html_report(out_dir / "report.html", "latentbridge image autoencoder report", [
        {"heading": "Metrics", "table": {k: v for k, v in metrics.items() if not isinstance(v, dict)},
         "text": "Per-pixel means over the test split (images in [0, 1])."},
        {"heading": "MSE per digit", "table": metrics["test_mse_per_digit"]},
        {"heading": "Reconstructions", "images": ["reconstructions.png"]},
    ])
    return metrics


# ----------------------------------------------------------------------------- evaluate


def evaluate(run_dir: str | Path, out_dir: str | Path, data: str | None = None, *, n_iter: int = 32,
             max_windows: int = 64, n_examples: int = 4) -> dict:
    """metrics.json + report.html (+ plots, example wavs) for an ``audio_ae`` or ``image_ae`` model folder.

    Audio: held-out windows (or the recordings under ``data``), at most ``max_windows`` of them;
    ``n_iter`` Griffin-Lim iterations. Images: the test split of the MNIST root (or ``data``).
    """
    from latentbridge.models.hub import load_model

    saved = load_model(run_dir)
    cfg = validate(saved.config, f"{run_dir}/config.json")
    out_dir = Path(out_dir)
    if cfg.task == "image_ae":
        return _evaluate_image(saved, cfg, out_dir, data)
    if cfg.task == "audio_ae":
        return _evaluate_audio(saved, cfg, out_dir, data, n_iter, max_windows, n_examples)
    raise LatentbridgeError(f"{run_dir}: task {cfg.task!r} is not an autoencoding task")

