"""Image files: list and read PNG/JPEG images (grey or RGB, resized), write PNGs and tile image
grids. numpy + Pillow only.

Arrays are ``uint8`` ``(C, H, W)`` per image (``(N, C, H, W)`` for sets); floats in [0, 1] are
accepted by the writers and scaled by 255.
"""

from __future__ import annotations

import json
import logging
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from latentbridge.errors import DataError
from latentbridge.utils import file_key, first_time, is_hidden, listed, walk_files

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".tif", ".tiff", ".webp")
_RESAMPLE = {"bilinear": "BILINEAR", "area": "BOX", "nearest": "NEAREST"}
#: a JPEG read for a smaller size is decoded at 1/2, 1/4 or 1/8 of its size (Pillow's draft) where that keeps this
#: many times the size on each side (:func:`read_image`): a little more blur than decoding it whole, 1.3-2.0 levels of
#: 255 on average (photos of 1280 x 960 to 4000 x 3000 read for 64 and 128 px; with twice the size kept, up to 4.8)
DRAFT_MARGIN = 4


def list_image_files(root: str | Path) -> list[Path]:
    """PNG/JPEG files under ``root`` (recursively), sorted; DataError when there are none."""
    return list_folder(root)[0]


def list_folder(root: str | Path) -> tuple[list[Path], list[Path]]:
    """The image files under ``root`` (recursively, by :data:`IMAGE_EXTENSIONS`) and its other files, each sorted,
    in one walk; hidden files and folders are in neither. DataError when there are no images."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "is a file, not a folder of images" if root.exists() else "image folder does not exist")
    files, others, broken, seen, twice = [], [], [], {}, []
    for p in sorted(walk_files(root)):  # (in order: of two hard links to one image, the first name kept)
        if is_hidden(p, root):
            continue
        if p.is_symlink() and not p.exists():
            broken.append(p)
        elif p.is_file():
            if p.suffix.lower() not in IMAGE_EXTENSIONS:
                others.append(p)
            elif (real := file_key(p)) in seen:  # a link to an image of the folder: one image, read once
                kept = seen[real]
                if kept.is_symlink() and not p.is_symlink():  # under the file's own name (and class folder)
                    files[files.index(kept)], seen[real], kept, p = p, p, p, kept
                twice.append((p, kept))
            else:
                seen[real] = p
                files.append(p)
    if not files:
        from collections import Counter

        kinds = Counter(q.suffix.lower() or "(no extension)" for q in others)
        held = "; it holds " + ", ".join(f"{n} {k}" for k, n in kinds.most_common(5)) + " file(s), which are not " \
            "read" + (" (GIF: save the images as PNG)" if ".gif" in kinds else "") if kinds else ""
        raise DataError(root, f"no images ({', '.join(IMAGE_EXTENSIONS)}) in the folder{held}")
    if broken and first_time(("broken image links", str(root.resolve()))):  # (said twice: relative, absolute)
        log.warning("%s: %d link(s) to nothing left out (%s)", root, len(broken),
                    listed([q.relative_to(root).as_posix() for q in sorted(broken)], 5))
    if twice and first_time(("images twice", str(root.resolve()))):
        log.warning("%s: %d image(s) reached twice through links, read once, under the name of the file itself where "
                    "one is in the folder (%s)", root, len(twice),
                    listed([f"{a.relative_to(root).as_posix()} -> {b.relative_to(root).as_posix()}" for a, b in twice]))
    return sorted(files), sorted(others)


@contextmanager
def open_image(path: Path):
    """Pillow's image of ``path``: an image above Pillow's pixel limit (a decompression bomb guard: 20,000 x 20,000
    px in 48 KB of PNG) is a DataError naming its size, and Pillow's warning below that limit is not printed (such
    an image is read); an empty file is a DataError saying so (Pillow: "cannot identify image file")."""
    from PIL import Image

    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise DataError(path, "file is empty (0 bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(path)
        except Image.DecompressionBombError as e:
            raise DataError(path, f"an image too large to read ({e}); shrink it first") from None
    with im:
        yield im


#: Pillow's raw modes of PNGs of 16 bits per colour channel (it keeps their high bytes) → the raw mode reading the low
#: bytes of the same big-endian samples
_WIDE_PNG = {"RGB;16B": "RGB;16L", "RGBA;16B": "RGBA;16L"}


def _wide_samples(path: Path, im) -> np.ndarray | None:
    """The samples ``(H, W, C)`` uint16 of an image of 16 bits per channel that Pillow reads by their high bytes only
    (12-bit data read nearly black: 4000 as 15 of 255), its alpha last: PNGs of colour (C = 3, 4) or of grey with
    alpha (C = 2), TIFFs of colour (pixels or planes of samples); None for any other image. ``im``: opened, not loaded
    (it is loaded here). A PNG is decoded a second time by Pillow with a raw mode that takes the low bytes (the rows'
    filters undone alike); grey with alpha, which no raw mode reads so, as 8-bit RGBA (the same 4 bytes a pixel, so
    the same filters), its bytes paired again; a TIFF by tifffile."""
    from PIL import Image

    bits = im.tag_v2.get(258) if im.format == "TIFF" else None  # BitsPerSample
    if im.mode in ("RGB", "RGBA") and isinstance(bits, tuple) and len(bits) > 1 and set(bits) == {16}:
        import tifffile  # (Pillow keeps their high bytes, or reads planes of them as bytes)

        try:
            a = tifffile.imread(path, key=0)
        except Exception:  # a compression tifffile lacks a codec for: Pillow's reading
            return None
        if a.ndim == 3 and a.shape[-1] not in (3, 4) and a.shape[0] in (3, 4):  # planes of samples
            a = np.moveaxis(a, 0, -1)
        return a if a.dtype == np.uint16 and a.shape[:2] == (im.height, im.width) else None
    if im.format != "PNG" or len(im.tile) != 1:
        return None
    if im.tile[0][3] == "LA;16B":
        import io
        import zlib

        data = bytearray(Path(path).read_bytes())
        data[24:26] = bytes([8, 6])  # IHDR: bit depth 8, colour type RGBA
        data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
        with Image.open(io.BytesIO(bytes(data))) as same:
            b = np.asarray(same, dtype=np.uint16)
        im.load()
        return np.stack([(b[..., 0] << 8) | b[..., 1], (b[..., 2] << 8) | b[..., 3]], axis=-1)
    if im.tile[0][3] not in _WIDE_PNG:
        return None
    with Image.open(path) as low:
        codec, extents, offset, raw = low.tile[0]
        low.tile = [(codec, extents, offset, _WIDE_PNG[raw])]
        low.load()
        lo = np.asarray(low, dtype=np.uint16)
    im.load()
    return (np.asarray(im, dtype=np.uint16) << 8) | lo


def transparent(im) -> bool:
    """Whether ``im`` has an alpha channel or a transparent colour (a palette index, or a grey or RGB colour key)."""
    return im.mode in ("RGBA", "LA", "PA") or ("transparency" in im.info and im.mode in ("P", "L", "RGB"))


def palette_kind(im) -> str:
    """What the colours a palette image uses are, taken in the order of their indices: ``grey`` (a grey image saved
    with a palette is not colour), ``rising`` (colours whose brightness rises with the index, as a viridis or hot
    colour map's does: read as grey, the index order is kept) or ``mixed`` (a jet-like colour map, whose brightness
    rises and falls again, or colours in no order: read as grey, the top of jet's range reads 38 of 255, its middle
    201)."""
    palette = im.getpalette() or []
    used = sorted(i for _, i in im.getcolors(maxcolors=256) or [])
    rgb = [palette[3 * i:3 * i + 3] for i in used]
    if all(len(c) == 3 and c[0] == c[1] == c[2] for c in rgb):
        return "grey"
    grey = [(299 * r + 587 * g + 114 * b) / 1000 for r, g, b in (c + [0] * (3 - len(c)) for c in rgb)]
    return "rising" if all(b >= a - 1 for a, b in zip(grey, grey[1:])) else "mixed"


def read_image(path: str | Path, channels: int = 1, size: tuple[int, int] | None = None,
               resize: str = "area", background: str = "black", fit: str = "stretch",
               grey_bits: int | None = None, value_ranges: dict | None = None) -> np.ndarray:
    """One image as ``uint8`` ``(channels, H, W)``: converted to grey levels (1) or RGB (3) (an
    alpha channel is composited on ``background``: ``black``, ``white``, or ``contrast`` — the
    opposite of what is drawn, so dark strokes on a transparent canvas land on white; 16-bit grey, and PNGs of 16
    bits per colour channel (Pillow kept their high bytes: nearly black), scaled from the range of its bit depth:
    8 (values that stop at 255: 8-bit values stored in 16 bits, as numpy's ``astype(uint16)`` saves them, read at a
    quarter of their brightness over 10 bits), 10, 12, 14 or 16 bits, or ``grey_bits``, a set's: :func:`set_reading`;
    32-bit integers beyond 16 bits and floats beyond [0, 1] over ``value_ranges``, a set's, or their own range; the
    first frame of an animation or the first page of a multi-page file, with a warning),
    resized to ``size = (H, W)`` when given and
    different (``resize``: ``area``, ``bilinear`` or ``nearest``; ``none`` refuses another size). ``fit``, for
    an image of another aspect ratio: ``stretch`` (squeezed to the size), ``crop`` (its centre part of
    that aspect ratio) or ``pad`` (the whole image on a border of its edge colour)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    try:
        with open_image(path) as im:
            if size is not None and resize != "none" and im.format == "JPEG":
                # decoded at 1/2, 1/4 or 1/8 of its size where that keeps DRAFT_MARGIN times the size on each side, in
                # any orientation: a 4000 x 3000 photo read for 128 px in 47 ms instead of 182 (docs/reliability.md)
                im.draft(im.mode, (DRAFT_MARGIN * max(size),) * 2)
            wide = _wide_samples(path, im)
            im.load()
            if wide is not None:  # 16 bits per channel: over its bit depth, as 16-bit grey is
                info, colours = im.info, 1 if wide.shape[-1] == 2 else 3
                im = Image.fromarray(np.concatenate([_to_8_bits(wide[..., :colours], "I;16", grey_bits),
                                                     (wide[..., colours:] // 257).astype(np.uint8)], axis=-1))
                im.info.update(info)
            if getattr(im, "n_frames", 1) > 1 and first_time(("frames", str(path))):
                log.warning("%s: holds %d frames (an animation, or a file of several pages): only the first is read",
                            path, im.n_frames)
            im = ImageOps.exif_transpose(im)  # a photo as the camera held it
            if transparent(im):
                rgba = im.convert("RGBA")
                im = Image.alpha_composite(Image.new("RGBA", rgba.size, _backdrop(rgba, background)), rgba)
            if im.mode.startswith("I") or im.mode == "F":  # 16-bit / 32-bit grey: scaled, not clipped, to 8 bits
                kind = "float" if im.mode == "F" else "int"
                im = Image.fromarray(_to_8_bits(np.asarray(im), im.mode, grey_bits, (value_ranges or {}).get(kind)),
                                     "L")
            im = im.convert("L" if channels == 1 else "RGB")
    except FileNotFoundError:
        raise DataError(path, "image file does not exist") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataError(path, f"cannot read the image ({e})") from None
    if size is not None and (im.height, im.width) != tuple(size):
        if resize == "none":
            raise DataError(path, f"image of {im.height} x {im.width} px, the model takes {size[0]} x {size[1]}")
        if resize not in _RESAMPLE:
            raise ValueError(f"resize must be one of {sorted(_RESAMPLE)} or 'none', got {resize!r}")
        im = _fit(im, fit, int(size[0]) / int(size[1]))
        im = im.resize((int(size[1]), int(size[0])), getattr(Image.Resampling, _RESAMPLE[resize]))
    a = np.asarray(im, dtype=np.uint8)
    return a[None] if a.ndim == 2 else np.ascontiguousarray(a.transpose(2, 0, 1))


def _fit(im, fit: str, aspect: float):
    """``im`` brought to the ``aspect`` ratio (height / width) by ``fit`` (see :func:`read_image`)."""
    from PIL import Image

    if fit not in ("stretch", "crop", "pad"):
        raise ValueError(f"fit must be stretch, crop or pad, got {fit!r}")
    w, h = im.size
    if fit == "stretch" or abs(h / w - aspect) < 1e-9:
        return im
    if fit == "crop":
        cw, ch = (h / aspect, h) if w / h > 1 / aspect else (w, w * aspect)
        left, top = (w - cw) / 2, (h - ch) / 2
        with warnings.catch_warnings():  # Pillow's pixel-limit warning again, for an image read (open_image)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return im.crop((int(round(left)), int(round(top)), int(round(left + cw)), int(round(top + ch))))
    a = np.asarray(im)
    edge = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    colour = tuple(int(v) for v in np.atleast_1d(np.median(edge, axis=0)))
    nw, nh = (w, int(round(w * aspect))) if w / h > 1 / aspect else (int(round(h / aspect)), h)
    canvas = Image.new(im.mode, (nw, nh), colour if len(colour) > 1 else colour[0])
    canvas.paste(im, ((nw - w) // 2, (nh - h) // 2))
    return canvas


def _backdrop(rgba, background: str) -> tuple[int, int, int, int]:
    """The opaque colour an RGBA image is composited on (see :func:`read_image`)."""
    if background not in ("black", "white", "contrast"):
        raise ValueError(f"background must be black, white or contrast, got {background!r}")
    if background == "contrast":
        ink, weight = _ink(rgba)
        background = "white" if weight > 0 and ink / weight < 128 else "black"
    return (255, 255, 255, 255) if background == "white" else (0, 0, 0, 255)


def set_reading(paths) -> dict:
    """What must be the same for every image of a set, so that one pixel value means one thing across it:
    ``background``, the backdrop of its transparent images (the opposite of what they draw, pooled over the set:
    image by image, dark icons landed on white and light ones on black), and ``grey_bits``, the bit depth of its
    16-bit grey images (the fewest of 8, 10, 12, 14 or 16 bits holding the set's largest value: image by image, the
    same raw value read 249 in a dark frame and 4 in a bright one; its PNGs of 16 bits per colour channel too), and
    ``value_ranges``: ``float``, the range of its float images when any leaves [0, 1], ``int`` of its integer ones
    when any goes beyond 16 bits or below 0 (image by image, one value read 255 in one and 51 in another; signed
    ones, CT in Hounsfield units, lost every negative value). Images with an alpha channel that is opaque everywhere
    draw on no canvas and do not vote for the backdrop (scans saved as RGBA outvoted the transparent icons beside them,
    which then read blank). A setting the set gives nothing to decide is None (no transparent image: no backdrop;
    no 16-bit image: no bit depth), which :func:`reading_for` reads as the run leaving it to another folder.
    Unreadable files are passed over (the reading names them)."""
    ink, weight, lo, hi = 0.0, 0.0, np.inf, -np.inf  # lo, hi: float images
    top, bottom = None, 0.0  # integer images: the largest value, the smallest below 0 (signed: CT in Hounsfield units)
    for p in paths:
        try:
            with open_image(p) as im:
                wide = _wide_samples(p, im)  # 16 bits per channel, with alpha or not: its colours, not its alpha
                a = np.asarray(im) if im.mode.startswith("I") else None if wide is None else \
                    wide[..., :1 if wide.shape[-1] == 2 else 3]
                if a is not None:
                    top, bottom = max(float(a.max()), -np.inf if top is None else top), min(float(a.min()), bottom)
                if transparent(im):
                    rgba = im.convert("RGBA")
                    if np.asarray(rgba.getchannel("A")).min() < 255:
                        i, w = _ink(rgba)
                        ink, weight = ink + i, weight + w
                elif im.mode == "F":
                    a = np.nan_to_num(np.asarray(im, dtype=np.float64))
                    lo, hi = min(lo, float(a.min())), max(hi, float(a.max()))
        except (OSError, ValueError, DataError):
            continue
    background = None if weight == 0 else "white" if ink / weight < 128 else "black"
    return {"background": background, "grey_bits": None if top is None else bit_depth(top),
            "value_ranges": {"float": [lo, hi] if lo < 0 or hi > 1 else None,
                             "int": [bottom, top] if top is not None and (top > 2 ** 16 - 1 or bottom < 0) else None}}


def reading_for(run: dict, paths, root: Path) -> dict:
    """The reading of another folder's images (``paths``, of ``root``: ``evaluate --data``) for a run that read its
    training images with ``run`` (:func:`set_reading` of them). What the run never decided (None: its images had no
    transparency, no 16-bit values, no float or wide integer range) is judged from this folder itself (the run's
    defaults read black ink on a transparent canvas on black, blank; 16-bit frames each over its own bit depth).
    The backdrop is always this folder's (one that its ink is drawn in the colour of erases the drawing), with a
    warning where the run's training drawings were read on the other one; the run's bit depth and value ranges hold
    where they take this folder's values (a raw value reads as training read it), else the folder's own, with a
    warning naming what differs. A saved ``black`` backdrop is taken as undecided (runs before None said so)."""
    own = set_reading(paths)
    out, differs = dict(own), []
    run_bg = run.get("background")
    if own["background"] and run_bg == "white" and own["background"] != run_bg:
        differs.append("its transparent drawings are light ink, read on black (the run's training drawings were "
                       "dark, read on white): the model sees ink of the opposite tone")
    bits, mine = run.get("grey_bits"), own["grey_bits"]
    if bits is not None and mine is not None:
        if mine > bits:
            differs.append(f"16-bit values beyond the run's {bits}-bit training images, read over {mine} bits")
        else:
            out["grey_bits"] = bits
    ranges = dict(own["value_ranges"])
    for kind, span in (run.get("value_ranges") or {}).items():
        here = own["value_ranges"].get(kind)
        if span is not None and (here is None or span[0] <= here[0] and here[1] <= span[1]):
            ranges[kind] = span
        elif span is not None:
            differs.append(f"{kind} values from {here[0]:g} to {here[1]:g}, beyond the run's training range "
                           f"{span[0]:g} to {span[1]:g}, read over their own")
    out["value_ranges"] = ranges
    if differs:
        log.warning("%s: %s; the model's figures here are of images read otherwise than its own", root,
                    "; ".join(differs))
    return out


def _ink(rgba) -> tuple[float, float]:
    """(the grey level of what an RGBA image draws, summed and weighted by its opacity; the summed opacity): their
    ratio is the mean grey of the drawing, which decides the backdrop that contrasts with it."""
    a = np.asarray(rgba, dtype=np.float64)
    return float((a[..., :3].mean(axis=-1) * a[..., 3]).sum()), float(a[..., 3].sum())


def bit_depth(top: float) -> int | None:
    """The fewest of 8, 10, 12, 14 or 16 bits whose range holds ``top``; None above 16 bits."""
    return next((b for b in (8, 10, 12, 14, 16) if top <= 2 ** b - 1), None)


def _to_8_bits(a: np.ndarray, mode: str, bits: int | None = None,
               value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Grey levels of a 16-bit (or 32-bit integer) image over the range of its bit depth: 10, 12 or 14 bits when
    its values fit (scanners and cameras store those in 16-bit PNGs: over the 16-bit range a 12-bit scan read
    as 16 of 255, nearly black), 8 bits when they stop at 255, else 16 bits; of a float image over [0, 1]; beyond
    those (floats outside [0, 1], integers above 16 bits or below 0: signed, CT in Hounsfield units read every
    negative value as 0) over their own range; over ``value_range``, a set's, when it is given; as uint8."""
    a = np.nan_to_num(a.astype(np.float64))
    if value_range is not None and value_range[0] <= a.min() and a.max() <= value_range[1]:
        lo, hi = value_range[0], max(value_range[1], value_range[0] + 1e-12)
    elif a.min() < 0 or (a.max() > 1 if mode == "F" else a.max() > 2 ** 16 - 1):  # signed integers too (CT, HU)
        lo, hi = a.min(), max(a.max(), a.min() + 1e-12)
    elif mode == "F":
        lo, hi = 0.0, 1.0
    else:
        top = float(a.max())
        bits = bits if bits is not None and top <= 2 ** bits - 1 else bit_depth(top)
        lo, hi = 0.0, float(2 ** bits - 1) if bits else top
    return (np.clip((a - lo) / (hi - lo), 0, 1) * 255 + 0.5).astype(np.uint8)


def spectrogram_picture(db) -> np.ndarray:
    """A (frequency, time) spectrogram scaled to [0, 1] over its own range and flipped to put low frequencies at the
    bottom, for a picture (a constant one: all 0)."""
    a = np.asarray(db, dtype=np.float64)
    lo, hi = float(np.min(a)), float(np.max(a))
    return ((a - lo) / (hi - lo) if hi > lo else np.zeros_like(a))[::-1]


def to_uint8(images) -> np.ndarray:
    """Floats in [0, 1] (clipped) or uint8 → uint8, same shape."""
    a = np.asarray(images)
    if a.dtype == np.uint8:
        return a
    return (np.clip(np.nan_to_num(a.astype(np.float64)), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def tile(images, n_cols: int | None = None, pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """``(N, C, H, W)`` images → one ``(C, H', W')`` uint8 grid of ``n_cols`` columns (default:
    about square), ``pad`` pixels of ``pad_value`` between and around them."""
    a = to_uint8(images)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4 or a.shape[0] == 0:
        raise ValueError(f"images must be (N, C, H, W) with N > 0, got shape {np.shape(images)}")
    n, c, h, w = a.shape
    cols = int(n_cols or int(np.ceil(np.sqrt(n))))
    rows = int(np.ceil(n / cols))
    out = np.full((c, pad + rows * (h + pad), pad + cols * (w + pad)), pad_value, dtype=np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        y0, x0 = pad + r * (h + pad), pad + k * (w + pad)
        out[:, y0:y0 + h, x0:x0 + w] = a[i]
    return out


def write_png(path: str | Path, image) -> Path:
    """Write one ``(C, H, W)`` or ``(H, W)`` image (uint8, or floats in [0, 1]) as PNG, atomically."""
    from PIL import Image

    from latentbridge.utils import atomic_path

    a = to_uint8(image)
    if a.ndim == 3:
        a = a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3):
        raise ValueError(f"image must be (1|3, H, W) or (H, W), got shape {np.shape(image)}")
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(a)).save(tmp, format="PNG")
    return path


def write_grid(path: str | Path, images, n_cols: int | None = None, pad: int = 2) -> Path:
    """:func:`tile` ``images`` and write the grid as PNG."""
    return write_png(path, tile(images, n_cols, pad))


def write_image_samples(folder: str | Path, images, settings: dict, labels=None, class_names=(), conditions=None,
                        condition_names=()) -> dict:
    """A folder of generated images, as ``latentbridge sample`` and the edge sampler write it: ``sample_NNNN.png`` per
    image, ``grid.png`` (one column per class where several were drawn), ``samples.npz`` (``images`` uint8
    (N, C, H, W), ``labels`` with the ``class_names`` they index, ``conditions`` (N, k) with their
    ``condition_names``, ``settings`` as JSON text) and ``settings.json`` (``settings``, the file count, the names,
    each file's class). Returns what settings.json holds."""
    from latentbridge.utils import atomic_path, atomic_write_json

    folder = Path(folder)
    width = max(4, len(str(len(images) - 1)))
    for i, img in enumerate(images):
        write_png(folder / f"sample_{i:0{width}d}.png", img)
    cols = class_names and labels is not None and len(set(np.asarray(labels).tolist())) > 1
    write_grid(folder / "grid.png", images, n_cols=len(class_names) if cols else None)
    arrays = {"images": to_uint8(images), "settings": np.asarray(json.dumps(settings))}
    names: dict = {}
    if labels is not None:
        arrays["labels"] = np.asarray(labels)
        if class_names:
            arrays["class_names"] = np.asarray(class_names, dtype=str)
            names["class_names"] = list(class_names)
            names["classes"] = {f"sample_{i:0{width}d}.png": class_names[int(c)] for i, c in enumerate(labels)}
    if conditions is not None:
        arrays["conditions"] = np.asarray(conditions)
        if condition_names:
            arrays["condition_names"] = np.asarray(condition_names, dtype=str)
            names["condition_names"] = list(condition_names)
        names["condition"] = [float(v) for v in arrays["conditions"][0]]  # every sample's (one --condition for all)
    with atomic_path(folder / "samples.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    summary = {**settings, "files": len(images), **names}
    atomic_write_json(folder / "settings.json", summary)
    return summary
