"""``WS /api/models/{name}/stream``: live anomaly scores of a PCM stream, window by window.

Protocol. The client's first message is JSON ``{"sample_rate": SR, "format": "f32" | "s16"}``
(optional ``"channels"``, default 1: interleaved frames are averaged to mono as a device's are, or the model's
channel picked, or every channel kept, as its ``audio.channel`` reads a file; optional ``"live"``, default false:
see below).
The server answers ``{"type": "ready", ...}`` (the model's window, hop, rate and threshold), then
takes binary messages of little-endian PCM and sends one JSON message per window
``{"type": "window", "start_s", "end_s", "score", "is_anomaly", "decision", "overflows",
"dropped_blocks", "wall_time"}``. A text message ``{"end": true}`` says the recording is over:
its last windows are cut as ``anomaly score`` cuts a file, a ``{"type": "end", ...}`` summary
follows and the server closes (1000). ``{"type": "warning", "detail": ...}`` messages say what the scoring notices
of the input (the first window of digital silence: a muted or disconnected input; clipping), as ``anomaly listen``
warns. Problems are one ``{"type": "error", "detail": ...}`` message
and a close (1008 policy: any other text message, or none for 60 s; 1007 bad data, a recording too short to score
among them; 1009 too big; 1011 the server's own failure).

The scoring is :func:`latentbridge.tasks.listen.listen` itself, run in a thread per stream on a
:class:`~latentbridge.io.capture.BlockFeed` (the device capture's bounded queue). When scoring falls behind, a
recording sent faster than real time (``live`` false) waits: the server reads no more of the socket until the queue
has room, so every sample is scored and the windows' times are the recording's (blocks were dropped: a 5-minute WAV
sent at once lost 256 blocks, and audio from 250 s was reported near 4 s). A ``live`` input (a microphone: fresh audio
matters more than all of it) has its waiting blocks dropped and counted like a device's overflows, never buffered
without bound, and the stream goes on. Windows are scored through the model's micro-batcher, so
concurrent streams share model calls with each other and with uploads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading

import numpy as np
from starlette.websockets import WebSocket, WebSocketDisconnect

from latentbridge.errors import LatentbridgeError
from latentbridge.io.audio import MAX_SAMPLE, rate_problem, too_large
from latentbridge.io.capture import BlockFeed, StreamClosed
from latentbridge.tasks.listen import first_window_warnings, listen, live_input_warnings

log = logging.getLogger("latentbridge.serve")

FORMATS = {"f32": ("<f4", 1.0), "s16": ("<i2", 1.0 / 32768.0)}
_DONE = object()


class StreamError(Exception):
    def __init__(self, detail: str, code: int = 1008):
        super().__init__(detail)
        self.detail, self.code = detail, code


def parse_start(text: str | None) -> tuple[int, str, int, bool]:
    """The first message → (sample_rate, format, channels, live); StreamError when it is not one."""
    if text is None:
        raise StreamError('the first message must be JSON text {"sample_rate": SR, "format": "f32"|"s16"}')
    msg = _json(text, "the first message is not JSON")
    if not isinstance(msg, dict):
        raise StreamError("the first message must be a JSON object")
    given, fmt, ch = msg.get("sample_rate"), msg.get("format", "f32"), msg.get("channels", 1)
    sr = int(given) if isinstance(given, float) and given.is_integer() and abs(given) < 1e9 else given
    if not isinstance(sr, int) or isinstance(sr, bool) or not 1 <= sr <= 384000:  # a 200-Hz sensor's own rate too
        raise StreamError(f"sample_rate must be an integer from 1 to 384000 Hz, got {given!r}")
    if fmt not in FORMATS:
        raise StreamError(f"format must be one of {sorted(FORMATS)}, got {fmt!r}")
    if not isinstance(ch, int) or isinstance(ch, bool) or not 1 <= ch <= 32:
        raise StreamError(f"channels must be an integer from 1 to 32, got {ch!r}")
    live = msg.get("live", False)
    if not isinstance(live, bool):
        raise StreamError(f"live must be true (a live input: blocks dropped when scoring falls behind) or false (a "
                          f"recording: every sample scored), got {live!r}")
    return sr, fmt, ch, live


def _json(text: str, what: str):
    """A text message's JSON; StreamError (1008) saying ``what`` for text that is none or that cannot be read (nested
    too deep for the parser, a number of thousands of digits: a traceback and a close without a word before)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise StreamError(f"{what} ({str(e)[:120]})") from None


