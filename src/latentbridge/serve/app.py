"""The FastAPI application: REST endpoints, the WebSocket stream and the web page over saved models.

A thin caller of the task functions, as the CLI is: an upload is read by the same reader with
the same checks (its :class:`~latentbridge.errors.DataError` becomes a 422 with the CLI's
message, naming the client's file name, never a server path), anomaly windows are cut by the
detector's extractor and scored by :meth:`~latentbridge.tasks.anomaly.Detector.score_windows`
through a :class:`~latentbridge.serve.batcher.MicroBatcher`; multimodal predictions are
:func:`latentbridge.tasks.multimodal.predict_recording` and the digit translations of
:mod:`latentbridge.tasks.avdigits`. Nothing runs model code on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile, WebSocket
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from latentbridge import __version__
from latentbridge.errors import DataError, LatentbridgeError, Stopped
from latentbridge.utils import MAX_SEED, forget_said
from latentbridge.serve import media
from latentbridge.serve.batcher import MicroBatcher
from latentbridge.io.images import IMAGE_EXTENSIONS, spectrogram_picture
from latentbridge.io.vibration import MAX_RATE
from latentbridge.serve.registry import ServedModel, load_models
from latentbridge.serve.schema import (EnhanceResponse, PredictResponse, SampleResponse, ScoreResponse,
                                      document_api_key, errors)
from latentbridge.serve.security import ApiKeyMiddleware, RequestLogMiddleware, UploadLimitMiddleware, api_key_problem
from latentbridge.serve.common import add_error_handlers, in_thread, receive, served_model, while_connected
from latentbridge.serve.uploads import Upload
from latentbridge.tasks.enhance import SEED_RANGE

log = logging.getLogger("latentbridge.serve")
STATIC = Path(__file__).parent / "static"
#: the limits ``latentbridge serve`` sets, by the option that sets each: what a refusal names (the other settings are
#: set from Python and named as fields)
OPTIONS = {"max_upload_mb": "--max-upload-mb", "max_duration_s": "--max-duration", "max_values": "--max-values",
           "max_batch": "--max-batch", "max_wait_ms": "--max-wait-ms", "max_age_ms": "--max-age-ms",
           "stream_queue_blocks": "--stream-queue-blocks", "max_streams": "--max-streams",
           "shutdown_grace_s": "--shutdown-grace"}


@dataclass
class ServeSettings:
    """Everything ``latentbridge serve`` can set (see its ``--help``)."""

    api_key: str | None = None
    max_upload_mb: float = 50.0
    max_duration_s: float = 600.0
    max_batch: int = 16
    """Most windows scored in one model call; 1 switches micro-batching off."""
    max_wait_ms: float = 2.0
    """How long the batcher waits for more requests after the first one of a batch."""
    max_age_ms: float = 1000.0
    """Shortest requests are scored first; one that has waited this long goes ahead of younger ones."""
    cors_origins: tuple[str, ...] = ()
    stream_queue_blocks: int = 256
    max_streams: int = 32
    """Most live WebSocket streams at once (each holds a scoring thread and its queue); one more is refused (503)."""
    max_frame_bytes: int = 1 << 20
    gl_iterations: int = 32
    decode_threads: int = 4
    max_values: int = 100_000_000
    """Most values of an array to enhance (pixels x channels) or of an audio upload decoded (frames x channels): 413
    above; the memory and the work grow with them, not with the upload's compressed size."""
    shutdown_grace_s: float = 10.0
    """On SIGTERM / Ctrl-C, requests still running this many seconds later are cancelled."""

    def __post_init__(self):
        for name in ("max_upload_mb", "max_duration_s", "max_batch", "max_age_ms", "stream_queue_blocks", "max_streams",
                     "max_frame_bytes", "gl_iterations", "decode_threads", "max_values", "shutdown_grace_s"):
            value = getattr(self, name)
            if not 0 < value < np.inf:  # inf: an upload limit was int()'s OverflowError, a traceback
                raise LatentbridgeError(f"serve: {OPTIONS.get(name, name)} must be positive"
                                        f"{' and finite' if value > 0 else ''}, got {value}")
        if not 0 <= self.max_wait_ms < np.inf:  # nan or inf: a lone request waited without end for its batch
            raise LatentbridgeError(f"serve: --max-wait-ms must be >= 0 and finite, got {self.max_wait_ms}")
        if self.api_key is not None and (problem := api_key_problem(self.api_key)):
            raise LatentbridgeError(f"serve: {problem}")
        import re

        for origin in self.cors_origins:  # one no browser sends (no scheme: localhost:3000) matched nothing, unsaid
            port = re.search(r":(\d+)$", origin)  # lower case, no wildcard in a name, a port to 65535: as a browser
            if origin not in ("*", "null") and (not re.fullmatch(r"[a-z][a-z0-9+.-]*://[a-z0-9.\-_~\[\]:]+", origin)
                                                or (port is not None and int(port.group(1)) > 65535)):  # sends it
                raise LatentbridgeError(f"serve: --cors-origin {origin!r}: an origin is scheme://host[:port] as a "
                                        "browser sends it (e.g. http://localhost:3000, no path), null (a file:// "
                                        "page) or *")


class SampleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a key it does not take is named ("eta", "num_samples" went unread)
    n: int = Field(4, ge=1, le=16)
    seed: int = Field(0, ge=0, le=MAX_SEED)  # `latentbridge sample --seed`'s range (2**70: a 500 from torch)
    # diffusion models (unset: the run's sampling settings)
    label: StrictStr | StrictInt | None = None  # a class name or index (true read as class 1)
    guidance: float | None = Field(None, ge=0, le=20, allow_inf_nan=False)
    steps: int | None = Field(None, ge=1, le=1000)
    scheduler: Literal["ddpm", "ddim", "dpm"] | None = None
    condition: list[float] | None = None


def _fastapi(**kwargs) -> FastAPI:
    """A FastAPI application whose /docs and /redoc pages load their scripts from this server (the
    ``fastapi-offline`` package of the serve extra: a server on a network without internet access had a
    blank /docs page, its script on a CDN); FastAPI's own pages where that package is missing
    (``app.state.docs_offline`` says which)."""
    try:
        from fastapi_offline import FastAPIOffline
    except ImportError:
        app = FastAPI(**kwargs)
        app.state.docs_offline = False
    else:
        app = FastAPIOffline(**kwargs)
        app.state.docs_offline = True
    return app


def create_app(models: dict[str, ServedModel] | list, settings: ServeSettings | None = None) -> FastAPI:
    """The application serving ``models`` (loaded :class:`ServedModel` objects by name, or model
    folders to load)."""
    settings = settings or ServeSettings()
    if not isinstance(models, dict):
        models = load_models(models)
    batchers = {name: MicroBatcher(m.detector.score_windows, max_batch=settings.max_batch,
                                   max_wait_s=settings.max_wait_ms / 1000.0,
                                   max_age_s=settings.max_age_ms / 1000.0, name=f"batch-{name}")
                for name, m in models.items() if m.detector is not None}
    decode_pool = ThreadPoolExecutor(max_workers=settings.decode_threads, thread_name_prefix="latentbridge-decode")
    model_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="latentbridge-predict")

    @asynccontextmanager
    async def lifespan(app):
        yield
        for b in batchers.values():
            b.close()
        decode_pool.shutdown(wait=False, cancel_futures=True)
        model_pool.shutdown(wait=False, cancel_futures=True)

    app = _fastapi(title="latentbridge", version=__version__, lifespan=lifespan,
                   description="Scores, predictions and live streams of saved latentbridge models.")
    app.state.models, app.state.settings, app.state.batchers = models, settings, batchers
    live_streams = [0]  # WebSocket streams open now (the event loop's own counter: no lock)

    def get(name: str, endpoint: str) -> ServedModel:
        return served_model(models, name, endpoint)

    add_error_handlers(app, models)

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.head("/healthz", include_in_schema=False)  # load balancers' and uptime checks' method (405 before)
    async def healthz_head():
        return Response()

    @app.get("/healthz", summary="Liveness, the served models and the micro-batching counters")
    async def healthz():
        return {"status": "ok", "version": __version__, "models": sorted(models),
                "batching": {n: {"max_batch": b.max_batch, "max_wait_ms": b.max_wait_s * 1000,
                                 "max_age_ms": b.max_age_s * 1000, **b.stats.to_dict()}
                             for n, b in batchers.items()}}

    @app.get("/api/models", summary="Every served model: task, card, threshold, input format")
    async def list_models():
        return [m.describe() for m in models.values()]

    @app.get("/api/models/{name}", summary="One served model", responses=errors(404, 422))
    async def one_model(name: str):
        m = models.get(name)
        if m is None:
            raise HTTPException(404, f"no model named {name!r}; served: {', '.join(sorted(models))}")
        return m.describe()

    @app.post("/api/models/{name}/score", summary="Anomaly scores of an uploaded recording",
              responses={200: {"model": ScoreResponse}, **errors(400, 404, 408, 413, 422)})
    async def score(request: Request, name: str, file: UploadFile = File(...), spectrogram: bool = Query(False),
                    sample_rate: float | None = Form(None, gt=0, le=MAX_RATE, allow_inf_nan=False,
                                                    description="Hz of a vibration CSV or .mat file "
                                                    "that gives no rate (default: the model's)"),
                    rate_query: float | None = Query(None, alias="sample_rate", gt=0, le=MAX_RATE,
                                                     allow_inf_nan=False, description="the same, in the query")):
        m = get(name, "score")
        if sample_rate is not None and rate_query is not None and sample_rate != rate_query:
            raise HTTPException(422, f"sample_rate given twice: {sample_rate:g} in the form, {rate_query:g} in the "
                                     "query")
        sample_rate = sample_rate if sample_rate is not None else rate_query
        up = await receive(file, request)
        try:
            t0 = time.perf_counter()
            try:
                (wave, windows, starts_s, padded, info, read), said = await while_connected(
                    request, decode_pool, up.told, _read_windows, m, up.path, settings, sample_rate)
            except DataError as e:
                raise up.error(e) from None
            except HTTPException as e:
                raise HTTPException(e.status_code, f"{up.client_name}: {e.detail}") from None
            t1 = time.perf_counter()
            scores, decisions = await asyncio.wrap_future(batchers[name].submit(windows))
            t2 = time.perf_counter()
            from latentbridge.tasks.anomaly import no_decision
            from latentbridge.tasks.anomaly_checks import single_file_notes

            if (problem := no_decision(scores)) is not None:  # anomaly score's rule (JSON has no NaN: it was a 500)
                raise HTTPException(422, f"{up.client_name}: {problem}")
            result = _score_result(m, up.client_name, read["duration_s"], scores, decisions, starts_s, padded)
            notes, conversions = single_file_notes(m.detector, m.extractor, up.client_name, info, wave,
                                                   read["clipped_share"], windows[0])
            result["warnings"] = said + notes
            result["input"] = {"sample_rate": int(info.sample_rate), "channels": int(info.channels),
                               "conversions": conversions or None}
            if sample_rate is not None and info.sample_rate != round(sample_rate):  # the file gives its own rate
                result["warnings"].append(f"sample_rate {sample_rate:g} Hz ignored: {up.client_name} gives its own "
                                          f"rate, {info.sample_rate} Hz (the rate is for files that give none)")
            result["timing_ms"] = {"read_and_window": round(1000 * (t1 - t0), 2), "score": round(1000 * (t2 - t1), 2)}
            if spectrogram:
                result["spectrogram"] = await in_thread(decode_pool, media.display_spectrogram, wave,
                                                        m.detector.spec, read["lead_s"])
            return result
        finally:
            up.close()

    @app.websocket("/api/models/{name}/stream")
    async def stream(ws: WebSocket, name: str):
        from latentbridge.serve.stream import run_stream

        async def deny(status: int, detail: str, code: int, headers: dict | None = None):
            try:  # an HTTP answer to the handshake, where the server can send one; else a close with the reason
                await ws.send_denial_response(JSONResponse({"detail": detail}, status_code=status, headers=headers))
            except RuntimeError:
                await ws.close(code=code, reason=detail[:120])

        m = models.get(name)
        if m is None or "stream" not in m.endpoints:
            return await deny(404, f"no model named {name!r}" if m is None
                              else f"model {name!r} (task {m.task}) has no stream", 1008)
        if live_streams[0] >= settings.max_streams:  # each holds a thread and a queue: never without bound
            log.warning("stream to %s refused: %d live streams, the limit (--max-streams)", name, live_streams[0])
            return await deny(503, f"{live_streams[0]} live streams already, the server's limit (latentbridge serve "
                                   "--max-streams); try again later", 1013, {"Retry-After": "10"})
        live_streams[0] += 1
        try:
            await ws.accept()
            await run_stream(ws, m, batchers[name], queue_blocks=settings.stream_queue_blocks,
                             max_frame_bytes=settings.max_frame_bytes)
        finally:
            live_streams[0] -= 1

    @app.post("/api/models/{name}/predict",
              summary="Multimodal prediction: vibration CSV → crack mask; spoken digit ↔ image",
              responses={200: {"model": PredictResponse}, **errors(400, 404, 408, 413, 422)})
    async def predict(request: Request, name: str, file: UploadFile = File(...), route: str | None = Form(None),
                      scale: int = Form(8, ge=1, le=16),
                      sample_rate: float | None = Form(None, gt=0, le=MAX_RATE, allow_inf_nan=False)):
        m = get(name, "predict")
        if route is not None and m.task != "avdigits":  # (it went unread)
            raise HTTPException(422, f"route is a digits model's (posterior or bridge); model {name!r} ({m.task}) "
                                     "takes none")
        up = await receive(file, request)
        try:
            try:
                result, said = await in_thread(model_pool, up.told, _predict, m, up, route or "posterior", scale,
                                               settings, sample_rate)
                return {**result, "warnings": said}
            except DataError as e:
                raise up.error(e) from None
        finally:
            up.close()

    @app.post("/api/models/{name}/sample",
              summary="Seeded samples of a generative model: image + audio pairs (avdigits), images (diffusion)",
              responses={200: {"model": SampleResponse}, **errors(400, 404, 422)})
    async def sample(name: str, body: SampleRequest):
        m = get(name, "sample")
        if m.task == "diffusion":
            return await in_thread(model_pool, _sample_images, m, body)
        if given := sorted(body.model_fields_set - {"n", "seed"}):  # a diffusion model's settings, unread here
            raise HTTPException(422, f"{', '.join(given)}: settings of a diffusion model's samples; model {name!r} "
                                     f"({m.task}) takes n and seed")
        from latentbridge.tasks.avdigits import sample_saved

        res = await in_thread(model_pool, lambda: sample_saved(m.saved, body.n, seed=body.seed,
                                                               gl_iterations=settings.gl_iterations))
        out = res.groups[0]  # the pairs from the prior
        return {"model": name, "seed": body.seed, "n": body.n, "sample_rate": m.saved.transform.sample_rate,
                "images_png": [media.png_base64(i, 8) for i in out["image"]],
                "wavs": [media.wav_base64(w, m.saved.transform.sample_rate) for w in out["waves"]]}

    @app.post("/api/models/{name}/enhance",
              summary="Spatial maps enhanced (denoise, inpaint, 2x upscale) with a per-pixel uncertainty",
              responses={200: {"model": EnhanceResponse}, **errors(400, 404, 408, 413, 422)})
    async def enhance(request: Request, name: str, file: UploadFile = File(...),
                      mask: UploadFile | None = File(None),
                      task: Literal["denoise", "inpaint", "upscale"] = Form("denoise"),
                      seed: int = Form(0, ge=SEED_RANGE[0], le=SEED_RANGE[1]),
                      samples: int | None = Form(None, ge=1, le=64)):
        m = get(name, "enhance")
        up = await receive(file, request)
        up_mask = await receive(mask, request, "mask") if mask is not None else None
        try:
            try:
                result, said = await while_connected(request, model_pool, up.told, _enhance, m, up, up_mask, task,
                                                     seed, samples, settings.max_values)
                if up_mask is not None:  # the mask by the client's name too
                    said = [t.replace(str(up_mask.path), up_mask.client_name) for t in said]
                return {**result, "warnings": said}
            except DataError as e:
                owner = up_mask if up_mask is not None and e.path == str(up_mask.path) else up
                err = owner.error(e)
                if owner is up_mask:  # a mask's error names the section too, by its temporary name
                    err.detail = err.detail.replace(str(up.path), up.client_name).replace(up.path.name, up.client_name)
                raise err from None
        finally:
            up.close()
            if up_mask is not None:
                forget_said(str(up_mask.path.parent))
                up_mask.close()

    # guards, outermost last: log → (CORS: its headers on the guards' 401 and 413 too) → key → size limit → app
    app.add_middleware(UploadLimitMiddleware, max_bytes=int(settings.max_upload_mb * 2**20))
    if settings.api_key:
        app.add_middleware(ApiKeyMiddleware, api_key=settings.api_key)
        document_api_key(app)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["X-API-Key", "Authorization", "Content-Type"])
    app.add_middleware(RequestLogMiddleware)
    return app


