"""A real ``latentbridge serve`` (uvicorn in a subprocess on 127.0.0.1): a wav streamed over the
WebSocket in frames gives the window scores of ``anomaly score`` on the file; concurrent uploads
are all answered and share model calls; the API key guards the real server too."""

from __future__ import annotations

import asyncio
import csv
import json

import numpy as np
import pytest

pytest.importorskip("uvicorn", reason="the serve extra is not installed (pip install -e '.[serve]')")
httpx = pytest.importorskip("httpx")
ws_client = pytest.importorskip("websockets.sync.client", reason="the websockets package is not installed")

from conftest import ServerProcess  # noqa: E402
from latentbridge.cli import main  # noqa: E402
from latentbridge.io import read_audio  # noqa: E402


@pytest.fixture(scope="module")
def server(detector_model):
    srv = ServerProcess([detector_model], "--max-wait-ms", "5")
    yield srv
    srv.stop()


def _cli_window_scores(model, wav, out):
    assert main(["anomaly", "score", str(model), str(wav), "--out", str(out)]) == 0
    with open(out / "scores.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["level"] == "window"]
    return np.array([float(r["start_s"]) for r in rows]), np.array([float(r["score"]) for r in rows])


@pytest.mark.parametrize("fmt,rate,frame,rtol", [
    ("f32", 16000, 1600, 1e-5),  # the samples `anomaly score` reads from the file (resampled to the model's rate)
    ("s16", 16000, 4096, 2e-2),  # the same, quantised to 16 bits by the client
    ("f32", 48000, 4800, 5e-2),  # the file's own rate: the server resamples each window, not the whole file
])
def test_websocket_stream_gives_the_scores_of_anomaly_score(server, detector_model, tmp_path, fmt, rate, frame, rtol):
    wav = detector_model.parent / "fault.wav"
    starts, scores = _cli_window_scores(detector_model, wav, tmp_path / "cli")
    wave, sr = read_audio(wav, sample_rate=rate)
    if fmt == "s16":
        payload = np.round(wave * 32767).clip(-32768, 32767).astype("<i2")
    else:
        payload = wave.astype("<f4")
    name = detector_model.name
    with ws_client.connect(f"ws://127.0.0.1:{server.port}/api/models/{name}/stream") as ws:
        ws.send(json.dumps({"sample_rate": sr, "format": fmt}))
        ready = json.loads(ws.recv(timeout=30))
        assert ready["type"] == "ready" and ready["window_s"] == 2.0
        for i in range(0, len(payload), frame):
            ws.send(payload[i:i + frame].tobytes())
        ws.send(json.dumps({"end": True}))
        msgs = []
        while not msgs or msgs[-1]["type"] == "window":
            msgs.append(json.loads(ws.recv(timeout=60)))
    windows = [m for m in msgs if m["type"] == "window"]
    assert msgs[-1]["type"] == "end" and msgs[-1]["dropped_blocks"] == 0 and msgs[-1]["overflows"] == 0
    np.testing.assert_allclose([m["start_s"] for m in windows], starts)
    np.testing.assert_allclose([m["score"] for m in windows], scores, rtol=rtol)
    # the fault (5-7 s) is what the detector flags
    flagged = [m["start_s"] for m in windows if m["is_anomaly"]]
    assert flagged and all(3.5 < s < 7.0 for s in flagged), flagged
    assert not any(m["is_anomaly"] for m in windows if m["end_s"] <= 4.0)


def test_clients_that_hang_up_early_leave_no_traceback(detector_model, monkeypatch, tmp_path):
    """A client that hung up right after its start message put the ASGI server's traceback in the log (the "ready"
    sent to nobody), every time; a live stream closed with audio still queued, "Task exception was never retrieved"
    (a block pushed after the scoring ended). Neither is a fault of the server: no traceback, and it answers on."""
    import socket
    import time

    monkeypatch.setenv("LATENTBRIDGE_SERVE_LOG", str(tmp_path / "serve.log"))
    server = ServerProcess([detector_model])
    url = f"ws://127.0.0.1:{server.port}/api/models/{detector_model.name}/stream"
    for _ in range(5):
        ws = ws_client.connect(url)
        ws.send(json.dumps({"sample_rate": 16000, "format": "f32"}))
        ws.socket.shutdown(socket.SHUT_RDWR)
        ws.socket.close()
    tone = (0.3 * np.sin(2 * np.pi * 120 * np.arange(160000) / 16000)).astype("<f4").tobytes()
    for _ in range(3):
        with ws_client.connect(url) as ws:
            ws.send(json.dumps({"sample_rate": 16000, "format": "f32", "live": True}))
            for i in range(0, len(tone), 8192):
                ws.send(tone[i:i + 8192])
    time.sleep(2)
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    server.stop()
    log = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in log and "never retrieved" not in log, log


def test_concurrent_uploads_are_all_answered_and_batched(server, detector_model, tmp_path):
    """24 concurrent uploads of two recordings, interleaved: each answer carries its own file's windows
    (no rows handed to the wrong request) with the scores of ``anomaly score`` on that file."""
    files = {"normal.wav": (detector_model.parent / "normal.wav").read_bytes(),
             "fault.wav": (detector_model.parent / "fault.wav").read_bytes()}
    expected = {f: _cli_window_scores(detector_model, detector_model.parent / f, tmp_path / f) for f in files}
    order = [("normal.wav", "fault.wav")[i % 2] for i in range(24)]
    name = detector_model.name
    before = httpx.get(server.url + "/healthz").json()["batching"][name]

    async def run():
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as c:
            return await asyncio.gather(*[c.post(f"/api/models/{name}/score", files={"file": (f, files[f])})
                                          for f in order])

    responses = asyncio.run(run())
    assert [r.status_code for r in responses] == [200] * 24
    for f, r in zip(order, responses):
        starts, scores = expected[f]
        windows = r.json()["windows"]
        np.testing.assert_allclose([w["start_s"] for w in windows], starts)
        # equal up to float rounding: a window's score moves by ~1e-6 relative with the number of windows
        # in its model call (float kernels take other code paths for other batch sizes)
        np.testing.assert_allclose([w["score"] for w in windows], scores, rtol=1e-5)
    assert any(w["is_anomaly"] for w in responses[1].json()["windows"])
    assert not any(w["is_anomaly"] for w in responses[0].json()["windows"])
    after = httpx.get(server.url + "/healthz").json()["batching"][name]
    assert after["requests"] - before["requests"] == 24
    assert after["windows"] - before["windows"] == 12 * (len(expected["normal.wav"][0]) + len(expected["fault.wav"][0]))
    assert after["batches"] - before["batches"] < 24  # some requests shared a model call


def test_real_server_with_an_api_key(detector_model):
    srv = ServerProcess([detector_model], "--api-key", "k3y")
    try:
        assert httpx.get(srv.url + "/api/models").status_code == 401
        assert httpx.get(srv.url + "/api/models", headers={"X-API-Key": "k3y"}).status_code == 200
        name = detector_model.name
        with pytest.raises(Exception) as refused:
            with ws_client.connect(f"ws://127.0.0.1:{srv.port}/api/models/{name}/stream"):
                pass
        assert "401" in str(refused.value)
        with ws_client.connect(f"ws://127.0.0.1:{srv.port}/api/models/{name}/stream?api_key=k3y") as ws:
            ws.send(json.dumps({"sample_rate": 16000, "format": "f32"}))
            assert json.loads(ws.recv(timeout=30))["type"] == "ready"
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def spatial_data(tmp_path_factory):
    from conftest import tiny_generative_folders

    root = tmp_path_factory.mktemp("spatial_serve")
    model = tiny_generative_folders(root)["cvae"]
    rng = np.random.default_rng(0)
    # about 2,000 tiles of the tiny model: half a minute of work on one core (6 ms a tile here)
    np.save(root / "large.npy", rng.random((900, 900, 3)).astype(np.float32))
    np.save(root / "small.npy", rng.random((20, 24, 3)).astype(np.float32))
    return model


def _spatial_server(spatial_data, monkeypatch, tmp_path, *args: str) -> ServerProcess:
    monkeypatch.setenv("LATENTBRIDGE_SERVE_LOG", str(tmp_path / "serve.log"))
    srv = ServerProcess([spatial_data], *args)
    srv.root, srv.logfile, srv.name = spatial_data.parent, tmp_path / "serve.log", spatial_data.name
    return srv


@pytest.fixture
def spatial_server(spatial_data, monkeypatch, tmp_path):
    srv = _spatial_server(spatial_data, monkeypatch, tmp_path)
    yield srv
    srv.stop()


def _enhance(srv, file, timeout):
    with open(srv.root / file, "rb") as fh:
        return httpx.post(f"{srv.url}/api/models/{srv.name}/enhance", files={"file": (file, fh)},
                          data={"task": "denoise"}, timeout=timeout)


def test_work_of_a_client_that_went_away_is_stopped(spatial_server):
    """A long enhancement whose client hangs up stops: the next client is answered at once (it waited for the
    whole of the first one's work, the server holding one model worker)."""
    import time

    with pytest.raises(httpx.ReadTimeout):
        _enhance(spatial_server, "large.npy", timeout=3)
    t0 = time.monotonic()
    r = _enhance(spatial_server, "small.npy", timeout=120)
    waited = time.monotonic() - t0
    assert r.status_code == 200 and r.json()["shape"] == [20, 24, 3]
    assert waited < 8, waited
    assert "the client went away" in spatial_server.logfile.read_text()


def test_sigterm_during_long_work_ends_the_server_soon(spatial_data, monkeypatch, tmp_path):
    """uvicorn waited for running requests without end: the server's exit waited for a long enhancement; it waits
    --shutdown-grace seconds."""
    import signal
    import threading
    import time

    grace = 2.0
    spatial_server = _spatial_server(spatial_data, monkeypatch, tmp_path, "--shutdown-grace", str(grace))
    try:
        client = threading.Thread(target=lambda: _enhance(spatial_server, "large.npy", timeout=120), daemon=True)
        client.start()
        time.sleep(2.0)
        t0 = time.monotonic()
        spatial_server.proc.send_signal(signal.SIGTERM)
        rc = spatial_server.proc.wait(timeout=90)
        took = time.monotonic() - t0
    finally:
        spatial_server.stop()
    # the enhancement (over 10 s here) was given its grace, then cancelled
    assert rc == 0 and grace - 0.25 < took < grace + 5, (rc, took)
    client.join(timeout=10)
