"""Unusual but legitimate user data, and bad data, in the mel, image and spatial workflows: what
works, and what is refused with one line naming the file (the image/spatial/mel robustness audit)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO
from latentbridge.errors import DataError


def _tone(path, seconds, rate=8000):
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)


def test_mel_preset_keeps_short_clips_and_many_bad_files_make_one_short_error(tmp_path):
    from latentbridge.config import load_config
    from latentbridge.data.audio import FeatureExtractor

    clip = tmp_path / "seven.wav"
    _tone(clip, 0.14)  # FSDD's shortest clip: 164 of its 3,000 are under a quarter of the preset's 1-s window
    cfg = load_config(REPO / "configs" / "mel_ae.yaml", [f"data.train_dir={tmp_path}"])
    spec = cfg.transform_spec()
    assert spec.windowing.min_share == 0.1
    wf = FeatureExtractor.from_spec(spec, use_cache=False).extract([clip])
    assert len(wf) == 1 and wf.padded == [str(clip)]
    strict = load_config(REPO / "configs" / "mel_ae.yaml", ["audio.min_window_share=0.25"]).transform_spec()
    with pytest.raises(DataError, match=r"seven\.wav: recording too short: 0\.14 s; .* at least 0\.25 s "
                                        r"\(0\.25 of a window, audio\.min_window_share"):
        FeatureExtractor.from_spec(strict, use_cache=False).extract([clip])

    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(30):
        _tone(bad / f"blip_{i:02d}.wav", 0.05)
    files = sorted(bad.glob("*.wav"))
    with pytest.raises(DataError) as e:
        FeatureExtractor.from_spec(spec, use_cache=False).extract(files)
    text = str(e.value)
    assert text.startswith(f"30 files in {bad}: 30 of 30 recordings cannot be used: ")
    # one problem of many files: said once, three of them named (each file's sentence made one line of 2,500 chars)
    assert f"{bad / 'blip_02.wav'} (0.05 s) and 27 more: recording too short; " in text and "blip_03.wav" not in text
    assert text.count("recording too short") == 1 and len(text) < 800
    # of several lengths: the problem said once still, each named file with its own length (thirty FSDD clips of
    # other lengths made thirty sentences of one line)
    for i, f in enumerate(files):
        _tone(f, 0.05 + 0.001 * i)
    with pytest.raises(DataError) as e:
        FeatureExtractor.from_spec(spec, use_cache=False).extract(files)
    text = str(e.value)
    assert f"{bad / 'blip_02.wav'} (0.052 s) and 27 more: recording too short; " in text, text
    assert text.count("recording too short") == 1 and len(text) < 800


def test_a_recording_too_short_is_told_apart_from_the_length_it_needs(tmp_path):
    from latentbridge.io import check_recording_length

    # 7,999 samples at 16 kHz against 8,000: both said "0.5 s"
    with pytest.raises(DataError, match=r"recording too short: 0\.4999 s; .* at least 0\.5 s \(0\.25 of a window"):
        check_recording_length(7999, 32000, 16000)
    # the sound of a recording whose silence is trimmed, and the recording's own length (it gave the sound's as the
    # recording's)
    sr = 16000
    x = np.zeros(int(0.9 * sr), dtype=np.float32)
    x[int(0.3 * sr):int(0.6 * sr)] = 0.3 * np.sin(2 * np.pi * 440 * np.arange(int(0.3 * sr)) / sr)
    sf.write(tmp_path / "short_in_zeros.wav", x, sr)
    from latentbridge.config import load_config
    from latentbridge.data.audio import FeatureExtractor

    spec = load_config(None, ["audio.trim_db=40", "audio.window_s=2.0", "audio.auto=false"]).transform_spec()
    # (trimming keeps the silence around the 0.3 s of sound up to the 0.5 s a recording needs: read, padded; it was
    # refused as "0.3 s of sound in a 0.9-s recording")
    wf = FeatureExtractor.from_spec(spec, use_cache=False).extract([tmp_path / "short_in_zeros.wav"])
    assert len(wf) == 1 and wf.padded == [str(tmp_path / "short_in_zeros.wav")]
    sf.write(tmp_path / "shorter.wav", x[int(0.3 * sr):int(0.7 * sr)], sr)  # 0.4 s in all: too short, said so
    with pytest.raises(DataError, match=r"shorter\.wav: recording too short: 0\.4 s; "):
        FeatureExtractor.from_spec(spec, use_cache=False).extract([tmp_path / "shorter.wav"])


def test_validation_files_hold_the_share_of_windows_asked_for():
    """Whole files are held out; one long recording among clips took 63 of 94 windows at a fraction of 0.1. Files of
    similar length keep the plain seeded split (the same files as before)."""
    from latentbridge.data.holdout import balanced_split, split_files

    windows = np.array([60] + [1] * 30)
    seed = next(s for s in range(100) if 0 in split_files(len(windows), 0.1, s)[1])  # the plain split takes the long one
    tr, va = balanced_split(windows, 0.1, seed)
    assert 0 not in va and 1 <= windows[va].sum() <= 0.1 * windows.sum() and len(tr) + len(va) == len(windows)
    assert set(tr) | set(va) == set(range(len(windows))) and not set(tr) & set(va)
    similar = np.random.default_rng(1).integers(1, 6, 300)
    for s in range(5):
        assert np.array_equal(balanced_split(similar, 0.2, s)[1], split_files(300, 0.2, s)[1])
    assert list(balanced_split(np.array([50, 40]), 0.1, 0)[1]) == [1]  # none fits: the smallest file
    # a recording of 10 minutes beside ten clips of 3 s (another condition): the clips held out as files are (two of
    # eleven), not all ten (the model never saw their condition)
    mixed = np.array([600] + [2] * 10)
    for s in range(10):
        tr, va = balanced_split(mixed, 0.2, s)
        assert 0 in tr and len(va) == len(split_files(11, 0.2, s)[1]) == 2 and len(tr) == 9


def test_the_feature_cache_keeps_to_its_size_limit(tmp_path, monkeypatch):
    """The feature cache grew without bound (16 KB per 1-s clip: 16 GB for a million); it now drops its least
    recently used entries once it holds more than $LATENTBRIDGE_CACHE_MAX_GB, and a hit renews an entry."""
    import os

    from latentbridge.config import load_config
    from latentbridge.data.audio import FeatureExtractor
    data = tmp_path / "clips"
    data.mkdir()
    for i in range(12):
        _tone(data / f"c{i:02d}.wav", 1.0)
    spec = load_config(REPO / "configs" / "mel_ae.yaml", [f"data.train_dir={data}"]).transform_spec()
    cache = tmp_path / "cache"

    def entries():
        return sorted(p.stem for p in cache.glob("*.npy"))

    def size():
        return sum(p.stat().st_size for p in cache.iterdir())

    monkeypatch.setenv("LATENTBRIDGE_CACHE_MAX_GB", "inf")
    ex = FeatureExtractor.from_spec(spec, cache_dir=cache, num_workers=0)
    first = ex.extract(data)
    one_entry = size() / 12
    assert len(entries()) == 12
    keys = {f.name: ex._key(f) for f in sorted(data.glob("*.wav"))}
    for n, key in enumerate(keys.values()):  # used in file order, c00 longest ago
        os.utime(cache / f"{key}.npy", (1e9 + n, 1e9 + n))
    ex._load_cached(keys["c01.wav"])  # a hit: c01 used now
    monkeypatch.setenv("LATENTBRIDGE_CACHE_MAX_GB", str(8.5 * one_entry / 1e9))
    ex = FeatureExtractor.from_spec(spec, cache_dir=cache, num_workers=0)
    again = ex.extract([data / "c11.wav"])  # a hit, and over the limit: pruned to 90 % of it (7 entries)
    left = set(entries())
    assert len(left) == 7 and size() <= 0.9 * 8.5 * one_entry
    assert {keys[n] for n in ("c01.wav", "c11.wav", "c10.wav", "c09.wav", "c08.wav", "c07.wav", "c06.wav")} == left
    assert sorted(p.stem for p in cache.glob("*.json")) == sorted(left)  # each entry's pair goes together
    np.testing.assert_array_equal(again.features, first.features[first.file_index == 11])

    mine = cache / "my_array.npy"  # a file of the user's in a folder given as the cache: never the cache's to remove
    np.save(mine, np.zeros(10_000))
    monkeypatch.setenv("LATENTBRIDGE_CACHE_MAX_GB", "0")
    FeatureExtractor.from_spec(spec, cache_dir=cache, num_workers=0).extract([data / "c00.wav"])
    assert not list(cache.glob("*.json")) and list(cache.glob("*.npy")) == [mine]
    monkeypatch.setenv("LATENTBRIDGE_CACHE_MAX_GB", "lots")
    with pytest.raises(DataError, match=r"LATENTBRIDGE_CACHE_MAX_GB: not a number of GB: 'lots'"):
        FeatureExtractor.from_spec(spec, cache_dir=cache)
    FeatureExtractor.from_spec(spec, use_cache=False)  # no cache: the setting is not read
    # writes a killed process left (.KEY.npy.XXXX.partial) were never removed: gone once older than an hour
    monkeypatch.setenv("LATENTBRIDGE_CACHE_MAX_GB", "inf")
    old, fresh = cache / ".0123456789abcdef.npy.k3j2.partial", cache / ".fedcba9876543210.json.x9y8.partial"
    for f in (old, fresh):
        f.write_bytes(b"x" * 100)
    os.utime(old, (1e9, 1e9))
    FeatureExtractor.from_spec(spec, cache_dir=cache, num_workers=0).extract([data / "c00.wav"])
    assert not old.exists() and fresh.exists() and mine.exists()


def test_the_commands_output_folder_is_left_out_of_its_input_folders(tmp_path, caplog):
    """An output inside an input folder was read back as data by the next run: a diffusion model trained on its own
    plots (9 images, then 12), `audio reconstruct` rebuilt its own reconstructions."""
    import argparse

    from latentbridge.io import list_audio_files
    from latentbridge.io.images import list_folder
    from latentbridge.outputs import protect_arguments

    data = tmp_path / "data"
    (data / "out" / "deeper").mkdir(parents=True)
    for f in ("a.wav", "sub/b.wav", "out/a_reconstructed.wav", "out/deeper/c.wav"):
        (data / f).parent.mkdir(parents=True, exist_ok=True)
        _tone(data / f, 0.2)
    for f in ("x.png", "out/training_loss.png"):
        (data / f).write_bytes(b"")
    protect_arguments(argparse.Namespace(paths=[str(data)], out=str(data / "out")))
    with caplog.at_level("WARNING"):
        assert [p.relative_to(data).as_posix() for p in list_audio_files(data)] == ["a.wav", "sub/b.wav"]
        assert [p.relative_to(data).as_posix() for p in list_folder(data)[0]] == ["x.png"]
    assert "the output folder of this command" in caplog.text
    assert len(list_audio_files(data / "out")) == 2  # given as the input itself: read (--force refuses replacing it)
    protect_arguments(argparse.Namespace(paths=[str(data)], out=str(tmp_path / "elsewhere")))
    assert len(list_audio_files(data)) == 4


def test_earlier_outputs_inside_a_data_folder_are_left_out_and_named(tmp_path, caplog):
    """A second training on a folder holding the first run and its samples trained on them: n_files 20 -> 29 (the loss
    plot, the epoch grids, final_samples.png and the samples); a recordings folder holding `audio reconstruct --out`
    and evaluate's examples read back the rebuilt wavs. A folder below the data folder that holds what every
    latentbridge output holds (what `--force` goes by) is left out, named in one warning; the data folder itself and
    a user's sub-folder are read."""
    from latentbridge.io import list_audio_files
    from latentbridge.io.images import list_folder
    from latentbridge.utils import OUTPUT_FOLDERS

    OUTPUT_FOLDERS.clear()
    imgs = tmp_path / "imgs"
    for f in ("a.png", "cats/b.png", "runs/a/training_loss.png", "runs/a/grids/epoch_001.png",
              "samples/sample_000.png", "samples/grid.png"):
        (imgs / f).parent.mkdir(parents=True, exist_ok=True)
        (imgs / f).write_bytes(b"")
    (imgs / "runs" / "a" / "config.yaml").write_text("{}")
    (imgs / "runs" / "a" / "checkpoints").mkdir()
    (imgs / "samples" / "settings.json").write_text("{}")
    (imgs / "cats" / "manifest.json").write_text("{}")  # what `data synth` writes beside its data: read
    # a user's own folders holding names latentbridge writes too (a logger's config.json, a logs/ folder, a
    # summary.json): read (any one of them alone left the whole folder out)
    for f, what in (("dogs/config.json", "{}"), ("dogs/summary.json", "{}"), ("dogs/c.png", "")):
        (imgs / f).parent.mkdir(parents=True, exist_ok=True)
        (imgs / f).write_text(what)
    (imgs / "dogs" / "logs").mkdir()
    (imgs / "mld").mkdir()  # a latent diffusion run's samples: settings.json naming their conditions
    (imgs / "mld" / "settings.json").write_text('{"condition_files": {}}')
    (imgs / "mld" / "three").mkdir()
    (imgs / "mld" / "three" / "mask.png").write_bytes(b"")
    with caplog.at_level("WARNING"):
        assert [p.relative_to(imgs).as_posix() for p in list_folder(imgs)[0]] == ["a.png", "cats/b.png", "dogs/c.png"]
    assert (f"{imgs}: 3 folder(s) written by latentbridge left out (a run's plots and samples, an evaluation's examples "
            "are no data): mld (settings.json), runs/a (checkpoints, config.yaml), samples (grid.png, settings.json)"
            ) in caplog.text, caplog.text
    assert len(list_folder(imgs / "samples")[0]) == 2  # given itself: read
    rec = tmp_path / "rec"
    for f in ("x.wav", "day2/y.wav", "rebuilt/x_reconstructed.wav", "E/examples/x_in.wav"):
        (rec / f).parent.mkdir(parents=True, exist_ok=True)
        _tone(rec / f, 0.2)
    (rec / "rebuilt" / "reconstruct.json").write_text("{}")
    (rec / "E" / "metrics.json").write_text("{}")
    (rec / "E" / "report.html").write_text("")
    (rec / "day2" / "manifest.json").write_text("{}")
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert [p.relative_to(rec).as_posix() for p in list_audio_files(rec)] == ["day2/y.wav", "x.wav"]
    assert "2 folder(s) written by latentbridge left out" in caplog.text and "rebuilt (reconstruct.json)" in caplog.text


