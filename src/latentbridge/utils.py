"""Small shared helpers: atomic writes, hashing, the batched inference loop (torch imported lazily)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from collections.abc import Mapping
from typing import Callable, Iterator

from latentbridge.written import WRITTEN, note_written

#: set by the CLI (its ``--verbose``); None (the library used from Python) leaves Lightning's logging alone
LIGHTNING_INFO: bool | None = None

log = logging.getLogger(__name__)


@contextlib.contextmanager
def lightning_interrupts():
    """Around a Lightning ``fit`` / ``predict``: Lightning turns Ctrl-C and SIGTERM into ``exit(1)`` (no word, exit 1);
    the interrupt is raised again instead, so that the CLI says so (exit 130 / 143) and outputs are cleaned up."""
    try:
        yield
    except SystemExit as e:
        if isinstance(e.__context__, KeyboardInterrupt):
            raise e.__context__ from None
        raise


def quiet_lightning() -> None:
    """Importing Lightning sets its loggers to INFO and gives them a console handler of their own, after
    the CLI chose its verbosity: unless the CLI runs ``--verbose``, keep them at WARNING and let their
    warnings through the CLI's handler once (called where a command builds a Lightning trainer)."""
    if LIGHTNING_INFO is not False:
        return
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        if logging.getLogger().handlers:  # the CLI's handler prints what propagates
            for h in [h for h in logger.handlers if type(h) is logging.StreamHandler]:
                logger.removeHandler(h)
            logger.propagate = True
    # the one INFO line said before Lightning kills every process of a DDP run whose other process died (exit 137
    # and no word at all), said as a warning of ours
    observer = logging.getLogger("lightning.fabric.strategies.launchers.subprocess_script")
    observer.setLevel(logging.INFO)
    if not any(isinstance(f, _ProcessDied) for f in observer.filters):
        observer.addFilter(_ProcessDied())


