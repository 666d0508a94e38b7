"""Spatial maps as plain arrays: ``.npy``, multi-page TIFF and PNG stacks of (H, W, channels), with
masks of valid pixels (tissue sections are not rectangles).

Layouts read by :func:`read_array_stack`:

- ``.npy``: (H, W) or (H, W, C), any real dtype; opened memory-mapped (``mmap=True``), so a large
  section is read tile by tile by whoever slices it; (C, H, W), as PyTorch and many exporters write it, is
  recognised (:func:`channels_last`: by the channel labels or the model's channel count where one end axis
  alone holds it, else by the shape; (H, W, C) where both do);
- ``.npz``: the array named ``values`` (or the only array in the file), its mask the array named ``mask``;
- ``.tif`` / ``.tiff``: a multi-page TIFF is one page per channel; a single page is (H, W) or
  (H, W, samples);
- a folder of ``.png`` files: one grey image per channel, in natural file-name order (``ch_8`` before
  ``ch_10``; 8- or 16-bit; ``.PNG`` too, and its ``mask.png`` in any case is no channel);
- a single ``.png``: one grey channel.

NaN marks a pixel without a measurement (``missing``: it is not valid whatever the mask says, and
reads 0); an infinite value is refused.

Masks (:func:`read_mask`): ``.npy`` or ``.png``; whole numbers (0/1, 0/255, labels): non-zero = valid;
fractions (a probability map), and a PNG up to its full scale (255, 65535) with levels between (an anti-aliased
drawing): above half the maximum; NaN: not valid; a PNG with transparency: its alpha channel. :func:`find_mask` looks for the
sibling ``NAME.mask.npy`` / ``NAME.mask.png`` of ``NAME.EXT`` (or ``mask.png`` inside a PNG
folder). Channel labels: the PNG file stems, else ``NAME.channels.txt`` (one label per line) when
present. ``tifffile`` and ``PIL`` are imported when needed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from latentbridge.errors import DataError
from latentbridge.utils import first_time, is_hidden, natural_key

log = logging.getLogger(__name__)

ARRAY_SUFFIXES = (".npy", ".npz", ".tif", ".tiff", ".png")


@dataclass
class ArrayStack:
    values: np.ndarray
    """(H, W, C): a numpy array or a read-only memory map."""
    source: str
    labels: list[str] = field(default_factory=list)
    missing: np.ndarray | None = None
    """(H, W) bool: pixels with a NaN in some channel (read as 0), None when there are none."""

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.values.shape)


def _stem(path: Path) -> str:
    return path.name[: -len(path.suffix)] if path.suffix else path.name


def _as_hwc(a: np.ndarray, path: Path) -> np.ndarray:
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise DataError(path, f"expected an (H, W) or (H, W, channels) array, got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)) or a.dtype == bool:
        raise DataError(path, f"expected numbers, got dtype {a.dtype}")
    if min(a.shape[:2]) < 1 or a.shape[2] < 1:
        raise DataError(path, f"empty array of shape {a.shape}")
    return a


def channels_last(a: np.ndarray, path: Path, n_labels: int | None = None, channels: int | None = None) -> np.ndarray:
    """A 3-D array as (H, W, C). (H, W, C) is the documented layout; an array is read as (C, H, W) (a view,
    moved to (H, W, C)) when ``NAME.channels.txt`` lists as many labels as its first axis holds and not as
    many as its last, or, without labels, when its first axis is at most a quarter of each other axis and
    shorter than the last (a stack of 16 maps of 256 x 256 written channels first, not a 16-pixel strip of
    256 channels); ``channels``, the channel count a model reads, decides as labels do when one end axis alone
    holds it (a (6, 48, 5) array is read as 6 channels of 48 x 5 by a 6-channel model, as 6 x 48 pixels of 5
    channels by a 5-channel one). When both end axes hold the labels' or the model's count, as in (6, 48, 6) for
    6 channels, the array is read as (H, W, C), the documented layout: a channels-first stack of such a shape is
    to be saved as (H, W, C). Said once per file; a map that is wrongly turned is fixed by
    ``NAME.channels.txt``."""
    if a.ndim != 3:
        return a
    c0, h, c2 = a.shape
    known = n_labels if n_labels is not None else channels if channels in (c0, c2) and c0 != c2 else None
    if known is not None:
        first = known == c0 and known != c2
    else:
        first = 4 * c0 <= min(h, c2) and c0 < c2
    if not first:
        if known is None and c0 < c2 and first_time(("channels-ambiguous", str(path.parent))):
            # (20, 36, 48): 20 x 36 maps of 48 channels, or 20 maps of 36 x 48 written channels first
            log.warning("%s: read as (height, width, channels) = %s, the documented layout; if its first axis holds "
                        "the channels (saved channels first), list them in NAME.channels.txt or give the model's "
                        "m/z (data.mz) (the folder's other files are not named)", path, tuple(a.shape))
        return a
    if first_time(("channels-first", str(path))):
        how = "its channel labels" if n_labels is not None else "the model's channel count" if known else \
            "its first axis is far shorter than the other two; if that axis is the height, list the channels " \
            "in NAME.channels.txt"
        log.warning("%s: read as (channels, height, width) = %s, by %s", path, tuple(a.shape), how)
    return np.moveaxis(a, 0, 2)


def _png(path: Path, alpha: bool = False) -> np.ndarray:
    """A PNG's grey levels (8- or 16-bit kept); with ``alpha``, its alpha channel instead when it has
    transparency (a mask drawn as the opaque part of an image). A colour image is read with a warning, a palette of
    greys without one, one of colours whose brightness does not rise with the index (:func:`~latentbridge.io.images.
    palette_kind`, a jet-like colour map) refused."""
    from PIL import Image

    from latentbridge.io.images import palette_kind

    try:
        with Image.open(path) as im:
            if alpha and im.mode == "P" and "transparency" in im.info:
                im = im.convert("RGBA")
            if alpha and im.mode in ("RGBA", "LA", "PA"):
                a = np.asarray(im.getchannel("A"))
                if a.min() < a.max():
                    return a
            if im.mode not in ("L", "I", "I;16", "I;16B", "F", "1"):
                kind = palette_kind(im) if im.mode == "P" and not alpha else None
                if kind == "mixed":
                    raise DataError(path, "a colour-mapped PNG (a palette) whose brightness does not rise with its "
                                          "index (a jet-like colour map: read as grey, its highest values read "
                                          "darker than its middle ones); save the channel's values as a grey PNG")
                if (kind == "rising" or im.mode not in ("P", "LA", "PA")) and first_time(("colour png", str(path))):
                    log.warning("%s: a colour image (%s), read as grey levels", path, "a palette of colours whose "
                                "brightness rises with the index" if kind else im.mode)
                im = im.convert("L")
            return np.asarray(im)
    except OSError as e:
        raise DataError(path, f"not a readable PNG ({e})") from None


def channel_labels(path: Path) -> list[str]:
    """The labels of ``NAME.channels.txt`` (none: []): one a line, as Notepad or a spreadsheet saves them (a byte-order
    mark, UTF-16, Windows-1252), blank lines and ``#`` comments left out."""
    from latentbridge.io.text import decode_text

    txt = path.with_name(f"{_stem(path)}.channels.txt")
    if not txt.is_file():
        return []
    text = decode_text(txt.read_bytes(), txt, "channel labels, one a line", legacy="all")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _header_size(f) -> int:
    """The number of values of the ``.npy`` array whose file ``f`` is open at its start."""
    fmt = np.lib.format
    version = fmt.read_magic(f)
    read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    return int(np.prod(read(f)[0]))


