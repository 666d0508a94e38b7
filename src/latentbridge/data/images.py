"""Image sets for generative models: MNIST through its named source, or any folder of PNG/JPEG
images (grey or RGB, resized, classes from sub-folder names, continuous conditions from a CSV),
split into train / validation / test.

MNIST: the official split when the training images are present; otherwise the seeded 8,000 /
2,000 split of the 10,000 official test images (:class:`~latentbridge.data.sources.MNIST`), which
``info["split"]`` states. Validation images are held out of the training split.
"""

from __future__ import annotations

import logging
import re
import unicodedata
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from latentbridge.errors import ConfigError, DataError, named_problems
from latentbridge.io.images import read_image
from latentbridge.utils import first_time, is_hidden, listed, natural_key, output_marks, progress_bar

log = logging.getLogger(__name__)

MNIST_OFFLINE_NOTE = ("offline split: the 60,000 MNIST training images are absent, so 'train' and 'test' are a "
                      "fixed (seed {seed}, whatever the run's) 8,000 / 2,000 split of the 10,000 official test "
                      "images; figures are not comparable with results on the official split")
MNIST_OFFICIAL_NOTE = "the official MNIST split (60,000 training / 10,000 test images)"

#: images a worker thread reads between two updates of the progress bar
READ_CHUNK = 64


def unit_floats(images: np.ndarray) -> np.ndarray:
    """uint8 images as float32 in [0, 1] (``x / 255``): the one scaling of pixels the image models train and are
    measured on, whether of a whole set, a batch (:func:`unit_batch`) or a slice (:class:`FloatView`)."""
    out = np.asarray(images).astype(np.float32)
    out /= 255.0
    return out


def unit_batch(batch):
    """The collate of a loader over uint8 images: the batch stacked as usual, its uint8 tensors (the images) then
    scaled by :func:`unit_floats` (labels and conditions as they are): a set is held as uint8 (a quarter of its
    floats) and scaled a batch at a time, to the floats the whole set scaled at once gave."""
    import torch
    from torch.utils.data import default_collate

    def scaled(t):
        return torch.from_numpy(unit_floats(t.numpy())) if t.dtype == torch.uint8 else t

    batch = default_collate(batch)
    if isinstance(batch, dict):
        return {k: scaled(v) for k, v in batch.items()}
    return type(batch)(scaled(t) for t in batch) if isinstance(batch, (list, tuple)) else scaled(batch)


class FloatView:
    """uint8 images ``(N, C, H, W)`` read as :func:`unit_floats` a slice at a time (``len``, ``shape``, ``[idx]``:
    what :func:`~latentbridge.utils.batched` cuts), without a float copy of the whole set."""

    def __init__(self, images: np.ndarray):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple:
        return self.images.shape

    def __getitem__(self, idx) -> np.ndarray:
        return unit_floats(self.images[idx])


@dataclass
class ImageSet:
    """``images`` uint8 (N, C, H, W); ``labels`` int64 (N,) or None; ``conditions`` float32 (N, k) or None.

    A folder's set holds its ``files`` and the ``reader`` of them, and reads its images when they are first used
    (``stored`` until then None): its length, labels, conditions and subsets come without decoding an image, so a
    subset (``data.limit``) or a split (``evaluate``'s test images) decodes only its own files."""

    stored: np.ndarray | None
    labels: np.ndarray | None = None
    conditions: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)
    condition_names: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    reader: "FolderReader | None" = None

    @property
    def images(self) -> np.ndarray:
        if self.stored is None:
            self.stored = self.reader.read(self.files)
        return self.stored

    def __len__(self) -> int:
        return int(len(self.files) if self.stored is None else len(self.stored))

    def subset(self, idx) -> "ImageSet":
        idx = np.asarray(idx, dtype=np.int64)
        return ImageSet(None if self.stored is None else self.stored[idx],
                        None if self.labels is None else self.labels[idx],
                        None if self.conditions is None else self.conditions[idx], self.class_names,
                        self.condition_names, [self.files[i] for i in idx] if self.files else [], self.reader)

    def floats(self) -> np.ndarray:
        """Images as float32 in [0, 1] (a float copy of the whole set: :class:`FloatView` reads slices)."""
        return unit_floats(self.images)


