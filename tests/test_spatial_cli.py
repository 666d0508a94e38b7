"""The spatial workflow through the command line: synthesise tissue sections → train → evaluate →
enhance (arrays and imzML, the three tasks), and its errors."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REPO

from latentbridge.cli import main
from latentbridge.tasks.spatial_eval import evaluate

TINY = ["train.max_epochs=2", "model.channels=[8,16]", "model.latent_dim=4", "model.condition_dim=8",
        "model.fourier_frequencies=4", "patches.size=16", "patches.overlap=4", "patches.per_epoch=64", "patches.val_patches=16",
        "patches.samples=2", "train.batch_size=16", "train.progress_bar=false", "beta.cycle_steps=4",
        "losses.spatial=0.01", "losses.free_nats=0.1", "losses.free_nats_steps=4"]


def _o(items):
    out = []
    for o in items:
        out += ["-o", o]
    return out


@pytest.fixture(scope="module")
def tissue(tmp_path_factory):
    out = tmp_path_factory.mktemp("tissue") / "data"
    assert main(["data", "synth", "tissue", "--out", str(out), "--sections", "5", "--test-sections", "1",
                 "--height", "34", "--width", "40", "--channels", "6", "--seed", "2"]) == 0
    return out


@pytest.fixture(scope="module")
def run(tissue, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "cvae"
    assert main(["train", "--config", str(REPO / "configs" / "cvae_tissue.yaml"), "--out", str(out),
                 *_o([f"data.root={tissue}", *TINY])]) == 0
    return out


def test_run_folder_records_the_transform_split_and_calibration(run):
    info = json.loads((run / "config.json").read_text())
    assert info["model_class"] == "spatial_cvae" and info["config"]["task"] == "spatial"
    t = info["transform"]
    assert t["type"] == "spatial" and t["channels"] == 6 and len(t["center"]) == len(t["mz"]) == 6
    assert t["patch_size"] == 16 and all(s > 0 for s in t["scale"])
    d = info["data"]
    assert d["test_sections"] == ["section_05"] and len(d["val_sections"]) == 1
    assert not set(d["val_sections"]) & set(d["train_sections"])
    cal = info["calibration"]
    assert cal["reference"] == "clean map" and abs(cal["validation_coverage_2sigma"] - 0.95) < 0.02
    assert all(f > 0 for f in cal["factors"].values())
    betas = [float(r.split(",")[2]) for r in (run / "logs" / "beta_tracking.csv").read_text().splitlines()[1:]]
    assert max(betas) > min(betas) and "tolerance 10 ppm" in (run / "README.md").read_text()
    # the preset's model: skips, residual, blind spot with fusion, its noise model fitted and saved
    kw = info["model_kwargs"]
    assert kw["skips"] and kw["residual"] and kw["blind_spot"] == 4 and kw["fuse"]
    noise = info["noise_model"]
    assert noise["fitted"] and len(noise["a"]) == len(noise["b"]) == 6
    assert all(a >= 0 for a in noise["a"]) and any(a > 0 or b > 0 for a, b in zip(noise["a"], noise["b"]))
    from latentbridge.models.hub import load_model

    saved = load_model(run)
    np.testing.assert_allclose(saved.model.noise_model.numpy(), np.array([noise["a"], noise["b"]]).T, rtol=1e-6)
    assert "fused with its own value" in (run / "README.md").read_text()


def test_evaluate_scores_three_tasks_against_baselines(run, tmp_path, capsys, monkeypatch):
    import latentbridge.utils as utils

    bars, real_bar = [], utils.progress_bar  # the evaluation said nothing for minutes on larger sections

    def recorded(total, enabled, desc, unit="step"):
        bars.append(real_bar(total, enabled, desc, unit))
        return bars[-1]

    monkeypatch.setattr(utils, "progress_bar", recorded)
    out = tmp_path / "eval"
    assert main(["evaluate", str(run), "--out", str(out)]) == 0
    assert (bars[0].n, bars[0].total) == (8 + 3, 8 + 3)  # 8 baselines tuned, the section's 3 tasks
    assert "uncertainty_coverage_2sigma=" in capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["denoise"]["baselines"]) == {"gaussian", "median", "nl_means", "total_variation"}
    assert set(m["inpaint"]["baselines"]) == {"biharmonic"}
    assert set(m["upscale"]["baselines"]) == {"nearest", "bicubic", "lanczos"}
    for task in ("denoise", "inpaint", "upscale"):
        t = m[task]
        assert np.isfinite(t["psnr"]) and -1 <= t["ssim"] <= 1 and 0 <= t["sam"] <= 90
        assert 0 <= t["coverage_2sigma"] <= 1
        assert t["psnr_gain_db"] == pytest.approx(t["psnr"] - t["baselines"][t["best_baseline"]]["psnr"])
    assert m["denoise"]["baselines"]["gaussian"]["sigma"] in (0.5, 0.75, 1.0, 1.5, 2.0)  # tuned
    assert 0 <= m["uncertainty_coverage_2sigma"] <= 1 and m["sections"] == ["section_05"]
    for png in ("denoise.png", "inpaint.png", "upscale.png", "latent.png", "uncertainty.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG", png
    html = (out / "report.html").read_text()
    assert html.count("<img") >= 5 and "nl_means" in html
    # the figure's baseline is the table's best (it was the first section's best), and the section is named
    assert f"best baseline ({m['denoise']['best_baseline']}, best by its mean over the sections)" in html
    assert "The images: section_05." in html  # (it read "section section_05")
    assert re.search(r"<td>sigma: \d", html) and re.search(r"<td>size: \d", html)  # each baseline's tuned parameter


def test_enhance_arrays_and_imzml(run, tissue, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("latentbridge.utils.LOG_PROGRESS_S", 0.0)  # the bar at once into the captured stderr
    out = tmp_path / "den"
    assert main(["enhance", str(run), str(tissue / "section_05.npy"), "--task", "denoise", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "psnr=" in printed.out  # the sibling truth is found and scored
    assert "enhancing" in printed.err and "tile" in printed.err  # progress of long runs (silent for minutes before)
    enh = np.load(out / "enhanced.npy")
    sig = np.load(out / "uncertainty.npy")
    region = np.load(out / "region.npy")
    assert enh.shape == sig.shape == (34, 40, 6) and np.load(out / "latent.npy").shape == (34, 40, 4)
    assert np.array_equal(region, np.load(tissue / "section_05.mask.npy")) and (sig[region] > 0).all()
    # outside the answered region the files say so (made-up tissue-like values stood there)
    assert np.isfinite(enh[region]).all() and np.isnan(enh[~region]).all() and np.isnan(sig[~region]).all()
    summary = json.loads((out / "enhance.json").read_text())
    assert summary["task"] == "denoise" and summary["metrics"]["psnr"] > 0
    assert summary["normalization"] == "none" and "), data units;" in summary["files"]["enhanced"]
    info = json.loads((run / "config.json").read_text())["config"]
    assert (summary["seed"], summary["samples"]) == (0, info["patches"]["samples"])  # what reproduces sigma
    assert (out / "panels.png").read_bytes()[:4] == b"\x89PNG"
    # its output folder given back: its maps named (its panels.png was read as a channel, then "1 channels")
    assert main(["enhance", str(run), str(out), "--task", "denoise", "--out", str(tmp_path / "again")]) == 2
    assert f"give its maps, {out / 'enhanced.npy'}" in capsys.readouterr().err
    # the same section from its imzML file: the same maps (the reader gives back the arrays)
    out2 = tmp_path / "den-imzml"
    assert main(["enhance", str(run), str(tissue / "section_05.imzML"), "--task", "denoise", "--out", str(out2),
                 "--mz", "760.585,798.541"]) == 0
    np.testing.assert_allclose(np.load(out2 / "enhanced.npy"), enh, rtol=1e-4, atol=1e-4)
    summary2 = json.loads((out2 / "enhance.json").read_text())
    assert summary2["panel_channels"] == ["760.585", "798.541"]
    # where the maps' pixels lie in the imzML file's coordinates (an array has none)
    assert summary["pixel_grid"] is None and summary2["pixel_grid"]["x0"] == summary2["pixel_grid"]["x_step"] == 1
    from latentbridge.io.imzml import pixel_grid
    from latentbridge.tasks.spatial import output_grid

    up = output_grid(pixel_grid(12, 41, 3, 2), 2)  # an upscaling: two output pixels about each input pixel's centre
    assert (up["x0"], up["x_step"], up["y0"], up["y_step"]) == (11.25, 1.5, 40.5, 1.0)
    assert (up["x0"] + (up["x0"] + up["x_step"])) / 2 == 12 and output_grid(None, 2) is None
    # the same section saved channels first (C, H, W), its mask beside: turned, the same maps (a traceback before:
    # the tiles were read from the file as it lies)
    cf = tmp_path / "cf"
    cf.mkdir()
    np.save(cf / "section.npy", np.ascontiguousarray(np.moveaxis(np.load(tissue / "section_05.npy"), 2, 0)))
    shutil.copy(tissue / "section_05.mask.npy", cf / "section.mask.npy")
    assert main(["enhance", str(run), str(cf / "section.npy"), "--task", "denoise", "--out", str(tmp_path / "cf_out")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "cf_out" / "enhanced.npy"), enh, rtol=1e-5, atol=1e-5)
    # inpaint answers for the holes too; upscale doubles the grid
    out3 = tmp_path / "inp"
    assert main(["enhance", str(run), str(tissue / "section_05.npy"), "--task", "inpaint", "--out", str(out3)]) == 0
    assert np.load(out3 / "region.npy").sum() > region.sum()
    out4 = tmp_path / "up"
    assert main(["enhance", str(run), str(tissue / "section_05.npy"), "--task", "upscale", "--out", str(out4)]) == 0
    assert np.load(out4 / "enhanced.npy").shape == (68, 80, 6)
    # --truth of an upscale has the output's shape (help: "the output's shape"): it was checked against the input's
    up_truth = tmp_path / "truth_up.npy"
    np.save(up_truth, np.load(tissue / "section_05.truth.npy").repeat(2, 0).repeat(2, 1))
    assert main(["enhance", str(run), str(tissue / "section_05.npy"), "--task", "upscale", "--out", str(tmp_path / "up2"),
                 "--truth", str(up_truth)]) == 0
    m = json.loads((tmp_path / "up2" / "enhance.json").read_text())["metrics"]
    # scored on the section's pixels: the upsampled outline's edge over a background of 0 (scored at 90 degrees) left out
    from latentbridge.metrics.spatial import enhancement_metrics

    t = np.load(up_truth)
    where = np.load(tmp_path / "up2" / "region.npy") & (t != 0).any(axis=-1)
    want = enhancement_metrics(t, np.load(tmp_path / "up2" / "enhanced.npy"), where,
                               np.load(tmp_path / "up2" / "uncertainty.npy"))
    assert m["psnr"] == pytest.approx(want["psnr"], rel=1e-6) and m["sam"] == pytest.approx(want["sam"], rel=1e-6)
    # a strip under SSIM's 3 x 3 window with its truth: scored, SSIM left out (a traceback from skimage before)
    strip = tmp_path / "strip"
    strip.mkdir()
    np.save(strip / "s.npy", np.load(tissue / "section_05.npy")[10:11])
    np.save(strip / "s.mask.npy", np.ones((1, 40), bool))
    np.save(strip / "s.truth.npy", np.load(tissue / "section_05.truth.npy")[10:11])
    assert main(["enhance", str(run), str(strip / "s.npy"), "--task", "denoise", "--out", str(tmp_path / "st")]) == 0
    m = json.loads((tmp_path / "st" / "enhance.json").read_text())["metrics"]
    assert m["psnr"] > 0 and m["ssim"] is None


def test_maps_on_another_intensity_scale_are_named(run, tissue, tmp_path, caplog):
    maps = np.load(tissue / "section_05.npy")
    both = maps.astype(np.float64).copy()
    both[..., 0] *= 1e4
    both[..., 1] *= 1e-5  # one channel scaled up, one down: told as one verdict before
    for name, factor in (("faint", 1e-9), ("loud", 1e3), ("negated", -1.0), ("both", None)):  # enhanced silently once
        np.save(tmp_path / f"{name}.npy", (both if factor is None else maps * factor).astype(np.float32))
        shutil.copy(tissue / "section_05.mask.npy", tmp_path / f"{name}.mask.npy")
        shutil.copy(tissue / "section_05.channels.txt", tmp_path / f"{name}.channels.txt")
    mz = (tissue / "section_05.channels.txt").read_text().split()
    for name, words in (("faint", "a sliver of"), ("loud", "far more than")):
        caplog.clear()
        assert main(["enhance", str(run), str(tmp_path / f"{name}.npy"), "--task", "denoise", "--out",
                     str(tmp_path / name)]) == 0
        assert f"{', '.join(mz)} spread over {words} the range of the training sections' intensities" in caplog.text
    caplog.clear()
    assert main(["enhance", str(run), str(tmp_path / "both.npy"), "--task", "denoise", "--out", str(tmp_path / "both")]) == 0
    assert f"{mz[0]} spreads over far more than the range" in caplog.text and \
        f"{mz[1]} spreads over a sliver of the range" in caplog.text, caplog.text
    caplog.clear()
    assert main(["enhance", str(run), str(tmp_path / "negated.npy"), "--task", "denoise", "--out",
                 str(tmp_path / "negated")]) == 0
    assert f"{', '.join(mz)} outside the range of the training sections' intensities" in caplog.text
    assert "maps negated, offset or on another scale" in caplog.text and "spread over" not in caplog.text
    caplog.clear()
    assert main(["enhance", str(run), str(tissue / "section_05.npy"), "--task", "denoise", "--out",
                 str(tmp_path / "same")]) == 0
    assert "intensities" not in caplog.text and "smaller than" not in caplog.text
    np.save(tmp_path / "tiny.npy", maps[10:20, 10:20])  # under the model's 16-pixel patches: said, not silent
    assert main(["enhance", str(run), str(tmp_path / "tiny.npy"), "--task", "denoise", "--out",
                 str(tmp_path / "tiny")]) == 0
    assert "10 x 10 pixels, smaller than the model's 16-pixel patches" in caplog.text
    flat = maps.copy()  # a constant channel is named as such, not as on another scale ("a sliver of" its range)
    flat[..., 0] = np.median(maps[..., 0])
    np.save(tmp_path / "flat.npy", flat)
    shutil.copy(tissue / "section_05.mask.npy", tmp_path / "flat.mask.npy")
    shutil.copy(tissue / "section_05.channels.txt", tmp_path / "flat.channels.txt")
    caplog.clear()
    assert main(["enhance", str(run), str(tmp_path / "flat.npy"), "--task", "denoise", "--out",
                 str(tmp_path / "flat")]) == 0
    assert f"{mz[0]} constant (one value on every valid pixel" in caplog.text and "spread" not in caplog.text, \
        caplog.text


def test_a_terminated_enhance_leaves_nothing_behind(run, tmp_path):
    """SIGTERM (timeout, Slurm, kill) unwinds like Ctrl-C: a hidden partial folder and a lock stayed behind."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "large.npy", (rng.random((900, 900, 6)) * 50).astype(np.float32))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "latentbridge", "enhance", str(run), str(tmp_path / "large.npy"),
                             "--task", "denoise", "--out", str(out)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not any(tmp_path.glob(".out.tmp-*")):
        time.sleep(0.05)
    assert proc.poll() is None, "enhance ended before it could be terminated: " + proc.stderr.read().decode()[-500:]
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    assert "terminated" in proc.stderr.read().decode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["large.npy"]  # no partial folder, no lock, no output


