"""Public data sets: checksummed downloads and readers for FSDD, MNIST and MUSDB18-style stems.

Every problem with a file (or a URL) is raised as :class:`latentbridge.errors.DataError`, whose
message names it.

* :func:`download` streams a URL to ``DEST.partial`` beside the destination, checks its md5 /
  sha256 and renames it onto ``DEST`` in one step; a failed or interrupted download leaves no
  partial file behind. A file already present with the right checksum is not downloaded again.
* :class:`FSDD` (Free Spoken Digit Dataset): a folder holding ``recordings/*.wav`` is used as is;
  ``download=True`` fetches the GitHub archive of commit ``26eb9aa`` and extracts its
  ``recordings/`` folder (whatever the archive's top folder is called).
* :class:`MNIST`: the four ``*-ubyte.gz`` files (md5-checked), read by :func:`read_idx`. When the
  60,000 training images are absent (as on the offline development machine), ``"train"`` and
  ``"test"`` come from a seeded split of the 10,000 official test images (8,000 / 2,000 by
  default); ``MNIST.offline_split`` is then True and a warning says so. Report figures obtained
  that way as such.
* :func:`pair_audio_visual` pairs each spoken-digit clip of a split with an MNIST image of the
  same digit drawn from that split's images only.
* :class:`MUSDBStems`: reader for ``root/<track>/{mixture,drums,bass,other,vocals}.wav``.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import os
import re
import shutil
import struct
import urllib.error
import urllib.request
import warnings
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from latentbridge.errors import DataError
from latentbridge.io import resample
from latentbridge.utils import atomic_path

log = logging.getLogger(__name__)

__all__ = [
    "default_data_dir",
    "download",
    "file_checksum",
    "FSDD",
    "FSDDItem",
    "MNIST",
    "MNIST_FILES",
    "read_idx",
    "AVPair",
    "pair_audio_visual",
    "MUSDBStems",
    "MUSDB_STEMS",
    "SPLITS",
]

SPLITS: tuple[str, ...] = ("train", "test")

_CHUNK = 1 << 16


def default_data_dir() -> Path:
    """Where downloaded data sets live: ``$LATENTBRIDGE_DATA``, else
    ``$XDG_CACHE_HOME/latentbridge/data`` (``~/.cache/latentbridge/data``)."""
    env = os.environ.get("LATENTBRIDGE_DATA")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "latentbridge" / "data"


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split


# --------------------------------------------------------------------------- download


def file_checksum(path: str | Path, algorithm: str = "md5") -> str:
    """Hex digest of a file (``algorithm`` is any :mod:`hashlib` name)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _expected(md5: str | None, sha256: str | None) -> list[tuple[str, str]]:
    out = []
    if md5:
        out.append(("md5", md5.lower()))
    if sha256:
        out.append(("sha256", sha256.lower()))
    return out


