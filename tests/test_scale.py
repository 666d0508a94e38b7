"""Large data: too little memory for a recording (no bad file, never skipped), out-of-memory errors as one line
(exit 2, nothing written), a few long recordings' validation share, the feature cache's size limit."""

from __future__ import annotations

from pathlib import Path

import json
import logging

import numpy as np
import pytest
import soundfile as sf

from conftest import FAST, FSDD, REPO
from latentbridge.cli import main

#: numpy's error for the samples of 2 h of 48-kHz stereo (decoding such a recording under a 6-GB cap)
TWO_HOURS = ((7200 * 48000, 2), np.dtype(np.float32))


def _o(extra=()):
    return [x for o in [*FAST, *extra] for x in ("-o", o)]


def _array_memory_error(shape, dtype) -> MemoryError:
    from numpy._core._exceptions import _ArrayMemoryError

    return _ArrayMemoryError(shape, dtype)


def _decoder_short_of_memory(monkeypatch, module, name: str) -> list[str]:
    """``module``'s PCM-16 decoder failing for lack of memory on the file called ``name`` (the others decoded); the
    names of the files it was asked for."""
    real, asked = module.read_pcm16, []

    def read_pcm16(f, *args):
        asked.append(Path(f.name.decode() if isinstance(f.name, bytes) else f.name).name)
        if asked[-1] == name:
            raise _array_memory_error(*TWO_HOURS)
        return real(f, *args)

    monkeypatch.setattr(module, "read_pcm16", read_pcm16)
    return asked