def test_enhance_errors_are_one_line(run, tissue, tmp_path, capsys):
    cases = [
        (["--task", "denoise", "--mz", "123.4"], "not one of the model's channels"),
        (["--task", "denoise", "--mz", "abc"], "comma-separated numbers"),
        (["--task", "denoise", "--mz", ","], "--mz: expected comma-separated numbers, got ','"),
        (["--task", "denoise", "--mz="], "--mz: expected comma-separated numbers, got ''"),
    ]
    for extra, message in cases:
        code = main(["enhance", str(run), str(tissue / "section_05.npy"), "--out", str(tmp_path / "x"), *extra])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err
    np.save(tmp_path / "wrong.npy", np.ones((20, 20, 3), np.float32))
    assert main(["enhance", str(run), str(tmp_path / "wrong.npy"), "--task", "denoise", "--out",
                 str(tmp_path / "y")]) == 2
    assert "has 3 channels; the model reads 6" in capsys.readouterr().err
    assert main(["enhance", str(run), str(tissue / "section_05.imzML"), "--task", "denoise", "--mask",
                 str(tmp_path / "wrong.npy"), "--out", str(tmp_path / "y")]) == 2  # it was ignored
    assert "--mask is for array inputs" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    # once exit 0 with wrong or blank maps (or a traceback): channels labelled with m/z in another order or of
    # other m/z, one extreme pixel (a whole tile came out NaN), clean maps with NaN, a seed out of range
    maps = np.load(tissue / "section_05.npy")
    mz = (tissue / "section_05.channels.txt").read_text().split()
    shutil.copy(tissue / "section_05.npy", tmp_path / "rev.npy")
    (tmp_path / "rev.channels.txt").write_text("\n".join(reversed(mz)) + "\n")
    shutil.copy(tissue / "section_05.npy", tmp_path / "other.npy")
    (tmp_path / "other.channels.txt").write_text("\n".join(str(100 * (i + 1)) for i in range(len(mz))) + "\n")
    hot = maps.copy()
    hot[0, 0, 0] = 1e30
    np.save(tmp_path / "hot.npy", hot)
    bad_truth = np.load(tissue / "section_05.truth.npy")
    bad_truth[16:19] = np.nan  # across the section (NaN around it is a background, scored nowhere)
    np.save(tmp_path / "truth_nan.npy", bad_truth)
    dead = maps.astype(np.float32)
    dead[..., 2] = np.nan  # one channel NaN everywhere: "no valid pixel", naming no channel
    np.save(tmp_path / "dead.npy", dead)
    section = str(tissue / "section_05.npy")
    for args, message in (([str(tmp_path / "rev.npy")], "the model reads the same m/z in another order"),
                          ([str(tmp_path / "dead.npy")], "channel 2 holds NaN on every pixel: fill or drop it"),
                          ([str(tmp_path / "other.npy")], "its channels are labelled m/z 100, 200"),
                          ([str(tmp_path / "hot.npy")], "non-finite enhanced values; the input's largest value, 1e+30"
                                                         " at row 0, column 0, channel 0"),
                          ([section, "--truth", str(tmp_path / "truth_nan.npy")], "non-finite values in the clean"),
                          ([section, "--seed", "99999999999999999999"],
                           "--seed must be -9223372036854775808 to 9223372036854775807, got 99999999999999999999")):
        assert main(["enhance", str(run), *args, "--task", "denoise", "--out", str(tmp_path / "z")]) == 2, args
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
        assert not (tmp_path / "z").exists()


