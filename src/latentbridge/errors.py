"""Errors that reach users: each names the file or key and the problem."""

from __future__ import annotations

import os
import sys
from pathlib import Path


#: problems named one by one in an error about many files (the rest are counted)
MAX_NAMED = 10


def named_problems(problems: list) -> str:
    """``"a; b; ...; and N more"``: the first :data:`MAX_NAMED` problems of an error about many files. Problems given
    as :class:`DataError` or ``(path, problem)`` pairs are grouped: the files of one problem named together (three,
    then a count), the problem said once (ten files recorded below a model's rate made one line of 2,500
    characters)."""
    import re

    texts, groups = [], {}
    for p in problems:
        if isinstance(p, (DataError, tuple)):
            path, problem = (p.path, p.problem) if isinstance(p, DataError) else p
            # "what: this file's value; why" (recording too short: 0.298 s; with 2-s windows ...): one problem, each
            # file with its value (thirty clips of other lengths made thirty lines of 250 characters)
            found = re.fullmatch(r"([^:;]+): ([^:;\d]{0,20}\d[^:;]{0,20}); (.+)", str(problem), flags=re.S)
            key = f"{found.group(1)}; {found.group(3)}" if found else problem
            groups.setdefault(key, []).append((str(path), found.group(2) if found else None, problem))
        else:
            texts.append(str(p))
    for problem, entries in groups.items():
        if len(entries) == 1:
            texts.append(f"{entries[0][0]}: {entries[0][2]}")
            continue
        paths = [path + (f" ({value})" if value else "") for path, value, _ in entries]
        texts.append(", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "") + f": {problem}")
    more = len(texts) - MAX_NAMED
    return "; ".join(texts[:MAX_NAMED]) + (f"; and {more} more" if more > 0 else "")


class LatentbridgeError(Exception):
    """Base class for errors the CLI reports as one clear line (exit code 2)."""


class DataError(LatentbridgeError):
    """A data file or folder that cannot be used (or the folders given together, named in a row)."""

    def __init__(self, path: str | Path | list, problem: str):
        from latentbridge.utils import paths_text

        self.path = paths_text(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(LatentbridgeError):
    """A config file or override with unknown keys or wrong values; ``problems``, where the config was validated,
    is the message without its source (the keys and what is wrong with them)."""

    def __init__(self, message: str, problems: str | None = None):
        self.problems = problems
        super().__init__(message)


class ModelFolderError(LatentbridgeError):
    """A saved model folder that is missing files or has been altered."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"model folder {self.path}: {problem}")


class CheckpointError(LatentbridgeError):
    """A training checkpoint that cannot be read or does not fit the run (corrupt, foreign, other model)."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class BusyError(LatentbridgeError):
    """An output folder another process is writing (its lock is held)."""


class Stopped(LatentbridgeError):
    """Work stopped before its end because its caller asked (the server's client went away)."""


def os_reason(e: OSError) -> str:
    """What went wrong in ``e``, without its file: its strerror; numpy's short write (a full disk, without an errno:
    "36288 requested and 13280 written") said as one; a path through a file ("File exists", "Not a directory") said
    as that file."""
    import errno
    import re

    if e.errno is None and re.fullmatch(r"\d+ requested and \d+ written", str(e)):
        return f"No space left on device ({e})"
    if e.errno in (errno.EEXIST, errno.ENOTDIR) and e.filename:
        path = Path(os.fsdecode(e.filename))
        if file := next((q for q in (path, *path.parents) if q.exists() and not q.is_dir()), None):
            return f"{file} is a file, not a folder"
    return e.strerror or str(e) or type(e).__name__


def os_error_text(e: OSError, out=None) -> str:
    """One line for an OSError of the user's environment (permissions, a full disk, a missing folder): the file and
    the problem; a full disk also names ``out``, the output being written (the file that failed is often a temporary
    one, whose name says nothing to the user)."""
    import errno
    import re

    name = e.filename
    if name:  # a temporary file's name (.config.json.x1y2.partial, .run.tmp-123) said as the file it was to become
        path = Path(str(name))
        if m := re.fullmatch(r"\.(.+?)(?:\.[a-z0-9_]{8}\.partial|\.tmp-\d+)", path.name):
            path = path.parent / m.group(1)
        # a file inside a temporary folder (full/.ti.tmp-123/section_01.npy, a mount point's .latentbridge.tmp-123):
        # said inside the folder it becomes
        parts = [m.group(1) if (m := re.fullmatch(r"\.(.+)\.tmp-\d+", part)) else part for part in path.parts
                 if not re.fullmatch(r"\.latentbridge\.tmp-\d+", part)]
        name = Path(*parts)
    text = f"{name}: {e.strerror or e}" if name else str(e.strerror or e)
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) and out:
        text += f" (while writing {out})"
    return text


#: what a RuntimeError says of a failed allocation: torch's CPU allocator, CUDA/MPS, and an allocation failing in a
#: DataLoader worker process (re-raised in the main process as a RuntimeError naming its class)
_OUT_OF_MEMORY = ("can't allocate memory", "not enough memory", "out of memory", "Caught MemoryError",
                  "Caught _ArrayMemoryError", "Caught OutOfMemoryError")


def out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` is a failed allocation: a MemoryError (numpy's ``_ArrayMemoryError`` is one), torch's
    ``OutOfMemoryError`` (CUDA), its CPU allocator's RuntimeError, one of them raised in a DataLoader worker, or
    onnxruntime's arena failing to allocate or CUDA's out of memory (its ``Fail``, ``RuntimeException``: no
    RuntimeError)."""
    if isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError":
        return True
    if type(e).__module__.startswith("onnxruntime"):  # its own classes: Fail, RuntimeException (CUDA's)
        return "Failed to allocate memory" in str(e) or any(s in str(e) for s in _OUT_OF_MEMORY)
    return isinstance(e, RuntimeError) and any(s in str(e) for s in _OUT_OF_MEMORY)


_UNITS = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "PB": 1e15,
          "KiB": 2 ** 10, "MiB": 2 ** 20, "GiB": 2 ** 30, "TiB": 2 ** 40, "PiB": 2 ** 50}


def allocation_bytes(e: BaseException) -> float | None:
    """The size in bytes of the allocation that failed, as ``e`` says it, or None."""
    import re

    text = str(e)
    if m := re.search(r"(?:Unable|[Tt]ried) to allocate (\d+\.?\d*) ?([KMGTP]?i?B)\b", text):  # numpy, CUDA
        return float(m.group(1)) * _UNITS.get(m.group(2), 1)
    if m := re.search(r"tried to allocate (\d+) bytes|requested buffer of size (\d+)", text):  # torch's CPU, ORT
        return float(m.group(1) or m.group(2))
    return None


def allocation_size(e: BaseException) -> str | None:
    """The size of the allocation that failed, as ``e`` says it ("2.57 GiB"), or None."""
    n = allocation_bytes(e)
    if n is None:
        return None
    unit = "bytes"
    for name in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024:
            break
        n, unit = n / 1024, name
    return f"{n:.3g} {unit}"


def physical_memory() -> int | None:
    """This machine's memory in bytes, or None where the system does not say."""
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return None


def available_memory() -> int | None:
    """The memory in bytes this machine can give without swapping (Linux's MemAvailable), or None where the system
    does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, ValueError, StopIteration, IndexError):
        return None


def reading_memory_error(path, e: MemoryError) -> Exception:
    """What an allocation that failed while reading ``path`` is: too little memory, no fault of the file (a
    MemoryError naming it: never a bad file that ``skip_bad`` leaves out, it dropped good recordings), unless the
    allocation is more than this machine's memory — a damaged header declaring 2**40 samples, or a recording too
    large to read whole here: a DataError naming the file (it stopped every command, the file unnamed)."""
    size, ram = allocation_bytes(e), physical_memory()
    if size is not None and ram is not None and size > ram:
        return DataError(path, f"reading it whole takes {allocation_size(e)}, more than this machine's memory "
                               f"({ram / 2 ** 30:.3g} GiB): a damaged header, or a recording too large to read here")
    out = MemoryError(f"{e}{_READING.format(path)}")  # the name in the text too (memory_error_path)
    out.path = str(path)  # named by memory_text
    return out


#: how a MemoryError says the file it was reading (:func:`reading_memory_error`), in its text: torch re-raises a
#: DataLoader worker's error in the main process from its text alone (the file was lost: "an allocation failed")
_READING = " [while reading {}]"


def memory_error_path(e: BaseException) -> str | None:
    """The file ``e``, a failed allocation, was reading (:func:`reading_memory_error`), in this process or a
    DataLoader worker's; None when it does not say."""
    import re

    if getattr(e, "path", None):
        return e.path
    m = re.search(r" \[while reading (.+)\]$", str(e), flags=re.MULTILINE)
    return m.group(1) if m else None


#: what to lower when a command runs out of memory, by command (its subcommand too: ``latentbridge anomaly fit``)
_MEMORY_HINTS = {
    "latentbridge train": "lower what the run holds at once (-o data.limit=N, -o data.image_size=N, "
                          "-o train.batch_size=N), give fewer or shorter recordings (--workers 0: one decoded at a "
                          "time)",
    "latentbridge anomaly fit": "give fewer or shorter recordings (--workers 0: one decoded at a time; "
                                "-o train.batch_size=N lowers the training's share)",
    "latentbridge sample": "draw fewer samples at once (--num-samples)",
    "python -m latentbridge.edge_sampler": "draw fewer samples at once (--batch-size, --num-samples)",
    "python -m latentbridge.edge": "it reads a recording block by block: leave it more of the memory (other programs)",
}
#: an allocation this many times the machine's memory is a size far larger than meant, not a shortage of memory
ABSURD_RAM_FACTOR = 16
#: the commands whose hint names the option that sets an allocation's size (said of one beyond the machine's memory too)
_SIZE_OPTIONS = ("latentbridge sample", "python -m latentbridge.edge_sampler")
_MEMORY_HINT = "give fewer or shorter files at a time (--workers 0 where the command has it: one decoded at a time)"


def memory_text(e: BaseException, command: str, named: bool = False) -> str:
    """One line for ``e``, an allocation that failed (:func:`out_of_memory`) in ``command`` ("latentbridge anomaly
    score"): the command, the allocation's size where ``e`` says it, and what to lower; an allocation of more than
    :data:`ABSURD_RAM_FACTOR` times this machine's memory (128 TiB) is said to be one, no matter of more memory (it was
    called out of memory like any; a fit of many hours may need more than the machine has, and is told so)."""
    size, ram = allocation_size(e), physical_memory()
    gpu = "CUDA" in str(e) or "MPS" in str(e) or type(e).__name__ == "OutOfMemoryError"
    what = f"an allocation of {size} failed" if size else "an allocation failed"
    if (path := memory_error_path(e)) and not named:  # the file it was reading (``named``: the caller names it)
        what += f" reading {path}"
    if not gpu and ram and (allocation_bytes(e) or 0) > ABSURD_RAM_FACTOR * ram:
        return (f"in `{command}`, {what}: more than {ABSURD_RAM_FACTOR} times this machine's memory "
                f"({ram / 2 ** 30:.3g} GiB), so no machine of its kind runs it; an input or a setting is far larger "
                "than meant: "
                + (_MEMORY_HINTS[command] if command in _SIZE_OPTIONS else
                   "check the files and options given (a damaged header, a window, image or batch size)"))
    hint = "a smaller -o train.batch_size=N, or a device with more memory" if gpu else \
        _MEMORY_HINTS.get(command, _MEMORY_HINT) + ", or run on a machine with more memory"
    return f"out of {'GPU ' if gpu else ''}memory in `{command}` ({what}): {hint}"


def user_error_text(e: BaseException, args) -> str | None:
    """The one line the command line prints for ``e`` in the command of ``args`` (exit code 2), or None for an error
    of the program's own (a traceback): bad input, config or output (:class:`LatentbridgeError`), the user's
    environment (an OSError: a full disk, naming ``args.out``, the output being written), too little memory
    (:func:`out_of_memory`, naming the command and its subcommand: ``anomaly fit``)."""
    if isinstance(e, LatentbridgeError):
        return str(e)
    if out_of_memory(e):
        sub = getattr(args, f"{args.command}_cmd", None)
        return memory_text(e, f"latentbridge {args.command}" + (f" {sub}" if sub else ""))
    # what the command writes: its --out, or the model folder `anomaly calibrate` rewrites (a full disk named nothing)
    out = getattr(args, "out", None) or (getattr(args, "model_dir", None) if getattr(args, "anomaly_cmd", None) ==
                                         "calibrate" else None)
    if isinstance(e, OSError):
        try:
            os.getcwd()
        except FileNotFoundError:  # (a traceback from the first path made absolute)
            return "the current folder no longer exists (removed after the shell entered it): run the command from " \
                   "an existing folder"
        return os_error_text(e, out)
    if isinstance(e, UnicodeEncodeError) and sys.getfilesystemencoding().lower() not in ("utf-8", "utf8"):
        return (f"{e.object!r}: a name with characters ({e.object[e.start:e.end]!r}) that this locale's encoding "
                f"({sys.getfilesystemencoding()}) cannot hold: run the command under a UTF-8 locale "
                "(LC_ALL=C.UTF-8) or with PYTHONUTF8=1")
    if type(e).__name__ == "LibsndfileError":  # soundfile's write failing (files read are checked and named)
        return _audio_write_text(e, out)
    if (died := _worker_death(e)) is not None:
        return died
    if isinstance(e, ModuleNotFoundError) and e.name and (top := e.name.split(".")[0]) != "latentbridge":
        import importlib.util  # one of the packages latentbridge depends on (a traceback): the module's name, which is

        if importlib.util.find_spec(top) is None:  # not always the package's (yaml: PyYAML, sklearn: scikit-learn)
            return (f"the module {top!r}, of a package latentbridge needs, is not installed ({e}): `pip install "
                    "latentbridge` installs them (an install with --no-deps, for the edge scorer, has none of them)")
        return (f"the installed {top!r} has no {e.name!r} ({e}): a version older than latentbridge needs; `pip "
                "install -U latentbridge` updates it")
    return None


