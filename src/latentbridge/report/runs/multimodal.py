"""Files of ``evaluate`` for the vibration/mask models (the bridge)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentbridge.report.audio import plot_spectrogram_pairs, plot_waveform_overlay, stft_axes
from latentbridge.report.charts import plot_crack_operating_curve
from latentbridge.report.embedding import plot_embedding, project_2d
from latentbridge.report.html import write_html_report
from latentbridge.report.images import plot_image_grid, plot_mask_triplets
from latentbridge.utils import atomic_write_json


def crack_curve_section(metrics: dict, threshold: float, folder: Path, calibrated: bool = True) -> list[dict]:
    """The report's section of the crack operating curve (``crack_operating_curve`` of ``metrics.json``);
    ``calibrated``: whether ``threshold`` was calibrated (else it is named the default threshold)."""
    curve = metrics.get("crack_operating_curve") or []
    if not any(r.get("crack_localisation_error_m") is not None for r in curve):
        return []
    name = "calibrated threshold" if calibrated else "default threshold (not calibrated)"
    plot_crack_operating_curve(curve, threshold, folder / "crack_operating_curve.png", threshold_name=name,
                               unit=metrics.get("crack_localisation_unit") or "m")
    return [{"heading": "Crack localisation over the threshold", "text": "The localisation error falls as the mask "
             "predicts more cracks and the false-crack share rises with it: compare models at equal false shares "
             f"(metrics.json: crack_operating_curve), not only at each one's own threshold (here the {name}).",
             "images": ["crack_operating_curve.png"]}]


def full_size_section(ex: dict, threshold: float, folder: Path) -> list[dict]:
    """The report's section of the examples' masks at the labels' own size (``masks_full`` / ``mask_prob_full``:
    :func:`latentbridge.data.bridge.full_size_examples`), those of the first one's size; none without them. Each row's
    IoU is the full size's; the panels are drawn at most :data:`SHOWN_WIDTH` wide (a crack as any of the pixels it
    covers, the probability as their mean: a 3-inch panel shows no more, and drawing 512 x 1536 took 2 s a figure)."""
    from latentbridge.metrics.segmentation import iou

    if not ex.get("masks_full"):
        return []
    keep = [i for i, m in enumerate(ex["masks_full"]) if m.shape == ex["masks_full"][0].shape]
    h, w = ex["masks_full"][0].shape
    f = -(-w // SHOWN_WIDTH)
    masks = np.stack([ex["masks_full"][i] for i in keep]).astype(np.float32)
    prob = np.stack([ex["mask_prob_full"][i] for i in keep]).astype(np.float32)
    ious = iou(prob, masks, threshold=threshold)
    hs, ws = h // f * f, w // f * f
    pooled = lambda a, how: how(a[:, :hs, :ws].reshape(len(a), hs // f, f, ws // f, f), axis=(2, 4))  # noqa: E731
    plot_mask_triplets(None, pooled(masks, np.max), pooled(prob, np.mean), [ex["titles"][i] for i in keep],
                       folder / "masks_full_size.png", threshold=threshold, ious=ious)
    return [{"heading": "Crack masks at the labels' size", "text": f"the mask as drawn ({w} x {h}) | the predicted "
             f"probability brought to that size (bilinear) | above the threshold {threshold:g}, with the IoU against "
             "the mask as drawn (metrics.json: mask_iou_full_size)" + (f"; drawn {f} times smaller" if f > 1 else ""),
             "images": ["masks_full_size.png"]}]


#: the widest a full-size mask is drawn in a report (pixels)
SHOWN_WIDTH = 768


def threshold_text(res) -> str:
    """``the calibrated threshold T (calibrated on ...)``, or ``the default threshold T (not calibrated: why)``."""
    if res.threshold_calibrated_on:
        return f"the calibrated threshold {res.threshold:g} (calibrated on {res.threshold_calibrated_on})"
    return f"the default threshold {res.threshold:g} (not calibrated: {res.threshold_note})"


def write_evaluation(res, folder: Path) -> None:
    folder = Path(folder)
    atomic_write_json(folder / "metrics.json", res.metrics)
    ex = res.examples
    sections = [{"heading": "Metrics", "text": f"Evaluated on {res.scope}; masks and damage extent predicted "
                                               "from vibration alone.",
                 "table": {k: v for k, v in res.metrics.items() if not isinstance(v, (dict, list))}}]
    above = f"prediction above {threshold_text(res)}"
    if ex.get("masks") is not None:
        plot_mask_triplets(None, ex["masks"], ex["mask_prob"], ex["titles"], folder / "masks.png",
                           threshold=res.threshold)
        sections.append({"heading": "Crack masks from vibration alone", "text": "target | predicted probability | "
                         f"{above}", "images": ["masks.png"]})
        sections += full_size_section(ex, res.threshold, folder)
    else:  # no labelled window: nothing to compare a prediction with
        prob = np.asarray(ex["mask_prob"], dtype=float)
        plot_image_grid(np.stack([prob, (prob > res.threshold).astype(float)]),
                        ["crack probability", f"> {res.threshold:g}"], ex["titles"], folder / "masks_predicted.png",
                        cmap="gray", origin="upper", keep_aspect=True, value_range=(0.0, 1.0))
        sections.append({"heading": "Crack masks from vibration alone", "text": "No window of this data has a mask "
                         "(Labels/), so there is no target to compare with. Rows: predicted probability; "
                         f"{above}.", "images": ["masks_predicted.png"]})
    sections += crack_curve_section(res.metrics, res.threshold, folder, calibrated=bool(res.threshold_calibrated_on))
    if res.has_reconstruction:
        axes = stft_axes(res.sample_rate, ex["n_fft"], ex["hop_length"])
        plot_spectrogram_pairs(ex["logmag"], ex["logmag_rec"], ex["titles"], folder / "spectrograms.png", **axes)
        plot_waveform_overlay(ex["wave"], ex["wave_rec"], res.sample_rate, folder / "waveform.png", title=ex["titles"][0])
        sections.append({"heading": "Reconstructions", "text": "log-magnitude (channel 0): input, reconstruction, "
                         "difference; waveform through the ISTFT of the reconstructed magnitude and phase",
                         "images": ["spectrograms.png", "waveform.png"]})
        it = res.interpolation
        if it is None:
            sections.append({"heading": "Latent interpolation", "text": "None: "
                             f"{res.interpolation_note}."})
        else:
            cols = [f"{t:.2f}" for t in it["alphas"].tolist()]
            plot_image_grid(np.asarray(it["spectrograms"])[None], ["log-magnitude (ch 0)"], cols,
                            folder / "interpolation_spectrogram.png", unit=axes["unit"])  # one scale: levels compare
            plot_image_grid(it["masks"][None], ["crack probability"], cols, folder / "interpolation_mask.png",
                            cmap="gray", origin="upper", keep_aspect=True, value_range=(0.0, 1.0))
            sections.append({"heading": "Latent interpolation", "text": f"from {it['from']} to {it['to']}",
                             "images": ["interpolation_spectrogram.png", "interpolation_mask.png"]})
    z2, how = project_2d(res.latent, method="umap", seed=0)
    latent_images = ["latent_tests.png"]
    if np.isfinite(res.extent).any():  # by extent only where some state has a mask (NaN: no mask)
        plot_embedding(z2, res.extent, folder / "latent_extent.png", f"latent ({how}) by damage extent",
                       label="damage extent (mask mean)", missing="unlabelled (no mask)", vmin=0.0)
        latent_images.insert(0, "latent_extent.png")
    plot_embedding(z2, res.tests, folder / "latent_tests.png", f"latent ({how}) by test", categorical=True,
                   label="test")
    sections.append({"heading": "Latent space", "images": latent_images})
    write_html_report(folder / "report.html", f"latentbridge multimodal evaluation: {res.metrics['model']}", sections)
