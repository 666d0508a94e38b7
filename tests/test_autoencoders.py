"""Mel and image autoencoders: shapes, losses, save/load, and the audio_ae / image_ae workflows."""

import csv
import shutil
import json
import logging
import math
import re

import numpy as np
import pytest
import torch

from conftest import FSDD, REPO
from latentbridge.cli import main
from latentbridge.config import config_to_dict, load_config, transform_spec
from latentbridge.models.hub import load_model, save_model
from latentbridge.models.registry import build_model

MNIST_ROOT = REPO.parent / "shared" / "data" / "mnist"

SMALL = {  # name -> (input shape, overrides for a small model)
    "mel_ae": ((1, 16, 40), ["model.channels=[16,16,32,32]", "model.latent_dim=8"]),
    "mel_vae": ((1, 16, 32), ["model.channels=[16,16,32,32]", "model.latent_dim=8"]),
    "image_dense_ae": ((1, 28, 28), ["model.hidden_dims=[64,32]", "model.latent_dim=8"]),
    "image_conv_ae": ((1, 28, 28), ["model.channels=[8,16]", "model.latent_dim=8"]),
}


def _model(name):
    shape, over = SMALL[name]
    task = "image_ae" if name.startswith("image") else "audio_ae"
    cfg = load_config(None, [f"task={task}", f"model.name={name}", *over])
    return build_model(cfg.model, input_shape=shape), shape


def _batch(name, shape, b=3):
    torch.manual_seed(0)
    if name.startswith("image"):
        return torch.rand(b, *shape)
    return torch.randn(b, *shape) * 10 - 40  # dB-like


@pytest.mark.parametrize("name", list(SMALL))
def test_shapes_losses_and_gradients(name):
    model, shape = _model(name)
    x = _batch(name, shape)
    if name.startswith("mel"):
        model.normalizer.fit(x)
    out = model(x)
    assert out.reconstruction.shape == x.shape
    assert out.latent.shape == (3, 8)
    assert all(v.shape == (3,) for v in out.losses.values()) and "mse" in out.losses
    loss, parts = model.loss(x, beta=0.5)
    assert loss.shape == (3,) and torch.isfinite(loss).all()
    loss.mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    if name == "mel_vae":
        assert out.posterior is not None and "kl" in parts
        assert torch.allclose(loss, parts["mse"] + parts["l1"] + 0.5 * parts["kl"])
    elif name.startswith("mel"):
        assert torch.allclose(loss, parts["mse"] + parts["l1"])
    else:
        assert torch.allclose(loss, parts["bce"] + parts["mse"])
        assert 0 <= out.reconstruction.min() and out.reconstruction.max() <= 1
    model.eval()
    assert model.reconstruct(x).shape == x.shape
    assert model.score(x, "mse").shape == (3,)
    with pytest.raises(ValueError):
        model(torch.zeros(2, 1, 5, 5))


@pytest.mark.parametrize("name", list(SMALL))
def test_a_training_step_under_bf16_autocast_matches_float32(name, cuda_like_autocast):
    """What ``--precision bf16-mixed`` runs (on the GPU when there is one, else under CPU autocast made as strict
    as CUDA's: CUDA autocast refuses binary_cross_entropy of probabilities, which crashed the digits MLD's image
    first stage on an H200): losses in float32, finite, within bfloat16's rounding of the float32 step's, with
    gradients everywhere."""
    device = "cuda" if torch.cuda.is_available() else cuda_like_autocast
    model, shape = _model(name)
    model = model.to(device).train()
    x = _batch(name, shape).to(device)
    if name.startswith("mel"):
        model.normalizer.fit(x)
    torch.manual_seed(1)  # the same posterior draws for the VAE
    ref, _ = model.loss(x, beta=0.5)
    torch.manual_seed(1)
    with torch.autocast(device, dtype=torch.bfloat16):
        loss, parts = model.loss(x, beta=0.5)
    assert all(v.dtype == torch.float32 for v in parts.values()), {k: v.dtype for k, v in parts.items()}
    assert torch.isfinite(loss).all()
    torch.testing.assert_close(loss, ref, rtol=0.05, atol=0.05)
    loss.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", ["mel_ae", "mel_vae"])
def test_delta_loss_is_the_l1_of_frame_differences(name, tmp_path):
    shape, over = SMALL[name]
    cfg = load_config(None, ["task=audio_ae", f"model.name={name}", *over, "model.delta_weight=2.5"])
    model = build_model(cfg.model, input_shape=shape)
    x = _batch(name, shape)
    model.normalizer.fit(x)
    model.eval()
    out = model(x)
    d = out.reconstruction - model.standardize(x)
    expected = (d[..., 1:] - d[..., :-1]).abs().mean(dim=(1, 2, 3))
    torch.testing.assert_close(out.losses["delta"], expected)
    loss, parts = model.loss(x, beta=0.5)
    kl = 0.5 * parts["kl"] if name == "mel_vae" else 0.0
    torch.testing.assert_close(loss, parts["mse"] + parts["l1"] + 2.5 * parts["delta"] + kl)
    save_model(tmp_path / "m", model, config=config_to_dict(cfg), transform=transform_spec(cfg), card="# m\n")
    assert load_model(tmp_path / "m").model.delta_weight == 2.5
    assert "delta" not in build_model(load_config(None, ["task=audio_ae", f"model.name={name}", *over]).model,
                                      input_shape=shape)(x).losses  # off by default
    with pytest.raises(Exception, match="delta_weight"):
        load_config(None, ["task=audio_ae", f"model.name={name}", "model.delta_weight=-1"])


def _labelled_mels(n, gen, n_classes=3, shape=(1, 16, 32)):
    """dB log-mels whose label is a band of energy (rows 2-4, 7-9 or 12-14), each example at its own
    level and with its own tilt across the bands (a 'voice'), in noise."""
    y = torch.randint(0, n_classes, (n,), generator=gen)
    rows = torch.arange(shape[1]).view(1, 1, -1, 1)
    centre = (2 + 5 * y + 1).view(-1, 1, 1, 1)
    band = ((rows - centre).abs() <= 1).float() * 20.0
    tilt = torch.randn(n, 1, 1, 1, generator=gen) * 0.8 * rows
    level = torch.randn(n, 1, 1, 1, generator=gen) * 6.0
    return -60.0 + band + tilt + level + torch.randn(n, *shape, generator=gen) * 3.0, y


@pytest.mark.parametrize("name", ["mel_ae", "mel_vae"])
def test_label_head_learns_the_labels(name, tmp_path):
    shape, over = SMALL["mel_vae"]
    cfg = load_config(None, ["task=audio_ae", f"model.name={name}", *over, "model.label_classes=3",
                             "model.label_weight=0.5", "model.dropout=0"])
    torch.manual_seed(0)
    model = build_model(cfg.model, input_shape=shape)
    gen = torch.Generator().manual_seed(0)
    x, y = _labelled_mels(192, gen)
    model.normalizer.fit(x)
    # the cross-entropy joins the loss with its weight
    loss, parts = model.loss({"x": x[:8], "label": y[:8]}, beta=0.0)
    torch.testing.assert_close(loss, parts["mse"] + parts["l1"] + 0.5 * parts["label_ce"] + 0.0 * parts.get("kl", 0))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with torch.no_grad():
        first = float(model.loss({"x": x, "label": y}, beta=0.0)[1]["label_ce"].mean())
    for step in range(60):
        i = torch.randint(0, len(x), (32,), generator=gen)
        loss, parts = model.loss({"x": x[i], "label": y[i]}, beta=0.0)
        opt.zero_grad()
        loss.mean().backward()
        opt.step()
    model.eval()
    x_new, y_new = _labelled_mels(96, torch.Generator().manual_seed(1))
    with torch.no_grad():
        last = float(model.loss({"x": x, "label": y}, beta=0.0)[1]["label_ce"].mean())
        acc = float((model.label_head(model.encode(x_new).mode()).argmax(1) == y_new).float().mean())
    assert last < 0.3 * first and acc > 0.9, (first, last, acc)
    # kept through save / load; a batch without labels is refused by name
    save_model(tmp_path / "m", model, config=config_to_dict(cfg), transform=transform_spec(cfg), card="# m\n")
    loaded = load_model(tmp_path / "m").model
    assert loaded.config()["label_classes"] == 3
    torch.testing.assert_close(loaded.label_head.weight, model.label_head.weight)
    with pytest.raises(ValueError, match="label_classes=3"):
        model.loss(x[:4])
    plain = build_model(load_config(None, ["task=audio_ae", f"model.name={name}", *over]).model, input_shape=shape)
    assert plain.label_head is None and "label_classes" not in plain.config()  # off by default
    plain.normalizer.fit(x)
    assert "label_ce" not in plain.loss({"x": x[:4], "label": y[:4]})[1]


def _clips(folder, n: int, rate: int):
    """``folder`` (made) holding ``n`` 2-s synthetic machine clips ``n0.wav``... at ``rate`` Hz; returned."""
    import soundfile as sf

    from latentbridge.data.synth.machine import synth_clip

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sf.write(folder / f"n{i}.wav", synth_clip((0, 0, i), sample_rate=rate, duration_s=2.0)[0], rate)
    return folder


