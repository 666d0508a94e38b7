"""Live streaming for the acoustic anomaly detector (``latentbridge anomaly listen``).

Audio arrives in blocks, from an input device (:func:`device_blocks`) or from a recording
replayed through the same code path (:func:`file_blocks`).  A :class:`WindowBuffer` cuts the
blocks into overlapping analysis windows, :func:`listen` scores every window with a callable
supplied by the model side, prints one line per window and logs events to CSV or SQLite
(:class:`EventLog`).

``sounddevice`` (and with it the PortAudio library) is imported lazily, inside the functions
that need it, so this module imports on machines without audio support.
"""

from __future__ import annotations

import csv
import os
import queue
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from latentbridge.errors import DataError, LatentbridgeError

__all__ = [
    "EVENT_FIELDS",
    "EventLog",
    "StreamStats",
    "WindowBuffer",
    "device_blocks",
    "file_blocks",
    "list_input_devices",
    "listen",
]

#: Columns of an event log, in order.
EVENT_FIELDS: tuple[str, ...] = ("wall_time", "start_s", "end_s", "score", "is_anomaly", "overflows")

ScoreFn = Callable[[np.ndarray], "tuple[np.ndarray, np.ndarray]"]


# --------------------------------------------------------------------------------------------
# Windowing
# --------------------------------------------------------------------------------------------


class WindowBuffer:
    """Cut a stream of audio blocks into overlapping mono windows.

    ``push(block)`` appends a ``(n, channels)`` block (a 1-D block is taken as mono) and returns
    every window that became complete, as ``(start_sample, window)`` pairs; ``window`` is a
    float32 array of ``window`` samples, the mean over channels.  Window ``k`` starts at sample
    ``k * hop``.  Samples no later window needs are dropped at once, so the buffer holds at most
    ``window`` samples plus one block (and ``hop`` may exceed ``window``: the gap is skipped).
    """

    def __init__(self, window: int, hop: int, channels: int = 1):
        window, hop, channels = int(window), int(hop), int(channels)
        if window < 1:
            raise ValueError(f"window must be at least 1 sample, got {window}")
        if hop < 1:
            raise ValueError(f"hop must be at least 1 sample, got {hop}")
        if channels < 1:
            raise ValueError(f"channels must be at least 1, got {channels}")
        self.window = window
        self.hop = hop
        self.channels = channels
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = 0  # absolute index of self._buf[0]
        self._next_start = 0  # absolute start of the next window
        self.samples_seen = 0  # samples pushed so far (per channel)

    @property
    def buffered(self) -> int:
        """Samples currently held (never more than ``window`` plus one block)."""
        return int(self._buf.shape[0])

    def _mono(self, block: np.ndarray) -> np.ndarray:
        block = np.asarray(block)
        if block.ndim == 1:
            if self.channels != 1:
                raise ValueError(f"expected blocks of shape (n, {self.channels}), got a 1-D block")
            return block.astype(np.float32, copy=False)
        if block.ndim != 2 or block.shape[1] != self.channels:
            raise ValueError(f"expected a block of shape (n, {self.channels}), got {block.shape}")
        if self.channels == 1:
            return block[:, 0].astype(np.float32, copy=False)
        return block.astype(np.float32, copy=False).mean(axis=1, dtype=np.float32)

    def push(self, block: np.ndarray) -> list[tuple[int, np.ndarray]]:
        mono = self._mono(block)
        self.samples_seen += int(mono.shape[0])
        if mono.shape[0]:
            self._buf = np.concatenate([self._buf, mono]) if self._buf.size else mono.copy()
        end = self._buf_start + self._buf.shape[0]
        out: list[tuple[int, np.ndarray]] = []
        while self._next_start + self.window <= end:
            i = self._next_start - self._buf_start
            out.append((self._next_start, self._buf[i : i + self.window].copy()))
            self._next_start += self.hop
        # Drop what no later window needs (everything before the next window's start).
        drop = min(self._next_start - self._buf_start, self._buf.shape[0])
        if drop > 0:
            self._buf = self._buf[drop:].copy()
            self._buf_start += drop
        return out

    def reset(self) -> None:
        """Forget buffered samples and restart the sample clock at zero."""
        self.__init__(self.window, self.hop, self.channels)


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


