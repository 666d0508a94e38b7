"""The anomaly workflow through the command line: fit, score, export, edge scoring, listen, resume, DDP."""

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import FAST, FSDD, REPO
from latentbridge.cli import main


def _overrides(extra=()):
    out = []
    for o in [*FAST, *extra]:
        out += ["-o", o]
    return out


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_fit_writes_a_complete_model_folder(fitted_model):
    names = {p.name for p in fitted_model.iterdir()}
    assert {"config.json", "model.safetensors", "README.md", "config.yaml", "checkpoints", "logs",
            "calibration.json"} <= names
    assert {p.name for p in (fitted_model / "checkpoints").iterdir()} == {"best.ckpt", "last.ckpt"}
    assert (fitted_model / "logs" / "csv" / "version_0" / "metrics.csv").exists()
    assert list((fitted_model / "logs" / "tensorboard" / "version_0").glob("events.out.tfevents.*"))
    beta = _rows(fitted_model / "logs" / "beta_tracking.csv")
    assert len(beta) >= 3 and float(beta[0]["beta"]) < float(beta[-1]["beta"])  # linear warm-up
    info = json.loads((fitted_model / "config.json").read_text())
    thr = info["anomaly"]["threshold"]
    calib = json.loads((fitted_model / "calibration.json").read_text())
    scores = np.array(calib["scores"])
    assert thr == pytest.approx(scores.mean() + 2 * scores.std(), rel=1e-6)  # mean + 2 sigma
    card = (fitted_model / "README.md").read_text()
    for needle in ("16000 Hz (one channel)", "n_fft 1024", "hop 512", "64 mel bands", f"{thr:.6g}"):
        assert needle in card
    data = info["data"]  # counts in words: "1 file", not "1 files"
    assert f"{data['n_val_files']} file{'s' if data['n_val_files'] != 1 else ''} / {data['n_val_windows']} windows " \
           "held out for calibration" in card
    assert not list(fitted_model.parent.glob("*.partial"))


def test_training_loss_falls(fitted_model):
    rows = [r for r in _rows(fitted_model / "logs" / "csv" / "version_0" / "metrics.csv") if r.get("train/loss_epoch")]
    losses = [float(r["train/loss_epoch"]) for r in rows]
    assert len(losses) == 3 and losses[-1] < losses[0]


def test_a_folder_fitted_before_offsets_came_out_is_said(fitted_model, machine_data, tmp_path, caplog):
    """Audio files lose their constant offset when read since 2026-12-04: a model fitted before learnt its recordings
    with it, and its scores of recordings with one moved without a word."""
    import shutil

    from latentbridge.models.hub import update_info

    old = tmp_path / "old"
    shutil.copytree(fitted_model, old)
    update_info(old, {"created_utc": "2026-12-02T10:00:00+00:00"})
    files = [str(p) for p in sorted((machine_data / "test").rglob("*.wav"))[:1]]
    for folder, said in ((fitted_model, False), (old, True)):
        caplog.clear()
        with caplog.at_level("WARNING"):
            assert main(["anomaly", "score", str(folder), *files, "--out", str(tmp_path / f"s_{folder.name}")]) == 0
        assert ("fitted on 2026-12-02, before audio files lost each channel's constant offset" in caplog.text) == said


def test_score_with_auto_labels(fitted_model, machine_data, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["anomaly", "score", str(fitted_model), str(machine_data / "test"), "--labels", "auto",
                 "--out", str(out)]) == 0
    assert "auc=" in capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())
    for key in ("auc", "pauc", "threshold", "precision", "recall", "f1", "n_normal", "n_anomalous"):
        assert key in m
    assert (m["n_normal"], m["n_anomalous"]) == (3, 4)
    assert 0.0 <= m["auc"] <= 1.0 and 0.0 <= m["pauc"] <= 1.0
    for png in ("roc.png", "histogram.png", "examples.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<img" in (out / "report.html").read_text()
    rows = _rows(out / "scores.csv")
    assert list(rows[0].keys())[:5] == ["path", "start_s", "end_s", "score", "is_anomaly"]
    windows = [r for r in rows if r["level"] == "window"]
    files = [r for r in rows if r["level"] != "window"]
    assert len(files) == 7
    # 4-s files, 2-s windows, 1-s hop: starts 0, 1, 2
    assert len(windows) == 7 * 3
    assert {r["start_s"] for r in windows} == {"0.000", "1.000", "2.000"}
    for f in files:  # the file row is the mean of its windows
        ws = [float(r["score"]) for r in windows if r["path"] == f["path"]]
        assert float(f["score"]) == pytest.approx(np.mean(ws), rel=1e-4)
        assert int(f["is_anomaly"]) == int(float(f["score"]) > m["threshold"])


def test_score_with_label_csv_and_without_labels(fitted_model, machine_data, tmp_path, caplog):
    files = sorted((machine_data / "test").rglob("*.wav"))
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\n" + "".join(
        f"{f},{'anomalous' if f.parent.name == 'anomalous' else 'normal'}\n" for f in files))
    out = tmp_path / "a"
    assert main(["anomaly", "score", str(fitted_model), *map(str, files), "--labels", str(labels),
                 "--out", str(out)]) == 0
    auto = tmp_path / "b"
    assert main(["anomaly", "score", str(fitted_model), str(machine_data / "test"), "--labels", "auto",
                 "--out", str(auto)]) == 0
    assert json.loads((out / "metrics.json").read_text())["auc"] == json.loads((auto / "metrics.json").read_text())["auc"]
    plain = tmp_path / "c"
    with caplog.at_level("WARNING"):  # --sample-rate of audio files: passed over without a word
        assert main(["anomaly", "score", str(fitted_model), str(files[0]), "--out", str(plain), "--sample-rate",
                     "8000"]) == 0
    assert "--sample-rate 8000: none of the recordings is a vibration table" in caplog.text
    import shutil

    shutil.copytree(fitted_model, tmp_path / "model")
    caplog.clear()
    with caplog.at_level("WARNING"):  # calibrate alike
        assert main(["anomaly", "calibrate", str(tmp_path / "model"), str(machine_data / "test" / "normal"),
                     "--sample-rate", "8000"]) == 0
    assert "--sample-rate 8000: none of the recordings is a vibration table" in caplog.text
    assert (plain / "scores.csv").exists() and not (plain / "metrics.json").exists()


def test_a_recording_far_quieter_than_training_is_named(fitted_model, machine_data, tmp_path, caplog):
    """A dead microphone (+-1 LSB of noise, -92 dBFS) was scored as ordinary audio without a word."""
    import soundfile as sf

    info = json.loads((fitted_model / "config.json").read_text())
    quietest = info["data"]["survey"]["level_dbfs_percentiles_0_10_50_90_100"][0]
    sr = info["config"]["audio"]["sample_rate"]
    sf.write(tmp_path / "dead_mic.wav", np.random.default_rng(0).integers(-1, 2, 4 * sr).astype(np.int16), sr,
             subtype="PCM_16")
    normal = sorted((machine_data / "test" / "normal").glob("*.wav"))[0]
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert main(["anomaly", "score", str(fitted_model), str(normal), "--out", str(tmp_path / "a")]) == 0
    assert "quieter than the quietest training recording" not in caplog.text
    with caplog.at_level("WARNING"):
        assert main(["anomaly", "score", str(fitted_model), str(normal), str(tmp_path / "dead_mic.wav"), "--out",
                     str(tmp_path / "b")]) == 0
    assert "1 of 2 recordings are more than 30 dB quieter than the quietest training recording (dead_mic.wav -92 dBFS" \
        in caplog.text and f"training {quietest:.0f} to" in caplog.text
    # the same microphone with a constant offset (an ADC's bias) is as dead: the offset is no sound
    sf.write(tmp_path / "biased_dead_mic.wav", 6000 + np.random.default_rng(0).integers(-1, 2, 4 * sr).astype(np.int16),
             sr, subtype="PCM_16")
    # a normal recording's integer samples saved as floats unscaled, and its 8-bit copy
    x, _ = sf.read(normal)
    sf.write(tmp_path / "unscaled.wav", x * 32768, sr, subtype="FLOAT")
    sf.write(tmp_path / "eight_bit.wav", x, sr, subtype="PCM_U8")
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert main(["anomaly", "score", str(fitted_model), str(normal), *(str(tmp_path / f) for f in (
            "biased_dead_mic.wav", "unscaled.wav", "eight_bit.wav")), "--out", str(tmp_path / "c")]) == 0
    assert "1 of 4 recordings are more than 30 dB quieter than the quietest training recording (biased_dead_mic.wav " \
        "-92 dBFS" in caplog.text, caplog.text
    assert "1 of 4 recordings have an RMS level above full scale (unscaled.wav " in caplog.text
    assert "integer samples saved in a float file without scaling" in caplog.text
    assert "1 of 4 recordings are stored with 8-bit samples (eight_bit.wav) and no training recording was" in caplog.text


