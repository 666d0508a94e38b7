"""Spoken and written digits of one's own: recordings and images in class folders (or named as FSDD's in
sub-folders, as AudioMNIST's), read in FSDD's and MNIST's place by the audio-visual pairs and the digit judges."""

import logging
import warnings

import numpy as np
import pytest
import soundfile as sf
from PIL import Image, ImageDraw, ImageFont

from conftest import REPO
from latentbridge.cli import main
from latentbridge.data.sources import FSDD, DigitImages, written_digits
from latentbridge.data.sources.common import DIGIT_WORDS, folder_digit
from latentbridge.errors import DataError

MNIST_DIR = REPO.parent / "shared" / "data" / "mnist"


def _tone(digit: int, k: int, rate: int = 16000, channels: int = 2) -> np.ndarray:
    """A 0.5-s "spoken digit": a tone of its own pitch (300 Hz + 150 Hz per digit), a little noise."""
    t = np.arange(rate // 2) / rate
    x = 0.3 * np.sin(2 * np.pi * (300 + 150 * digit) * t) + 0.01 * np.random.default_rng([digit, k]).normal(size=t.size)
    return np.stack([x, 0.7 * x], 1) if channels == 2 else x


def _glyph(digit: int, k: int, side: int = 64) -> Image.Image:
    """A written digit: dark ink on light paper, of ``side`` px, slightly shifted per copy."""
    im = Image.new("L", (side, side), 235)
    font = ImageFont.load_default(size=side * 0.7)
    ImageDraw.Draw(im).text((side * 0.3 + k % 3, side * 0.1 + k % 2), str(digit), fill=20, font=font)
    return im


def _own_recordings(root, per_digit=6, words=True):
    for d in range(10):
        folder = root / (DIGIT_WORDS[d].capitalize() if words and d % 2 else DIGIT_WORDS[d] if words else str(d))
        folder.mkdir(parents=True)
        for k in range(per_digit):
            sf.write(folder / f"spk{k % 2}_nohash_{k}.wav", _tone(d, k), 16000)
    return root


def _own_images(root, per_digit=6, split_folders=False):
    for d in range(10):
        for k in range(per_digit):
            sub = (("test" if k == 0 else "train") + "/") if split_folders else ""
            out = root / f"{sub}{d}" / f"w{k}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            _glyph(d, k).save(out)
    return root


def test_a_class_folder_names_its_digit():
    assert [folder_digit(n) for n in ("3", "three", "Three ", "NINE", "33", "yes", "_background_noise_")] == \
        [3, 3, 3, 9, None, None, None]


def test_recordings_in_class_folders_are_spoken_digits_split_by_their_path(tmp_path):
    root = _own_recordings(tmp_path / "rec", per_digit=20)
    (root / "yes").mkdir()
    sf.write(root / "yes" / "a_nohash_0.wav", _tone(0, 0), 16000)  # a word that is no digit: left out, said
    (root / "README.md").write_text("notes")
    with pytest.warns(UserWarning, match=r"skipped 1 file\(s\) in no class folder named by a digit .*yes/a_nohash_0"):
        ds = FSDD(root)
    items = ds.items()
    assert ds.layout == "folders" and len(items) == 200
    assert {it.digit for it in items} == set(range(10)) and ds.speakers == ["spk0", "spk1"]
    assert all(it.path.parent.name.lower() == DIGIT_WORDS[it.digit] for it in items)
    test = ds.split("test")
    assert 0.02 < len(test) / len(items) < 0.25  # a seeded 10 % (of 200 files: 20 +- 4)
    assert [it.path for it in FSDD(root).split("test")] == [it.path for it in test]  # the same draw every time
    # another file added leaves every other file's split as it was
    sf.write(root / "zero" / "new_nohash_9.wav", _tone(0, 9), 16000)
    again = {it.path: it.split for it in FSDD(root).items()}
    assert all(again[it.path] == it.split for it in items)


def test_train_and_test_folders_split_the_recordings(tmp_path):
    for split in ("train", "test"):
        _own_recordings(tmp_path / split, per_digit=2, words=False)
    ds = FSDD(tmp_path)
    assert len(ds.split("train")) == len(ds.split("test")) == 20
    assert all(it.path.relative_to(tmp_path).parts[0] == it.split for it in ds.items())


def test_recordings_named_as_fsdds_in_speaker_folders_keep_their_split(tmp_path):
    """AudioMNIST's layout: data/01/0_01_0.wav, numbered speakers, 48 kHz."""
    for spk in ("01", "02"):
        for d in range(10):
            for idx in (0, 7):
                (tmp_path / "data" / spk).mkdir(parents=True, exist_ok=True)
                sf.write(tmp_path / "data" / spk / f"{d}_{spk}_{idx}.wav", _tone(d, idx, 48000, 1), 48000)
    ds = FSDD(tmp_path / "data")
    assert ds.layout == "folders" and ds.speakers == ["01", "02"]
    assert {it.index for it in ds.split("test")} == {0} and {it.index for it in ds.split("train")} == {7}
    flat = FSDD(tmp_path / "data" / "01")  # one speaker's folder: FSDD's flat layout
    assert flat.layout == "fsdd" and len(flat.items()) == 20 and len(flat.split("test")) == 10


def test_recordings_named_as_fsdds_keep_fsdds_split_and_a_tenth_of_fewer(tmp_path):
    """FSDD's official split is repetitions 0-4 of 0-49, whatever files are missing; a user's ten repetitions lost half
    to the test split, five all of their training clips."""
    rec = tmp_path / "recordings"
    rec.mkdir()
    for d in range(10):
        for spk, reps in (("jackson", 50), ("ann", 10), ("bob", 5)):
            for i in range(reps):
                if (spk, i) != ("jackson", 2):  # one recording missing moves no other
                    (rec / f"{d}_{spk}_{i}.wav").symlink_to(rec.parent / "one.wav")
    sf.write(rec.parent / "one.wav", _tone(0, 0, 8000, 1), 8000)
    ds = FSDD(tmp_path)
    assert ds.layout == "fsdd" and "repetitions 0-4 of 50" in ds.split_rule["test"]
    assert ds.name == f"spoken digits of {tmp_path}"  # ann and bob: not FSDD's speakers, whatever the names' form
    from latentbridge.data.digits import classifier_data, default_digit_spec

    spec = default_digit_spec()
    measures = classifier_data("fsdd", tmp_path, spec, n_train=20, n_test=10)["data_config"]["test_measures"]
    assert measures.startswith("recordings held out of training")  # (said every speaker is in both splits)
    test = {(it.speaker, it.index) for it in ds.split("test") if it.digit == 3}
    assert test == {("jackson", i) for i in (0, 1, 3, 4)} | {("ann", 0), ("bob", 0)}


def test_a_folder_of_no_spoken_digits_says_which_layouts_are_read(tmp_path):
    (tmp_path / "misc").mkdir()
    sf.write(tmp_path / "misc" / "hello.wav", _tone(0, 0), 16000)
    with pytest.raises(DataError, match=r"no spoken digits found: point digits.fsdd_root at FSDD's folder .*named "
                                        r"\{digit\}_\{speaker\}_\{index\}.wav or in class folders named by digit.*; "
                                        r"it holds 1 file\(s\) none of these \(e\.g\. 'misc/hello\.wav'\)$"):
        FSDD(tmp_path)  # (the folders it passed over, unnamed: low/, high/)
    for reader, what in ((FSDD, "FSDD"), (written_digits, "MNIST")):  # a folder gone: said so (it read "no spoken
        with pytest.raises(DataError, match=rf"gone: does not exist \(digits.\w+_root; digits.download=true fetches "
                                            rf"{what} there\)$"):  # digits found", "MNIST test file missing")
            reader(tmp_path / "gone")


def test_written_digits_in_class_folders_are_framed_as_mnists(tmp_path):
    root = _own_images(tmp_path / "img", per_digit=12)
    (root / "loose.png").write_bytes((root / "0" / "w0.png").read_bytes())  # in no class folder: left out, said
    with pytest.warns(UserWarning, match=r"skipped 1 file\(s\) in no class folder .*loose.png"):
        ds = written_digits(root)
    assert isinstance(ds, DigitImages) and ds.name == f"written digits of {root}"
    images, labels, splits = ds.pool()
    assert images.shape == (120, 28, 28) and images.dtype == np.uint8 and sorted(set(labels)) == list(range(10))
    assert not set(splits["train"]) & set(splits["test"]) and len(splits["train"]) + len(splits["test"]) == 120
    # dark ink on light paper read as MNIST's light digit on black, its box 20 px, centred
    ink = images.astype(float) / 255
    assert ink[:, [0, -1], :].max() < 0.05 and ink.mean() < 0.35
    tall = [np.ptp(np.nonzero(im.max(axis=1) > 0.3)[0]) + 1 for im in ink]  # each digit's box: 20 px high
    assert 17 <= min(tall) and max(tall) <= 21
    x_test, y_test = ds.load("test")
    assert len(x_test) == len(splits["test"]) and np.array_equal(y_test, labels[splits["test"]])
    assert set(ds.split_rule) == {"train", "test"}


def test_every_digit_of_a_small_set_has_a_test_and_a_training_file(tmp_path):
    """At a 10 % / 20 % draw, four recordings or three images a digit left digits without a test file: the test
    pairs refused the whole set."""
    audio = FSDD(_own_recordings(tmp_path / "audio", per_digit=4))
    images = written_digits(_own_images(tmp_path / "images", per_digit=3))
    for digits in ([it.digit for it in audio.split("test")], [it.digit for it in audio.split("train")],
                   images.load("test")[1].tolist(), images.load("train")[1].tolist()):
        assert sorted(set(digits)) == list(range(10))
    assert len(audio.split("test")) < 20 and len(images.load("test")[1]) < 15  # the draw's share, topped up


def test_train_and_test_folders_split_the_images(tmp_path):
    ds = written_digits(_own_images(tmp_path, per_digit=3, split_folders=True))
    assert sorted(ds.load("test")[1].tolist()) == list(range(10)) and len(ds.load("train")[1]) == 20


def test_an_unreadable_image_is_named_and_a_folder_without_class_folders_says_how(tmp_path):
    root = _own_images(tmp_path / "img", per_digit=2)
    (root / "4" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png"):
        written_digits(root).pool()
    flat = tmp_path / "flat"
    flat.mkdir()
    _glyph(1, 0).save(flat / "a.png")
    with pytest.raises(DataError, match=r"MNIST test file missing.*written digits in class folders named by digit"):
        written_digits(flat)


@pytest.mark.skipif(not MNIST_DIR.exists(), reason="MNIST not available under ../shared/data")
def test_mnists_files_are_still_read_as_mnist():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = written_digits(MNIST_DIR)
    assert ds.name == "MNIST" and ds.offline_split and "t10k" in ds.split_rule["test"]


def test_audio_visual_digits_train_on_ones_own_folders(tmp_path, feature_cache, caplog):
    """The whole workflow from the command line: class folders of 16-kHz stereo recordings and of PNG digits."""
    audio, images = _own_recordings(tmp_path / "audio"), _own_images(tmp_path / "images")
    out = tmp_path / "run"
    small = ["train.max_epochs=1", "train.progress_bar=false", "digits.pairs_per_clip=1", "model.channels=[8,16,32]",
             "model.image_channels=[8,16]", "model.latent_dim=8", "train.batch_size=16", "beta.warmup_steps=5",
             f"digits.fsdd_root={audio}", f"digits.mnist_root={images}"]
    with caplog.at_level(logging.INFO, logger="latentbridge"):
        code = main(["train", "--config", str(REPO / "configs" / "avdigits.yaml"), "--out", str(out),
                     *[x for o in small for x in ("-o", o)]])
    assert code == 0
    assert "resampled from 16000 Hz" in caplog.text and "mixed down from 2 channels" in caplog.text
    card = (out / "README.md").read_text()
    assert f"spoken digits of {audio}" in card and f"written digits of {images}" in card


def test_a_judge_of_ones_own_digits_says_so_and_is_trained_again_when_the_folder_changes(tmp_path, monkeypatch):
    """Its card said 'Official MNIST train / test split'; a folder edited since (or split by another rule) was judged
    by the judge trained on its test files."""
    from pathlib import Path

    from latentbridge.tasks.classify import load_classifier

    images = _own_images(tmp_path / "images", per_digit=4)
    cache = tmp_path / "judges"
    _, info = load_classifier("mnist", data_root=images, cache_dir=cache)
    assert info["trained_now"] and info["data"]["dataset"] == f"written digits of {images}"
    card = (Path(info["path"]) / "README.md").read_text()
    assert f"written digits of {images}" in card and "Official" not in card and "Split: test " in card
    assert not load_classifier("mnist", data_root=images, cache_dir=cache)[1]["trained_now"]
    monkeypatch.chdir(tmp_path)  # the same folder named relative to where a run stored it: the same judge
    assert not load_classifier("mnist", data_root="images", cache_dir=cache)[1]["trained_now"]
    (images / ".DS_Store").write_bytes(b"x")  # a file manager's: no file the judge reads
    assert not load_classifier("mnist", data_root=images, cache_dir=cache)[1]["trained_now"]
    _glyph(5, 9).save(images / "5" / "new.png")
    assert load_classifier("mnist", data_root=images, cache_dir=cache)[1]["trained_now"]


def test_links_are_read_where_their_files_lie_and_unreadable_formats_are_named(tmp_path):
    """A recording linked into test/ from train/ was in both splits; train/8 linked in as test/eight had all its
    files read as test; .m4a files in a class folder were left out without a word."""
    for split in ("train", "test"):
        _own_recordings(tmp_path / split, per_digit=2, words=False)
    (tmp_path / "test" / "6" / "linked.wav").symlink_to(tmp_path / "train" / "6" / "spk0_nohash_0.wav")
    (tmp_path / "test" / "eight").symlink_to(tmp_path / "train" / "8", target_is_directory=True)
    (tmp_path / "train" / "3" / "voice memo.m4a").write_bytes(b"\0\0\0 ftypM4A ")
    with pytest.warns(UserWarning, match=r"skipped 1 file\(s\) .*convert them to WAV or FLAC first.*voice memo.m4a"):
        ds = FSDD(tmp_path)
    places = [it.path.relative_to(tmp_path).as_posix() for it in ds.items()]
    assert len(places) == len(set(places)) == 40  # each recording once, where it lies
    assert {it.split for it in ds.items() if it.digit == 8} == {"train", "test"}
    assert all(it.path.relative_to(tmp_path).parts[0] == it.split for it in ds.items())


def test_a_recording_hard_linked_into_the_other_split_is_read_once(tmp_path):
    """Ten training clips hard-linked into test/ (`ln`) were tested on (test accuracy 1.0 on 20 clips, where the
    symbolic links gave 10): one recording, read once, said."""
    import os

    for split in ("train", "test"):
        _own_recordings(tmp_path / split, per_digit=2, words=False)
    os.link(tmp_path / "train" / "6" / "spk0_nohash_0.wav", tmp_path / "test" / "6" / "hard.wav")
    with pytest.warns(UserWarning, match=r"1 recording\(s\) under a second name \(hard links\) read once"):
        ds = FSDD(tmp_path)
    assert len(ds.items()) == 40


def test_a_digit_missing_from_the_training_recordings_names_the_data_folder(tmp_path):
    from latentbridge.data.sources import pair_audio_visual

    for split in ("train", "test"):
        _own_recordings(tmp_path / split, per_digit=2, words=False)
    import shutil

    shutil.rmtree(tmp_path / "train" / "7")
    ds, images = FSDD(tmp_path), written_digits(_own_images(tmp_path / "images", per_digit=3))
    _, labels, splits = images.pool()
    with pytest.raises(DataError, match=rf"^{tmp_path}: no recordings of digit 7 in the 'train' split"):
        pair_audio_visual(ds.items(), labels, "train", 0, image_splits=splits)


def test_framed_images_are_kept_in_the_digit_cache(tmp_path, monkeypatch, feature_cache):
    """20,000 images took 17 s to frame in every command: framed once, read back by the next process."""
    from latentbridge.data import digits
    from latentbridge.data.sources import digit_images

    root = _own_images(tmp_path / "images", per_digit=2)
    first = written_digits(root).pool()[0]
    monkeypatch.setattr(digit_images, "_READ", {})  # another process
    monkeypatch.setattr(digits, "read_digit_image", lambda *a: pytest.fail("framed again"))
    assert np.array_equal(written_digits(root).pool()[0], first)
    _glyph(4, 7).save(root / "4" / "w9.png")  # the folder changed: framed again
    with pytest.raises(pytest.fail.Exception, match="framed again"):
        written_digits(root).pool()


def test_bad_recordings_of_both_splits_are_named_at_once_and_links_to_nothing_said(tmp_path):
    """A bad recording in test/ was found by `evaluate`, after training, and each split's in a run of its own; the
    error named the first file's folder and one split's count; links to nothing were dropped without a word."""
    from latentbridge.data.digits import classifier_data, default_digit_spec

    for split in ("train", "test"):
        _own_recordings(tmp_path / "a" / split, per_digit=2, words=False)
    (tmp_path / "a" / "train" / "1" / "zt.wav").write_bytes(b"")
    (tmp_path / "a" / "test" / "6" / "zs.wav").write_bytes(b"")
    (tmp_path / "a" / "train" / "2" / "gone.wav").symlink_to(tmp_path / "nothing.wav")
    with pytest.warns(UserWarning, match=r"1 link\(s\) to nothing left out \(train/2/gone.wav\)"):
        with pytest.raises(DataError, match=rf"^{tmp_path / 'a'}: 2 of 42 recordings cannot be used: .*zt.wav.*zs.wav"):
            classifier_data("fsdd", tmp_path / "a", default_digit_spec())
    (tmp_path / "a" / "train" / "1" / "zt.wav").unlink()
    images = _own_images(tmp_path / "images", per_digit=3)
    out = tmp_path / "run"
    code = main(["train", "--config", str(REPO / "configs" / "avdigits.yaml"), "--out", str(out),
                 "-o", f"digits.fsdd_root={tmp_path / 'a'}", "-o", f"digits.mnist_root={images}"])
    assert code == 2 and not (out / "model.safetensors").exists()  # before training, not at evaluate