@dataclass
class StreamStats:
    """Counters of a device stream, updated while :func:`device_blocks` runs."""

    frames_captured: int = 0  # frames the device delivered (including dropped ones)
    blocks_yielded: int = 0
    input_overflows: int = 0  # callbacks whose status reported input_overflow
    dropped_blocks: int = 0  # blocks dropped because the consumer fell behind
    dropped_frames: int = 0

    @property
    def overflows(self) -> int:
        return self.input_overflows + self.dropped_blocks


class _BlockQueue:
    """The ``sounddevice`` callback: copies blocks into a bounded queue, never blocks.

    When the queue is full the block is dropped and counted; the next block that does get
    queued carries ``overflowed=True``, as does the first block after a PortAudio
    ``input_overflow``.  With ``stop_after_frames`` the callback delivers exactly that many
    frames and then raises ``stop_exception`` (``sounddevice.CallbackStop``).
    """

    def __init__(
        self,
        max_queue_blocks: int,
        stop_after_frames: int | None = None,
        stop_exception: type[BaseException] | None = None,
        stats: StreamStats | None = None,
    ):
        if max_queue_blocks < 1:
            raise ValueError(f"max_queue_blocks must be at least 1, got {max_queue_blocks}")
        self.queue: queue.Queue[tuple[np.ndarray, bool]] = queue.Queue(maxsize=max_queue_blocks)
        self.stop_after_frames = stop_after_frames
        self.stop_exception = stop_exception
        self.stats = stats if stats is not None else StreamStats()
        self.finished = threading.Event()
        self._pending_overflow = False

    def __call__(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if self.finished.is_set():
            self._stop()
            return
        stats = self.stats
        if status is not None and getattr(status, "input_overflow", False):
            stats.input_overflows += 1
            self._pending_overflow = True
        block = indata[:frames]
        if self.stop_after_frames is not None:
            block = block[: max(0, self.stop_after_frames - stats.frames_captured)]
        if len(block):
            stats.frames_captured += len(block)
            item = (np.array(block, dtype=np.float32, copy=True), self._pending_overflow)
            try:
                self.queue.put_nowait(item)
                self._pending_overflow = False
            except queue.Full:
                stats.dropped_blocks += 1
                stats.dropped_frames += len(block)
                self._pending_overflow = True
        if self.stop_after_frames is not None and stats.frames_captured >= self.stop_after_frames:
            self.finished.set()
            self._stop()

    def _stop(self) -> None:
        if self.stop_exception is not None:
            raise self.stop_exception


def _import_sounddevice():
    try:
        import sounddevice
    except (ImportError, OSError) as exc:  # OSError: the PortAudio library is missing
        raise LatentbridgeError(
            "live audio needs the sounddevice package and the PortAudio library "
            "(pip install 'latentbridge[live]'; on Debian/Ubuntu apt-get install libportaudio2): "
            f"{exc}"
        ) from None
    return sounddevice


def list_input_devices() -> list[dict]:
    """Input devices PortAudio knows: ``index``, ``name``, ``max_input_channels``,
    ``default_samplerate``."""
    sd = _import_sounddevice()
    devices = []
    for info in sd.query_devices():
        if int(info.get("max_input_channels", 0)) > 0:
            devices.append(
                {
                    "index": int(info["index"]),
                    "name": str(info["name"]),
                    "max_input_channels": int(info["max_input_channels"]),
                    "default_samplerate": float(info["default_samplerate"]),
                }
            )
    return devices


def _describe_input_devices() -> str:
    try:
        devices = list_input_devices()
    except Exception as exc:  # noqa: BLE001 - only used to decorate another error
        return f"(could not list input devices: {exc})"
    if not devices:
        return "no input devices were found (is a sound server such as PulseAudio running?)"
    lines = [
        f"  {d['index']}: {d['name']} ({d['max_input_channels']} in, "
        f"{d['default_samplerate']:g} Hz)"
        for d in devices
    ]
    return "available input devices:\n" + "\n".join(lines)


def _normalize_device(device: int | str | None) -> int | str | None:
    if isinstance(device, str):
        text = device.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        return text or None
    return device


def device_blocks(
    device: int | str | None = None,
    sample_rate: int = 16000,
    channels: int = 1,
    blocksize: int = 1024,
    duration_s: float | None = None,
    max_queue_blocks: int = 64,
    *,
    stats: StreamStats | None = None,
    stall_timeout_s: float | None = None,
) -> Iterator[tuple[np.ndarray, bool]]:
    """Yield ``(block (n, channels) float32, overflowed)`` from an input device.

    The PortAudio callback copies each block into a queue of ``max_queue_blocks``; when the
    consumer falls behind and the queue is full, blocks are dropped and counted in ``stats``
    (memory stays bounded and nothing crashes), and the next block delivered has
    ``overflowed=True``.  Stops after ``duration_s`` seconds of audio (if given), on
    KeyboardInterrupt, or when the consumer stops iterating (the stream is closed then).
    Raises :class:`LatentbridgeError` when the device cannot be opened (listing the input
    devices) or when no audio arrives for ``stall_timeout_s`` seconds.
    """
    sd = _import_sounddevice()
    device = _normalize_device(device)
    if sample_rate <= 0 or channels < 1 or blocksize < 1:
        raise ValueError("sample_rate, channels and blocksize must be positive")
    stop_after = None if duration_s is None else max(1, int(round(duration_s * sample_rate)))
    stats = stats if stats is not None else StreamStats()
    callback = _BlockQueue(max_queue_blocks, stop_after, sd.CallbackStop, stats)
    if stall_timeout_s is None:
        stall_timeout_s = max(5.0, 20.0 * blocksize / sample_rate)
    what = "the default input device" if device is None else f"input device {device!r}"
    try:
        stream = sd.InputStream(
            device=device,
            samplerate=sample_rate,
            channels=channels,
            blocksize=blocksize,
            dtype="float32",
            callback=callback,
        )
    except (sd.PortAudioError, ValueError, TypeError) as exc:
        raise LatentbridgeError(
            f"cannot open {what} ({channels} channel(s) at {sample_rate} Hz): {exc}\n"
            + _describe_input_devices()
        ) from None
    try:
        with stream:
            last = time.monotonic()
            while True:
                try:
                    item = callback.queue.get(timeout=0.05)
                except queue.Empty:
                    if callback.finished.is_set() or not stream.active:
                        return
                    if time.monotonic() - last > stall_timeout_s:
                        raise LatentbridgeError(
                            f"no audio arrived from {what} for {stall_timeout_s:g} s"
                        ) from None
                    continue
                last = time.monotonic()
                stats.blocks_yielded += 1
                yield item
    except KeyboardInterrupt:
        return
    except sd.PortAudioError as exc:
        raise LatentbridgeError(f"audio stream from {what} failed: {exc}") from None


def _load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Mono float32 samples of ``path`` at ``sample_rate`` (the same reader and checks as training)."""
    from latentbridge.io import read_audio

    audio, _ = read_audio(path, sample_rate=sample_rate, mono=True)
    return np.asarray(audio, dtype=np.float32).reshape(-1)


def file_blocks(
    path: str | Path,
    sample_rate: int,
    blocksize: int = 1024,
    realtime: bool = False,
) -> Iterator[tuple[np.ndarray, bool]]:
    """Replay a recording (mono, resampled to ``sample_rate``) as ``(block (n, 1), False)``.

    With ``realtime=True`` each block is released when it would have finished arriving from a
    device, so the consumer sees live timing.
    """
    if blocksize < 1:
        raise ValueError(f"blocksize must be at least 1, got {blocksize}")
    audio = _load_audio(path, sample_rate)
    t0 = time.monotonic()
    for pos in range(0, audio.shape[0], blocksize):
        block = audio[pos : pos + blocksize].reshape(-1, 1)
        if realtime:
            delay = t0 + (pos + block.shape[0]) / sample_rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        yield block, False


# --------------------------------------------------------------------------------------------
# Event log
# --------------------------------------------------------------------------------------------

_SQLITE_SUFFIXES = {".sqlite", ".sqlite3", ".db"}
_CSV_SUFFIXES = {".csv"}


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class EventLog:
    """Append-only log of scored windows, in SQLite (``.sqlite``, ``.sqlite3``, ``.db``) or CSV
    (``.csv``).  Each :meth:`log` call is committed (SQLite) or flushed (CSV) before it returns,
    so a killed process keeps every row it logged.  An existing log is appended to.

    Rows hold :data:`EVENT_FIELDS`: ``wall_time`` (ISO 8601 UTC; filled in when missing),
    ``start_s``, ``end_s``, ``score``, ``is_anomaly`` and ``overflows`` (cumulative).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix in _SQLITE_SUFFIXES:
            self.kind = "sqlite"
        elif suffix in _CSV_SUFFIXES:
            self.kind = "csv"
        else:
            raise LatentbridgeError(
                f"{self.path}: unknown event log type {suffix or '(no extension)'!r}; "
                "use .csv, .sqlite, .sqlite3 or .db"
            )
        self._conn: sqlite3.Connection | None = None
        self._file: TextIO | None = None
        self._writer: Any = None
        self.rows_written = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(self.path, f"cannot create the event log folder: {exc}") from None
        if self.kind == "sqlite":
            self._open_sqlite()
        else:
            self._open_csv()

    def _open_sqlite(self) -> None:
        try:
            conn = sqlite3.connect(str(self.path))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS events ("
                "id INTEGER PRIMARY KEY AUTOINCREMENT, wall_time TEXT NOT NULL, "
                "start_s REAL NOT NULL, end_s REAL NOT NULL, score REAL, "
                "is_anomaly INTEGER NOT NULL, overflows INTEGER NOT NULL)"
            )
            conn.commit()
            columns = [row[1] for row in conn.execute("PRAGMA table_info(events)")]
        except sqlite3.Error as exc:
            raise DataError(self.path, f"cannot use as an SQLite event log: {exc}") from None
        missing = [f for f in EVENT_FIELDS if f not in columns]
        if missing:
            conn.close()
            raise DataError(self.path, f"existing 'events' table lacks columns {missing}")
        self._conn = conn

    def _open_csv(self) -> None:
        exists = self.path.is_file() and self.path.stat().st_size > 0
        if exists:
            with open(self.path, newline="", encoding="utf-8") as fh:
                header = next(csv.reader(fh), [])
            if tuple(header) != EVENT_FIELDS:
                raise DataError(
                    self.path,
                    f"existing CSV header {header} is not an event log header {list(EVENT_FIELDS)}",
                )
        try:
            self._file = open(self.path, "a", newline="", encoding="utf-8")
        except OSError as exc:
            raise DataError(self.path, f"cannot open event log: {exc}") from None
        self._writer = csv.writer(self._file)
        if not exists:
            self._writer.writerow(EVENT_FIELDS)
            self._file.flush()

    def log(self, event: dict) -> None:
        unknown = set(event) - set(EVENT_FIELDS)
        if unknown:
            raise ValueError(f"unknown event fields {sorted(unknown)}; expected {EVENT_FIELDS}")
        missing = [f for f in EVENT_FIELDS[1:] if f not in event]
        if missing:
            raise ValueError(f"event lacks fields {missing}")
        row = (
            str(event.get("wall_time") or utc_now_iso()),
            float(event["start_s"]),
            float(event["end_s"]),
            float(event["score"]),
            int(bool(event["is_anomaly"])),
            int(event["overflows"]),
        )
        if self._conn is not None:
            self._conn.execute(
                "INSERT INTO events (wall_time, start_s, end_s, score, is_anomaly, overflows) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                row,
            )
            self._conn.commit()
        elif self._file is not None:
            self._writer.writerow(row)
            self._file.flush()
        else:
            raise LatentbridgeError(f"{self.path}: event log is closed")
        self.rows_written += 1

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - safety net
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


# --------------------------------------------------------------------------------------------
# listen
# --------------------------------------------------------------------------------------------


def _format_line(start_s: float, end_s: float, score: float, is_anomaly: bool) -> str:
    label = "ANOMALY" if is_anomaly else "normal"
    return f"{start_s:8.2f}-{end_s:.2f} s  score {score:.5f}  {label}"


def listen(
    score_fn: ScoreFn,
    *,
    sample_rate: int,
    window_s: float,
    hop_s: float,
    source: str | Path | Iterable[tuple[np.ndarray, bool]] | None = None,
    device: int | str | None = None,
    channels: int = 1,
    blocksize: int = 1024,
    duration_s: float | None = None,
    events: str | Path | EventLog | None = None,
    out: TextIO | None | str = "stdout",
    realtime: bool = False,
    max_queue_blocks: int = 64,
) -> dict:
    """Score a live stream window by window.

    ``source``: ``None`` records from ``device`` (the default input device when ``None``); a
    path replays that recording (``realtime`` paces it); any other iterable of
    ``(block, overflowed)`` pairs is used as is.  Windows that become available together are
    scored in one ``score_fn(windows (n, window_samples))`` call, which returns
    ``(scores (n,), decisions (n,) bool)``.  One line is printed to ``out`` per window, events
    are logged to ``events`` (a path or an open :class:`EventLog`), and a summary line ends the
    output.  Stops after ``duration_s`` seconds of audio, at the end of a file, or on
    KeyboardInterrupt.

    Returns ``{"n_windows", "n_anomalies", "overflows", "duration_s"}`` where ``duration_s`` is
    the audio received, in seconds.  Times are positions in the received audio.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    window = int(round(window_s * sample_rate))
    hop = int(round(hop_s * sample_rate))
    if window < 1 or hop < 1:
        raise LatentbridgeError(
            f"window_s={window_s} and hop_s={hop_s} must each be at least one sample "
            f"at {sample_rate} Hz"
        )
    stats: StreamStats | None = None
    if source is None:
        stats = StreamStats()
        blocks: Iterable[tuple[np.ndarray, bool]] = device_blocks(
            device,
            sample_rate=sample_rate,
            channels=channels,
            blocksize=blocksize,
            duration_s=duration_s,
            max_queue_blocks=max_queue_blocks,
            stats=stats,
        )
        in_channels = channels
    elif isinstance(source, (str, os.PathLike)):
        blocks = file_blocks(source, sample_rate, blocksize=blocksize, realtime=realtime)
        in_channels = 1
    else:
        blocks = source
        in_channels = channels

    limit = None if duration_s is None else int(round(duration_s * sample_rate))
    buffer = WindowBuffer(window, hop, in_channels)
    own_log = events is not None and not isinstance(events, EventLog)
    log = EventLog(events) if own_log else events  # type: ignore[arg-type]
    n_windows = n_anomalies = flagged_blocks = 0

    def overflows() -> int:
        return max(flagged_blocks, stats.overflows if stats is not None else 0)

    def emit(line: str) -> None:
        if out is not None:
            print(line, file=sys.stdout if out == "stdout" else out, flush=True)

    iterator = iter(blocks)
    try:
        for block, overflowed in iterator:
            if overflowed:
                flagged_blocks += 1
            block = np.asarray(block, dtype=np.float32)
            if block.ndim == 1:
                block = block.reshape(-1, 1)
            if limit is not None:
                block = block[: max(0, limit - buffer.samples_seen)]
            ready = buffer.push(block)
            if ready:
                starts = [s for s, _ in ready]
                windows = np.stack([w for _, w in ready])
                scores, decisions = score_fn(windows)
                scores = np.asarray(scores, dtype=np.float64).reshape(-1)
                decisions = np.asarray(decisions).reshape(-1).astype(bool)
                if scores.shape[0] != len(ready) or decisions.shape[0] != len(ready):
                    raise LatentbridgeError(
                        f"score function returned {scores.shape[0]} scores and "
                        f"{decisions.shape[0]} decisions for {len(ready)} windows"
                    )
                for start, score, flag in zip(starts, scores, decisions):
                    start_s = start / sample_rate
                    end_s = (start + window) / sample_rate
                    n_windows += 1
                    n_anomalies += int(flag)
                    emit(_format_line(start_s, end_s, float(score), bool(flag)))
                    if log is not None:
                        log.log(
                            {
                                "wall_time": utc_now_iso(),
                                "start_s": start_s,
                                "end_s": end_s,
                                "score": float(score),
                                "is_anomaly": bool(flag),
                                "overflows": overflows(),
                            }
                        )
            if limit is not None and buffer.samples_seen >= limit:
                break
    except KeyboardInterrupt:
        emit("interrupted")
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()  # closes the input stream of device_blocks
        if own_log and log is not None:
            log.close()

    summary = {
        "n_windows": n_windows,
        "n_anomalies": n_anomalies,
        "overflows": overflows(),
        "duration_s": buffer.samples_seen / sample_rate,
    }
    emit(
        f"listened {summary['duration_s']:.2f} s: {n_windows} windows, "
        f"{n_anomalies} anomalies, {summary['overflows']} overflows"
    )
    return summary
