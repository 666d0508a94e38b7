"""``anomaly listen --source FILE`` scores the windows ``anomaly score`` scores on that file.

The streaming path (file blocks -> WindowBuffer -> flush at the end) and the batch path
(read_audio -> cut_windows) must give the same window start times and the same scores, for a
recording that ends on a full window, one whose end is left over by the full windows (its last window
covers its last 2 s), and one shorter than a window (but longer than a quarter of one: padded with the
model's pad mode).
"""

from __future__ import annotations

import csv
import io
import re
import sqlite3

import numpy as np
import pytest

from latentbridge.errors import DataError
from latentbridge.io import cut_windows, read_audio, write_wav
from latentbridge.commands import score as score_paths
from latentbridge.tasks.anomaly import Detector
from latentbridge.tasks.listen import listen_model


def _listened(model, wav, tmp_path):
    events = tmp_path / f"{wav.stem}.sqlite"
    out = io.StringIO()
    summary = listen_model(model, source=wav, events=events, out=out)
    with sqlite3.connect(events) as db:
        rows = db.execute("SELECT start_s, end_s, score, is_anomaly FROM events ORDER BY id").fetchall()
    assert summary["n_windows"] == len(rows)
    return np.array([r[0] for r in rows]), np.array([r[2] for r in rows]), out.getvalue()


