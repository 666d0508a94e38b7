"""Multimodal latent diffusion (task ``mld``): frozen first stages, then one denoiser over their
concatenated latents with a timestep per modality (:class:`~latentbridge.models.mld.LatentDenoiser`).

``fit`` trains (or, with ``first_stage.run``, copies) the first stages into ``RUN/first_stage``, encodes the training
pairs to std-scaled latents (posterior modes divided by each stage's ``latent_scale``) and trains the denoiser on them;
the run is a model folder whose ``first_stage`` sub-folder holds the stages, so it is self-contained. Data:

- bridge first stages: the multimodal VAE (its vibration expert; its mask expert too unless a
  ``supervised`` stage is given: a spec2mask network with a mask stage, whose bottleneck then holds
  the masks and whose code of each vibration window widens the vibration latent, :data:`SUPERVISED`);
- bridge: the vibration windows and crack masks of the multimodal workflow, with the *same*
  training / validation / held-out damage states as the multimodal model that serves as the first
  stage (read from its folder), labelled windows only; the crack-probability threshold of
  masks sampled from vibration is calibrated on the validation states;
- digits: the audio-visual pairs (FSDD training clips with MNIST training images of the same
  digit); with ``digits.redraw_images`` each clip's image latent is drawn afresh, every time the
  clip is used, among the training images of its digit (the pairing is by digit only).

Single-modality digit stages (a mel autoencoder, an image autoencoder) are trained here on the training clips'
features / the MNIST training images (never on test clips); a multimodal stage is trained by its own workflow with
this config's data sections.

``sample`` draws from a saved run: joint samples, or the other modality given condition files
(a wav → images, a PNG digit → log-mels and wavs; a vibration recording (CSV, .mat or audio) → crack masks, a
mask PNG → vibration). Compute only; :mod:`latentbridge.report.runs.mld` writes the files.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from latentbridge.errors import ConfigError, DataError, LatentbridgeError, ModelFolderError
from latentbridge.outputs import resumable_run
from latentbridge.sampling_args import parse_guidance, resolve_guidance, sampler_eta, unlearnt_null_warning
from latentbridge.tasks.mld_stages import STAGE_DIR, SUPERVISED, Stages, _is_model_folder, load_stages, stage_places
from latentbridge.transforms.postfilter import GlobalVariancePostFilter
from latentbridge.utils import batched, first_time, listed, output_names

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- first stages (tasks.mld_stages)


def _fit_stage_on_arrays(stage_cfg, folder: Path, x_train: np.ndarray, x_val: np.ndarray, note: str,
                         resume: bool, labels: tuple[np.ndarray, np.ndarray] | None = None,
                         recorded: tuple[np.ndarray, object, str] | None = None) -> None:
    """Train a single-modality autoencoder config on arrays (its normaliser and latent scale fitted
    on ``x_train``) into the model folder ``folder``; ``labels`` (train, val) reach models that learn
    them (``model.label_classes``); ``recorded`` (copies (K, N, ...) of ``x_train``, a
    :class:`~latentbridge.config.sections.RecordedConditionsConfig`, ``"recorded"`` or ``"written"``): the
    trained encoder is then aligned with the copies (:func:`latentbridge.training.align.align_encoder`)."""
    from latentbridge.models.base import fit_latent_scale
    from latentbridge.models.registry import build_model
    from latentbridge.tasks.pipeline import loader_of, training_run, window_shift

    n_classes = int(getattr(stage_cfg.model, "label_classes", 0) or 0)
    if n_classes:
        if labels is None:
            raise ConfigError(f"model.label_classes: the {stage_cfg.model.name} stage of {note} has no labels to learn")
        if (top := max(int(y.max(initial=0)) for y in labels)) >= n_classes:
            raise ConfigError(f"model.label_classes: {n_classes} classes, but the labels of {note} reach {top}")
    y_train, y_val = labels if n_classes else (None, None)  # models without a head train on features alone
    go_on = resume and resumable_run(folder)  # a stage killed before its first checkpoint is trained again
    with training_run(stage_cfg, folder, resume=go_on, force=not go_on) as run:
        model = build_model(stage_cfg.model, input_shape=tuple(x_train.shape[1:]))
        if stage_cfg.task == "audio_ae" and stage_cfg.features.standardize:
            model.fit_normalizer(torch.from_numpy(x_train))
        run.fit(model, loader_of(x_train, stage_cfg.train, True, y_train, window_shift(stage_cfg)),
                loader_of(x_val, stage_cfg.train, False, y_val) if len(x_val) else None)
        if run.outcome is None:
            return
        model.eval()
        extra = {"data": {"note": note, "n_train": int(len(x_train)), "n_val": int(len(x_val))}}
        card = (f"# latentbridge first stage: {stage_cfg.model.name}\n\n{note}; {len(x_train)} training / "
                f"{len(x_val)} validation examples, {run.summary['epochs']} epochs, {run.summary['seconds']} s.\n")
        if recorded is not None:
            from latentbridge.data.digits import ALIGNED_WITH
            from latentbridge.training.align import align_encoder

            copies, rc, kind = recorded
            t0 = time.time()
            stats = align_encoder(model, x_train, copies, share=rc.share, epochs=rc.epochs, lr=rc.lr,
                                  batch_size=rc.batch_size, seed=stage_cfg.train.seed)
            extra["data"][kind] = {**rc.model_dump(), **stats, "seconds": round(time.time() - t0, 1)}
            card += (f"\nEncoder aligned with {ALIGNED_WITH[kind]} ({rc.copies} copies of each training example; "
                     f"{rc.epochs} epochs, the decoder unchanged): the copies' latent error fell from "
                     f"{stats['copy_error_before']:.3f} to {stats['copy_error_after']:.3f} of the latents' variance "
                     f"(the examples' own latents moved by {stats['clean_shift']:.3f}).\n")
        fit_latent_scale(model, x_train)
        pf = fit_postfilter(stage_cfg, model, x_train)
        if pf is not None:
            extra["postfilter"] = {**pf.to_dict(), "fitted_on": "the training examples and their reconstructions"}
            card += (f"\nDecoded log-mels pass a global-variance post-filter fitted on the training examples "
                     f"(cepstral deviation ratios {pf.ratio.min():.2f}-{pf.ratio.max():.2f}).\n")
        run.save(model, transform=stage_cfg.transform_spec(), extra=extra, card=card)


def fit_postfilter(stage_cfg, model, x_train) -> GlobalVariancePostFilter | None:
    """The global-variance post-filter of a dB-scaled audio stage, from its training examples and its
    reconstructions of them (:mod:`latentbridge.transforms.postfilter`); None for other stages."""
    if not _takes_postfilter(stage_cfg):
        return None
    with torch.no_grad():
        rec = batched(model.reconstruct, x_train)
    try:
        return GlobalVariancePostFilter.fit(x_train, rec)
    except ValueError as e:  # e.g. a decoder that returns silence: the stage is kept, unfiltered
        log.warning("audio stage saved without a post-filter: %s", e)
        return None


def _takes_postfilter(stage_cfg) -> bool:
    return stage_cfg.task == "audio_ae" and stage_cfg.features.scale == "db"


def prepare_stages(cfg, run_dir: Path, resume: bool = False) -> Stages:
    """Copy ``first_stage.run`` into ``RUN/first_stage``, or train the configured stages there
    (with ``resume``, stages already saved are kept); then load them."""
    target = run_dir / STAGE_DIR
    say = log.info
    if cfg.first_stage.run:
        src = load_stages(cfg.first_stage.run, cfg.modalities)  # checks it before copying
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for key, saved in src.saved.items():
            shutil.copytree(saved.path, target / key, ignore=shutil.ignore_patterns("checkpoints", "logs", ".*"))
        say(f"first stage: copied from {cfg.first_stage.run}")
        return load_stages(target, cfg.modalities)
    for key in cfg.first_stage.stages:
        folder = target / key
        if resume and _is_model_folder(folder):
            continue
        stage_cfg = cfg.stage_config(key)
        if stage_cfg.train.max_epochs > cfg.train.max_epochs:  # (a short trial run trained its stages in full)
            log.warning("first stage %r trains %d epochs (first_stage.stages.%s.train.max_epochs): train.max_epochs = "
                        "%d is the diffusion model's", key, stage_cfg.train.max_epochs, key, cfg.train.max_epochs)
        t0 = time.time()
        _train_stage(cfg, stage_cfg, key, folder, resume)
        say(f"first stage {key!r} ({stage_cfg.model.name}) trained in {time.time() - t0:.0f} s")
    return load_stages(target, cfg.modalities)


def _train_stage(cfg, stage_cfg, key: str, folder: Path, resume: bool) -> None:
    if key in ("multimodal", SUPERVISED):
        from latentbridge.tasks import avdigits, multimodal

        fit = multimodal.fit if stage_cfg.task == "multimodal" else avdigits.fit
        go_on = resume and resumable_run(folder)
        fit(stage_cfg, folder, resume=go_on, force=not go_on)
        return
    from latentbridge.data.digits import images_to_float, training_images
    from latentbridge.data.images import seeded_subset

    limit, seed = stage_cfg.data.limit, cfg.train.seed
    if key == "audio":
        x_t, x_v, y_t, y_v, w_t = audio_stage_arrays(cfg, limit, labels=True, waves=True)
        recorded = None
        if (rc := cfg.first_stage.recorded).copies:
            from latentbridge.config.workflows import transform_spec
            from latentbridge.data.digits import as_recorded_clips, clip_features

            spec = transform_spec(cfg)
            copies = as_recorded_clips(w_t, spec.sample_rate, rc.copies, seed)
            recorded = (clip_features(copies.reshape(-1, copies.shape[-1]), spec).reshape(rc.copies, *x_t.shape), rc,
                        "recorded")
        _fit_stage_on_arrays(stage_cfg, folder, x_t, x_v, f"training clips ({_sources(cfg)[0]}) of the paired digits",
                             resume, labels=(y_t, y_v), recorded=recorded)
    else:
        images, _ = training_images(cfg.digits)
        x = images_to_float(images)[seeded_subset(len(images), limit, seed)]
        perm = np.random.default_rng(seed + 1).permutation(len(x))
        n_val = int(round(cfg.data.val_fraction * len(x)))
        x_t = x[np.sort(perm[n_val:])]
        written = None
        if (wc := cfg.first_stage.written).copies:
            from latentbridge.data.digits import as_written_copies

            written = (as_written_copies(x_t, wc.copies, seed), wc, "written")
        _fit_stage_on_arrays(stage_cfg, folder, x_t, x[np.sort(perm[:n_val])],
                             f"training images ({_sources(cfg)[1]}) of the paired digits", resume, recorded=written)


def _sources(cfg) -> tuple[str, str]:
    """The names of the spoken and the written digits' data (FSDD, MNIST, or a folder of one's own)."""
    from latentbridge.data.digits import digit_sources

    return tuple(s.name for s in digit_sources(cfg.digits))


# ----------------------------------------------------------------------------- data


def audio_stage_arrays(cfg, limit: int | None = None, labels: bool = False,
                       waves: bool = False) -> tuple[np.ndarray, ...]:
    """The log-mels a digits audio stage trains and validates on: each training / validation clip of
    the paired digits once (``limit``: a seeded subset of the training clips); with ``labels``, their
    spoken digits follow: (train, val, train digits, val digits); with ``waves``, then the training
    clips' waveforms."""
    from latentbridge.data.images import seeded_subset

    train, val = digit_pairs(cfg, "train")
    clips_t = np.sort(np.unique(train.clip, return_index=True)[1])
    clips_t = clips_t[seeded_subset(len(clips_t), limit, cfg.train.seed)]
    clips_v = np.sort(np.unique(val.clip, return_index=True)[1])
    out = (train.audio[clips_t], val.audio[clips_v])
    out += (train.label[clips_t], val.label[clips_v]) if labels else ()
    return out + (train.waves[clips_t],) if waves else out


