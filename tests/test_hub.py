"""Model folders: whole or refused (weights, config.json and the model card), never unpickled."""

import hashlib
import json

import pytest
import torch

from latentbridge.config import load_config, transform_spec, config_to_dict
from latentbridge.errors import ModelFolderError
from latentbridge.models.hub import load_model, save_model, update_info
from latentbridge.models.registry import build_model
from latentbridge.models.vae import ConvVAEConfig


@pytest.fixture
def folder(tmp_path):
    cfg = load_config(None, ["model.name=conv_vae", "model.latent_dim=2", "model.channels=[4]"])
    model = build_model(ConvVAEConfig(latent_dim=2, channels=[4]), input_shape=(1, 16, 12))
    save_model(tmp_path / "m", model, config=config_to_dict(cfg), transform=transform_spec(cfg), card="# card\n")
    return tmp_path / "m"


def test_folder_layout(folder):
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    info = json.loads((folder / "config.json").read_text())
    assert info["model_class"] == "conv_vae" and info["model_kwargs"]["input_shape"] == [1, 16, 12]
    assert info["format_version"] == 2 and info["transform"]["type"] == "audio"
    assert len(info["integrity"]["weights_sha256"]) == 64
    assert not list(folder.parent.glob(".*partial"))
    # every file is readable by others (safetensors writes 0600 by itself)
    assert {oct(p.stat().st_mode & 0o777) for p in folder.iterdir()} == {"0o644"}


def _header(folder):
    raw = (folder / "model.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + n])


def test_the_weights_header_signs_config_json(folder):
    meta = _header(folder)["__metadata__"]
    assert meta["config_sha256"] == hashlib.sha256((folder / "config.json").read_bytes()).hexdigest()


def test_altered_weights_are_refused(folder):
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelFolderError, match="checksum"):
        load_model(folder)


@pytest.mark.parametrize("edit", ["threshold", "transform", "empty_integrity"])
def test_hand_edits_of_config_json_are_refused(folder, edit):
    p = folder / "config.json"
    info = json.loads(p.read_text())
    if edit == "threshold":
        info["anomaly"] = {"threshold": 1e9}
    elif edit == "transform":
        info["transform"]["features"]["n_fft"] = 512
    elif edit == "empty_integrity":
        info["integrity"] = {}
    text = json.dumps(info, indent=2) + ("\n\n" if edit == "whitespace" else "\n")
    p.write_text(text)
    with pytest.raises(ModelFolderError, match="config.json and model.safetensors do not belong together.*edited by "
                                               "hand, or one of the two copied.*put back the config.json that "
                                               "training wrote, byte for byte.*calibrate MODEL.*never by editing it"):
        load_model(folder)


def test_config_json_of_other_line_endings_or_indentation_is_the_same_config(folder):
    """A model folder kept in git on Windows (core.autocrlf: CRLF line endings) or re-indented by an editor was refused
    as "edited by hand": its content is as written, and read. A Git LFS pointer in place of the weights is said so
    (it read "header too large")."""
    p = folder / "config.json"
    written = p.read_bytes()
    for text in (written.replace(b"\n", b"\r\n"), json.dumps(json.loads(written), indent=4).encode() + b"\n\n"):
        p.write_bytes(text)
        assert load_model(folder).info == json.loads(written)
    p.write_bytes(written)
    (folder / "model.safetensors").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:"
                                              + "0" * 64 + "\nsize 9000\n")
    with pytest.raises(ModelFolderError, match=r"model.safetensors is a Git LFS pointer \(\d+ bytes\), not the "
                                               r"weights: fetch them \(`git lfs pull`\)"):
        load_model(folder)


def test_update_info_re_signs_the_folder(folder):
    update_info(folder, {"anomaly": {"threshold": 3.5}})
    saved = load_model(folder)
    assert saved.info["anomaly"]["threshold"] == 3.5
    meta = _header(folder)["__metadata__"]
    assert meta["config_sha256"] == hashlib.sha256((folder / "config.json").read_bytes()).hexdigest()


