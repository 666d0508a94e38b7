"""The multimodal workflow through the command line: simulate → train → evaluate → report."""

import csv
import json
import logging
import re
import shutil

import numpy as np
import pytest

from conftest import REPO
from latentbridge.cli import main

TINY = ["train.max_epochs=2", "model.channels=[8,16]", "model.mask_channels=[4,8]", "model.latent_dim=8",
        "train.progress_bar=false", "train.batch_size=8", "vibration.mask_height=16", "vibration.mask_width=48",
        "beta.warmup_steps=5", "data.test_fraction=0.3", "data.val_fraction=0.2"]


def _args(extra=()):
    out = []
    for o in [*TINY, *extra]:
        out += ["-o", o]
    return out


@pytest.fixture(scope="module")
def bridge_data(tmp_path_factory, feature_cache):
    root = tmp_path_factory.mktemp("bridge") / "data"
    assert main(["data", "synth", "bridge", "--out", str(root), "--states", "10", "--duration", "25",
                 "--sensors", "4", "--seed", "1"]) == 0
    return root


@pytest.fixture(scope="module", params=["jsd", "poe"])
def trained(request, bridge_data, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"run_{request.param}") / "run"
    assert main(["train", "--config", str(REPO / "configs" / f"mmvae_bridge_{request.param}.yaml"),
                 "--out", str(out), "-o", f"data.root={bridge_data}", *_args()]) == 0
    return out