def test_a_mel_autoencoder_of_one_channel_evaluates(tmp_path, caplog):
    """``audio.channel: 1`` of stereo recordings: evaluate scored its windows as (N, 1, L) against (N, L) rebuilt ones
    (a traceback, exit 1); the channel's own figures."""
    import soundfile as sf

    d = tmp_path / "stereo"
    d.mkdir()
    t = np.arange(16000 * 2) / 16000
    for i in range(4):
        sf.write(d / f"s{i}.wav", np.stack([0.3 * np.sin(2 * np.pi * (200 + 9 * i) * t),
                                            0.2 * np.sin(2 * np.pi * (310 + 7 * i) * t)], 1).astype(np.float32), 16000)
    assert main(["train", "--config", str(REPO / "configs" / "mel_ae.yaml"), "-o", f"data.train_dir={d}",
                 *[a for o in SMALL["mel_ae"][1] for a in ("-o", o)], "-o", "audio.channel=1", "-o",
                 "train.max_epochs=1", "--out", str(tmp_path / "run")]) == 0
    assert main(["evaluate", str(tmp_path / "run"), "--out", str(tmp_path / "ev")]) == 0
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["n_windows"] > 0 and np.isfinite(m["mel_mse"]) and np.isfinite(m["si_sdr_db"])
    assert "changed" not in m["data"]
    # recordings made again under the same names: they were evaluated as its held-out ones without a word
    for i in range(4):
        sf.write(d / f"s{i}.wav", np.stack([0.3 * np.sin(2 * np.pi * 500 * t)] * 2, 1)[:-800].astype(np.float32),
                 16000)
    with caplog.at_level(logging.WARNING):
        assert main(["evaluate", str(tmp_path / "run"), "--out", str(tmp_path / "ev2")]) == 0
    assert "the run's data changed since it was trained (4 of another size" in caplog.text
    assert "its held-out recordings, by name, may be other recordings" in caplog.text
    assert "(the data changed since training: 4 of another size" in \
        json.loads((tmp_path / "ev2" / "metrics.json").read_text())["data"]


def test_validation_copies_of_training_clips_are_named(tmp_path, caplog):
    """Clips under two names, one held out: the validation loss measures windows the model is trained on (said)."""
    d = _clips(tmp_path / "wavs", 3, 16000)
    shutil.copy(d / "n0.wav", d / "n0_copy.wav")
    with caplog.at_level("WARNING"):
        assert main(["train", "--config", str(REPO / "configs" / "mel_ae.yaml"), "-o", f"data.train_dir={d}",
                     *[a for o in SMALL["mel_ae"][1] for a in ("-o", o)], "-o", "data.val_fraction=0.5",
                     "-o", "train.max_epochs=1",
                     "--out", str(tmp_path / "run")]) == 0
    assert re.search(r"\d+ of the \d+ validation windows are copies of training windows \(the same samples under "
                     r"another name: .*n0(_copy)?\.wav\): the validation loss measures windows the model is trained on",
                     caplog.text), caplog.text


