"""Sections of spatial maps for the conditional VAE: reading (imzML or arrays), the per-channel
normalisation, pixel coordinates, and training patches with their corruptions (whole-section tiles:
:mod:`latentbridge.tasks.enhance`).

A :class:`Section` holds (H, W, C) values in the units the model's transform reads them (after the
per-pixel normalisation), the mask of valid pixels, and, when known, the clean truth and the
section's outline. Sections are listed by :func:`list_sections` from a folder written by
``latentbridge data synth tissue`` (its manifest), a folder of imzML or array files, or one file.

Training patches (:class:`PatchDataset`) are ``size`` x ``size`` crops with at least ``min_valid``
valid pixels, each given to the model in one of three forms, drawn with the configured frequencies:

- *denoise*: every valid pixel observed;
- *inpaint*: a share (``hide_fraction``) of the valid pixels hidden (random pixels, small discs, a
  scan-line gap), to be filled from their context;
- *upscale*: every 2 x 2 block replaced by the mean of its valid pixels (``coarse`` = 1), the input
  of 2x upscaling (blocks aligned with the section's even rows and columns).

The target is the measured patch at its valid pixels (``data.target=measured``, the default: no
clean map is needed to train, any imzML file works), or the clean map at every pixel of the
section (``data.target=clean``: supervised, for data that has one, such as the synthetic sections).

Blind-spot training (``blind_spot`` = K, the model's setting; measured targets only): a *denoise*
patch hides a random 1/K of its valid pixels, and the target of denoise and inpaint patches is only
the hidden pixels: the model learns to predict a measured value from its neighbours, never from
itself, which with noise independent between pixels is the clean value's estimate (Noise2Self).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from latentbridge.errors import ConfigError, DataError
from latentbridge.io.arrays import (ARRAY_SUFFIXES, channel_labels, channels_last, find_mask, load_npy, read_array_stack,
                                   read_mask)
from latentbridge.io.imzml import read_ion_images
from latentbridge.utils import first_time, is_hidden

log = logging.getLogger(__name__)

_SIDE_FILES = (".mask", ".truth", ".tissue")


@dataclass
class Section:
    name: str
    values: np.ndarray
    """(H, W, C) in the transform's reading units (after per-pixel normalisation)."""
    valid: np.ndarray
    """(H, W) bool: pixels with a measurement."""
    source: str
    truth: np.ndarray | None = None
    tissue: np.ndarray | None = None
    labels: list[str] = field(default_factory=list)
    empty: list[int] = field(default_factory=list)
    """Channels that are 0 on every valid pixel (an m/z no spectrum holds within the tolerance)."""
    constant: list[int] = field(default_factory=list)
    """Channels with one non-zero value on every valid pixel (an offset, a fill value): no spatial structure."""
    normalized_over: str | None = None
    """What the ``tic`` / ``rms`` normalisation summed over (:data:`NORMALIZED_OVER`); None without one."""
    grid: dict | None = None
    """An imzML section's pixels in its file's coordinates (:func:`latentbridge.io.imzml.pixel_grid`)."""

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.values.shape)

    @property
    def outline(self) -> np.ndarray:
        """The section's extent: its recorded outline, else the valid pixels with their holes filled."""
        return self.tissue if self.tissue is not None else outline_of(self.valid)


def outline_of(valid: np.ndarray) -> np.ndarray:
    """Valid pixels with the holes inside them (dropouts, scan-line gaps) filled."""
    closed = ndimage.binary_closing(valid, structure=np.ones((3, 3), bool), iterations=2, border_value=0)
    return ndimage.binary_fill_holes(closed | valid)


def _is_side_file(p: Path) -> bool:
    return any(p.name[: -len(p.suffix)].endswith(s) for s in _SIDE_FILES)