# ----------------------------------------------------------------------------- compute (worker threads)


def _read_windows(m: ServedModel, path: Path, settings: ServeSettings, csv_rate: float | None = None,
                  stop: threading.Event | None = None):
    """The upload's waveform at the model's rate, its windows and their start times in the recording, whether it was
    padded, its header, and what the reader measured (:meth:`FeatureExtractor.read`'s ``stats``: the recording's
    duration, the silence trimmed before the waveform, its clipped share), by the detector's own extractor
    (read_audio's checks, the short-recording rule, cut_windows with the model's pad mode); ``csv_rate``: the rate of
    a vibration file that gives none (default: the model's); ``stop``: set when the client went away."""

    ex = m.extractor if csv_rate is None else m.detector.extractor(use_cache=False, csv_rate=float(csv_rate))
    info = within_limits(path, settings, ex.csv_rate)  # a vibration CSV too, when the model was fitted on them
    stats: dict = {}
    wave, windows, starts_s = ex.file_windows(path, stats)
    if stop is not None and stop.is_set():  # the client went away while it was read: nothing to score for nobody
        raise Stopped("the client went away")
    return wave, windows, starts_s, wave.shape[-1] < ex.window, info, stats


def within_limits(path: Path, settings: ServeSettings, csv_rate: float | None = None):
    """The upload's header (:func:`~latentbridge.io.audio_info`) once its audio is known to fit the server's limits:
    413 for a duration over ``--max-duration`` or more decoded values (frames x channels) than ``--max-values`` (a
    compressed upload far under ``--max-upload-mb`` decoded to gigabytes: 620 KB of 8-channel FLAC at 384 kHz, 1.4 GB
    of samples)."""
    from latentbridge.io import audio_info

    mat_within_limits(path, settings)
    info = audio_info(path, csv_rate)
    if info.duration_s > settings.max_duration_s:
        raise HTTPException(413, f"audio too long: {info.duration_s:.1f} s; the limit is "
                                 f"{settings.max_duration_s:g} s (latentbridge serve --max-duration)")
    if (values := info.frames * max(1, info.channels)) > settings.max_values:
        raise HTTPException(413, f"audio too large: {info.frames} frames x {info.channels} channels, {values:,} "
                                 f"values once decoded; the limit is {settings.max_values:,} (latentbridge serve "
                                 "--max-values)")
    return info