def test_clean_maps_are_checked_before_any_task_runs(run, tissue, tmp_path, capsys, monkeypatch):
    """`enhance --truth`, one rule for every task, before the model runs: an upscale's all-zero clean maps crashed
    after the whole run ("ValueError: no pixels to evaluate", exit 1, nothing written), one NaN gave sam and
    relative_sigma NaN with exit 0 (a denoise refused it), a wrong shape was found after the whole enhancement; an
    all-zero denoise truth scored psnr NaN, sam 90, exit 0."""
    import latentbridge.tasks.spatial as spatial

    monkeypatch.setattr(spatial, "enhance_section", lambda *a, **k: pytest.fail("the model ran"))
    t = np.load(tissue / "section_05.truth.npy")
    up = t.repeat(2, 0).repeat(2, 1)
    nan, nan_up = t.copy(), up.copy()
    r, c = np.argwhere(np.load(tissue / "section_05.mask.npy"))[len(t) // 2]
    nan[r, c, 1] = nan_up[2 * r, 2 * c, 1] = np.nan  # one value, on a measured pixel
    for task, maps in (("denoise", t), ("inpaint", t), ("upscale", up)):
        for name, bad, said in (("zero", np.zeros_like(maps), "the clean maps are 0 on every pixel scored"),
                                ("nan", nan_up if task == "upscale" else nan, "1 non-finite values in the clean maps"),
                                ("shape", maps[:-2], "does not match")):
            np.save(tmp_path / f"{name}.npy", bad)
            assert main(["enhance", str(run), str(tissue / "section_05.npy"), "--task", task, "--truth",
                         str(tmp_path / f"{name}.npy"), "--out", str(tmp_path / "o")]) == 2, (task, name)
            err = capsys.readouterr().err
            assert f"{name}.npy: " in err and said in err and "Traceback" not in err, (task, name, err)
            assert not (tmp_path / "o").exists()


def test_training_and_evaluation_errors_are_one_line(run, tissue, tmp_path, capsys):
    import shutil

    preset = str(REPO / "configs" / "cvae_tissue.yaml")
    bare = tmp_path / "bare"  # an imzML section without a clean map beside it
    bare.mkdir()
    for ext in (".imzML", ".ibd"):
        shutil.copy(tissue / f"section_05{ext}", bare / f"section_05{ext}")
    cases = [
        (["train", "--config", preset, "--out", str(tmp_path / "a"), "-o", f"data.root={tmp_path / 'none'}"],
         "does not exist"),
        (["train", "--config", preset, "--out", str(tmp_path / "b"), *_o([f"data.root={tissue}", "patches.size=64"])],
         "section(s) smaller than 64 pixels"),
        (["train", "--config", preset, "--out", str(tmp_path / "c"), *_o([f"data.root={tissue}",
                                                                          "data.test_sections=[nope]"])],
         "no section named ['nope']"),
        (["evaluate", str(run), "--out", str(tmp_path / "d"), "--data", str(bare)],
         "no test section with a clean map"),
    ]
    # an m/z NaN crashed the reader (IndexError, exit 1); a repeated one trained two channels of one ion image
    for i, (mz, message) in enumerate((("[.nan,760.585]", "nan: an m/z must be a finite number above 0"),
                                       ("[.inf,760.585]", "inf: an m/z must be a finite number above 0"),
                                       ("[0,760.585]", "0: an m/z must be a finite number above 0"),
                                       ("[760.585,782.567,760.585]", "760.585 given more than once: each m/z once"))):
        cases.append((["train", "--config", preset, "--out", str(tmp_path / f"mz{i}"),
                       *_o([f"data.root={bare}", f"data.mz={mz}"])], message))
    for argv, message in cases:
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err, (argv, err)
    assert not any((tmp_path / n).exists() for n in ["a", "b", "c", "d", "mz0", "mz1", "mz2", "mz3"])  # nothing written
    # a model folder saved with an m/z twice (trained before the rule) still loads: its config.json is signed
    from latentbridge.config import validate

    assert validate({"task": "spatial", "data": {"mz": [100.0, 100.0, 200.0]}}, "old/config.json").data.mz[1] == 100.0


def test_a_run_without_a_test_split_is_named_as_such(tissue, tmp_path, capsys):
    """A folder of sections with clean maps but no test split: `evaluate` blamed the clean maps ("no test section with
    a clean map"), which every section held; a patch size above every section counted only the training sections."""
    import shutil

    folder = tmp_path / "mine"
    folder.mkdir()
    for k in range(3):
        for suffix in (".npy", ".truth.npy", ".mask.npy"):
            if (tissue / f"section_0{k}{suffix}").is_file():
                shutil.copy(tissue / f"section_0{k}{suffix}", folder / f"s{k}{suffix}")
    run = tmp_path / "run"
    assert main(["train", "--config", str(REPO / "configs" / "cvae_tissue.yaml"), "--out", str(run),
                 *_o([f"data.root={folder}", *TINY])]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--out", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err
    assert "the run holds out no test section" in err and "-o data.test_sections=[NAME, ...]" in err, err
    assert main(["train", "--config", str(REPO / "configs" / "cvae_tissue.yaml"), "--out", str(tmp_path / "big"),
                 *_o([f"data.root={folder}", *TINY, "patches.size=64"])]) == 2
    import re

    err = capsys.readouterr().err
    assert re.search(r"patches.size: (\d) of the \1 training section\(s\) smaller than 64 pixels", err), err


def test_training_from_imzml_files_in_mixed_precision(tissue, tmp_path):
    out = tmp_path / "from-imzml"
    assert main(["train", "--config", str(REPO / "configs" / "cvae_tissue.yaml"), "--out", str(out),
                 "--precision", "bf16-mixed", *_o([f"data.root={tissue}", "data.format=imzml", "data.scaling=noise",
                                                   "data.target=clean", *TINY, "train.max_epochs=1"])]) == 0
    info = json.loads((out / "config.json").read_text())
    assert info["data"]["format"] == "imzml" and info["transform"]["mz"][0] == pytest.approx(734.569)
    assert info["config"]["train"]["precision"] == "bf16-mixed" and info["data"]["target"] == "clean"
    # noise scaling: every channel's scale is its noise level, below the spread of its values
    center = np.asarray(info["transform"]["center"])
    assert (np.asarray(info["transform"]["scale"]) < center).all()


def test_resume_over_changed_sections_is_refused(tissue, tmp_path, capsys):
    """A spatial run resumed after a section was replaced (re-exported) trained on it as if nothing had changed."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tissue, data)
    out = tmp_path / "run"
    args = ["train", "--config", str(REPO / "configs" / "cvae_tissue.yaml"), "--out", str(out)]
    assert main([*args, *_o([f"data.root={data}", *TINY, "train.max_epochs=1"])]) == 0
    np.save(data / "section_02.npy", np.load(data / "section_02.npy").astype(np.float64))  # re-exported
    capsys.readouterr()
    assert main([*args, *_o([f"data.root={data}", *TINY, "train.max_epochs=2"]), "--resume"]) == 2
    assert "cannot resume: the training data changed since the run started" in capsys.readouterr().err


def test_some_m_z_of_sections_with_clean_maps_of_every_channel(tissue, tmp_path):
    """data.mz picks two of six m/z; the clean maps hold all six: theirs are taken by m/z (refused before:
    'truth of shape (34, 40, 6) does not match the section's (34, 40, 2)')."""
    out = tmp_path / "two"
    assert main(["train", "--config", str(REPO / "configs" / "cvae_tissue.yaml"), "--out", str(out),
                 *_o([f"data.root={tissue}", "data.format=imzml", "data.mz=[760.585,798.541]", "data.target=clean",
                      *TINY, "train.max_epochs=1"])]) == 0
    # two m/z within each other's window: one peak read in both channels, without a word; refused before training
    assert main(["train", "--config", str(REPO / "configs" / "cvae_tissue.yaml"), "--out", str(tmp_path / "ovl"),
                 *_o([f"data.root={tissue}", "data.format=imzml", "data.mz=[760.585,760.6]", "data.tolerance=0.1",
                      "data.tolerance_unit=da", *TINY, "train.max_epochs=1"])]) == 2
    assert not (tmp_path / "ovl").exists()
    from latentbridge.io.imzml import overlapping_windows

    assert overlapping_windows([760.6, 700.0, 760.585], 0.1, "da") == [(760.585, 760.6)]
    assert overlapping_windows([760.6, 760.585], 5, "ppm") == []  # 3.8 mDa each side, 15 mDa apart
    from latentbridge.data.spatial import read_section

    sec = read_section(tissue / "section_05.imzML", mz=[798.541, 760.585], truth=tissue / "section_05.truth.npy")
    full = np.load(tissue / "section_05.truth.npy")
    order = (tissue / "section_05.channels.txt").read_text().split()
    assert np.array_equal(sec.truth, full[..., [order.index("798.541"), order.index("760.585")]])
    # m/z asked with 4 decimals of labels written with 3 (0.0004 apart): the same channels (data.spatial.same_mz,
    # the one m/z rule of the clean maps and of the channel-label check)
    sec4 = read_section(tissue / "section_05.imzML", mz=[798.5414, 760.5846], truth=tissue / "section_05.truth.npy")
    assert np.array_equal(sec4.truth, sec.truth)


def test_unusual_maps_and_masks(run, tissue, tmp_path, capsys, caplog):
    """NaN marks a pixel without a measurement, masks of probabilities or transparency are read as
    drawn, and what cannot be used (inf, an empty mask file, a cut .ibd, m/z the data does not hold,
    --mz nan, --samples 0) is one line naming it."""
    import shutil

    from PIL import Image

    from latentbridge.io.imzml import write_imzml

    x = np.load(tissue / "section_05.npy").astype(np.float32)
    valid = np.load(tissue / "section_05.mask.npy")
    r, c = np.argwhere(valid)[len(np.argwhere(valid)) // 2]
    holed = x.copy()
    holed[r, c, 1] = np.nan
    np.save(tmp_path / "holed.npy", holed)
    shutil.copy(tissue / "section_05.mask.npy", tmp_path / "holed.mask.npy")
    assert main(["enhance", str(run), str(tmp_path / "holed.npy"), "--task", "denoise", "--out",
                 str(tmp_path / "e1")]) == 0
    summary = json.loads((tmp_path / "e1" / "enhance.json").read_text())
    assert summary["pixels_answered"] == int(valid.sum()) - 1 and summary["empty_channels"] == []
    enhanced, answered = np.load(tmp_path / "e1" / "enhanced.npy"), np.load(tmp_path / "e1" / "region.npy")
    assert np.isfinite(enhanced[answered]).all() and not answered[r, c] and np.isnan(enhanced[r, c]).all()
    # clean maps beside the section at another shape (the whole raster's, the section cut from it): not scored,
    # said, the enhancement made (refused before); given with --truth, refused
    raster = tmp_path / "raster"
    raster.mkdir()
    shutil.copy(tissue / "section_05.npy", raster / "cut.npy")
    shutil.copy(tissue / "section_05.mask.npy", raster / "cut.mask.npy")
    np.save(raster / "cut.truth.npy", np.zeros((50, 60, 6), np.float32))
    assert main(["enhance", str(run), str(raster / "cut.npy"), "--task", "denoise", "--out", str(tmp_path / "e2")]) == 0
    err = caplog.text
    assert "cut.truth.npy: truth of shape (50, 60, 6) does not match the section's (34, 40, 6): the clean maps " \
           "found beside the section are left out and the output is not scored" in err, err
    assert json.loads((tmp_path / "e2" / "enhance.json").read_text())["metrics"] is None
    assert main(["enhance", str(run), str(raster / "cut.npy"), "--task", "denoise", "--out", str(tmp_path / "e3"),
                 "--truth", str(raster / "cut.truth.npy")]) == 2
    assert "does not match the section's" in capsys.readouterr().err and not (tmp_path / "e3").exists()

    np.save(tmp_path / "prob.npy", np.where(valid, 0.9, 0.02).astype(np.float32))  # a probability map
    rgba = np.zeros(valid.shape + (4,), np.uint8)
    rgba[..., :3] = 255
    rgba[..., 3] = np.where(valid, 255, 0)  # white everywhere, the mask in the alpha channel
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    for name in ("prob.npy", "alpha.png"):
        out = tmp_path / f"m_{name}"
        assert main(["enhance", str(run), str(tissue / "section_05.npy"), "--task", "denoise", "--mask",
                     str(tmp_path / name), "--out", str(out)]) == 0
        assert json.loads((out / "enhance.json").read_text())["pixels_answered"] == int(valid.sum()), name

    inf = x.copy()
    inf[r, c, 0] = np.inf
    np.save(tmp_path / "inf.npy", inf)
    (tmp_path / "empty.npy").write_bytes(b"")
    cut = tmp_path / "cut"
    cut.mkdir()
    shutil.copy(tissue / "section_05.imzML", cut / "section_05.imzML")
    ibd = (tissue / "section_05.ibd").read_bytes()
    (cut / "section_05.ibd").write_bytes(ibd[: len(ibd) // 2])
    mz = json.loads((tissue / "manifest.json").read_text())["mz"]
    write_imzml(tmp_path / "elsewhere.imzML", ((int(i), int(j), np.asarray(mz) + 1.0, x[i, j].astype(np.float32))
                                               for i, j in np.argwhere(valid)), shape=valid.shape)
    sec = str(tissue / "section_05.npy")
    cases = [
        ([str(tmp_path / "inf.npy")], f"holds infinite values (the first at row {r}, column {c}, channel 0)"),
        ([sec, "--mask", str(tmp_path / "empty.npy")], "empty.npy: cannot read the mask (EOFError"),
        ([sec, "--truth", str(tmp_path / "empty.npy")], "empty.npy: cannot read the clean maps"),
        ([str(cut / "section_05.imzML")], "section_05.ibd is truncated"),
        ([str(tmp_path / "elsewhere.imzML")], "no signal in any of the model's channels"),
        ([sec, "--mz=nan"], "--mz: expected finite numbers, got nan"),
        ([sec, "--samples", "0"], "--samples must be at least 1, got 0"),
    ]
    for args, message in cases:
        code = main(["enhance", str(run), *args, "--task", "denoise", "--out", str(tmp_path / "bad")])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err and "\n" not in err.strip(), (args, err)
        assert not (tmp_path / "bad").exists()
    spectra = tmp_path / "spectra"  # imzML sections alone (no clean maps of the synthetic channels beside them)
    spectra.mkdir()
    for f in [*tissue.glob("section_0[123].imzML"), *tissue.glob("section_0[123].ibd")]:
        shutil.copy(f, spectra / f.name)
    code = main(["train", "--config", str(REPO / "configs" / "cvae_tissue.yaml"), "--out", str(tmp_path / "t"),
                 *_o([f"data.root={spectra}", "data.mz=[100.0,200.0]", *TINY])])
    err = capsys.readouterr().err
    assert code == 2 and "100, 200: no signal in any training section within the tolerance" in err, err


def test_a_run_trained_on_a_relative_folder_says_so_when_evaluated_elsewhere(tissue, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tissue.parent)
    out = tmp_path / "rel"
    assert main(["train", "--config", str(REPO / "configs" / "cvae_tissue.yaml"), "--out", str(out),
                 *_o([f"data.root={tissue.name}", *TINY])]) == 0
    monkeypatch.chdir(tmp_path)  # "data: does not exist" before, naming no cause
    capsys.readouterr()
    assert main(["evaluate", str(out), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert f"{tissue.name}: the run's data.root, relative to the folder it was trained from, is not under" in err
    assert "--data DIR" in err and not (tmp_path / "e").exists()
    # here the same relative path names another folder (another data set of the same name): it was read as the run's
    # own held-out sections, without a word
    shutil.copytree(tissue, tmp_path / tissue.name)
    assert main(["evaluate", str(out), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert f"{tissue.name}: the run's data.root, relative to the folder `train` ran in ({tissue.parent}), where it is " \
           f"{tissue.resolve()}; here it names another folder, {(tmp_path / tissue.name).resolve()}" in err, err
    assert not (tmp_path / "e").exists()


def _train_on(folder, out, *overrides):
    assert main(["train", "--config", str(REPO / "configs" / "cvae_tissue.yaml"), "--out", str(out),
                 *_o([f"data.root={folder}", *TINY, "train.max_epochs=1", *overrides])]) == 0
    return out


@pytest.fixture(scope="module")
def array_run(tissue, tmp_path_factory):
    """A model of arrays without m/z: four sections' .npy and masks, no manifest, no channel labels."""
    data = tmp_path_factory.mktemp("arrays")
    for i in range(1, 5):
        for ext in (".npy", ".mask.npy"):
            shutil.copy(tissue / f"section_0{i}{ext}", data / f"section_0{i}{ext}")
    return _train_on(data, tmp_path_factory.mktemp("run") / "arrays")


def _section_folder(tissue, folder, rows=slice(None), channels_first=False):
    """section_05's maps (its rows ``rows``), mask and clean maps as ``folder``/s.npy, s.mask.npy, s.truth.npy."""
    folder.mkdir(exist_ok=True)
    maps = np.load(tissue / "section_05.npy")[rows]
    np.save(folder / "s.npy", np.ascontiguousarray(np.moveaxis(maps, 2, 0)) if channels_first else maps)
    np.save(folder / "s.mask.npy", np.load(tissue / "section_05.mask.npy")[rows])
    np.save(folder / "s.truth.npy", np.load(tissue / "section_05.truth.npy")[rows])
    return folder


def test_evaluate_data_checks_the_channels_m_z_as_enhance_does(run, tissue, tmp_path, capsys):
    """Maps labelled with the model's m/z in another order were scored, standardised by other channels' statistics."""
    folder = _section_folder(tissue, tmp_path / "rev")
    mz = (tissue / "section_05.channels.txt").read_text().split()
    (folder / "s.channels.txt").write_text("\n".join(reversed(mz)) + "\n")
    assert main(["evaluate", str(run), "--data", str(folder), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert f"{folder / 's.npy'}: its channels are labelled m/z {', '.join(f'{float(v):g}' for v in reversed(mz))}" \
           "; the model reads the same m/z in another order" in err and "Traceback" not in err
    assert not (tmp_path / "e").exists()


def test_an_imzml_section_for_a_model_without_m_z_is_refused_with_advice_that_works(array_run, tissue, tmp_path,
                                                                                     capsys):
    """--mz only picks the channels shown in figures: advising it for a model trained on arrays could not work."""
    imz = tissue / "section_05.imzML"
    assert main(["enhance", str(array_run), str(imz), "--task", "denoise", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert f"{imz}: the model has no m/z list (it was trained on arrays), so the spectra cannot be matched to its 6 " \
           "channels: give the section as an (H, W, 6) array of its ion images in the training arrays' channel " \
           "order" in err
    assert "--mz" not in err and "Traceback" not in err and not (tmp_path / "x").exists()
    folder = tmp_path / "imz"  # evaluate --data of imzML sections alone: the same
    folder.mkdir()
    for ext in (".imzML", ".ibd", ".truth.npy"):
        shutil.copy(tissue / f"section_05{ext}", folder / f"section_05{ext}")
    assert main(["evaluate", str(array_run), "--data", str(folder), "--out", str(tmp_path / "e")]) == 2
    assert "the model has no m/z list (it was trained on arrays)" in capsys.readouterr().err


def test_evaluate_data_reads_the_kind_of_file_the_model_was_trained_on(tissue, tmp_path, caplog):
    """A model of imzML files given a folder whose manifest lists each section as an array and as imzML: the imzML
    is read (the arrays were: here a file that is not an array at all)."""
    imz = tmp_path / "imz"
    imz.mkdir()
    for i in range(1, 5):
        for ext in (".imzML", ".ibd"):
            shutil.copy(tissue / f"section_0{i}{ext}", imz / f"section_0{i}{ext}")
    mz = json.loads((tissue / "manifest.json").read_text())["mz"]
    run = _train_on(imz, tmp_path / "run", f"data.mz=[{','.join(map(str, mz))}]")
    both = tmp_path / "both"
    both.mkdir()
    for f in tissue.glob("section_05*"):
        shutil.copy(f, both / f.name)
    manifest = json.loads((tissue / "manifest.json").read_text())
    manifest["sections"] = [s for s in manifest["sections"] if s["name"] == "section_05"]
    (both / "manifest.json").write_text(json.dumps(manifest))
    (both / "section_05.npy").write_bytes(b"not an array")
    m = evaluate(run, str(both)).metrics
    assert m["sections"] == ["section_05"] and m["scope"].endswith("(.imzML)") and m["denoise"]["psnr"] > 0
    assert json.loads((run / "config.json").read_text())["data"]["files"] == "imzml"  # what the choice rests on
    # a folder holding both kinds without a manifest: the imzML read, array files of other sections named
    (both / "manifest.json").unlink()
    shutil.copy(tissue / "section_04.npy", both / "other.npy")
    from latentbridge.data.spatial import list_sections

    caplog.clear()
    assert [e["name"] for e in list_sections(both, prefer="imzml")] == ["section_05"]
    assert "holds imzML and array sections: the imzML files are read, not other.npy" in caplog.text
    assert [e["name"] for e in list_sections(both, prefer="arrays")] == ["other", "section_05"]


def test_evaluate_data_reads_a_channels_first_stack_by_the_model_s_channel_count(array_run, tissue, tmp_path):
    """(6, 20, 40): its first axis alone holds the model's 6 channels, as enhance reads it (its shape alone says
    (H, W, C) = (6, 20, 40): 'mask of shape (20, 40) does not match the maps' (6, 20)')."""
    folder = _section_folder(tissue, tmp_path / "cf", rows=slice(8, 28), channels_first=True)
    m = evaluate(array_run, str(folder)).metrics
    assert m["sections"] == ["s"] and m["denoise"]["psnr"] > 0


def test_evaluate_leaves_sections_without_ssim_out_of_its_mean(array_run, tissue, tmp_path):
    """A 2-row section has no SSIM (3 x 3 window): the mean SSIM is that of the others (it read NaN), and
    ssim_sections counts them; PSNR is the mean over both."""
    folder = _section_folder(tissue, tmp_path / "two")
    np.save(folder / "strip.npy", np.load(tissue / "section_05.npy")[10:12])
    np.save(folder / "strip.mask.npy", np.ones((2, 40), bool))
    np.save(folder / "strip.truth.npy", np.load(tissue / "section_05.truth.npy")[10:12])
    m = evaluate(array_run, str(folder)).metrics
    assert m["n_sections"] == 2
    for task in ("denoise", "inpaint", "upscale"):
        t = m[task]
        assert 0 < t["ssim"] <= 1 and t["ssim_sections"] == 1 and t["psnr"] > 0, (task, t)
        assert all(0 < b["ssim"] <= 1 for b in t["baselines"].values()), (task, t["baselines"])


def test_evaluate_says_why_no_psnr_was_measured(array_run, tissue, tmp_path, caplog):
    """A clean map constant on every channel has no range to measure PSNR against: the mean was null in
    metrics.json with nothing said; psnr_sections counts the sections scored, and a warning names the cause."""
    folder = _section_folder(tissue, tmp_path / "flat")
    truth = np.load(folder / "s.truth.npy")
    np.save(folder / "s.truth.npy", np.ones_like(truth) * truth.mean(axis=(0, 1), keepdims=True))
    m = evaluate(array_run, str(folder)).metrics
    for task in ("denoise", "inpaint", "upscale"):
        assert m[task]["psnr_sections"] == 0 and np.isnan(m[task]["psnr"]), (task, m[task])
        assert np.isfinite(m[task]["sam"]), (task, m[task])
        assert f"{task}: no section's clean map varies over the scored pixels" in caplog.text
    ok = evaluate(array_run, str(_section_folder(tissue, tmp_path / "ok"))).metrics
    assert ok["denoise"]["psnr_sections"] == 1 and ok["denoise"]["psnr"] > 0


def test_clean_maps_with_a_nan_background_are_scored(run, tissue, tmp_path, capsys):
    """A clean map with NaN around the tissue (what enhance itself writes outside its region) was refused ("2496
    non-finite values in the clean maps") though no scored pixel held one; NaN on a scored pixel still is."""
    x = np.load(tissue / "section_05.npy").astype(np.float32)
    valid = np.load(tissue / "section_05.mask.npy")
    truth = np.load(tissue / "section_05.truth.npy").astype(np.float32)
    x[~valid] = np.nan
    np.save(tmp_path / "a.npy", x)
    around = truth.copy()
    around[~valid] = np.nan
    np.save(tmp_path / "a.truth.npy", around)
    assert main(["enhance", str(run), str(tmp_path / "a.npy"), "--task", "denoise", "--out", str(tmp_path / "o")]) == 0
    plain = tmp_path / "plain"
    assert main(["enhance", str(run), str(tissue / "section_05.npy"), "--task", "denoise", "--out", str(plain)]) == 0
    got, want = (json.loads((d / "enhance.json").read_text())["metrics"] for d in (tmp_path / "o", plain))
    assert got["psnr"] == pytest.approx(want["psnr"], rel=1e-4)
    r, c = np.argwhere(valid)[0]
    around[r, c, 0] = np.nan
    np.save(tmp_path / "a.truth.npy", around)
    capsys.readouterr()
    assert main(["enhance", str(run), str(tmp_path / "a.npy"), "--task", "denoise", "--out", str(tmp_path / "o2")]) == 2
    assert "1 non-finite values in the clean maps where pixels are scored" in capsys.readouterr().err


def test_a_tic_model_s_maps_say_their_unit(tissue, tmp_path, capsys):
    """A model of TIC-normalised ion images (the README's imzML example) wrote its maps, intensity over each pixel's
    total ion count, as "data units": enhance.json says the normalisation and the unit. The model records that its
    sums were whole spectra, which an array does not hold: an array input is refused (it was divided by its
    channels' sum, maps 1.44-1.54 times larger per pixel, exit 0 without a word)."""
    out = tmp_path / "tic"
    assert main(["train", "--config", str(REPO / "configs" / "cvae_tissue.yaml"), "--out", str(out),
                 *_o([f"data.root={tissue}", "data.format=imzml", "data.normalization=tic", *TINY,
                      "train.max_epochs=1"])]) == 0
    assert json.loads((out / "config.json").read_text())["transform"]["normalized_over"] == "spectrum"
    assert main(["enhance", str(out), str(tissue / "section_05.imzML"), "--task", "denoise", "--out",
                 str(tmp_path / "e")]) == 0
    summary = json.loads((tmp_path / "e" / "enhance.json").read_text())
    assert summary["normalization"] == "tic" and summary["normalized_over"] == "spectrum"
    assert summary["files"]["enhanced"].startswith("enhanced.npy (H, W, C), intensity / the pixel's total ion count "
                                                   "of its whole spectrum")
    assert np.nanmax(np.load(tmp_path / "e" / "enhanced.npy")) < 1.5  # shares of the spectrum, not counts
    capsys.readouterr()
    assert main(["enhance", str(out), str(tissue / "section_05.npy"), "--task", "denoise", "--out",
                 str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "section_05.npy: the model divides each pixel by the total ion count of its whole spectrum" in err
    assert "give the section as its imzML file" in err and "Traceback" not in err and not (tmp_path / "a").exists()


def test_a_tic_model_of_arrays_divides_imzml_inputs_by_the_same_sum(tissue, tmp_path, caplog):
    """Trained on arrays with data.normalization=tic, a model divided an array's pixels by the sum over its channels
    but an imzML file's by its whole spectrum's TIC: the same section came out 1.44-1.54 times smaller per pixel from
    its imzML file, exit 0, no warning. Both are now divided by the channels' sum: the same maps. A model folder saved
    before the record keeps its reading, with a warning where the input's kind is not the training files'."""
    out = _train_on(tissue, tmp_path / "tic", "data.normalization=tic")
    assert json.loads((out / "config.json").read_text())["transform"]["normalized_over"] == "channels"
    maps = {}
    for ext in (".npy", ".imzML"):
        assert main(["enhance", str(out), str(tissue / f"section_05{ext}"), "--task", "denoise", "--out",
                     str(tmp_path / ext[1:])]) == 0
        maps[ext] = np.load(tmp_path / ext[1:] / "enhanced.npy")
        assert json.loads((tmp_path / ext[1:] / "enhance.json").read_text())["normalized_over"] == "channels"
    np.testing.assert_allclose(maps[".imzML"], maps[".npy"], rtol=1e-4, atol=1e-6)
    from latentbridge.models.hub import update_info

    old = json.loads((out / "config.json").read_text())["transform"]
    update_info(out, {"transform": {k: v for k, v in old.items() if k != "normalized_over"}})  # saved before the record
    with caplog.at_level("WARNING"):
        assert main(["enhance", str(out), str(tissue / "section_05.imzML"), "--task", "denoise", "--out",
                     str(tmp_path / "old")]) == 0
    assert "does not record what its data.normalization=tic summed over; it was trained on arrays" in caplog.text
    ratio = maps[".npy"] / np.load(tmp_path / "old" / "enhanced.npy")
    assert 1.2 < np.nanmedian(ratio) < 2.0  # the old reading: the whole spectrum's TIC, kept


def test_an_older_model_of_mixed_sections_is_evaluated_on_each_file_s_own_sums(tissue, monkeypatch):
    """A model saved before the record, trained on imzML and array sections together (a synthetic set whose manifest
    gives some sections as imzML alone), divided each by its own kind's sum (an imzML pixel by its spectrum's TIC);
    evaluate read the imzML ones by the channels' sum (the rule for a new training of such a set): maps on another
    scale. PER_FILE keeps each file's."""
    import latentbridge.data.spatial as spatial
    from latentbridge.config.spatial_sections import SpatialDataConfig

    entry = {"truth": None, "tissue": None, "split": "train"}
    monkeypatch.setattr(spatial, "list_sections", lambda *a, **k: [
        {**entry, "name": "section_01", "path": tissue / "section_01.npy"},
        {**entry, "name": "section_02", "path": tissue / "section_02.imzML", "split": "test"}])
    cfg = SpatialDataConfig(root=str(tissue), normalization="tic",
                            mz=json.loads((tissue / "manifest.json").read_text())["mz"])
    new, old = (spatial.load_sections(cfg, over)[1][0].values for over in (None, spatial.PER_FILE))
    own = spatial.read_section(tissue / "section_02.imzML", mz=cfg.mz, normalization="tic", over="spectrum").values
    np.testing.assert_allclose(old, own, rtol=1e-6, equal_nan=True)
    assert np.nanmedian(new / old) > 1.2  # the channels' sum is smaller than the spectrum's: larger values


def test_enhanced_counts_below_zero_are_named(run, tissue, tmp_path, caplog, monkeypatch):
    """Ion counts are 0 or more; an undertrained model's enhanced maps held 9 % negative values without a word."""
    import latentbridge.tasks.spatial as spatial

    real = spatial.enhance_section

    def shifted(*a, **kw):
        res = real(*a, **kw)
        e = np.array(res.enhanced)
        e[res.region] -= 1e6  # far below any count: every answered value negative
        res.enhanced = e
        return res

    monkeypatch.setattr(spatial, "enhance_section", shifted)
    with caplog.at_level("WARNING"):
        assert main(["enhance", str(run), str(tissue / "section_05.npy"), "--task", "denoise", "--out",
                     str(tmp_path / "o")]) == 0
    n = int(np.load(tissue / "section_05.mask.npy").sum()) * 6
    assert f"{n} enhanced value(s) below 0" in caplog.text and "where every input value is 0 or more" in caplog.text