def test_too_little_memory_to_decode_is_no_bad_file(machine_data, tmp_path, monkeypatch, capsys):
    """A recording the machine lacks the memory to decode was reported "unreadable or truncated" (exit 2), and with
    skip_bad left out as a bad file, the run going on without good data: now the error is the memory's, named in one
    line with the allocation, whatever skip_bad says, and nothing is written."""
    import latentbridge.io.audio as io_audio
    from latentbridge.io import read_audio

    monkeypatch.setenv("LATENTBRIDGE_CACHE", str(tmp_path / "cache"))  # decoded, not read from the cache
    data = machine_data / "train" / "normal"
    name = sorted(p.name for p in data.glob("*.wav"))[2]
    asked = _decoder_short_of_memory(monkeypatch, io_audio, name)
    with pytest.raises(MemoryError, match="Unable to allocate 2.57 GiB"):
        read_audio(data / name)
    for args, command in ((["anomaly", "fit", str(data), "--skip-bad"], "anomaly fit"),
                          (["train", "--config", str(Path(__file__).parents[1] / "configs" / "anomaly_ae.yaml"),
                            "-o", f"data.train_dir={data}", "-o", "data.skip_bad_files=true"], "train")):
        asked.clear()
        assert main([*args, "--out", str(tmp_path / "out"), *_o()]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: out of memory in `latentbridge {command}` (an allocation of 2.57 GiB failed "
                              f"reading {data / name}): ") and err.count("\n") == 1, err
        assert "give fewer or shorter recordings" in err and "more memory" in err
        assert "skipping" not in err and "unreadable" not in err and "Traceback" not in err
        assert name in asked and not (tmp_path / "out").exists()


def test_a_header_declaring_more_than_the_machine_holds_is_the_file_s_fault(machine_data, tmp_path, monkeypatch,
                                                                            caplog):
    """A damaged header declaring 2**40 samples asks more than the machine's memory: read as out of memory, it
    stopped every command without naming the file, and --skip-bad could not leave it out. More than the machine holds
    is the file's DataError, named and skipped; less stays the memory's."""
    import latentbridge.errors as errors
    import latentbridge.io.audio as io_audio
    from latentbridge.errors import DataError
    from latentbridge.io import read_audio

    monkeypatch.setenv("LATENTBRIDGE_CACHE", str(tmp_path / "cache"))
    data = machine_data / "train" / "normal"
    name = sorted(p.name for p in data.glob("*.wav"))[2]
    _decoder_short_of_memory(monkeypatch, io_audio, name)
    monkeypatch.setattr(errors, "physical_memory", lambda: 2 ** 30)  # 1 GiB: the 2.57 GiB asked is more
    with pytest.raises(DataError, match=f"{name}: reading it whole takes 2.57 GiB, more than this machine's memory"):
        read_audio(data / name)
    with caplog.at_level("WARNING"):
        assert main(["anomaly", "fit", str(data), "--skip-bad", "--out", str(tmp_path / "out"), *_o()]) == 0
    assert name in caplog.text and "more than this machine's memory" in caplog.text, caplog.text
    assert (tmp_path / "out" / "config.json").is_file()


def test_too_little_memory_for_a_block_is_no_bad_file(machine_data, monkeypatch):
    """The block reader (the edge scorer's) alike: a MemoryError, not the file's DataError."""
    import latentbridge.io.blockread as blockread
    from latentbridge.io.blockread import RecordingBlocks

    path = sorted((machine_data / "train" / "normal").glob("*.wav"))[0]
    _decoder_short_of_memory(monkeypatch, blockread, path.name)
    with pytest.raises(MemoryError, match="2.57 GiB"):
        RecordingBlocks(path)


def test_out_of_memory_anywhere_is_one_line_and_exit_2(machine_data, tmp_path, monkeypatch, capsys):
    """torch's CPU allocator failing (its RuntimeError, as torch 2.13 words it on Linux) in a training gave a
    traceback and exit 1: one line naming the command, the size and what to lower, exit 2, no run folder."""
    import latentbridge.models.registry as registry

    def build_model(*a, **k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 2760000000 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(registry, "build_model", build_model)
    config = str(Path(__file__).parents[1] / "configs" / "anomaly_ae.yaml")
    out = tmp_path / "run"
    assert main(["train", "--config", config, "--out", str(out), "-o",
                 f"data.train_dir={machine_data / 'train' / 'normal'}", *_o()]) == 2
    err = capsys.readouterr().err
    assert err == ("error: out of memory in `latentbridge train` (an allocation of 2.57 GiB failed): lower what the "
                   "run holds at once (-o data.limit=N, -o data.image_size=N, -o train.batch_size=N), give fewer or "
                   "shorter recordings (--workers 0: one decoded at a time), or run on a machine with more memory\n")
    assert not out.exists()

    def broken(*a, **k):  # an error of the program's own stays a traceback (exit 1)
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x3 and 5x6)")

    monkeypatch.setattr(registry, "build_model", broken)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        main(["train", "--config", config, "--out", str(out), "-o",
              f"data.train_dir={machine_data / 'train' / 'normal'}", *_o()])
    assert not out.exists()


def test_out_of_memory_errors_are_recognised_with_their_size():
    """numpy's, torch's (CPU, CUDA), and numpy's raised in a DataLoader worker (re-raised by torch as a RuntimeError
    naming it)."""
    import torch
    from torch._utils import ExceptionWrapper

    from latentbridge.errors import allocation_size, memory_text, out_of_memory

    try:
        raise _array_memory_error(*TWO_HOURS)
    except MemoryError:
        wrapped = ExceptionWrapper(where="in DataLoader worker process 0")
    with pytest.raises(RuntimeError) as worker:
        wrapped.reraise()
    cuda = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total capacity of "
                                  "79.19 GiB of which 3.06 MiB is free.")
    assert [allocation_size(e) for e in (_array_memory_error((10 ** 14,), np.dtype(np.int64)), worker.value, cuda)] \
        == ["728 TiB", "2.57 GiB", "20 MiB"]
    assert all(map(out_of_memory, (worker.value, cuda, MemoryError())))
    assert not out_of_memory(RuntimeError("Caught ValueError in DataLoader worker process 0"))
    assert memory_text(cuda, "latentbridge train") == ("out of GPU memory in `latentbridge train` (an allocation of "
                                                       "20 MiB failed): a smaller -o train.batch_size=N, or a device "
                                                       "with more memory")
    assert memory_text(MemoryError(), "latentbridge anomaly score").startswith(
        "out of memory in `latentbridge anomaly score` (an allocation failed): give fewer or shorter files")
    # onnxruntime's arena (the edge scorer, export's check): its own exception class, no RuntimeError
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, RuntimeException

    ort = Fail("[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running Tile node. Status Message: "
               "bfc_arena.cc:360 Failed to allocate memory for requested buffer of size 4294967296\n")
    assert out_of_memory(ort) and allocation_size(ort) == "4 GiB"
    assert not out_of_memory(InvalidArgument("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Got invalid dimensions"))
    assert out_of_memory(RuntimeException("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : CUDA failure 2: out of memory"))
    # an allocation beyond this machine's memory is no shortage of it: a shape far larger than meant
    from latentbridge.errors import physical_memory

    huge = Fail("[ONNXRuntimeError] : 1 : FAIL : bfc_arena.cc:360 Failed to allocate memory for requested buffer of "
                f"size {2 ** 47}\n")
    text = memory_text(huge, "python -m latentbridge.edge")
    assert text.startswith("in `python -m latentbridge.edge`, an allocation of 128 TiB failed: more than 16 times "
                           f"this machine's memory ({physical_memory() / 2 ** 30:.3g} GiB)") and "out of memory" not in text
    big = MemoryError(f"Unable to allocate {1.2 * physical_memory() / 2 ** 30:.1f} GiB for an array with shape ...")
    assert memory_text(big, "latentbridge anomaly fit").startswith("out of memory in `latentbridge anomaly fit`")
    assert text.endswith("check the files and options given (a damaged header, a window, image or batch size)")
    assert memory_text(ort, "python -m latentbridge.edge").startswith("out of memory in")  # 4 GiB: a shortage


