from pathlib import Path

import pytest

from latentbridge.config import WORKFLOWS, Workflow, apply_overrides, dump_yaml, load_config, parse_override
from latentbridge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_valid_and_frames_follow_the_window():
    cfg = load_config()
    # the anomaly default: nearest-neighbour distance of window statistics, the level a feature of its own
    assert cfg.model.name == "knn_stats" and cfg.model.separate_level and cfg.model.k == 1
    # 2 s at 16 kHz, hop 512, centred frames: 1 + 32000 // 512
    assert cfg.n_frames == 63
    assert cfg.audio.window_samples == 32000


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_preset_loads(path):
    cfg = load_config(path)
    assert isinstance(cfg, Workflow) and type(cfg) is WORKFLOWS[cfg.task]
    # the dump round-trips to the same config
    assert load_config_from_text(dump_yaml(cfg), path.parent) == cfg


def test_a_preset_by_its_name_from_any_folder(tmp_path, monkeypatch):
    """An installed package has no configs/ beside the user's work: `--config configs/mmvae_bridge.yaml` (the README's
    words) and `--config mmvae_bridge` read the packaged preset; the package ships every preset."""
    import tomllib

    from latentbridge.config.loading import PRESETS

    from latentbridge.config import load_raw

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mmvae_bridge").mkdir()  # a run's --out of the preset's name: no config ('is a folder' before)
    for given in ("mmvae_bridge", "mmvae_bridge.yaml", "mmvae_bridge.yml", "configs/mmvae_bridge.yaml"):
        assert load_config(given).task == "multimodal", given
    assert load_raw("mmvae_bridge")["task"] == "multimodal"
    assert load_config("mld_bridge").first_stage.stages  # its base presets read beside it
    (tmp_path / "my.yaml").write_text("base: mmvae_bridge.yaml\ntrain: {lr: 0.001}\n")  # a user's own, on a preset
    assert load_config("my.yaml").task == "multimodal" and load_config("my.yaml").train.lr == 0.001
    with pytest.raises(ConfigError, match=r"nonesuch: config file does not exist \(a preset by its name: anomaly_ae, "):
        load_config("nonesuch")
    (tmp_path / "configs").mkdir()  # a user's own configs/ wins, however named
    (tmp_path / "configs" / "mmvae_bridge.yaml").write_text("task: anomaly\n")
    assert load_config("configs/mmvae_bridge.yaml").task == load_config("mmvae_bridge").task == "anomaly"
    (tmp_path / "configs" / "mine.yaml").write_text("task: anomaly\n")
    assert load_config("mine").task == "anomaly"
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["latentbridge"]
    assert "presets/*.yaml" in data and PRESETS == ROOT / "src" / "latentbridge" / "presets"


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
    with pytest.raises(ConfigError, match=r"unknown key 'train.max_epoch' \(did you mean 'max_epochs'\?\)") as e:
        load_config(p)
    assert str(p) in str(e.value)
    with pytest.raises(ConfigError, match=r"unknown key 'modell' \(did you mean 'model'\?\)"):
        load_config(None, ["modell.name=conv_vae"])
    # a typo in a model's key, a key of another section, a key close to none
    with pytest.raises(ConfigError, match=r"unknown key 'train.window_s' \(did you mean 'audio.window_s'\?\); unknown "
                                          r"key 'model.chanels' \(did you mean 'channels'\?\); unknown key 'zzz'$"):
        load_config(None, ["model.name=conv_vae", "model.chanels=[8]", "train.window_s=1", "zzz=1"])