class FolderReader:
    """Reads images of a folder as :func:`~latentbridge.io.images.read_image` does with one set's settings (size,
    channels, fit, the folder's reading) into one preallocated uint8 array: in threads (the audio extractor's count,
    :func:`~latentbridge.data.audio.default_workers`: Pillow decodes without the GIL), with a progress bar, every
    unreadable image named in one error: those of the files read, and every file of the folder that did not open
    (``unopened``: its header said so, wherever it lies in the splits)."""

    def __init__(self, root: Path, n_files: int, data_cfg, reading: dict):
        self.root, self.n_files, self.reading = root, n_files, reading
        self.channels, self.side = int(data_cfg.channels), int(data_cfg.image_size)
        self.resize, self.fit = data_cfg.resize, data_cfg.fit
        self.unopened: dict[str, DataError] = {}

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.channels, self.side, self.side

    def one(self, path: Path) -> np.ndarray:
        r = self.reading
        return read_image(path, self.channels, (self.side, self.side), self.resize, fit=self.fit,
                          background=r["background"] or "black", grey_bits=r["grey_bits"],
                          value_ranges=r["value_ranges"])

    def problem(self, path: Path) -> DataError | None:
        try:
            self.one(path)
        except DataError as e:
            return e
        return None

    def check(self, paths: list[Path]) -> None:
        """Record the problem of each of ``paths`` (files whose header did not open) that reading it has."""
        self.unopened = {e.path: e for p in paths if (e := self.problem(p)) is not None}

    def read(self, files: list[Path]) -> np.ndarray:
        from concurrent.futures import ThreadPoolExecutor

        from latentbridge.data.audio import default_workers

        out = np.empty((len(files), *self.shape), dtype=np.uint8)

        def chunk(start: int) -> list[DataError]:
            bad = []
            for i in range(start, min(start + READ_CHUNK, len(files))):
                try:
                    if str(files[i]) not in self.unopened:  # (named below)
                        out[i] = self.one(files[i])
                except DataError as e:
                    bad.append(e)
            return bad

        starts = range(0, len(files), READ_CHUNK)
        n = min(default_workers(), len(starts))
        bad = []
        with progress_bar(len(files), True, "reading images", unit="image") as bar:
            # (open_image's catch_warnings is not thread-safe: at worst its ignoring of Pillow's size warning, which
            # every image read asks for, outlives the reading)
            pool = ThreadPoolExecutor(n, thread_name_prefix="latentbridge-images") if n > 1 else None
            try:
                for start, errors in zip(starts, pool.map(chunk, starts) if pool else map(chunk, starts)):
                    bad.extend(errors)
                    bar.update(min(READ_CHUNK, len(files) - start))
            finally:  # an error (or an interrupted caller) cancels the chunks not yet started
                if pool is not None:
                    pool.shutdown(wait=True, cancel_futures=True)
        bad = sorted(bad + list(self.unopened.values()), key=lambda e: e.path)
        if bad:
            raise DataError(self.root, f"{len(bad)} of {self.n_files} images cannot be read: " + named_problems(bad))
        if text := content_warning(self.root, files, out, self.reading.get("background")):
            log.warning(text)
        return out


#: the highest level (of 255) of an image that holds labels, not grey levels: a mask or label map saved as 0/1
LABEL_LEVELS = 8


def content_warning(root: Path, files: list[Path], images: np.ndarray, background: str | None) -> str | None:
    """What reading left of a folder's ``images`` (uint8, of ``files``) that trains nothing a user meant: drawings on
    a transparent canvas read blank (ink of the tone of the set's ``background``, the backdrop chosen for the set's
    other drawings: that ink vanishes), and images of levels 0 to :data:`LABEL_LEVELS` of 255 (a mask or label map
    saved as 0/1: nearly black). None when there are none (blank images that are not transparent, such as the empty
    masks of a clean class, are data)."""
    from latentbridge.io.images import open_image, transparent

    if not len(images):  # (a split of no images: a training of one image a class holds out none)
        return None
    flat = images.reshape(len(images), -1)
    lo, hi = flat.min(axis=1), flat.max(axis=1)

    def name(i: int) -> str:
        return files[i].relative_to(root).as_posix() if files[i].is_relative_to(root) else files[i].name

    def see_through(i: int) -> bool:
        with open_image(files[i]) as im:
            return transparent(im) and int(np.asarray(im.convert("RGBA").getchannel("A")).min()) < 255

    blank = [name(i) for i in np.flatnonzero(lo == hi) if see_through(int(i))]
    as_labels = (hi > lo) & (hi <= LABEL_LEVELS)
    labels = [name(i) for i in np.flatnonzero(as_labels)]
    parts = ([f"{len(blank)} drawing(s) on a transparent canvas read blank ({listed(blank)}): nothing drawn, or ink "
              f"of the tone of the set's backdrop ({background}: the opposite of its drawings' ink), which erases it; "
              "draw every one in one tone, or flatten them onto their own backdrop"] if blank else []) + (
        [f"{len(labels)} image(s) hold only levels 0 to {int(hi[as_labels].max())} of 255, "
         f"nearly black ({listed(labels)}): masks or label maps saved as 0/1? Save them as 0/255"] if labels else [])
    return f"{root}: " + "; ".join(parts) if parts else None