def test_too_little_memory_in_a_scoring_worker_is_no_bad_file(fitted_model, machine_data, tmp_path, monkeypatch,
                                                              capsys):
    """``anomaly score --skip-bad`` decodes in DataLoader worker processes: their MemoryError comes back as torch's
    error re-raised from its text; it was a traceback (exit 1), then one line that lost the file's name. One line
    naming the file, exit 2, no scores written."""
    import latentbridge.io.audio as io_audio

    monkeypatch.setenv("LATENTBRIDGE_CACHE", str(tmp_path / "cache"))
    data = machine_data / "test" / "normal"
    name = sorted(p.name for p in data.glob("*.wav"))[1]
    _decoder_short_of_memory(monkeypatch, io_audio, name)
    assert main(["anomaly", "score", str(fitted_model), str(data), "--skip-bad", "--workers", "2", "--out",
                 str(tmp_path / "scores")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: out of memory in `latentbridge anomaly score` (an allocation of 2.57 GiB failed "
                          f"reading {data / name}): give fewer or shorter files at a time (--workers 0 where the "
                          "command has it"), err
    assert err.count("\n") == 1
    assert not (tmp_path / "scores").exists()


# ----------------------------------------------------------------------------- a few long recordings' validation


def _long_recordings(folder: Path, seconds: float, n: int = 2, sr: int = 16000) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    t = np.arange(int(seconds * sr)) / sr
    for i in range(n):
        sf.write(folder / f"rec_{i}.wav", (0.2 * np.sin(2 * np.pi * (200 + 50 * i) * t) + 0.05 *
                                           rng.standard_normal(len(t))).astype(np.float32), sr, subtype="PCM_16")
    return folder


def test_two_long_recordings_hold_out_about_val_fraction(tmp_path, monkeypatch, caplog):
    """Two equal recordings: one whole file held out half the windows (two 2-h files: the mel autoencoder 7,200 / 7,200,
    `anomaly fit` 7,199 / 7,199 at a fraction of 0.1). Now the last 20 % (data.val_fraction) of each is held out: 12 of
    each file's 59 windows (2-s windows, 1-s hop), the one window crossing each cut left out of both, so no sample is
    in both sets; said in a warning, the card and config.json; both files count as trained on (calibrating on them is
    warned of)."""
    monkeypatch.setenv("LATENTBRIDGE_CACHE", str(tmp_path / "cache"))
    data = _long_recordings(tmp_path / "long", 60.0)
    out = tmp_path / "m"
    with caplog.at_level(logging.WARNING):
        assert main(["anomaly", "fit", str(data), "--out", str(out), *_o(["audio.auto=false"])]) == 0
    d = json.loads((out / "config.json").read_text())["data"]
    assert (d["n_train_windows"], d["n_val_windows"], d["n_train_files"], d["n_val_files"]) == (92, 24, 2, 2)
    assert d["val_split"] == "time" and 0.1 <= 24 / 118 <= 0.4
    assert "whole files would hold 50 % of the windows (1 of 2 files), far from data.val_fraction 0.2: the last 20 % " \
           "of each recording in time is held out instead (24 of 118 windows; 2 crossing the cuts left out of both)" \
           in caplog.text
    assert "held out for calibration, the last part of each in time)" in (out / "README.md").read_text()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert main(["anomaly", "calibrate", str(out), str(data)]) == 0
    assert "2 of the 2 calibration recordings are ones the model was trained on" in caplog.text


def test_a_mel_autoencoder_is_evaluated_on_the_part_it_held_out(tmp_path, monkeypatch):
    """`train` of the mel autoencoder on two 30-s recordings holds out their last 3 s (1-s windows and hop: no window
    crosses a cut); `evaluate` reads those 6 windows (it read both recordings whole, 60 windows, 54 of them trained
    on, as "held-out validation files")."""
    monkeypatch.setenv("LATENTBRIDGE_CACHE", str(tmp_path / "cache"))
    data = _long_recordings(tmp_path / "long", 30.0, sr=8000)
    out = tmp_path / "run"
    assert main(["train", "--config", str(REPO / "configs" / "mel_ae.yaml"), "--out", str(out), "-o",
                 f"data.train_dir={data}", "-o", "train.max_epochs=1", "-o", "train.batch_size=8", "-o",
                 "train.progress_bar=false", "-o", "model.channels=[8,8,16,16]", "-o", "model.latent_dim=8"]) == 0
    d = json.loads((out / "config.json").read_text())["data"]
    assert (d["n_train_windows"], d["n_val_windows"], d["val_from_s"]) == (54, 6, [27.0, 27.0])
    assert d["val_files"] == [str(data / "rec_0.wav"), str(data / "rec_1.wav")]
    assert "6 windows held out, the last part of each in time" in (out / "README.md").read_text()
    assert main(["evaluate", str(out), "--out", str(tmp_path / "eval")]) == 0
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert (m["n_windows_read"], m["n_files"], m["data"]) == (6, 2, "the held-out last part of each training recording")


def test_a_split_in_time_leaves_no_sample_in_both_sets():
    """:func:`time_split` on the windows of three recordings of 30, 60 and 1.5 s (2-s windows, 1-s hop, the last one
    padded): each file's held-out windows begin after its last training window ends; a file too short to cut is
    trained on whole."""
    from latentbridge.data.audio import WindowFeatures
    from latentbridge.data.holdout import held_out_record, split_train_val

    starts = [np.arange(29.0), np.arange(59.0), np.zeros(1)]
    wf = WindowFeatures(np.zeros((89, 0), np.float32), np.repeat([0, 1, 2], [29, 59, 1]), np.concatenate(starts), 2.0,
                        [Path("a.wav"), Path("b.wav"), Path("c.wav")], np.array([30.0, 60.0, 1.5]))
    train, val = split_train_val(wf, 0.1, seed=0)
    assert (len(train), len(val)) == (25 + 52 + 1, 3 + 6)
    for i in range(3):
        t, v = train.starts_s[train.file_index == i], val.starts_s[val.file_index == i]
        assert not len(v) or t.max() + 2.0 <= v.min()
    assert held_out_record(train, val) == {"n_train_files": 3, "n_val_files": 2, "val_files": ["a.wav", "b.wav"],
                                           "held_out": [], "val_split": "time", "val_from_s": [26.0, 53.0]}
    # 10 min beside ten 3-s clips (2 windows each) at 0.2: whole clips would hold 4 of 620 windows; the long one's
    # last 120 windows (2 min) are held out, the clips trained on
    n = [600] + [2] * 10
    wf = WindowFeatures(np.zeros((620, 0), np.float32), np.repeat(np.arange(11), n),
                        np.concatenate([np.arange(k, dtype=float) for k in n]), 2.0,
                        [Path(f"{i}.wav") for i in range(11)], np.array([601.0] + [3.0] * 10))
    for seed in range(3):
        train, val = split_train_val(wf, 0.2, seed)
        assert (len(train), len(val), set(val.file_index), val.starts_s.min()) == (479 + 20, 120, {0}, 480.0)
    # two days of 60 and 20 min (2-s windows, 1-s hop) at 0.2: whole files held out the second day, 1,199 of 4,798
    # windows within twice the fraction, and its condition (another load) was never trained on; each day's last part
    n = [3599, 1199]
    wf = WindowFeatures(np.zeros((4798, 0), np.float32), np.repeat([0, 1], n),
                        np.concatenate([np.arange(k, dtype=float) for k in n]), 2.0,
                        [Path("day1.wav"), Path("day2.wav")], np.array([3600.0, 1200.0]))
    for seed in range(3):
        train, val = split_train_val(wf, 0.2, seed)
        assert set(train.file_index) == set(val.file_index) == {0, 1} and len(val) == 720 + 240
    # one recording: its last part (the windows crossing the cut left out now too); too few windows to cut: none held
    # out, and the file counts as trained on (it was recorded as held out, so calibrating on it was not warned of)
    one = WindowFeatures(np.zeros((59, 0), np.float32), np.zeros(59, np.int64), np.arange(59.0), 2.0,
                         [Path("one.wav")], np.array([60.0]))
    train, val = split_train_val(one, 0.2, 0)
    assert (len(train), len(val), held_out_record(train, val)["val_from_s"]) == (46, 12, [47.0])
    train, val = split_train_val(one, 0.005, 0)
    assert (len(train), len(val)) == (59, 0) and held_out_record(train, val) == {
        "n_train_files": 1, "n_val_files": 0, "val_files": [], "held_out": [], "val_split": "files"}


def test_the_split_gives_views_of_the_features_not_copies():
    """The split held every window's features twice at its peak (the whole set, then its two subsets): they are now
    put in place (training, validation, the rest) and both sets are views of them, holding what the copies held, in
    the same order; the whole set keeps every window."""
    import copy

    from latentbridge.data.audio import WindowFeatures
    from latentbridge.data.holdout import split_train_val

    rng = np.random.default_rng(0)
    for n, durations, fraction in (([40, 35, 50, 45, 38, 41], [41.0, 36, 51, 46, 39, 42], 0.2),  # whole files
                                   ([600, 2, 2], [601.0, 3, 3], 0.2), ([59], [60.0], 0.2)):  # in time
        n_win = sum(n)
        wf = WindowFeatures(rng.standard_normal((n_win, 2, 3)).astype(np.float32), np.repeat(np.arange(len(n)), n),
                            np.concatenate([np.arange(k, dtype=float) for k in n]), 2.0,
                            [Path(f"{i}.wav") for i in range(len(n))], np.array(durations),
                            silent=rng.random(n_win))
        copied = copy.deepcopy(wf)
        copied.features = copied.features.copy()
        copied.features.flags.writeable = False  # the copying path, as before
        want = split_train_val(copied, fraction, seed=1)
        every = np.sort(wf.features.reshape(n_win, -1), axis=0)
        got = split_train_val(wf, fraction, seed=1)
        for a, b in zip(got, want):
            assert np.shares_memory(a.features, wf.features)
            for key in ("features", "file_index", "starts_s", "silent"):
                np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
            assert a.files == b.files
        np.testing.assert_array_equal(np.sort(wf.features.reshape(n_win, -1), axis=0), every)


def test_many_files_keep_the_whole_file_split(machine_data):
    """Folders of many files of about one length keep exactly the seeded whole-file split: the synthetic machine set
    (its features read), and FSDD's 3,000 clips (their windows counted from the headers, the mel autoencoder's 1-s
    windows)."""
    from latentbridge.config import load_config, transform_spec
    from latentbridge.data.audio import FeatureExtractor, WindowFeatures
    from latentbridge.data.holdout import held_out_record, split_files, split_train_val
    from latentbridge.io import audio_info, list_audio_files

    spec = transform_spec(load_config(None, ["audio.auto=false"], sets={"task": "anomaly"}))
    wf = FeatureExtractor.from_spec(spec, use_cache=False, num_workers=0).extract(machine_data / "train" / "normal")
    sets = [(wf, 0.2)]
    if FSDD.is_dir():  # a window a second begun (most clips: one)
        files = list_audio_files(FSDD)
        n = [max(1, int(np.ceil(audio_info(f).duration_s - 1.0)) + 1) for f in files]
        sets.append((WindowFeatures(np.zeros((sum(n), 0), np.float32), np.repeat(np.arange(len(files)), n),
                                    np.concatenate([np.arange(k, dtype=float) for k in n]), 1.0, files,
                                    np.ones(len(files))), 0.1))
        assert len(files) == 3000
    for wf, fraction in sets:
        for seed in range(3):
            train, val = split_train_val(wf, fraction, seed)
            tr, va = split_files(len(wf.files), fraction, seed)
            assert val.files == [wf.files[i] for i in va] and train.files == [wf.files[i] for i in tr]
            assert len(train) + len(val) == len(wf) and held_out_record(train, val)["val_split"] == "files"


# ----------------------------------------------------------------------------- the feature cache's limit


def test_a_pass_larger_than_the_cache_limit_is_said_once(tmp_path, monkeypatch, caplog):
    """Features of more files than $LATENTBRIDGE_CACHE_MAX_GB holds never all stay cached (each run prunes the first
    ones read and computes them again), without a word: a warning, once, naming the variable, the size the pass
    takes and the limit that keeps it. A pass within the limit says nothing."""
    from latentbridge.config import load_config
    from latentbridge.data.audio import FeatureExtractor

    data = _long_recordings(tmp_path / "clips", 3.0, n=12, sr=8000)
    spec = load_config(REPO / "configs" / "mel_ae.yaml", [f"data.train_dir={data}"]).transform_spec()
    monkeypatch.setenv("LATENTBRIDGE_CACHE_MAX_GB", "inf")
    FeatureExtractor.from_spec(spec, cache_dir=tmp_path / "sized", num_workers=0).extract(data)
    entry = sum(p.stat().st_size for p in (tmp_path / "sized").iterdir()) / 12  # a 3-s clip's .npy and .json
    assert 3 * 64 * 128 * 4 < entry < 110_000  # three 1-s windows of 64 mel bands x 128 frames, float32
    monkeypatch.setenv("LATENTBRIDGE_CACHE_MAX_GB", str(8.5 * entry / 1e9))
    files = sorted(data.glob("*.wav"))
    with caplog.at_level(logging.WARNING):
        FeatureExtractor.from_spec(spec, cache_dir=tmp_path / "c", num_workers=0).extract(files[:8])
        assert "feature cache" not in caplog.text  # 8 entries: within the limit
        FeatureExtractor.from_spec(spec, cache_dir=tmp_path / "c", num_workers=0).extract(files)
        need = 12 * entry / 0.9 / 1e9
        said = [r.getMessage() for r in caplog.records if "LATENTBRIDGE_CACHE_MAX_GB" in r.getMessage()]
        assert len(said) == 1 and f"the features of the files just read take {12 * entry / 1e9:.3g} GB, more than " \
            f"its limit of {8.5 * entry / 1e9:.3g} GB ($LATENTBRIDGE_CACHE_MAX_GB)" in said[0], said
        given = float(said[0].split("LATENTBRIDGE_CACHE_MAX_GB=")[1].split()[0])
        assert need <= given <= 1.1 * need
        FeatureExtractor.from_spec(spec, cache_dir=tmp_path / "c", num_workers=0).extract(files)  # said once
        assert sum("LATENTBRIDGE_CACHE_MAX_GB" in r.getMessage() for r in caplog.records) == 1
    monkeypatch.setenv("LATENTBRIDGE_CACHE_MAX_GB", str(given))
    FeatureExtractor.from_spec(spec, cache_dir=tmp_path / "c", num_workers=0).extract(files)
    assert len(list((tmp_path / "c").glob("*.npy"))) == 12  # the limit it gives keeps every entry


# ----------------------------------------------------------------------------- decoding long recordings


def _sparse_wav(path: Path, seconds: float, sr: int = 48000, channels: int = 2) -> Path:
    """A 16-bit WAV whose header declares ``seconds`` of audio, its samples a hole in the file (no disk used)."""
    with sf.SoundFile(path, "w", sr, channels, subtype="PCM_16") as f:
        f.write(np.zeros((1, channels), np.int16))
    frames = int(seconds * sr)
    raw = bytearray(path.read_bytes()[:44])
    assert raw[36:40] == b"data"
    raw[40:44] = (frames * channels * 2).to_bytes(4, "little")
    raw[4:8] = (36 + frames * channels * 2).to_bytes(4, "little")
    with open(path, "wb") as f:
        f.write(raw)
        f.truncate(44 + frames * channels * 2)
    return path


def test_recordings_that_take_gigabytes_to_decode_are_read_in_blocks(tmp_path):
    """Each recording was decoded whole, in several workers at once: 2 h of 48-kHz stereo took 4.9 GB (peak RSS, no
    workers) and 8.6 GB with 2. The headers say before the work which recordings take more than
    :data:`~latentbridge.data.blocks.STREAM_BYTES` to decode, and those are read in blocks (``streamed``); short ones
    are not."""
    from latentbridge.config import load_config
    from latentbridge.data.audio import FeatureExtractor
    from latentbridge.data.blocks import STREAM_BYTES, decode_bytes
    from latentbridge.io import audio_info

    long = tmp_path / "long"
    long.mkdir()
    a, b = _sparse_wav(long / "a.wav", 7200.0), _sparse_wav(long / "b.wav", 3600.0)
    info = audio_info(a)
    assert (info.frames, info.channels) == (345_600_000, 2) and a.stat().st_blocks * 512 < 1e6
    assert decode_bytes(info, 8000) == 4 * 345_600_000 * (2 + 1 + 1 / 6)  # stereo read, its mix, the mix at 8 kHz
    spec = load_config(REPO / "configs" / "mel_ae.yaml", [f"data.train_dir={long}"]).transform_spec()
    short = sorted(_long_recordings(tmp_path / "short", 3.0, n=2, sr=8000).glob("*.wav"))
    for workers in (2, 0):
        ex = FeatureExtractor.from_spec(spec, use_cache=False, num_workers=workers)
        ex.check_band([a, b, *short])
        assert ex.streamed == {str(a), str(b)} and decode_bytes(audio_info(short[0]), 8000) < STREAM_BYTES


def test_fit_and_train_take_the_decoding_workers(machine_data, tmp_path, monkeypatch, capsys):
    """`anomaly fit` and `train` decode in `--workers` (one per core, at most 4, unless given), as `anomaly score`
    does; a negative count is refused naming the option."""
    import latentbridge.data.audio as data_audio

    seen, real = [], data_audio.FeatureExtractor.extract
    monkeypatch.setattr(data_audio.FeatureExtractor, "extract",
                        lambda self, *a, **k: seen.append(self.num_workers) or real(self, *a, **k))
    data = str(machine_data / "train" / "normal")
    config = str(REPO / "configs" / "anomaly_ae.yaml")
    for n, args in enumerate((["anomaly", "fit", data, "--workers", "0"],
                              ["train", "--config", config, "-o", f"data.train_dir={data}", "--workers", "3"],
                              ["anomaly", "fit", data])):
        assert main([*args, "--out", str(tmp_path / f"m{n}"), *_o()]) == 0
    assert seen == [0, 3, data_audio.default_workers()]
    assert json.loads((tmp_path / "m1" / "config.json").read_text())["config"]["train"]["decode_workers"] == 3
    for args in (["anomaly", "fit", data], ["train", "--config", config, "-o", f"data.train_dir={data}"]):
        assert main([*args, "--workers", "-1", "--out", str(tmp_path / "bad"), *_o()]) == 2
        assert capsys.readouterr().err == "error: --workers: expected 0 (decode in this process) or more workers, " \
                                          "got -1\n"
        assert not (tmp_path / "bad").exists()
