"""Output folders with one owner: a lock per folder, results published whole, ``--force`` rules.

Every command that writes a folder (train, fit, score, evaluate, analyze, reconstruct, export,
data synth, classifier train) goes through :func:`output_folder`:

- it takes an exclusive lock (``fcntl.flock`` on the hidden sibling file ``.NAME.lock``, which
  records the holder's PID and command); a second writer is refused with a message naming that
  PID, and ``--force`` never deletes a folder whose lock is held;
- a non-empty folder is replaced only with ``force``, and never when it is, or holds, one of the
  command's inputs (:func:`protect_inputs`: a run evaluated into itself, a data folder trained into);
- a finished folder lists what was written in it (:mod:`latentbridge.written`): ``force`` refuses one where
  a user has put files since;
- results are written to a hidden sibling temporary folder and moved into place when complete
  (one rename), so a folder never holds two runs' files and a failed command leaves the old
  folder as it was. Training writes in place instead (its checkpoints must survive a kill for
  ``--resume``), under the lock for the whole run; a new run that fails before its first checkpoint
  or saved model is removed (nothing in it to resume or use).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import logging
import os
import re
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Iterator

from latentbridge.errors import BusyError, LatentbridgeError, note_disk_full, os_reason
from latentbridge.utils import OUTPUT_FOLDERS, PATH_KEY, cut_to_bytes, dotted, existing_path, listed, output_marks
from latentbridge.written import WRITTEN, added_files, note_written, record_written

log = logging.getLogger(__name__)


#: the folders this process holds the lock of
_HELD: set[Path] = set()


class FolderLock:
    """Exclusive, non-blocking lock on ``folder`` through ``folder.parent/.NAME.lock``; a mount point whose parent
    cannot be written (a container's writable volume under its read-only root) through ``folder/.latentbridge.lock``
    (its output was refused: "its parent must be writable too")."""

    def __init__(self, folder: str | Path, advice: str = "wait for it to finish or choose another output"):
        """``advice``: what a refusal tells the user to do (a model folder rewritten in place has no other output)."""
        self.folder, self.advice = Path(folder), advice
        self.real = Path(os.path.realpath(self.folder))  # one lock per folder, whatever link names it
        self.path = self.real.parent / f".{self.real.name}.lock"
        if not os.access(self.real.parent, os.W_OK) and _mount_point(self.real):
            self.path = self.real / _LOCK_INSIDE
        self.fd: int | None = None

    def holder(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8").strip() or "unknown"
        except OSError:
            return "unknown"

    def held_by(self) -> str | None:
        """The holder's line where another process holds the lock now; None where nobody does (a lock file left by a
        killed process included) or this process does. Takes nothing."""
        if self.real in _HELD:
            return None
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return self.holder()
        finally:
            os.close(fd)  # (a shared lock taken goes with it)
        return None

    def busy_error(self, holder: str | None = None) -> "BusyError | None":
        """The error of a folder another process writes now (``holder``: its line, read when None; None: no process
        writes it)."""
        held = holder or self.held_by()
        return None if held is None else BusyError(f"{self.folder}: another latentbridge process is writing it "
                                                   f"({held}); {self.advice}")

    def acquire(self) -> "FolderLock":
        self.made, q = [], self.folder.parent  # the parents made for it: removed again if left empty (a failed
        while not q.exists() and q != q.parent:  # command left them behind)
            self.made.append(q)
            q = q.parent
        try:
            self.folder.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise LatentbridgeError(f"{self.folder}: cannot create the output folder's parent "
                                    f"{self.folder.parent} ({os_reason(e)})") from None
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise LatentbridgeError(f"{self.folder}: cannot write in {self.folder.parent} "
                                        f"({os_reason(e)}): a folder latentbridge writes is locked by a file "
                                        f"beside it ({self.path.name}), so its parent must be writable too") from None
            for wait in (0.0, 0.005, 0.02, 0.05, None):  # (another process's held_by holds it for a moment)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if wait is None:
                        os.close(fd)
                        raise self.busy_error(self.holder()) from None
                    time.sleep(wait)
            # the holder may have released and removed the file between our open and flock
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        command = " ".join(sys.argv)  # whole, or cut with a mark (it ended in a bare `--out`)
        try:
            os.write(fd, f"PID {os.getpid()}: {command if len(command) <= 300 else command[:300] + ' ...'}".encode(
                "utf-8", "replace"))
        except OSError:  # a full disk: the lock holds without its holder's line (the command's writes name the disk;
            pass  # an empty lock file was left beside every output)
        self.fd = fd
        _HELD.add(self.real)
        _remove_leftovers(self.real)
        return self

    def acquire_waiting(self, doing: str) -> "FolderLock":
        """:meth:`acquire`, waiting while another process holds the lock: a shared folder (a data set extracted, a
        cache entry) that it makes now, ``doing`` said once (the second of two commands failed, or read it half-made)."""
        if self.real in _HELD:  # this process's own lock: waiting for it would be waiting for ever
            raise BusyError(f"{self.folder}: this process holds its lock already")
        while True:
            try:
                return self.acquire()
            except BusyError:
                self.wait_free(doing)

    def wait_free(self, doing: str) -> bool:
        """Wait while another process holds the lock (``doing``: what it does in the folder, said); whether it did."""
        holder = self.held_by()
        if holder is None:
            return False
        log.warning("%s: waiting for another latentbridge process (%s), which %s", self.folder, holder, doing)
        while self.held_by() is not None:
            time.sleep(0.5)
        return True

    def release(self) -> None:
        if self.fd is None:
            return
        _HELD.discard(self.real)
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None
        for q in getattr(self, "made", ()):  # deepest first; one that holds something stops it
            try:
                os.rmdir(q)
            except OSError:
                break

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _remove_leftovers(folder: Path) -> None:
    """What a killed writer of ``folder`` left, removed by the next one, under its lock (no other process writes them
    while it is held): the temporary sibling of an output folder (``.NAME.tmp-PID``, or ``.latentbridge.tmp-PID``
    inside a mount point), the hidden file of one written whole (:func:`latentbridge.utils.atomic_path`'s
    ``.NAME.XXXXXXXX.partial``: an export's 740-KB file stayed for good) and that of a temporary sibling."""
    partial = glob.escape(cut_to_bytes(folder.name, 200))  # atomic_path's prefix: the name cut for the suffix
    stale = [*folder.parent.glob(f".{glob.escape(folder.name)}.tmp-*"), *folder.parent.glob(f".{partial}.*.partial"),
             # a writer that stages its own output whole (atomic_path) inside the temporary sibling: data synth's
             # ``..NAME.tmp-PID.XXXXXXXX.partial`` (48 partial wavs, 15-31 MB, stayed for good after a kill)
             *folder.parent.glob(f"..{glob.escape(folder.name)}.tmp-*.partial")]
    inside = [*folder.glob(f"{_INSIDE}.tmp-*"), *folder.glob(f".{_INSIDE}.tmp-*.partial")] if folder.is_dir() else []
    for path in stale + inside:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _aside(folder: Path) -> Path:
    """A name for ``folder``'s old contents while a ``--force`` run replaces it: ``.NAME.old-PID``, never one that
    exists (a killed run's kept folder of the same PID, after a restart reused it, was deleted at once)."""
    for k in range(1000):
        old = folder.parent / (f".{folder.name}.old-{os.getpid()}" + (f"-{k}" if k else ""))
        if not old.exists() and not old.is_symlink():
            return old
    raise LatentbridgeError(f"{folder}: 1000 folders of earlier --force runs kept beside it ({old.name} ...): move "
                            "back what you need from them and remove the others")


def kept_aside(folder: Path) -> list[Path]:
    """The old contents of ``folder`` that killed ``--force`` runs set aside (:func:`_aside`): the user's."""
    folder = Path(folder)
    return sorted([*folder.parent.glob(f".{glob.escape(folder.name)}.old-*"), *folder.glob(f"{_INSIDE}.old-*")])


#: the hidden folders inside a mount point that stand for the siblings of other folders (:func:`_mount_point`)
_INSIDE = ".latentbridge"
#: the lock inside a mount point whose parent cannot be written (:class:`FolderLock`)
_LOCK_INSIDE = f"{_INSIDE}.lock"


def _entries(folder: Path) -> list[Path]:
    """``folder``'s entries but its own lock (:data:`_LOCK_INSIDE`)."""
    return [e for e in folder.iterdir() if e.name != _LOCK_INSIDE]


def _mount_point(folder: Path) -> bool:
    """A folder that cannot be renamed or replaced (a bind mount, a Docker volume, a drive): results are staged in
    a hidden folder inside it and its entries moved (a rename of the folder failed, 'Device or resource busy', after
    all the work was done)."""
    if not folder.is_dir():
        return False
    if os.path.ismount(folder):
        return True
    try:  # a bind mount of a folder of the same file system: Linux lists it, os.path.ismount does not know it
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            points = {re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4]) for line in f}
    except (OSError, IndexError):
        return False
    return os.path.realpath(folder) in points


