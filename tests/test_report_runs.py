"""What the report steps (latentbridge.report.runs) draw, from results built here: the scales, titles, legends
and files of each command's figures, read from the figures' artists as they are saved."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image
import pytest
from matplotlib.figure import Figure

from latentbridge.config.sections import DIGIT_AUDIO, DIGIT_FEATURES
from latentbridge.tasks.mld_eval import MLDBridgeEvaluation
from latentbridge.tasks.multimodal import MultimodalEvaluation
from latentbridge.transforms.spec import SpectrogramParams


@pytest.fixture()
def drawn(monkeypatch):
    """{path: figure} of the figures saved during a test, the last under each path (their files are still
    written)."""
    figures = {}
    savefig = Figure.savefig

    def keep(fig, path, *args, **kwargs):
        path = Path(path)  # atomic writes save to a temporary sibling, .NAME.XXXX.partial
        figures[path.with_name(re.sub(r"^\.(.+)\.[^.]+\.partial$", r"\1", path.name))] = fig
        return savefig(fig, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return figures


def _by_name(drawn, name):
    """The one figure saved as ``name`` (.png)."""
    hits = [fig for path, fig in drawn.items() if path.name == f"{name}.png"]
    assert len(hits) == 1, (name, sorted(drawn))
    return hits[0]


def _image_panels(fig):
    return [ax for ax in fig.axes if ax.images]


#: the digit models' spectrogram parameters (8 kHz, 64 mel bands to 4 kHz, hop 64, dB)
_DIGIT_FEATURES = SpectrogramParams(sample_rate=DIGIT_AUDIO["sample_rate"], **DIGIT_FEATURES)


def _bridge_evaluation(masks: bool = True, n_states: int = 3, per_state: int = 4) -> MultimodalEvaluation:
    """A multimodal evaluation of ``n_states`` states of ``per_state`` windows: crack probabilities all between
    0.46 and 0.50 (a model that has not learnt the masks), a threshold of 0.45 (every pixel above it)."""
    rng = np.random.default_rng(0)
    n = n_states * per_state
    prob = 0.46 + 0.04 * rng.random((4, 16, 48))
    examples = {"titles": [f"Test_{i:02d} @0s" for i in range(4)], "masks": (rng.random((4, 16, 48)) > 0.9) * 1.0
                if masks else None, "mask_prob": prob, "logmag": rng.normal(size=(4, 65, 32)),
                "logmag_rec": rng.normal(size=(4, 65, 32)), "wave": rng.normal(size=(4, 1000)),
                "wave_rec": rng.normal(size=(4, 1000)), "n_fft": 128, "hop_length": 32}
    interp = {"alphas": np.linspace(0, 1, 5), "masks": 0.46 + 0.04 * rng.random((5, 16, 48)),
              "spectrograms": rng.normal(size=(5, 65, 32)), "from": "Test_00 (extent 0.000)",
              "to": "Test_02 (extent 0.100)"}
    extent = np.repeat(np.linspace(0.02, 0.1, n_states), per_state) if masks else np.full(n, np.nan)
    return MultimodalEvaluation(
        metrics={"model": "mmvae", "n_windows": n}, scope="held-out damage states", threshold=0.45,
        sample_rate=100.0, has_reconstruction=True, examples=examples, interpolation=interp,
        latent=rng.normal(size=(n, 8)), extent=extent,
        tests=np.repeat([f"Test_{i:02d}" for i in range(n_states)], per_state),
        threshold_calibrated_on="9 labelled validation windows")


# --------------------------------------------------------------------------- crack probabilities and masks


def test_crack_probabilities_and_masks_on_a_fixed_0_to_1_scale(tmp_path, drawn):
    """A flat 0.46-0.50 probability map was stretched black to white, and the thresholded row (every pixel 1) drawn
    mid-grey against a bar from 0.5 to 1.5: probabilities and masks are drawn on 0-1, as the mask triplets are."""
    from latentbridge.report.runs.multimodal import write_evaluation

    write_evaluation(_bridge_evaluation(masks=False), tmp_path)
    assert not (tmp_path / "latent_extent.png").exists()  # no state has a mask: no map by extent
    assert _by_name(drawn, "latent_tests").axes[0].get_title() == "latent (PCA) by test"  # 12 windows: not UMAP
    for name in ("masks_predicted", "interpolation_mask"):
        panels = _image_panels(_by_name(drawn, name))
        assert panels and all(ax.images[0].get_clim() == (0.0, 1.0) for ax in panels), name
    thresholded = _image_panels(_by_name(drawn, "masks_predicted"))[4:]
    assert all(np.all(ax.images[0].get_array() == 1.0) for ax in thresholded)  # every pixel above 0.45


def test_latent_diffusion_bridge_masks_on_a_fixed_0_to_1_scale(tmp_path, drawn):
    from latentbridge.report.runs.mld import _bridge

    ev = _bridge_evaluation()
    rng = np.random.default_rng(1)
    res = MLDBridgeEvaluation(
        metrics={"mask_threshold_calibrated_on": "validation"}, threshold=0.45, sample_rate=100.0,
        examples={**ev.examples, "logmag_gen": ev.examples["logmag_rec"], "wave_gen": ev.examples["wave_rec"],
                  "mask_samples": 0.3 + 0.1 * rng.random((4, 16, 48))},
        interpolation=ev.interpolation, latents={"real": rng.normal(size=(6, 8)), "generated": rng.normal(size=(6, 8))},
        embedding="pca")
    _bridge(res, tmp_path)
    for name in ("mask_samples", "interpolation_mask"):
        panels = _image_panels(_by_name(drawn, name))
        assert panels and all(ax.images[0].get_clim() == (0.0, 1.0) for ax in panels), name


def test_latent_diffusion_digit_images_on_a_fixed_0_to_1_scale(tmp_path, drawn):
    """Faint generated digits (values 0.1-0.3) were stretched to black and white beside the paired image."""
    from latentbridge.report.runs.mld import _digits

    rng = np.random.default_rng(2)
    ex = {"labels": np.arange(3), "inputs_image": rng.random((3, 28, 28)), "images": 0.1 + 0.2 * rng.random((3, 2, 28, 28)),
          "inputs_audio": rng.normal(size=(3, 32, 20)), "audio": rng.normal(size=(3, 2, 32, 20)),
          "joint_images": rng.random((4, 28, 28)), "joint_audio": rng.normal(size=(4, 32, 20)),
          "waves": rng.normal(size=(3, 800)) * 0.1}
    _digits(type("R", (), {"examples": ex, "sample_rate": 8000, "features": _DIGIT_FEATURES})(), tmp_path)
    panels = _image_panels(_by_name(drawn, "audio_to_image"))
    assert len(panels) == 9 and all(ax.images[0].get_clim() == (0.0, 1.0) for ax in panels)
    # the log-mels on one scale in dB (each panel was stretched to 0-1 on its own, under a bar from 0 to 1)
    fig = _by_name(drawn, "image_to_audio")
    mels = np.concatenate([ex["inputs_audio"][:, None], ex["audio"]], axis=1)
    assert {ax.images[0].get_clim() for ax in _image_panels(fig)} == {(mels.min(), mels.max())}
    assert fig.axes[-1].get_ylabel() == "dB"


def test_unlabelled_states_grey_beside_the_damage_extent_scale(tmp_path, drawn):
    """A state without a mask was drawn at damage extent -0.05, a colour of the scale below every labelled one."""
    from latentbridge.report.runs.multimodal import write_evaluation

    res = _bridge_evaluation(n_states=4)
    res.extent[res.tests == "Test_01"] = np.nan  # no mask in Labels/
    write_evaluation(res, tmp_path)
    fig = _by_name(drawn, "latent_extent")
    grey, coloured = fig.axes[0].collections
    assert grey.get_label() == "unlabelled (no mask) (n=4)" and len(grey.get_offsets()) == 4
    np.testing.assert_allclose(grey.get_facecolor()[0][:3], [0.6, 0.6, 0.6])
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["unlabelled (no mask) (n=4)"]
    labelled = res.extent[np.isfinite(res.extent)]
    np.testing.assert_array_equal(coloured.get_array(), labelled)
    assert coloured.get_clim() == (0.0, labelled.max())  # the scale from the labelled states, from 0
    assert fig.axes[1].get_ylabel() == "damage extent (mask mean)"


# --------------------------------------------------------------------------- spectrograms in physical units


def test_bridge_spectrograms_in_hertz_seconds_and_ln_magnitude(tmp_path, drawn):
    """The vibration spectrograms' axes read "bin" and "frame" and their colour bars had no unit; the latent
    interpolation's spectrograms were each stretched to 0-1 under one bar from 0 to 1."""
    from latentbridge.report.runs.multimodal import write_evaluation

    res = _bridge_evaluation()
    write_evaluation(res, tmp_path)
    fig = _by_name(drawn, "spectrograms")
    first = _image_panels(fig)[0]
    assert first.get_ylabel() == "frequency (Hz)" and _image_panels(fig)[-1].get_xlabel() == "time (s)"
    # 65 rows of a 128-point STFT at 100 Hz: 0 to 50 Hz; 32 frames of 32 samples: 10.24 s
    assert [t.get_text() for t in first.get_yticklabels()] == ["0", "12.5", "25", "37.5", "50"]  # (they read 12 and 38)
    assert first.images[0].get_extent() == [0.0, 32 * 32 / 100.0, 0, 65]
    assert fig.axes[1].get_ylabel() == "ln magnitude"  # the first panel's colour bar
    grid = _by_name(drawn, "interpolation_spectrogram")
    specs = res.interpolation["spectrograms"]
    assert {ax.images[0].get_clim() for ax in _image_panels(grid)} == {(specs.min(), specs.max())}
    np.testing.assert_array_equal(_image_panels(grid)[2].images[0].get_array(), specs[2])  # as computed, not 0-1
    assert grid.axes[-1].get_ylabel() == "ln magnitude"


