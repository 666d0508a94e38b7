"""Audio capture: blocks from an input device or from a recording replayed as if live.

:func:`device_blocks` reads an input device through ``sounddevice`` (PortAudio): its callback
(:class:`_BlockQueue`) copies every block into a bounded queue and never blocks, so when the
consumer falls behind, blocks are dropped and counted (:class:`StreamStats`) instead of memory
growing.  :func:`file_blocks` replays a recording through the same ``(block, overflowed)``
interface, and :class:`BlockFeed` gives blocks pushed by a network stream (the server's WebSocket)
the device's bounded queue.  :func:`list_input_devices` lists the input devices.

``sounddevice`` (and with it the PortAudio library) is imported lazily, inside the functions
that need it, so this module imports on machines without audio support.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from latentbridge.errors import LatentbridgeError

__all__ = ["BlockFeed", "StreamClosed", "StreamStats", "device_blocks", "file_blocks", "list_input_devices"]


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

    When the queue is full the blocks waiting in it are dropped and counted, and the new block,
    queued, carries ``overflowed=True``, as does the first block after a PortAudio
    ``input_overflow``: a consumer that fell behind resumes on fresh audio, in one piece until
    the next overflow (dropping one block at a time left pieces too short for a window, each
    joined to the next across what was lost).  With ``stop_after_frames`` the callback delivers exactly that many
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
            except queue.Full:
                while True:  # the consumer only takes from the queue: once drained, the put succeeds
                    try:
                        dropped, _ = self.queue.get_nowait()
                    except queue.Empty:
                        break
                    stats.dropped_blocks += 1
                    stats.dropped_frames += len(dropped)
                self.queue.put_nowait((item[0], True))
            self._pending_overflow = False
        if self.stop_after_frames is not None and stats.frames_captured >= self.stop_after_frames:
            self.finished.set()
            self._stop()

    def _stop(self) -> None:
        if self.stop_exception is not None:
            raise self.stop_exception


class StreamClosed(Exception):
    """Raised by a :class:`BlockFeed` iterator whose producer went away (a client disconnected)."""


class BlockFeed:
    """Audio blocks pushed by a producer that must never wait (a network stream), read as the
    ``(block, overflowed)`` iterator :func:`latentbridge.tasks.listen.listen` takes.

    Blocks go through the device capture's bounded queue (:class:`_BlockQueue`): when the
    consumer falls behind and ``max_queue_blocks`` are waiting, the waiting blocks are dropped and
    counted in :attr:`stats` (``dropped_blocks``, ``dropped_frames``), and the pushed block, queued,
    carries ``overflowed=True``; memory stays bounded and nothing raises.  :meth:`end`
    finishes the stream (the iterator stops once the queue is drained); :meth:`abort` makes the
    iterator raise :class:`StreamClosed` at once (so a listener does not flush a stream nobody
    reads any more).
    """

    def __init__(self, max_queue_blocks: int = 64, channels: int = 1):
        if channels < 1:
            raise ValueError(f"channels must be at least 1, got {channels}")
        self.channels = int(channels)
        self.stats = StreamStats()
        self._queue = _BlockQueue(max_queue_blocks, stats=self.stats)
        self._ended = threading.Event()
        self._aborted = threading.Event()

    def push(self, block: np.ndarray) -> None:
        """Queue a ``(n, channels)`` (or, mono, ``(n,)``) float32 block; never blocks."""
        if self._ended.is_set() or self._aborted.is_set():
            raise ValueError("BlockFeed.push after end() or abort()")
        block = np.asarray(block, dtype=np.float32).reshape(-1, self.channels)
        self._queue(block, block.shape[0], None, None)

    def end(self) -> None:
        self._ended.set()

    def abort(self) -> None:
        self._aborted.set()

    @property
    def queued(self) -> int:
        return self._queue.queue.qsize()

    @property
    def full(self) -> bool:
        """Whether the next :meth:`push` would drop the waiting blocks (a producer that can wait, a network stream
        of a recording, waits while this holds)."""
        return self._queue.queue.full()

    @property
    def closed(self) -> bool:
        return self._aborted.is_set() or self._ended.is_set()

    def __iter__(self) -> Iterator[tuple[np.ndarray, bool]]:
        while True:
            if self._aborted.is_set():
                raise StreamClosed("the stream was closed before it ended")
            try:
                item = self._queue.queue.get(timeout=0.05)
            except queue.Empty:
                if self._ended.is_set() and self._queue.queue.empty():
                    return
                continue
            self.stats.blocks_yielded += 1
            yield item


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
    devices), when no audio arrives for ``stall_timeout_s`` seconds, or when the stream stops before
    ``duration_s`` (or, without one, at all): the device was lost.
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
                    if callback.finished.is_set():
                        return
                    if not stream.active:  # PortAudio stopped the stream: the device went away
                        raise LatentbridgeError(
                            f"{what} stopped after {stats.frames_captured / sample_rate:.2f} s of audio: the device "
                            "was lost (unplugged, or its sound server stopped)"
                        )
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


def _load_audio(path: str | Path, sample_rate: int, trim_db: float | None = None, channel: int | str | None = None,
                expect_channels: int | None = None, csv_rate: float | None = None,
                columns: list[str] | None = None, min_len: int = 0) -> tuple[np.ndarray, int, int]:
    """``(T, channels read)`` float32 samples of ``path`` at ``sample_rate`` (the same reader and checks as
    training), silence-trimmed as in training when ``trim_db`` is set, the sample of the recording they start at, and
    the recording's length in samples."""
    from latentbridge.io.audio import read_audio
    from latentbridge.io.levels import trimmed

    audio, _ = read_audio(path, sample_rate=sample_rate, channel=channel,
                          expect_channels=expect_channels if channel == "all" else None, csv_rate=csv_rate,
                          columns=columns)
    start, length = 0, audio.shape[-1]
    if trim_db:
        audio, start = trimmed(audio, sample_rate, trim_db, min_len=min_len)
    return np.ascontiguousarray(np.atleast_2d(np.asarray(audio, dtype=np.float32)).T), start, length