def _set_aside_inside(folder: Path, keep: tuple[Path, ...] = ()) -> Path | None:
    """Move ``folder``'s entries (but ``keep``) into a hidden folder inside it; that folder, or None when empty."""
    entries = [e for e in _entries(folder) if e not in keep]
    if not entries:
        return None
    old = folder / f"{_INSIDE}.old-{os.getpid()}"
    old.mkdir()
    for e in entries:
        os.replace(e, old / e.name)
    return old


def _move_entries(src: Path, dst: Path) -> None:
    for e in list(src.iterdir()):
        os.replace(e, dst / e.name)


def _is_nonempty_dir(p: Path) -> bool:
    return p.is_dir() and any(_entries(p))


def resumable_run(folder: Path) -> bool:
    """Whether ``folder`` holds a training ``--resume`` continues: its last checkpoint (a finished run keeps its own:
    a larger ``train.max_epochs`` trains it further), or a first stage of a latent diffusion run saved or
    checkpointed (``first_stage/NAME/``) before the run's own first checkpoint."""
    folder = Path(folder)
    return (folder / "checkpoints" / "last.ckpt").is_file() or any(
        (s / "model.safetensors").is_file() or (s / "checkpoints" / "last.ckpt").is_file()
        for s in (folder / "first_stage").glob("*"))