def digit_pairs(cfg, split: str):
    """Training (with validation: whole clips held out) or test audio-visual pairs of ``cfg``."""
    from latentbridge.tasks.avdigits import pairs

    data, _ = pairs(cfg, "train" if split in ("train", "val") else split)
    if split == "test":
        return data
    return data.split_val(cfg.data.val_fraction, cfg.train.seed)


def bridge_splits(stages: Stages, root: str | None = None, sample_rate: float | None = None):
    """(train, val, test) windows of the bridge data with the multimodal first stage's own state split
    (``sample_rate``: of CSVs without a time column)."""
    saved = stages.saved["multimodal"]
    info = saved.info.get("data", {})
    if not info.get("test_tests"):
        raise ModelFolderError(saved.path, "the first stage records no split of damage states")
    from latentbridge.tasks.multimodal import bridge_windows

    try:
        data = bridge_windows(saved, root, sample_rate)
    except DataError as e:  # "the model" was the first stage, which a reused one is not named by
        raise DataError(e.path, f"{e.problem} (the multimodal first stage in {saved.path})") from None
    split = [t for k in ("train_tests", "val_tests", "test_tests") for t in info[k]]
    if missing := [t for t in split if t not in set(data.tests)]:  # (it read "unknown test 'Test_07'; known: ...")
        raise DataError(root or info.get("root"), f"not the data the first stage was trained on: the split of "
                        f"{saved.path} names {listed(missing)}, which this folder does not hold (it holds "
                        f"{listed(data.tests, count=True)})")
    out = tuple(data.subset_tests(info[k]) for k in ("train_tests", "val_tests", "test_tests"))
    if left := len(data.tests) - sum(len(d.tests) for d in out):  # states the first stage never saw
        log.warning("%s: %d of its %d damage states are in none of the first stage's splits (%s was trained on "
                    "other data): they are left out; without first_stage.run the first stages train on all of them",
                    root or info.get("root"), left, len(data.tests), saved.path)
    return out