@dataclass
class ImageData:
    train: ImageSet
    val: ImageSet
    test: ImageSet
    info: dict
    files: list = field(default_factory=list)
    """The image files a folder source read (a resumed training checks them: :func:`latentbridge.tasks.pipeline.
    training_run`); empty for MNIST."""

    @property
    def held_out_files(self) -> list:
        """The folder's files a training does not learn from: validation, test, and those ``data.limit`` left out
        (recorded with the run: :func:`~latentbridge.data.run_record.record_data`)."""
        trained = set(self.train.files)
        return [f for f in self.files if f not in trained]

    @property
    def n_classes(self) -> int:
        return len(self.train.class_names)

    @property
    def n_continuous(self) -> int:
        return len(self.train.condition_names)

    def read(self, *names: str) -> "ImageData":
        """Read the folder images of the sets ``names`` (``train``, ``val``, ``test``) not yet read, in one pass: one
        progress bar, one error naming every unreadable image of them; each set's images are a slice of one array.
        Returns self."""
        sets = [s for s in (getattr(self, n) for n in names) if s.stored is None and s.reader is not None]
        if sets:
            images, at = sets[0].reader.read([p for s in sets for p in s.files]), 0
            for s in sets:
                s.stored, at = images[at:at + len(s)], at + len(s)
        return self


def seeded_subset(n: int, limit: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded random subset of ``limit`` of ``n`` items (all of them without a limit)."""
    if not limit or n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def split_off(n: int, fraction: float, seed: int, labels: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held out) row indices: a seeded ``fraction`` of ``n`` held out (at least one when the
    fraction is positive and n > 1); with ``labels``, of each class (stratified: a class of one
    image keeps it)."""
    if labels is not None:
        labels = np.asarray(labels)
        parts = [(idx, split_off(len(idx), fraction, seed + k)) for k, idx in
                 enumerate(np.flatnonzero(labels == c) for c in np.unique(labels))]
        return (np.sort(np.concatenate([idx[kept] for idx, (kept, _) in parts])),
                np.sort(np.concatenate([idx[out] for idx, (_, out) in parts])))
    n_out = int(round(fraction * n)) if n > 1 else 0
    if fraction > 0 and n > 1:
        n_out = max(1, n_out)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_out:]), np.sort(perm[:n_out])


def resize_images(images: np.ndarray, side: int, method: str = "area") -> np.ndarray:
    """uint8 (N, C, H, W) → (N, C, side, side) with Pillow (``area`` or ``bilinear``)."""
    from PIL import Image

    if images.shape[-2:] == (side, side):
        return images
    mode = {"area": Image.Resampling.BOX, "bilinear": Image.Resampling.BILINEAR}[method]
    out = np.empty((*images.shape[:2], side, side), dtype=np.uint8)
    for i in range(len(images)):
        for c in range(images.shape[1]):
            out[i, c] = np.asarray(Image.fromarray(images[i, c]).resize((side, side), mode))
    return out


