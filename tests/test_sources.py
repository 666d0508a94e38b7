"""Data sources: checksummed downloads (against a local HTTP server), idx files, FSDD, MNIST,
audio-visual pairing and the MUSDB stem reader. Real data from ``../shared/data`` where present."""

from __future__ import annotations

import functools
import gzip
import os
import hashlib
import http.server
import struct
import threading
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from latentbridge.data.sources import (
    FSDD,
    MNIST,
    MNIST_FILES,
    AVPair,
    FSDDItem,
    MUSDBStems,
    download,
    pair_audio_visual,
    read_idx,
)
from latentbridge.errors import DataError

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
REAL_FSDD = SHARED / "fsdd"
REAL_MNIST = SHARED / "mnist"

needs_fsdd = pytest.mark.skipif(
    not (REAL_FSDD / "recordings").is_dir(), reason=f"real FSDD not present at {REAL_FSDD}"
)
needs_mnist = pytest.mark.skipif(
    not (REAL_MNIST / "t10k-images-idx3-ubyte.gz").is_file(), reason=f"real MNIST not present at {REAL_MNIST}"
)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# --------------------------------------------------------------------------- local HTTP server


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        self.server.request_log.append(self.path)
        if self.path.startswith("/cut/"):  # announce 1000 bytes, send 100, hang up
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 100)
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture()
def server(tmp_path):
    """(base_url, served_folder, request_log): http.server on 127.0.0.1 serving a tmp folder."""
    served = tmp_path / "served"
    served.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(served)))
    httpd.request_log = []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", served, httpd.request_log
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


# --------------------------------------------------------------------------- download


def test_download_ok_and_skips_present_file(server, tmp_path):
    base, served, log = server
    payload = np.random.default_rng(0).bytes(200_000)
    (served / "blob.bin").write_bytes(payload)
    dest = tmp_path / "out" / "blob.bin"
    got = download(base + "blob.bin", dest, md5=md5(payload), sha256=hashlib.sha256(payload).hexdigest())
    assert got == dest and dest.read_bytes() == payload
    umask = os.umask(0)
    os.umask(umask)
    assert dest.stat().st_mode & 0o777 == 0o666 & ~umask  # (a mkstemp file, 0600: others could not read it)
    assert not list(dest.parent.glob("*.partial"))
    assert log == ["/blob.bin"]
    # present with the right checksum: no request at all
    download(base + "blob.bin", dest, md5=md5(payload))
    assert log == ["/blob.bin"]
    # present with another checksum: a file of the user's (downloads arrive verified), refused, not replaced
    dest.write_bytes(b"own data")
    with pytest.raises(DataError, match=r"blob\.bin: holds other data than .*blob\.bin \(md5 .*\): not replaced"):
        download(base + "blob.bin", dest, md5=md5(payload))
    assert dest.read_bytes() == b"own data" and log == ["/blob.bin"]


def test_a_download_killed_outright_is_cleared_by_the_next(server, tmp_path):
    """A download killed by SIGKILL left its partial file (megabytes of the archive) beside the destination for good;
    the next download of that file removes it, under the file's lock (which it leaves no trace of)."""
    base, served, _ = server
    (served / "blob.bin").write_bytes(b"x" * 5000)
    stale = tmp_path / ".blob.bin.k1ll3d00.partial"
    stale.write_bytes(b"x" * 3000)
    download(base + "blob.bin", tmp_path / "blob.bin", md5=md5(b"x" * 5000))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blob.bin", "served"]


def test_download_checksum_mismatch(server, tmp_path):
    base, served, _ = server
    (served / "blob.bin").write_bytes(b"hello world")
    dest = tmp_path / "blob.bin"
    wrong = "0" * 32
    with pytest.raises(DataError) as exc:
        download(base + "blob.bin", dest, md5=wrong)
    msg = str(exc.value)
    assert base + "blob.bin" in msg and wrong in msg and md5(b"hello world") in msg
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "served"]  # no partial file left


