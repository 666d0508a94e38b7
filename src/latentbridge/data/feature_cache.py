"""The feature cache: where it lives (``$LATENTBRIDGE_CACHE``) and how large it may grow
(``$LATENTBRIDGE_CACHE_MAX_GB``); :class:`latentbridge.data.audio.FeatureExtractor` reads and writes its entries.
The bridge windows, the digit classifiers and the digit sets are kept beside it, in its parent folder."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from pathlib import Path

from latentbridge.errors import DataError, os_reason

log = logging.getLogger(__name__)

#: a cache entry's name: the 16 hex digits of :func:`latentbridge.utils.stable_hash` of its file and settings
_ENTRY = re.compile(r"[0-9a-f]{16}")
#: a cache file's write in progress (:func:`latentbridge.utils.atomic_path`), left behind by a killed process when older
#: than :data:`PARTIAL_AGE_S`
_PARTIAL = re.compile(r"\.[0-9a-f]{16}\.(npy|json)\..+\.partial")
PARTIAL_AGE_S = 3600.0


def not_written(folder: Path, error: OSError) -> None:
    """Warn, once a process, that the feature cache ``folder`` takes no entries (a read-only cache must not stop the
    work)."""
    from latentbridge.utils import first_time

    if first_time(("feature cache not written", str(folder))):
        log.warning("feature cache %s not written (%s): the features are computed again at every run", folder,
                    os_reason(error))  # (numpy's short write: no strerror)


def write_error(folder: Path) -> OSError | None:
    """Why no entry can be written in the cache folder ``folder`` (made when missing: the feature cache, a judge's
    place), or None."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".written-"):
            return None
    except OSError as e:
        return e


def check_before_workers(ex) -> None:
    """Before worker processes start (they share no "said once"): a feature cache that takes no entries is said once
    here, and ``ex``'s (a :class:`~latentbridge.data.audio.FeatureExtractor`) writes to it are skipped."""
    if ex.use_cache and ex.cache_writes and (error := write_error(ex.cache_dir)):
        not_written(ex.cache_dir, error)
        ex.cache_writes = False


def default_cache_dir() -> Path:
    env = os.environ.get("LATENTBRIDGE_CACHE")
    if env:  # a ~ no shell expanded (a systemd unit, a Docker env file) is the home folder, not a folder named ~
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "latentbridge" / "features"


def cache_home() -> Path:
    """The folder of the other caches (the bridge's windows, the digit classifiers, the digit sets): beside the
    feature cache, ``~/.cache/latentbridge``; with ``$LATENTBRIDGE_CACHE`` set, inside it (they were written into its
    parent: a project folder, a scratch space, a data folder the command read whose ``bridge/`` they took)."""
    return default_cache_dir() if os.environ.get("LATENTBRIDGE_CACHE") else default_cache_dir().parent


#: the feature cache's default size limit in GB (``$LATENTBRIDGE_CACHE_MAX_GB``): about 300 hours of 1-s clips
CACHE_MAX_GB = 5.0


def cache_limit_bytes() -> float:
    """The feature cache's size limit: ``$LATENTBRIDGE_CACHE_MAX_GB`` (a number of GB, ``inf`` for none), default
    :data:`CACHE_MAX_GB`."""
    env = os.environ.get("LATENTBRIDGE_CACHE_MAX_GB", "").strip()
    try:
        gb = float(env) if env else CACHE_MAX_GB
    except ValueError:
        raise DataError("LATENTBRIDGE_CACHE_MAX_GB", f"not a number of GB: {env!r} (e.g. 5, 0.5, or inf for no "
                                                     "limit)") from None
    if not gb >= 0:
        raise DataError("LATENTBRIDGE_CACHE_MAX_GB", f"must be at least 0 GB, got {env!r}")
    return gb * 1e9


def prune_cache(folder: Path, limit_bytes: float, pass_keys=None) -> int:
    """Remove the least recently used entries (``KEY.npy`` + ``KEY.json``; a hit renews an entry's time) of the
    feature cache ``folder`` until it holds at most 90 % of ``limit_bytes`` (once it holds more than the limit);
    return how many entries went. Only files named as the cache names them (16 hex digits) are counted or removed:
    a ``data.cache_dir`` pointed at a folder of the user's own arrays loses none of them. Entries another process
    removes meanwhile are passed over. ``pass_keys``: a function giving the keys of the pass that just ran, asked
    only when the cache is over its limit: when they alone take more than it, a warning (once) says so and the size
    they need (such a set of files never stays cached: each run computes its features again)."""
    entries, total = {}, 0
    try:
        with os.scandir(folder) as it:
            for e in it:
                if _PARTIAL.fullmatch(e.name):  # a write a killed process left: no entry, never read, never pruned
                    with contextlib.suppress(OSError):
                        if time.time() - e.stat().st_mtime > PARTIAL_AGE_S:  # not one being written now
                            os.remove(e.path)
                    continue
                key, dot, ext = e.name.rpartition(".")
                if ext not in ("npy", "json") or not _ENTRY.fullmatch(key):
                    continue
                try:
                    st = e.stat()
                except OSError:
                    continue
                size, when = entries.get(key, (0, 0.0))
                entries[key] = (size + st.st_size, max(when, st.st_mtime) if ext == "npy" else when)
                total += st.st_size
    except OSError:
        return 0
    if total <= limit_bytes:
        return 0
    if pass_keys is not None and limit_bytes > 0:
        _warn_over_limit(folder, sum(entries[k][0] for k in set(pass_keys()) if k in entries), limit_bytes)

    def remove(key):
        for ext in ("npy", "json"):
            with contextlib.suppress(OSError):
                os.remove(folder / f"{key}.{ext}")

    removed = _remove_least_recent([(when, size, key) for key, (size, when) in entries.items()], total, limit_bytes,
                                   remove)
    log.info("feature cache %s: %d least recently used entries removed (limit %.3g GB, "
             "$LATENTBRIDGE_CACHE_MAX_GB)", folder, removed, limit_bytes / 1e9)
    return removed