def test_mel_spectrograms_in_band_centres_and_db(tmp_path, drawn):
    """A mel model's spectrograms (audio autoencoders, anomaly examples, digits): rows at the mel bands' centre
    frequencies, time in seconds, the colour bar in dB; channels stacked upwards repeat the bands."""
    from latentbridge.data.survey import band_centres_hz
    from latentbridge.report.audio import feature_axes, plot_spectrogram_pairs

    f = _DIGIT_FEATURES  # 8 kHz, 64 mel bands to 4 kHz, hop 64
    x = np.random.default_rng(0).normal(size=(2, 128, 125))  # two channels stacked
    plot_spectrogram_pairs(x, None, ["a.wav", "b.wav"], tmp_path / "s.png", **feature_axes(f))
    ax = _image_panels(drawn[next(iter(drawn))])[0]
    centres = band_centres_hz(f, 8000)
    rows = np.linspace(0, 127, 5).round().astype(int)
    assert ax.get_ylabel() == "mel band centre (Hz)"
    labels = [t.get_text() for t in ax.get_yticklabels()]  # whole hertz from 100 Hz up, three digits below
    assert labels == [f"{v:.0f}" if v >= 100 else f"{v:.3g}" for v in np.tile(centres, 2)[rows]] and labels[0] == "36.1"
    np.testing.assert_allclose(ax.get_yticks(), rows + 0.5)
    assert ax.images[0].get_extent() == [0.0, 125 * 64 / 8000, 0, 128]
    assert ax.figure.axes[1].get_ylabel() == "dB"
    assert feature_axes(f.model_copy(update={"scale": "log", "power": 2.0}))["unit"] == "ln magnitude^2"
    assert feature_axes(f.model_copy(update={"normalize": "minmax"}))["unit"] == "min-max scaled per window"
    with pytest.raises(ValueError, match="64 row frequencies for 100 spectrogram rows"):
        plot_spectrogram_pairs(x[:, :100], None, None, tmp_path / "bad.png", frequencies_hz=centres)


