"""Large image folders: a set held once as uint8 and scaled a batch at a time to the floats a whole-set scaling gave,
``data.limit`` and the splits drawn over the file list before any image is decoded, the test split decoded only by
what uses it, reading in threads, and JPEGs far larger than the model's size decoded at a fraction of their size."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import REPO
from latentbridge.cli import main


def _folder(root, n=40):
    """``n`` small noise images in two class folders (``a``, ``b``), JPEG and PNG in turn, of varied heights."""
    from PIL import Image

    rng = np.random.default_rng(3)
    for i in range(n):
        cls = root / ("a" if i % 3 else "b")
        cls.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (10 + i % 5, 12, 3), dtype=np.uint8)).save(
            cls / f"im{i:02d}.{'png' if i % 2 else 'jpg'}")
    return root


def _counting(monkeypatch) -> list:
    """The paths the folder reader decodes (every call of ``read_image``), in a list it fills."""
    import latentbridge.data.images as images_mod

    decoded, read_image = [], images_mod.read_image

    def spy(path, *args, **kwargs):
        decoded.append(path)
        return read_image(path, *args, **kwargs)

    monkeypatch.setattr(images_mod, "read_image", spy)
    return decoded


def _cfg(root, **kw):
    from latentbridge.config.sections import ImageDataConfig

    return ImageDataConfig(source="folder", root=str(root), image_size=8, channels=3, class_folders=True, **kw)


def test_a_sample_folder_trains_on_its_samples_not_its_grid(tmp_path, caplog):
    """`latentbridge sample`'s folder given as training images: its grid.png (a mosaic of the samples) was cropped into
    one more training image, and the size warning named no file."""
    import logging

    from PIL import Image

    from latentbridge.data.images import load_image_data

    root = tmp_path / "s3"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(root / f"sample_{i:04d}.png")
    Image.fromarray(rng.integers(0, 256, (30, 40), dtype=np.uint8)).save(root / "grid.png")
    Image.fromarray(rng.integers(0, 256, (10, 16), dtype=np.uint8)).save(root / "stray.png")
    np.savez(root / "samples.npz", images=np.zeros((12, 1, 8, 8), np.uint8))
    from latentbridge.config.sections import ImageDataConfig

    cfg = ImageDataConfig(source="folder", root=str(root), image_size=8, channels=1, class_folders=False)
    with caplog.at_level(logging.WARNING, logger="latentbridge.data.images"):
        data = load_image_data(cfg, seed=0)
    assert len(data.train) + len(data.val) + len(data.test) == 13  # the samples and the stray image
    assert "images of 8x8 x12, 16x10 x1 (stray.png) resized to 8x8" in caplog.text, caplog.text
    assert "(.npz, .png: samples.npz, grid.png) left out" in caplog.text, caplog.text
    # the edge sampler's folder (settings.json, no samples.npz) alike; a user's own grid.png in a folder of images is
    # read
    (root / "samples.npz").unlink()
    (root / "settings.json").write_text("{}")
    assert sum(map(len, (lambda d: (d.train, d.val, d.test))(load_image_data(cfg, seed=0)))) == 13
    (root / "settings.json").unlink()
    (root / "sample_0000.png").rename(root / "a.png")  # (grid.png beside sample_0000.png: the sampler's still)
    assert sum(map(len, (lambda d: (d.train, d.val, d.test))(load_image_data(cfg, seed=0)))) == 14


def test_a_folder_set_is_one_uint8_array_scaled_per_batch_to_the_same_floats(tmp_path):
    from latentbridge.config.sections import TrainConfig
    from latentbridge.data.images import FloatView, load_image_data, unit_batch, unit_floats
    from latentbridge.models.registry import build_model
    from latentbridge.config.workflows import load_config
    from latentbridge.tasks.pipeline import loader_of

    data = load_image_data(_cfg(_folder(tmp_path / "f"), test_fraction=0.25, val_fraction=0.2), seed=0)
    train, val = data.train.images, data.val.images
    assert (len(train), len(val), len(data.test)) == (24, 6, 10)
    assert train.dtype == np.uint8 and train.nbytes == 24 * 3 * 8 * 8  # 4,608 bytes: no float copy held
    assert train.base is not None and train.base is val.base and train.base.nbytes == 30 * 192  # one array of both
    # the scaling is the one the whole set had (uint8 -> float32, / 255.0), bit for bit, for every level
    levels = np.arange(256, dtype=np.uint8)
    assert np.array_equal(unit_floats(levels), levels.astype(np.float32) / 255.0)
    assert np.array_equal(data.train.floats(), train.astype(np.float32) / 255.0)
    assert np.array_equal(FloatView(train)[[3, 1]], train[[3, 1]].astype(np.float32) / 255.0)
    # the first shuffled training batch: the same tensor from uint8 + the collate as from the floats of the whole set
    tc = TrainConfig(batch_size=8)
    torch.manual_seed(0)
    new = next(iter(loader_of(train, tc, True, collate=unit_batch)))[0]
    torch.manual_seed(0)
    old = next(iter(loader_of(train.astype(np.float32) / 255.0, tc, True)))[0]
    assert new.dtype == torch.float32 and new.shape == (8, 3, 8, 8) and torch.equal(new, old)
    # dict batches (the diffusion loader): labels untouched, images scaled
    from latentbridge.training.fit import DictDataset

    batch = unit_batch([DictDataset(x=torch.from_numpy(train), y=torch.from_numpy(data.train.labels))[i]
                        for i in range(3)])
    assert torch.equal(batch["x"], torch.from_numpy(train[:3].astype(np.float32) / 255.0))
    assert batch["y"].dtype == torch.int64 and batch["y"].tolist() == data.train.labels[:3].tolist()
    # and so the loss of a model on it
    cfg = load_config(None, ["task=image_ae", "model.name=image_conv_ae", "model.channels=[4,8]", "model.latent_dim=4"])
    torch.manual_seed(0)
    model = build_model(cfg.model, input_shape=(3, 8, 8)).eval()
    with torch.no_grad():
        assert torch.equal(model.loss(new, beta=0.0)[0], model.loss(old, beta=0.0)[0])


def test_limit_and_splits_are_drawn_from_the_file_list_before_decoding(tmp_path, monkeypatch):
    """``data.limit`` took its subset after decoding the whole folder; the subset is the one it was (the names
    below are the images the whole-folder reading kept), and only its images are decoded."""
    from latentbridge.data.images import load_image_data
    from latentbridge.io.images import read_image

    root = _folder(tmp_path / "f")
    decoded = _counting(monkeypatch)
    bars = []
    monkeypatch.setattr("latentbridge.data.images.progress_bar",
                        lambda total, *a, **k: bars.append(total) or __import__("tqdm").tqdm(disable=True))
    data = load_image_data(_cfg(root, limit=6, test_fraction=0.25, val_fraction=0.2), seed=0)
    names = lambda s: [p.relative_to(root).as_posix() for p in s.files]  # noqa: E731
    assert names(data.train) == ["a/im02.jpg", "a/im14.jpg", "a/im16.jpg", "a/im29.png", "b/im06.jpg"]
    assert names(data.val) == ["a/im34.jpg"]
    assert sorted(p.relative_to(root).as_posix() for p in decoded) == sorted(names(data.train) + names(data.val))
    assert bars == [6]  # one pass, one bar, over the 6 images of the subset (of 40)
    assert data.info["n_test"] == len(data.test) == 10 and len(decoded) == 6  # the test split: not decoded
    direct = np.stack([read_image(p, 3, (8, 8), fit="crop") for p in data.train.files])
    assert np.array_equal(data.train.images, direct)
    assert data.test.images.shape == (10, 3, 8, 8) and len(decoded) == 16  # decoded when first used, then kept
    assert names(data.test) == ["a/im05.png", "a/im07.png", "a/im19.png", "a/im20.jpg", "a/im26.jpg", "a/im28.jpg",
                                "b/im00.jpg", "b/im09.png", "b/im21.png", "b/im33.png"]
    assert data.test.images.sum() == data.test.stored.sum() and len(decoded) == 16  # not decoded twice


def test_threads_read_the_same_images_and_name_every_unreadable_one(tmp_path, monkeypatch):
    import latentbridge.data.audio as audio_mod
    import latentbridge.data.images as images_mod
    from latentbridge.errors import DataError

    root = _folder(tmp_path / "f", n=20)
    monkeypatch.setattr(images_mod, "READ_CHUNK", 3)  # 7 chunks of the 20 files
    read = {}
    for workers in (0, 4):
        monkeypatch.setattr(audio_mod, "default_workers", lambda w=workers: w)
        read[workers] = images_mod.load_image_data(_cfg(root, test_fraction=0.0, val_fraction=0.0), seed=0).train.images
    assert read[0].shape == (20, 3, 8, 8) and np.array_equal(read[0], read[4])
    # JPEGs cut short open (their header is whole): found when decoded, every one in the set named in one error
    for name in ("a/im01.png", "a/im08.jpg", "b/im18.jpg"):
        data = (root / name).read_bytes()
        (root / name).write_bytes(data[:len(data) // 2])
    with pytest.raises(DataError, match=r"f: 3 of 20 images cannot be read: .*im01\.png.*im08\.jpg.*im18\.jpg"):
        images_mod.load_image_data(_cfg(root, test_fraction=0.0, val_fraction=0.0), seed=0)


def test_evaluate_decodes_the_test_split_only(tmp_path, monkeypatch):
    root = _folder(tmp_path / "f")
    out = tmp_path / "run"
    assert main(["train", "--config", str(REPO / "configs" / "image_ae_conv.yaml"), "--out", str(out), "-o",
                 "data.source=folder", "-o", f"data.root={root}", "-o", "data.image_size=8", "-o", "data.channels=3",
                 "-o", "model.channels=[4,8]", "-o", "train.max_epochs=1", "-o", "train.progress_bar=false"]) == 0
    decoded = _counting(monkeypatch)
    assert main(["evaluate", str(out), "--out", str(tmp_path / "ev")]) == 0
    assert len(decoded) == 8  # the 20 % test split of 40 (it decoded all 40)


def test_diffusion_trains_on_uint8_and_evaluates_on_its_test_split_and_a_floor_only(tmp_path, monkeypatch):
    """A DDPM trains without a float copy of its folder; its evaluation decodes the 10 test images and the 8 training
    images of the real-data floor (it decoded all 40), before any sampling."""
    root = _folder(tmp_path / "f")
    out = tmp_path / "run"
    opts = ["data.source=folder", f"data.root={root}", "data.image_size=8", "data.channels=3",
            "data.class_folders=true", "data.test_fraction=0.25", "model.channels=[8,16]", "train.max_epochs=1",
            "train.progress_bar=false", "train.batch_size=8", "monitor.fd_every=0", "monitor.grid_per_class=1",
            "sampling.steps=2", "evaluate.n_samples=8"]
    assert main(["train", "--config", str(REPO / "configs" / "ddpm_mnist.yaml"), "--out", str(out),
                 *[x for o in opts for x in ("-o", o)]]) == 0
    decoded = _counting(monkeypatch)
    assert main(["evaluate", str(out), "--out", str(tmp_path / "ev")]) == 0
    assert len(decoded) == 18 and len(set(decoded)) == 18
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert (m["n_reference"], m["n_real_floor"], m["n_generated"]) == (10, 8, 8)


def test_a_jpeg_far_larger_than_the_size_is_decoded_smaller(tmp_path, monkeypatch):
    """Pillow's draft: a 1024 x 768 JPEG read for 32 px is decoded at 1/4 (256 x 192: 6 times 32); the result differs
    from decoding it whole by a little blur; a PNG of it, and a JPEG under 4 times the size, read as before."""
    from PIL import Image

    import latentbridge.io.images as io_images

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:768, 0:1024]
    photo = np.stack([(127 + 100 * np.sin(x / 37.0 + c) * np.cos(y / 23.0)) for c in range(3)], -1)
    photo = np.clip(photo + rng.normal(0, 12, photo.shape), 0, 255).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "big.jpg", quality=90)
    Image.fromarray(photo).save(tmp_path / "big.png")
    Image.fromarray(photo[:240, :320]).save(tmp_path / "small.jpg", quality=90)  # 240 < 4 x 64: read whole
    read = {}
    for margin in ("drafted", "whole"):
        if margin == "whole":
            monkeypatch.setattr(io_images, "DRAFT_MARGIN", 10 ** 6)  # never drafted
        read[margin] = {n: io_images.read_image(tmp_path / n, 3, (s, s), fit="crop").astype(int)
                        for n, s in (("big.jpg", 32), ("big.png", 32), ("small.jpg", 64))}
    drafted, whole = read["drafted"], read["whole"]
    diff = np.abs(drafted["big.jpg"] - whole["big.jpg"])
    assert 0 < diff.mean() < 1.0 and diff.max() <= 4  # applied (0.18 and 1 with Pillow 13), and a small change
    assert np.array_equal(drafted["big.png"], whole["big.png"]) and np.array_equal(drafted["small.jpg"],
                                                                                   whole["small.jpg"])


def test_evaluate_data_matches_class_folders_in_any_unicode_form(tmp_path):
    """`evaluate --data` of a folder copied from a Mac (class folders named décomposé: 'e' + a combining accent) was
    refused: 'class folder(s) the run was not trained on: café (its classes: café, Zoë)'. Names match composed, as
    `sample --class` matched them; the labels are the run's indices."""
    import unicodedata

    from PIL import Image

    from latentbridge.config.sections import ImageDataConfig
    from latentbridge.data.images import every_image

    for i, cls in enumerate(["café", "Zoë"]):
        (d := tmp_path / unicodedata.normalize("NFD", cls)).mkdir()
        for k in range(3):
            Image.fromarray(np.full((8, 8), 40 * (i + 1) + 10 * k, np.uint8)).save(d / f"{k}.png")
    cfg = ImageDataConfig(source="folder", root=str(tmp_path), class_folders=True, image_size=8, channels=1)
    full, info = every_image(cfg, str(tmp_path), 0, classes=["Zoë", "café"])  # the run's names, composed
    assert full.class_names == ["Zoë", "café"] == info["classes"]
    means = full.images.reshape(len(full), -1).mean(1)
    assert means[full.labels == 0].min() > means[full.labels == 1].max()  # Zoë's (the brighter) as the run's Zoë


def test_a_photo_turned_by_its_exif_orientation_is_read_and_named_upright(tmp_path, caplog):
    """A phone's photo is stored sideways with an EXIF orientation (6: turn 90 degrees clockwise to show): read
    upright, and the size warning names the size as shown (it said 112x56 for a 56-wide, 112-tall photo)."""
    import logging

    from PIL import Image

    from latentbridge.data.images import _report_conversions
    from latentbridge.io.images import read_image

    yy, xx = np.mgrid[0:112, 0:56]
    upright = (255 * (yy / 111) * (0.3 + 0.7 * (xx < 20))).astype(np.uint8)  # bright at the bottom left
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.rot90(upright, k=1).copy()).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    got = read_image(tmp_path / "phone.jpg", channels=1)[0]
    assert got.shape == (112, 56)
    assert np.corrcoef(got.ravel().astype(float), upright.ravel().astype(float))[0, 1] > 0.99
    with caplog.at_level(logging.INFO, logger="latentbridge.data.images"):
        _report_conversions(tmp_path, [tmp_path / "phone.jpg"], 28, 1, "crop")
    assert "images of 56x112 x1 resized to 28x28" in caplog.text, caplog.text