def stdout_gone(e: BaseException) -> bool:
    """Whether ``e`` is the reader of the command's output gone (``| head``), its stdout then sent nowhere (the
    interpreter's last flush failed too): the command ends quietly, as shell tools do (it said "error: Broken pipe",
    exit 2, or ended with exit 1)."""
    import select

    if not isinstance(e, BrokenPipeError) or e.filename:
        return False
    try:  # stdout itself broken (a pipe to a worker that died is no reader gone: said as an error)
        poll = select.poll()
        poll.register(1, select.POLLOUT)
        if not any(events & select.POLLERR for _, events in poll.poll(0)):
            return False
    except (OSError, AttributeError):  # (no poll: Windows)
        return False
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    return True


def _chain(e: BaseException | None):
    """``e`` and the exceptions it was raised from or during, each once (a chain may loop)."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def interrupted_in(e: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C or SIGTERM behind ``e``, an error it raised on its way (a DataLoader worker stopped by the same
    Ctrl-C: 'exited unexpectedly', a traceback and exit 1), or None."""
    return next((x for x in _chain(e) if isinstance(x, KeyboardInterrupt)), None)


def _worker_death(e: BaseException) -> str | None:
    """A DataLoader worker that died under the command (killed from outside, or by the system for memory), said so
    (a traceback of 94 lines, exit 1); None for anything else."""
    import re

    for x in _chain(e):
        found = re.search(r"DataLoader worker \(pid\(?s?\)? ?([\d, ]+)\)(?: is killed by signal: ([^.]+)| exited "
                          r"unexpectedly(?: with exit code (-?\d+))?)", str(x)) if isinstance(x, RuntimeError) else None
        if found:
            signal, code = found.group(2), found.group(3)
            why = {"Killed": "killed from outside, or by the system for want of memory",
                   "Bus error": "out of shared memory (/dev/shm): in a container, give it more (--shm-size)"}.get(
                signal, "it crashed" if signal else "killed, or it failed" + (f" with exit code {code}" * bool(code)))
            return (f"a process reading the data (pid {found.group(1).strip()}) died"
                    + (f" of signal {signal}" if signal else "") + f" ({why}), and the command stopped; run it again "
                    "(--workers 0 reads the files in the command's own process)")
    return None


def note_disk_full(e: BaseException, where) -> None:
    """Whether the disk ``where`` is on is full, kept on ``e`` where that is libsndfile's 'System error' writing audio,
    which names no cause: called before a failed writer's files are removed (by the time the error was said, they
    were, and a full disk had room again: "writing audio failed (System error.)")."""
    if type(e).__name__ == "LibsndfileError" and not hasattr(e, "disk_full"):
        try:
            e.disk_full = _disk_full(Path(where))
        except AttributeError:  # (an exception that takes no attributes)
            pass


def _disk_full(where: Path) -> bool:
    import shutil

    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        return shutil.disk_usage(where).free < 2**20
    except OSError:
        return False


def _audio_write_text(e: BaseException, out) -> str:
    """libsndfile's 'System error' writing audio (a traceback, where a full disk was 'No space left on device'
    elsewhere): said as the OSError it stands for where the output's disk is (or was, when the writer's files were
    removed: :func:`note_disk_full`) full."""
    where = Path(out) if out else Path.cwd()
    full = getattr(e, "disk_full", None)
    if full is None:
        full = _disk_full(where)
    if full:
        return f"No space left on device (while writing {out or where})"
    return f"{out or where}: writing audio failed ({getattr(e, 'error_string', None) or e})"