def stored_size(path: str | Path) -> int | None:
    """How many values a ``.npy`` / ``.npz`` / TIFF array file holds, from its headers alone (a compressed ``.npz``
    of a few kB can unpack to GB: a server checks its limit before unpacking); None when the headers do not say."""
    import zipfile

    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            with open(path, "rb") as f:
                return _header_size(f)
        if suffix == ".npz":
            with zipfile.ZipFile(path) as z:
                sizes = []
                for name in z.namelist():
                    with z.open(name) as f:
                        sizes.append(_header_size(f))
            return max(sizes, default=0)
        if suffix in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                return sum(int(np.prod(p.shape)) for p in tif.pages)
    except Exception:  # noqa: BLE001 - an unreadable file is named by the reader itself
        return None
    return None


def read_array_stack(path: str | Path, *, mmap: bool = True, channels: int | None = None) -> ArrayStack:
    """An (H, W, C) stack from a ``.npy`` / ``.npz`` / TIFF / PNG file or a folder of PNGs (hidden ones left out, as
    every data folder leaves them: :func:`~latentbridge.utils.is_hidden`)."""
    path = Path(path)
    if path.is_dir() and (path / "enhanced.npy").is_file() and (path / "enhance.json").is_file():
        raise DataError(path, "a folder `latentbridge enhance` wrote (its panels.png was read as a channel): give "
                              f"its maps, {path / 'enhanced.npy'}")
    if path.is_dir():
        pngs = sorted((p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".png"  # .PNG, Mask.png
                       and not p.name.lower().startswith("mask") and not is_hidden(p, path)),  # macOS's ._ch_1.png
                      key=lambda p: natural_key(p.name))
        if not pngs:
            raise DataError(path, "folder holds no .png channel images")
        planes = [_png(p) for p in pngs]
        shapes = {p.shape for p in planes}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            first = planes[0].shape
            odd = next((p for p, a in zip(pngs, planes) if a.shape != first), pngs[0])
            raise DataError(path, f"PNG channels must be grey images of one size, got shapes {sorted(shapes)}: "
                                  f"{odd.name} is {planes[pngs.index(odd)].shape} against {pngs[0].name}'s "
                                  f"{first}")
        return ArrayStack(_as_hwc(np.stack(planes, axis=2), path), str(path), [p.stem for p in pngs])
    if not path.is_file():
        raise DataError(path, "does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            a = load_npy(path, mmap=mmap)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                if "values" in keys:
                    a = z["values"]
                elif len(keys) == 1:
                    a = z[keys[0]]
                else:
                    raise DataError(path, f"holds arrays {keys}: name the section 'values'")
        elif suffix in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                pages = [p.asarray() for p in tif.pages] if len(tif.pages) > 1 else None
                if pages and channels and pages[0].ndim == 2 and pages[0].shape[1] == channels != len(pages):
                    a = np.stack(pages, axis=0)  # an (H, W, C) array written page per row: C is the model's
                elif pages:
                    a = np.stack(pages, axis=2)
                else:
                    a = tif.pages[0].asarray()
        elif suffix == ".png":
            a = _png(path)
        else:
            raise DataError(path, f"unknown array format {path.suffix!r} (expected one of {ARRAY_SUFFIXES} "
                                  "or a folder of PNGs)")
    except DataError:
        raise
    except (ValueError, OSError) as e:
        raise unreadable(path, "the array", e) from None
    labels = channel_labels(path)
    a = _as_hwc(channels_last(a, path, len(labels) if labels else None, channels), path)
    if labels and len(labels) != a.shape[2]:
        raise DataError(path.with_name(f"{_stem(path)}.channels.txt"), f"{len(labels)} channel labels for "
                        f"{a.shape[2]} channels")
    missing = _nan_pixels(a, path) if np.issubdtype(a.dtype, np.floating) else None
    if missing is not None:
        a = np.where(np.isnan(a), 0, a).astype(a.dtype, copy=False)
    return ArrayStack(a, str(path), labels, missing)


def _nan_pixels(a: np.ndarray, path: Path, chunk_values: int = 1 << 24) -> np.ndarray | None:
    """(H, W) pixels with a NaN, or None; refuses infinite values. Reads a memory map in blocks of rows."""
    h, w, c = a.shape
    rows = max(1, chunk_values // max(1, w * c))
    nan = np.zeros((h, w), dtype=bool)
    measured = np.zeros(c, dtype=np.int64)  # non-NaN values per channel
    for r0 in range(0, h, rows):
        block = np.asarray(a[r0:r0 + rows])
        inf = np.isinf(block)
        if inf.any():
            r, col, ch = np.argwhere(inf)[0]
            raise DataError(path, f"holds infinite values (the first at row {r0 + r}, column {col}, channel {ch})")
        isnan = np.isnan(block)
        nan[r0:r0 + rows] = isnan.any(axis=-1)
        measured += (~isnan).sum(axis=(0, 1))
    if (dead := np.flatnonzero(measured == 0)).size and dead.size < c:  # it made every pixel invalid, unnamed
        raise DataError(path, f"channel{'s' if dead.size > 1 else ''} {', '.join(map(str, dead[:8]))} "
                              f"hold{'' if dead.size > 1 else 's'} NaN on every pixel: fill or drop "
                              f"{'them' if dead.size > 1 else 'it'} (a pixel with a NaN is read as unmeasured)")
    return nan if nan.any() else None


def _ramps(m: np.ndarray, top: float) -> bool:
    """Whether a PNG mask up to its full scale (``top``) is an anti-aliased drawing, cut at half (every non-zero pixel
    of one was valid): its levels between 0 and ``top`` lie on ramps, most such pixels beside another level. Region
    labels (1, 2, 3, and 255 for "void") fill blobs of one level: only their rims border another."""
    between = (m > 0) & (m < top)
    if not between.any():
        return False
    other = np.zeros(m.shape, dtype=bool)
    other[1:] |= m[1:] != m[:-1]
    other[:-1] |= m[:-1] != m[1:]
    other[:, 1:] |= m[:, 1:] != m[:, :-1]
    other[:, :-1] |= m[:, :-1] != m[:, 1:]
    return bool((between & other).sum() >= 0.5 * between.sum())


def read_mask(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A boolean (H, W) mask of valid pixels from ``.npy`` or ``.png`` (the rules in the module's docstring)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "mask file does not exist")
    if path.suffix.lower() == ".npy":
        m = load_npy(path, "the mask")
    elif path.suffix.lower() == ".png":
        m = _png(path, alpha=True)
    elif path.suffix.lower() == ".npz":  # a section saved with its mask: np.savez(f, values=..., mask=...)
        try:
            with np.load(path, allow_pickle=False) as z:
                if "mask" not in z:
                    raise DataError(path, f"holds no array named 'mask' (it holds {', '.join(z.keys())})")
                m = z["mask"]
        except (ValueError, OSError, EOFError) as e:
            raise unreadable(path, "the mask", e) from None
    else:
        raise DataError(path, f"a mask must be .npy or .png (or the 'mask' array of a .npz), got {path.suffix!r}")
    m = np.asarray(m)
    if m.ndim != 2:
        raise DataError(path, f"a mask must be (H, W), got shape {m.shape}")
    if shape is not None and tuple(m.shape) != tuple(shape):
        raise DataError(path, f"mask of shape {m.shape} does not match the maps' {tuple(shape)}")
    if not (np.issubdtype(m.dtype, np.number) or m.dtype == bool):
        raise DataError(path, f"a mask holds numbers, got dtype {m.dtype}")
    m = m.astype(np.float64)
    known = np.isfinite(m)
    top = np.max(m[known], initial=0)
    drawn = path.suffix.lower() == ".png" and top in (255, 2 ** 16 - 1) and _ramps(m, top)
    if not drawn and np.all(m[known] == np.round(m[known])):
        return known & (m != 0)  # 0/1, 0/255, region labels
    return known & (m > top / 2)  # a probability map, an anti-aliased drawing


def load_npy(path: str | Path, what: str = "the array", mmap: bool = False) -> np.ndarray:
    """``np.load`` of a ``.npy`` without pickles, its failures (empty, truncated, not NumPy) as DataError."""
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise unreadable(path, what, e) from None


def unreadable(path: str | Path, what: str, e: Exception) -> DataError:
    """The DataError of a file NumPy could not read (numpy's advice to unpickle it never passed on)."""
    if "pickle" in str(e) or "Python objects" in str(e):
        return DataError(path, f"cannot read {what}: not a NumPy array of numbers (a file of Python objects, which "
                               "latentbridge never unpickles, or not a NumPy file at all)")
    return DataError(path, f"cannot read {what} ({type(e).__name__}: {str(e)[:200] or 'empty file'})")


def sibling(folder: Path, name: str) -> Path | None:
    """The file of ``folder`` named ``name`` in any case (``up.NPY`` beside ``up.MASK.NPY``: the extension was
    taken in any case, its mask only in lower case), the exact name first; None when there is none."""
    if (folder / name).is_file():
        return folder / name
    try:
        return next((p for p in sorted(folder.iterdir()) if p.name.lower() == name.lower() and p.is_file()), None)
    except OSError:
        return None


def find_mask(path: str | Path) -> Path | None:
    """The mask file that goes with an array file or PNG folder, if there is one (names in any case)."""
    path = Path(path)
    if path.is_dir():
        return sibling(path, "mask.png")
    found = next((m for ext in (".npy", ".png") if (m := sibling(path.parent, f"{_stem(path)}.mask{ext}"))), None)
    if found is None and path.suffix.lower() == ".npz" and path.is_file():  # its own 'mask' array (it went unread)
        try:
            with np.load(path, allow_pickle=False) as z:
                return path if "mask" in z else None
        except (ValueError, OSError, EOFError):
            return None  # read_array_stack names the file
    return found


def npy_to_fill(path: str | Path, shape, dtype=np.float32) -> np.memmap:
    """A new ``.npy`` file of ``shape`` memory-mapped for writing, its space taken on disk first: a memory map of a
    file the disk cannot grow ends the process with a bus error, no word (``data synth tissue`` on a nearly full disk:
    exit 135); a full disk is then an OSError ('No space left on device') before any writing."""
    import os

    from numpy.lib.format import open_memmap

    m = open_memmap(path, mode="w+", dtype=dtype, shape=tuple(int(s) for s in shape))
    if hasattr(os, "posix_fallocate"):
        with open(path, "r+b") as f:
            try:
                os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
            except OSError as e:
                import errno

                if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP):  # file systems that cannot: as before
                    del m
                    raise OSError(e.errno, e.strerror, str(path)) from None
    return m
