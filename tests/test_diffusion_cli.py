"""Diffusion runs end to end through the CLI on small data: train (sample grids, per-epoch FD,
figures, EMA weights), resume, sample (seeded), evaluate, ONNX export with the torch-free
sampler, image folders as data, and the errors users see."""

from __future__ import annotations

import csv
import json
import time

import numpy as np
import pytest
from PIL import Image
import torch

from conftest import REPO
from latentbridge.cli import main

MNIST_DIR = REPO.parent / "shared" / "data" / "mnist"
needs_mnist = pytest.mark.skipif(not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
                                 reason="../shared/data/mnist not available")

TINY = ["train.max_epochs=2", "train.progress_bar=false", "train.batch_size=32", "data.limit=400",
        "model.channels=[8,16,16]", "monitor.fd_samples=20", "monitor.steps=3", "monitor.grid_per_class=2",
        "monitor.grid_epochs=[1]", "sampling.steps=5", "sampling.guidance=2.0", "evaluate.n_samples=40"]


def _o(opts):
    return [x for o in opts for x in ("-o", o)]


@pytest.fixture(scope="module")
def quick_classifier(feature_cache):
    """A quickly trained MNIST classifier where load_classifier looks (the test cache), so runs
    do not train the full one."""
    from latentbridge.tasks.classify import classifier_config, classifier_dir, train_classifier

    if not (classifier_dir("mnist") / "config.json").exists():
        cfg = classifier_config("mnist", MNIST_DIR, **{"train.max_epochs": 3, "data.n_train": 1500,
                                                       "data.n_test": 300, "train.progress_bar": False})
        train_classifier(cfg, classifier_dir("mnist"), force=True)
    return classifier_dir("mnist")


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory, quick_classifier):
    out = tmp_path_factory.mktemp("ddpm") / "run"
    assert main(["train", "--config", str(REPO / "configs" / "ddpm_mnist.yaml"), "--out", str(out),
                 *_o([f"data.root={MNIST_DIR}", *TINY])]) == 0
    return out


def _epochs(run):
    with open(run / "logs" / "epochs.csv", newline="") as f:
        return list(csv.DictReader(f))


@needs_mnist
def test_training_leaves_grids_figures_history_and_ema_weights(mnist_run):
    from safetensors.torch import load_file

    from latentbridge.models.hub import load_model, read_lightning_checkpoint

    for name in ("config.json", "model.safetensors", "README.md", "training_loss.png", "metrics_vs_epoch.png",
                 "final_samples.png", "samples_epoch_001.png", "samples_epoch_002.png"):
        assert (mnist_run / name).is_file(), name
    rows = _epochs(mnist_run)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for r in rows:
        assert float(r["fd"]) > 0 and 0.0 <= float(r["class_accuracy"]) <= 1.0 and int(r["fd_samples"]) == 20
        assert float(r["train_loss"]) > 0 and float(r["val_loss"]) > 0
    # the grid: 2 rows x 10 classes of 28 px images with 2 px gaps
    from PIL import Image

    assert Image.open(mnist_run / "samples_epoch_001.png").size == (2 + 10 * 30, 2 + 2 * 30)
    # the saved weights are the EMA weights of the last epoch, not the raw ones
    ckpt = read_lightning_checkpoint(mnist_run / "checkpoints" / "last.ckpt")
    saved = load_file(str(mnist_run / "model.safetensors"))
    for k, v in ckpt["ema_state"].items():
        torch.testing.assert_close(saved[k], v)
    assert any(not torch.equal(ckpt["state_dict"][f"model.{k}"], v) for k, v in saved.items()
               if v.dtype.is_floating_point)
    info = load_model(mnist_run).info
    assert info["class_names"] == [str(d) for d in range(10)]
    card = (mnist_run / "README.md").read_text()
    if info["data"]["offline_split"]:
        assert "offline split" in card and "8,000 / 2,000" in card


@needs_mnist
def test_guidance_through_a_null_class_never_learnt_is_said(mnist_run, tmp_path, caplog):
    """A model trained with diffusion.label_dropout 0 has an untrained null class: guided samples (guidance 2, the
    default) mixed its output in without a word."""
    import shutil

    from latentbridge.models.hub import read_info, update_info

    run = tmp_path / "run"
    shutil.copytree(mnist_run, run)
    config = read_info(run)["config"]
    update_info(run, {"config": {**config, "diffusion": {**config["diffusion"], "label_dropout": 0.0}}})
    for i, (folder, guidance, said) in enumerate(((run, "2", True), (run, "1", False), (mnist_run, "2", False))):
        caplog.clear()
        assert main(["sample", str(folder), "--num-samples", "2", "--steps", "2", "--class", "3", "--guidance",
                     guidance, "--out", str(tmp_path / f"samples{i}")]) == 0
        assert ("mixes in the model's null condition, which it never learnt" in caplog.text) == said, caplog.text


@needs_mnist
def test_sample_is_seeded_and_writes_pngs_grid_and_npz(mnist_run, tmp_path, capsys, caplog):
    args = ["sample", str(mnist_run), "--num-samples", "6", "--class", "3", "--steps", "4", "--scheduler", "ddim",
            "--seed", "7"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert "6 samples (ddim, 4 steps" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "a").glob("sample_*.png")) == [f"sample_{i:04d}.png" for i in range(6)]
    assert (tmp_path / "a" / "grid.png").is_file()
    a = np.load(tmp_path / "a" / "samples.npz")
    assert a["images"].shape == (6, 1, 28, 28) and a["images"].dtype == np.uint8
    assert a["labels"].tolist() == [3] * 6
    assert json.loads(str(a["settings"]))["seed"] == 7
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert np.array_equal(np.load(tmp_path / "b" / "samples.npz")["images"], a["images"])
    assert main([*args[:-1], "8", "--out", str(tmp_path / "c")]) == 0
    assert not np.array_equal(np.load(tmp_path / "c" / "samples.npz")["images"], a["images"])
    for seed in ("-1", str(2 ** 64)):  # numpy / torch refuse these: one line, exit 2, nothing written (a traceback)
        assert main([*args[:-1], seed, "--out", str(tmp_path / "d")]) == 2
        assert "--seed must be 0 to 4294967295" in capsys.readouterr().err and not (tmp_path / "d").exists()
    for scheduler in ("ddpm", "dpm"):
        assert main(["sample", str(mnist_run), "--num-samples", "3", "--steps", "3", "--scheduler", scheduler,
                     "--guidance", "0", "--out", str(tmp_path / scheduler)]) == 0
        assert "labels" not in np.load(tmp_path / scheduler / "samples.npz")  # unconditional: no class recorded
        # DDIM's eta with another sampler: refused (the same images, and settings.json recorded it)
        assert main(["sample", str(mnist_run), "--num-samples", "1", "--steps", "2", "--scheduler", scheduler,
                     "--eta", "0.5", "--out", str(tmp_path / f"eta_{scheduler}")]) == 2
        assert f"the {scheduler} sampler takes none (--scheduler ddim)" in capsys.readouterr().err
        # a run's own eta is DDIM's too: not recorded as used by another sampler
        from latentbridge.config import load_config
        from latentbridge.tasks.generate import _settings

        cfg = load_config(REPO / "configs" / "ddpm_mnist.yaml", ["sampling.eta=0.5"])
        given = dict(steps=None, guidance=None, seed=None, eta=None)
        assert (_settings(cfg, scheduler=scheduler, **given)["eta"], _settings(cfg, scheduler=None, **given)["eta"]) \
            == (0.0, 0.5)
    # the ddpm scheduler's noise at every step, DDIM's eta: the same images whatever the batch size (one generator
    # drawn by the batches in turn made --batch-size change them)
    for extra in (["--scheduler", "ddpm"], ["--eta", "0.5"]):
        made = []
        for b in ("1", "2", "250"):
            out = tmp_path / f"batch{extra[0]}{b}"
            assert main([*args[:3], "3", "--steps", "3", "--seed", "5", *extra, "--batch-size", b, "--out",
                         str(out)]) == 0
            made.append(np.load(out / "samples.npz")["images"])
        assert np.array_equal(made[0], made[1]) and np.array_equal(made[0], made[2])
    capsys.readouterr()
    with caplog.at_level("WARNING"):  # --class at guidance 0: unconditional samples, said (recorded as class 3)
        assert main([*args[:3], "2", "--class", "3", "--steps", "2", "--guidance", "0", "--out",
                     str(tmp_path / "g0")]) == 0
    assert "--guidance 0 draws unconditional samples: --class has no effect" in caplog.text
    assert "labels" not in np.load(tmp_path / "g0" / "samples.npz")


