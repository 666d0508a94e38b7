"""Evaluation of multimodal latent diffusion runs, and their conditions and outputs in data space
(compute only; :mod:`latentbridge.report.runs.mld` writes the files).

Bridge (:func:`evaluate_bridge`), on the held-out damage states of the first stage's split — the
states every bridge model of that data is evaluated on: crack masks sampled from vibration (the
mean crack probability of ``evaluate.samples_per_condition`` samples per window, thresholded at
the probability calibrated on the validation states) scored with the keys of the multimodal
workflow (``mask_iou``, ``mask_damaged_iou``, ``mask_dice``, ``mask_healthy_fpr``,
``crack_localisation_error_m``, ...); vibration sampled from the true masks, through the first
stage's decoder (ISTFT of the decoded magnitude and phase), compared with the real windows by the
distance of their mean power spectra (``psd_distance_db``, beside the first stage's own
reconstructions and as many real training windows); joint samples against the real latents
(Fréchet distance, a 2-D map); an interpolation between the least and the most damaged state.

Digits (:func:`evaluate_digits`), on the audio-visual test pairs: images from spoken digits and
log-mels from images, measured as every digit generator is (:mod:`latentbridge.tasks.crossmodal`),
plus the diversity of several samples for one input, joint samples (do the two classifiers agree)
and the first stages' own reconstructions (the ceiling of what diffusion in their latents reaches).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from latentbridge.errors import DataError, ModelFolderError, named_problems
from latentbridge.io.audio import AUDIO_EXTENSIONS, RECORDING_EXTENSIONS
from latentbridge.io.images import IMAGE_EXTENSIONS
from latentbridge.tasks.mld import bridge_splits, generate, load_run, sampler_settings
from latentbridge.utils import counted

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- conditions and outputs


def _data_shape(stages, m: str) -> tuple[int, ...]:
    """The data shape a stage decodes to (from a zero latent)."""
    return tuple(stages.decode(m, torch.zeros(1, stages.latent_dims[list(stages.views).index(m)])).shape[1:])


def read_conditions(paths, read) -> dict:
    """``read(path)`` of every path (each a :func:`condition_file`), keyed by path; every unusable one named in one
    error, before any sampling (the first stopped the command)."""
    done, bad = {}, []
    for path in paths:
        try:
            done[path] = read(condition_file(path))
        except DataError as e:
            bad.append(e)
    if len(bad) == 1:
        raise bad[0]
    if bad:
        raise DataError("--condition", f"{len(bad)} of {len(paths)} condition files cannot be used: "
                        + named_problems(bad))
    return done


def condition_file(path) -> Path:
    """``path`` of a ``--condition`` checked to be a file."""
    p = Path(path)
    if not str(path).strip():
        raise DataError(p, "an empty --condition (give a file)")
    if p.is_dir():
        raise DataError(p, "a folder, not a condition file (give one recording, mask, audio or image file)")
    if not p.is_file():
        raise DataError(p, "no such condition file")
    return p


def digit_condition(p: Path, transform, image_hw: tuple[int, int]) -> tuple[str, np.ndarray]:
    """(modality, data) of a digits condition file: a written digit (an image, framed as MNIST's: (1, 1, H, W)) or
    a spoken one (an audio file, prepared as the training clips are)."""
    suffix = p.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        from latentbridge.data.digits import read_digit_image

        return "image", read_digit_image(p, *image_hw)[None, None]
    if suffix in AUDIO_EXTENSIONS:
        from latentbridge.data.digits import spoken_digit_features

        return "audio", spoken_digit_features(p, transform)
    raise DataError(p, f"a digits condition is a spoken digit ({', '.join(AUDIO_EXTENSIONS)}) or a written one "
                       f"({', '.join(IMAGE_EXTENSIONS)})")


def read_condition(saved, stages, p: Path, sample_rate: float | None = None) -> tuple[str, np.ndarray]:
    """(modality, data) of a condition file: a spoken or written digit for digits (:func:`digit_condition`); a
    vibration recording (CSV: its windows; ``sample_rate``: when it has no time column) or a crack mask (PNG) for
    the bridge."""
    cfg, suffix = saved.workflow, p.suffix.lower()
    if cfg.data.kind == "digits":
        return digit_condition(p, saved.transform, _data_shape(stages, "image")[1:])
    vib = stages.workflow("multimodal").vibration
    if suffix in RECORDING_EXTENSIONS:
        from latentbridge.tasks.multimodal import channel_names_of, say_level, windows_of_recording

        first = stages.saved["multimodal"]
        windows = windows_of_recording(vib, saved.transform, p, channel_names_of(first), sample_rate)[0]
        say_level(first, windows, p)
        return "spec", windows
    if suffix == ".png":
        from latentbridge.io.masks import read_mask_png

        mask = read_mask_png(p, vib.mask_height, vib.mask_width, vib.mask_threshold, vib.mask_coverage)
        if (share := float(mask.mean())) > 0.5:  # as the bridge's data reader says of a folder's masks
            log.warning("%s: the mask is %.0f%% crack: inverted (crack drawn dark on white)? A crack is what is "
                        "brighter than vibration.mask_threshold", p, 100 * share)
        return "mask", mask[None, None].astype(np.float32)
    raise DataError(p, "a bridge condition is a vibration recording (.csv, .mat or an audio file: .wav, .flac, ...) or "
                       "a crack mask (.png)")


def log_magnitude(waves: np.ndarray, spec) -> np.ndarray:
    """(N, C, T) windows → (N, C, F, frames) natural-log STFT magnitudes (the vibration transform's STFT)."""
    from latentbridge.transforms.audio import STFT

    with torch.no_grad():
        s = STFT(n_fft=spec.n_fft, hop_length=spec.hop_length)(torch.from_numpy(np.ascontiguousarray(waves)))
    return torch.log(s.abs() + 1e-6).numpy()


def decode_outputs(saved, stages, lat: dict, skip: str | None, threshold: float | None, windows: int = 1,
                   chunk: int | None = None) -> dict:
    """Data of every modality but ``skip`` from scaled latents: digits ``image`` (N, H, W), ``audio``
    (N, F, T) dB log-mel and ``waves`` (Griffin-Lim); bridge ``mask_samples`` (n, H, W) crack
    probabilities of the first condition's samples, the mean ``mask_prob`` of all and ``mask`` (above
    ``threshold``), ``wave`` (N, C, T) and ``logmag``. Rows are ``windows`` conditions x their samples, decoded
    ``chunk`` at a time (the decoders' and Griffin-Lim's buffers held for a chunk: ``sample --batch-size``; all 4,000
    samples were decoded at once, whatever it said)."""
    from latentbridge.tasks.crossmodal import to_waves

    cfg, out = saved.workflow, {}
    for m, z in lat.items():
        if m == skip:
            continue
        if m == "mask":
            out["mask_samples"], out["mask_prob"] = _mask_mean(stages, z, len(z) // max(1, int(windows)))
            out["mask"] = (out["mask_prob"] > (0.5 if threshold is None else threshold)).astype(np.float32)
            continue
        parts, step = [], max(1, int(chunk or len(z)))
        phases = torch.Generator().manual_seed(0)  # Griffin-Lim's, drawn on through the chunks: whatever --batch-size
        for i in range(0, len(z), step):
            x = stages.decode(m, z[i:i + step]).numpy()
            if m == "image":
                parts.append({"image": np.clip(x[:, 0], 0.0, 1.0)})
            elif m == "audio":
                parts.append({"audio": x[:, 0],
                              "waves": to_waves(saved.transform, x, cfg.evaluate.gl_iterations, phases)})
            else:
                parts.append({"wave": x, "logmag": log_magnitude(x, saved.transform)})
        out.update({k: np.concatenate([p[k] for p in parts]) if len(parts) > 1 else parts[0][k] for k in parts[0]})
    out["windows"] = int(windows)
    return out


def decoded_bytes(saved, stages, skip: str | None) -> int:
    """The bytes one sample's decoded data of every modality but ``skip`` holds (a bridge's masks: their mean and the
    first condition's samples, not counted), measured on one sample decoded from the latents' origin."""
    model = saved.model
    one = decode_outputs(saved, stages, {m: torch.zeros(1, d) for m, d in zip(model.modalities, model.latent_dims)},
                         skip=skip, threshold=None)
    return sum(a.nbytes for k, a in one.items() if isinstance(a, np.ndarray) and not k.startswith("mask"))


def _mask_mean(stages, z: torch.Tensor, first: int, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """(the first ``first`` masks decoded from latents ``z``, the mean of all), ``chunk`` at a time: a 2-h recording's
    1,439 windows x 128 samples were all held at once (5.3 GB)."""
    total, kept = None, []
    for i in range(0, len(z), chunk):
        part = stages.decode("mask", z[i:i + chunk]).numpy()[:, 0]
        total = part.sum(0, dtype=np.float64) + (0.0 if total is None else total)
        if (have := sum(map(len, kept))) < first:
            kept.append(part[:first - have].copy())
    return np.concatenate(kept), (total / len(z)).astype(np.float32)


def mask_probabilities(model, stages, waves: np.ndarray, k: int, settings: dict) -> np.ndarray:
    """(N, 1, H, W) mean crack probability of ``k`` masks sampled from each vibration window."""
    z = stages.encode("spec", waves)
    lat = generate(model, len(z) * k, {"spec": z.repeat_interleave(k, dim=0)}, settings=settings)
    prob = stages.decode("mask", lat["mask"]).numpy()
    return prob.reshape(len(z), k, *prob.shape[1:]).mean(axis=1)


def calibrate_bridge_threshold(model, stages, cfg, info: dict) -> dict:
    """The crack-probability threshold of sampled masks with the best pooled IoU on the labelled
    validation windows (:func:`latentbridge.tasks.multimodal.best_threshold`)."""
    from latentbridge.tasks.multimodal import best_threshold

    _, val, _ = bridge_splits(stages, info.get("root"))
    lab = np.asarray(val.has_mask, dtype=bool)
    if not lab.any():
        return {"threshold": 0.5, "calibrated_on": "default (no labelled validation windows)"}
    prob = mask_probabilities(model, stages, val.waves[lab], cfg.evaluate.samples_per_condition, sampler_settings(cfg))
    return best_threshold(prob, val.masks[lab])


# ----------------------------------------------------------------------------- bridge


@dataclass
class MLDBridgeEvaluation:
    metrics: dict
    threshold: float
    sample_rate: float
    examples: dict = field(default_factory=dict)
    interpolation: dict | None = None
    latents: dict = field(default_factory=dict)  # "real" / "generated" (N, D) scaled latents
    embedding: str = "umap"  # how the report maps them to 2-D
    kind: str = "bridge"


def evaluate_bridge(saved, stages, data_root: str | None = None, sample_rate: float | None = None
                    ) -> MLDBridgeEvaluation:
    from latentbridge.data.bridge import full_size_examples, full_size_scores
    from latentbridge.metrics.generative import frechet_distance
    from latentbridge.metrics.signal import psd_distance
    from latentbridge.metrics.segmentation import mask_metrics
    from latentbridge.tasks.multimodal import (bridge_windows, say_training_folder, span_of,
                                              threshold_calibration, other_folder, window_title)

    cfg, model = saved.workflow, saved.model.eval()
    stage_cfg = stages.workflow("multimodal")
    settings = sampler_settings(cfg)
    k = cfg.evaluate.samples_per_condition
    own = saved.info["data"].get("root")  # the run's data (a reused first stage's may be another folder's copy)
    if data_root is None:  # the held-out states of the first stage's split
        train, _, test = bridge_splits(stages, own)
        from latentbridge.data.bridge import folder_files
        from latentbridge.data.run_record import held_out_changed

        scope = f"held-out damage states {', '.join(test.tests)} of {own}" + held_out_changed(
            saved.path, folder_files(own))
    else:  # every state of another folder; the real references stay the first stage's training states
        trained_here = say_training_folder(stages.saved["multimodal"], data_root)
        test = bridge_windows(stages.saved["multimodal"], data_root, sample_rate)
        scope = f"every state of {data_root}{trained_here}"
        try:
            train = bridge_splits(stages, own)[0]
        except (DataError, ModelFolderError) as e:
            log.warning("the first stage's training data is not readable (%s): no real-data references", e)
            train = None
    lab = np.asarray(test.has_mask, dtype=bool)
    if not lab.any():  # said "no labelled windows to evaluate", with nothing the user could do
        found = counted(len(np.unique(test.test_index)), "test") + ("" if test.sources is None else
                                                                   f", {counted(len(set(test.sources)), 'recording')}")
        raise DataError(data_root or saved.info["data"]["root"], f"no crack masks to compare with ({found}, none with "
                        "a mask in Labels/): evaluate scores the masks the run draws against the folder's; "
                        f"`latentbridge sample {saved.path} --condition FILE.csv` draws masks for a recording")
    threshold = float((saved.info.get("mask_threshold") or {}).get("threshold", 0.5))
    waves, masks = test.waves[lab], test.masks[lab]
    prob = mask_probabilities(model, stages, waves, k, settings)
    first = stages.saved["multimodal"]
    span = span_of(cfg if cfg.vibration.span_m else stage_cfg, data_root or own,  # the run's span, else its stage's
                   (first.info.get("data") or {}).get("span_m"), other=other_folder(first, data_root))
    metrics: dict = {"model": "mld", "first_stage": saved.info["first_stage"]["keys"],
                     "scope": scope, "n_windows": int(len(test)),
                     "n_labelled_windows": int(lab.sum()), "samples_per_window": k, "sampler": settings,
                     **mask_metrics(prob, masks, threshold, span),
                     **full_size_scores(test, prob, lab, data_root or own, stage_cfg.vibration, threshold)}
    z_mask, z_spec = stages.encode("mask", masks), stages.encode("spec", waves)
    g = generate(model, len(z_mask), {"mask": z_mask}, settings=settings)
    gen_waves = stages.decode("spec", g["spec"]).numpy()
    recon = stages.decode("spec", z_spec).numpy()
    spec = saved.transform
    psd = lambda a: psd_distance(a, waves, n_fft=spec.n_fft, hop=spec.hop_length)  # noqa: E731
    joint = generate(model, len(waves), None, settings={**settings, "seed": settings["seed"] + 1})
    real_lat = torch.cat([z_spec, z_mask], dim=1).numpy()
    gen_lat = torch.cat([joint["spec"], joint["mask"]], dim=1).numpy()
    metrics.update({
        "psd_distance_db": psd(gen_waves), "psd_distance_db_joint": psd(stages.decode("spec", joint["spec"]).numpy()),
        "psd_distance_db_first_stage": psd(recon), "fd_latent_joint": frechet_distance(gen_lat, real_lat),
        "psd_distance_db_real_train": None, "fd_latent_real_train": None})
    if train is not None:  # as many real training windows, for scale
        rng = np.random.default_rng(0)
        lab_train = np.flatnonzero(np.asarray(train.has_mask, dtype=bool))
        real_ref = train.waves[np.sort(rng.permutation(lab_train)[:len(waves)])]
        z_train = torch.cat([stages.encode("spec", train.waves[lab_train]),
                             stages.encode("mask", train.masks[lab_train])], dim=1).numpy()
        metrics.update({"psd_distance_db_real_train": psd(real_ref), "fd_latent_real_train": frechet_distance(
            z_train[np.sort(rng.permutation(len(z_train))[:len(real_lat)])], real_lat)})
    calibrated_on, note = threshold_calibration(saved.info.get("mask_threshold"))
    metrics.update({
        "mask_threshold": threshold, "crack_span_m": span,
        "mask_threshold_calibrated_on": calibrated_on, **({"mask_threshold_note": note} if note else {}),
    })
    idx = np.sort(np.random.default_rng(0).choice(len(waves), size=min(4, len(waves)), replace=False))
    test_lab = np.flatnonzero(lab)
    examples = {"titles": [window_title(test, test_lab[i]) for i in idx],
                "masks": masks[idx, 0], "mask_prob": prob[idx, 0],
                **full_size_examples(test, test_lab[idx], prob[idx], data_root or own, stage_cfg.vibration),
                "logmag": log_magnitude(waves[idx], spec)[:, 0],
                "logmag_gen": log_magnitude(gen_waves[idx], spec)[:, 0],
                "wave": waves[idx[0]], "wave_gen": gen_waves[idx[0]], "n_fft": spec.n_fft, "hop_length": spec.hop_length}
    first = generate(model, k, {"spec": z_spec[idx[:1]].repeat(k, 1)}, settings=settings)
    examples["mask_samples"] = stages.decode("mask", first["mask"]).numpy()[:, 0]
    ext = np.asarray(test.extent, dtype=float)[lab]
    a, b = int(np.nanargmin(ext)), int(np.nanargmax(ext))
    interp = _interpolation(model, stages, z_spec[a], z_spec[b], settings)
    name = lambda i: test.tests[test.test_index[test_lab[i]]]  # noqa: E731
    interp.update({"from": f"{name(a)} (extent {ext[a]:.3f})", "to": f"{name(b)} (extent {ext[b]:.3f})"})
    return MLDBridgeEvaluation(metrics, threshold, float(spec.sample_rate), examples, interp,
                               {"real": real_lat, "generated": gen_lat}, cfg.evaluate.embedding)


def _interpolation(model, stages, za: torch.Tensor, zb: torch.Tensor, settings: dict, steps: int = 7) -> dict:
    """Masks sampled, with the same noise, from conditions on a straight line between two vibration latents."""
    alphas = torch.linspace(0, 1, steps)
    masks = []
    for t in alphas:
        z = ((1 - t) * za + t * zb)[None]
        masks.append(stages.decode("mask", generate(model, 1, {"spec": z}, settings=settings)["mask"]).numpy()[0, 0])
    return {"alphas": alphas.numpy(), "masks": np.stack(masks)}


# ----------------------------------------------------------------------------- digits


@dataclass
class MLDDigitsEvaluation:
    metrics: dict
    sample_rate: int
    examples: dict = field(default_factory=dict)
    """``labels`` (10,), ``inputs_image`` / ``inputs_audio`` of one test pair per digit, ``images``
    (10, k, H, W) sampled from their spoken digits, ``audio`` (10, k, F, T) from their images,
    ``waves`` (10, samples) of the first, ``joint_images`` / ``joint_audio``."""
    kind: str = "digits"
    features: object = None  # the spectrogram parameters (SpectrogramParams): the plots' frequencies, times, unit


def held_out_digit_pairs(cfg, max_pairs: int | None = None):
    """(the test pairs of a digits run, or a seeded (seed 0) subset of ``max_pairs`` of them; what the pairs' builder
    says of them: ``mnist_offline_split`` ...)."""
    from latentbridge.tasks.avdigits import pairs

    test, info = pairs(cfg, "test")
    if max_pairs and max_pairs < len(test):
        keep = np.zeros(len(test), dtype=bool)
        keep[np.random.default_rng(0).permutation(len(test))[:max_pairs]] = True
        test = test.subset(keep)
    return test, info


def evaluate_digits(saved, stages) -> MLDDigitsEvaluation:
    from latentbridge.metrics.classification import coherence
    from latentbridge.metrics.generative import diversity, frechet_distance
    from latentbridge.tasks.crossmodal import digit_judges, generation_metrics, reference_metrics, to_waves, wav_subset

    cfg, model = saved.workflow, saved.model.eval()
    e, settings = cfg.evaluate, sampler_settings(cfg)
    test, info = held_out_digit_pairs(cfg, e.max_pairs)
    z_a, z_i = stages.encode("audio", test.audio), stages.encode("image", test.image)
    images = stages.decode("image", generate(model, len(test), {"audio": z_a}, settings=settings)["image"]).numpy()
    images = np.clip(images, 0.0, 1.0)
    audio = stages.decode("audio", generate(model, len(test), {"image": z_i}, settings=settings)["audio"]).numpy()
    judges = digit_judges(cfg, saved.transform)
    sub = wav_subset(len(test), e.max_wav_pairs)
    metrics: dict = {"model": "mld", "first_stage": saved.info["first_stage"]["keys"], "n_test_pairs": len(test),
                     "mnist_offline_split": info["mnist_offline_split"],
                     "sampler": settings, "n_image_to_wav": int(len(sub)),
                     **generation_metrics(judges, test, images, audio, sub, "", e.gl_iterations),
                     **reference_metrics(judges, test, sub, e.gl_iterations)}
    # several samples for one input: the diversity a deterministic route cannot have
    rows = np.sort(np.random.default_rng(1).permutation(len(test))[:min(e.diversity_inputs, len(test))])
    k, groups = e.samples_per_condition, np.repeat(np.arange(len(rows)), e.samples_per_condition)
    s = {**settings, "seed": settings["seed"] + 1}
    many_i = stages.decode("image", generate(model, len(rows) * k, {"audio": z_a[rows].repeat_interleave(k, 0)},
                                             settings=s)["image"]).clamp(0, 1).numpy()
    many_a = stages.decode("audio", generate(model, len(rows) * k, {"image": z_i[rows].repeat_interleave(k, 0)},
                                             settings=s)["audio"]).numpy()
    joint = generate(model, len(test), None, settings={**settings, "seed": settings["seed"] + 2})
    j_img = stages.decode("image", joint["image"]).clamp(0, 1).numpy()
    j_aud = stages.decode("audio", joint["audio"]).numpy()
    rec_i = stages.decode("image", z_i).clamp(0, 1).numpy()
    rec_a = stages.decode("audio", z_a).numpy()
    metrics.update({
        "diversity_image_per_input": diversity(many_i, groups), "diversity_audio_per_input": diversity(many_a, groups),
        "joint_agreement": float(np.mean(judges.mnist.predict(j_img) == judges.fsdd.predict(j_aud))),
        "fd_image_joint": frechet_distance(judges.mnist.embed(j_img), judges.mnist.embed(test.image)),
        "first_stage_image_accuracy": coherence(judges.mnist, rec_i, test.label)["accuracy"],
        "first_stage_audio_accuracy": coherence(judges.fsdd, rec_a, test.label)["accuracy"],
        # the waveform judge on Griffin-Lim of the audio stage's own reconstructions: what bounds image → wav
        "first_stage_audio_second_judge": judges.waveform.accuracy(to_waves(saved.transform, rec_a[sub],
                                                                            e.gl_iterations), test.label[sub]),
        "fd_image_first_stage": frechet_distance(judges.mnist.embed(rec_i), judges.mnist.embed(test.image)),
        "mnist_classifier_test_accuracy": judges.mnist_info.get("test_accuracy"),
        "fsdd_classifier_test_accuracy": judges.fsdd_info.get("test_accuracy"),
    })
    order = np.argsort(test.label, kind="stable")
    pick = np.array([order[np.searchsorted(test.label[order], d)] for d in range(10) if d in set(test.label)])
    n_ex = min(k, 8)
    ex_i = generate(model, len(pick) * n_ex, {"audio": z_a[pick].repeat_interleave(n_ex, 0)}, settings=s)
    ex_a = generate(model, len(pick) * n_ex, {"image": z_i[pick].repeat_interleave(n_ex, 0)}, settings=s)
    gen_a = stages.decode("audio", ex_a["audio"]).numpy()
    examples = {"labels": test.label[pick], "inputs_image": test.image[pick, 0], "inputs_audio": test.audio[pick, 0],
                "images": stages.decode("image", ex_i["image"]).clamp(0, 1).numpy()[:, 0].reshape(
                    len(pick), n_ex, *test.image.shape[2:]),
                "audio": gen_a[:, 0].reshape(len(pick), n_ex, *test.audio.shape[2:]),
                "waves": to_waves(saved.transform, gen_a[::n_ex], e.gl_iterations),
                "joint_images": j_img[:20, 0], "joint_audio": j_aud[:20, 0]}
    return MLDDigitsEvaluation(metrics, int(saved.transform.sample_rate), examples, features=saved.transform.features)


def evaluate(run_dir, data: str | None = None, sample_rate: float | None = None):
    """Evaluate an MLD run folder (``data``: the bridge data root, when not the run's; ``sample_rate``:
    of its CSVs without a time column)."""
    saved, stages = load_run(run_dir)
    if saved.workflow.data.kind == "bridge":
        return evaluate_bridge(saved, stages, data, sample_rate)
    from latentbridge.tasks.avdigits import refuse_other_data

    refuse_other_data(data)
    return evaluate_digits(saved, stages)