def latent_statistics(train_set) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-entry (mean, std) of the training latents (redrawn pairs: each part over its own rows)."""
    from latentbridge.training.fit import RedrawnLatents

    parts = [train_set.first, train_set.pool] if isinstance(train_set, RedrawnLatents) else [train_set.tensors["z"]]
    std = torch.cat([p.float().std(0) for p in parts])
    return torch.cat([p.float().mean(0) for p in parts]), torch.nan_to_num(std, nan=1.0)  # one row: no spread


def _latents(stages: Stages, batches: dict) -> torch.Tensor:
    return torch.cat([stages.encode(m, x) for m, x in batches.items()], dim=1).float()


def training_latents(cfg, stages: Stages, root: str | None = None, splits=None):
    """(train dataset, validation tensor or None, data info) of scaled latent pairs (``splits``: the bridge's
    :func:`bridge_splits`, read already)."""
    from latentbridge.training.fit import DictDataset, RedrawnLatents

    if cfg.data.kind == "bridge":
        train, val, test = splits or bridge_splits(stages, root)
        lab_t, lab_v = np.asarray(train.has_mask, bool), np.asarray(val.has_mask, bool)
        if not lab_t.any():
            raise DataError(root, "no labelled training windows (a crack mask per window is needed)")
        z_t = _latents(stages, {"spec": train.waves[lab_t], "mask": train.masks[lab_t]})
        z_v = _latents(stages, {"spec": val.waves[lab_v], "mask": val.masks[lab_v]}) if lab_v.any() else None
        from latentbridge.data.bridge import mask_labels_size

        root = root or stages.saved["multimodal"].info["data"].get("root")
        info = {"root": str(root), "n_train_windows": int(lab_t.sum()), "n_val_windows": int(lab_v.sum()),
                "train_tests": train.tests, "val_tests": val.tests, "test_tests": test.tests,
                "mask_size": mask_labels_size(root)}  # the labels' (predicted masks are also written at it)
        return DictDataset(z=z_t), z_v, info
    from latentbridge.data.digits import training_images

    train, val = digit_pairs(cfg, "train")
    za = stages.encode("audio", train.audio).float()
    if cfg.digits.redraw_images:
        images, labels = training_images(cfg.digits)
        from latentbridge.data.digits import images_to_float

        pool = stages.encode("image", images_to_float(images)).float()
        dataset = RedrawnLatents(za, train.label, pool, labels, cfg.train.seed)
    else:
        dataset = DictDataset(z=torch.cat([za, stages.encode("image", train.image).float()], dim=1))
    z_v = _latents(stages, {"audio": val.audio, "image": val.image}) if len(val) else None
    info = {"n_train_pairs": len(train), "n_val_pairs": len(val), "n_train_clips": int(len(np.unique(train.clip))),
            "redraw_images": bool(cfg.digits.redraw_images), "fsdd_root": cfg.digits.fsdd_root,
            "mnist_root": cfg.digits.mnist_root, **dict(zip(("audio_source", "image_source"), _sources(cfg)))}
    return dataset, z_v, info


# ----------------------------------------------------------------------------- training


@dataclass
class FitResult:
    out_dir: Path
    n_train: int
    n_val: int
    seconds: float
    seconds_first_stage: float
    seconds_diffusion: float
    mask_threshold: float | None = None


def fit(cfg, out_dir: str | Path, *, resume: bool = False, force: bool = False, notify=None) -> FitResult | None:
    from latentbridge.models.registry import build_model
    from latentbridge.tasks.pipeline import training_run
    from latentbridge.training.fit import DictDataset, make_loader

    if cfg.task != "mld":
        raise ConfigError(f"task: latentbridge.tasks.mld trains 'mld', not {cfg.task!r}")
    if cfg.data.kind == "digits":
        digit_pairs(cfg, "test")  # data problems surface before anything is trained
    if cfg.first_stage.run:  # and first-stage ones before the run folder is touched
        places = stage_places(cfg.first_stage.run, cfg.modalities)
        if cfg.data.kind == "bridge" and "multimodal" not in places:
            raise ModelFolderError(cfg.first_stage.run, "bridge first stages need the multimodal model (a "
                                   "multimodal/ folder beside spec/ and mask/): it holds the split of damage states")
        if lacking := sorted(set(cfg.first_stage.stages) - set(places) - {"multimodal"}):  # dropped without a word
            log.warning("first_stage.run %s holds no %s stage: the configured first_stage.stages.%s is not used "
                        "(-o first_stage.stages.%s=null says so)", cfg.first_stage.run, lacking[0], lacking[0],
                        lacking[0])
    # the bridge data read as the reused first stage reads it, before the run folder is written (a refusal left a
    # folder of its config and the copied stages, which a rerun called an unfinished training to --resume)
    splits = bridge_splits(load_stages(cfg.first_stage.run, cfg.modalities), cfg.data.root) \
        if cfg.first_stage.run and cfg.data.kind == "bridge" else None
    t0 = time.time()
    from latentbridge.data.bridge import folder_files  # a resume over a changed folder is refused

    files = folder_files(cfg.data.root) if cfg.data.kind == "bridge" and cfg.data.root else None
    with training_run(cfg, out_dir, resume=resume, force=force, data_files=files) as run:
        # a resumed run keeps the stages an earlier session trained: their time counts (it was this session's only)
        kept = _trained_seconds(run.dir / STAGE_DIR, cfg) if resume and not cfg.first_stage.run else 0.0
        stages = prepare_stages(cfg, run.dir, resume)
        t_stage = time.time() - t0 + kept
        train_set, z_val, info = training_latents(cfg, stages, cfg.data.root if cfg.data.kind == "bridge" else None,
                                                  splits)
        model = build_model(cfg.model, **cfg.model_data(stages.latent_dims))
        if cfg.diffusion.standardise:
            model.fit_statistics(*latent_statistics(train_set))
        val = make_loader(DictDataset(z=z_val), cfg.train, False) if z_val is not None and len(z_val) else None
        t_fit = time.time()
        run.fit(model, make_loader(train_set, cfg.train, True), val, beta=False)
        if run.outcome is None:
            return None
        earlier = max(0.0, run.summary["seconds"] - (time.time() - t_fit))  # diffusion sessions before this one
        model.eval()
        extra = {"data": info, "first_stage": {"folder": STAGE_DIR, "keys": stages.keys, "widened": stages.widened,
                                               "latent_scales": {m: stages.scale(m) for m in cfg.modalities},
                                               "seconds": round(t_stage, 1), "reused": cfg.first_stage.run}}
        threshold = None
        if cfg.data.kind == "bridge":
            from latentbridge.tasks.mld_eval import calibrate_bridge_threshold

            extra["mask_threshold"] = calibrate_bridge_threshold(model, stages, cfg, info)
            threshold = extra["mask_threshold"]["threshold"]
        spec = _transform(cfg, stages)
        summary = run.summary
        run.save(model, transform=spec, extra=extra, card=_card(cfg, info, summary, stages, t_stage))
        return FitResult(run.dir, info.get("n_train_windows", info.get("n_train_pairs")),
                         info.get("n_val_windows", info.get("n_val_pairs")), time.time() - t0 + kept + earlier,
                         round(t_stage, 1), summary["seconds"], threshold)


def _trained_seconds(folder: Path, cfg) -> float:
    """Seconds the first stages saved in ``folder`` took to train (and align), as their model folders record."""
    total = 0.0
    for key in (k for k in cfg.first_stage.stages if _is_model_folder(folder / k)):
        info = json.loads((folder / key / "config.json").read_text(encoding="utf-8"))
        parts = [info.get("training") or {}, *(info.get("data") or {}).values()]  # training, then alignments
        total += sum(float(p.get("seconds") or 0.0) for p in parts if isinstance(p, dict))
    return total


def _transform(cfg, stages: Stages):
    if cfg.data.kind == "bridge":
        return stages.saved["multimodal"].transform
    return cfg.transform_spec()


def _card(cfg, info: dict, training: dict, stages: Stages, t_stage: float) -> str:
    stage_lines = "\n".join(
        f"- {m}: {stages.saved[k].info['model_class']} (`{STAGE_DIR}/{k}`), latent {d}, scale {stages.scale(m):.4g}"
        + (f" (its own latent, std-scaled, then the code of the {stages.saved[w].info['model_class']} network in "
           f"`{STAGE_DIR}/{w}`: the diffusion conditions on both)" if (w := stages.widened.get(m)) else "")
        for (m, k), d in zip(stages.keys.items(), stages.latent_dims))
    data = (f"bridge windows of `{info['root']}`: {info['n_train_windows']} labelled training / "
            f"{info['n_val_windows']} validation windows; held-out states: {', '.join(info['test_tests'])}"
            if cfg.data.kind == "bridge" else
            f"{info['n_train_pairs']} training / {info['n_val_pairs']} validation audio-visual pairs "
            f"(spoken: `{info['fsdd_root']}`, {info['audio_source']}; written: `{info['mnist_root']}`, "
            f"{info['image_source']})"
            + (", image drawn afresh per use among its digit's training images" if info["redraw_images"] else ""))
    d = cfg.diffusion
    share = d.condition_share if d.conditional else 0.0  # the model's (the config's said: it trained with 0)
    masking = (f"multi-time masking: {share:g} of the samples keep a modality clean (null for {d.label_dropout:g} of "
               "those)" if share else "joint samples alone (diffusion.conditional false): no conditional sampling")
    return f"""# latentbridge multimodal latent diffusion ({cfg.data.kind})