def list_sections(root: str | Path, fmt: str = "auto", prefer: str | None = None) -> list[dict]:
    """``[{"name", "path", "split", "truth", "tissue"}]`` of the sections under ``root``. ``fmt`` ``"imzml"`` or
    ``"arrays"`` reads that kind of file only; ``"auto"`` reads, where a section is given both as imzML and as an
    array (a manifest listing both files, a folder holding both kinds), the kind ``prefer`` (``"imzml"`` or
    ``"arrays"``; None: a manifest's arrays, a folder's imzML files, as training reads them), and the other kind
    where it is all there is."""
    root = Path(root)
    if not root.exists():
        raise DataError(root, "does not exist")
    if root.is_file():
        return [_entry(root, "train")]
    manifest = root / "manifest.json"
    if manifest.is_file():
        try:
            m = json.loads(manifest.read_text(encoding="utf-8"))
            rows = m["sections"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise DataError(manifest, f"not a tissue manifest ({e})") from None
        out = []
        first = "imzml" if fmt == "imzml" or (fmt == "auto" and prefer == "imzml") else "values"
        other = "values" if first == "imzml" else "imzml"
        for s in rows:
            files = s["files"]
            key = other if fmt == "auto" and first not in files and other in files else first
            if key not in files:
                raise DataError(manifest, f"section {s['name']} has no {key} file")
            out.append({"name": s["name"], "path": root / files[key], "split": s.get("split", "train"),
                        "truth": root / files["truth"] if "truth" in files else None,
                        "tissue": root / files["tissue"] if "tissue" in files else None,
                        "mask": root / files["mask"] if key == "values" else None})
        return out
    imz = sorted(p for p in root.iterdir() if p.suffix.lower() == ".imzml" and not is_hidden(p, root))
    arrays = sorted(p for p in root.iterdir() if p.suffix.lower() in ARRAY_SUFFIXES and p.suffix.lower() != ".png"
                    and not _is_side_file(p) and not is_hidden(p, root))
    paths = arrays if fmt == "arrays" or not imz or (fmt == "auto" and arrays and prefer == "arrays") else imz
    if fmt == "auto" and imz and arrays:  # the other kind's files of other sections are named: they are not read
        read = {p.name[: -len(p.suffix)] for p in paths}
        alone = [p.name for p in (arrays if paths is imz else imz) if p.name[: -len(p.suffix)] not in read]
        log.log(logging.WARNING if alone else logging.INFO, "%s holds imzML and array sections: the %s files are "
                "read%s", root, "imzML" if paths is imz else "array", f", not {', '.join(alone[:5])}"
                + (" ..." if len(alone) > 5 else "") if alone else "")
    if fmt == "imzml" and not imz:
        raise DataError(root, "holds no .imzML files")
    if not paths:
        raise DataError(root, "holds no sections (.imzML, .npy, .npz or .tif files)")
    return [_entry(p, "train") for p in paths]


def _entry(path: Path, split: str) -> dict:
    stem = path.name[: -len(path.suffix)]
    truth = path.with_name(f"{stem}.truth.npy")
    tissue = path.with_name(f"{stem}.tissue.npy")
    return {"name": stem, "path": path, "split": split, "truth": truth if truth.is_file() else None,
            "tissue": tissue if tissue.is_file() else None, "mask": None}


_SUMS = {"tic": "total ion count", "rms": "root mean square"}


def _pixel_divisor(values: np.ndarray, how: str) -> np.ndarray:
    """(H, W) what ``tic`` / ``rms`` normalisation divides each pixel of an array by."""
    v = np.asarray(values, dtype=np.float32)
    return v.sum(-1) if how == "tic" else np.sqrt((v ** 2).mean(-1))


def _divide_pixels(values: np.ndarray, divisor: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return np.where(divisor[..., None] > 0, v / np.maximum(divisor[..., None], 1e-30), 0.0).astype(np.float32)


#: what a ``tic`` / ``rms`` normalisation sums over: every intensity of the pixel's spectrum (imzML only), or the
#: values of the model's channels (the one sum an array holds)
NORMALIZED_OVER = ("spectrum", "channels")


def normalized_over(paths, normalization: str) -> str | None:
    """What a section's ``tic`` / ``rms`` sums over when it is read as a kind of file of its own (a model saved
    without the record, a training set): an imzML file's whole spectrum, an array's channels; ``channels`` for every
    section of a set mixing the two kinds (the one sum both hold); None without a normalisation."""
    if normalization == "none":
        return None
    return "spectrum" if all(Path(p).suffix.lower() == ".imzml" for p in paths) else "channels"


def read_section(path: str | Path, *, mz=None, tolerance: float = 10.0, unit: str = "ppm",
                 normalization: str = "none", over: str | None = None, mask: str | Path | None = None,
                 truth: str | Path | None = None, tissue: str | Path | None = None, name: str | None = None,
                 channels: int | None = None, mask_hint: str = "NAME.mask.npy or .png beside it") -> Section:
    """One section from an imzML file (ion images of ``mz``) or an array file / PNG folder (with its
    mask: ``mask``, else the sibling ``NAME.mask.*``, else every pixel with a non-zero value); ``channels``: the
    channel count a model reads, which settles an array's layout where its shape leaves it open. ``over``: what
    the ``tic`` / ``rms`` normalisation sums over (:data:`NORMALIZED_OVER`; None: the file's own kind, see
    :func:`normalized_over`); an array cannot be divided by its spectrum's (a DataError). ``mask_hint``: how the
    command reading it takes a mask, for the warning of an array without one."""
    path = Path(path)
    stem = name or (path.name[: -len(path.suffix)] if path.suffix else path.name)
    empty_mask = mask_file = None  # a mask file that marks no pixel; the mask file read
    over = over or normalized_over([path], normalization)
    if normalization != "none" and over == "spectrum" and path.suffix.lower() != ".imzml":
        raise DataError(path, f"the model divides each pixel by the {_SUMS[normalization]} of its whole spectrum "
                              f"(data.normalization={normalization}, trained on imzML spectra); an array holds the "
                              "model's channels only, not the spectrum, so that sum cannot be formed: give the "
                              "section as its imzML file, or use a model trained on arrays")
    if path.suffix.lower() == ".imzml":
        if not mz:
            raise ConfigError(f"{path}: give the m/z values to image (data.mz)")
        res = read_ion_images(path, mz, tolerance=tolerance, unit=unit,
                              normalization=normalization if over == "spectrum" else "none")
        values, valid, labels, grid = res.values, res.mask, [f"{m:g}" for m in res.mz], res.grid
        empty = [int(np.flatnonzero(res.mz == m)[0]) for m in res.empty_channels]
        divisor = res.divisor
        if normalization != "none" and over == "channels":  # as an array of the same ion images is read
            divisor = _pixel_divisor(values, normalization)
            values = _divide_pixels(values, divisor)
    else:
        grid = None
        stack = read_array_stack(path, channels=channels)
        values, labels = stack.values, stack.labels
        mask_path = Path(mask) if mask else find_mask(path)
        if mask_path is not None:
            valid, mask_file = read_mask(mask_path, values.shape[:2]), mask_path
            empty_mask = None if valid.any() else mask_path
        else:
            valid = np.asarray(values).any(axis=-1)
            if first_time(("no mask", str(path))):
                log.warning("%s: no mask (%s): the %d of %d pixels with a non-zero value are the section%s; a "
                            "background of low noise counts as section too", path, mask_hint, int(valid.sum()),
                            valid.size, "" if stack.missing is None else " (NaN: no value, outside it)")
        if stack.missing is not None:
            n = int((valid & stack.missing).sum())
            valid = valid & ~stack.missing
            if n:
                log.warning("%s: %d pixel(s) hold NaN: read as pixels without a measurement", path, n)
        divisor = None
        if normalization != "none":
            divisor = _pixel_divisor(values, normalization)
            values = _divide_pixels(values, divisor)
        if not labels and mz:
            labels = [f"{m:g}" for m in mz]
        empty = []
    if divisor is not None and (undefined := valid & ~(np.asarray(divisor) > 0)).any():  # zeroed, kept as valid before
        log.warning("%s: %d pixel(s) with a %s of 0 or less (empty or baseline-corrected spectra): their normalisation is "
                    "undefined, read as pixels without a measurement", path, int(undefined.sum()), normalization)
        valid = valid & ~undefined
    if not valid.any():
        if empty_mask is not None:
            raise DataError(empty_mask, f"the mask of {path.name} marks no pixel as valid")
        raise DataError(path, "no valid pixel")
    t = _load_truth(truth, values.shape, labels) if truth else None
    if t is not None and divisor is not None:  # the clean maps in the values' units: each pixel divided alike
        t = _divide_pixels(t, divisor)
    o = read_mask(tissue, values.shape[:2]) if tissue else None
    lo, hi = _channel_ranges(values, valid)
    empty = sorted(set(empty) | set(np.flatnonzero((lo == 0) & (hi == 0)).tolist()))
    if len(empty) == values.shape[2] and mask_file is not None and (share := _signal_share(values, ~valid)) > 0.5:
        raise DataError(mask_file, f"the pixels it marks valid hold no signal in any channel of {path.name}, while "
                                   f"{share:.0%} of those it leaves out do: an inverted mask? (valid pixels are "
                                   "white or non-zero)")
    constant = [int(c) for c in np.flatnonzero((lo == hi) & (hi != 0))]
    return Section(stem, values, valid, str(path), t, o, list(labels), empty, constant,
                   over if normalization != "none" else None, grid)


def _signal_share(values: np.ndarray, where: np.ndarray, rows: int = 256) -> float:
    """The share of the pixels ``where`` with a non-zero value in some channel (in blocks of rows)."""
    n = int(where.sum())
    hits = sum(int(np.asarray(values[r0:r0 + rows])[where[r0:r0 + rows]].any(axis=-1).sum())
               for r0 in range(0, values.shape[0], rows))
    return hits / n if n else 0.0


def _channel_ranges(values: np.ndarray, valid: np.ndarray, rows: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(C,) each channel's smallest and largest value on the valid pixels (a memory map is read in blocks of rows;
    both 0 without a valid pixel)."""
    lo, hi = np.full(values.shape[2], np.inf), np.full(values.shape[2], -np.inf)
    for r0 in range(0, values.shape[0], rows):
        block = np.asarray(values[r0:r0 + rows])[valid[r0:r0 + rows]]
        if len(block):
            lo, hi = np.minimum(lo, block.min(axis=0)), np.maximum(hi, block.max(axis=0))
    return np.where(np.isfinite(lo), lo, 0.0), np.where(np.isfinite(hi), hi, 0.0)


def constant_text(section: Section) -> str:
    """What a section's constant channels are, for a warning."""
    return (f"{channel_text(section.labels, section.constant)} constant (one value on every valid pixel: an offset "
            "or a fill value): no spatial structure to learn or enhance")


def channel_text(labels: list[str], channels) -> str:
    """Channels by label (m/z) or index, for a message."""
    return ", ".join(labels[c] if c < len(labels) else f"channel {c}" for c in channels)


def same_mz(a: float, b: float) -> bool:
    """Whether two m/z values name one channel (within 1e-3 or 10 ppm: lists written with 3 decimals match).
    The one rule for channel labels, the clean maps' and the model's."""
    return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-3)


def _truth_labels(path: Path) -> list[str]:
    """The m/z of a ``NAME.truth.npy``'s channels: ``NAME.channels.txt``, else the folder's ``manifest.json``."""
    base = path.name[: -len(".truth.npy")] if path.name.endswith(".truth.npy") else path.stem
    if labels := channel_labels(path.with_name(f"{base}.npy")):
        return labels
    if (manifest := path.with_name("manifest.json")).is_file():
        return [f"{m:g}" for m in json.loads(manifest.read_text(encoding="utf-8")).get("mz") or []]
    return []


def _load_truth(path, shape, labels: list[str] | None = None) -> np.ndarray:
    """The clean maps of a section of ``shape`` with channel ``labels`` (m/z): all the section's channels, or
    more, of which those with the section's m/z are taken (a model of some m/z of a folder's sections)."""
    path = Path(path)
    t = load_npy(path, "the clean maps", mmap=True)
    if t.ndim == 3 and tuple(t.shape) != tuple(shape):
        t = channels_last(t, path, n_labels=shape[2])  # written (C, H, W) like its maps
    if t.ndim == 3 and t.shape[:2] == tuple(shape[:2]) and t.shape[2] > shape[2] and labels:
        have = _truth_labels(path)
        if len(have) == t.shape[2]:
            try:
                wanted, known = np.asarray(labels, float), np.asarray(have, float)
            except ValueError:
                wanted = known = None
            if wanted is not None:
                idx = np.abs(known[None, :] - wanted[:, None]).argmin(axis=1)
                if all(same_mz(a, b) for a, b in zip(known[idx], wanted)):
                    return t[..., idx]
    if tuple(t.shape) != tuple(shape):
        raise DataError(path, f"truth of shape {t.shape} does not match the section's {tuple(shape)}")
    return t


#: ``load_sections``'s ``over`` for a model saved without the record: each section as its own kind of file sums (imzML
#: its spectrum, an array its channels), as every model was trained before the record
PER_FILE = "per file"


def load_sections(data_cfg, over: str | None = None) -> tuple[list[Section], list[Section], list[float] | None]:
    """The training and test sections of a ``data`` config section, and the m/z list used; ``over``: what the
    ``tic`` / ``rms`` normalisation sums over (a saved model's record, or :data:`PER_FILE`; None: a new training's,
    :func:`normalized_over` of the files)."""
    from latentbridge.data.spatial_labels import check_sections

    if not data_cfg.root:
        raise ConfigError("data.root: no sections given (a folder from `latentbridge data synth tissue`, "
                          "a folder of imzML / array files, or one file)")
    entries = list_sections(data_cfg.root, data_cfg.format)
    mz = data_cfg.mz
    manifest = Path(data_cfg.root) / "manifest.json"
    if mz is None and manifest.is_file():
        mz = json.loads(manifest.read_text(encoding="utf-8")).get("mz")
    test_names = set(data_cfg.test_sections or [])
    if test_names:
        unknown = test_names - {e["name"] for e in entries}
        if unknown:
            raise ConfigError(f"data.test_sections: no section named {sorted(unknown)} under {data_cfg.root}")
    train, test = [], []
    kinds = {Path(e["path"]).suffix.lower() == ".imzml" for e in entries}
    over = over or normalized_over([e["path"] for e in entries], data_cfg.normalization)
    if len(kinds) > 1 and over == "channels":  # a spectrum's sum for some sections, the channels' for others
        log.warning("%s mixes imzML and array sections: data.normalization=%s divides every pixel by its channels' "
                    "%s (the one sum an array holds), an imzML pixel's too", data_cfg.root, data_cfg.normalization,
                    _SUMS[data_cfg.normalization])
    for e in entries:
        s = read_section(e["path"], mz=mz, tolerance=data_cfg.tolerance, unit=data_cfg.tolerance_unit,
                         normalization=data_cfg.normalization, mask=e.get("mask"), truth=e["truth"],
                         over=normalized_over([e["path"]], data_cfg.normalization) if over == PER_FILE else over,
                         tissue=e["tissue"], name=e["name"])
        is_test = e["name"] in test_names if test_names else e["split"] == "test"
        (test if is_test else train).append(s)
    if not train:
        raise DataError(data_cfg.root, "no training section (every section is in the test split)")
    check_sections(train + test, mz, data_cfg.root)  # one file a name, one channel count, m/z labels in one order
    nowhere = set.intersection(*(set(s.empty) for s in train))
    if nowhere:
        raise DataError(data_cfg.root, f"{channel_text(train[0].labels, sorted(nowhere))}: no signal in any "
                        "training section"
                        + (f" within the tolerance ({data_cfg.tolerance:g} {data_cfg.tolerance_unit}): check data.mz "
                           "and data.tolerance" if mz else " (all zero): drop the channel"))
    for s in train + test:
        if s.empty:
            log.warning("%s: no signal in %s", s.source, channel_text(s.labels, s.empty))
        if s.constant:
            log.warning("%s: %s", s.source, constant_text(s))
    return train, test, mz


# ----------------------------------------------------------------------------- normalisation, coordinates


_IMMERKAER = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])