def _remove_least_recent(entries: list[tuple[float, int, object]], total: int, limit_bytes: float, remove) -> int:
    """``remove`` the least recently used of ``entries`` (time, size, what ``remove`` takes) until the ``total`` size
    is at most 90 % of ``limit_bytes``; how many went."""
    removed = 0
    for _, size, entry in sorted(entries, key=lambda e: e[0]):
        if total <= 0.9 * limit_bytes:
            break
        remove(entry)
        total -= size
        removed += 1
    return removed


def digit_set(key: str, names: tuple[str, ...], valid, compute, what: str) -> tuple:
    """The arrays ``names`` of the digit set ``key``: a folder of ``NAME.npy`` in the digit sets' cache
    (``digits/`` beside the feature cache), read back where ``valid(*arrays)`` and renewed as used, else ``compute()``d
    and written; a damaged set (a power loss: every later run stopped on it) is said and computed again, a set not
    written is said, and the sets are kept within the cache's limit (:func:`prune_sets`, read before the work: a bad
    limit is said before it). ``what``: the set's kind in those lines."""
    import shutil

    import numpy as np

    from latentbridge.utils import atomic_path

    folder, limit = cache_home() / "digits" / key, cache_limit_bytes()
    if all((folder / f"{n}.npy").exists() for n in names):
        try:
            arrays = tuple(np.load(folder / f"{n}.npy") for n in names)
            if valid(*arrays):
                with contextlib.suppress(OSError):  # used now: the last set the size limit removes
                    os.utime(folder)
                return arrays
        except (OSError, ValueError, EOFError):
            pass
        log.warning("%s cache %s: damaged, computed again", what, folder)
        shutil.rmtree(folder, ignore_errors=True)
    arrays = tuple(compute())
    try:
        with atomic_path(folder) as tmp:
            tmp.mkdir(parents=True)
            for name, array in zip(names, arrays):
                np.save(tmp / f"{name}.npy", array)
    except OSError as e:
        log.warning("%s cache %s not written: %s", what, folder, os_reason(e))
    prune_sets(folder.parent, limit, keep=folder)
    return arrays


def prune_sets(folder: Path, limit_bytes: float, keep: Path | None = None) -> int:
    """The digit sets' cache (``folder``: one sub-folder a set, named by its 16-hex key, renewed when used) kept
    under ``limit_bytes`` as :func:`prune_cache` keeps the features' (it grew by a set each seed and each edit of the
    data, and no limit held it): the least recently used sets removed down to 90 % of it, never ``keep`` (the set
    just used). How many went."""
    import shutil

    sets, total = [], 0
    with contextlib.suppress(OSError):
        for d in os.scandir(folder):
            if _ENTRY.fullmatch(d.name) and d.is_dir(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    size = sum(f.stat().st_size for f in os.scandir(d.path) if f.is_file(follow_symlinks=False))
                    sets.append((d.stat().st_mtime, size, Path(d.path)))
                    total += size
    if total <= limit_bytes:
        return 0
    removed = _remove_least_recent([s for s in sets if keep is None or s[2] != Path(keep)], total, limit_bytes,
                                   lambda path: shutil.rmtree(path, ignore_errors=True))
    if removed:
        log.info("digit set cache %s: %d least recently used sets removed (limit %.3g GB, $LATENTBRIDGE_CACHE_MAX_GB)",
                 folder, removed, limit_bytes / 1e9)
    return removed


def _warn_over_limit(folder: Path, needed: int, limit_bytes: float) -> None:
    """Say (once a process, for ``folder``) that one pass's entries, ``needed`` bytes, exceed the cache's limit."""
    import math

    from latentbridge.utils import first_time

    if needed > limit_bytes and first_time(("feature cache over its limit", str(folder))):
        gb = needed / 0.9 / 1e9  # pruning leaves 90 % of the limit
        step = 10.0 ** (math.floor(math.log10(gb)) - 1)  # rounded up to two significant digits
        log.warning("feature cache %s: the features of the files just read take %.3g GB, more than its limit of %.3g "
                    "GB ($LATENTBRIDGE_CACHE_MAX_GB): they never all stay cached, so every run computes most of them "
                    "again; LATENTBRIDGE_CACHE_MAX_GB=%g or more keeps them", folder, needed / 1e9,
                    limit_bytes / 1e9, math.ceil(round(gb / step, 6)) * step)
