"""Bridge vibration recordings + crack masks → paired multichannel windows and masks.

Data layout (``root``)::

    ROOT/Data/Test_XX/*.csv     accelerometer recordings (see latentbridge.io.vibration; MATLAB .mat
                                files too, latentbridge.io.matfile; audio files, each channel a sensor)
    ROOT/Labels/Test_XX/*.png   one crack mask per test (any size, any PNG colour type)

Pairing rules: :mod:`latentbridge.data.bridge_layout` (:func:`discover`).

Windows (:func:`build_windows`)
-------------------------------
* Each file of a test is one recording, windowed on its own (windows never span two files);
  every window of a test shares the test's mask. ``starts_s`` is relative to its file.
* With ``vibration.resample_to`` every recording is resampled with
  :func:`latentbridge.io.resample`. Afterwards every recording must have the same sample rate
  (within 0.01 %) and the same channel count; a mismatch is a DataError listing the tests and
  their values (channels are never dropped silently: pick common ones with
  ``vibration.channels``).
* Windows of ``window_s`` every ``hop_s`` (:func:`latentbridge.io.cut_windows` with
  ``pad="none"``: a trailing partial window is dropped; a recording shorter than one window is
  a DataError naming it).
* Spectrograms are not computed here: the multimodal model computes them from the windows
  (:class:`latentbridge.transforms.stft.STFT` with ``vibration.n_fft`` and
  ``vibration.hop_length``).

Cache
-----
``CACHE/<key>/`` holds ``masks.npy``, ``segments.npy`` (the wave windows), ``test_ids.npy``
(one per window), ``has_mask.npy``, ``starts_s.npy``, ``sources.npy`` and ``manifest.json``, which keeps the
warnings said while the windows were built (masks inverted, empty, stretched or shrunk away; sensor columns
reordered, dead or at other rates): a cache hit says them again. ``key`` is
:func:`latentbridge.utils.stable_hash` of the manifest inputs: the vibration config, the resolved root, every CSV/PNG's relative path
and :func:`~latentbridge.utils.file_stamp` (size, modification and status change times, inode), and the code version (package version + cache format version) — so a changed file or parameter never reuses a stale
cache. The folder is written under a temporary name and renamed. Default ``CACHE``:
``cache_home() / "bridge"`` (beside the feature cache, or inside ``$LATENTBRIDGE_CACHE``, as the digit classifiers are).
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from latentbridge.errors import ConfigError, DataError, os_reason
from latentbridge.io import cut_windows, level_dbfs, resample
from latentbridge.io.resampling import energy_above
from latentbridge.io.audio import MAX_SAMPLE, is_table, too_large
from latentbridge.data.bridge_layout import TestRecord, _warn_once, discover, mask_labels_size, read_masks
from latentbridge.data.bridge_columns import ChannelOrder
from latentbridge.data.survey import CLIPPED_SHARE
from latentbridge.data.bridge_rates import RATE_RTOL, check_rate, removed_warning, report_rates, training_rate_text
from latentbridge.io.columns import model_order
from latentbridge.io.matfile import read_mat_vibration
from latentbridge.io.notes import file_note, reading_set
from latentbridge.io.vibration import read_audio_vibration, read_vibration_csv
from latentbridge.utils import atomic_path, file_stamp, first_time, listed, stable_hash, warnings_said

log = logging.getLogger(__name__)

__all__ = ["TestRecord", "BridgeData", "discover", "build_windows", "default_bridge_cache_dir", "mask_labels_size",
           "CACHE_VERSION"]

#: Bump when the cached arrays change meaning.
CACHE_VERSION = 8  # 2: soxr resampling (io.resample) instead of resample_poly; 3: no spectrograms.npy;
# 4: sensor columns matched by their header names across files (ChannelOrder); 5: their names kept (channel_names);
# 6: the build's warnings kept (said again on a cache hit); 7: the columns most recordings name as the reference
# (the first recording's before), each channel's constant offset taken out; 8: vibration.channels read by name
_CACHE_FILES = ("masks", "segments", "test_ids", "has_mask", "starts_s", "sources")


def default_bridge_cache_dir() -> Path:
    from latentbridge.data.feature_cache import cache_home

    return cache_home() / "bridge"


# --------------------------------------------------------------------------- the data set


@dataclass
class BridgeData:
    """Every window of every test, with its mask."""

    waves: np.ndarray  # (N, C, T) float32 windows
    masks: np.ndarray  # (N, 1, H, W) float32 in {0, 1}; zeros where has_mask is False
    has_mask: np.ndarray  # (N,) bool
    extent: np.ndarray  # (N,) float32 mask mean; NaN where no mask
    test_index: np.ndarray  # (N,) int64 index into tests
    starts_s: np.ndarray  # (N,) float64 window start in its CSV, seconds
    tests: list[str]
    sample_rate: float
    sources: np.ndarray | None = None  # (N,) str: the window's CSV, relative to the data root
    cache_path: Path | None = field(default=None, compare=False)
    channel_names: list[str] | None = None  # the sensor columns' header names, in the order of the channels

    def __len__(self) -> int:
        return int(self.waves.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.waves.shape[1])

    @property
    def window_samples(self) -> int:
        return int(self.waves.shape[-1])

    @property
    def window_s(self) -> float:
        return self.window_samples / self.sample_rate

    @property
    def test_ids(self) -> np.ndarray:
        """(N,) test id of every window."""
        return np.asarray(self.tests, dtype=str)[self.test_index] if len(self) else np.zeros(0, dtype=str)

    def test_has_mask(self) -> np.ndarray:
        """(n_tests,) bool: whether each test is labelled."""
        out = np.zeros(len(self.tests), dtype=bool)
        out[self.test_index[self.has_mask]] = True
        return out

    def test_extent(self) -> np.ndarray:
        """(n_tests,) mask mean of each test (NaN when unlabeled)."""
        out = np.full(len(self.tests), np.nan, dtype=np.float64)
        for i in range(len(self.tests)):
            sel = (self.test_index == i) & self.has_mask
            if sel.any():
                out[i] = float(np.mean(self.extent[sel]))
        return out

    def _index_of(self, test) -> int:
        if isinstance(test, (int, np.integer)) and not isinstance(test, bool):
            if not 0 <= int(test) < len(self.tests):
                raise ValueError(f"test index {test} out of range (0..{len(self.tests) - 1})")
            return int(test)
        try:
            return self.tests.index(str(test))
        except ValueError:
            raise ValueError(f"unknown test {test!r}; known tests: {', '.join(self.tests)}") from None

    def subset_tests(self, test_ids) -> "BridgeData":
        """The windows of the given tests (ids or indices), renumbered in the given order."""
        idx = [self._index_of(t) for t in test_ids]
        if len(set(idx)) != len(idx):
            raise ValueError(f"subset_tests: a test is listed twice in {list(test_ids)}")
        remap = np.full(len(self.tests), -1, dtype=np.int64)
        remap[idx] = np.arange(len(idx))
        sel = np.flatnonzero(remap[self.test_index] >= 0)
        new_index = remap[self.test_index[sel]]
        order = sel[np.argsort(new_index, kind="stable")]

        def take(a):
            return None if a is None else a[order]

        return BridgeData(
            waves=self.waves[order], masks=self.masks[order], has_mask=self.has_mask[order],
            extent=self.extent[order], test_index=remap[self.test_index[order]], starts_s=self.starts_s[order],
            tests=[self.tests[i] for i in idx], sample_rate=self.sample_rate,
            sources=take(self.sources), cache_path=self.cache_path, channel_names=self.channel_names,
        )

    def split(self, test_fraction: float, seed: int, test_ids=None, held_for: str = "evaluation"
              ) -> tuple["BridgeData", "BridgeData"]:
        """Hold out whole tests (damage states) for ``held_for`` (said where none is): return ``(train, test)``.

        With ``test_ids`` those tests are held out (they must be labelled). Otherwise ``round(test_fraction *
        n_labelled)`` labelled tests (at least 1 when the fraction is positive and there are 2 or more labelled tests;
        never all of them) are drawn with ``seed``, stratified so that healthy (extent 0) and damaged labelled tests
        both land on each side when there are enough of each. Unlabeled tests always go to train."""
        labelled = self.test_has_mask()
        if test_ids is not None:
            try:
                held = [self._index_of(t) for t in test_ids]
            except ValueError as e:
                raise ConfigError(f"data.test_ids: {e}") from None
            if len(set(held)) != len(held):
                raise ConfigError(f"data.test_ids: a test is listed twice in {list(test_ids)}")
            unl = [self.tests[i] for i in held if not labelled[i]]
            if unl:
                raise ConfigError(f"data.test_ids: {', '.join(unl)} ha{'ve' if len(unl) > 1 else 's'} no mask; "
                                  "unlabeled tests can only be used for training")
        else:
            if not 0.0 <= test_fraction < 1.0:
                raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction!r}")
            held = _stratified_pick(self.test_extent(), labelled, test_fraction, seed)
            if test_fraction > 0 and not held:
                log.warning("only %d labelled test(s)%s: nothing held out for %s", int(labelled.sum()),
                            "" if held_for == "evaluation" else " left", held_for)
        held_set = set(held)
        train = [i for i in range(len(self.tests)) if i not in held_set]
        return self.subset_tests(train), self.subset_tests(sorted(held))


def _stratified_pick(extent: np.ndarray, labelled: np.ndarray, fraction: float, seed: int) -> list[int]:
    lab = np.flatnonzero(labelled)
    n_lab = lab.size
    if fraction <= 0 or n_lab < 2:
        return []
    n_test = min(n_lab - 1, max(1, int(round(fraction * n_lab))))
    healthy = [int(i) for i in lab if extent[i] == 0]
    damaged = [int(i) for i in lab if extent[i] != 0]
    nh, nd = len(healthy), len(damaged)
    best = None
    for kh in range(0, min(nh, n_test) + 1):
        kd = n_test - kh
        if kd > nd:
            continue
        # preferences: each stratum with >= 2 members on both sides; keep the proportions
        misses = 0
        for k, n in ((kh, nh), (kd, nd)):
            if n >= 2 and (k == 0 or k == n):
                misses += 1
            if n == 1 and k == 1:  # a lone member stays in train
                misses += 1
        score = (misses, abs(kh - n_test * nh / n_lab))
        if best is None or score < best[0]:
            best = (score, kh, kd)
    _, kh, kd = best
    rng = np.random.default_rng(seed)
    pick = list(rng.permutation(healthy)[:kh]) + list(rng.permutation(damaged)[:kd])
    return sorted(int(i) for i in pick)


# --------------------------------------------------------------------------- building


#: what to do with a folder's recordings at several rates: training resamples them, a trained model's commands cannot
#: (evaluate takes no -o; its model reads one rate)
MIXED_RATES_HINT = ("; set vibration.resample_to to train on them (a trained model reads its recordings at the rate "
                    "it was trained at, or resamples them where it was trained with vibration.resample_to: resample "
                    "these to one rate)")


def _fmt_groups(values: dict[str, object]) -> str:
    groups: dict[object, list[str]] = {}
    for t, v in values.items():
        groups.setdefault(v, []).append(t)
    return "; ".join(f"{v}: {', '.join(ts)}" for v, ts in groups.items())


def _manifest_inputs(root: Path, records: list[TestRecord], vib, pick_names: list[str] | None = None,
                     fallback_rate: float | None = None, model_columns: list[str] | None = None) -> dict:
    files = []
    for r in records:
        for p in r.csv_files + ([r.mask_file] if r.mask_file is not None else []):
            files.append({"test": r.test_id, "path": p.relative_to(root).as_posix(), **file_stamp(p)})
    return {"format": "latentbridge-bridge-windows", "code_version": _code_version(),
            "vibration": vib.model_dump(mode="json"), "root": str(root), "files": files,
            **({"pick_names": list(pick_names)} if pick_names else {}),
            **({"fallback_rate": float(fallback_rate)} if fallback_rate else {}),
            **({"model_columns": list(model_columns)} if model_columns else {})}


def _load_cache(folder: Path, key: str) -> BridgeData | None:
    man_path = folder / "manifest.json"
    if not man_path.is_file():
        return None
    try:
        man = json.loads(man_path.read_text(encoding="utf-8"))
        if man.get("key") != key:
            return None
        arr = {name: np.load(folder / f"{name}.npy", allow_pickle=False) for name in _CACHE_FILES}
        tests = list(man["tests"])
        float(man["sample_rate"])
    except (OSError, ValueError, KeyError, EOFError, TypeError, AttributeError) as e:  # EOFError: an empty .npy
        log.warning("bridge cache %s unreadable (%s); rebuilding", folder, str(e) or type(e).__name__)
        return None
    lookup = {t: i for i, t in enumerate(tests)}
    try:
        test_index = np.array([lookup[str(t)] for t in arr["test_ids"]], dtype=np.int64)
    except KeyError:
        return None
    for text in man.get("warnings", []):  # what the build said: a second train and every evaluate said nothing
        _warn_once("%s", text)
    return _assemble(arr["segments"], arr["masks"], arr["has_mask"], test_index, arr["starts_s"], tests,
                     float(man["sample_rate"]), arr["sources"], folder, man.get("channel_names"))


def _assemble(waves, masks, has_mask, test_index, starts_s, tests, sample_rate, sources, cache_path,
              channel_names=None) -> BridgeData:
    has_mask = np.asarray(has_mask, dtype=bool)
    extent = masks.reshape(len(masks), -1).mean(axis=1).astype(np.float32) if len(masks) else \
        np.zeros(0, dtype=np.float32)
    extent[~has_mask] = np.nan
    return BridgeData(waves=waves, masks=masks, has_mask=has_mask, extent=extent, test_index=test_index,
                      starts_s=np.asarray(starts_s, dtype=np.float64), tests=tests, sample_rate=sample_rate,
                      sources=sources, cache_path=cache_path, channel_names=channel_names)


@contextmanager
def _keeping_warnings():
    """Collect the warnings said while windows are built (the folder's checks, its masks, its recordings' reader: Unix
    time, a time read as a sensor): kept in the manifest, they are said again when the windows come from the cache."""
    with warnings_said() as said:
        yield said
    for text in said:
        first_time(("bridge data", text))  # said: not again from the cache in this process (_warn_once's key)


def read_recording(path: str | Path, vib, rates_read: dict | None = None,
                   names: list | None = None, pick_names: list[str] | None = None,
                   fallback_rate: float | None = None, rate_from: list | None = None,
                   removed: dict | None = None) -> tuple[np.ndarray, float]:
    """One vibration recording (a CSV, a .mat or an audio file:
    :func:`~latentbridge.io.vibration.read_audio_vibration`) as the model reads it: ``(wave (C, T) float32, rate)``
    with the config's ``sample_rate`` (for CSVs without a time column) and ``channels``, resampled to ``resample_to``
    when set (``vib``: a :class:`~latentbridge.config.sections.VibrationConfig`);
    ``rates_read`` collects the file's own rate (path → Hz), ``names`` a CSV header's channel names (a .mat file's
    channels' names);
    ``pick_names``: a trained model's sensor columns, taken by name where the header names them (``channels``,
    positions among the training recordings' columns, are other sensors in another logger's order);
    ``fallback_rate``: the rate of a file that gives none (a trained model's training rate for new recordings; one a
    file gives wins), ``rate_from`` getting where a CSV's rate came from
    (:func:`~latentbridge.io.read_vibration_csv`)."""
    if Path(path).suffix.lower() == ".mat":
        wave, sr = read_mat_vibration(path, sample_rate=vib.sample_rate, channels=vib.channels, names=names,
                                      pick_names=pick_names, fallback_rate=fallback_rate)
    elif not is_table(Path(path)):  # an audio file: each channel a sensor, the rate its header's
        wave, sr = read_audio_vibration(path, vib.sample_rate, vib.channels, stats := {})
        if (clipped := stats.get("clipped_share") or 0.0) >= CLIPPED_SHARE:  # (full scale known: a saturated recorder)
            file_note(log, ("clipped vibration",), Path(path), f"{100 * clipped:.2g}% of its samples lie on plateaus "
                      "at full scale: the recorder or sensor saturated (clipping), its vibration cut off there")
        if rate_from is not None:
            rate_from.append("header")
    else:
        wave, sr = read_vibration_csv(path, sample_rate=vib.sample_rate, channels=vib.channels, names=names,
                                      pick_names=pick_names, fallback_rate=fallback_rate, rate_from=rate_from)
    check_rate(sr, vib, path)
    if rates_read is not None:
        rates_read[Path(path)] = float(sr)
    # each channel's constant offset (a DC-coupled accelerometer's gravity, a bias) is no vibration: it rang through
    # the resampler into the first and last windows (std 0.153 for 0.017); taken out as the anomaly path's reader does
    wave = (wave - wave.mean(axis=1, keepdims=True, dtype=np.float64)).astype(np.float32)
    if not (peak := float(np.abs(wave).max(initial=0.0))) <= MAX_SAMPLE:  # NaN predictions: a 500, a traceback
        raise too_large(path, peak)
    if vib.resample_to is not None:
        if removed is not None and vib.resample_to < sr:  # (path -> each channel's energy resampling removes, and all)
            removed[Path(path)] = energy_above(wave, sr, vib.resample_to / 2)
        wave, sr = resample(wave, sr, float(vib.resample_to)), float(vib.resample_to)
    return wave, float(sr)


#: the spread of a folder's recording levels from which they are named as other units or gains (a damage state's
#: own vibration moves its level by a few dB; g for m/s² is 20 dB, milli-g 40 dB)
LEVEL_SPREAD_DB = 30.0


def _level_spread(waves: dict, root: Path) -> None:
    """Warn where a folder's recordings (``waves``: test -> [(path, wave)]) span :data:`LEVEL_SPREAD_DB` or more in
    RMS level: CSVs in m/s² beside WAVs at full scale trained on a 34-dB gap without a word, the unit telling the
    damage states apart."""
    levels = {p: level_dbfs(w) for per_file in waves.values() for p, w in per_file if w.size}
    if len(levels) < 2 or max(levels.values()) - min(levels.values()) < LEVEL_SPREAD_DB:
        return
    low, high = min(levels, key=levels.get), max(levels, key=levels.get)
    _warn_once("%s: the recordings' RMS levels span %.0f dB (%s at %.1f dB to %s at %.1f dB): recordings in other "
               "units or at another gain (g for m/s² is 20 dB, milli-g 40 dB; a WAV at full scale beside CSVs in "
               "m/s²)? A model reads the level as part of what tells the damage states apart; convert them to one unit",
               root, levels[high] - levels[low], low.relative_to(root).as_posix(), levels[low],
               high.relative_to(root).as_posix(), levels[high])


def _short_recordings(waves: dict, window: int, sr: float, window_s: float, root: Path) -> set[Path]:
    """The recordings (of ``waves``: test → [(path, wave)]) shorter than one window, left out with one warning naming
    them (one stray short file stopped the whole training, and only the first was named); DataError naming the tests
    none of whose recordings holds a window."""
    short = {p: w.shape[-1] / sr for per_file in waves.values() for p, w in per_file if w.shape[-1] < window}
    if empty := [t for t, per_file in waves.items() if all(p in short for p, _ in per_file)]:
        raise DataError(root / "Data" / empty[0], f"every recording of the test is shorter than one {window_s:g}-s "
                        f"window (vibration.window_s; the longest {max(short[p] for p, _ in waves[empty[0]]):.4g} s)"
                        + (f", as are those of {listed(empty[1:], 4)}" if len(empty) > 1 else "") + ": give longer "
                        "recordings, or shorter windows (-o vibration.window_s=... -o vibration.hop_s=...)")
    if short:
        _warn_once("%s: %s shorter than one %g-s window (vibration.window_s) left out: %s", root,
                   f"{len(short)} recording(s)", window_s,
                   listed([f"{p.relative_to(root).as_posix()} ({d:.3g} s)" for p, d in short.items()], 5))
    return set(short)


def recording_windows(wave: np.ndarray, sample_rate: float, window_s: float, hop_s: float,
                      name: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Windows ``(n, C, window)`` float32 and their starts in seconds of one recording ``(C, T)``:
    a trailing partial window is dropped; a recording shorter than one window is a DataError
    naming ``name``."""
    sr = float(sample_rate)
    window = int(round(window_s * sr))
    hop = max(1, int(round(hop_s * sr)))
    if wave.shape[-1] < window:
        raise DataError(name, f"recording too short: {wave.shape[-1] / sr:.4g} s ({wave.shape[-1]} samples at "
                              f"{sr:g} Hz); one window (vibration.window_s = {window_s:g} s) needs "
                              f"{window} samples")
    segs, starts = cut_windows(wave, window, hop, pad="none", name=name)
    return segs.astype(np.float32, copy=False), starts.astype(np.float64) / sr