def test_download_interrupted_and_missing(server, tmp_path):
    base, _, _ = server
    dest = tmp_path / "x.bin"
    with pytest.raises(DataError, match="cut/x.bin") as exc:
        download(base + "cut/x.bin", dest, md5="0" * 32)
    assert "100" in str(exc.value)
    assert not dest.exists() and not list(tmp_path.glob("*.partial"))
    with pytest.raises(DataError, match="404"):
        download(base + "nope.bin", dest, md5="0" * 32)
    assert not list(tmp_path.glob("*.partial"))


def test_download_names_a_folder_it_cannot_write(server, tmp_path, monkeypatch):
    """A read-only or full data folder was "download interrupted after 0 bytes: OSError(30, ...)" of the URL."""
    import errno
    import tempfile

    base, served, _ = server
    (served / "blob.bin").write_bytes(b"x" * 1000)

    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    with monkeypatch.context() as m:
        m.setattr(tempfile, "mkstemp", read_only)
        with pytest.raises(DataError, match=r"ro: cannot write the download there: Read-only file system"):
            download(base + "blob.bin", tmp_path / "ro" / "blob.bin", md5="0" * 32)


def test_download_ctrl_c_leaves_no_partial(server, tmp_path, monkeypatch):
    base, served, _ = server
    (served / "blob.bin").write_bytes(b"data")
    import latentbridge.data.sources.downloads as downloads

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(downloads.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        download(base + "blob.bin", tmp_path / "blob.bin", md5=md5(b"data"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["served"]


# --------------------------------------------------------------------------- idx files


def idx_bytes(arr: np.ndarray, magic: int | None = None) -> bytes:
    arr = np.asarray(arr, dtype=np.uint8)
    if magic is None:
        magic = 0x801 if arr.ndim == 1 else 0x803
    return struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def test_read_idx_good_bad_truncated(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    raw = tmp_path / "img-idx3-ubyte"
    raw.write_bytes(idx_bytes(images))
    gz = tmp_path / "lab-idx1-ubyte.gz"
    gz.write_bytes(gzip.compress(idx_bytes(labels)))
    np.testing.assert_array_equal(read_idx(raw), images)
    np.testing.assert_array_equal(read_idx(gz), labels)
    assert read_idx(raw).dtype == np.uint8

    bad = tmp_path / "bad-magic.gz"
    bad.write_bytes(gzip.compress(idx_bytes(labels, magic=0x0D03)))
    with pytest.raises(DataError, match="bad magic number") as exc:
        read_idx(bad)
    assert str(bad) in str(exc.value)

    short = tmp_path / "short-idx3-ubyte"
    short.write_bytes(idx_bytes(images)[:-100])
    with pytest.raises(DataError, match="truncated") as exc:
        read_idx(short)
    assert str(short) in str(exc.value)

    long_ = tmp_path / "long-idx1-ubyte"
    long_.write_bytes(idx_bytes(labels) + b"\0")
    with pytest.raises(DataError, match="too long"):
        read_idx(long_)

    cut_gz = tmp_path / "cut.gz"
    cut_gz.write_bytes(gzip.compress(idx_bytes(images))[:200])
    with pytest.raises(DataError, match="gzip") as exc:
        read_idx(cut_gz)
    assert str(cut_gz) in str(exc.value)


# --------------------------------------------------------------------------- MNIST (synthetic files)


def write_mnist(root: Path, n_test: int = 100, n_train: int | None = None, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)

    def put(key, arr):
        (root / MNIST_FILES[key][0]).write_bytes(gzip.compress(idx_bytes(arr)))

    # make each image identifiable: pixel [0, 0] holds row % 256, [0, 1] row // 256
    def images(n):
        a = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        a[:, 0, 0], a[:, 0, 1] = np.arange(n) % 256, np.arange(n) // 256
        return a

    put("test_images", images(n_test))
    put("test_labels", np.arange(n_test) % 10)
    put("train_labels", np.arange(n_train or 60) % 10)
    if n_train:
        put("train_images", images(n_train))


def test_mnist_offline_split(tmp_path):
    write_mnist(tmp_path, n_test=1000)  # (a file of other size than the official 10,000: the same test share)
    with pytest.warns(UserWarning, match=r"\(seed 3\) 800/200 split of the 1,000 images of its t10k files"):
        m = MNIST(tmp_path, n_offline_test=2000, seed=3)
    assert m.offline_split
    (xtr, ytr), (xte, yte) = m.load("train"), m.load("test")
    assert xtr.shape == (800, 28, 28) and xte.shape == (200, 28, 28) and xtr.dtype == np.uint8
    assert ytr.shape == (800,) and yte.shape == (200,)
    itr, ite = m.indices("train"), m.indices("test")
    assert np.intersect1d(itr, ite).size == 0 and np.union1d(itr, ite).size == 1000
    ident_tr = xtr[:, 0, 0].astype(int) + 256 * xtr[:, 0, 1].astype(int)
    ident_te = xte[:, 0, 0].astype(int) + 256 * xte[:, 0, 1].astype(int)
    assert not set(ident_tr) & set(ident_te)
    np.testing.assert_array_equal(ytr, ident_tr % 10)  # labels stay with their images
    # seeded: same seed -> same split (announced once per process: a run opened it three times, each said so),
    # other seed -> other split
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(MNIST(tmp_path, n_offline_test=2000, seed=3).indices("test"), ite)
    with pytest.warns(UserWarning):
        assert not np.array_equal(MNIST(tmp_path, n_offline_test=2000, seed=4).indices("test"), ite)
    small = tmp_path / "small"  # 100 images: 80 / 20, not 1 / 99 (most digits had no training image)
    write_mnist(small, n_test=100)
    with pytest.warns(UserWarning, match="80/20 split"):
        assert len(MNIST(small).indices("train")) == 80 and MNIST(small).labels_file("train").name.startswith("t10k")
    with pytest.raises(ValueError):
        m.load("val")


def test_mnist_full_set_and_errors(tmp_path):
    write_mnist(tmp_path / "full", n_test=50, n_train=300)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = MNIST(tmp_path / "full")
    assert not m.offline_split
    assert m.load("train")[0].shape == (300, 28, 28) and m.load("test")[0].shape == (50, 28, 28)
    images, labels, splits = m.pool()
    assert len(labels) == 350 and splits["test"][0] == 300

    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="t10k-images"):
        MNIST(tmp_path / "empty")
    with pytest.raises(DataError, match=r"gone: does not exist \(digits.mnist_root; digits.download=true fetches"):
        MNIST(tmp_path / "gone")
    (tmp_path / "own").mkdir()  # a user's images given to an MNIST preset: told where they can go
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "own" / "a.png")
    with pytest.raises(DataError, match=r"holds image files, which MNIST presets do not read: .*data\.source=folder"):
        MNIST(tmp_path / "own")
    write_mnist(tmp_path / "bad", n_test=50)
    (tmp_path / "bad" / MNIST_FILES["test_labels"][0]).write_bytes(gzip.compress(idx_bytes(np.zeros(49))))
    with pytest.raises(DataError, match="49 labels for 50 images"):  # (read when the offline split is announced)
        MNIST(tmp_path / "bad")


def test_mnist_download_from_local_server(server, tmp_path):
    base, served, log = server
    write_mnist(served, n_test=40)  # a mirror without the training images
    files = {k: (name, md5((served / name).read_bytes()) if (served / name).exists() else v)
             for k, (name, v) in MNIST_FILES.items()}
    M = type("M", (MNIST,), {"BASE_URL": base, "FILES": files})
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz.*404"):
        M(tmp_path / "dl", download=True)
    assert not list((tmp_path / "dl").glob("*.partial"))
    write_mnist(served, n_test=40, n_train=80)
    files = {k: (name, md5((served / name).read_bytes())) for k, (name, _) in MNIST_FILES.items()}
    M = type("M", (MNIST,), {"BASE_URL": base, "FILES": files})
    m = M(tmp_path / "dl2", download=True)
    assert not m.offline_split and m.load("train")[0].shape == (80, 28, 28)
    n = len(log)
    M(tmp_path / "dl2", download=True)  # all present and verified: nothing fetched
    assert len(log) == n


# --------------------------------------------------------------------------- FSDD (synthetic)


def write_clip(path: Path, sr: int = 8000, n: int = 400, seed: int = 0) -> None:
    wave = 0.1 * np.random.default_rng(seed).standard_normal(n)
    sf.write(str(path), wave, sr, subtype="PCM_16")


def test_fsdd_parsing_bad_names_and_download(server, tmp_path, caplog):
    base, served, _ = server
    rec = tmp_path / "local" / "recordings"
    rec.mkdir(parents=True)
    for d in range(2):
        for spk in ("ann", "bob"):
            for i in (0, 7):
                write_clip(rec / f"{d}_{spk}_{i}.wav")
    for bad in ("x_ann_1.wav", "1_ann.wav", "notes.txt"):
        (rec / bad).write_bytes(b"junk")
    ds = FSDD(tmp_path / "local")
    with pytest.warns(UserWarning, match="skipped 3 file"):
        items = ds.items()
    assert len(items) == 8 and len(ds.skipped) == 3
    assert items[0] == FSDDItem(rec / "0_ann_0.wav", 0, "ann", 0, True)
    assert ds.speakers == ["ann", "bob"]
    assert {it.index for it in ds.split("test")} == {0} and {it.index for it in ds.split("train")} == {7}
    assert sorted(ds.by_digit("train")) == [0, 1] and len(ds.by_digit("train")[1]) == 2
    assert FSDD(rec).recordings_dir == rec  # the recordings folder itself works too
    upper = tmp_path / "upper" / "recordings"  # a recorder's upper-case suffix: read, not skipped as misnamed
    upper.mkdir(parents=True)
    write_clip(upper / "1_bob_8.WAV")
    assert FSDD(upper).items() == [FSDDItem(upper / "1_bob_8.WAV", 1, "bob", 8, False)]

    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match="digits.download=true fetches them"):
        FSDD(tmp_path / "nothing")

    # download: a zip with GitHub's top folder, served locally
    zpath = served / "26eb9aa.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        top = "free-spoken-digit-dataset-26eb9aa0123456789abcdef/"
        zf.writestr(top + "README.md", "hi")
        zf.writestr(top + "acquire_data/x.wav", "not a recording")
        for it in items:
            zf.write(it.path, top + "recordings/" + it.path.name)
    listing = "".join(f"{md5(it.path.read_bytes())}  recordings/{it.path.name}\n"
                      for it in sorted(items, key=lambda it: it.path.name.encode()))
    F = type("F", (FSDD,), {"URL": base + "26eb9aa.zip",
                            "ARCHIVE_SHA256": hashlib.sha256(zpath.read_bytes()).hexdigest(),
                            "RECORDINGS_MD5": md5(listing.encode())})
    dl = F(tmp_path / "dl", download=True)
    assert len(dl.items()) == 8 and dl.recordings_dir == tmp_path / "dl" / "recordings"
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["recordings"]
    dl.verify()
    # two commands at once: the second waits for the first's fetch and reads what it made (it failed on the archive the
    # first removed, or read the folder the first replaced: 1,555 of 3,000 recordings, exit 0)
    import subprocess
    import sys

    import latentbridge

    race = tmp_path / "race"
    hold = (f"import shutil, time\nfrom latentbridge.outputs import FolderLock\n"
            f"with FolderLock({str(race / 'recordings')!r}):\n    print('held', flush=True)\n    time.sleep(1.0)\n"
            f"    shutil.copytree({str(dl.recordings_dir)!r}, {str(race / 'recordings')!r})\n")
    env = {**os.environ, "PYTHONPATH": str(Path(latentbridge.__file__).parents[1])}
    first = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True, env=env)
    assert first.stdout.readline().strip() == "held"
    Nowhere = type("Nowhere", (FSDD,), {"URL": base + "no_such_archive.zip"})  # a download here would fail
    with caplog.at_level("WARNING"):
        assert len(Nowhere(race, download=True).items()) == 8
    assert first.wait() == 0 and "waiting for another latentbridge process" in caplog.text
    Bad = type("Bad", (F,), {"RECORDINGS_MD5": "0" * 32})
    with pytest.raises(DataError, match="do not match.*the archive was removed: the next run downloads it again"):
        Bad(tmp_path / "dl_bad", download=True)
    assert not (tmp_path / "dl_bad" / "recordings").exists()
    assert not (tmp_path / "dl_bad").exists()  # nothing left (the archive stayed, and every later run read it again)


