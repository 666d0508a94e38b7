"""Audio folders → fixed-size windows → spectrogram features, cached as ``.npy``.

Files are read one by one (I/O), but the transform runs on batches of windows gathered across files. Each file's
features are cached under a key made of the transform parameters, the windowing parameters and the file's path, size
and modification time, so a changed file or a changed parameter never reuses a stale cache.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from latentbridge.data.blocks import block_windows, features_in_blocks, read_in_blocks
from latentbridge.data.feature_cache import (cache_limit_bytes, check_before_workers, default_cache_dir, not_written,
                                             prune_cache)
from latentbridge.data.silence import live_channels, silent_channels, silent_frame_shares
from latentbridge.errors import DataError, named_problems
from latentbridge.io import (ALL_CHANNELS, MIN_WINDOW_SHARE, check_recording_length, cut_windows, level_dbfs,
                             list_audio_files, read_audio, trimmed)
from latentbridge.io.audio import rate_problem
from latentbridge.io.windows import TRIMMED, WindowView, shortest_recording
from latentbridge.transforms.numpy_stft import silence_tail
from latentbridge.utils import (atomic_path, batched, channel_counts, end_with_parent, file_stamp,
                               listed, progress_bar, seen_before, stable_hash)

log = logging.getLogger(__name__)

#: a recording with more windows than this is transformed from a view of its samples, batch by batch, instead of
#: holding all its windows (which overlap: twice the samples at the usual half-window hop)
LAZY_WINDOWS = 128
_NPY_HEADER = threading.Lock()

CACHE_VERSION = 10  # 2: a recording's last window ends on its last sample (io.windows); 3: frames reaching into a
# window's trailing digital silence are silence (numpy_stft.silence_tail); 4: the file's level; 5: audio loses each
# channel's offset (io.remove_dc); 6: the file's clipped share; 7: whether it was padded, windows' times where its lead
# was trimmed, WAV headers never finalised read whole, clipped plateaus entered by a step; 8: sound in digital silence,
# no window twice (a hop under half a window); 9: clipping of the samples as recorded (before the offset), levels;
# 10: a silent tail of zeros an offset was taken from


def default_workers() -> int:
    """Workers that decode and featurise files: one per core, at most 4 (none on one core): threads of the calling
    process in :meth:`FeatureExtractor.extract`, DataLoader worker processes when scoring (the calling process then
    runs the model on their results)."""
    cores = os.cpu_count() or 1
    return 0 if cores < 2 else min(4, cores)


def _one_thread(_worker_id: int) -> None:
    torch.set_num_threads(1)
    end_with_parent()


def _identity(x):
    return x


@dataclass
class FileFeatures:
    """One file's windows: features (n, C, F, T), start times, duration, whether it was padded to one
    window; or the ``problem`` that makes it unusable."""

    index: int
    features: np.ndarray | None = None
    starts_s: np.ndarray | None = None
    duration_s: float = 0.0
    padded: bool = False
    problem: str | None = None
    level_dbfs: float | None = None
    """RMS level of the samples read (the mono mix or the channel), dBFS; None from an older cache entry."""
    clipped_share: float | None = None
    """Share of the samples on plateaus at a read channel's extremes (:func:`latentbridge.io.peak_and_clipping`)."""
    silent: np.ndarray | None = None
    """(n,) the share of each window's frames of digital silence (:func:`silent_frame_shares`; 1: a silent window)."""
    dead: list[int] | None = None  # the channels of nothing but digital silence (:func:`~.silence.silent_channels`)
    band_power: np.ndarray | None = None
    """(bands,) mean band power of the windows (:func:`latentbridge.data.survey.band_power`), kept by scoring where the
    features are let go; None where not computed."""
    streamed: Path | None = None
    """The file, read in blocks where scored (a long recording: :mod:`latentbridge.data.blocks`); nothing else set."""
    scores: np.ndarray | None = None
    """(n,) the window scores of a long recording scored where it was read (a DataLoader worker:
    :class:`FeatureChunks`' ``score``); its features let go."""


