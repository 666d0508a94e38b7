"""Files of multimodal latent diffusion runs: ``latentbridge sample`` (masks as PNG, spectrograms
as PNG + ``.npy``, audio as wav, vibration as wav divided by each folder's peak, which ``settings.json`` keeps,
``settings.json``) and ``latentbridge evaluate`` (``metrics.json``, plots, ``report.html``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentbridge.io import write_wav
from latentbridge.io.images import spectrogram_picture, write_grid, write_png
from latentbridge.report.audio import feature_axes, plot_spectrogram_pairs, plot_waveform_overlay, stft_axes
from latentbridge.report.common import _finite_range
from latentbridge.report.embedding import plot_embedding, project_2d
from latentbridge.report.html import write_html_report
from latentbridge.report.images import plot_image_grid, plot_mask_triplets
from latentbridge.report.runs.multimodal import crack_curve_section, full_size_section
from latentbridge.utils import atomic_write_json

BRIDGE_NOTE = ("Masks from vibration alone: the mean crack probability of the masks sampled for each window, "
               "above the threshold calibrated on the validation states (mask_threshold). psd_distance_db: dB "
               "distance between the mean power spectra of the vibration sampled from the true masks and of the "
               "real windows (_joint: from joint samples; _first_stage: the first stage's reconstructions of the "
               "real windows; _real_train: as many real training windows). fd_latent_joint: Fréchet distance of "
               "joint samples to the held-out latents (_real_train: training latents).")
DIGITS_NOTE = ("Coherence: the digit classifiers read the input's digit in the generated sample (image → wav: "
               "the spectrogram through Griffin-Lim, read by the FSDD classifier after re-analysis and by the "
               "waveform judge, whose ceiling is its accuracy on Griffin-Lim audio of the real log-mels). "
               "fd_*: Fréchet distance to the test set in each classifier's feature space (_real_floor: as many "
               "real training examples). diversity_*: mean pairwise RMS distance of the samples generated for one "
               "digit (_per_input: for one input; _real: real test examples of one digit). memorisation_*: mean "
               "RMS distance to the nearest training example. first_stage_*: the first stages' reconstructions.")


def _width(n: int) -> int:
    return max(2, len(str(n - 1)))


def write_samples(res, folder: Path) -> dict:
    """One sub-folder per condition file (``joint`` without): generated masks / images as PNG,
    spectrograms as PNG + ``.npy``, audio as wav."""
    folder = Path(folder)
    scales = {}  # each folder's vibration_NN.wav divided by (the recordings' units)
    for group in res.groups:
        out = folder / group["name"]
        out.mkdir(parents=True, exist_ok=True)
        if "condition_image" in group:
            write_png(out / "condition.png", group["condition_image"])
        if "image" in group:
            w = _width(len(group["image"]))
            for i, img in enumerate(group["image"]):
                write_png(out / f"image_{i:0{w}d}.png", img)
            write_grid(out / "images.png", group["image"][:, None])
        if "audio" in group:
            w = _width(len(group["audio"]))
            np.save(out / "log_mel.npy", group["audio"].astype(np.float32))
            for i, (mel, wave) in enumerate(zip(group["audio"], group["waves"])):
                write_png(out / f"log_mel_{i:0{w}d}.png", spectrogram_picture(mel))
                write_wav(out / f"audio_{i:0{w}d}.wav", np.clip(wave, -1, 1), int(res.sample_rate))
        if "mask_samples" in group:  # the first window's samples
            w = _width(len(group["mask_samples"]))
            for i, m in enumerate(group["mask_samples"]):
                write_png(out / f"mask_sample_{i:0{w}d}.png", m)
            write_png(out / "mask_probability.png", group["mask_prob"])
            write_png(out / "mask.png", group["mask"])
            if "mask_full" in group:  # at the size of the training labels
                write_png(out / "mask_probability_full.png", group["mask_prob_full"])
                write_png(out / "mask_full.png", group["mask_full"])
        if "wave" in group:
            w = _width(len(group["wave"]))
            np.save(out / "log_magnitude.npy", group["logmag"].astype(np.float32))
            peak = scales[group["name"]] = max(1e-9, float(np.abs(group["wave"]).max()))
            for i, (lm, wave) in enumerate(zip(group["logmag"], group["wave"])):
                write_png(out / f"spectrogram_{i:0{w}d}.png", spectrogram_picture(lm[0]))
                write_wav(out / f"vibration_{i:0{w}d}.wav", wave / peak, int(round(res.sample_rate)))
    summary = {**res.settings, "seconds": round(res.seconds, 2), "conditions": [g["name"] for g in res.groups],
               "condition_files": {g["name"]: g.get("source") for g in res.groups if g.get("source")},
               "mask_threshold": res.threshold}
    if scales:  # the WAVs' level said nothing of the generated vibration's, and the factor was written nowhere
        summary.update({"vibration_wav_divided_by": {k: float(f"{v:.6g}") for k, v in scales.items()},
                        "vibration_wav_note": "each folder's vibration_NN.wav holds the generated vibration divided by "
                        "vibration_wav_divided_by (the group's peak, in the recordings' own units, e.g. m/s²): "
                        "multiply a WAV's samples by it for the generated level"})
    atomic_write_json(folder / "settings.json", summary)
    # every file written, settings.json included (a count of samples kept by hand was printed as the count of files)
    return {**summary, "files": sum(1 for f in folder.rglob("*") if f.is_file())}


def write_evaluation(res, folder: Path) -> None:
    folder = Path(folder)
    atomic_write_json(folder / "metrics.json", res.metrics)
    table = {k: v for k, v in res.metrics.items() if not isinstance(v, (dict, list))}
    if res.kind == "bridge":
        sections = _bridge(res, folder)
        note = BRIDGE_NOTE
    else:
        sections = _digits(res, folder)
        note = DIGITS_NOTE
    sections.insert(0, {"heading": "Metrics", "text": note, "table": table})
    sections.insert(1, {"heading": "Sampler", "table": res.metrics["sampler"]})
    write_html_report(folder / "report.html", f"latentbridge multimodal latent diffusion ({res.kind})", sections)


def _bridge(res, folder: Path) -> list[dict]:
    ex = res.examples
    plot_mask_triplets(None, ex["masks"], ex["mask_prob"], ex["titles"], folder / "masks.png", threshold=res.threshold)
    plot_image_grid(ex["mask_samples"][None], ["sampled mask"], [str(i) for i in range(len(ex["mask_samples"]))],
                    folder / "mask_samples.png", cmap="gray", origin="upper", keep_aspect=True, value_range=(0.0, 1.0))
    plot_spectrogram_pairs(ex["logmag"], ex["logmag_gen"], ex["titles"], folder / "spectrograms.png",
                           **stft_axes(res.sample_rate, ex["n_fft"], ex["hop_length"]))
    plot_waveform_overlay(ex["wave"], ex["wave_gen"], res.sample_rate, folder / "time_series.png",
                          title=f"{ex['titles'][0]}: real vs generated from its mask")
    it = res.interpolation
    plot_image_grid(it["masks"][None], ["crack probability"], [f"{a:.2f}" for a in it["alphas"].tolist()],
                    folder / "interpolation_mask.png", cmap="gray", origin="upper", keep_aspect=True,
                    value_range=(0.0, 1.0))
    lat = res.latents
    z2, how = project_2d(np.concatenate([lat["real"], lat["generated"]]), method=res.embedding, seed=0)
    kind = np.array(["held-out"] * len(lat["real"]) + ["joint sample"] * len(lat["generated"]))
    plot_embedding(z2, kind, folder / "latent_map.png", f"latents ({how}): held-out vs generated", categorical=True)
    on = res.metrics.get("mask_threshold_calibrated_on")  # None: not calibrated (mask_threshold_note says why)
    calibrated = bool(on)
    said = f"calibrated threshold {res.threshold:g} ({on})" if calibrated else \
        f"default threshold {res.threshold:g} (not calibrated: {res.metrics.get('mask_threshold_note')})"
    return [
        {"heading": "Crack masks from vibration", "text": f"target | mean sampled probability | above the {said}; "
         "then several masks sampled for the first window", "images": ["masks.png", "mask_samples.png"]},
        *full_size_section(ex, res.threshold, folder),
        *crack_curve_section(res.metrics, res.threshold, folder, calibrated=calibrated),
        {"heading": "Vibration from crack masks", "text": "log-magnitude (channel 0): real | generated from the true "
         "mask | difference; time series: real vs generated (ISTFT of the decoded magnitude and phase)",
         "images": ["spectrograms.png", "time_series.png"]},
        {"heading": "Interpolation", "text": f"masks sampled with the same noise along a line between the vibration "
         f"latents of {it['from']} and {it['to']}", "images": ["interpolation_mask.png"]},
        {"heading": "Latent space", "images": ["latent_map.png"]},
    ]


def _digits(res, folder: Path) -> list[dict]:
    ex = res.examples
    labels = [str(d) for d in ex["labels"]]
    k = ex["images"].shape[1]
    plot_image_grid(np.concatenate([ex["inputs_image"][:, None], ex["images"]], axis=1),
                    [f"digit {d}" for d in labels], ["paired image"] + [f"sample {i + 1}" for i in range(k)],
                    folder / "audio_to_image.png", cmap="gray", origin="upper", value_range=(0.0, 1.0))
    k3 = min(3, ex["audio"].shape[1])
    unit = feature_axes(res.features)["unit"] if res.features is not None else ""
    mels = np.stack([np.concatenate([ex["inputs_audio"][i:i + 1], ex["audio"][i, :k3]]) for i in range(len(labels))])
    plot_image_grid(mels, [f"digit {d}" for d in labels],
                    ["spoken digit"] + [f"from the image {i + 1}" for i in range(k3)], folder / "image_to_audio.png",
                    value_range=_finite_range(mels), unit=unit)  # one scale
    write_grid(folder / "joint_images.png", ex["joint_images"][:, None], n_cols=10)
    plot_image_grid(np.asarray(ex["joint_audio"][:10])[None], ["joint sample"],
                    [str(i) for i in range(min(10, len(ex["joint_audio"])))], folder / "joint_audio.png", unit=unit)
    for d, wave in zip(labels, ex["waves"]):
        write_wav(folder / f"image_to_audio_{d}.wav", np.clip(wave, -1, 1), res.sample_rate)
    return [
        {"heading": "Images from spoken digits", "text": f"{k} samples for one clip of each digit",
         "images": ["audio_to_image.png"]},
        {"heading": "Spoken digits from images", "text": "image_to_audio_<digit>.wav: the first sample through "
         "Griffin-Lim", "images": ["image_to_audio.png"],
         "audio": [f"image_to_audio_{d}.wav" for d, _ in zip(labels, ex["waves"])]},
        {"heading": "Joint samples", "images": ["joint_images.png", "joint_audio.png"]},
    ]