# --------------------------------------------------------------------------- real data


@needs_fsdd
def test_real_fsdd():
    ds = FSDD(REAL_FSDD)
    items = ds.items()
    assert len(items) == 3000 and not ds.skipped
    assert ds.speakers == ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    assert len(ds.split("train")) == 2700 and len(ds.split("test")) == 300
    assert all(it.index < 5 for it in ds.split("test"))
    assert all(len(v) == 30 for v in ds.by_digit("test").values())
    it = items[0]
    assert it.path.name == f"{it.digit}_{it.speaker}_{it.index}.wav"
    assert sf.info(str(it.path)).samplerate == 8000
    ds.verify()  # the pinned content checksum matches the shared copy of commit 26eb9aa


@needs_mnist
def test_real_mnist():
    for key in ("test_images", "test_labels", "train_labels"):
        name, want = MNIST_FILES[key]
        assert md5((REAL_MNIST / name).read_bytes()) == want, name
    images = read_idx(REAL_MNIST / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(REAL_MNIST / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))
    assert read_idx(REAL_MNIST / "train-labels-idx1-ubyte.gz").shape == (60000,)
    import latentbridge.utils as utils

    utils._SAID.clear()  # announced once per process: earlier tests may have opened the folder
    with pytest.warns(UserWarning, match="offline"):
        m = MNIST(REAL_MNIST, verify=True)
    assert m.offline_split
    assert m.load("train")[0].shape == (8000, 28, 28) and m.load("test")[0].shape == (2000, 28, 28)
    assert np.intersect1d(m.indices("train"), m.indices("test")).size == 0