class FeatureChunks(torch.utils.data.Dataset):
    """Chunks of files whose features a DataLoader worker computes (:meth:`FeatureExtractor.chunk_features`);
    ``score``: a callable that fills a long recording read in blocks (``FileFeatures.streamed``) and returns its window
    scores, so that it is read and scored in the worker too (``FileFeatures.scores``)."""

    def __init__(self, extractor: "FeatureExtractor", chunks: list[list[tuple[int, Path]]], score=None):
        self.extractor = extractor
        self.chunk_list = chunks
        self.score = score

    def __len__(self) -> int:
        return len(self.chunk_list)

    def __getitem__(self, k: int) -> list[FileFeatures]:
        out = self.extractor.chunk_features(self.chunk_list[k])
        for r in out:
            if r.streamed is not None and self.score is not None:
                r.scores, r.streamed = self.score(r), None
        return out


def _where(paths) -> str:
    """What the user gave, for an error: a path, a few paths, or the folder(s) of many files."""
    if not isinstance(paths, (list, tuple)):
        return str(paths)
    if len(paths) == 1 or (len(paths) <= 3 and any(Path(p).is_dir() for p in paths)):
        return ", ".join(map(str, paths))  # (two files, one of them good, were named as if both were at fault)
    parents = sorted({str(Path(p).parent) for p in paths})
    return f"{len(paths)} files in {', '.join(parents[:3])}" + (f" and {len(parents) - 3} more folders"
                                                                 if len(parents) > 3 else "")


@dataclass
class WindowFeatures:
    """Features of every window of a set of files, with where each window came from."""

    features: np.ndarray  # (N, C, F, T) float32
    file_index: np.ndarray  # (N,) index into ``files``
    starts_s: np.ndarray  # (N,) window start in seconds
    window_s: float
    files: list[Path]
    durations_s: np.ndarray  # (n_files,)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    padded: list[str] = field(default_factory=list)
    """Files shorter than one window, padded to one window (the short-recording rule)."""
    levels_dbfs: np.ndarray | None = None
    """(n_files,) RMS level of each file, dBFS (NaN where unknown)."""
    clipped_shares: np.ndarray | None = None
    """(n_files,) share of each file's samples on plateaus at its extremes (NaN where unknown)."""
    headers: list | None = None
    """Each file's header (:class:`latentbridge.io.AudioInfo`) as :meth:`FeatureExtractor.check_band` read it; None
    where it could not be read."""
    silent: np.ndarray | None = None
    """(N,) the share of each window's frames of digital silence (:func:`silent_frame_shares`; 1: a window of digital
    silence, a muted or disconnected input or zeroed gap, which every transform maps to its floor); None where
    unknown."""
    band_power: np.ndarray | None = None
    """(n_files, bands) each file's mean band power (:attr:`FileFeatures.band_power`); None where not computed."""
    dead: list[list[int]] | None = None  # each file's channels of nothing but digital silence (FileFeatures.dead)

    def __len__(self) -> int:
        return int(self.features.shape[0])

    @property
    def codecs(self) -> list[str] | None:
        """How each file stores its samples (:attr:`latentbridge.io.AudioInfo.codec`; "" where unknown)."""
        return None if self.headers is None else [h.codec if h is not None else "" for h in self.headers]

    @property
    def ends_s(self) -> np.ndarray:
        return np.minimum(self.starts_s + self.window_s, self.durations_s[self.file_index])

    def subset_files(self, file_ids) -> "WindowFeatures":
        """Keep the windows of the given file indices (renumbered in the given order)."""
        file_ids = [int(i) for i in file_ids]
        remap = {old: new for new, old in enumerate(file_ids)}
        mask = np.isin(self.file_index, file_ids)
        return WindowFeatures(
            features=self.features[mask],
            file_index=np.array([remap[i] for i in self.file_index[mask]], dtype=np.int64),
            starts_s=self.starts_s[mask],
            window_s=self.window_s,
            files=[self.files[i] for i in file_ids],
            durations_s=self.durations_s[file_ids],
            levels_dbfs=None if self.levels_dbfs is None else self.levels_dbfs[file_ids],
            clipped_shares=None if self.clipped_shares is None else self.clipped_shares[file_ids],
            headers=None if self.headers is None else [self.headers[i] for i in file_ids],
            silent=None if self.silent is None else self.silent[mask],
            dead=None if self.dead is None else [self.dead[i] for i in file_ids])

    def subset_windows(self, mask: np.ndarray) -> "WindowFeatures":
        return WindowFeatures(self.features[mask], self.file_index[mask], self.starts_s[mask], self.window_s,
                              list(self.files), self.durations_s.copy(),
                              levels_dbfs=None if self.levels_dbfs is None else self.levels_dbfs.copy(),
                              clipped_shares=None if self.clipped_shares is None else self.clipped_shares.copy(),
                              headers=None if self.headers is None else list(self.headers),
                              silent=None if self.silent is None else self.silent[mask], dead=self.dead)