def mat_within_limits(path: Path, settings: ServeSettings) -> None:
    """413 for a ``.mat`` upload whose arrays hold more values than ``--max-values`` once decoded (read from its
    headers: :func:`~latentbridge.io.matfile.stored_values`)."""
    from latentbridge.io.matfile import stored_values

    if path.suffix.lower() == ".mat" and (values := stored_values(path) or 0) > settings.max_values:
        raise HTTPException(413, f"a .mat file of {values:,} values once decoded; the limit is "
                                 f"{settings.max_values:,} (latentbridge serve --max-values)")


def _score_result(m: ServedModel, client_name: str, duration: float, scores, decisions, starts_s, padded) -> dict:
    """``duration``: the recording's, in seconds (windows end within it, as `anomaly score`'s rows do)."""
    from latentbridge.tasks.anomaly import aggregate_scores

    det = m.detector
    sr = det.sample_rate
    window_s = det.spec.window_samples / sr
    how = det.anomaly_config.aggregate
    file_score = float(aggregate_scores(np.asarray(scores), np.zeros(len(scores), dtype=np.int64), 1, how)[0])
    flagged = file_score > det.threshold
    return {
        "model": m.name, "file": client_name, "sample_rate": sr, "duration_s": duration,
        "window_s": window_s, "hop_s": det.spec.windowing.hop_s, "padded": bool(padded),
        "score": det.method, "aggregate": how, "threshold": det.threshold,
        "windows": [{"start_s": float(s), "end_s": float(min(s + window_s, duration)), "score": float(v),
                     "is_anomaly": bool(d)} for s, v, d in zip(starts_s, scores, decisions)],
        "n_windows": int(len(scores)), "n_anomalous_windows": int(np.sum(decisions)),
        "file_score": file_score, "is_anomaly": bool(flagged), "decision": "anomalous" if flagged else "normal",
    }


