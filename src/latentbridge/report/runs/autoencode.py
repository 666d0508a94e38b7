"""Files of ``evaluate`` (audio and image autoencoders) and ``audio reconstruct``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentbridge.io import write_wav
from latentbridge.report.audio import feature_axes, plot_spectrogram_pairs
from latentbridge.report.html import write_html_report
from latentbridge.report.images import plot_image_grid
from latentbridge.report.common import middle_cut
from latentbridge.utils import atomic_write_json

AUDIO_NOTE = ("mel_* compare the features (dB) of held-out windows with their reconstructions. pesq/stoi/"
              "si_sdr_db/lsd_db compare audio rebuilt from the reconstructed mel by Griffin-Lim with the "
              "original window; oracle_* do the same for the input mel without the model (the ceiling of "
              "mel features + Griffin-Lim). SI-SDR is low by construction: Griffin-Lim does not recover "
              "the original phase. pesq_nan/stoi_nan count windows where the metric is undefined (PESQ: "
              "no utterance; STOI: under ~0.4 s of speech after silence removal) and left out of the means.")


def write_audio_evaluation(res, folder: Path) -> None:
    folder = Path(folder)
    atomic_write_json(folder / "metrics.json", res.metrics)
    wavs = []
    for j, ex in enumerate(res.examples):
        for tag in ("original", "reconstructed", "features_only"):
            p = folder / f"example_{j}_{tag}.wav"
            write_wav(p, np.clip(ex[tag], -1, 1), res.sample_rate)
            wavs.append(p.name)
    if res.examples:
        plot_spectrogram_pairs(np.stack([e["features"] for e in res.examples]),
                               np.stack([e["reconstruction"] for e in res.examples]),
                               [middle_cut(e["label"], 48) for e in res.examples], folder / "spectrograms.png",
                               **feature_axes(res.features))
    m = res.metrics
    write_html_report(folder / "report.html", "latentbridge mel autoencoder report", [
        {"heading": "Metrics", "table": {k: v for k, v in m.items() if not isinstance(v, dict)}, "text": AUDIO_NOTE},
        {"heading": "Model audio (Griffin-Lim of the reconstruction)", "table": m["audio"]},
        {"heading": "Features-only audio (Griffin-Lim of the input mel)", "table": m["oracle_audio"]},
        {"heading": "Spectrograms", "images": ["spectrograms.png"] if res.examples else []},
        {"heading": "Example audio", "audio": wavs, "text": "Each example window: the original, the model's "
         "reconstruction and the input mel alone (both through Griffin-Lim), written beside this report."},
    ])


def write_image_evaluation(res, folder: Path) -> None:
    folder = Path(folder)
    atomic_write_json(folder / "metrics.json", res.metrics)
    plot_image_grid(np.stack([res.inputs, res.reconstructions]), ["input", "reconstruction"], res.labels,
                    folder / "reconstructions.png", cmap="gray", origin="upper", value_range=(0.0, 1.0))
    write_html_report(folder / "report.html", "latentbridge image autoencoder report", [
        {"heading": "Metrics", "table": {k: v for k, v in res.metrics.items() if not isinstance(v, dict)},
         "text": "Per-pixel means over the test split (images in [0, 1])."},
        *({"heading": f"MSE per {what}", "table": res.metrics[f"test_mse_per_{what}"]}
          for what in ("digit", "class") if f"test_mse_per_{what}" in res.metrics),
        {"heading": "Reconstructions", "images": ["reconstructions.png"]},
    ])


def write_evaluation(res, folder: Path) -> None:
    if hasattr(res, "examples"):
        write_audio_evaluation(res, folder)
    else:
        write_image_evaluation(res, folder)


def write_reconstructions(res, folder: Path) -> dict:
    """``<name>_reconstructed.wav`` (the input's rate and length) and ``<name>_spectrogram.png`` per file,
    and ``reconstruct.json`` (file names relative to ``folder``); returns its content."""
    folder = Path(folder)
    files = []
    for r in res.files:
        wav = write_wav(folder / f"{r.stem}_reconstructed.wav", r.output, r.sample_rate)
        plot = plot_spectrogram_pairs(r.spectrogram_in[None], r.spectrogram_out[None],
                                      [f"{middle_cut(r.path.name)} (audio → {res.kind} → model → audio)"],
                                      folder / f"{r.stem}_spectrogram.png", **feature_axes(res.features))
        files.append({"path": str(r.path), "output": Path(wav).name, "plot": Path(plot).name, "n_windows": r.n_windows,
                      "sample_rate": r.sample_rate, **r.metrics})
    summary = {"model": res.model, "phase": res.phase, "postfilter": res.postfilter,
               "model_sample_rate": res.model_sample_rate, "files": files}
    atomic_write_json(folder / "reconstruct.json", summary)
    return summary
