"""imzML mass-spectrometry images: ion images for chosen m/z values, and a writer.

An imzML file (XML metadata) comes with an ``.ibd`` binary file holding one m/z array and one
intensity array per pixel; *continuous* files share one m/z array between all spectra, *processed*
files store one per spectrum. :func:`read_ion_images` parses the metadata with ``pyimzml`` and reads
the ``.ibd`` spectrum by spectrum (a seek and a read per spectrum, never the whole file): memory is
one spectrum plus the (H, W, C) result.

Ion image of a target m/z ``m``: the sum (or the maximum, ``reduce="max"``) of the intensities whose
m/z lies in ``[m - tol, m + tol]``, ``tol = m * tolerance * 1e-6`` for ``unit="ppm"`` and
``tol = tolerance`` for ``unit="da"``. Per-pixel normalisation: ``"tic"`` divides by the spectrum's
total ion count (the sum of all its intensities), ``"rms"`` by its root mean square, ``"none"``
keeps raw intensities. Pixel coordinates are imzML's 1-based (x, y): row ``y - 1``, column ``x - 1``; on the
spectra's own grid, with a warning, where they step by more than 1 (a coarser raster) or fill less than a quarter of
the grid from (1, 1) (a section cut from a larger raster; a margin around a section is kept, so that arrays of the
raster beside it align), and on the coordinates' grid, with a warning, where the header's ``max count of pixels``
declares a grid over four times their extent; pixels without a spectrum are 0 and ``mask`` is False there.

``pyimzml`` is imported when a file is read or written, so ``import latentbridge.io`` stays light.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from latentbridge.errors import DataError, reading_memory_error
from latentbridge.utils import first_time

log = logging.getLogger(__name__)

NORMALIZATIONS = ("none", "tic", "rms")
TOLERANCE_UNITS = ("ppm", "da")


@dataclass
class IonImages:
    """Ion images of one imzML file."""

    values: np.ndarray
    """(H, W, C) float32: one image per target m/z (0 where the pixel has no spectrum)."""
    mask: np.ndarray
    """(H, W) bool: pixels that have a spectrum."""
    mz: np.ndarray
    """(C,) the target m/z values."""
    tic: np.ndarray
    """(H, W) float32 total ion count of every pixel's spectrum (0 without one)."""
    mode: str
    """``continuous`` or ``processed``."""
    source: str
    empty_channels: list[float] = field(default_factory=list)
    """Target m/z values with no intensity in any spectrum (a tolerance too tight, a wrong m/z)."""
    divisor: np.ndarray | None = None
    """(H, W) what each pixel's images were divided by (``tic`` or ``rms`` normalisation; None without one)."""
    grid: dict | None = None
    """Where the maps' pixels lie in the file's coordinates (:func:`pixel_grid`)."""

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.mask.shape)


def overlapping_windows(mz, tolerance: float, unit: str = "ppm") -> list[tuple[float, float]]:
    """The pairs of neighbouring m/z values whose windows (:func:`mz_windows`) overlap: a peak between them is counted
    in both channels (153 and 153.05 at 0.1 Da read the same ion image, without a word)."""
    values = np.sort(np.asarray(mz, dtype=np.float64))
    w = mz_windows(values, tolerance, unit)
    return [(float(a), float(b)) for a, b, hi, lo in zip(values[:-1], values[1:], w[:-1, 1], w[1:, 0]) if lo <= hi]


def mz_windows(mz, tolerance: float, unit: str = "ppm") -> np.ndarray:
    """(C, 2) ``[low, high]`` m/z windows around each target value."""
    mz = np.asarray(mz, dtype=np.float64).reshape(-1)
    if unit not in TOLERANCE_UNITS:
        raise ValueError(f"tolerance unit must be one of {TOLERANCE_UNITS}, got {unit!r}")
    if tolerance <= 0:
        raise ValueError(f"tolerance must be > 0, got {tolerance}")
    half = mz * tolerance * 1e-6 if unit == "ppm" else np.full_like(mz, float(tolerance))
    return np.stack([mz - half, mz + half], axis=1)