def _scored(model, wav, tmp_path):
    out = tmp_path / f"scored_{wav.stem}"
    score_paths(model, [wav], out)
    with open(out / "scores.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["level"] == "window"]
    return np.array([float(r["start_s"]) for r in rows]), np.array([float(r["score"]) for r in rows])


@pytest.fixture(scope="module")
def recordings(machine_data, tmp_path_factory):
    """A 4-s normal recording, and 3.5-s, 1.2-s and 0.3-s cuts of an anomalous one."""
    folder = tmp_path_factory.mktemp("listen_vs_score")
    normal = sorted((machine_data / "test" / "normal").glob("*.wav"))[0]
    anomalous = sorted((machine_data / "test" / "anomalous").glob("*.wav"))[0]
    wave, sr = read_audio(anomalous)
    cuts = {}
    for seconds in (3.5, 1.2, 0.3):
        path = folder / f"cut_{seconds:g}s.wav"
        write_wav(path, wave[: int(seconds * sr)], sr, subtype="FLOAT")
        cuts[seconds] = path
    return {"full": normal, **cuts}


@pytest.mark.parametrize("which,starts", [("full", [0, 1, 2]), (3.5, [0, 1, 1.5]), (1.2, [0])])
def test_listen_on_a_file_matches_score(fitted_model, recordings, tmp_path, which, starts):
    wav = recordings[which]
    det = Detector.load(fitted_model)
    a = det.cfg.audio
    assert (a.window_s, a.hop_s, a.pad) == (2.0, 1.0, "wrap")
    l_starts, l_scores, printed = _listened(fitted_model, wav, tmp_path)
    s_starts, s_scores = _scored(fitted_model, wav, tmp_path)
    # 4 s: windows at 0, 1, 2 (the 1 s left at 3 s is half a window: no more window); 3.5 s: 0, 1 and
    # the last 2 s, from 1.5 s (1.5 s follow 2 s: more than half a window); 1.2 s: one padded window at 0.
    n_windows = len(starts)
    assert len(l_starts) == len(s_starts) == n_windows
    np.testing.assert_allclose(l_starts, starts)
    np.testing.assert_allclose(l_starts, s_starts, atol=5e-4)  # scores.csv writes 3 decimals
    np.testing.assert_allclose(l_scores, s_scores, rtol=2e-5)  # and 6 significant digits
    assert printed.count(" s  score ") == n_windows
    # and the same ends: a recording shorter than its window ends where its samples do (listen said 2.0 for 1.2 s)
    with sqlite3.connect(tmp_path / f"{wav.stem}.sqlite") as db:
        l_ends = [r[0] for r in db.execute("SELECT end_s FROM events ORDER BY id")]
    with open(tmp_path / f"scored_{wav.stem}" / "scores.csv", newline="") as fh:
        s_ends = [float(r["end_s"]) for r in csv.DictReader(fh) if r["level"] == "window"]
    np.testing.assert_allclose(l_ends, s_ends, atol=5e-4)

    if which == 1.2:
        # The comparison is sharp: the window padded with zeros instead of the model's
        # "wrap" scores differently by far more than the tolerance above.
        audio, _ = read_audio(wav, sample_rate=det.sample_rate)
        window, hop = a.window_samples, a.hop_samples
        wrapped, _ = cut_windows(audio, window, hop, pad="wrap")
        zeros, _ = cut_windows(audio, window, hop, pad="constant")
        assert not np.array_equal(wrapped[-1], zeros[-1])
        other = float(det.score_windows(zeros[-1:])[0][0])
        assert abs(other - l_scores[-1]) > 1e-3 * abs(l_scores[-1])


def test_too_short_file_is_refused_by_both(fitted_model, recordings, tmp_path):
    wav = recordings[0.3]  # under a quarter of a 2-s window
    for events in ("ev.csv", "ev.sqlite"):  # no empty events file left behind (a header-only CSV once was)
        with pytest.raises(DataError, match=r"cut_0\.3s\.wav: recording too short"):
            listen_model(fitted_model, source=wav, out=io.StringIO(), events=tmp_path / events)
        assert not (tmp_path / events).exists()
    with pytest.raises(DataError, match=r"cut_0\.3s\.wav: recording too short"):
        score_paths(fitted_model, [wav], tmp_path / "scored")


def test_listen_options_are_checked_before_listening(fitted_model, recordings, tmp_path, caplog):
    from latentbridge.errors import LatentbridgeError

    wav = recordings["full"]
    # --hop 0 once fell back to the model's hop in silence, --duration -1 blamed the recording
    for kw, message in (({"hop_s": 0.0}, "--hop must be a positive number, got 0"),
                        ({"duration_s": -1.0}, "--duration must be a positive number, got -1"),
                        ({"sample_rate": float("nan")}, "--sample-rate must be a positive number"),
                        ({"blocksize": 0}, "--blocksize must be a whole number of at least 1"),  # a traceback
                        ({"device": " ", "source": None}, "--device '': give an input device's name or index"),
                        # a device with a recording: the device was passed over without a word
                        ({"device": "nonexistent"}, "--device nonexistent and --source .*: one input"),
                        # a file is read at its own rate: the banner once claimed the given one
                        ({"sample_rate": 8000}, "--sample-rate sets a device's capture rate, or the rate of a "
                                                "--source vibration file that gives none; .*normal_0000.wav gives "
                                                "its own")):
        with pytest.raises(LatentbridgeError, match=message):
            listen_model(fitted_model, out=io.StringIO(), **{"source": wav, **kw})
    with caplog.at_level("WARNING"):
        summary = listen_model(fitted_model, source=wav, out=io.StringIO(), hop_s=3.0)
    assert summary["n_windows"] == 1 and "audio between windows is not scored" in caplog.text


@pytest.mark.parametrize("capture_rate", [44100, 48000])
def test_a_stream_at_another_rate_scores_as_the_recording_of_it(fitted_model, recordings, tmp_path, capture_rate):
    """A device or browser at 44.1 or 48 kHz: each window was resampled on its own (zeros beyond its edges) and
    scored up to 8 % off `anomaly score` of the same audio, flipping decisions near the threshold. The stream is now
    resampled as one signal before it is cut."""
    from latentbridge.io import resample
    from latentbridge.tasks.listen import listen

    det = Detector.load(fitted_model)
    wave, sr = read_audio(recordings["full"])
    captured = resample(np.tile(wave, 2), sr, capture_rate)  # 8 s of the normal recording at the capture rate
    wav = write_wav(tmp_path / "captured.wav", captured, capture_rate, subtype="FLOAT")
    s_starts, s_scores = _scored(fitted_model, wav, tmp_path)
    blocks = ((captured[i:i + 1000, None], False) for i in range(0, len(captured), 1000))
    got = []
    summary = listen(det.score_windows, sample_rate=capture_rate, model_rate=det.sample_rate, window_s=2.0,
                     hop_s=1.0, source=blocks, out=None, flush=True, pad=det.cfg.audio.pad,
                     on_window=got.append)
    assert summary["duration_s"] == pytest.approx(len(captured) / capture_rate, abs=1e-3)
    np.testing.assert_allclose([e["start_s"] for e in got], s_starts, atol=5e-4)
    np.testing.assert_allclose([e["score"] for e in got], s_scores, rtol=2e-5)


def test_listen_says_what_score_says_of_a_recording_below_the_band(fitted_model, recordings, tmp_path, caplog):
    """An 8-kHz copy for a 16-kHz model: every window scored as a fault, and listen said nothing (score warns)."""
    from latentbridge.io import resample

    wave, sr = read_audio(recordings["full"])
    low = write_wav(tmp_path / "r8k.wav", resample(wave, sr, 8000), 8000, subtype="PCM_16")
    with caplog.at_level("WARNING"):
        listen_model(fitted_model, source=low, out=io.StringIO())
    assert "r8k.wav is recorded below the model's band (8000 Hz): resampled to 16000 Hz it holds nothing between " \
           "4000 and 8000 Hz" in caplog.text  # one file (or a stream) is not "1 of 1 files"
    # and a copy held at full scale (a gain set too high), as score names it
    hot = write_wav(tmp_path / "hot.wav", np.clip(4 * wave / np.abs(wave).max(), -1, 1), sr, subtype="PCM_16")
    caplog.clear()
    with caplog.at_level("WARNING"):
        listen_model(fitted_model, source=hot, out=io.StringIO())
    assert "1 of 1 recordings clip (samples on plateaus at their extremes: hot.wav " in caplog.text
    whole = caplog.text
    from latentbridge.data import blocks  # a recording read in blocks (a long one: it was read whole, twice) says
    caplog.clear()  # the same, and its windows score as before
    with pytest.MonkeyPatch.context() as m:
        m.setattr(blocks, "STREAM_BYTES", 0.0)
        with caplog.at_level("WARNING"):
            streamed = io.StringIO()
            listen_model(fitted_model, source=hot, out=streamed)
    assert caplog.text.split(": ", 1)[1] == whole.split(": ", 1)[1]
    listen_model(fitted_model, source=hot, out=(again := io.StringIO()))
    assert streamed.getvalue() == again.getvalue()


def test_times_stay_the_recordings_where_silence_is_trimmed(fitted_model, recordings, machine_data, tmp_path):
    """A model that trims silence (``audio.trim_db``) gave times counted from the first sound: after 2.5 s of
    silence a burst at 4.0 s was flagged at 1.5 s in score, listen and the edge scorer alike, and the file row ran
    to the trimmed length. Times are the recording's now, the same on the three paths."""
    from latentbridge.cli import main
    from latentbridge.edge import EdgeScorer
    from latentbridge.export import export_onnx

    model = tmp_path / "trimming"
    assert main(["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", str(model),
                 "-o", "audio.trim_db=40"]) == 0
    wave, sr = read_audio(recordings["full"])
    t = np.arange(int(0.1 * sr)) / sr
    wave[int(1.5 * sr):int(1.6 * sr)] += 0.5 * np.sin(2 * np.pi * 3000 * t)  # the burst: 4.0 s in the file
    x = np.concatenate([np.zeros(int(2.5 * sr)), wave, np.zeros(sr)]).astype(np.float32)
    wav = write_wav(tmp_path / "late.wav", x, sr, subtype="FLOAT")
    s_starts, s_scores = _scored(model, wav, tmp_path)
    assert s_starts[0] == pytest.approx(2.5, abs=0.03)
    top = int(np.argmax(s_scores))
    assert s_starts[top] <= 4.0 <= s_starts[top] + 2.0
    with open(tmp_path / "scored_late" / "scores.csv", newline="") as fh:
        row = next(r for r in csv.DictReader(fh) if r["level"].startswith("file"))
    assert float(row["end_s"]) == pytest.approx(len(x) / sr)
    l_starts, l_scores, _ = _listened(model, wav, tmp_path)
    np.testing.assert_allclose(l_starts, s_starts, atol=1e-3)
    np.testing.assert_allclose(l_scores, s_scores, rtol=1e-4)
    # a sound shorter than one window between silences: its padded window ends alike in score and listen
    short = write_wav(tmp_path / "short.wav", np.concatenate([np.zeros(int(2.5 * sr)), wave[:int(1.2 * sr)],
                                                              np.zeros(sr)]).astype(np.float32), sr, subtype="FLOAT")
    _scored(model, short, tmp_path)
    _listened(model, short, tmp_path)
    with open(tmp_path / "scored_short" / "scores.csv", newline="") as fh:
        s_ends = [float(r["end_s"]) for r in csv.DictReader(fh) if r["level"] == "window"]
    with sqlite3.connect(tmp_path / "short.sqlite") as db:
        np.testing.assert_allclose([r[0] for r in db.execute("SELECT end_s FROM events ORDER BY id")], s_ends,
                                   atol=1e-3)
    export_onnx(model, tmp_path / "trimming.onnx")
    np.testing.assert_allclose(EdgeScorer(tmp_path / "trimming.onnx").score_file(wav).starts_s, s_starts, atol=1e-3)
    # the server: the same windows, ends and duration (its windows ended before they started: trimmed ends)
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from latentbridge.serve.app import create_app
    from latentbridge.serve.registry import load_models

    with open(tmp_path / "scored_late" / "scores.csv", newline="") as fh:
        s_ends = [float(r["end_s"]) for r in csv.DictReader(fh) if r["level"] == "window"]
    with TestClient(create_app(load_models([model]))) as c:
        body = c.post("/api/models/trimming/score", params={"spectrogram": True},
                      files={"file": ("late.wav", wav.read_bytes())}).json()
    assert body["duration_s"] == pytest.approx(len(x) / sr)
    np.testing.assert_allclose([w["start_s"] for w in body["windows"]], s_starts, atol=1e-3)
    np.testing.assert_allclose([w["end_s"] for w in body["windows"]], s_ends, atol=1e-3)
    assert body["spectrogram"]["start_s"] == pytest.approx(2.5, abs=0.03)


def test_listen_says_what_score_says_of_a_stereo_file_and_reads_a_csv_at_the_rate_given(
        fitted_model, recordings, tmp_path, caplog):
    """A stereo copy (mixed down for a model of one channel) and a 44.1-kHz one scored every window a fault with no
    word where `anomaly score` names both; a CSV without a time column could not be replayed (--sample-rate, which
    the error asked for, was refused with --source)."""
    wave, sr = read_audio(recordings["full"])
    stereo = write_wav(tmp_path / "stereo.wav", np.stack([wave, 0.5 * wave[::-1]]), sr, subtype="FLOAT")
    with caplog.at_level("WARNING"):
        listen_model(fitted_model, source=stereo, out=io.StringIO())
    assert "1 file mixed down to mono (from 2 channels x1)" in caplog.text
    assert "a mix of several is not the signal it learned" in caplog.text
    csv_path = tmp_path / "notime.csv"
    np.savetxt(csv_path, wave[:, None], delimiter=",", header="signal", comments="")
    listened = listen_model(fitted_model, source=csv_path, sample_rate=sr, out=io.StringIO())
    assert listened["n_windows"] == 3, listened
    from latentbridge.errors import DataError

    with pytest.raises(DataError, match="--sample-rate HZ at anomaly score / calibrate / listen --source"):
        listen_model(fitted_model, source=csv_path, out=io.StringIO())


def test_score_windows_names_windows_of_another_length_and_takes_float64(fitted_model):
    det = Detector.load(fitted_model)
    n = det.spec.window_samples
    x = np.random.default_rng(0).normal(0, 0.05, (2, n))  # float64, as numpy gives it
    scores, _ = det.score_windows(x)
    assert np.allclose(scores, det.score_windows(x.astype(np.float32))[0], rtol=1e-5)
    assert np.allclose(det.score_features(det.window_features(x).astype(np.float64)), scores, rtol=1e-5)
    for bad in (np.zeros((1, 2 * n)), np.zeros((1, 100)), np.zeros(n)):  # (a 4-s window was read as its first 2 s)
        with pytest.raises(ValueError, match=rf"windows of shape \(n, {n}\) or \(n, channels, {n}\) expected .*got "
                                             rf"shape {re.escape(str(bad.shape))}"):
            det.score_windows(bad)