@needs_fsdd
@needs_mnist
def test_real_pairing():
    import warnings

    ds = FSDD(REAL_FSDD)
    with warnings.catch_warnings():  # the offline split is announced once per process: maybe by an earlier test
        warnings.simplefilter("ignore")
        images, labels, splits = MNIST(REAL_MNIST).pool()
    items = ds.items()
    tr = pair_audio_visual(items, labels, "train", seed=0, image_splits=splits)
    te = pair_audio_visual(items, labels, "test", seed=0, image_splits=splits)
    assert len(tr) == 2700 and len(te) == 300
    assert all(items[c].digit == labels[i] for c, i in tr + te)
    assert not {c for c, _ in tr} & {c for c, _ in te}
    assert not {i for _, i in tr} & {i for _, i in te}
    assert len({i for _, i in te}) == 300  # 2000 test images are plenty: no reuse within test


# --------------------------------------------------------------------------- pairing (synthetic)


def fake_items(n_per=(4, 1), digits=range(3)) -> list[FSDDItem]:
    out = []
    for d in digits:
        for k in range(n_per[0]):
            out.append(FSDDItem(Path(f"{d}_a_{5 + k}.wav"), d, "a", 5 + k))  # train
        for k in range(n_per[1]):
            out.append(FSDDItem(Path(f"{d}_a_{k}.wav"), d, "a", k))  # test
    return out


