"""Windows of recordings held out for validation (and an anomaly model's calibration): whole files holding about
``data.val_fraction`` of the windows, or, where whole files cannot (one recording, or a few long ones: two files held
out half the windows), the last part of each recording in time, the windows crossing the cut left out of both."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from latentbridge.data.audio import WindowFeatures

log = logging.getLogger(__name__)

#: whole files are held out while they hold within this factor of ``val_fraction`` of the windows (either way)
SHARE_FACTOR = 2.0
#: and while at least this many are held out, or they are short (under :data:`LONG_WINDOWS` windows each: about 20 s
#: at 1-s hops): fewer long recordings (one of two days'; two of ten 30-s ones) leave what they hold, a condition of
#: the machine, out of the training (a day at another load held out whole: its normal windows at 11 times the other
#: day's scores set the threshold); the last part of each recording in time is held out instead
MIN_HELD_FILES, LONG_WINDOWS = 3, 20


def split_files(n_files: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of file indices into (train, val); val is empty when there is too little data."""
    if n_files < 2 or val_fraction <= 0:
        return np.arange(n_files), np.arange(0)
    n_val = min(n_files - 1, max(1, int(round(val_fraction * n_files))))
    perm = np.random.default_rng(seed).permutation(n_files)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _within(held: float, target: float) -> bool:
    return target / SHARE_FACTOR <= held <= SHARE_FACTOR * target


def _few_long(held: np.ndarray) -> bool:
    """Whether files of these window counts, held out whole, are a few long recordings (:data:`MIN_HELD_FILES`)."""
    return len(held) < MIN_HELD_FILES and float(np.mean(held)) >= LONG_WINDOWS


