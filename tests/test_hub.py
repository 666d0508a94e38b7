import json

import pytest
import torch

from latentbridge.config import ModelConfig
from latentbridge.errors import ModelFolderError
from latentbridge.models.hub import load_model, save_model
from latentbridge.models.vae import build_model


@pytest.fixture
def folder(tmp_path):
    model = build_model("conv_vae", (1, 16, 12), ModelConfig(latent_dim=2, channels=[4]))
    save_model(tmp_path / "m", model, "conv_vae", config={"a": 1}, transform={"n_fft": 64}, card="# card\n")
    return tmp_path / "m"


def test_folder_layout(folder):
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    info = json.loads((folder / "config.json").read_text())
    assert info["model_class"] == "conv_vae" and info["model_kwargs"]["input_shape"] == [1, 16, 12]
    assert len(info["files"]["model.safetensors"]) == 64
    assert not list(folder.parent.glob("*.partial"))


def test_altered_weights_are_refused(folder):
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelFolderError, match="checksum"):
        load_model(folder)


@pytest.mark.parametrize("name", ["config.json", "model.safetensors"])
def test_missing_files_are_named(folder, name):
    (folder / name).unlink()
    with pytest.raises(ModelFolderError, match=f"missing {name}"):
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
    p.write_text(json.dumps({**info, "model_kwargs": {**info["model_kwargs"], "latent_dim": 5}}))
    with pytest.raises(ModelFolderError, match="weights do not fit"):
        load_model(folder)
    with pytest.raises(ModelFolderError, match="not a folder"):
        load_model(folder / "nope")


def test_weights_file_is_not_a_pickle(folder):
    head = (folder / "model.safetensors").read_bytes()[:8]
    assert head[:2] != b"\x80\x04"  # pickle protocol marker
    n = int.from_bytes(head, "little")  # safetensors: 8-byte header length, then JSON
    meta = json.loads((folder / "model.safetensors").read_bytes()[8:8 + n])
    assert "encoder.fc.weight" in meta
    assert isinstance(load_model(folder).model.encoder.fc.weight, torch.Tensor)
