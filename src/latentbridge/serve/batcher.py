"""Dynamic micro-batching: concurrent scoring requests share one call of the model.

A :class:`MicroBatcher` owns one worker thread (inference never runs on the event loop). Callers
submit the windows of one request (``(n, window_samples)`` waveforms) and get a
:class:`concurrent.futures.Future`; the worker takes the first waiting request, then keeps
collecting until ``max_batch`` windows are gathered or ``max_wait_s`` has passed since it took the
first one, runs ``fn`` once on all of them and hands each request its rows. Requests that arrive
while the model is busy are batched on the next round (so under load batches fill up without any
waiting). A request is never split across batches; ``max_batch=1`` scores every request on its
own (unbatched serving, the benchmark's reference). Works from the event loop (``await
asyncio.wrap_future(...)``) and from plain threads (``.result()``, the WebSocket streams).

Results equal the unbatched ones up to float rounding, not bit for bit: CPU kernels take other
code paths for other batch sizes, so a window's score moves by about 1e-6 relative with the number
of windows in its model call. Padding every call to one shape would make them bit-identical (checked)
at the price of scoring the padding: 60 % more model work at the mean batch of 10 windows that
benchmarks/README.md §7 measured under load (padded to the default 16).

Order: shortest request first (fewest windows; ties by arrival), so a 2-s clip does not queue
behind the windows of long uploads; a request that has waited ``max_age_s`` goes ahead of every
younger one (oldest first), so long requests are never starved. Where an overdue request does not fit
the room left in a batch, the shortest requests fill that room and the overdue one opens the next
batch (a batch that left with the room empty kept short requests waiting behind every overdue one:
on a machine where long uploads waited about ``max_age_s`` under load, that was the 2-s clips' tail).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass

import numpy as np

__all__ = ["BatchStats", "MicroBatcher"]


class ShuttingDown(RuntimeError):
    """The server is shutting down: it takes no more work (answered 503)."""


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

    def __init__(self, fn, *, max_batch: int = 16, max_wait_s: float = 0.002, max_age_s: float = 1.0,
                 name: str = "batcher"):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s}")
        if max_age_s <= 0:
            raise ValueError(f"max_age_s must be > 0, got {max_age_s}")
        self.fn = fn
        self.max_batch = int(max_batch)
        self.max_wait_s = float(max_wait_s)
        self.max_age_s = float(max_age_s)
        self.stats = BatchStats()
        # the same entries [n_windows, seq, arrival, windows, future, taken] in two heaps: fewest
        # windows first, and oldest first; a taken entry is dropped from a heap when it surfaces
        self._short: list = []
        self._arrivals: list = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"latentbridge-{name}", daemon=True)
        self._thread.start()

    @property
    def batching(self) -> bool:
        return self.max_batch > 1

    def submit(self, windows: np.ndarray) -> Future:
        fut: Future = Future()
        windows = np.asarray(windows)
        with self._cond:
            if self._closed:
                fut.set_exception(ShuttingDown("the server is shutting down"))
                return fut
            seq = next(self._seq)
            entry = [len(windows), seq, time.monotonic(), windows, fut, False]
            heapq.heappush(self._short, entry)
            heapq.heappush(self._arrivals, (seq, entry))
            self._cond.notify()
        return fut

    def __call__(self, windows: np.ndarray):
        """Blocking form (for threads): the scores and decisions of ``windows``."""
        return self.submit(windows).result()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5)

    def _drop_taken(self) -> None:
        while self._short and self._short[0][5]:
            heapq.heappop(self._short)
        while self._arrivals and self._arrivals[0][1][5]:
            heapq.heappop(self._arrivals)

    def _next(self, room: int):
        """The next request to serve with at most ``room`` windows (any size when ``room`` is None),
        or None; call with the lock held."""
        self._drop_taken()
        if not self._short:
            return None
        oldest = self._arrivals[0][1]
        if time.monotonic() - oldest[2] >= self.max_age_s and (room is None or oldest[0] <= room):
            entry = oldest
        else:  # the shortest: also where an overdue request does not fit what is left of this batch (it opens
            # the next one), so that short requests fill the room instead of the batch leaving with it
            entry = self._short[0]
        if room is not None and entry[0] > room:
            return None
        entry[5] = True
        self._drop_taken()
        return entry

    def _take_batch(self) -> list | None:
        """Wait for requests and gather one batch; None when closed and drained."""
        with self._cond:
            while True:
                first = self._next(None)
                if first is not None:
                    break
                if self._closed:
                    return None
                self._cond.wait()
            batch = [first]
            if self.max_batch == 1:
                return batch
            n = first[0]
            deadline = time.monotonic() + self.max_wait_s
            while n < self.max_batch:
                item = self._next(self.max_batch - n)
                if item is not None:
                    batch.append(item)
                    n += item[0]
                    continue
                timeout = deadline - time.monotonic()
                if timeout <= 0 or self._closed or self._short:
                    break  # time is up, or what waits would overflow the batch (never split)
                self._cond.wait(timeout)
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            sizes = [e[0] for e in batch]
            t0 = time.perf_counter()
            try:
                windows = batch[0][3] if len(batch) == 1 else np.concatenate([e[3] for e in batch], axis=0)
                scores, decisions = self.fn(windows)
                scores, decisions = np.asarray(scores), np.asarray(decisions)
            except BaseException as e:  # noqa: BLE001 - handed to every waiting request
                for entry in batch:
                    _settle(entry[4], error=e)
                continue
            finally:
                self.stats.busy_s += time.perf_counter() - t0
            self.stats.batches += 1
            self.stats.requests += len(batch)
            self.stats.windows += sum(sizes)
            self.stats.largest_batch = max(self.stats.largest_batch, sum(sizes))
            offset = 0
            for entry, n in zip(batch, sizes):
                _settle(entry[4], (scores[offset:offset + n], decisions[offset:offset + n]))
                offset += n


def _settle(fut: Future, result=None, error: BaseException | None = None) -> None:
    """``fut``'s result or error, unless its request was cancelled meanwhile (the server shutting down cancels the
    requests still waiting: setting theirs raised InvalidStateError and ended the batching thread, every later
    request waiting on it for ever)."""
    try:
        fut.set_exception(error) if error is not None else fut.set_result(result)
    except InvalidStateError:  # cancelled
        pass