# --------------------------------------------------------------------------- training figures


def _loss_lines(fig):
    ax = fig.axes[0]
    return {ln.get_label(): ln.get_xydata() for ln in ax.lines}


def test_training_of_any_workflow_leaves_its_loss_curve_over_every_session(machine_data, feature_cache, tmp_path,
                                                                           drawn):
    """Only diffusion training wrote figures: a detector's (or any other run's) training left none. A resumed run
    draws the epochs of both sessions."""
    import csv

    from conftest import FAST
    from latentbridge.cli import main

    out = tmp_path / "model"
    args = ["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", str(out)]
    for o in FAST:
        args += ["-o", o]
    assert main(args) == 0
    assert (out / "training_loss.png").is_file()
    assert main([*args, "-o", "train.max_epochs=5", "--resume"]) == 0
    assert sorted(p.name for p in (out / "logs" / "csv").iterdir()) == ["version_0", "version_1"]
    logged = {}
    for version in ("version_0", "version_1"):
        with open(out / "logs" / "csv" / version / "metrics.csv", newline="") as f:
            for row in csv.DictReader(f):
                if row.get("val/loss"):
                    logged[int(row["epoch"]) + 1] = float(row["val/loss"])
    fig = drawn[out / "training_loss.png"]  # the last one drawn: after the resumed session
    lines = _loss_lines(fig)
    np.testing.assert_array_equal(lines["training"][:, 0], [1, 2, 3, 4, 5])
    np.testing.assert_allclose(lines["validation"], [[e, logged[e]] for e in range(1, 6)])
    assert fig.axes[0].get_xlabel() == "epoch"
    assert "training_loss.png" in (out / ".latentbridge-written").read_text()  # latentbridge's, for --force