def test_wrong_type_is_named(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  batch_size: many\n")
    with pytest.raises(ConfigError, match=r"'train.batch_size'.*many"):
        load_config(p)
    with pytest.raises(ConfigError, match=r"'model.name'"):
        load_config(None, ["model.name=transformer"])


def test_inconsistent_values_are_reported():
    # the rate given (with audio.auto the survey chooses it otherwise, and the checks wait for it)
    with pytest.raises(ConfigError, match="n_fft"):
        load_config(None, ["audio.window_s=0.01", "audio.sample_rate=16000", "features.n_fft=1024"])
    # with n_fft left to the survey, the check waits for its choice (which fits the window)
    assert load_config(None, ["audio.window_s=0.01", "audio.sample_rate=16000"]).features.n_fft == 1024
    with pytest.raises(ConfigError, match="Nyquist"):
        load_config(None, ["features.fmax=9000", "audio.sample_rate=16000"])
    with pytest.raises(ConfigError, match="n_fft"):
        load_config(None, ["audio.window_s=0.01", "audio.auto=false"])
    # mel bands with no FFT bin read silence whatever the sound: once accepted with librosa's warning only
    with pytest.raises(ConfigError, match=r"features\.n_mels \(64\) is too many for features\.n_fft \(16\) at 16000 Hz "
                                          r"over 0-8000 Hz: 50 mel bands would hold no frequency bin; use at most 5 bands"):
        load_config(None, ["features.n_fft=16", "features.hop_length=8", "audio.sample_rate=16000",
                           "features.n_mels=64"])
    with pytest.raises(ConfigError, match=r"features\.n_mels \(1000\) is too many .* use at most 385 bands"):
        load_config(None, ["features.n_mels=1000", "audio.auto=false"])
    assert load_config(None, ["features.n_mels=385", "audio.auto=false"]).features.n_mels == 385
    # every channel side by side is an anomaly model's reading; channels count from 0
    assert load_config(None, ["audio.channel=all"]).audio.channel == "all"
    with pytest.raises(ConfigError, match=r"audio.channel: 'all' \(every channel, side by side\) is for anomaly models, "
                                          r"not audio_ae: pick one channel"):
        load_config(ROOT / "configs" / "mel_ae.yaml", ["audio.channel=all"])
    with pytest.raises(ConfigError, match="audio.channel: channels count from 0, got -1"):
        load_config(None, ["audio.channel=-1"])


def test_test_folder_names_read_as_numbers_say_to_quote_them():
    with pytest.raises(ConfigError, match=r"data.test_ids.*2024, 1, 5\), 7: not text.*quote them"):
        load_config(ROOT / "configs" / "mmvae_bridge.yaml", ["data.test_ids=[Test_01, 2024-01-05, 007]"])
    cfg = load_config(ROOT / "configs" / "mmvae_bridge.yaml", ["data.test_ids=['007', Test_01]"])
    assert cfg.data.test_ids == ["007", "Test_01"]


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
    # a stage's preset by -o: 'unknown key ...base' (presets are composed as files are read, before any -o)
    for key in ("first_stage.stages.image.base=image_ae_dense.yaml", "defaults=[a.yaml]"):
        with pytest.raises(ConfigError, match=r"is read in a config file only; write the presets in one"):
            apply_overrides({"task": "mld"}, [key])


def test_presets_compose_from_a_base(tmp_path):
    (tmp_path / "base.yaml").write_text("task: multimodal\nmodel: {name: mmvae, fusion: moe, latent_dim: 8}\n"
                                        "train: {max_epochs: 7, lr: 0.01}\n")
    (tmp_path / "child.yaml").write_text("base: base.yaml\nmodel: {fusion: poe}\ntrain: {lr: 0.002}\n")
    cfg = load_config(tmp_path / "child.yaml")
    assert (cfg.model.fusion, cfg.model.latent_dim, cfg.train.max_epochs, cfg.train.lr) == ("poe", 8, 7, 0.002)
    # an ordered list of defaults: later entries win, the file itself wins over all
    (tmp_path / "more.yaml").write_text("train: {max_epochs: 9}\n")
    (tmp_path / "list.yaml").write_text("defaults: [base.yaml, more.yaml]\nmodel: {latent_dim: 4}\n")
    cfg = load_config(tmp_path / "list.yaml")
    assert (cfg.train.max_epochs, cfg.model.latent_dim, cfg.model.fusion) == (9, 4, "moe")
    # another model replaces the model section whole (each model has its own keys)
    (tmp_path / "other.yaml").write_text("base: base.yaml\nmodel: {name: spec2mask, latent_dim: 6}\n")
    cfg = load_config(tmp_path / "other.yaml")
    assert cfg.model.name == "spec2mask" and cfg.model.latent_dim == 6 and not hasattr(cfg.model, "fusion")
    # the resolved config (what a run folder saves) holds no composition keys
    assert "base" not in dump_yaml(cfg) and "defaults" not in dump_yaml(cfg)


def test_preset_cycles_and_bad_bases_are_named(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("base: nope.yaml\n")
    # named with the config and key naming it (a preset copied alone: '.../nope.yaml: config file does not exist')
    with pytest.raises(ConfigError, match=r"c\.yaml: base: nope\.yaml not found \(presets it builds on are read from "
                                          r"its own folder"):
        load_config(tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)
    # a nested defaults: given as one name (it was split into its letters: 'k: config file does not exist')
    (tmp_path / "knn.yaml").write_text("name: knn_stats\n")
    (tmp_path / "nest.yaml").write_text("task: anomaly\nmodel:\n  defaults: knn.yaml\n")
    with pytest.raises(ConfigError, match=r"nest\.yaml: 'model\.base' / 'model\.defaults' must name preset files"):
        load_config(tmp_path / "nest.yaml")
    # text in another encoding, and a model folder's config.json given as a config
    (tmp_path / "u16.yaml").write_bytes("task: anomaly\n".encode("utf-16"))
    with pytest.raises(ConfigError, match=r"u16\.yaml: not UTF-8 text \(save it as UTF-8\)"):
        load_config(tmp_path / "u16.yaml")
    (tmp_path / "config.json").write_text('{"format": 2, "model_class": "KNNStatsDetector", "config": {}}')
    with pytest.raises(ConfigError, match=r"config\.json: a model folder's config\.json, not a config: give its "
                                          r"config\.yaml"):
        load_config(tmp_path / "config.json")


def test_the_bridge_presets_are_one_base_plus_a_line():
    base = load_config(ROOT / "configs" / "mmvae_bridge.yaml").model_dump()
    for fusion in ("poe", "moe", "mopoe", "jsd"):
        cfg = load_config(ROOT / "configs" / f"mmvae_bridge_{fusion}.yaml").model_dump()
        diff = {k for k in cfg if cfg[k] != base[k]}
        assert diff <= {"model", "description"}
        assert {k for k in cfg["model"] if cfg["model"][k] != base["model"][k]} <= {"fusion"}


def test_each_workflow_validates_only_its_own_sections():
    with pytest.raises(ConfigError, match="unknown key 'vibration'"):
        load_config(None, ["task=anomaly", "vibration.n_fft=64"])
    with pytest.raises(ConfigError, match="unknown key 'audio'"):
        load_config(None, ["task=multimodal", "audio.sample_rate=8000"])
    with pytest.raises(ConfigError, match=r"'model.name': 'conv_vae' is not one of"):
        load_config(None, ["task=multimodal", "model.name=conv_vae"])
    with pytest.raises(ConfigError, match="unknown key 'model.fusion'"):  # a per-model schema
        load_config(None, ["task=anomaly", "model.fusion=moe"])
    with pytest.raises(ConfigError, match="vibration.n_fft"):  # the multimodal cross-field rule
        load_config(None, ["task=multimodal", "vibration.resample_to=10", "vibration.window_s=1"])
    cfg = load_config(None, ["task=avdigits"])
    assert (cfg.audio.sample_rate, cfg.features.n_fft, cfg.n_frames) == (8000, 256, 128)  # the digit features


def test_classifier_settings_come_from_the_config():
    mnist = load_config(None, ["task=classifier", "model.name=mnist_classifier"])
    fsdd = load_config(None, ["task=classifier", "model.name=fsdd_classifier"])
    assert (mnist.train.max_epochs, fsdd.train.max_epochs) == (12, 16)
    assert (mnist.classifier.augment.kind, fsdd.classifier.augment.kind) == ("mnist", "fsdd")
    assert mnist.train.scheduler == "onecycle" and mnist.train.keep_weights == "last"
    with pytest.raises(ConfigError, match="fsdd augmentation for a mnist classifier"):
        load_config(None, ["task=classifier", "model.name=mnist_classifier", "classifier.augment.kind=fsdd"])


@pytest.mark.parametrize("name", ["2024", "yes", "null", "~", "[x]", "a: b", "with space", "Größe", "3.5"])
def test_path_overrides_are_text_not_yaml(name):
    import os

    cfg = load_config(None, [f"data.train_dir={name}", f"data.test_dir={name}"])
    home = os.path.expanduser(name)  # (no shell expands ~ after data.test_dir=: the word is no variable assignment)
    assert cfg.data.test_dir == home
    # data.train_dir takes a list of folders too: [x] is one (a folder of that name: -o "data.train_dir=['[x]']")
    assert cfg.data.train_dir == (["x"] if name == "[x]" else home)
    assert load_config(None, ["data.train_dir=['[x]']"]).data.train_dir == ["[x]"]
    assert load_config(None, ["data.train_dir="]).data.train_dir is None
    cfg = load_config(None, sets={"data.train_dir": name})
    assert cfg.data.train_dir == name


def test_a_config_file_s_home_folder_is_expanded(tmp_path):
    """`data.train_dir: ~/normal` in a config file was refused as '~/normal: does not exist'."""
    import os

    (f := tmp_path / "c.yaml").write_text("task: anomaly\ndata:\n  train_dir: ~/normal\n")
    assert load_config(f).data.train_dir == os.path.expanduser("~/normal")
    # and in -o values, where no shell expands it (data.root=~/x is no variable assignment), and a preset's base
    assert load_config(None, ["data.train_dir=~/normal"]).data.train_dir == os.path.expanduser("~/normal")
    assert load_config(None, sets={"data.train_dir": "~"}).data.train_dir == "~"  # an argument: the shell's
    home = tmp_path / "home"
    (home / "presets").mkdir(parents=True)
    (home / "presets" / "p.yaml").write_text("task: anomaly\ntrain:\n  max_epochs: 7\n")
    (g := tmp_path / "g.yaml").write_text("base: ~/presets/p.yaml\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        assert load_config(g).train.max_epochs == 7


def test_train_keys_out_of_range_are_refused_naming_the_key():
    """max_steps -5 was refused as a hardware setting after the data was read, 0 as too little data; a gradient clip
    or patience of 0 or -1 was no clipping / no early stopping (or one epoch's), without a word; bf16-true trained,
    then a traceback; 16-mixed on the CPU trained bf16-mixed while the run recorded 16-mixed."""
    from latentbridge.commands import _check_train_hardware

    for key, said in (("max_steps=-5", "max_steps must be a positive count of optimizer steps, or -1"),
                      ("max_steps=0", "got 0"), ("gradient_clip=0", "gradient_clip"), ("gradient_clip=-1", "greater"),
                      ("early_stopping_patience=0", "early_stopping_patience"),
                      ("precision=bf16-true", "weights held in half precision are not supported; bf16-mixed"),
                      ("precision=16-true", "16-true")):
        with pytest.raises(ConfigError, match=said):
            load_config(None, ["train." + key])
    assert load_config(None, ["train.max_steps=-1", "train.gradient_clip=null"]).train.max_steps == -1
    mel_ae = Path(__file__).parents[1] / "configs" / "mel_ae.yaml"
    with pytest.raises(ConfigError, match="float16 mixed precision needs a CUDA GPU.*on the CPU use bf16-mixed"):
        _check_train_hardware(load_config(mel_ae, ["train.precision=16-mixed", "train.accelerator=cpu"]))
    _check_train_hardware(load_config(mel_ae, ["train.precision=bf16-mixed"]))  # (the CPU's half precision)
    _check_train_hardware(load_config(None, ["train.precision=16-mixed"]))  # fitted in closed form: named unused


def test_a_band_of_no_bin_and_an_stft_fmin_are_refused_in_words():
    """fmin 7999 at 16 kHz said "use at most 0 bands"; fmin given to an STFT was read by nothing, without a word."""
    with pytest.raises(ConfigError, match=r"features.fmin-fmax \(7999-8000 Hz\) holds no frequency bin of features."
                                          r"n_fft 1024 at 16000 Hz \(bins 15.625 Hz apart\)"):
        load_config(None, ["features.fmin=7999", "audio.sample_rate=16000", "features.n_fft=1024", "audio.auto=false"])
    with pytest.raises(ConfigError, match=r"features.fmin \(1000 Hz\) is the bottom of a mel scale's band"):
        load_config(None, ["features.kind=stft", "features.fmin=1000"])
    assert load_config(None, ["features.kind=stft", "features.fmax=3000", "audio.sample_rate=16000"]).features.fmax


def test_band_advice_for_an_stft_model_is_the_rate():
    """The advice -o features.fmax=4000 for an STFT model only stopped the warning (its bins reach Nyquist)."""
    from latentbridge.data.survey import band_warning

    assert band_warning({"a.wav": 8000}, 16000, None, "mel").endswith("-o features.fmax=4000")
    assert "-o audio.sample_rate=8000 (an STFT's bins reach" in band_warning({"a.wav": 8000}, 16000, None, "stft")


def test_num_threads_all_and_the_mld_stages_inherit_it():
    import os

    cfg = load_config(None, ["train.num_threads=all"])
    assert cfg.train.thread_count() == os.cpu_count()
    assert load_config(None, ["train.num_threads=3"]).train.thread_count() == 3
    assert load_config(None).train.thread_count() is None
    with pytest.raises(ConfigError, match="num_threads"):
        load_config(None, ["train.num_threads=0"])
    mld = load_config(Path(__file__).parents[1] / "configs" / "mld_avdigits.yaml",
                      ["train.num_threads=2", "first_stage.stages.image.train.num_threads=1"])
    assert mld.stage_config("audio").train.num_threads == 2  # inherited
    assert mld.stage_config("image").train.num_threads == 1  # the stage's own wins
    # so does a progress bar turned off (the first stages drew theirs in a run told to draw none)
    quiet = load_config(Path(__file__).parents[1] / "configs" / "mld_avdigits.yaml", ["train.progress_bar=false"])
    assert not quiet.stage_config("audio").train.progress_bar and mld.stage_config("audio").train.progress_bar


def test_the_digits_audio_stage_reads_the_runs_clips_and_says_what_it_replaces(caplog):
    """The digits MLD's audio stage reads the run's audio and features sections (one definition for its pairs, its
    judges and the stage): the preset's stage keeps FSDD's clips under 0.25 s as mel_ae.yaml does (its 0.1 was
    replaced by 0.25 without a word: 164 clips dropped), and a stage setting the run replaces is said."""
    import logging

    from latentbridge.utils import forget_said

    root = Path(__file__).parents[1] / "configs"
    forget_said("stage settings replaced")  # said once per process
    with caplog.at_level(logging.WARNING, logger="latentbridge.config.workflow_base"):
        stage = load_config(root / "mld_avdigits.yaml").stage_config("audio")
        assert stage.audio.min_window_share == 0.1 and not caplog.text  # the preset: nothing replaced
        mld = load_config(root / "mld_avdigits.yaml", ["first_stage.stages.audio.audio.min_window_share=0.3",
                                                       "first_stage.stages.audio.features.n_mels=32"])
        stage = mld.stage_config("audio")
    assert (stage.audio.min_window_share, stage.features.n_mels) == (0.1, 64)
    assert ("first_stage.stages.audio: the run's audio and features sections replace the stage's own "
            "(audio.min_window_share: 0.3 -> 0.1; features.n_mels: 32 -> 64): set them on the run (-o "
            "audio.min_window_share=0.3 -o features.n_mels=32)") in caplog.text


def test_mld_stages_train_on_the_runs_accelerator_and_precision():
    """``latentbridge train --config configs/mld_bridge.yaml --accelerator gpu --precision bf16-mixed``: the
    first stages train there too (they trained in 32-bit whatever the flag said); a stage's own setting wins."""
    root = Path(__file__).parents[1] / "configs"
    mld = load_config(root / "mld_bridge.yaml", ["train.accelerator=cpu", "train.precision=bf16-mixed",
                                                  "first_stage.stages.supervised.train.precision=32-true"])
    multimodal, supervised = mld.stage_config("multimodal").train, mld.stage_config("supervised").train
    assert (multimodal.accelerator, multimodal.precision) == ("cpu", "bf16-mixed")
    assert (supervised.accelerator, supervised.precision) == ("cpu", "32-true")
    digits = load_config(root / "mld_avdigits.yaml", ["train.precision=bf16-mixed"])
    assert {digits.stage_config(k).train.precision for k in ("audio", "image")} == {"bf16-mixed"}
    assert load_config(root / "mld_avdigits.yaml").stage_config("audio").train.precision == "32-true"


def test_seeds_outside_numpys_range_are_config_errors():
    """train.seed -1 or 2**32 was a traceback from the seeding, after the run folder was made (a rerun refused)."""
    for key in ("train.seed", "sampling.seed"):
        for bad in ("-1", str(2 ** 32)):
            with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
                load_config(Path(__file__).parents[1] / "configs" / "ddpm_mnist.yaml", [f"{key}={bad}"])
    assert load_config(None, [f"train.seed={2 ** 32 - 1}"]).train.seed == 2 ** 32 - 1


def test_a_key_given_twice_and_yes_no_for_a_number_are_refused(tmp_path):
    """A second `train:` section replaced the preset's first without a word (its lr back to the default); true/yes
    where a number belongs read as 1 (train.max_epochs=true trained one epoch)."""
    path = tmp_path / "twice.yaml"
    path.write_text("task: anomaly\ntrain:\n  lr: 0.002\ndata:\n  train_dir: x\ntrain:\n  num_threads: all\n")
    with pytest.raises(ConfigError, match=r"twice.yaml: not valid YAML \(line 6, column 1: 'train' given twice in one "
                                          r"mapping \(lines 2 and 6\)"):
        load_config(path)
    with pytest.raises(ConfigError, match="'a' given twice"):
        load_config(None, ["model={a: 1, a: 2}"])
    for override in ("train.max_epochs=true", "train.batch_size=yes", "train.lr=on"):
        with pytest.raises(ConfigError, match=r"is a yes/no value .* not a number"):
            load_config(None, [override])
    # a section switched off as a whole: its keys named (it read "not a number")
    with pytest.raises(ConfigError, match=r"'first_stage\.recorded': false is a yes/no value, and recorded a section "
                                          r"of settings "
                                          r"\(copies, share, epochs, lr, batch_size\): set those, e\.g\. -o \.\.\. "
                                          r"recorded\.copies=VALUE"):
        load_config(ROOT / "configs" / "mld_avdigits.yaml", ["first_stage.recorded=false"])
    cfg = load_config(None, ["train.progress_bar=no", "data.skip_bad_files=yes", "train.max_epochs=3"])
    assert cfg.train.progress_bar is False and cfg.data.skip_bad_files is True and cfg.train.max_epochs == 3


def test_a_preset_of_another_task_and_an_empty_one_are_refused(tmp_path):
    """`anomaly fit --config configs/mel_ae.yaml` trained an anomaly detector without a word; an empty config became
    the anomaly defaults and failed on a data folder it never named."""
    repo = Path(__file__).resolve().parents[1]
    with pytest.raises(ConfigError, match=r"mel_ae.yaml: a preset for task 'audio_ae' \(`latentbridge train --config "):
        load_config(repo / "configs" / "mel_ae.yaml", sets={"task": "anomaly"})
    assert load_config(repo / "configs" / "anomaly_pca.yaml", sets={"task": "anomaly"}).model.name == "pca"
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    with pytest.raises(ConfigError, match="empty.yaml: an empty config"):
        load_config(empty)


def test_train_devices_in_a_config_are_checked_as_the_flag_is():
    """`-o train.devices=0` reached Lightning as a traceback; the key takes what --devices takes."""
    assert load_config(None, ["train.devices=2"]).train.devices == 2
    assert load_config(None, ["train.devices=auto"]).train.devices == "auto"
    assert load_config(None, ["train.devices=0,1"]).train.devices == "0,1"
    for value in ("inf", "-Infinity", "nan", ".inf"):  # "inf" is text to YAML: `config` printed lr: .inf
        with pytest.raises(ConfigError, match=r"'train\.lr': must be a finite number"):
            load_config(None, [f"train.lr={value}"])
    assert load_config(None, ["train.lr=1e-3"]).train.lr == 1e-3
    for bad in ("0", "-1", "many", "1000000000000"):
        with pytest.raises(ConfigError, match=r"train\.devices': devices must be a number of devices, 1 "
                                              r"to 1024, 'auto' or GPU indices \(0,1\)"):
            load_config(None, [f"train.devices={bad}"])


def test_overrides_merge_as_a_config_file_does_and_a_new_name_starts_the_section():
    """`-o 'train={max_epochs: 1}'` replaced the whole section (the preset's lr 0.002 became the default 0.001, its
    weight decay and gradient clip too, without a word); `-o model.name=pca` over a VAE preset was refused for the
    VAE's keys. A mapping merges, another name starts the section anew (as a file over its base: does), and a name
    change applies first, so the other model keys given beside it stay."""
    vae = ROOT / "configs" / "anomaly_vae.yaml"
    base = load_config(vae)
    cfg = load_config(vae, ["train={max_epochs: 1}"])
    assert cfg.train.max_epochs == 1 and cfg.train.lr == base.train.lr == 0.002
    assert cfg.train.weight_decay == base.train.weight_decay
    cfg = load_config(vae, ["model.name=pca"])
    assert cfg.model.name == "pca"
    cfg = load_config(None, ["model.latent_dim=8", "model.name=conv_vae"])
    assert cfg.model.name == "conv_vae" and cfg.model.latent_dim == 8


def test_a_command_argument_given_again_by_an_override(tmp_path, caplog):
    """`anomaly fit DIR -o data.train_dir=OTHER` fitted DIR without a word: refused; a config file's other folder (a
    run's config.yaml given for new data) is replaced, with a warning."""
    import logging

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    sets = {"task": "anomaly", "data.train_dir": str(tmp_path / "a")}
    with pytest.raises(ConfigError, match=r"-o data\.train_dir=.*b: the command's own argument gives it .*a\): give "
                                          r"it once"):
        load_config(None, [f"data.train_dir={tmp_path / 'b'}"], sets=sets)
    (cfg_file := tmp_path / "run.yaml").write_text(f"task: anomaly\ndata:\n  train_dir: {tmp_path / 'b'}\n")
    with caplog.at_level(logging.WARNING, logger="latentbridge.config.loading"):
        assert load_config(cfg_file, None, sets=sets).data.train_dir == str(tmp_path / "a")
    assert f"data.train_dir {tmp_path / 'b'} replaced by the command's argument, {tmp_path / 'a'}" in caplog.text
    caplog.clear()
    (cfg_file := tmp_path / "same.yaml").write_text(f"task: anomaly\ndata:\n  train_dir: {tmp_path / 'a'}/\n")
    with caplog.at_level(logging.WARNING, logger="latentbridge.config.loading"):
        load_config(cfg_file, None, sets=sets)  # the same folder spelled otherwise: no word
    assert "replaced" not in caplog.text


def test_a_stage_built_from_its_own_preset_over_a_preset_s_stage(tmp_path):
    """A user's config over configs/mld_bridge.yaml naming another preset for a first stage kept the parent's stage
    (moe, its description and all): the parent's composed stage was merged over the preset named."""
    mine = tmp_path / "mine.yaml"
    mine.write_text(f"base: {ROOT / 'configs' / 'mld_bridge.yaml'}\nfirst_stage:\n  stages:\n    multimodal:\n"
                    f"      base: {ROOT / 'configs' / 'mmvae_bridge_poe.yaml'}\n      train: {{max_epochs: 3}}\n")
    stage = load_config(mine).first_stage.stages["multimodal"]
    assert stage["model"]["fusion"] == "poe" and "poe" in stage["description"] and stage["train"]["max_epochs"] == 3
    assert load_config(ROOT / "configs" / "mld_bridge.yaml").first_stage.stages["multimodal"]["model"]["fusion"] == \
        "moe"  # the preset's own


def test_validation_messages_name_the_key_the_user_gave():
    """Union branches read as keys ('train.num_threads.literal['all']'), a section's check printed pydantic's wording
    and the whole section, 1e3 (text to YAML) was "unable to parse string", "did you mean" offered the key typed, a
    number past 2**63 passed to a traceback, and an -o mapping naming another model merged into the old one."""
    conv = ROOT / "configs" / "image_ae_conv.yaml"

    def problems(*overrides) -> str:
        with pytest.raises(ConfigError) as e:
            load_config(conv, list(overrides))
        return e.value.problems

    assert problems("train.num_threads=abc") == "'train.num_threads': Input should be a valid integer, unable to " \
        "parse string as an integer or Input should be 'all' (got 'abc')"
    assert problems("train.lr=.inf") == "'train.lr': must be a finite number, got inf"
    assert "(YAML reads 1e3 as text: write the number in full, 1000)" in problems("train.max_epochs=1e3")
    said = problems("model.hidden_dims=[1]")
    assert "did you mean" not in said and "is a key of model.name image_dense_ae" in said
    for key in ("train.batch_size", "model.latent_dim", "train.max_epochs"):
        assert problems(f"{key}=99999999999999999999") == f"'{key}': 99999999999999999999 is too large (at most " \
                                                          f"{2 ** 53})"
    with pytest.raises(ConfigError) as e:  # a check of the whole config keeps its words ('(top level).vibration')
        load_config(ROOT / "configs" / "mld_avdigits.yaml", ["vibration.window_s=2"])
    assert e.value.problems.startswith("vibration: sets the vibration windows of the bridge's first stages")
    cfg = load_config(conv, ["model={name: image_dense_ae, latent_dim: 8}"])
    assert cfg.model.name == "image_dense_ae" and cfg.model.latent_dim == 8
    assert load_config(conv, ["model={latent_dim: 9}"]).model.channels == load_config(conv).model.channels


def test_an_unknown_key_of_a_preset_built_on_is_named_there(tmp_path):
    """A typo in a `base:` preset was blamed on the preset built on it, which does not hold the key."""
    (tmp_path / "parent.yaml").write_text("task: image_ae\ntrain:\n  max_epoch: 3\n")
    (tmp_path / "child.yaml").write_text("base: parent.yaml\ntrain:\n  lr: 0.01\n")
    with pytest.raises(ConfigError, match=r"child\.yaml: invalid config: unknown key 'train\.max_epoch' \(did you "
                                          r"mean 'max_epochs'\?\) \('train\.max_epoch' is written in .*parent\.yaml, a "
                                          r"preset it builds on\)"):
        load_config(tmp_path / "child.yaml")
    (tmp_path / "child.yaml").write_text("base: parent.yaml\ntrain:\n  max_epoch: 4\n")  # its own: no more said
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "child.yaml")
    assert "preset it builds on" not in str(e.value)


def test_a_link_to_a_preset_reads_the_presets_it_builds_on_beside_the_preset(tmp_path):
    """`ln -s configs/mel_vae.yaml mine.yaml`: its base was looked for beside the link, and refused."""
    (tmp_path / "mine.yaml").symlink_to(ROOT / "configs" / "mel_vae.yaml")
    preset = ROOT / "configs" / "mel_vae.yaml"
    assert load_config(tmp_path / "mine.yaml").model_dump() == load_config(preset).model_dump()


def test_a_path_quoted_inside_an_override_loses_its_quotes():
    """`-o 'data.root="sp ace/mnist"'`: the quotes stayed in the path ('"sp ace/mnist": does not exist')."""
    for quoted in ('"sp ace/mnist"', "'sp ace/mnist'"):
        assert load_config(ROOT / "configs" / "ddpm_mnist.yaml", [f"data.root={quoted}"]).data.root == "sp ace/mnist"
    assert load_config(ROOT / "configs" / "ddpm_mnist.yaml", ["data.root=it's"]).data.root == "it's"


def test_a_section_given_in_part_keeps_the_workflows_own_defaults(tmp_path):
    # a user's config of an audio-visual model read its clips at the audio section's 16 kHz and 2 s, not the
    # workflow's 8 kHz and 1 s; a spatial one lost the sine schedule of its beta; a classifier its kind's epochs
    (tmp_path / "av.yaml").write_text("task: avdigits\naudio: {pad: wrap}\nfeatures: {n_mels: 32}\n")
    av = load_config(str(tmp_path / "av.yaml"))
    assert (av.audio.sample_rate, av.audio.window_s, av.audio.pad, av.features.n_fft, av.features.n_mels) == \
        (8000, 1.0, "wrap", 256, 32)
    spatial = load_config(None, ["beta.value=0.1"], sets={"task": "spatial"})
    assert (spatial.beta.schedule, spatial.beta.cycle_steps, spatial.beta.value) == ("sine", 1000, 0.1)
    ae = load_config(None, ["data.image_size=32"], sets={"task": "image_ae"})
    assert (ae.data.val_fraction, ae.data.image_size) == (0.2, 32)
    ddpm = load_config(None, ["train.max_epochs=3"], sets={"task": "diffusion"})
    assert (ddpm.train.lr, ddpm.train.ema_decay, ddpm.train.max_epochs) == (2e-3, 0.999, 3)
    fsdd = load_config(None, ["model.name=fsdd_classifier", "train.lr=0.01"], sets={"task": "classifier"})
    assert (fsdd.train.max_epochs, fsdd.train.scheduler, fsdd.train.lr, fsdd.classifier.augment.kind) == \
        (16, "onecycle", 0.01, "fsdd")
    # the anomaly workflow's survey still sees only what was given
    anomaly = load_config(None, ["audio.pad=wrap"], sets={"task": "anomaly"})
    assert anomaly.audio.model_fields_set == {"pad"}


def test_a_vibration_key_given_at_its_default_value_reaches_the_mld_stages(tmp_path):
    """``-o vibration.resample_to=null`` (the section's default) was passed over: the bridge stages kept their 100 Hz
    and a user's 4-kHz recordings were cut to 100 Hz. A saved config, which lists every key, keeps the stages' own."""
    from latentbridge.config import dump_yaml

    given = load_config("configs/mld_bridge.yaml", ["vibration.resample_to=null", "vibration.window_s=1"])
    assert given.vibration_given() == {"resample_to": None, "window_s": 1.0}
    for key in ("multimodal", "supervised"):
        assert (given.stage_config(key).vibration.resample_to, given.stage_config(key).vibration.window_s) == (None, 1)
    plain = load_config("configs/mld_bridge.yaml")
    (tmp_path / "saved.yaml").write_text(dump_yaml(plain))
    saved = load_config(str(tmp_path / "saved.yaml"))
    assert saved.vibration_given() == {} and saved.stage_config("multimodal").vibration.resample_to == 100.0