#: when the command began (this module is imported as it begins: cli.main)
_STARTED = time.time()


def stopped_hint(args) -> str:
    """What follows 'interrupted' / 'terminated' for the command of ``args``: how to continue a training stopped before
    its end, or, stopped after its model was saved, that the model is usable (--resume said 'nothing left to train')."""
    out = getattr(args, "out", None)
    if not out or args.command not in ("train", "anomaly") or getattr(args, "force", False):
        return ""
    saved = Path(out) / "model.safetensors"
    if saved.is_file() and saved.stat().st_mtime >= _STARTED:  # by this command (a resumed finished run has one)
        return (f" after the model was saved ({out}: usable); the figures written after it (training curves, samples, "
                "report) may be missing: --force trains the run again to write them")
    return f": the same command with --resume continues the training ({out})" if resumable_run(Path(out)) else ""


#: the existing paths the running command reads (:func:`protect_inputs`), each with what it is to the command
_INPUTS: dict[Path, str] = {}


def protect_inputs(values, skip: tuple[str, ...] = (), what: str = "an input of this command") -> None:
    """Record the existing paths among ``values`` (strings or paths, nested in lists and dicts; a dict's keys
    holding any of ``skip`` are passed over) as the running command's inputs: ``force`` refuses to replace a
    folder that is one of them or holds one (it deleted the run an ``evaluate RUN --out RUN --force`` read,
    the recordings a training read)."""
    for v in values:
        if isinstance(v, dict):
            protect_inputs((x for k, x in v.items() if not any(s in str(k) for s in skip)), skip, what)
        elif isinstance(v, (list, tuple, set)):
            protect_inputs(v, skip, what)
        elif (p := existing_path(v)) is not None:
            _INPUTS.setdefault(p, what)


#: a command line's arguments that hold words, never paths (besides ``--out`` and ``--config``: read before any work)
_WORDS = frozenset({"out", "config", "override", "command", "aggregate", "method", "score", "scheduler", "strategy",
                    "accelerator", "precision", "format", "log_level", "kind", "task", "label", "devices"})