def _mnist(data_cfg, seed: int) -> tuple[ImageSet, ImageSet, dict]:  # (the offline split is fixed, not seeded)
    from latentbridge.data.sources import MNIST

    if not data_cfg.root:
        raise ConfigError("data.root: no MNIST folder given (the folder holding the *-ubyte.gz files)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the offline split is recorded in info instead
        mn = MNIST(data_cfg.root, setting="data.root", fetch=None)  # the fixed offline split: the judge's
    names = [str(d) for d in range(10)]
    sets = []
    for split in ("train", "test"):
        x, y = mn.load(split)
        x = x[:, None]
        if data_cfg.image_size and data_cfg.image_size != 28:
            x = resize_images(x, data_cfg.image_size, data_cfg.resize)
        sets.append(ImageSet(x, y.astype(np.int64), None, names))
    info = {"source": "mnist", "root": str(data_cfg.root), "offline_split": bool(mn.offline_split),
            "split": MNIST_OFFLINE_NOTE.format(seed=mn.seed) if mn.offline_split else MNIST_OFFICIAL_NOTE}
    return sets[0], sets[1], info


def _read_conditions(path: Path, root: Path, files: list[Path]) -> tuple[np.ndarray, list[str]]:
    """Each image's condition values from a CSV of a ``file`` column (paths inside the image folder: relative to it,
    or absolute; ``/`` or ``\\`` between folders) and numeric columns: comma, semicolon or tab between cells (or
    Excel's ``sep=X`` line), UTF-8 (a byte-order mark too), UTF-16 or Windows-1252 text. An image listed twice is
    refused (both lines named); rows of no image are named."""
    from latentbridge.io.text import csv_records, decode_text

    if not path.is_file():
        raise DataError(path, "is a folder, not a conditions CSV" if path.is_dir() else "conditions CSV does not exist")
    records, delim = csv_records(decode_text(path.read_bytes(), path, "a conditions CSV (a 'file' column and numeric "
                                             "columns)", legacy="all"), {"file"})
    rows = [r for _, r in records]
    if not rows or "file" not in [h.strip() for h in rows[0]]:
        first = delim.join(rows[0]) if rows else ""
        raise DataError(path, "a conditions CSV needs a header with a 'file' column and numeric columns (comma, "
                              f"semicolon or tab between them); its first line is {first[:80]!r}")
    head = [h.strip() for h in rows[0]]
    col = head.index("file")
    names = [h for i, h in enumerate(head) if i != col]
    if not names:
        raise DataError(path, "no condition columns besides 'file'")
    values: dict[str, list[float]] = {}
    first_line: dict[str, int] = {}
    for line, r in records[1:]:
        if not any(x.strip() for x in r):
            continue
        if len(r) != len(head):
            raise DataError(path, f"line {line}: {len(r)} cells, the header has {len(head)}")
        try:
            vals = [float(x.strip().replace(",", ".") if delim != "," else x) for i, x in enumerate(r) if i != col]
        except ValueError:
            raise DataError(path, f"line {line}: a condition value is not a number") from None
        if not np.all(np.isfinite(vals)):
            raise DataError(path, f"line {line}: a condition value is not finite")
        key = _condition_key(r[col], root)
        if key in values:
            raise DataError(path, f"lines {first_line[key]} and {line} both give the conditions of {key}: one row "
                                  "per image")
        values[key], first_line[key] = vals, line
    keys = [_nfc(p.relative_to(root).as_posix()) for p in files]
    if lacking := [p for p, key in zip(files, keys) if key not in values]:  # every one named (it named the first)
        outside = next((k for k in values if Path(k).is_absolute() or re.match(r"[A-Za-z]:/", k)), None)
        hint = (f" (its rows name paths outside {root}, such as {outside}: name each image by its path inside the "
                "image folder)" if outside else "")
        raise DataError(lacking[0] if len(lacking) == 1 else root, f"no row in {path} for "
                        + ("this image" if len(lacking) == 1 else f"{len(lacking)} of its {len(files)} images: "
                           + listed([str(p.relative_to(root)) for p in lacking], 5, count=True)) + hint)
    out = [values[key] for key in keys]
    used = set(keys)
    unused = [k for k in values if k not in used]
    if unused:
        log.warning("%s: %d row(s) name no image of %s (%s): left out", path, len(unused), root,
                    listed([f"line {first_line[k]}: {k}" for k in unused]))
    return np.asarray(out, dtype=np.float32), names


def _condition_key(cell: str, root: Path) -> str:
    """A conditions CSV's ``file`` cell as the path inside ``root`` it names (``./a.png``, ``a\\b.png`` written on
    Windows and an absolute path inside ``root`` all read as the image folder's own names)."""
    text = cell.strip().replace("\\", "/")
    p = Path(text)
    if p.is_absolute():
        try:
            return _nfc(p.resolve().relative_to(root.resolve()).as_posix())
        except ValueError:
            return _nfc(p.as_posix())
    return _nfc(p.as_posix())


def _nfc(name: str) -> str:
    """A name with its letters composed: files named on macOS (``u`` + a combining diaeresis) match the same name
    typed or written by a spreadsheet (``ü``)."""
    return unicodedata.normalize("NFC", name)


def _grey_content(im) -> bool:
    """Whether an RGB-like image holds only greys (a scan or a grey drawing saved in colour, a JPEG's chroma noise
    aside), judged on a 32-px copy."""
    if im.format == "JPEG":
        im.draft("RGB", (32, 32))  # decoded at a fraction of its size
    a = np.asarray(im.convert("RGB").resize((32, 32)), dtype=np.int16)
    return int(np.abs(a - a.mean(axis=-1, keepdims=True)).max()) <= 8


def _report_conversions(root: Path, files: list[Path], side: int, channels: int, fit: str) -> list[Path]:
    """One line on what reading the folder does to its images: sizes brought to ``side`` (and how, for another
    aspect ratio), images far smaller than that, colour read as grey. A warning when the images differ among
    themselves or from the model's size, or when colour is read as grey (a folder of colour images of one size trained
    as grey with only the info line), else an info line (``-v``). Returns the files it could not open (empty, not
    images, too large: their headers say so, so that every image of the folder is checked without decoding it)."""
    from collections import Counter

    from latentbridge.io.images import open_image, palette_kind

    sizes, colour, tiny, unopened, names = Counter(), 0, [], [], {}
    for p in files:
        try:
            with open_image(p) as im:  # the size as shown: EXIF orientations 5-8 turn a photo by 90 degrees
                size = im.size[::-1] if im.getexif().get(0x0112, 1) in (5, 6, 7, 8) else im.size
                sizes[size] += 1
                names.setdefault(size, []).append(p.relative_to(root).as_posix() if p.is_relative_to(root) else p.name)
                colour += channels == 1 and (im.mode in ("RGB", "RGBA", "CMYK", "YCbCr") and not _grey_content(im) or
                                             (im.mode == "P" and palette_kind(im) != "grey"))
                if (max(im.size) if fit == "pad" else min(im.size)) < side / 2:  # what the fit keeps, blown up
                    tiny.append(p.relative_to(root).as_posix() if p.is_relative_to(root) else p.name)  # (class)
        except (OSError, DataError):
            unopened.append(p)  # read_image names it
            continue
    parts = []
    if set(sizes) != {(side, side)}:
        common = sizes.most_common(1)[0][1]  # a size of one to three images among more: named (a mosaic, a stray)
        shapes = listed([f"{w}x{h} x{n}" + (f" ({', '.join(names[w, h])})" if n <= 3 < common else "")
                         for (w, h), n in sizes.most_common()], 4)
        odd = sum(n for (w, h), n in sizes.items() if w != h)
        parts.append(f"images of {shapes} resized to {side}x{side}" + (
            f" ({odd} of another aspect ratio: data.fit {fit})" if odd else ""))
    if tiny:
        parts.append(f"{len(tiny)} under half that size, blown up ({listed(tiny)})")
    if colour:
        parts.append(f"{colour} in colour read as grey (data.channels 1; -o data.channels=3 keeps their colour)")
    if parts:
        (log.warning if len(sizes) > 1 or tiny or colour else log.info)("%s: %s", root, "; ".join(parts))
    return unopened


#: the mosaics a sample folder holds beside its samples (``sample``'s and the edge sampler's grid, a latent diffusion
#: run's image grid)
SAMPLE_MOSAICS = frozenset({"grid.png", "images.png"})


def _report_left_out(root: Path, files: list[Path], others: list[Path], class_folders: bool,
                     conditions: str | None = None) -> None:
    """A warning naming the files of the folder that are not images it reads (``others``: GIFs, notes, ...; the
    conditions CSV is read) and, with class folders, the sub-folders left without an image, whose class would vanish
    without a word."""
    from latentbridge.io.images import IMAGE_EXTENSIONS

    if conditions:
        csv_file = Path(conditions).resolve()
        others = [p for p in others if p.resolve() != csv_file]
    if others and first_time(("images left out", str(root))):  # a folder read twice (evaluate --data of it): once
        kinds = ", ".join(sorted({p.suffix.lower() or "(no extension)" for p in others}))
        named = listed([p.relative_to(root).as_posix() for p in others])
        log.warning("%s: %d file(s) not read here as images (%s: %s) left out; images are %s", root,
                    len(others), kinds, named, ", ".join(IMAGE_EXTENSIONS))
    if class_folders:
        held = {p.relative_to(root).parts[0] for p in files}
        empty = sorted(d.name for d in root.iterdir() if d.is_dir() and not is_hidden(d, root) and d.name not in held)
        if empty and first_time(("empty class folders", str(root))):
            log.warning("%s: %d class folder(s) without an image read here (%s): no class of their own here",
                        root, len(empty), listed(empty, 5))


def _folder(data_cfg, seed: int, reading: dict | None = None,
            classes_optional: bool = False) -> tuple[ImageSet, ImageSet, dict]:
    """The folder's training and test sets, their images not yet decoded (:class:`ImageSet`): every file's header is
    read (sizes, colour, the set's reading), and a file that does not open as an image is named by every reading of
    the folder's images; the pixels are decoded by the set that uses them. ``classes_optional``: with
    ``data.class_folders``, a folder whose images all lie at its top is read without classes (an autoencoder's
    evaluation, where classes only split the error) instead of refused."""
    from latentbridge.io.images import list_folder, reading_for, set_reading

    if not data_cfg.root:
        raise ConfigError("data.root: no image folder given")
    root = Path(data_cfg.root)
    files, others = list_folder(root)
    if output_marks([p.name for p in root.iterdir()], data=True, folder=root):  # samples of `sample` or the edge
        for mosaic in [p for p in files if p.parent == root and p.name in SAMPLE_MOSAICS]:  # sampler: their mosaic
            files.remove(mosaic)  # is no sample (it was cropped into one, unnamed)
            others.append(mosaic)
    class_folders = data_cfg.class_folders and not (classes_optional and all(
        len(p.relative_to(root).parts) == 1 for p in files))
    # drawings on a transparent canvas (ink in the alpha channel) on the opposite of the set's ink, as a condition
    # image is read (on black, black ink read as an empty image); 16-bit grey over the set's bit depth; a run's
    # reading (evaluate --data) holds where it decided, the rest judged from this folder
    reading = set_reading(files) if reading is None else reading_for(reading, files, root)
    reader = FolderReader(root, len(files), data_cfg, reading)
    reader.check(_report_conversions(root, files, int(data_cfg.image_size), data_cfg.channels, data_cfg.fit))
    _report_left_out(root, files, others, class_folders, data_cfg.conditions)
    labels, names = None, []
    if class_folders:
        top = []
        for p in files:
            parts = p.relative_to(root).parts
            if len(parts) < 2:
                raise DataError(p, "with data.class_folders every image must be in a class sub-folder of the root")
            top.append(parts[0])
        names = sorted(set(top), key=lambda n: (natural_key(n), n))  # 1, 2, ..., 10, not 1, 10, 2
        labels = np.asarray([names.index(t) for t in top], dtype=np.int64)
    conditions, cond_names = None, []
    if data_cfg.conditions:
        conditions, cond_names = _read_conditions(Path(data_cfg.conditions), root, files)
    full = ImageSet(None, labels, conditions, names, cond_names, files, reader)
    keep, test = split_off(len(full), data_cfg.test_fraction, seed + 7, labels)
    info = {"source": "folder", "root": str(root), "offline_split": False, "n_files": len(files), "reading": reading,
            "files": files,
            "split": f"a seeded (seed {seed}) {1 - data_cfg.test_fraction:.0%} / {data_cfg.test_fraction:.0%} "
                     f"split of {len(files)} images" + (", per class" if labels is not None else ""),
            "classes": names, "conditions": cond_names}
    return full.subset(keep), full.subset(test), info


def load_image_data(data_cfg, seed: int, read: tuple[str, ...] = ("train", "val"), run=None) -> ImageData:
    """Train / validation / test sets of a ``data`` section
    (:class:`~latentbridge.config.sections.DiffusionDataConfig`), seeded by ``seed``. The splits and the
    ``data.limit`` subset of the training split are drawn over a folder's file list; the folder images of the sets
    ``read`` are decoded here, together (:meth:`ImageData.read`), the others' when they are first used (a training
    decodes no test image, an evaluation no training image it does not use). ``run``: the trained run whose own split
    an evaluation reads (:func:`_unseen_test`)."""
    train, test, info = (_mnist if data_cfg.source == "mnist" else _folder)(data_cfg, seed)
    files = info.pop("files", [])
    if run is not None and files:
        test, info = _unseen_test(run, files, test, info)
    train = train.subset(seeded_subset(len(train), data_cfg.limit, seed))
    keep, val = split_off(len(train), data_cfg.val_fraction, seed + 1,
                          train.labels if data_cfg.source == "folder" else None)
    if len(keep) == 0:
        raise DataError(data_cfg.root, "no training images left after the validation split")
    shape = train.images.shape[1:] if train.reader is None else train.reader.shape
    info = {**info, "n_train": int(len(keep)), "n_val": int(len(val)), "n_test": int(len(test)),
            "limit": data_cfg.limit, "image_shape": list(shape)}
    return ImageData(train.subset(keep), train.subset(val), test, info, files).read(*read)


def _unseen_test(run, files: list, test: ImageSet, info: dict) -> tuple[ImageSet, dict]:
    """The test split of a run's folder less the images the run trained on, by its record of the files it read
    (:func:`~latentbridge.data.run_record.trained_among`): a folder changed since the training (an image added
    or gone) is split anew, and the test share took in training images (26 of 400 after one file added and one gone).
    A record that cannot tell which (a run recorded before 2026-12-07) leaves the split as drawn, with a warning."""
    from latentbridge.data.run_record import data_changes, trained_among

    if not (said := data_changes(Path(run), files)):
        return test, info
    if (seen := trained_among(Path(run), test.files, files)) is None:
        log.warning("%s: the run's images changed since it was trained (%s): its test split, drawn anew over them, may "
                    "hold images it trained on (its record does not say which: restore the folder to evaluate on its "
                    "own test images)", run, said)
        return test, {**info, "split": f"{info['split']} (the folder changed since the training: {said})"}
    keep = [i for i, trained in enumerate(seen) if not trained]
    log.warning("%s: the run's images changed since it was trained (%s): its test split, drawn anew over them, held "
                "%d of the images it trained on, left out (%d test images remain)", run, said,
                len(test) - len(keep), len(keep))
    return test.subset(keep), {**info, "split": f"{info['split']}, less {len(test) - len(keep)} test image(s) the "
                                                f"run trained on (the folder changed since: {said})"}


def every_image(data_cfg, root: str, seed: int, classes: list[str] | None = None,
                reading: dict | None = None, classes_optional: bool = False) -> tuple[ImageSet, dict]:
    """Every image of the folder ``root`` read as ``data_cfg`` reads its own (size, channels, fit, classes), as the test
    set of an evaluation on other data (``evaluate --data DIR``: the whole folder, not a split of it). With
    ``data.class_folders`` and the run's ``classes``, a class folder the run did not know is an error naming it, the
    labels are the run's class indices, and a class of the run with no folder here is named in a warning (samples of
    every class are then compared with images of fewer). The run's conditions CSV is kept (it must list these images).
    ``reading``: the run's (``data.reading`` of its model folder, :func:`~latentbridge.io.images.set_reading` of its
    training images), so that a raw value reads as it did in training: the folder's own bit depth read 12-bit frames
    whose largest value is 1000 as 10-bit ones, 4x brighter; what the run never decided (a backdrop for transparent
    images, a bit depth) judged from this folder (:func:`~latentbridge.io.images.reading_for`; None: the folder's
    own). ``classes_optional``: :func:`_folder`'s."""
    full, _, info = _folder(data_cfg.model_copy(update={"root": root, "test_fraction": 0.0}), seed, reading,
                            classes_optional)
    info.pop("files")
    if data_cfg.class_folders and classes and full.labels is not None:
        known = [str(c) for c in classes]
        by_nfc = {_nfc(c): c for c in known}  # a folder copied from a Mac names café decomposed: the same class
        unknown = [n for n in full.class_names if _nfc(n) not in by_nfc]
        if unknown:
            raise DataError(root, f"class folder(s) the run was not trained on: {', '.join(unknown)} (its classes: "
                                  f"{', '.join(known)}); evaluate on a folder of the run's classes only")
        missing = [n for n in known if _nfc(n) not in {_nfc(c) for c in full.class_names}]
        if missing:
            log.warning("%s: no folder for class(es) %s of the run: its samples of every class are compared with "
                        "images of %d of its %d classes", root, ", ".join(missing), len(known) - len(missing),
                        len(known))
        remap = np.asarray([known.index(by_nfc[_nfc(n)]) for n in full.class_names], dtype=np.int64)
        full = replace(full, labels=remap[full.labels], class_names=known)
        info = {**info, "classes": known}
    return full, {**info, "split": f"every image of {root} ({len(full)} images)"}