@pytest.mark.parametrize("umask", [0o077, 0o022, 0o002])
def test_the_files_take_the_users_umask_and_a_rewrite_keeps_a_mode(tmp_path, umask):
    """config.json and model.safetensors were 0644 whatever the umask (the folder's other files followed it), and
    re-signing (``anomaly calibrate``) undid a ``chmod 600``."""
    import os

    cfg = load_config(None, ["model.name=conv_vae", "model.latent_dim=2", "model.channels=[4]"])
    model = build_model(ConvVAEConfig(latent_dim=2, channels=[4]), input_shape=(1, 16, 12))
    old = os.umask(umask)
    try:
        folder = save_model(tmp_path / "m", model, config=config_to_dict(cfg), transform=transform_spec(cfg),
                            card="# card\n")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir() if p.is_file()}
    assert set(modes) >= {"config.json", "model.safetensors", "README.md"}
    assert set(modes.values()) == {0o666 & ~umask}, modes
    (folder / "config.json").chmod(0o600)
    update_info(folder, {"anomaly": {"threshold": 3.5}})
    assert (folder / "config.json").stat().st_mode & 0o777 == 0o600


def test_a_full_disk_while_re_signing_leaves_the_old_pair(folder, monkeypatch):
    """`anomaly calibrate` on a nearly full disk wrote the new config.json, then failed on the weights: the pair no
    longer matched, and the folder was refused for good. Now both are written beside the old ones first."""
    import errno

    from latentbridge.models import hub

    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def full(*a, **k):
        raise RuntimeError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: \"No space "
                           "left on device\" }) (os error 28)")

    monkeypatch.setattr(hub, "save_file", full)
    with pytest.raises(OSError) as e:
        update_info(folder, {"anomaly": {"threshold": 3.5}})
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(folder / "model.safetensors")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # no partial file left, the old pair whole
    # a file-size limit (ulimit -f: os error 27) is said as one, not as a disk I/O error
    monkeypatch.setattr(hub, "save_file", lambda *a, **k: (_ for _ in ()).throw(RuntimeError(
        "Error while serializing: IoError(Os { code: 27, kind: FileTooLarge, message: \"File too large\" }) "
        "(os error 27)")))
    with pytest.raises(OSError) as e:
        update_info(folder, {"anomaly": {"threshold": 3.5}})
    assert e.value.errno == errno.EFBIG and "File too large" in str(e.value)
    monkeypatch.undo()
    assert "anomaly" not in load_model(folder).info