@needs_mnist
def test_evaluate_reports_distances_with_their_real_floor(mnist_run, tmp_path):
    assert main(["evaluate", str(mnist_run), "--out", str(tmp_path / "eval")]) == 0
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    for key in ("fd", "fd_real_floor", "class_accuracy", "precision", "recall", "precision_real", "recall_real"):
        assert isinstance(m[key], float), key
    assert m["n_generated"] == 40 and m["n_real_floor"] == 40 and m["feature_space"] == "mnist_classifier"
    assert m["sampler"] == {"scheduler": "ddim", "steps": 5, "guidance": 2.0, "seed": 0, "eta": 0.0}
    # two epochs on 360 images: far from the real floor
    assert m["fd"] > m["fd_real_floor"] > 0 and m["fd_ratio"] > 1
    assert 0 <= m["precision"] <= 1 and 0 < m["recall_real"] <= 1
    assert "split" in m and (tmp_path / "eval" / "report.html").is_file() and (tmp_path / "eval" / "samples.png").is_file()


@needs_mnist
def test_onnx_denoiser_samples_without_torch_like_pytorch(mnist_run, tmp_path, capsys):
    from latentbridge.edge_sampler import OnnxDenoiser
    from latentbridge.edge_sampler import main as edge_main
    from latentbridge.models.hub import load_model

    onnx_path = tmp_path / "denoiser.onnx"
    assert main(["export", str(mnist_run), "--out", str(onnx_path)]) == 0
    assert "denoiser inputs" in capsys.readouterr().out
    from latentbridge.edge import EdgeModelError, EdgeScorer

    with pytest.raises(EdgeModelError, match="not an anomaly scorer export .* a diffusion denoiser"):
        EdgeScorer(onnx_path)  # it said "exported by an earlier latentbridge": export it again
    d = OnnxDenoiser(onnx_path)
    model = load_model(mnist_run).model
    noise = np.random.default_rng(0).standard_normal((4, 1, 28, 28)).astype(np.float32)
    labels = np.array([0, 3, 5, 9])
    for g in (0.0, 1.0, 2.0):
        ours = d.sample(4, labels=labels, guidance=g, steps=5, noise=noise)
        x = model.process.sample(model.denoiser(torch.from_numpy(labels), None, g), noise.shape, scheduler="ddim",
                                 steps=5, noise=torch.from_numpy(noise))
        np.testing.assert_allclose(ours, ((x.clamp(-1, 1) + 1) / 2).numpy(), atol=1e-4)
    assert edge_main([str(onnx_path), "--num-samples", "3", "--steps", "3", "--out", str(tmp_path / "edge")]) == 0
    assert len(list((tmp_path / "edge").glob("sample_*.png"))) == 3
    # in batches (all at once ran out of memory for thousands): the same images whatever the batch size
    assert edge_main([str(onnx_path), "--num-samples", "3", "--steps", "3", "--batch-size", "2", "--out",
                      str(tmp_path / "edge2")]) == 0
    for i in range(3):
        assert (tmp_path / "edge2" / f"sample_{i:04d}.png").read_bytes() == \
            (tmp_path / "edge" / f"sample_{i:04d}.png").read_bytes()
    capsys.readouterr()
    (tmp_path / "a_file").write_text("")
    for extra, message in ((["--num-samples", "0"], "--num-samples must be at least 1"),
                           (["--steps", "0"], "steps must be in 1..1000"),
                           (["--guidance", "nan"], "--guidance"), (["--guidance", "-3"], "--guidance"),
                           (["--class", "seven"], "unknown class 'seven'; classes: ['0', '1'"),
                           (["--condition", "1"], "the model takes 0 continuous condition(s)"),
                           (["--seed", "-1"], "--seed must be 0 to 4294967295, got -1"),
                           (["--batch-size", "0"], "--batch-size must be at least 1"),
                           (["--num-samples", str(10 ** 14)],  # its labels alone, beyond the address space
                            "in `python -m latentbridge.edge_sampler`, an allocation of 728 TiB failed: more than "
                            "16 times this machine's memory"),
                           (["--num-samples", str(10 ** 14)], "far larger than meant: draw fewer samples at once "
                                                               "(--batch-size, --num-samples)"),
                           (["--out", str(tmp_path / "a_file")], "exists and is a file"),
                           (["--out", str(tmp_path / "edge")], "exists and is not empty (use --force")):
        args = [str(onnx_path), "--num-samples", "2", "--steps", "2", "--out", str(tmp_path / "e2"), *extra]
        assert edge_main(args) == 2, extra
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (extra, err)
    import latentbridge.io.images as images_module

    def full(path, *a, **k):
        raise OSError(28, "No space left on device", str(path))

    with pytest.MonkeyPatch.context() as mp:  # a full disk was a traceback
        mp.setattr(images_module, "write_grid", full)
        assert edge_main([str(onnx_path), "--num-samples", "2", "--steps", "2", "--out", str(tmp_path / "e3")]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err and not (tmp_path / "e3").exists(), err
    assert edge_main([str(onnx_path), "--num-samples", "2", "--steps", "2", "--class", "7", "--out",
                      str(tmp_path / "edge"), "--force"]) == 0  # replaced whole: no stale third sample
    assert sorted(p.name for p in (tmp_path / "edge").iterdir()) == [
        ".latentbridge-written", "grid.png", "sample_0000.png", "sample_0001.png", "samples.npz", "settings.json"]
    kept = json.loads((tmp_path / "edge" / "settings.json").read_text())
    edge_npz = np.load(tmp_path / "edge" / "samples.npz")  # the folder `latentbridge sample` writes
    assert edge_npz["labels"].tolist() == [7, 7] and edge_npz["images"].shape[0] == 2
    assert np.array_equal(edge_npz["images"][1, 0], np.asarray(Image.open(tmp_path / "edge" / "sample_0001.png")))
    assert kept["classes"] == {"sample_0000.png": "7", "sample_0001.png": "7"} and kept["guidance"] > 0
    assert json.loads((tmp_path / "edge2" / "settings.json").read_text())["classes"] == {
        "sample_0000.png": "0", "sample_0001.png": "1", "sample_0002.png": "2"}  # the classes in turn, kept
    assert main(["export", str(mnist_run), "--out", str(onnx_path)]) == 2  # exists: needs --force


@needs_mnist
def test_resume_continues_the_history(tmp_path, quick_classifier):
    out = tmp_path / "run"
    opts = [f"data.root={MNIST_DIR}", *TINY, "data.limit=120", "monitor.fd_samples=10", "evaluate.n_samples=10"]
    args = ["train", "--config", str(REPO / "configs" / "ddpm_mnist.yaml"), "--out", str(out)]
    assert main([*args, *_o([*opts, "train.max_epochs=1"])]) == 0
    assert main([*args, "--resume", *_o([*opts, "train.max_epochs=2"])]) == 0
    assert [int(r["epoch"]) for r in _epochs(out)] == [1, 2]
    assert main([*args, "--resume", *_o([*opts, "train.max_epochs=3", "model.channels=[8,16,32]"])]) == 2


@needs_mnist
def test_user_errors_are_one_line(mnist_run, tmp_path, capsys):
    for extra, message in ((["--class", "12"], "unknown class"), (["--steps", "2000"], "more than the model's"),
                           (["--condition", "0.5"], "continuous condition"),
                           # these gave blank samples with exit 0 (NaN guidance, eta out of range), ran the run's
                           # steps (0) or ended in a traceback (negative steps and batch sizes)
                           (["--guidance", "nan"], "--guidance: a strength must be a finite number >= 0"),
                           (["--guidance", "-1"], "--guidance: a strength must be a finite number >= 0"),
                           (["--eta", "nan"], "--eta must be a number from 0"), (["--eta", "5"], "got 5"),
                           (["--steps", "0"], "--steps must be a whole number of at least 1, got 0"),
                           (["--steps", "-4"], "got -4"),
                           (["--batch-size", "0"], "--batch-size must be at least 1")):
        assert main(["sample", str(mnist_run), "--num-samples", "2", *extra, "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and message in err and "Traceback" not in err, err
    # a used output folder is refused before the sampling, which took minutes before the refusal
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("x")
    assert main(["sample", str(mnist_run), "--num-samples", "2", "--steps", "1000", "--scheduler", "ddpm",
                 "--out", str(tmp_path / "used")]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert main(["sample", str(tmp_path / "nothing"), "--num-samples", "2", "--out", str(tmp_path / "y")]) == 2
    assert main(["train", "--config", str(REPO / "configs" / "ddpm_mnist.yaml"), "--out", str(tmp_path / "z"),
                 *_o(["data.source=folder", f"data.root={tmp_path}"])]) == 2
    assert "data.image_size" in capsys.readouterr().err
    assert main(["train", "--config", str(REPO / "configs" / "ddpm_mnist.yaml"), "--out", str(tmp_path / "z"),
                 *_o(["data.source=folder", f"data.root={tmp_path}", "data.image_size=30"])]) == 2
    assert "data.image_size (30) must be a multiple of 4 for a U-Net of 3 levels (model.channels): e.g. 28 or 32" \
        in capsys.readouterr().err
    assert main(["train", "--config", str(REPO / "configs" / "ddpm_mnist.yaml"), "--out", str(tmp_path / "z"),
                 *_o(["data.source=folder", f"data.root={tmp_path}", "data.image_size=3"])]) == 2
    assert "(model.channels): e.g. 4\n" in capsys.readouterr().err  # said "e.g. 4 or 4"
    assert not (tmp_path / "z").exists()


def _image_folder(root, sizes=((10, 14), (12, 12), (9, 9))):
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = ["file,extent"]
    for cls, colour in (("cracked", (200, 30, 30)), ("intact", (30, 30, 200))):
        (root / cls).mkdir(parents=True)
        for i in range(12):
            h, w = sizes[i % len(sizes)]
            a = (np.array(colour) * rng.uniform(0.6, 1.0)).astype(np.uint8)
            img = np.broadcast_to(a, (h, w, 3)).copy()
            mode = "RGBA" if i % 4 == 0 else "RGB"
            im = Image.fromarray(img).convert(mode)
            name = f"{cls}/img_{i}.{'png' if i % 3 else 'jpg'}"
            (im.convert("RGB") if name.endswith("jpg") else im).save(root / name)
            rows.append(f"{name},{(i % 4) / 4}")
    (root / "conditions.csv").write_text("\n".join(rows) + "\n")
    return root


def _folder_opts(root, extra=()) -> list[str]:
    """A tiny class-conditional run of the image folder ``root`` (``extra`` after them: the later value wins)."""
    return ["data.source=folder", f"data.root={root}", "data.image_size=8", "data.channels=3",
            "data.class_folders=true", "data.test_fraction=0.25", "model.channels=[8,16]", "train.max_epochs=2",
            "train.progress_bar=false", "train.batch_size=8", "monitor.fd_samples=6", "monitor.steps=2",
            "monitor.grid_per_class=1", "sampling.steps=3", "evaluate.n_samples=8", *extra]


def test_a_folder_of_images_trains_a_class_conditional_model(tmp_path, capsys, caplog):
    root = _image_folder(tmp_path / "images")
    out = tmp_path / "run"
    opts = _folder_opts(root)
    assert main(["train", "--config", str(REPO / "configs" / "ddpm_mnist.yaml"), "--out", str(out), *_o(opts)]) == 0
    info = json.loads((out / "config.json").read_text())
    assert info["class_names"] == ["cracked", "intact"] and info["transform"]["color"] == "rgb"
    assert info["transform"]["version"] == 2 and info["transform"]["height"] == 8
    assert (out / "README.md").read_text().splitlines()[2].startswith(  # the preset's "of MNIST digits" once
        f"Denoising diffusion model of the images in `{root}` (the preset's description: Class-conditional DDPM of")
    assert all(r["fd"] for r in _epochs(out))  # measured in pixel space
    assert main(["sample", str(out), "--num-samples", "4", "--class", "intact", "--out", str(tmp_path / "s")]) == 0
    s = np.load(tmp_path / "s" / "samples.npz")  # no pickle: the names are a string array
    assert s["images"].shape == (4, 3, 8, 8) and s["labels"].tolist() == [1] * 4
    assert s["class_names"].tolist() == ["cracked", "intact"]  # what the labels index
    settings = json.loads((tmp_path / "s" / "settings.json").read_text())
    assert settings["class_names"] == ["cracked", "intact"] and settings["classes"]["sample_0003.png"] == "intact"
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert main(["evaluate", str(out), "--out", str(tmp_path / "e")]) == 0
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert m["feature_space"] == "pixels16" and "class_accuracy" not in m and m["n_reference"] == 6
    # 6 reference images in 192 pixel features: a Fréchet distance of a rank-deficient covariance, said
    assert "the Fréchet distances compare with 6 reference image(s) in 192 features" in caplog.text, caplog.text
    few = tmp_path / "few"  # two images per class: the split per class keeps them for training, none to compare with
    for cls in ("cracked", "intact"):
        (few / cls).mkdir(parents=True)
        for name, f in zip("ab", sorted((root / cls).glob("*.png"))[:2]):
            (few / cls / f"{name}.png").write_bytes(f.read_bytes())
    capsys.readouterr()
    # another folder is read whole (it was split, leaving none here): a reference and, disjoint from it, its own
    # real-data floor (the run's training images as the floor measured the distance between two kinds of image)
    assert main(["evaluate", str(out), "--data", str(few), "--out", str(tmp_path / "e2")]) == 0
    m = json.loads((tmp_path / "e2" / "metrics.json").read_text())
    assert m["n_reference"] == 2 and m["n_real_floor"] == 2 and m["k"] == 1
    assert m["split"] == f"every image of {few} (4 images); 2 as the reference, 2 others as the real-data floor"
    single = tmp_path / "single"  # one image a class, kept for training: no Fréchet distance per epoch (it was said
    for cls in ("cracked", "intact"):  # to be measured against the test images)
        (single / cls).mkdir(parents=True)
        (single / cls / "a.png").write_bytes((few / cls / "a.png").read_bytes())
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert main(["train", "--config", str(REPO / "configs" / "ddpm_mnist.yaml"), "--out", str(tmp_path / "r2"),
                     *_o(_folder_opts(single, ["train.max_epochs=1"]))]) == 0
    assert "no validation loss is logged, and the Fréchet distance of each epoch's samples is not measured: it " \
           "needs 2 reference images or more, and the test images are 0" in caplog.text, caplog.text
    assert not any(r.get("fd") for r in _epochs(tmp_path / "r2"))
    # a class folder the run never knew would put other images into the reference: refused, named
    (few / "rusty").mkdir()
    (few / "rusty" / "a.png").write_bytes((few / "intact" / "a.png").read_bytes())
    assert main(["evaluate", str(out), "--data", str(few), "--out", str(tmp_path / "e3")]) == 2
    err = capsys.readouterr().err
    assert "class folder(s) the run was not trained on: rusty (its classes: cracked, intact)" in err, err
    assert not (tmp_path / "e3").exists()
    (few / "rusty" / "a.png").unlink()
    for f in (few / "intact").glob("*.png"):  # a class of the run missing: named, then too few images to compare with
        f.unlink()
    assert main(["evaluate", str(out), "--data", str(few), "--out", str(tmp_path / "e3")]) == 2
    assert "2 image(s): an evaluation on another folder takes a real-data floor and a reference" in \
        capsys.readouterr().err
    assert "no folder for class(es) intact of the run" in caplog.text
    assert not (tmp_path / "e3").exists()
    t0 = time.time()  # a used output folder is refused before the sampling, not after it
    assert main(["evaluate", str(out), "--out", str(tmp_path / "e")]) == 2
    assert "exists and is not empty" in capsys.readouterr().err and time.time() - t0 < 5
    # a continuous condition from the CSV instead of the classes
    out2 = tmp_path / "run2"
    assert main(["train", "--config", str(REPO / "configs" / "ddpm_mnist.yaml"), "--out", str(out2),
                 *_o([*opts, "data.class_folders=false", f"data.conditions={root / 'conditions.csv'}",
                      "monitor.fd_every=0"])]) == 0
    info = json.loads((out2 / "config.json").read_text())
    assert info["condition_names"] == ["extent"] and info["model_kwargs"]["n_continuous"] == 1
    lo, hi = info["condition_range"][0]
    caplog.clear()
    assert main(["sample", str(out2), "--num-samples", "2", "--condition", "0.5", "--out", str(tmp_path / "s2")]) == 0
    assert np.load(tmp_path / "s2" / "samples.npz")["conditions"].tolist() == [[0.5], [0.5]]
    assert json.loads((tmp_path / "s2" / "settings.json").read_text())["condition"] == [0.5]
    assert (lo <= 0.5 <= hi) == ("outside the training images' range" not in caplog.text)
    caplog.clear()  # a value far outside the training range, and none at all, are said (both sampled silently)
    assert main(["sample", str(out2), "--num-samples", "1", "--condition", "5", "--out", str(tmp_path / "s4")]) == 0
    assert f"--condition outside the training images' range: extent 5 (training {lo:g} to {hi:g})" in caplog.text
    assert main(["sample", str(out2), "--num-samples", "1", "--out", str(tmp_path / "s5")]) == 0
    assert "no --condition: the model takes 1 continuous condition(s) (extent); its samples are drawn with the null " \
        "condition it learnt by dropping conditions" in caplog.text
    assert json.loads((tmp_path / "s5" / "settings.json").read_text())["guidance"] is None  # (nothing guided)
    assert main(["sample", str(out2), "--num-samples", "1", "--guidance", "3", "--out", str(tmp_path / "s6")]) == 0
    assert "--guidance 3 has no effect: no --condition given (none recorded with the samples)" in caplog.text
    assert main(["sample", str(out2), "--num-samples", "2", "--condition", "nan", "--out", str(tmp_path / "s3")]) == 2
    assert "--condition: every value must be a finite number" in capsys.readouterr().err
    # the edge sampler says the same (it sampled both silently) and keeps what it drew in settings.json
    from latentbridge.edge_sampler import main as edge_main

    assert main(["export", str(out2), "--out", str(tmp_path / "c.onnx")]) == 0
    capsys.readouterr()
    for extra, said in ((["--condition", "5"], f"warning: --condition outside the training images' range: extent 5 "
                                                f"(training {lo:g} to {hi:g})"),
                        ([], "warning: no --condition: the model takes 1 continuous condition(s) (extent)")):
        assert edge_main([str(tmp_path / "c.onnx"), "--num-samples", "1", "--steps", "2", *extra, "--out",
                          str(tmp_path / f"edge{len(extra)}")]) == 0
        assert said in capsys.readouterr().err
    kept = json.loads((tmp_path / "edge2" / "settings.json").read_text())
    assert (kept["condition"], kept["condition_names"], kept["steps"], kept["seed"]) == ([5.0], ["extent"], 2, 0)
    assert json.loads((tmp_path / "edge0" / "settings.json").read_text())["guidance"] is None
    # a negative value that argparse took for an option ("expected one argument"): read, and refused by name
    assert edge_main([str(tmp_path / "c.onnx"), "--condition", "-inf", "--out", str(tmp_path / "edge_inf")]) == 2
    assert "expected one argument" not in capsys.readouterr().err


def test_a_class_with_no_test_image_is_named_at_evaluate(tmp_path, caplog):
    """A class folder of one image stays in training: evaluate compared the samples of every class with test images of
    the others, without a word (`evaluate --data` of a folder lacking a class said so)."""
    root = _image_folder(tmp_path / "images")
    (root / "rare").mkdir()
    (root / "rare" / "only.png").write_bytes(next((root / "intact").glob("*.png")).read_bytes())
    (root / "conditions.csv").unlink()
    out = tmp_path / "run"
    assert main(["train", "--config", str(REPO / "configs" / "ddpm_mnist.yaml"), "--out", str(out),
                 *_o(_folder_opts(root, ["train.max_epochs=1", "sampling.steps=2", "evaluate.n_samples=6"]))]) == 0
    with caplog.at_level("WARNING"):
        assert main(["evaluate", str(out), "--out", str(tmp_path / "e")]) == 0
    assert f"{root}: the run's test split holds no image of class(es) rare (too few images of them to split): its " \
           "samples of every class are compared with test images of 2 of its 3 classes" in caplog.text, caplog.text


def test_image_folders_are_read_checked_and_split(tmp_path, caplog):
    from PIL import Image

    from latentbridge.config.sections import ImageDataConfig
    from latentbridge.data.images import load_image_data
    from latentbridge.errors import DataError
    from latentbridge.io.images import read_image, tile

    root = _image_folder(tmp_path / "images")
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:2, :, 3] = 255  # the bottom half is transparent: black after compositing
    Image.fromarray(rgba, "RGBA").save(tmp_path / "half.png")
    a = read_image(tmp_path / "half.png", channels=3)
    assert a.shape == (3, 4, 4) and a[0, 0, 0] == 255 and a[0, 3, 0] == 0
    g = read_image(tmp_path / "half.png", channels=1, size=(2, 2))
    assert g.shape == (1, 2, 2) and g.dtype == np.uint8
    with pytest.raises(DataError, match="4 x 4 px"):
        read_image(tmp_path / "half.png", size=(2, 2), resize="none")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="bad.png"):
        read_image(tmp_path / "bad.png")
    Image.fromarray(np.full((4, 4), 32768, np.uint16)).save(tmp_path / "deep.png")  # 16-bit grey: mid-range
    assert read_image(tmp_path / "deep.png").max() == 128  # scaled from 16 bits, not clipped to 255
    scan = np.zeros((4, 4), np.uint16)
    scan[1:3, 1:3] = 4095  # a 12-bit scan in a 16-bit PNG: read over 12 bits (16 of 255 over the 16-bit range)
    Image.fromarray(scan).save(tmp_path / "scan12.png")
    assert read_image(tmp_path / "scan12.png").max() == 255
    # a drawing-pad export (black ink, the stroke in the alpha channel) in a training folder: read on white,
    # as a condition image is, where on black it read as an empty image
    pad_dir = tmp_path / "drawings"
    pad_dir.mkdir()
    for i in range(3):
        ink = np.zeros((8, 8, 4), np.uint8)
        ink[2:6, 3 + i % 2, 3] = 255
        Image.fromarray(ink, "RGBA").save(pad_dir / f"{i}.png")
    drawn = load_image_data(ImageDataConfig(source="folder", root=str(pad_dir), image_size=8, test_fraction=0.34,
                                                val_fraction=0.0), seed=0).train.images
    assert drawn.max() == 255 and drawn.min() == 0  # strokes black on white, not black on black
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("a.png", "b.jpg", "c.png"):
        (broken / name).write_bytes(b"" if name == "c.png" else b"not an image")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(broken / "fine.png")
    with pytest.raises(DataError, match=r"broken: 3 of 4 images cannot be read: .*a\.png.*b\.jpg.*c\.png"):
        load_image_data(ImageDataConfig(source="folder", root=str(broken), image_size=4), seed=0)
    with pytest.raises(DataError, match="is a file, not a folder of images"):
        load_image_data(ImageDataConfig(source="folder", root=str(tmp_path / "deep.png"), image_size=4), seed=0)
    assert tile(np.zeros((3, 1, 2, 2), np.uint8), n_cols=2, pad=1).shape == (1, 7, 7)
    # a wide photo (40 x 100: a white square between grey margins): the centre square (the folder default),
    # the whole image on a border of its edge colour, or squeezed
    wide = np.full((40, 100), 90, np.uint8)
    wide[:, 30:70] = 255
    Image.fromarray(wide).save(tmp_path / "wide.png")
    fits = {f: read_image(tmp_path / "wide.png", size=(20, 20), fit=f)[0] for f in ("crop", "pad", "stretch")}
    assert fits["crop"].min() == 255  # the centre 40 x 40: the white square only
    assert fits["pad"][0].tolist() == [90] * 20 and fits["pad"][10, 6:14].min() == 255  # grey border, square kept
    assert fits["pad"][6:14, 10].min() == 255 and fits["pad"][:5, 10].max() == 90  # rows 30-70 of 100: 6-14 of 20
    assert np.abs(fits["stretch"][:, 6:14].astype(int) - 255).max() <= 1 and fits["stretch"][0, 0] == 90
    folder = tmp_path / "wide"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(wide).save(folder / f"{i}.png")
    assert ImageDataConfig().fit == "crop"
    side = load_image_data(ImageDataConfig(source="folder", root=str(folder), image_size=8, test_fraction=0.34,
                                               val_fraction=0.0), seed=0).train.images
    assert side.shape[1:] == (1, 8, 8) and side.min() == 255
    # what reading did to the images is said: a warning when they differ (sizes, one blown up), with -v otherwise
    Image.fromarray(np.full((3, 3, 3), (200, 30, 30), np.uint8), "RGB").save(folder / "tiny.png")
    with caplog.at_level("INFO", logger="latentbridge.data.images"):
        load_image_data(ImageDataConfig(source="folder", root=str(folder), image_size=8, test_fraction=0.25,
                                            val_fraction=0.0), seed=0)
    said = [r for r in caplog.records if r.name == "latentbridge.data.images"]
    assert len(said) == 1 and said[0].levelname == "WARNING"
    assert said[0].getMessage() == (f"{folder}: images of 100x40 x3, 3x3 x1 resized to 8x8 (3 of another aspect ratio: "
                                    "data.fit crop); 1 under half that size, blown up (tiny.png); 1 in colour read as "
                                    "grey (data.channels 1; -o data.channels=3 keeps their colour)")

    cfg = ImageDataConfig(source="folder", root=str(root), image_size=6, channels=3, class_folders=True,
                              conditions=str(root / "conditions.csv"), val_fraction=0.1, test_fraction=0.25)
    data = load_image_data(cfg, seed=0)
    assert data.train.class_names == ["cracked", "intact"] and data.n_continuous == 1
    assert len(data.train) + len(data.val) + len(data.test) == 24 and len(data.test) == 6
    assert np.bincount(data.test.labels).tolist() == [3, 3]  # split per class
    assert data.train.images.shape[1:] == (3, 6, 6) and data.train.conditions.shape[1] == 1
    again = load_image_data(cfg, seed=0)
    assert np.array_equal(again.test.images, data.test.images)  # seeded
    lines = (root / "conditions.csv").read_text().splitlines()
    # a CSV naming each image by its absolute path, or with Windows' separators, names the same images
    for name, row in (("absolute.csv", lambda f, v: f"{root / f},{v}"),
                      ("windows.csv", lambda f, v: f"{f.replace('/', chr(92))},{v}")):
        (tmp_path / name).write_text("\n".join([lines[0], *(row(*ln.rsplit(",", 1)) for ln in lines[1:])]) + "\n")
        other = load_image_data(cfg.model_copy(update={"conditions": str(tmp_path / name)}), seed=0)
        assert np.array_equal(other.test.conditions, data.test.conditions), name
    # absolute paths of another folder: the error says what the rows name
    (tmp_path / "elsewhere.csv").write_text("file,c\n" + "".join(f"/data/x{i}.png,0\n" for i in range(24)))
    with pytest.raises(DataError, match="its rows name paths outside .* such as /data/x0.png"):
        load_image_data(cfg.model_copy(update={"conditions": str(tmp_path / "elsewhere.csv")}), seed=0)
    (root / "conditions.csv").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataError, match="no row in .*conditions.csv for this image"):
        load_image_data(cfg, seed=0)
    (root / "conditions.csv").write_text("\n".join(lines[:-6]) + "\n")  # six images without a row: named, counted
    with pytest.raises(DataError, match=r"no row in .*conditions.csv for 6 of its 24 images: .*, \.\.\. \(6 in all\)"):
        load_image_data(cfg, seed=0)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "loose.png")
    with pytest.raises(DataError, match="class sub-folder"):
        load_image_data(cfg.model_copy(update={"conditions": None}), seed=0)