class FeatureExtractor:
    """Reads recordings, cuts windows and computes features in batches, with a per-file cache."""

    def __init__(self, transform, *, sample_rate: int, window_s: float, hop_s: float, channel: int | None = None,
                 pad: str = "wrap", cache_dir: str | Path | None = None, use_cache: bool = True,
                 batch_windows: int = 32, trim_db: float | None = None, min_share: float = MIN_WINDOW_SHARE,
                 num_workers: int | None = None, parallel: Literal["auto", "threads", "processes"] = "auto",
                 csv_rate: float | None = None, n_channels: int | None = None, columns: list[str] | None = None):
        self.transform = transform.eval()
        # channel "all": the channel count every recording must hold (a fitted model's; None while fitting, when
        # the files must agree among themselves: check_band)
        self.n_channels = n_channels if channel == ALL_CHANNELS else None
        self.csv_rate = csv_rate  # the rate of vibration CSVs without a time column
        self.columns = list(columns) if columns else None  # a CSV's sensor columns, read by name in this order
        self.sample_rate = int(sample_rate)
        self.window = int(round(window_s * sample_rate))
        self.hop = max(1, int(round(hop_s * sample_rate)))
        self.window_s = self.window / self.sample_rate
        self.channel = channel
        self.pad = pad
        self.trim_db = trim_db
        self.min_share = float(min_share)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.use_cache, self.cache_writes = use_cache, True  # (False: a cache found unwritable before workers start)
        self.cache_limit = cache_limit_bytes() if use_cache else float("inf")  # a bad setting named before the work
        # decoding and features in num_workers threads (decoding, resampling and the transform release
        # the GIL; no start-up cost) or DataLoader worker processes (benchmarks/README.md §1)
        self.num_workers = default_workers() if num_workers is None else int(num_workers)
        if parallel not in ("auto", "threads", "processes"):
            raise ValueError(f"parallel must be 'auto', 'threads' or 'processes', got {parallel!r}")
        self.parallel = parallel
        self._headers: dict[str, object] = {}  # each file's AudioInfo, from the header pass of check_band
        self.refuse_below_band = False  # calibrating: recordings that all leave the band's top empty are refused
        self.training = False  # fitting a model: recordings resampled down are said with the band they lose
        self.fitted_channels: int | None = None  # scoring: the channels of the training recordings (one count)
        # recordings that take more than data.blocks.STREAM_BYTES to decode whole are read in blocks (check_band names
        # them in streamed): their features computed so (data.blocks.features_in_blocks), or, with defer_streamed
        # (scoring), left to where they are scored (FileFeatures.streamed)
        self.defer_streamed = False
        self.streamed: set[str] = set()
        self.batch_windows = batch_windows  # small batches: faster on CPU than large ones (benchmarks/)
        self._params = {
            "version": CACHE_VERSION,
            "transform": transform.to_dict(),
            "sample_rate": self.sample_rate, "window": self.window, "hop": self.hop,
            "channel": channel, "pad": pad, **({"trim_db": trim_db} if trim_db else {}),
            **({"min_share": self.min_share} if self.min_share != MIN_WINDOW_SHARE else {}),
            **({"csv_rate": csv_rate} if csv_rate else {}), **({"columns": self.columns} if self.columns else {}),
        }

    @classmethod
    def from_spec(cls, spec, transform=None, **kw) -> "FeatureExtractor":
        """The extractor of a saved preprocessing description (:class:`~latentbridge.transforms.spec.AudioTransform`);
        ``transform``: an already built :class:`~latentbridge.transforms.audio.SpectrogramTransform` of it."""
        from latentbridge.transforms.spec import build_spectrogram

        w = spec.windowing
        return cls(transform if transform is not None else build_spectrogram(spec), sample_rate=spec.sample_rate,
                   window_s=w.window_s, hop_s=w.hop_s, channel=w.channel, pad=w.pad, trim_db=w.trim_db,
                   min_share=w.min_share, **{"csv_rate": w.csv_rate, "columns": w.columns, **kw})

    def __getstate__(self) -> dict:
        # DataLoader worker processes compute features: the headers read for assemble() stay in this process
        return {**self.__dict__, "_headers": {}}

    # --- cache --------------------------------------------------------------------------
    def _key(self, path: Path) -> str:
        return stable_hash({**self._params, "path": str(path.resolve()), **file_stamp(path)})

    def _load_cached(self, key: str):
        npy, meta = self.cache_dir / f"{key}.npy", self.cache_dir / f"{key}.json"
        if not (self.use_cache and npy.exists() and meta.exists()):
            return None
        try:
            info = json.loads(meta.read_text())
            with _NPY_HEADER:  # (numpy parses a .npy header with ast, which CPython 3.11 cannot run in two threads at
                feats = np.load(npy, allow_pickle=False)  # once: "AST constructor recursion depth mismatch")
            if len(feats) != len(starts := np.asarray(info["starts_s"], dtype=np.float64)):
                return None  # another entry's .npy (a crash, a copy): a traceback, or another model, without a word
            with contextlib.suppress(OSError):  # used now: the last entry the size limit removes
                os.utime(npy)
            return feats, starts, float(info["duration_s"]), info.get("level_dbfs"), info.get("clipped_share"), \
                info.get("padded")
        except (OSError, ValueError, KeyError, EOFError, TypeError):  # EOFError: an empty .npy (a power loss)
            return None  # a damaged cache entry is recomputed

    def _save_cached(self, key: str, feats: np.ndarray, starts_s: np.ndarray, duration_s: float,
                     path: Path, level_dbfs: float | None = None, clipped_share: float | None = None,
                     padded: bool = False) -> None:
        if not (self.use_cache and self.cache_writes):
            return
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.cache_dir / f"{key}.npy") as tmp, open(tmp, "wb") as f:
                np.save(f, feats, allow_pickle=False)
            with atomic_path(self.cache_dir / f"{key}.json") as tmp:
                tmp.write_text(json.dumps({"source": str(path.resolve()), "params": self._params,
                                           "starts_s": starts_s.tolist(), "duration_s": duration_s, "level_dbfs":
                                           level_dbfs, "clipped_share": clipped_share, "padded": bool(padded)}))
        except OSError as e:  # said once (it was once per recording)
            not_written(self.cache_dir, e)

    def keep_cache_limit(self, files: list[Path] | None = None) -> None:
        """After a pass that may have written to the cache: its least recently used entries removed down to its size
        limit (:func:`prune_cache`), with a warning when the pass's ``files`` alone need more than it."""
        if self.use_cache and self.cache_dir.is_dir():
            prune_cache(self.cache_dir, self.cache_limit, None if files is None else lambda: map(self._key, files))

    # --- extraction ---------------------------------------------------------------------
    def windows_of(self, wave: np.ndarray, name: str | Path = "<waveform>") -> tuple[np.ndarray, np.ndarray]:
        """Windows of one recording (the short-recording rule of :func:`latentbridge.io.check_recording_length`)."""
        return self._windows(wave, name)[:2]

    def file_windows(self, path: Path, stats: dict | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(samples read, windows, their starts in the recording, s): :meth:`read` (``stats``) and :meth:`windows_of`."""
        wave = self.read(path, stats := {} if stats is None else stats)
        windows, starts = self.windows_of(wave, path)
        return wave, windows, starts + stats["lead_s"]

    def _windows(self, wave: np.ndarray, name, lazy: bool = False) -> tuple[np.ndarray, np.ndarray, bool]:
        """(windows, starts_s, padded): no state kept, so chunks may run in several threads. ``lazy``: a long
        recording's windows as a :class:`~latentbridge.io.windows.WindowView`, cut batch by batch."""
        padded = check_recording_length(wave.shape[-1], self.window, self.sample_rate, name, self.min_share)
        wave = wave.astype(np.float32, copy=False)
        lazy = lazy and wave.shape[-1] >= self.window + LAZY_WINDOWS * self.hop
        windows, starts = cut_windows(wave, self.window, self.hop, pad=self.pad, name=name, lazy=lazy)
        return windows, starts.astype(np.float64) / self.sample_rate, padded

    @torch.no_grad()
    def features_of_windows(self, windows: np.ndarray) -> np.ndarray:
        """(N, window) waveforms → (N, 1, F, T) features ((N, C, window) → (N, C, F, T)), in batches."""
        if not len(windows):
            return np.zeros((0,), dtype=np.float32)
        if not isinstance(windows, WindowView):
            windows = np.ascontiguousarray(windows)
        width = windows.shape[1] if len(windows.shape) == 3 else 1
        return batched(self._features, windows, batch_size=self.transform_batch(width)).numpy()

    def transform_batch(self, width: int = 1) -> int:
        """The windows of ``width`` channels transformed at a time: :attr:`batch_windows` signals (32 windows of 8
        channels of 2 s at 48 kHz held 490 MB of spectra at once)."""
        return max(1, self.batch_windows // max(1, width))

    def _features(self, windows: torch.Tensor) -> torch.Tensor:
        """The transform of a batch, with the frames that reach into a window's trailing digital silence
        (a short recording padded with zeros) computed as silence (:func:`silence_tail`)."""
        t = self.transform
        mag = silence_tail(t.magnitude(windows), windows.numpy(), t.n_fft, t.hop_length, t.stft.center)
        return t.features_from_magnitude(mag).float()

    def read(self, path: Path, stats: dict | None = None) -> np.ndarray:
        """A file's samples at the model's rate (mono mix or its channel), silence-trimmed when set; ``stats`` as
        :func:`~latentbridge.io.read_audio` fills it, and with the recording's ``lead_s`` (the silence trimmed before
        the samples returned: their times in the recording are that much later) and ``duration_s``."""
        wave, _ = read_audio(path, sample_rate=self.sample_rate, mono=self.channel is None, channel=self.channel,
                             csv_rate=self.csv_rate, expect_channels=self.n_channels, stats=stats,
                             columns=self.columns)
        duration_s, start = wave.shape[-1] / self.sample_rate, 0
        if self.trim_db:
            least = shortest_recording(self.window, self.min_share)  # (a short sound's silence kept to a share)
            wave, start = trimmed(wave, self.sample_rate, self.trim_db, min_len=least)
            check_recording_length(wave.shape[-1], self.window, self.sample_rate, path, self.min_share)
        if stats is not None:
            stats.update(lead_s=start / self.sample_rate, duration_s=duration_s)
        return wave

    def _read_windows(self, path: Path):
        """(windows, starts_s, duration_s, padded, level_dbfs, clipped_share) of one file; DataError when it is
        unusable."""
        stats: dict = {}
        wave = self.read(path, stats)
        windows, starts, padded = self._windows(wave, path, lazy=True)
        return (windows, starts + stats["lead_s"], stats["duration_s"], padded, round(level_dbfs(wave), 2),
                stats["clipped_share"])

    def chunk_features(self, chunk: list[tuple[int, Path]]) -> list["FileFeatures"]:
        """Features of a chunk of files ``[(index, path), ...]``: cached ones loaded, the others read,
        windowed and transformed together (batched across files) and cached. A file that cannot be
        used comes back with its ``problem``. One of ``streamed`` is read in blocks (:func:`features_in_blocks`), or,
        with ``defer_streamed``, comes back with nothing but its path (``FileFeatures.streamed``: read in blocks where
        it is scored)."""
        out: list[FileFeatures] = []
        todo = []
        for i, path in chunk:
            streamed = str(path) in self.streamed
            if streamed and self.defer_streamed:
                out.append(FileFeatures(i, streamed=path))
                continue
            key = self._key(path) if self.use_cache else ""  # (the key resolves the path: 1 % of the path uncached)
            cached = self._load_cached(key) if self.use_cache else None
            if cached is not None and self.n_channels and cached[0].shape[1] != self.n_channels:
                try:  # the reader's error, naming the count
                    block_windows(self, path) if streamed else self.read(path)
                except DataError as e:
                    out.append(FileFeatures(i, problem=e.problem))
                    continue
            if cached is not None:
                f, starts, duration, level, clipped, padded = cached
                padded = duration < self.window_s - 1e-9 if padded is None else padded
                out.append(FileFeatures(i, f, starts, duration, padded, level_dbfs=level, clipped_share=clipped))
                continue
            try:
                if streamed:  # the features of the whole read, in the memory of a block
                    f, starts, duration, padded, level, clipped = features_in_blocks(self, path)
                    out.append(FileFeatures(i, f, starts, duration, padded, level_dbfs=level, clipped_share=clipped))
                    self._save_cached(key, f, starts, duration, path, level, clipped, padded)
                    continue
                windows, starts, duration, padded, level, clipped = self._read_windows(path)
            except DataError as e:
                out.append(FileFeatures(i, problem=e.problem))
                continue
            todo.append((len(out), key, path, windows))
            out.append(FileFeatures(i, None, starts, duration, padded, level_dbfs=level, clipped_share=clipped))
        # short recordings' windows transformed together (batched across files), long ones' from their view
        eager = [t for t in todo if not isinstance(t[3], WindowView)]
        feats = self.features_of_windows(np.concatenate([t[3] for t in eager], axis=0)) if eager else None
        offset = 0
        for k, key, path, windows in todo:
            r = out[k]
            if isinstance(windows, WindowView):
                r.features = self.features_of_windows(windows)
            else:
                r.features = feats[offset:offset + len(windows)]
                offset += len(windows)
            self._save_cached(key, r.features, r.starts_s, r.duration_s, path, r.level_dbfs, r.clipped_share, r.padded)
        for r in out:
            if r.problem is None and r.streamed is None:
                r.silent, r.dead = silent_frame_shares(r.features), silent_channels(live_channels(r.features))
        return out

    def chunks(self, files: list[Path], size: int | None = None, shares: int = 1) -> list[list[tuple[int, Path]]]:
        """``[(index, path), ...]`` chunks of ``size`` files; by default small enough that every worker
        (of each of ``shares`` processes) gets about sixteen chunks, so that none waits long on a last
        one (with four, two threads on 60 recordings of 10 s waited out 8-file chunks: 0.27 s against 0.25 s with
        chunks of 2), and at most 16 files (features of a chunk are transformed together)."""
        if size is None:
            size = max(1, min(16, -(-len(files) // (16 * max(1, self.num_workers) * max(1, shares)))))
        indexed = list(enumerate(files))
        return [indexed[k:k + size] for k in range(0, len(indexed), size)]

    def map_chunks(self, chunks: list[list[tuple[int, Path]]]):
        """:meth:`chunk_features` of every chunk, in order; with ``num_workers`` set, in that many
        threads (torch on one thread each meanwhile) or DataLoader worker processes (``parallel``).
        Threads cost nothing to start and ran the anomaly settings' path 1.6-2.0x the per-file librosa
        loop on 60 and 300 recordings of 10 s, where processes ran 1.2-1.5x; on 600 short clips processes ran
        1.9-2.4x, threads 1.4-2.1x (the per-file work that holds the GIL weighs more there;
        ``benchmarks/bench_features.py``): ``auto`` takes processes for at least 100 recordings whose median
        header duration is 2 s or less, threads otherwise."""
        if self.num_workers <= 0 or len(chunks) < 2:
            return (self.chunk_features(c) for c in chunks)
        n = min(self.num_workers, len(chunks))
        parallel = self.parallel
        if parallel == "auto":
            durations = [h.duration_s for c in chunks for _, p in c if (h := self._headers.get(str(p))) is not None]
            parallel = "processes" if len(durations) >= 100 and float(np.median(durations)) <= 2.0 else "threads"
        if parallel == "processes":
            check_before_workers(self)
            return iter(torch.utils.data.DataLoader(
                FeatureChunks(self, chunks), batch_size=None, shuffle=False, num_workers=n,
                worker_init_fn=_one_thread, prefetch_factor=4, collate_fn=_identity))
        return self._threaded(chunks, n)

    def _threaded(self, chunks: list[list[tuple[int, Path]]], n: int):
        was = torch.get_num_threads()
        torch.set_num_threads(1)
        pool = ThreadPoolExecutor(n, thread_name_prefix="latentbridge-features")
        try:
            yield from pool.map(self.chunk_features, chunks)
        finally:  # an error (or an interrupted caller) cancels the chunks not yet started
            pool.shutdown(wait=True, cancel_futures=True)
            torch.set_num_threads(was)

    def extract(self, paths, skip_bad: bool = False, files: list[Path] | None = None, progress: bool = False
                ) -> WindowFeatures:
        """Features of every window of ``paths`` (files or folders).

        Every file that cannot be used (unreadable, truncated, non-finite, silent, too short) is
        collected; without ``skip_bad`` one error then lists them all, with ``skip_bad`` they are
        skipped with a warning and listed in ``skipped``. Files are decoded and transformed in
        chunks, in ``num_workers`` threads or processes (:meth:`map_chunks`). ``files``: ``paths`` already
        listed by :func:`list_files`; ``progress``: a bar counting the files read."""
        files = list_files(paths) if files is None else files
        self.check_band(files, skip_bad)
        results = []
        with progress_bar(len(files), progress, "reading", unit="file") as bar:
            for chunk in self.map_chunks(self.chunks(files)):
                results.extend(chunk)
                bar.update(len(chunk))
        self.keep_cache_limit(files)
        return self.assemble(files, results, skip_bad, paths)

    def check_band(self, files: list[Path], skip_bad: bool = False) -> str | None:
        """Warn (and return the text) when some files are recorded at rates too low to fill the band
        the features cover (:func:`latentbridge.data.survey.band_warning`); reads headers only, keeps them
        for :meth:`assemble` (``WindowFeatures.headers``) and names the recordings read in blocks (``streamed``)."""
        from latentbridge.data.survey import band_fmax, band_warning, conversions_line, files_below_band
        from latentbridge.io import audio_info
        from latentbridge.io.columns import channels_read, left_out

        rates, channels = {}, {}
        for f in files:
            try:
                info = audio_info(f, self.csv_rate)
            except DataError:
                continue  # the extraction names the file and its problem
            if rate_problem(info.sample_rate, self.sample_rate):
                continue  # refused when read, naming its rate: no band advice from it
            rates[str(f)], channels[str(f)] = info.sample_rate, channels_read(info, self.columns)
            self._headers[str(f)] = info
        if self.channel == ALL_CHANNELS and self.n_channels is None and len(set(channels.values())) > 1:
            counts = Counter(channels.values())
            odd = next(p for p, c in channels.items() if c != counts.most_common(1)[0][0])
            if not skip_bad:
                raise DataError(_where(files), "audio.channel: all models every channel, but the recordings hold "
                                + channel_counts(counts.most_common()) + f" (e.g. {odd}): fit on recordings of one "
                                "channel count (or skip the others: --skip-bad, -o data.skip_bad_files=true in train), "
                                "or pick one with -o audio.channel=K "
                                "(or mix them: -o audio.channel=null)")
            self.n_channels = counts.most_common(1)[0][0]  # (the others refused as read, skipped as unusable)
        if self.columns and not self.training and len(rates) > 1:  # one warning, not one a file (fit says its own)
            left_out({p: self._headers[p].columns for p in rates}, self.columns, _where(files))
        text, warn = conversions_line(rates, channels, self.sample_rate, self.channel, self.training,
                                      self.fitted_channels)
        if text:
            (log.warning if warn else log.info)(text)
        fmax = band_fmax(self.transform)
        text = band_warning(rates, self.sample_rate, fmax, getattr(self.transform, "kind", "mel"))
        if text and self.refuse_below_band and len(files_below_band(rates, self.sample_rate, fmax)) == len(rates):
            raise DataError(_where(files), "every recording is below the model's band, so none is the sound it "
                                           "was fitted on: its threshold is not set from them (" + text + ")")
        if text:
            log.warning(text)
        self.streamed = {p for p in rates if read_in_blocks(self._headers[p], self.sample_rate, self.channel)}
        return text

    def assemble(self, files: list[Path], results: list["FileFeatures"], skip_bad: bool, paths) -> WindowFeatures:
        """One :class:`WindowFeatures` of per-file results (any order), with the bad-file rule."""
        results = sorted(results, key=lambda r: r.index)
        skipped = [(str(files[r.index]), r.problem) for r in results if r.problem is not None]
        padded = [str(files[r.index]) for r in results if r.problem is None and r.padded]
        kept = [r for r in results if r.problem is None]
        where = _where(paths)
        if skipped and not skip_bad:
            raise DataError(where, f"{len(skipped)} of {len(files)} recordings cannot be used: "
                            + named_problems(skipped) + ("" if not kept else  # (skipping every one leaves nothing)
                                                         " (skip such files, named in a warning: --skip-bad in the "
                                                         "anomaly commands, -o data.skip_bad_files=true in train)"))
        if skipped:  # one warning (a line for each of 500 bad files), every one listed in what the command writes
            log.warning("skipping %d of %d recordings that cannot be used (each listed under skipped_files in "
                        "summary.json or config.json): %s", len(skipped), len(files), named_problems(skipped))
        if not kept:
            raise DataError(where, f"none of the {len(files)} recordings could be used: "
                            + "; ".join(f"{Path(p_).name}: {r}" for p_, r in skipped[:5]))
        if padded:
            log.warning("%d of %d recordings are shorter than one %.3g-s window%s and were padded (%s)",
                        len(padded), len(kept), self.window_s, TRIMMED if self.trim_db else "", self.pad)
        return WindowFeatures(
            features=_gathered(kept),
            file_index=np.concatenate([np.full(len(r.features), n, dtype=np.int64) for n, r in enumerate(kept)]),
            starts_s=np.concatenate([r.starts_s for r in kept]), window_s=self.window_s,
            files=[files[r.index] for r in kept], durations_s=np.asarray([r.duration_s for r in kept], dtype=np.float64),
            skipped=skipped, padded=padded,
            levels_dbfs=np.asarray([np.nan if r.level_dbfs is None else r.level_dbfs for r in kept], dtype=np.float64),
            clipped_shares=np.asarray([np.nan if r.clipped_share is None else r.clipped_share for r in kept],
                                      dtype=np.float64),
            headers=[self._headers.get(str(files[r.index])) for r in kept],
            silent=None if any(r.silent is None for r in kept) else np.concatenate([r.silent for r in kept]),
            band_power=None if any(r.band_power is None for r in kept) else np.stack([r.band_power for r in kept]),
            dead=None if any(r.dead is None for r in kept) else [r.dead for r in kept])


def _gathered(kept: list[FileFeatures]) -> np.ndarray:
    """The features of ``kept`` in one float32 array, each file's let go once copied (concatenating them held the
    features twice at the end of a read of hours of audio)."""
    first = kept[0].features
    out = np.empty((sum(len(r.features) for r in kept), *first.shape[1:]), dtype=np.float32)
    at = 0
    for r in kept:
        out[at:at + len(r.features)] = r.features
        at += len(r.features)
        r.features = out[at - len(r.features):at]  # a view: the file's own array let go
    return out


def list_files(paths) -> list[Path]:
    """The audio files of ``paths`` (files or folders, one or a list), in order, each once: a file named twice
    (a folder and a file in it, or the same path given twice) would be scored, fitted or counted twice."""
    files: list[Path] = []
    seen: dict = {}
    repeated: list[str] = []
    if isinstance(paths, (list, tuple)) and not paths:  # (a Python call of []: a TypeError deep in the scoring)
        raise DataError(".", "no recordings given (an empty list of files or folders)")
    for p in paths if isinstance(paths, (list, tuple)) else [paths]:
        for f in list_audio_files(p):
            if (first := seen_before(f, seen)) is not None:  # named: a link's name was dropped without a word
                repeated.append(f"{f}" if f == first else f"{f} (the same file as {first})")
                continue
            files.append(f)
    if repeated:
        log.warning("%d file%s reached more than once (a link to a file read already, a file in a folder given beside "
                    "it, a path given twice) taken once: %s", len(repeated), "s" if len(repeated) != 1 else "",
                    listed(repeated, 5, count=True))
    return files