def test_training_loss_of_a_resumed_run_and_its_stages(tmp_path, drawn):
    """A session that redid an epoch has the last word on it; each stage trained inside a run (a latent diffusion
    run's first stages) gets its own curve, titled with its folder."""
    from latentbridge.report.runs.training import write_training

    def log(folder, rows):
        folder.mkdir(parents=True)
        lines = ["epoch,step,train/loss_epoch,val/loss"] + [f"{e},{s},{t},{v}" for e, s, t, v in rows]
        (folder / "metrics.csv").write_text("\n".join(lines) + "\n")

    log(tmp_path / "logs/csv/version_0", [(0, 3, "", 2.0), (0, 3, 2.5, ""), (1, 7, "", 1.5), (1, 7, 1.9, ""),
                                           (2, 11, "", 9.9)])  # epoch 2 cut short: trained again
    log(tmp_path / "logs/csv/version_10", [(3, 19, "", 0.8), (3, 19, 1.0, "")])
    log(tmp_path / "logs/csv/version_2", [(2, 11, "", 1.2), (2, 11, 1.4, "")])
    log(tmp_path / "first_stage/audio/logs/csv/version_0", [(0, 1, 3.0, "")])
    written = write_training(tmp_path)
    assert written == [tmp_path / "first_stage/audio/training_loss.png", tmp_path / "training_loss.png"]
    lines = _loss_lines(drawn[tmp_path / "training_loss.png"])
    np.testing.assert_array_equal(lines["training"], [[1, 2.5], [2, 1.9], [3, 1.4], [4, 1.0]])
    np.testing.assert_array_equal(lines["validation"], [[1, 2.0], [2, 1.5], [3, 1.2], [4, 0.8]])
    assert drawn[tmp_path / "training_loss.png"].axes[0].get_title() == "training loss"
    stage = drawn[tmp_path / "first_stage/audio/training_loss.png"].axes[0]
    assert stage.get_title() == "training loss (first_stage/audio)"
    assert [ln.get_label() for ln in stage.lines] == ["training"]  # no validation logged


