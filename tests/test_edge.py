"""The torch-free edge scorer (``python -m latentbridge.edge``) checks its input like the CLI does.

Every bad invocation ends with exit code 2 and one ``error: PATH: problem`` line (never a
traceback), a bad file does not stop the others, other sample rates are resampled, and the scores
equal the PyTorch detector's.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from latentbridge.io.audio import silent

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH"))
                                                   if p)}
SR = 16000  # the fitted_model fixture's rate
WINDOW = 2 * SR  # its 2-s windows (1-s hop)

# `python -m latentbridge.edge` with soundfile made unimportable: the standard-library WAV reader
NO_SOUNDFILE = ("import sys, runpy; sys.modules['soundfile'] = None; sys.modules['torch'] = None; "
                "runpy.run_module('latentbridge.edge', run_name='__main__')")


def run_edge(*args, reader: str = "soundfile") -> subprocess.CompletedProcess:
    head = ["-m", "latentbridge.edge"] if reader == "soundfile" else ["-c", NO_SOUNDFILE]
    return subprocess.run([sys.executable, *head, *map(str, args)], capture_output=True, text=True, env=ENV,
                          timeout=120)


def window_lines(stdout: str) -> dict[str, list[list[str]]]:
    """{path: [[start, score, decision], ...]} of the per-window lines (after the threshold's header line)."""
    out: dict[str, list[list[str]]] = {}
    lines = stdout.splitlines()
    assert not lines or lines[0].startswith("# threshold "), lines[:1]
    for line in lines[1:]:
        path, start, score, decision = line.split("\t")
        assert decision in ("normal", "ANOMALY"), line
        out.setdefault(path, []).append([start, score, decision])
    return out


def window_scores(stdout: str, path) -> np.ndarray:
    return np.array([float(s) for start, s, _ in window_lines(stdout)[str(path)] if start != "file"])


def machine_like(sr: int, seconds: float = 4.0) -> np.ndarray:
    """A deterministic machine-like sound defined in continuous time (harmonics of a 49.7-Hz
    rotation up to 6 kHz with a slow amplitude modulation), so that it can be written at any rate:
    no content near the 8-kHz Nyquist of the model's rate, where resamplers necessarily differ. Harmonic k is the
    imaginary part of c_k z^k (z = exp(2 pi i 49.7 t)): powers by products, in blocks (a sine each was 3x slower)."""
    n = int(round(seconds * sr))
    rng = np.random.default_rng(7)
    coef = [rng.uniform(0.2, 1.0) / k ** 0.7 * np.exp(1j * rng.uniform(0, 2 * np.pi)) for k in range(1, 121)]
    x = np.empty(n)
    for s in range(0, n, 1 << 16):
        t = np.arange(s, min(n, s + (1 << 16))) / sr
        z = np.exp(2j * np.pi * 49.7 * t)
        zk, harmonics = np.ones_like(z), np.zeros_like(z)
        for c in coef:
            zk *= z
            harmonics += c * zk
        x[s:s + len(t)] = harmonics.imag * (1.0 + 0.3 * np.sin(2 * np.pi * 1.3 * t))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


# ----------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def onnx_model(fitted_model, tmp_path_factory) -> Path:
    from latentbridge.export import export_onnx

    path = tmp_path_factory.mktemp("edge_model") / "model.onnx"
    export_onnx(fitted_model, path)
    return path


def _export_tiny(path: Path, nan_scores: bool, metadata_from: Path | None = None) -> Path:
    """A tiny torch module exported to ONNX: no latentbridge metadata, or (``metadata_from``) the
    metadata of a real export on a graph whose scores are NaN."""
    import onnx
    import torch

    class Tiny(torch.nn.Module):
        def forward(self, magnitude):
            score = magnitude.mean(dim=(1, 2, 3))
            return (score * float("nan") if nan_scores else score), magnitude

    torch.onnx.export(Tiny(), (torch.ones(1, 1, 513, 63),), str(path), input_names=["magnitude"],
                      output_names=["score", "reconstruction"],
                      dynamic_axes={"magnitude": {0: "batch"}, "score": {0: "batch"}}, opset_version=17,
                      dynamo=False)
    if metadata_from is not None:
        m = onnx.load(str(path))
        for p in onnx.load(str(metadata_from)).metadata_props:
            q = m.metadata_props.add()
            q.key, q.value = p.key, p.value
        onnx.save(m, str(path))
    return path


@pytest.fixture(scope="module")
def files(machine_data, onnx_model, tmp_path_factory) -> dict[str, Path]:
    """Good and bad inputs, written once."""
    d = tmp_path_factory.mktemp("edge_files")
    good = sorted((machine_data / "test" / "normal").glob("*.wav"))
    x, sr = sf.read(str(good[0]), dtype="float32")
    assert sr == SR and len(x) == 4 * SR
    f = {"good": d / "good.wav", "good2": d / "good2.wav"}
    shutil.copy(good[0], f["good"])
    shutil.copy(good[1], f["good2"])

    def write(name, data, rate=SR, subtype="FLOAT"):
        f[name] = d / name
        sf.write(str(f[name]), data, rate, subtype=subtype)

    y = x.copy()
    y[1234] = np.nan
    write("nan.wav", y)
    y = x.copy()
    y[5678] = -np.inf
    write("inf.wav", y)
    write("silent.wav", np.zeros_like(x), subtype="PCM_16")
    write("short.wav", x[: WINDOW // 4 - 160], subtype="PCM_16")  # 0.49 s: under a quarter of a window
    write("padded.wav", x[: int(1.25 * SR)], subtype="PCM_16")  # 1.25 s: padded to one window
    raw = good[0].read_bytes()
    f["truncated.wav"] = d / "truncated.wav"
    f["truncated.wav"].write_bytes(raw[: len(raw) // 2])  # the data chunk cut short; header unchanged
    f["empty.wav"] = d / "empty.wav"
    f["empty.wav"].write_bytes(b"")
    f["text.wav"] = d / "text.wav"
    f["text.wav"].write_text("these are notes, not audio\n")
    f["notes.xyz"] = d / "notes.xyz"
    f["notes.xyz"].write_text("x\n")
    f["missing.wav"] = d / "missing.wav"
    f["missing.onnx"] = d / "missing.onnx"
    f["empty.onnx"] = d / "empty.onnx"
    f["empty.onnx"].write_bytes(b"")
    f["text.onnx"] = d / "text.onnx"
    f["text.onnx"].write_text("not a model\n")
    f["plain.onnx"] = _export_tiny(d / "plain.onnx", nan_scores=False)
    f["nan_scores.onnx"] = _export_tiny(d / "nan_scores.onnx", nan_scores=True, metadata_from=onnx_model)
    import json

    import onnx

    m = onnx.load(str(onnx_model))  # metadata edited by hand: a hop of 0 samples (blamed on every audio file)
    prop = next(p for p in m.metadata_props if p.key == "latentbridge")
    meta = json.loads(prop.value)
    meta["transform"]["features"]["hop_length"] = 0
    prop.value = json.dumps(meta)
    onnx.save(m, str(f.setdefault("hop0.onnx", d / "hop0.onnx")))
    return f


# ----------------------------------------------------------------------------------- tests


def test_import_does_not_import_torch():
    code = ("import sys, latentbridge.edge; bad = [m for m in ('torch', 'librosa', 'lightning') if m in sys.modules]; "
            "assert not bad, bad")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60)
    assert res.returncode == 0, res.stderr


# (case, input, words in the error line); the line must name the bad input
BAD_FILES = [
    ("nan samples", "nan.wav", "NaN"),
    ("inf samples", "inf.wav", "1 inf"),
    ("truncated wav", "truncated.wav", "truncated audio file"),
    ("silent wav", "silent.wav", "silent"),
    ("empty file", "empty.wav", "empty"),
    ("text file named .wav", "text.wav", "unreadable"),
    ("unknown extension", "notes.xyz", "unsupported file type"),
    ("missing file", "missing.wav", "does not exist"),
    ("under a quarter of a window", "short.wav", "recording too short"),
]
BAD_MODELS = [
    ("missing model", "missing.onnx", "does not exist"),
    ("wav as the model", "good", "WAV audio file, not an ONNX model"),
    ("text file as the model", "text.onnx", "not a loadable ONNX model"),
    ("empty model file", "empty.onnx", "empty"),
    ("onnx without metadata", "plain.onnx", "not a latentbridge export"),
    ("metadata of a hop of 0 samples", "hop0.onnx", "damaged latentbridge metadata"),
    ("model folder instead of the export", "FOLDER", "is a folder"),
]


def _check_failure(res: subprocess.CompletedProcess, named: Path, words: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"error: {named}: "), lines[0]
    assert words in lines[0], lines[0]
    assert res.stdout == "", res.stdout  # no decision printed


@pytest.mark.parametrize("reader", ["soundfile", "stdlib"])
@pytest.mark.parametrize("case,name,words", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_file(files, onnx_model, case, name, words, reader):
    res = run_edge(onnx_model, files[name], reader=reader)
    _check_failure(res, files[name], words)


@pytest.mark.parametrize("case,name,words", BAD_MODELS, ids=[c[0] for c in BAD_MODELS])
def test_bad_model(files, fitted_model, case, name, words):
    model = fitted_model if name == "FOLDER" else files[name]
    res = run_edge(model, files["good"])
    _check_failure(res, model, words)


def test_non_finite_scores_are_an_error_not_a_decision(files):
    res = run_edge(files["nan_scores.onnx"], files["good"], files["good2"])
    assert res.returncode == 2 and res.stdout == "" and "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert [ln.split(": ")[1] for ln in lines] == [str(files["good"]), str(files["good2"])]
    assert all("non-finite scores for 3 of 3 windows" in ln for ln in lines), lines


@pytest.mark.parametrize("reader", ["soundfile", "stdlib"])
def test_good_and_bad_files_mixed(files, onnx_model, tmp_path, reader):
    from latentbridge.io.audio import _accepted
    alone = {k: run_edge(onnx_model, files[k], reader=reader) for k in ("good", "good2")}
    for r in alone.values():
        assert r.returncode == 0 and r.stderr == "", r.stderr
        assert len(r.stdout.splitlines()) == 5  # the threshold, 3 windows (4 s, 2-s windows, 1-s hop), the file

    # a list: good, bad, bad, good
    res = run_edge(onnx_model, files["good"], files["nan.wav"], files["missing.wav"], files["good2"], reader=reader)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    # same lines, same scores, under one threshold line
    assert res.stdout == alone["good"].stdout + alone["good2"].stdout.split("\n", 1)[1]
    errors = res.stderr.strip().splitlines()
    assert [e.split(": ")[1] for e in errors] == [str(files["nan.wav"]), str(files["missing.wav"])]
    assert all(e.startswith("error: ") for e in errors)

    # a folder holding good and bad files (and a non-audio file, which a folder listing ignores)
    folder = tmp_path / "mixed"
    folder.mkdir()
    for k in ("good", "good2", "truncated.wav", "silent.wav", "notes.xyz"):
        shutil.copy(files[k], folder / files[k].name)
    res = run_edge(onnx_model, folder, reader=reader)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    got = window_lines(res.stdout)
    assert sorted(got) == [str(folder / "good.wav"), str(folder / "good2.wav")]
    for k in ("good", "good2"):
        assert got[str(folder / files[k].name)] == window_lines(alone[k].stdout)[str(files[k])]
    lines = res.stderr.strip().splitlines()
    # a warning line (it was a bare line among the error lines)
    assert lines[0] == (f"warning: {folder}: 1 file left out, not recordings the toolkit reads (.xyz x1); accepted "
                        "extensions: "
                        f"{_accepted()}")
    errors = lines[1:]
    assert errors == [f"error: {folder / 'silent.wav'}: {silent(folder / 'silent.wav')}",
                      (f"error: {folder / 'truncated.wav'}: truncated audio file: header declares 64000 frames "
                       "but only 31989 are present")]


def test_all_good_files_exit_zero(files, onnx_model):
    res = run_edge(onnx_model, files["good"], files["good2"])
    assert res.returncode == 0 and res.stderr == ""
    assert set(window_lines(res.stdout)) == {str(files["good"]), str(files["good2"])}


def test_a_file_under_two_names_is_scored_once(files, onnx_model, tmp_path):
    """A hard link beside its file (or a file given with its folder) was scored twice, where `anomaly score` scores it
    once."""
    import os

    (tmp_path / "d").mkdir()
    shutil.copy(files["good"], tmp_path / "d" / "a.wav")
    os.link(tmp_path / "d" / "a.wav", tmp_path / "d" / "b.wav")
    res = run_edge(onnx_model, tmp_path / "d", tmp_path / "d" / "a.wav")
    assert res.returncode == 0 and set(window_lines(res.stdout)) == {str(tmp_path / "d" / "a.wav")}, res.stdout
    assert res.stderr.count("scored once") == 2 and f"{tmp_path / 'd' / 'b.wav'}: the same file as" in res.stderr


def test_a_full_output_is_one_line_not_a_traceback(files, onnx_model):
    """`python -m latentbridge.edge MODEL FILES > /dev/full`: a traceback, exit 1 (the CLI: one line, exit 2)."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    with open("/dev/full", "w") as full:
        res = subprocess.run([sys.executable, "-m", "latentbridge.edge", str(onnx_model), str(files["good"])],
                             stdout=full, stderr=subprocess.PIPE, text=True, env=ENV, timeout=120)
    assert res.returncode == 2 and res.stderr.startswith("error: ") and "Traceback" not in res.stderr, res.stderr


def test_the_threshold_is_said_once_and_starts_have_three_decimals(files, onnx_model):
    """The threshold the decisions use, once in a header line; window starts with 3 decimals, as scores.csv (1.000
    and 1.001 both printed 1.00)."""
    from latentbridge.edge import EdgeScorer, FileScores

    res = run_edge(onnx_model, files["good"], files["good2"])
    lines = res.stdout.splitlines()
    thr = EdgeScorer(onnx_model).threshold
    assert lines[0] == f"# threshold {thr:.6g}" and sum(ln.startswith("#") for ln in lines) == 1, lines
    rows = [ln.split("\t") for ln in lines[1:]]
    assert [r[1] for r in rows[:4]] == ["0.000", "1.000", "2.000", "file"]
    assert all((r[3] == "ANOMALY") == (float(r[2]) > float(lines[0].split()[-1])) for r in rows)
    rows = FileScores("a.wav", np.array([1.0, 1.001]), np.array([0.5, 2.0]), np.array([False, True]), 1.25,
                      True).lines()
    assert [r.split("\t")[1] for r in rows] == ["1.000", "1.001", "file"]


def test_a_path_starting_with_a_dash_is_explained(files, onnx_model, tmp_path, monkeypatch, capsys):
    """``-6_dB_pump/...`` (MIMII) read as an option: the usage error says how to give it; given so, it is scored."""
    from latentbridge.edge import main

    (tmp_path / "-6_dB_pump").mkdir()
    shutil.copy(files["good"], tmp_path / "-6_dB_pump" / "a.wav")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main([str(onnx_model), "-6_dB_pump/a.wav"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "required: files" in err and "give it as ./-6_dB_pump/a.wav, or put --" in err, err
    assert main([str(onnx_model), "--", "-6_dB_pump/a.wav"]) == 0
    # its rows name it from ./ (the same file), as scores.csv does: a spreadsheet reads text, not a formula
    assert list(window_lines(capsys.readouterr().out)) == ["./-6_dB_pump/a.wav"]


def test_threads_below_one_are_refused_in_one_line(onnx_model, files, capsys):
    """``--threads -3`` (or 0) was passed to onnxruntime without a word."""
    from latentbridge.edge import main

    for threads in ("-3", "0"):
        assert main([str(onnx_model), str(files["good"]), "--threads", threads]) == 2
        out, err = capsys.readouterr()
        assert err == f"error: --threads must be at least 1, got {threads}\n" and out == ""
    assert main([str(onnx_model), str(files["good"]), "--threads", "1"]) == 0
    from latentbridge.edge import EdgeScorer  # the scorer itself, from Python: refused alike
    from latentbridge.errors import LatentbridgeError

    with pytest.raises(LatentbridgeError, match="--threads must be at least 1, got 0"):
        EdgeScorer(onnx_model, threads=0)


def test_scores_match_the_pytorch_detector(files, fitted_model, onnx_model):
    from latentbridge.io import cut_windows, read_audio
    from latentbridge.tasks.anomaly import Detector

    det = Detector.load(fitted_model)
    res = run_edge(onnx_model, files["good"], files["padded.wav"])
    assert res.returncode == 0, res.stderr
    # the 1.25-s recording is padded to one window, with one note on stderr
    assert res.stderr.strip().splitlines() == [
        f"note: {files['padded.wav']}: shorter than one 2-s window; padded to one window (wrap)"]
    for key, n_windows in (("good", 3), ("padded.wav", 1)):
        x, _ = read_audio(files[key], sample_rate=det.sample_rate)
        windows, _ = cut_windows(x, det.cfg.audio.window_samples, det.cfg.audio.hop_samples, pad=det.cfg.audio.pad)
        ref, ref_flags = det.score_windows(windows)
        got = window_scores(res.stdout, files[key])
        assert len(got) == len(ref) == n_windows
        np.testing.assert_allclose(got, ref, rtol=1e-3)
        decisions = [d == "ANOMALY" for s, _, d in window_lines(res.stdout)[str(files[key])] if s != "file"]
        assert decisions == list(ref_flags)
        file_line = [ln for ln in window_lines(res.stdout)[str(files[key])] if ln[0] == "file"]
        assert len(file_line) == 1 and float(file_line[0][1]) == pytest.approx(ref.mean(), rel=1e-3)


def test_a_model_fitted_on_stereo_recordings_mixes_them_without_a_note(tmp_path, machine_data):
    """A stereo recording scored by a model fitted on stereo recordings got "mixed to one channel from 2", which
    `anomaly score` does not say (the training recordings were mixed alike); a 4-channel one still gets the note."""
    from latentbridge.cli import main
    from latentbridge.export import export_onnx

    normal = sorted((machine_data / "train" / "normal").glob("*.wav"))[:4]
    (tmp_path / "st").mkdir()
    for k, path in enumerate(normal):
        x, sr = sf.read(str(path), dtype="float32")
        sf.write(tmp_path / "st" / f"s{k}.wav", np.stack([x, 0.9 * x], axis=1), sr)
    assert main(["anomaly", "fit", str(tmp_path / "st"), "--out", str(tmp_path / "m")]) == 0
    export_onnx(tmp_path / "m", tmp_path / "m.onnx")
    sf.write(tmp_path / "four.wav", np.stack([x] * 4, axis=1), sr)
    res = run_edge(tmp_path / "m.onnx", tmp_path / "st" / "s0.wav", tmp_path / "four.wav")
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip().splitlines() == [
        f"note: {tmp_path / 'four.wav'}: mixed to one channel from 4: the model reads one channel"]


def test_notes_are_said_once_and_counted(tmp_path, files, onnx_model):
    """A folder of short clips printed one note per clip (hundreds of lines); a 6-channel file was mixed without one."""
    x, sr = sf.read(files["padded.wav"], dtype="float32")
    clips = []
    for k in range(4):
        clips.append(tmp_path / f"clip{k}.wav")
        sf.write(clips[-1], x, sr)
    sf.write(tmp_path / "six.wav", np.stack([x] * 6, axis=1), sr)
    res = run_edge(onnx_model, *clips, tmp_path / "six.wav")
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip().splitlines() == [
        f"note: {clips[0]}: shorter than one 2-s window; padded to one window (wrap)",
        f"note: {tmp_path / 'six.wav'}: mixed to one channel from 6: the model reads one channel",
        "note: 4 more file(s) too: shorter than one 2-s window; padded to one window (wrap)"]


def test_a_recording_stored_lossily_is_said_as_anomaly_score_says_it(tmp_path, files, onnx_model):
    """A model fitted on lossless recordings scoring an OGG copy: `anomaly score` warns that the codec's artefacts
    score as unlike the training sound; the edge scorer said nothing."""
    x, sr = sf.read(files["padded.wav"], dtype="float32")
    ogg = tmp_path / "copy.ogg"
    sf.write(ogg, np.tile(x, 3), sr, format="OGG", subtype="VORBIS")
    res = run_edge(onnx_model, ogg)
    assert res.returncode == 0, res.stderr
    assert f"warning: {ogg}: 1 of 1 recordings are stored by a lossy codec (Vorbis x1: {ogg}) and every training " \
           "recording was stored losslessly (16-bit PCM x" in res.stderr, res.stderr
    res = run_edge(onnx_model, files["padded.wav"])  # stored as training's: nothing said of it
    assert "lossy" not in res.stderr


def test_other_sample_rates_are_resampled(tmp_path, onnx_model):
    """The same continuous-time signal written at 16, 22.05 and 44.1 kHz scores the same.

    Tolerance 1 % relative. The signal has no content above 6 kHz, inside soxr HQ's passband
    (flat to about 7.3 kHz for an 8-kHz Nyquist), so the waveforms the model sees differ only by the
    resampler's filter transients at the two ends of the recording and its passband ripple; in this
    set-up that moves the window scores by about 1e-4 relative (measured up to 2.5e-3 on the
    synthetic machine recordings band-limited to 7 kHz). Reading the 44.1-kHz samples as if they
    were at 16 kHz (no resampling) changes the scores by far more, which the test also checks so
    that the tolerance is known to separate the two.
    """
    from latentbridge.edge import EdgeScorer

    paths = {}
    for sr in (16000, 22050, 44100):
        paths[sr] = tmp_path / f"machine_{sr}.wav"
        sf.write(str(paths[sr]), machine_like(sr), sr, subtype="FLOAT")
    res = run_edge(onnx_model, *paths.values())
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip().splitlines() == [
        f"note: {paths[22050]}: resampled from 22050 Hz to the model's 16000 Hz",
        f"note: {paths[44100]}: resampled from 44100 Hz to the model's 16000 Hz"]
    ref = window_scores(res.stdout, paths[16000])
    assert len(ref) == 3
    low = tmp_path / "machine_8000.wav"  # below the model's band: every window a fault for that alone, unsaid
    sf.write(str(low), machine_like(8000), 8000, subtype="FLOAT")
    res_low = run_edge(onnx_model, low)
    assert f"note: {low}: resampled from 8000 Hz to the model's 16000 Hz; recorded below the model's band, it holds " \
           "nothing between 4000 and 8000 Hz" in res_low.stderr, res_low.stderr
    for sr in (22050, 44100):
        np.testing.assert_allclose(window_scores(res.stdout, paths[sr]), ref, rtol=1e-2)
    # without resampling the scores would be far off
    scorer = EdgeScorer(onnx_model)
    wrong, _ = scorer.score_windows(scorer.windows(machine_like(44100))[0][:3])
    assert np.max(np.abs(wrong / ref - 1)) > 0.1


@pytest.mark.parametrize("reader", ["soundfile", "stdlib"])
def test_a_recording_is_read_in_blocks_and_scored_in_batches(onnx_model, tmp_path, monkeypatch, reader):
    """A 20-min recording read whole, with all its windows, peaked at 3.25 GB: blocks of the file are read, resampled,
    cut and scored a few windows at a time, and every score equals the whole recording's scored at once (offset
    removal, stereo mix and resampling included)."""
    from latentbridge import edge
    from latentbridge.io import blockread, read_audio, resample

    x = machine_like(22050, 30.0)
    path = tmp_path / "long.wav"
    sf.write(str(path), np.stack([x, 0.5 * x + 0.01], axis=1), 22050, subtype="PCM_24")
    scorer = edge.EdgeScorer(onnx_model)
    wave, sr = read_audio(path)  # the whole recording at once, as the scorer read it before
    windows, starts_s = scorer.windows(resample(wave, sr, SR))
    ref, _ = scorer.score_windows(windows)
    assert len(ref) == 29

    reads, batches = [], []
    read_block = blockread.read_wav_samples if reader == "stdlib" else sf.SoundFile.read
    if reader == "stdlib":
        monkeypatch.setattr(edge, "_SOUNDFILE", False)
        monkeypatch.setattr(blockread, "read_wav_samples", lambda path, layout, frames, start=0: (
            reads.append(frames), read_block(path, layout, frames, start))[1])
    else:
        monkeypatch.setattr(sf.SoundFile, "read", lambda self, *a, out=None, **kw: (
            reads.append(len(out)), read_block(self, *a, out=out, **kw))[1])
    score_windows = scorer.score_windows
    monkeypatch.setattr(scorer, "score_windows", lambda w: (batches.append(w), score_windows(w))[1])
    monkeypatch.setattr(blockread, "BLOCK_FRAMES", 5000)
    monkeypatch.setattr(edge, "BATCH_WINDOWS", 4)
    res = scorer.score_file(path)
    np.testing.assert_array_equal(np.concatenate(batches), windows)  # the model's input, to the bit
    np.testing.assert_array_equal(res.starts_s, starts_s)
    # onnxruntime's kernels round a batch of 1 and one of 29 apart in the last bit of a float32 (1e-7 relative)
    np.testing.assert_allclose(res.scores, ref, rtol=1e-6)
    assert res.file_score == pytest.approx(float(ref.mean()), rel=1e-6)
    assert res.notes[0].startswith("resampled from 22050 Hz")
    assert max(reads) == 5000 and sum(reads) == 2 * len(x)  # in blocks: a pass for the offsets, one for the windows
    assert [len(b) for b in batches] == [4] * 7 + [1]


def test_scoring_memory_does_not_grow_with_the_recording(onnx_model, tmp_path, monkeypatch):
    """A 4-min recording is scored in the memory a 1-min one is, less than its own samples (read whole with its
    windows, it took three times them, and four times the 1-min one's)."""
    import tracemalloc

    from latentbridge import edge

    monkeypatch.setattr(edge, "BATCH_WINDOWS", 4)
    scorer = edge.EdgeScorer(onnx_model)
    peaks = []
    for minutes in (1, 4):
        path = tmp_path / f"{minutes}min.wav"
        sf.write(str(path), x := machine_like(SR, 60.0 * minutes), SR, subtype="FLOAT")
        tracemalloc.start()
        try:
            res = scorer.score_file(path)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert len(res.scores) == 60 * minutes - 1
    assert peaks[1] < 1.2 * peaks[0] and peaks[1] < x.nbytes, (peaks, x.nbytes)


@pytest.mark.parametrize("subtype,channels", [("PCM_U8", 1), ("PCM_16", 1), ("PCM_24", 2), ("PCM_32", 1),
                                              ("FLOAT", 2), ("DOUBLE", 1)])
def test_stdlib_reader_reads_like_soundfile(tmp_path, monkeypatch, subtype, channels):
    from latentbridge import edge
    from latentbridge.io import read_audio

    x = machine_like(SR, 1.0)
    data = np.stack([x, -0.5 * x], axis=1) if channels == 2 else x
    path = tmp_path / "x.wav"
    sf.write(str(path), data, SR, subtype=subtype)
    ref, sr = read_audio(path)
    monkeypatch.setattr(edge, "_SOUNDFILE", False)
    got, sr2 = edge.read_recording(path)
    assert sr2 == sr == SR and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=1e-6)
    if channels == 2:
        np.testing.assert_allclose(edge.read_recording(path, channel=1)[0], read_audio(path, mono=False)[0][1],
                                   atol=1e-6)


def test_stdlib_reader_names_a_64_bit_wav(tmp_path, monkeypatch):
    """An RF64 file read without soundfile was 'unreadable or truncated (not a RIFF/WAVE file)'."""
    from latentbridge import edge
    from latentbridge.errors import DataError

    path = tmp_path / "big.wav"
    sf.write(str(path), machine_like(SR, 0.5), SR, format="RF64")
    assert path.read_bytes()[:4] == b"RF64"
    monkeypatch.setattr(edge, "_SOUNDFILE", False)
    with pytest.raises(DataError, match="a 64-bit WAV \\(RF64, for files over 4 GB\\) needs the soundfile package"):
        edge.read_recording(path)


def test_metadata_is_read_from_the_export(onnx_model, fitted_model):
    from latentbridge.edge import EdgeScorer

    scorer = EdgeScorer(onnx_model)
    cfg = json.loads((fitted_model / "config.json").read_text())
    assert scorer.threshold == pytest.approx(cfg["anomaly"]["threshold"])
    assert (scorer.sample_rate, scorer.window, scorer.hop, scorer.pad) == (SR, WINDOW, SR, "wrap")


def test_export_after_a_sampled_score_says_what_the_graph_scores(files, fitted_model, tmp_path, capsys, caplog):
    """After `calibrate --score elbo` the export scores reconstruction MSE (it said only its parity): edge scores
    then differ from `anomaly score`'s, and the export says so with the threshold it uses."""
    import shutil

    from latentbridge.cli import main

    model = tmp_path / "model"
    shutil.copytree(fitted_model, model)
    normal = [str(files["good"]), str(files["good2"])]
    assert main(["anomaly", "calibrate", str(model), *normal, "--score", "elbo"]) == 0
    capsys.readouterr()
    assert main(["export", str(model), "--out", str(tmp_path / "m.onnx")]) == 0
    said = caplog.text
    assert "the graph scores mse (threshold" in said and "not the model's sampled 'elbo' score" in said
    assert "graph scores" not in capsys.readouterr().out  # (stdout: the result's lines alone)
    caplog.clear()
    assert main(["export", str(fitted_model), "--out", str(tmp_path / "plain.onnx")]) == 0
    assert "graph scores" not in caplog.text
    # its threshold then set by hand: none for MSE; said then, and the export's refusal names the calibration (it
    # advised a refit)
    with caplog.at_level(logging.WARNING):
        assert main(["anomaly", "calibrate", str(model), "--threshold", "9000"]) == 0
    assert "a threshold for 'elbo' set by hand leaves none for MSE" in caplog.text
    assert main(["export", str(model), "--out", str(tmp_path / "m2.onnx")]) == 2
    assert f"calibrate it on normal recordings (`latentbridge anomaly calibrate {model} NORMAL_DIR`)" \
        in capsys.readouterr().err


@pytest.mark.parametrize("reader", ["soundfile", "stdlib"])
def test_awkward_file_names_keep_their_rows(files, onnx_model, tmp_path, reader):
    """A name holding a tab or a line break split its tab-separated row into other fields or lines; a name that is
    not UTF-8 was refused as "unreadable" by soundfile, and printing it stopped the scorer under a UTF-8 locale."""
    tab = tmp_path / "a\tb.wav"
    odd = tmp_path / os.fsdecode(b"bad\xff\xfe.wav")
    shutil.copy(files["good"], tab)
    shutil.copy(files["good"], odd)
    head = ["-m", "latentbridge.edge"] if reader == "soundfile" else ["-c", NO_SOUNDFILE]
    res = subprocess.run([sys.executable, *head, str(onnx_model), str(tab), os.fsencode(odd)], capture_output=True,
                         env={**ENV, "PYTHONIOENCODING": "utf-8:strict"}, timeout=120)
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    rows = window_lines(res.stdout.decode("utf-8"))
    assert set(rows) == {str(tmp_path / "a\\tb.wav"), str(tmp_path / "bad\\udcff\\udcfe.wav")}
    good = run_edge(onnx_model, files["good"], reader=reader)
    assert rows[str(tmp_path / "a\\tb.wav")] == window_lines(good.stdout)[str(files["good"])]


def test_vibration_csvs_are_scored_without_soundfile(tmp_path):
    """A device without soundfile refused accelerometer CSVs as "unsupported file type '.csv'" (accepted: the audio
    formats); a CSV needs no audio decoder, so they are read and scored as with it."""
    from latentbridge.cli import main
    from latentbridge.export import export_onnx

    rng = np.random.default_rng(0)
    t = np.arange(2000) / 1000.0
    for i in range(6):
        x = np.stack([np.sin(2 * np.pi * (40 + i) * t), 0.5 * np.cos(2 * np.pi * 90 * t)], 1)
        x = x + 0.05 * rng.standard_normal(x.shape)
        np.savetxt(tmp_path / f"n{i}.csv", np.column_stack([t, x]), delimiter=",", header="time,ax,ay", comments="")
    assert main(["anomaly", "fit", str(tmp_path), "--out", str(tmp_path / "m")]) == 0
    export_onnx(tmp_path / "m", tmp_path / "m.onnx")
    with_sf = run_edge(tmp_path / "m.onnx", tmp_path / "n0.csv")
    without = run_edge(tmp_path / "m.onnx", tmp_path / "n0.csv", reader="stdlib")
    assert with_sf.returncode == 0 and without.returncode == 0, without.stderr
    assert without.stdout == with_sf.stdout and len(without.stdout.splitlines()) > 2
    # a CSV's sensor columns are read by their header names, in the model's order (they were read by position)
    rows = np.loadtxt(tmp_path / "n0.csv", delimiter=",", skiprows=1)
    (tmp_path / "in").mkdir()
    np.savetxt(tmp_path / "in" / "swapped.csv", rows[:, [0, 2, 1]], delimiter=",", header="time,ay,ax", comments="")
    np.savetxt(tmp_path / "in" / "other.csv", rows, delimiter=",", header="time,temp,rpm", comments="")
    swapped = run_edge(tmp_path / "m.onnx", tmp_path / "in" / "swapped.csv", reader="stdlib")
    assert swapped.returncode == 0, swapped.stderr
    np.testing.assert_allclose(window_scores(swapped.stdout, tmp_path / "in" / "swapped.csv"),
                               window_scores(with_sf.stdout, tmp_path / "n0.csv"), rtol=1e-6)
    other = run_edge(tmp_path / "m.onnx", tmp_path / "in" / "other.csv")
    assert other.returncode == 2 and "Traceback" not in other.stderr
    assert "other.csv: its sensor columns (temp, rpm) are not the model's (ax, ay)" in other.stderr, other.stderr


def test_too_little_memory_for_a_file_is_said_as_such(files, onnx_model, monkeypatch, capsys):
    """A file the device lacks the memory to read was "the model could not score it (MemoryError...)", or, in its
    reader, "unreadable or truncated": the memory is named, with the allocation; the other files are scored."""
    import latentbridge.io.blockread as blockread
    from latentbridge.edge import main

    real = blockread.read_pcm16

    def read_pcm16(f, *args):
        if Path(os.fsdecode(f.name)).name == "good.wav":
            from numpy._core._exceptions import _ArrayMemoryError

            raise _ArrayMemoryError((7200 * 48000, 2), np.dtype(np.float32))
        return real(f, *args)

    monkeypatch.setattr(blockread, "read_pcm16", read_pcm16)
    assert main([str(onnx_model), str(files["good"]), str(files["good2"])]) == 2
    out, err = capsys.readouterr()
    assert err == (f"error: {files['good']}: out of memory in `python -m latentbridge.edge` (an allocation of 2.57 GiB "
                   "failed): it reads a recording block by block: leave it more of the memory (other programs), or "
                   "run on a machine with more memory\n")
    assert list(window_lines(out)) == [str(files["good2"])]


def test_a_recording_that_clips_is_named_and_a_closed_pipe_ends_quietly(tmp_path, onnx_model, files):
    """The device scored a recording clipped by a gain set too high as anomalous (every window, 25 times the
    threshold) without the note `anomaly score` gives; `edge ... | head -1` ended in a BrokenPipeError traceback."""
    x = machine_like(16000)
    sf.write(tmp_path / "clipped.wav", np.clip(x * 20, -1, 1), 16000, subtype="FLOAT")
    res = run_edge(onnx_model, tmp_path / "clipped.wav", files["good"])
    assert res.returncode == 0, res.stderr
    notes = [line for line in res.stderr.splitlines() if "clip" in line]
    assert len(notes) == 1 and notes[0].startswith(f"note: {tmp_path / 'clipped.wav'}: 1 of 1 recordings clip (") \
        and "none of the training recordings did" in notes[0], res.stderr
    (many := tmp_path / "many").mkdir()
    for k in range(20):
        shutil.copy(files["good"], many / f"r{k:02d}.wav")
    head = subprocess.run(f"{sys.executable} -m latentbridge.edge {onnx_model} {many} | head -1; "
                          "echo ${PIPESTATUS[0]} >&2", shell=True, executable="/bin/bash", capture_output=True,
                          text=True, env=ENV, timeout=120)
    assert head.stdout.startswith("# threshold ") and head.stderr.strip() in ("0", "141"), head.stderr
