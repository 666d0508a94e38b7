"""What the server's endpoints share: the model a request names, an upload read once (form fields and query
parameters the endpoint does not read refused), work off the event loop and stopped when its client leaves, and the
status and message each error becomes."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading

from fastapi import HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from latentbridge.errors import DataError, LatentbridgeError
from latentbridge.serve.batcher import ShuttingDown
from latentbridge.serve.registry import ENDPOINTS, ServedModel
from latentbridge.serve.uploads import Upload, safe_name

log = logging.getLogger("latentbridge.serve")


def served_model(models: dict[str, ServedModel], name: str, endpoint: str) -> ServedModel:
    """The served model ``name`` for ``endpoint``: 404 for no such model or endpoint, 422 for a model that serves
    nothing (its own endpoints: the input cannot be right)."""
    m = models.get(name)
    if m is None:
        raise HTTPException(404, f"no model named {name!r}; served: {', '.join(sorted(models))}")
    if m.unserved:  # its own endpoints: the input cannot be right (422); others: there are none (404)
        raise HTTPException(422 if endpoint in ENDPOINTS[m.task] else 404,
                            f"model {name!r} (task {m.task}) serves nothing: it {m.unserved}")
    if endpoint not in m.endpoints:
        raise HTTPException(404, f"model {name!r} (task {m.task}) has no {endpoint} endpoint; "
                                 f"it has: {', '.join(m.endpoints)}")
    return m


async def in_thread(pool, fn, *args):
    """``fn(*args)`` in ``pool``, off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)


async def while_connected(request: Request, pool, fn, *args):
    """``fn(*args, stop)`` in ``pool``, its ``stop`` event set when the client goes away or this request is
    cancelled (the server shutting down): long work no longer holds the model's one worker for nobody."""
    stop = threading.Event()
    job = asyncio.ensure_future(in_thread(pool, fn, *args, stop))
    try:
        while not (await asyncio.wait({job}, timeout=0.25))[0]:
            if await request.is_disconnected():
                stop.set()
                log.info("%s: the client went away; its work is stopped", request.url.path)
                break
        return await job
    finally:
        stop.set()


async def declared_only(request: Request) -> None:
    """422 naming the form fields and query parameters the endpoint does not read (``-F spectrogram=true`` for
    ``?spectrogram=true``, a misspelt ``?spectrogramm=``: ignored without a word)."""
    dep = request.scope["route"].dependant
    reads = {"form field": [p.alias for p in dep.body_params],
             "query parameter": [p.alias for p in dep.query_params]}
    given = {"form field": (await request.form()).keys(),
             "query parameter": set(request.query_params) - {"api_key"}}  # (the key may travel in the query)
    said = [f"{kind} {', '.join(map(repr, extra))} not read here (it reads: {', '.join(reads[kind]) or 'none'})"
            for kind in reads if (extra := sorted(set(given[kind]) - set(reads[kind])))]
    if said:
        raise HTTPException(422, "; ".join(said))


async def receive(upload: UploadFile, request: Request, field: str = "file") -> Upload:
    await declared_only(request)
    n = len((await request.form()).getlist(field))  # parsed once already: the endpoint's own
    if n > 1:  # the last one was scored without a word
        raise HTTPException(422, f"{n} files under '{field}': one file per request")
    return Upload(await upload.read(), safe_name(upload.filename))


def add_error_handlers(app, models: dict[str, ServedModel]) -> None:
    """Each error a request can end in as its status and a message for the client: a file's problem 422, the server
    shutting down 503, a user's error 400 (a model's folder named by its served name), a request FastAPI could not read
    422 (where and what, never the body's bytes; an unknown model or endpoint first, 404)."""

    @app.exception_handler(DataError)
    async def data_error(request: Request, e: DataError):
        return JSONResponse({"detail": str(e)}, status_code=422)

    @app.exception_handler(ShuttingDown)
    async def shutting_down(request: Request, e: ShuttingDown):  # (a 500 and a traceback)
        return JSONResponse({"detail": f"{e}: send the request again when the server is back"}, status_code=503)

    @app.exception_handler(LatentbridgeError)
    async def user_error(request: Request, e: LatentbridgeError):
        detail, name = str(e), request.path_params.get("name")
        if name in models:  # the model by its served name, not its folder on the server ("runs/ddpm2: unknown class")
            path = models[name].saved.path
            for where in {str(path), os.path.abspath(path)} - {".", ""}:  # a whole path, not a "." in "0.5"
                detail = re.sub(rf"(?<![\w/.]){re.escape(where)}(?=[/:\s,)]|$)", lambda _: name, detail)
        return JSONResponse({"detail": detail}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, e: RequestValidationError):
        name = request.path_params.get("name")
        if name is not None:  # the model and its endpoint first: a bad body for either is a 404 (or unserved, 422)
            try:
                served_model(models, name, request.url.path.rstrip("/").rsplit("/", 1)[-1])
            except HTTPException as h:
                return JSONResponse({"detail": h.detail}, status_code=h.status_code)
        # FastAPI's own handler echoes the body it could not read (an upload's bytes: undecodable, and never for
        # the log or the client); each problem is told by where and what instead
        problems = [{"loc": [str(x) for x in err.get("loc", ())], "msg": str(err.get("msg", "")),
                     "type": str(err.get("type", ""))} for err in e.errors()]
        for p in problems:  # a raw body, or a form whose part is no file: "Field required", "Expected UploadFile"
            if p["loc"] in (["body", "file"], ["body", "mask"]):
                p["msg"] += (f" (a multipart form with the file in its '{p['loc'][1]}' field, its file name in "
                             f"filename=: curl -F {p['loc'][1]}=@rec.wav)")
        return JSONResponse({"detail": problems}, status_code=422)
