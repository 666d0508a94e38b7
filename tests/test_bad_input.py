"""Bad input through the command line: a clear error naming the file or key, nothing half-written."""

import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from conftest import FAST
from latentbridge.cli import main


def _fit(src, out, extra=(), config=None):
    args = ["anomaly", "fit", str(src), "--out", str(out)]
    if config:
        args += ["--config", str(config)]
    for o in [*FAST, *extra]:
        args += ["-o", o]
    return main(args)


@pytest.fixture
def normal_copy(machine_data, tmp_path):
    dst = tmp_path / "normal"
    shutil.copytree(machine_data / "train" / "normal", dst)
    return dst


def _err(capsys):
    return capsys.readouterr().err


def test_folder_without_audio(tmp_path, capsys, feature_cache):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    assert _fit(tmp_path / "empty", tmp_path / "out") == 2
    err = _err(capsys)
    assert "empty" in err and "no audio files" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("problem", ["truncated", "zero-length", "garbage", "nan", "silent"])
def test_bad_file_in_training_folder(normal_copy, tmp_path, capsys, caplog, problem, feature_cache):
    bad = normal_copy / "zz_bad.wav"
    good = sorted(normal_copy.glob("*.wav"))[0]
    if problem == "truncated":
        data = good.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    elif problem == "zero-length":
        bad.write_bytes(b"")
    elif problem == "garbage":
        bad.write_bytes(b"not audio at all" * 100)
    elif problem == "nan":
        x = np.zeros(16000, dtype=np.float32)
        x[100] = np.nan
        sf.write(bad, x, 16000, subtype="FLOAT")
    elif problem == "silent":
        sf.write(bad, np.zeros(16000), 16000)
    out = tmp_path / "out"
    assert _fit(normal_copy, out) == 2
    err = _err(capsys)
    assert "zz_bad.wav" in err, err
    assert not out.exists()
    # with skip_bad_files the others are used and the card records the skip
    if problem == "zero-length":  # and two more: one warning (a line for each of 500 bad files)
        for name in ("zz_bad2.wav", "zz_bad3.wav"):
            (normal_copy / name).write_bytes(b"")
    assert _fit(normal_copy, out, ["data.skip_bad_files=true"]) == 0
    info = json.loads((out / "config.json").read_text())
    skipped = ["zz_bad.wav", "zz_bad2.wav", "zz_bad3.wav"] if problem == "zero-length" else ["zz_bad.wav"]
    assert [p for p, _ in info["data"]["skipped_files"]] == [str(normal_copy / n) for n in skipped]
    assert caplog.text.count("skipping") == 1 and f"skipping {len(skipped)} of " in caplog.text, caplog.text
    if problem == "zero-length":  # calibrate lists them too, as its warning says (it named three, listed none)
        assert main(["anomaly", "calibrate", str(out), str(normal_copy), "--skip-bad"]) == 0
        info = json.loads((out / "config.json").read_text())
        assert [p for p, _ in info["anomaly"]["skipped_files"]] == [str(normal_copy / n) for n in skipped]


def test_wrong_extension_given_directly(tmp_path, fitted_model, capsys):
    f = tmp_path / "recording.txt"
    f.write_text("hello")
    assert main(["anomaly", "score", str(fitted_model), str(f), "--out", str(tmp_path / "o")]) == 2
    assert "recording.txt" in _err(capsys)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("content, key", [("train:\n  epochs: 3\n", "unknown key 'train.epochs'"),
                                          ("audio:\n  window_s: lots\n", "'audio.window_s'")])
def test_bad_config(normal_copy, tmp_path, capsys, content, key):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(content)
    assert _fit(normal_copy, tmp_path / "out", config=cfg) == 2
    err = _err(capsys)
    assert key in err and "bad.yaml" in err
    assert not (tmp_path / "out").exists()


def test_unknown_override_key(normal_copy, tmp_path, capsys):
    assert _fit(normal_copy, tmp_path / "out", ["train.nope=1"]) == 2
    assert "unknown key 'train.nope'" in _err(capsys)


def test_vae_key_on_the_default_detector_names_the_models_that_take_it(normal_copy, tmp_path, capsys):
    # the default detector (knn_stats) has no layers: a VAE key says which model.name takes it
    assert main(["anomaly", "fit", str(normal_copy), "--out", str(tmp_path / "out"),
                 "-o", "model.channels=[8,16]"]) == 2
    err = _err(capsys)
    assert "unknown key 'model.channels'" in err and "conv_vae" in err and "-o model.name=NAME" in err
    assert not (tmp_path / "out").exists()


