"""Crack-mask PNGs (numpy + PIL; no torch).

Every problem with a file is raised as :class:`latentbridge.errors.DataError`, whose message
names the file and the problem ("PATH: problem").

Mask rules (:func:`read_mask_png`)
----------------------------------
* Any size, any mode PIL reads from a PNG: 1-bit, grey (8/16 bit), grey+alpha, RGB, RGBA,
  palette (with or without transparency).
* Grey level in [0, 1]: the brightest of R, G and B (a crack drawn in red or any colour on black is
  a crack; luminance read a pure red line as 0.299, below the threshold: an empty mask),
  16-bit grey divided by the range of its bit depth, 8 (8-bit values stored in 16 bits), 10, 12, 14 or 16 bits;
  drawn in one colour on a transparent layer (some pixels fully transparent), the drawn pixels at half the
  drawing's opacity or more are the crack whatever their colour and opacity (a black crack, a red overlay at 40 %
  opacity), else transparency composites over black.
* A mask of exactly two levels is read as crack (the brighter) on background whatever the levels: a 0/1 array
  saved as it is, a label map 0/2, 12-bit 0/4095 in a 16-bit PNG, a dark-green crack (0, 100, 0) on black all read
  as empty before. A mask of more levels with none above ``threshold`` is read as no crack, with a warning naming it.
* Binarised at ``threshold`` (a pixel is crack when its grey level is **above** it), *then*
  resized to ``(height, width)`` by area averaging (PIL ``BOX`` filter: each output pixel is the
  share of its footprint that is crack), then re-binarised: crack when that share is
  ``>= coverage`` (default 0.5; ties count as crack). Note: when shrinking a lot (e.g.
  512x1536 -> 32x96 is 16x), a crack thinner than ``coverage`` x 16 pixels vanishes at
  ``coverage=0.5``; lower ``coverage`` to keep thin cracks.
* Unreadable, truncated or non-PNG files are DataErrors naming the file.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from latentbridge.errors import DataError
from latentbridge.io.images import bit_depth
from latentbridge.utils import atomic_path, first_time

__all__ = ["labels_size", "read_mask_full", "read_mask_png", "upsample_mask", "write_mask_png"]

log = logging.getLogger(__name__)


def _levels(raw: np.ndarray, full: float) -> np.ndarray:
    """Integer grey levels over ``full``; a 16-bit mask over the range of its bit depth, as images are read
    (:func:`~latentbridge.io.images.bit_depth`): levels that stop at 255 (an 8-bit mask's values stored in 16 bits)
    over 255, a 12-bit anti-aliased mask over 4095, not 65535 (both read as empty)."""
    raw = np.asarray(raw, dtype=np.float64)
    if full > 255:
        full = float(2 ** (bit_depth(raw.max(initial=0)) or 16) - 1)
    return np.clip(raw / full, 0.0, 1.0)


def _drawn_on_transparency(grey: np.ndarray, alpha: np.ndarray) -> np.ndarray | None:
    """A mask drawn in one colour on a transparent layer (some pixels fully transparent, the drawn ones of one grey
    level): its opacity over the drawing's (the crack where it is drawn at half its opacity or more, whatever its
    colour: a black crack, a red overlay at 40 % opacity, read as no crack). None otherwise: drawn pixels of both
    dark and bright levels (a white crack on an opaque black mask with a transparent margin) are read by their level."""
    drawn = alpha > 0
    if drawn.all() or not drawn.any():
        return None
    top = alpha.max()
    levels = grey[alpha >= top / 2]
    return None if levels.max() - levels.min() >= 0.5 else alpha / top


def _grey_levels(img, path: Path) -> np.ndarray:
    """PIL image -> (H, W) float64 grey level in [0, 1]; on a transparent layer, the drawn (opaque) pixels are the
    crack whatever their colour (a black crack on transparency read as no crack)."""
    mode = img.mode
    if mode == "1":
        return np.asarray(img, dtype=np.float64)
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):  # PIL opens some 16-bit grey PNGs as 32-bit "I"
        return _levels(np.asarray(img), 65535.0)
    if mode == "F":
        return np.clip(np.asarray(img, dtype=np.float64), 0.0, 1.0)
    if mode == "L":
        return _levels(np.asarray(img), 255.0)
    if mode == "LA":
        a = np.asarray(img, dtype=np.float64) / 255.0
        drawn = _drawn_on_transparency(a[..., 0], a[..., 1])
        return a[..., 0] * a[..., 1] if drawn is None else drawn
    if mode == "P":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode not in ("RGB", "RGBA"):
        try:
            img = img.convert("RGBA" if "A" in mode else "RGB")
        except (ValueError, OSError) as e:
            raise DataError(path, f"unsupported image mode {mode!r} ({e})") from None
        mode = img.mode
    a = np.asarray(img, dtype=np.float64) / 255.0
    grey = a[..., :3].max(axis=-1)  # a crack drawn in any colour on black (a red line) is bright, not 0.299
    if mode == "RGBA":
        drawn = _drawn_on_transparency(grey, a[..., 3])
        grey = grey * a[..., 3] if drawn is None else drawn
    return grey


def _read_grey(path: Path) -> np.ndarray:
    """The grey levels ``(H, W)`` float64 in [0, 1] of a PNG; DataError naming the file when unusable."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not path.exists():
        raise DataError(path, "file does not exist")
    if path.is_dir():
        raise DataError(path, "is a folder, not a PNG file")
    if path.stat().st_size == 0:
        raise DataError(path, "file is empty (0 bytes)")
    try:
        with Image.open(path) as img:
            if img.format != "PNG":
                raise DataError(path, f"not a PNG file (PIL reads it as {img.format or 'unknown'})")
            img.load()
            grey = _grey_levels(ImageOps.exif_transpose(img), path)  # as a viewer shows it, as images are read
    except DataError:
        raise
    except UnidentifiedImageError:
        raise DataError(path, "unreadable image: not a PNG (or a damaged one)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:  # truncated data, bad CRC, ...
        raise DataError(path, f"unreadable or truncated PNG ({e})") from None
    if grey.ndim != 2 or grey.size == 0:
        raise DataError(path, f"unexpected image shape {grey.shape}")
    lo, hi = grey.min(), grey.max()
    if hi > lo and np.all((grey == lo) | (grey == hi)):  # two levels: the brighter is the crack, whatever they are
        grey = (grey == hi).astype(np.float64)
    return grey


def read_mask_png(
    path: str | Path,
    height: int,
    width: int,
    threshold: float = 0.5,
    coverage: float = 0.5,
    vanished: list | None = None,
    pictures: list | None = None,
) -> np.ndarray:
    """Read a crack mask PNG as a ``(height, width)`` float32 array of 0/1.

    Binarise the grey level at ``threshold`` (crack: above it) at full resolution, resize by
    area averaging to ``(height, width)`` and re-binarise (crack: at least ``coverage`` of the
    output pixel's area). Any size and PNG colour type is accepted; see the module docstring.
    A crack that vanishes in the shrinking is warned of, or, given ``vanished``, its path appended there (a folder's
    masks said in one warning); a picture rather than a mask (more than :data:`PICTURE_SHARE` of its pixels between
    its darkest and brightest tenths: a photo, a thermal image, thresholded without a word before) likewise, or
    ``(path, that share, the share read as crack)`` appended to ``pictures``.
    """
    from PIL import Image

    path = Path(path)
    height, width = int(height), int(width)
    if height <= 0 or width <= 0:
        raise ValueError(f"mask size must be positive, got {height}x{width}")
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {threshold!r}")
    if not 0.0 < coverage <= 1.0:
        raise ValueError(f"coverage must be in (0, 1], got {coverage!r}")
    grey = _read_grey(path)
    binary = (grey > threshold).astype(np.float32)
    lo, hi = float(grey.min()), float(grey.max())
    if hi > lo and (mid := float(np.mean(np.abs(grey - (lo + hi) / 2) < 0.4 * (hi - lo)))) > PICTURE_SHARE:
        if pictures is not None:
            pictures.append((path, mid, float(binary.mean())))
        else:
            log.warning("%s: %s", path, picture_text(mid, float(binary.mean()), threshold))
    if not binary.any() and grey.max() > grey.min():  # drawn, yet no crack: a faint or dark drawing
        log.warning("%s: its grey levels run from %.3g to %.3g, none above the threshold %g (vibration.mask_threshold): "
                    "read as no crack", path, grey.min(), grey.max(), threshold)
    if binary.shape == (height, width):
        return binary
    h, w = binary.shape
    if abs(math.log((w / h) / (width / height))) > math.log(1.1) and first_time(
            ("mask stretched", binary.shape, (height, width))):
        log.warning("%s: a %dx%d mask (width x height) is stretched to the model's %dx%d: its aspect ratio %.3g is not "
                    "the model's %.3g (masks of this size are not named again)", path, w, h, width, height, w / h,
                    width / height)
    small = Image.fromarray(binary).resize((width, height), resample=Image.Resampling.BOX)
    share = np.asarray(small, dtype=np.float32)
    out = (share >= coverage - 1e-6).astype(np.float32)
    if binary.any() and not out.any() and vanished is not None:
        vanished.append(path)
    elif binary.any() and not out.any():
        log.warning("%s: its crack (%d of %d pixels) vanishes when the mask is shrunk to %dx%d at coverage %g "
                    "(vibration.mask_coverage): lower the coverage to keep thin cracks", path, int(binary.sum()),
                    binary.size, width, height, coverage)
    return out


def read_mask_full(path: str | Path, threshold: float = 0.5) -> np.ndarray:
    """A crack mask PNG at its own size: ``(H, W)`` bool, crack where the grey level is above ``threshold`` (the rules
    of :func:`read_mask_png`, without the shrinking to a model's grid)."""
    return _read_grey(Path(path)) > threshold


def labels_size(paths) -> list[int] | None:
    """``[height, width]`` of most of the mask PNGs ``paths`` as a viewer shows them (an EXIF rotation applied, as
    :func:`read_mask_png` reads them), from their headers (an EXIF block after the image data is not seen); None
    without a readable one. Predicted masks are brought
    back to it (:func:`upsample_mask`): the model's grid is the labels shrunk (512x1536 -> 32x96)."""
    from collections import Counter

    from PIL import Image

    sizes: Counter = Counter()
    for p in paths:
        try:
            with Image.open(p) as img:  # (getexif() decoded a whole PNG: its header's EXIF is read alone)
                w, h = img.size
                exif = Image.Exif()
                exif.load(img.info.get("exif") or b"")
                if exif.get(0x0112) in (5, 6, 7, 8):  # turned by a quarter
                    w, h = h, w
        except (OSError, ValueError, SyntaxError):  # (unreadable masks are named where they are read)
            continue
        sizes[(int(h), int(w))] += 1
    return list(sizes.most_common(1)[0][0]) if sizes else None


def upsample_mask(prob: np.ndarray, size, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """A crack probability ``(h, w)`` on a model's mask grid brought to ``size`` (height, width: the labels',
    :func:`labels_size`) by bilinear interpolation: ``(the probability, its mask above threshold)``, float32."""
    from PIL import Image

    h, w = (int(v) for v in size)
    small = Image.fromarray(np.ascontiguousarray(prob, dtype=np.float32))
    full = np.asarray(small.resize((w, h), resample=Image.Resampling.BILINEAR), dtype=np.float32)
    return full, (full > threshold).astype(np.float32)


#: the share of a mask's pixels between its darkest and brightest tenths above which it is a picture, not a mask (an
#: anti-aliased drawing's edges hold a few per cent)
PICTURE_SHARE = 0.25


def picture_text(mid: float, crack: float, threshold: float) -> str:
    """What is said of a mask that is a picture: ``mid`` of its pixels between dark and bright, ``crack`` read as
    crack."""
    return (f"{100 * mid:.0f}% of its pixels lie between its darkest and brightest levels: a picture (a photo, a "
            f"thermal image) rather than a mask of crack on background? It is read as crack where brighter than "
            f"vibration.mask_threshold {threshold:g} ({100 * crack:.0f}% of it)")


def write_mask_png(path: str | Path, mask: np.ndarray) -> Path:
    """Write a mask PNG atomically.

    * float or bool ``(H, W)`` (or ``(1, H, W)``) in [0, 1]: 8-bit grey, ``round(255 * mask)``.
    * ``uint8`` ``(H, W)``, ``(H, W, 3)``, ``(H, W, 4)``: written as-is (grey, RGB, RGBA).
    * ``uint16`` ``(H, W)``: 16-bit grey.
    """
    from PIL import Image

    path = Path(path)
    a = np.asarray(mask)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.dtype == np.uint8 and (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))):
        img = Image.fromarray(np.ascontiguousarray(a))  # L, RGB or RGBA from the shape
    elif a.dtype == np.uint16 and a.ndim == 2:
        img = Image.fromarray(np.ascontiguousarray(a, dtype="<u2"))  # I;16
    elif a.ndim == 2 and (a.dtype == bool or np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        f = a.astype(np.float64)
        if not np.all(np.isfinite(f)):
            raise DataError(path, "refusing to write a mask with NaN or inf values")
        img = Image.fromarray(np.round(np.clip(f, 0.0, 1.0) * 255.0).astype(np.uint8))
    else:
        raise DataError(path, f"cannot write a mask of shape {a.shape} and dtype {a.dtype}")
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return path