def folder_files(root, tests=None) -> list[Path]:
    """Every recording and mask file a bridge folder holds (:func:`discover`), or those of ``tests`` (ids): what a
    training run records of its data, so that a resume over a folder whose files changed is refused
    (:func:`latentbridge.data.run_record.check_same_data`), and of the states it held out."""
    return [p for r in discover(Path(root).resolve()) if tests is None or r.test_id in tests  # (warned once)
            for p in r.csv_files + ([r.mask_file] if r.mask_file is not None else [])]


def full_size_scores(data: BridgeData, prob, labelled, root, vib, threshold: float) -> dict:
    """:func:`~latentbridge.metrics.segmentation.full_size_ious` of ``prob``, the crack probabilities of ``data``'s
    ``labelled`` windows, against their states' masks in ``root`` as drawn (not shrunk to the model's grid);
    {} where a state's mask is not in ``root``."""
    from latentbridge.data.bridge_layout import labels_at_full_size
    from latentbridge.metrics.segmentation import full_size_ious

    ids = data.test_ids[np.asarray(labelled, bool)]
    order = np.argsort(ids, kind="stable")  # a state's windows together: its mask read once
    full = labels_at_full_size(root, list(ids[order]), vib.mask_threshold)
    return {} if full is None else full_size_ious(np.asarray(prob)[order], full, threshold)