def balanced_split(windows: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`split_files` of files holding ``windows`` windows each, unless its validation files hold less than half
    or more than twice ``val_fraction`` of the windows (one long recording among clips took 63 of 94 windows at a
    fraction of 0.1): then the files are taken in the same seeded order, each only while the validation windows stay
    within the fraction (at least the smallest file) and the count (all ten 3-s clips beside a 10-min recording were
    held out: their condition of the machine unseen, its faults missed)."""
    windows = np.asarray(windows)
    tr, va = split_files(len(windows), val_fraction, seed)
    total, target = int(windows.sum()), val_fraction * float(windows.sum())
    if not len(va) or _within(windows[va].sum(), target):
        return tr, va
    val, held = [], 0
    for i in np.random.default_rng(seed).permutation(len(windows)):
        if held + windows[i] <= target and len(val) < len(va):
            val.append(int(i))
            held += int(windows[i])
    if not val:
        val = [int(np.argmin(windows))]
    log.info("validation: %d of %d files, %d of %d windows (the files differ in length)", len(val), len(windows),
             int(windows[val].sum()), total)
    va = np.sort(np.asarray(val))
    return np.setdiff1d(np.arange(len(windows)), va), va


def time_split(wf: WindowFeatures, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) masks of ``wf``'s windows: the last ``val_fraction`` of each file's windows in time held out
    (rounded; none of a file with too few), and the windows that begin before a file's cut but end after it left out
    of both (windows overlap: such a window shares samples with the held-out ones)."""
    train, val = np.zeros(len(wf), dtype=bool), np.zeros(len(wf), dtype=bool)
    for i in range(len(wf.files)):
        idx = np.flatnonzero(wf.file_index == i)
        n_val = int(round(val_fraction * len(idx)))
        if n_val == 0 or n_val >= len(idx):
            train[idx] = True
            continue
        idx = idx[np.argsort(wf.starts_s[idx], kind="stable")]
        val[idx[-n_val:]] = True
        cut = wf.starts_s[idx[-n_val]]
        before = idx[:-n_val]
        train[before[wf.starts_s[before] + wf.window_s <= cut + 1e-9]] = True
    return train, val


def split_train_val(wf: WindowFeatures, val_fraction: float, seed: int) -> tuple[WindowFeatures, WindowFeatures]:
    """Hold out whole files (windows overlap, so a window split would leak) holding about ``val_fraction`` of the
    windows (:func:`balanced_split`). Where they hold less than half or more than twice it (a few long recordings:
    one of two equal files is half the windows), where a few long ones would be held out (:data:`MIN_HELD_FILES`: one
    day of two held out whole) and with one file, hold out the last part of each file in time
    (:func:`time_split`). Whole files held out leave the two sets' ``files`` apart; a split in time gives both every
    file (:func:`held_out_record`)."""
    counts = np.bincount(wf.file_index, minlength=len(wf.files))
    target = val_fraction * len(wf)
    if len(wf.files) >= 2:
        tr, va = balanced_split(counts, val_fraction, seed)
        if not len(va) or _within(counts[va].sum(), target) and not _few_long(counts[va]):
            return _in_place(wf, np.isin(wf.file_index, tr), np.isin(wf.file_index, va),
                             lambda w, *_: (w.subset_files(tr), w.subset_files(va)))
    train, val = time_split(wf, val_fraction)
    if not val.any():
        if len(wf.files) >= 2:  # every file too short to cut: the whole files after all
            return _in_place(wf, np.isin(wf.file_index, tr), np.isin(wf.file_index, va),
                             lambda w, *_: (w.subset_files(tr), w.subset_files(va)))
        return wf, wf.subset_windows(val)
    if len(wf.files) >= 2 and not _within(counts[va].sum(), target):
        log.warning("validation: whole files would hold %.0f %% of the windows (%d of %d files), far from "
                    "data.val_fraction %g: the last %.0f %% of each recording in time is held out instead (%d of %d "
                    "windows; %d crossing the cuts left out of both)", 100 * counts[va].sum() / len(wf), len(va),
                    len(wf.files), val_fraction, 100 * val_fraction, int(val.sum()), len(wf),
                    int(len(wf) - train.sum() - val.sum()))
    elif len(wf.files) >= 2:  # (few recordings: what one holds is not left out of the training)
        log.info("validation: the last %.0f %% of each of the %d recordings in time (%d of %d windows; %d crossing the "
                 "cuts left out of both), not %d whole one(s): each recording's condition is trained on",
                 100 * val_fraction, len(wf.files), int(val.sum()), len(wf), int(len(wf) - train.sum() - val.sum()),
                 len(va))
    return _in_place(wf, train, val, lambda w, t, v: (w.subset_windows(t), w.subset_windows(v)))


def _in_place(wf: WindowFeatures, train: np.ndarray, val: np.ndarray, subsets) -> tuple[WindowFeatures, WindowFeatures]:
    """``subsets(wf, train, val)`` (the two sets of the windows of masks ``train`` and ``val``) with their features
    views of ``wf``'s, not copies of them (the split held every window's features twice at its peak: 173 MB more for
    two hours of 48-kHz audio): ``wf``'s windows are put in place in the order train, validation, the rest (each in
    its own order), and ``subsets`` takes its sets of that order (masks of the first and next windows). ``wf`` keeps
    every window, in that order."""
    features = wf.features
    if not features.flags.writeable or features.ndim < 2:  # (a memory map: copies, as before)
        return subsets(wf, train, val)
    order = np.concatenate([np.flatnonzero(train), np.flatnonzero(val), np.flatnonzero(~(train | val))])
    permute_rows(features, order)
    wf.file_index, wf.starts_s = wf.file_index[order], wf.starts_s[order]
    wf.silent = None if wf.silent is None else wf.silent[order]
    n_train, n_val = int(train.sum()), int(val.sum())
    wf.features = features[:, :0]  # the sets' small arrays taken as before, their features given as views
    at = np.arange(len(order))
    try:
        a, b = subsets(wf, at < n_train, (at >= n_train) & (at < n_train + n_val))
    finally:
        wf.features = features
    a.features, b.features = features[:n_train], features[n_train:n_train + n_val]
    return a, b


def permute_rows(a: np.ndarray, order: np.ndarray) -> None:
    """``a[:] = a[order]`` in place, one row at a time (``order`` a permutation): no copy of ``a``."""
    seen = np.zeros(len(order), dtype=bool)
    for start in range(len(order)):
        if seen[start] or order[start] == start:
            seen[start] = True
            continue
        held, j = a[start].copy(), start
        while True:
            seen[j] = True
            k = int(order[j])
            if k == start:
                a[j] = held
                break
            a[j] = a[k]
            j = k


def held_out_record(train: WindowFeatures, val: WindowFeatures) -> dict:
    """What a run records of its held-out windows (:func:`split_train_val`): ``n_train_files`` and ``n_val_files``
    (those giving windows), ``val_files`` (the files giving held-out windows), ``held_out`` (the files held out
    whole: none in a split in time), ``val_split`` ("files" or "time"), and for a split in time ``val_from_s``: where
    each of ``val_files``' held-out part begins (s)."""
    val_ids = np.unique(val.file_index)
    val_files = [str(val.files[i]) for i in val_ids]
    in_time = bool(set(map(str, train.files)) & set(val_files))
    record = {"n_train_files": int(len(np.unique(train.file_index))), "n_val_files": int(len(val_ids)),
              "val_files": val_files, "held_out": [] if in_time else val_files,
              "val_split": "time" if in_time else "files"}
    if in_time:
        record["val_from_s"] = [round(float(val.starts_s[val.file_index == i].min()), 6) for i in val_ids]
    return record


def copied_windows(windows: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(len(windows),) True where a window's features equal one of ``reference``'s to the bit: held-out windows of a
    recording also among the training ones under another name (a byte copy), which a model scores as what it was
    fitted on; windows of digital silence, one value in every frame, are alike in every recording and not copies."""
    import hashlib

    def digests(a):
        return [hashlib.blake2b(np.ascontiguousarray(a[i]).tobytes(), digest_size=16).digest() for i in range(len(a))]

    from latentbridge.data.silence import silent_frame_shares

    if not len(windows) or not len(reference) or windows.shape[1:] != reference.shape[1:]:
        return np.zeros(len(windows), dtype=bool)
    seen = set(digests(reference))  # (windows of digital silence are alike in every recording: no copies)
    return np.array([d in seen for d in digests(windows)], dtype=bool) & (silent_frame_shares(windows) < 1)