def test_pairing_synthetic():
    items = fake_items()
    labels = np.arange(60) % 3
    splits = {"train": np.arange(0, 45), "test": np.arange(45, 60)}
    kw = dict(image_splits=splits, digits=range(3))
    tr = pair_audio_visual(items, labels, "train", seed=1, per_clip=2, **kw)
    assert len(tr) == 12 * 2 and all(isinstance(p, AVPair) for p in tr)
    assert all(items[c].digit == labels[i] and items[c].split == "train" for c, i in tr)
    assert all(i < 45 for _, i in tr)
    # 8 slots per digit, 15 train images per digit: no image repeats
    assert len({i for _, i in tr}) == 24
    assert tr == pair_audio_visual(items, labels, "train", seed=1, per_clip=2, **kw)
    assert tr != pair_audio_visual(items, labels, "train", seed=2, per_clip=2, **kw)
    te = pair_audio_visual(items, labels, "test", seed=1, **kw)
    assert len(te) == 3 and all(i >= 45 for _, i in te)
    assert not {c for c, _ in tr} & {c for c, _ in te}
    # more slots than images: reuse within the split, still only the split's images
    many = pair_audio_visual(items, labels, "test", seed=1, per_clip=9, **kw)
    assert len(many) == 27 and all(i >= 45 and items[c].digit == labels[i] for c, i in many)

    with pytest.raises(DataError, match=r"no recordings of digit 7 in the 'train' split \(index 5 and up of a speaker's "
                                        r"recordings; it holds digit\(s\) 0, 1, 2\): pairs are drawn for all ten"):
        pair_audio_visual(items, labels, "train", seed=1, image_splits=splits, digits=[0, 7])
    no_twos = np.where(np.arange(60) >= 45, np.arange(60) % 2, np.arange(60) % 3)
    with pytest.raises(DataError, match=r"digit 2: no images of digit 2 in the 'test' split \(15 image\(s\) of "
                                        r"digit\(s\) 0, 1\)"):
        pair_audio_visual(items, no_twos, "test", seed=1, **kw)
    with pytest.raises(DataError, match=r"^labels\.gz: no images of digit 2"):  # the file named where known
        pair_audio_visual(items, no_twos, "test", seed=1, image_file={"test": Path("labels.gz")}, **kw)
    with pytest.raises(DataError, match="both train and test"):
        pair_audio_visual(items, labels, "test", seed=1,
                          image_splits={"train": np.arange(50), "test": np.arange(45, 60)})
    dup = items + [FSDDItem(Path("0_a_5.wav"), 0, "a", 0)]  # a train clip relabelled as test
    with pytest.raises(DataError, match="both the train and the test"):
        pair_audio_visual(dup, labels, "test", seed=1, **kw)


