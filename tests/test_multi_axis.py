"""Multi-axis vibration recordings modelled axis by axis (``audio.channel: all``): the survey's choice for
vibration CSVs, the features and statistics per channel, and the same windows and scores through ``score``,
``listen --source``, the WebSocket stream and the ONNX edge scorer."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from latentbridge.cli import main
from latentbridge.errors import DataError
from latentbridge.io import read_audio
from latentbridge.io.windows import WindowBuffer, cut_windows

SR = 1000
RESONANCES_HZ = (120.0, 220.0, 350.0)


def _recording(rng, fault: bool, n_axes: int = 3, seconds: float = 4.0) -> np.ndarray:
    """(T, n_axes): shaft orders and a resonance of each axis' own; a fault adds a faint 400-Hz tone to axis 1."""
    from scipy.signal import iirpeak, lfilter

    t = np.arange(int(seconds * SR)) / SR
    fs = rng.uniform(24, 26)
    axes = []
    for k, f0 in enumerate(RESONANCES_HZ[:n_axes]):
        b, a = iirpeak(f0, 10, fs=SR)
        x = (np.sin(2 * np.pi * fs * t + rng.uniform(0, 6)) + 0.5 * np.sin(4 * np.pi * fs * t + rng.uniform(0, 6))
             + 2 * lfilter(b, a, rng.standard_normal(t.size)) + 0.1 * rng.standard_normal(t.size))
        if fault and k == 1:
            x += 0.15 * np.sin(2 * np.pi * rng.uniform(395, 405) * t)
        axes.append(x * 10 ** (rng.uniform(-2, 2) / 20))
    return np.stack(axes, axis=1) * 10 ** (rng.uniform(-4, 4) / 20)