class _ProcessDied(logging.Filter):
    """Lightning's note that a DDP process died, as a warning that says what follows; its other INFO notes dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        import re

        found = re.search(r"Child process with PID (\d+) terminated with code (-?\d+)", record.getMessage())
        if found is None:
            return False
        pid, code = found.groups()
        how = f"killed by signal {-int(code)}" if int(code) < 0 else f"exit code {code}"
        record.msg, record.args = (f"a process of this distributed run (pid {pid}) died ({how}): every process is "
                                   "stopped now, the command with it (exit 137); run it again (a training: with "
                                   "--resume), which clears what this one left"), ()
        record.levelno, record.levelname, record.name = logging.WARNING, "WARNING", "latentbridge"
        return True


def temp_beside(path: Path) -> Path:
    """A fresh temporary name beside ``path`` (``.NAME.XXXXXXXX.partial``; its folder made), nothing there yet: what is
    created there gets the umask's mode (a mkstemp file is 0600: a download others could not read)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # the temporary name is 18 bytes longer than the name: a name near the file system's 255 bytes ("File name
    # too long" after all the work) is cut, at a character, for it
    fd, tmp = tempfile.mkstemp(prefix=f".{cut_to_bytes(path.name, 200)}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Works for files and folders: whatever the block writes at the yielded path replaces
    ``path`` in one rename, so readers never see a half-written result.
    """
    from latentbridge.errors import note_disk_full

    path = Path(path)
    tmp_path = temp_beside(path)
    try:
        try:
            yield tmp_path
        except BaseException as e:
            note_disk_full(e, path.parent)  # (said once what was written here is removed)
            raise
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.is_file() and tmp_path.is_file():  # a file rewritten keeps its mode (a chmod 600 was undone)
            shutil.copymode(path, tmp_path)
        os.replace(tmp_path, path)
        note_written(path)  # written in place into a finished output folder: latentbridge's, not the user's
    finally:
        if tmp_path.is_dir():
            shutil.rmtree(tmp_path, ignore_errors=True)
        elif tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    """``text`` as UTF-8, written atomically; a file name that is not UTF-8 (its bytes read as surrogates) is written
    with ``\\udcXX`` escapes, valid UTF-8 (it stopped a training or a scoring at its last step)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", errors="backslashreplace")


def tolerant_stdout() -> None:
    """Names that are not UTF-8 (their bytes read as surrogates) printed with ``\\udcXX`` escapes: under a UTF-8
    locale stdout refuses them, and printing a result stopped the command."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="backslashreplace")


def json_safe(obj):
    """``obj`` with every non-finite float (NaN, inf) as None: ``json.dumps`` writes them as bare ``NaN`` /
    ``Infinity``, which strict parsers (JavaScript's ``JSON.parse``, most JSON libraries) refuse."""
    if type(obj).__module__ == "numpy" and hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()  # a numpy scalar
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def atomic_write_json(path: str | Path, obj) -> None:
    """``obj`` as JSON (non-finite numbers as null: :func:`json_safe`), written atomically."""
    atomic_write_text(path, json.dumps(json_safe(obj), indent=2, sort_keys=False, allow_nan=False) + "\n")


#: config keys that hold paths (data.root, data.train_dir, digits.fsdd_root, data.conditions, first_stage.run)
PATH_KEY = re.compile(r"(^|\.)([a-z_]*root|[a-z_]*_dir|conditions|run)$")


def dotted(d, prefix: str = "") -> dict:
    """A nested config as ``{"train.max_epochs": 3, ...}`` (a value that is no mapping under its dotted key)."""
    if not isinstance(d, dict):
        return {prefix[:-1]: d}
    return {k: v for key, value in d.items() for k, v in dotted(value, f"{prefix}{key}.").items()}


#: seconds before a progress bar shows, and between its redraws, where stderr is a file or a pipe (a log keeps every
#: redraw: a bar redrawn ten times a second filled it)
LOG_PROGRESS_S = 30.0


def progress_bar(total: int, enabled: bool, desc: str, unit: str = "step", fractional: bool = False):
    """A transient tqdm bar on stderr (``enabled`` False: silent), shown once the work has taken 0.5 s on a terminal;
    where stderr is a file or a pipe, once it has taken :data:`LOG_PROGRESS_S` and then redrawn as often.
    ``fractional``: the count moves by parts of a unit too (a long recording scored in blocks), drawn to 0.1."""
    from tqdm import tqdm

    tty = bool(getattr(sys.stderr, "isatty", lambda: False)())
    form = {"bar_format": "{l_bar}{bar}| {n:.1f}/{total_fmt} {unit} [{elapsed}<{remaining}]"} if fractional else {}
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, leave=False, dynamic_ncols=True,
                mininterval=0.1 if tty else LOG_PROGRESS_S, delay=0.5 if tty else LOG_PROGRESS_S, **form)


def close_progress_bars() -> None:
    """Close the progress bars still open (a command stopped by an error mid-epoch), so that what is printed next
    starts on a line of its own: an error printed after a bar cut short was hidden in the bar's line."""
    try:
        from tqdm import tqdm
    except ImportError:
        return
    for bar in list(getattr(tqdm, "_instances", ())):
        try:
            bar.close()
        except Exception:  # noqa: BLE001 - a bar that cannot close must not hide the error being reported
            pass


def existing_path(value) -> Path | None:
    """``value`` (a string or path, ``~`` expanded) resolved when it names an existing file or folder, else None
    (also for values that are no path: numbers, names, text no file system takes)."""
    if not isinstance(value, (str, Path)) or not str(value).strip():
        return None
    try:
        p = Path(value).expanduser()
        return p.resolve() if p.exists() else None
    except (OSError, ValueError, RuntimeError):
        return None


#: real paths of the folders the running command writes (its ``--out``), left out of every folder it reads as data
#: (:func:`walk_files`): an output inside an input folder was read back as data by the next run (a training on its
#: own plots, a reconstruction of its reconstructions)
OUTPUT_FOLDERS: set[str] = set()

#: what every latentbridge output folder holds one of at its top (a model folder, a run, one killed before its first
#: checkpoint, evaluate's, score's, sample's and the edge sampler's, enhance's, analyze's, reconstruct's, synthetic
#: data): ``--force`` replaces only a folder holding one, and a folder read as data leaves out one below it
OUTPUT_NAMES = frozenset({"config.json", "config.yaml", "model.safetensors", "checkpoints", "logs", "metrics.json",
                          "report.html", "judge.json", "settings.json", "grid.png", "manifest.json", "summary.json",
                          "scores.csv", "relationships.json", "reconstruct.json", "enhance.json"})


#: what a folder below a data folder holds, all of one set, when an earlier command wrote it (a run, an unfinished
#: run, an evaluation, samples, scores, reconstructions, an enhancement, an analysis, a judge): names a user's data
#: holds too (a config.json, a logs/ or a summary.json beside the recordings) mark nothing alone
DATA_OUTPUT_SIGNS = tuple(frozenset(s) for s in (
    {"model.safetensors"}, {"config.yaml", "checkpoints"}, {"metrics.json", "report.html"},
    {"settings.json", "samples.npz"}, {"settings.json", "grid.png"}, {"grid.png", "sample_0000.png"},
    {"summary.json", "scores.csv"}, {"reconstruct.json"}, {"enhance.json"}, {"relationships.json"}, {"judge.json"}))


def output_marks(names, data: bool = False, folder: Path | None = None) -> list[str]:
    """Which of ``names`` (what a folder holds at its top) mark it as a latentbridge output folder (:data:`OUTPUT_NAMES`);
    empty for any other folder. ``data``: a folder below a data folder, an output that is no data when it holds one of
    :data:`DATA_OUTPUT_SIGNS` whole, or (``folder``) a latent diffusion run's samples: a ``settings.json`` naming their
    condition files (a synthetic data set, ``data synth``'s, is data)."""
    names = set(names)
    if not data:
        return sorted(names & OUTPUT_NAMES)
    marks = sorted(set().union(*(sign for sign in DATA_OUTPUT_SIGNS if sign <= names)))
    if not marks and folder is not None and "settings.json" in names:
        try:
            if "condition_files" in json.loads((Path(folder) / "settings.json").read_text(encoding="utf-8")):
                marks = ["settings.json"]
        except (OSError, ValueError):
            pass
    return marks


def is_hidden(path: Path, root: Path) -> bool:
    """Whether ``path`` is hidden inside ``root``: its name or a folder's between them starts with "." (macOS's
    ``._x.png`` resource forks, ``.DS_Store``, ``.git``) or is the ``__MACOSX`` folder of an archive unzipped: never
    read as data."""
    return any(part.startswith(".") or part == "__MACOSX" for part in Path(path).relative_to(root).parts)


def walk_files(root: Path, recursive: bool = True):
    """Every file under ``root`` (links to nothing among them), linked folders followed (``rglob`` skips them: a
    folder of recordings or images linked in was left out without a word), each real folder once (a link to a
    parent does not loop); the command's own output folder (:data:`OUTPUT_FOLDERS`) and every folder below ``root``
    that an earlier command wrote (:func:`output_marks`: a run, samples, reconstructions) left out, named in one
    warning (a training on a folder holding its earlier run read that run's plots and samples as images). A folder
    that cannot be listed is named in a warning (its files were left out without a word); ``root`` itself, a
    DataError."""
    from latentbridge.errors import DataError

    if not recursive:
        try:
            yield from root.iterdir()
        except OSError as e:
            raise DataError(root, f"cannot be read ({e.strerror or e})") from None
        return
    seen: set[str] = set()
    outputs: list[str] = []
    unread: list[OSError] = []
    for folder, dirs, files in os.walk(root, followlinks=True, onerror=unread.append):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        if folder != str(root) and not is_hidden(Path(folder), root):
            marks = (["the output folder of this command"] if real in OUTPUT_FOLDERS
                     else output_marks(dirs + files, data=True, folder=Path(folder)))
            if marks:
                dirs[:] = []
                outputs.append(f"{Path(folder).relative_to(root).as_posix()} ({', '.join(marks[:2])})")
                continue
        for name in files:  # a link to nothing among them
            yield Path(folder) / name
    if unread and Path(unread[0].filename or "") == root:
        raise DataError(root, f"cannot be read ({unread[0].strerror or unread[0]})")
    if unread and first_time(("folders not read", str(root))):
        log.warning("%s: %d folder(s) could not be read, their files left out: %s", root, len(unread),
                    listed([f"{e.filename} ({e.strerror or e})" for e in unread], 5, count=True))
    if outputs and first_time(("output folders left out", str(root))):
        log.warning("%s: %d folder(s) written by latentbridge left out (a run's plots and samples, an evaluation's "
                    "examples are no data): %s; to read one, give it as the data folder itself", root, len(outputs),
                    listed(outputs, 5, count=True))


def inference_device(requested=None, name: str = "--device"):
    """The torch device for sampling, evaluation and loading: ``requested`` (``cpu``, ``cuda``, ``cuda:1``, ``mps``, a
    ``torch.device``), or with None / ``auto`` the GPU when torch sees one, else the CPU; one that is no device, or not
    on this machine, a LatentbridgeError naming ``name``, the option or argument that gave it."""
    import torch

    from latentbridge.errors import LatentbridgeError

    if requested is None or str(requested) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(requested)
    except (RuntimeError, TypeError, ValueError):
        raise LatentbridgeError(f"{name} must be a device or its name ('cpu', 'cuda', 'cuda:0', 'mps', 'auto'), got "
                                f"{requested!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LatentbridgeError(f"{name} {requested}: torch sees no CUDA GPU here (use cpu or auto)")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise LatentbridgeError(f"{name} {requested}: torch sees no MPS device here (use cpu or auto)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise LatentbridgeError(f"{name} {requested}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev


def natural_key(name: str):
    """Sort key reading the digit runs of ``name`` as numbers ("ch_8" before "ch_10"), case-insensitive."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in re.split(r"(\d+)", name) if p]


def counted(n: int, what: str) -> str:
    """``n`` things in words: "1 file", "3 files"."""
    return f"{n} {what}{'' if int(n) == 1 else 's'}"


def channel_counts(pairs) -> str:
    """``(channels, files)`` pairs in words: "1 channel x4, 3 channels x2"."""
    return ", ".join(f"{counted(c, 'channel')} x{n}" for c, n in pairs)


def listed(items, n: int = 3, count: bool = False) -> str:
    """The first ``n`` of ``items`` joined by commas, ``, ...`` after them when there are more (``count``:
    ``, ... (N in all)``): how messages name files, rows or values without printing thousands of them."""
    items = items if hasattr(items, "__len__") and hasattr(items, "__getitem__") else list(items)
    text = ", ".join(str(x) for x in items[:n])
    return text + ((f", ... ({len(items)} in all)" if count else ", ...") if len(items) > n else "")


def paths_text(value) -> str:
    """A path, or a list of them (``data.train_dir``: ``anomaly fit DIR1 DIR2``), as text: a list joined by commas."""
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def file_names(paths, stems: bool = False) -> list[str]:
    """How messages name files: each one's name, or where names repeat (a plant's per-machine folders each hold
    ``00000000.wav``) its path below the files' common folder ("rec.wav" named any of three). ``stems``: without the
    suffix, stems compared (``Test_01/rec`` for ``Test_01/rec.csv`` beside ``Test_02/rec.png``)."""
    paths = [Path(p) for p in paths]
    names = [p.stem if stems else p.name for p in paths]
    if len(set(names)) == len(names):
        return names
    try:
        common = Path(os.path.commonpath([str(p) for p in paths]))
        rel = [p.relative_to(common).as_posix() if p != common else p.name for p in paths]
    except ValueError:  # absolute and relative paths together
        rel = [str(p) for p in paths]
    return [r[:len(r) - len(Path(r).suffix)] if stems else r for r in rel]


def output_names(paths, used: set[str], max_bytes: int | None = None) -> list[str]:
    """One output name per input file (``sample``'s folder of each condition file): its stem, or where stems repeat its
    path below the common folder of the files of that stem, ``_`` for ``/`` (``Data/Test_01/rec.csv`` and
    ``Data/Test_02/rec.csv``: ``Test_01_rec`` and ``Test_02_rec``; they were ``rec`` and ``rec_``, which said nothing
    of the test), each made distinct from ``used`` by :func:`distinct_name` (the same file given twice, a name that is
    a path)."""
    used.add(WRITTEN)  # (a condition .latentbridge-written.png made a folder in place of the output folder's list)
    paths = [Path(p).absolute() for p in paths]  # one common folder for relative paths too
    names = [p.stem for p in paths]
    for stem in {n for n in names if names.count(n) > 1}:
        alike = [i for i, n in enumerate(names) if n == stem]
        for i, name in zip(alike, file_names([paths[i] for i in alike], stems=True)):
            names[i] = name
    return [distinct_name(n.replace("/", "_"), used, max_bytes) for n in names]


def cut_to_bytes(name: str, max_bytes: int) -> str:
    """``name`` cut at a character to at most ``max_bytes`` bytes on disk (the file system's 255 a name)."""
    while name and len(os.fsencode(name)) > max_bytes:
        name = name[:-1]
    return name


def distinct_name(name: str, used: set[str], max_bytes: int | None = None) -> str:
    """``name``, with ``_`` appended until it is not in ``used`` (then added to it): one output per input
    when inputs share a file name (``Test_01/rec_01.csv`` and ``Test_02/rec_01.csv``). With ``max_bytes``, cut
    (at a character) to that many bytes on disk, the ``_`` included: a long input name with a suffix added was
    over the file system's 255 bytes ("File name too long" after all the work). ``.``, ``..`` and an empty name are
    never returned (as an output folder's name they wrote into ``--out`` itself or its parent)."""
    used |= {"", ".", ".."}
    for k in range(len(used) + 1):
        base = name if max_bytes is None else cut_to_bytes(name, max_bytes - k)
        if (candidate := base + "_" * k) not in used:
            used.add(candidate)
            return candidate
    raise AssertionError("unreachable: one of len(used) + 1 candidates is free")


def file_checksum(path: str | Path, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in blocks (``algorithm`` is any :mod:`hashlib` name)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while b := f.read(1 << 20):
            h.update(b)
    return h.hexdigest()


def end_with_parent() -> None:
    """In a worker process (Linux): be killed when the process that started it ends. A parent killed outright (the
    OOM killer, SIGKILL) left its DataLoader workers blocked for good, 500 MB each; elsewhere nothing is done."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


def sheet_safe_path(path) -> str:
    """A path for a cell a spreadsheet opens: a relative path that begins as a formula does (``=``, ``+``, ``-``,
    ``@``; MIMII's folders are named ``-6_dB_pump``) written from ``./``, the same file, read as text (spreadsheets
    ran them as formulas: an error in the cell, or a command)."""
    text = str(path)
    return f"./{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def file_stamp(path) -> dict:
    """What keys a cache entry of a file's contents besides its path: its size, modification time and status change
    time (a recording replaced by another of the same size and modification time, as a logger without a clock
    writes them and `cp -p` or unzip keep them, changes the last: the old recording's scores came back), and its
    inode."""
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "inode": st.st_ino}


def file_key(path):
    """What makes two names one file: its device and inode (a hard link is read once, as a symbolic link is), or the
    path it resolves to where the file system gives no inode."""
    st = os.stat(path)
    return (st.st_dev, st.st_ino) if st.st_ino else Path(path).resolve()


def seen_before(path, seen: dict):
    """The name under which ``seen`` (:func:`file_key` → the first name met) holds the file ``path`` is, or None
    (``path`` then recorded): each file once, whatever its names (links, a folder and a file in it)."""
    try:
        key = file_key(path)
    except OSError:  # (a file that cannot be read: named by what reads it)
        return None
    if key in seen:
        return seen[key]
    seen[key] = path
    return None


def stable_hash(obj, length: int = 16) -> str:
    """Short hash of a JSON-serialisable object, independent of dict order."""
    s = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha1(s.encode("utf-8")).hexdigest()[:length]


def batched(fn: Callable, *inputs, batch_size: int = 256):
    """Apply ``fn`` to aligned slices of ``inputs`` (tensors, numpy arrays or dicts of them, cut along
    the first axis) and concatenate the results (a tensor, a tuple of tensors or a dict of tensors).

    numpy inputs are converted to tensors; runs without gradients. The one inference loop of the
    package: scoring, prediction, encoding, reconstruction and feature extraction run through it."""
    import numpy as np
    import torch

    def as_tensor(v):
        return torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v

    def length(v) -> int:
        return len(next(iter(v.values()))) if isinstance(v, dict) else len(v)

    def cut(v, i: int):
        if isinstance(v, dict):
            return {k: as_tensor(x[i:i + batch_size]) for k, x in v.items()}
        return as_tensor(v[i:i + batch_size])

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = length(inputs[0])
    with torch.no_grad():
        outs = [fn(*(cut(v, i) for v in inputs)) for i in range(0, n, batch_size)]
    if not outs:
        raise ValueError("batched: no inputs (0 rows)")
    first = outs[0]
    if isinstance(first, dict):
        return {k: torch.cat([o[k] for o in outs]) for k in first}
    if isinstance(first, tuple):
        return tuple(torch.cat([o[j] for o in outs]) for j in range(len(first)))
    return torch.cat(outs)


_SAID: set = set()  # the keys of first_time


def first_time(key) -> bool:
    """True the first time ``key`` is met in this process: for a note a run would otherwise repeat (it reads
    its data folder several times: first stage, diffusion model, evaluation)."""
    if key in _SAID:
        return False
    _SAID.add(key)
    return True


def forget_said(text: str) -> None:
    """Forget the :func:`first_time` keys that name ``text`` (a path): a server's uploads, each in a folder of its own,
    grew the set without end."""
    for key in [k for k in list(_SAID) if text in str(k)]:  # list(): one step, safe while other threads add
        _SAID.discard(key)


class _ThreadWarnings(logging.Handler):
    """One handler on the package's logger for the process: the warnings logged in a thread go to that thread's list
    while it runs a :func:`warnings_said` block (adding and removing a handler per block raced in a server: a handler
    removed while another thread's record walked the list skipped that thread's own)."""

    local = threading.local()
    _lock = threading.Lock()
    _installed = False

    @classmethod
    def install(cls) -> None:
        with cls._lock:
            if not cls._installed:
                logging.getLogger("latentbridge").addHandler(cls(logging.WARNING))
                cls._installed = True

    def emit(self, record: logging.LogRecord) -> None:
        texts = getattr(self.local, "texts", None)
        if texts is not None and (text := record.getMessage()) not in texts:
            texts.append(text)


@contextlib.contextmanager
def warnings_said() -> Iterator[list[str]]:
    """The warnings latentbridge logs in this thread while the block runs, each once, in a list filled as they are
    said (a block inside another: the outer one hears them too)."""
    _ThreadWarnings.install()
    outer = getattr(_ThreadWarnings.local, "texts", None)
    _ThreadWarnings.local.texts = texts = []
    try:
        yield texts
    finally:
        _ThreadWarnings.local.texts = outer
        if outer is not None:
            outer.extend(t for t in texts if t not in outer)


#: seeds numpy and torch both take (numpy's generators refuse negatives and numbers from 2**32)
MAX_SEED = 2 ** 32 - 1


def positive_integer(value, name: str) -> int:
    """``value`` as an int where it is a positive whole number (8000, 8000.0), else a ValueError naming ``name`` (NaN
    and inf among them: ``int(nan)``'s own message named no setting)."""
    try:
        ok = not isinstance(value, bool) and float(value).is_integer() and float(value) > 0
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(float(value))


def check_seed(seed: int, low: int = 0, high: int = MAX_SEED) -> int:
    """``--seed`` as given, or LatentbridgeError outside ``low``..``high`` (a traceback from numpy or torch):
    0..:data:`MAX_SEED` where numpy draws, torch's 64-bit range where only torch does (``enhance``)."""
    if not low <= int(seed) <= high:
        from latentbridge.errors import LatentbridgeError

        raise LatentbridgeError(f"--seed must be {low} to {high}, got {seed}")
    return seed


def is_launched_child() -> bool:
    """True in the extra processes Lightning's DDP launcher starts (they re-run the command)."""
    return int(os.environ.get("LOCAL_RANK", "0")) > 0 or int(os.environ.get("NODE_RANK", "0")) > 0


def end_with_launcher() -> None:
    """In an extra DDP process, end with the process that launched it (Linux): the first one killed (SIGKILL, an
    out-of-memory killer) left it running for good, 520 MB held, deaf to SIGTERM in its collective."""
    if is_launched_child():
        end_with_parent()