def download(
    url: str,
    dest: str | Path,
    md5: str | None = None,
    sha256: str | None = None,
    timeout: float = 60,
) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``.

    The body is streamed to ``dest.partial`` (beside ``dest``) while its md5 / sha256 are
    computed; only when every given checksum matches is it renamed onto ``dest`` (one atomic
    rename). On a checksum mismatch, a network error, a short body or an interruption
    (including Ctrl-C) the partial file is removed; errors are raised as DataError naming the
    URL (and, for a mismatch, the expected and actual checksums).

    When ``dest`` already exists and matches every given checksum, nothing is downloaded. An
    existing file with a wrong checksum is downloaded again. Without any checksum an existing
    file is trusted and a download is only logged as unverified.
    """
    dest = Path(dest)
    expected = _expected(md5, sha256)
    if dest.is_file():
        bad = [(alg, want, file_checksum(dest, alg)) for alg, want in expected]
        bad = [b for b in bad if b[1] != b[2]]
        if not bad:
            log.debug("%s already present, not downloading", dest)
            return dest
        alg, want, got = bad[0]
        log.warning("%s: %s %s does not match the expected %s; downloading it again", dest, alg, got, want)
    if not expected:
        log.warning("downloading %s without a checksum to verify it against", url)

    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    hashes = {alg: hashlib.new(alg) for alg, _ in expected}
    n_bytes = 0
    try:
        try:
            req = urllib.request.Request(url, headers={"User-Agent": "latentbridge"})
            with urllib.request.urlopen(req, timeout=timeout) as resp, open(partial, "wb") as out:
                length = resp.headers.get("Content-Length")
                length = int(length) if length and length.isdigit() else None
                while True:
                    chunk = resp.read(_CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    n_bytes += len(chunk)
                    for h in hashes.values():
                        h.update(chunk)
            if length is not None and n_bytes != length:
                raise DataError(url, f"download interrupted: received {n_bytes} of {length} bytes")
        except DataError:
            raise
        except urllib.error.HTTPError as exc:
            raise DataError(url, f"download failed: HTTP {exc.code} {exc.reason}") from exc
        except urllib.error.URLError as exc:
            raise DataError(url, f"download failed: {exc.reason}") from exc
        except (OSError, ValueError, EOFError, http.client.HTTPException) as exc:
            # timeouts, connection resets, IncompleteRead, malformed URLs
            raise DataError(url, f"download interrupted after {n_bytes} bytes: {exc!r}") from exc
        for alg, want in expected:
            got = hashes[alg].hexdigest()
            if got != want:
                raise DataError(
                    url,
                    f"checksum mismatch: expected {alg} {want}, got {got} ({n_bytes} bytes); "
                    f"the download was discarded",
                )
        os.replace(partial, dest)
    finally:  # also on KeyboardInterrupt
        if partial.exists():
            partial.unlink()
    return dest


# --------------------------------------------------------------------------- FSDD


@dataclass(frozen=True)
class FSDDItem:
    """One FSDD recording: ``{digit}_{speaker}_{index}.wav``."""

    path: Path
    digit: int
    speaker: str
    index: int

    @property
    def split(self) -> str:
        """Official split: repetitions 0-4 are test, 5-49 train."""
        return "test" if self.index < FSDD.TEST_INDICES else "train"


_FSDD_NAME = re.compile(r"^(\d)_([A-Za-z][A-Za-z0-9-]*)_(\d+)\.wav$")


def _recordings_digest(files: Iterable[Path]) -> str:
    """md5 of the md5sum listing of the recordings, the same as
    ``(cd fsdd && find recordings -type f -name '*.wav' -print0 | LC_ALL=C sort -z
    | xargs -0 md5sum) | md5sum``."""
    lines = [f"{file_checksum(p, 'md5')}  recordings/{p.name}\n" for p in sorted(files, key=lambda p: p.name.encode())]
    return hashlib.md5("".join(lines).encode()).hexdigest()


class FSDD:
    """Free Spoken Digit Dataset (6 speakers x 10 digits x 50 repetitions, 8 kHz mono).

    ``root`` is a folder holding ``recordings/*.wav`` (or the ``recordings`` folder itself),
    used as is; by default ``default_data_dir() / "fsdd"``. With ``download=True`` and no
    recordings there, the GitHub archive of commit ``26eb9aa`` is downloaded and its
    ``recordings/`` folder extracted into ``root/recordings`` (the archive's top folder,
    ``free-spoken-digit-dataset-26eb9aa...``, is skipped whatever its exact name).

    Checksums: GitHub builds archives on the fly, so their bytes are not guaranteed to stay
    the same; ``ARCHIVE_SHA256`` is therefore ``None`` until it is pinned — **verify it and
    set it on the first real download** (``file_checksum(path, "sha256")``). What is pinned
    is the content: ``RECORDINGS_MD5``, the md5 of the ``md5sum`` listing of the 3,000
    recordings at that commit, checked after every extraction (and by :meth:`verify`).
    """

    URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/26eb9aa.zip"
    #: sha256 of the archive at URL. TO PIN: verify and set on the first real download.
    ARCHIVE_SHA256: str | None = None
    #: md5 of the md5sum listing of recordings/*.wav at commit 26eb9aa (3,000 files).
    RECORDINGS_MD5: str | None = "d5bddbb0b920c3be379675bfafa71524"
    N_RECORDINGS = 3000
    SAMPLE_RATE = 8000
    #: repetitions with index < TEST_INDICES form the official test split
    TEST_INDICES = 5

    def __init__(self, root: str | Path | None = None, download: bool = False):
        self.root = Path(root) if root is not None else default_data_dir() / "fsdd"
        self._items: list[FSDDItem] | None = None
        self.skipped: list[Path] = []
        rec = self._find_recordings()
        if rec is None:
            if not download:
                raise DataError(
                    self.root,
                    "no FSDD recordings found (expected recordings/*.wav); pass download=True "
                    "or point root at a folder holding recordings/*.wav",
                )
            self._download()
            rec = self._find_recordings()
            if rec is None:  # pragma: no cover - _download checks this
                raise DataError(self.root, "no recordings after download")
        self.recordings_dir = rec

    def _find_recordings(self) -> Path | None:
        for cand in (self.root / "recordings", self.root):
            if cand.is_dir() and any(p.suffix.lower() == ".wav" for p in cand.iterdir()):
                return cand
        return None

    def _download(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        archive = self.root / Path(self.URL).name
        if self.ARCHIVE_SHA256 is None:
            log.warning("FSDD archive checksum not pinned yet; verifying the extracted recordings instead")
        download(self.URL, archive, sha256=self.ARCHIVE_SHA256)
        self._extract(archive)
        archive.unlink()

    def _extract(self, archive: Path) -> None:
        try:
            with zipfile.ZipFile(archive) as zf:
                members = []
                for info in zf.infolist():
                    parts = Path(info.filename).parts
                    # <top folder>/recordings/<name>.wav, or recordings/<name>.wav
                    if (
                        not info.is_dir()
                        and len(parts) >= 2
                        and parts[-2] == "recordings"
                        and len(parts) <= 3
                        and parts[-1].lower().endswith(".wav")
                    ):
                        members.append(info)
                if not members:
                    raise DataError(archive, "archive holds no recordings/*.wav")
                dest = self.root / "recordings"
                with atomic_path(dest) as tmp:
                    tmp.mkdir()
                    for info in members:
                        name = Path(info.filename).name  # never a path outside tmp
                        with zf.open(info) as src, open(tmp / name, "wb") as out:
                            shutil.copyfileobj(src, out)
                    if self.RECORDINGS_MD5 is not None:
                        got = _recordings_digest(tmp.glob("*.wav"))
                        if got != self.RECORDINGS_MD5:
                            raise DataError(
                                archive,
                                f"extracted recordings do not match: expected listing md5 "
                                f"{self.RECORDINGS_MD5}, got {got} ({len(members)} files)",
                            )
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise DataError(archive, f"corrupt zip archive ({exc})") from exc

    def verify(self) -> None:
        """Check the recordings against ``RECORDINGS_MD5``; DataError when they differ."""
        if self.RECORDINGS_MD5 is None:
            return
        got = _recordings_digest(self.recordings_dir.glob("*.wav"))
        if got != self.RECORDINGS_MD5:
            raise DataError(
                self.recordings_dir,
                f"recordings differ from FSDD commit 26eb9aa: listing md5 {got}, "
                f"expected {self.RECORDINGS_MD5}",
            )

    def items(self) -> list[FSDDItem]:
        """Every recording, sorted by (digit, speaker, index). Files whose names do not parse
        as ``{digit}_{speaker}_{index}.wav`` are skipped (listed in ``self.skipped``) and
        counted in one warning."""
        if self._items is None:
            items, skipped = [], []
            for p in sorted(self.recordings_dir.iterdir()):
                if p.name.startswith(".") or not p.is_file():
                    continue
                m = _FSDD_NAME.match(p.name)
                if m is None:
                    skipped.append(p)
                    continue
                items.append(FSDDItem(p, int(m.group(1)), m.group(2), int(m.group(3))))
            if skipped:
                warnings.warn(
                    f"{self.recordings_dir}: skipped {len(skipped)} file(s) not named "
                    f"{{digit}}_{{speaker}}_{{index}}.wav (e.g. {skipped[0].name!r})",
                    stacklevel=2,
                )
            if not items:
                raise DataError(self.recordings_dir, "no recordings named {digit}_{speaker}_{index}.wav")
            items.sort(key=lambda it: (it.digit, it.speaker, it.index))
            self._items, self.skipped = items, skipped
        return list(self._items)

    def split(self, split: str) -> list[FSDDItem]:
        """Items of the official ``"train"`` (index 5-49) or ``"test"`` (index 0-4) split."""
        _check_split(split)
        return [it for it in self.items() if it.split == split]

    @property
    def speakers(self) -> list[str]:
        return sorted({it.speaker for it in self.items()})

    def by_digit(self, split: str | None = None) -> dict[int, list[FSDDItem]]:
        """``{digit: items}`` for one split (or all items when ``split`` is None)."""
        items = self.items() if split is None else self.split(split)
        out: dict[int, list[FSDDItem]] = {}
        for it in items:
            out.setdefault(it.digit, []).append(it)
        return dict(sorted(out.items()))

    def __len__(self) -> int:
        return len(self.items())


# --------------------------------------------------------------------------- MNIST / idx

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
    rest for training (8,000 / 2,000 by default); ``offline_split`` is then True, a
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
    ):
        self.root = Path(root) if root is not None else default_data_dir() / "mnist"
        self.seed = int(seed)
        self.n_offline_test = int(n_offline_test)
        if download:
            for name, md5 in self.FILES.values():
                present = self._find(name)
                if present is None or present.suffix == ".gz":  # a present .gz is md5-checked
                    download_fn(self.BASE_URL + name, self.root / name, md5=md5)
        for key in ("test_images", "test_labels"):
            if self._find(self.FILES[key][0]) is None:
                raise DataError(
                    self.root / self.FILES[key][0],
                    "MNIST test file missing (needed even for the offline split); "
                    "pass download=True or point root at the folder holding it",
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
            warnings.warn(
                f"{self.root}: MNIST training images absent; 'train' and 'test' are a seeded "
                f"(seed {self.seed}) {self.N_TEST - self.n_offline_test}/{self.n_offline_test} "
                f"split of the 10,000 official test images (offline_split=True)",
                stacklevel=2,
            )
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _find(self, name: str) -> Path | None:
        for cand in (self.root / name, self.root / name.removesuffix(".gz")):
            if cand.is_file():
                return cand
        return None

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
        n_test = min(self.n_offline_test, n - 1)
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
        split's rows in it (for :func:`pair_audio_visual`). Offline the pool is the t10k set;
        otherwise the training images followed by the test images."""
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


download_fn = download  # MNIST.__init__ has a parameter called ``download``


# --------------------------------------------------------------------------- pairing


class AVPair(NamedTuple):
    """A spoken-digit clip and an image of the same digit."""

    clip_idx: int  # index into the fsdd_items given to pair_audio_visual
    image_idx: int  # index into the image pool (mnist_labels)


def pair_audio_visual(
    fsdd_items: Sequence[FSDDItem],
    mnist_labels: np.ndarray,
    split: str,
    seed: int,
    per_clip: int = 1,
    *,
    image_splits: Mapping[str, np.ndarray],
    digits: Iterable[int] = range(10),
) -> list[AVPair]:
    """Pair every FSDD clip of ``split`` with ``per_clip`` MNIST images of the same digit.

    ``mnist_labels`` are the labels of one image pool and ``image_splits`` maps ``"train"`` and
    ``"test"`` to that pool's rows belonging to each split (see :meth:`MNIST.pool`); images for
    ``split`` are drawn only from ``image_splits[split]``. The two index sets must not overlap,
    and no clip of one split may be a clip of the other (DataError otherwise), so test pairs
    never reuse a training clip or a training image. Clips are those items whose
    :attr:`FSDDItem.split` is ``split``, for the requested ``digits``.

    Within a digit, images are dealt out in seeded random order without replacement; only
    when a digit has more clip slots than images does a fresh shuffle start (reuse inside the
    split). The result is deterministic for a given ``seed`` and does not depend on the other
    split. Sorted by clip, then draw. A requested digit with no clips or no images in the
    split raises DataError naming the digit.
    """
    _check_split(split)
    if int(per_clip) != per_clip or per_clip < 1:
        raise ValueError(f"per_clip must be a positive integer, got {per_clip!r}")
    labels = np.asarray(mnist_labels).reshape(-1)
    missing = [s for s in SPLITS if s not in image_splits]
    if missing:
        raise ValueError(f"image_splits needs both {SPLITS} index sets; missing {missing}")
    sets = {s: np.unique(np.asarray(image_splits[s], dtype=np.int64)) for s in SPLITS}
    for s, idx in sets.items():
        if idx.size and (idx.min() < 0 or idx.max() >= len(labels)):
            raise ValueError(f"image_splits[{s!r}] has rows outside 0..{len(labels) - 1}")
    overlap = np.intersect1d(sets["train"], sets["test"])
    if overlap.size:
        raise DataError(
            "image splits", f"{overlap.size} image(s) are in both train and test (e.g. row {int(overlap[0])})"
        )
    by_split_paths = {s: {Path(it.path).resolve() for it in fsdd_items if it.split == s} for s in SPLITS}
    shared = by_split_paths["train"] & by_split_paths["test"]
    if shared:
        raise DataError(next(iter(shared)), "clip listed in both the train and the test split")

    split_code = SPLITS.index(split)
    pool = sets[split]
    pool_labels = labels[pool]
    pairs: list[AVPair] = []
    for digit in sorted({int(d) for d in digits}):
        clips = [i for i, it in enumerate(fsdd_items) if it.split == split and it.digit == digit]
        if not clips:
            raise DataError(f"digit {digit}", f"no FSDD clips of this digit in the {split!r} split")
        cand = pool[pool_labels == digit]
        if cand.size == 0:
            raise DataError(f"digit {digit}", f"no MNIST images of this digit in the {split!r} split")
        rng = np.random.default_rng([int(seed), split_code, digit])
        need = len(clips) * int(per_clip)
        draws = np.concatenate([rng.permutation(cand) for _ in range(-(-need // cand.size))])[:need]
        for k, clip in enumerate(clips):
            for j in range(int(per_clip)):
                pairs.append(AVPair(int(clip), int(draws[k * int(per_clip) + j])))
    pairs.sort(key=lambda p: p.clip_idx)  # stable: draw order kept within a clip
    return pairs


# --------------------------------------------------------------------------- MUSDB18 stems

MUSDB_STEMS: tuple[str, ...] = ("mixture", "drums", "bass", "other", "vocals")


class MUSDBStems:
    """MUSDB18-style folder of decoded stems: ``root/<track>/{mixture,drums,bass,other,vocals}.wav``.

    (MUSDB18 ships ``.stem.mp4`` files; decode them to this layout, as ``musdb``'s
    ``--wav`` variant does, e.g. ``root = MUSDB18-HQ/train``.) Stems may be silent: unlike
    :func:`latentbridge.io.read_audio`, silence is not an error here.
    """

    STEMS = MUSDB_STEMS

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(self.root, "MUSDB folder does not exist")

    def tracks(self) -> list[str]:
        """Names of the track folders (sorted) holding at least one stem file."""
        out = []
        for p in sorted(self.root.iterdir()):
            if p.is_dir() and not p.name.startswith(".") and any((p / f"{s}.wav").is_file() for s in self.STEMS):
                out.append(p.name)
        return out

    def load(
        self, track: str, stems: Sequence[str] | None = None, sample_rate: int | None = None
    ) -> dict[str, np.ndarray]:
        """``{stem: float32 array (C, T)}``; resampled to ``sample_rate`` when given.

        DataError (naming the file) for a missing track or stem, an unreadable file, or stems
        whose sample rates, channel counts or lengths differ from the first stem's.
        """
        import soundfile as sf

        stems = list(self.STEMS if stems is None else stems)
        unknown = [s for s in stems if s not in self.STEMS]
        if unknown:
            raise ValueError(f"unknown stem(s) {unknown}; stems are {self.STEMS}")
        if not stems:
            raise ValueError("stems must not be empty")
        folder = self.root / track
        if not folder.is_dir():
            raise DataError(folder, "no such track folder")
        out: dict[str, np.ndarray] = {}
        ref: tuple[str, int, int, int] | None = None  # (file, sr, channels, frames)
        for stem in stems:
            path = folder / f"{stem}.wav"
            if not path.is_file():
                have = sorted(p.name for p in folder.glob("*.wav"))
                raise DataError(path, f"missing stem {stem!r} (track folder holds: {', '.join(have) or 'no wav files'})")
            try:
                with sf.SoundFile(str(path)) as f:
                    sr, ch, declared = int(f.samplerate), int(f.channels), int(f.frames)
                    data = f.read(dtype="float32", always_2d=True)
            except Exception as exc:  # noqa: BLE001 - libsndfile errors
                raise DataError(path, f"unreadable audio file ({exc})") from exc
            if data.shape[0] < declared or data.shape[0] == 0:
                raise DataError(path, f"truncated or empty: {data.shape[0]} of {declared} frames")
            if not np.all(np.isfinite(data)):
                raise DataError(path, "contains NaN or inf samples")
            frames = data.shape[0]
            if ref is None:
                ref = (path.name, sr, ch, frames)
            else:
                if sr != ref[1]:
                    raise DataError(path, f"sample rate {sr} Hz differs from {ref[0]} ({ref[1]} Hz)")
                if ch != ref[2]:
                    raise DataError(path, f"{ch} channel(s), {ref[0]} has {ref[2]}")
                if frames != ref[3]:
                    raise DataError(path, f"length {frames} frames differs from {ref[0]} ({ref[3]} frames)")
            out[stem] = np.ascontiguousarray(data.T)
        if sample_rate is not None and ref is not None and int(sample_rate) != ref[1]:
            out = {k: resample(v, ref[1], int(sample_rate)) for k, v in out.items()}
        return out

    def sample_rate(self, track: str) -> int:
        """Sample rate of the track's first stem file present."""
        import soundfile as sf

        for stem in self.STEMS:
            p = self.root / track / f"{stem}.wav"
            if p.is_file():
                return int(sf.info(str(p)).samplerate)
        raise DataError(self.root / track, "no stem files")