def noise_sigma(img: np.ndarray, where: np.ndarray | None = None) -> float:
    """Standard deviation of additive white noise in a 2-D image (Immerkaer 1996: the mean absolute
    response to the difference of two Laplacians, which cancels smooth structure), over the pixels
    ``where`` whose 3 x 3 neighbourhood lies inside ``where`` (default: every interior pixel)."""
    resp = ndimage.convolve(np.asarray(img, dtype=np.float64), _IMMERKAER, mode="nearest")
    if where is None:
        inner = np.zeros(resp.shape, bool)
        inner[1:-1, 1:-1] = True
    else:
        inner = ndimage.binary_erosion(where, structure=np.ones((3, 3), bool), border_value=0)
    vals = np.abs(resp[inner])
    return float(np.sqrt(np.pi / 2.0) * vals.mean() / 6.0) if vals.size else 0.0


def channel_statistics(sections: list[Section], scaling: str = "std") -> dict[str, list[float]]:
    """Per-channel centre and scale of the normalisation, and the normalised range
    ``[(min(min, 0) - mean) / scale, (max - mean) / scale]`` (the bounded reconstruction). The centre is
    the mean of the valid pixels; the scale their standard deviation (``scaling="std"``) or the
    channel's noise level (``"noise"``: the median over sections of :func:`noise_sigma`, so that the
    noise has unit variance in every channel and the squared error weighs channels by their
    signal-to-noise ratio)."""
    n, s1, s2, mn, mx = 0, 0.0, 0.0, None, None
    for s in sections:
        v = np.asarray(s.values, dtype=np.float64)[s.valid]
        n += len(v)
        s1 = s1 + v.sum(0)
        s2 = s2 + (v ** 2).sum(0)
        mn = v.min(0) if mn is None else np.minimum(mn, v.min(0))
        mx = v.max(0) if mx is None else np.maximum(mx, v.max(0))
    mean = s1 / n
    std = np.sqrt(np.maximum(s2 / n - mean ** 2, 0.0))
    if scaling == "noise":
        per = [[noise_sigma(_filled(s, c), s.valid) for c in range(s.shape[2])] for s in sections]
        noise = np.median(np.asarray(per), axis=0)
        std = np.where(noise > 1e-6 * np.maximum(std, 1e-30), noise, std)
    elif scaling != "std":
        raise ValueError(f"scaling must be 'std' or 'noise', got {scaling!r}")
    std = np.where(std > 0, std, 1.0)
    return {"center": mean.tolist(), "scale": std.tolist(), "lower": ((np.minimum(mn, 0.0) - mean) / std).tolist(),
            "upper": ((mx - mean) / std).tolist()}