def _ibd_path(path: Path) -> Path:
    for cand in (path.with_suffix(".ibd"), path.with_suffix(".IBD")):
        if cand.is_file():
            return cand
    raise DataError(path, f"no binary file {path.with_suffix('.ibd').name} beside it (imzML needs its .ibd)")


def open_imzml(path: str | Path):
    """The ``pyimzml`` parser of ``path`` (metadata only; close it with ``parser.m.close()``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "imzML file does not exist")
    ibd = _ibd_path(path)
    try:
        from pyimzml.ImzMLParser import ImzMLParser
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise DataError(path, f"reading imzML needs pyimzml ({e})") from None
    fh = open(ibd, "rb")  # noqa: SIM115 - the parser keeps it (closed with parser.m.close())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pyimzml warns about optional metadata it does not know
            parser = ImzMLParser(str(path), parse_lib="ElementTree", ibd_file=fh)
    except Exception as e:  # noqa: BLE001 - XML errors, missing attributes: the file is unusable
        fh.close()
        if isinstance(e, MemoryError):  # too little memory is no fault of the file
            raise reading_memory_error(path, e) from None
        raise DataError(path, f"not a readable imzML file ({type(e).__name__}: {str(e)[:200]})") from None
    if not parser.coordinates:
        parser.m.close()
        raise DataError(path, "holds no spectra")
    if not any(parser.intensityLengths or ()):  # (it was 'no signal in any of the model's channels')
        parser.m.close()
        raise DataError(path, f"every one of its {len(parser.coordinates)} spectra is empty (no m/z values)")
    try:
        _check_ibd_uuid(parser, path, ibd, fh)
        _check_uncompressed(parser, path)
        _check_ibd_length(parser, path, ibd, os.fstat(fh.fileno()).st_size)
    except DataError:
        parser.m.close()
        raise
    return parser


def _check_ibd_uuid(parser, path: Path, ibd: Path, fh) -> None:
    """Refuse an ``.ibd`` whose first 16 bytes are not the UUID its imzML names: a binary file of another export
    beside it (long enough, it was read as spectra: m/z values as intensities, every other pixel 764.6 where the
    right pair reads 8.5-11.4)."""
    try:
        named = str(parser.metadata.file_description.param_by_name.get("universally unique identifier") or "")
    except AttributeError:  # no file description the parser understood: nothing to compare
        return
    named = named.strip("{}").replace("-", "").lower()
    pos = fh.tell()
    fh.seek(0)
    head = fh.read(16).hex()
    fh.seek(pos)
    if len(head) < 32:  # not another export's file: too short to hold a UUID (read as "starts with the UUID ")
        raise DataError(path, f"{ibd.name} is empty (0 bytes)" if not head else
                        f"{ibd.name} is cut short: it holds {len(head) // 2} bytes, fewer than the 16 of the UUID it "
                        "starts with, and none of the spectra")
    if len(named) == 32 and head != named:
        raise DataError(path, f"{ibd.name} belongs to another imzML: it starts with the UUID {head}, this file names "
                              f"{named} (a binary file from another export, paired by name?)")


def _check_uncompressed(parser, path: Path) -> None:
    """Refuse binary arrays stored compressed (zlib: pyimzml reads them as raw values): a complete file was refused as
    truncated, its compressed lengths read as counts of values, and with bytes enough read as floats."""
    groups = getattr(getattr(parser, "metadata", None), "referenceable_param_groups", None) or {}
    packed = [name for name, g in groups.items()
              if any("compression" in str(k) and str(k) != "no compression" for k in (g.param_by_name or {}))]
    if packed:
        how = sorted({str(k) for g in packed for k in groups[g].param_by_name if "compression" in str(k)})
        raise DataError(path, f"its binary arrays ({', '.join(packed)}) are stored compressed ({', '.join(how)}), "
                              "which this reader does not decompress: export the imzML without compression")


def _check_ibd_length(parser, path: Path, ibd: Path, size: int) -> None:
    """Refuse an ``.ibd`` shorter than its spectra's declared offsets and lengths (pyimzml reads the
    spectra past its end as empty arrays: a cut file would give pixels without signal)."""
    ends = None
    for offsets, lengths, precision in ((parser.mzOffsets, parser.mzLengths, parser.mzPrecision),
                                        (parser.intensityOffsets, parser.intensityLengths, parser.intensityPrecision)):
        if len(offsets) != len(parser.coordinates) or len(lengths) != len(offsets):
            raise DataError(path, "the metadata does not give every spectrum an offset and a length in the .ibd")
        end = np.asarray(offsets, dtype=np.int64) + np.asarray(lengths, dtype=np.int64) * np.dtype(precision).itemsize
        ends = end if ends is None else np.maximum(ends, end)
    short = np.flatnonzero(ends > size)
    if short.size:
        i = int(short[0])
        x, y = parser.coordinates[i][:2]
        raise DataError(path, f"{ibd.name} is truncated: it holds {size} bytes but spectrum {i} (row {y - 1}, column "
                              f"{x - 1}) ends at byte {int(ends[i])}; {short.size} of {len(ends)} spectra are cut off")


def _mode(parser, path: Path | None = None) -> str:
    params = getattr(getattr(getattr(parser, "metadata", None), "file_description", None), "param_by_name", {}) or {}
    shared = len(set(parser.mzOffsets)) == 1
    if params.get("continuous") and not shared:  # every pixel was read at the first spectrum's m/z
        if path is not None and first_time(("imzml continuous", str(path))):
            log.warning("%s: declared continuous (one m/z array for every spectrum), but its spectra point to %d m/z "
                        "arrays: each spectrum is read with its own", path, len(set(parser.mzOffsets)))
        return "processed"
    if params.get("continuous"):
        return "continuous"
    if params.get("processed"):
        return "processed"
    return "continuous" if shared else "processed"


#: a pixel grid may hold this many times more pixels than spectra (sections with holes) before a stray coordinate is
#: suspected
SPARSEST_GRID = 50


#: a header's declared grid over this many times the area the spectra's coordinates span is another acquisition's (a
#: region cropped from it); up to it, a margin kept, so that arrays at the declared size (a clean map, a mask) align
HEADER_GRID_AREA = 16


def pixel_grid(x0: int = 1, y0: int = 1, x_step: int = 1, y_step: int = 1) -> dict:
    """Where a map's pixel (row r, column c) lies in its imzML file's 1-based coordinates: x = x0 + c * x_step,
    y = y0 + r * y_step (a section cut from a larger raster, or on a coarser step, is read on its spectra's own grid:
    arrays written from the maps are placed back by it)."""
    return {"x0": int(x0), "y0": int(y0), "x_step": int(x_step), "y_step": int(y_step),
            "reads": "pixel (row r, column c) is the imzML spectrum at x = x0 + c * x_step, y = y0 + r * y_step"}


def _grid(parser, path: Path) -> tuple[np.ndarray, tuple[int, int], dict]:
    xyz = np.asarray(parser.coordinates, dtype=np.int64)
    if xyz.shape[1] > 2 and len(np.unique(xyz[:, 2])) > 1:
        raise DataError(path, "3-D imzML (several z planes) is not supported; export one plane")
    if xyz[:, :2].min() < 1:
        raise DataError(path, f"pixel coordinates must start at 1 (found {xyz[:, :2].min()})")
    rows, cols = xyz[:, 1] - 1, xyz[:, 0] - 1
    meta = getattr(parser, "imzmldict", {}) or {}
    step = (int(np.gcd.reduce(rows - rows.min())) or 1, int(np.gcd.reduce(cols - cols.min())) or 1)
    box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    if step != (1, 1) or box < (rows.max() + 1) * (cols.max() + 1) / 4:  # a margin is kept: arrays beside it align
        # a section cut from a larger raster (x from 201) read as a speck in a corner of an empty grid; a raster on a
        # coarser step (x = 1, 4, 7, ...) read as isolated pixels one in nine; both read on the spectra's own grid
        if first_time(("imzml grid", str(path))):
            log.warning("%s: the spectra's coordinates start at x = %d, y = %d and step by %d in x, %d in y: read on "
                        "their own grid of %d x %d pixels%s", path, cols.min() + 1, rows.min() + 1, step[1], step[0],
                        (rows.max() - rows.min()) // step[0] + 1, (cols.max() - cols.min()) // step[1] + 1,
                        "" if step[0] == step[1] else
                        f" (each map pixel {step[1]} coordinate steps wide and {step[0]} high: the maps and their "
                        f"panels are squeezed {max(step)}:{min(step)} " + ("across" if step[1] > step[0] else "down")
                        + "; enhance.json's pixel_grid places them back)")
        grid = pixel_grid(cols.min() + 1, rows.min() + 1, step[1], step[0])
        rows, cols = (rows - rows.min()) // step[0], (cols - cols.min()) // step[1]
        meta = {}  # the declared grid counts the whole raster's pixels
    else:
        grid = pixel_grid()
    declared = (int(meta.get("max count of pixels y") or 0), int(meta.get("max count of pixels x") or 0))
    extent = (int(rows.max()) + 1, int(cols.max()) + 1)
    if max(declared[0], extent[0]) * max(declared[1], extent[1]) > HEADER_GRID_AREA * extent[0] * extent[1]:
        # a header of 300 x 300 for 20 x 20 spectra read as 99.6 % empty maps; of 5000, refused as a stray coordinate
        if first_time(("imzml header grid", str(path))):
            log.warning("%s: its header declares a grid of %d x %d pixels (max count of pixels x, y), but the spectra's "
                        "coordinates span %d x %d: read on the coordinates' grid (a region cropped from a larger "
                        "acquisition keeps the whole one's header)", path, declared[1], declared[0], extent[1],
                        extent[0])
        meta = {}
    h = max(int(rows.max()) + 1, int(meta.get("max count of pixels y") or 0))
    w = max(int(cols.max()) + 1, int(meta.get("max count of pixels x") or 0))
    rc = np.stack([rows, cols], axis=1)
    if h * w > max(SPARSEST_GRID * len(rc), 1_000_000):  # an array of the grid would not fit for a stray pixel
        raise DataError(path, f"{len(rc)} spectra on a grid of {h} x {w} pixels: " + _far_apart(xyz))
    pixel = rows * w + cols
    _, first, counts = np.unique(pixel, return_index=True, return_counts=True)
    if (counts > 1).any():
        again = np.flatnonzero(pixel == pixel[first[int(np.flatnonzero(counts > 1)[0])]])
        raise DataError(path, f"{int((counts > 1).sum())} pixel(s) hold more than one spectrum (spectra "
                              f"{', '.join(map(str, again[:4]))} at x = {xyz[again[0], 0]}, y = {xyz[again[0], 1]}): "
                              "which one is the pixel's is unknown")
    return rc, (h, w), grid


def imzml_info(path: str | Path) -> dict:
    """Shape, storage mode, spectrum count and the m/z range of the first spectrum."""
    path = Path(path)
    parser = open_imzml(path)
    try:
        rc, (h, w), _ = _grid(parser, path)
        mz, _ = parser.getspectrum(0)
        return {"path": str(path), "height": h, "width": w, "n_spectra": len(rc), "mode": _mode(parser),
                "mz_min": float(mz.min()) if len(mz) else None, "mz_max": float(mz.max()) if len(mz) else None,
                "first_spectrum_length": len(mz)}
    finally:
        parser.m.close()


def _reduce_windows(mzs: np.ndarray, ints: np.ndarray, windows: np.ndarray, how: str) -> np.ndarray:
    """Sum (or max) of the intensities inside each m/z window; ``mzs`` sorted ascending."""
    lo = np.searchsorted(mzs, windows[:, 0], side="left")
    hi = np.searchsorted(mzs, windows[:, 1], side="right")
    if how == "sum":
        csum = np.concatenate([[0.0], np.cumsum(ints, dtype=np.float64)])
        return (csum[hi] - csum[lo]).astype(np.float32)
    out = np.zeros(len(windows), dtype=np.float32)
    for c, (a, b) in enumerate(zip(lo, hi)):
        if b > a:
            out[c] = ints[a:b].max()
    return out


def _far_apart(xyz: np.ndarray) -> str:
    """Why spectra span a grid far larger than they fill: a stray coordinate, or regions far apart (two sections on
    one slide: half the spectra were blamed on one 'stray coordinate')."""
    gaps = []
    for axis, name in ((0, "x"), (1, "y")):
        v = np.unique(xyz[:, axis])
        if len(v) > 1:
            g = int(np.argmax(np.diff(v)))
            gaps.append((int(v[g + 1] - v[g]), name, int(v[g]), int(v[g + 1]), axis))
    size, name, below, above, axis = max(gaps)
    n_low, n_high = int((xyz[:, axis] <= below).sum()), int((xyz[:, axis] >= above).sum())
    if min(n_low, n_high) > 1:
        return (f"they lie in regions {size} pixels apart: {n_low} at {name} = {below} or less, {n_high} at {name} = "
                f"{above} or more (sections side by side on one slide?): write each region to an imzML of its own")
    far = int(np.flatnonzero(xyz[:, axis] >= above)[0] if n_high == 1 else np.flatnonzero(xyz[:, axis] <= below)[0])
    return f"spectrum {far} at x = {xyz[far, 0]}, y = {xyz[far, 1]} lies far from the others (a stray coordinate?)"


def read_ion_images(path: str | Path, mz, *, tolerance: float = 10.0, unit: str = "ppm",
                    normalization: str = "none", reduce: str = "sum") -> IonImages:
    """Ion images of ``mz`` (a list of target m/z values) from an imzML file, spectrum by spectrum."""
    path = Path(path)
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if reduce not in ("sum", "max"):
        raise ValueError(f"reduce must be 'sum' or 'max', got {reduce!r}")
    targets = np.asarray(mz, dtype=np.float64).reshape(-1)
    if targets.size == 0:
        raise DataError(path, "no m/z values to image (give at least one)")
    windows = mz_windows(targets, tolerance, unit)
    parser = open_imzml(path)
    try:
        rc, (h, w), grid = _grid(parser, path)
        mode = _mode(parser, path)
        values = np.zeros((h, w, len(targets)), dtype=np.float32)
        tic = np.zeros((h, w), dtype=np.float32)
        divisor = np.zeros((h, w), dtype=np.float32)
        mask = np.zeros((h, w), dtype=bool)
        shared_mz, negative = None, []
        for i, (r, c) in enumerate(rc):
            try:
                if mode == "continuous" and shared_mz is not None:
                    _, ints = parser.get_spectrum_as_string(i)
                    mzs = shared_mz
                    ints = np.frombuffer(ints, dtype=parser.intensityPrecision)
                else:
                    mzs, ints = parser.getspectrum(i)
                    if mode == "continuous":
                        shared_mz = np.asarray(mzs, dtype=np.float64)
            except MemoryError as e:  # too little memory is no fault of the file
                raise reading_memory_error(path, e) from None
            except Exception as e:  # noqa: BLE001 - a truncated .ibd
                raise DataError(path, f"spectrum {i} (row {r}, column {c}) cannot be read from the .ibd "
                                      f"({type(e).__name__}: {e})") from None
            if len(mzs) != len(ints):
                raise DataError(path, f"spectrum {i}: {len(mzs)} m/z values but {len(ints)} intensities")
            mzs = np.asarray(mzs, dtype=np.float64)
            ints = np.asarray(ints, dtype=np.float64)
            if len(mzs) > 1 and np.any(np.diff(mzs) < 0):
                order = np.argsort(mzs, kind="stable")
                mzs, ints = mzs[order], ints[order]
            if not np.all(np.isfinite(ints)):
                raise DataError(path, f"spectrum {i} (row {r}, column {c}) holds non-finite intensities")
            if len(ints) and ints.min() < 0:  # counts below 0: named once the file is read
                negative.append((i, r, c, float(ints.min())))
            total = float(ints.sum())
            img = _reduce_windows(mzs, ints, windows, reduce)
            if normalization == "tic":
                img = img / total if total > 0 else np.zeros_like(img)
                divisor[r, c] = total
            elif normalization == "rms":
                rms = float(np.sqrt(np.mean(ints ** 2))) if len(ints) else 0.0
                img = img / rms if rms > 0 else np.zeros_like(img)
                divisor[r, c] = rms
            values[r, c] = img
            tic[r, c] = total
            mask[r, c] = True
    finally:
        parser.m.close()
    if negative:  # a TIC of spectra below 0 gave a channel 150 % of its pixel's total, without a word
        i, r, c, low = negative[0]
        log.warning("%s: %d of %d spectra hold intensities below 0 (spectrum %d, row %d, column %d: %.3g): a mass "
                    "spectrum's intensities are counts (a baseline subtracted below 0?)%s", path, len(negative),
                    len(rc), i, r, c, low, "; divided by a total they lower, its pixels' values are no shares of it"
                    if normalization == "tic" else "")
    empty = [float(m) for m, any_ in zip(targets, values[mask].any(axis=0)) if not any_]
    return IonImages(values, mask, targets, tic, mode, str(path), empty,
                     divisor if normalization in ("tic", "rms") else None, grid)


def _set_grid_size(xml: Path, shape: tuple[int, int]) -> None:
    """Record the full (H, W) grid in the file's ``max count of pixels`` (pyimzml writes the extent
    of the spectra, which is smaller when the border pixels have none)."""
    import re

    text = xml.read_text(encoding="utf-8")
    for axis, n in (("x", int(shape[1])), ("y", int(shape[0]))):
        pattern = re.compile(rf'(name="max count of pixels {axis}" value=")(\d+)(")')
        text = pattern.sub(lambda m, n=n: f"{m.group(1)}{max(n, int(m.group(2)))}{m.group(3)}", text, count=1)
    xml.write_text(text, encoding="utf-8")


def write_imzml(path: str | Path, spectra: Iterable[tuple[int, int, np.ndarray, np.ndarray]], *,
                mode: str = "processed", shape: tuple[int, int] | None = None) -> Path:
    """Write ``path`` (``.imzML``) and its ``.ibd`` from ``(row, col, mzs, intensities)`` spectra
    (0-based rows and columns; stored 1-based). ``mode``: ``processed`` (an m/z array per spectrum)
    or ``continuous`` (every spectrum must share the m/z array); ``shape``: the (H, W) grid, when
    border pixels have no spectrum. Both files appear together when complete (written in a
    temporary folder beside them, then renamed)."""
    from pyimzml.ImzMLWriter import ImzMLWriter

    path = Path(path)
    if path.suffix.lower() != ".imzml":
        raise ValueError(f"{path}: an imzML file name must end with .imzML")
    if mode not in ("processed", "continuous"):
        raise ValueError(f"mode must be 'processed' or 'continuous', got {mode!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", suffix=".partial", dir=path.parent))
    try:
        target = tmp / f"{path.stem}.imzML"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with ImzMLWriter(str(target), mz_dtype=np.float64, intensity_dtype=np.float32, mode=mode,
                             spec_type="centroid" if mode == "processed" else "profile") as writer:
                for row, col, mzs, ints in spectra:
                    writer.addSpectrum(np.asarray(mzs, dtype=np.float64), np.asarray(ints, dtype=np.float32),
                                       (int(col) + 1, int(row) + 1, 1))
        if shape is not None:
            _set_grid_size(target, shape)
        os.replace(tmp / f"{path.stem}.ibd", path.with_suffix(".ibd"))
        os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path