def _predict(m: ServedModel, up: Upload, route: str, scale: int, settings: ServeSettings,
             sample_rate: float | None = None) -> dict:
    """``sample_rate``: of a vibration CSV without a time column."""
    from latentbridge.io.audio import AUDIO_EXTENSIONS, RECORDING_EXTENSIONS

    ext = up.path.suffix

    def limited():  # an audio or .mat file's limits (a CSV's text is no denser decoded than uploaded)
        try:
            (within_limits if ext.lower() in AUDIO_EXTENSIONS else mat_within_limits)(up.path, settings)
        except HTTPException as e:
            raise HTTPException(e.status_code, f"{up.client_name}: {e.detail}") from None

    if sample_rate is not None and m.task != "multimodal":
        raise DataError(up.path, "sample_rate is the rate of a vibration CSV without a time column; "
                                 f"this model ({m.task}) reads none")
    if m.task == "multimodal":
        from latentbridge.tasks.multimodal import predict_recording

        if ext.lower() not in RECORDING_EXTENSIONS:
            got = ext or "a file without extension"
            raise DataError(up.path, f"expected a vibration recording (.csv, .mat or an audio file: .wav, .flac, "
                                     f"...), got {got}")
        if ext.lower() != ".csv":
            limited()
        p = predict_recording(m.saved, up.path, sample_rate)
        return {"model": m.name, "file": up.client_name, "kind": "vibration_to_mask",
                "damage_extent": p.extent, "window_damage_extent": p.window_extent.tolist(),
                "window_starts_s": p.starts_s.tolist(), "n_windows": int(len(p.window_extent)),
                "sample_rate": p.sample_rate, "n_channels": p.n_channels, "mask_threshold": p.threshold,
                "crack_fraction": float(p.mask.mean()), "mask_shape": list(p.mask.shape),
                "mask_png": media.png_base64(p.mask, scale),
                "mask_probability_png": media.png_base64(p.mask_prob, scale),
                **({} if p.mask_full is None else {"mask_full_png": media.png_base64(p.mask_full, 1),
                                                   "mask_full_shape": list(p.mask_full.shape)})}
    from latentbridge.tasks.avdigits import image_to_spoken, spoken_to_image

    if ext in AUDIO_EXTENSIONS:
        limited()
        t = spoken_to_image(m.saved, up.path, route)
        return {"model": m.name, "file": up.client_name, "kind": "audio_to_image", "route": t.route,
                "image_png": media.png_base64(t.image, scale), "image_shape": list(t.image.shape),
                "spectrogram_png": media.png_base64(spectrogram_picture(t.audio), 2)}
    if ext in IMAGE_EXTENSIONS:
        t = image_to_spoken(m.saved, up.path, route, gl_iterations=settings.gl_iterations)
        return {"model": m.name, "file": up.client_name, "kind": "image_to_audio", "route": t.route,
                "sample_rate": t.sample_rate, "duration_s": len(t.wave) / t.sample_rate,
                "wav": media.wav_base64(t.wave, t.sample_rate), "input_image_png": media.png_base64(t.image, scale),
                "spectrogram_png": media.png_base64(spectrogram_picture(t.audio), 2)}
    raise DataError(up.path, f"unsupported file type {ext or '(no extension)'!r}: a spoken digit "
                             f"({', '.join(AUDIO_EXTENSIONS)}) or an image ({', '.join(IMAGE_EXTENSIONS)})")