def _filled(s: Section, c: int) -> np.ndarray:
    """Channel ``c`` of a section with invalid pixels set to their nearest valid neighbour."""
    idx = ndimage.distance_transform_edt(~s.valid, return_distances=False, return_indices=True)
    return np.asarray(s.values[..., c], dtype=np.float64)[idx[0], idx[1]]


def normalize(values: np.ndarray, spec) -> np.ndarray:
    return ((np.asarray(values, dtype=np.float32) - np.asarray(spec.center, np.float32))
            / np.asarray(spec.scale, np.float32))


def denormalize(values: np.ndarray, spec) -> np.ndarray:
    return np.asarray(values, dtype=np.float32) * np.asarray(spec.scale, np.float32) + np.asarray(spec.center,
                                                                                                  np.float32)


def coordinate_frame(mask: np.ndarray) -> tuple[float, float, float, float]:
    """(row0, row1, col0, col1): the bounding box of ``mask``, mapped to [-1, 1] by :func:`coords_of`."""
    rows, cols = np.nonzero(np.asarray(mask).any(1))[0], np.nonzero(np.asarray(mask).any(0))[0]
    if not len(rows):
        raise ValueError("empty mask")
    return float(rows[0]), float(rows[-1]), float(cols[0]), float(cols[-1])