{cfg.description or 'One denoiser over the latents of frozen first stages.'}

## First stages (frozen; {'reused from ' + str(cfg.first_stage.run) if cfg.first_stage.run else f'trained in {t_stage:.0f} s'})
{stage_lines}

## Data
- {data}

## Diffusion
- {cfg.model.name} {cfg.model.model_dump(exclude={'name'})} over {sum(stages.latent_dims)} latent entries
  ({', '.join(cfg.modalities)}); {d.schedule} schedule, {d.train_timesteps} timesteps, predicts
  {'the noise' if d.prediction == 'epsilon' else 'the velocity'}; {masking}
- Training: {training['epochs']} epochs, {training['seconds']} s (EMA weights saved)

## Use
`latentbridge sample RUN --condition FILE --num-samples 8 --out DIR`; `latentbridge evaluate RUN --out DIR`.
"""


# ----------------------------------------------------------------------------- sampling


def load_run(run_dir):
    """(saved MLD model, its first stages) of a run folder."""
    from latentbridge.models.hub import load_model

    saved = load_model(run_dir)
    if saved.workflow.task != "mld":
        raise LatentbridgeError(f"{run_dir}: a {saved.workflow.task!r} model, not a multimodal latent diffusion model")
    folder = Path(run_dir) / saved.info.get("first_stage", {}).get("folder", STAGE_DIR)
    stages = load_stages(folder, saved.workflow.modalities)
    trained = dict(zip(saved.model.modalities, saved.model.latent_dims))
    found = dict(zip(stages.views, stages.latent_dims))
    if trained != found:  # a stage folder deleted or replaced: the diffusion model was trained over others
        raise ModelFolderError(folder, f"first stages of latent sizes {found}, the diffusion model's {trained}: a stage "
                                       "folder is missing or not this run's")
    if not saved.workflow.sampling.postfilter:
        stages.postfilters.clear()
    for m, k in stages.keys.items() if saved.workflow.sampling.postfilter else ():
        if m not in stages.postfilters and _takes_postfilter(stages.saved[k].workflow):
            log.warning("%s: the %r first stage has no post-filter (trained by an earlier version): its "
                            "decoded log-mels are used as they are", run_dir, m)
    return saved, stages


def generate(model, n: int, condition: dict | None = None, *, settings: dict, batch_size: int = 1000) -> dict:
    """Scaled latents of ``n`` samples (``condition``: scaled latents (n, d) per modality), in
    batches, each seeded in turn by one generator seeded with ``settings['seed']``."""
    if condition and (said := _unlearnt_states(model, settings["guidance"])) and first_time(("mld states", id(model))):
        log.warning("%s", said)
    g = torch.Generator().manual_seed(int(settings["seed"]))
    outs = []
    for i in range(0, n, batch_size):
        j = min(n, i + batch_size)
        cond = {m: c[i:j] for m, c in (condition or {}).items()}
        outs.append(model.generate(j - i, cond, guidance=settings["guidance"], scheduler=settings["scheduler"],
                                   steps=settings["steps"], eta=settings["eta"], generator=g))
    return {m: torch.cat([o[m] for o in outs]) for m in model.modalities}


def _unlearnt_states(model, guidance) -> str | None:
    """What a conditional sample draws from a model that never learnt to hold a modality clean (condition share 0:
    trained on joint samples alone) or to null it (null share 0: guidance other than 1 mixes in the untrained null)."""
    if not model.condition_share:
        return ("the model was trained on joint samples alone (diffusion.conditional false): it never learnt to hold a "
                "modality clean, and its samples follow no condition")
    strengths = guidance.values() if isinstance(guidance, Mapping) else [guidance]
    return next((said for g in strengths if (said := unlearnt_null_warning(g, model.null_share))), None)


def sampler_settings(cfg, **given) -> dict:
    """The run's sampler settings with the given ones (None: the run's) over them. ``guidance``: a
    number, or one per generated modality (a mapping, or text such as ``"audio=8,image=4"``); a
    modality the given mapping leaves out keeps the run's strength for it."""
    s = cfg.sampling
    out = {k: (given.get(k) if given.get(k) is not None else getattr(s, k))
           for k in ("scheduler", "steps", "guidance", "seed", "eta")}
    out["eta"] = sampler_eta(out["scheduler"], given.get("eta"), s.eta)
    if out["steps"] > cfg.diffusion.train_timesteps or out["steps"] < 1:
        raise LatentbridgeError(f"--steps must be in 1..{cfg.diffusion.train_timesteps}, got {out['steps']}")
    out["guidance"] = resolve_guidance(out["guidance"], s.guidance, cfg.modalities)
    return out