def _sample_images(m: ServedModel, body: SampleRequest) -> dict:
    from latentbridge.tasks.generate import sample_saved

    res = sample_saved(m.saved, body.n, label=body.label, guidance=body.guidance, steps=body.steps,
                       scheduler=body.scheduler, seed=body.seed, condition=body.condition)
    images = res.images.transpose(0, 2, 3, 1)  # (N, H, W, C)
    images = images[..., 0] if images.shape[-1] == 1 else images
    names = res.class_names
    labels = None if res.labels is None else [int(v) for v in res.labels]
    return {"model": m.name, "n": body.n, **res.settings, "seconds": round(res.seconds, 3),
            "labels": labels, "class_names": [names[v] for v in labels] if labels is not None and names else None,
            "conditions": None if res.conditions is None else res.conditions.tolist(),
            "image_shape": list(res.images.shape[1:]),
            "images_png": [media.png_base64(i, max(1, 112 // max(i.shape[:2]))) for i in images]}


def _enhance(m: ServedModel, up: Upload, up_mask: Upload | None, task: str, seed: int, samples: int | None,
             limit: int, stop: threading.Event | None = None) -> dict:
    from latentbridge.io.arrays import stored_size
    from latentbridge.serve.registry import SPATIAL_EXTENSIONS
    from latentbridge.tasks.spatial import enhance_saved

    if up.path.suffix not in SPATIAL_EXTENSIONS:
        raise DataError(up.path, f"unsupported file type {up.path.suffix or '(no extension)'!r}: a section as "
                                 f"an array ({', '.join(SPATIAL_EXTENSIONS)}); convert imzML with "
                                 "'latentbridge enhance' or numpy")
    if up_mask is not None and up_mask.path.suffix not in (".npy", ".png"):
        raise DataError(up_mask.path, "a mask must be .npy or .png")
    size = stored_size(up.path)
    if size is not None and size > limit:
        raise HTTPException(413, f"{up.client_name}: an array of {size:,} values; the limit is {limit:,} "
                                 "(latentbridge serve --max-values), or enhance it with 'latentbridge enhance'")
    r = enhance_saved(m.saved, up.path, task, mask=None if up_mask is None else str(up_mask.path),
                      n_samples=samples, seed=seed, stop=stop, mask_hint="the request's 'mask' field")
    enhanced, sigma = np.asarray(r.enhanced, dtype=np.float32), np.asarray(r.sigma, dtype=np.float32)
    channels = r.panels or list(range(min(4, enhanced.shape[2])))
    scale = max(1, 256 // max(enhanced.shape[:2]))
    panels = []
    for c in channels:
        x, e, s = np.asarray(r.input[..., c], dtype=np.float64), enhanced[..., c], sigma[..., c]
        lo, hi = np.nanpercentile(e[r.region], [1, 99]) if r.region.any() else (0.0, 1.0)
        span = hi - lo if hi > lo else 1.0
        panels.append({"channel": int(c), "label": r.labels[c] if c < len(r.labels) else str(c),
                       "input_png": media.png_base64(np.where(r.input_valid[::r.input_factor, ::r.input_factor],
                                                              (x - lo) / span, 0.0), scale * r.input_factor),
                       "enhanced_png": media.png_base64(np.where(r.region, (e - lo) / span, 0.0), scale),
                       "uncertainty_png": media.png_base64(np.where(r.region, s / (float(np.max(s[r.region])) or 1.0)
                                                                    if r.region.any() else 0.0, 0.0), scale)})
    return {"model": m.name, "file": up.client_name, "task": task, "seed": seed, "shape": list(enhanced.shape),
            "n_tiles": r.n_tiles, "seconds": r.seconds, "region_fraction": float(np.mean(r.region)),
            "labels": r.labels, "panels": panels,
            "enhanced_npy": media.npy_base64(enhanced), "uncertainty_npy": media.npy_base64(sigma),
            "region_npy": media.npy_base64(np.asarray(r.region, dtype=bool))}
