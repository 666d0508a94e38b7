"""The server through FastAPI's test client: every endpoint, every error status, the guards
(API key, upload limits), the WebSocket protocol and its backpressure, the micro-batcher."""

from __future__ import annotations

import base64
import io
import json
import re
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install -e '.[serve]')")
pytest.importorskip("httpx", reason="FastAPI's test client needs httpx")
from fastapi.testclient import TestClient  # noqa: E402
from starlette.testclient import WebSocketDenialResponse  # noqa: E402

from conftest import tiny_generative_folders, tiny_multimodal_folders  # noqa: E402
from latentbridge.errors import DataError, LatentbridgeError  # noqa: E402
from latentbridge.serve.app import ServeSettings, create_app  # noqa: E402
from latentbridge.serve.batcher import MicroBatcher  # noqa: E402
from latentbridge.serve.registry import load_models  # noqa: E402
from latentbridge.serve.schema import (EnhanceResponse, PredictResponse, Problem, SampleResponse,  # noqa: E402
                                      ScoreResponse)
from latentbridge.tasks.anomaly import Detector  # noqa: E402
from latentbridge.tasks.anomaly import score as score_task  # noqa: E402


@pytest.fixture(scope="module")
def folders(fitted_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    return {"pump": fitted_model, **tiny_multimodal_folders(root), **tiny_generative_folders(root)}


@pytest.fixture(scope="module")
def models(folders):
    return load_models(folders.values())


@pytest.fixture(scope="module")
def client(models):
    with TestClient(create_app(models)) as c:
        yield c


def _name(folders, key):
    return folders[key].name


def _as_documented(schema, body: dict) -> None:
    """The body is what /openapi.json says it is, every field of it (the answers of /predict, /sample and /enhance
    were documented as anything)."""
    from pydantic import TypeAdapter

    parsed = TypeAdapter(schema).validate_python(body)
    assert parsed.model_dump(exclude_none=True).keys() == {k for k, v in body.items() if v is not None}


def _wav_bytes(wave, sr, subtype="PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


def _post(client, url, name, payload, **kw):
    return client.post(url, files={"file": (name, payload, "application/octet-stream")}, **kw)


# ----------------------------------------------------------------------------- models, docs, health


def test_health_models_and_docs(client, folders):
    h = client.get("/healthz").json()
    assert h["status"] == "ok" and sorted(h["models"]) == sorted(p.name for p in folders.values())
    listed = {m["name"]: m for m in client.get("/api/models").json()}
    pump = listed[_name(folders, "pump")]
    det = Detector.load(folders["pump"])
    assert pump["task"] == "anomaly" and pump["endpoints"] == ["score", "stream"]
    assert pump["threshold"] == pytest.approx(det.threshold) and pump["score"] == "mse"
    assert pump["input"]["sample_rate"] == 16000 and pump["input"]["window_s"] == 2.0
    assert "Threshold" in pump["card"] and pump["card_fields"]["training"]["epochs"] >= 1
    bridge, digits = listed[_name(folders, "bridge")], listed[_name(folders, "digits")]
    assert bridge["task"] == "multimodal" and bridge["endpoints"] == ["predict"] and bridge["threshold"] == 0.3
    assert bridge["input"]["n_channels"] == 2 and bridge["input"]["mask_shape"] == [16, 48]
    assert digits["task"] == "avdigits" and digits["endpoints"] == ["predict", "sample"]
    assert digits["input"]["bridge_fitted"] is True
    one = client.get(f"/api/models/{_name(folders, 'pump')}").json()
    assert one["name"] == _name(folders, "pump")
    assert client.get("/api/models/nope").status_code == 404
    docs = client.get("/docs")
    assert docs.status_code == 200 and client.app.state.docs_offline
    # the page's script and style come from this server (a network without internet had a blank page)
    import re as _re

    assets = _re.findall(r"(?:src|href)=['\"]([^'\"]+)['\"]", docs.text)
    assert assets and all(a.startswith("/") for a in assets), assets
    for a in assets:
        assert client.get(a).status_code == 200, a
    assert client.get("/redoc").status_code == 200
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert {"/api/models/{name}/score", "/api/models/{name}/predict", "/api/models/{name}/sample"} <= set(paths)
    # the errors as the server sends them ({"detail": a sentence, or one entry per field}), not FastAPI's list-only
    # HTTPValidationError, which clients generated from the schema failed to parse; no key on a server without one
    assert "HTTPValidationError" not in json.dumps(paths) and "security" not in schema
    problem = {"$ref": "#/components/schemas/Problem"}
    for path, codes in (("/api/models/{name}/score", "400 404 408 413 422"), ("/api/models/{name}/sample", "404 422"),
                        ("/api/models/{name}/enhance", "413 422"), ("/api/models/{name}", "404")):
        op = next(iter(paths[path].values()))
        for code in codes.split():
            assert op["responses"][code]["content"]["application/json"]["schema"] == problem, (path, code)
    assert schema["components"]["schemas"]["ScoreResponse"]["properties"]["windows"]["type"] == "array"
    page = client.get("/")
    assert page.status_code == 200 and "Live microphone" in page.text
    for asset in ("app.js", "charts.js", "worklet.js", "style.css"):
        assert client.get(f"/static/{asset}").status_code == 200
    import re

    for text in (page.text, *(client.get(f"/static/{a}").text for a in ("app.js", "charts.js", "worklet.js"))):
        assert not re.search(r"https?://", text)  # nothing fetched from elsewhere (no CDN)


# ----------------------------------------------------------------------------- score


def test_score_gives_the_windows_of_anomaly_score(client, folders, machine_data):
    pump = _name(folders, "pump")
    for wav in [*sorted((machine_data / "test" / "anomalous").glob("*.wav"))[:2],
                sorted((machine_data / "test" / "normal").glob("*.wav"))[0]]:
        r = _post(client, f"/api/models/{pump}/score", wav.name, wav.read_bytes(), params={"spectrogram": True})
        assert r.status_code == 200, r.text
        body = r.json()
        ref = score_task(folders["pump"], [wav])
        assert body["file"] == wav.name and body["n_windows"] == len(ref.window_scores)
        np.testing.assert_allclose([w["score"] for w in body["windows"]], ref.window_scores, rtol=1e-5)
        np.testing.assert_allclose([w["start_s"] for w in body["windows"]], ref.windows.starts_s)
        np.testing.assert_allclose([w["end_s"] for w in body["windows"]], ref.windows.ends_s)
        assert [w["is_anomaly"] for w in body["windows"]] == list(ref.window_scores > ref.threshold)
        assert body["file_score"] == pytest.approx(ref.file_scores[0], rel=1e-5)
        assert body["threshold"] == pytest.approx(ref.threshold)
        assert body["decision"] == ("anomalous" if ref.file_scores[0] > ref.threshold else "normal")
        spec = body["spectrogram"]
        assert len(spec["db"]) == 64 and len(spec["db"][0]) > 100 and spec["f_max_hz"] > 0
        # each row at its mel band's centre (the page drew a linear axis: a 2-kHz tone at "4.4 kHz")
        hz = np.array(spec["row_hz"])
        assert len(hz) == 64 and np.all(np.diff(hz) > 0) and 1000 < hz[31] < 2000 and hz[-1] < spec["f_max_hz"]
        # the body is what /openapi.json says it is, every field of it
        assert ScoreResponse.model_validate(body, strict=False).model_dump(exclude_none=True).keys() == body.keys()


def test_score_accepts_other_formats_and_rates(client, folders, machine_data, tmp_path):
    wav = sorted((machine_data / "test" / "normal").glob("*.wav"))[0]
    wave, sr = sf.read(wav, dtype="float32")
    flac = tmp_path / "n.flac"
    sf.write(flac, np.stack([wave, wave], 1), sr, format="FLAC")  # stereo FLAC
    r = _post(client, f"/api/models/{_name(folders, 'pump')}/score", "n.flac", flac.read_bytes())
    assert r.status_code == 200 and r.json()["duration_s"] == pytest.approx(4.0)
    ref = score_task(folders["pump"], [flac])
    np.testing.assert_allclose([w["score"] for w in r.json()["windows"]], ref.window_scores, rtol=1e-5)
    # FLAC is lossless, like the training WAVs; the two channels mixed are said, as `anomaly score` says them (the
    # client was told neither the file's rate and channels nor what was done to them)
    said = r.json()["warnings"]
    assert len(said) == 1 and "single-channel" in said[0]
    assert said[0].startswith("1 file mixed down to mono (from 2 channels")
    assert r.json()["input"] == {"sample_rate": sr, "channels": 2, "conversions": said[0]}
    ogg = tmp_path / "n.ogg"
    sf.write(ogg, wave, sr, format="OGG", subtype="VORBIS")
    r = _post(client, f"/api/models/{_name(folders, 'pump')}/score", "n.ogg", ogg.read_bytes())
    assert r.status_code == 200 and len(r.json()["warnings"]) == 1
    assert r.json()["warnings"][0].startswith("1 of 1 recordings are stored by a lossy codec (Vorbis x1: n.ogg)")
    # what the CLI warns of from the header and the level: a rate below the model's band, a dead microphone
    low = tmp_path / "phone.wav"
    sf.write(low, wave[::4], sr // 4)
    r = _post(client, f"/api/models/{_name(folders, 'pump')}/score", "phone.wav", low.read_bytes())
    assert r.status_code == 200 and len(r.json()["warnings"]) == 1, r.json()["warnings"]
    assert r.json()["warnings"][0].startswith(f"phone.wav is recorded below the model's band ({sr // 4} Hz): "
                                              "resampled to")
    dead = tmp_path / "dead_mic.wav"
    sf.write(dead, np.random.default_rng(0).integers(-1, 2, 4 * sr).astype(np.int16), sr, subtype="PCM_16")
    r = _post(client, f"/api/models/{_name(folders, 'pump')}/score", "dead_mic.wav", dead.read_bytes())
    assert r.status_code == 200 and len(r.json()["warnings"]) == 1, r.json()["warnings"]
    assert r.json()["warnings"][0].startswith("1 of 1 recordings are more than 30 dB quieter than the quietest "
                                              "training recording (dead_mic.wav -92 dBFS")
    unfinished = bytearray(dead.read_bytes())  # a recorder stopped before it wrote the data chunk's size
    at = unfinished.find(b"data")
    unfinished[at + 4:at + 8] = bytes(4)
    r = _post(client, f"/api/models/{_name(folders, 'pump')}/score", "rec.wav", bytes(unfinished))
    assert r.status_code == 200 and r.json()["duration_s"] == pytest.approx(4.0), r.text
    assert r.json()["warnings"][0].startswith("rec.wav: its header gives its samples no size"), r.json()["warnings"]
    from latentbridge import utils

    said = len(utils._SAID)  # each upload's notes said to it, and forgotten after (the set grew with every upload)
    for _ in range(2):
        r = _post(client, f"/api/models/{_name(folders, 'pump')}/score", "rec.wav", bytes(unfinished))
        assert r.json()["warnings"][0].startswith("rec.wav: its header gives its samples no size")
    assert len(utils._SAID) == said
    hot = tmp_path / "hot.wav"  # a saturated recorder: held at full scale
    sf.write(hot, np.clip(4 * wave / np.abs(wave).max(), -1, 1), sr, subtype="PCM_16")
    r = _post(client, f"/api/models/{_name(folders, 'pump')}/score", "hot.wav", hot.read_bytes())
    assert r.status_code == 200 and len(r.json()["warnings"]) == 1, r.json()["warnings"]
    assert r.json()["warnings"][0].startswith("1 of 1 recordings clip (samples on plateaus at their extremes: hot.wav ")


def _cli_message(path, model_dir) -> str:
    """What the CLI's reader says about this file (the problem part of its DataError)."""
    det = Detector.load(model_dir)
    ex = det.extractor(use_cache=False)
    with pytest.raises(DataError) as e:
        ex.windows_of(ex.read(path), path)
    return e.value.problem


@pytest.mark.parametrize("case", ["garbage", "nan", "silent", "short", "text", "empty"])
def test_bad_audio_is_422_with_the_cli_message(client, folders, tmp_path, case):
    sr = 16000
    rng = np.random.default_rng(0)
    name, data = {
        "garbage": ("broken.wav", b"RIFF\x00\x01\x00\x00WAVEfmt garbage" * 3),
        "nan": ("nan.wav", _wav_bytes(np.where(np.arange(sr) == 100, np.nan, 0.1).astype(np.float32), sr, "FLOAT")),
        "silent": ("silent.wav", _wav_bytes(np.zeros(sr, np.float32), sr)),
        "short": ("short.wav", _wav_bytes(rng.normal(0, 0.1, sr // 5).astype(np.float32), sr)),
        "text": ("notes.txt", b"not audio"),
        "empty": ("empty.wav", b""),
    }[case]
    local = tmp_path / name
    local.write_bytes(data)
    r = _post(client, f"/api/models/{_name(folders, 'pump')}/score", name, data)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail == f"{name}: {_cli_message(local, folders['pump'])}"
    assert str(tmp_path) not in detail and "/tmp" not in detail and "upload" not in detail
    assert {"garbage": "unreadable", "nan": "non-finite", "silent": "silent", "short": "too short",
            "text": "unsupported file type", "empty": "empty"}[case] in detail


def test_client_file_names_are_labels_not_paths(client, folders, machine_data):
    wav = sorted((machine_data / "test" / "normal").glob("*.wav"))[0]
    r = _post(client, f"/api/models/{_name(folders, 'pump')}/score", "../../etc/passwd.wav", wav.read_bytes())
    assert r.status_code == 200 and r.json()["file"] == "passwd.wav"
    r = _post(client, f"/api/models/{_name(folders, 'pump')}/score", "/etc/hostname", wav.read_bytes())
    assert r.status_code == 422 and r.json()["detail"].startswith("hostname: unsupported file type")
    assert isinstance(Problem.model_validate(r.json()).detail, str)  # a sentence naming the file


def test_unknown_model_wrong_endpoint_missing_field(client, folders, machine_data):
    wav = sorted((machine_data / "test" / "normal").glob("*.wav"))[0].read_bytes()
    r = _post(client, "/api/models/nope/score", "a.wav", wav)
    assert r.status_code == 404 and "no model named 'nope'" in r.json()["detail"]
    r = _post(client, f"/api/models/{_name(folders, 'bridge')}/score", "a.wav", wav)
    assert r.status_code == 404 and "has no score endpoint" in r.json()["detail"]
    r = _post(client, f"/api/models/{_name(folders, 'pump')}/predict", "a.wav", wav)
    assert r.status_code == 404 and "has no predict endpoint" in r.json()["detail"]
    assert client.post(f"/api/models/{_name(folders, 'pump')}/score").status_code == 422  # no file field
    # a raw body, or a form field of text: "Field required", "Expected UploadFile" said what the upload must be
    for kw in ({"content": wav, "headers": {"content-type": "audio/wav"}}, {"data": {"file": "rec.wav"}}):
        r = client.post(f"/api/models/{_name(folders, 'pump')}/score", **kw)
        assert r.status_code == 422 and "a multipart form with the file in its 'file' field, its file name in " \
            "filename=: curl -F file=@rec.wav" in r.json()["detail"][0]["msg"], r.text
    assert client.get(f"/api/models/{_name(folders, 'pump')}/score").status_code == 405
    # fields and parameters the endpoint does not read were ignored without a word
    r = _post(client, f"/api/models/{_name(folders, 'pump')}/score", "a.wav", wav, data={"spectrogram": "true"})
    assert r.status_code == 422 and r.json()["detail"] == \
        "form field 'spectrogram' not read here (it reads: file, sample_rate)", r.text
    r = _post(client, f"/api/models/{_name(folders, 'pump')}/score?spectrogramm=true&api_key=k", "a.wav", wav)
    assert r.status_code == 422 and r.json()["detail"] == \
        "query parameter 'spectrogramm' not read here (it reads: spectrogram, sample_rate)", r.text
    # an endpoint the model has not, with a body it could not read either: 404 (a 422 on the body before)
    r = _post(client, f"/api/models/{_name(folders, 'pump')}/sample", "a.wav", wav)
    assert r.status_code == 404 and "has no sample endpoint" in r.json()["detail"], r.text


def test_integrators_clients_get_answers_that_say_what_happened(client, folders, models, machine_data, caplog):
    """HEAD for health checks (405); two files under one field (the last scored without a word); a bad body for no
    model (422 before the 404); sample_rate in the query (ignored) or for a file that gives its own rate (silently
    ignored); a forged log line through %0a in the path; CORS headers on the guards' 401 and 413 (a browser saw
    only a network error)."""
    import logging

    pump = _name(folders, "pump")
    wav = sorted((machine_data / "test" / "normal").glob("*.wav"))[0].read_bytes()
    assert client.head("/healthz").status_code == 200 and client.head("/").status_code == 200
    r = client.post(f"/api/models/{pump}/score", files=[("file", ("a.wav", wav)), ("file", ("b.wav", wav))])
    assert r.status_code == 422 and r.json()["detail"] == "2 files under 'file': one file per request"
    r = client.post("/api/models/nope/score")
    assert r.status_code == 404 and "no model named 'nope'" in r.json()["detail"]
    r = _post(client, f"/api/models/{pump}/score", "a.wav", wav, data={"sample_rate": "8000"})
    assert r.status_code == 200 and any(w.startswith("sample_rate 8000 Hz ignored: a.wav gives its own rate, 16000 Hz")
                                        for w in r.json()["warnings"]), r.json()["warnings"]
    r = _post(client, f"/api/models/{pump}/score?sample_rate=8000", "a.wav", wav)
    assert r.status_code == 200 and any("sample_rate 8000 Hz ignored" in w for w in r.json()["warnings"])
    r = _post(client, f"/api/models/{pump}/score?sample_rate=100", "a.wav", wav, data={"sample_rate": "200"})
    assert r.status_code == 422 and "sample_rate given twice" in r.json()["detail"]
    caplog.set_level(logging.INFO, logger="latentbridge.serve")
    caplog.clear()
    client.get("/api/models/x%0aINFO latentbridge.serve: FAKE")
    lines = [r.getMessage() for r in caplog.records if r.name == "latentbridge.serve"]
    assert len(lines) == 1 and lines[0].startswith("GET /api/models/x\\nINFO latentbridge.serve: FAKE 404"), lines
    with TestClient(create_app(models, ServeSettings(api_key="s3cret", cors_origins=("https://dash.example",),
                                                     max_upload_mb=0.01))) as c:
        origin = {"Origin": "https://dash.example"}
        r = c.get("/healthz", headers=origin)
        assert r.status_code == 401 and r.headers["access-control-allow-origin"] == "https://dash.example"
        r = _post(c, f"/api/models/{pump}/score", "a.wav", wav, headers={**origin, "X-API-Key": "s3cret"})
        assert r.status_code == 413 and r.headers["access-control-allow-origin"] == "https://dash.example"
    for key in ("k€y", "abc;def", "with space", ""):
        with pytest.raises(LatentbridgeError, match="serve: the API key"):
            ServeSettings(api_key=key)


def test_upload_and_duration_limits_are_413_naming_the_limit(models, machine_data, tmp_path):
    wav = sorted((machine_data / "test" / "normal").glob("*.wav"))[0].read_bytes()  # 4 s, 128 kB
    pump = next(n for n, m in models.items() if m.task == "anomaly")
    with TestClient(create_app(models, ServeSettings(max_upload_mb=0.05, max_duration_s=3.0))) as c:
        r = _post(c, f"/api/models/{pump}/score", "a.wav", wav)
        assert r.status_code == 413 and "52428 bytes" in r.json()["detail"] and "--max-upload-mb" in r.json()["detail"]
        # no Content-Length (chunked): refused once the bytes received pass the limit
        r = c.post(f"/api/models/{pump}/score", content=iter([wav[:40000], wav[40000:]]),
                   headers={"content-type": "multipart/form-data; boundary=x"})
        assert r.status_code == 413
    with TestClient(create_app(models, ServeSettings(max_duration_s=3.0))) as c:
        r = _post(c, f"/api/models/{pump}/score", "a.wav", wav)
        assert r.status_code == 413 and r.json()["detail"] == (
            "a.wav: audio too long: 4.0 s; the limit is 3 s (latentbridge serve --max-duration)")
    # decoded values, read from the header: 22 KB of 8-channel FLAC at 96 kHz held 6 MB of samples (a 620-KB one
    # took the server's memory up by 0.8 GB)
    flac = io.BytesIO()
    sf.write(flac, np.tile(np.sign(np.sin(np.arange(192_000) / 15_000.0))[:, None] * 0.25, (1, 8)), 96_000,
             format="FLAC")
    with TestClient(create_app(models, ServeSettings(max_values=1_000_000))) as c:
        r = _post(c, f"/api/models/{pump}/score", "bomb.flac", flac.getvalue())
        assert r.status_code == 413 and r.json()["detail"] == (
            "bomb.flac: audio too large: 192000 frames x 8 channels, 1,536,000 values once decoded; the limit is "
            "1,000,000 (latentbridge serve --max-values)"), r.text
        assert len(flac.getvalue()) < 100_000
        # a .mat recording's arrays likewise (its samples and fs; a compressed one of 622 KB held 640 MB), predict
        from scipy.io import savemat

        mat = tmp_path / "rec.mat"
        savemat(mat, {"acc": np.zeros((400_000, 3)), "fs": 100.0}, do_compression=True)
        bridge = next(n for n, m in models.items() if m.task == "multimodal")
        r = _post(c, f"/api/models/{bridge}/predict", "rec.mat", mat.read_bytes())
        assert r.status_code == 413 and r.json()["detail"] == "rec.mat: a .mat file of 1,200,001 values once " \
            "decoded; the limit is 1,000,000 (latentbridge serve --max-values)", r.text


# ----------------------------------------------------------------------------- API key, CORS


def test_api_key_guards_every_request(models, machine_data, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="latentbridge.serve")
    wav = sorted((machine_data / "test" / "normal").glob("*.wav"))[0].read_bytes()
    pump = next(n for n, m in models.items() if m.task == "anomaly")
    with TestClient(create_app(models, ServeSettings(api_key="s3cret"))) as c:
        for path in ("/", "/healthz", "/api/models", "/docs", "/static/app.js"):
            assert c.get(path).status_code == 401, path
            assert Problem.model_validate(c.get(path).json())
        # the schema says so: the four ways the key travels, any one of them, and a 401 on every operation
        schema = c.get("/openapi.json", headers={"X-API-Key": "s3cret"}).json()
        assert {"ApiKeyHeader", "Bearer", "ApiKeyQuery", "ApiKeyCookie"} == set(schema["components"]["securitySchemes"])
        assert len(schema["security"]) == 4
        assert all("401" in op["responses"] for ops in schema["paths"].values() for op in ops.values())
        assert c.get("/healthz", headers={"X-API-Key": "wrong"}).status_code == 401
        assert _post(c, f"/api/models/{pump}/score", "a.wav", wav).status_code == 401
        assert c.get("/healthz", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.get("/healthz", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        r = _post(c, f"/api/models/{pump}/score", "a.wav", wav, headers={"X-API-Key": "s3cret"})
        assert r.status_code == 200
        with pytest.raises(WebSocketDenialResponse) as denied:
            with c.websocket_connect(f"/api/models/{pump}/stream"):
                pass
        assert denied.value.status_code == 401
        # the page is opened with ?api_key=: the server sets a cookie its own requests then carry
        page = c.get("/", params={"api_key": "s3cret"})
        assert page.status_code == 200 and "HttpOnly" in page.headers["set-cookie"]
        assert c.get("/api/models").status_code == 200  # cookie
        with c.websocket_connect(f"/api/models/{pump}/stream") as ws:
            ws.send_text(json.dumps({"sample_rate": 16000, "format": "f32"}))
            assert ws.receive_json()["type"] == "ready"
    # request logs: one line per request, without the key (query strings are never logged) or the audio
    lines = [r.getMessage() for r in caplog.records if r.name == "latentbridge.serve"]
    assert any(f"POST /api/models/{pump}/score 200 " in x for x in lines)
    assert any(x.startswith("GET / 200 ") for x in lines) and any(" 401 " in x for x in lines)
    assert not any("s3cret" in x or "RIFF" in x or "api_key" in x for x in lines)
    # uvicorn's own line for an accepted WebSocket held its query string, the browser's key with it
    import logging

    from latentbridge.serve.server import QueryRedactor

    rec = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, '%s - "WebSocket %s" [accepted]',
                            ("127.0.0.1:46302", f"/api/models/{pump}/stream?api_key=s3cret"), None)
    assert QueryRedactor().filter(rec) and rec.getMessage() == \
        f'127.0.0.1:46302 - "WebSocket /api/models/{pump}/stream?..." [accepted]'
    with TestClient(create_app(models)) as c:
        assert "access-control-allow-origin" not in c.get("/healthz", headers={"Origin": "http://x.test"}).headers
    with TestClient(create_app(models, ServeSettings(cors_origins=("http://x.test",), api_key="k"))) as c:
        r = c.get("/healthz", headers={"Origin": "http://x.test", "X-API-Key": "k"})
        assert r.headers["access-control-allow-origin"] == "http://x.test"
        pre = c.options(f"/api/models/{pump}/score", headers={
            "Origin": "http://x.test", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key"})
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "http://x.test"
        assert c.options("/healthz").status_code == 401  # not a preflight: the key is needed


# ----------------------------------------------------------------------------- predict, sample


def _png(b64: str):
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


def _vibration_csv(n_channels=2, seconds=25.0, rate=100.0) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(1)
    cols = [np.sin(2 * np.pi * (1 + c) * t) + 0.1 * rng.normal(size=t.size) for c in range(n_channels)]
    lines = ["time," + ",".join(f"s{c}" for c in range(n_channels))]
    lines += [f"{ti:.2f}," + ",".join(f"{col[i]:.5f}" for col in cols) for i, ti in enumerate(t)]
    return ("\n".join(lines) + "\n").encode()


def test_predict_bridge_mask_and_extent(client, folders, models, tmp_path):
    from scipy.io import savemat

    from latentbridge.tasks.multimodal import predict_recording

    name = _name(folders, "bridge")
    r = _post(client, f"/api/models/{name}/predict", "test_07.csv", _vibration_csv(), data={"scale": "4"})
    assert r.status_code == 200, r.text
    r2 = _post(client, f"/api/models/{name}/predict", "test_07.csv", _vibration_csv(), data={"route": "bridge"})
    assert r2.status_code == 422 and "route is a digits model's" in r2.json()["detail"]  # (it went unread)
    huge = "\n".join(line if not line[:1].isdigit() else ",".join([line.split(",")[0]] + [f"{float(v) * 1e300:g}" for
                     v in line.split(",")[1:]]) for line in _vibration_csv().decode().splitlines())
    r2 = _post(client, f"/api/models/{name}/predict", "huge.csv", huge.encode())  # NaN predictions: a 500
    assert r2.status_code == 422 and r2.json()["detail"].startswith("huge.csv: samples reach "), r2.text
    body = r.json()
    _as_documented(PredictResponse, body)
    local = tmp_path / "test_07.csv"
    local.write_bytes(_vibration_csv())
    ref = predict_recording(models[name].saved, local)
    assert body["n_windows"] == 4 and body["window_starts_s"] == [0.0, 5.0, 10.0, 15.0]
    assert body["damage_extent"] == pytest.approx(ref.extent, rel=1e-5)
    mask = _png(body["mask_png"])
    assert mask.shape == (16 * 4, 48 * 4) and set(np.unique(mask)) <= {0, 255}
    np.testing.assert_array_equal(mask[::4, ::4] > 127, ref.mask > 0.5)
    prob = _png(body["mask_probability_png"])[::4, ::4] / 255.0
    np.testing.assert_allclose(prob, ref.mask_prob, atol=1 / 255)
    # the mask at the size of the model's training labels too: bilinear, then thresholded
    from latentbridge.io.masks import upsample_mask

    full = _png(body["mask_full_png"])
    assert body["mask_full_shape"] == list(full.shape) == [64, 192] and set(np.unique(full)) <= {0, 255}
    np.testing.assert_array_equal(full > 127, upsample_mask(ref.mask_prob, (64, 192), 0.3)[1] > 0.5)
    assert body["warnings"] == []
    # what the reader says of a file reaches the client, naming its file (it was only logged, under a temporary path)
    epoch = _vibration_csv().decode().splitlines()
    epoch = "\n".join(["timestamp," + epoch[0].split(",", 1)[1]] + [
        f"{1714564800000 + round(float(line.split(',', 1)[0]) * 1000)},{line.split(',', 1)[1]}" for line in epoch[1:]])
    r = _post(client, f"/api/models/{name}/predict", "stamped.csv", epoch.encode())
    assert r.status_code == 200, r.text
    assert r.json()["damage_extent"] == pytest.approx(ref.extent, rel=1e-5)
    assert any(w.startswith("stamped.csv: the time column 'timestamp' holds 1.715e+12, Unix time in ms")
               for w in r.json()["warnings"]), r.json()["warnings"]
    # the same samples as a MATLAB file (the DAQ's struct: samples and rate): the same prediction
    samples = np.loadtxt(io.StringIO(_vibration_csv().decode()), delimiter=",", skiprows=1)[:, 1:]
    mat = io.BytesIO()
    savemat(mat, {"daq": {"acc": samples, "fs": 100.0}})
    r = _post(client, f"/api/models/{name}/predict", "test_07.mat", mat.getvalue())
    assert r.status_code == 200, r.text
    assert r.json()["damage_extent"] == pytest.approx(ref.extent, rel=1e-4)
    # the CSV reader's own errors, naming the client's file and the line
    bad = _vibration_csv().decode().splitlines()
    bad[10] += ",7"
    r = _post(client, f"/api/models/{name}/predict", "ragged.csv", "\n".join(bad).encode())
    assert r.status_code == 422 and r.json()["detail"].startswith("ragged.csv: ragged rows: line 11 has 4 fields")
    r = _post(client, f"/api/models/{name}/predict", "three.csv", _vibration_csv(n_channels=3))
    assert r.status_code == 422 and "3 sensor channels; the model was trained on 2" in r.json()["detail"]
    # a dead sensor: one channel of zeros is named; every channel constant is no vibration (a mask was predicted)
    lines = _vibration_csv().decode().splitlines()
    dead = "\n".join(lines[:1] + [line.rsplit(",", 1)[0] + ",0" for line in lines[1:]])
    r = _post(client, f"/api/models/{name}/predict", "dead.csv", dead.encode())
    assert r.status_code == 200 and any(w.startswith("dead.csv: channel(s) 1 (s1) constant over the whole recording")
                                        for w in r.json()["warnings"]), r.text
    flat = "\n".join(lines[:1] + [line.split(",", 1)[0] + ",0,0" for line in lines[1:]])
    r = _post(client, f"/api/models/{name}/predict", "flat.csv", flat.encode())
    assert r.status_code == 422 and r.json()["detail"].startswith("flat.csv: every channel is constant"), r.text
    r = _post(client, f"/api/models/{name}/predict", "short.csv", _vibration_csv(seconds=5))
    assert r.status_code == 422 and "recording too short" in r.json()["detail"]
    r = _post(client, f"/api/models/{name}/predict", "a.txt", b"1,2")
    assert r.status_code == 422 and "expected a vibration recording (.csv, .mat or an audio file: .wav, .flac, ...), " \
        "got .txt" in r.json()["detail"], r.text
    r = _post(client, f"/api/models/{name}/predict", "a.wav", b"RIFF")  # audio: a recording of its channels
    assert r.status_code == 422 and r.json()["detail"].startswith("a.wav: unreadable or truncated audio file"), r.text
    bare = "\n".join(",".join(line.split(",")[1:]) for line in _vibration_csv().decode().splitlines()[1:]).encode()
    r = _post(client, f"/api/models/{name}/predict", "bare.csv", bare)  # no time column, no rate
    assert r.status_code == 422 and "sample_rate in a /score or /predict request" in r.json()["detail"], r.text
    for rate in ("inf", "1e13"):  # a 500 (OverflowError); a worker resampling without end
        r = _post(client, f"/api/models/{name}/predict", "bare.csv", bare, data={"sample_rate": rate})
        assert r.status_code == 422 and "sample_rate" in r.text, (rate, r.text)
    r = _post(client, f"/api/models/{name}/predict", "bare.csv", bare, data={"sample_rate": "100"})
    assert r.status_code == 200 and r.json()["damage_extent"] == pytest.approx(body["damage_extent"], rel=1e-6)


def test_predict_digits_both_ways(client, folders):
    from PIL import Image

    name = _name(folders, "digits")
    rng = np.random.default_rng(0)
    t = np.arange(6000) / 8000
    spoken = (0.3 * np.sin(2 * np.pi * 300 * t) * np.hanning(t.size) + 0.01 * rng.normal(size=t.size))
    r = _post(client, f"/api/models/{name}/predict", "seven.wav", _wav_bytes(spoken.astype(np.float32), 8000))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "audio_to_image" and body["route"] == "posterior"
    _as_documented(PredictResponse, body)
    assert _png(body["image_png"]).shape == (28 * 8, 28 * 8)
    r2 = _post(client, f"/api/models/{name}/predict", "seven.wav", _wav_bytes(spoken.astype(np.float32), 8000),
               data={"route": "bridge"})
    assert r2.status_code == 200 and r2.json()["route"] == "bridge"
    img = np.zeros((56, 56), np.uint8)
    img[10:46, 26:30] = 255  # a "1", light ink on black as in MNIST
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    r = _post(client, f"/api/models/{name}/predict", "one.png", buf.getvalue())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "image_to_audio" and body["sample_rate"] == 8000
    _as_documented(PredictResponse, body)
    wave, sr = sf.read(io.BytesIO(base64.b64decode(body["wav"])))
    assert sr == 8000 and len(wave) == 8000 and np.isfinite(wave).all() and np.abs(wave).max() > 0.1
    inp = _png(body["input_image_png"])[::8, ::8]
    assert inp.shape == (28, 28) and inp[14, 14] > 200 and inp[2, 2] == 0
    buf = io.BytesIO()
    Image.fromarray(255 - img).save(buf, format="PNG")  # dark ink on white paper: inverted
    body2 = _post(client, f"/api/models/{name}/predict", "one_dark.png", buf.getvalue()).json()
    np.testing.assert_array_equal(_png(body2["input_image_png"]), _png(body["input_image_png"]))
    r = _post(client, f"/api/models/{name}/predict", "one.png", buf.getvalue(), data={"route": "sideways"})
    assert r.status_code == 400 and "route must be" in r.json()["detail"]
    r = _post(client, f"/api/models/{name}/predict", "one.gif", buf.getvalue())
    assert r.status_code == 422 and r.json()["detail"].startswith("one.gif: unsupported file type '.gif'")
    r = _post(client, f"/api/models/{name}/predict", "one.jpg", b"\xff\xd8\xff")  # a JPEG cut short
    assert r.status_code == 422 and r.json()["detail"].startswith("one.jpg: cannot read the image")
    from PIL import Image

    jpeg = io.BytesIO()
    Image.open(io.BytesIO(buf.getvalue())).convert("RGB").save(jpeg, format="JPEG", quality=95)
    body3 = _post(client, f"/api/models/{name}/predict", "one.jpg", jpeg.getvalue()).json()
    assert body3["kind"] == "image_to_audio"  # a photographed digit: JPEG works as PNG does
    assert np.abs(_png(body3["input_image_png"]).astype(int) - _png(body["input_image_png"])).max() < 40
    r = _post(client, f"/api/models/{name}/predict", "broken.png", b"\x89PNG\r\n\x1a\nxx")
    assert r.status_code == 422 and r.json()["detail"].startswith("broken.png: cannot read the image")


def test_sample_is_seeded_and_leaves_the_global_rng_alone(client, folders):
    import torch

    name = _name(folders, "digits")
    state = torch.random.get_rng_state()
    a = client.post(f"/api/models/{name}/sample", json={"n": 2, "seed": 3}).json()
    b = client.post(f"/api/models/{name}/sample", json={"n": 2, "seed": 3}).json()
    c = client.post(f"/api/models/{name}/sample", json={"n": 2, "seed": 4}).json()
    assert torch.equal(state, torch.random.get_rng_state())
    assert a["images_png"] == b["images_png"] and a["wavs"] == b["wavs"] and a["images_png"] != c["images_png"]
    assert len(a["images_png"]) == 2 and _png(a["images_png"][0]).shape == (224, 224)
    _as_documented(SampleResponse, a)
    assert client.post(f"/api/models/{name}/sample", json={"n": 99}).status_code == 422
    r = client.post(f"/api/models/{name}/sample", json={"n": 1, "guidance": 2, "label": "3"})  # a diffusion's, unread
    assert r.status_code == 422 and r.json()["detail"].startswith("guidance, label: settings of a diffusion model's"), \
        r.text
    # seeds `latentbridge sample --seed` refuses: 2**70 answered 500 (torch), -1 drew images no command reproduces
    for seed in (2 ** 70, -1, 2 ** 32):
        r = client.post(f"/api/models/{name}/sample", json={"n": 1, "seed": seed})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "seed"], (seed, r.text)
    r = client.post(f"/api/models/{name}/sample", content=b'{"n": 1, "guidance": NaN}',
                    headers={"Content-Type": "application/json"})  # was "less than or equal to 20"
    assert r.status_code == 422 and r.json()["detail"][0]["msg"] == "Input should be a finite number"
    assert isinstance(Problem.model_validate(r.json()).detail, list)  # as the schema says: one entry per field
    # an upload sent where JSON is expected: a 422 that names the problem, not the upload's bytes
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    r = client.post(f"/api/models/{name}/sample", files={"file": ("seven.png", png, "image/png")})
    assert r.status_code == 422 and "PNG" not in r.text and r.json()["detail"][0]["loc"] == ["body"]
    assert client.post(f"/api/models/{_name(folders, 'pump')}/sample", json={"n": 1}).status_code == 404


def test_diffusion_sample_is_the_cli_sample(client, folders, models):
    from latentbridge.tasks.generate import sample_saved

    name = _name(folders, "ddpm")
    listed = client.get(f"/api/models/{name}").json()
    assert listed["task"] == "diffusion" and listed["endpoints"] == ["sample"]
    assert listed["input"]["class_names"][3] == "three" and listed["input"]["defaults"]["steps"] == 5
    r = client.post(f"/api/models/{name}/sample", json={"n": 3, "seed": 7, "label": "three", "guidance": 1.5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["labels"] == [3, 3, 3] and body["class_names"] == ["three"] * 3
    _as_documented(SampleResponse, body)
    assert body["scheduler"] == "ddim" and body["steps"] == 5 and body["guidance"] == 1.5 and body["seed"] == 7
    ref = sample_saved(models[name].saved, 3, label="three", guidance=1.5, seed=7)
    for png, img in zip(body["images_png"], ref.images):
        got = _png(png)
        assert got.shape == (112, 112)  # 28 px x 4
        np.testing.assert_allclose(got[::4, ::4] / 255.0, img[0], atol=1 / 255 + 1e-6)
    again = client.post(f"/api/models/{name}/sample", json={"n": 3, "seed": 7, "label": 3, "guidance": 1.5}).json()
    assert again["images_png"] == body["images_png"]
    # true is no class (it sampled class 1)
    assert client.post(f"/api/models/{name}/sample", json={"n": 1, "label": True}).status_code == 422
    mixed = client.post(f"/api/models/{name}/sample", json={"n": 4, "seed": 7, "scheduler": "dpm", "steps": 3}).json()
    assert mixed["labels"] == [0, 1, 2, 3] and mixed["scheduler"] == "dpm" and len(mixed["images_png"]) == 4
    r = client.post(f"/api/models/{name}/sample", json={"n": 1, "label": "eleven"})
    assert r.status_code == 400 and "unknown class 'eleven'" in r.json()["detail"]
    # keys it does not take were unread ("eta", the CLI's "num_samples": the run's settings, without a word); an empty
    # condition for a model of none was a 500
    for key in ("eta", "num_samples", "route"):
        bad = client.post(f"/api/models/{name}/sample", json={"n": 1, key: 1})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", key], bad.text
    assert client.post(f"/api/models/{name}/sample", json={"n": 1, "condition": []}).status_code == 200
    # the model by its served name, not its folder on the server
    assert r.json()["detail"].startswith(f"{name}: ") and str(models[name].saved.path) not in r.text
    r = client.post(f"/api/models/{name}/sample", json={"n": 1, "steps": 51})
    assert r.status_code == 400 and "50 training timesteps" in r.json()["detail"]
    assert client.post(f"/api/models/{name}/sample", json={"n": 1, "scheduler": "euler"}).status_code == 422
    assert client.post(f"/api/models/{name}/sample", json={"n": 1, "guidance": -1}).status_code == 422
    assert client.post(f"/api/models/{name}/predict", files={"file": ("a.png", b"x")}).status_code == 404


def _npy(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _from_b64_npy(s: str):
    return np.load(io.BytesIO(base64.b64decode(s)))


def test_spatial_enhance_is_the_cli_enhance(client, folders, models, tmp_path):
    from latentbridge.tasks.spatial import enhance_saved

    name = _name(folders, "cvae")
    listed = client.get(f"/api/models/{name}").json()
    assert listed["task"] == "spatial" and listed["endpoints"] == ["enhance"] and listed["input"]["channels"] == 3
    rng = np.random.default_rng(0)
    section = rng.random((20, 24, 3)).astype(np.float32)
    mask = np.ones((20, 24), bool)
    mask[:3, :5] = False  # outside the tissue
    mask[10, 4:12] = False  # a scan-line gap inside it
    local = tmp_path / "slide.npy"
    np.save(local, section)
    np.save(tmp_path / "slide_mask.npy", mask)
    regions = {}
    for task, shape in [("denoise", (20, 24, 3)), ("inpaint", (20, 24, 3)), ("upscale", (40, 48, 3))]:
        r = client.post(f"/api/models/{name}/enhance", data={"task": task, "seed": "1"},
                        files={"file": ("slide.npy", _npy(section)), "mask": ("slide_mask.npy", _npy(mask))})
        assert r.status_code == 200, r.text
        body = r.json()
        _as_documented(EnhanceResponse, body)
        ref = enhance_saved(models[name].saved, local, task, mask=str(tmp_path / "slide_mask.npy"), seed=1)
        enhanced, sigma = _from_b64_npy(body["enhanced_npy"]), _from_b64_npy(body["uncertainty_npy"])
        assert body["shape"] == list(shape) and enhanced.shape == shape and sigma.shape == shape
        np.testing.assert_allclose(enhanced, ref.enhanced, rtol=1e-5, atol=1e-6)
        regions[task] = _from_b64_npy(body["region_npy"])
        np.testing.assert_array_equal(regions[task], ref.region)
        assert (sigma[ref.region] > 0).all() and len(body["panels"]) == 3
        assert _png(body["panels"][0]["enhanced_png"]).shape == _png(body["panels"][0]["input_png"]).shape
    # denoising answers for the measured pixels; inpainting also for the gap inside the section
    assert regions["denoise"][mask].all() and not regions["denoise"][10, 4:12].any()
    assert regions["inpaint"][10, 4:12].all() and not regions["inpaint"][:3, :5].any()
    r = client.post(f"/api/models/{name}/enhance", data={"task": "denoise"},
                    files={"file": ("four.npy", _npy(rng.random((20, 24, 4)).astype(np.float32)))})
    assert r.status_code == 422 and r.json()["detail"].startswith("four.npy: has 4 channels; the model reads 3")
    r = client.post(f"/api/models/{name}/enhance", data={"task": "denoise"}, files={"file": ("s.csv", b"1,2")})
    assert r.status_code == 422 and "unsupported file type '.csv'" in r.json()["detail"]
    r = client.post(f"/api/models/{name}/enhance", data={"task": "sharpen"}, files={"file": ("s.npy", _npy(section))})
    assert r.status_code == 422
    # a seed out of range is told by its request field, not the CLI's --seed
    r = client.post(f"/api/models/{name}/enhance", data={"task": "denoise", "seed": str(2 ** 63)},
                    files={"file": ("s.npy", _npy(section))})
    assert r.status_code == 422 and "--seed" not in r.text, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "seed"] and "9223372036854775807" in r.json()["detail"][0]["msg"]
    r = client.post(f"/api/models/{name}/enhance", data={"task": "denoise"}, files={"file": ("s.npy", b"garbage")})
    assert r.status_code == 422 and r.json()["detail"].startswith("s.npy:") and "upload" not in r.json()["detail"]
    r = client.post(f"/api/models/{name}/enhance", data={"task": "denoise"},  # the section by its name, not ours
                    files={"file": ("base.npy", _npy(section)), "mask": ("none.mask.npy", _npy(np.zeros((20, 24), bool)))})
    assert r.status_code == 422 and r.json()["detail"] == "none.mask.npy: the mask of base.npy marks no pixel as valid"
    # the work grows with the values an array unpacks to, not its compressed size: a limit before unpacking
    buf = io.BytesIO()
    np.savez_compressed(buf, values=np.zeros((2000, 2000, 3), np.float32))
    assert len(buf.getvalue()) < 100_000
    small = TestClient(create_app(models, ServeSettings(max_values=1_000_000)))
    r = small.post(f"/api/models/{name}/enhance", data={"task": "denoise"}, files={"file": ("bomb.npz", buf.getvalue())})
    assert r.status_code == 413 and r.json()["detail"].startswith("bomb.npz: an array of 12,000,000 values; the limit")
    assert client.post(f"/api/models/{_name(folders, 'ddpm')}/enhance", data={"task": "denoise"},
                       files={"file": ("s.npy", _npy(section))}).status_code == 404


def test_spatial_enhance_says_what_the_cli_warns(folders, tmp_path):
    """/enhance answered 200 without a `warnings` field for a map 1000 times the training scale, a negated map, a map
    without a mask and channels without signal, which `enhance` warns about; /score and /predict answer theirs."""
    import shutil

    from latentbridge.models.hub import update_info

    folder = tmp_path / "maps"
    shutil.copytree(folders["cvae"], folder)
    spec = json.loads((folder / "config.json").read_text())["transform"]  # trained on values 0 to 1.2
    update_info(folder, {"transform": {**spec, "center": [0.6] * 3, "scale": [0.3] * 3, "lower": [-2.0] * 3,
                                       "upper": [2.0] * 3}})
    section = np.random.default_rng(0).random((20, 24, 3)).astype(np.float32) + 0.1
    mask = np.ones((20, 24), bool)
    cases = {"loud.npy": (section * 1000, "spread over far more than the range of the training sections'"),
             "neg.npy": (-section, "outside the range of the training sections' intensities"),
             "dark.npy": (section * np.array([1, 0, 0], np.float32), "no signal in 710, 720: the model's maps of them")}
    with TestClient(create_app([folder])) as client:
        for file, (values, said) in cases.items():
            r = client.post("/api/models/maps/enhance", data={"task": "denoise"},
                            files={"file": (file, _npy(values)), "mask": ("m.npy", _npy(mask))})
            assert r.status_code == 200, r.text
            _as_documented(EnhanceResponse, r.json())
            assert any(w.startswith(f"{file}: ") and said in w for w in r.json()["warnings"]), (file, r.json())
            assert all("upload" not in w and "latentbridge-serve-" not in w for w in r.json()["warnings"])
        for _ in range(2):  # said for every upload, not once per server
            r = client.post("/api/models/maps/enhance", data={"task": "denoise"},
                            files={"file": ("bare.npy", _npy(section))})
            assert r.status_code == 200 and any(w.startswith("bare.npy: no mask (the request's 'mask' field)")
                                                for w in r.json()["warnings"])


# ----------------------------------------------------------------------------- WebSocket stream


def _stream(client, pump, wave, sr, fmt="f32", frame=4000, end=True, live=None):
    with client.websocket_connect(f"/api/models/{pump}/stream") as ws:
        ws.send_text(json.dumps({"sample_rate": sr, "format": fmt, **({} if live is None else {"live": live})}))
        ready = ws.receive_json()
        assert ready["type"] == "ready"
        for i in range(0, len(wave), frame):
            block = wave[i:i + frame]
            ws.send_bytes(block.astype("<f4").tobytes() if fmt == "f32"
                          else np.round(block * 32767).astype("<i2").tobytes())
        if end:
            ws.send_text(json.dumps({"end": True}))
        msgs = []
        while True:
            m = ws.receive_json()
            msgs.append(m)
            if m["type"] not in ("window", "warning"):
                return msgs


def test_stream_windows_match_score(client, folders, machine_data, tmp_path):
    pump = _name(folders, "pump")
    wav = sorted((machine_data / "test" / "anomalous").glob("*.wav"))[0]
    wave, sr = sf.read(wav, dtype="float32")
    wave = wave[: int(3.5 * sr)]  # a kept, padded partial window at the end
    msgs = _stream(client, pump, wave, sr, frame=1234)
    windows = [m for m in msgs if m["type"] == "window"]
    assert msgs[-1]["type"] == "end" and msgs[-1]["n_windows"] == len(windows) == 3
    ex = Detector.load(folders["pump"])
    w, starts = ex.extractor(use_cache=False).windows_of(wave)
    ref_scores, _ = ex.score_windows(w)
    np.testing.assert_allclose([m["score"] for m in windows], ref_scores, rtol=1e-5)
    np.testing.assert_allclose([m["start_s"] for m in windows], starts)
    s16 = _stream(client, pump, wave, sr, fmt="s16")
    np.testing.assert_allclose([m["score"] for m in s16 if m["type"] == "window"], ref_scores, rtol=2e-2)
    assert not [m for m in msgs + s16 if m["type"] == "warning"]
    # a muted input: its windows read "anomalous" one by one, the reason only in the server's log; now told
    muted = _stream(client, pump, np.zeros(3 * sr, np.float32), sr)
    said = [m["detail"] for m in muted if m["type"] == "warning"]
    assert len(said) == 1 and "the window at 0.00 s is digital silence" in said[0], muted
    assert muted[-1]["type"] == "end" and muted[-1]["n_silent_windows"] == muted[-1]["n_windows"] > 0
    # what an upload of the same samples is told, from the stream's first window: integer samples sent as floats (every
    # window flagged without a word), audio of a browser's 44.1 kHz resampled down (the same)
    from latentbridge.io import resample

    normal, _ = sf.read(sorted((machine_data / "test" / "normal").glob("*.wav"))[0], dtype="float32")
    for case, data, rate, starts in (("unscaled", normal * 32768, sr, "1 of 1 recordings have an RMS level above full "
                                      "scale (the stream's 16000-Hz audio"),
                                     ("44k", resample(normal, sr, 44100), 44100, "1 of 1 recordings resampled down to "
                                      "the model's 16000 Hz (from 44100 Hz; the stream's 44100-Hz audio) hold less")):
        said = [m["detail"] for m in _stream(client, pump, data, rate) if m["type"] == "warning"]
        assert len(said) == 1 and said[0].startswith(starts), (case, said)
        wav = tmp_path / f"{case}.wav"
        sf.write(wav, data, rate, subtype="FLOAT")
        r = _post(client, f"/api/models/{pump}/score", f"{case}.wav", wav.read_bytes())
        assert any(starts.split(" (")[0] in w for w in r.json()["warnings"]), (case, r.json()["warnings"])


def test_stream_takes_out_an_offset_keeps_the_models_short_share_and_says_what_it_does_not_trim(
        client, folders, machine_data, tmp_path):
    """A stream loses its constant offset as a file does when read (0.05 of DC flagged a third window, the upload
    did not); a model trained with `audio.min_window_share` 0.1 scores a 0.3-s stream as it scores the file (the
    stream said "too short ... need a smaller share"); a model of silence-trimmed recordings says at `ready` that a
    stream is not trimmed (its windows of silence scored 427 against 14.7, without a word)."""
    from latentbridge.cli import main

    pump = _name(folders, "pump")
    wave, sr = sf.read(sorted((machine_data / "test" / "normal").glob("*.wav"))[0], dtype="float32")
    ex = Detector.load(folders["pump"])
    ref, _ = ex.score_windows(ex.extractor(use_cache=False).windows_of(wave)[0])
    biased = _stream(client, pump, wave + np.float32(0.05), sr, frame=1000)
    assert [m["score"] for m in biased if m["type"] == "window"] == pytest.approx(list(ref), rel=2e-3)
    assert biased[0]["type"] == "window" and _stream(client, pump, wave, sr)[0]["type"] == "window"

    out = tmp_path / "short_trimmed"
    assert main(["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", str(out), "-o",
                 "audio.min_window_share=0.1", "-o", "audio.trim_db=40"]) == 0
    with TestClient(create_app(load_models([out]))) as c:
        with c.websocket_connect(f"/api/models/{out.name}/stream") as ws:
            ws.send_text(json.dumps({"sample_rate": sr, "format": "f32"}))
            ready = ws.receive_json()
        assert ready["warnings"] == ["the model learnt recordings trimmed of their leading and trailing silence "
                                     "(audio.trim_db 40 dB); a live input is not trimmed: its silent stretches score "
                                     "as unlike the training sound"]
        short = _stream(c, out.name, wave[: int(0.3 * sr)], sr)
        assert short[-1]["type"] == "end" and short[-1]["n_windows"] == 1, short
    with client.websocket_connect(f"/api/models/{pump}/stream") as ws:
        ws.send_text(json.dumps({"sample_rate": sr, "format": "f32"}))
        assert ws.receive_json()["warnings"] == []


def test_stream_start_takes_a_low_rate_sensor_s_own_rate():
    """A model fitted on 200-Hz accelerometers could not be streamed at its own rate (from 1000 Hz only); a stream
    upsampled to 1000 Hz scored a normal recording 5 times over its threshold. The start message takes 200 Hz (the
    rate rule against the model's is test_stream_bad_start_message's)."""
    from latentbridge.serve.stream import parse_start

    assert parse_start('{"sample_rate": 200, "channels": 3}') == (200, "f32", 3, False)


@pytest.mark.parametrize("first,expected", [
    ("hello", "not JSON"), ('{"sample_rate": 0}', "sample_rate must be an integer from 1 to 384000"),
    # the rule of a file's rate: a 16-kHz model is not given a 100-Hz stream (1000 Hz, 16 times, was taken)
    ('{"sample_rate": 100}', "<stream>: recorded at 100 Hz (its header's rate, its time column's or the rate given "
                             "for it): reading it at the model's 16000 Hz would upsample it 160 times"),
    ('{"sample_rate": 16000, "format": "f64"}', "format must be one of"),
    ('{"sample_rate": 16000, "channels": 0}', "channels must be an integer"),
    ('{"sample_rate": 16000, "live": "yes"}', "live must be true (a live input"),
])
def test_stream_bad_start_message(client, folders, first, expected):
    with client.websocket_connect(f"/api/models/{_name(folders, 'pump')}/stream") as ws:
        ws.send_text(first)
        m = ws.receive_json()
        assert m["type"] == "error" and expected in m["detail"]


def test_stream_bad_frames_short_recordings_unknown_models(client, folders):
    pump = _name(folders, "pump")
    with client.websocket_connect(f"/api/models/{pump}/stream") as ws:
        ws.send_text(json.dumps({"sample_rate": 16000, "format": "f32"}))
        ws.receive_json()
        ws.send_bytes(b"\x00" * 6)
        m = ws.receive_json()
        assert m["type"] == "error" and "not a whole number of f32 frames" in m["detail"]
    with client.websocket_connect(f"/api/models/{pump}/stream") as ws:
        ws.send_text(json.dumps({"sample_rate": 16000, "format": "f32"}))
        ws.receive_json()
        ws.send_bytes(np.array([0.1, np.nan, np.inf], "<f4").tobytes())
        m = ws.receive_json()
        assert m["type"] == "error" and "3 non-finite samples" not in m["detail"] and "2 non-finite" in m["detail"]
    with client.websocket_connect(f"/api/models/{pump}/stream") as ws:  # a NaN score answered "normal" before
        ws.send_text(json.dumps({"sample_rate": 16000, "format": "f32"}))
        ws.receive_json()
        ws.send_bytes(np.full(1000, 1e18, "<f4").tobytes())
        m = ws.receive_json()
        assert m["type"] == "error" and "<stream>: samples reach 1e+18, beyond 1e+12" in m["detail"], m
    msgs = _stream(client, pump, np.full(3000, 0.1, np.float32), 16000)  # 0.19 s, then end
    assert msgs[-1]["type"] == "error" and "<stream>: recording too short" in msgs[-1]["detail"]
    for text in ('{"end": "no"}', "[1, 2, 3]"):  # ended the stream; was ignored
        with client.websocket_connect(f"/api/models/{pump}/stream") as ws:
            ws.send_text(json.dumps({"sample_rate": 16000, "format": "f32"}))
            ws.receive_json()
            ws.send_text(text)
            m = ws.receive_json()
            assert m["type"] == "error" and 'the only text message after the first is {"end": true}' in m["detail"]
    for name in ("nope", _name(folders, "bridge")):
        with pytest.raises(WebSocketDenialResponse) as denied:
            with client.websocket_connect(f"/api/models/{name}/stream"):
                pass
        assert denied.value.status_code == 404


def test_live_streams_are_capped_and_the_slot_comes_back(models):
    """Each stream holds a thread and a queue: one more than --max-streams is refused (503, Retry-After) while the
    others run, and a closed stream frees its slot."""
    pump = next(n for n, m in models.items() if m.task == "anomaly")
    start = json.dumps({"sample_rate": 16000, "format": "f32"})
    with TestClient(create_app(models, ServeSettings(max_streams=2))) as c:
        with c.websocket_connect(f"/api/models/{pump}/stream") as a, c.websocket_connect(f"/api/models/{pump}/stream") as b:
            for ws in (a, b):
                ws.send_text(start)
                assert ws.receive_json()["type"] == "ready"
            with pytest.raises(WebSocketDenialResponse) as denied:
                with c.websocket_connect(f"/api/models/{pump}/stream"):
                    pass
            assert denied.value.status_code == 503 and denied.value.headers["retry-after"] == "10"
            assert "2 live streams already" in denied.value.json()["detail"]
        with c.websocket_connect(f"/api/models/{pump}/stream") as ws:  # both closed: room again
            ws.send_text(start)
            assert ws.receive_json()["type"] == "ready"
    with pytest.raises(LatentbridgeError, match="max-streams must be positive"):
        ServeSettings(max_streams=0)


def test_stream_overflow_is_counted_not_fatal(models, machine_data, tmp_path):
    """A scorer slower than a live stream: the blocks waiting are dropped and counted, the stream goes on with fresh
    audio in pieces of at least the queue's length (one window here); tests/test_stream.py checks the windows around
    a gap. A recording (not live, the default) waits instead: every sample scored, at the recording's times (a
    5-minute WAV sent at once had lost 256 blocks, and audio from 250 s was reported near 4 s)."""
    pump = next(n for n, m in models.items() if m.task == "anomaly")
    app = create_app(models, ServeSettings(stream_queue_blocks=48))  # 2.4 s of 800-frame blocks
    batcher = app.state.batchers[pump]
    real = batcher.fn

    def slow(windows):
        time.sleep(0.3)
        return real(windows)

    batcher.fn = slow
    wave, sr = sf.read(sorted((machine_data / "test" / "normal").glob("*.wav"))[0], dtype="float32")
    with TestClient(app) as c:
        msgs = _stream(c, pump, np.tile(wave, 3), sr, frame=800, live=True)
        recording = _stream(c, pump, np.tile(wave, 3), sr, frame=800)
    end = msgs[-1]
    assert end["type"] == "end" and end["dropped_blocks"] > 0 and end["overflows"] > 0
    assert end["dropped_frames"] == end["dropped_blocks"] * 800
    assert end["duration_s"] == pytest.approx(12.0 - end["dropped_frames"] / sr)
    windows = [m for m in msgs if m["type"] == "window"]
    assert len(windows) == end["n_windows"] >= 1 and windows[-1]["overflows"] >= 1
    end = recording[-1]
    assert end["type"] == "end" and end["dropped_blocks"] == 0 and end["duration_s"] == pytest.approx(12.0)
    sf.write(tmp_path / "tiled.wav", np.tile(wave, 3), sr)
    ref = score_task(models[pump].saved.path, [tmp_path / "tiled.wav"])
    windows = [m for m in recording if m["type"] == "window"]
    np.testing.assert_allclose([w["start_s"] for w in windows], ref.windows.starts_s)
    np.testing.assert_allclose([w["score"] for w in windows], ref.window_scores, rtol=1e-4)


def test_non_finite_scores_are_no_decision(models, machine_data):
    """A window scored NaN: the upload answered 500 (JSON holds no NaN) and the stream sent a bare NaN as 'normal';
    both now say there is no decision, as `anomaly score` does."""
    pump = next(n for n, m in models.items() if m.task == "anomaly")
    app = create_app(models)
    batcher = app.state.batchers[pump]
    real = batcher.fn

    def nan(windows):
        scores, decisions = real(windows)
        return np.asarray(scores) * np.nan, decisions

    batcher.fn = nan
    wav = sorted((machine_data / "test" / "normal").glob("*.wav"))[0]
    with TestClient(app) as c:
        r = _post(c, f"/api/models/{pump}/score", wav.name, wav.read_bytes())
        assert r.status_code == 422 and "the model gave non-finite scores for" in r.text and "no decision" in r.text
        wave, sr = sf.read(wav, dtype="float32")
        msgs = _stream(c, pump, wave, sr)
    assert msgs[-1]["type"] == "error" and "the model gave a non-finite score for the window at 0.00 s; no " \
        "decision" in msgs[-1]["detail"] and not any(m["type"] == "window" for m in msgs), msgs[-1]


# ----------------------------------------------------------------------------- micro-batcher


def test_micro_batcher_batches_concurrent_requests_and_routes_rows():
    calls = []

    def fn(w):
        calls.append(len(w))
        time.sleep(0.02)
        return w.sum(axis=1), w.sum(axis=1) > 0

    b = MicroBatcher(fn, max_batch=16, max_wait_s=0.01)
    futs = [b.submit(np.full((2, 3), i, np.float32)) for i in range(20)]
    for i, f in enumerate(futs):
        s, d = f.result(timeout=10)
        np.testing.assert_array_equal(s, [3.0 * i] * 2)
        assert d.tolist() == [i > 0] * 2
    assert b.stats.requests == 20 and b.stats.windows == 40
    assert b.stats.batches < 20 and max(calls) <= 16 and sum(calls) == 40
    b.close()
    single = MicroBatcher(fn, max_batch=1)
    calls.clear()
    [f.result(timeout=10) for f in [single.submit(np.ones((3, 2))) for _ in range(5)]]
    assert calls == [3] * 5 and single.stats.batches == 5
    boom = MicroBatcher(lambda w: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        boom.submit(np.ones((1, 1))).result(timeout=10)
    assert boom.submit(np.ones((1, 1))).exception(timeout=10) is not None  # still serving
    boom.close()
    single.close()


def test_micro_batcher_serves_short_requests_first_without_starving_long_ones():
    gate = threading.Event()
    calls = []

    def fn(w):
        gate.wait(10)
        calls.append(len(w))
        return w.sum(axis=1), w.sum(axis=1) > 0

    for max_batch in (1, 4):
        calls.clear()
        gate.clear()
        b = MicroBatcher(fn, max_batch=max_batch, max_wait_s=0.0, max_age_s=30)
        first = b.submit(np.ones((1, 2)))  # holds the worker until the gate opens
        time.sleep(0.1)
        long_ = b.submit(np.ones((9, 2)))
        shorts = [b.submit(np.full((1, 2), i)) for i in range(3)]
        gate.set()
        for i, f in enumerate(shorts):
            np.testing.assert_array_equal(f.result(timeout=10)[0], [2.0 * i])
        assert long_.result(timeout=10)[0].shape == (9,) and first.result(timeout=10)[0].shape == (1,)
        # the three 1-window requests went before the 9-window one that came first
        assert calls == ([1, 1, 1, 1, 9] if max_batch == 1 else [1, 3, 9]), calls
        b.close()
    # a request that has waited max_age_s goes ahead of shorter, younger ones
    calls.clear()
    gate.clear()
    b = MicroBatcher(fn, max_batch=1, max_wait_s=0.0, max_age_s=0.05)
    b.submit(np.ones((1, 2)))
    time.sleep(0.1)
    long_ = b.submit(np.ones((9, 2)))
    time.sleep(0.1)
    shorts = [b.submit(np.ones((1, 2))) for _ in range(3)]
    gate.set()
    [f.result(timeout=10) for f in [long_, *shorts]]
    assert calls == [1, 9, 1, 1, 1], calls
    b.close()
    # an overdue request that does not fit what is left of a batch opens the next one; the shortest fill the room
    # (the batch left with the room empty, short requests waiting behind every overdue one)
    calls.clear()
    gate.clear()
    b = MicroBatcher(fn, max_batch=12, max_wait_s=0.0, max_age_s=0.05)
    b.submit(np.ones((1, 2)))
    time.sleep(0.1)
    overdue = [b.submit(np.ones((9, 2))) for _ in range(2)]
    time.sleep(0.1)
    shorts = [b.submit(np.ones((1, 2))) for _ in range(3)]
    gate.set()
    [f.result(timeout=10) for f in [*overdue, *shorts]]
    assert calls == [1, 12, 9], calls
    b.close()
    with pytest.raises(ValueError, match="max_age_s"):
        MicroBatcher(fn, max_age_s=0)


def test_concurrent_requests_share_model_calls(models, machine_data):
    pump = next(n for n, m in models.items() if m.task == "anomaly")
    wav = sorted((machine_data / "test" / "normal").glob("*.wav"))[0].read_bytes()
    app = create_app(models, ServeSettings(max_wait_ms=20))
    results = []
    with TestClient(app) as c:
        def one():
            results.append(_post(c, f"/api/models/{pump}/score", "a.wav", wav).status_code)
        threads = [threading.Thread(target=one) for _ in range(12)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        stats = c.get("/healthz").json()["batching"][pump]
    assert results == [200] * 12
    assert stats["requests"] == 12 and stats["windows"] == 36 and stats["batches"] < 12


# ----------------------------------------------------------------------------- command line


@pytest.mark.parametrize("missing, name", [(("uvicorn",), "uvicorn"),
                                           (("python_multipart", "multipart"), "python_multipart"),
                                           (("websockets", "wsproto"), "websockets")])
def test_a_serve_extra_installed_in_part_is_one_line(fitted_model, capsys, monkeypatch, missing, name):
    """Without uvicorn or python-multipart (fastapi installed) the server loaded the models, then ended in a
    traceback, exit 1."""
    from latentbridge.cli import main

    for module in missing:
        monkeypatch.setitem(sys.modules, module, None)
    assert main(["serve", str(fitted_model), "--port", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install 'latentbridge[serve]'" in err and name in err, err


def test_cli_refuses_public_binds_without_a_key_and_bad_folders(fitted_model, tmp_path, capsys, monkeypatch):
    from latentbridge.cli import main

    monkeypatch.delenv("LATENTBRIDGE_API_KEY", raising=False)
    assert main(["serve", str(fitted_model), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "binding to 0.0.0.0" in err and "--api-key" in err
    assert main(["serve", str(fitted_model), "--max-batch", "0"]) == 2
    assert "max-batch must be positive" in capsys.readouterr().err
    # an empty key (`--api-key "$KEY"` with KEY unset, or the variable set empty) is refused: it served without one
    assert main(["serve", str(fitted_model), "--api-key", ""]) == 2
    assert "the API key is empty" in capsys.readouterr().err
    monkeypatch.setenv("LATENTBRIDGE_API_KEY", "")
    assert main(["serve", str(fitted_model)]) == 2
    assert "the API key is empty" in capsys.readouterr().err
    monkeypatch.delenv("LATENTBRIDGE_API_KEY")
    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert "missing: does not exist" in capsys.readouterr().err
    assert main(["serve", str(fitted_model), str(fitted_model)]) == 2
    assert "two model folders are named" in capsys.readouterr().err
    from latentbridge.serve.registry import load_models

    for link in ("pump_current", "pump_next"):  # links are served under their own names (a repointed `current`)
        (tmp_path / link).symlink_to(fitted_model, target_is_directory=True)
    assert sorted(load_models([tmp_path / "pump_current", tmp_path / "pump_next"])) == ["pump_current", "pump_next"]
    from latentbridge.serve.security import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("127.3.2.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")


def test_a_port_in_use_is_one_line_before_anything_is_announced(tmp_path, capsys):
    """uvicorn's own error came after a line announcing the models as served, exit 3."""
    import socket

    from latentbridge.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", str(tmp_path / "no_model"), "--port", str(port)]) == 2
    err, out = capsys.readouterr()[::-1]
    assert f"serve: port {port} on 127.0.0.1 is in use (another server?)" in err and "serving" not in out
    assert main(["serve", str(tmp_path / "no_model"), "--host", "0.0.0.0", "--port", str(port)]) == 2
    assert "needs an API key" in capsys.readouterr().err


def test_a_port_outside_1_to_65535_is_one_line_before_anything_is_announced(tmp_path, capsys):
    """``--port 70000`` or ``-1`` ended in bind()'s OverflowError, a traceback; ``--port 0`` announced
    http://127.0.0.1:0/ while uvicorn bound a port of its choosing."""
    from latentbridge.cli import main

    for port in ("70000", "65536", "-1", "0"):
        assert main(["serve", str(tmp_path / "no_model"), "--port", port]) == 2
        err, out = capsys.readouterr()[::-1]
        assert err.strip() == f"error: serve: --port must be 1 to 65535, got {port}" + (
            " (0 lets the system pick a free port, which the server could not announce)" if port == "0" else "")
        assert "serving" not in out


def test_a_bad_limit_names_the_option_typed(tmp_path, capsys):
    """``--max-duration -5`` said "max-duration-s must be positive", an option that does not exist."""
    from latentbridge.cli import main
    from latentbridge.serve.app import ServeSettings

    for option in ["--max-upload-mb", "--max-duration", "--max-values", "--max-batch", "--max-wait-ms", "--max-age-ms",
                   "--stream-queue-blocks", "--max-streams", "--shutdown-grace"]:
        assert main(["serve", str(tmp_path / "no_model"), option, "-5"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"error: serve: {option} must be "), err
        if option == "--max-duration":
            assert err == "error: serve: --max-duration must be positive, got -5.0\n"
    with pytest.raises(LatentbridgeError, match="^serve: gl_iterations must be positive, got 0$"):  # set from Python
        ServeSettings(gl_iterations=0)
    # an origin no browser sends (no scheme, a path, empty) matched nothing, without a word
    for origin in ("localhost:3000", "http://x.test/app", "notaurl", "HTTP://LOCALHOST:3000",
                   "https://*.example.com", "http://x.test:99999"):  # (never a browser's Origin: matched nothing)
        assert main(["serve", str(tmp_path / "no_model"), "--cors-origin", origin]) == 2
        assert f"--cors-origin {origin!r}: an origin is scheme://host[:port]" in capsys.readouterr().err
    for origin in ("*", "null", "http://localhost:3000", "https://dash.example", "http://[::1]:8080"):  # (null:
        # a file:// page's)
        assert ServeSettings(cors_origins=(origin,)).cors_origins == (origin,)


def test_limits_that_are_not_finite_are_refused(tmp_path, capsys):
    """``--max-upload-mb inf`` ended in int()'s OverflowError, a traceback; ``--max-wait-ms nan`` (or inf) left a
    lone request waiting without end for its batch to close."""
    from latentbridge.cli import main

    for option, value, says in (("--max-upload-mb", "inf", "must be positive and finite, got inf"),
                                ("--max-duration", "inf", "must be positive and finite, got inf"),
                                ("--max-age-ms", "nan", "must be positive, got nan"),
                                ("--max-wait-ms", "nan", "must be >= 0 and finite, got nan"),
                                ("--max-wait-ms", "inf", "must be >= 0 and finite, got inf")):
        assert main(["serve", str(tmp_path / "no_model"), option, value]) == 2
        assert capsys.readouterr().err == f"error: serve: {option} {says}\n"


def test_a_stalled_upload_and_a_silent_stream_are_closed():
    """A body that stopped coming, and a stream whose client sent nothing, held memory and a thread without end."""
    import asyncio

    from latentbridge.serve.security import UploadLimitMiddleware
    from latentbridge.io.capture import BlockFeed
    from latentbridge.serve.stream import StreamError, _receive_all, parse_start

    async def never():
        await asyncio.sleep(3600)

    async def stalled_upload():
        sent, chunks = [], [{"type": "http.request", "body": b"x" * 100, "more_body": True}]

        async def receive():
            return chunks.pop() if chunks else await never()

        async def send(message):
            sent.append(message)

        async def app(scope, receive, send):  # never reached
            raise AssertionError("the application got a stalled body")

        await UploadLimitMiddleware(app, max_bytes=10_000, idle_s=0.2)({"type": "http", "method": "POST",
                                                                          "headers": []}, receive, send)
        return sent

    sent = asyncio.run(stalled_upload())
    assert sent[0]["status"] == 408 and b"the upload stalled: no bytes for 0.2 s after 100 bytes" in sent[1]["body"]

    class Silent:
        async def receive(self):
            await never()

    with pytest.raises(StreamError, match=r"no audio or text for 0\.1 s: the stream is closed"):
        asyncio.run(_receive_all(Silent(), BlockFeed(4), "f32", 1, 1 << 20, idle_s=0.1))

    class EmptyFrames:  # empty binary messages held a stream (its thread, a --max-streams slot) open without end
        async def receive(self):
            await asyncio.sleep(0.02)
            return {"type": "websocket.receive", "bytes": b""}

    t0 = time.perf_counter()
    with pytest.raises(StreamError, match=r"no audio or text for 0\.2 s"):
        asyncio.run(_receive_all(EmptyFrames(), BlockFeed(4), "f32", 1, 1 << 20, idle_s=0.2))
    assert time.perf_counter() - t0 < 1.0

    class Texts:  # text the parser cannot read: an error message and 1008, not a traceback and a bare close
        def __init__(self, text):
            self.text = text

        async def receive(self):
            return {"type": "websocket.receive", "text": self.text}

    for text in ("[" * 100_000, '{"end": true, "x": ' + "9" * 5000 + "}"):
        with pytest.raises(StreamError, match=r"text messages after the first must be JSON") as e:
            asyncio.run(_receive_all(Texts(text), BlockFeed(4), "f32", 1, 1 << 20, idle_s=1.0))
        assert e.value.code == 1008
    for text, said in (("[" * 100_000, "the first message is not JSON"),
                       ('{"sample_rate": ' + "9" * 5000 + "}", "the first message is not JSON"),
                       ('{"sample_rate": 1e308}', "from 1 to 384000 Hz, got 1e+308")):
        with pytest.raises(StreamError, match=re.escape(said)):
            parse_start(text)


def test_requests_stopped_by_the_server_shutting_down_are_503(folders, models, machine_data, caplog):
    """SIGTERM while uploads were scored: uvicorn cancels what runs after its grace period, and each such request was
    a bare 500 and an ERROR traceback in the log; a request reaching a closed batcher was a 500 too. Both are a 503
    saying the server is shutting down."""
    import asyncio
    import logging

    from latentbridge.serve.security import RequestLogMiddleware

    async def busy(scope, receive, send):
        raise asyncio.CancelledError  # what uvicorn's shutdown does to a request still running

    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    caplog.set_level(logging.INFO, logger="latentbridge.serve")
    asyncio.run(RequestLogMiddleware(busy)({"type": "http", "method": "POST", "path": "/api/models/m/score",
                                            "client": ("10.0.0.9", 5)}, receive, send))
    assert sent[0]["status"] == 503 and b"the server is shutting down" in sent[1]["body"]
    line = [r.getMessage() for r in caplog.records if r.name == "latentbridge.serve"][-1]
    assert line.startswith("POST /api/models/m/score 503 ")
    # a request cancelled while its windows wait: its answer is dropped, and the batching thread goes on (it ended
    # with InvalidStateError, every later request waiting on it for ever)
    import threading

    from latentbridge.serve.batcher import MicroBatcher

    gate = threading.Event()
    slow = MicroBatcher(lambda w: (gate.wait(5), (np.zeros(len(w)), np.zeros(len(w), bool)))[1], max_batch=1)
    first, second = slow.submit(np.zeros((2, 3))), slow.submit(np.zeros((1, 3)))
    assert second.cancel()
    gate.set()
    assert len(first.result(5)[0]) == 2 and len(slow.submit(np.zeros((3, 3))).result(5)[0]) == 3
    slow.close()
    with TestClient(create_app(models)) as c:
        for b in c.app.state.batchers.values():
            b.close()
        wav = sorted((machine_data / "test" / "normal").glob("*.wav"))[0]
        r = _post(c, f"/api/models/{_name(folders, 'pump')}/score", wav.name, wav.read_bytes())
    assert r.status_code == 503 and r.json()["detail"].startswith("the server is shutting down"), r.text


def test_a_client_that_hangs_up_mid_upload_is_logged_as_such(caplog):
    """It was logged as status 500: a server error where there was none."""
    import asyncio
    import logging

    from latentbridge.serve.security import RequestLogMiddleware

    async def app(scope, receive, send):
        await receive()  # the client is gone: nothing to answer

    async def receive():
        return {"type": "http.disconnect"}

    async def send(message):
        raise AssertionError("nothing is sent to a client that is gone")

    caplog.set_level(logging.INFO, logger="latentbridge.serve")
    asyncio.run(RequestLogMiddleware(app)({"type": "http", "method": "POST", "path": "/api/models/m/score",
                                           "client": ("10.0.0.9", 5)}, receive, send))
    line = [r.getMessage() for r in caplog.records if r.name == "latentbridge.serve"][-1]
    assert line.startswith("POST /api/models/m/score 499 (client disconnected) 0 bytes in ") and "10.0.0.9" in line


def test_a_spatial_model_of_whole_spectra_is_listed_as_serving_nothing(caplog):
    """A model trained on imzML and TIC-normalised by whole spectra was offered an enhance endpoint that refused every
    upload (arrays: "an array holds the model's channels only"; imzML: "unsupported file type"), without a word."""
    from types import SimpleNamespace

    from latentbridge.serve.registry import ServedModel

    spec = SimpleNamespace(normalized_over="spectrum", normalization="tic", channels=2, mz=[152.9, 329.0],
                           patch_size=8)
    m = ServedModel("mi", SimpleNamespace(transform=spec, workflow=SimpleNamespace(task="spatial", description=None),
                                          info={"model_class": "spatial_cvae"}))
    assert m.endpoints == () and m.unserved.startswith("divides each pixel by its whole spectrum's tic")
    assert m.describe()["unserved"] == m.unserved and m.describe()["endpoints"] == []
    assert m.input_format()["enhance"].startswith("none: the model divides each pixel")
    by_channels = SimpleNamespace(**{**vars(spec), "normalized_over": "channels"})
    arrays = ServedModel("arr", SimpleNamespace(transform=by_channels,
                                                workflow=SimpleNamespace(task="spatial")))
    assert arrays.endpoints == ("enhance",) and arrays.unserved is None
