"""A section given to a saved spatial model (``enhance``, ``evaluate --data``, the server's ``/enhance``): read as the
model reads its inputs, and checked before the model runs (channels without signal or constant, intensities off the
training sections' range, too small a section)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from latentbridge.data.spatial import Section, channel_text, constant_text, normalized_over
from latentbridge.errors import ConfigError, DataError
from latentbridge.utils import first_time

log = logging.getLogger(__name__)


def read_for_model(spec, path: str | Path, trained_on: str | None = None, **kw):
    """A :class:`~latentbridge.data.spatial.Section` read as the model ``spec`` reads its inputs (``enhance`` and
    ``evaluate --data``): imzML spectra imaged at the model's m/z with its tolerance and normalisation, an
    array's layout settled by the model's channel count where its shape leaves it open, channels labelled with
    m/z checked against the model's list (:func:`~latentbridge.data.spatial_labels.check_labels`); ``kw``: the rest of
    :func:`~latentbridge.data.spatial.read_section`'s arguments. An imzML file given to a model without an m/z
    list (trained on arrays) is a DataError: nothing says which ion images its channels are. A ``tic`` / ``rms``
    normalisation sums over what the model's did (``normalized_over``); a model saved without that record divides
    an input by its own kind's sum, with a warning where that is not the training files' (``trained_on``:
    ``imzml`` or ``arrays``)."""
    from latentbridge.data.spatial import read_section
    from latentbridge.data.spatial_labels import check_labels, labels_mz

    path = Path(path)
    if path.suffix.lower() == ".imzml" and not spec.mz:
        raise DataError(path, f"the model has no m/z list (it was trained on arrays), so the spectra cannot be "
                              f"matched to its {spec.channels} channels: give the section as an (H, W, "
                              f"{spec.channels}) array of its ion images in the training arrays' channel order, or "
                              "train a model on imzML sections (data.mz)")
    over = spec.normalized_over
    if over is None and spec.normalization != "none" and trained_on in ("imzml", "arrays"):
        over, was = normalized_over([path], spec.normalization), "spectrum" if trained_on == "imzml" else "channels"
        if over != was and first_time(("normalized over", str(path))):
            log.warning("%s: the model does not record what its data.normalization=%s summed over; it was trained on "
                        "%s, which sum over %s, and this input is divided by the sum over %s: its values may sit "
                        "on another scale (retrain to record it, or give the input as %s)", path, spec.normalization,
                        "imzML spectra" if was == "spectrum" else "arrays",
                        "the whole spectrum" if was == "spectrum" else "their channels",
                        "the whole spectrum" if over == "spectrum" else "its channels",
                        "imzML" if was == "spectrum" else "an array")
    section = read_section(path, mz=spec.mz, tolerance=spec.tolerance, unit=spec.tolerance_unit,
                           normalization=spec.normalization, over=over, channels=spec.channels, **kw)
    check_labels(path, section.labels, spec.mz or labels_mz(list(spec.labels or [])))
    return section


def channel_indices(spec, mz: list[float]) -> list[int]:
    """The model channels of the m/z values ``mz`` (each within the model's tolerance)."""
    if not spec.mz:
        raise ConfigError("--mz: the model's channels have no m/z (it was trained on arrays)")
    model_mz = np.asarray(spec.mz, dtype=np.float64)
    picks = []
    for m in mz:
        if not np.isfinite(m):
            raise ConfigError(f"--mz: expected finite numbers, got {m}")
        i = int(np.abs(model_mz - m).argmin())
        tol = m * spec.tolerance * 1e-6 if spec.tolerance_unit == "ppm" else spec.tolerance
        if abs(model_mz[i] - m) > tol:
            raise ConfigError(f"--mz {m:g}: not one of the model's channels within {spec.tolerance:g} "
                              f"{spec.tolerance_unit} (nearest {model_mz[i]:g})")
        picks.append(i)
    return picks


def trained_range(spec) -> tuple[np.ndarray, np.ndarray]:
    """Each channel's training intensity range (min, max) from the model's ``lower`` / ``upper``; a bound within
    rounding of 0 is 0 (a lower bound of 0 came back as 7.11e-15, and flagged a negated map by luck)."""
    scale, center = np.asarray(spec.scale, np.float64), np.asarray(spec.center, np.float64)
    t_low, t_high = np.asarray(spec.lower) * scale + center, np.asarray(spec.upper) * scale + center
    return tuple(np.where(np.abs(b) <= 1e-6 * np.abs([t_low, t_high]).max(0), 0.0, b) for b in (t_low, t_high))


def below_zero(section: Section, spec, skip=()) -> str | None:
    """The channels of ``section`` holding values below 0 on valid pixels where every training section's were 0 or
    more (intensities: counts, a baseline subtracted below 0?), said with their count and lowest value; None where
    there are none (a partly negative map passed every check, and the model read it as it reads a count); channels
    ``skip`` (named already) left out."""
    if section.shape[2] != len(spec.scale):
        return None
    t_low, t_high = trained_range(spec)
    bad = []
    for ch in (c for c in np.flatnonzero(t_low >= 0) if c not in skip):
        v = np.asarray(section.values[..., ch], dtype=np.float32)[section.valid]
        if (n := int((v < -1e-6 * max(float(t_high[ch]), 1e-30)).sum())):
            bad.append((ch, n, float(v.min())))
    if not bad:
        return None
    ch, n, lowest = bad[0]
    return (f"{channel_text(section.labels, [b[0] for b in bad])}: values below 0 where every training section's "
            f"were 0 or more ({channel_text(section.labels, [ch])}: {n} pixels, the lowest {lowest:.3g}): intensities "
            "with a baseline subtracted below 0, or another quantity? The model reads them as it reads counts")


def scale_mismatch(section: Section, spec, factor: float = 100.0, max_values: int = 1 << 22) -> list[dict]:
    """Channels whose valid pixels spread over a range ``factor`` times narrower or wider than the training
    sections' (from the ``lower`` / ``upper`` of :func:`~latentbridge.data.spatial.channel_statistics`), or lying
    wholly outside it: maps on another intensity scale (other units, another normalisation, an export's scale factor,
    negated or offset values), which the model reads as nearly empty or as extreme. For each: ``channel``, the
    input's 0.5th / 99.5th percentiles ``low`` / ``high``, the training range ``trained`` (min, max) and ``outside``
    (the spread is like training's, the values not: wholly above or below the training range, or mostly below 0 where
    training values were 0 or more but for noise, a tenth of their range, a negated map whose zeros lie inside the
    range); channels without signal or constant are left out (named as such). Rows are subsampled past ``max_values``
    values (a memory map is not read whole; a float64 copy of every pixel of a 1000 x 1000 x 50 section took 400 MiB
    for a moment)."""
    h, w, c = section.shape
    step = max(1, int(np.ceil(h * w * c / max_values)))
    if c != len(spec.scale):  # another channel count: refused where the model reads the section
        return []
    v = np.asarray(section.values[::step], dtype=np.float32)[section.valid[::step]]
    if len(v) < 2:
        return []
    low, high = np.percentile(v, 0.5, axis=0), np.percentile(v, 99.5, axis=0)
    t_low, t_high = trained_range(spec)
    ratio = (high - low) / np.maximum(t_high - t_low, 1e-300)
    # mostly below 0 where training hardly was (its noise may dip under 0: a bound of -0.064 for a range to 1.11 let a
    # negated map through): a negated map, whose zeros (background) lie inside the training range
    negative = (t_low >= -0.1 * (t_high - t_low)) & ((v < 0).sum(0) > 0.5 * (v != 0).sum(0))
    outside = (high < t_low) | (low > t_high) | negative  # the same spread, elsewhere: negated maps, an offset
    return [{"channel": c, "low": float(low[c]), "high": float(high[c]), "trained": (float(t_low[c]), float(t_high[c])),
             "outside": bool(outside[c] and 1.0 / factor <= ratio[c] <= factor)}
            for c in range(len(ratio)) if c not in section.empty and c not in section.constant and t_high[c] > t_low[c]
            and (not 1.0 / factor <= ratio[c] <= factor or outside[c])]


def check_input(section: Section, spec, path: Path, task: str) -> None:
    """Refuse a section without signal in any of the model's channels; warn about channels without signal or
    constant, a section smaller than a patch, and channels off the training sections' intensity range."""
    empty = channel_text(section.labels, section.empty)
    if len(section.empty) == section.shape[2]:
        raise DataError(path, "no signal in any of the model's channels" + (
            f" (m/z {empty} within {spec.tolerance:g} {spec.tolerance_unit}): not the kind of data the model "
            "was trained on" if spec.mz else " (all zero on the valid pixels)"))
    if empty:
        log.warning("%s: no signal in %s: the model's maps of them rest on the other channels", path, empty)
    if section.constant:
        log.warning("%s: %s", path, constant_text(section))
    if min(section.shape[:2]) * (spec.upscale_factor if task == "upscale" else 1) < spec.patch_size:
        log.warning("%s: %d x %d pixels, smaller than the model's %d-pixel patches: enhanced on a patch padded with "
                    "unmeasured pixels, with less context than in training", path, *section.shape[:2], spec.patch_size)
    off = scale_mismatch(section, spec)
    moved = [o for o in off if o["outside"]]
    if text := below_zero(section, spec, skip={o["channel"] for o in moved}):  # (those named below left out)
        log.warning("%s: %s", path, text)
    if moved:
        o = moved[0]
        log.warning("%s: %s outside the range of the training sections' intensities (%s: %.3g to %.3g, in training "
                    "%.3g to %.3g): maps negated, offset or on another scale come out as the model's guess of maps it "
                    "never saw; bring them to the training maps' scale, or train on such maps", path,
                    channel_text(section.labels, [o["channel"] for o in moved]), channel_text(section.labels,
                                                                                         [o["channel"]]),
                    o["low"], o["high"], *o["trained"])
    scaled = [o for o in off if not o["outside"]]
    for wide in (True, False):  # one verdict for each direction (channels scaled up and down were told as one)
        if off := [o for o in scaled if (o["high"] - o["low"] > o["trained"][1] - o["trained"][0]) == wide]:
            o = off[0]
            log.warning("%s: %s spread%s over %s the range of the training sections' intensities (%s: %.3g to %.3g, "
                        "in training %.3g to %.3g): maps on another intensity scale (units, normalisation, an "
                        "export's scale factor) come out as %s; bring them to the training maps' scale, or train on "
                        "such maps", path, channel_text(section.labels, [o["channel"] for o in off]),
                        "s" if len(off) == 1 else "", "far more than" if wide else "a sliver of",
                        channel_text(section.labels, [o["channel"]]), o["low"], o["high"], *o["trained"],
                        "extreme" if wide else "nearly empty")


def check_truth(path, task: str, section: Section, spec) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(clean maps, the pixels scored)`` of ``task``, checked before the model runs, one rule for every task: the
    task's output shape, finite and not all 0 on the scored pixels (a denoise's measured pixels, an inpainting's
    outline, an upscale's upsampled outline less the background, pixels whose clean map is 0 or NaN in every
    channel). ``path``: an upscale's clean maps, at the output's size (read here); other tasks score the section's own
    (read with it, their shape checked there). ``(None, None)`` without clean maps."""
    from latentbridge.data.spatial import outline_of
    from latentbridge.io.arrays import load_npy

    if task == "upscale":
        if path is None:
            return None, None
        f = spec.upscale_factor
        t = load_npy(path, "the clean maps", mmap=True)
        want = (section.shape[0] * f, section.shape[1] * f, section.shape[2])
        if tuple(t.shape) != want:
            raise DataError(path, f"truth of shape {tuple(t.shape)} does not match the upscaled maps {want} ({f}x the "
                                  f"section's {section.shape[0]} x {section.shape[1]} pixels)")
        t = np.asarray(t)
        background = np.all((t == 0) | ~np.isfinite(t), axis=-1)
        scored, where = outline_of(np.repeat(np.repeat(section.valid, f, 0), f, 1)) & ~background, "upsampled outline"
    elif section.truth is None:
        return None, None
    else:
        t = section.truth
        scored = section.valid if task == "denoise" else section.valid | section.outline
        where = "measured pixels" if task == "denoise" else "outline"
    if bad := int((~np.isfinite(t[scored])).sum()):
        raise DataError(path, f"{bad} non-finite values in the clean maps where pixels are scored (the section's "
                              f"{where}): the metrics would read NaN")
    if not np.any(t[scored] != 0):
        raise DataError(path, f"the clean maps are 0 on every pixel scored (the section's {where}): nothing to score "
                              "against (PSNR and the spectral angle are undefined)")
    return t, scored

