"""Plain autoencoding: mel-spectrogram autoencoders of audio (task ``audio_ae``) and image
autoencoders of MNIST (task ``image_ae``): fit, and evaluation results (compute only; the
``latentbridge.report.autoencode`` step writes metrics, plots, example wavs and the HTML report).

Audio (``audio_ae``)
    ``data.train_dir`` is a folder of recordings (e.g. FSDD ``recordings/``), or, with
    ``data.stems=[vocals]``, a MUSDB-style root whose ``<track>/<stem>.wav`` files are used
    (each stem file counts as one recording). Training goes through the same pipeline as the
    anomaly detectors (:func:`latentbridge.tasks.pipeline.feature_training`). Whole recordings are
    held out for validation; their paths are saved in ``config.json`` (``data.val_files``) so
    :func:`evaluate` measures reconstruction on audio the model never saw.

Phase
    Mel features keep no phase (and the mel projection loses detail), so audio comes back
    through Griffin-Lim after an approximate non-negative mel inversion. SI-SDR of such audio is
    low by construction; PESQ, STOI and the log-spectral distance are the meaningful numbers.
    :func:`evaluate` also reports the same metrics for Griffin-Lim of the *input* features
    ("oracle"): the ceiling the feature representation itself sets, whatever the model.

Images (``image_ae``)
    The images of ``data`` (:func:`latentbridge.data.images.load_image_data`): MNIST (``data.root`` holds
    the ``*-ubyte.gz`` files; without the 60,000 training images the 10,000 official test images are split
    8,000 / 2,000, seeded by ``train.seed``, and the model card and metrics say so), or a folder of images
    (``data.source: folder``, ``data.image_size``; grey or RGB, resized; a seeded test split held out).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from latentbridge.training.fit import best_loss_text
from latentbridge.data.images import seeded_subset
from latentbridge.errors import ConfigError, DataError, LatentbridgeError, named_problems
from latentbridge.utils import batched, listed, paths_text

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    out_dir: Path
    n_train: int
    n_val: int
    best_val_loss: float | None
    epochs: int
    seconds: float


def fit(cfg, out_dir: str | Path, *, resume: bool = False, force: bool = False,
        notify=None) -> FitResult | None:
    """Train ``cfg.model`` on ``cfg.task`` data into ``out_dir`` (a model folder when done).

    Returns None in the extra processes of a multi-process (DDP) run."""
    if cfg.task == "audio_ae":
        return _fit_audio(cfg, Path(out_dir), resume, force)
    if cfg.task == "image_ae":
        return _fit_image(cfg, Path(out_dir), resume, force)
    raise ConfigError(f"task: latentbridge.tasks.autoencode trains 'audio_ae' and 'image_ae', not {cfg.task!r}")


# ----------------------------------------------------------------------------- audio


def audio_files(cfg) -> list[Path]:
    """The recordings ``fit`` trains on: ``data.train_dir`` (or its MUSDB stems), ``data.limit`` of them."""
    if not cfg.data.train_dir:
        raise ConfigError("data.train_dir: no recordings given (a folder of audio files, or a MUSDB root "
                          "with data.stems)")
    from latentbridge.data.audio import list_files

    if isinstance(cfg.data.train_dir, list) and cfg.data.stems:
        raise ConfigError("data.train_dir: one MUSDB-style root with data.stems, not a list")
    try:
        files = list_files(cfg.data.train_dir) if isinstance(cfg.data.train_dir, list) else \
            recordings(cfg.data.train_dir, cfg.data.stems)
    except DataError as e:  # a config's folder missing: named with its key ('rec: does not exist', no more)
        given = cfg.data.train_dir if isinstance(cfg.data.train_dir, list) else [cfg.data.train_dir]
        if e.problem != "does not exist" or e.path not in map(str, given):
            raise
        raise DataError(e.path, "does not exist (data.train_dir" + ("" if Path(e.path).is_absolute() else
                                f", relative to the folder the command runs in, {Path.cwd()}") + ")") from None
    return [files[i] for i in seeded_subset(len(files), cfg.data.limit, cfg.train.seed)]


def recordings(root, stems: list[str] | None, *, stems_required: bool = True, split: str = "train") -> list[Path]:
    """The recordings under ``root``: with ``stems``, the ``<track>/<stem>.wav`` files of those MUSDB stems (of
    ``root/<split>`` when ``root`` is MUSDB18's own root of ``train/`` and ``test/``; a folder without that layout is
    an error, or with ``stems_required=False`` read whole: another folder given to ``evaluate --data``), else every
    audio file."""
    from latentbridge.io import list_audio_files

    root = Path(root)
    if stems:
        from latentbridge.data.sources.musdb import MUSDB_STEMS, stem_files, track_root

        bad = [s for s in stems if s not in MUSDB_STEMS]
        if bad:
            raise ConfigError(f"data.stems: unknown stem(s) {bad}; stems are {list(MUSDB_STEMS)}")
        if not root.is_dir():
            raise DataError(root, "MUSDB folder does not exist")
        tracks = track_root(root, split)
        files, missing = stem_files(tracks, stems)
        if files and tracks != root:
            log.info("%s: MUSDB18's own split, the tracks of %s/", root, split)
        if files and missing:
            log.warning("%s: %d track(s) without the model's stem%s, left out: %s", tracks, len(missing),
                        "s" if len(stems) > 1 else "", listed(missing))
        if files or stems_required:
            if not files:
                raise DataError(root, f"no <track>/{{{','.join(stems)}}}.wav files (MUSDB-style layout: ROOT/<track>/"
                                      "vocals.wav, or MUSDB18's ROOT/train/<track>/ and ROOT/test/<track>/); a plain "
                                      "folder of recordings: -o data.stems=null")
            return files
    return list_audio_files(root)


def _fit_audio(cfg, out_dir: Path, resume: bool, force: bool) -> FitResult | None:
    from latentbridge.tasks.pipeline import feature_training

    t0 = time.time()
    with feature_training(cfg, out_dir, audio_files(cfg), resume=resume, force=force) as fit_:
        if not fit_.trained:
            return None
        data_info = {**fit_.data_info, "stems": cfg.data.stems}
        fit_.run.save(fit_.model, transform=fit_.spec, extra={"data": data_info},
                      card=_audio_card(cfg, data_info, fit_.run.summary))
        s = fit_.run.summary
        return FitResult(fit_.run.dir, len(fit_.train), len(fit_.val), s["best_val_loss"], s["epochs"],
                         time.time() - t0)


def _audio_card(cfg, data: dict, training: dict) -> str:
    f, a = cfg.features, cfg.audio
    src = (f"MUSDB-style root `{data['train_dir']}`, stems {data['stems']}" if data["stems"]
           else f"`{paths_text(data['train_dir'])}`")
    return f"""# latentbridge audio autoencoder: {cfg.model.name}