def _write(path, x: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(len(x)) / SR
    header = "time_s," + ",".join("xyz"[: x.shape[1]])
    np.savetxt(path, np.c_[t, x], delimiter=",", header=header, comments="", fmt="%.4f")


@pytest.fixture(scope="module")
def axes_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("axes")
    rng = np.random.default_rng(0)
    for i in range(16):
        _write(root / "train" / f"r{i:02d}.csv", _recording(rng, False))
    for i in range(8):
        _write(root / "test" / "normal" / f"n{i}.csv", _recording(rng, False))
        _write(root / "test" / "anomalous" / f"a{i}.csv", _recording(rng, True))
    return root


@pytest.fixture(scope="module")
def axes_model(axes_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("axes_model") / "m"
    assert main(["anomaly", "fit", str(axes_data / "train"), "--out", str(out)]) == 0
    return out


def _auc(model, data, out) -> float:
    assert main(["anomaly", "score", str(model), str(data / "test"), "--labels", "auto", "--out", str(out)]) == 0
    return json.loads((out / "metrics.json").read_text())["auc"]


def _window_scores(folder) -> list[float]:
    with open(folder / "scores.csv", newline="") as f:
        return [float(r["score"]) for r in csv.DictReader(f) if r["level"] == "window"]


def test_the_survey_models_every_axis_and_finds_a_fault_the_mix_dilutes(axes_data, axes_model, tmp_path, capsys):
    info = json.loads((axes_model / "config.json").read_text())
    assert info["config"]["audio"]["channel"] == "all" and info["data"]["channels_read"] == 3
    chosen = {r["key"]: r["reason"] for r in info["data"]["settings_chosen"]}
    assert chosen["audio.channel"].startswith("vibration recordings of 3 axes: each axis modelled")
    assert "Sample rate: 1000 Hz (every channel: 3 channels" in (axes_model / "README.md").read_text()
    from latentbridge.tasks.anomaly import Detector

    det = Detector.load(axes_model)
    assert det.model.input_shape[0] == 3 and det.n_channels == 3
    # a faint tone on one axis of three: found axis by axis, lost in the mix
    auc_axes = _auc(axes_model, axes_data, tmp_path / "s_axes")
    assert main(["anomaly", "fit", str(axes_data / "train"), "--out", str(tmp_path / "mix"),
                 "-o", "audio.channel=null"]) == 0
    auc_mix = _auc(tmp_path / "mix", axes_data, tmp_path / "s_mix")
    assert auc_axes >= 0.95 and auc_mix <= 0.8, (auc_axes, auc_mix)


def test_a_dead_axis_is_named(axes_data, axes_model, tmp_path, caplog):
    """An axis of nothing but zeros (a cable off) scored far above the threshold without a word, at score, listen and
    fit: named by its column."""
    rng = np.random.default_rng(5)
    x = _recording(rng, False)
    x[:, 1] = 0.0
    _write(tmp_path / "dead" / "d.csv", x)
    with caplog.at_level("WARNING"):
        assert main(["anomaly", "score", str(axes_model), str(tmp_path / "dead"), "--out", str(tmp_path / "s")]) == 0
        assert main(["anomaly", "listen", str(axes_model), "--source", str(tmp_path / "dead" / "d.csv")]) == 0
    said = [r.getMessage() for r in caplog.records if "hold nothing on a channel" in r.getMessage()]
    assert len(said) == 2 and all("1 of 1 recordings hold nothing on a channel the model reads (digital silence, or a "
                                  "level under the features' floor): d.csv (y); a dead sensor, a cable off" in t
                                  for t in said), said
    train = tmp_path / "train"
    shutil.copytree(axes_data / "train", train)
    shutil.copy(tmp_path / "dead" / "d.csv", train / "d.csv")
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert main(["anomaly", "fit", str(train), "--out", str(tmp_path / "m")]) == 0
    assert "1 of 17 training recordings hold nothing on a channel the model reads (digital silence, or a level under " \
        "the features' floor): d.csv (y)" in caplog.text and "The model learns that silence as normal" in caplog.text


def test_statistics_are_each_channels_own(axes_model):
    """A window's statistics are those of each channel scored alone, side by side (its own active frames,
    cepstra and level), so one axis' level or spectrum does not leak into another's."""
    from latentbridge.models.detectors import KNNStatsDetector

    det3 = KNNStatsDetector((3, 16, 20), n_mfcc=8)
    det1 = KNNStatsDetector((1, 16, 20), n_mfcc=8)
    x = torch.randn(5, 3, 16, 20) * 10 - 40
    x[:, 2] -= 30  # a much quieter axis
    both = det3.raw_statistics(x)
    assert both.shape == (5, 3 * (2 * 16 + 2 * 8))
    alone = torch.cat([det1.raw_statistics(x[:, k:k + 1]) for k in range(3)], dim=1)
    torch.testing.assert_close(both, alone)


def test_the_largest_channel_distance_is_each_channels_own_detector(axes_data, axes_model, tmp_path):
    """``knn_channel_max``: each channel's nearest-neighbour distance over its training median, the largest; the same
    as the largest of one-channel detectors fitted on each channel alone. ``anomaly score --score`` reads it without
    refitting."""
    from latentbridge.models.detectors import KNNStatsDetector

    rng = np.random.default_rng(0)
    train = (rng.standard_normal((200, 3, 16, 20)) * 5 - 40).astype(np.float32)
    test = (rng.standard_normal((30, 3, 16, 20)) * 5 - 40).astype(np.float32)
    test[:10, 1, 4:8] += 12  # a band of channel 1 louder in a third of the windows
    det3 = KNNStatsDetector((3, 16, 20), n_mfcc=8, separate_level=True)
    det3.fit_closed_form(train)
    assert len(det3.params["channel_scale"]) == 3 and min(det3.params["channel_scale"]) > 0
    got = det3.score(torch.from_numpy(test), "knn_channel_max")
    alone = []
    for j in range(3):
        det1 = KNNStatsDetector((1, 16, 20), n_mfcc=8, separate_level=True)
        det1.fit_closed_form(train[:, j:j + 1])
        alone.append(det1.score(torch.from_numpy(test[:, j:j + 1]), "knn_channel_max"))
        torch.testing.assert_close(alone[-1], det1.score(torch.from_numpy(test[:, j:j + 1]), "knn")
                                   / det1.params["channel_scale"][0])
    torch.testing.assert_close(got, torch.stack(alone, 1).amax(1))
    # the louder band stands out further, in units of the normal windows' spread, than in the joint distance
    joint = det3.score(torch.from_numpy(test), "knn")

    def separation(v):
        return float((v[:10].min() - v[10:].max()) / v[10:].std())

    assert separation(got) > separation(joint), (separation(got), separation(joint))
    assert main(["anomaly", "score", str(axes_model), str(axes_data / "test"), "--labels", "auto",
                 "--score", "knn_channel_max", "--out", str(tmp_path / "s")]) == 0
    assert json.loads((tmp_path / "s" / "metrics.json").read_text())["auc"] >= 0.95


def test_recordings_of_another_channel_count_are_named(axes_data, axes_model, tmp_path, capsys):
    rng = np.random.default_rng(5)
    _write(tmp_path / "two" / "two_axes.csv", _recording(rng, False, n_axes=2))
    assert main(["anomaly", "score", str(axes_model), str(tmp_path / "two"), "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "two_axes.csv: its 2 sensor columns (x, y) are not the model's 3 (x, y, z)" in err  # by their names
    assert "Traceback" not in err and not (tmp_path / "s").exists()
    with pytest.raises(DataError, match="2 channels, where the model reads every channel of 3"):
        read_audio(tmp_path / "two" / "two_axes.csv", channel="all", expect_channels=3)
    wave, _ = read_audio(tmp_path / "two" / "two_axes.csv", channel="all")
    assert wave.shape == (2, 4000)
    # a training file lacking a sensor column the others name: refused, named with it
    mixed = tmp_path / "mixed"
    for i in range(4):
        _write(mixed / f"r{i}.csv", _recording(rng, False))
    _write(mixed / "odd.csv", _recording(rng, False, n_axes=2))
    for channel in ([], ["-o", "audio.channel=all"]):
        assert main(["anomaly", "fit", str(mixed), "--out", str(tmp_path / "m"), *channel]) == 2
        err = capsys.readouterr().err
        assert "1 of 5 recordings lack sensor columns most of them name (x, y, z): odd.csv (x, y; without z)" \
            in err, err
    # read by position, as asked: fitting every channel of recordings that disagree is refused, one file named
    by_position = ["-o", "audio.columns=[]"]
    assert main(["anomaly", "fit", str(mixed), "--out", str(tmp_path / "m"), "-o", "audio.channel=all",
                 *by_position]) == 2
    err = capsys.readouterr().err
    assert "recordings hold 3 channels x4, 2 channels x1 (e.g. " in err and "odd.csv" in err
    assert "(or skip the others: --skip-bad, -o data.skip_bad_files=true in train)" in err
    assert not (tmp_path / "m").exists()
    # --skip-bad skips the recordings of the other count, as it skips the unusable ones (it was refused the same)
    assert main(["anomaly", "fit", str(mixed), "--out", str(tmp_path / "m"), "-o", "audio.channel=all",
                 *by_position, "--skip-bad"]) == 0
    skipped = json.loads((tmp_path / "m" / "config.json").read_text())["data"]["skipped_files"]
    assert [Path(p).name for p, _ in skipped] == ["odd.csv"] and "2 channels, where the model reads every channel " \
        "of 3" in skipped[0][1], skipped
    shutil.rmtree(tmp_path / "m")
    # left to the survey, they are mixed to one signal, and the choice says why
    assert main(["anomaly", "fit", str(mixed), "--out", str(tmp_path / "m"), *by_position]) == 0
    out = capsys.readouterr().out
    assert "audio.channel = None  (2 channels x1, 3 channels x4: mixed to one signal (the axis counts differ)" in out


def test_audio_files_of_a_sensor_array_are_modelled_channel_by_channel(axes_data, tmp_path, capsys):
    """Multi-channel WAVs from a data acquisition system (three or more channels, or two at a rate no sound card
    uses) were mixed to one signal like a stereo pair: their channels are sensors, modelled side by side as CSV
    axes are; stereo audio stays mixed."""
    import soundfile as sf

    for csv_dir in ("train", "test/normal", "test/anomalous"):
        for f in (axes_data / csv_dir).glob("*.csv"):  # the same recordings, 3 axes, as 1-kHz WAVs
            x = np.loadtxt(f, delimiter=",", skiprows=1)[:, 1:]
            (tmp_path / "wav" / csv_dir).mkdir(parents=True, exist_ok=True)
            sf.write(tmp_path / "wav" / csv_dir / f"{f.stem}.wav", x / 20, SR, subtype="FLOAT")
    assert main(["anomaly", "fit", str(tmp_path / "wav" / "train"), "--out", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert ("audio.channel = all  (audio files of 3 channels each (3 channels: a sensor array's or data acquisition "
            "system's channels): each channel modelled beside the others") in out
    auc = _auc(tmp_path / "m", tmp_path / "wav", tmp_path / "s")  # the tone on axis 1
    assert main(["anomaly", "fit", str(tmp_path / "wav" / "train"), "--out", str(tmp_path / "m_mix"),
                 "-o", "audio.channel=null"]) == 0
    auc_mixed = _auc(tmp_path / "m_mix", tmp_path / "wav", tmp_path / "s_mix")
    assert auc >= 0.95 and auc_mixed < auc - 0.1
    rng = np.random.default_rng(3)
    for rate, kind in ((25600, "all"), (44100, "None")):  # two channels: a DAQ's rate, a sound card's
        (tmp_path / f"two_{rate}").mkdir()
        for i in range(6):
            sf.write(tmp_path / f"two_{rate}" / f"r{i}.wav", 0.1 * rng.standard_normal((rate, 2)), rate)
        assert main(["anomaly", "fit", str(tmp_path / f"two_{rate}"), "--out", str(tmp_path / f"m{rate}")]) == 0
        line = next(ln for ln in capsys.readouterr().out.splitlines() if "audio.channel =" in ln)
        assert line.split("(")[0].strip().endswith(f"audio.channel = {kind}"), line
        assert ("25600 Hz, not an audio rate" in line) == (rate == 25600), line


def test_window_buffer_keeps_a_channel_or_every_channel():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1000, 3)).astype(np.float32)
    for select, want in ((1, x[:, 1]), ("all", x.T)):
        buf = WindowBuffer(64, 32, channels=3, select=select)
        got = []
        for i in range(0, len(x), 37):
            got.extend(buf.push(x[i:i + 37]))
        got += buf.flush("wrap")
        want_w, want_s = cut_windows(np.ascontiguousarray(want), 64, 32, pad="wrap")
        assert [s for s, _ in got] == want_s.tolist()
        np.testing.assert_array_equal(np.stack([w for _, w in got]), want_w)
    short = WindowBuffer(64, 32, 3, "all")
    short.push(x[:40])
    (start, w), = short.flush("constant")
    assert start == 0 and w.shape == (3, 64) and not w[:, 40:].any()
    with pytest.raises(ValueError, match="channel 3 out of range: the stream has 3 channels"):
        WindowBuffer(64, 32, 3, 3)


def test_listen_stream_and_edge_score_the_windows_of_score(axes_data, axes_model, tmp_path, capsys):
    rec = sorted((axes_data / "test" / "anomalous").glob("*.csv"))[0]
    assert main(["anomaly", "score", str(axes_model), str(rec), "--out", str(tmp_path / "s")]) == 0
    ref = _window_scores(tmp_path / "s")
    assert len(ref) == 3
    # anomaly listen --source FILE reads every axis as score does
    events = tmp_path / "events.csv"
    assert main(["anomaly", "listen", str(axes_model), "--source", str(rec), "--events", str(events)]) == 0
    with open(events, newline="") as f:
        got = [float(r["score"]) for r in csv.DictReader(f)]
    np.testing.assert_allclose(got, ref, rtol=1e-4)
    # the WebSocket stream takes interleaved frames of the three axes
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from latentbridge.serve.app import create_app
    from latentbridge.serve.registry import load_models

    wave, _ = read_audio(rec, channel="all")
    frames = np.ascontiguousarray(wave.T).astype("<f4")
    with TestClient(create_app(load_models([axes_model]))) as c:
        assert "3 channels (each read" in c.get("/api/models/m").json()["input"]["score"]
        # an upload with the page's display spectrogram (a 500: the display assumed one channel)
        r = c.post("/api/models/m/score", params={"spectrogram": True}, files={"file": (rec.name, rec.read_bytes())})
        assert r.status_code == 200, r.text
        np.testing.assert_allclose([w["score"] for w in r.json()["windows"]], ref, rtol=1e-4)
        assert len(r.json()["spectrogram"]["db"]) == len(r.json()["spectrogram"]["row_hz"])
        with c.websocket_connect("/api/models/m/stream") as ws:
            ws.send_text(json.dumps({"sample_rate": SR, "format": "f32"}))
            msg = ws.receive_json()
            assert msg["type"] == "error" and 'send "channels": 3 (got 1)' in msg["detail"]
        with c.websocket_connect("/api/models/m/stream") as ws:
            ws.send_text(json.dumps({"sample_rate": SR, "format": "f32", "channels": 3}))
            assert ws.receive_json()["type"] == "ready"
            for i in range(0, len(frames), 700):
                ws.send_bytes(frames[i:i + 700].tobytes())
            ws.send_text(json.dumps({"end": True}))
            msgs = []
            while (m := ws.receive_json())["type"] == "window":
                msgs.append(m)
    np.testing.assert_allclose([m["score"] for m in msgs], ref, rtol=1e-4)
    # the ONNX export reads every axis too
    pytest.importorskip("onnxruntime")
    onnx_path = tmp_path / "m.onnx"
    assert main(["export", str(axes_model), "--format", "onnx", "--out", str(onnx_path)]) == 0
    from latentbridge.edge import EdgeScorer

    scorer = EdgeScorer(onnx_path)
    assert scorer.n_channels == 3
    np.testing.assert_allclose(scorer.score_file(rec).scores, ref, rtol=1e-3)
    with pytest.raises(DataError, match=r"its 2 sensor columns \(x, y\) are not the model's 3 \(x, y, z\)"):
        _write(tmp_path / "two.csv", _recording(np.random.default_rng(2), False, n_axes=2))
        scorer.score_file(tmp_path / "two.csv")
    # a rate-less CSV of the same recording: the edge scorer names its own --sample-rate, and takes it
    from latentbridge.edge import main as edge_main

    x = np.loadtxt(rec, delimiter=",", skiprows=1)[:, 1:]
    bare = tmp_path / "bare.csv"
    np.savetxt(bare, x, delimiter=",", header="x,y,z", comments="", fmt="%.4f")
    capsys.readouterr()
    assert edge_main([str(onnx_path), str(bare)]) == 2
    err = capsys.readouterr().err
    assert "bare.csv" in err and "evaluate and python -m latentbridge.edge" in err, err
    assert edge_main([str(onnx_path), str(bare), "--sample-rate", str(SR)]) == 0
    assert "bare.csv" in capsys.readouterr().out
    scorer.csv_rate = SR  # what --sample-rate sets: the same windows as the timed file's
    np.testing.assert_allclose(scorer.score_file(bare).scores, ref, rtol=1e-3)
    assert edge_main([str(onnx_path), str(bare), "--sample-rate", "nan"]) == 2
    assert "--sample-rate must be a positive number" in capsys.readouterr().err


@pytest.mark.audio
def test_listen_on_a_two_channel_virtual_microphone(virtual_microphone, tmp_path):
    """A model of both channels of stereo recordings listens to a real input device opened with two channels
    (PulseAudio's null-sink monitor, fed by paplay, read through sounddevice)."""
    import io
    import threading

    import soundfile as sf

    from latentbridge.tasks.anomaly import Detector
    from latentbridge.tasks.listen import capture_channels, listen_model

    sr, rng = 16000, np.random.default_rng(0)
    t = np.arange(3 * sr) / sr

    def stereo(path, fault=False):
        left = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.02 * rng.standard_normal(t.size)
        right = 0.2 * np.sin(2 * np.pi * 1320 * t) + 0.02 * rng.standard_normal(t.size)
        if fault:
            right += 0.2 * np.sin(2 * np.pi * 3000 * t)
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.stack([left, right], axis=1).astype(np.float32), sr)

    for i in range(6):
        stereo(tmp_path / "train" / f"r{i}.wav")
    stereo(tmp_path / "fault.wav", fault=True)
    assert main(["anomaly", "fit", str(tmp_path / "train"), "--out", str(tmp_path / "m"), "-o", "audio.channel=all"]) == 0
    assert capture_channels(Detector.load(tmp_path / "m")) == 2
    buf = io.StringIO()
    timer = threading.Timer(0.5, virtual_microphone.play, args=(tmp_path / "fault.wav",))
    timer.start()
    try:
        summary = listen_model(tmp_path / "m", duration_s=4.0, events=str(tmp_path / "live.csv"), out=buf)
    finally:
        timer.cancel()
    assert summary["n_windows"] >= 2, buf.getvalue()
    with open(tmp_path / "live.csv", newline="") as f:
        scores = [float(r["score"]) for r in csv.DictReader(f)]
    assert len(scores) == summary["n_windows"] and all(np.isfinite(scores))


def test_matlab_recordings_are_read_like_csvs(tmp_path, capsys):
    """A test rig's .mat files (its accelerometers as vectors, a shaft speed beside them, the rate as a scalar or
    given) are recordings: channels in the file's order, each less its mean; the rate found, given or asked for."""
    from scipy.io import savemat

    from latentbridge.io import audio_info, list_audio_files

    rng = np.random.default_rng(0)
    de, fe = rng.standard_normal((2, 3000)) + np.array([[0.5], [-0.2]])
    (tmp_path / "rig").mkdir()
    savemat(tmp_path / "rig" / "r1.mat", {"X097_DE_time": de[:, None], "X097_FE_time": fe[:, None],
                                          "X097RPM": np.array([[1797]]), "fs": np.array([[12000]])})
    wave, sr = read_audio(tmp_path / "rig" / "r1.mat", channel="all")
    assert sr == 12000 and wave.shape == (2, 3000)
    np.testing.assert_allclose(wave, np.stack([de - de.mean(), fe - fe.mean()]), atol=1e-5)
    info = audio_info(tmp_path / "rig" / "r1.mat")
    assert (info.channels, info.frames, info.codec) == (2, 3000, "MAT")
    # a matrix of samples (columns: axes), the rate given; none given: asked for by name
    savemat(tmp_path / "rig" / "r2.mat", {"acc": rng.standard_normal((3, 2000)), "note": np.array([[1.0]])})
    wave, sr = read_audio(tmp_path / "rig" / "r2.mat", channel="all", csv_rate=500)
    assert sr == 500 and wave.shape == (3, 2000)
    with pytest.raises(DataError, match=r"r2\.mat: a \.mat recording without its sample rate .* -o audio\.csv_rate=HZ"):
        read_audio(tmp_path / "rig" / "r2.mat")
    assert read_audio(tmp_path / "rig" / "r1.mat", csv_rate=500)[1] == 12000  # the file's own rate wins
    from latentbridge.io.matfile import read_mat_recording

    with pytest.raises(DataError, match=r"r1\.mat: the file gives 12000 Hz but the sample rate 500 Hz was given"):
        read_mat_recording(tmp_path / "rig" / "r1.mat", 500)  # as the bridge's sample rate, which must agree
    (tmp_path / "rig" / "bad.mat").write_bytes(b"MATLAB 5.0 MAT-file, but cut")
    with pytest.raises(DataError, match=r"bad\.mat: unreadable \.mat file"):
        read_audio(tmp_path / "rig" / "bad.mat", csv_rate=500)
    assert [p.name for p in list_audio_files(tmp_path / "rig")] == ["bad.mat", "r1.mat", "r2.mat"]
    # a matrix of 8 axes and a force vector of its length: 9 channels (the vector alone was read, the axes dropped)
    acc, force = rng.standard_normal((1000, 8)), rng.standard_normal(1000)
    savemat(tmp_path / "mix.mat", {"acc": acc, "force": force, "fs": 200.0})
    names = []
    data, sr = read_mat_recording(tmp_path / "mix.mat", names=names)
    assert sr == 200 and data.shape == (1000, 9) and names == [f"acc(:, {j})" for j in range(1, 9)] + ["force"]
    np.testing.assert_array_equal(data, np.column_stack([acc, force]))


def test_matlab_structs_cells_and_version_7_3(tmp_path):
    """A signal and its rate in a struct (a bearing rig's ``bearing.gs`` and ``bearing.sr``), channels in a cell or a
    struct array, and a MATLAB 7.3 (HDF5) file, stored column-major with char fields beside: read as the same
    samples; rate scalars that disagree need the rate given."""
    import h5py
    from scipy.io import savemat

    rng = np.random.default_rng(1)
    x = rng.standard_normal(4000)
    savemat(tmp_path / "s.mat", {"bearing": {"gs": x[:, None], "sr": 48828.0, "load": 270.0, "rate": 25.0}})
    wave, sr = read_audio(tmp_path / "s.mat", channel="all")
    assert sr == 48828 and wave.shape == (1, 4000)
    np.testing.assert_allclose(wave[0], x - x.mean(), atol=1e-5)
    cell = np.empty(2, dtype=object)
    cell[0], cell[1] = x, 3 * x
    units = np.array([{"Data": x[None, :], "fs": 1000.0}, {"Data": x[None, :500], "fs": 250.0}], dtype=object)
    savemat(tmp_path / "c.mat", {"trials": cell, "Fs": 1000.0, "channel_names": np.array(["a", "b"], dtype=object)})
    savemat(tmp_path / "u.mat", {"Y": units})
    wave, sr = read_audio(tmp_path / "c.mat", channel="all")
    assert sr == 1000 and wave.shape == (2, 4000)
    np.testing.assert_allclose(wave[1], 3 * (x - x.mean()), atol=1e-4)
    with pytest.raises(DataError, match=r"u\.mat: the file gives different sample rates \(Y\(1\)\.fs = 1000, "
                                        r"Y\(2\)\.fs = 250\).*-o audio\.csv_rate=HZ"):
        read_audio(tmp_path / "u.mat")
    wave, sr = read_audio(tmp_path / "u.mat", channel="all", csv_rate=1000)
    assert sr == 1000 and wave.shape == (1, 4000)  # the longest vector; the 250-Hz one is shorter
    # version 7.3: MATLAB's 512-byte header before an HDF5 file; a (T, 2) matrix is stored (2, T)
    with h5py.File(tmp_path / "v73.mat", "w", userblock_size=512) as f:
        rig = f.create_group("rig")
        rig.attrs["MATLAB_class"] = np.bytes_("struct")
        rig.create_dataset("acc", data=np.stack([x, -x])).attrs["MATLAB_class"] = np.bytes_("double")
        rig.create_dataset("Fs", data=np.array([[25600.0]])).attrs["MATLAB_class"] = np.bytes_("double")
        name = rig.create_dataset("name", data=np.array([[ord(ch)] for ch in "pump"], dtype=np.uint16))
        name.attrs["MATLAB_class"] = np.bytes_("char")
    with open(tmp_path / "v73.mat", "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .".ljust(116) + bytes(8) + b"\x00\x02IM")
    wave, sr = read_audio(tmp_path / "v73.mat", channel="all")
    assert sr == 25600 and wave.shape == (2, 4000)
    np.testing.assert_allclose(wave[1], -(x - x.mean()), atol=1e-5)
    (tmp_path / "cut.mat").write_bytes((tmp_path / "v73.mat").read_bytes()[:1500])
    with pytest.raises(DataError, match=r"cut\.mat: unreadable MATLAB 7\.3 \(HDF5\) file"):
        read_audio(tmp_path / "cut.mat")


def test_a_time_vector_beside_the_samples_is_time(tmp_path):
    """DAQ software saves ``t`` beside ``acc``: ``t`` was read as the recording (every window identical, every fault
    scored 0). It is time: the axes are the matrix's columns, the rate its step's where no scalar gives one."""
    from scipy.io import savemat

    rng = np.random.default_rng(2)
    t, acc = np.arange(3000) / 1000.0, rng.standard_normal((3000, 3))
    for name, content in [("t_fs", {"t": t, "acc": acc, "fs": 1000.0}), ("t_only", {"t": t, "acc": acc}),
                          ("first_column", {"data": np.c_[t, acc]}), ("ms", {"time_ms": t * 1000, "x": acc[:, 0],
                                                                          "y": acc[:, 1], "z": acc[:, 2]})]:
        savemat(tmp_path / f"{name}.mat", content)
        wave, sr = read_audio(tmp_path / f"{name}.mat", channel="all")
        assert sr == 1000 and wave.shape == (3, 3000), name
        np.testing.assert_allclose(wave[2], acc[:, 2] - acc[:, 2].mean(), atol=1e-5)
    jitter = t + np.r_[0, rng.uniform(0, 0.0008, 2999)]
    savemat(tmp_path / "uneven.mat", {"t": np.sort(jitter), "acc": acc})
    with pytest.raises(DataError, match=r"uneven\.mat: the time vector t is not evenly spaced"):
        read_audio(tmp_path / "uneven.mat", channel="all")


def test_matlab_numbered_channels_in_number_order_and_a_sample_interval(tmp_path):
    """MATLAB's ``save`` of a workspace, and a 7.3 file, list ch1, ch10, ch11, ch12, ch2, ...: channel 1 by position
    was ch10. Channels of one name and a number are read in their numbers' order; a scalar ``dt`` (seconds) gives the
    rate where no rate scalar does (it went unread: the rate was asked for)."""
    import h5py
    from scipy.io import savemat

    from latentbridge.io.matfile import number_order, read_mat_recording

    assert number_order(["ch1", "ch10", "ch2"]) == ["ch1", "ch2", "ch10"]
    assert number_order(["acc_x", "ch10", "ch2"]) == ["acc_x", "ch10", "ch2"]  # not all numbered: as given
    assert number_order(["X097_DE_time", "X097_FE_time"]) == ["X097_DE_time", "X097_FE_time"]
    assert number_order(["a1", "b2"]) == ["a1", "b2"]  # two names
    x = np.random.default_rng(3).standard_normal((12, 2000))
    alphabetical = sorted((f"ch{i + 1}" for i in range(12)))  # ch1, ch10, ch11, ch12, ch2, ...
    savemat(tmp_path / "ws.mat", {**{k: x[int(k[2:]) - 1] for k in alphabetical}, "dt": 1 / 2560})
    names = []
    data, sr = read_mat_recording(tmp_path / "ws.mat", names=names)
    assert sr == 2560 and names == [f"ch{i + 1}" for i in range(12)]
    np.testing.assert_array_equal(data, x.T)
    with h5py.File(tmp_path / "v73.mat", "w") as f:
        for k in alphabetical:
            f.create_dataset(k, data=x[int(k[2:]) - 1][None, :]).attrs["MATLAB_class"] = np.bytes_("double")
        f.create_dataset("Ts", data=np.array([[0.001]])).attrs["MATLAB_class"] = np.bytes_("double")
    data, sr = read_mat_recording(tmp_path / "v73.mat")
    assert sr == 1000
    np.testing.assert_array_equal(data, x.T)
    wave, _ = read_audio(tmp_path / "v73.mat", channel=1)  # the second sensor, not ch10
    np.testing.assert_allclose(np.ravel(wave), x[1] - x[1].mean(), atol=1e-5)
    savemat(tmp_path / "both.mat", {"a": x[0], "fs": 500.0, "dt": 0.01})  # a rate scalar wins
    assert read_mat_recording(tmp_path / "both.mat")[1] == 500


def _columns(src, path, header: str | None, order) -> None:
    """``src``'s rows (time and three axes) written to ``path`` with its columns in ``order``, under ``header`` (and
    a units row, where it has a second line)."""
    rows = np.loadtxt(src, delimiter=",", skiprows=1)[:, order]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, rows, delimiter=",", header=header or "", comments="", fmt="%.4f")


def test_csv_columns_are_read_by_their_header_names(axes_data, axes_model, tmp_path, capsys, caplog):
    """A model fitted on CSVs of columns time_s,x,y,z read recordings by position: the same normal signal written
    time_s,z,x,y had every axis swapped and was flagged, and one of other sensors (time_s,temp,rpm,current) was
    scored as if it were its own. The model keeps its columns' names and reads a CSV by them: in its order, or refused;
    a CSV without a header is still read by position. The same through the server and the edge scorer."""
    info = json.loads((axes_model / "config.json").read_text())
    assert info["transform"]["windowing"]["columns"] == ["x", "y", "z"] == info["config"]["audio"]["columns"]
    assert "read by their header names in this order: x, y, z" in (axes_model / "README.md").read_text()
    rec = sorted((axes_data / "test" / "normal").glob("*.csv"))[0]
    _columns(rec, tmp_path / "in" / "reordered.csv", "time_s,z,x,y", [0, 3, 1, 2])
    _columns(rec, tmp_path / "in" / "bare.csv", None, [0, 1, 2, 3])
    _columns(rec, tmp_path / "in" / "swapped.csv", "time_s,x,y,z", [0, 3, 1, 2])  # what reading by position read
    _columns(rec, tmp_path / "other" / "sensors.csv", "time_s,temp,rpm,current", [0, 1, 2, 3])
    _columns(rec, tmp_path / "extra" / "logger.csv", "time_s,rpm,z,temp,x,y", [0, 1, 3, 2, 1, 2])  # + rpm, temp
    # the same logger writing a units row under its header (x [g] ...): refused as other sensors
    _columns(rec, tmp_path / "in" / "units.csv", "time_s,x,y,z\ns,g,g,g", [0, 1, 2, 3])
    _columns(rec, tmp_path / "in" / "units_reordered.csv", "time_s,z,x,y\ns,g,g,g", [0, 3, 1, 2])
    assert main(["anomaly", "score", str(axes_model), str(rec), "--out", str(tmp_path / "ref")]) == 0
    ref = _window_scores(tmp_path / "ref")
    threshold = json.loads((axes_model / "config.json").read_text())["anomaly"]["threshold"]
    assert len(ref) == 3 and max(ref) < threshold
    scores = {}
    for name in ("reordered", "bare", "swapped", "units", "units_reordered"):
        assert main(["anomaly", "score", str(axes_model), str(tmp_path / "in" / f"{name}.csv"),
                     "--out", str(tmp_path / name)]) == 0
        scores[name] = _window_scores(tmp_path / name)
    for name in ("reordered", "bare", "units", "units_reordered"):
        np.testing.assert_allclose(scores[name], ref, rtol=1e-6, err_msg=name)
    assert "units.csv: sensor columns named with units other than the model's training recordings' (x [g], y [g], " \
           "z [g] for x, y, z): read as the same sensors, by name" in caplog.text
    assert min(scores["swapped"]) > threshold, (scores["swapped"], threshold)  # the axes swapped: a fault
    # a logger that also writes other quantities: the model's columns by name, the others left out and named
    assert main(["anomaly", "score", str(axes_model), str(tmp_path / "extra"), "--out", str(tmp_path / "e")]) == 0
    np.testing.assert_allclose(_window_scores(tmp_path / "e"), ref, rtol=1e-6)
    assert "logger.csv: column(s) the model was not trained on left out (rpm, temp); its sensor columns (x, y, z) " \
           "read by name" in caplog.text
    assert main(["anomaly", "score", str(axes_model), str(tmp_path / "other"), "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "sensors.csv: its sensor columns (temp, rpm, current) are not the model's (x, y, z)" in err, err
    assert "Traceback" not in err and not (tmp_path / "s").exists()
    # anomaly listen --source reads a CSV so
    assert main(["anomaly", "listen", str(axes_model), "--source", str(tmp_path / "in" / "reordered.csv"),
                 "--events", str(tmp_path / "events.csv")]) == 0
    with open(tmp_path / "events.csv", newline="") as f:
        np.testing.assert_allclose([float(r["score"]) for r in csv.DictReader(f)], ref, rtol=1e-4)
    # the server reads an upload so
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from latentbridge.serve.app import create_app
    from latentbridge.serve.registry import load_models

    with TestClient(create_app(load_models([axes_model]))) as c:
        r = c.post("/api/models/m/score", files={"file": ("r.csv", (tmp_path / "in" / "reordered.csv").read_bytes())})
        assert r.status_code == 200, r.text
        np.testing.assert_allclose([w["score"] for w in r.json()["windows"]], ref, rtol=1e-4)
        r = c.post("/api/models/m/score", files={"file": ("s.csv", (tmp_path / "other" / "sensors.csv").read_bytes())})
        assert r.status_code == 422 and "(temp, rpm, current) are not the model's (x, y, z)" in r.text, r.text
    # and the edge scorer (its ONNX metadata keeps the columns)
    pytest.importorskip("onnxruntime")
    from latentbridge.edge import EdgeScorer
    from latentbridge.edge import main as edge_main

    onnx_path = tmp_path / "m.onnx"
    assert main(["export", str(axes_model), "--format", "onnx", "--out", str(onnx_path)]) == 0
    scorer = EdgeScorer(onnx_path)
    assert scorer.columns == ["x", "y", "z"]
    np.testing.assert_allclose(scorer.score_file(tmp_path / "in" / "reordered.csv").scores,
                               scorer.score_file(rec).scores, rtol=1e-6)
    np.testing.assert_allclose(scorer.score_file(rec).scores, ref, rtol=1e-3)
    np.testing.assert_allclose(scorer.score_file(tmp_path / "extra" / "logger.csv").scores,
                               scorer.score_file(rec).scores, rtol=1e-6)
    capsys.readouterr()
    assert edge_main([str(onnx_path), str(tmp_path / "other" / "sensors.csv")]) == 2
    err = capsys.readouterr().err
    assert "sensors.csv: its sensor columns (temp, rpm, current) are not the model's (x, y, z)" in err, err
    assert "Traceback" not in err
    # on a device, what the readers say of a file is a warning line (it was a bare line among the scores' notes)
    import os
    import subprocess
    import sys

    from conftest import REPO

    import shutil

    for i in range(2):  # said for the first file, counted for the others (a line a file)
        shutil.copy(tmp_path / "extra" / "logger.csv", tmp_path / "extra" / f"logger_{i}.csv")
    run = subprocess.run([sys.executable, "-m", "latentbridge.edge", str(onnx_path), str(tmp_path / "extra")],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert run.returncode == 0, run.stderr
    assert "warning: " + str(tmp_path / "extra" / "logger.csv") + ": column(s) the model was not trained on left " \
           "out (rpm, temp)" in run.stderr, run.stderr
    assert run.stderr.count("left out (rpm, temp)") == 2 and "warning: 2 more file(s) too: column(s) the model was " \
           "not trained on left out (rpm, temp)" in run.stderr, run.stderr


def test_training_csvs_are_aligned_by_their_header_names(axes_data, tmp_path, capsys):
    """Training CSVs of one set of sensor columns in different orders are read in one order, the first file's (they
    were read by position: the axes of some files swapped); a file naming other columns is refused, named, before
    any training."""
    train = sorted((axes_data / "train").glob("*.csv"))[:8]
    for i, f in enumerate(train):  # every other file written time_s,z,x,y
        _columns(f, tmp_path / "train" / f.name, "time_s,z,x,y" if i % 2 else "time_s,x,y,z",
                 [0, 3, 1, 2] if i % 2 else [0, 1, 2, 3])
        _columns(f, tmp_path / "plain" / f.name, "time_s,x,y,z", [0, 1, 2, 3])
    for name in ("train", "plain"):
        assert main(["anomaly", "fit", str(tmp_path / name), "--out", str(tmp_path / f"m_{name}")]) == 0
    a, b = (json.loads((tmp_path / f"m_{n}" / "config.json").read_text()) for n in ("train", "plain"))
    assert a["transform"]["windowing"]["columns"] == ["x", "y", "z"]
    assert a["anomaly"]["threshold"] == pytest.approx(b["anomaly"]["threshold"], rel=1e-6)
    _columns(train[0], tmp_path / "train" / "zz_other.csv", "time_s,temp,rpm,current", [0, 1, 2, 3])
    capsys.readouterr()
    assert main(["anomaly", "fit", str(tmp_path / "train"), "--out", str(tmp_path / "m2")]) == 2
    err = capsys.readouterr().err
    assert ("1 of 9 recordings lack sensor columns most of them name (x, y, z): zz_other.csv (temp, rpm, "
            "current; without x, y, z)") in err, err
    assert "Traceback" not in err and not (tmp_path / "m2").exists()
    # read by position, as asked
    assert main(["anomaly", "fit", str(tmp_path / "train"), "--out", str(tmp_path / "m2"),
                 "-o", "audio.columns=[]"]) == 0
    assert json.loads((tmp_path / "m2" / "config.json").read_text())["transform"]["windowing"]["columns"] is None
    # a header naming one column twice (time_s,acc,acc,acc) names no columns to match by: read by position, as before
    # (every such file was refused as naming "other sensor columns than the others")
    for f in train:
        _columns(f, tmp_path / "dup" / f.name, "time_s,acc,acc,acc", [0, 1, 2, 3])
    assert main(["anomaly", "fit", str(tmp_path / "dup"), "--out", str(tmp_path / "m_dup")]) == 0
    assert json.loads((tmp_path / "m_dup" / "config.json").read_text())["transform"]["windowing"]["columns"] is None


def test_training_csvs_with_a_column_more_are_read_by_the_columns_most_name(axes_data, tmp_path, capsys, caplog):
    """Training CSVs of which a few also hold a temperature (time_s,x,temp_c,y,z beside time_s,x,y,z) were read by
    position: the survey counted 3 channels x6, 4 channels x2, so the default model mixed every column, the
    temperature's too, into one signal, recorded no column names (a logger writing z,x,y was then read with its axes
    swapped), and audio.channel=all was refused. The set most files name is the model's; the temperature is left out,
    named once with its files; a file lacking one of the columns is refused, named with it."""
    train = sorted((axes_data / "train").glob("*.csv"))[:8]
    for i, f in enumerate(train):
        _columns(f, tmp_path / "plain" / f.name, "time_s,x,y,z", [0, 1, 2, 3])
        if i in (2, 5):  # the temperature: a slow drift of the time column, in the middle of the sensors
            _columns(f, tmp_path / "temp" / f.name, "time_s,x,temp_c,y,z", [0, 1, 0, 2, 3])
        else:
            _columns(f, tmp_path / "temp" / f.name, "time_s,x,y,z", [0, 1, 2, 3])
    caplog.clear()
    for name, extra in (("plain", []), ("temp", []), ("plain", ["-o", "audio.channel=1"]),
                        ("temp", ["-o", "audio.channel=1"])):
        out = tmp_path / f"m_{name}{'_y' if extra else ''}"
        assert main(["anomaly", "fit", str(tmp_path / name), "--out", str(out), *extra]) == 0
    m = {p.name: json.loads((p / "config.json").read_text()) for p in tmp_path.glob("m_*")}
    for name in ("m_temp", "m_temp_y"):
        assert m[name]["transform"]["windowing"]["columns"] == ["x", "y", "z"]
        assert m[name]["anomaly"]["threshold"] == pytest.approx(m[name.replace("temp", "plain")]["anomaly"]["threshold"],
                                                                rel=1e-6)
    assert m["m_temp"]["transform"]["windowing"]["channel"] == "all"  # every axis modelled, as for the plain files
    assert m["m_temp"]["data"]["survey"]["channels"] == {"3": 8}, m["m_temp"]["data"]["survey"]
    text = (f"{tmp_path / 'temp'}: 2 of 8 recordings hold columns besides the sensor columns the model reads (x, y, "
            f"z): temp_c left out, not modelled: {train[2].name}, {train[5].name}")
    assert caplog.text.count(text) == 2, caplog.text  # one warning a fit, not one a file
    assert "column(s) the model was not trained on left out" not in caplog.text, caplog.text
    # a logger writing the columns in another order: the same scores as in the training order
    rec = sorted((axes_data / "test" / "anomalous").glob("*.csv"))[0]
    _columns(rec, tmp_path / "in" / "a.csv", "time_s,x,y,z", [0, 1, 2, 3])
    _columns(rec, tmp_path / "re" / "a.csv", "time_s,z,temp_c,x,y", [0, 3, 0, 1, 2])
    for model in ("m_temp", "m_temp_y"):
        for d in ("in", "re"):
            assert main(["anomaly", "score", str(tmp_path / model), str(tmp_path / d),
                         "--out", str(tmp_path / f"s_{model}_{d}")]) == 0
        ref = _window_scores(tmp_path / f"s_{model}_in")
        assert len(ref) == 3 and min(ref) > m[model]["anomaly"]["threshold"], (ref, m[model]["anomaly"]["threshold"])
        np.testing.assert_allclose(_window_scores(tmp_path / f"s_{model}_re"), ref, rtol=1e-6)
    # a folder scored: one warning naming the files with the temperature, not one a file
    shutil.copytree(tmp_path / "temp", tmp_path / "temp_scored")
    caplog.clear()
    assert main(["anomaly", "score", str(tmp_path / "m_temp"), str(tmp_path / "temp_scored"),
                 "--out", str(tmp_path / "s_temp_scored")]) == 0
    assert caplog.text.count("temp_c") == 1 and f"{train[2].name}, {train[5].name}" in caplog.text, caplog.text
    # a training file lacking one of the columns: refused, named with it, before any training
    _columns(train[0], tmp_path / "temp" / "zz_xy.csv", "time_s,x,y", [0, 1, 2])
    capsys.readouterr()
    assert main(["anomaly", "fit", str(tmp_path / "temp"), "--out", str(tmp_path / "m_lost")]) == 2
    err = capsys.readouterr().err
    assert "1 of 9 recordings lack sensor columns most of them name (x, y, z): zz_xy.csv (x, y; without z)" \
        in err, err
    assert "Traceback" not in err and not (tmp_path / "m_lost").exists()
    # and when scored
    assert main(["anomaly", "score", str(tmp_path / "m_temp"), str(tmp_path / "temp" / "zz_xy.csv"),
                 "--out", str(tmp_path / "s_lost")]) == 2
    err = capsys.readouterr().err
    assert "zz_xy.csv: its 2 sensor columns (x, y) are not the model's 3 (x, y, z), without z" in err, err
    assert "Traceback" not in err and not (tmp_path / "s_lost").exists()


def _rig(path, number: int, x: np.ndarray, names=("DE", "FE"), v73: bool = False) -> None:
    """A test rig's .mat file: ``x``'s columns (DE, FE, BA) as vectors ``X{number}_{name}_time`` saved in the order of
    ``names``, the shaft speed beside them; ``v73``: a MATLAB 7.3 (HDF5) file, which lists its variables by name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {f"X{number:03d}_{n}_time": x[:, "DE FE BA".split().index(n)][:, None] for n in names}
    content[f"X{number:03d}RPM"] = np.array([[1797.0]])
    if not v73:
        from scipy.io import savemat

        savemat(path, content)
        return
    import h5py

    with h5py.File(path, "w", userblock_size=512) as f:
        for key, value in content.items():  # stored column-major: a (T, 1) vector as (1, T)
            f.create_dataset(key, data=value.T).attrs["MATLAB_class"] = np.bytes_("double")
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .".ljust(116) + bytes(8) + b"\x00\x02IM")


def test_matlab_files_of_one_vector_named_after_the_file_are_read(axes_data, tmp_path):
    """Files each holding one vector named after the file (data_000, data_001, ...): a one-channel recording has no
    order to keep, so its name is no column (5 of 6 were refused as lacking the first file's 'data_000')."""
    from scipy.io import savemat

    (tmp_path / "one").mkdir()
    for i, f in enumerate(sorted((axes_data / "train").glob("*.csv"))[:6]):
        x = np.loadtxt(f, delimiter=",", skiprows=1)[:, 1]
        savemat(tmp_path / "one" / f"{i:03d}.mat", {f"data_{i:03d}": x[:, None], "fs": np.array([[1000.0]])})
    assert main(["anomaly", "fit", str(tmp_path / "one"), "--out", str(tmp_path / "m")]) == 0
    assert json.loads((tmp_path / "m" / "config.json").read_text())["config"]["audio"].get("columns") in (None, [])


def test_matlab_channels_are_named_like_csv_columns(axes_data, tmp_path, capsys, caplog):
    """A bearing rig saves each file's channels under a prefix of its own (X097_DE_time, X097_FE_time in one file;
    X105_DE_time, X105_FE_time, X105_BA_time in another). They were read by position: the files of a base
    accelerometer more were mixed with the others into one signal (2 channels x6, 3 channels x2), and a recording
    saved FE first, or in a 7.3 file (its variables listed by name: BA, DE, FE), was read with its channels swapped.
    A .mat file's channels are named as a CSV's columns, less the prefix that holds the file's number, and read by
    name as a CSV's."""
    from latentbridge.io.matfile import channel_names

    assert channel_names(["X097_DE_time", "X097_FE_time"]) == ["DE_time", "FE_time"]
    assert channel_names(["X105_DE_time"]) == [] and channel_names(["data_000"]) == []  # one channel: by position
    assert channel_names(["X097_DE_time", "X098_FE_time"]) == ["X097_DE_time", "X098_FE_time"]  # no one prefix
    assert channel_names(["acc_x", "acc_y"]) == ["acc_x", "acc_y"]  # no number in it
    assert channel_names(["rig1.acc", "rig1.gyro"]) == ["acc", "gyro"]
    assert channel_names(["s1_", "s1_x"]) == ["s1_", "s1_x"]  # a name left empty
    rows = [np.loadtxt(f, delimiter=",", skiprows=1)[:, 1:] for f in sorted((axes_data / "train").glob("*.csv"))[:8]]
    for i, x in enumerate(rows):
        names = ("DE", "FE", "BA") if i in (3, 6) else ("FE", "DE") if i % 2 else ("DE", "FE")
        _rig(tmp_path / "rig" / f"{97 + i}.mat", 97 + i, x, names)
        _rig(tmp_path / "plain" / f"{97 + i}.mat", 97 + i, x)
    caplog.clear()
    for name in ("rig", "plain"):
        assert main(["anomaly", "fit", str(tmp_path / name), "--out", str(tmp_path / f"m_{name}"),
                     "-o", "audio.csv_rate=1000"]) == 0
    m = {n: json.loads((tmp_path / f"m_{n}" / "config.json").read_text()) for n in ("rig", "plain")}
    assert m["rig"]["transform"]["windowing"]["columns"] == ["DE_time", "FE_time"]
    assert m["rig"]["transform"]["windowing"]["channel"] == "all"
    assert m["rig"]["data"]["survey"]["channels"] == {"2": 8}, m["rig"]["data"]["survey"]
    assert m["rig"]["anomaly"]["threshold"] == pytest.approx(m["plain"]["anomaly"]["threshold"], rel=1e-6)
    assert f"{tmp_path / 'rig'}: 2 of 8 recordings hold columns besides the sensor columns the model reads (DE_time, " \
           "FE_time): BA_time left out, not modelled: 100.mat, 103.mat" in caplog.text, caplog.text
    # a faulty recording as the rig saves it, FE first, and in a 7.3 file with its base accelerometer: one score
    x = np.loadtxt(sorted((axes_data / "test" / "anomalous").glob("*.csv"))[0], delimiter=",", skiprows=1)[:, 1:]
    _rig(tmp_path / "new" / "a" / "300.mat", 300, x)
    _rig(tmp_path / "new" / "b" / "301.mat", 301, x, ("FE", "DE"))
    _rig(tmp_path / "new" / "c" / "302.mat", 302, x, ("DE", "FE", "BA"), v73=True)
    scores = {}
    for d in "abc":
        assert main(["anomaly", "score", str(tmp_path / "m_rig"), str(tmp_path / "new" / d),
                     "--out", str(tmp_path / f"s_{d}")]) == 0
        scores[d] = _window_scores(tmp_path / f"s_{d}")
    assert len(scores["a"]) == 3 and min(scores["a"]) > m["rig"]["anomaly"]["threshold"], scores
    np.testing.assert_allclose(scores["b"], scores["a"], rtol=1e-6)
    np.testing.assert_allclose(scores["c"], scores["a"], rtol=1e-6)
    # a file without the drive-end channel: refused, named with it
    _rig(tmp_path / "new" / "d" / "303.mat", 303, x, ("FE", "BA"))
    capsys.readouterr()
    assert main(["anomaly", "score", str(tmp_path / "m_rig"), str(tmp_path / "new" / "d"),
                 "--out", str(tmp_path / "s_d")]) == 2
    err = capsys.readouterr().err
    assert "303.mat: its sensor columns (FE_time, BA_time) are not the model's (DE_time, FE_time), without DE_time" \
        in err, err
    assert "Traceback" not in err and not (tmp_path / "s_d").exists()
