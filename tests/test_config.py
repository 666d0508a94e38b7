from pathlib import Path

import pytest

from latentbridge.config import Config, apply_overrides, dump_yaml, load_config, parse_override
from latentbridge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_valid_and_frames_follow_the_window():
    cfg = load_config()
    assert cfg.model.name == "conv_vae"
    # 2 s at 16 kHz, hop 512, centred frames: 1 + 32000 // 512
    assert cfg.n_frames == 63
    assert cfg.audio.window_samples == 32000


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_preset_loads(path):
    cfg = load_config(path)
    assert isinstance(cfg, Config)
    # the dump round-trips to the same config
    assert load_config_from_text(dump_yaml(cfg), path.parent) == cfg


def load_config_from_text(text, tmp_dir):
    import yaml

    from latentbridge.config import validate

    return validate(yaml.safe_load(text))


def test_overrides_are_typed_and_nested():
    cfg = load_config(ROOT / "configs" / "anomaly_vae.yaml",
                      ["train.max_epochs=3", "model.channels=[8, 16]", "features.fmax=4000", "data.train_dir=x y"])
    assert cfg.train.max_epochs == 3
    assert cfg.model.channels == [8, 16]
    assert cfg.features.fmax == 4000.0
    assert cfg.data.train_dir == "x y"


def test_unknown_key_is_named(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  max_epoch: 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'train.max_epoch'") as e:
        load_config(p)
    assert str(p) in str(e.value)
    with pytest.raises(ConfigError, match=r"unknown key 'modell'"):
        load_config(None, ["modell.name=conv_vae"])


def test_wrong_type_is_named(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  batch_size: many\n")
    with pytest.raises(ConfigError, match=r"'train.batch_size'.*many"):
        load_config(p)
    with pytest.raises(ConfigError, match=r"'model.name'"):
        load_config(None, ["model.name=transformer"])


def test_inconsistent_values_are_reported():
    with pytest.raises(ConfigError, match="n_fft"):
        load_config(None, ["audio.window_s=0.01"])
    with pytest.raises(ConfigError, match="Nyquist"):
        load_config(None, ["features.fmax=9000"])


def test_bad_files_and_overrides(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    p = tmp_path / "list.yaml"
    p.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(p)
    p.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)
    with pytest.raises(ConfigError, match="key.sub=value"):
        parse_override("train.max_epochs")
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"train": 3}, ["train.max_epochs=2"])