def test_recordings_that_clip_where_training_did_not_are_named(fitted_model, machine_data, tmp_path, caplog):
    """A saturated recorder (a gain set too high) was scored without a word: its distortion flags it for that alone.
    The model keeps its training recordings' clipped shares; a scored recording held at full scale is named, a clean
    one not; training recordings that clip are named at fit."""
    import soundfile as sf

    info = json.loads((fitted_model / "config.json").read_text())
    assert info["data"]["clipped_share_percentiles_0_10_50_90_100"] == [0.0] * 5
    normal = sorted((machine_data / "test" / "normal").glob("*.wav"))[0]
    x, sr = sf.read(normal)
    sf.write(tmp_path / "hot.wav", np.clip(x * 4 / np.abs(x).max(), -1, 1), sr, subtype="PCM_16")
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert main(["anomaly", "score", str(fitted_model), str(normal), str(tmp_path / "hot.wav"), "--out",
                     str(tmp_path / "a")]) == 0
    text = caplog.text
    assert "1 of 2 recordings clip (samples on plateaus at their extremes: hot.wav " in text, text
    assert "none of the training recordings did" in text and normal.name not in text.split("recordings clip")[1]
    # a biased sensor (an offset of half full scale) saturates at full scale on one side: its plateaus are found on
    # the samples as recorded (once the offset was out they lay at 0.85 of full scale, and nothing was said)
    biased = np.clip(0.5 + 1.5 * x / np.abs(x).max(), -1, 1)
    sf.write(tmp_path / "biased.wav", biased, sr, subtype="PCM_16")
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert main(["anomaly", "score", str(fitted_model), str(tmp_path / "biased.wav"), "--out",
                     str(tmp_path / "a2")]) == 0
    share = float(np.mean(biased >= 1.0))
    assert share > 0.05 and "1 of 1 recordings clip (samples on plateaus at their extremes: biased.wav " in \
        caplog.text, caplog.text
    # training recordings that clip: named at fit, and a recording clipping as much is then not named when scored
    train = tmp_path / "train"
    train.mkdir()
    files = sorted((machine_data / "train" / "normal").glob("*.wav"))
    for f in files:
        y, _ = sf.read(f)
        sf.write(train / f.name, np.clip(y * 4 / np.abs(y).max(), -1, 1), sr, subtype="PCM_16")
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert main(["anomaly", "fit", str(train), "--out", str(tmp_path / "m")]) == 0
        assert f"{len(files)} of {len(files)} training recordings clip (samples on plateaus at their extremes: " \
            in caplog.text
        caplog.clear()
        assert main(["anomaly", "score", str(tmp_path / "m"), str(tmp_path / "hot.wav"), "--out",
                     str(tmp_path / "b")]) == 0
    assert "recordings clip" not in caplog.text


def test_a_short_fault_in_a_long_recording_is_counted_by_its_windows(fitted_model, machine_data, tmp_path, capsys):
    """Four seconds of a fault in minutes of normal sound barely move the file's mean: "0 files above the threshold"
    was all the summary said while windows scored far above it. The windows above the threshold are counted and the
    highest is named with its time, in summary.json and on the console."""
    import soundfile as sf

    normal = sorted((machine_data / "test" / "normal").glob("*.wav"))
    fault = sorted((machine_data / "test" / "anomalous").glob("*.wav"))[0]
    parts = [sf.read(f, dtype="float32")[0] for f in normal[:6]]
    x, sr = sf.read(fault, dtype="float32")
    sf.write(tmp_path / "long.wav", np.concatenate(parts[:3] + [x] + parts[3:]), sr, subtype="PCM_16")
    capsys.readouterr()
    assert main(["anomaly", "score", str(fitted_model), str(tmp_path / "long.wav"), "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    rows = [r for r in csv.DictReader(open(tmp_path / "s" / "scores.csv")) if r["level"] == "window"]
    above = [r for r in rows if float(r["score"]) > summary["threshold"]]
    assert summary["n_windows_flagged"] == len(above) >= 1
    top, best = summary["top_window"], max(rows, key=lambda r: float(r["score"]))
    assert top["score"] == pytest.approx(float(best["score"]), rel=1e-5) and top["file"] == str(tmp_path / "long.wav")
    assert top["start_s"] == pytest.approx(float(best["start_s"]), abs=1e-3)
    assert f"{summary['n_windows_flagged']} windows above the threshold" in out and f"at {top['start_s']:g} s" in out
    # a labelled run says and writes the same (it wrote metrics.json alone, and printed no highest window)
    assert main(["anomaly", "score", str(fitted_model), str(machine_data / "test"), "--labels", "auto",
                 "--out", str(tmp_path / "l")]) == 0
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "l" / "summary.json").read_text())
    assert summary["top_window"] == json.loads((tmp_path / "l" / "metrics.json").read_text())["top_window"]
    assert f"scored {summary['n_files']} files / " in out and f"(highest {summary['top_window']['score']:.6g}: " in out


def test_scores_csv_paths_open_in_a_spreadsheet_as_text(fitted_model, machine_data, tmp_path, monkeypatch):
    """MIMII's folders are named `-6_dB_pump`; a file may be named `=cmd|x.wav`: written as they are, a spreadsheet
    ran them as formulas. Relative paths that begin so are written from `./` (the same files); others as given."""
    normal = sorted((machine_data / "test" / "normal").glob("*.wav"))[:2]
    (tmp_path / "-6_dB_pump").mkdir()
    shutil.copy(normal[0], tmp_path / "-6_dB_pump" / "a.wav")
    shutil.copy(normal[1], tmp_path / "=cmd|x.wav")
    monkeypatch.chdir(tmp_path)
    assert main(["anomaly", "score", str(fitted_model), "./-6_dB_pump", "=cmd|x.wav", str(normal[0]),
                 "--out", "s"]) == 0
    paths = {r["path"] for r in csv.DictReader(open(tmp_path / "s" / "scores.csv"))}
    assert paths == {"./-6_dB_pump/a.wav", "./=cmd|x.wav", str(normal[0])}
    assert all(Path(p).is_file() for p in paths)