def test_image_transform_version_1_still_reads():
    from latentbridge.transforms.spec import ImageTransform, parse_transform

    old = parse_transform({"type": "image", "version": 1, "channels": 1, "height": 28, "width": 28,
                           "scaling": "uint8/255"})
    assert isinstance(old, ImageTransform) and old.resize == "none" and old.value_range == (0.0, 1.0)
    with pytest.raises(ValueError, match="does not fit"):
        ImageTransform(channels=3, color="grayscale")


def test_a_folder_is_read_alike_and_what_it_leaves_out_is_named(tmp_path, caplog):
    """One pixel value means one thing across a folder: 16-bit grey over the folder's bit depth (image by image the
    same raw value read 249 and 4), transparent images on one backdrop (navy and yellow icons landed on white and
    black); files and class folders left out are named; numbered classes in their order; a conditions CSV as
    spreadsheets save it, one row per image."""
    from PIL import Image

    from latentbridge.config.sections import ImageDataConfig
    from latentbridge.data.images import load_image_data
    from latentbridge.errors import DataError

    deep = tmp_path / "deep"
    deep.mkdir()
    dark = np.full((8, 8), 1000, np.uint16)
    bright = dark.copy()
    bright[:4] = 20000
    Image.fromarray(dark).save(deep / "a_dark.png")
    Image.fromarray(bright).save(deep / "b_bright.png")
    imgs = load_image_data(ImageDataConfig(source="folder", root=str(deep), image_size=8, test_fraction=0.0,
                                           val_fraction=0.0), seed=0).train.images
    assert imgs[0, 0, 6, 0] == imgs[1, 0, 6, 0] == 4  # the folder needs 16 bits (20000): 1000 of 65535, both
    icons = tmp_path / "icons"
    icons.mkdir()
    for name, colour in (("navy", (20, 20, 120)), ("yellow", (250, 230, 40))):
        a = np.zeros((8, 8, 4), np.uint8)
        a[2:6, 2:6, :3], a[2:6, 2:6, 3] = colour, 255
        Image.fromarray(a, "RGBA").save(icons / f"{name}.png")
    imgs = load_image_data(ImageDataConfig(source="folder", root=str(icons), image_size=8, channels=3,
                                           test_fraction=0.0, val_fraction=0.0), seed=0).train.images
    assert imgs[0, :, 0, 0].tolist() == imgs[1, :, 0, 0].tolist()  # one backdrop for both
    classes = tmp_path / "classes"
    for name in ("1", "2", "10", "bird", "empty"):
        (classes / name).mkdir(parents=True)
    for name in ("1", "2", "10"):
        for i in range(3):
            Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(classes / name / f"{i}.png")
    Image.new("L", (8, 8)).save(classes / "bird" / "0.gif")
    (classes / "notes.txt").write_text("taken on site")
    (classes / "__MACOSX" / "1").mkdir(parents=True)  # a macOS archive unzipped: no class, nothing to say
    (classes / "__MACOSX" / "1" / "._0.png").write_bytes(b"\x00\x05\x16\x07Mac OS X")
    caplog.clear()
    with caplog.at_level("WARNING"):
        data = load_image_data(ImageDataConfig(source="folder", root=str(classes), image_size=8, class_folders=True,
                                               test_fraction=0.0, val_fraction=0.0), seed=0)
    assert data.train.class_names == ["1", "2", "10"]
    assert "2 file(s) not read here as images (.gif, .txt: bird/0.gif, notes.txt) left out" in caplog.text
    assert "2 class folder(s) without an image read here (bird, empty): no class of their own here" in caplog.text
    # conditions: Windows-1252 with semicolons and decimal commas, a byte-order mark; duplicates and strays
    cond = tmp_path / "cond"
    cond.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8), 60 * i, np.uint8)).save(cond / f"c{i}.png")
    cfg = ImageDataConfig(source="folder", root=str(cond), image_size=8, test_fraction=0.0, val_fraction=0.0)

    def conditions(text: str, encoding: str):
        (tmp_path / "c.csv").write_bytes(text.encode(encoding))
        return load_image_data(cfg.model_copy(update={"conditions": str(tmp_path / "c.csv")}), seed=0)

    got = conditions("file;extent;depth\nc0.png;0,5;1\nc1.png;0,25;2 \nc2.png;1;3\n", "cp1252")
    assert got.train.conditions.tolist() == [[0.5, 1], [0.25, 2], [1, 3]] and got.train.condition_names == ["extent", "depth"]
    got = conditions("file,extent\nc0.png,0.5\nc1.png,0.25\nc2.png,1\n", "utf-8-sig")  # Excel's "CSV UTF-8"
    assert got.train.conditions.ravel().tolist() == [0.5, 0.25, 1]
    (tmp_path / "c.csv").write_bytes("file,extent,note\nc0.png,0.5,1\nc1.png,0.25,2\nc2.png,1,3\n".encode("cp1252")
                                     .replace(b"note", b"r\xe9f"))
    assert load_image_data(cfg.model_copy(update={"conditions": str(tmp_path / "c.csv")}), seed=0).train.condition_names \
        == ["extent", "réf"]
    with pytest.raises(DataError, match=r"lines 3 and 5 both give the conditions of c1\.png: one row per image"):
        conditions("file,extent\nc0.png,0.5\nc1.png,0.25\nc2.png,1\nc1.png,0.9\n", "utf-8")
    caplog.clear()
    with caplog.at_level("WARNING"):
        conditions("file,extent\nc0.png,0.5\nc1.png,0.25\nc2.png,1\nghost.png,0.9\n", "utf-8")
    assert "1 row(s) name no image of" in caplog.text and "line 5: ghost.png" in caplog.text
    with pytest.raises(DataError, match="is a folder, not a conditions CSV"):
        load_image_data(cfg.model_copy(update={"conditions": str(cond)}), seed=0)


