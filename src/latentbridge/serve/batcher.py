"""Dynamic micro-batching: concurrent scoring requests share one call of the model.

A :class:`MicroBatcher` owns one worker thread (inference never runs on the event loop). Callers
submit the windows of one request (``(n, window_samples)`` waveforms) and get a
:class:`concurrent.futures.Future`; the worker takes the oldest waiting request, then keeps
collecting until ``max_batch`` windows are gathered or ``max_wait_s`` has passed since it took the
first one, runs ``fn`` once on all of them and hands each request its rows. Requests that arrive
while the model is busy are batched on the next round (so under load batches fill up without any
waiting). A request is never split across batches; ``max_batch=1`` scores every request on its
own (unbatched serving, the benchmark's reference). Works from the event loop (``await
asyncio.wrap_future(...)``) and from plain threads (``.result()``, the WebSocket streams).
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

__all__ = ["BatchStats", "MicroBatcher"]


@dataclass
class BatchStats:
    requests: int = 0
    windows: int = 0
    batches: int = 0
    busy_s: float = 0.0
    largest_batch: int = 0

    def to_dict(self) -> dict:
        return {"requests": self.requests, "windows": self.windows, "batches": self.batches,
                "mean_batch_windows": self.windows / self.batches if self.batches else 0.0,
                "largest_batch_windows": self.largest_batch, "busy_s": round(self.busy_s, 3)}


class MicroBatcher:
    """``fn(windows (N, ...)) -> (scores (N,), decisions (N,))`` behind a batching worker thread."""

    def __init__(self, fn, *, max_batch: int = 64, max_wait_s: float = 0.002, name: str = "batcher"):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s}")
        self.fn = fn
        self.max_batch = int(max_batch)
        self.max_wait_s = float(max_wait_s)
        self.stats = BatchStats()
        self._queue: queue.Queue = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"latentbridge-{name}", daemon=True)
        self._thread.start()

    @property
    def batching(self) -> bool:
        return self.max_batch > 1

    def submit(self, windows: np.ndarray) -> Future:
        fut: Future = Future()
        if self._closed:
            fut.set_exception(RuntimeError("the server is shutting down"))
            return fut
        self._queue.put((np.asarray(windows), fut))
        return fut

    def __call__(self, windows: np.ndarray):
        """Blocking form (for threads): the scores and decisions of ``windows``."""
        return self.submit(windows).result()

    def close(self) -> None:
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _gather(self, first) -> list:
        batch = [first]
        n = len(first[0])
        deadline = time.monotonic() + self.max_wait_s
        while n < self.max_batch:
            timeout = deadline - time.monotonic()
            try:
                item = self._queue.get_nowait() if timeout <= 0 else self._queue.get(timeout=timeout)
            except queue.Empty:
                break
            if item is None:  # closing: finish this batch, then stop
                self._queue.put(None)
                break
            if n + len(item[0]) > self.max_batch and self.max_batch > 1:
                # would overflow: keep it for the next round (a request is never split)
                self._pending = item
                break
            batch.append(item)
            n += len(item[0])
        return batch

    def _run(self) -> None:
        self._pending = None
        while True:
            item = self._pending if self._pending is not None else self._queue.get()
            self._pending = None
            if item is None:
                return
            batch = [item] if self.max_batch == 1 else self._gather(item)
            sizes = [len(w) for w, _ in batch]
            t0 = time.perf_counter()
            try:
                windows = batch[0][0] if len(batch) == 1 else np.concatenate([w for w, _ in batch], axis=0)
                scores, decisions = self.fn(windows)
                scores, decisions = np.asarray(scores), np.asarray(decisions)
            except BaseException as e:  # noqa: BLE001 - handed to every waiting request
                for _, fut in batch:
                    fut.set_exception(e)
                continue
            finally:
                self.stats.busy_s += time.perf_counter() - t0
            self.stats.batches += 1
            self.stats.requests += len(batch)
            self.stats.windows += sum(sizes)
            self.stats.largest_batch = max(self.stats.largest_batch, sum(sizes))
            offset = 0
            for (_, fut), n in zip(batch, sizes):
                fut.set_result((scores[offset:offset + n], decisions[offset:offset + n]))
                offset += n