def full_size_examples(data: BridgeData, windows, prob, root, vib) -> dict:
    """For a report: ``masks_full``, the masks as drawn of ``data``'s ``windows`` (indices), and ``mask_prob_full``,
    their crack probabilities ``prob`` (n, 1, h, w) brought to that size (bilinear); {} where a state's mask is not
    in ``root``."""
    from latentbridge.data.bridge_layout import labels_at_full_size
    from latentbridge.io.masks import upsample_mask

    full = labels_at_full_size(root, list(data.test_ids[np.asarray(windows)]), vib.mask_threshold)
    if full is None:
        return {}
    full, p = list(full), np.asarray(prob, dtype=np.float32)
    return {"masks_full": full, "mask_prob_full": [upsample_mask(pi, t.shape, 0.5)[0]
                                                   for pi, t in zip(p.reshape(len(p), *p.shape[-2:]), full)]}


def model_picks(vib, channel_names: list[str] | None) -> list[str] | None:
    """The columns a trained model of some sensors (``vibration.channels``) reads by name (:func:`read_recording`'s
    ``pick_names``): its ``channel_names`` where it picked some, else None (every column, matched by
    :class:`~latentbridge.data.bridge_columns.ChannelOrder`)."""
    chosen = vib.get("channels") if isinstance(vib, dict) else getattr(vib, "channels", None)
    return list(channel_names) if channel_names and chosen is not None else None


