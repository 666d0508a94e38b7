"""Written digits of one's own: image files in class folders named by digit, read as MNIST's digits are framed, in
MNIST's place for the audio-visual pairs and the image judge (:func:`written_digits` picks the reader of a folder)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from latentbridge.data.sources.common import (SPLITS, _check_split, drawn_splits, folder_digit, folder_split,
                                              real_place)
from latentbridge.errors import DataError
from latentbridge.utils import first_time, listed, stable_hash

__all__ = ["DigitImages", "written_digits"]

#: the share of a class folder's images drawn for the test split where no ``test/`` folder names it (MNIST's offline
#: split: 2,000 of 10,000)
IMAGE_TEST_SHARE = 0.2
#: a pool read in this process: (root, files and their stamps) → (images, labels, splits); a run reads it 3 times
_READ: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]] = {}


class DigitImages:
    """Written digits as image files (PNG, JPEG, BMP, TIFF, WebP; any size, colour, ink on paper or light on dark) in
    class folders named by digit (``3/`` or ``three/``) anywhere below ``root``, each framed as MNIST's digits are
    (:func:`latentbridge.data.digits.read_digit_image`: 28 x 28 grey, the digit's box 20 px, centred on its centre of
    mass). The split: ``train/`` and ``test/`` folders above the class folders, else a draw seeded by each file's path
    (:data:`IMAGE_TEST_SHARE`, the same whatever else the folder holds). The interface of
    :class:`~latentbridge.data.sources.mnist.MNIST` that the pairing and the image judge read."""

    offline_split = False  # (MNIST's seeded split of its t10k images: not this)
    seed = 0

    def __init__(self, root: str | Path):
        from latentbridge.io.images import IMAGE_EXTENSIONS, list_folder

        self.root = Path(root)
        files, others = list_folder(self.root)
        self.files, self.labels, left, rel, top = [], [], [], [], Path(os.path.realpath(self.root))
        for p in files:  # read where it really lies below the root (a linked folder's files: its own place)
            place = real_place(p, self.root, top)
            digit = next((d for part in reversed(place.parts[:-1]) if (d := folder_digit(part)) is not None), None)
            if digit is None:
                left.append(p)
            else:
                self.files.append(p)
                self.labels.append(digit)
                rel.append(place)
        left += [p for p in others if any(folder_digit(q) is not None for q in p.relative_to(self.root).parts[:-1])]
        if not self.files:
            raise DataError(self.root, "no written digits: images in class folders named by digit (0/ ... 9/ or "
                                       "zero/ ... nine/; train/ and test/ above them split them) were expected")
        if left and first_time(("digit images left out", str(self.root.resolve()))):
            warnings.warn(f"{self.root}: skipped {len(left)} file(s) in no class folder named by a digit (0-9, "
                          f"zero-nine), or of no image format read ({', '.join(IMAGE_EXTENSIONS)}): "
                          f"{listed([p.relative_to(self.root).as_posix() for p in left])}", stacklevel=2)
        test = [folder_split(r.parts) for r in rel]
        undecided = [i for i, t in enumerate(test) if t is None]
        drawn = drawn_splits([rel[i].as_posix() for i in undecided], [self.labels[i] for i in undecided],
                             IMAGE_TEST_SHARE)
        for i, t in zip(undecided, drawn):
            test[i] = "test" if t else "train"
        self.test = np.asarray([t == "test" for t in test], dtype=bool)
        self.labels = np.asarray(self.labels, dtype=np.uint8)

    @property
    def name(self) -> str:
        return f"written digits of {self.root}"

    @property
    def split_rule(self) -> dict[str, str]:
        """How the images were split, for a run's record."""
        n = {s: int((self.test == (s == "test")).sum()) for s in SPLITS}
        rule = f"train/ and test/ folders where they name it, else a seeded {IMAGE_TEST_SHARE:.0%} (by file path)"
        return {"train": f"{n['train']} images (the rest)", "test": f"{n['test']} images ({rule})"}

    def labels_file(self, split: str) -> Path | None:
        """Where a split's digits are named: the folder (no label file)."""
        _check_split(split)
        return self.root

    def indices(self, split: str) -> np.ndarray:
        """The split's rows of :meth:`pool`."""
        _check_split(split)
        return np.flatnonzero(self.test == (split == "test")).astype(np.int64)

    def pool(self) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """``(images uint8 (N, 28, 28), labels, {"train": rows, "test": rows})``, read once per process and kept framed
        in the digit sets' cache (20,000 images took 17 s to frame in every command)."""
        from latentbridge.utils import file_stamp

        key = (str(self.root.resolve()), stable_hash([(str(p), file_stamp(p)) for p in self.files]))
        if key not in _READ:
            _READ[key] = (self._framed(key[1]), self.labels, {s: self.indices(s) for s in SPLITS})
        return _READ[key]

    def _framed(self, stamp: str) -> np.ndarray:
        """The images framed as MNIST's, from the digit sets' cache (one set a folder's files and stamps:
        :func:`~latentbridge.data.feature_cache.digit_set`) or read and put there."""
        from latentbridge.data.feature_cache import digit_set

        def frame():
            from latentbridge.data.digits import read_digit_image

            from latentbridge.utils import progress_bar

            images = np.empty((len(self.files), 28, 28), dtype=np.uint8)
            bad = []
            with progress_bar(len(self.files), True, "framing digit images", "image") as bar:  # (33 s of silence)
                for i, p in enumerate(self.files):
                    try:
                        images[i] = np.round(read_digit_image(p, 28, 28) * 255.0).astype(np.uint8)
                    except DataError as e:  # every unusable image named at once
                        bad.append(e)
                    bar.update(1)
            if bad:
                from latentbridge.errors import named_problems

                raise bad[0] if len(bad) == 1 else DataError(self.root, f"{len(bad)} of {len(self.files)} images "
                                                                        "cannot be used: " + named_problems(bad))
            return (images,)

        shape = (len(self.files), 28, 28)
        return digit_set(stable_hash({"images": stamp, "framing": 1}), ("images",),
                         lambda images: images.shape == shape and images.dtype == np.uint8, frame, "digit image")[0]

    def load(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(images uint8 (N, 28, 28), labels uint8 (N,))`` of ``"train"`` or ``"test"``."""
        images, labels, splits = self.pool()
        return images[splits[split]], labels[splits[split]]


def written_digits(root, download: bool = False, **mnist_kw):
    """The reader of a folder of written digits: MNIST's idx files (:class:`~latentbridge.data.sources.mnist.MNIST`),
    else images in class folders named by digit (:class:`DigitImages`), else MNIST's downloaded with ``download``, or
    its message of what is missing."""
    from latentbridge.data.sources.mnist import MNIST

    root = Path(root) if root is not None else None
    if root is None or not root.is_dir() or MNIST.has_files(root):
        return MNIST(root, download=download, **mnist_kw)
    try:  # (before a download: digits.download, set to fetch FSDD, put MNIST in place of one's own images)
        return DigitImages(root)
    except DataError:  # no images in class folders named by digit: MNIST's (downloaded), or its message of what lacks
        return MNIST(root, download=download, **mnist_kw)