def protect_arguments(args) -> None:
    """:func:`protect_inputs` of a parsed command line: every path argument but ``--out`` and ``--config`` (read
    whole before anything is written), and the values of ``-o KEY=VALUE``; those of an earlier command run in
    this process are forgotten."""
    import yaml

    _INPUTS.clear()
    OUTPUT_FOLDERS.clear()  # and the output folder is left out of the folders read as data
    if isinstance(out := getattr(args, "out", None), str) and out.strip():
        OUTPUT_FOLDERS.add(os.path.realpath(out))
    # the words of a command line are no paths (a folder named as the subcommand or an option's value, `anomaly`,
    # `score`, `auto`, was an input no --force replaced); of its -o overrides, the values of path keys
    protect_inputs([{k: v for k, v in vars(args).items() if k not in _WORDS and not k.endswith(("_cmd", "_kind"))
                     and not (k == "labels" and v == "auto")}])
    overrides = {}
    for o in getattr(args, "override", None) or []:
        key, _, value = o.partition("=")
        try:  # (as the config reads it: a list of folders, [day1, day2])
            overrides[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:  # (refused by the config's reading, with its message)
            continue
    protect_inputs(_data_paths(overrides, None))
    for key in ("run_dir", "model_dir"):  # and the data a model folder's run reads unless told (its data.root: an
        if isinstance(run := getattr(args, key, None), str):  # `evaluate RUN --out DATA --force` deleted it)
            try:
                info = json.loads((Path(run) / "config.json").read_text(encoding="utf-8"))
                protect_inputs(_data_paths(info.get("config") or {}, info.get("trained_in")),
                               what=f"the data of the model {run}, which this command reads")
            except (OSError, ValueError, AttributeError):
                continue


def _data_paths(config: dict, trained_in: str | None) -> list[str]:
    """The values of a run config's path keys (:data:`~latentbridge.utils.PATH_KEY`; a cache's left out), relative
    ones also as seen from ``trained_in``, the folder `train` ran in (only those: a config's words, 'anomaly' or
    'best', named folders of the same names as inputs)."""
    out = []
    for key, v in dotted(config).items():
        if PATH_KEY.search(key) and "cache" not in key:
            for x in v if isinstance(v, list) else [v]:
                if isinstance(x, str) and x.strip():
                    out += [x] + ([os.path.join(trained_in, x)] if trained_in and not os.path.isabs(x) else [])
    return out


def stopped_early(folder: Path) -> bool:
    """Whether ``folder`` is a training killed before its first checkpoint or saved model: what a training writes
    first (``config.yaml`` and ``logs/``, or a fit's ``calibration.json``, or ``config.yaml`` beside the lock file its
    killed process left: a killed `anomaly fit` was 'exists and is not empty') and nothing else (a user's experiment
    folder with its own config.yaml and notes is not one)."""
    folder = Path(folder)
    names = {p.name for p in _entries(folder)} if folder.is_dir() else set()
    lock = FolderLock(folder)  # a fit killed while it read its data left config.yaml alone, and its lock file
    left = lock.path.is_file() and lock.held_by() is None
    return "config.yaml" in names and bool(names & {"logs", "calibration.json"} or left) and \
        not trained_run(folder) and names <= {"config.yaml", "logs", "checkpoints", "first_stage", "calibration.json"}


def trained_run(folder: Path) -> bool:
    """Whether ``folder`` holds a trained model or a training to resume (:func:`resumable_run`)."""
    return (Path(folder) / "model.safetensors").is_file() or resumable_run(folder)


def check_target(folder: Path, force: bool, what: str = "output folder", training: bool = False,
                 trains: bool = False) -> None:
    """Refuse ``folder`` as the command's output where it is the working folder or above it, a file, a used folder
    without ``force`` (``training``: a run it holds named with what ``--resume`` does for it), or, for a command that
    trains nothing (neither ``training`` nor ``trains``), a trained run even with ``force`` (a typo in --out deleted a
    model)."""
    here, where = Path.cwd().resolve(), Path(os.path.abspath(folder))
    if where == here or where in here.parents:  # `--out .`: its folder replaced as a whole, after all the work
        raise LatentbridgeError(f"{folder}: " + ("the folder this command runs in" if where == here else
                                                 "a folder above the one this command runs in")
                                + f"; an {what} is replaced as a whole: give a folder of its own (e.g. --out results)")
    if folder.exists() and not folder.is_dir():
        raise LatentbridgeError(f"{folder}: exists and is a file, not a folder (choose another {what})")
    if _is_nonempty_dir(folder):
        trained = not (training or trains) and trained_run(folder)
        if busy := FolderLock(folder).busy_error():  # (not its unfinished training's --resume, which it refused)
            raise busy
        where = folder.resolve()
        held = sorted(p for p in _INPUTS if p == where or where in p.parents)
        if held:  # (without --force it was told "use --force to replace it", which this then refused)
            what_held = "is" if held[0] == where else f"holds {held[0]}, which is"
            raise LatentbridgeError(f"{folder}: " + ("--force would replace it, and " if force else "")
                                    + f"it {what_held} {_INPUTS[held[0]]}; write to another {what} (nothing was "
                                      "changed)")
        if not force:
            kept = "".join(f"; what it held before a --force run that was killed is kept in {k}"
                           for k in kept_aside(folder))
            if training and resumable_run(folder):
                raise LatentbridgeError(f"{folder}: " + (
                    "a trained run: --force replaces it; --resume with a larger train.max_epochs trains it further"
                    if (folder / "model.safetensors").is_file() else
                    "an unfinished training: --resume continues it, --force replaces it") + kept)
            stopped = training and stopped_early(folder)
            added, names = added_files(folder), sorted(p.name + ("/" if p.is_dir() else "") for p in _entries(folder))
            theirs = (f"exists and is not empty: it holds files latentbridge did not write "
                      f"({listed(added or names, 4)}), which --force never replaces: choose another {what}, or empty "
                      "it" if added or added is None and not output_marks(n.rstrip("/") for n in names) else "")
            # (it advised --force, which then refused them)
            raise LatentbridgeError(f"{folder}: " + (f"a trained run (its model and checkpoints): write this command's "
                                                     f"output to another {what}" if trained else
                                                     "a training stopped before its first checkpoint: nothing to "
                                                     "resume, --force starts it again" if stopped else theirs or
                                                     "exists and is not empty (use --force to replace it)") + kept)
        if trained:  # a typo in --out deleted a model, weights and checkpoints
            raise LatentbridgeError(f"{folder}: a trained run (its model and checkpoints): this command's --force "
                                    f"would delete it; write to another {what} (nothing was changed)")
        added = added_files(folder)
        if added:  # a user's notes, notebook or plots put in an earlier output: deleted with it
            raise LatentbridgeError(f"{folder}: --force replaces it as a whole, and it holds {len(added)} file(s) "
                                    f"latentbridge did not write there ({listed(added, 4)}): move them out of it, or "
                                    f"choose another {what} (nothing was changed)")
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in _entries(folder))
        if added is None and not output_marks(n.rstrip("/") for n in names):
            raise LatentbridgeError(f"{folder}: --force replaces an earlier output of latentbridge, and this folder "
                                    f"holds none ({listed(names, 4)}): refused, so as not to delete files that are "
                                    f"not latentbridge's; empty it or choose another {what} (nothing was changed)")