def check_channels(det, channels: int) -> None:
    """StreamError when a stream of ``channels`` cannot give the model its input: every channel of the recordings it
    was fitted on (``audio.channel: all``), or channel K."""
    channel = det.spec.windowing.channel
    if channel == "all" and channels != det.n_channels:
        raise StreamError(f"the model reads every channel of {det.n_channels}-channel recordings: send "
                          f'"channels": {det.n_channels} (got {channels})')
    if isinstance(channel, int) and channels <= channel:
        raise StreamError(f"the model reads channel {channel} (0-based): send at least {channel + 1} channels "
                          f"(got {channels})")


def decode_frame(data: bytes, fmt: str, channels: int) -> np.ndarray:
    """Binary PCM → ``(n, channels)`` float32; StreamError (1007) for a partial frame or NaN/inf."""
    dtype, scale = FORMATS[fmt]
    width = np.dtype(dtype).itemsize * channels
    if len(data) % width:
        raise StreamError(f"a binary message of {len(data)} bytes is not a whole number of {fmt} frames of "
                          f"{channels} channel(s) ({width} bytes each)", 1007)
    x = np.frombuffer(data, dtype=dtype).astype(np.float32) * np.float32(scale)
    finite = np.isfinite(x)
    if not finite.all():
        n_nan = int(np.isnan(x).sum())
        raise StreamError(f"<stream>: contains {int(x.size - finite.sum())} non-finite samples ({n_nan} NaN, "
                          f"{int(x.size - finite.sum()) - n_nan} inf) in one message", 1007)
    if x.size and (peak := float(np.abs(x).max())) > MAX_SAMPLE:
        raise StreamError(str(too_large("<stream>", peak)), 1007)
    return x.reshape(-1, channels)


async def run_stream(ws: WebSocket, served, batcher, *, queue_blocks: int, max_frame_bytes: int,
                     first_message_timeout_s: float = 30.0) -> None:
    """Serve one accepted WebSocket until the recording ends or the client goes away."""
    det = served.detector
    w = det.spec.windowing
    try:
        first = await asyncio.wait_for(ws.receive(), timeout=first_message_timeout_s)
        if first["type"] == "websocket.disconnect":
            return
        sr, fmt, channels, live = parse_start(first.get("text"))
        if problem := rate_problem(sr, det.sample_rate):  # the rule of a file's rate
            raise StreamError(f"<stream>: {problem}")
        check_channels(det, channels)
    except asyncio.TimeoutError:
        return await _fail(ws, StreamError(f"no start message within {first_message_timeout_s:g} s"))
    except StreamError as e:
        return await _fail(ws, e)

    loop = asyncio.get_running_loop()
    outbox: asyncio.Queue = asyncio.Queue()
    feed = BlockFeed(queue_blocks, channels)
    threshold = det.threshold

    def post(msg) -> None:
        try:
            loop.call_soon_threadsafe(outbox.put_nowait, msg)
        except RuntimeError:  # the event loop is gone (server shutting down): nobody to tell
            feed.abort()

    def on_window(event: dict) -> None:
        post({"type": "window", **event, "decision": "anomalous" if event["is_anomaly"] else "normal",
              "dropped_blocks": feed.stats.dropped_blocks})

    relay = _Relay(post)  # the listen loop's warnings (digital silence, clipping) reach the client, not only the log

    def work() -> None:
        msg = None
        relay.thread = threading.get_ident()
        logging.getLogger("latentbridge.tasks.listen").addHandler(relay)
        try:
            summary = listen(batcher, sample_rate=sr, model_rate=det.sample_rate, window_s=w.window_s,
                             hop_s=w.hop_s, source=feed, channels=channels, out=None, pad=w.pad, flush=True,
                             on_window=on_window, stats=feed.stats, channel=w.channel, min_share=w.min_share,
                             first_window=first_window_warnings(det, f"the stream's {sr}-Hz audio", sr))
            msg = {"type": "end", **summary, "dropped_blocks": feed.stats.dropped_blocks,
                   "dropped_frames": feed.stats.dropped_frames}
        except StreamClosed:
            pass
        except LatentbridgeError as e:  # e.g. a recording too short to score: the CLI's message
            msg = {"type": "error", "detail": str(e), "code": 1007}
        except Exception as e:  # noqa: BLE001 - reported to the client, the server goes on
            log.exception("stream of model %s failed", served.name)
            msg = {"type": "error", "detail": f"internal error while scoring: {type(e).__name__}", "code": 1011}
        finally:
            logging.getLogger("latentbridge.tasks.listen").removeHandler(relay)
        post(msg if msg is not None else _DONE)

    try:
        await ws.send_json({"type": "ready", "model": served.name, "sample_rate": sr, "format": fmt,
                            "channels": channels, "model_sample_rate": det.sample_rate, "window_s": w.window_s,
                            "hop_s": w.hop_s, "threshold": threshold, "score": det.method, "live": live,
                            "warnings": live_input_warnings(det, sr, f"the stream's {sr}-Hz audio")})
    except GONE:  # hung up after its start message: a line, not the ASGI server's traceback
        log.info("stream of model %s: the client went away before it was ready", served.name)
        return
    worker = threading.Thread(target=work, name=f"latentbridge-stream-{served.name}", daemon=True)
    worker.start()
    sender = asyncio.create_task(_send_all(ws, outbox))
    receiver = asyncio.create_task(_receive_all(ws, feed, fmt, channels, max_frame_bytes, live=live))
    done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    if receiver in done:
        err = receiver.exception()
        if isinstance(err, StreamError):
            feed.abort()
            sender.cancel()
            return await _fail(ws, err)
        if err is not None or receiver.result() == "disconnect":
            feed.abort()
            sender.cancel()
            return
        code = await sender  # the recording ended: the last windows and the summary, then close
    else:
        receiver.cancel()
        receiver.add_done_callback(lambda task: task.cancelled() or task.exception())  # (retrieved: no log line)
        feed.abort()
        code = sender.result()
    try:
        await ws.close(code=code)
    except GONE:
        pass  # already closed


