"""Synthetic tissue sections for mass-spectrometry imaging: the built-in spatial-map data set.

Each section is a coronal brain-like slice on a pixel grid: a wavy oval outline with a dorsal
midline notch, and anatomical regions drawn from normalised coordinates after a random affine
deformation (rotation, anisotropic scale, shift) and a random wobble of the outline:

==  ==============  ==========================================================
0   outer cortex    outer band of the section (depth < 0.10 of the radius)
1   inner cortex    depth 0.10-0.22
2   white matter    depth 0.22-0.29, and the corpus-callosum arc above the centre
3   ventricles      two small ellipses beside the midline (little lipid)
4   striatum        two ellipses left and right
5   hippocampus     two curved bands below them
6   thalamus        a central ellipse below the centre
7   other           the rest of the section
==  ==============  ==========================================================

Chemistry (shared by every section of a data set, from ``SeedSequence(seed, spawn_key=(0,))``):
each lipid channel has a log-normal overall level (a 10x spread between channels), a log-normal
abundance per region, raised 3-fold in one or two regions it marks, and far lower in the
ventricles. Section ``i`` (``spawn_key=(1, i)``) draws its geometry, a smooth multiplicative
gradient per channel (a linear slope plus a shared low-frequency field), the noise and the
dropouts.

- *clean* map (the ground truth): ``sum_r f_r(x) A[r, c] g_c(x)`` with ``f_r`` the region's
  partial-volume fraction (its indicator blurred by a 0.8-pixel Gaussian), 0 outside the section;
- *noisy* map: Poisson counts of the clean map (values are counts) plus Gaussian read noise of
  ``read_noise`` counts, clipped at 0;
- *dropouts*: ``dropout`` of the section's pixels missing at random plus one or two short scan-line
  gaps; they are 0 in the arrays and have no spectrum in the imzML file.

Layout written by :func:`synth_tissue`, per section ``NAME`` (``section_01`` ...)::

    NAME.npy            noisy maps (H, W, C) float32, 0 at invalid pixels
    NAME.mask.npy       valid pixels: inside the section and not dropped (H, W) bool
    NAME.truth.npy      clean maps (H, W, C) float32
    NAME.tissue.npy     the section's outline (H, W) bool
    NAME.channels.txt   the m/z of every channel, one a line
    NAME.imzML/.ibd     the same noisy section as processed-mode spectra (one per valid pixel):
                        every lipid peak at its m/z with a 2-ppm jitter, its first isotope
                        (+1.00336, 40 %) and ten background peaks
    manifest.json       parameters, m/z list, regions, abundance table, each section's split

The last ``test_sections`` sections are the test split (``latentbridge evaluate``). Arrays are
written channel by channel into memory-mapped ``.npy`` files, so a 1000 x 1000 x 50 section needs
a few region maps in memory, not the cube.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from latentbridge.data.synth import check_int, check_out_dir
from latentbridge.data.synth import rounded as _r
from latentbridge.data.synth import seed_sequence

REGIONS = ("outer_cortex", "inner_cortex", "white_matter", "ventricles", "striatum", "hippocampus",
           "thalamus", "other")

#: m/z of common positive-mode brain lipid ions ([M+H]+, [M+Na]+, [M+K]+ of PC, SM, PE, HexCer), used as
#: channel labels and peak positions; more channels get values spread over 600-900 between them
LIPID_MZ = (734.569, 760.585, 782.567, 786.601, 788.616, 798.541, 806.569, 810.601, 826.573, 828.551,
            832.583, 834.601, 844.525, 848.557, 872.557, 731.606, 753.588, 769.562, 790.539, 812.545)

ISOTOPE_SHIFT = 1.00336
DEFAULTS: dict[str, Any] = dict(sections=10, test_sections=2, height=80, width=96, channels=20, seed=0,
                                read_noise=1.0, count_scale=1.0, dropout=0.03, imzml=True)


def channel_mz(n: int) -> list[float]:
    """The m/z of ``n`` channels: the lipid list, then values spread over 600-900 away from it."""
    mz = list(LIPID_MZ[:n])
    k = 0
    while len(mz) < n:
        cand = round(600.0 + (k * 0.61803398875 % 1.0) * 300.0, 4)
        k += 1
        if all(abs(cand - m) > 0.05 and abs(cand - m - ISOTOPE_SHIFT) > 0.05 and abs(m - cand - ISOTOPE_SHIFT) > 0.05
               for m in mz):
            mz.append(cand)
    return mz


def chemistry(seed: int, channels: int) -> dict[str, np.ndarray]:
    """Region x channel abundance table (counts) shared by the sections of a data set."""
    rng = np.random.default_rng(seed_sequence((seed, 0)))
    level = np.exp(rng.normal(np.log(40.0), 0.8, size=channels))
    table = np.exp(rng.normal(0.0, 0.35, size=(len(REGIONS), channels)))
    for c in range(channels):
        for r in rng.choice([0, 1, 2, 4, 5, 6], size=rng.integers(1, 3), replace=False):
            table[r, c] *= 3.0
    table[REGIONS.index("ventricles")] *= 0.12
    return {"abundance": (table * level).astype(np.float64), "level": level}


def _ellipse(u, v, cu, cv, ru, rv):
    return ((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2


def anatomy(height: int, width: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """Region fractions (R, H, W) float32 (summing to the tissue indicator) and the outline (H, W)."""
    aspect = width / height
    yy = (np.arange(height, dtype=np.float64) + 0.5) / height * 2 - 1
    xx = ((np.arange(width, dtype=np.float64) + 0.5) / width * 2 - 1) * aspect
    v0, u0 = np.meshgrid(yy, xx, indexing="ij")
    angle = rng.uniform(-0.14, 0.14)
    su, sv = rng.uniform(0.9, 1.05), rng.uniform(0.9, 1.05)
    du, dv = rng.uniform(-0.05, 0.05, size=2)
    ca, sa = math.cos(angle), math.sin(angle)
    u = ((u0 - du) * ca + (v0 - dv) * sa) / su
    v = (-(u0 - du) * sa + (v0 - dv) * ca) / sv
    ru, rv = 0.95 * min(aspect, 1.25), 0.9
    theta = np.arctan2(v / rv, u / ru)
    wobble = 1.0 + sum(rng.uniform(-0.04, 0.04) * np.cos(k * theta + rng.uniform(0, 2 * math.pi)) for k in (2, 3, 5))
    rho = np.sqrt((u / ru) ** 2 + (v / rv) ** 2) / wobble
    notch = (np.abs(u) < 0.04 * ru) & (v < -0.8 * rv)
    tissue = (rho < 1.0) & ~notch
    depth = 1.0 - rho
    label = np.full(u.shape, REGIONS.index("other"), dtype=np.int64)
    m = np.abs(u) / ru  # symmetric structures
    hemi = np.sign(u)
    layers = [
        ("thalamus", _ellipse(u, v, 0.0, 0.32 * rv, 0.28 * ru, 0.2 * rv) < 1),
        ("hippocampus", np.abs(np.sqrt(_ellipse(m, v, 0.38, 0.38 * rv, 0.2, 0.14 * rv)) - 1) < 0.3),
        ("striatum", _ellipse(m, v, 0.42, -0.05 * rv, 0.2, 0.2 * rv) < 1),
        ("ventricles", _ellipse(m, v, 0.12, -0.12 * rv, 0.04, 0.13 * rv) < 1),
        ("white_matter", (depth < 0.29) | ((np.abs(np.sqrt(_ellipse(u, v, 0, 0.05 * rv, 0.62 * ru, 0.5 * rv)) - 1)
                                           < 0.07) & (v < 0.05 * rv))),
        ("inner_cortex", depth < 0.22),
        ("outer_cortex", depth < 0.10),
    ]
    for name, where in layers:
        label[where] = REGIONS.index(name)
    del hemi
    fractions = np.empty((len(REGIONS), height, width), dtype=np.float32)
    for r in range(len(REGIONS)):
        fractions[r] = ndimage.gaussian_filter((label == r).astype(np.float32), 0.8, mode="nearest")
    fractions /= np.maximum(fractions.sum(0, keepdims=True), 1e-6)
    fractions *= tissue
    geometry = {"rotation_rad": _r(angle), "scale": [_r(su), _r(sv)], "shift": [_r(du), _r(dv)]}
    return fractions, tissue, geometry


def gradients(height: int, width: int, channels: int, rng: np.random.Generator):
    """A function ``c -> (H, W)`` multiplicative gradient: a per-channel slope times a shared smooth field."""
    yy, xx = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
    field = np.zeros((height, width))
    for _ in range(3):
        f = rng.uniform(0.3, 1.0, size=2) * math.pi
        field += rng.uniform(0.03, 0.07) * np.sin(f[0] * yy + f[1] * xx + rng.uniform(0, 2 * math.pi))
    slopes = rng.normal(0.0, 0.12, size=(channels, 2))
    shared = field.astype(np.float32)

    def of(c: int) -> np.ndarray:
        return np.exp(shared + (slopes[c, 0] * yy + slopes[c, 1] * xx).astype(np.float32))

    return of


def dropouts(tissue: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Missing pixels inside the section: ``fraction`` at random plus one or two scan-line gaps."""
    h, w = tissue.shape
    out = (rng.random((h, w)) < fraction) & tissue
    for _ in range(rng.integers(1, 3)):
        row = rng.integers(0, h)
        start = rng.integers(0, max(1, w - w // 4))
        out[row, start:start + rng.integers(w // 8, w // 4 + 1)] = True
    return out & tissue


def write_section(folder: Path, name: str, *, seed: int, index: int, height: int, width: int, mz: list[float],
                  abundance: np.ndarray, read_noise: float, count_scale: float, dropout: float,
                  imzml: bool) -> dict:
    """Write one section's arrays (channel by channel, memory-mapped) and its imzML file."""
    from latentbridge.io.arrays import npy_to_fill

    rng = np.random.default_rng(seed_sequence((seed, 1, index)))
    fractions, tissue, geometry = anatomy(height, width, rng)
    grad = gradients(height, width, len(mz), rng)
    missing = dropouts(tissue, dropout, rng)
    valid = tissue & ~missing
    noisy = npy_to_fill(folder / f"{name}.npy", (height, width, len(mz)))
    truth = npy_to_fill(folder / f"{name}.truth.npy", (height, width, len(mz)))
    flat = fractions.reshape(len(REGIONS), -1)
    for c in range(len(mz)):
        clean = (abundance[:, c] @ flat).reshape(height, width).astype(np.float32) * grad(c) * count_scale
        clean *= tissue
        counts = rng.poisson(np.maximum(clean, 0.0)).astype(np.float32)
        obs = np.maximum(counts + rng.normal(0.0, read_noise, size=clean.shape).astype(np.float32), 0.0)
        truth[..., c] = clean / count_scale
        noisy[..., c] = np.where(valid, obs / count_scale, 0.0)
    noisy.flush()
    truth.flush()
    np.save(folder / f"{name}.mask.npy", valid)
    np.save(folder / f"{name}.tissue.npy", tissue)
    (folder / f"{name}.channels.txt").write_text("".join(f"{m}\n" for m in mz), encoding="utf-8")
    if imzml:
        _write_spectra(folder / f"{name}.imzML", noisy, valid, mz, rng)
    del noisy, truth
    return {"name": name, "height": height, "width": width, "n_tissue_pixels": int(tissue.sum()),
            "n_dropouts": int(missing.sum()), "geometry": geometry,
            "files": {"values": f"{name}.npy", "mask": f"{name}.mask.npy", "truth": f"{name}.truth.npy",
                      "tissue": f"{name}.tissue.npy", **({"imzml": f"{name}.imzML"} if imzml else {})}}


def _write_spectra(path: Path, noisy: np.ndarray, valid: np.ndarray, mz: list[float], rng) -> None:
    from latentbridge.io.imzml import write_imzml

    mz_arr = np.asarray(mz, dtype=np.float64)

    def spectra():
        for r, c in zip(*np.nonzero(valid)):
            peaks = mz_arr * (1.0 + rng.normal(0.0, 2e-6, size=len(mz_arr)))
            bg = rng.uniform(600.0, 900.0, size=10)
            bg = bg[np.min(np.abs(bg[:, None] - np.r_[mz_arr, mz_arr + ISOTOPE_SHIFT][None]), axis=1) > 0.1]
            ints = np.asarray(noisy[r, c], dtype=np.float64)
            all_mz = np.r_[peaks, peaks + ISOTOPE_SHIFT, bg]
            all_int = np.r_[ints, 0.4 * ints, rng.gamma(2.0, 2.0, size=len(bg))]
            order = np.argsort(all_mz)
            yield int(r), int(c), all_mz[order], all_int[order]

    write_imzml(path, spectra(), mode="processed", shape=valid.shape)


def synth_tissue(out_dir: str | Path, *, sections: int = DEFAULTS["sections"],
                 test_sections: int = DEFAULTS["test_sections"], height: int = DEFAULTS["height"],
                 width: int = DEFAULTS["width"], channels: int = DEFAULTS["channels"], seed: int = DEFAULTS["seed"],
                 read_noise: float = DEFAULTS["read_noise"], count_scale: float = DEFAULTS["count_scale"],
                 dropout: float = DEFAULTS["dropout"], imzml: bool = DEFAULTS["imzml"],
                 overwrite: bool = False) -> dict[str, Any]:
    """Write the synthetic tissue data set to ``out_dir`` (layout in the module docstring); return its
    manifest. ``count_scale`` multiplies the expected counts (higher = less Poisson noise); the arrays
    are in the abundance units (counts / ``count_scale``)."""
    out_dir = Path(out_dir)
    sections = check_int("sections", sections, 1, 9999)
    test_sections = check_int("test_sections", test_sections, 0, sections)
    height, width = check_int("height", height, 16, 100000), check_int("width", width, 16, 100000)
    channels = check_int("channels", channels, 1, 1000)
    if not (0.0 <= dropout < 0.5):
        raise ValueError(f"dropout must be in [0, 0.5), got {dropout}")
    if not (math.isfinite(read_noise) and read_noise >= 0):
        raise ValueError(f"read_noise must be a finite number >= 0, got {read_noise}")
    if not (math.isfinite(count_scale) and 0 < count_scale <= 1e6):  # (inf: numpy's 'lam value too large')
        raise ValueError(f"count_scale must be a number above 0, at most 1e6, got {count_scale}")
    check_out_dir(out_dir, overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed = int(seed)
    mz = channel_mz(channels)
    chem = chemistry(seed, channels)
    rows = []
    for i in range(sections):
        name = f"section_{i + 1:02d}"
        info = write_section(out_dir, name, seed=seed, index=i, height=height, width=width, mz=mz,
                             abundance=chem["abundance"], read_noise=float(read_noise),
                             count_scale=float(count_scale), dropout=float(dropout), imzml=bool(imzml))
        info["split"] = "test" if i >= sections - test_sections else "train"
        rows.append(info)
    manifest = {
        "dataset": "latentbridge synthetic tissue sections", "version": 1, "seed": seed,
        "parameters": {"sections": sections, "test_sections": test_sections, "height": height, "width": width,
                       "channels": channels, "read_noise": float(read_noise), "count_scale": float(count_scale),
                       "dropout": float(dropout), "imzml": bool(imzml)},
        "mz": mz, "regions": list(REGIONS),
        "abundance": [[_r(a, 4) for a in row] for row in chem["abundance"].tolist()],
        "noise": "Poisson counts of the clean map plus Gaussian read noise, clipped at 0",
        "sections": rows,
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
