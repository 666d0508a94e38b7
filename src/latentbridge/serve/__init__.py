"""Serving saved models over HTTP: REST endpoints, a WebSocket stream and a web page.

Needs the ``serve`` extra (``pip install 'latentbridge[serve]'``: FastAPI, uvicorn,
python-multipart). :func:`~latentbridge.serve.app.create_app` builds the application,
:func:`~latentbridge.serve.server.serve` runs it (``latentbridge serve MODEL_DIR...``).

* :mod:`~latentbridge.serve.registry`: the loaded model folders and what each serves;
* :mod:`~latentbridge.serve.app`: the endpoints (thin callers of the task functions);
* :mod:`~latentbridge.serve.common`: what the endpoints share (the model a request names, uploads, errors);
* :mod:`~latentbridge.serve.schema`: the responses' models and the errors each endpoint documents;
* :mod:`~latentbridge.serve.uploads`: an upload's bytes and its client's file name;
* :mod:`~latentbridge.serve.batcher`: dynamic micro-batching of concurrent scoring;
* :mod:`~latentbridge.serve.stream`: the WebSocket stream (the ``anomaly listen`` loop);
* :mod:`~latentbridge.serve.security`: API key, upload limit, request log;
* :mod:`~latentbridge.serve.media`: PNG / WAV / spectrogram payloads;
* ``static/``: the web page (no build step, no CDN).
"""