def test_run_folder(trained):
    info = json.loads((trained / "config.json").read_text())
    assert info["model_class"] == "mmvae" and info["config"]["task"] == "multimodal"
    split = info["data"]
    assert split["test_tests"] and not set(split["test_tests"]) & set(split["train_tests"])
    assert not set(split["val_tests"]) & set(split["train_tests"])
    with open(trained / "logs" / "beta_tracking.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 2 and float(rows[-1]["beta"]) > float(rows[0]["beta"])
    card = (trained / "README.md").read_text()
    assert "n_fft 128" in card and info["config"]["model"]["fusion"] in card


def test_evaluate_writes_metrics_plots_and_report(trained, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", str(trained), "--out", str(out)]) == 0
    assert "mask_iou=" in capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())
    for key in ("mask_iou", "mask_dice", "damage_extent_mae", "waveform_si_sdr_db", "log_spectral_distance_db"):
        assert np.isfinite(m[key]), key
    assert 0.0 <= m["mask_iou"] <= 1.0 and m["log_spectral_distance_db"] >= 0.0
    assert m["n_windows"] > 0 and "held-out" in m["scope"]
    # against the masks as drawn (512 x 1536, the run's labels' size), not shrunk to the model's grid
    assert json.loads((trained / "config.json").read_text())["data"]["mask_size"] == [512, 1536]
    assert 0.0 <= m["mask_iou_full_size"] <= 1.0 and 0.0 <= m["mask_damaged_iou_full_size"] <= 1.0
    # crack localisation along the 20-m span of the simulated beam (from the data's manifest)
    assert m["span_m"] == 20.0 and m["match_radius_m"] == pytest.approx(1.0)
    assert {"crack_missed_rate", "crack_false_rate", "crack_localisation_error_m"} <= set(m)
    # the same figures at every threshold; the calibrated one's row is the figures above
    own = [r for r in m["crack_operating_curve"] if r["threshold"] == m["mask_threshold"]]
    assert len(m["crack_operating_curve"]) == 14 and len(own) == 1
    assert own[0]["crack_false_rate"] == m["crack_false_rate"] and own[0]["mask_damaged_iou"] == m["mask_damaged_iou"]
    assert (out / "crack_operating_curve.png").is_file() == any(
        r["crack_localisation_error_m"] is not None for r in m["crack_operating_curve"])
    for png in ("masks.png", "masks_full_size.png", "spectrograms.png", "waveform.png",
                "interpolation_spectrogram.png", "interpolation_mask.png", "latent_extent.png", "latent_tests.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG", png
    html = (out / "report.html").read_text()
    assert html.count("<img") >= 7 and "mask_iou" in html


def test_supervised_reference_and_other_fusions(bridge_data, tmp_path):
    for preset in ("spec2mask_bridge", "mmvae_bridge_moe", "mmvae_bridge_mopoe"):
        out = tmp_path / preset
        assert main(["train", "--config", str(REPO / "configs" / f"{preset}.yaml"), "--out", str(out),
                     "-o", f"data.root={bridge_data}", *_args(["train.max_epochs=1"])]) == 0
        assert main(["evaluate", str(out), "--out", str(tmp_path / f"{preset}-eval")]) == 0
        m = json.loads((tmp_path / f"{preset}-eval" / "metrics.json").read_text())
        assert np.isfinite(m["mask_iou"])


def test_bad_vibration_csv_is_named(bridge_data, tmp_path, capsys):

    root = tmp_path / "data"
    shutil.copytree(bridge_data, root)
    csv_path = sorted((root / "Data").glob("Test_02/*.csv"))[0]
    lines = csv_path.read_text().splitlines()
    lines[5] = ",".join(lines[5].split(",")[:-1])  # a ragged row
    csv_path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    assert main(["train", "--config", str(REPO / "configs" / "mmvae_bridge.yaml"), "--out", str(out),
                 "-o", f"data.root={root}", *_args()]) == 2
    err = capsys.readouterr().err
    assert csv_path.name in err and "Test_02" in err and "line 6" in err
    assert not out.exists()


def test_test_without_mask_is_used_unlabelled(bridge_data, tmp_path):

    root = tmp_path / "data"
    shutil.copytree(bridge_data, root)
    shutil.rmtree(root / "Labels" / "Test_01")
    out = tmp_path / "run"
    assert main(["train", "--config", str(REPO / "configs" / "mmvae_bridge.yaml"), "--out", str(out),
                 "-o", f"data.root={root}", *_args(["train.max_epochs=1"])]) == 0
    info = json.loads((out / "config.json").read_text())
    assert "Test_01" in info["data"]["train_tests"]  # unlabeled tests always train


@pytest.mark.parametrize("trained", ["jsd"], indirect=True)
def test_evaluate_on_data_without_a_manifest_keeps_the_runs_span(trained, bridge_data, tmp_path, caplog):
    """Another folder of recordings and masks without the simulator's manifest.json: crack localisation stays in
    metres, along the span the run read from its training data (it fell back to mask widths, span 1)."""
    assert json.loads((trained / "config.json").read_text())["data"]["span_m"] == 20.0
    site = tmp_path / "site"
    shutil.copytree(bridge_data, site)
    (site / "manifest.json").unlink()
    with caplog.at_level("WARNING", logger="latentbridge"):
        assert main(["evaluate", str(trained), "--out", str(tmp_path / "eval"), "--data", str(site)]) == 0
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert m["span_m"] == 20.0 and "span the masks' width covers is unknown" not in caplog.text
    assert m["crack_localisation_unit"] == "m"
    # another structure's manifest gives its own span: taken, and named beside the run's (the run's was kept)
    (site / "manifest.json").write_text('{"length_m": 35}')
    caplog.clear()
    with caplog.at_level("WARNING", logger="latentbridge"):
        assert main(["evaluate", str(trained), "--out", str(tmp_path / "e35"), "--data", str(site)]) == 0
    assert json.loads((tmp_path / "e35" / "metrics.json").read_text())["span_m"] == 35.0
    assert "manifest.json length_m, 35 m, is taken (the model was trained on a span of 20 m)" in caplog.text
    # a length that is no positive number of metres: refused, naming the manifest (-20 gave errors of -2.07 m)
    for bad in ('-20', '"20 m"', 'NaN'):
        (site / "manifest.json").write_text('{"length_m": %s}' % bad)
        caplog.clear()
        assert main(["evaluate", str(trained), "--out", str(tmp_path / "bad"), "--data", str(site)]) == 2
        assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("trained", ["jsd"], indirect=True)
def test_evaluate_names_recordings_in_another_unit(trained, bridge_data, tmp_path, caplog):
    """Recordings in milli-g for a model of m/s2 (x 102: 40 dB) were read as they are, without a word (a damage
    extent error of 0.37 against 0.011). The run keeps its training windows' level and evaluate --data names it."""
    import numpy as np

    level = json.loads((trained / "config.json").read_text())["data"]["level_db"]
    site = tmp_path / "site"
    shutil.copytree(bridge_data, site)
    for f in (site / "Data").rglob("*.csv"):
        a = np.loadtxt(f, delimiter=",", skiprows=1)
        a[:, 1:] *= 102.0
        np.savetxt(f, a, delimiter=",", header=f.read_text().splitlines()[0], comments="", fmt="%.6g")
    with caplog.at_level("WARNING", logger="latentbridge"):
        assert main(["evaluate", str(trained), "--out", str(tmp_path / "eval"), "--data", str(site)]) == 0
    assert f"{site}: its windows' level, " in caplog.text and f"is 40 dB above the training recordings' ({level:.1f} " \
           "dB): recordings in another unit" in caplog.text, caplog.text
    for f in (site / "Data").rglob("*.csv"):  # in g for m/s2: 19.8 dB under, within the 20 dB once asked for
        a = np.loadtxt(f, delimiter=",", skiprows=1)
        a[:, 1:] /= 102.0 * 9.80665
        np.savetxt(f, a, delimiter=",", header=f.read_text().splitlines()[0], comments="", fmt="%.6g")
    caplog.clear()
    with caplog.at_level("WARNING", logger="latentbridge"):
        assert main(["evaluate", str(trained), "--out", str(tmp_path / "eval_g"), "--data", str(site)]) == 0
    assert "is 20 dB below the training recordings'" in caplog.text and "g for m/s2 is 20 dB" in caplog.text
    shutil.copytree(bridge_data, tmp_path / "same")
    caplog.clear()
    with caplog.at_level("WARNING", logger="latentbridge"):  # another folder of its own kind of data: nothing said
        assert main(["evaluate", str(trained), "--out", str(tmp_path / "eval2"), "--data", str(tmp_path / "same")]) == 0
    assert "windows' level" not in caplog.text and "trained on" not in caplog.text


def test_a_bad_manifest_stops_training_before_it_starts(bridge_data, tmp_path, capsys):
    """A manifest.json length_m that is no positive number of metres was found when the finished model was saved:
    a whole training ended with exit 2 and no model. It stops the training before it starts; a beam's length_m of
    null leaves the top-level one (it was read as no span)."""
    from latentbridge.tasks.multimodal import manifest_span

    site = tmp_path / "site"
    shutil.copytree(bridge_data, site)
    (site / "manifest.json").write_text('{"length_m": -20}')
    out = tmp_path / "run"
    assert main(["train", "--config", str(REPO / "configs" / "mmvae_bridge.yaml"), "--out", str(out),
                 "-o", f"data.root={site}", *_args(["train.max_epochs=1"])]) == 2
    err = capsys.readouterr()
    assert "manifest.json: length_m = -20: the span the masks' width covers must be a positive number" in err.err
    assert not out.exists() and "epoch" not in err.err.lower()
    (site / "manifest.json").write_text('{"beam": {"length_m": null}, "length_m": 20}')
    assert manifest_span(site) == 20.0


def test_the_training_folder_is_known_from_anywhere(tmp_path, monkeypatch):
    """A run trained in /proj with data.root=data/bridge: from another folder, `evaluate --data /proj/data/bridge`
    was not known as its training folder (the relative root was read from here): its states read as new
    recordings, no warning that the figures include the trained ones."""
    from types import SimpleNamespace

    from latentbridge.tasks.multimodal import other_folder, trained_on

    (tmp_path / "proj" / "data" / "bridge").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    saved = SimpleNamespace(info={"data": {"root": "data/bridge"}, "trained_in": str(tmp_path / "proj")})
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert trained_on(saved, tmp_path / "proj" / "data" / "bridge")
    assert not other_folder(saved, tmp_path / "proj" / "data" / "bridge") and not other_folder(saved, None)
    assert other_folder(saved, tmp_path / "elsewhere")


def test_resume_over_a_changed_bridge_folder_is_refused(bridge_data, tmp_path, capsys, caplog):
    """A bridge run resumed after a state was added to its folder redrew its held-out split over it, without a word
    (only image and recording folders were recorded): refused, as theirs are."""
    site = tmp_path / "site"
    shutil.copytree(bridge_data, site)
    out = tmp_path / "run"
    args = ["train", "--config", str(REPO / "configs" / "mmvae_bridge.yaml"), "--out", str(out), "-o",
            f"data.root={site}"]
    assert main([*args, *_args(["train.max_epochs=1"])]) == 0
    record = json.loads((out / "logs" / "data_files.json").read_text())
    split = json.loads((out / "config.json").read_text())["data"]
    held = {t for t in split["val_tests"] + split["test_tests"]}
    assert record["held_out"] and {f.split("/")[-2] for f in record["held_out"]} == held  # not trained on
    first = sorted((site / "Data").iterdir())[0]
    shutil.copytree(first, site / "Data" / "Test_new")
    capsys.readouterr()
    assert main([*args, *_args(["train.max_epochs=2"]), "--resume"]) == 2
    assert "cannot resume: the training data changed since the run started (1 added (" in capsys.readouterr().err
    # evaluated by its held-out split over the changed folder: said so (data made again in place was scored as the
    # run's held-out states without a word)
    with caplog.at_level(logging.WARNING, logger="latentbridge"):
        assert main(["evaluate", str(out), "--out", str(tmp_path / "eval")]) == 0
    assert "the run's data changed since it was trained (1 added (" in caplog.text
    scope = json.loads((tmp_path / "eval" / "metrics.json").read_text())["scope"]
    assert scope.startswith("held-out damage states ") and "(the data changed since training: 1 added (" in scope


def test_crack_figures_say_their_unit():
    """A span unknown (no vibration.span_m, no manifest) gave crack localisation errors in mask widths under the key
    crack_localisation_error_m and a chart labelled in metres: the unit is in metrics.json and on the chart."""
    import numpy as np

    from latentbridge.metrics.segmentation import MASK_WIDTHS, mask_metrics

    target = np.zeros((2, 1, 4, 20), np.float32)
    target[:, :, :, 5] = 1
    prob = np.roll(target, 2, axis=-1)
    known, unknown = mask_metrics(prob, target, 0.5, 20.0), mask_metrics(prob, target, 0.5, None)
    assert known["crack_localisation_unit"] == "m" and unknown["crack_localisation_unit"] == MASK_WIDTHS
    assert known["crack_localisation_error_m"] == pytest.approx(2.0) and unknown["crack_localisation_error_m"] == \
        pytest.approx(0.1)


def test_evaluate_examples_come_from_labelled_windows_only(trained, bridge_data, tmp_path, caplog):
    import dataclasses

    from latentbridge.report.runs.multimodal import write_evaluation
    from latentbridge.tasks.multimodal import evaluate

    # some tests unlabelled: the example masks and the interpolation's ends are labelled windows only
    part = tmp_path / "part"
    shutil.copytree(bridge_data, part)
    labelled = sorted(p.name for p in (part / "Labels").iterdir())
    for name in labelled[::2]:
        shutil.rmtree(part / "Labels" / name)
    kept = set(labelled[1::2])
    res = evaluate(trained, str(part))
    assert 0 < res.metrics["n_labelled_windows"] < res.metrics["n_windows"]
    assert res.examples["titles"] and {t.split(" @")[0] for t in res.examples["titles"]} <= kept
    assert res.interpolation is not None and "nan" not in res.interpolation["from"] + res.interpolation["to"]

    # no labelled window at all: no target panels, no interpolation, and the log says why
    bare = tmp_path / "bare"
    shutil.copytree(bridge_data, bare)
    shutil.rmtree(bare / "Labels")
    out = tmp_path / "eval"
    with caplog.at_level("INFO", logger="latentbridge"):
        assert main(["evaluate", str(trained), "--out", str(out), "--data", str(bare)]) == 0
    assert "no latent interpolation" in caplog.text.lower()
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_labelled_windows"] == 0
    assert not (out / "masks.png").exists() and not (out / "interpolation_mask.png").exists()
    assert (out / "masks_predicted.png").read_bytes()[:4] == b"\x89PNG"
    html = re.sub(r"base64,[^\"']*", "", (out / "report.html").read_text())  # the text, not the embedded images
    assert "IoU" not in html and "target |" not in html and "extent nan" not in html
    assert "Latent interpolation" in html and "no labelled window" in html

    # a threshold that was never calibrated: the report does not call it calibrated
    assert res.threshold_calibrated_on  # this run's threshold was calibrated on its validation windows
    out = tmp_path / "eval_uncalibrated"
    out.mkdir()
    write_evaluation(dataclasses.replace(res, threshold=0.5, threshold_calibrated_on=None,
                                         threshold_note="default (no labelled validation windows)"), out)
    html = re.sub(r"base64,[^\"']*", "", (out / "report.html").read_text())
    assert "the calibrated threshold" not in html and "not calibrated" in html


def test_example_windows_are_titled_to_the_millisecond():
    """Windows of a 0.25-s hop were all titled "@0s" in the evaluation's figures (two panels alike, yet different)."""
    from types import SimpleNamespace

    from latentbridge.tasks.multimodal import window_title

    data = SimpleNamespace(tests=["New_001", "New_050"], test_index=np.array([0, 1, 1, 1]),
                           starts_s=np.array([0.0, 0.25, 0.5, 12000.25]))
    assert [window_title(data, i) for i in range(4)] == ["New_001 @0s", "New_050 @0.25s", "New_050 @0.5s",
                                                         "New_050 @12000.25s"]