@dataclass
class MLDSamples:
    kind: str
    settings: dict
    groups: list = field(default_factory=list)
    """One dict per condition file (or one for joint samples): ``name``, ``given`` (the condition's
    modality or None) and the generated data of each other modality (numpy), plus for the bridge
    ``mask_prob`` / ``mask`` (mean over samples and windows) and for audio ``waves``."""
    sample_rate: float = 0.0
    threshold: float | None = None
    seconds: float = 0.0
    names: set = field(default_factory=lambda: {"settings.json"})  # the groups' folder names, and the folder's own file


#: samples decoded at a time where ``--batch-size`` is not given (:func:`~latentbridge.tasks.mld_eval.decode_outputs`)
SAMPLE_CHUNK = 256


def sample(run_dir, n: int, conditions: list[str] | None = None, *, progress: bool = False,
           sample_rate: float | None = None, **given) -> MLDSamples:
    """``n`` samples per condition file (``sample_rate``: of CSVs without a time column), or ``n`` joint samples."""
    from latentbridge.errors import available_memory
    from latentbridge.tasks.mld_eval import decode_outputs, decoded_bytes, read_condition, read_conditions
    from latentbridge.io.masks import upsample_mask

    if n < 1:
        raise LatentbridgeError(f"--num-samples must be at least 1, got {n}")
    saved, stages = load_run(run_dir)
    cfg, model = saved.workflow, saved.model.eval()
    settings = sampler_settings(cfg, **{k: v for k, v in given.items() if k != "batch_size"})  # (decoding's)
    t0 = time.perf_counter()
    threshold = (saved.info.get("mask_threshold") or {}).get("threshold")
    labels_size = (saved.info.get("data") or {}).get("mask_size")  # the masks are also written at the labels' size
    out = MLDSamples(cfg.data.kind, {**settings, "n_samples": int(n)}, threshold=threshold)
    read = read_conditions(conditions or [], lambda p: read_condition(saved, stages, p, sample_rate))
    names = output_names(conditions, out.names) if conditions else ["joint"]  # Test_01_rec, Test_02_rec
    row_bytes: dict = {}  # one decoded sample's bytes, by the modality given
    for path, name in zip(conditions or [None], names):
        m, x = (None, None) if path is None else read[path]
        z = None if m is None else stages.encode(m, x)  # (W, d): one row per window / clip / image
        k = 1 if z is None else len(z)
        if m not in row_bytes:  # (one sample decoded per kind of condition, not per file)
            row_bytes[m] = decoded_bytes(saved, stages, m)
        need, free = n * k * row_bytes[m], available_memory()
        if free is not None and need > 0.8 * free:  # (100,000 samples ran for minutes, then out of memory)
            raise LatentbridgeError(f"--num-samples {n}{f' for each of {k} windows' if k > 1 else ''}: their decoded "
                                    f"data would take about {need / 2**30:.3g} GiB, more than the memory available "
                                    f"({free / 2**30:.3g} GiB); draw fewer (other --seed values draw others)")
        cond = None if z is None else {m: z.repeat_interleave(n, dim=0)}
        lat = generate(model, n * k, cond, settings=settings)
        group = {"name": name, "given": m, "source": path and str(path),
                 **decode_outputs(saved, stages, lat, skip=m, threshold=threshold, windows=k,
                                  chunk=given.get("batch_size") or SAMPLE_CHUNK)}
        if m == "image":  # a written digit as the model read it (framed as MNIST's)
            group["condition_image"] = np.asarray(x)[0, 0]
        if "mask_prob" in group and (size := labels_size) and list(size) != list(group["mask_prob"].shape):
            group["mask_prob_full"], group["mask_full"] = upsample_mask(group["mask_prob"], size, threshold or 0.5)
        out.groups.append(group)
    made, strengths = {mod for g in out.groups for mod in cfg.modalities if mod != g["given"]}, out.settings["guidance"]
    if isinstance(strengths, dict):  # a strength of a modality only given: said as applied, in settings.json too
        named = parse_guidance(given.get("guidance"), cfg.modalities)  # (the run's own strengths fill the others)
        if unused := sorted(set(named) - made if isinstance(named, dict) else ()):
            log.warning("--guidance for %s not used: %s the condition here, not generated", " and ".join(unused),
                        "it is" if len(unused) == 1 else "they are")
        out.settings["guidance"] = {k: v for k, v in strengths.items() if k in made}
    if any("mask_full" in g for g in out.groups):
        out.settings["mask_full_size"] = [int(v) for v in labels_size]  # (height, width) of mask_full.png
    out.seconds = time.perf_counter() - t0
    out.sample_rate = float(saved.transform.sample_rate)
    return out