# --------------------------------------------------------------------------- MUSDB stems


def write_track(folder: Path, sr: int = 8000, n: int = 800, stems=("mixture", "drums", "bass", "other", "vocals")):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for s in stems:
        wave = np.zeros((n, 2)) if s == "vocals" else 0.1 * rng.standard_normal((n, 2))  # silent vocals ok
        sf.write(str(folder / f"{s}.wav"), wave, sr, subtype="PCM_16")


def test_musdb_stems(tmp_path):
    write_track(tmp_path / "A - one")
    write_track(tmp_path / "B - two")
    (tmp_path / "not a track").mkdir()
    db = MUSDBStems(tmp_path)
    assert db.tracks() == ["A - one", "B - two"]
    out = db.load("A - one")
    assert list(out) == ["mixture", "drums", "bass", "other", "vocals"]
    assert all(v.shape == (2, 800) and v.dtype == np.float32 for v in out.values())
    two = db.load("A - one", stems=["drums", "bass"], sample_rate=16000)
    assert list(two) == ["drums", "bass"] and two["drums"].shape == (2, 1600)

    (tmp_path / "A - one" / "bass.wav").unlink()
    with pytest.raises(DataError, match="missing stem 'bass'") as exc:
        db.load("A - one")
    assert str(tmp_path / "A - one" / "bass.wav") in str(exc.value)
    write_track(tmp_path / "A - one", n=700, stems=("bass",))
    with pytest.raises(DataError, match="length 700") as exc:
        db.load("A - one")
    assert "bass.wav" in str(exc.value)
    write_track(tmp_path / "A - one", sr=16000, stems=("bass",))
    with pytest.raises(DataError, match="sample rate 16000") as exc:
        db.load("A - one")
    assert "bass.wav" in str(exc.value)
    (tmp_path / "B - two" / "other.wav").write_bytes(b"RIFF junk")
    with pytest.raises(DataError, match="other.wav"):
        db.load("B - two")
    with pytest.raises(DataError, match="no such track"):
        db.load("C - three")
    # a stem in another format libsndfile reads: its track was left out as having no vocals
    import soundfile as sf
    from latentbridge.data.sources.musdb import stem_files

    x, sr = sf.read(tmp_path / "B - two" / "vocals.wav")
    (tmp_path / "B - two" / "vocals.wav").unlink()
    sf.write(tmp_path / "B - two" / "vocals.flac", x, sr)
    assert stem_files(tmp_path, ["vocals"]) == ([tmp_path / "A - one" / "vocals.wav", tmp_path / "B - two" /
                                                 "vocals.flac"], [])
    assert db.load("B - two", stems=["vocals"])["vocals"].shape == (2, 800)
    with pytest.raises(ValueError, match="unknown stem"):
        db.load("B - two", stems=["guitar"])
    with pytest.raises(DataError, match="does not exist"):
        MUSDBStems(tmp_path / "nowhere")


