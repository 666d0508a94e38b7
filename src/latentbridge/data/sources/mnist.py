"""MNIST from the four official ``*-ubyte.gz`` files (md5-checked), read by :func:`read_idx`;
without the training images, a seeded offline split of the 10,000 test images."""

from __future__ import annotations

import gzip
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np

from latentbridge.data.sources.common import SPLITS, _check_split, refuse_missing
from latentbridge.data.sources.downloads import default_data_dir, file_checksum

# MNIST.__init__ has a parameter called ``download``, so the function goes by another name here
from latentbridge.data.sources.downloads import download as download_fn
from latentbridge.errors import DataError
from latentbridge.utils import first_time

__all__ = ["MNIST", "MNIST_FILES", "read_idx"]

_IDX_KINDS = {0x00000801: ("labels", 1), 0x00000803: ("images", 3)}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file (gzip-compressed or raw) of unsigned bytes: labels (magic 0x00000801,
    shape ``(N,)``) or images (magic 0x00000803, shape ``(N, rows, cols)``), as uint8.

    Raises DataError naming the file for a missing file, a corrupt gzip stream, a bad magic
    number, or a size that does not match the dimensions in the header.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file does not exist")
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(path, f"corrupt or truncated gzip file ({exc})") from exc
    if len(raw) < 4:
        raise DataError(path, f"too short for an idx file ({len(raw)} bytes)")
    magic = struct.unpack(">I", raw[:4])[0]
    if magic not in _IDX_KINDS:
        raise DataError(
            path,
            f"bad magic number 0x{magic:08x}: expected 0x00000801 (labels) or 0x00000803 (images)",
        )
    kind, ndim = _IDX_KINDS[magic]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(path, f"truncated idx header ({len(raw)} bytes, {kind} need {header})")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    need = int(np.prod(dims, dtype=np.int64))
    have = len(raw) - header
    if have != need:
        what = "truncated" if have < need else "too long"
        raise DataError(
            path,
            f"{what}: header declares {kind} of shape {tuple(dims)} = {need} bytes of data, "
            f"the file holds {have}",
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


#: name -> (file name, md5) of the official MNIST files
MNIST_FILES: dict[str, tuple[str, str]] = {
    "train_images": ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
}


class MNIST:
    """MNIST handwritten digits from the four official ``*-ubyte.gz`` files.

    ``root`` (default ``default_data_dir() / "mnist"``) holds the files, gzipped or
    decompressed (same name without ``.gz``). ``download=True`` fetches the missing ones from
    ``BASE_URL`` and checks their md5s; ``verify=True`` checks the md5s of gzipped files
    already present.

    Offline split: without ``train-images-idx3-ubyte(.gz)``, the 10,000 official test images
    are split with ``np.random.default_rng(seed)`` into ``n_offline_test`` test images and the
    rest for training (8,000 / 2,000 by default; a t10k file of another size, the same share of
    it); ``offline_split`` is then True, a
    ``UserWarning`` says so, and :meth:`indices` gives each split's rows in the t10k file.
    """

    BASE_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
    FILES = MNIST_FILES
    N_TRAIN = 60000
    N_TEST = 10000

    def __init__(
        self,
        root: str | Path | None = None,
        download: bool = False,
        *,
        seed: int = 0,
        n_offline_test: int = 2000,
        verify: bool = False,
        setting: str = "digits.mnist_root",
        fetch: str | None = "digits.download=true",
    ):
        """``setting``: the option that names the folder, ``fetch`` the one that downloads the files (None: the
        caller has none), for the message of a folder without them."""
        self.root = Path(root) if root is not None else default_data_dir() / "mnist"
        self.seed = int(seed)
        self.n_offline_test = int(n_offline_test)
        refuse_missing(self.root, root, download, setting, fetch, "MNIST")
        if download:
            for name, md5 in self.FILES.values():
                present = self._find(name)
                if present is None or present.suffix == ".gz":  # a present .gz is md5-checked
                    download_fn(self.BASE_URL + name, self.root / name, md5=md5)
        for key in ("test_images", "test_labels"):
            if self._find(self.FILES[key][0]) is None:
                from latentbridge.io.images import list_image_files

                try:
                    own = bool(list_image_files(self.root))
                except DataError:
                    own = False
                raise DataError(
                    self.root / self.FILES[key][0],
                    f"MNIST test file missing (needed even for the offline split): point {setting} at the folder "
                    "holding the MNIST idx files" + (f" ({fetch} fetches them)" if fetch else "") + (
                        f"; {self.root} holds image files, which MNIST presets do not read: a folder of your own "
                        "images trains an image autoencoder or a diffusion model with -o data.source=folder "
                        "-o data.image_size=SIDE (configs/image_ae_conv.yaml, configs/ddpm_mnist.yaml), and written "
                        "digits in class folders named by digit (0/ ... 9/) pair with spoken digits"
                        if own else ""),
                )
        if verify:
            for name, md5 in self.FILES.values():
                p = self._find(name)
                if p is not None and p.suffix == ".gz":
                    got = file_checksum(p, "md5")
                    if got != md5:
                        raise DataError(p, f"md5 mismatch: expected {md5}, got {got}")
        has_train_images = self._find(self.FILES["train_images"][0]) is not None
        has_train_labels = self._find(self.FILES["train_labels"][0]) is not None
        if has_train_images and not has_train_labels:
            raise DataError(self.root / self.FILES["train_labels"][0], "train images present but labels missing")
        self.offline_split = not has_train_images
        if self.offline_split:
            if not 0 < self.n_offline_test < self.N_TEST:
                raise ValueError(f"n_offline_test must be in 1..{self.N_TEST - 1}, got {n_offline_test}")
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        said = ("mnist offline split", str(self.root.resolve()), self.seed, self.n_offline_test)
        if self.offline_split and first_time(said):  # once per folder and split (a run opens it 3 times)
            n = len(self._read_pair("test")[1])
            of = "the 10,000 official test images" if n == self.N_TEST else f"the {n:,} images of its t10k files"
            warnings.warn(
                f"{self.root}: MNIST training images absent; 'train' and 'test' are a seeded "
                f"(seed {self.seed}) {n - self._offline_test(n)}/{self._offline_test(n)} split of {of} "
                "(offline_split=True)",
                stacklevel=2,
            )

    def _offline_test(self, n: int) -> int:
        """How many of ``n`` t10k images the offline split tests on: ``n_offline_test`` of the official 10,000, the
        same share of a file of other size (a file of 100 images was split 1 / 99: no training image of most digits),
        at least one on each side."""
        return min(max(1, round(n * self.n_offline_test / self.N_TEST)), n - 1)

    def labels_file(self, split: str) -> Path | None:
        """The label file a split's images are read with (offline, both splits': the t10k labels)."""
        return self._find(self.FILES[f"{'test' if self.offline_split else split}_labels"][0])

    def _find(self, name: str) -> Path | None:
        return self._file(self.root, name)

    @staticmethod
    def _file(root: Path, name: str) -> Path | None:
        for cand in (root / name, root / name.removesuffix(".gz")):
            if cand.is_file():
                return cand
        return None

    @classmethod
    def has_files(cls, root: str | Path) -> bool:
        """Whether ``root`` holds MNIST's test images (the file every split needs)."""
        return cls._file(Path(root), cls.FILES["test_images"][0]) is not None

    @property
    def name(self) -> str:
        return "MNIST"

    @property
    def files(self) -> list[Path]:
        """The idx files present."""
        return [p for name, _ in self.FILES.values() if (p := self._find(name)) is not None]

    @property
    def split_rule(self) -> dict[str, str]:
        """How the images were split, for a run's record."""
        if not self.offline_split:
            return {"train": "official train (60,000)", "test": "official t10k (10,000)"}
        n_train, n_test = len(self.indices("train")), len(self.indices("test"))
        return {"train": f"seeded (seed {self.seed}) {n_train} of the t10k images",
                "test": f"the other {n_test} t10k images"}

    def _read_pair(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        if which not in self._cache:
            ip = self._find(self.FILES[f"{which}_images"][0])
            lp = self._find(self.FILES[f"{which}_labels"][0])
            images, labels = read_idx(ip), read_idx(lp)
            if images.ndim != 3 or images.shape[1:] != (28, 28):
                raise DataError(ip, f"expected images of shape (N, 28, 28), got {images.shape}")
            if labels.ndim != 1:
                raise DataError(lp, f"expected labels of shape (N,), got {labels.shape}")
            if len(images) != len(labels):
                raise DataError(lp, f"{len(labels)} labels for {len(images)} images in {ip.name}")
            if labels.size and labels.max() > 9:
                raise DataError(lp, f"label {int(labels.max())} out of range 0-9")
            self._cache[which] = (images, labels)
        return self._cache[which]

    def indices(self, split: str) -> np.ndarray:
        """Rows of the source file that make up ``split``: all rows of the split's own file,
        or (offline) a seeded, disjoint subset of the t10k rows."""
        _check_split(split)
        if not self.offline_split:
            n = len(self._read_pair(split)[1])
            return np.arange(n, dtype=np.int64)
        n = len(self._read_pair("test")[1])
        perm = np.random.default_rng(self.seed).permutation(n)
        n_test = self._offline_test(n)
        idx = perm[n - n_test :] if split == "test" else perm[: n - n_test]
        return np.sort(idx).astype(np.int64)

    def load(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(images uint8 (N, 28, 28), labels uint8 (N,))`` of ``"train"`` or ``"test"``."""
        _check_split(split)
        if not self.offline_split:
            return self._read_pair(split)
        images, labels = self._read_pair("test")
        idx = self.indices(split)
        return images[idx], labels[idx]

    def pool(self) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """``(images, labels, {"train": rows, "test": rows})``: one image pool and each
        split's rows in it (for :func:`~latentbridge.data.sources.pairing.pair_audio_visual`).
        Offline the pool is the t10k set; otherwise the training images followed by the test
        images."""
        if self.offline_split:
            images, labels = self._read_pair("test")
            return images, labels, {s: self.indices(s) for s in SPLITS}
        tr, te = self._read_pair("train"), self._read_pair("test")
        images = np.concatenate([tr[0], te[0]])
        labels = np.concatenate([tr[1], te[1]])
        n = len(tr[1])
        return images, labels, {
            "train": np.arange(n, dtype=np.int64),
            "test": np.arange(n, n + len(te[1]), dtype=np.int64),
        }