def test_odd_image_files_of_real_folders_are_read_alike_or_named(tmp_path, caplog):
    """Opaque RGBA scans no longer outvote the transparent icons beside them (the icons read blank on black); a
    colour-keyed PNG (tRNS) is composited like an alpha channel; 32-bit float images over one range for the folder
    (the same value read 255 in one image and 51 in another); an animation's frames are named; an image above
    Pillow's pixel limit is one error naming it (a traceback, exit 1)."""
    from PIL import Image, ImageDraw

    from latentbridge.config.sections import ImageDataConfig
    from latentbridge.data.images import load_image_data
    from latentbridge.errors import DataError
    from latentbridge.io.images import read_image, set_reading

    def folder(name):
        (tmp_path / name).mkdir()
        return tmp_path / name

    def read(root, **kw):
        cfg = ImageDataConfig(source="folder", root=str(root), image_size=16, test_fraction=0.0, val_fraction=0.0, **kw)
        return load_image_data(cfg, seed=0).train.images

    mixed = folder("mixed")
    for i in range(3):
        scan = Image.new("RGBA", (32, 32), (255, 255, 255, 255))
        ImageDraw.Draw(scan).line((4, 16, 28, 16), fill=(100, 100, 100, 255), width=2)
        scan.save(mixed / f"scan{i}.png")
        icon = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
        ImageDraw.Draw(icon).ellipse((6, 6, 26, 26), outline=(0, 0, 0, 255), width=3)
        icon.save(mixed / f"icon{i}.png")
    assert set_reading(sorted(mixed.iterdir()))["background"] == "white"  # the icons' ink decides
    icons = read(mixed)[:3]  # icon0-2 sort first
    assert icons.min() < 60 and icons.max() == 255  # a dark ring on white, not a blank square
    keyed = folder("keyed")
    for i in range(2):
        im = Image.new("RGB", (32, 32), (0, 255, 0))
        ImageDraw.Draw(im).ellipse((6, 6, 26, 26), outline=(0, 0, 0), width=3)
        im.save(keyed / f"key{i}.png", transparency=(0, 255, 0))
    imgs = read(keyed, channels=3)
    assert imgs[:, :, 0, 0].tolist() == [[255, 255, 255]] * 2  # the green key is the canvas: on white
    floats = folder("floats")
    a = np.zeros((16, 16), np.float32)
    a[:, 8:] = 2.0
    b = a.copy()
    b[0, 0] = 10.0
    c = np.full((16, 16), 0.5, np.float32)
    for name, x in zip("abc", (a, b, c)):
        Image.fromarray(x, "F").save(floats / f"{name}.tif")
    imgs = read(floats)
    assert imgs[0, 0, 4, 12] == imgs[1, 0, 4, 12] == 51  # 2.0 of the folder's 0-10, in both images
    assert imgs[2, 0, 4, 4] == 13  # 0.5 of 0-10 too
    anim = folder("anim")
    ring = Image.new("L", (32, 32), 0)
    ImageDraw.Draw(ring).ellipse((6, 6, 26, 26), outline=255, width=3)
    Image.new("L", (32, 32), 0).save(anim / "a.png", save_all=True, append_images=[ring, ring], duration=100)
    caplog.clear()
    with caplog.at_level("WARNING"):
        read_image(anim / "a.png")
    assert "a.png: holds 2 frames (an animation, or a file of several pages): only the first is read" in caplog.text
    thin = folder("thin")
    for i in range(3):
        Image.new("L", (32, 32), 60 * i).save(thin / f"img{i}.png")
    Image.new("L", (2, 500), 255).save(thin / "strip.png")  # its centre square is 2 x 2 px
    caplog.clear()
    with caplog.at_level("WARNING"):
        read(thin)
    assert "1 under half that size, blown up (strip.png)" in caplog.text, caplog.text
    from latentbridge.data.images import _report_conversions

    classes = folder("classes")  # one name in three class folders was "(img_6.bmp, img_6.bmp, img_6.bmp)"
    for c in ("a", "b"):
        (classes / c).mkdir()
        Image.new("L", (2, 2), 255).save(classes / c / "img_6.png")
    caplog.clear()
    with caplog.at_level("WARNING"):
        _report_conversions(classes, sorted(classes.rglob("*.png")), 8, 1, "crop")
    assert "2 under half that size, blown up (a/img_6.png, b/img_6.png)" in caplog.text, caplog.text
    links = folder("links")
    for i in range(3):
        Image.new("L", (16, 16), 40 * i).save(links / f"img{i}.png")
    (links / "a_link.png").symlink_to(links / "img0.png")  # walked before the file: it kept the link's name, and a
    (links / "broken.png").symlink_to(tmp_path / "nowhere.png")  # conditions CSV of the files' names was refused
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert len(read(links)) == 3
    assert "links: 1 link(s) to nothing left out (broken.png)" in caplog.text
    assert "links: 1 image(s) reached twice through links, read once, under the name of the file itself where one is " \
           "in the folder (a_link.png -> img0.png)" in caplog.text, caplog.text
    from latentbridge.io.images import list_folder

    assert [f.name for f in list_folder(links)[0]] == ["img0.png", "img1.png", "img2.png"]
    gifs = folder("gifs")  # "no images (.png, ...)" said nothing of the 2 GIFs it held
    for i in range(2):
        Image.new("L", (16, 16), 9).save(gifs / f"{i}.gif")
    with pytest.raises(DataError, match=r"no images \(\.png.*\) in the folder; it holds 2 \.gif file\(s\), which are "
                                        r"not read \(GIF: save the images as PNG\)"):
        read(gifs)
    bomb = folder("bomb")
    Image.new("1", (20000, 20000), 0).save(bomb / "huge.png")
    Image.new("L", (16, 16), 9).save(bomb / "ok.png")
    with pytest.raises(DataError, match=r"bomb: 1 of 2 images cannot be read: .*huge\.png: an image too large to read "
                                        r"\(Image size \(400000000 pixels\) exceeds"):
        read(bomb)