def test_label_head_needs_labels(tmp_path, capsys):
    """A folder of recordings has no labels: one line, exit 2, nothing written (audio_ae and anomaly)."""
    d = _clips(tmp_path / "wavs", 3, 16000)
    for cmd in (["train", "--config", str(REPO / "configs" / "mel_ae.yaml"), "-o", f"data.train_dir={d}"],
                ["anomaly", "fit", str(d), "-o", "model.name=mel_ae"]):
        out = tmp_path / "out"
        assert main([*cmd, "-o", "model.label_classes=10", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert "model.label_classes" in err and "no labels" in err and len(err.splitlines()) == 1, err
        assert not out.exists()
    # the digits' audio stage: labels missing, or beyond the classes
    from latentbridge.errors import ConfigError
    from latentbridge.tasks.mld import _fit_stage_on_arrays

    cfg = load_config(None, ["task=audio_ae", *SMALL["mel_ae"][1], "model.label_classes=2"])
    x = np.zeros((4, 1, 16, 40), np.float32)
    for labels, match in ((None, "no labels"), ((np.array([0, 1, 2, 1]), np.array([0])), "reach 2")):
        with pytest.raises(ConfigError, match=match):
            _fit_stage_on_arrays(cfg, tmp_path / "stage", x, x[:1], "clips", False, labels=labels)
        assert not (tmp_path / "stage").exists()


def test_time_shifts_reach_the_training_batches_and_follow_the_window(tmp_path, monkeypatch):
    """``augment.time_shift_*`` (half the windows, up to half a window; off in mel_ae.yaml): every training batch passes
    the shift, the model card says so; the shift follows a window the user shortens; a digits MLD's audio stage reads
    the same setting."""

    import latentbridge.data.augment as augment
    from latentbridge.tasks.pipeline import window_shift

    d = _clips(tmp_path / "wavs", 4, 8000)
    base = ["train", "--config", str(REPO / "configs" / "mel_ae.yaml"), "-o", f"data.train_dir={d}",
            "-o", "train.max_epochs=2", "-o", "train.batch_size=2", "-o", "train.progress_bar=false",
            "-o", "model.channels=[8,8,16,16]", "-o", "model.latent_dim=8"]
    shifted = ["-o", "augment.time_shift_p=0.5"]
    seen = []
    real = augment.shift_windows
    monkeypatch.setattr(augment, "shift_windows", lambda x, g, aug, max_frames: seen.append(
        (x.shape[0], max_frames, aug.time_shift_p)) or real(x, g, aug, max_frames))
    for extra, frames in (([], 64), (["-o", "audio.window_s=0.5", "-o", "audio.hop_s=0.5",
                                      "-o", "features.n_frames=64"], 32)):
        seen.clear()
        out = tmp_path / f"shifted{frames}"
        assert main([*base, *shifted, *extra, "--out", str(out)]) == 0
        windows = json.loads((out / "config.json").read_text())["data"]["n_train_windows"]
        assert sum(n for n, _, _ in seen) == 2 * windows and {(m, p) for _, m, p in seen} == {(frames, 0.5)}
        assert "50% of the training windows shifted in time by up to 50% of the window" in (out / "README.md").read_text()

    seen.clear()
    assert main([*base, "--out", str(tmp_path / "still")]) == 0  # the preset: no shifts
    assert not seen and "shifted" not in (tmp_path / "still" / "README.md").read_text()

    stage = dict(load_config(REPO / "configs" / "mld_avdigits.yaml", []).first_stage.stages["audio"])
    assert window_shift(load_config(None, [f"{k}={json.dumps(v)}" for k, v in stage.items()])) is None  # the preset's
    stage["augment"] = {"time_shift_p": 0.5, "time_shift_max": 0.25}
    assert window_shift(load_config(None, [f"{k}={json.dumps(v)}" for k, v in stage.items()])).fn.keywords == {
        "max_frames": 32}


def test_training_on_recordings_above_the_presets_rate_says_the_band_it_drops(tmp_path, caplog):
    """mel_ae.yaml models 8 kHz: 16-kHz recordings are resampled down, and training says what it never learns (a
    warning, where the same conversion when scoring a folder is an info line)."""

    from latentbridge.data.survey import conversions_line

    d = _clips(tmp_path / "wide", 3, 16000)
    with caplog.at_level("INFO"):
        assert main(["train", "--config", str(REPO / "configs" / "mel_ae.yaml"), "-o", f"data.train_dir={d}",
                     "-o", "train.max_epochs=1", "-o", "train.progress_bar=false", "-o", "model.channels=[8,8,16,16]",
                     "-o", "model.latent_dim=8", "--out", str(tmp_path / "run")]) == 0
    said = [r for r in caplog.records if "resampled to 8000 Hz" in r.getMessage()]
    assert len(said) == 1 and said[0].levelname == "WARNING", said
    assert said[0].getMessage() == ("3 of 3 files resampled to 8000 Hz (from 16000 Hz x3); the model learns nothing of "
                                    "what they hold between 4000 and 8000 Hz (a model at their rate: -o "
                                    "audio.sample_rate=16000 with the features' n_fft, hop_length and fmax scaled to it)")
    rates = {f"f{i}": 16000 for i in range(3)}
    assert conversions_line(rates, {k: 1 for k in rates}, 8000, None) == ("3 of 3 files resampled to 8000 Hz (from "
                                                                         "16000 Hz x3)", False)
    assert conversions_line({"a": 9000}, {"a": 1}, 8000, None, training=True)[1] is False  # a small step down
    assert conversions_line({"a": 8000}, {"a": 1}, 8000, None, training=True) == ("", False)


@pytest.mark.parametrize("name", list(SMALL))
def test_save_load_round_trip(name, tmp_path):
    model, shape = _model(name)
    x = _batch(name, shape)
    if name.startswith("mel"):
        model.normalizer.fit(x)
    model.eval()
    cfg = load_config(None, ["task=image_ae" if name.startswith("image") else "task=audio_ae", f"model.name={name}"])
    save_model(tmp_path / name, model, config=config_to_dict(cfg), transform=transform_spec(cfg), card="# m\n")
    loaded = load_model(tmp_path / name).model
    assert type(loaded) is type(model) and loaded.config() == model.config()
    torch.testing.assert_close(loaded.reconstruct(x), model.reconstruct(x))


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def audio_run(tmp_path_factory, feature_cache):
    if not FSDD.is_dir():
        pytest.skip(f"FSDD recordings not found at {FSDD}")
    out = tmp_path_factory.mktemp("audio_ae") / "model"
    args = ["train", "--config", str(REPO / "configs" / "mel_ae.yaml"), "--out", str(out)]
    for o in (f"data.train_dir={FSDD}", "data.limit=40", "data.val_fraction=0.2", "train.max_epochs=2",
              "train.batch_size=8", "train.progress_bar=false", "model.channels=[32,32,64,64]",
              "model.latent_dim=32"):
        args += ["-o", o]
    assert main(args) == 0
    return out


def test_audio_fit_and_evaluate(audio_run):
    info = json.loads((audio_run / "config.json").read_text())
    t = info["transform"]
    assert info["model_class"] == "mel_ae" and t["type"] == "audio" and t["features"]["kind"] == "mel"
    assert t["features"]["sample_rate"] == 8000 and t["features"]["n_frames"] == 128
    assert info["data"]["n_files"] == 40 and len(info["data"]["val_files"]) == 8
    val = [float(r["val/loss"]) for r in _rows(audio_run / "logs" / "csv" / "version_0" / "metrics.csv")
           if r.get("val/loss")]
    assert len(val) == 2 and val[1] < val[0]  # the loss falls

    out = audio_run.parent / "eval"
    assert main(["evaluate", str(audio_run), "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_windows"] == 8 and m["sample_rate"] == 8000
    assert 1.0 <= m["pesq"] <= 4.6 and 0.0 <= m["stoi"] <= 1.0
    assert 1.0 <= m["oracle_pesq"] <= 4.6 and m["oracle_stoi"] > m["stoi"]  # the model loses detail
    assert m["mel_mse"] > 0 and -1 <= m["mel_cosine"] <= 1 and math.isfinite(m["lsd_db"])
    assert (out / "report.html").stat().st_size > 1000 and (out / "spectrograms.png").exists()
    assert len(list(out.glob("example_*_reconstructed.wav"))) == 4
    # a run that names its test recordings (data.test_dir) is evaluated on them, not on its validation files
    from latentbridge.tasks.autoencode import _evaluate_audio

    saved = load_model(audio_run)
    test_dir = audio_run.parent / "test_recordings"
    test_dir.mkdir()
    for f in sorted(FSDD.glob("*_theo_*.wav"))[:3]:
        (test_dir / f.name).write_bytes(f.read_bytes())
    saved._workflow = saved.workflow.model_copy(update={"data": saved.workflow.data.model_copy(
        update={"test_dir": str(test_dir)})})
    res = _evaluate_audio(saved, None, 4, 64, 2)
    assert res.metrics["data"] == str(test_dir) and res.metrics["n_windows"] == 3
    (test_dir / "broken.wav").write_bytes(b"RIFF")  # one unusable recording: named, the others evaluated
    res = _evaluate_audio(saved, str(test_dir), 4, 64, 2)
    assert res.metrics["n_windows"] == 3


def test_a_mel_autoencoder_becomes_a_detector_through_calibrate(audio_run, tmp_path, capsys):
    """A mel autoencoder's run has no threshold: score and export sent the user to `anomaly calibrate`, which
    refused it with the same message (and then asked for detector statistics the run never fitted)."""
    import shutil

    run = tmp_path / "mel"
    shutil.copytree(audio_run, run)
    clips = sorted(FSDD.glob("*.wav"))[:12]
    assert main(["anomaly", "score", str(run), *map(str, clips), "--out", str(tmp_path / "s0")]) == 2
    assert f"calibrate it: latentbridge anomaly calibrate {run} NORMAL_DIR" in capsys.readouterr().err
    assert main(["anomaly", "calibrate", str(run), *map(str, clips)]) == 0
    assert capsys.readouterr().out.startswith("threshold none → ")
    anomaly = json.loads((run / "config.json").read_text())["anomaly"]
    assert anomaly["score"] == "mse" and sorted(anomaly["thresholds"]) == ["frame_max", "l1", "mse"]
    assert main(["anomaly", "score", str(run), *map(str, clips), "--out", str(tmp_path / "s1")]) == 0
    rows = [r for r in csv.DictReader((tmp_path / "s1" / "scores.csv").open()) if r["level"] != "window"]
    assert len(rows) == 12 and all(math.isfinite(float(r["score"])) for r in rows)
    assert main(["export", str(run), "--out", str(tmp_path / "mel.onnx")]) == 0


def test_a_calibrated_mel_autoencoder_is_served_as_the_detector_it_became(audio_run, tmp_path, capsys):
    """`serve` refused a mel autoencoder's run that `anomaly calibrate` had made a detector (which `anomaly score`,
    `listen --source`, `export` and the edge scorer take): "a 'audio_ae' model; the server serves anomaly, ...".
    Served now as that detector, scoring an upload as `anomaly score` scores the file; not yet calibrated, it is
    refused in one line naming `anomaly calibrate`."""
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    pytest.importorskip("httpx", reason="FastAPI's test client needs httpx")
    import shutil
    import socket

    import soundfile as sf
    from fastapi.testclient import TestClient

    from latentbridge.serve.app import create_app
    from latentbridge.serve.registry import load_models
    from latentbridge.tasks.anomaly import score

    run = tmp_path / "mel"
    shutil.copytree(audio_run, run)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["serve", str(run), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"calibrate it: latentbridge anomaly calibrate {run} NORMAL_DIR" in err, err
    clips = sorted(FSDD.glob("*.wav"))[:12]
    assert main(["anomaly", "calibrate", str(run), *map(str, clips)]) == 0
    ref = score(run, [clips[0]])
    with TestClient(create_app(load_models([run]))) as c:
        (listed,) = c.get("/api/models").json()
        assert listed["task"] == "anomaly" and listed["model_class"] == "mel_ae"
        assert listed["endpoints"] == ["score", "stream"] and listed["threshold"] == pytest.approx(ref.threshold)
        r = c.post("/api/models/mel/score?spectrogram=true",
                   files={"file": (clips[0].name, clips[0].read_bytes(), "audio/wav")})
        with c.websocket_connect("/api/models/mel/stream") as ws:  # the live stream, as `listen` scores
            wave, sr = sf.read(clips[0], dtype="float32")
            ws.send_text(json.dumps({"sample_rate": sr, "format": "f32"}))
            assert ws.receive_json()["type"] == "ready"
            ws.send_bytes(wave.astype("<f4").tobytes())
            ws.send_text(json.dumps({"end": True}))
            msgs = [ws.receive_json()]
            while msgs[-1]["type"] == "window":
                msgs.append(ws.receive_json())
    assert msgs[-1]["type"] == "end" and msgs[-1]["n_windows"] == len(msgs) - 1 >= 1, msgs[-1]
    assert all(math.isfinite(m["score"]) for m in msgs[:-1])
    assert r.status_code == 200 and len(r.json()["spectrogram"]["row_hz"]) > 0, r.text
    np.testing.assert_allclose([w["score"] for w in r.json()["windows"]], ref.window_scores, rtol=1e-5)
    assert r.json()["decision"] == ("anomalous" if ref.file_scores[0] > ref.threshold else "normal")


def test_audio_reconstruct_cli(audio_run, tmp_path, capsys):
    import soundfile as sf

    files = [FSDD / "3_jackson_5.wav", FSDD / "7_nicolas_2.wav"]
    assert main(["audio", "reconstruct", str(audio_run), *map(str, files), "--out", str(tmp_path),
                 "--n-iter", "8"]) == 0
    for f in files:
        out = tmp_path / f"{f.stem}_reconstructed.wav"
        a, b = sf.info(str(f)), sf.info(str(out))
        assert (b.frames, b.samplerate) == (a.frames, a.samplerate)
        assert (tmp_path / f"{f.stem}_spectrogram.png").stat().st_size > 0
    summary = json.loads((tmp_path / "reconstruct.json").read_text())
    assert len(summary["files"]) == 2 and "Griffin-Lim" in summary["phase"]
    for f in summary["files"]:  # named inside the folder (they named the temporary folder it was written in)
        assert (tmp_path / f["output"]).is_file() and (tmp_path / f["plot"]).is_file(), f
    for n_iter in ("-3", "1000000000000"):  # (10**12 ran until it was killed)
        assert main(["audio", "reconstruct", str(audio_run), str(files[0]), "--out", str(tmp_path / "x"),
                     "--n-iter", n_iter]) == 2 and not (tmp_path / "x").exists()
        assert "--n-iter must be from 1 to 10000" in capsys.readouterr().err
    # a folder already written is refused before the work (every file was decoded and rebuilt first)
    import latentbridge.commands as commands

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(commands.reconstruct_task, "reconstruct", lambda *a, **k: pytest.fail("reconstructed first"))
        assert main(["audio", "reconstruct", str(audio_run), str(files[0]), "--out", str(tmp_path)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    # a folder with unusable files: every one named before any work (the first stopped it, after others were done)
    import shutil

    import numpy as np

    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(files[0], bad / "a_good.wav")
    sf.write(bad / "b_blip.wav", 0.3 * np.sin(np.arange(400) / 3.0).astype(np.float32), 8000)  # 50 ms: under a
    # tenth of the 1-s window
    (bad / "c_empty.wav").write_bytes(b"")
    capsys.readouterr()
    assert main(["audio", "reconstruct", str(audio_run), str(bad), "--out", str(tmp_path / "y"), "--n-iter", "4"]) == 2
    err = capsys.readouterr().err
    assert "2 of 3 audio files cannot be used: " in err and "b_blip.wav: recording too short: 0.05 s" in err, err
    assert "c_empty.wav" in err and "PESQ" not in err and not (tmp_path / "y").exists()


def test_no_postfilter_of_a_model_without_one_is_said(audio_run, tmp_path, caplog):
    """--no-postfilter on a mel autoencoder (no post-filter: an MLD audio stage's) changed nothing, without a word."""
    with caplog.at_level("WARNING"):
        assert main(["audio", "reconstruct", str(audio_run), str(FSDD / "3_jackson_5.wav"), "--out",
                     str(tmp_path / "r"), "--n-iter", "2", "--no-postfilter"]) == 0
    assert "--no-postfilter: " in caplog.text and "has no post-filter (an MLD audio stage's)" in caplog.text


def test_audio_reconstruct_names_the_file_pesq_skipped(audio_run, tmp_path, caplog):
    """A clip long enough for the model but too short for PESQ: the warning said only 'PESQ/STOI skipped'."""
    import numpy as np
    import soundfile as sf

    clip = tmp_path / "in" / "short_clip.wav"
    clip.parent.mkdir()
    rng = np.random.default_rng(0)
    sf.write(clip, (0.1 * rng.standard_normal(1200)).astype(np.float32), 8000)  # 0.15 s
    assert main(["audio", "reconstruct", str(audio_run), str(clip), "--out", str(tmp_path / "o"), "--n-iter", "4"]) == 0
    assert f"{clip}: PESQ/STOI skipped: PESQ needs at least 0.25 s" in caplog.text, caplog.text
    row = json.loads((tmp_path / "o" / "reconstruct.json").read_text())["files"][0]
    assert row["pesq"] is None and row["stoi"] is None and np.isfinite(row["si_sdr"])


def test_audio_reconstruct_names_a_rebuild_clipped_at_full_scale(audio_run, tmp_path, caplog):
    """A float WAV over full scale (peaks of 4, a recorder's float export) was rebuilt at another level (-40 dBFS from a
    tiny model) and clipped at +-1 when written, without a word."""
    import logging

    import soundfile as sf

    from latentbridge.tasks.reconstruct import reconstruct

    t = np.arange(8000) / 8000
    sf.write(tmp_path / "loud.wav", (4.0 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 8000, subtype="FLOAT")
    with caplog.at_level(logging.WARNING, logger="latentbridge.tasks.reconstruct"):
        res = reconstruct(audio_run, [tmp_path / "loud.wav"], n_iter=4)
    assert "loud.wav: peaks at +12.0 dBFS, above full scale (a float file's samples over +-1, or its peaks once its " \
           "constant offset is taken out): the model learnt recordings under it" in caplog.text, caplog.text
    caplog.clear()
    # 16-bit samples cannot pass full scale: a clipped recording's peaks do once its offset is out (it blamed a float
    # WAV)
    clipped = np.clip(50 * np.sin(2 * np.pi * 440 * t) + 0.5, -1, 1)
    sf.write(tmp_path / "clipped.wav", clipped, 8000, subtype="PCM_16")
    with caplog.at_level(logging.WARNING, logger="latentbridge.tasks.reconstruct"):
        reconstruct(audio_run, [tmp_path / "clipped.wav"], n_iter=4)
    assert "clipped.wav: peaks at" in caplog.text and "(a recording clipped at full scale, whose peaks overshoot it " \
           "once its constant offset is taken out)" in caplog.text, caplog.text
    caplog.clear()
    sf.write(tmp_path / "fine.wav", (0.9 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 8000, subtype="FLOAT")
    with caplog.at_level(logging.WARNING, logger="latentbridge.tasks.reconstruct"):
        reconstruct(audio_run, [tmp_path / "fine.wav"], n_iter=4)
    assert "full scale" not in caplog.text, caplog.text
    assert np.abs(res.files[0].output).max() <= 1.0


def test_audio_reconstruct_applies_the_stage_postfilter(audio_run, tmp_path, capsys):
    """A model folder with a global-variance post-filter (an MLD audio stage): ``audio reconstruct``
    passes the decoded log-mels through it, as MLD sampling does; ``--no-postfilter`` gives the raw
    decoder, identical to the same model without one; a post-filter for other bands is refused by name."""
    import shutil

    import soundfile as sf

    from latentbridge.io import read_audio
    from latentbridge.models.hub import update_info
    from latentbridge.transforms.postfilter import GlobalVariancePostFilter
    from latentbridge.transforms.spec import build_spectrogram

    saved = load_model(audio_run)
    clips = [read_audio(f, sample_rate=8000)[0].reshape(-1)[:8000] for f in sorted(FSDD.glob("*_theo_*.wav"))[:16]]
    x = build_spectrogram(saved.transform)(torch.from_numpy(np.stack([np.pad(c, (0, 8000 - len(c))) for c in clips])))
    with torch.no_grad():
        pf = GlobalVariancePostFilter.fit(x, saved.model.reconstruct(x))
    assert pf.ratio.max() > 1.2  # a 2-epoch decoder is smoother than the data: the filter does something
    stage = tmp_path / "stage"  # the model folder with a post-filter, as the MLD stage fit saves it
    shutil.copytree(audio_run, stage, ignore=shutil.ignore_patterns("checkpoints", "logs"))
    update_info(stage, {"postfilter": pf.to_dict()})

    clip = FSDD / "3_jackson_5.wav"
    runs = {"filtered": [stage], "raw": [stage, "--no-postfilter"], "plain": [audio_run]}
    for name, (model, *flags) in runs.items():
        assert main(["audio", "reconstruct", str(model), str(clip), "--out", str(tmp_path / name), "--n-iter", "8",
                     *flags]) == 0
    assert "log-mels post-filtered" in capsys.readouterr().out
    summary = {n: json.loads((tmp_path / n / "reconstruct.json").read_text()) for n in runs}
    assert [summary[n]["postfilter"] for n in runs] == [True, False, False]
    wav = {n: sf.read(str(tmp_path / n / f"{clip.stem}_reconstructed.wav"))[0] for n in runs}
    np.testing.assert_array_equal(wav["raw"], wav["plain"])
    assert np.abs(wav["filtered"] - wav["raw"]).max() > 1e-3

    update_info(stage, {"postfilter": {**pf.to_dict(), "ratio": [1.0] * 10}})
    assert main(["audio", "reconstruct", str(stage), str(clip), "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert str(stage) in err and "post-filter for 10 mel bands" in err and "Traceback" not in err
    assert not (tmp_path / "bad").exists()


def test_reconstruct_long_file_overlap_add(audio_run, tmp_path):
    """A file longer than one window with a rate other than the model's: windows are
    overlap-added and the result resampled back to the file's rate and length."""
    from latentbridge.commands import reconstruct
    from latentbridge.io import read_audio, write_wav

    a, _ = read_audio(FSDD / "3_jackson_5.wav")
    b, _ = read_audio(FSDD / "7_nicolas_2.wav")
    wave = np.concatenate([a, np.zeros(2000, np.float32), b, a])
    import librosa

    wave16 = librosa.resample(wave, orig_sr=8000, target_sr=16000)
    src = write_wav(tmp_path / "long.wav", wave16, 16000)
    res = reconstruct(audio_run, [src], tmp_path / "out", n_iter=4)
    import soundfile as sf

    info = sf.info(str(tmp_path / "out" / "long_reconstructed.wav"))
    assert (info.frames, info.samplerate) == (len(wave16), 16000)
    # 1-s windows, overlapping by half a window on the 64-sample frame grid (hop 3968 samples)
    assert res["files"][0]["n_windows"] == math.ceil((len(wave) - 8000) / 3968) + 1
    from latentbridge.io import level_dbfs

    assert res["files"][0]["level_in_dbfs"] == pytest.approx(level_dbfs(wave), abs=0.5)  # the model's rate
    assert -80 < res["files"][0]["level_out_dbfs"] < 0


def test_reconstruct_has_no_seam_where_a_model_decodes_a_window_s_end_as_silence(audio_run, tmp_path, monkeypatch):
    """A model trained on padded clips decodes a window's last frames as silence; windows side by side, each inverted
    on its own, left 0.1 s at -89 dB every second of a long recording. A model that returns its input but with the
    last 16 frames of every window silenced: the rebuilt noise keeps its level everywhere."""
    import soundfile as sf

    from latentbridge.models import hub
    from latentbridge.tasks.reconstruct import reconstruct

    real = hub.load_model

    def silenced_ends(path):
        saved = real(path)

        def reconstruct_(x):
            y = x.clone()
            y[..., -18:] = -100.0  # 126 frames hold the window's samples, 128 in all
            return y
        saved.model.reconstruct = reconstruct_
        return saved

    monkeypatch.setattr(hub, "load_model", silenced_ends)
    rng = np.random.default_rng(0)
    src = tmp_path / "noise.wav"
    sf.write(src, (0.1 * rng.standard_normal(8000 * 5)).astype(np.float32), 8000)
    out = reconstruct(audio_run, [src], n_iter=16).files[0].output
    frames = out[:len(out) // 400 * 400].reshape(-1, 400)  # 50 ms
    db = 20 * np.log10(np.sqrt((frames ** 2).mean(1)) + 1e-9)[2:-2]
    assert db.max() - db.min() < 6, np.round(db, 1)  # was: dips of 40 dB and more at every window's end


def test_reconstruct_refuses_input_phase_for_mel(audio_run, tmp_path):
    from latentbridge.tasks.reconstruct import reconstruct

    with pytest.raises(ValueError, match="keep no phase"):
        reconstruct(audio_run, [FSDD / "3_jackson_5.wav"], phase="input")


@pytest.mark.parametrize("override, message", [
    ("features.center=false", "features.center: false is not for the audio_ae task"),
    ("features.hop_length=300", "features.hop_length (300) is longer than the STFT's window (features.n_fft, 256"),
])
def test_spectrograms_that_cannot_be_turned_back_into_sound_are_refused_at_train(tmp_path, capsys, override, message):
    """Both trained without a word and failed at ``audio reconstruct`` with torch's traceback (istft's window
    overlap-add; hop_length <= win_length)."""
    out = tmp_path / "m"
    assert main(["train", "--config", str(REPO / "configs" / "mel_ae.yaml"), "--out", str(out), "-o", override]) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_reconstruct_refuses_a_model_of_uncentred_features(tmp_path, capsys, feature_cache):
    if not FSDD.is_dir():
        pytest.skip(f"FSDD recordings not found at {FSDD}")
    train = tmp_path / "train"
    train.mkdir()
    for k in range(10):
        shutil.copy(FSDD / f"0_jackson_{k}.wav", train)
    model = tmp_path / "m"  # an anomaly autoencoder may read uncentred frames (it rebuilds no sound to score)
    assert main(["anomaly", "fit", str(train), "--out", str(model), "-o", "model.name=conv_ae",
                 "-o", "features.center=false", "-o", "train.max_epochs=1"]) == 0
    capsys.readouterr()
    assert main(["audio", "reconstruct", str(model), str(train / "0_jackson_0.wav"), "--out", str(tmp_path / "r")]) == 2
    assert "not centred (features.center: false)" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_image_fit_and_evaluate(tmp_path):
    if not (MNIST_ROOT / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"MNIST not found at {MNIST_ROOT}")
    out = tmp_path / "img"
    args = ["train", "--config", str(REPO / "configs" / "image_ae_dense.yaml"), "--out", str(out)]
    for o in (f"data.root={MNIST_ROOT}", "data.limit=600", "train.max_epochs=2", "train.batch_size=32",
              "train.progress_bar=false", "model.hidden_dims=[128,64]"):
        args += ["-o", o]
    assert main(args) == 0
    info = json.loads((out / "config.json").read_text())
    assert info["data"]["n_train"] == 540 and info["data"]["n_val"] == 60
    card = (out / "README.md").read_text()
    if info["data"]["offline_split"]:
        assert "offline split" in card
    val = [float(r["val/loss"]) for r in _rows(out / "logs" / "csv" / "version_0" / "metrics.csv")
           if r.get("val/loss")]
    assert val[1] < val[0]
    assert main(["evaluate", str(out), "--out", str(tmp_path / "eval")]) == 0
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert 0 < m["test_mse"] < 0.25 and 0 < m["test_bce"] < 1.0 and m["n_images"] > 0
    assert (tmp_path / "eval" / "reconstructions.png").exists() and (tmp_path / "eval" / "report.html").exists()


def test_early_stopping_stops_and_says_so(tmp_path, caplog):
    """Weights that do not move (SGD at lr 1e-30): no better validation loss after the first epoch, so a patience of 1
    stops the run after epoch 2 of 5, and the log says why (it ended at "epoch 2/5", nothing more)."""
    if not (MNIST_ROOT / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"MNIST not found at {MNIST_ROOT}")
    out = tmp_path / "img"
    args = ["train", "--config", str(REPO / "configs" / "image_ae_dense.yaml"), "--out", str(out)]
    for o in (f"data.root={MNIST_ROOT}", "data.limit=200", "train.max_epochs=5", "train.progress_bar=false",
              "model.hidden_dims=[32,16]", "train.optimizer=sgd", "train.lr=1e-30", "train.scheduler=constant",
              "train.early_stopping_patience=1"):
        args += ["-o", o]
    with caplog.at_level("INFO"):
        assert main(args) == 0
    assert json.loads((out / "config.json").read_text())["training"]["epochs"] == 2
    assert "early stopping: no better val/loss in 1 epochs (train.early_stopping_patience); stopped after epoch 2 " \
           "of 5" in caplog.text


def test_max_steps_inside_an_epoch_is_said(tmp_path, caplog, capsys):
    """max_steps ending inside an epoch: that epoch went without validation or checkpoint, and the cosine schedule set
    for max_epochs stopped before annealing, both unsaid (Lightning's warning of a missing monitored key named its own
    file); the epoch's line in the log showed the epoch before's validation loss as its own."""
    if not (MNIST_ROOT / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"MNIST not found at {MNIST_ROOT}")

    def train(out, epochs, steps):
        args = ["train", "--config", str(REPO / "configs" / "image_ae_dense.yaml"), "--out", str(tmp_path / out)]
        for o in (f"data.root={MNIST_ROOT}", "data.limit=200", f"train.max_epochs={epochs}",
                  "model.hidden_dims=[32,16]", "train.batch_size=32", f"train.max_steps={steps}"):
            args += ["-o", o]
        caplog.clear()
        with caplog.at_level("WARNING"):
            assert main(args) == 0
        return capsys.readouterr()

    said = train("img", 3, 7)
    assert re.search(r"train.max_steps 7 stops the training inside epoch 2 of train.max_epochs 3 \(5 steps an epoch\): "
                     r"that epoch ends without its validation and checkpoint; the cosine learning-rate schedule spans "
                     r"train.max_epochs, so it stops before annealing \(-o train.max_epochs=2 for a whole one\)",
                     caplog.text), caplog.text
    epochs = [line for line in said.out.splitlines() if line.startswith("epoch ")]
    assert epochs[0].startswith("epoch 1/3: ") and "val/loss" in epochs[0], said.out
    assert epochs[1].startswith("epoch 2/3: ") and "val/" not in epochs[1], said.out  # not validated: none shown
    assert "monitored key" not in said.err + caplog.text
    train("img1", 1, 3)  # inside the only epoch: the schedule (by epochs) is whole, and max_epochs=1 was advised
    assert "stops the training inside epoch 1 of train.max_epochs 1 (5 steps an epoch): that epoch ends without its " \
           "validation and checkpoint" in caplog.text and "cosine" not in caplog.text, caplog.text


def test_image_autoencoder_on_a_folder_of_colour_images(tmp_path):
    """A folder of the user's own images (RGB, another size, classes in sub-folders): the image autoencoders
    read MNIST only before."""
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:20, :20]
    for cls, colour in (("red", (230, 40, 30)), ("blue", (30, 60, 220))):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(30):  # a disc of the class's colour somewhere on a grey ground, 20 x 20 (read at 16)
            cy, cx, r = rng.integers(6, 14), rng.integers(6, 14), rng.integers(3, 6)
            im = np.full((20, 20, 3), 90, np.uint8)
            im[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = colour
            Image.fromarray(im).save(tmp_path / "imgs" / cls / f"{i}.png")
    out = tmp_path / "run"
    args = ["train", "--config", str(REPO / "configs" / "image_ae_conv.yaml"), "--out", str(out)]
    for o in (f"data.root={tmp_path / 'imgs'}", "data.source=folder", "data.image_size=16", "data.channels=3",
              "data.class_folders=true", "train.max_epochs=6", "train.batch_size=8", "train.progress_bar=false",
              "model.channels=[8,16]", "model.latent_dim=8"):
        args += ["-o", o]
    assert main(args) == 0
    info = json.loads((out / "config.json").read_text())
    assert (info["data"]["source"], info["data"]["n_train"] + info["data"]["n_val"] + info["data"]["n_test"]) == \
        ("folder", 60)
    assert info["transform"]["channels"] == 3 and info["transform"]["height"] == 16
    card = (out / "README.md").read_text()
    assert "MNIST" not in card and "(3, 16, 16)" in card and str(tmp_path / "imgs") in card
    val = [float(r["val/loss"]) for r in _rows(out / "logs" / "csv" / "version_0" / "metrics.csv") if r.get("val/loss")]
    assert val[-1] < val[0]
    assert main(["evaluate", str(out), "--out", str(tmp_path / "eval")]) == 0
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert m["source"] == "folder" and m["n_images"] == info["data"]["n_test"] > 0 and 0 < m["test_mse"] < 0.1
    assert set(m["test_mse_per_class"]) <= {"red", "blue"} and "test_mse_per_digit" not in m
    assert (tmp_path / "eval" / "reconstructions.png").stat().st_size > 1000
    flat = tmp_path / "flat"  # a folder of images, no class folders: refused ("every image must be in a class
    flat.mkdir()  # sub-folder"), where classes only split the error; read whole
    for f in sorted((tmp_path / "imgs" / "red").glob("*.png"))[:5]:
        shutil.copy(f, flat / f.name)
    (flat / "notes").mkdir()  # a sub-folder of no image makes no class
    (flat / "notes" / "readme.txt").write_text("shot on the bench")
    assert main(["evaluate", str(out), "--out", str(tmp_path / "eval_flat"), "--data", str(flat)]) == 0
    m = json.loads((tmp_path / "eval_flat" / "metrics.json").read_text())
    assert m["n_images"] == 5 and 0 < m["test_mse"] < 0.1 and not m.get("test_mse_per_class")


def test_a_resume_over_a_changed_data_folder_is_refused(tmp_path, capsys, caplog):
    """Images copied into the folder between a training and its resume: the split was drawn anew over them (n_train 14
    -> 22), and images already trained on could land in the test set. Refused, naming them, the run left as it was; the
    folder restored, the resume goes on. Recordings alike (the fit pipeline of the audio models)."""
    import soundfile as sf
    from PIL import Image

    from latentbridge.data.synth.machine import synth_clip

    rng = np.random.default_rng(0)
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(imgs / f"{i}.png")
    out = tmp_path / "run"
    args = ["train", "--config", str(REPO / "configs" / "image_ae_conv.yaml"), "--out", str(out)]
    for o in (f"data.root={imgs}", "data.source=folder", "data.image_size=16", "train.batch_size=4",
              "train.progress_bar=false", "model.channels=[4,8]", "model.latent_dim=4"):
        args += ["-o", o]
    assert main([*args, "-o", "train.max_epochs=1"]) == 0
    for i in range(12, 15):
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(imgs / f"{i}.png")
    first = (imgs / "0.png").read_bytes()
    (imgs / "0.png").unlink()
    before = (out / "config.json").read_text()
    capsys.readouterr()
    assert main([*args, "-o", "train.max_epochs=2", "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"{out}: cannot resume: the training data changed since the run started (3 added (" in err
    assert "12.png" in err and "; 1 gone (" in err and "0.png" in err and "nothing in the run folder was changed" in err
    assert (out / "config.json").read_text() == before
    for i in range(12, 15):
        (imgs / f"{i}.png").unlink()
    (imgs / "0.png").write_bytes(first)
    assert main([*args, "-o", "train.max_epochs=2", "--resume"]) == 0
    # evaluated over the folder changed since: its test split, drawn anew, held images the run trained on
    from latentbridge.data.images import load_image_data
    from latentbridge.models.hub import load_model

    cfg = load_model(out).workflow
    before = load_image_data(cfg.data, cfg.train.seed, read=())  # the split the run trained with
    trained = {str(f.resolve()) for f in before.train.files}
    held = {str(f.resolve()) for f in [*before.val.files, *before.test.files]}
    (imgs / "0.png").unlink()
    for i in range(15, 60):  # images added until the new test split holds training images and held-out ones
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(imgs / f"{i}.png")
        anew = [str(f.resolve()) for f in load_image_data(cfg.data, cfg.train.seed, read=()).test.files]
        unseen = [f for f in anew if f not in trained]
        if len(unseen) < len(anew) and set(unseen) & held:  # (to leave out, to keep)
            break
    else:
        pytest.fail("no folder of up to 60 images made the case")
    with caplog.at_level("WARNING"):
        assert main(["evaluate", str(out), "--out", str(tmp_path / "ev_changed")]) == 0
    assert json.loads((tmp_path / "ev_changed" / "metrics.json").read_text())["n_images"] == len(unseen)
    assert f"its test split, drawn anew over them, held {len(anew) - len(unseen)} of the images it trained on, left " \
        f"out ({len(unseen)} test images remain)" in caplog.text
    # a record that names no file held out (runs before): it cannot tell which, and says so
    record = json.loads((out / "logs" / "data_files.json").read_text())
    (out / "logs" / "data_files.json").write_text(json.dumps({**record, "held_out": []}))
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert main(["evaluate", str(out), "--out", str(tmp_path / "ev_old")]) == 0
    assert json.loads((tmp_path / "ev_old" / "metrics.json").read_text())["n_images"] == len(anew)
    assert "may hold images it trained on (its record does not say which" in caplog.text

    wavs = _clips(tmp_path / "wavs", 4, 8000)
    base = ["train", "--config", str(REPO / "configs" / "mel_ae.yaml"), "-o", f"data.train_dir={wavs}",
            "-o", "train.progress_bar=false", "-o", "model.channels=[8,8,16,16]", "-o", "model.latent_dim=8",
            "--out", str(tmp_path / "mel")]
    assert main([*base, "-o", "train.max_epochs=1"]) == 0
    sf.write(wavs / "n9.wav", synth_clip((0, 0, 9), sample_rate=8000, duration_s=2.0)[0], 8000)
    assert main([*base, "-o", "train.max_epochs=2", "--resume"]) == 2
    assert "1 added (" in capsys.readouterr().err


@pytest.mark.parametrize("preset", ["mel_ae", "mel_vae", "mel_ae_music", "image_ae_dense", "image_ae_conv"])
def test_presets_build(preset):
    cfg = load_config(REPO / "configs" / f"{preset}.yaml")
    shape = (1, cfg.features.n_mels, cfg.n_frames) if cfg.task == "audio_ae" else (1, 28, 28)
    model = build_model(cfg.model, **cfg.example_data())
    assert cfg.train.weight_decay > 0 and cfg.train.gradient_clip
    if cfg.task == "audio_ae":
        assert cfg.model.latent_dim == 128
    assert model.config()["input_shape"] == list(shape)


@pytest.mark.parametrize("preset", ["mel_ae", "mel_vae"])
def test_an_even_kernel_is_a_config_error(preset, tmp_path, capsys):
    """An even kernel's "same" padding lengthened the frames by one per convolution: a shape traceback in the
    first step, and a half-made run folder that refused the rerun."""
    out = tmp_path / "run"
    assert main(["train", "--config", str(REPO / "configs" / f"{preset}.yaml"), "--out", str(out),
                 "-o", f"data.train_dir={tmp_path}", "-o", "model.kernel_size=4"]) == 2
    err = capsys.readouterr().err
    assert "'model.kernel_size': must be odd" in err and "try 5" in err and "Traceback" not in err, err
    assert not out.exists()
    assert load_config(REPO / "configs" / f"{preset}.yaml", ["model.kernel_size=5"]).model.kernel_size == 5


def test_a_run_without_validation_data_does_not_call_its_training_loss_a_validation_loss(tmp_path, monkeypatch,
                                                                                          capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "imgs").mkdir()
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "imgs" / f"{i}.png")
    import warnings

    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        assert main(["train", "--config", str(REPO / "configs" / "image_ae_conv.yaml"), "--out", str(tmp_path / "run"),
                     "-o", "data.source=folder", "-o", f"data.root={tmp_path / 'imgs'}", "-o", "data.image_size=16",
                     "-o", "data.channels=3", "-o", "model.channels=[8,16]", "-o", "train.max_epochs=2",
                     "-o", "data.val_fraction=0"]) == 0
    # Lightning's "You defined a `validation_step` but have no `val_dataloader`" reached the user: the card says it
    assert not [w for w in said if "val_dataloader" in str(w.message)], [str(w.message) for w in said]
    info = json.loads((tmp_path / "run" / "config.json").read_text())
    assert info["data"]["n_val"] == 0
    assert info["training"]["best_val_loss"] is None and info["training"]["best_train_loss"] > 0
    assert "no validation data (best training loss" in (tmp_path / "run" / "README.md").read_text()
    with pytest.raises(Exception, match="a 'image_ae' model; export writes anomaly detectors"):
        from latentbridge.export import export_onnx

        export_onnx(tmp_path / "run", tmp_path / "ae.onnx")
    # the data path as `train` was given it, relative, read from another folder: said so
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--config", str(REPO / "configs" / "image_ae_conv.yaml"), "--out", "rel", "-o",
                 "data.source=folder", "-o", "data.root=imgs", "-o", "data.image_size=16", "-o", "data.channels=3",
                 "-o", "model.channels=[8,16]", "-o", "train.max_epochs=1"]) == 0
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "rel"), "--out", "ev"]) == 2
    err = capsys.readouterr().err
    assert "imgs: image folder does not exist (the run's data.root, relative to the folder `train` ran in" in err
    assert main(["evaluate", str(tmp_path / "rel"), "--out", "ev", "--data", str(tmp_path / "imgs")]) == 0


def test_evaluate_data_reads_the_runs_stems_and_counts_the_files_it_used(tmp_path, caplog):
    """`evaluate --data MUSDB_ROOT` of a vocals model scored every stem and the mixture (15 files where 3 were
    vocals); a folder with an unreadable file counted it among the files evaluated."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    root = tmp_path / "musdb"
    for t in range(3):
        for stem in ("vocals", "drums", "mixture"):
            (root / f"track {t}").mkdir(parents=True, exist_ok=True)
            sf.write(root / f"track {t}" / f"{stem}.wav", (0.1 * rng.standard_normal(8000)).astype(np.float32), 8000)
    out = tmp_path / "run"
    overrides = [f"data.train_dir={root}", "audio.sample_rate=8000", "audio.window_s=0.5", "audio.hop_s=0.5",
                 "features.n_fft=256", "features.hop_length=64", "features.n_mels=16", "features.fmax=4000",
                 "model.channels=[8,8]",
                 "model.latent_dim=8", "train.max_epochs=1", "train.batch_size=4", "train.progress_bar=false"]
    assert main(["train", "--config", str(REPO / "configs" / "mel_ae_music.yaml"), "--out", str(out),
                 *[x for o in overrides for x in ("-o", o)]]) == 0
    assert main(["evaluate", str(out), "--data", str(root), "--out", str(tmp_path / "e")]) == 0
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert m["n_files"] == 3 and m["n_windows"] == 6 and m["n_files_left_out"] == 0  # the vocals only
    plain = tmp_path / "plain"  # a folder of recordings, no MUSDB layout: every file, the broken one left out
    plain.mkdir()
    for i in range(2):
        sf.write(plain / f"v{i}.wav", (0.1 * rng.standard_normal(8000)).astype(np.float32), 8000)
    (plain / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    assert main(["evaluate", str(out), "--data", str(plain), "--out", str(tmp_path / "e2")]) == 0
    m = json.loads((tmp_path / "e2" / "metrics.json").read_text())
    assert m["n_files"] == 2 and m["n_files_left_out"] == 1 and "broken.wav" in m["left_out"][0]
    # MUSDB18's own root (train/ and test/ folders of tracks): vocals of test/ only, the name's case aside; a track
    # without vocals named (it scored every stem and the mixture of both splits, 28 files for 4 vocals)
    hq = tmp_path / "hq"
    for split, tracks in (("train", ["a", "b"]), ("test", ["c", "d", "e"])):
        for t in tracks:
            (hq / split / t).mkdir(parents=True)
            for stem in ("Vocals" if t == "d" else "vocals", "mixture", "drums"):
                if not (t == "e" and stem == "vocals"):
                    sf.write(hq / split / t / f"{stem}.wav", (0.1 * rng.standard_normal(8000)).astype(np.float32), 8000)
    assert main(["evaluate", str(out), "--data", str(hq), "--out", str(tmp_path / "e3")]) == 0
    m = json.loads((tmp_path / "e3" / "metrics.json").read_text())
    assert m["n_files"] == 2 and m["n_windows"] == 4  # c and d: the test split, Vocals.wav found
    assert "1 track(s) without the model's stem, left out: e (no vocals)" in caplog.text
    # made a detector on its MUSDB root, it calibrates on the vocals (drums and mixture were taken as normal vocals)
    assert main(["anomaly", "calibrate", str(out), str(root)]) == 0
    assert json.loads((out / "config.json").read_text())["anomaly"]["calibrated_on"].startswith("3 files / 6 windows")


def test_evaluation_windows_are_spread_over_the_files():
    """The cap on evaluated windows gave a minute-long recording 41 of 64 windows and 11 short clips none."""
    from latentbridge.tasks.autoencode import _spread_over_files

    counts = [41] + [1] * 34
    windows = np.arange(sum(counts))
    kept, labels, n_files = _spread_over_files(windows, [str(w) for w in windows], counts, 64)
    assert len(kept) == 64 and n_files == 35 and (kept < 41).sum() == 30 and labels == [str(k) for k in kept]
    kept, _, n_files = _spread_over_files(np.arange(300), [""] * 300, [3] * 100, 10)  # more files than windows
    assert n_files == 10 and list(kept) == [0, 33, 66, 99, 132, 165, 198, 231, 264, 297]


def test_reconstruct_names_inputs_below_the_band_and_mixed_down(audio_run, tmp_path, caplog):
    """A 4-kHz recording for an 8-kHz model and a stereo one went through without a word."""
    import logging

    import soundfile as sf

    from latentbridge.tasks.reconstruct import reconstruct

    rng = np.random.default_rng(0)
    sf.write(tmp_path / "low.wav", (0.1 * rng.standard_normal(4000)).astype(np.float32), 4000)
    sf.write(tmp_path / "two.wav", (0.1 * rng.standard_normal((8000, 2))).astype(np.float32), 8000)
    with caplog.at_level(logging.WARNING, logger="latentbridge.tasks.reconstruct"):
        reconstruct(audio_run, [tmp_path / "low.wav", tmp_path / "two.wav"], n_iter=2)
    assert "1 input(s) recorded below the model's band (it reaches 4000 Hz): low.wav (4000 Hz)" in caplog.text
    assert "1 input(s) of several channels rebuilt as their mono mix: two.wav (2 channels)" in caplog.text
    # a file given directly and through its folder: rebuilt once (it was twice, the second as two__reconstructed)
    assert [r.stem for r in reconstruct(audio_run, [tmp_path / "two.wav", tmp_path], n_iter=2).files] == ["two", "low"]
    # one file name in two folders: named by their folders, as sample names its conditions (they were rec, rec_)
    for site in ("site_a", "site_b"):
        (tmp_path / "sites" / site).mkdir(parents=True)
        sf.write(tmp_path / "sites" / site / "rec.wav", (0.1 * rng.standard_normal(8000)).astype(np.float32), 8000)
    assert [r.stem for r in reconstruct(audio_run, [tmp_path / "sites"], n_iter=2).files] == ["site_a_rec", "site_b_rec"]
    # evaluate --data says the same of the folder's recordings (it said nothing) and keeps them in metrics.json
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="latentbridge.tasks.reconstruct"):
        assert main(["evaluate", str(audio_run), "--data", str(tmp_path), "--out", str(tmp_path / "ev")]) == 0
    assert "1 input(s) recorded below the model's band (it reaches 4000 Hz): low.wav (4000 Hz); resampled, their " \
           "top is empty, and the evaluated sound" in caplog.text
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["recorded_below_band"] == ["low.wav (4000 Hz)"]


def _images_evaluate_reads(monkeypatch) -> list:
    """The images each ``evaluate --data`` reads from the other folder (``every_image``), in a list it fills."""
    import latentbridge.data.images as images_mod

    read, every_image = [], images_mod.every_image

    def spy(*args, **kwargs):
        found = every_image(*args, **kwargs)
        read.append(found[0].images)
        return found

    monkeypatch.setattr(images_mod, "every_image", spy)
    return read


def test_evaluate_data_reads_another_folder_as_the_run_read_its_own(tmp_path, monkeypatch):
    """`evaluate --data` re-derived the bit depth for the other folder: 12-bit frames whose largest value is 1000 read
    as 10-bit ones, 4x brighter than training read the same camera (400 read 100, not 25)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, spot, n in (("train12", 4000, 12), ("dim12", 1000, 4)):  # one camera's 12-bit frames, in 16-bit PNGs
        (tmp_path / name).mkdir()
        for i in range(n):
            a = np.full((16, 16), 400, np.uint16)
            x, y = rng.integers(2, 10, 2)
            a[y:y + 4, x:x + 4] = spot
            Image.fromarray(a).save(tmp_path / name / f"f{i:02d}.png")
    out = tmp_path / "run"
    assert main(["train", "--config", str(REPO / "configs" / "image_ae_conv.yaml"), "--out", str(out), "-o",
                 "data.source=folder", "-o", f"data.root={tmp_path / 'train12'}", "-o", "data.image_size=16", "-o",
                 "model.channels=[8,16]", "-o", "train.max_epochs=1", "-o", "train.progress_bar=false"]) == 0
    assert json.loads((out / "config.json").read_text())["data"]["reading"]["grey_bits"] == 12
    read = _images_evaluate_reads(monkeypatch)
    assert main(["evaluate", str(out), "--data", str(tmp_path / "dim12"), "--out", str(tmp_path / "ev")]) == 0
    assert np.unique(read[0]).tolist() == [25, 62]  # 400 and 1000 of 4095, as training read them (100 and 249)


def test_evaluate_data_judges_what_the_run_never_decided_from_the_other_folder(tmp_path, monkeypatch, caplog):
    """A run trained on opaque 8-bit images saved the defaults of what its folder never had (a black backdrop, no
    bit depth); `evaluate --data` applied them to another folder: black ink on a transparent canvas read as solid
    black (max 0), and 16-bit frames each over its own bit depth (largest value 900 read 224, the folder's 12 bits
    give 56). The run's bit depth still holds where it decided one, and a folder beyond it is named."""
    import logging

    from PIL import Image, ImageDraw

    def folder(name):
        (tmp_path / name).mkdir()
        return tmp_path / name

    opaque, icons, frames, deep = folder("opaque"), folder("icons"), folder("frames"), folder("deep")
    rng = np.random.default_rng(0)
    for i in range(20):
        im = Image.new("L", (16, 16), 0)
        ImageDraw.Draw(im).ellipse(tuple(int(v) for v in (*rng.integers(1, 5, 2), *rng.integers(10, 15, 2))),
                                   outline=255, width=2)
        im.save(opaque / f"o{i:02d}.png")
    for i in range(4):
        icon = Image.new("RGBA", (16, 16), (0, 0, 0, 0))
        ImageDraw.Draw(icon).line((2, 2 + 3 * i, 14, 14), fill=(0, 0, 0, 255), width=2)
        icon.save(icons / f"i{i}.png")
    for i, top in enumerate((900, 4000, 2000, 3000)):
        a = np.full((16, 16), 100, np.uint16)
        a[4:8, 4:8] = top
        Image.fromarray(a).save(frames / f"f{i}.png")
        Image.fromarray(a * 4).save(deep / f"f{i}.png")  # 14-bit values: 16000 at most
    run = tmp_path / "run"
    assert main(["train", "--config", str(REPO / "configs" / "image_ae_conv.yaml"), "--out", str(run), "-o",
                 "data.source=folder", "-o", f"data.root={opaque}", "-o", "data.image_size=16", "-o",
                 "model.channels=[8,16]", "-o", "train.max_epochs=1", "-o", "train.progress_bar=false"]) == 0
    saved = json.loads((run / "config.json").read_text())["data"]["reading"]
    assert saved["background"] is None and saved["grey_bits"] is None  # nothing of either to decide
    read = _images_evaluate_reads(monkeypatch)
    assert main(["evaluate", str(run), "--data", str(icons), "--out", str(tmp_path / "ev1")]) == 0
    assert read[0].max() == 255 and read[0].min() < 40  # dark strokes on white (all 0 before)
    assert main(["evaluate", str(run), "--data", str(frames), "--out", str(tmp_path / "ev2")]) == 0
    assert [int(x.max()) for x in read[1]] == [56, 249, 125, 187]  # over the folder's 12 bits (900 read 224)
    # a run of 12-bit frames keeps its depth for dimmer frames, and names a folder beyond it (read over 14 bits)
    run12 = tmp_path / "run12"
    assert main(["train", "--config", str(REPO / "configs" / "image_ae_conv.yaml"), "--out", str(run12), "-o",
                 "data.source=folder", "-o", f"data.root={frames}", "-o", "data.image_size=16", "-o",
                 "model.channels=[8,16]", "-o", "train.max_epochs=1", "-o", "train.progress_bar=false",
                 "-o", "data.test_fraction=0", "-o", "data.val_fraction=0"]) == 0
    with caplog.at_level(logging.WARNING, logger="latentbridge.io.images"):
        assert main(["evaluate", str(run12), "--data", str(deep), "--out", str(tmp_path / "ev3")]) == 0
    assert f"{deep}: 16-bit values beyond the run's 12-bit training images, read over 14 bits" in caplog.text
    assert [int(x.max()) for x in read[2]] == [56, 249, 125, 187]  # 3600 of 16383 (over 12 bits: clipped or own)


def test_another_folder_of_light_drawings_is_read_on_black_and_named(tmp_path, caplog):
    """A run that read dark drawings on white keeps no say over a folder of light ones: on its white they are erased
    (max and min 255); on black, named as ink of the opposite tone to the run's."""
    import logging

    from PIL import Image, ImageDraw

    from latentbridge.io.images import read_image, reading_for

    for i in range(3):
        icon = Image.new("RGBA", (16, 16), (0, 0, 0, 0))
        ImageDraw.Draw(icon).line((2, 2 + 3 * i, 14, 14), fill=(255, 255, 255, 255), width=2)
        icon.save(tmp_path / f"i{i}.png")
    files = sorted(tmp_path.glob("*.png"))
    run = {"background": "white", "grey_bits": None, "value_ranges": {"float": None, "int": None}}
    assert read_image(files[0], background="white").min() == 255  # the run's backdrop: nothing drawn
    with caplog.at_level(logging.WARNING, logger="latentbridge.io.images"):
        reading = reading_for(run, files, tmp_path)
    assert reading["background"] == "black"
    assert read_image(files[0], background=reading["background"]).max() == 255
    assert "its transparent drawings are light ink, read on black (the run's training drawings were dark" in caplog.text


def test_the_music_preset_on_a_plain_folder_says_how_to_read_it(tmp_path, capsys):
    """`mel_ae_music.yaml` on a folder of songs (no <track>/vocals.wav) was refused with the MUSDB layout alone; the
    plain folder's setting is named (it trains with it)."""
    import soundfile as sf

    songs = tmp_path / "songs"
    songs.mkdir()
    sf.write(songs / "a.wav", np.zeros((22050, 2), np.float32) + 0.1 * np.sin(np.arange(22050) / 9.0)[:, None], 22050)
    assert main(["train", "--config", str(REPO / "configs" / "mel_ae_music.yaml"), "-o", f"data.train_dir={songs}",
                 "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "no <track>/{vocals}.wav files" in err and "a plain folder of recordings: -o data.stems=null" in err


def test_an_undefined_pesq_or_stoi_says_why(caplog):
    """`audio reconstruct` printed stoi=nan for a 0.3-s word without a reason (reconstruct.json: stoi_nan 1 alone)."""
    from latentbridge.tasks.autoencode import safe_audio_metrics

    sr, dur = 16000, 0.3
    t = np.arange(int(dur * sr)) / sr
    x = (0.3 * np.sin(2 * np.pi * 300 * t) * np.sin(np.pi * t / dur)).astype(np.float32)[None]
    with caplog.at_level("WARNING"):
        m = safe_audio_metrics(x, x, sr, "word.wav")
    assert m["stoi_nan"] == 1 and np.isnan(m["stoi"]) and np.isfinite(m["pesq"])
    assert "word.wav: STOI undefined for 1 of 1: STOI found too little speech once its silent frames were dropped" \
        in caplog.text and "PESQ undefined" not in caplog.text


def test_a_training_blown_up_by_its_learning_rate_is_said_so(tmp_path, capsys):
    """train.lr = 1e30 on an image autoencoder: its NaN outputs stopped the binary cross-entropy with a traceback ('all
    elements of input should be between 0 and 1', exit 1); train.lr = .inf was taken."""
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "imgs").mkdir()
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "imgs" / f"{i}.png")
    args = ["train", "--config", str(REPO / "configs" / "image_ae_conv.yaml"), "-o", "data.source=folder",
            "-o", f"data.root={tmp_path / 'imgs'}", "-o", "data.image_size=16", "-o", "data.channels=3",
            "-o", "model.channels=[8,16]", "-o", "train.max_epochs=3"]
    assert main([*args, "--out", str(tmp_path / "run"), "-o", "train.lr=1e30"]) == 2
    err = capsys.readouterr().err
    assert "error: training diverged: " in err and "train again with a lower train.lr" in err and "Traceback" not in err
    assert main([*args, "--out", str(tmp_path / "run2"), "-o", "train.lr=.inf"]) == 2
    assert "'train.lr': must be a finite number, got inf" in capsys.readouterr().err


def test_a_training_that_diverges_in_its_only_epoch_saves_no_model(tmp_path, capsys, feature_cache):
    """A mel autoencoder of one epoch (one step) at train.lr = 1e6 ended with a NaN validation loss, was saved with
    exit 0, and `evaluate` of it was a traceback; the advice after a divergence led to refusals (--force unsaid)."""
    if not FSDD.is_dir():
        pytest.skip(f"FSDD recordings not found at {FSDD}")
    args = ["train", "--config", str(REPO / "configs" / "mel_ae.yaml"), "--out", str(tmp_path / "run")]
    for o in (f"data.train_dir={FSDD}", "data.limit=16", "train.max_epochs=1", "train.batch_size=16",
              "model.channels=[8,8,8,8]", "model.latent_dim=8", "train.lr=1e6"):
        args += ["-o", o]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "error: training diverged: the validation loss is nan at epoch 0" in err, err
    assert "into a new --out or with --force" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_a_missing_training_folder_is_named_with_its_key(tmp_path, monkeypatch, capsys):
    """A config's relative data.train_dir read from another folder said only 'rec: does not exist'."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--config", str(REPO / "configs" / "mel_ae.yaml"), "-o", "data.train_dir=rec",
                 "--out", str(tmp_path / "run")]) == 2
    assert f"rec: does not exist (data.train_dir, relative to the folder the command runs in, {tmp_path})" in \
        capsys.readouterr().err
    assert not (tmp_path / "run").exists()