{cfg.description or 'Autoencoder of log-mel spectrogram windows.'}

## Data
- Recordings: {src} ({data['n_files']} files{f", a seeded subset of {cfg.data.limit}" if cfg.data.limit else ""},
  {data['total_duration_s']:.1f} s); {data['n_train_files']} files / {data['n_train_windows']} windows for
  training, {data['n_val_files']} files / {data['n_val_windows']} windows held out{
  ", the last part of each in time" if data.get('val_split') == 'time' else ""} (listed in `config.json`,
  `data.val_files`{", from `data.val_from_s`" if data.get('val_split') == 'time' else ""}).

## Input
- {a.sample_rate} Hz mono, windows of {a.window_s:g} s (hop {a.hop_s:g} s, short recordings padded: {a.pad})
- {f.kind} features: n_fft {f.n_fft}, hop {f.hop_length}, {f.n_mels} mel bands, scale {f.scale},
  {cfg.n_frames} frames per window; per-bin standardisation stored with the weights
  ({'on' if f.standardize else 'off'})

## Model
- {cfg.model.name}: {cfg.model.model_dump(exclude={'name'})}
- Training: {training['epochs']} epochs, {best_loss_text(training)}, {training['seconds']} s{_shift_text(cfg)}

## Audio
Mel features keep no phase: audio is rebuilt with Griffin-Lim (`latentbridge audio reconstruct`), so
expect phase artefacts; `latentbridge evaluate` reports PESQ/STOI of that audio next to the
Griffin-Lim ceiling of the unprocessed features.
"""


def _shift_text(cfg) -> str:
    g = cfg.augment
    return (f"; {g.time_shift_p:.0%} of the training windows shifted in time by up to {g.time_shift_max:.0%} of the "
            "window either way (`augment`)" if g.time_shift_p else "")


def safe_audio_metrics(est: np.ndarray, ref: np.ndarray, sr: int, source: str = "") -> dict:
    """:func:`~latentbridge.metrics.signal.audio_metrics`; PESQ/STOI None for signals shorter than PESQ needs
    (the warning names ``source``, what was scored)."""
    from latentbridge.metrics import signal

    try:
        out = signal.audio_metrics(est, ref, sr)
    except ValueError as e:
        log.warning("%sPESQ/STOI skipped: %s", f"{source}: " if source else "", e)
        m = lambda fn: float(np.mean(fn(est, ref)))  # noqa: E731
        return {"n": int(np.prod(est.shape[:-1])), "si_sdr": m(signal.si_sdr), "snr": m(signal.snr),
                "lsd": m(signal.log_spectral_distance), "mae": m(signal.mae), "mse": m(signal.mse),
                "cosine": m(signal.cosine_similarity), "pesq": None, "stoi": None}
    for key, why in (("pesq", "PESQ found no speech in the reference (silence, or a sound it does not take for "
                              "speech: music, machines)"),
                     ("stoi", "STOI found too little speech once its silent frames were dropped")):
        if out.get(f"{key}_nan"):  # printed as nan without a reason
            log.warning("%s%s undefined for %d of %d: %s", f"{source}: " if source else "", key.upper(),
                        out[f"{key}_nan"], out["n"], why)
    return out


@dataclass
class AudioEvaluation:
    metrics: dict
    sample_rate: int
    hop_length: int
    examples: list[dict] = field(default_factory=list)
    """Per example window: ``label``, ``original``, ``reconstructed``, ``features_only`` waves and the
    ``features`` / ``reconstruction`` spectrograms (F, T)."""
    features: object = None
    """The model's spectrogram parameters (``SpectrogramParams``): the plots' frequencies, times and unit."""


@dataclass
class ImageEvaluation:
    metrics: dict
    inputs: np.ndarray  # one test image per digit (n, H, W)
    reconstructions: np.ndarray
    labels: list[str]


def _spread_over_files(windows: np.ndarray, labels: list[str], counts: list[int], max_windows: int):
    """At most ``max_windows`` of ``windows`` (the files' windows one after the other, ``counts`` of each), spread over
    the files: each file's first window before any file's second (files evenly spaced when there are more files than
    windows). A cut spread over windows gave a minute-long recording 41 of 64 windows and eleven short clips none,
    while ``n_files`` still counted them. Returns the windows, their labels and how many files they come from."""
    file_of = np.repeat(np.arange(len(counts)), counts)
    rank = np.concatenate([np.arange(n) for n in counts])
    by_rank = np.lexsort((file_of, rank))  # rank 0 of every file (in file order), then rank 1, ...
    if max_windows <= len(counts):
        keep = by_rank[np.unique(np.linspace(0, len(counts) - 1, max_windows).round().astype(int))]
    else:
        keep = by_rank[:max_windows]
    keep = np.sort(keep)
    return windows[keep], [labels[i] for i in keep], int(len(np.unique(file_of[keep])))


def _evaluate_audio(saved, data: str | None, n_iter: int, max_windows: int, n_examples: int) -> AudioEvaluation:
    from latentbridge.data.audio import FeatureExtractor
    from latentbridge.io import audio_info
    from latentbridge.tasks.reconstruct import say_conversions
    from latentbridge.transforms.spec import build_spectrogram

    cfg, spec = saved.workflow, saved.transform
    transform = build_spectrogram(spec)
    data = data or getattr(cfg.data, "test_dir", None)  # the run's own test recordings, when it names them
    from_s = None  # where each file's held-out part begins (a split in time: data.holdout)
    if data:  # the run's MUSDB stems where the folder has them (the other stems are other sounds), else every file
        files = recordings(data, getattr(cfg.data, "stems", None), stems_required=False, split="test")
        source = str(data)
    else:
        files = [Path(p) for p in (saved.info.get("data") or {}).get("val_files", [])]
        source = "held-out validation files"
        if (from_s := (saved.info.get("data") or {}).get("val_from_s")) is not None:
            source = "the held-out last part of each training recording"
        if not files:
            log.warning("no held-out files recorded: evaluating on the training recordings (optimistic)")
            files, source, from_s = audio_files(cfg), "training files (no held-out files)", None
        else:  # recordings made again under the same names were scored as the held-out ones without a word
            from latentbridge.data.run_record import held_out_changed

            try:
                source += held_out_changed(saved.path, audio_files(cfg), "recordings")
            except (DataError, ConfigError):  # its training folder gone (a run moved alone): its files are checked
                pass
    missing = [f for f in files if not f.exists()]
    if missing:
        raise DataError(missing[0], f"evaluation recording missing ({len(missing)} of {len(files)}); pass --data DIR")
    ex = FeatureExtractor.from_spec(spec, transform, use_cache=False)
    waves, labels, bad, used = [], [], [], []
    for k, f in enumerate(files):  # every unusable recording named at once, the others evaluated
        try:
            _, w, starts = ex.file_windows(Path(f))  # times in the recording, a trimmed lead added back
        except DataError as e:
            bad.append(e)
            continue
        if from_s is not None:  # the part held out, not the part trained on
            w, starts = w[starts >= from_s[k] - 1e-6], starts[starts >= from_s[k] - 1e-6]
        used.append(Path(f))
        waves.append(w)
        labels += [f"{Path(f).name}@{s:.2f}s" for s in starts]
    if bad and not waves:
        raise DataError(source, f"none of its {len(files)} recordings can be used: " + named_problems(bad))
    if bad:
        log.warning("%d of %d recordings left out: %s", len(bad), len(files), named_problems(bad))
    n_used = len(waves)
    low = say_conversions(used, [audio_info(f, spec.windowing.csv_rate) for f in used], spec, "evaluated")
    windows = np.concatenate(waves)
    windows = windows[:, 0] if windows.ndim == 3 and windows.shape[1] == 1 else windows  # (audio.channel K's)
    n_windows_read = len(windows)
    if len(windows) > max_windows:
        windows, labels, n_used = _spread_over_files(windows, labels, [len(w) for w in waves], max_windows)
    feats = ex.features_of_windows(windows)
    model = saved.model.eval()
    rec = batched(model.reconstruct, feats, batch_size=64).numpy()
    sr, length = spec.sample_rate, windows.shape[-1]
    with torch.no_grad():
        std_mse = float((model.normalizer(torch.from_numpy(feats)) - model.normalizer(torch.from_numpy(rec)))
                        .pow(2).mean())
    a, b = feats.reshape(len(feats), -1).astype(np.float64), rec.reshape(len(rec), -1).astype(np.float64)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    t1 = time.time()
    with torch.no_grad():
        wave_rec = transform.invert(torch.from_numpy(rec), length=length, n_iter=n_iter)[:, 0].numpy()
        wave_orc = transform.invert(torch.from_numpy(feats), length=length, n_iter=n_iter)[:, 0].numpy()
    gl_s = time.time() - t1
    model_audio = safe_audio_metrics(wave_rec, windows, sr, "the model's audio")
    oracle_audio = safe_audio_metrics(wave_orc, windows, sr, "the Griffin-Lim ceiling")
    metrics = {
        "task": "audio_ae", "model": str(saved.path), "model_class": saved.info["model_class"], "data": source,
        "n_files": n_used, "n_files_left_out": len(bad), "left_out": [str(e) for e in bad], "n_windows": int(len(windows)),
        "recorded_below_band": low,  # their top is empty, read as the model fills it: figures not of the model alone
        "n_windows_read": int(n_windows_read), "max_windows": int(max_windows),
        "sample_rate": sr, "window_s": length / sr,
        "mel_mse": float(((a - b) ** 2).mean()), "mel_mae": float(np.abs(a - b).mean()),
        "mel_cosine": float(cos.mean()), "mel_mse_standardized": std_mse,
        "griffin_lim_iters": int(n_iter), "phase": "Griffin-Lim (mel features keep no phase)",
        "pesq": model_audio["pesq"], "stoi": model_audio["stoi"], "si_sdr_db": model_audio["si_sdr"],
        "lsd_db": model_audio["lsd"], "pesq_nan": model_audio.get("pesq_nan"), "stoi_nan": model_audio.get("stoi_nan"),
        "oracle_pesq": oracle_audio["pesq"], "oracle_stoi": oracle_audio["stoi"],
        "oracle_lsd_db": oracle_audio["lsd"],
        "audio": model_audio, "oracle_audio": oracle_audio, "griffin_lim_seconds": round(gl_s, 2),
    }
    k = min(n_examples, len(windows))
    picks = np.unique(np.linspace(0, len(windows) - 1, k).round().astype(int)) if k else np.arange(0)
    examples = [{"label": labels[i], "original": windows[i], "reconstructed": wave_rec[i],
                 "features_only": wave_orc[i], "features": feats[i, 0], "reconstruction": rec[i, 0]} for i in picks]
    return AudioEvaluation(metrics, sr, transform.hop_length, examples, spec.features)


# ----------------------------------------------------------------------------- images


def _image_data(data_cfg, seed: int, root: str | None = None, read: tuple[str, ...] = ("train", "val"), run=None):
    """Train / validation / test images of a ``data`` section (MNIST or a folder; ``root``: another root of the
    same source; ``read``: the sets decoded now, ``run``: the run whose own split an evaluation reads,
    :func:`~latentbridge.data.images.load_image_data`)."""
    from latentbridge.data.images import load_image_data

    return load_image_data(data_cfg.model_copy(update={"root": root}) if root else data_cfg, seed, read, run)


def _fit_image(cfg, out_dir: Path, resume: bool, force: bool) -> FitResult | None:
    from latentbridge.config.workflows import transform_spec
    from latentbridge.data.images import FloatView, unit_batch
    from latentbridge.models.base import fit_latent_scale
    from latentbridge.models.registry import build_model
    from latentbridge.tasks.pipeline import loader_of, training_run

    t0 = time.time()
    data = _image_data(cfg.data, cfg.train.seed)
    train_x, val_x = data.train.images, data.val.images  # uint8, scaled a batch at a time (unit_batch)
    with training_run(cfg, out_dir, resume=resume, force=force, data_files=data.files or None) as run:
        run.held_out = data.held_out_files
        model = build_model(cfg.model, input_shape=tuple(train_x.shape[1:]))
        run.fit(model, loader_of(train_x, cfg.train, True, collate=unit_batch),
                loader_of(val_x, cfg.train, False, collate=unit_batch) if len(val_x) else None)
        if run.outcome is None:
            return None
        fit_latent_scale(model, FloatView(train_x))
        training = run.summary
        c, h, w = train_x.shape[1:]
        mnist = cfg.data.source == "mnist"
        about = cfg.description if mnist or "MNIST" not in (cfg.description or "") else None
        card = f"""# latentbridge image autoencoder: {cfg.model.name}

{about or f'Autoencoder of the images of `{cfg.data.root}`.'}

## Data
- {"MNIST" if mnist else "Images"} from `{cfg.data.root}`: {data.info["split"]}.
- {len(train_x)} training / {len(val_x)} validation / {len(data.test)} test images (validation held out from the
  training split, seeded){f", from a seeded subset of {cfg.data.limit}" if cfg.data.limit else ""}

## Model
- {cfg.model.name}, latent {cfg.model.latent_dim}; input ({c}, {h}, {w}) in [0, 1] (uint8 / 255), sigmoid output;
  loss BCE + MSE (per-pixel means)
- Training: {training['epochs']} epochs, {best_loss_text(training)}, {training['seconds']} s
"""
        run.save(model, transform=transform_spec(cfg), extra={"data": data.info}, card=card)
        return FitResult(run.dir, len(train_x), len(val_x), training["best_val_loss"], training["epochs"],
                         time.time() - t0)


def _evaluate_image(saved, data: str | None) -> ImageEvaluation:
    from latentbridge.data.images import FloatView, every_image

    cfg = saved.workflow
    if data and cfg.data.source == "folder":  # another folder: all of it is the test set (classes optional: they
        # only split the error per class)
        images, info = every_image(cfg.data.model_copy(update={"conditions": None}), data, cfg.train.seed,
                                   reading=(saved.info.get("data") or {}).get("reading"), classes_optional=True)
    else:
        loaded = _image_data(cfg.data, cfg.train.seed, data, read=("test",),  # the test split's images only
                             run=None if data else saved.path)
        images, info = loaded.test, loaded.info
    if not len(images):
        why = ("data.test_fraction is 0" if not cfg.data.test_fraction else
               f"{info.get('n_files', 'too few')} images are too few for a test share of {cfg.data.test_fraction:g}")
        raise DataError(data or cfg.data.root, f"no test images in the run's split ({why}): evaluate on another "
                                               "folder with --data DIR")
    x = FloatView(images.images)  # scaled a batch at a time
    model = saved.model.eval()
    if tuple(x.shape[1:]) != tuple(model.input_shape):
        raise DataError(data or cfg.data.root, f"images of shape {tuple(x.shape[1:])}; the model reads "
                                               f"{tuple(model.input_shape)}")
    out = batched(lambda b: (lambda o: (o.losses["mse"], o.losses["bce"], model.normalizer.inverse(o.reconstruction)))(
        model(b)), x, batch_size=500)
    mse_a, bce_a, rec = (t.numpy() for t in out)
    mnist = cfg.data.source == "mnist"
    metrics = {
        "task": "image_ae", "model": str(saved.path), "model_class": saved.info["model_class"],
        "data": str(data or cfg.data.root), "source": cfg.data.source,
        "split": ("test (offline split of t10k)" if info["offline_split"] else "test (official t10k)") if mnist
        else info["split"] if info["split"].startswith("every image") else f"test: held out of {info['split']}",
        "offline_split": bool(info["offline_split"]),
        "n_images": int(len(x)), "test_mse": float(mse_a.mean()), "test_bce": float(bce_a.mean()),
    }
    labels, names = images.labels, images.class_names or [str(d) for d in range(10)]
    if labels is not None:
        labels = np.asarray(labels, dtype=int)
        key = "test_mse_per_digit" if mnist else "test_mse_per_class"
        metrics[key] = {names[k]: float(mse_a[labels == k].mean()) for k in np.unique(labels)}
        picks = [int(np.flatnonzero(labels == k)[0]) for k in np.unique(labels)][:10]
        titles = [names[labels[i]] for i in picks]
    else:
        picks = list(range(min(10, len(x))))
        titles = [f"#{i}" for i in picks]
    lay = (lambda a: a[:, 0]) if x.shape[1] == 1 else (lambda a: np.moveaxis(a, 1, -1))
    return ImageEvaluation(metrics, lay(x[picks]), lay(rec[picks]), titles)


def evaluate(run_dir: str | Path, data: str | None = None, *, n_iter: int = 32, max_windows: int = 64,
             n_examples: int = 4) -> AudioEvaluation | ImageEvaluation:
    """Evaluation of an ``audio_ae`` or ``image_ae`` model folder (compute only).

    Audio: held-out windows (or the recordings under ``data``), at most ``max_windows`` of them;
    ``n_iter`` Griffin-Lim iterations. Images: the test split of the MNIST root (or ``data``)."""
    from latentbridge.models.hub import load_model

    saved = load_model(run_dir)
    task = saved.workflow.task
    if task == "image_ae":
        return _evaluate_image(saved, data)
    if task == "audio_ae":
        return _evaluate_audio(saved, data, n_iter, max_windows, n_examples)
    raise LatentbridgeError(f"{run_dir}: task {task!r} is not an autoencoding task")