def test_class_names_that_are_numbers_or_decomposed_letters_are_read_as_typed():
    """On class folders 01, 02, 03, --class 1 drew class 02 (index 1) without a word; folders named on macOS
    (decomposed letters) did not match the name as typed."""
    import unicodedata

    from latentbridge.errors import LatentbridgeError
    from latentbridge.sampling_args import class_index

    assert class_index("1", ["01", "02", "03"], 3) == 0 and class_index("03", ["01", "02", "03"], 3) == 2
    with pytest.raises(LatentbridgeError, match=r"unknown class '7'; classes: \['01', '02', '03'\] \(classes named by "
                                                r"numbers are given by name, not by index\)"):
        class_index("7", ["01", "02", "03"], 3)
    assert class_index("2", ["cat", "dog", "owl"], 3) == 2  # names that are not numbers: an index still works
    assert class_index("Müller", [unicodedata.normalize("NFD", n) for n in ("Müller", "Zoë")], 2) == 0


def test_a_grey_palette_image_is_not_called_colour(tmp_path, caplog):
    """Reading a folder as grey names the images in colour; a grey image saved with a palette is not one of them."""
    from PIL import Image

    from latentbridge.config.sections import ImageDataConfig
    from latentbridge.data.images import load_image_data

    folder = tmp_path / "pal"
    folder.mkdir()
    for name, colour in (("grey", lambda v: [v, v, v]), ("red", lambda v: [v, 0, 0])):
        for i in range(3):
            im = Image.new("P", (8, 8))
            im.putpalette([c for v in range(256) for c in colour(v)])
            im.putdata([(i * 40 + k) % 256 for k in range(64)])
            im.save(folder / f"{name}_{i}.png")
    # a grey scan saved as an RGB JPEG (its chroma noise aside) is no colour either
    scan = np.tile(np.linspace(0, 255, 8, dtype=np.uint8), (8, 1))
    Image.fromarray(np.stack([scan] * 3, axis=-1), "RGB").save(folder / "scan.jpg", quality=70)
    with caplog.at_level("INFO", logger="latentbridge.data.images"):
        data = load_image_data(ImageDataConfig(source="folder", root=str(folder), image_size=8, test_fraction=0.0,
                                               val_fraction=0.0), seed=0)
    assert data.train.images.shape == (7, 1, 8, 8)
    # images of one size, the model's: colour read as grey is still a warning, one line (it was an info line, -v)
    said = [r for r in caplog.records if r.name == "latentbridge.data.images"]
    assert len(said) == 1 and said[0].levelname == "WARNING"
    assert said[0].getMessage() == (f"{folder}: 3 in colour read as grey (data.channels 1; -o data.channels=3 keeps "
                                    "their colour)")