def test_output_names_of_long_input_names_fit_the_file_system(tmp_path):
    """`audio reconstruct` of a file named with 245 letters (or 80 Japanese ones, 240 bytes) wrote
    NAME_reconstructed.wav, over 255 bytes: "File name too long" after all the work; the server cut a long upload
    name to 200 characters and with it its extension ("unsupported file type")."""
    from latentbridge.io.audio_write import write_wav
    from latentbridge.serve.uploads import safe_name
    from latentbridge.utils import distinct_name

    used: set[str] = set()
    room = 255 - len("_reconstructed.wav")
    names = [distinct_name(n, used, max_bytes=room) for n in ("L" * 245, "日" * 80, "L" * 245, "short", "short")]
    assert [len(n.encode()) for n in names[:3]] == [room, room, room] and names[1] == "日" * 79 and names[3:] == ["short", "short_"]
    assert names[2] == "L" * (room - 1) + "_" and len(set(names)) == 5
    for n in names:  # each one a name the file system takes, written as outputs are (through a temporary name)
        write_wav(tmp_path / f"{n}_reconstructed.wav", np.zeros(160, dtype=np.float32), 16000)
        assert (tmp_path / f"{n}_reconstructed.wav").stat().st_size > 160
    long = "L" * 201 + ".WAV"
    assert safe_name(long) == "L" * 196 + ".wav" and safe_name("a/b\\c.wav") == "c.wav"