def coords_of(frame, y0: int, x0: int, h: int, w: int) -> np.ndarray:
    """(2, h, w) coordinates of the pixels [y0, y0 + h) x [x0, x0 + w) in a section's frame."""
    r0, r1, c0, c1 = frame
    ys = -1.0 + 2.0 * (np.arange(y0, y0 + h) - r0) / max(r1 - r0, 1.0)
    xs = -1.0 + 2.0 * (np.arange(x0, x0 + w) - c0) / max(c1 - c0, 1.0)
    return np.stack(np.meshgrid(ys, xs, indexing="ij")).astype(np.float32)


# ----------------------------------------------------------------------------- corruptions and patches


def hide_pixels(valid: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A mask of pixels to hide among ``valid``: about ``fraction`` of them, half at random, half in
    small discs, and with probability 0.3 a scan-line gap."""
    h, w = valid.shape
    hidden = rng.random((h, w)) < fraction / 2
    target = fraction * valid.sum()
    yy, xx = np.mgrid[:h, :w]
    for _ in range(64):
        if (hidden & valid).sum() >= target:
            break
        r = rng.uniform(1.0, 3.5)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        hidden |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    if rng.random() < 0.3:
        row, start = rng.integers(0, h), rng.integers(0, w)
        hidden[row, start:start + rng.integers(w // 8 + 1, w // 2 + 2)] = True
    return hidden & valid


def coarse_input(values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2 x 2 block means of the valid pixels repeated over each block, and the blocks' validity
    (even-sized (h, w, C) input)."""
    h, w, c = values.shape
    v = valid.astype(np.float32)
    tot = (values * v[..., None]).reshape(h // 2, 2, w // 2, 2, c).sum((1, 3))
    cnt = v.reshape(h // 2, 2, w // 2, 2).sum((1, 3))
    mean = np.where(cnt[..., None] > 0, tot / np.maximum(cnt, 1)[..., None], 0.0)
    ok = cnt > 0
    return (np.repeat(np.repeat(mean, 2, 0), 2, 1).astype(np.float32), np.repeat(np.repeat(ok, 2, 0), 2, 1))


MODES = ("denoise", "inpaint", "upscale")


@dataclass
class PreparedSection:
    """A section normalised for training: values (H, W, C) float32, valid, frame, and (when known) the
    normalised clean map and the outline."""

    values: np.ndarray
    valid: np.ndarray
    frame: tuple[float, float, float, float]
    truth: np.ndarray | None = None
    outline: np.ndarray | None = None


def prepare(sections: list[Section], spec) -> list[PreparedSection]:
    out = []
    for s in sections:
        t = normalize(s.truth, spec) if s.truth is not None else None
        out.append(PreparedSection(np.where(s.valid[..., None], normalize(s.values, spec), 0.0).astype(np.float32),
                                   np.asarray(s.valid, bool), coordinate_frame(s.valid), t,
                                   np.asarray(s.outline, bool)))
    return out


def make_patch(sec: PreparedSection, y0: int, x0: int, size: int, mode: str, patches_cfg,
               rng: np.random.Generator, target: str = "measured", blind_spot: int = 0) -> dict[str, np.ndarray]:
    """One training example (numpy) of a prepared section at (y0, x0) in the given corruption mode;
    the target is the measured patch at its valid pixels (``blind_spot`` > 1: at its hidden pixels),
    or (``target="clean"``) the clean patch at every pixel of the section's outline."""
    v = sec.values[y0:y0 + size, x0:x0 + size]
    ok = sec.valid[y0:y0 + size, x0:x0 + size]
    coarse = np.zeros(ok.shape, dtype=bool)
    if mode == "denoise" and blind_spot > 1:
        observed = ok & (rng.random(ok.shape) >= 1.0 / blind_spot)
        x = v * observed[..., None]
    elif mode == "denoise":
        x, observed = v, ok
    elif mode == "inpaint":
        lo, hi = patches_cfg.hide_fraction
        observed = ok & ~hide_pixels(ok, rng.uniform(lo, hi), rng)
        x = v * observed[..., None]
    elif mode == "upscale":
        x, observed = coarse_input(v, ok)
        coarse = observed
    else:
        raise ValueError(f"unknown mode {mode!r}")
    ex = {"x": np.moveaxis(x, 2, 0), "observed": observed[None], "coarse": coarse[None],
          "coords": coords_of(sec.frame, y0, x0, size, size), "target": np.moveaxis(v, 2, 0), "target_valid": ok[None]}
    if blind_spot > 1 and mode != "upscale":
        ex["target_valid"] = (ok & ~observed)[None]
    if sec.truth is not None:
        ex["truth"] = np.moveaxis(sec.truth[y0:y0 + size, x0:x0 + size], 2, 0)
        if target == "clean":
            ex["target"] = ex["truth"]
            ex["target_valid"] = sec.outline[y0:y0 + size, x0:x0 + size][None]
    return {k: np.ascontiguousarray(a, dtype=np.float32) for k, a in ex.items()}


class PatchDataset(torch.utils.data.Dataset):
    """Random patches of prepared sections (see the module docstring). ``fixed=True`` draws them once
    (validation: the same patches every epoch); otherwise every item is drawn afresh from the
    dataset's generator."""

    def __init__(self, sections: list[PreparedSection], patches_cfg, n: int, seed: int, fixed: bool = False,
                 target: str = "measured", blind_spot: int = 0):
        self.sections = sections
        self.target = target
        self.blind_spot = int(blind_spot) if target == "measured" else 0
        if target == "clean" and any(s.truth is None for s in sections):
            raise ConfigError("data.target=clean: every training section needs its clean map (NAME.truth.npy)")
        self.cfg = patches_cfg
        self.size = int(patches_cfg.size)
        self.n = int(n)
        self.rng = np.random.default_rng(seed)
        small = [s.valid.shape for s in sections if min(s.valid.shape) < self.size]
        if small:
            which = "validation" if fixed else "training"
            raise ConfigError(f"patches.size: {len(small)} of the {len(sections)} {which} section(s) smaller than "
                              f"{self.size} pixels "
                              f"(e.g. {small[0][0]} x {small[0][1]}); choose a smaller patch size")
        freqs = np.array([patches_cfg.denoise, patches_cfg.inpaint, patches_cfg.upscale], dtype=np.float64)
        self.mode_p = freqs / freqs.sum()
        weights = np.array([s.valid.sum() for s in sections], dtype=np.float64)
        self.section_p = weights / weights.sum()
        self.items = [self._draw() for _ in range(self.n)] if fixed else None

    def _draw(self) -> dict[str, torch.Tensor]:
        rng, p = self.rng, self.size
        for _ in range(100):
            sec = self.sections[rng.choice(len(self.sections), p=self.section_p)]
            h, w = sec.valid.shape
            y0 = 2 * rng.integers(0, (h - p) // 2 + 1)
            x0 = 2 * rng.integers(0, (w - p) // 2 + 1)
            if sec.valid[y0:y0 + p, x0:x0 + p].mean() >= self.cfg.min_valid:
                break
        mode = MODES[rng.choice(3, p=self.mode_p)]
        ex = make_patch(sec, int(y0), int(x0), p, mode, self.cfg, rng, self.target, self.blind_spot)
        ex["mode"] = np.float32(MODES.index(mode))
        return {k: torch.from_numpy(np.asarray(a)) for k, a in ex.items()}

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.items[i] if self.items is not None else self._draw()