def test_an_image_folder_is_walked_once(tmp_path, monkeypatch, caplog):
    """Listing the images and naming the files left out share one walk of the folder (a large set was walked
    twice, every file resolved)."""
    from PIL import Image

    import latentbridge.io.images as io_images
    from latentbridge.config.sections import ImageDataConfig
    from latentbridge.data.images import load_image_data

    folder = tmp_path / "set"
    (folder / "a").mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(folder / "a" / f"{i}.png")
    (folder / "a" / "notes.txt").write_text("x")
    walks = []
    real = io_images.walk_files
    monkeypatch.setattr(io_images, "walk_files", lambda root, *a, **k: walks.append(root) or real(root, *a, **k))
    with caplog.at_level("WARNING", logger="latentbridge.data.images"):
        data = load_image_data(ImageDataConfig(source="folder", root=str(folder), image_size=8, test_fraction=0.0,
                                               val_fraction=0.0), seed=0)
    assert len(data.train) == 4 and walks == [folder]
    assert "1 file(s) not read here as images (.txt: a/notes.txt) left out" in caplog.text


def _png_16_bits_per_channel(path, a):
    """A PNG of 16 bits per channel (Pillow cannot write one) of ``a`` (H, W, 2|3|4) uint16 (2: grey and alpha), its
    rows filtered by each of PNG's five filters in turn (None, Sub, Up, Average, Paeth)."""
    import struct
    import zlib

    h, w, c = a.shape
    bpp = 2 * c
    rows = a.astype(">u2").view(np.uint8).reshape(h, w * bpp).astype(np.int32)
    prev, out = np.zeros(w * bpp, np.int32), b""
    for y, x in enumerate(rows):
        left = np.concatenate([np.zeros(bpp, np.int32), x[:-bpp]])
        corner = np.concatenate([np.zeros(bpp, np.int32), prev[:-bpp]])
        p = left + prev - corner
        paeth = np.where((abs(p - left) <= abs(p - prev)) & (abs(p - left) <= abs(p - corner)), left,
                         np.where(abs(p - prev) <= abs(p - corner), prev, corner))
        pred = [0, left, prev, (left + prev) // 2, paeth][y % 5]
        out += bytes([y % 5]) + ((x - pred) % 256).astype(np.uint8).tobytes()
        prev = x

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, {2: 4, 3: 2, 4: 6}[c], 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(out)) + chunk(b"IEND", b""))