#: what sending to a client that went away raises (uvicorn's ClientDisconnected is an OSError)
GONE = (WebSocketDisconnect, RuntimeError, OSError)
#: a stream whose client sends nothing for this long is closed (it held a thread without end)
IDLE_TIMEOUT_S = 60.0


class _Relay(logging.Handler):
    """A stream's warnings from its scoring thread (``thread``), posted to its client as ``{"type": "warning",
    "detail"}``: a muted input's windows read "anomalous" one after the other, the reason only in the server's log."""

    def __init__(self, post):
        super().__init__(logging.WARNING)
        self.post, self.thread = post, None

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.post({"type": "warning", "detail": record.getMessage()})


async def _receive_all(ws: WebSocket, feed: BlockFeed, fmt: str, channels: int, max_frame_bytes: int,
                       idle_s: float = IDLE_TIMEOUT_S, live: bool = False) -> str:
    clock = asyncio.get_running_loop().time
    deadline = clock() + idle_s  # renewed by audio and text; an empty binary message held a stream open without end
    while True:
        while not live and feed.full and not feed.closed:  # a recording waits for room: nothing of it is dropped
            await asyncio.sleep(0.005)
            deadline = clock() + idle_s
        try:
            message = await asyncio.wait_for(ws.receive(), timeout=max(0.0, deadline - clock()))
        except asyncio.TimeoutError:
            raise StreamError(f"no audio or text for {idle_s:g} s: the stream is closed (send audio, or "
                              '{"end": true} when the recording is over)') from None
        except WebSocketDisconnect:
            return "disconnect"
        if message["type"] == "websocket.disconnect":
            return "disconnect"
        data = message.get("bytes")
        if data is not None:
            if len(data) > max_frame_bytes:
                raise StreamError(f"a binary message of {len(data)} bytes is over the limit of {max_frame_bytes}",
                                  1009)
            if feed.closed:  # the scoring ended (or the stream was closed) while this message came in
                return "closed"
            if data:
                feed.push(decode_frame(data, fmt, channels))
                deadline = clock() + idle_s
            continue
        msg = _json(message.get("text") or "", 'text messages after the first must be JSON ({"end": true})')
        if not (isinstance(msg, dict) and msg.get("end") is True):  # {"end": "no"} ended it; [1, 2] was ignored
            raise StreamError(f'the only text message after the first is {{"end": true}}, got {str(msg)[:80]}')
        feed.end()
        return "end"


async def _send_all(ws: WebSocket, outbox: asyncio.Queue) -> int:
    """Send the worker's messages; the close code the stream ends with (1007 after an error of the data)."""
    while True:
        msg = await outbox.get()
        if msg is _DONE:
            return 1000
        code = msg.pop("code", 1000) if msg.get("type") == "error" else 1000
        try:
            await ws.send_json(msg)
        except GONE:
            return 1000
        if msg["type"] in ("end", "error"):
            return code


async def _fail(ws: WebSocket, err: StreamError) -> None:
    try:
        await ws.send_json({"type": "error", "detail": err.detail})
        await ws.close(code=err.code)
    except GONE:
        pass