@contextlib.contextmanager
def output_folder(folder: str | Path, *, force: bool = False, in_place: bool = False,
                  resume: bool = False) -> Iterator[Path]:
    """Own ``folder`` for the duration of the block and yield where to write.

    ``in_place=False``: yields a hidden temporary sibling that replaces ``folder`` (one rename) when
    the block succeeds and is removed when it fails. ``in_place=True`` (training, whose checkpoints
    must stay where ``--resume`` finds them if the process is killed): yields ``folder`` itself, kept
    as it is with ``resume``; with ``force`` the old contents wait in the hidden sibling
    ``.NAME.old-PID`` until the block succeeds (then removed) or fails (then put back)."""
    folder = Path(folder)
    if folder.is_symlink():  # the folder it names is replaced, not the link (it became a folder, the link hidden)
        folder = Path(os.path.realpath(folder))
    elif ".." in folder.parts:  # `link/..` is where the kernel goes (tempfile read it as text: the link's parent)
        folder = Path(os.path.realpath(folder.parent)) / folder.name
    lock = FolderLock(folder)
    lock.acquire()
    try:
        for kept in kept_aside(folder):  # a killed --force run's: the user's
            log.warning("%s: what it held before a --force run that was killed is kept in %s (the killed run's own "
                        "files are in the folder); move back what you need and remove the other", folder, kept)
        if resume:
            if not folder.is_dir():
                raise LatentbridgeError(f"{folder}: nothing to resume (no such folder)")
            # written in place again, listed again when the run ends (a user's files left out); killed before, the
            # list holds what it held, and what the training wrote meanwhile is its own (TRAINING_FOLDERS)
            had_list, users = (folder / WRITTEN).is_file(), added_files(folder) or []
            try:
                yield folder
            except BaseException:
                if had_list:
                    record_written(folder, leave_out=users)
                raise
            record_written(folder, leave_out=users)
            return
        check_target(folder, force, trains=in_place)  # in place: a training's run folder
        if in_place:
            mount = _mount_point(folder)
            old = _aside(folder) if _is_nonempty_dir(folder) and not mount else None
            existed = folder.is_dir()
            moved = False

            def put_back(stopped: bool = False):
                if moved and not mount and stopped and resumable_run(folder):
                    # stopped by the user (Ctrl-C, SIGTERM): its checkpoints kept beside, to resume (they were
                    # deleted: a polite stop lost hours of training that kill -9 would have left)
                    keep = folder.with_name(f"{folder.name}.stopped")
                    keep = keep if not keep.exists() else folder.with_name(f"{folder.name}.stopped-{os.getpid()}")
                    os.replace(folder, keep)
                    os.replace(old, folder)
                    log.warning("%s: the --force run stopped before it finished: the folder holds what it held before; "
                                "the stopped run is kept in %s (--out %s --resume continues it; remove it otherwise)",
                                folder, keep, shlex.quote(str(keep)))
                elif moved and mount:
                    for e in _entries(folder):
                        if e != old:
                            shutil.rmtree(e) if e.is_dir() and not e.is_symlink() else e.unlink()
                    _move_entries(old, folder)
                    old.rmdir()
                    log.warning("%s: the --force run stopped before it finished: the folder holds what it held before "
                                "(the stopped run's checkpoints are not kept)", folder)
                elif moved:  # the old run comes back as it was
                    shutil.rmtree(folder, ignore_errors=True)
                    os.replace(old, folder)
                    log.warning("%s: the --force run stopped before it finished: the folder holds what it held before "
                                "(the stopped run's checkpoints are not kept)", folder)
                elif old is None and not trained_run(folder):
                    # a new run that failed before its first checkpoint (or saved model, or first stage) holds nothing
                    # to resume or use: not left behind to refuse the rerun as a used folder
                    shutil.rmtree(folder, ignore_errors=True)
                    if existed:
                        folder.mkdir(parents=True, exist_ok=True)

            try:
                if mount:
                    old = _set_aside_inside(folder)
                    moved = old is not None
                elif old is not None:
                    os.replace(folder, old)
                    moved = True
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                put_back()
                raise LatentbridgeError(f"{folder}: cannot create the output folder ({os_reason(e)})") from None
            try:
                yield folder
            except BaseException as e:
                note_disk_full(e, folder)
                put_back(stopped=isinstance(e, KeyboardInterrupt))
                raise
            if moved:
                shutil.rmtree(old, ignore_errors=True)
            record_written(folder)
            note_written(folder)
            return
        mount = _mount_point(folder)
        tmp = folder / f"{_INSIDE}.tmp-{os.getpid()}" if mount else folder.parent / f".{folder.name}.tmp-{os.getpid()}"
        try:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
        except OSError as e:  # (a mount point exists: it is its inside that cannot be written)
            raise LatentbridgeError(f"{folder}: cannot {'write in' if mount else 'create'} the output folder "
                                    f"({os_reason(e)})") from None
        try:
            try:
                yield tmp
            except BaseException as e:
                note_disk_full(e, tmp)
                raise
            record_written(tmp)
            old = None
            if mount:  # its entries replaced, one rename each
                old = _set_aside_inside(folder, keep=(tmp,))
                _move_entries(tmp, folder)
                tmp.rmdir()
            else:
                if folder.exists():
                    old = _aside(folder)
                    os.replace(folder, old)
                os.replace(tmp, folder)
            note_written(folder)  # an output written inside another one
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    finally:
        lock.release()


@contextlib.contextmanager
def interrupts_held():
    """Ctrl-C and SIGTERM held back while the block runs (files renamed as a set: a model's weights and config.json,
    which an interrupt between the two renames left apart, a folder refused for good), then handled as they came, by
    the handlers they had. In the main thread only (signals reach no other)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or None in (
            signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)):  # (a handler not set from Python
        yield  # cannot be put back)
        return
    came: list[int] = []
    old = {s: signal.signal(s, lambda signum, frame: came.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if came and callable(handler := old[came[0]]):
            handler(came[0], None)  # (Ctrl-C: KeyboardInterrupt; the CLI's SIGTERM: its interrupt)
        elif came and handler == signal.SIG_DFL:
            signal.raise_signal(came[0])