def build_windows(root: str | Path, vib_cfg=None, cache_dir: str | Path | None = None,
                  use_cache: bool = True, channel_names: list[str] | None = None,
                  fallback_rate: float | None = None) -> BridgeData:
    """Read and window every test under ``root``, with its mask; cached (see the module docstring).

    ``vib_cfg`` is a :class:`latentbridge.config.VibrationConfig` (None: its defaults). ``channel_names``: the sensor
    columns a model was trained on, in its order: recordings that name the same columns in another order are read
    in the model's (:func:`latentbridge.io.columns.model_order`). ``fallback_rate``: the rate of recordings that give
    none (a trained model's training rate for another folder's), named in a warning where used.
    """
    # a model of some sensor columns (vibration.channels) reads them by name: positions in another logger's order
    # are other sensors
    data = _build_windows(root, vib_cfg, cache_dir, use_cache, model_picks(vib_cfg, channel_names), fallback_rate,
                          channel_names)
    idx = model_order(data.channel_names, channel_names, Path(root))
    if idx is not None:
        data.waves, data.channel_names = data.waves[:, idx], list(channel_names)
    return data


def _build_windows(root, vib_cfg, cache_dir, use_cache, pick_names: list[str] | None = None,
                   fallback_rate: float | None = None, model_columns: list[str] | None = None) -> BridgeData:
    from latentbridge.config.sections import VibrationConfig

    vib = VibrationConfig() if vib_cfg is None else vib_cfg
    if isinstance(vib, dict):
        vib = VibrationConfig.model_validate(vib)
    root = Path(root).resolve()
    records = discover(root)
    inputs = _manifest_inputs(root, records, vib, pick_names, fallback_rate, model_columns)
    key = stable_hash(inputs)
    cache_root = Path(cache_dir) if cache_dir is not None else default_bridge_cache_dir()
    folder = cache_root / key
    if use_cache:
        cached = _load_cache(folder, key)
        if cached is not None:
            log.info("bridge windows from cache %s", folder)
            return cached

    with _keeping_warnings() as said, reading_set(root):  # the reader's notes: once for the set, not once per test
        # --- read every recording
        waves: dict[str, list[tuple[Path, np.ndarray]]] = {}
        rates: dict[str, float] = {}
        counts: dict[str, int] = {}
        own: dict[Path, float] = {}
        # vibration.channels of a training: positions among the columns most recordings name, read by name
        positions = None if vib.channels is None or pick_names else list(vib.channels)
        read_vib = vib if positions is None else vib.model_copy(update={"channels": None})
        order = ChannelOrder(model_columns, whole=not pick_names, positions=positions)
        rate_from: list[str] = []
        removed: dict[Path, float] = {}
        for r in records:
            per_file = []
            for p in r.csv_files:
                names: list[str] = []
                wave, sr = read_recording(p, read_vib, own, names, pick_names, fallback_rate, rate_from, removed)
                per_file.append((p, wave, sr))
                order.note(p, names)
            srs = {p.name: s for p, _, s in per_file}
            ref = per_file[0][2]
            if any(abs(s - ref) > RATE_RTOL * ref for s in srs.values()):
                raise DataError(root / "Data" / r.test_id, "recordings of one test have different sample rates (Hz): "
                                + _fmt_groups({k: f"{v:g}" for k, v in srs.items()}) + MIXED_RATES_HINT)
            waves[r.test_id] = [(p, w) for p, w, _ in per_file]
            rates[r.test_id] = ref
        ref_rate = next(iter(rates.values()))
        if any(abs(s - ref_rate) > RATE_RTOL * ref_rate for s in rates.values()):
            raise DataError(root, "tests have different sample rates (Hz: tests): "
                            + _fmt_groups({k: f"{v:g}" for k, v in rates.items()}) + MIXED_RATES_HINT)
        sr = float(ref_rate)
        report_rates(own, sr, root)
        if n := rate_from.count("fallback"):
            _warn_once("%s", training_rate_text(root, n, len(own), fallback_rate))
        order.settle()  # the channels matched by name (columns in another order, or more of them, aligned)
        for test_id, per_file in waves.items():
            waves[test_id] = [(p, order.align(p, w)) for p, w in per_file]
            ch = {p.name: w.shape[0] for p, w in waves[test_id]}
            if len(set(ch.values())) > 1:
                raise DataError(root / "Data" / test_id, "recordings of one test have different channel counts: "
                                + _fmt_groups(ch))
            counts[test_id] = waves[test_id][0][1].shape[0]
            for p, w in waves[test_id]:
                order.flat(p, w)
        removed_warning({p: order.picked_share(p, *e) for p, e in removed.items()}, own, vib, root)
        _level_spread(waves, root)
        if len(set(counts.values())) > 1:
            raise DataError(root, "tests have different channel counts (channels: tests): " + _fmt_groups(counts)
                            + "; pick common sensor columns with -o vibration.channels=[...] when training (a trained "
                              "model reads the columns it was trained on)")
        order.report(root)
        window = int(round(vib.window_s * sr))
        hop = max(1, int(round(vib.hop_s * sr)))
        if window < 2:
            raise ConfigError(f"vibration.window_s ({vib.window_s} s) is less than 2 samples at {sr:g} Hz")
        if vib.n_fft > window:
            raise ConfigError(f"vibration.n_fft ({vib.n_fft}) is longer than one window "
                              f"(vibration.window_s x {sr:g} Hz = {window} samples)")

        # --- windows and masks
        seg_list, idx_list, start_list, src_list = [], [], [], []
        short = _short_recordings(waves, window, sr, vib.window_s, root)
        for ti, r in enumerate(records):
            for p, w in waves[r.test_id]:
                if p in short:
                    continue
                segs, starts_s_ = recording_windows(w, sr, vib.window_s, vib.hop_s, p)
                seg_list.append(segs)
                idx_list.append(np.full(len(segs), ti, dtype=np.int64))
                start_list.append(starts_s_)
                src_list.append(np.full(len(segs), p.relative_to(root).as_posix()))
            waves[r.test_id] = []  # free the recordings as we go
        segments = np.concatenate(seg_list, axis=0)
        del seg_list
        test_index = np.concatenate(idx_list)
        starts_s = np.concatenate(start_list)
        sources = np.concatenate(src_list).astype(str)

        test_masks, test_has = read_masks(root, records, vib)
        masks = test_masks[test_index]
        has_mask = test_has[test_index]
        tests = [r.test_id for r in records]
        test_ids = np.asarray(tests, dtype=str)[test_index]

        data = _assemble(segments, masks, has_mask, test_index, starts_s, tests, sr, sources, None,
                         None if order.ref is None else list(order.ref[1]))

    if use_cache:
        arrays = {"masks": masks, "segments": segments, "test_ids": test_ids,
                  "has_mask": has_mask, "starts_s": starts_s, "sources": sources}
        manifest = {
            "key": key, "inputs": inputs, "sample_rate": sr, "window_samples": window, "hop_samples": hop,
            "tests": tests, "labelled_tests": [t for t, h in zip(tests, test_has) if h],
            "channel_names": data.channel_names, "warnings": said,
            "n_windows": int(len(segments)), "shapes": {k: list(v.shape) for k, v in arrays.items()},
            "code_version": _code_version(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        try:
            cache_root.mkdir(parents=True, exist_ok=True)
            with atomic_path(folder) as tmp:
                tmp.mkdir()
                for name, a in arrays.items():
                    with open(tmp / f"{name}.npy", "wb") as f:
                        np.save(f, a, allow_pickle=False)
                (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            data.cache_path = folder
        except OSError as e:  # a read-only cache must not stop the work
            log.warning("bridge cache %s not written: %s", folder, os_reason(e))
    return data


def _code_version() -> str:
    from latentbridge import __version__

    return f"{__version__}+bridge{CACHE_VERSION}"