def test_a_png_of_16_bits_per_colour_channel_is_read_at_its_depth(tmp_path):
    """Pillow keeps the high byte of a PNG's 16-bit colour samples: 12-bit data (a camera's RGB frames) read nearly
    black, 4000 as 15 of 255 and 400 as 1."""
    from latentbridge.io.images import read_image, set_reading

    rng = np.random.default_rng(0)
    a = rng.integers(0, 4096, (10, 7, 3)).astype(np.uint16)
    a[0, 0] = 4095
    _png_16_bits_per_channel(tmp_path / "rgb.png", a)
    rgba = np.concatenate([a, np.full((10, 7, 1), 65535, np.uint16)], axis=-1)
    _png_16_bits_per_channel(tmp_path / "rgba.png", rgba)
    want = (a / 4095 * 255 + 0.5).astype(np.uint8).transpose(2, 0, 1)
    reading = set_reading([tmp_path / "rgb.png"])
    assert reading["grey_bits"] == 12
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png", 3, grey_bits=12), want)
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png", 3), want)  # its own depth: 12 bits too
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png", 3), want)  # opaque: the same colours
    assert read_image(tmp_path / "rgb.png", 1)[0, 0, 0] == 255  # as grey: the brightest pixel (4095, 4095, 4095)
    # a folder of RGBA ones reads on the folder's depth as RGB ones do (their opaque alpha, 65535, is no colour)
    dim = np.concatenate([np.full((10, 7, 3), 400, np.uint16), np.full((10, 7, 1), 65535, np.uint16)], axis=-1)
    _png_16_bits_per_channel(tmp_path / "dim.png", dim)
    reading = set_reading([tmp_path / "rgba.png", tmp_path / "dim.png"])
    assert reading["grey_bits"] == 12
    assert read_image(tmp_path / "dim.png", 3, grey_bits=reading["grey_bits"]).max() == 25  # 400 of 4095