def test_fit_and_calibrate_refuse_recordings_marked_anomalous(fitted_model, machine_data, tmp_path, capsys):
    """A machine's folder given instead of its normal/ folder: fitted on its abnormal recordings without a word (AUC
    0.73 against 1.0). Refused, naming them, before anything is read or written; calibrate alike."""
    test = machine_data / "test"
    n_anomalous = len(list((test / "anomalous").glob("*.wav")))
    assert main(["anomaly", "fit", str(test), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {test}: {n_anomalous} of the {n_anomalous + len(list((test / 'normal').glob('*.wav')))}"
                          " recordings are marked anomalous by their folder or name (") and "anomalous/" in err
    assert "training reads normal recordings only" in err and not (tmp_path / "m").exists()
    before = (fitted_model / "config.json").read_text()
    assert main(["anomaly", "calibrate", str(fitted_model), str(test)]) == 2
    assert "calibration reads normal recordings only" in capsys.readouterr().err
    assert (fitted_model / "config.json").read_text() == before


def test_fit_reads_several_folders_given_together(machine_data, feature_cache, tmp_path, capsys, monkeypatch):
    """`anomaly fit DAY1 DAY2`: recordings of several folders (days, sensors' folders, a DCASE machine's two training
    sets) were fitted only through a folder of links. Each folder's recordings are read, the folders named in the
    model card; one folder stays a string in config.json; a missing one is refused naming it, nothing written."""
    from latentbridge.config import load_config

    normal = sorted((machine_data / "train" / "normal").glob("*.wav"))
    day1, day2 = tmp_path / "day1", tmp_path / "day2"
    for day, files in ((day1, normal[:3]), (day2, normal[3:])):
        day.mkdir()
        for f in files:
            shutil.copy(f, day / f.name)
    assert main(["anomaly", "fit", str(day1), str(day2), "--out", str(tmp_path / "m2")]) == 0
    config = json.loads((tmp_path / "m2" / "config.json").read_text())
    assert config["config"]["data"]["train_dir"] == [str(day1), str(day2)]
    assert config["data"]["n_files"] == len(normal) == 6
    assert f"Training recordings: `{day1}, {day2}` (6 files" in (tmp_path / "m2" / "README.md").read_text()
    assert main(["anomaly", "fit", str(day1), "--out", str(tmp_path / "m1")]) == 0
    assert json.loads((tmp_path / "m1" / "config.json").read_text())["config"]["data"]["train_dir"] == str(day1)
    capsys.readouterr()
    assert main(["anomaly", "fit", str(day1), str(tmp_path / "day3"), "--out", str(tmp_path / "m3")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'day3'}: does not exist\n"
    assert not (tmp_path / "m3").exists()
    monkeypatch.setenv("HOME", str(tmp_path))  # ~ inside -o's brackets, which no shell expands
    assert load_config(None, ["data.train_dir=[~/day1, ~/day2]"]).data.train_dir == [str(day1), str(day2)]
    # the command's own folders were expanded by the shell: a folder named ~ is that folder, one or several given
    assert load_config(None, sets={"data.train_dir": ["~", "day2"]}).data.train_dir == ["~", "day2"]
    # a refused --resume gives the run's folders as anomaly fit takes them, and as a YAML list of quoted names (a
    # folder named 2024-01-05 unquoted is a date)
    dated = [tmp_path / "2024-01-05", tmp_path / "2024-01-06"]
    for src, dst in zip((day1, day2), dated):
        shutil.copytree(src, dst)
    vae = ["--config", str(REPO / "configs" / "anomaly_ae.yaml"), "--out", str(tmp_path / "ae"), *_overrides()]
    assert main(["anomaly", "fit", *map(str, dated), *vae]) == 0
    capsys.readouterr()
    assert main(["anomaly", "fit", *map(str, dated[::-1]), *vae, "-o", "train.max_epochs=5", "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"(`anomaly fit {dated[0]} {dated[1]} ...` or, with train, -o 'data.train_dir=[\"{dated[0]}\", " \
           f"\"{dated[1]}\"]')" in err, err
    assert main(["train", *vae, "-o", "train.max_epochs=5", "--resume", "-o", f'data.train_dir=["{dated[0]}", '
                 f'"{dated[1]}"]']) == 0


def test_a_neighbour_detector_without_held_out_files_says_what_its_threshold_does(machine_data, feature_cache,
                                                                                   tmp_path, caplog):
    """Calibrated on its own training windows, a nearest-neighbour detector's threshold is about 0 (they score 0
    against themselves) and every normal file is flagged: the warning called that "optimistic"."""
    with caplog.at_level("WARNING"):
        assert main(["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", str(tmp_path / "m"),
                     "-o", "data.val_fraction=0"]) == 0
    assert "which a nearest-neighbour detector scores 0 against themselves: nearly every new window will be " \
           "flagged" in caplog.text and "optimistic" not in caplog.text
    assert json.loads((tmp_path / "m" / "config.json").read_text())["anomaly"]["threshold"] < 0.05
    caplog.clear()  # any other model: training windows score lower than new ones (it said ", (optimistic)")
    with caplog.at_level("WARNING"):
        assert main(["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", str(tmp_path / "p"),
                     "--config", str(REPO / "configs" / "anomaly_pca.yaml"), "-o", "data.val_fraction=0"]) == 0
    assert "calibrated on training windows, which a model scores lower than new normal windows: expect false " \
           "alarms; hold out normal files" in caplog.text


def test_a_neighbour_detector_leaves_its_own_windows_out_of_a_calibration(machine_data, feature_cache, tmp_path,
                                                                          caplog, capsys):
    """`anomaly calibrate MODEL TRAIN_DIR`: the training windows, scored 0 against themselves, lowered the threshold
    without a word (19.6 -> 16.6: 5 of 6 normal files flagged, against 2). They are left out, said; a folder of nothing
    else is refused; at fit, held-out files that are copies of the training ones (threshold 0) are refused."""
    train = machine_data / "train" / "normal"
    model = tmp_path / "m"
    assert main(["anomaly", "fit", str(train), "--out", str(model)]) == 0
    config = json.loads((model / "config.json").read_text())
    at_fit, n_train = config["anomaly"]["threshold"], config["data"]["n_train_windows"]
    n_val = config["data"]["n_val_windows"]
    with caplog.at_level("WARNING"):
        assert main(["anomaly", "calibrate", str(model), str(train)]) == 0
    assert (f"{n_train} of the {n_train + n_val} windows of the calibration recordings are windows the model was "
            "fitted on (the training recordings, or copies of them)") in caplog.text
    again = json.loads((model / "config.json").read_text())["anomaly"]
    assert again["threshold"] == pytest.approx(at_fit, rel=1e-6) and again["n_calibration_windows"] == n_val

    whole = tmp_path / "whole"  # fitted on every file: none of them can set its threshold
    assert main(["anomaly", "fit", str(train), "--out", str(whole), "-o", "data.val_fraction=0"]) == 0
    before = (whole / "config.json").read_text()
    n_all = json.loads(before)["data"]["n_train_windows"]
    assert main(["anomaly", "calibrate", str(whole), str(train)]) == 2
    err = capsys.readouterr().err
    assert f"error: {train}: every one of the {n_all} windows of the calibration recordings is one of the windows " \
           "the model was fitted on" in err and "calibrate on normal recordings the model was not fitted on" in err
    assert (whole / "config.json").read_text() == before

    copies = tmp_path / "copies"
    copies.mkdir()
    for i in range(4):
        shutil.copy(next(train.glob("*.wav")), copies / f"c{i}.wav")
    assert main(["anomaly", "fit", str(copies), "--out", str(tmp_path / "mc")]) == 2
    assert "the normal recordings are copies of one another" in capsys.readouterr().err
    assert not (tmp_path / "mc").exists()
    # every detector, not only a bank's: the PCA's and the Gaussian's thresholds were set on copies of their training
    # windows (exit 0; two normal recordings then flagged in every window)
    pca = ["--config", str(REPO / "configs" / "anomaly_pca.yaml")]
    assert main(["anomaly", "fit", str(copies), "--out", str(tmp_path / "mp"), *pca]) == 2
    assert "windows of the held-out normal files is one of the copies of training windows (the same samples under " \
           "another name)" in capsys.readouterr().err and not (tmp_path / "mp").exists()
    mixed = tmp_path / "mixed"  # copies of three recordings among recordings that differ
    shutil.copytree(train, mixed)
    for f in sorted(train.glob("*.wav"))[:3]:
        shutil.copy(f, mixed / f"copy_{f.name}")
    with caplog.at_level("WARNING"):
        assert main(["anomaly", "fit", str(mixed), "--out", str(tmp_path / "mp2"), *pca, "-o", "data.val_fraction=0.5",
                     "-o", "train.seed=1"]) == 0
    left = json.loads((tmp_path / "mp2" / "config.json").read_text())["anomaly"]["n_calibration_windows"]
    n_val = json.loads((tmp_path / "mp2" / "config.json").read_text())["data"]["n_val_windows"]
    assert re.search(rf"(\d+) of the {n_val} windows of the held-out normal files are copies of training windows",
                     caplog.text) and left < n_val, caplog.text
    from latentbridge.data.holdout import copied_windows  # windows of digital silence are alike, not copies (a gated
    silent = np.full((3, 1, 8, 5), -100.0, np.float32)  # recorder's zeros left out of a PCA's threshold as copies)
    sound = np.random.default_rng(0).normal(size=(3, 1, 8, 5)).astype(np.float32)
    assert copied_windows(np.r_[silent, sound], np.r_[silent, sound]).tolist() == [False] * 3 + [True] * 3


def test_recordings_of_more_channels_than_training_are_named_when_mixed(fitted_model, machine_data, tmp_path, caplog):
    """A model fitted on single-channel recordings scoring three-axis ones mixed them without a word (4 of 5 normal
    files flagged); it is a warning naming the mix. The same file in one channel is not named."""
    import soundfile as sf

    wave, sr = sf.read(next((machine_data / "test" / "normal").glob("*.wav")))
    d = tmp_path / "axes"
    d.mkdir()
    sf.write(d / "three.wav", np.stack([wave, 0.5 * wave, 0.25 * wave], axis=1), sr)
    sf.write(d / "one.wav", wave, sr)
    with caplog.at_level("WARNING"):
        assert main(["anomaly", "score", str(fitted_model), str(d), "--out", str(tmp_path / "s")]) == 0
    said = [r.getMessage() for r in caplog.records if "mixed down to mono" in r.getMessage()]
    assert said == ["1 file mixed down to mono (from 3 channels x1); the model was fitted on single-channel "
                    "recordings: a mix of several is not the signal it learned (fit on recordings like these, each "
                    "channel modelled: -o audio.channel=all)"], said
    # a model of stereo recordings' mix, or of their channel 1, given a four-microphone array's (INFO with -v only,
    # every normal file flagged)
    stereo, array = tmp_path / "stereo", tmp_path / "array"
    for folder, width in ((stereo, 2), (array, 4)):
        folder.mkdir()
        for f in sorted((machine_data / "train" / "normal").glob("*.wav"))[:(8 if width == 2 else 1)]:
            x, _ = sf.read(f)
            sf.write(folder / f.name, np.stack([x * (0.5 + 0.1 * k) for k in range(width)], axis=1), sr)
    for channel, what in ((None, "mixed down to mono"), ("1", "read on channel 1")):
        model = tmp_path / f"m_{channel}"
        assert main(["anomaly", "fit", str(stereo), "--out", str(model),
                     *(["-o", f"audio.channel={channel}"] if channel else [])]) == 0
        caplog.clear()
        with caplog.at_level("WARNING"):
            assert main(["anomaly", "score", str(model), str(array), "--out", str(tmp_path / f"s_{channel}")]) == 0
        said = [r.getMessage() for r in caplog.records if what in r.getMessage()]
        how = "mixed to mono" if channel is None else "read on channel 1"
        assert said == [f"1 file {what} (from 4 channels x1); the model was fitted on 2-channel recordings: 1 of "
                        f"another channel count (4 channels x1), {how}, are not the signal it learned (fit on "
                        "recordings like these)"], caplog.text
    caplog.clear()  # a single microphone's recording given to the model of a stereo pair's mix (unsaid)
    sf.write(tmp_path / "one_mic.wav", x, sr)
    with caplog.at_level("WARNING"):
        assert main(["anomaly", "score", str(tmp_path / "m_None"), str(tmp_path / "one_mic.wav"), "--out",
                     str(tmp_path / "s_mono")]) == 0
    assert "the model was fitted on 2-channel recordings: 1 of another channel count (1 channel x1) are not the " \
        "signal it learned" in caplog.text, caplog.text  # (not "mixed to mono": one channel is not mixed)


def test_a_command_that_trains_nothing_never_replaces_a_trained_run(fitted_model, machine_data, tmp_path, capsys):
    """`sample`/`evaluate`/`score --out runs/other --force` (a typo in --out) deleted that trained run, weights and
    checkpoints, without a word; refused, the run untouched, with --force or without."""
    other = tmp_path / "other"
    shutil.copytree(fitted_model, other)
    before = sorted(p.relative_to(other) for p in other.rglob("*"))
    for force in ([], ["--force"]):
        assert main(["anomaly", "score", str(fitted_model), str(machine_data / "test"), "--out", str(other),
                     *force]) == 2
        err = capsys.readouterr().err
        assert f"{other}: a trained run (its model and checkpoints)" in err and "Traceback" not in err
    assert sorted(p.relative_to(other) for p in other.rglob("*")) == before
    assert main(["evaluate", str(fitted_model), "--out", str(other), "--force"]) == 2
    assert (other / "model.safetensors").is_file()


def test_calibrating_a_trained_detector_on_its_training_recordings_is_named(fitted_model, machine_data, tmp_path,
                                                                            caplog):
    """`anomaly calibrate RUN TRAIN_DIR` of a VAE or mel autoencoder: it reconstructs the recordings it trained on
    better than new ones, and the threshold came out low without a word. The files its record names as trained on
    (not those it held out) are named; other normal recordings are not."""
    model = tmp_path / "m"
    shutil.copytree(fitted_model, model)
    record = json.loads((model / "logs" / "data_files.json").read_text())
    n_trained = len(record["files"]) - len(record["held_out"])
    assert n_trained > 0 and record["held_out"]
    with caplog.at_level("WARNING"):
        assert main(["anomaly", "calibrate", str(model), str(machine_data / "train" / "normal")]) == 0
    n_files = len(list((machine_data / "train" / "normal").glob("*.wav")))
    assert f"{n_trained} of the {n_files} calibration recordings are ones the model was trained on" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert main(["anomaly", "calibrate", str(model), str(machine_data / "test" / "normal")]) == 0
    assert "the model was trained on" not in caplog.text


def test_calibrating_on_recordings_unlike_the_training_sound_is_said(machine_data, feature_cache, tmp_path, caplog):
    """`anomaly calibrate` ran none of `score`'s checks: on recordings of a dead microphone it raised a threshold 13
    times without a word, every fault then missed. It says what `score` says of them (far quieter than every training
    recording) and that the model (the default detector) scores most of their windows above its threshold, in the model
    card too; recordings below the model's band are left out of the threshold. Normal recordings of the training sound
    get neither (none of their windows above it)."""
    import soundfile as sf

    fitted_model = tmp_path / "default"
    assert main(["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", str(fitted_model)]) == 0
    normal = machine_data / "test" / "normal"
    quiet, mixed = tmp_path / "quiet", tmp_path / "mixed"
    quiet.mkdir()
    mixed.mkdir()
    for f in sorted(normal.glob("*.wav")):
        x, sr = sf.read(f, dtype="float32")
        sf.write(quiet / f.name, x * 10 ** (-60 / 20), sr, subtype="FLOAT")  # a dead microphone's level
        shutil.copy(f, mixed / f.name)
        sf.write(mixed / f"low_{f.name}", x[::2], sr // 2, subtype="PCM_16")  # 8 kHz: the model's band is 8 kHz wide
    thresholds = {}
    for name, folder in (("normal", normal), ("quiet", quiet), ("mixed", mixed)):
        model = tmp_path / f"model_{name}"
        shutil.copytree(fitted_model, model)
        old = json.loads((model / "config.json").read_text())["anomaly"]["threshold"]
        caplog.clear()
        with caplog.at_level("WARNING"):
            assert main(["anomaly", "calibrate", str(model), str(folder)]) == 0
        anomaly = json.loads((model / "config.json").read_text())["anomaly"]
        thresholds[name] = anomaly["threshold"]
        shifted = "of the calibration windows above its threshold" in caplog.text
        assert shifted == (name == "quiet"), (name, caplog.text)
        assert ("quieter than the" in caplog.text) == (name == "quiet")
        assert ("unlike the sound it was fitted on" in anomaly.get("warning", "")) == (name == "quiet")
        if name == "quiet":
            assert anomaly["threshold"] > 3 * old and "fit a model on it" in (model / "README.md").read_text()
        left_out = f"{len(list(normal.glob('*.wav')))} of the {2 * len(list(normal.glob('*.wav')))} calibration " \
                   "recordings are left out of the threshold: recorded below the model's band"
        assert (left_out in caplog.text) == (name == "mixed"), caplog.text
    assert thresholds["mixed"] == thresholds["normal"]  # the 8-kHz copies left out
    # after a threshold set by hand, the one measured before it is the check's reference: the normal recordings are
    # not "unlike the sound it was fitted on" for being above 3.2 (it said so, in the card too); the dead microphone's
    # still are
    for name, folder in (("normal", normal), ("quiet", quiet)):
        model = tmp_path / f"hand_{name}"
        shutil.copytree(fitted_model, model)
        assert main(["anomaly", "calibrate", str(model), "--threshold", "3.2"]) == 0
        caplog.clear()
        with caplog.at_level("WARNING"):
            assert main(["anomaly", "calibrate", str(model), str(folder)]) == 0
        shifted = "unlike the sound it was fitted on" in (model / "README.md").read_text()
        said = "of the calibration windows above the threshold last measured on normal recordings ("
        assert shifted == (said in caplog.text) == (name == "quiet")
        assert (name == "normal") or "; 3.2 was set by hand since)" in caplog.text and " times that)" in caplog.text
    # the band powers calibrate computes of its read are those scoring keeps of each file
    from latentbridge.tasks.anomaly import Detector
    from latentbridge.tasks.anomaly_checks import warn_recordings
    from latentbridge.tasks.scoring import score_files

    det = Detector.load(fitted_model)
    read = det.extractor().extract(normal)
    warn_recordings(det, read, scored=False)
    scored, _ = score_files(det, sorted(normal.glob("*.wav")), num_workers=0)
    assert read.band_power.shape == (len(read.files), det.spec.features.n_mels)
    np.testing.assert_allclose(read.band_power, scored.band_power, rtol=1e-6)
    # none left once the unusable are skipped: refused, not a traceback (and not the threshold of nothing)
    low = tmp_path / "low"
    low.mkdir()
    shutil.copy(next(mixed.glob("low_*.wav")), low / "low.wav")
    (low / "broken.wav").write_bytes((normal / sorted(p.name for p in normal.glob("*.wav"))[0]).read_bytes()[:30])
    model = tmp_path / "model_low"
    shutil.copytree(fitted_model, model)
    before = (model / "config.json").read_bytes()
    assert main(["anomaly", "calibrate", str(model), str(low), "--skip-bad"]) == 2
    assert (model / "config.json").read_bytes() == before


def test_windows_of_digital_silence_are_named_after_scoring(fitted_model, machine_data, tmp_path, caplog):
    """A recording mostly of digital zeros (a muted input, gaps written as zeros) was flagged without a word, where
    `listen` names digital silence as it comes."""
    import soundfile as sf

    normal = sorted((machine_data / "test" / "normal").glob("*.wav"))[0]
    x, sr = sf.read(normal, dtype="float32")
    gap = np.zeros(len(x) * 3, np.float32)
    gap[len(x):2 * len(x)] = x  # silence, the sound, silence
    sf.write(tmp_path / "gaps.wav", gap, sr, subtype="PCM_16")
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert main(["anomaly", "score", str(fitted_model), str(normal), "--out", str(tmp_path / "a")]) == 0
    assert "digital silence" not in caplog.text
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["n_silent_windows"] == 0
    with caplog.at_level("WARNING"):
        assert main(["anomaly", "score", str(fitted_model), str(normal), str(tmp_path / "gaps.wav"), "--out",
                     str(tmp_path / "b")]) == 0
    m = re.search(r"1 of 2 recordings hold windows of digital silence \(gaps\.wav (\d+) of (\d+) windows\)", caplog.text)
    assert m, caplog.text
    n_silent, n = int(m.group(1)), int(m.group(2))
    window, hop = (json.loads((fitted_model / "config.json").read_text())["config"]["audio"][k]
                   for k in ("window_s", "hop_s"))
    duration = len(x) / sr  # each silent third holds the windows that fit in it whole
    assert n_silent == 2 * (int((duration - window) // hop) + 1), (n_silent, n)
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["n_silent_windows"] == n_silent
    assert "windows partly digital silence" in caplog.text  # the windows across each edge of the sound
    # a dropout of 0.4 s inside the sound: no window of it is silent, the windows across it were flagged without a word
    drop = x.copy()
    drop[int(1.5 * sr):int(1.9 * sr)] = 0
    sf.write(tmp_path / "drop.wav", drop, sr, subtype="PCM_16")
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert main(["anomaly", "score", str(fitted_model), str(tmp_path / "drop.wav"), "--out", str(tmp_path / "c")]) == 0
    m = re.search(r"1 of 1 recordings hold windows partly digital silence \(a tenth of their frames or more\) \(drop\.wav "
                  r"(\d+) of \d+ windows\): a dropout", caplog.text)
    assert m and int(m.group(1)) >= 1 and "windows of digital silence" not in caplog.text, caplog.text


def test_a_recording_cut_off_at_the_top_is_named(fitted_model, machine_data, tmp_path, caplog, capsys, monkeypatch):
    """A lossy codec's or another recorder's low-pass (nothing above a few kHz, the header's rate unchanged) had
    every recording flagged for that alone, without a word."""
    import soundfile as sf
    from scipy.signal import butter, sosfiltfilt

    info = json.loads((fitted_model / "config.json").read_text())
    assert len(info["data"]["band_profile_db"]["min"]) == info["config"]["features"]["n_mels"]
    normal = sorted((machine_data / "test" / "normal").glob("*.wav"))[0]
    x, sr = sf.read(normal)
    sf.write(tmp_path / "lowpassed.wav", sosfiltfilt(butter(10, 2000, fs=sr, output="sos"), x, axis=0), sr)
    caplog.clear()
    monkeypatch.setattr("latentbridge.utils.LOG_PROGRESS_S", 0.0)  # the bar at once into the captured stderr
    with caplog.at_level("WARNING"):  # the faults of the test set are changes within the band: not named
        assert main(["anomaly", "score", str(fitted_model), str(machine_data / "test"), "--out", str(tmp_path / "a")]) == 0
    assert "sound above" not in caplog.text
    assert "scoring" in capsys.readouterr().err  # a bar counts the files (silent for minutes on large archives)
    with caplog.at_level("WARNING"):
        assert main(["anomaly", "score", str(fitted_model), str(normal), str(tmp_path / "lowpassed.wav"), "--out",
                     str(tmp_path / "b")]) == 0
    text = caplog.text
    assert "1 of 2 recordings hold far less sound above" in text and "lowpassed.wav" in text, text
    edge = float(re.search(r"sound above (\d+) Hz", text).group(1))
    assert 1800 <= edge <= 4000 and "-o features.fmax=" in text


def test_scoring_keeps_each_files_band_power_not_its_features(fitted_model, machine_data):
    """Every window's features were kept until the end of scoring (1.0 GB for 20,000 clips); the band checks need
    each file's mean band power and the report's examples are read again."""
    from latentbridge.data.survey import band_profile_db, profile_of_powers
    from latentbridge.tasks.anomaly import Detector, score

    res = score(fitted_model, [machine_data / "test"], labels="auto")
    wf = res.windows
    assert wf.features.shape == (len(res.window_scores), 0)
    n_mels = json.loads((fitted_model / "config.json").read_text())["config"]["features"]["n_mels"]
    assert wf.band_power.shape == (len(wf.files), n_mels)
    det = Detector.load(fitted_model)
    full = det.extractor().extract([machine_data / "test"])
    np.testing.assert_allclose(band_profile_db(full.features, full.file_index, len(full.files), det.spec.features),
                               profile_of_powers(wf.band_power), atol=1e-6)
    assert res.examples["inputs"].shape[0] == 4 and res.examples["inputs"].shape[1:] == full.features.shape[2:]
    assert res.summary["data"] == [str(machine_data / "test")]  # which data the report is of
    assert res.examples["reconstructions"].shape == res.examples["inputs"].shape  # a VAE's: it reconstructs


def test_a_lossy_copy_is_named(fitted_model, machine_data, tmp_path, caplog):
    """Lossy copies of normal sound keep the band (no cut-off to see) and still score as unlike the training
    recordings (FSDD clips fitted as WAV: 4 % of normal clips flagged, their OGG copies 10 %, MP3 copies 61 %),
    without a word; the model now knows how its training files were stored and names the others."""
    import soundfile as sf

    info = json.loads((fitted_model / "config.json").read_text())
    assert info["data"]["codecs"] == {"PCM_16": info["data"]["n_train_files"] + info["data"]["n_val_files"]}
    assert "- Stored as: 16-bit PCM x" in (fitted_model / "README.md").read_text()
    normal = sorted((machine_data / "test" / "normal").glob("*.wav"))[:2]
    x, sr = sf.read(normal[0])
    sf.write(tmp_path / "copy.ogg", x, sr, format="OGG", subtype="VORBIS")
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert main(["anomaly", "score", str(fitted_model), *map(str, normal), "--out", str(tmp_path / "a")]) == 0
    assert "lossy" not in caplog.text
    with caplog.at_level("WARNING"):
        assert main(["anomaly", "score", str(fitted_model), *map(str, normal), str(tmp_path / "copy.ogg"),
                     "--out", str(tmp_path / "b")]) == 0
    assert ("1 of 3 recordings are stored by a lossy codec (Vorbis x1: copy.ogg) and every training recording was "
            "stored losslessly (16-bit PCM x") in caplog.text, caplog.text


def test_vibration_csvs_are_recordings(tmp_path, caplog, capsys):
    """Accelerometer CSVs (a time column, one column per axis, decimal commas) were refused by `anomaly fit`
    ("no audio files found ... saw .csv x30"); a label CSV beside audio files is still not a recording."""
    rng = np.random.default_rng(0)
    sr = 1000

    def write(path, fault, time=True):
        t = np.arange(8 * sr) / sr
        x = np.sin(2 * np.pi * rng.uniform(24.5, 25.5) * t) + 0.2 * rng.standard_normal(t.size)
        if fault:  # impacts at 87 Hz ringing at 300 Hz
            imp = np.zeros_like(t)
            imp[:: sr // 87] = 1
            x += 0.8 * np.convolve(imp, np.exp(-np.arange(40) / 6) * np.sin(2 * np.pi * 0.3 * np.arange(40)))[: t.size]
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = (["Time [ms];Acc X [m/s2];Acc Z [m/s2]"] if time else []) + [
            (f"{1000 * a:.3f};" if time else "") + f"{b:.5f};{9.81 + 0.5 * b:.5f}" for a, b in zip(t, x)]
        path.write_text("\n".join(lines).replace(".", ",") + "\n")

    for i in range(12):
        write(tmp_path / "train" / f"run{i:02d}.csv", False)
    for i in range(4):
        write(tmp_path / "test" / "normal" / f"n{i}.csv", False)
        write(tmp_path / "test" / "anomalous" / f"a{i}.csv", True)
    from latentbridge.io import list_audio_files, read_audio

    wave, rate = read_audio(tmp_path / "train" / "run00.csv", mono=False)
    assert rate == 1000 and wave.shape == (2, 8000)
    assert np.abs(wave.mean(axis=1)).max() < 1e-4 and 0.5 < wave[0].std() < 1.0  # gravity (9.81) taken out
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert main(["anomaly", "fit", str(tmp_path / "train"), "--out", str(tmp_path / "m")]) == 0
    printed = capsys.readouterr().out
    assert "audio.sample_rate = 1000  (all 12 files at 1000 Hz)" in printed
    assert "audio.channel = all  (vibration recordings of 2 axes: each axis modelled beside the others" in printed
    assert "averaged into one signal" not in caplog.text
    with caplog.at_level("WARNING"):  # the axes mixed by choice: what that costs is named
        assert main(["anomaly", "fit", str(tmp_path / "train"), "--out", str(tmp_path / "m_mix"),
                     "-o", "audio.channel=null"]) == 0
    assert ("vibration recordings of up to 2 axes are averaged into one signal (2 channels x12): a fault that shows on "
            "one axis is diluted by the others' vibration; -o audio.channel=K models axis K alone") in caplog.text
    assert main(["anomaly", "score", str(tmp_path / "m"), str(tmp_path / "test"), "--labels", "auto",
                 "--out", str(tmp_path / "s")]) == 0
    m = json.loads((tmp_path / "s" / "metrics.json").read_text())
    assert (m["n_normal"], m["n_anomalous"]) == (4, 4) and m["auc"] == 1.0
    # the same recordings without their time column, scored by that model: their rate is given at scoring
    for f in (tmp_path / "test").rglob("*.csv"):  # the time column and its header cut off
        cut = tmp_path / "test_nt" / f.relative_to(tmp_path / "test")
        cut.parent.mkdir(parents=True, exist_ok=True)
        cut.write_text("".join(line.split(";", 1)[1] for line in f.read_text().splitlines(True)[1:]))
    capsys.readouterr()
    assert main(["anomaly", "score", str(tmp_path / "m"), str(tmp_path / "test_nt"), "--labels", "auto",
                 "--out", str(tmp_path / "s_nt")]) == 2
    err = capsys.readouterr().err
    assert "a0.csv" in err and err.count(": a CSV recording without a time column") == 1  # said once for all
    assert "--sample-rate HZ at anomaly score" in err
    assert "Traceback" not in err and not (tmp_path / "s_nt").exists()
    assert main(["anomaly", "score", str(tmp_path / "m"), str(tmp_path / "test_nt"), "--labels", "auto",
                 "--out", str(tmp_path / "s_nt"), "--sample-rate", "0"]) == 2
    assert "--sample-rate must be a positive number of Hz" in capsys.readouterr().err
    # resampling to it ran without end (SIGTERM did not stop it)
    assert main(["anomaly", "score", str(tmp_path / "m"), str(tmp_path / "test_nt"), "--labels", "auto",
                 "--out", str(tmp_path / "s_nt"), "--sample-rate", "1e13"]) == 2
    assert "up to 1e+08 (the rate of" in capsys.readouterr().err
    assert main(["anomaly", "score", str(tmp_path / "m"), str(tmp_path / "test_nt"), "--labels", "auto",
                 "--out", str(tmp_path / "s_nt"), "--sample-rate", "1000"]) == 0
    m_nt = json.loads((tmp_path / "s_nt" / "metrics.json").read_text())
    assert m_nt["auc"] == 1.0 and m_nt["n_windows"] == m["n_windows"]
    timed = np.loadtxt(tmp_path / "s" / "scores.csv", delimiter=",", skiprows=1, usecols=3)
    untimed = np.loadtxt(tmp_path / "s_nt" / "scores.csv", delimiter=",", skiprows=1, usecols=3)
    np.testing.assert_allclose(untimed, timed, rtol=1e-4)  # the same samples at the same rate, the same scores
    assert main(["evaluate", str(tmp_path / "m"), "--data", str(tmp_path / "test_nt"), "--out",
                 str(tmp_path / "e_nt"), "--sample-rate", "1000"]) == 0
    assert json.loads((tmp_path / "e_nt" / "metrics.json").read_text())["auc"] == 1.0
    assert main(["anomaly", "calibrate", str(tmp_path / "m"), str(tmp_path / "test_nt" / "normal"),
                 "--sample-rate", "1000"]) == 0
    assert "(8 files" not in capsys.readouterr().out  # calibrated on the 4 normal recordings read at 1 kHz
    assert json.loads((tmp_path / "m" / "config.json").read_text())["anomaly"]["calibrated_on"].startswith("4 files")
    # without a time column the rate must be given, and is then used
    for i in range(12):
        write(tmp_path / "notime" / f"run{i:02d}.csv", False, time=False)
    assert main(["anomaly", "fit", str(tmp_path / "notime"), "--out", str(tmp_path / "m2")]) == 2
    err = capsys.readouterr().err
    assert "run02.csv and 9 more: a CSV recording without a time column" in err and "-o audio.csv_rate=HZ" in err
    assert err.count("without a time column") == 1  # said once for all (it was said once per file)
    assert not (tmp_path / "m2").exists()
    assert main(["anomaly", "fit", str(tmp_path / "notime"), "--out", str(tmp_path / "m2"),
                 "-o", "audio.csv_rate=1000"]) == 0
    info = json.loads((tmp_path / "m2" / "config.json").read_text())
    assert info["config"]["audio"]["sample_rate"] == 1000 and info["config"]["audio"]["csv_rate"] == 1000
    assert info["data"]["codecs"] == {"CSV": 12}
    # the server scores such an upload at the model's CSV rate
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from latentbridge.serve.app import create_app
    from latentbridge.serve.registry import load_models

    write(tmp_path / "up" / "fault.csv", True, time=False)
    with TestClient(create_app(load_models([tmp_path / "m2"]))) as c:
        r = c.post("/api/models/m2/score", files={"file": ("fault.csv", (tmp_path / "up" / "fault.csv").read_bytes())})
    assert r.status_code == 200, r.text
    assert r.json()["n_windows"] == 7 and r.json()["is_anomaly"] is True and r.json()["warnings"] == []
    # a model fitted on timed CSVs: the rate of a rate-less upload is a form field, as at the command line
    bare = (tmp_path / "test_nt" / "anomalous" / "a0.csv").read_bytes()
    with TestClient(create_app(load_models([tmp_path / "m"]))) as c:
        r = c.post("/api/models/m/score", files={"file": ("a0.csv", bare)})
        assert r.status_code == 422 and "sample_rate in a /score request" in r.json()["detail"], r.text
        r = c.post("/api/models/m/score", files={"file": ("a0.csv", bare)}, data={"sample_rate": "1000"})
    assert r.status_code == 200 and r.json()["is_anomaly"] is True, r.text
    # a label CSV beside audio files is not a recording
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "a.wav").write_bytes(b"")
    (tmp_path / "mixed" / "labels.csv").write_text("path,label\na.wav,normal\n")
    assert [p.name for p in list_audio_files(tmp_path / "mixed")] == ["a.wav"]


def test_export_parity_and_edge_scorer_without_torch(fitted_model, machine_data, tmp_path, capsys):
    onnx_path = tmp_path / "model.onnx"
    assert main(["export", str(fitted_model), "--format", "onnx", "--out", str(onnx_path)]) == 0
    printed = capsys.readouterr().out
    assert "max abs difference vs PyTorch" in printed
    diff = float(printed.split("PyTorch: ")[1].split()[0])
    assert diff < 1e-3
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    info = json.loads(meta["latentbridge"])
    thr = json.loads((fitted_model / "config.json").read_text())["anomaly"]["threshold"]
    assert info["threshold"] == pytest.approx(thr) and info["transform"]["features"]["n_fft"] == 1024
    assert info["transform"]["features"]["sample_rate"] == 16000 and info["transform"]["windowing"]["window_s"] == 2.0

    # the edge scorer runs with torch and librosa made unimportable, and agrees with `anomaly score`
    wav = sorted((machine_data / "test" / "anomalous").glob("*.wav"))[0]
    code = ("import sys; sys.modules['torch'] = None; sys.modules['librosa'] = None; "
            "from latentbridge.edge import main; raise SystemExit(main(sys.argv[1:]))")
    res = subprocess.run([sys.executable, "-c", code, str(onnx_path), str(wav)], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    edge = [line.split("\t") for line in res.stdout.strip().splitlines() if not line.startswith("# threshold ")]
    out = tmp_path / "s"
    assert main(["anomaly", "score", str(fitted_model), str(wav), "--out", str(out)]) == 0
    ref = [float(r["score"]) for r in _rows(out / "scores.csv") if r["level"] == "window"]
    got = [float(e[2]) for e in edge if e[1] != "file"]
    np.testing.assert_allclose(got, ref, rtol=1e-3)


def test_listen_replays_a_file_and_logs_events(fitted_model, machine_data, tmp_path, capsys):
    wav = sorted((machine_data / "test" / "normal").glob("*.wav"))[0]
    events = tmp_path / "events.sqlite"
    assert main(["anomaly", "listen", str(fitted_model), "--source", str(wav), "--events", str(events)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if " s  score " in line]
    assert len(lines) == 3  # 4-s recording, 2-s windows, 1-s hop
    import sqlite3

    with sqlite3.connect(events) as db:
        rows = db.execute("select start_s, end_s, score, is_anomaly from events order by start_s").fetchall()
    assert [r[0] for r in rows] == [0.0, 1.0, 2.0]
    scored = tmp_path / "s"
    assert main(["anomaly", "score", str(fitted_model), str(wav), "--out", str(scored)]) == 0
    ref = [float(r["score"]) for r in _rows(scored / "scores.csv") if r["level"] == "window"]
    np.testing.assert_allclose([r[2] for r in rows], ref, rtol=1e-4)


@pytest.mark.audio
def test_listen_on_a_virtual_microphone(fitted_model, machine_data, virtual_microphone, tmp_path):
    """A real input device: PulseAudio's null-sink monitor, fed by paplay, read through sounddevice."""
    import threading

    from latentbridge.tasks.listen import listen_model

    normal = sorted((machine_data / "test" / "normal").glob("*.wav"))[0]
    events = tmp_path / "live.csv"
    import io

    buf = io.StringIO()
    timer = threading.Timer(0.5, virtual_microphone.play, args=(normal,))
    timer.start()
    try:
        summary = listen_model(fitted_model, duration_s=5.0, events=str(events), out=buf)
    finally:
        timer.cancel()
    assert summary["n_windows"] >= 2
    assert isinstance(summary["overflows"], int)
    rows = _rows(events)
    assert len(rows) == summary["n_windows"]
    assert all(np.isfinite(float(r["score"])) for r in rows)
    assert "overflows" in buf.getvalue()


def test_resume_continues_training(machine_data, feature_cache, tmp_path):
    out = tmp_path / "run"
    base = ["train", "--config", str(REPO / "configs" / "anomaly_ae.yaml"), "--out", str(out),
            "-o", f"data.train_dir={machine_data / 'train' / 'normal'}"]
    assert main(base + _overrides(["train.max_epochs=1"])) == 0
    import torch

    first = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    # without --resume or --force an existing run is not overwritten
    assert main(base + _overrides(["train.max_epochs=2"])) == 2
    assert main(base + _overrides(["train.max_epochs=2"]) + ["--resume"]) == 0
    second = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert second["global_step"] == 2 * first["global_step"]  # one more epoch of the same size
    # the first session's logs are kept beside the resumed session's
    assert (out / "logs" / "csv" / "version_0" / "metrics.csv").exists()
    assert (out / "logs" / "csv" / "version_1" / "metrics.csv").exists()
    assert (out / "model.safetensors").exists()


def test_ddp_on_cpu_with_two_processes(machine_data, feature_cache, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "latentbridge", "anomaly", "fit", str(machine_data / "train" / "normal"),
           "--out", str(out), "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp",
           *_overrides(["train.max_epochs=2"])]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "model →" in res.stdout
    ckpt = __import__("torch").load(out / "checkpoints" / "last.ckpt", weights_only=True)
    hp = ckpt["hyper_parameters"]["train"]
    assert hp["devices"] == 2 and hp["strategy"] == "ddp"
    assert (out / "model.safetensors").exists()
    # the extra process runs the command again: what it would say, the first one says (each line was said twice)
    said = [line for line in res.stderr.splitlines() if line.startswith("WARNING latentbridge")]
    assert said and len(said) == len(set(said)), res.stderr
    assert "sync_dist=True" not in res.stderr  # (Lightning's advice to this code's authors, printed to users)
    metrics = (next((out / "logs" / "csv").glob("version_*")) / "metrics.csv").read_text().splitlines()[0]
    assert "train/loss_epoch" in metrics


def test_ddp_scoring_gathers_one_scores_csv(fitted_model, machine_data, tmp_path):
    """Two processes score their shares of the files; the first gathers: the same scores.csv as one process, and
    the same warnings (a low-passed recording's band was named by one process only: the features were gone)."""
    import soundfile as sf
    from scipy.signal import butter, sosfiltfilt

    one, two, test = tmp_path / "one", tmp_path / "two", tmp_path / "test"
    shutil.copytree(machine_data / "test", test)
    x, sr = sf.read(sorted((test / "normal").glob("*.wav"))[0])
    sf.write(test / "normal" / "lowpassed.wav", sosfiltfilt(butter(10, 2000, fs=sr, output="sos"), x, axis=0), sr)
    cmd = [sys.executable, "-m", "latentbridge", "anomaly", "score", str(fitted_model), str(test),
           "--labels", "auto", "--out", str(two), "--devices", "2", "--strategy", "ddp", "--accelerator", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    # (meanwhile) one process
    assert main(["anomaly", "score", str(fitted_model), str(test), "--labels", "auto",
                 "--out", str(one), "--workers", "0"]) == 0
    err = proc.communicate(timeout=400)[1]
    assert proc.returncode == 0, err[-3000:]
    # Lightning's INFO lines (its import turns them on after the CLI chose its verbosity) and its advice
    # about batch indices stay out of a command's output unless -v
    noise = [line for line in err.splitlines() if line.startswith("INFO") or "GPU available" in line
             or "batch indices" in line or "litlogger" in line]
    assert not noise, err[-3000:]
    assert "1 of " in err and "sound above" in err and "lowpassed.wav" in err, err[-3000:]
    # the same rows; scores equal up to float rounding (other batches, other summation order: the last
    # printed digit may differ on some CPUs)
    a, b = (sorted(_rows(d / "scores.csv"), key=lambda r: (r["path"], r["start_s"], r["level"])) for d in (one, two))
    assert [{**r, "score": None} for r in a] == [{**r, "score": None} for r in b]
    np.testing.assert_allclose([float(r["score"]) for r in a], [float(r["score"]) for r in b], rtol=1e-4)
    auc = [json.loads((d / "metrics.json").read_text())["auc"] for d in (one, two)]
    assert auc[0] == pytest.approx(auc[1], abs=1e-9)
    assert (two / "examples.png").exists()  # example windows are read again in the gathering process


@pytest.mark.skipif(not FSDD.exists(), reason="FSDD not available at ../shared/data/fsdd")
def test_real_speech_one_speaker_normal_another_anomalous(feature_cache, tmp_path):
    """Free Spoken Digit Dataset: george is normal, jackson anomalous."""
    train = tmp_path / "train"
    test = tmp_path / "test"
    for d in (train, test / "normal", test / "anomalous"):
        d.mkdir(parents=True)
    for digit in range(10):
        for idx in range(5, 25):
            (train / f"{digit}_george_{idx}.wav").symlink_to(FSDD / f"{digit}_george_{idx}.wav")
        for idx in range(0, 3):
            (test / "normal" / f"{digit}_george_{idx}.wav").symlink_to(FSDD / f"{digit}_george_{idx}.wav")
            (test / "anomalous" / f"{digit}_jackson_{idx}.wav").symlink_to(FSDD / f"{digit}_jackson_{idx}.wav")
    model = tmp_path / "model"
    speech = ["model.name=conv_vae", "audio.sample_rate=8000", "audio.window_s=0.5", "audio.hop_s=0.25", "features.n_fft=256",
              "features.hop_length=64", "features.n_mels=40", "train.max_epochs=15", "model.channels=[16,32,32]",
              "model.latent_dim=8", "train.progress_bar=false", "beta.warmup_steps=50"]
    args = ["anomaly", "fit", str(train), "--out", str(model)]
    for o in speech:
        args += ["-o", o]
    assert main(args) == 0
    out = tmp_path / "report"
    assert main(["anomaly", "score", str(model), str(test), "--labels", "auto", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert (m["n_normal"], m["n_anomalous"]) == (30, 30)
    assert m["auc"] > 0.8, m


def test_score_with_another_of_the_models_scores(fitted_model, machine_data, tmp_path, capsys):
    """Every deterministic score is calibrated at fit time: ``--score`` uses one without refitting, and
    ``calibrate --score`` makes one the model's score."""
    import shutil

    import torch

    from latentbridge.tasks.anomaly import Detector

    info = json.loads((fitted_model / "config.json").read_text())["anomaly"]
    assert set(info["thresholds"]) == {"mse", "frame_max", "latent_mahalanobis", "latent_knn", "combined"}
    assert info["thresholds"]["mse"] == info["threshold"] and info["score"] == "mse"
    out = tmp_path / "knn"
    assert main(["anomaly", "score", str(fitted_model), str(machine_data / "test"), "--labels", "auto",
                 "--score", "latent_knn", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["score"] == "latent_knn" and m["threshold"] == info["thresholds"]["latent_knn"]
    det = Detector.load(fitted_model)
    wf = det.extractor().extract([machine_data / "test"])
    with torch.no_grad():
        want = det.model.score(torch.from_numpy(wf.features), "latent_knn").numpy()
    got = [float(r["score"]) for r in _rows(out / "scores.csv") if r["level"] == "window"]
    np.testing.assert_allclose(got, want, rtol=1e-4)
    # a score the model does not offer, or one never calibrated: one line, exit 2
    capsys.readouterr()
    assert main(["anomaly", "score", str(fitted_model), str(machine_data / "test"), "--score", "aux",
                 "--out", str(tmp_path / "x")]) == 2
    assert "offers the scores" in capsys.readouterr().err
    # calibrate --score: the model's score from then on, its threshold from the normal files given
    model = tmp_path / "model"
    shutil.copytree(fitted_model, model)
    old = Detector.load(model)
    capsys.readouterr()
    assert main(["anomaly", "calibrate", str(model), str(machine_data / "train" / "normal"),
                 "--score", "combined"]) == 0
    new = json.loads((model / "config.json").read_text())["anomaly"]
    assert new["score"] == "combined" and new["threshold"] == new["thresholds"]["combined"]
    # the two thresholds named by their scores (it read as one threshold moving)
    assert f"threshold {old.threshold:.6g} of {old.method} → {new['threshold']:.6g} of combined" in \
        capsys.readouterr().out
    assert Detector.load(model).method == "combined"


def test_full_band_training_and_recordings_resampled_down_are_named(tmp_path, caplog):
    """A model fitted on sound that fills the band up to its Nyquist frequency (synthetic or full-band sound) flagged
    every normal recording made at a higher rate, without a word: resampling down removes the top of the band.
    Training sound band-limited as real recorders make it scores such recordings as normal, and nothing is named."""
    import soundfile as sf

    from latentbridge.io import resample

    rng = np.random.default_rng(0)

    def write(folder, n, sr, band_limited):
        folder.mkdir(parents=True)
        for i in range(n):
            made = 48000 if band_limited else sr  # made at another rate and resampled, as a recorder's filter would
            t = np.arange(2 * made) / made
            x = 10 ** (rng.uniform(-3, 3) / 20) * (0.1 * rng.standard_normal(t.size) + 0.2 * np.sin(2 * np.pi * 700 * t))
            sf.write(folder / f"f{i}.wav", resample(x, made, sr) if made != sr else x.astype(np.float32), sr)

    for kind, limited in (("full", False), ("limited", True)):
        write(tmp_path / kind / "train", 16, 16000, limited)
        write(tmp_path / kind / "at22k", 4, 22050, limited)
        assert main(["anomaly", "fit", str(tmp_path / kind / "train"), "--out", str(tmp_path / kind / "m")]) == 0
        caplog.clear()
        with caplog.at_level("WARNING"):
            assert main(["anomaly", "score", str(tmp_path / kind / "m"), str(tmp_path / kind / "at22k"), "--out",
                         str(tmp_path / kind / "s")]) == 0
        flagged = json.loads((tmp_path / kind / "s" / "summary.json").read_text())["n_files_flagged"]
        if limited:
            assert flagged == 0 and "resampled down" not in caplog.text
        else:
            assert flagged == 4  # what the warning is for
            assert ("4 of 4 recordings resampled down to the model's 16000 Hz (from 22050 Hz; f0.wav, f1.wav, f2.wav, "
                    "...) hold less sound in the top band than every training recording") in caplog.text
            assert "resampling removes what lies above 7600 Hz" in caplog.text and "features.fmax=7400" in caplog.text


def test_an_interrupted_distributed_score_s_exchange_folder_is_removed_by_the_next(tmp_path, monkeypatch):
    """Lightning ends an interrupted DDP run with SIGKILL: its exchange folder was left in the temporary folder. The
    next distributed score removes the folders of first processes that are gone, and no other's."""
    import subprocess
    import sys
    import tempfile

    from latentbridge.tasks.scoring import _remove_orphans

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = tmp_path / f"latentbridge-score-{gone.pid}-abc123"
    live = tmp_path / f"latentbridge-score-{os.getpid()}-def456"
    other = tmp_path / "latentbridge-score-xyz"  # no PID in its name: not touched
    for d in (dead, live, other):
        d.mkdir()
    _remove_orphans()
    assert not dead.exists() and live.exists() and other.exists()


def test_a_file_name_that_is_not_utf8_is_scored_and_written(fitted_model, machine_data, tmp_path):
    """A name whose bytes are not UTF-8 (an old archive, another system's encoding): soundfile refused the file as
    "unreadable", and writing its name into scores.csv or a run's README stopped the command at its last step."""
    folder = tmp_path / "odd"
    folder.mkdir()
    normal = sorted((machine_data / "test" / "normal").glob("*.wav"))[0]
    shutil.copy(normal, folder / os.fsdecode(b"bad\xff\xfe.wav"))
    shutil.copy(normal, folder / "fine.wav")
    assert main(["anomaly", "score", str(fitted_model), str(folder), "--out", str(tmp_path / "o")]) == 0
    rows = _rows(tmp_path / "o" / "scores.csv")  # valid UTF-8, the odd bytes escaped
    scores = {Path(r["path"]).name: r["score"] for r in rows if r["level"] != "window"}
    assert set(scores) == {"bad\\udcff\\udcfe.wav", "fine.wav"} and len(set(scores.values())) == 1
    # the report's figures draw the name escaped too (the font renderer refused it: a TypeError at the last step)
    assert (tmp_path / "o" / "examples.png").is_file() and (tmp_path / "o" / "report.html").is_file()


def test_calibrate_takes_its_normal_folders_before_or_after_the_options(fitted_model, machine_data, tmp_path, capsys):
    """``anomaly calibrate RUN --method quantile --false-alarm-rate 0.01 NORMAL_DIR`` said "unrecognized arguments:
    NORMAL_DIR" (exit 2): a positional that may be left out (the normal folders) took nothing when options came
    between it and the model folder. Either order now, as ``anomaly score`` takes its folders."""
    from latentbridge.cli import build_parser

    normal, options = str(machine_data / "test" / "normal"), ["--method", "quantile", "--false-alarm-rate", "0.05"]
    thresholds = []
    for i, argv in enumerate(([*options, normal], [normal, *options], options[:2] + [normal] + options[2:])):
        model = tmp_path / f"model{i}"
        shutil.copytree(fitted_model, model)
        assert main(["anomaly", "calibrate", str(model), *argv]) == 0, capsys.readouterr().err
        assert f"{model / 'config.json'} rewritten" in capsys.readouterr().out
        new = json.loads((model / "config.json").read_text())["anomaly"]
        assert new["method"] == "quantile" and new["false_alarm_rate"] == 0.05 and new["calibrated_on"].endswith(normal)
        thresholds.append(new["threshold"])
    assert thresholds[0] == thresholds[1] == thresholds[2]
    # the parser alone: several folders after the options, a folder named like an option after --, none at all
    parse = build_parser().parse_args
    assert parse(["anomaly", "calibrate", "m", "--k", "2", "a", "b"]).normal_paths == ["a", "b"]
    assert parse(["anomaly", "calibrate", "m", "--k", "2", "--", "-6_dB_pump"]).normal_paths == ["-6_dB_pump"]
    assert parse(["anomaly", "calibrate", "m", "--threshold", "1"]).normal_paths == []
    # an empty word (`--config ""`, `--labels ""`, a path "") was read as the folder "." ("is a folder")
    for words, named in ((["config", "--config", ""], "--config"),
                         (["anomaly", "score", "m", "", "--out", "o"], "paths"),
                         (["anomaly", "score", "m", "x", "--out", "o", "--labels", " "], "--labels")):
        with pytest.raises(SystemExit) as e:
            parse(words)
        assert e.value.code == 2 and f"argument {named}: an empty value" in capsys.readouterr().err
    # values that read as negative numbers (`--threshold -inf` was "expected one argument"), an option still one
    for value in ("-inf", "-NaN", "-1e400", "-2.5E-3", "-.5", "-7"):
        assert str(parse(["anomaly", "calibrate", "m", "--threshold", value]).threshold) == str(float(value))
    assert parse(["anomaly", "calibrate", "m", "--threshold", "-1", "--k", "2"]).k == 2
    with pytest.raises(SystemExit) as e:  # a word after the options that nothing takes is still refused
        parse(["anomaly", "calibrate", "m", "a", "--k", "2", "b"])
    assert e.value.code == 2 and "unrecognized arguments: b" in capsys.readouterr().err


def test_calibrate_keeps_the_rule_it_is_given_and_refuses_another_methods_setting(fitted_model, machine_data, tmp_path,
                                                                                  capsys):
    """`calibrate --false-alarm-rate 0.3` set mean + 2σ and dropped the rate without a word (--k with quantile alike),
    and a calibration with no option after `--method quantile` went back to mean + kσ. A rate alone is a quantile, --k
    alone mean + k·σ, another method's setting is refused, and the model's last rule is kept."""
    model, normal = tmp_path / "m", str(machine_data / "test" / "normal")
    shutil.copytree(fitted_model, model)

    def rule():
        a = json.loads((model / "config.json").read_text())["anomaly"]
        return a["method"], a.get("k"), a.get("false_alarm_rate")

    assert main(["anomaly", "calibrate", str(model), normal, "--false-alarm-rate", "0.3"]) == 0
    assert rule() == ("quantile", None, 0.3)
    assert main(["anomaly", "calibrate", str(model), normal]) == 0
    assert rule() == ("quantile", None, 0.3)  # the model's rule, not the config's mean + 2σ
    assert main(["anomaly", "calibrate", str(model), normal, "--k", "3"]) == 0
    assert rule() == ("mean_std", 3.0, None)
    assert main(["anomaly", "calibrate", str(model), normal]) == 0 and rule() == ("mean_std", 3.0, None)
    capsys.readouterr()
    before = (model / "config.json").read_text()
    for argv, word in ((["--method", "mean_std", "--false-alarm-rate", "0.1"], "--false-alarm-rate is not a setting "
                        "of --method mean_std"), (["--method", "quantile", "--k", "3"], "--k is not a setting of "
                        "--method quantile")):
        assert main(["anomaly", "calibrate", str(model), normal, *argv]) == 2
        assert word in capsys.readouterr().err
    assert main(["anomaly", "calibrate", str(model), "--threshold", "5", "--k", "2"]) == 2
    assert "--threshold sets the threshold as given" in capsys.readouterr().err
    assert (model / "config.json").read_text() == before


def test_the_python_api_reads_what_a_notebook_hands_it(fitted_model, machine_data, tmp_path):
    """What a researcher calls from Python: integer PCM windows (int16 was scored as values 32,768 times too large:
    every normal window flagged), windows of another length or channel count given to window_features (scored as the
    model's own), an empty list of recordings (a TypeError deep in the scoring), an aggregate that is neither mean nor
    max (the mean, named as given), a threshold as a string (numpy's TypeError); and a fit leaves the caller's random
    generators and environment as they were (reset to seed 0's)."""
    import random

    import torch

    from latentbridge.config import load_config
    from latentbridge.errors import LatentbridgeError
    from latentbridge.io import cut_windows, read_audio
    from latentbridge.tasks import anomaly

    det = anomaly.Detector.load(fitted_model)
    wave, _ = read_audio(sorted((machine_data / "test" / "normal").glob("*.wav"))[0], sample_rate=det.sample_rate)
    w, _ = cut_windows(wave, det.spec.window_samples, det.spec.window_samples // 2)
    floats, _ = det.score_windows(w[:3])
    pcm, flagged = det.score_windows(np.round(w[:3] * 32767).astype(np.int16))
    np.testing.assert_allclose(pcm, floats, rtol=1e-3)
    for bad, words in ((w[:3, : w.shape[1] // 2], "windows of shape (n, "), (w[0], "windows of shape (n, "),
                       (w[:3, None].repeat(2, axis=1), "windows of 2 channel(s)"), (w[:3] > 0, "bool samples")):
        with pytest.raises(ValueError, match=re.escape(words)):
            det.window_features(bad)
    with pytest.raises(LatentbridgeError, match="no recordings given"):
        anomaly.score(fitted_model, [])
    with pytest.raises(LatentbridgeError, match="aggregate: 'mean' or 'max', got 'Max'"):
        anomaly.score(fitted_model, [machine_data / "test"], aggregate="Max")
    copy = tmp_path / "m"
    shutil.copytree(fitted_model, copy)
    assert anomaly.calibrate(copy, threshold="5").threshold == 5.0
    with pytest.raises(LatentbridgeError, match="--threshold must be a number, got 'x'"):
        anomaly.calibrate(copy, threshold="x")
    np.random.seed(123)
    random.seed(123)
    torch_state = torch.get_rng_state()
    before = (np.random.get_state()[1].copy(), random.getstate(), os.environ.get("PL_GLOBAL_SEED"))
    anomaly.fit(load_config(None, [f"data.train_dir={machine_data / 'train' / 'normal'}", "data.val_fraction=0.25"]),
                tmp_path / "fitted", force=True)
    assert (np.random.get_state()[1] == before[0]).all() and random.getstate() == before[1]
    assert os.environ.get("PL_GLOBAL_SEED") == before[2] and torch.equal(torch.get_rng_state(), torch_state)


def test_a_recording_ending_in_a_few_digital_zeros_scores_as_itself(machine_data, feature_cache, tmp_path):
    """A recorder's zero-filled last buffer (43 ms, or a codec's padding: IMA ADPCM's) under 1 % of the samples: the
    offset taken out of every sample turned the zeros into a constant, no longer digital silence, and the cut to it
    scored the last window at 152 against a threshold of 15 (the file flagged). The default detector's."""
    import soundfile as sf

    fitted_model = tmp_path / "m"
    assert main(["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", str(fitted_model)]) == 0
    x, sr = sf.read(sorted((machine_data / "test" / "normal").glob("*.wav"))[0])
    x = np.tile(x, 4) + 0.01  # a recorder's small bias, taken out; the zeros under 1 % of the samples
    (tmp_path / "d").mkdir()
    sf.write(tmp_path / "d" / "a.wav", x, sr, subtype="PCM_16")
    sf.write(tmp_path / "d" / "a_zeros.wav", np.r_[x, np.zeros(int(0.043 * sr))], sr, subtype="PCM_16")
    assert main(["anomaly", "score", str(fitted_model), str(tmp_path / "d"), "--out", str(tmp_path / "s")]) == 0
    rows = [r for r in csv.DictReader(open(tmp_path / "s" / "scores.csv"))]
    files = {Path(r["path"]).name: float(r["score"]) for r in rows if r["level"] != "window"}
    windows = [float(r["score"]) for r in rows if r["level"] == "window"]
    threshold = json.loads((fitted_model / "config.json").read_text())["anomaly"]["threshold"]
    assert abs(files["a_zeros.wav"] - files["a.wav"]) < 0.05 * files["a.wav"], files
    assert max(windows) < 2 * threshold, (max(windows), threshold)