def test_existing_output_is_kept(normal_copy, tmp_path, capsys, feature_cache):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    assert _fit(normal_copy, out) == 2
    assert "--force" in _err(capsys)
    assert (out / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize("damage", ["altered", "missing"])
def test_damaged_model_folder(fitted_model, machine_data, tmp_path, capsys, damage):
    model = tmp_path / "model"
    shutil.copytree(fitted_model, model)
    weights = model / "model.safetensors"
    if damage == "altered":
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0x01
        weights.write_bytes(bytes(data))
    else:
        weights.unlink()
    wav = sorted((machine_data / "test" / "normal").glob("*.wav"))[0]
    assert main(["anomaly", "score", str(model), str(wav), "--out", str(tmp_path / "o")]) == 2
    err = _err(capsys)
    assert "model.safetensors" in err and str(model) in err
    assert not (tmp_path / "o").exists()
    assert main(["export", str(model), "--out", str(tmp_path / "m.onnx")]) == 2
    assert not (tmp_path / "m.onnx").exists()


def test_labels_problems(fitted_model, machine_data, tmp_path, capsys):
    wav = sorted((machine_data / "test" / "normal").glob("*.wav"))[0]
    loose = tmp_path / "loose.wav"
    shutil.copy(wav, loose)
    assert main(["anomaly", "score", str(fitted_model), str(loose), "--labels", "auto",
                 "--out", str(tmp_path / "o")]) == 2
    assert "loose.wav" in _err(capsys)
    csv = tmp_path / "labels.csv"
    csv.write_text(f"path,label\n{loose},broken\n")
    assert main(["anomaly", "score", str(fitted_model), str(loose), "--labels", str(csv),
                 "--out", str(tmp_path / "o")]) == 2
    err = _err(capsys)
    assert "labels.csv" in err and "line 2" in err
    csv.write_text("file,y\nx,1\n")
    assert main(["anomaly", "score", str(fitted_model), str(loose), "--labels", str(csv),
                 "--out", str(tmp_path / "o")]) == 2
    assert "path,label" in _err(capsys)
    assert not (tmp_path / "o").exists()


def test_export_needs_onnx_suffix(fitted_model, tmp_path, capsys):
    assert main(["export", str(fitted_model), "--out", str(tmp_path / "model.bin")]) == 2
    assert "model.bin" in _err(capsys)
    assert not list(tmp_path.iterdir())


def test_listen_missing_source(fitted_model, tmp_path, capsys):
    assert main(["anomaly", "listen", str(fitted_model), "--source", str(tmp_path / "none.wav")]) == 2
    assert "none.wav" in _err(capsys)


@pytest.mark.parametrize("argv, message", [
    (["tissue", "--channels", "0", "--no-imzml"],
     "data synth tissue: --channels must be an integer from 1 to 1000, got 0"),
    (["tissue", "--sections", "2", "--test-sections", "5"], "--test-sections must be an integer from 0 to 2, got 5"),
    (["tissue", "--count-scale", "0"], "--count-scale must be a number above 0"),
    (["machine", "--seed", "-1"], "--seed must be 0 to 4294967295, got -1"),
    (["tissue", "--seed", "99999999999999999999"], "--seed must be 0 to 4294967295"),  # (as train.seed; was made)
    (["bridge", "--sensors", "0"], "data synth bridge: --sensors must be an integer from 1 to 99, got 0"),
])
def test_synthetic_data_options_out_of_range_are_one_line(argv, message, tmp_path, capsys):
    """Generators' own checks of their options were tracebacks (exit 1) naming their argument names."""
    assert main(["data", "synth", argv[0], "--out", str(tmp_path / "out"), *argv[1:]]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not (tmp_path / "out").exists(), err


def test_the_packages_own_python_warnings_are_one_line(tmp_path):
    """A folder's skipped files came as Python's warning with the source line that raised it."""
    import subprocess
    import sys

    from conftest import FSDD, REPO

    if not FSDD.is_dir():
        pytest.skip(f"FSDD recordings not found at {FSDD}")
    (tmp_path / "recordings").mkdir()
    shutil.copy(FSDD / "0_george_0.wav", tmp_path / "recordings")
    (tmp_path / "recordings" / "notes.wav").write_bytes(b"")
    res = subprocess.run([sys.executable, "-m", "latentbridge", "classifier", "train", "fsdd", "--data", str(tmp_path),
                          "--out", str(tmp_path / "clf")], capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "PYTHONPATH": str(REPO / "src")})
    assert res.returncode == 2
    assert f"WARNING latentbridge: {tmp_path / 'recordings'}: skipped 1 file(s) not named" in res.stderr, res.stderr
    assert "UserWarning" not in res.stderr and "warnings.warn" not in res.stderr


def test_json_outputs_hold_no_bare_nan(tmp_path):
    """metrics.json held bare NaN (a silhouette of one cluster), which strict JSON parsers refuse."""
    from latentbridge.utils import atomic_write_json

    atomic_write_json(tmp_path / "m.json", {"silhouette": float("nan"), "x": [1.0, float("inf")],
                                            "y": np.float64("nan"), "z": np.float32(0.5), "n": np.int64(3)})
    text = (tmp_path / "m.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"silhouette": None, "x": [1.0, None], "y": None, "z": 0.5, "n": 3}


@pytest.mark.parametrize("widths, said", [("[]", "channels must list at least one layer width, got []"),
                                          ("[16,0]", "channels must list positive whole numbers, got [16, 0]")])
def test_layer_widths_are_checked_before_a_run_folder_is_made(widths, said, tmp_path, capsys):
    """An empty or zero width was the network constructor's traceback, with config.yaml left in the run folder."""
    from conftest import REPO

    assert main(["train", "--config", str(REPO / "configs" / "mel_ae.yaml"), "--out", str(tmp_path / "run"),
                 "-o", f"data.train_dir={tmp_path}", "-o", f"model.channels={widths}"]) == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err and not (tmp_path / "run").exists()


def test_a_full_disk_names_the_output_on_a_line_of_its_own(monkeypatch, capsys, tmp_path):
    """Disk full mid-training printed 'error: /tmp/tmpfo9oauwl: No space left on device' after the progress bar's
    last state, on the same line: a temporary file's name, and hidden to anyone filtering the bar's lines."""
    import errno
    import os

    from tqdm import tqdm

    from latentbridge import cli

    def full(args):
        bar = tqdm(total=10, desc="epoch 0")
        bar.update(3)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/tmp/tmpfo9oauwl")

    monkeypatch.setitem(cli.COMMANDS, "train", full)
    out = tmp_path / "run"
    assert cli.main(["train", "--config", "configs/mel_ae.yaml", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"\nerror: /tmp/tmpfo9oauwl: No space left on device (while writing {out})" in err
    assert not list(getattr(tqdm, "_instances", ()))


def test_os_errors_name_the_file_a_temporary_one_was_to_become():
    """`.config.json.vqjqu1ip.partial: Read-only file system` named a hidden temporary file."""
    import errno

    from latentbridge.errors import os_error_text

    assert os_error_text(OSError(errno.EROFS, "Read-only file system", "/ro/knn/.config.json.vqjqu1ip.partial")) \
        == "/ro/knn/config.json: Read-only file system"
    assert os_error_text(OSError(errno.EFBIG, "File too large"), "runs/m") == "File too large (while writing runs/m)"
    assert os_error_text(OSError(errno.EACCES, "Permission denied", "/a/.run.tmp-77"), "x") == "/a/run: Permission denied"
    # a file inside a temporary folder, and inside a mount point's staging folder: said where it was to be
    full = OSError(errno.ENOSPC, "No space left on device", "full/.ti.tmp-12/section_01.npy")
    assert os_error_text(full, "full/ti") == "full/ti/section_01.npy: No space left on device (while writing full/ti)"
    assert os_error_text(OSError(errno.EACCES, "Permission denied", "/mnt/.latentbridge.tmp-5/scores.csv")) \
        == "/mnt/scores.csv: Permission denied"
    # `anomaly calibrate` rewrites its model folder: a full disk names it (it said 'No space left on device' alone)
    import argparse

    from latentbridge.errors import user_error_text

    args = argparse.Namespace(command="anomaly", anomaly_cmd="calibrate", model_dir="models/pump")
    assert user_error_text(OSError(errno.ENOSPC, "No space left on device"), args) \
        == "No space left on device (while writing models/pump)"
    # a dependency missing (an install with --no-deps, for the edge scorer): one line naming it, not a traceback
    said = user_error_text(ModuleNotFoundError("No module named 'nosuchmodule'", name="nosuchmodule"), args)
    assert said.startswith("the module 'nosuchmodule', of a package latentbridge needs, is not installed") \
        and "pip install latentbridge" in said
    said = user_error_text(ModuleNotFoundError("No module named 'numpy.nothing'", name="numpy.nothing"), args)
    assert said.startswith("the installed 'numpy' has no 'numpy.nothing'") and "pip install -U" in said  # installed
    assert user_error_text(ModuleNotFoundError("x", name="latentbridge.nothing"), args) is None  # our own: a bug


def test_a_full_disk_while_synthesising_is_named(tmp_path, capsys):
    """On a nearly full disk `data synth tissue` died of a bus error (its memory-mapped arrays could not grow: exit 135,
    no word) and `data synth machine` gave a traceback (libsndfile's 'System error'): both exit 2, the disk named."""
    from conftest import mounted

    with mounted(tmp_path / "full", "-t", "tmpfs", "-o", "size=3m", "tmpfs") as full:
        (full / "filler").write_bytes(bytes(2072 * 1024))
        assert main(["data", "synth", "tissue", "--out", str(full / "ti")]) == 2
        assert capsys.readouterr().err.startswith(f"error: {full / 'ti'}/section_")  # no temporary folder named
        assert main(["data", "synth", "machine", "--out", str(full / "syn"), "--n-train", "10", "--duration", "2"]) == 2
        assert "No space left on device (while writing" in capsys.readouterr().err
        assert sorted(p.name for p in full.iterdir()) == ["filler"]
    # a disk that fills while the set is written, and has room again once its files are removed ("System error.")
    with mounted(tmp_path / "empty", "-t", "tmpfs", "-o", "size=3m", "tmpfs") as empty:
        assert main(["data", "synth", "machine", "--out", str(empty / "syn"), "--n-train", "60",
                     "--duration", "2"]) == 2
        assert "No space left on device (while writing" in capsys.readouterr().err
        assert list(empty.iterdir()) == []
    # a disk full to the brim: an empty lock file was left beside the output (its holder's line could not be written)
    with mounted(tmp_path / "brim", "-t", "tmpfs", "-o", "size=1m", "tmpfs") as brim:
        fd = os.open(brim / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, bytes(4096)):
                pass
        except OSError:
            pass
        os.close(fd)
        assert main(["data", "synth", "machine", "--out", str(brim / "m"), "--n-train", "2"]) == 2
        assert "No space left on device (while writing" in capsys.readouterr().err
        assert sorted(p.name for p in brim.iterdir()) == ["filler"]


def test_a_command_given_under_another_is_named(capsys):
    """`latentbridge anomaly export` said only "invalid choice: 'export'" with anomaly's four commands."""
    with pytest.raises(SystemExit) as e:
        main(["anomaly", "export", "run", "--out", "m.onnx"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'export'" in err and "(`export` is a command of its own: latentbridge export --help)" in err
    with pytest.raises(SystemExit):
        main(["anomaly", "bogus"])
    assert "command of its own" not in capsys.readouterr().err


def test_os_reasons_of_a_short_write_and_a_file_in_a_path(tmp_path, capsys):
    """A full cache said numpy's "36288 requested and 13280 written", and a path through a file "File exists"."""
    from latentbridge.errors import os_reason

    assert os_reason(OSError("36288 requested and 13280 written")) == \
        "No space left on device (36288 requested and 13280 written)"
    (f := tmp_path / "cachefile").write_text("x")
    for path in (f, f / "x" / "y"):
        with pytest.raises(OSError) as e:
            path.mkdir(parents=True, exist_ok=True)
        assert os_reason(e.value) == f"{f} is a file, not a folder"
    assert os_reason(PermissionError(13, "Permission denied", str(tmp_path))) == "Permission denied"
    assert main(["data", "synth", "machine", "--out", str(f / "m"), "--n-train", "2"]) == 2
    assert capsys.readouterr().err == (f"error: {f / 'm'}: cannot create the output folder's parent {f} ({f} is a "
                                       "file, not a folder)\n")