def test_scores_without_labels_leave_histograms_and_a_report(fitted_model, machine_data, tmp_path, drawn):
    """`anomaly score` without labels wrote scores.csv and summary.json alone: no figure of the scores' spread."""
    import json

    from latentbridge.cli import main

    out = tmp_path / "s"
    assert main(["anomaly", "score", str(fitted_model), str(machine_data / "test"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "examples.png", "histogram.png", "histogram_windows.png", "report.html", "scores.csv", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    for name, n in (("histogram", summary["n_files"]), ("histogram_windows", summary["n_windows"])):
        ax = _by_name(drawn, name).axes[0]
        labels = ax.get_legend_handles_labels()[1]
        assert labels == [f"scores (n={n})", f"threshold={summary['threshold']:.4g}"]  # one histogram: no labels
        assert len(ax.containers) == 1 and sum(b.get_height() for b in ax.containers[0]) == n
        (line,) = ax.lines
        assert line.get_xdata()[0] == pytest.approx(summary["threshold"])  # the threshold marked
    titles = [ax.get_title().replace("\n", " ") for ax in _image_panels(_by_name(drawn, "examples"))]
    inputs = [t for t in titles if t.endswith(": input")]
    assert len(inputs) == 4 and not any("(normal)" in t or "(anomalous)" in t for t in titles)  # no label to give
    html = (out / "report.html").read_text()
    assert re.findall(r"<h2>(.*?)</h2>", html) == ["Summary", "Scores", "Example windows and their reconstructions"]
    assert "roc.png" not in html and 'alt="histogram.png"' in html


# --------------------------------------------------------------------------- names, labels and axes


def test_diffusion_loss_named_by_what_the_denoiser_predicts(tmp_path, drawn):
    """A velocity-predicting model's loss was labelled "noise MSE"."""
    from latentbridge.report.runs.diffusion import write_training

    history = [{"epoch": 1.0, "train_loss": 0.7, "val_loss": 0.4}, {"epoch": 2.0, "train_loss": 0.36, "val_loss": 0.3}]
    res = type("R", (), {"history": history, "prediction": "v_prediction", "final_samples": None})()
    write_training(res, tmp_path)
    loss = drawn[tmp_path / "training_loss.png"].axes[0]
    assert loss.get_ylabel() == "velocity MSE (per-epoch mean)"
    assert drawn[tmp_path / "metrics_vs_epoch.png"].axes[0].get_ylabel() == "velocity MSE"
    ticks = drawn[tmp_path / "metrics_vs_epoch.png"].axes[0].get_xticks()
    assert np.all(ticks == np.round(ticks))  # whole epochs
    res.prediction = "epsilon"
    write_training(res, tmp_path)
    assert drawn[tmp_path / "training_loss.png"].axes[0].get_ylabel() == "noise MSE (per-epoch mean)"


def test_spatial_channels_titled_by_what_names_them():
    """An array without channel labels had its panels titled "m/z 0", "m/z 1"."""
    from types import SimpleNamespace

    from latentbridge.report.runs.spatial import channel_title

    assert channel_title(SimpleNamespace(labels=["734.569", "lipid A"], labelled=True), 0) == "m/z 734.569"
    assert channel_title(SimpleNamespace(labels=["734.569", "lipid A"], labelled=True), 1) == "lipid A"
    assert channel_title(SimpleNamespace(labels=["0", "1", "2"], labelled=False), 2) == "channel 2"


def test_anomaly_examples_say_the_windows_verdict_beside_the_files_label(fitted_model, machine_data, tmp_path,
                                                                         drawn):
    """"score 122 (normal)" read as a window judged normal: the label was its file's, and the window flagged."""
    import csv
    import json

    from latentbridge.cli import main

    out = tmp_path / "s"
    assert main(["anomaly", "score", str(fitted_model), str(machine_data / "test"), "--labels", "auto",
                 "--out", str(out)]) == 0
    threshold = json.loads((out / "metrics.json").read_text())["threshold"]
    with open(out / "scores.csv", newline="") as f:
        windows = {(Path(r["path"]).name, float(r["start_s"])): float(r["score"])
                   for r in csv.DictReader(f) if r["level"] == "window"}
    titles = [ax.get_title().replace("\n", " ") for ax in _image_panels(_by_name(drawn, "examples"))  # (wrapped to the
              if ax.get_title().endswith("input")]  # panel's width at its spaces)
    assert len(titles) == 4
    for t in titles:
        m = re.fullmatch(r"(\S+) @([\d.]+)s  score (\S+), (flagged|below the threshold) "
                         r"\(file labelled (normal|anomalous)\): input", t)
        assert m, t
        score = windows[(m.group(1), float(m.group(2)))]
        assert (m.group(4) == "flagged") == (score > threshold)
        assert m.group(5) == ("normal" if m.group(1).startswith("normal") else "anomalous")
    legend = _by_name(drawn, "roc").axes[0].get_legend_handles_labels()[1]
    assert any("McClish-standardised" in text for text in legend)


def test_reconstruction_of_a_long_file_name_keeps_its_figure_narrow(tmp_path, drawn):
    """`audio reconstruct` of a file with a 250-character name drew a title, and a figure, as wide as the name."""
    from types import SimpleNamespace

    from latentbridge.report.runs.autoencode import write_reconstructions

    rng = np.random.default_rng(0)
    files = [SimpleNamespace(path=Path("/data") / name, stem=name[:12], output=np.zeros(800, np.float32),
                             sample_rate=8000, spectrogram_in=rng.normal(size=(64, 13)),
                             spectrogram_out=rng.normal(size=(64, 13)), n_windows=1, metrics={})
             for name in ("7_jackson_0.wav", "trois_数字_é_" + "y" * 230 + ".wav")]
    res = SimpleNamespace(files=files, kind="mel", features=_DIGIT_FEATURES, model="m", phase="p", postfilter=False,
                          model_sample_rate=8000)
    write_reconstructions(res, tmp_path)
    short, long = (_image_panels(_by_name(drawn, f"{f.stem}_spectrogram"))[0].get_title().replace("\n", " ")
                   for f in files)
    assert short == "7_jackson_0.wav (audio → mel → model → audio): input"
    assert long == "trois_数字_é_yyyy…" + "y" * 20 + ".wav (audio → mel → model → audio): input"
    widths = [Image.open(tmp_path / f"{f.stem}_spectrogram.png").size[0] for f in files]
    assert widths[1] < 1.1 * widths[0]  # about as wide as the short name's (the whole name's: 2222 px for 1188)


def test_thresholds_at_one_point_of_the_crack_curve_share_one_label(tmp_path, drawn):
    """A model predicting the same cracks at every threshold wrote each threshold's label over the others."""
    from latentbridge.report.charts import plot_crack_operating_curve

    rows = [{"threshold": t, "crack_localisation_error_m": 3.0, "crack_false_rate": 0.5} for t in (0.01, 0.05, 0.4)]
    rows.append({"threshold": 0.5, "crack_localisation_error_m": 2.0, "crack_false_rate": 0.3})
    plot_crack_operating_curve(rows, 0.05, tmp_path / "curve.png")
    texts = sorted(t.get_text() for t in _by_name(drawn, "curve").axes[0].texts)
    assert texts == ["0.01–0.4", "0.5"]  # (first and calibrated at one point, 0.4 there too; last)