def _stream_audio(path: str | Path, sample_rate: int, channel: int | str | None, expect_channels: int | None,
                  csv_rate: float | None, columns: list[str] | None,
                  blocksize: int) -> tuple[Iterator[np.ndarray], int]:
    """``path``'s samples at ``sample_rate`` as :func:`_load_audio` reads them untrimmed, in blocks of ``blocksize``
    frames read as they are replayed (:class:`~latentbridge.io.blockread.RecordingBlocks`), and the recording's length
    in samples: a 3-h recording replayed for 5 s was read whole, twice (7 GB), before its first window."""
    from latentbridge.errors import DataError
    from latentbridge.io.audio import rate_problem
    from latentbridge.io.blockread import RecordingBlocks, resampled_to

    blocks = RecordingBlocks(path, channel, expect_channels if channel == "all" else None, csv_rate, columns=columns)
    if problem := rate_problem(blocks.sample_rate, sample_rate):
        raise DataError(path, problem)

    def reblocked():
        pending: list[np.ndarray] = []
        have = 0
        for b in resampled_to(blocks, sample_rate):
            pending.append(b)
            have += len(b)
            while have >= blocksize:
                joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
                yield joined[:blocksize]
                pending, have = ([joined[blocksize:]] if len(joined) > blocksize else []), len(joined) - blocksize
        if have:
            yield np.concatenate(pending)

    return reblocked(), int(np.ceil(blocks.frames * float(sample_rate) / blocks.sample_rate))


def file_blocks(
    path: str | Path,
    sample_rate: int,
    blocksize: int = 1024,
    realtime: bool = False,
    trim_db: float | None = None,
    channel: int | str | None = None,
    expect_channels: int | None = None,
    csv_rate: float | None = None,
    stats: dict | None = None,
    columns: list[str] | None = None,
    min_len: int = 0,
) -> Iterator[tuple[np.ndarray, bool]]:
    """Replay a recording (the mono mix, channel ``channel`` or, with ``channel="all"``, every channel of the
    ``expect_channels`` it must hold, as :func:`latentbridge.io.read_audio` reads them; resampled to
    ``sample_rate``, trimmed with ``trim_db`` as in training; ``csv_rate``: the model's rate of vibration files
    that give none; ``columns``: the sensor columns it reads, by header name; ``min_len``: the fewest samples trimming
    keeps, as training's) as ``(block (n, channels read), False)``.
    ``stats``, when given, gets ``lead_s`` before the first block: the silence trimmed before it (times in the blocks
    are that much later in the recording), and the recording's ``duration_s``.

    With ``realtime=True`` each block is released when it would have finished arriving from a
    device, so the consumer sees live timing.
    """
    if blocksize < 1:
        raise ValueError(f"blocksize must be at least 1, got {blocksize}")
    if trim_db:  # (trimming reads the whole recording: where its sound begins and ends)
        audio, start, length = _load_audio(path, sample_rate, trim_db, channel, expect_channels, csv_rate, columns,
                                           min_len)
        blocks = (audio[pos:pos + blocksize] for pos in range(0, audio.shape[0], blocksize))  # audio: (T, channels)
    else:
        (blocks, length), start = _stream_audio(path, sample_rate, channel, expect_channels, csv_rate, columns,
                                                blocksize), 0
    if stats is not None:
        stats.update(lead_s=start / sample_rate, duration_s=length / sample_rate)
    t0, pos = time.monotonic(), 0
    for block in blocks:
        pos += block.shape[0]
        if realtime:
            delay = t0 + pos / sample_rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        yield block, False