def test_an_interrupt_while_saving_waits_for_the_whole_folder(folder, monkeypatch):
    """Ctrl-C between the renames of the weights and config.json (`anomaly calibrate`, a training's last save) left the
    new weights beside the old config.json, or none: refused for good, after 'usable' was said. The interrupt is held
    back until the three files are in place, then raised."""
    import signal

    from latentbridge.models import hub

    real = hub.save_file

    def interrupted(*a, **k):
        real(*a, **k)
        signal.raise_signal(signal.SIGINT)  # (Ctrl-C while the files are written, before they are renamed)

    monkeypatch.setattr(hub, "save_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        update_info(folder, {"anomaly": {"threshold": 3.5}}, card="# card 2\n")
    monkeypatch.undo()
    assert load_model(folder).info["anomaly"]["threshold"] == 3.5 and (folder / "README.md").read_text() == "# card 2\n"
    assert not list(folder.glob(".*partial")) and signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_save_killed_between_its_renames_is_finished_when_read(folder, tmp_path, caplog):
    """A process killed (SIGKILL) after the new weights were renamed into place and before config.json was: the
    config.json that belongs to them, under its temporary name beside them, is put in place when the folder is read
    (the folder was refused for good, the new config.json in a file no message named)."""
    import logging
    import shutil

    other = tmp_path / "other"
    shutil.copytree(folder, other)
    update_info(other, {"anomaly": {"threshold": 3.5}})
    shutil.copy(other / "model.safetensors", folder / "model.safetensors")  # the weights renamed, the config not
    shutil.copy(other / "config.json", folder / ".config.json.x1y2z3.partial")
    (folder / ".config.json.aaaaaa.partial").write_text("{}")  # another cut write's, of no use here
    with caplog.at_level(logging.WARNING):
        assert load_model(folder).info["anomaly"]["threshold"] == 3.5
    assert "its last save was cut short after model.safetensors was written (the process killed)" in caplog.text
    assert (folder / "config.json").read_bytes() == (other / "config.json").read_bytes()
    (folder / "config.json").unlink()  # a first save's: no config.json at all
    shutil.copy(other / "config.json", folder / ".config.json.x1y2z3.partial")
    assert load_model(folder).info["anomaly"]["threshold"] == 3.5
    (folder / "config.json").write_text((folder / "config.json").read_text().replace("3.5", "4.5"))  # a hand edit:
    with pytest.raises(ModelFolderError, match="do not belong together"):  # refused as before
        load_model(folder)


def test_non_finite_numbers_are_written_as_null(folder):
    """A diverged training's loss (NaN) in config.json: null, so that strict JSON readers take the file."""
    update_info(folder, {"training": {"best_val_loss": float("nan"), "last": float("inf")}})
    text = (folder / "config.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    info = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in config.json"))
    assert info["training"]["best_val_loss"] is None and info["training"]["last"] is None
    assert load_model(folder).info["training"]["best_val_loss"] is None


@pytest.mark.parametrize("name", ["config.json", "model.safetensors", "README.md"])
def test_missing_files_are_named(folder, name):
    (folder / name).unlink()
    with pytest.raises(ModelFolderError, match=f"missing {name}"):
        load_model(folder)


def test_a_finished_run_without_its_config_is_not_called_unfinished(folder):
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"x")  # a trained run's checkpoints beside its model
    (folder / "config.json").unlink()
    with pytest.raises(ModelFolderError, match="missing config.json beside model.safetensors: the model was saved"):
        load_model(folder)


def test_broken_config(folder):
    p = folder / "config.json"
    info = json.loads(p.read_text())
    p.write_text("{not json")
    with pytest.raises(ModelFolderError, match="not valid JSON"):
        load_model(folder)
    p.write_text(json.dumps({**info, "model_class": "gpt"}))
    with pytest.raises(ModelFolderError, match="unknown model_class 'gpt'"):
        load_model(folder)
    p.write_text(json.dumps({**info, "format_version": 1}))
    with pytest.raises(ModelFolderError, match="format version 1.*latentbridge model upgrade"):
        load_model(folder)
    with pytest.raises(ModelFolderError, match="nope: does not exist"):
        load_model(folder / "nope")
    with pytest.raises(ModelFolderError, match="config.json: not a folder"):
        load_model(folder / "config.json")


def test_weights_file_is_not_a_pickle(folder):
    head = (folder / "model.safetensors").read_bytes()[:8]
    assert head[:2] != b"\x80\x04"  # pickle protocol marker
    assert "encoder.fc.weight" in _header(folder)
    assert isinstance(load_model(folder).model.encoder.fc.weight, torch.Tensor)