def test_images_read_blank_or_as_labels_are_named(tmp_path, caplog):
    """A folder of drawings on transparency in both ink tones: those of the tone of the set's backdrop read blank
    (solid white), and masks saved as 0/1 read nearly black; both trained without a word. Empty masks of a clean
    class (opaque, one value) are data and not named."""
    import logging

    from PIL import Image

    from latentbridge.config.sections import ImageDataConfig
    from latentbridge.data.images import load_image_data

    stroke = np.zeros((12, 12), np.uint8)
    stroke[3:9, 5:7] = 255
    for i in range(6):
        d = tmp_path / "draw" / "a"
        d.mkdir(parents=True, exist_ok=True)
        ink = 255 if i < 2 else 0  # two light drawings among four dark ones: the set's backdrop is white
        Image.fromarray(np.dstack([np.full_like(stroke, ink)] * 3 + [stroke]), mode="RGBA").save(d / f"{i}.png")
        m = tmp_path / "masks" / ("crack" if i < 3 else "clean")
        m.mkdir(parents=True, exist_ok=True)
        Image.fromarray((stroke > 0).astype(np.uint8) if i < 3 else np.zeros_like(stroke)).save(m / f"{i}.png")
    with caplog.at_level(logging.WARNING):
        data = load_image_data(ImageDataConfig(source="folder", root=str(tmp_path / "draw"), image_size=12,
                                               val_fraction=0.0, test_fraction=0.0), seed=0)
    assert data.info["reading"]["background"] == "white"
    assert (data.train.images.reshape(6, -1).min(1) == 255).sum() == 2  # what the warning is about
    assert "2 drawing(s) on a transparent canvas read blank (a/0.png, a/1.png)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_image_data(ImageDataConfig(source="folder", root=str(tmp_path / "masks"), image_size=12,
                                        class_folders=True, val_fraction=0.0, test_fraction=0.0), seed=0)
    assert "3 image(s) hold only levels 0 to 1 of 255, nearly black (crack/0.png, crack/1.png, crack/2.png)" \
        in caplog.text
    assert "read blank" not in caplog.text and "clean/" not in caplog.text


def test_8_bit_values_stored_in_16_bits_read_as_8_bit_images(tmp_path):
    """numpy's ``astype(np.uint16)`` of an 8-bit image, saved: read over 10 bits, at a quarter of its brightness
    (255 as 64), beside 8-bit PNGs of the same folder read over 255."""
    from PIL import Image

    from latentbridge.io.images import read_image, set_reading

    a = np.random.default_rng(2).integers(0, 256, (9, 8)).astype(np.uint8)
    a[0, 0] = 255
    Image.fromarray(a).save(tmp_path / "eight.png")
    Image.fromarray(a.astype(np.uint16)).save(tmp_path / "sixteen.png")
    assert Image.open(tmp_path / "sixteen.png").mode.startswith("I")
    reading = set_reading([tmp_path / "eight.png", tmp_path / "sixteen.png"])
    assert reading["grey_bits"] == 8
    for bits in (8, None):
        np.testing.assert_array_equal(read_image(tmp_path / "sixteen.png", 1, grey_bits=bits)[0], a)


def test_grey_with_alpha_pngs_and_colour_tiffs_of_16_bits_are_read_at_their_depth(tmp_path):
    """Two more images of 16 bits per channel that Pillow reads by their high bytes (12-bit data nearly black: 4000
    as 15 of 255): PNGs of grey with alpha, and TIFFs of colour (little- and big-endian, pixels or planes of samples,
    with alpha or not). The folder's depth is found in them too."""
    import tifffile

    from latentbridge.io.images import read_image, set_reading

    rng = np.random.default_rng(1)
    a = rng.integers(0, 4096, (11, 9)).astype(np.uint16)
    a[0, 0] = 4095
    want = (a / 4095 * 255 + 0.5).astype(np.uint8)
    _png_16_bits_per_channel(tmp_path / "la.png", np.stack([a, np.full_like(a, 65535)], axis=-1))
    rgb = np.stack([a, a, a], axis=-1)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    tifffile.imwrite(tmp_path / "rgb_be.tif", rgb.astype(">u2"), photometric="rgb")
    tifffile.imwrite(tmp_path / "planes.tif", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate")
    tifffile.imwrite(tmp_path / "rgba.tif", np.concatenate([rgb, np.full_like(rgb[..., :1], 65535)], axis=-1),
                     photometric="rgb", extrasamples=["unassalpha"])
    for name in ("la.png", "rgb.tif", "rgb_be.tif", "planes.tif", "rgba.tif"):
        assert set_reading([tmp_path / name])["grey_bits"] == 12, name
        np.testing.assert_array_equal(read_image(tmp_path / name, 1)[0], want, err_msg=name)
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.tif", 3), np.stack([want] * 3))
    half = np.stack([a // 2, np.full_like(a, 32768)], axis=-1)  # alpha one half: composited on black
    _png_16_bits_per_channel(tmp_path / "half.png", half)
    got = read_image(tmp_path / "half.png", 1, grey_bits=12)[0].astype(int)
    assert np.abs(got - (a // 2 / 4095 * 255 * 128 / 255)).max() <= 1.5


def test_signed_integer_images_keep_their_negative_values(tmp_path):
    """CT slices in Hounsfield units (signed 16-bit TIFFs): integers were read from 0 up, so air (-1000) and fat
    (-100) both read 0; the folder's range now starts at its smallest value."""
    import tifffile

    from latentbridge.config.sections import ImageDataConfig
    from latentbridge.data.images import load_image_data
    from latentbridge.io.images import read_image

    r = np.hypot(*(np.mgrid[:16, :16] - 8))
    for i in range(3):
        ct = np.full((16, 16), -1000, np.int16)  # air, fat, tissue, bone
        ct[r < 7], ct[r < 5] = -100, 40
        ct[r < 1 + i] = 1000 if i else 500
        tifffile.imwrite(tmp_path / f"s{i}.tif", ct)
    cfg = ImageDataConfig(source="folder", root=str(tmp_path), image_size=16, test_fraction=0.0, val_fraction=0.0)
    data = load_image_data(cfg, seed=0)
    assert data.info["reading"]["value_ranges"]["int"] == [-1000, 1000]
    assert np.unique(data.train.images).tolist() == [0, 115, 133, 191, 255]  # -1000, -100, 40, 500, 1000 of -1000..1000
    assert np.unique(read_image(tmp_path / "s0.tif")).tolist() == [0, 153, 177, 255]  # alone: its own -1000..500


def test_a_large_image_prints_no_raw_pillow_warning_and_an_empty_file_is_named_so(tmp_path, monkeypatch, recwarn):
    """An image above Pillow's warning limit (89 Mpx) but under its error limit printed two raw
    DecompressionBombWarning tracebacks (the folder's size survey and the crop); a 0-byte .png was "cannot identify
    image file"."""
    import PIL.Image
    from PIL import Image

    from latentbridge.config.sections import ImageDataConfig
    from latentbridge.data.images import load_image_data
    from latentbridge.errors import DataError

    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 1000)  # a 40 x 30 image stands for a 95-Mpx one
    Image.new("L", (40, 30), 30).save(tmp_path / "large.png")
    for i in range(3):
        Image.new("L", (16, 16), 60 * i).save(tmp_path / f"s{i}.png")
    cfg = ImageDataConfig(source="folder", root=str(tmp_path), image_size=16, test_fraction=0.0, val_fraction=0.0)
    assert len(load_image_data(cfg, seed=0).train) == 4
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"1 of 5 images cannot be read: .*empty\.png: file is empty \(0 bytes\)"):
        load_image_data(cfg, seed=0)