def test_the_digit_set_cache_rebuilds_a_damaged_set_and_keeps_its_size_limit(tmp_path, monkeypatch, caplog):
    """A truncated features.npy stopped every later digits run with a traceback; the sets' cache grew a set each seed
    and each edit of the data, past $LATENTBRIDGE_CACHE_MAX_GB."""
    import logging

    import latentbridge.data.digits as digits

    monkeypatch.setenv("LATENTBRIDGE_CACHE", str(tmp_path / "cache" / "features"))
    computed = []
    monkeypatch.setattr(digits, "load_clips", lambda paths, spec: computed.append(len(paths)) or
                        np.ones((len(paths), 4000), np.float32))
    monkeypatch.setattr(digits, "clip_features", lambda waves, spec: np.ones((len(waves), 1, 64, 128), np.float32))
    spec = SimpleNamespace(model_dump=lambda mode: {"kind": "mel"})
    clips = []
    for i in range(3):
        clips.append(tmp_path / f"{i}_a_0.wav")
        sf.write(clips[-1], np.zeros(80, np.float32), 8000)
    waves, feats = digits.clips_and_features_cached(clips[:2], spec)
    assert computed == [2] and feats.shape == (2, 1, 64, 128)
    (entry,) = (tmp_path / "cache" / "features" / "digits").iterdir()  # (inside $LATENTBRIDGE_CACHE)
    (entry / "features.npy").write_bytes((entry / "features.npy").read_bytes()[:1000])  # a power loss
    with caplog.at_level(logging.WARNING, logger="latentbridge"):
        waves, feats = digits.clips_and_features_cached(clips[:2], spec)
    assert computed == [2, 2] and feats.shape == (2, 1, 64, 128) and "damaged, computed again" in caplog.text
    assert digits.clips_and_features_cached(clips[:2], spec)[1].shape == (2, 1, 64, 128) and computed == [2, 2]
    monkeypatch.setenv("LATENTBRIDGE_CACHE_MAX_GB", str(2.5 * entry_size(entry) / 1e9))  # room for two sets
    for n in (1, 3):
        digits.clips_and_features_cached(clips[:n], spec)
    assert len(list((tmp_path / "cache" / "features" / "digits").iterdir())) == 2  # the least recently used went


def entry_size(folder):
    return sum(f.stat().st_size for f in folder.iterdir())