def test_an_unfinished_anomaly_run_names_the_command_that_resumes_it(tmp_path):
    """It said 'the same `latentbridge train` command' for a run `anomaly fit` had started."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    (run / "config.yaml").write_text("task: anomaly\n")
    with pytest.raises(ModelFolderError, match=r"did not finish \(continue it with the same `latentbridge anomaly fit` "
                                               r"command and --resume\)"):
        load_model(run)


def test_map_location_takes_a_device_and_names_a_bad_one(folder):
    saved = load_model(folder, map_location=torch.device("cpu"))
    assert next(saved.model.parameters()).device == torch.device("cpu") and not saved.model.training
    with pytest.raises(ValueError, match="map_location must be a device or its name.*'gpu'"):
        load_model(folder, map_location="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="map_location cuda: torch sees no CUDA GPU here"):
            load_model(folder, map_location="cuda")
    else:
        assert next(load_model(folder, map_location="cuda").model.parameters()).is_cuda


def test_a_checkpoint_of_random_bytes_is_said_damaged(tmp_path):
    """Random bytes were read as an old pickle and said to hold 'objects other than tensors'; a pickle of a class is
    that, a zip archive's checkpoint the file it is."""
    import io
    import os

    from latentbridge.errors import CheckpointError
    from latentbridge.models.hub import read_lightning_checkpoint

    (tmp_path / "folder.ckpt").mkdir()  # a read error is said as one (not "damaged": a good file deleted)
    with pytest.raises(CheckpointError, match=r"folder\.ckpt: cannot be read \(Is a directory\)"):
        read_lightning_checkpoint(tmp_path / "folder.ckpt")
    (tmp_path / "random.ckpt").write_bytes(os.urandom(100_000))
    with pytest.raises(CheckpointError, match=r"random\.ckpt: not a readable latentbridge training checkpoint "
                                              r"\(damaged, or no checkpoint: not the zip archive torch writes\)"):
        read_lightning_checkpoint(tmp_path / "random.ckpt")
    buf = io.BytesIO()
    torch.save({"state_dict": {}, "odd": io.StringIO("code")}, buf)
    (tmp_path / "odd.ckpt").write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError, match=r"holds objects other than tensors and plain values"):
        read_lightning_checkpoint(tmp_path / "odd.ckpt")
    torch.save({"state_dict": {"model.w": torch.ones(2)}}, tmp_path / "good.ckpt")
    assert torch.equal(read_lightning_checkpoint(tmp_path / "good.ckpt")["state_dict"]["model.w"], torch.ones(2))
    torch.save({"state_dict": {"model.w": torch.ones(2)}}, tmp_path / "legacy.ckpt",  # no zip: no CRC, read
               _use_new_zipfile_serialization=False)
    assert torch.equal(read_lightning_checkpoint(tmp_path / "legacy.ckpt")["state_dict"]["model.w"], torch.ones(2))
    # bytes zeroed inside a tensor's record (a bad sector): torch read them without a word, the CRC tells
    torch.save({"state_dict": {"model.w": torch.arange(4096.0)}}, tmp_path / "zeroed.ckpt")
    b = bytearray((tmp_path / "zeroed.ckpt").read_bytes())
    at = b.find(torch.arange(4096.0)[1000:1004].numpy().tobytes())
    b[at:at + 2000] = bytes(2000)
    (tmp_path / "zeroed.ckpt").write_bytes(bytes(b))
    with pytest.raises(CheckpointError, match=r"zeroed\.ckpt: not a readable latentbridge training checkpoint "
                                              r"\(damaged: .+ in it does not match its checksum\)"):
        read_lightning_checkpoint(tmp_path / "zeroed.ckpt")


def test_a_folder_saved_with_values_refused_now_still_loads(fitted_model, tmp_path):
    """A gradient clip or patience of 0 (no clipping, no early stopping when it was trained) and an STFT's fmin (read
    by nothing) are refused in new configs; a folder saved with them stopped loading ("'train.gradient_clip': Input
    should be greater than 0"). It loads with the settings they were."""
    import shutil

    old = tmp_path / "old"
    shutil.copytree(fitted_model, old)
    config = json.loads((old / "config.json").read_text())["config"]
    config["train"].update(gradient_clip=0.0, early_stopping_patience=0)
    config["features"].update(kind="stft", fmin=50.0)
    update_info(old, {"config": config})  # (as the code of the day before wrote it, signed)
    cfg = load_model(old).workflow
    assert cfg.train.gradient_clip is None and cfg.train.early_stopping_patience is None
    assert cfg.features.fmin == 0.0
