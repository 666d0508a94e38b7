"""The statistics detectors' scores of recordings shorter than a window: calibrated by the share of the window the
recording fills (models.detectors.GaussianStatsDetector.length_factor), in scoring, the ONNX export and the edge
scorer alike."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from latentbridge.cli import main
from latentbridge.models.detectors import LENGTH_GRID, GaussianStatsDetector, KNNStatsDetector


@pytest.fixture(scope="module")
def machine_cut(tmp_path_factory):
    """The built-in machine set (4-s recordings: 2-s windows) and its test recordings cut to 1 s."""
    from latentbridge.data.synth.machine import synth_machine

    root = tmp_path_factory.mktemp("cut")
    synth_machine(root / "data", seed=3, duration_s=4.0, n_train=20, n_test_normal=12, n_test_anomalous=12)
    for cls in ("normal", "anomalous"):
        (root / "cut" / cls).mkdir(parents=True)
        for f in sorted((root / "data" / "test" / cls).glob("*.wav")):
            x, sr = sf.read(f)
            sf.write(root / "cut" / cls / f.name, x[int(1.3 * sr):int(2.3 * sr)], sr)
    return root


def test_normal_recordings_half_a_window_long_score_as_normal(machine_cut, tmp_path, capsys, caplog):
    from latentbridge.tasks.anomaly import Detector

    assert main(["anomaly", "fit", str(machine_cut / "data" / "train" / "normal"), "--out", str(tmp_path / "m"),
                 "-o", f"data.cache_dir={tmp_path / 'cache'}"]) == 0
    # long recordings, the statistics detector: silence pads the short one, for the calibration to see its length
    assert "audio.pad = constant  (long recordings, the rare short one padded with silence" in capsys.readouterr().out
    det = Detector.load(tmp_path / "m")
    table = det.model.params["length_scale"]["knn"]
    assert table[-1] == 1.0 and table[0] > 2.0 and all(a >= b for a, b in zip(table, table[1:]))
    card = (tmp_path / "m" / "README.md").read_text()  # the model card says so
    assert f"padded (constant), their scores divided by {table[4]:.3g} where they fill half a window" in card
    files = sorted((machine_cut / "cut").glob("*/*.wav"))
    anomalous = np.array(["anomalous" in str(f) for f in files])
    wf = det.extractor(use_cache=False).extract(files)
    scores = det.score_features(wf.features)
    # normal 1-s clips scored by a 2-s window's threshold: 2 of 12 flagged, 9 of 12 faults (12 and 12 uncalibrated)
    assert (scores[~anomalous] > det.threshold).sum() <= 2
    assert (scores[anomalous] > det.threshold).sum() >= 7
    det.model.length_table.fill_(1.0)  # as a model folder written before the calibration scores them
    assert (det.score_features(wf.features)[~anomalous] > det.threshold).sum() >= 10
    # `anomaly score` says nothing of the padding it calibrated for, and the edge scorer reads the same scores
    caplog.clear()
    short = files[-1]
    assert main(["anomaly", "score", str(tmp_path / "m"), str(short), "--out", str(tmp_path / "s")]) == 0
    assert "the model was fitted on none" not in caplog.text
    rows = list(csv.DictReader(open(tmp_path / "s" / "scores.csv")))
    assert main(["export", str(tmp_path / "m"), "--out", str(tmp_path / "m.onnx")]) == 0
    res = subprocess.run([sys.executable, "-m", "latentbridge.edge", str(tmp_path / "m.onnx"), str(short)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    edge = [float(line.split("\t")[2]) for line in res.stdout.splitlines()[1:] if "\tfile\t" not in line]
    np.testing.assert_allclose(edge, [float(r["score"]) for r in rows if r["level"] == "window"], rtol=1e-3)


@pytest.mark.parametrize("cls", [GaussianStatsDetector, KNNStatsDetector])
def test_the_length_table_is_measured_on_cut_training_windows(cls):
    rng = np.random.default_rng(0)
    spectrum = np.linspace(-20, -60, 32)[None, :, None]
    x = (spectrum + 3 * rng.normal(size=(300, 1, 32, 40))).astype(np.float32)
    det = cls((1, 32, 40))
    assert torch.equal(det.length_factor(torch.from_numpy(x[:5])), torch.ones(5, len(det.score_methods)))
    det.fit_closed_form(x)
    table = det.length_table.numpy()
    assert np.all(table >= 1.0) and np.all(np.diff(table, axis=1) <= 0) and np.allclose(table[:, -1], 1.0)
    assert np.all(table[:, 0] > 1.5)  # four frames' statistics against forty's
    # a window whose last half is silence takes the factor of the share 0.5; a whole one, 1
    half = x[:4].copy()
    half[..., 20:] = -120.0
    factor = det.length_factor(torch.from_numpy(half))
    np.testing.assert_allclose(factor.numpy(), np.repeat(table[:, LENGTH_GRID.index(0.5)][None], 4, 0), rtol=1e-5)
    np.testing.assert_allclose(det.length_factor(torch.from_numpy(x[:4])).numpy(), 1.0)
    # an impact 50 dB over the hum: the hum's frames are left out of the statistics, but they are sound, not padding
    impact = x[:4].copy()
    impact[..., 30:] += 50.0
    np.testing.assert_allclose(det.length_factor(torch.from_numpy(impact)).numpy(), 1.0)
    # the table travels in the model's arguments (config.json), not its weights
    again = cls(**det.config())
    again.load_state_dict(det.state_dict(), strict=True)
    assert "length_table" not in det.state_dict() and torch.equal(again.length_table, det.length_table)
    assert json.loads(json.dumps(det.config()))["length_scale"] == det.params["length_scale"]
    # a training set with short recordings of its own (a tenth of its windows padded) keeps factors of 1, and scores
    # as a model without the calibration does, to the bit; windows with gaps of digital silence (a dropout) are no
    # short recordings (they turned the calibration off)
    x[::10, ..., 20:] = -120.0
    short = np.zeros(len(x), bool)
    short[::10] = True
    det = cls((1, 32, 40))
    det.fit_closed_form(x, short=short)
    assert torch.equal(det.length_table, torch.ones_like(det.length_table)) and not det.length_calibrated
    assert det.params["length_scale"] == {m: [1.0] * len(LENGTH_GRID) for m in det.score_methods}
    window = torch.from_numpy(x[:3])
    assert all(torch.equal(a, b) for a, b in zip(det(window).losses.values(),
                                                 det.stat_scores(det.statistics(window)).values()))
    det = cls((1, 32, 40))
    det.fit_closed_form(x)
    assert det.length_calibrated and np.all(det.length_table.numpy()[:, 0] > 1.5)


def test_silence_in_one_channel_or_every_frame_is_no_short_recording():
    rng = np.random.default_rng(1)
    x = (np.linspace(-20, -60, 16)[None, None, :, None] + 3 * rng.normal(size=(200, 3, 16, 30))).astype(np.float32)
    det = KNNStatsDetector((3, 16, 30))
    det.fit_closed_form(x)
    assert det.length_calibrated
    dead = torch.from_numpy(x[:2].copy())
    dead[:, 2] = -100.0  # one axis of three dead: every frame still holds sound
    assert torch.equal(det.filled_share(dead), torch.ones(2))
    padded = dead.clone()
    padded[..., 15:] = -100.0  # a recording half a window long, padded: every channel's frames silent alike
    np.testing.assert_allclose(det.filled_share(padded).numpy(), 0.5)
    silent = torch.full((2, 3, 16, 30), -100.0)  # digital silence alone: named elsewhere, not divided by the most
    np.testing.assert_allclose(det.length_factor(silent).numpy(), 1.0)
