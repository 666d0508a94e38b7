"""Digit classifiers (MNIST / FSDD) and cross-modal coherence: models, short training runs on
small subsets of the real data, the classifier cache and ``latentbridge classifier train``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from latentbridge.errors import LatentbridgeError
from latentbridge.models.classifiers import FSDDClassifier, MNISTClassifier
from latentbridge.metrics.classification import coherence
from latentbridge.tasks import classify

REPO = Path(__file__).resolve().parents[1]
MNIST_ROOT = REPO.parent / "shared" / "data" / "mnist"
FSDD_ROOT = REPO.parent / "shared" / "data" / "fsdd"

needs_mnist = pytest.mark.skipif(not (MNIST_ROOT / "t10k-images-idx3-ubyte.gz").is_file()
                                 and not (MNIST_ROOT / "t10k-images-idx3-ubyte").is_file(),
                                 reason="../shared/data/mnist not available")
needs_fsdd = pytest.mark.skipif(not (FSDD_ROOT / "recordings").is_dir(), reason="../shared/data/fsdd not available")

#: quick MNIST run: 600 training images, 2 epochs (~2 s); chance is 0.10
QUICK_MNIST = {"train.max_epochs": 2, "data.n_train": 600, "data.n_test": 500, "train.batch_size": 32,
               "train.progress_bar": False}
MNIST_BAR = 0.6
#: quick FSDD run: 300 training clips, 15 epochs (~8 s; 0.59 when written), the whole official
#: test split; chance is 0.10
QUICK_FSDD = {"train.max_epochs": 15, "data.n_train": 300, "train.batch_size": 32, "train.progress_bar": False}
FSDD_BAR = 0.35


def quick(kind, **extra):
    root = MNIST_ROOT if kind == "mnist" else FSDD_ROOT
    return classify.classifier_config(kind, root, **{**(QUICK_MNIST if kind == "mnist" else QUICK_FSDD), **extra})


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------- models


def test_model_shapes_and_config_roundtrip():
    torch.manual_seed(0)
    m = MNISTClassifier()
    assert m(torch.rand(5, 1, 28, 28)).shape == (5, 10)
    assert m(torch.rand(5, 28, 28)).shape == (5, 10)
    assert MNISTClassifier(**m.config()).config() == m.config()
    f = FSDDClassifier()
    assert f(torch.randn(3, 1, 64, 128) * 20 - 60).shape == (3, 10)
    assert FSDDClassifier(**f.config()).config() == f.config()
    assert m.config()["channels"] == [32, 64] and f.config()["channels"] == [16, 32, 64]

    m.train()
    p = m.predict_proba(np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8))
    assert p.shape == (7, 10) and np.allclose(p.sum(1), 1, atol=1e-5)
    assert m.training  # predict restores the mode
    labels = f.predict(torch.randn(4, 64, 128) - 50)
    assert labels.shape == (4,) and labels.dtype == np.int64 and labels.min() >= 0 and labels.max() <= 9
    with pytest.raises(ValueError, match="expects inputs of shape"):
        f.predict(np.zeros((2, 1, 64, 100), np.float32))


def test_fsdd_classifier_ignores_gain_and_silence_floor():
    torch.manual_seed(0)
    f = FSDDClassifier().eval()
    x = torch.randn(4, 1, 64, 128) * 15 - 60
    x[..., 80:] = -100.0  # padded silence at the usual floor
    ref = f(x)
    assert torch.allclose(f(x + 12.0), ref, atol=1e-4)  # a dB offset (gain)
    lower_floor = torch.where(x < x.flatten(1).amax(1).view(-1, 1, 1, 1) - 80, torch.full_like(x, -300.0), x)
    assert torch.allclose(f(lower_floor), ref, atol=1e-4)  # a different floor below the dynamic range


def test_augmentations_keep_shapes():
    from latentbridge.config.sections import FSDDAugment, MNISTAugment
    from latentbridge.data.augment import augment_digit_images, augment_logmel

    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 28, 28)
    y = augment_digit_images(x, g, MNISTAugment())
    assert y.shape == x.shape and torch.isfinite(y).all() and not torch.allclose(x, y)
    s = torch.randn(6, 1, 64, 128) * 10 - 60
    t = augment_logmel(s, g, FSDDAugment())
    assert t.shape == s.shape and (t >= s.flatten(1).amin(1).view(-1, 1, 1, 1) - 1e-4).all()


# --------------------------------------------------------------------------- coherence


class _Fixed:
    def __init__(self, preds):
        self.preds = np.asarray(preds)

    def predict(self, x):
        assert len(x) == len(self.preds)
        return self.preds


class _FixedProba(_Fixed):
    def predict_proba(self, x):
        p = np.full((len(self.preds), 10), 0.05)
        p[np.arange(len(self.preds)), self.preds] = 0.55
        return p


def test_per_class_refuses_labels_that_are_no_class():
    from latentbridge.metrics.classification import per_class

    for bad, message in (([0, 1, -1], "got -1"), ([0.5, 1, 2], "got 0.5"), ([0, 1, 11], "got 11")):
        with pytest.raises(ValueError, match="labels must be whole numbers 0-9, " + message):
            per_class(np.array(bad), np.array([0, 1, 2]))  # (-1 was counted as class 9, 0.5 as 0; 11 an IndexError)


def test_coherence_on_hand_made_predictions():
    targets = [0, 0, 1, 1, 2, 2, 2, 3]
    preds = [0, 1, 1, 1, 2, 0, 2, 3]
    res = coherence(_Fixed(preds), np.zeros((8, 1, 28, 28)), targets)
    assert res["n"] == 8 and res["accuracy"] == pytest.approx(6 / 8) and res["chance"] == 0.1
    assert res["per_class_accuracy"]["0"] == pytest.approx(0.5)
    assert res["per_class_accuracy"]["1"] == 1.0
    assert res["per_class_accuracy"]["2"] == pytest.approx(2 / 3)
    assert res["per_class_accuracy"]["3"] == 1.0 and res["per_class_accuracy"]["9"] is None
    assert res["per_class_n"]["2"] == 3 and res["per_class_n"]["9"] == 0
    conf = np.array(res["confusion_matrix"])
    assert conf.shape == (10, 10) and conf.sum() == 8 and conf[0, 1] == 1 and conf[2, 0] == 1
    assert "mean_target_probability" not in res

    res = coherence(_FixedProba(preds), torch.zeros(8, 1, 28, 28), torch.tensor(targets))
    assert res["accuracy"] == pytest.approx(6 / 8)
    assert res["mean_target_probability"] == pytest.approx((6 * 0.55 + 2 * 0.05) / 8)
    json.dumps(res)  # plain JSON types

    with pytest.raises(ValueError, match="target labels"):
        coherence(_Fixed(preds), np.zeros(8), [0, 1, 2, 3, 4, 5, 6, 10])
    with pytest.raises(ValueError, match="samples for"):
        coherence(_Fixed(preds[:7]), np.zeros(7), targets)


def test_coherence_with_a_real_model_on_its_own_input():
    torch.manual_seed(0)
    m = MNISTClassifier().eval()
    x = torch.rand(20, 1, 28, 28)
    res = coherence(m, x, m.predict(x))
    assert res["accuracy"] == 1.0


# --------------------------------------------------------------------------- training on real data


@needs_mnist
def test_train_mnist_subset(tmp_path):
    from latentbridge.models.hub import load_model

    out = tmp_path / "mnist"
    m = classify.train_classifier(quick("mnist"), out)
    assert m["n_train"] == 600 and m["n_test"] == 500
    assert m["test_split"].startswith("a seeded (seed 0) 500 of "), m["test_split"]  # it named the whole split
    assert m["test_accuracy"] >= MNIST_BAR, m["test_accuracy"]
    for name in ("config.json", "model.safetensors", "README.md", "metrics.json"):
        assert (out / name).is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] == pytest.approx(m["test_accuracy"])
    assert np.array(metrics["confusion_matrix"]).sum() == 500
    saved = load_model(out)
    assert isinstance(saved.model, MNISTClassifier)
    assert saved.info["test_accuracy"] == pytest.approx(m["test_accuracy"])
    assert saved.info["data"]["offline_split"] == m["offline_split"]
    assert saved.info["transform"]["type"] == "image"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnist"]  # no lock or temporary file left
    with pytest.raises(LatentbridgeError, match="not empty"):
        classify.train_classifier(quick("mnist"), out)


@needs_fsdd
def test_train_fsdd_subset(tmp_path):
    from latentbridge.data import digits
    from latentbridge.models.hub import load_model

    out = tmp_path / "fsdd"
    m = classify.train_classifier(quick("fsdd"), out)
    assert m["n_train"] == 300 and m["n_test"] == 300  # the whole official test split
    assert m["test_accuracy"] >= FSDD_BAR, m["test_accuracy"]
    saved = load_model(out)
    assert isinstance(saved.model, FSDDClassifier)
    assert saved.info["transform"]["features"] == digits.default_digit_spec().features.model_dump(mode="json")
    assert saved.info["data"]["speaker_overlap"] is True
    speakers = saved.info["data"]["speakers"]
    assert f"The {len(speakers)} speaker(s) ({', '.join(speakers)}) appear in both splits" in (
        out / "README.md").read_text()


@needs_fsdd
def test_a_digit_missing_from_training_is_named(tmp_path, caplog):
    """A folder of some digits trained a referee that can never predict the others, without a word; the card
    claimed six speakers whatever the folder held."""
    (tmp_path / "few" / "recordings").mkdir(parents=True)
    for f in sorted((FSDD_ROOT / "recordings").glob("[01]_jackson_*.wav")) + sorted(
            (FSDD_ROOT / "recordings").glob("[01]_george_*.wav")):
        (tmp_path / "few" / "recordings" / f.name).write_bytes(f.read_bytes())
    cfg = classify.classifier_config("fsdd", tmp_path / "few", **{**QUICK_FSDD, "train.max_epochs": 1,
                                                                    "data.n_train": None})
    with caplog.at_level("WARNING"):  # 180 clips in batches of 32: 5 steps, where the one-cycle schedule divided by 0
        m = classify.train_classifier(cfg, tmp_path / "clf")
    assert m["n_train"] == 180
    assert "no training recording of digit(s) 2, 3, 4, 5, 6, 7, 8, 9: the classifier will never predict them" in \
        caplog.text, caplog.text
    assert "The 2 speaker(s) (george, jackson) appear in both splits" in (tmp_path / "clf" / "README.md").read_text()


@needs_mnist
def test_load_classifier_trains_once_then_reuses(tmp_path, monkeypatch):
    real = classify.train_classifier
    calls = []

    def shortened(cfg, out_dir, **kw):
        calls.append(out_dir)
        cfg.train.max_epochs, cfg.data.n_train, cfg.data.n_test = 2, 600, 500
        return real(cfg, out_dir, **kw)

    monkeypatch.setattr(classify, "train_classifier", shortened)
    model, info = classify.load_classifier("mnist", data_root=MNIST_ROOT, cache_dir=tmp_path)
    assert len(calls) == 1 and info["trained_now"] is True
    assert Path(info["path"]) == tmp_path / "mnist" == classify.classifier_dir("mnist", tmp_path)
    assert isinstance(model, MNISTClassifier) and not model.training

    def boom(*a, **k):
        raise AssertionError("retrained although the classifier is cached")

    monkeypatch.setattr(classify, "train_classifier", boom)
    model2, info2 = classify.load_classifier("mnist", data_root=MNIST_ROOT, cache_dir=tmp_path)
    assert info2["trained_now"] is False and info2["test_accuracy"] == info["test_accuracy"]
    x = torch.rand(8, 1, 28, 28)
    assert np.array_equal(model.predict(x), model2.predict(x))

    with pytest.raises(LatentbridgeError, match="classifier train fsdd"):
        classify.load_classifier("fsdd", cache_dir=tmp_path, train_if_missing=False)

    # another data folder (the user's own images under MNIST's names): its own judge, not the cached one of the first
    other = tmp_path / "own_mnist"
    other.mkdir()
    for f in Path(MNIST_ROOT).iterdir():
        (other / f.name).symlink_to(f)
    monkeypatch.setattr(classify, "train_classifier", shortened)
    _, info3 = classify.load_classifier("mnist", data_root=other, cache_dir=tmp_path)
    assert info3["trained_now"] is True and Path(info3["path"]) == classify.data_folder(tmp_path / "mnist", other)
    assert info3["data"]["data_root"] == str(other.resolve()) and len(calls) == 2
    monkeypatch.setattr(classify, "train_classifier", boom)  # each folder's judge, cached
    assert classify.load_classifier("mnist", data_root=other, cache_dir=tmp_path)[1]["path"] == info3["path"]
    assert classify.load_classifier("mnist", data_root=MNIST_ROOT, cache_dir=tmp_path)[1]["path"] == info["path"]


@needs_mnist
def test_a_judge_cache_left_unfinished_unwritable_or_in_the_making(tmp_path, monkeypatch, caplog):
    """A judge's cache entry is the tool's own. An unfinished training of it was retrained with advice to `latentbridge
    train --resume` (never run by the user) and a killed retraining's set-aside folder was handed to the user to sort
    out; a read-only cache announced a training that never came, and evaluate judged in pixel space (FD 38 for 3701).
    Two evaluations that needed it at once: the second judged in pixel space (FD 35 against 3780, exit 0), told to
    "choose another output" of a cache it never named; it waits for the first one's and uses it."""
    import os
    import subprocess
    import sys

    import latentbridge
    from conftest import mounted

    real = classify.train_classifier

    def shortened(cfg, out_dir, **kw):
        cfg.train.max_epochs, cfg.data.n_train, cfg.data.n_test = 1, 300, 200
        return real(cfg, out_dir, **kw)

    def boom(*a, **k):
        raise AssertionError("trained although another process was training it")

    monkeypatch.setattr(classify, "train_classifier", shortened)
    (tmp_path / "mnist" / "checkpoints").mkdir(parents=True)  # killed in its first training
    (tmp_path / ".mnist.old-4242").mkdir()  # killed while it retrained
    with caplog.at_level("WARNING"):
        first, info = classify.load_classifier("mnist", data_root=MNIST_ROOT, cache_dir=tmp_path)
    assert "retraining the mnist classifier: an earlier training of it did not finish" in caplog.text, caplog.text
    assert "--resume" not in caplog.text and "kept in" not in caplog.text, caplog.text
    assert not (tmp_path / ".mnist.old-4242").exists() and (tmp_path / "mnist" / "config.json").exists()

    folder = tmp_path / "b" / Path(info["path"]).relative_to(tmp_path)  # another process trains it now
    hold = (f"import shutil, time\nfrom latentbridge.outputs import FolderLock\nwith FolderLock({str(folder)!r}):\n"
            f"    print('held', flush=True)\n    time.sleep(1.0)\n    shutil.copytree({info['path']!r}, {str(folder)!r})\n")
    env = {**os.environ, "PYTHONPATH": str(Path(latentbridge.__file__).parents[1])}
    other = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True, env=env)
    assert other.stdout.readline().strip() == "held"
    monkeypatch.setattr(classify, "train_classifier", boom)
    caplog.clear()
    with caplog.at_level("WARNING"):
        model, info2 = classify.load_classifier("mnist", data_root=MNIST_ROOT, cache_dir=tmp_path / "b")
    assert other.wait() == 0 and info2["trained_now"] is False and Path(info2["path"]) == folder
    assert "waiting for another latentbridge process" in caplog.text and "trains the mnist classifier" in caplog.text
    x = torch.rand(8, 1, 28, 28)
    assert np.array_equal(model.predict(x), first.predict(x))

    monkeypatch.setattr(classify, "train_classifier", shortened)
    with mounted(tmp_path / "ro", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs") as ro:
        caplog.clear()
        with caplog.at_level("WARNING"):
            model, info = classify.load_classifier("mnist", data_root=MNIST_ROOT, cache_dir=ro)
        assert isinstance(model, MNISTClassifier) and info["trained_now"] and 0 <= info["test_accuracy"] <= 1
        assert "training the mnist classifier for this run only" in caplog.text and "Read-only file system" in \
            caplog.text and "kept for later runs" not in caplog.text, caplog.text
        assert list(ro.iterdir()) == []


def test_classifier_dir_default(monkeypatch, tmp_path):
    monkeypatch.setenv("LATENTBRIDGE_CACHE", str(tmp_path / "features"))
    assert classify.classifier_dir("fsdd") == tmp_path / "features" / "classifiers" / "fsdd"  # (inside it)
    with pytest.raises(ValueError):
        classify.classifier_dir("cifar")


@needs_mnist
def test_cli_classifier_train(tmp_path, capsys):
    from latentbridge.cli import main

    out = tmp_path / "clf"
    args = ["classifier", "train", "mnist", "--out", str(out), "--data", str(MNIST_ROOT), "--epochs", "1",
            "--n-train", "300", "--n-test", "200", "--batch-size", "32"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "test accuracy" in text and "on 200 images" in text
    info = json.loads((out / "config.json").read_text())
    assert info["model_class"] == "mnist_classifier" and info["n_train"] == 300
    assert main(args) == 2  # exists: needs --force
    assert "not empty" in capsys.readouterr().err
    assert main(args + ["--force"]) == 0


@needs_mnist
def test_the_readme_s_classifier_step_after_the_judge_s_first_use_says_it_is_trained(tmp_path, monkeypatch, capsys):
    """The README's `classifier train mnist --data DIR` after a training had made the judge on first use: exit 2,
    'exists and is not empty (use --force ...)'."""
    from latentbridge.cli import main

    monkeypatch.setenv("LATENTBRIDGE_CACHE", str(tmp_path / "cache"))
    small = ["--epochs", "1", "--n-train", "300", "--n-test", "200", "--batch-size", "32"]
    assert main(["classifier", "train", "mnist", "--data", str(MNIST_ROOT), *small]) == 0  # the first use
    first = capsys.readouterr().out
    assert main(["classifier", "train", "mnist", "--data", str(MNIST_ROOT)]) == 0
    again = capsys.readouterr().out
    assert "(trained already: --force trains it again): test accuracy" in again, again
    assert again.split("test accuracy")[1] == first.split("test accuracy")[1]  # its own figures, untouched
    assert main(["classifier", "train", "mnist", "--data", str(MNIST_ROOT), *small]) == 2  # other settings: as before
    assert "not empty" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["mnist", "fsdd", "image_ae"])
def test_a_missing_data_folder_names_the_option_that_exists(kind, tmp_path, capsys):
    """The message sent classifier and image-autoencoder users to digits.fsdd_root / digits.mnist_root /
    digits.download=true, keys their configs refuse as unknown."""
    from latentbridge.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    if kind == "image_ae":
        args = ["train", "--config", str(REPO / "configs" / "image_ae_conv.yaml"), "-o", f"data.root={empty}"]
        said = "point data.root at the folder holding the MNIST idx files"
    else:
        args = ["classifier", "train", kind, "--data", str(empty), "--epochs", "1"]
        said = "point --data DIR (a classifier config's data.root) at"
    assert main([*args, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert said in err and "digits." not in err, err


@pytest.mark.parametrize("flag,value,key", [("--epochs", "0", "train.max_epochs"), ("--batch-size", "-1", "train.batch_size")])
def test_a_bad_option_value_is_named_by_its_option(flag, value, key, tmp_path, capsys):
    """`classifier train --epochs 0` answered with the config's key and a 'defaults with overrides' source
    the user never wrote; an -o override keeps the key it was given by."""
    from latentbridge.cli import main

    assert main(["classifier", "train", "fsdd", flag, value, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"classifier train fsdd: {flag}: Input should be greater than 0 (got {value})" in err, err
    assert key not in err and not (tmp_path / "run").exists()
    assert main(["classifier", "train", "fsdd", "-o", f"{key}={value}", "--out", str(tmp_path / "run")]) == 2
    assert f"'{key}'" in capsys.readouterr().err
