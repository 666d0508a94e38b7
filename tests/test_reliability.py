"""Reliability: interrupted training, resume checks, one owner per output folder, command-line paths,
model folders whole or refused, and no traceback for a user error (the reliability issue's list)."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import FAST, REPO
from latentbridge.cli import main

SRC = str(REPO / "src")


def _env(**extra):
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "OMP_NUM_THREADS": "1", **extra}


def _o(extra=()):
    return [x for o in [*FAST, *extra] for x in ("-o", o)]


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _train_args(machine_data, out, extra=()):
    return ["train", "--config", str(REPO / "configs" / "anomaly_ae.yaml"), "--out", str(out),
            "-o", f"data.train_dir={machine_data / 'train' / 'normal'}", *_o(extra)]


# ----------------------------------------------------------------------------- interrupted training


def _epoch_of(ckpt: Path) -> int:
    try:
        return int(torch.load(ckpt, map_location="cpu", weights_only=True)["epoch"])
    except Exception:  # noqa: BLE001 - being written right now
        return -1


def test_sigkill_then_resume_matches_an_uninterrupted_run(machine_data, feature_cache, tmp_path):
    """A real training process killed with SIGKILL after a checkpoint resumes from its last epoch,
    ends at the same epoch count and the same weights as an uninterrupted run with the same seed;
    logs hold no step twice and the training time accumulates."""
    epochs = ["train.max_epochs=8", "train.progress_bar=false"]
    ref = tmp_path / "ref"
    env = _env(LATENTBRIDGE_CACHE=os.environ["LATENTBRIDGE_CACHE"])  # one thread count for all: the same rounding
    train = [sys.executable, "-m", "latentbridge"]
    # the uninterrupted run beside the one to be killed (one thread each, on two cores)
    ref_log = tmp_path / "ref.log"  # (a file, not a pipe that nobody reads while it fills)
    with open(ref_log, "wb") as log:
        uninterrupted = subprocess.Popen([*train, *_train_args(machine_data, ref, epochs)], env=env,
                                         stdout=subprocess.DEVNULL, stderr=log)
    run = tmp_path / "run"
    proc = subprocess.Popen([*train, *_train_args(machine_data, run, epochs)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and _epoch_of(last) < 3:
        time.sleep(0.05)
    assert proc.poll() is None, "training ended before it could be killed: " + proc.stderr.read().decode()[-500:]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    killed_at = torch.load(last, map_location="cpu", weights_only=True)
    assert 3 <= killed_at["epoch"] < 7 and not (run / "model.safetensors").exists()
    assert uninterrupted.wait(timeout=300) == 0, ref_log.read_text()[-800:]

    resumed = subprocess.run([*train, *_train_args(machine_data, run, epochs), "--resume"], env=env,
                             capture_output=True)
    assert resumed.returncode == 0, resumed.stderr.decode()[-800:]
    done = torch.load(last, map_location="cpu", weights_only=True)
    reference = torch.load(ref / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert done["epoch"] == reference["epoch"] == 7
    assert done["global_step"] == reference["global_step"]
    info, ref_info = (json.loads((p / "config.json").read_text()) for p in (run, ref))
    assert info["training"]["epochs"] == ref_info["training"]["epochs"]
    # same seed, same data: the resumed run is the uninterrupted one (the checkpoint holds the random generators'
    # states: the resumed session drew new ones from the seed, and its weights differed by up to 3.8)
    a, b = info["training"]["best_val_loss"], ref_info["training"]["best_val_loss"]
    assert a == pytest.approx(b, rel=1e-6), (a, b)
    from safetensors.torch import load_file

    mine, theirs = load_file(run / "model.safetensors"), load_file(ref / "model.safetensors")
    for k in theirs:
        np.testing.assert_allclose(mine[k].float().numpy(), theirs[k].float().numpy(), rtol=1e-6, atol=1e-7, err_msg=k)
    # the time of both sessions is counted
    assert info["training"]["seconds"] >= killed_at["latentbridge_train_seconds"]
    # no step twice in the KL-weight log, and every step once
    steps = [int(r["step"]) for r in _rows(run / "logs" / "beta_tracking.csv")]
    assert steps == list(range(1, done["global_step"] + 1))
    # the CSV logs of both sessions together hold each (step, metric) once
    seen = set()
    for f in sorted((run / "logs" / "csv").glob("version_*/metrics.csv")):
        for r in _rows(f):
            for k, v in r.items():
                if v not in ("", None) and k not in ("step", "epoch"):
                    key = (r["step"], k)
                    assert key not in seen, f"{key} logged twice ({f})"
                    seen.add(key)


def test_resume_extends_from_the_last_epoch_not_the_best(machine_data, feature_cache, tmp_path):
    out = tmp_path / "run"
    assert main(_train_args(machine_data, out, ["train.max_epochs=2"])) == 0
    assert main(_train_args(machine_data, out, ["train.max_epochs=4"]) + ["--resume"]) == 0
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 3  # epochs 0-3: two more after the two of the first session
    # the cosine schedule spans the 4 epochs, and ends where a 4-epoch run's ends (it kept its 2 and climbed back)
    fresh = tmp_path / "fresh"
    assert main(_train_args(machine_data, fresh, ["train.max_epochs=4"])) == 0
    ref = torch.load(fresh / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["lr_schedulers"][0]["T_max"] == ref["lr_schedulers"][0]["T_max"] == 4
    lr, lr_ref = (c["optimizer_states"][0]["param_groups"][0]["lr"] for c in (ckpt, ref))
    assert lr == pytest.approx(lr_ref, rel=1e-6) and lr < 0.1 * _base_lr(ref)


def _base_lr(ckpt) -> float:
    return ckpt["lr_schedulers"][0]["base_lrs"][0]


def test_a_one_cycle_run_resumed_to_more_epochs_is_refused(machine_data, feature_cache, tmp_path, capsys):
    """Its schedule's steps are fixed when it starts: a longer resume stepped past them (a traceback, exit 1, and
    config.yaml left saying the new length)."""
    out = tmp_path / "run"
    assert main(_train_args(machine_data, out, ["train.max_epochs=1", "train.scheduler=onecycle"])) == 0
    before = _snapshot(out)
    assert main(_train_args(machine_data, out, ["train.max_epochs=2", "train.scheduler=onecycle"]) + ["--resume"]) == 2
    err = capsys.readouterr().err
    assert "train.max_epochs: run 1, now 2; a one-cycle schedule's steps are fixed" in err and "Traceback" not in err
    assert _snapshot(out) == before
    assert main(_train_args(machine_data, out, ["train.max_epochs=1", "train.scheduler=onecycle"]) + ["--resume"]) == 2
    assert "its one-cycle schedule ended with it: train longer in a new run" in capsys.readouterr().err  # (it advised
    # more epochs, which the next command refused)
    # in another number of processes its epochs hold other numbers of steps (a traceback, the run stranded)
    assert main(_train_args(machine_data, out, ["train.max_epochs=1", "train.scheduler=onecycle"])
                + ["--resume", "--devices", "2", "--strategy", "ddp"]) == 2
    assert "train.devices: run 1, now 2" in capsys.readouterr().err and _snapshot(out) == before
    # a spawned training's model never came back (exit 2 after all of training); GPU indices on the CPU, a traceback
    for flags, said in ((["--strategy", "ddp_spawn", "--devices", "2"], "--strategy ddp_spawn: strategy 'ddp_spawn' "
                                                                        "trains in processes"),
                        (["--accelerator", "cpu", "--devices", "0,1"], "the hardware settings (accelerator 'cpu', "
                                                                       "devices '0,1')")):
        assert main(_train_args(machine_data, tmp_path / "other", ["train.max_epochs=1"]) + flags) == 2
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err, err


def test_last_checkpoint_every_n_steps(machine_data, feature_cache, tmp_path):
    out = tmp_path / "run"
    assert main(_train_args(machine_data, out, ["train.max_epochs=1", "train.checkpoint_every_n_steps=1",
                                                "train.batch_size=4"])) == 0
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] >= 2 and (out / "checkpoints" / "best.ckpt").exists()


def test_a_resume_from_inside_an_epoch_is_said_in_one_line(machine_data, feature_cache, tmp_path, monkeypatch,
                                                          caplog, recwarn):
    """A run killed after a checkpoint taken inside an epoch (train.checkpoint_every_n_steps), then resumed: Lightning
    said so in a warning for developers, with the path of its source file in site-packages."""
    from latentbridge.training.callbacks import LastCheckpoint

    out, save = tmp_path / "run", LastCheckpoint.on_train_batch_end

    def stop_in_epoch_2(self, trainer, *a):
        save(self, trainer, *a)
        if trainer.current_epoch == 1 and trainer.global_step % self.every_n_steps == 0:
            raise KeyboardInterrupt

    monkeypatch.setattr(LastCheckpoint, "on_train_batch_end", stop_in_epoch_2)
    args = _train_args(machine_data, out, ["train.max_epochs=2", "train.checkpoint_every_n_steps=2",
                                           "train.batch_size=4"])
    assert main(args) == 130
    monkeypatch.undo()
    with caplog.at_level(logging.WARNING):
        assert main(args + ["--resume"]) == 0
    assert re.search(r"resumed from a checkpoint taken inside an epoch \(train\.checkpoint_every_n_steps, at step "
                     r"[1-9]\d* of the epoch's \d+\)", caplog.text), caplog.text
    assert not [w for w in recwarn if "resuming from a checkpoint" in str(w.message)]


def test_the_last_checkpoint_holds_the_best_score_of_its_own_epoch(machine_data, feature_cache, tmp_path):
    """last.ckpt was written before the best-checkpoint keeper saw the epoch: a run stopped during epoch 1 resumed
    with no best score, and epoch 1 replaced epoch 0's better best.ckpt (the resumed run ended other than the
    uninterrupted one)."""
    out = tmp_path / "run"
    assert main(_train_args(machine_data, out, ["train.max_epochs=1"])) == 0
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    (state,) = [v for k, v in ckpt["callbacks"].items() if k.startswith("RunCheckpoint")]
    best = json.loads((out / "config.json").read_text())["training"]["best_val_loss"]
    assert state["best_model_score"] is not None and float(state["best_model_score"]) == pytest.approx(best, rel=1e-6)


# ----------------------------------------------------------------------------- resume checks


@pytest.fixture
def short_run(machine_data, feature_cache, tmp_path):
    out = tmp_path / "run"
    assert main(_train_args(machine_data, out, ["train.max_epochs=1"])) == 0
    return out


@pytest.mark.parametrize("change, key", [
    (["model.latent_dim=8"], "model.latent_dim: run 4, now 8"),
    (["features.n_mels=32"], "features.n_mels: run 64, now 32"),
    (["audio.window_s=1.0"], "audio.window_s: run 2.0, now 1.0"),
    (["train.lr=0.1"], "train.lr: run 0.002, now 0.1"),  # the checkpoint's optimiser kept its own, config.json said 0.1
    (["train.seed=5"], "train.seed: run 0, now 5"),  # the splits drawn again: trained-on files held out
])
def test_resume_with_other_settings_changes_nothing(short_run, machine_data, capsys, change, key):
    before = _snapshot(short_run)
    stamps = {p: p.stat().st_mtime_ns for p in short_run.rglob("*")}  # (its list of files was written again)
    assert main(_train_args(machine_data, short_run, ["train.max_epochs=2", *change]) + ["--resume"]) == 2
    err = capsys.readouterr().err
    assert key in err and "-o " in err and "nothing in the run folder was changed" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert _snapshot(short_run) == before and {p: p.stat().st_mtime_ns for p in short_run.rglob("*")} == stamps


def test_a_run_saved_before_the_run_checkpoint_keeper_resumes_with_its_best_epoch(short_run, machine_data, recwarn):
    """A run saved before the best-checkpoint keeper had a class of its own (2026-12-05) holds its state under
    Lightning's class name: Lightning dropped it (the best epoch forgotten) with a warning of its own for developers."""
    last = short_run / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    [key] = [k for k in ckpt["callbacks"] if k.startswith("RunCheckpoint{")]
    best = ckpt["callbacks"][key]["best_model_score"]
    ckpt["callbacks"]["ModelCheckpoint" + key[len("RunCheckpoint"):]] = ckpt["callbacks"].pop(key)
    torch.save(ckpt, last)
    assert main(_train_args(machine_data, short_run, ["train.max_epochs=2"]) + ["--resume"]) == 0
    assert not [w for w in recwarn if "callbacks used to create the checkpoint" in str(w.message)]
    states = torch.load(last, map_location="cpu", weights_only=True)["callbacks"]
    assert [k for k in states if "Checkpoint{" in k] == [key]
    assert float(states[key]["best_model_score"]) <= float(best)  # epoch 1's kept (forgotten: inf, any epoch won)


def test_a_resume_with_another_batch_size_is_said(short_run, machine_data, caplog):
    """A resume at another train.batch_size trained on without a word, config.json recording the new one alone."""
    with caplog.at_level(logging.WARNING):
        assert main(_train_args(machine_data, short_run, ["train.max_epochs=2", "train.batch_size=4"])
                    + ["--resume"]) == 0
    assert re.search(r"resumed with other training settings \(train\.batch_size: run \d+, now 4\): the epochs it "
                     r"trains now use the new values", caplog.text), caplog.text


def test_resume_and_force_together_are_refused(short_run, machine_data, capsys):
    before = _snapshot(short_run)
    assert main(_train_args(machine_data, short_run, ["train.max_epochs=2"]) + ["--resume", "--force"]) == 2
    assert "--resume continues the training in it, --force replaces it: give one of the two" in capsys.readouterr().err
    assert _snapshot(short_run) == before


def test_a_damaged_best_checkpoint_does_not_stop_a_resumed_run(short_run, caplog):
    """best.ckpt truncated on disk: a resumed run trained its epochs, then failed when it read best.ckpt for the
    model (exit 2, nothing saved), and last.ckpt, at the new epoch, refused every further resume ('nothing left to
    train'). The model keeps the last weights, said."""
    from types import SimpleNamespace

    from latentbridge.training.fit import final_weights

    best = short_run / "checkpoints" / "best.ckpt"
    best.write_bytes(best.read_bytes()[:1000])
    model = torch.nn.Linear(2, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with caplog.at_level(logging.WARNING):
        note = final_weights(SimpleNamespace(callbacks=[]), model, "best", short_run)
    assert note == "the last epoch's: checkpoints/best.ckpt was unreadable"  # the training summary keeps it
    assert "best.ckpt: not a readable latentbridge training checkpoint" in caplog.text
    assert "the model keeps the last epoch's weights instead of the best epoch's" in caplog.text
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items()) and not model.training


def test_the_resume_refusal_s_suggestions_can_be_pasted_into_a_shell(short_run, machine_data, capsys):
    """``anomaly fit --resume`` without the run's config: the overrides that restore the run are quoted for a shell
    (``-o model.channels=[8, 16]`` was split into three words), and the run's own config.yaml is offered; both,
    pasted, resume the run."""
    import re
    import shlex

    data = str(machine_data / "train" / "normal")
    assert main(["anomaly", "fit", data, "--out", str(short_run), "-o", "train.max_epochs=2", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "-o 'model.channels=[8, 16]'" in err and "-o model.latent_dim=4" in err, err
    keep = re.search(r"Resume with the run's values \((.*?)\), or with its own config \((--config \S+),", err)
    assert keep and keep.group(2) == f"--config {shlex.quote(str(short_run / 'config.yaml'))}", err
    pasted = shlex.split(keep.group(1))
    assert "model.channels=[8, 16]" in pasted
    assert main(["anomaly", "fit", data, "--out", str(short_run), "-o", "train.max_epochs=2", *pasted,
                 "--resume"]) == 0
    assert main(["anomaly", "fit", data, "--out", str(short_run), *shlex.split(keep.group(2)),
                 "-o", "train.max_epochs=3", "--resume"]) == 0, capsys.readouterr().err


def test_resume_with_other_data_is_refused(short_run, machine_data, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(machine_data / "train" / "normal", other)
    before = _snapshot(short_run)
    args = _train_args(machine_data, short_run, ["train.max_epochs=2", f"data.train_dir={other}"]) + ["--resume"]
    assert main(args) == 2
    err = capsys.readouterr().err
    # the run's folders as anomaly fit takes them (-o data.train_dir beside its folder arguments is refused)
    assert f"Resume with the run's values (`anomaly fit {machine_data / 'train' / 'normal'} ...` or, with train, -o " \
           f"data.train_dir={machine_data / 'train' / 'normal'})" in err, err
    assert _snapshot(short_run) == before


def test_resume_reads_a_data_path_as_the_folder_it_names(tmp_path, monkeypatch):
    """The check compared paths as text: `fsdd`, `./fsdd/` and the absolute path of the same folder were
    "other data"; a relative path of the run that names nothing from here is said to be relative."""
    from latentbridge.training.fit import resume_differences

    (tmp_path / "fsdd").mkdir()
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path)
    run = {"data": {"train_dir": "fsdd"}, "model": {"name": "vae"}}
    for same in ("./fsdd/", str(tmp_path / "fsdd"), "fsdd"):
        assert resume_differences(run, {"data": {"train_dir": same}, "model": {"name": "vae"}}) == []
    assert resume_differences(run, {"data": {"train_dir": "other"}, "model": {"name": "vae"}}) == [
        ("data.train_dir", "fsdd", "other")]
    assert resume_differences(run, {"data": {"train_dir": "fsdd"}, "model": {"name": "ae"}}) == [
        ("model.name", "vae", "ae")]
    # from another folder than the run's: its relative data path is read from there, a cache folder is no data
    (tmp_path / "cache").mkdir()
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "fsdd").mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    run = {"data": {"train_dir": "fsdd", "cache_dir": "cache"}}
    assert resume_differences(run, {"data": {"train_dir": str(tmp_path / "fsdd"), "cache_dir": "cache"}},
                              str(tmp_path)) == []
    assert resume_differences(run, {"data": {"train_dir": "fsdd", "cache_dir": "cache"}}, str(tmp_path)) == [
        ("data.train_dir", "fsdd", "fsdd")]


def test_resume_from_another_folder_reads_the_run_s_relative_data_path_from_where_it_was_trained(
        machine_data, feature_cache, tmp_path, monkeypatch, capsys):
    """A run trained with a relative data path could not be resumed from another folder, even given the same
    data's absolute path: its checkpoint now records the folder it was trained in."""
    project = tmp_path / "project"
    shutil.copytree(machine_data / "train" / "normal", project / "normal")
    monkeypatch.chdir(project)
    base = ["train", "--config", str(REPO / "configs" / "anomaly_ae.yaml"), "--out", str(tmp_path / "run"), *_o()]
    assert main([*base, "-o", "data.train_dir=normal", "-o", "train.max_epochs=1"]) == 0
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["trained_in"] == str(project)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    shutil.copytree(machine_data / "train" / "normal", elsewhere / "normal")  # same name, same files: other data
    capsys.readouterr()
    assert main([*base, "-o", "data.train_dir=normal", "-o", "train.max_epochs=2", "--resume"]) == 2
    err = capsys.readouterr().err
    assert (f"data.train_dir: run 'normal' (relative to the folder the run was trained in, {project}), now 'normal'"
            in err), err
    # the advice reads it as the run did (it repeated 'normal', the value refused, and the run's own config.yaml,
    # which holds it too)
    assert f"`anomaly fit {project / 'normal'} ...` or, with train, -o data.train_dir={project / 'normal'}" in err, err
    assert "--config" not in err
    # another setting of text from another folder is not called a relative path
    assert main([*base, "-o", f"data.train_dir={project / 'normal'}", "-o", "audio.pad=reflect", "-o",
                 "train.max_epochs=2", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "audio.pad: run " in err and "now 'reflect'" in err and "relative" not in err, err
    assert main([*base, "-o", f"data.train_dir={project / 'normal'}", "-o", "train.max_epochs=2", "--resume"]) == 0
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["trained_in"] == str(elsewhere)
    # a project moved whole, the folder it was trained in gone: the same data's path as it is now resumes (the
    # refusal read the old relative path in a folder that is no more, and offered only commands that failed); the
    # files' record still tells other data
    run2 = tmp_path / "run2"
    monkeypatch.chdir(project)
    base2 = ["train", "--config", str(REPO / "configs" / "anomaly_ae.yaml"), "--out", str(run2), *_o()]
    assert main([*base2, "-o", "data.train_dir=normal", "-o", "train.max_epochs=1"]) == 0
    monkeypatch.chdir(tmp_path)
    project.rename(tmp_path / "moved")
    assert main([*base2, "-o", f"data.train_dir={tmp_path / 'moved' / 'normal'}", "-o", "train.max_epochs=2",
                 "--resume"]) == 0
    next((tmp_path / "moved" / "normal").glob("*.wav")).unlink()
    assert main([*base2, "-o", f"data.train_dir={tmp_path / 'moved' / 'normal'}", "-o", "train.max_epochs=3",
                 "--resume"]) == 2
    assert "cannot resume: the training data changed since the run started (1 gone" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["truncated", "not_a_checkpoint", "pickled_object"])
def test_corrupt_or_foreign_checkpoint_is_named(short_run, machine_data, capsys, damage):
    last = short_run / "checkpoints" / "last.ckpt"
    if damage == "truncated":
        last.write_bytes(last.read_bytes()[:200])
    elif damage == "not_a_checkpoint":
        last.write_text("hello")
    else:
        import pickle

        last.write_bytes(pickle.dumps({"state_dict": {"x": __import__("collections").OrderedDict()},
                                       "payload": Path("/etc")}))
    before = _snapshot(short_run)
    assert main(_train_args(machine_data, short_run, ["train.max_epochs=2"]) + ["--resume"]) == 2
    err = capsys.readouterr().err
    assert str(last) in err and "weights_only" not in err and "Traceback" not in err
    assert _snapshot(short_run) == before


def test_a_checkpoint_of_another_run_is_named(short_run, machine_data, tmp_path, capsys):
    """Another run's last.ckpt copied into this one: the refusal offered this run's own --config, which was refused
    the same way. The checkpoint is named as not this run's, with the settings that tell."""
    other = tmp_path / "other"
    assert main(_train_args(machine_data, other, ["train.max_epochs=1", "model.latent_dim=8"])) == 0
    last = short_run / "checkpoints" / "last.ckpt"
    shutil.copy(other / "checkpoints" / "last.ckpt", last)
    before = _snapshot(short_run)
    assert main(_train_args(machine_data, short_run, ["train.max_epochs=3"]) + ["--resume"]) == 2
    err = capsys.readouterr().err
    assert f"{last}: was not written by this run's training: it records other settings than the run's config.yaml " \
           "(model.latent_dim: checkpoint 8, config.yaml 4)" in err, err
    assert _snapshot(short_run) == before


# ----------------------------------------------------------------------------- one owner per output folder


def test_a_held_lock_refuses_a_second_writer_and_force(fitted_model, machine_data, tmp_path, capsys):
    from latentbridge.outputs import FolderLock

    out = tmp_path / "report"
    out.mkdir()
    (out / "metrics.json").write_text("x")  # an earlier output
    wav = str(sorted((machine_data / "test" / "normal").glob("*.wav"))[0])
    with FolderLock(out):
        assert main(["anomaly", "score", str(fitted_model), wav, "--out", str(out), "--force"]) == 2
        err = capsys.readouterr().err
        assert f"PID {os.getpid()}" in err and "another latentbridge process" in err
        assert main(_train_args(machine_data, out, ["train.max_epochs=1"]) + ["--force"]) == 2
        assert (out / "metrics.json").read_text() == "x"  # --force never deletes a locked folder
    assert main(["anomaly", "score", str(fitted_model), wav, "--out", str(out), "--force"]) == 0
    assert not (out / "metrics.json").exists() and (out / "scores.csv").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no lock or temporary left


def test_score_replaces_a_used_folder_whole(fitted_model, machine_data, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["anomaly", "score", str(fitted_model), str(machine_data / "test"), "--labels", "auto",
                 "--out", str(out)]) == 0
    assert (out / "metrics.json").exists()
    wav = str(sorted((machine_data / "test" / "normal").glob("*.wav"))[0])
    assert main(["anomaly", "score", str(fitted_model), wav, "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["anomaly", "score", str(fitted_model), wav, "--out", str(out), "--force"]) == 0
    # the old run's metrics, ROC and labelled histograms are gone: the folder holds one run's files
    assert sorted(p.name for p in out.iterdir()) == [".latentbridge-written", "examples.png", "histogram.png",
                                                     "histogram_windows.png", "report.html", "scores.csv",
                                                     "summary.json"]
    # the temporary sibling of a killed run (kill -9 leaves it) goes with the next run into the folder
    stale = tmp_path / ".report.tmp-999999"
    stale.mkdir()
    (stale / "scores.csv").write_text("half")
    assert main(["anomaly", "score", str(fitted_model), wav, "--out", str(out), "--force"]) == 0
    assert not stale.exists() and sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".report")) == []


def test_a_run_config_s_words_are_no_inputs(fitted_model, tmp_path, monkeypatch):
    """A model folder's data paths are inputs, not every word of its config that names a folder here ('anomaly',
    'best'): `evaluate RUN --out anomaly --force` over an earlier output was refused as replacing an input."""
    from argparse import Namespace

    from latentbridge.errors import LatentbridgeError
    from latentbridge.outputs import check_target, protect_arguments

    monkeypatch.chdir(tmp_path)
    (tmp_path / "anomaly").mkdir()
    (tmp_path / "anomaly" / "metrics.json").write_text("{}")  # an earlier output of latentbridge
    protect_arguments(Namespace(run_dir=str(fitted_model), out="anomaly"))
    check_target(Path("anomaly"), force=True)  # replaced: no input
    # nor the command line's words: the subcommand, --labels auto, an -o value of no path key
    for word in ("score", "auto", "cosine"):
        (tmp_path / word).mkdir()
        (tmp_path / word / "metrics.json").write_text("{}")
        protect_arguments(Namespace(command="anomaly", anomaly_cmd="score", model_dir=str(fitted_model), labels="auto",
                                    paths=[str(fitted_model)], out=word, override=["train.scheduler=cosine"]))
        check_target(Path(word), force=True)
    protect_arguments(Namespace(command="train", out="x", override=[f"data.root={tmp_path / 'score'}"]))
    with pytest.raises(LatentbridgeError, match="an input of this command"):  # a path key's value still is one
        check_target(Path("score"), force=True)


def test_force_never_replaces_what_the_command_reads(fitted_model, machine_data, tmp_path, capsys):
    """--force replaced the folder it was told to write even when that folder was the command's input or held it:
    ``evaluate RUN --out RUN --force`` deleted the model, a fit into its data folder the recordings. Refused,
    nothing changed; a used folder that is no input is still replaced."""
    run = tmp_path / "run"
    shutil.copytree(fitted_model, run)
    before = _snapshot(run)
    data = tmp_path / "data"
    shutil.copytree(machine_data / "test" / "normal", data / "normal")
    recordings = sorted(p.name for p in (data / "normal").iterdir())
    for args, held in ((["anomaly", "score", str(run), str(data), "--out", str(run), "--force"], f"{run}: "),
                       (["anomaly", "score", str(run), str(data / "normal"), "--out", str(data), "--force"],
                        f"holds {(data / 'normal').resolve()}, which is"),
                       (["anomaly", "fit", str(data / "normal"), "--out", str(data), "--force", *_o()],
                        f"holds {(data / 'normal').resolve()}, which is"),
                       (["evaluate", str(run), "--out", str(tmp_path), "--force"], f"holds {run.resolve()}")):
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert held in err and "an input of this command; write to another output folder" in err, err
        assert _snapshot(run) == before and sorted(p.name for p in (data / "normal").iterdir()) == recordings
    # the data a model folder's run was trained on, named by no argument (`evaluate RUN --out DATA --force`
    # deleted a bridge run's training data)
    assert main(["anomaly", "fit", str(data / "normal"), "--out", str(tmp_path / "own"), *_o()]) == 0
    (data / ".latentbridge-written").write_text("normal/\n")  # (as a `data synth` folder: --force may replace it)
    assert main(["anomaly", "score", str(tmp_path / "own"), str(machine_data / "test" / "anomalous"), "--out",
                 str(data), "--force"]) == 2
    err = capsys.readouterr().err
    # (named as what it is: it was "an input of this command", which named no such folder)
    assert f"holds {(data / 'normal').resolve()}, which is the data of the model {tmp_path / 'own'}, which this " \
           "command reads" in err, err
    assert sorted(p.name for p in (data / "normal").iterdir()) == recordings
    # without --force: said so at once (it advised --force, which was then refused)
    assert main(["anomaly", "score", str(run), str(data / "normal"), "--out", str(data)]) == 2
    err = capsys.readouterr().err
    assert "an input of this command" in err and "--force" not in err, err
    # a training's config file names its data (no path on the command line)
    out = tmp_path / "elsewhere"
    out.mkdir()
    (out / "metrics.json").write_text("{}")  # an earlier output beside the recordings
    shutil.copytree(data / "normal", out / "normal")
    config = tmp_path / "knn.yaml"
    config.write_text((REPO / "configs" / "anomaly_knn_stats.yaml").read_text()
                      + f"\ndata:\n  train_dir: {out / 'normal'}\n")
    assert main(["train", "--config", str(config), "--out", str(out), "--force"]) == 2
    err = capsys.readouterr().err
    assert "an input of this command" in err and len(list((out / "normal").iterdir())) == len(recordings), err
    used = tmp_path / "used"
    used.mkdir()
    (used / "thesis.docx").write_text("precious")
    (used / "sub").mkdir()
    # a folder of a user's files, no output of latentbridge in it: --force deleted them all, without a word
    assert main(["anomaly", "score", str(run), str(data / "normal"), "--out", str(used), "--force"]) == 2
    err = capsys.readouterr().err
    assert f"{used}: --force replaces an earlier output of latentbridge, and this folder holds none (sub/, " \
           "thesis.docx): refused, so as not to delete" in err and (used / "thesis.docx").read_text() == "precious", err
    (used / "scores.csv").write_text("path,start_s,end_s,score,is_anomaly,level\n")  # an earlier score's
    assert main(["anomaly", "score", str(run), str(data / "normal"), "--out", str(used), "--force"]) == 0
    assert not (used / "thesis.docx").exists() and len((used / "scores.csv").read_text().splitlines()) > 1


def test_force_keeps_files_a_user_put_in_an_earlier_output(fitted_model, machine_data, tmp_path, capsys):
    """--force replaced an earlier output as a whole, with the notes, notebook or plots a user had put in it since.
    Every finished output lists what latentbridge wrote there (files written in place later, such as calibrate's,
    join the list); --force is refused while the folder holds anything else, naming it; the litter of file managers
    and notebooks is no one's."""
    from latentbridge.outputs import output_folder
    from latentbridge.written import WRITTEN, added_files

    run = tmp_path / "run"
    shutil.copytree(fitted_model, run)
    normal = machine_data / "test" / "normal"
    scores = tmp_path / "scores"
    assert main(["anomaly", "score", str(run), str(normal), "--out", str(scores)]) == 0
    assert (scores / WRITTEN).is_file() and added_files(scores) == []
    (scores / "notes.txt").write_text("the second sensor was loose")
    (scores / "mine").mkdir()
    (scores / "mine" / "zoom.png").write_bytes(b"png")
    (scores / ".DS_Store").write_bytes(b"")
    (scores / ".ipynb_checkpoints").mkdir()
    (scores / ".ipynb_checkpoints" / "a-checkpoint.ipynb").write_text("{}")
    before = _snapshot(scores)
    capsys.readouterr()
    assert main(["anomaly", "score", str(run), str(normal), "--out", str(scores), "--force"]) == 2
    err = capsys.readouterr().err
    assert f"{scores}: --force replaces it as a whole, and it holds 2 file(s) latentbridge did not write there " \
           "(mine/zoom.png, notes.txt): move them out of it" in err and "Traceback" not in err, err
    assert _snapshot(scores) == before
    shutil.rmtree(scores / "mine")
    (scores / "notes.txt").unlink()
    assert main(["anomaly", "score", str(run), str(normal), "--out", str(scores), "--force"]) == 0
    assert not (scores / ".DS_Store").exists() and added_files(scores) == []
    # written in place into a finished run: latentbridge's
    assert added_files(run) == []
    assert main(["anomaly", "calibrate", str(run), str(normal)]) == 0
    assert added_files(run) == []
    (run / "my_plot.png").write_bytes(b"png")
    capsys.readouterr()
    assert main(["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", str(run), "--force", *_o()]) == 2
    assert "latentbridge did not write there (my_plot.png)" in capsys.readouterr().err
    assert (run / "my_plot.png").is_file() and (run / "model.safetensors").is_file()
    # a resumed training writes in place, and its folders are its own should it be killed before it lists them
    with output_folder(run, resume=True) as folder:
        (folder / "checkpoints").mkdir(exist_ok=True)
        (folder / "checkpoints" / "last.ckpt").write_bytes(b"ckpt")
        (folder / "logs" / "csv" / "version_1").mkdir(parents=True, exist_ok=True)
        (folder / "logs" / "csv" / "version_1" / "metrics.csv").write_text("epoch\n")
        assert added_files(run) == ["my_plot.png"]  # killed here, the user's file is still named
    assert added_files(run) == ["my_plot.png"]  # still the user's
    # a name that is not UTF-8 (bytes read as surrogates) comes back from the list as written
    name = "caf\udce9.txt"
    with output_folder(tmp_path / "odd") as tmp:
        (tmp / name).write_bytes(b"x")
    assert added_files(tmp_path / "odd") == []
    (run / "my_plot.png").unlink()
    # an output written inside another: its files are latentbridge's in both
    with output_folder(run / "eval") as tmp:
        (tmp / "metrics.json").write_text("{}")
    assert added_files(run) == [] and added_files(run / "eval") == []


def test_the_working_folder_is_no_output_folder(fitted_model, machine_data, tmp_path, monkeypatch, capsys):
    """`--out .` (or `..`, or "") was replaced as a whole after all the work: "Device or resource busy", or a
    traceback from the edge sampler; it is refused before the work, nothing written."""
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    wav = sorted((machine_data / "test" / "normal").glob("*.wav"))[0]
    for out, what in ((".", "the folder this command runs in"), ("", "the folder this command runs in"),
                      ("..", "a folder above the one this command runs in")):
        assert main(["anomaly", "score", str(fitted_model), str(wav), "--out", out]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and what in err and "give a folder of its own" in err, err
    assert not list(here.iterdir())


def test_a_forced_fit_stopped_by_the_user_keeps_its_checkpoints_beside(fitted_model, machine_data, tmp_path,
                                                                       monkeypatch, caplog):
    """Ctrl-C during a --force training put the old model back and deleted the new run's checkpoints (kill -9 left
    them): the old model comes back and the stopped run is kept beside it, to resume."""
    import latentbridge.tasks.anomaly as anomaly_task

    out = tmp_path / "model"
    shutil.copytree(fitted_model, out)
    before = _snapshot(out)
    args = ["anomaly", "fit", str(machine_data / "train" / "normal"), "--force", *_o()]

    def stopped(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(anomaly_task, "_calibration", stopped)
    with caplog.at_level(logging.WARNING, logger="latentbridge"):
        assert main([*args, "--out", str(out)]) == 130
    assert _snapshot(out) == before
    kept = tmp_path / "model.stopped"
    assert (kept / "checkpoints" / "last.ckpt").is_file()
    assert f"the stopped run is kept in {kept} (--out {kept} --resume continues it" in caplog.text
    monkeypatch.undo()
    assert main(["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", str(kept), "--resume",
                 *_o(), "-o", "train.max_epochs=4"]) == 0  # (stopped as it calibrated: its epochs were done)
    assert (kept / "model.safetensors").is_file()


def test_a_failed_forced_fit_puts_the_old_model_back(fitted_model, machine_data, tmp_path, monkeypatch):
    """Training writes in place (its checkpoints must be where --resume finds them), so --force moves the
    old run aside until the new one is saved: a fit that fails leaves the old model as it was."""
    import latentbridge.tasks.anomaly as anomaly_task

    out = tmp_path / "model"
    shutil.copytree(fitted_model, out)
    before = _snapshot(out)
    args = ["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", str(out), "--force", *_o()]

    def fails(*a, **k):
        raise RuntimeError("calibration failed")

    monkeypatch.setattr(anomaly_task, "_calibration", fails)
    with pytest.raises(RuntimeError, match="calibration failed"):
        main(args)
    assert _snapshot(out) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no moved-aside run or lock left
    monkeypatch.undo()
    assert main(args) == 0
    assert _snapshot(out) != before and (out / "model.safetensors").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    # a new run that fails with no checkpoint written (here the default detector, which trains in closed form) is
    # not left behind (its config and logs refused the rerun as a used folder, with nothing for --resume); an empty
    # folder made for it stays empty; a failed training that has a checkpoint keeps it for --resume
    for fresh, made in ((tmp_path / "new", False), (tmp_path / "made", True)):
        if made:
            fresh.mkdir()
        monkeypatch.setattr(anomaly_task, "_calibration", fails)
        with pytest.raises(RuntimeError, match="calibration failed"):
            main(["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", str(fresh)])
        assert (fresh.is_dir() and not any(fresh.iterdir())) if made else not fresh.exists()
        monkeypatch.undo()
        assert main(["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", str(fresh)]) == 0
    trained = tmp_path / "trained"
    monkeypatch.setattr(anomaly_task, "_calibration", fails)
    with pytest.raises(RuntimeError, match="calibration failed"):
        main(["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", str(trained), *_o()])
    assert (trained / "checkpoints" / "last.ckpt").is_file()


def test_one_training_window_is_refused_and_few_calibration_windows_warned(machine_data, tmp_path, capsys):
    wavs = sorted((machine_data / "train" / "normal").glob("*.wav"))
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(wavs[0], one)
    out = tmp_path / "m"
    assert main(["anomaly", "fit", str(one), "--out", str(out), "-o", "audio.window_s=4", "-o", "audio.hop_s=4"]) == 2
    err = capsys.readouterr().err
    assert f"{one}: 1 training window(s) from 1 file(s)" in err and "Traceback" not in err
    assert not out.exists()
    few = tmp_path / "few"
    few.mkdir()
    for w in wavs[:6]:
        shutil.copy(w, few)
    assert main(["anomaly", "fit", str(few), "--out", str(out), "-o", "audio.window_s=4", "-o", "audio.hop_s=4"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["anomaly"]["n"] == 1 and "rests on 1 normal window" in cfg["anomaly"]["warning"]
    assert "**Warning**: the threshold rests on 1" in (out / "README.md").read_text()
    assert main(["anomaly", "calibrate", str(out), "--threshold", "3.5"]) == 0  # the warning went with it
    assert "warning" not in json.loads((out / "config.json").read_text())["anomaly"]
    assert "**Warning**" not in (out / "README.md").read_text()


def test_drop_last_is_decided_on_each_process_s_share():
    """39 windows in 2 DDP processes with batches of 32: 20 a process, less than a batch, so the short batch is kept
    (it was dropped, from the whole set's 39 > 32: every batch, and nothing trained)."""
    from types import SimpleNamespace

    from latentbridge.training.fit import drops_last, make_loader, world_size

    def t(devices, batch_size=32, accelerator="cpu"):
        return SimpleNamespace(devices=devices, batch_size=batch_size, accelerator=accelerator, num_workers=0)

    assert [world_size(t(d)) for d in (1, 2, "2", "0,1", "[0, 1, 2]", "auto")] == [1, 2, 2, 2, 3, 1]
    assert drops_last(39, t(1)) and not drops_last(39, t(2)) and not drops_last(39, t("2"))
    assert drops_last(65, t(2)) and not drops_last(64, t(2)) and not drops_last(32, t(1))
    data = torch.utils.data.TensorDataset(torch.zeros(39, 1))
    assert not make_loader(data, t(2), shuffle=True).drop_last and make_loader(data, t(1), shuffle=True).drop_last


def test_a_training_of_no_step_is_refused_and_leaves_no_folder(machine_data, feature_cache, tmp_path, monkeypatch,
                                                              capsys):
    """A training whose every batch is dropped (more processes than the loader was sized for) made no optimizer step:
    exit 2 naming the batch size, and no model folder (an untrained model was saved with a threshold, exit 0)."""
    import latentbridge.training.fit as fit

    monkeypatch.setattr(fit, "drops_last", lambda n, t: True)  # 15 windows, batches of 16: every batch dropped
    out = tmp_path / "m"
    assert main(["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", str(out), *_o()]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"error: {out}: training made no optimizer step") and "train.batch_size = 16" in err
    assert "15 training examples in 1 process(es)" in err and "fewer --devices" in err
    assert not out.exists()


def test_two_score_processes_into_one_folder(fitted_model, machine_data, tmp_path):
    out = tmp_path / "report"
    cmds = [[sys.executable, "-m", "latentbridge", "anomaly", "score", str(fitted_model), str(path), "--out",
             str(out), "--force"] for path in (machine_data / "test" / "normal", machine_data / "test" / "anomalous")]
    procs = [subprocess.Popen(c, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in cmds]
    results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    codes = [r[2] for r in results]
    assert set(codes) <= {0, 2} and 0 in codes
    for _, err, code in results:
        if code == 2:
            assert "another latentbridge process" in err and "PID" in err
        assert "Traceback" not in err
    # whatever the interleaving, the folder holds exactly one run's files
    files = {r["path"] for r in _rows(out / "scores.csv")}
    summary = json.loads((out / "summary.json").read_text())
    assert len(files) == summary["n_files"]
    assert {Path(f).parent.name for f in files} in ({"normal"}, {"anomalous"})


# ----------------------------------------------------------------------------- command-line paths are text

NAMES = ["2024", "yes", "null", "~", "[x]", "a: b", "with space", "Größe"]


@pytest.mark.parametrize("name", NAMES)
def test_paths_with_yaml_looking_names(name, machine_data, feature_cache, tmp_path, capsys):
    base = tmp_path / name
    data = base / name
    shutil.copytree(machine_data / "train" / "normal", data)
    os.chdir(base)  # a relative path is the bare name, as a user types it
    try:
        assert main(["anomaly", "fit", name, "--out", f"{name}_model", *_o(["train.max_epochs=1"])]) == 0
        model = base / f"{name}_model"
        assert json.loads((model / "config.json").read_text())["config"]["data"]["train_dir"] == name
        assert main(["anomaly", "score", f"{name}_model", name, "--out", f"{name}_scores"]) == 0
        assert main(["anomaly", "calibrate", f"{name}_model", name]) == 0
        assert main(["export", f"{name}_model", "--out", f"{name}.onnx"]) == 0
        here = f"./{name}" if name == "~" else name  # (-o expands a leading ~, as no shell does there)
        folders = f"['{name}']" if name.startswith("[") else here  # (data.train_dir takes [a, b], a list, too)
        assert main(["train", "--config", str(REPO / "configs" / "anomaly_ae.yaml"), "--out", f"{name}_run",
                     "-o", f"data.train_dir={folders}", "-o", f"data.test_dir={here}",
                     *_o(["train.max_epochs=1"])]) == 0
        assert main(["evaluate", f"{name}_run", "--out", f"{name}_eval", "--data", name]) in (0, 2)
        assert main(["data", "synth", "machine", "--out", f"{name}_synth", "--duration", "1", "--n-train", "1",
                     "--n-test-normal", "1", "--n-test-anomalous", "1"]) == 0
        assert (base / f"{name}_synth" / "manifest.json").exists() and (base / f"{name}.onnx").exists()
    finally:
        os.chdir(REPO)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "valid string" not in err


# ----------------------------------------------------------------------------- model folders whole or refused


def test_threshold_changes_through_calibrate_only(fitted_model, machine_data, tmp_path, capsys):
    model = tmp_path / "m"
    shutil.copytree(fitted_model, model)
    info = json.loads((model / "config.json").read_text())
    info["anomaly"]["threshold"] = 1e9
    (model / "config.json").write_text(json.dumps(info, indent=2))
    wav = str(sorted((machine_data / "test" / "anomalous").glob("*.wav"))[0])
    assert main(["anomaly", "score", str(model), wav, "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "config.json" in err and "latentbridge anomaly calibrate" in err
    assert main(["export", str(model), "--out", str(tmp_path / "m.onnx")]) == 2
    assert not (tmp_path / "m.onnx").exists()

    shutil.rmtree(model)
    shutil.copytree(fitted_model, model)
    assert main(["anomaly", "calibrate", str(model), "--threshold", "0.125"]) == 0
    assert main(["export", str(model), "--out", str(tmp_path / "m.onnx")]) == 0
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert json.loads(meta["latentbridge"])["threshold"] == 0.125
    card = (model / "README.md").read_text()
    assert "Threshold: 0.125 (set by hand with `latentbridge anomaly calibrate --threshold`)" in card, card
    assert "calibrated on set by hand" not in card
    manual = json.loads((model / "config.json").read_text())["anomaly"]
    assert not {"n", "mean", "std", "k"} & set(manual)  # the data calibration's figures went with it
    # calibration.json follows every calibrate (it kept the fit's threshold)
    record = json.loads((model / "calibration.json").read_text())
    assert record["threshold"] == 0.125 and record["scores"] is None
    assert main(["anomaly", "calibrate", str(model), str(machine_data / "test" / "normal"),
                 "--method", "quantile", "--false-alarm-rate", "0.1"]) == 0
    new = json.loads((model / "config.json").read_text())["anomaly"]
    assert new["method"] == "quantile" and new["threshold"] != 0.125 and "3 files" in new["calibrated_on"]
    record = json.loads((model / "calibration.json").read_text())
    assert record["threshold"] == new["threshold"] and len(record["scores"]) == new["n_calibration_windows"]
    # a rate of 0.001 from a few windows: about their highest score, the rate unmeasured (it was kept without a word)
    assert main(["anomaly", "calibrate", str(model), str(machine_data / "train" / "normal"),
                 "--method", "quantile", "--false-alarm-rate", "0.001"]) == 0
    new = json.loads((model / "config.json").read_text())["anomaly"]
    assert f"a false-alarm rate of 0.001 rests on {new['n_calibration_windows']} normal windows" in new["warning"]
    assert main(["anomaly", "calibrate", str(model)]) == 2  # neither recordings nor --threshold
    before = (model / "config.json").read_bytes()
    capsys.readouterr()
    for bad, message in ((["--k", "nan"], "--k must be a finite number"), (["--k", "inf"], "--k must be a finite"),
                         (["--k", "-3"], "got -3"), (["--method", "quantile", "--false-alarm-rate", "0"],
                                                     "--false-alarm-rate must lie between 0 and 1"),
                         (["--false-alarm-rate", "1.5"], "got 1.5")):
        # a NaN or infinite k once wrote a NaN / Infinity threshold (and exit 0); a rate of 0 a traceback
        assert main(["anomaly", "calibrate", str(model), str(machine_data / "test" / "normal"), *bad]) == 2, bad
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    # recordings that all leave the model's band empty (another sensor, another rate) are no calibration: refused
    import soundfile as sf

    low = tmp_path / "low"
    low.mkdir()
    for i in range(3):
        sf.write(low / f"l{i}.wav", 0.1 * np.random.default_rng(i).standard_normal(8000 * 4), 2000)
    capsys.readouterr()
    assert main(["anomaly", "calibrate", str(model), str(low)]) == 2
    assert "every recording is below the model's band" in capsys.readouterr().err
    # a distance is never negative: a negative threshold would flag every window
    assert main(["anomaly", "calibrate", str(model), "--threshold", "-5"]) == 2
    assert "--threshold -5: the score 'mse' is never negative, so every window" in capsys.readouterr().err
    assert (model / "config.json").read_bytes() == before


def test_a_file_named_twice_is_scored_once(fitted_model, machine_data, tmp_path, caplog):
    # a folder and a file in it (or one path twice) once counted that file twice in the metrics
    test = machine_data / "test"
    one = str(sorted((test / "anomalous").glob("*.wav"))[0])
    with caplog.at_level(logging.WARNING):
        assert main(["anomaly", "score", str(fitted_model), str(test), one, str(test / "anomalous"), "--labels", "auto",
                     "--out", str(tmp_path / "s")]) == 0
    m = json.loads((tmp_path / "s" / "metrics.json").read_text())
    n = len(list(test.rglob("*.wav")))
    assert m["n_normal"] + m["n_anomalous"] == n and m["n_anomalous"] == len(list((test / "anomalous").glob("*.wav")))
    assert f"5 files reached more than once (a link to a file read already, a file in a folder given beside it, a " \
           f"path given twice) taken once: {one}, {one}, " in caplog.text, caplog.text


def test_an_empty_feature_cache_entry_is_recomputed(fitted_model, machine_data, tmp_path, monkeypatch, caplog):
    """An empty .npy in the feature cache (a power loss after the rename) failed every later run with EOFError (in a
    DataLoader worker too); a read-only cache warned once per recording, naming a temporary file."""
    monkeypatch.setenv("LATENTBRIDGE_CACHE", str(tmp_path / "cache"))
    normal = machine_data / "test" / "normal"
    assert main(["anomaly", "score", str(fitted_model), str(normal), "--out", str(tmp_path / "a")]) == 0
    entries = list((tmp_path / "cache").rglob("*.npy"))
    assert entries
    for f in entries:
        f.write_bytes(b"")
    assert main(["anomaly", "score", str(fitted_model), str(normal), "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "a" / "scores.csv").read_text() == (tmp_path / "b" / "scores.csv").read_text()
    # an entry's .npy holding another entry's windows (a copy, a crash): recomputed too (a traceback in score, a
    # model fitted on other windows in fit)
    with open(entries[0], "wb") as f:
        np.save(f, np.load(entries[1])[:-1])  # (the recordings here are alike: one window fewer stands for another's)
    assert main(["anomaly", "score", str(fitted_model), str(normal), "--out", str(tmp_path / "b2")]) == 0
    assert (tmp_path / "a" / "scores.csv").read_text() == (tmp_path / "b2" / "scores.csv").read_text()
    for f in entries:
        f.unlink()
    import latentbridge.data.audio as audio_mod

    def read_only(path):
        raise PermissionError(13, "Permission denied", str(path) + ".x1y2.partial")

    monkeypatch.setattr(audio_mod, "atomic_path", read_only)  # a cache folder the user cannot write
    with caplog.at_level(logging.WARNING):
        assert main(["anomaly", "score", str(fitted_model), str(normal), "--out", str(tmp_path / "c"),
                     "--workers", "0"]) == 0  # (a worker process says it once of its own)
    assert caplog.text.count("not written") == 1 and ".partial" not in caplog.text, caplog.text
    assert "the features are computed again at every run" in caplog.text


def test_an_unwritable_cache_is_said_once_with_worker_processes(machine_data, tmp_path):
    """Features read in DataLoader worker processes: the cache that takes no entries is said once, before they start
    (each worker said it again, a warning per worker)."""
    (tmp_path / "a_file").write_text("")
    code = ("import logging, sys; from pathlib import Path; from latentbridge.data.audio import FeatureExtractor; "
            "from latentbridge.config import load_config, transform_spec; logging.basicConfig(level=logging.WARNING); "
            "spec = transform_spec(load_config(None, ['audio.auto=false'], sets={'task': 'anomaly'})); "
            "ex = FeatureExtractor.from_spec(spec, num_workers=2, parallel='processes', cache_dir=sys.argv[1]); "
            "wf = ex.extract([Path(sys.argv[2])]); print(len(wf.features), ex.cache_writes)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "a_file" / "cache"),
                             str(machine_data / "train")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": SRC})
    # (meanwhile) and `anomaly score`, whose own loader's workers read the files (said once a worker: 3 times for 12
    # files)
    fit = tmp_path / "m"
    assert main(["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", str(fit)]) == 0
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert err.count(f"not written ({tmp_path / 'a_file'} is a file, not a folder)") == 1, err
    assert int(out.split()[0]) > 0 and out.split()[1] == "False"
    res = subprocess.run([sys.executable, "-m", "latentbridge", "anomaly", "score", str(fit),
                          str(machine_data / "test"), "--out", str(tmp_path / "s"), "--workers", "2"],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": SRC, "LATENTBRIDGE_CACHE": str(tmp_path / "a_file" / "c")})
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stderr.count(f"not written ({tmp_path / 'a_file'} is a file, not a folder)") == 1, res.stderr


def test_two_exports_to_one_file(fitted_model, tmp_path, capsys):
    """Two exports to one new .onnx file at once both said 'wrote', the file holding one of the two models: the file
    is locked while it is written."""
    from latentbridge.outputs import FolderLock

    out = tmp_path / "m.onnx"
    with FolderLock(out):  # another export writing it
        assert main(["export", str(fitted_model), "--out", str(out)]) == 2
    assert "m.onnx: another latentbridge process is writing it" in capsys.readouterr().err and not out.exists()
    assert main(["export", str(fitted_model), "--out", str(out)]) == 0 and out.is_file()
    assert not list(tmp_path.glob(".m.onnx.lock"))


def test_non_finite_scores_are_no_decision(fitted_model, machine_data, tmp_path, monkeypatch, capsys):
    """A window scored NaN was compared with the threshold and the file counted as normal (n_files_flagged 0,
    'highest nan'): the file is named, exit 2 (--skip-bad: left out, named)."""
    import latentbridge.tasks.anomaly as anomaly_mod

    one = sorted((machine_data / "test" / "normal").glob("*.wav"))[0]
    real = anomaly_mod.score_features

    def nan_for_one(model, features, *a, seed=0, **k):  # (the one file's windows)
        return real(model, features, *a, seed=seed, **k) * np.nan

    monkeypatch.setattr(anomaly_mod, "score_features", nan_for_one)
    assert main(["anomaly", "score", str(fitted_model), str(one), "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert f"{one.name}: the model gave non-finite scores for" in err and "; no decision" in err, err
    assert not (tmp_path / "s").exists()


def test_labels_are_checked_before_any_file_is_scored(fitted_model, machine_data, tmp_path, monkeypatch):
    import latentbridge.tasks.scoring as scoring
    from latentbridge.errors import DataError
    from latentbridge.tasks.anomaly import score

    def no_scoring(*a, **k):
        raise AssertionError("scored before the labels were checked")

    monkeypatch.setattr(scoring, "score_files", no_scoring)
    test = machine_data / "test"
    with pytest.raises(DataError, match=r"all 3 recordings are labelled normal; AUC needs anomalous ones too "
                                        r"\(under a folder named 'anomalous', with the word 'anomalous' in the "
                                        r"name"):
        score(fitted_model, [test / "normal"], labels="auto")
    table = tmp_path / "labels.csv"
    table.write_text("path,label\n" + str(sorted((test / "normal").glob("*.wav"))[0]) + ",normal\n")
    with pytest.raises(DataError, match=r"no label \(not listed in"):
        score(fitted_model, [test], labels=str(table))


def _as_format_1(folder: Path) -> None:
    """Rewrite a model folder as latentbridge wrote it before format 2 (flat config, dict transform,
    file checksum, no latent scale)."""
    from safetensors.torch import load_file, save_file

    info = json.loads((folder / "config.json").read_text())
    tensors = {k: v for k, v in load_file(str(folder / "model.safetensors")).items() if "latent_scale" not in k}
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "latentbridge-model",
                                                                     "model_class": info["model_class"]})
    cfg = info["config"]
    flat = {"task": "anomaly", "description": cfg["description"], "data": {**cfg["data"], "root": None,
            "test_fraction": 0.25, "test_ids": None, "limit": None, "stems": None}, "audio": cfg["audio"],
            "features": cfg["features"], "model": {**cfg["model"], "fusion": "jsd", "mask_channels": [16, 32, 64],
                                                   "image_channels": [32, 64], "private_dim": 0},
            "beta": cfg["beta"], "train": {k: v for k, v in cfg["train"].items() if k not in
                                           ("optimizer", "scheduler", "min_lr_ratio", "ema_decay", "keep_weights",
                                            "checkpoint_every_n_steps")},
            "anomaly": cfg["anomaly"], "vibration": {"n_fft": 128}, "digits": {"fsdd_root": None}}
    t = info["transform"]
    old = {"format": "latentbridge-model", "format_version": 1, "model_class": info["model_class"],
           "model_kwargs": info["model_kwargs"], "config": flat, "transform": t["features"],
           "anomaly": info["anomaly"], "data": info["data"], "training": info["training"],
           "files": {"model.safetensors": hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()}}
    (folder / "config.json").write_text(json.dumps(old, indent=2))


def test_format_1_folders_are_named_and_upgraded(fitted_model, machine_data, tmp_path, capsys):
    model = tmp_path / "old"
    shutil.copytree(fitted_model, model)
    _as_format_1(model)
    wav = str(sorted((machine_data / "test" / "anomalous").glob("*.wav"))[0])
    assert main(["anomaly", "score", str(model), wav, "--out", str(tmp_path / "s")]) == 2
    assert "format version 1" in (err := capsys.readouterr().err) and "latentbridge model upgrade" in err
    assert main(["model", "upgrade", str(model)]) == 0
    assert "format version 1 → 2" in capsys.readouterr().out
    assert main(["anomaly", "score", str(model), wav, "--out", str(tmp_path / "s")]) == 0
    assert main(["anomaly", "score", str(fitted_model), wav, "--out", str(tmp_path / "ref")]) == 0
    got = [float(r["score"]) for r in _rows(tmp_path / "s" / "scores.csv")]
    ref = [float(r["score"]) for r in _rows(tmp_path / "ref" / "scores.csv")]
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    info = json.loads((model / "config.json").read_text())
    assert info["upgraded_from"]["format_version"] == 1 and "vibration" in info["upgraded_from"]["dropped_config_keys"]
    assert main(["model", "upgrade", str(model)]) == 2  # already version 2
    assert "nothing to upgrade" in capsys.readouterr().err


def test_an_upgrade_keeps_a_broken_link_and_a_card_in_another_encoding(fitted_model, tmp_path, capsys):
    """A format-1 folder holding a link to a recording since moved: the upgrade failed with Python's list of copy
    errors and left a hidden copy of the folder beside it at every try; a model card with a note typed in Windows-1252
    (20\xb0C) was a UnicodeDecodeError traceback. Links are copied as links, the card read as the text it is."""
    folder = tmp_path / "old"
    shutil.copytree(fitted_model, folder)
    _as_format_1(folder)
    (folder / "notes.wav").symlink_to(tmp_path / "moved" / "file.wav")
    with open(folder / "README.md", "ab") as f:
        f.write(b"Installed at pump hall 3, 20\xb0C ambient.\n")
    (tmp_path / "current").symlink_to("old")  # upgraded through a link: the folder it names, the link kept (it was
    assert main(["model", "upgrade", str(tmp_path / "current")]) == 0, capsys.readouterr().err  # replaced by an
    assert (tmp_path / "current").is_symlink() and json.loads((folder / "config.json").read_text())[  # upgraded copy)
        "format_version"] == 2
    assert (folder / "notes.wav").is_symlink() and "20\u00b0C ambient" in (folder / "README.md").read_text("utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current", "old"]  # no copy left beside it
    assert main(["model", "upgrade", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: does not exist" in capsys.readouterr().err


def test_a_damaged_or_read_only_format_1_folder_is_named_and_left_as_it_was(fitted_model, tmp_path, capsys,
                                                                             monkeypatch):
    """`model upgrade` of a format-1 folder whose config.json lacks keys or holds wrong types raised
    KeyError / AttributeError / TypeError tracebacks; a read-only folder, or a failed last rename, must
    leave the original folder as it was."""
    import latentbridge.models.upgrade as upgrade

    def damaged(name, change):
        folder = tmp_path / name
        shutil.copytree(fitted_model, folder)
        _as_format_1(folder)
        info = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps(change(info)))
        return folder

    cases = [
        (lambda i: {k: v for k, v in i.items() if k != "model_class"}, "'model_class' must name a known model"),
        (lambda i: {**i, "config": "oops"}, "'config', 'data' and 'transform' must be mappings"),
        (lambda i: {**i, "data": "oops"}, "'data' and 'transform' must be mappings"),
        (lambda i: {**i, "config": {**i["config"], "task": "nosuch"}}, "unknown task 'nosuch'"),
        (lambda i: {**i, "model_kwargs": {k: v for k, v in i["model_kwargs"].items() if k != "input_shape"}},
         "do not build a"),
        (lambda i: {**i, "config": {**i["config"], "train": {"max_epochs": "lots"}}}, "'train.max_epochs'"),
    ]
    for n, (change, said) in enumerate(cases):
        folder = damaged(f"bad{n}", change)
        before = (folder / "config.json").read_bytes()
        assert main(["model", "upgrade", str(folder)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: model folder {folder}: config.json is damaged") and said in err, err
        assert "Traceback" not in err and (folder / "config.json").read_bytes() == before
    good = damaged("readonly", lambda i: i)
    before = {p.name: p.read_bytes() for p in good.iterdir() if p.is_file()}
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **k: Path(p) != good and real_access(p, mode, **k))
    assert main(["model", "upgrade", str(good)]) == 2
    assert f"{good} is read-only" in capsys.readouterr().err
    monkeypatch.setattr(os, "access", real_access)
    real_replace = os.replace

    def no_final_rename(src, dst):
        if ".upgrade-" in str(src):
            raise OSError(28, "No space left on device", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(upgrade.os, "replace", no_final_rename)
    assert main(["model", "upgrade", str(good)]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in good.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    monkeypatch.setattr(upgrade.os, "replace", real_replace)
    from latentbridge.outputs import FolderLock

    with FolderLock(good):  # another process writing the folder (another upgrade, a training into it)
        assert main(["model", "upgrade", str(good)]) == 2
        assert "another latentbridge process is writing it" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in good.iterdir() if p.is_file()} == before
    assert main(["model", "upgrade", str(good)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # the lock file too


# ----------------------------------------------------------------------------- no traceback for a user error


def _bad_invocations(fitted_model, machine_data, tmp: Path):
    wav = str(sorted((machine_data / "test" / "normal").glob("*.wav"))[0])
    (tmp / "file.txt").write_text("x")
    (tmp / "used").mkdir()
    (tmp / "used" / "x").write_text("x")
    (tmp / "empty").mkdir()
    (tmp / "bad.yaml").write_text("train: [unclosed\n")
    (tmp / "notes").mkdir()
    (tmp / "notes" / "a.txt").write_text("x")
    altered = tmp / "altered"
    shutil.copytree(fitted_model, altered)
    (altered / "README.md").unlink()
    m = str(fitted_model)
    return [
        # (argv, text the one-line message must contain)
        (["anomaly", "fit", str(tmp / "nope"), "--out", str(tmp / "o")], "nope"),
        (["anomaly", "fit", str(tmp / "empty"), "--out", str(tmp / "o")], "empty"),
        (["anomaly", "fit", str(tmp / "notes"), "--out", str(tmp / "o")], "no audio files"),
        (["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", str(tmp / "file.txt")], "file.txt"),
        (["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", "/proc/latentbridge_out"],
         "/proc/latentbridge_out"),
        (["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", str(tmp / "o"), "--config", str(tmp)],
         "is a folder"),
        (["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", str(tmp / "o"), "--config",
          str(tmp / "bad.yaml")], "bad.yaml"),
        (["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", str(tmp / "o"), "-o", "train.lr=fast"],
         "train.lr"),
        (["anomaly", "score", m, wav, "--out", str(tmp / "file.txt")], "file.txt"),
        (["anomaly", "score", m, wav, "--out", str(tmp / "used")], "used"),
        (["anomaly", "score", m, wav, "--out", "/proc/latentbridge_out"], "/proc/latentbridge_out"),
        (["anomaly", "score", str(tmp / "nope"), wav, "--out", str(tmp / "o")], "nope"),
        (["anomaly", "score", str(altered), wav, "--out", str(tmp / "o")], "README.md"),
        (["anomaly", "score", m, str(tmp / "file.txt"), "--out", str(tmp / "o")], "file.txt"),
        (["anomaly", "score", m, wav, "--labels", str(tmp / "nope.csv"), "--out", str(tmp / "o")], "nope.csv"),
        (["anomaly", "score", m, wav, "--out", str(tmp / "o"), "--workers", "-1"], "--workers: expected 0"),
        (["anomaly", "score", m, wav, "--out", str(tmp / "o"), "--devices", "0"], "--devices: expected a number"),
        (["anomaly", "score", m, wav, "--out", str(tmp / "o"), "--devices", "-1"], "--devices: expected a number"),
        (["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", str(tmp / "o"), "--config",
          str(REPO / "configs" / "anomaly_vae.yaml"), "--devices", "0"], "--devices: expected a number"),
        (["train", "--config", str(REPO / "configs" / "anomaly_ae.yaml"), "--out", str(tmp / "o"), "--devices", "-1"],
         "--devices: expected a number"),
        # hardware Lightning refuses: a traceback, exit 1 (scoring), or nothing said (a closed-form fit)
        (["anomaly", "score", m, wav, "--out", str(tmp / "o"), "--strategy", "bogus"], "strategy 'bogus'"),
        (["anomaly", "score", m, wav, "--out", str(tmp / "o"), "--accelerator", "tpu"], "accelerator 'tpu'"),
        (["anomaly", "score", m, wav, "--out", str(tmp / "o"), "--devices", "2", "--strategy", "fsdp"], "fsdp"),
        (["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", str(tmp / "o"), "--accelerator",
          "bogus"], "accelerator 'bogus'"),
        (["train", "--config", str(REPO / "configs" / "anomaly_ae.yaml"), "--out", str(tmp / "o"), "-o",
          f"data.train_dir={machine_data / 'train' / 'normal'}", "-o", "train.strategy=bogus"], "strategy 'bogus'"),
        (["anomaly", "calibrate", m, "--threshold", "nan"], "threshold"),
        (["anomaly", "listen", m, "--source", str(tmp / "nope.wav")], "nope.wav"),
        (["train", "--config", str(tmp / "nope.yaml"), "--out", str(tmp / "o")], "nope.yaml"),
        (["train", "--config", str(REPO / "configs" / "anomaly_ae.yaml"), "--out", str(tmp / "o"), "--resume"],
         "nothing to resume"),
        (["evaluate", str(tmp / "nope"), "--out", str(tmp / "o")], "nope"),
        (["analyze", m, "--out", str(tmp / "o")], "avdigits"),
        (["export", m, "--out", str(tmp / "m.bin")], "m.bin"),
        (["export", m, "--out", str(tmp / "file.txt")], "file.txt"),
        (["model", "upgrade", m], "nothing to upgrade"),
        (["data", "synth", "machine", "--out", str(tmp / "file.txt")], "file.txt"),
        (["config", "--config", str(tmp / "bad.yaml")], "bad.yaml"),
    ]


def test_no_traceback_reaches_a_user(fitted_model, machine_data, feature_cache, tmp_path):
    """Every bad invocation: exit 2, one line naming the path or key, no traceback (real processes)."""
    cases = _bad_invocations(fitted_model, machine_data, tmp_path)
    script = ("import json, sys, contextlib, io\n"
              "from latentbridge.cli import main\n"
              "out = []\n"
              "for argv in json.loads(sys.argv[1]):\n"
              "    err = io.StringIO()\n"
              "    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):\n"
              "        try:\n"
              "            code = main(argv)\n"
              "        except SystemExit as e:\n"
              "            code = e.code\n"
              "        except BaseException:\n"
              "            import traceback; traceback.print_exc(file=err); code = 'raised'\n"
              "    out.append([code, err.getvalue()])\n"
              "print(json.dumps(out))\n")
    res = subprocess.run([sys.executable, "-c", script, json.dumps([c[0] for c in cases])], capture_output=True,
                         text=True, timeout=600, env=_env(LATENTBRIDGE_CACHE=os.environ["LATENTBRIDGE_CACHE"]))
    assert res.returncode == 0, res.stderr[-2000:]
    for (argv, needle), (code, err) in zip(cases, json.loads(res.stdout.strip().splitlines()[-1])):
        lines = [line for line in err.strip().splitlines() if not line.startswith(("WARNING", "INFO"))]
        assert code == 2, (argv, code, err[-800:])
        assert "Traceback" not in err, (argv, err)
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err)
        assert needle in lines[0], (argv, needle, lines[0])


def test_a_path_starting_with_a_dash_is_explained(fitted_model, machine_data, tmp_path, monkeypatch, capsys):
    """MIMII's folders are named like ``-6_dB_pump``: argparse reads such a path as an option and said only "the
    following arguments are required: paths"; the message now says how to give it, and both ways score it."""
    folder = tmp_path / "-6_dB_pump" / "pump" / "id_00"
    folder.mkdir(parents=True)
    shutil.copy(sorted((machine_data / "test" / "normal").glob("*.wav"))[0], folder)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["anomaly", "score", str(fitted_model), "-6_dB_pump/pump/id_00", "--out", "x"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "the following arguments are required: paths" in err
    assert "-6_dB_pump/pump/id_00 starts with '-'" in err and "./-6_dB_pump/pump/id_00" in err and "put --" in err
    with pytest.raises(SystemExit):  # a word starting with '-' that names nothing: argparse's message alone
        main(["anomaly", "score", str(fitted_model), "-7_dB_pump", "--out", "x"])
    assert "starts with '-'" not in capsys.readouterr().err
    assert main(["anomaly", "score", str(fitted_model), "./-6_dB_pump/pump/id_00", "--out", "a"]) == 0
    assert main(["anomaly", "score", "--out", "b", "--", str(fitted_model), "-6_dB_pump/pump/id_00"]) == 0
    assert (tmp_path / "a" / "scores.csv").read_text() == (tmp_path / "b" / "scores.csv").read_text()


def test_fit_names_every_bad_file_and_skip_bad_skips_them(machine_data, feature_cache, tmp_path, capsys):
    data = tmp_path / "normal"
    shutil.copytree(machine_data / "train" / "normal", data)
    (data / "a_empty.wav").write_bytes(b"")
    (data / "b_text.wav").write_text("not audio")
    import soundfile as sf

    sf.write(data / "c_silent.wav", np.zeros(16000, np.float32), 16000)
    sf.write(data / "d_short.wav", np.random.default_rng(0).normal(0, 0.1, 2000).astype(np.float32), 16000)
    assert main(["anomaly", "fit", str(data), "--out", str(tmp_path / "m"), *_o()]) == 2
    err = capsys.readouterr().err
    for name in ("a_empty.wav", "b_text.wav", "c_silent.wav", "d_short.wav"):
        assert name in err
    assert "4 of 10 recordings cannot be used" in err and "--skip-bad" in err
    assert main(["anomaly", "fit", str(data), "--out", str(tmp_path / "m"), "--skip-bad", *_o()]) == 0
    info = json.loads((tmp_path / "m" / "config.json").read_text())
    assert len(info["data"]["skipped_files"]) == 4
    assert "Skipped files: 4" in (tmp_path / "m" / "README.md").read_text()
    bad = tmp_path / "bad"  # every recording bad: no advice to skip them (it would leave nothing to fit on)
    bad.mkdir()
    for name in ("a_empty.wav", "b_text.wav"):
        shutil.copy(data / name, bad / name)
    assert main(["anomaly", "score", str(tmp_path / "m"), str(bad), "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "2 of 2 recordings cannot be used" in err and "--skip-bad" not in err, err


def test_a_long_recording_is_transformed_from_a_view_with_the_same_features(tmp_path, monkeypatch):
    """A recording with many windows is transformed batch by batch from a view of its samples (its windows,
    twice its samples, were held whole); features, starts and level as before."""
    import soundfile as sf

    import latentbridge.data.audio as data_audio
    from latentbridge.config import load_config, transform_spec
    from latentbridge.data.audio import FeatureExtractor

    rng = np.random.default_rng(0)
    sf.write(tmp_path / "long.wav", rng.normal(0, 0.1, 16000 * 300).astype(np.float32), 16000)
    sf.write(tmp_path / "short.wav", rng.normal(0, 0.1, 16000 * 5).astype(np.float32), 16000)
    spec = transform_spec(load_config(None, ["audio.auto=false"], sets={"task": "anomaly"}))
    lazy = FeatureExtractor.from_spec(spec, use_cache=False, num_workers=0).extract(tmp_path)
    monkeypatch.setattr(data_audio, "LAZY_WINDOWS", 10**9)
    eager = FeatureExtractor.from_spec(spec, use_cache=False, num_workers=0).extract(tmp_path)
    assert len(lazy) == 299 + 4 and lazy.features.shape == eager.features.shape
    np.testing.assert_array_equal(lazy.features, eager.features)
    np.testing.assert_array_equal(lazy.starts_s, eager.starts_s)
    np.testing.assert_array_equal(lazy.levels_dbfs, eager.levels_dbfs)


def test_a_recording_replaced_with_the_same_size_and_time_is_read_again(tmp_path):
    """A logger without a clock writes every file with one date; a recording replaced by another of its size with
    that date (`cp -p`, unzip) came back from the feature cache with the old one's features (a fault scored 16.4,
    normal, where the edge scorer read 164). The status change time keys the cache too."""
    import os

    import soundfile as sf

    from latentbridge.config import load_config, transform_spec
    from latentbridge.data.audio import FeatureExtractor

    rng = np.random.default_rng(0)
    rec, spec = tmp_path / "data" / "rec.wav", transform_spec(load_config(None, ["audio.auto=false"],
                                                                            sets={"task": "anomaly"}))
    rec.parent.mkdir()
    ex = FeatureExtractor.from_spec(spec, cache_dir=tmp_path / "cache", num_workers=0)
    sf.write(rec, rng.normal(0, 0.1, 16000 * 3).astype(np.float32), 16000, subtype="PCM_16")
    os.utime(rec, ns=(1_700_000_000 * 10**9,) * 2)
    first = ex.extract(rec.parent).features
    np.testing.assert_array_equal(ex.extract(rec.parent).features, first)  # from the cache
    size = rec.stat().st_size
    sf.write(rec, rng.normal(0, 0.5, 16000 * 3).astype(np.float32), 16000, subtype="PCM_16")  # another recording
    os.utime(rec, ns=(1_700_000_000 * 10**9,) * 2)
    assert rec.stat().st_size == size and rec.stat().st_mtime_ns == 1_700_000_000 * 10**9
    assert np.abs(ex.extract(rec.parent).features - first).mean() > 5  # dB: its own features


@pytest.mark.parametrize("parallel", ["threads", "processes"])
def test_parallel_extraction_is_the_same_as_in_one_process(machine_data, tmp_path, parallel):
    """Two threads or two worker processes give this process's features, window starts, durations,
    padded and bad-file lists, in file order, and leave torch's thread count as it was."""
    import soundfile as sf

    from latentbridge.config import load_config, transform_spec
    from latentbridge.data.audio import FeatureExtractor, list_files

    data = tmp_path / "mixed"
    shutil.copytree(machine_data / "test", data)
    (data / "normal" / "b_text.wav").write_text("not audio")
    sf.write(data / "normal" / "c_short.wav", np.random.default_rng(0).normal(0, 0.1, 24000).astype(np.float32),
             16000)  # 1.5 s: padded to one 2-s window
    spec = transform_spec(load_config(None, ["audio.auto=false"], sets={"task": "anomaly"}))
    one = FeatureExtractor.from_spec(spec, use_cache=False, num_workers=0).extract(data, skip_bad=True)
    ex = FeatureExtractor.from_spec(spec, use_cache=False, num_workers=2, parallel=parallel)
    assert len(ex.chunks(list_files(data))) > 2  # more chunks than workers: the parallel path
    threads = torch.get_num_threads()
    two = ex.extract(data, skip_bad=True)
    assert torch.get_num_threads() == threads
    assert [str(f) for f in two.files] == [str(f) for f in one.files] and len(one.files) == 8
    np.testing.assert_array_equal(two.features, one.features)
    np.testing.assert_array_equal(two.file_index, one.file_index)
    np.testing.assert_array_equal(two.starts_s, one.starts_s)
    np.testing.assert_array_equal(two.durations_s, one.durations_s)
    assert two.padded == one.padded == [str(data / "normal" / "c_short.wav")]
    assert [p for p, _ in two.skipped] == [p for p, _ in one.skipped] == [str(data / "normal" / "b_text.wav")]
    with pytest.raises(ValueError, match="parallel"):
        FeatureExtractor.from_spec(spec, parallel="fibres")


def test_list_devices_says_when_there_are_none(monkeypatch, capsys, fitted_model):
    import latentbridge.io.capture as capture

    monkeypatch.setattr(capture, "list_input_devices", lambda: [])
    assert main(["anomaly", "listen", str(fitted_model), "--list-devices"]) == 0
    assert "no audio input devices" in capsys.readouterr().err


def test_format_1_digit_models_keep_their_digit_transform():
    """Version 1 avdigits read nothing from ``audio`` / ``features`` (a constant 8 kHz digit transform);
    the converter drops those sections, so the upgraded model reads audio as it was trained on."""
    from latentbridge.config.workflows import transform_spec, validate
    from latentbridge.models.upgrade import convert_config

    old = {"task": "avdigits", "audio": {"sample_rate": 16000, "window_s": 2.0, "pad": "wrap"},
           "features": {"n_fft": 1024, "hop_length": 512}, "model": {"name": "avmvae", "latent_dim": 32},
           "digits": {"fsdd_root": None}}
    config, dropped = convert_config(old, "avmvae", {"latent_dim": 32})
    assert {"audio", "features"} <= set(dropped)
    spec = transform_spec(validate(config, "converted"))
    f = spec.features
    assert (f.sample_rate, f.n_fft, f.hop_length, f.n_mels) == (8000, 256, 64, 64)


def test_a_terminated_training_says_so(tmp_path, capsys):
    """Lightning turned SIGTERM (and Ctrl-C) during training into exit(1) without a word: the CLI says "terminated"
    and exits 143, as every other command does; --resume continues the run from its last checkpoint."""
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "imgs").mkdir()
    for i in range(24):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "imgs" / f"{i}.png")
    run = tmp_path / "run"
    args = [sys.executable, "-m", "latentbridge", "train", "--config", str(REPO / "configs" / "image_ae_conv.yaml"),
            "--out", str(run), "-o", "data.source=folder", "-o", f"data.root={tmp_path / 'imgs'}",
            "-o", "data.image_size=16", "-o", "data.channels=3", "-o", "model.channels=[8,16]",
            "-o", "train.batch_size=2", "-o", "train.max_epochs=3000"]
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not (run / "checkpoints" / "last.ckpt").exists():
        time.sleep(0.1)
    time.sleep(1.5)  # a few epochs more (a fraction of a second each)
    assert proc.poll() is None, "training ended before it could be terminated: " + proc.stderr.read().decode()[-500:]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    err = proc.stderr.read().decode()
    assert f"terminated: the same command with --resume continues the training ({run})" in err, err
    assert "Traceback" not in err, err
    # resuming to fewer epochs than were trained is refused before anything is written (it was Lightning's traceback)
    # (and so is resuming to as many: there is nothing left to train). The checkpoint is written at the end
    # of an epoch, whose 0-based index it records: the epochs done are one more (they were reported one short)
    from latentbridge.training.fit import epochs_done

    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    done = epochs_done(ckpt)
    assert done == ckpt["epoch"] + 1 and done >= 2
    before = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    capsys.readouterr()
    for wanted in (done - 1, done):  # (in this process: what a user sees is the same, four seconds less a command)
        assert main(args[3:-1] + [f"train.max_epochs={wanted}", "--resume"]) == 2
        assert f"the run has trained {done} epochs already" in capsys.readouterr().err
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*")) == before
    assert main(["evaluate", str(run), "--out", str(tmp_path / "ev")]) == 2
    assert "its training did not finish (continue it with the same `latentbridge train` command and --resume)" in \
        capsys.readouterr().err


def test_a_link_to_a_folder_is_that_folder_for_locks_and_force(tmp_path, caplog):
    """A training through a link to a run folder was not refused while another wrote the folder itself (each locked
    its own name); --force replaced the link with a folder and hid the link; a killed --force run's old contents were
    never mentioned again."""
    import re

    from latentbridge.errors import BusyError, LatentbridgeError
    from latentbridge.outputs import FolderLock, check_target, output_folder

    real = tmp_path / "run"
    real.mkdir()
    (real / "config.json").write_text("{}")
    link = tmp_path / "link"
    link.symlink_to(real)
    with FolderLock(real):
        with pytest.raises(BusyError):
            FolderLock(link).acquire()
    with output_folder(link, force=True, in_place=True) as folder:
        (folder / "model.safetensors").write_text("new")
    assert link.is_symlink() and (real / "model.safetensors").read_text() == "new" and not (real / "config.json").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    (real / "model.safetensors").unlink()  # an earlier output, not a trained run (which only a training replaces)
    (real / "summary.json").write_text("{}")
    (real / ".latentbridge-written").unlink()  # an earlier latentbridge's output: judged by its names
    kept = tmp_path / ".run.old-999999"  # what a --force run killed by SIGKILL leaves
    kept.mkdir()
    with caplog.at_level(logging.WARNING, logger="latentbridge.outputs"):
        with output_folder(real, force=True) as tmp:
            (tmp / "summary.json").write_text("{}")
    assert f"what it held before a --force run that was killed is kept in {kept}" in caplog.text
    assert kept.is_dir() and not [p for p in tmp_path.iterdir() if p.name.startswith(".") and p != kept]
    # the kept folder's PID is this process's (reused after a restart): set aside under another name, never deleted
    mine = tmp_path / f".run.old-{os.getpid()}"
    mine.mkdir()
    (mine / "model.safetensors").write_text("the user's model")
    with pytest.raises(LatentbridgeError, match=rf"is kept in {re.escape(str(mine))}"):  # said before any work
        check_target(real, force=False)
    for in_place in (False, True):
        with output_folder(real, force=True, in_place=in_place) as tmp:
            (tmp / "summary.json").write_text("{}")
    assert (mine / "model.safetensors").read_text() == "the user's model"


def test_a_training_killed_before_its_first_checkpoint_is_named(tmp_path):
    """A new training killed before its first checkpoint left config.yaml and logs/: the rerun was refused as
    'exists and is not empty' and --resume as 'nothing to resume'; the refusal says what the folder is."""
    from latentbridge.errors import LatentbridgeError
    from latentbridge.outputs import check_target

    run = tmp_path / "run"
    (run / "logs").mkdir(parents=True)
    (run / "config.yaml").write_text("task: anomaly\n")
    with pytest.raises(LatentbridgeError, match="a training stopped before its first checkpoint: nothing to resume, "
                                                "--force starts it again"):
        check_target(run, force=False, training=True)
    with pytest.raises(LatentbridgeError, match="exists and is not empty"):  # for a command that trains nothing
        check_target(run, force=False)
    # a user's experiment folder (its own config.yaml, notes) is no stopped training
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "config.yaml").write_text("task: anomaly\n")
    (exp / "notes.md").write_text("try a larger window")
    with pytest.raises(LatentbridgeError, match="exists and is not empty"):
        check_target(exp, force=False, training=True)
    (exp / "config.yaml").unlink()  # a folder of notes alone: --force was advised, then refused
    with pytest.raises(LatentbridgeError, match=r"holds files latentbridge did not write \(notes.md\), which --force "
                                                "never replaces"):
        check_target(exp, force=False)
    with pytest.raises(LatentbridgeError, match="and this folder holds none"):
        check_target(exp, force=True)
    (exp / "config.yaml").write_text("task: anomaly\n")
    # `anomaly fit` of a statistics detector killed as it wrote (config.yaml, calibration.json: no logs): named so, by
    # the rerun and by `score` (they said 'exists and is not empty' and 'missing config.json'), with the model a
    # killed --force run replaced
    from latentbridge.models.hub import load_model

    fit = tmp_path / "fit"
    fit.mkdir()
    (fit / "config.yaml").write_text("task: anomaly\n")
    (fit / "calibration.json").write_text("{}")
    with pytest.raises(LatentbridgeError, match="a training stopped before its first checkpoint"):
        check_target(fit, force=False, training=True)
    (tmp_path / ".fit.old-4242").mkdir()
    with pytest.raises(LatentbridgeError, match=r"missing config\.json: its training stopped before it saved "
                                                r"anything to resume \(run `latentbridge anomaly fit` again, with "
                                                r"--force\); the model it replaced is kept in .*\.fit\.old-4242"):
        load_model(fit)


def test_a_folder_being_trained_is_named_busy_and_one_whose_process_died_stopped(tmp_path, monkeypatch):
    """A second training into a folder under training was told '--resume continues it' (which it then refused), a
    score of it 'continue it with --resume'; a fit killed while it read its data left config.yaml alone (and its lock
    file), named 'exists and is not empty'."""
    from latentbridge.errors import BusyError, LatentbridgeError
    from latentbridge.models.hub import load_model
    from latentbridge.outputs import FolderLock, check_target

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("task: anomaly\n")
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], "
                               "os.O_RDWR | os.O_CREAT); os.write(fd, b'PID 77: latentbridge train'); "
                               "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(120)",
                               str(FolderLock(run).path)], stdout=subprocess.PIPE, text=True)  # another process
    try:
        assert holder.stdout.readline().strip() == "held" and FolderLock(run).held_by() == "PID 77: latentbridge train"
        for force in (False, True):
            with pytest.raises(BusyError, match=r"run: another latentbridge process is writing it \(PID 77"):
                check_target(run, force=force, training=True)
        with pytest.raises(LatentbridgeError, match=r"missing config\.json: another latentbridge process is writing "
                                                    r"it \(PID 77: latentbridge train\); wait for it to finish$"):
            load_model(run)
        argv = ["latentbridge", "anomaly", "score", "mod", "longm", "--out", "lk4"]
        monkeypatch.setattr(sys, "argv", argv)
        with FolderLock(tmp_path / "mine") as mine:  # this process's own lock: no other process's
            assert FolderLock(tmp_path / "mine").held_by() is None
            # its command whole, as another process reads it (cut to six words: it ended in a bare `--out`)
            assert mine.path.read_text() == f"PID {os.getpid()}: {' '.join(argv)}"
    finally:
        holder.kill()
        holder.wait()
    FolderLock(run).path.unlink()
    assert FolderLock(run).held_by() is None
    with pytest.raises(LatentbridgeError, match="an unfinished training: --resume continues it"):
        check_target(run, force=False, training=True)
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "config.yaml").write_text("task: anomaly\n")
    with pytest.raises(LatentbridgeError, match="exists and is not empty"):  # no lock left: a user's folder, maybe
        check_target(killed, force=False, training=True)
    FolderLock(killed).path.write_text("PID 1: latentbridge anomaly fit")  # left by the killed process, held by none
    with pytest.raises(LatentbridgeError, match="a training stopped before its first checkpoint"):
        check_target(killed, force=False, training=True)
    with pytest.raises(LatentbridgeError, match="its training stopped before it saved anything to resume"):
        load_model(killed)


def test_a_moved_run_keeps_its_best_checkpoint_when_resumed(tmp_path):
    """Lightning forgets the best score of a run whose folder moved (a copy resumed replaced best.ckpt of epoch 55,
    val 2.5190, by epoch 61's 2.5205): the kept paths are read in the run's folder now, the score kept."""
    from latentbridge.training.fit import RunCheckpoint

    old, new = tmp_path / "old" / "checkpoints", tmp_path / "copy" / "checkpoints"
    state = {"monitor": "val/loss", "best_model_score": torch.tensor(2.519), "best_model_path": str(old / "best.ckpt"),
             "current_score": torch.tensor(2.533), "dirpath": str(old), "best_k_models": {str(old / "best.ckpt"):
                                                                                        torch.tensor(2.519)},
             "kth_best_model_path": str(old / "best.ckpt"), "kth_value": torch.tensor(2.519), "last_model_path": ""}
    keeper = RunCheckpoint(dirpath=new, filename="best", monitor="val/loss", mode="min", save_top_k=1)
    keeper.load_state_dict(state)
    assert float(keeper.best_model_score) == pytest.approx(2.519)
    assert keeper.best_model_path == str(Path(keeper.dirpath) / "best.ckpt")
    assert list(keeper.best_k_models) == [str(Path(keeper.dirpath) / "best.ckpt")]


def test_audio_reconstruct_of_a_statistics_detector_is_refused(machine_data, feature_cache, tmp_path, capsys):
    """The default detector (statistics of windows) passed the input through and reported it as a reconstruction."""
    model = tmp_path / "knn"
    assert main(["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", str(model)]) == 0
    assert json.loads((model / "config.json").read_text())["model_class"] == "knn_stats"
    wav = sorted((machine_data / "test" / "normal").glob("*.wav"))[0]
    assert main(["audio", "reconstruct", str(model), str(wav), "--out", str(tmp_path / "r")]) == 2
    assert "detector scores statistics of the windows and rebuilds nothing" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_diverging_training_is_said_so(machine_data, feature_cache, tmp_path, capsys):
    """train.lr = 1e6 blew the weights up: a traceback from what read the model afterwards (LedoitWolf: 'Input X
    contains NaN'), exit 1. Now one line that says so, exit 2."""
    args = ["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", str(tmp_path / "m"),
            *_o(["train.lr=1e6", "train.max_epochs=3"])]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "error: training diverged: the " in err and "(train.lr = 1e+06); train again with a lower train.lr" in err
    assert "Traceback" not in err and "into a new --out or with --force" in err


def test_the_shell_s_environment_ends_a_command_in_one_line_or_quietly(tmp_path, monkeypatch):
    """The reader of the output gone (``| head``): "error: Broken pipe", exit 2, now quiet, exit 141 as shell tools;
    the current folder removed: a traceback; a name the locale's encoding cannot hold (``LC_ALL=C PYTHONUTF8=0``, a
    config naming ``dé``): a traceback; ``~`` in $LATENTBRIDGE_CACHE (no shell expanded it): a folder named ``~``."""
    import os
    import sys

    from latentbridge.data.feature_cache import default_cache_dir

    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, "-m", "latentbridge"]
    # the four processes at once (each mostly starts Python and its imports)
    p = subprocess.Popen([*cmd, "config", "--config", str(REPO / "configs" / "mel_ae.yaml")], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()
    # a broken pipe to another process (a worker that died) while stdout is read: an error, not the reader gone
    code = ("import os, signal; signal.signal(signal.SIGPIPE, signal.SIG_IGN); from latentbridge.errors import "
            "stdout_gone; r, w = os.pipe(); os.close(r)\ntry:\n    os.write(w, b'x')\nexcept BrokenPipeError as e:\n"
            "    print(stdout_gone(e))")
    pipe = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    gone = tmp_path / "gone"
    gone.mkdir()
    code = (f"import os, sys; os.chdir({str(gone)!r}); os.rmdir({str(gone)!r}); from latentbridge.cli import main; "
            "sys.exit(main(['anomaly', 'fit', 'data', '--out', 'm']))")
    no_folder = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)
    (tmp_path / "cfg.yaml").write_text("task: audio_ae\ndata:\n  train_dir: dé_x\n", encoding="utf-8")
    ascii_env = {**env, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    ascii_run = subprocess.Popen([*cmd, "train", "--config", str(tmp_path / "cfg.yaml"), "--out", str(tmp_path / "r")],
                                 env=ascii_env, stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace")
    err = p.stderr.read().decode()
    assert p.wait() == 141 and err == "", err
    assert pipe.communicate(timeout=120)[0] == "False\n"
    err = no_folder.communicate(timeout=120)[1]
    assert no_folder.returncode == 2 and err.startswith("error: the current folder no longer exists"), err
    err = ascii_run.communicate(timeout=120)[1]
    assert ascii_run.returncode == 2 and "Traceback" not in err, err
    if sys.platform.startswith("linux"):  # (macOS names files in UTF-8 whatever the locale)
        assert "this locale's encoding (ascii) cannot hold: run the command under a UTF-8 locale" in err
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("LATENTBRIDGE_CACHE", "~/lbcache")
    assert default_cache_dir() == tmp_path / "lbcache"
    # the other caches inside it (they went to its parent: a project or data folder, whose bridge/ they took)
    from latentbridge.data.bridge import default_bridge_cache_dir
    from latentbridge.data.feature_cache import cache_home
    from latentbridge.tasks.classify import classifier_dir

    assert cache_home() == tmp_path / "lbcache" and default_bridge_cache_dir() == tmp_path / "lbcache" / "bridge"
    assert classifier_dir("mnist") == tmp_path / "lbcache" / "classifiers" / "mnist"
    monkeypatch.delenv("LATENTBRIDGE_CACHE")
    assert cache_home() == tmp_path / ".cache" / "latentbridge" and default_cache_dir() == cache_home() / "features"


def test_an_out_through_a_link_and_dotdot_is_where_the_kernel_goes(tmp_path):
    """``--out runs/lnk/../x`` with ``runs/lnk -> ../other/sub``: the kernel's ``x`` is ``other/x``, the temporary
    files' (text) ``runs/x``: the command failed after all its work ('runs/x/scores.csv: No such file')."""
    from latentbridge.outputs import output_folder
    from latentbridge.utils import atomic_write_text

    (tmp_path / "other" / "sub").mkdir(parents=True)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "lnk").symlink_to(tmp_path / "other" / "sub")
    for in_place in (False, True):
        with output_folder(tmp_path / "runs" / "lnk" / ".." / f"x{in_place}", in_place=in_place) as tmp:
            atomic_write_text(tmp / "a.txt", "a")
        assert (tmp_path / "other" / f"x{in_place}" / "a.txt").read_text() == "a"
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["lnk"]


def test_messages_name_files_whose_names_repeat_by_their_folders():
    """A plant's per-machine folders each hold `00000000.wav`: warnings named "rec.wav" (which of three?). Names
    alone where they are distinct, else the path below the files' common folder."""
    from latentbridge.utils import file_names

    assert file_names([Path("d/id_00/a.wav"), Path("d/id_02/b.wav")]) == ["a.wav", "b.wav"]
    assert file_names([Path("d/id_00/rec.wav"), Path("d/id_02/rec.wav"), Path("d/id_02/x.wav")]) == \
        ["id_00/rec.wav", "id_02/rec.wav", "id_02/x.wav"]
    assert file_names([Path("/a/rec.wav"), Path("b/rec.wav")]) == ["/a/rec.wav", "b/rec.wav"]
    assert file_names([]) == []


def test_an_error_about_some_of_few_files_names_where_they_are(tmp_path):
    """Two files scored, one too short: the error began "ok.wav, tiny.wav:", naming the good file as if at fault.
    A list of files is named by its count and folder; one path, or up to three folders, as given."""
    from latentbridge.data.audio import _where

    (tmp_path / "d").mkdir()
    files = [tmp_path / "d" / "ok.wav", tmp_path / "d" / "tiny.wav"]
    assert _where(files) == f"2 files in {tmp_path / 'd'}"
    assert _where([files[0]]) == str(files[0]) and _where(files[0]) == str(files[0])
    assert _where([tmp_path / "d", tmp_path]) == f"{tmp_path / 'd'}, {tmp_path}"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_feature_workers_end_with_a_parent_killed_outright(tmp_path):
    """`anomaly score` killed by the OOM killer (SIGKILL) left its decoding workers running, blocked, 500 MB each,
    for minutes. They are now killed with their parent."""
    import signal
    import subprocess
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import time, torch\n"
        "from latentbridge.data.audio import _one_thread\n"
        "class Slow(torch.utils.data.Dataset):\n"
        "    def __len__(self): return 4\n"
        "    def __getitem__(self, i): time.sleep(120); return i\n"
        "it = iter(torch.utils.data.DataLoader(Slow(), batch_size=None, num_workers=2, worker_init_fn=_one_thread))\n"
        "time.sleep(2)\n"
        "print(' '.join(str(w.pid) for w in it._workers), flush=True)\n"
        "time.sleep(300)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    workers = [int(p) for p in parent.stdout.readline().split()]
    assert len(workers) == 2 and all(Path(f"/proc/{p}").exists() for p in workers)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(Path(f"/proc/{p}").exists() for p in workers):
        time.sleep(0.2)
    alive = [p for p in workers if Path(f"/proc/{p}").exists() and "Z" not in
             Path(f"/proc/{p}/stat").read_text().split()[2]]
    assert not alive, alive


def test_training_devices_keep_lightnings_own_choices():
    """--devices of a training keeps `auto` and GPU lists (0,1) as Lightning takes them; counts of 1 or more as
    numbers; 0, negatives and words refused. Scoring takes counts only."""
    from latentbridge.commands import device_count
    from latentbridge.errors import LatentbridgeError

    assert [device_count(v, choices=True) for v in ("2", "auto", "0,1", "[0, 1]", None)] == [2, "auto", "0,1",
                                                                                          "[0, 1]", None]
    for bad, choices in (("0", True), ("-1", True), ("many", True), ("auto", False), ("0,1", False),
                         ("1000000000000", False)):  # (an allocation that failed: "give fewer recordings")
        with pytest.raises(LatentbridgeError, match="--devices: expected a number of devices"):
            device_count(bad, choices=choices)


def test_warnings_said_are_each_threads_own_once_each_and_reach_an_outer_block():
    """:func:`utils.warnings_said` (the server's per-request warnings, the bridge cache's manifest): a thread hears its
    own warnings only, each once, from any of the package's loggers; an inner block's reach the outer one; nothing is
    heard once the block ends."""
    import logging
    import threading

    from latentbridge.utils import warnings_said

    a, b = logging.getLogger("latentbridge.io.masks"), logging.getLogger("latentbridge.serve")
    heard, go = {}, threading.Barrier(2)

    def run(name, lg):
        with warnings_said() as texts:
            go.wait()
            for i in range(50):
                lg.warning("%s %d", name, i % 5)
                lg.info("%s info", name)
        heard[name] = texts

    threads = [threading.Thread(target=run, args=(n, lg)) for n, lg in (("one", a), ("two", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert heard == {n: [f"{n} {i}" for i in range(5)] for n in ("one", "two")}
    with warnings_said() as outer:
        a.warning("before")
        with warnings_said() as inner:
            b.warning("inside")
            a.warning("before")
        assert inner == ["inside", "before"]
    a.warning("after")
    assert outer == ["before", "inside"]


def _staged_in_a_mount_point(mnt: Path, tmp_path: Path) -> None:
    from latentbridge.errors import LatentbridgeError
    from latentbridge.outputs import output_folder

    with output_folder(mnt) as out:
        assert out.parent == mnt
        (out / "scores.csv").write_text("a")
    assert sorted(p.name for p in mnt.iterdir()) == [".latentbridge-written", "scores.csv"]
    with pytest.raises(LatentbridgeError, match="exists and is not empty"):
        with output_folder(mnt):
            pass
    with pytest.raises(RuntimeError):
        with output_folder(mnt, force=True) as out:
            (out / "scores.csv").write_text("b")
            raise RuntimeError("the command failed")
    assert (mnt / "scores.csv").read_text() == "a" and len(list(mnt.iterdir())) == 2
    with output_folder(mnt, force=True) as out:
        (out / "scores.csv").write_text("b")
    assert (mnt / "scores.csv").read_text() == "b" and len(list(mnt.iterdir())) == 2
    for fail in (True, False):  # a training, written in place
        try:
            with output_folder(mnt, force=True, in_place=True) as out:
                assert out == mnt and not (mnt / "scores.csv").exists()
                (out / "model.safetensors").write_text("m")
                if fail:
                    raise RuntimeError("the training failed")
        except RuntimeError:
            pass
        assert (mnt / ("scores.csv" if fail else "model.safetensors")).is_file(), fail
        assert not [p for p in mnt.iterdir() if p.name.startswith(".latentbridge.")]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_model_another_process_calibrates_is_waited_for(fitted_model, tmp_path, capsys):
    """Two `anomaly calibrate` of one model at once: the second was told to "choose another output", which calibrate
    has not (it rewrites the model folder)."""
    from latentbridge.cli import main
    from latentbridge.outputs import FolderLock

    model = tmp_path / "model"
    shutil.copytree(fitted_model, model)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], "
                               "os.O_RDWR | os.O_CREAT); os.write(fd, b'PID 77: latentbridge anomaly calibrate'); "
                               "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(120)",
                               str(FolderLock(model).path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["anomaly", "calibrate", str(model), "--threshold", "5"]) == 2
        assert capsys.readouterr().err.endswith("(PID 77: latentbridge anomaly calibrate); wait for it to finish\n")
    finally:
        holder.kill()
        holder.wait()


def test_a_mount_point_under_a_read_only_parent(tmp_path):
    """A container's writable volume under its read-only root: `--out VOLUME` was refused ("cannot write in ROOT ...
    its parent must be writable too": the lock file beside it); its lock is kept inside it."""
    from conftest import mounted

    with mounted(tmp_path / "root", "-t", "tmpfs", "-o", "size=1m", "tmpfs") as root:
        (root / "vol").mkdir()
        subprocess.run(["mount", "-o", "remount,ro", str(root)], check=True)
        with mounted(root / "vol", "-t", "tmpfs", "-o", "size=5m", "tmpfs") as vol:
            _staged_in_a_mount_point(vol, root)


def test_an_output_folder_that_is_a_mount_point(tmp_path):
    """`anomaly score --out VOLUME` onto a mount point failed after all the scoring, 'Device or resource busy' (the
    finished results' folder is renamed onto the output, which a mount point refuses), nothing written. Results are
    staged inside it and its entries moved; --force replaces the entries, a failure keeps them. A bind mount of a
    folder of the same file system, which os.path.ismount does not know."""
    from conftest import mounted

    (tmp_path / "volume").mkdir()
    with mounted(tmp_path / "mnt", "--bind", str(tmp_path / "volume")) as mnt:
        _staged_in_a_mount_point(mnt, tmp_path)


def test_an_output_folder_that_says_it_is_a_mount_point(tmp_path, monkeypatch):
    """The same, where mounting is not allowed: a folder os.path.ismount calls a mount point."""
    (mnt := tmp_path / "mnt").mkdir()
    monkeypatch.setattr(os.path, "ismount", lambda p: os.path.realpath(p) == os.path.realpath(mnt))
    _staged_in_a_mount_point(mnt, tmp_path)


def test_what_a_killed_writer_left_beside_a_file_goes_with_the_next_lock(tmp_path):
    """An export killed while it wrote left .k.onnx.XXXXXXXX.partial (740 KB) for good: the next writer of k.onnx,
    which holds its lock, removes it; another file's partial stays."""
    from latentbridge.outputs import FolderLock

    (left := tmp_path / ".k.onnx.r4p6qmmz.partial").write_bytes(bytes(1000))
    (other := tmp_path / ".other.onnx.r4p6qmmz.partial").write_bytes(b"x")
    with FolderLock(tmp_path / "k.onnx"):
        assert not left.exists() and other.exists()
    # data synth stages its set whole inside the command's temporary sibling: killed, it left
    # ..m2.tmp-PID.XXXXXXXX.partial (48 wavs) that no later writer of m2 removed; inside a mount point, the same
    (staged := tmp_path / "..m2.tmp-17573.gt7zmbhx.partial").mkdir()
    (staged / "a.wav").write_bytes(bytes(100))
    (kept := tmp_path / "..m22.tmp-1.ab12cd34.partial").mkdir()  # another folder's
    (mnt := tmp_path / "m3").mkdir()
    (inside := mnt / "..latentbridge.tmp-5.ab12cd34.partial").mkdir()
    with FolderLock(tmp_path / "m2"):
        assert not staged.exists() and kept.exists()
    with FolderLock(mnt):
        assert not inside.exists()


def test_stopped_after_the_model_was_saved_is_no_resume(tmp_path):
    """Ctrl-C while a finished training wrote its figures said '--resume continues the training', which then said
    'nothing left to train'. Stopped after this command saved the model, the hint says so; a resumed finished run
    (its model saved by an earlier command) stopped mid-training is still told to resume."""
    import argparse

    from latentbridge import outputs

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    args = argparse.Namespace(command="train", out=str(run), force=False)
    assert outputs.stopped_hint(args) == f": the same command with --resume continues the training ({run})"
    (run / "model.safetensors").write_bytes(b"x")
    os.utime(run / "model.safetensors", (outputs._STARTED - 60, outputs._STARTED - 60))  # an earlier command's
    assert outputs.stopped_hint(args).startswith(": the same command with --resume")
    os.utime(run / "model.safetensors", None)  # this command's
    assert outputs.stopped_hint(args) == (f" after the model was saved ({run}: usable); the figures written after it "
                                          "(training curves, samples, report) may be missing: --force trains the run "
                                          "again to write them")
    assert outputs.stopped_hint(argparse.Namespace(command="evaluate", out=str(run), force=False)) == ""


def test_a_full_disk_during_training_names_the_checkpoint_and_leaves_none_cut(machine_data, tmp_path, capsys):
    """Lightning wrote best.ckpt through a file in the system's temporary folder: a full disk left a truncated best.ckpt
    (torch: 'failed finding central directory') and an error naming /tmp/tmpXXXX, on another disk. Checkpoints are
    written beside their place and renamed: the error names the checkpoint, and every one there is whole."""
    from conftest import mounted

    with mounted(tmp_path / "full", "-t", "tmpfs", "-o", "size=200k", "tmpfs") as full:
        assert main(_train_args(machine_data, full / "ae", ["train.max_epochs=3", "train.progress_bar=false"])) == 2
        err = capsys.readouterr().err
        assert f"error: {full / 'ae' / 'checkpoints'}/" in err and "No space left on device" in err, err
        assert "/tmp/tmp" not in err
        for ckpt in (full / "ae" / "checkpoints").glob("*"):
            assert ckpt.suffix == ".ckpt", ckpt  # no .partial left
            torch.load(ckpt, map_location="cpu", weights_only=True)  # whole


def test_score_and_evaluate_own_their_folder_while_they_work(fitted_model, machine_data, tmp_path, monkeypatch):
    """`anomaly score` took its folder's lock only to write at its end: a second writer started meanwhile was let in,
    and each found the other's folder at its end (a distributed run then 'exists and is not empty', a rank killed).
    The folder is locked from before the work."""
    from latentbridge import commands
    from latentbridge.errors import BusyError
    from latentbridge.outputs import FolderLock

    out = tmp_path / "s"
    real = commands.anomaly.score
    held = []

    def scoring(*a, **k):
        with pytest.raises(BusyError, match="another latentbridge process is writing it"):
            FolderLock(out).acquire()
        held.append(True)
        return real(*a, **k)

    monkeypatch.setattr(commands.anomaly, "score", scoring)
    wav = str(sorted((machine_data / "test" / "normal").glob("*.wav"))[0])
    assert main(["anomaly", "score", str(fitted_model), wav, "--out", str(out)]) == 0
    assert held and (out / "scores.csv").is_file()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_an_extra_ddp_process_ends_with_the_one_that_launched_it(tmp_path):
    """kill -9 of a distributed run's first process left the extra one running for good (520 MB, deaf to SIGTERM in
    its collective). An extra process (LOCAL_RANK > 0) ends with its launcher."""
    child = ("import os, time; os.environ['LOCAL_RANK'] = '1'\n"
             "from latentbridge.utils import end_with_launcher\n"
             "end_with_launcher(); print(os.getpid(), flush=True); time.sleep(120)\n")
    launcher = ("import subprocess, sys, time\n"
                f"p = subprocess.Popen([sys.executable, '-c', {child!r}], stdout=subprocess.PIPE, text=True)\n"
                "print(p.stdout.readline().strip(), flush=True); time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", launcher], stdout=subprocess.PIPE, text=True, env=_env())
    try:
        pid = int(proc.stdout.readline())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.time() + 20
        while time.time() < deadline and os.path.exists(f"/proc/{pid}"):
            time.sleep(0.1)
        assert not os.path.exists(f"/proc/{pid}"), "the extra process outlived its launcher"
    finally:
        proc.kill()


def test_a_reading_process_that_died_and_an_interrupt_s_errors_are_said_in_a_line(monkeypatch, capsys, tmp_path):
    """A DataLoader worker killed under `anomaly score` (kill -9, the out-of-memory killer) ended in a traceback of 94
    lines, exit 1; one stopped by the same Ctrl-C as the command raised 'exited unexpectedly' over the interrupt, a
    traceback and exit 1 where the interrupt is 130."""
    import latentbridge.cli as cli

    def died(args):
        raise RuntimeError("DataLoader worker (pid(s) 4705) exited unexpectedly")

    def stopped(args):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("DataLoader worker (pid 7907) exited unexpectedly with exit code 1. Details are lost")

    model = tmp_path / "m"
    for command, code, said in ((died, 2, "error: a process reading the data (pid 4705) died (killed, or it failed), "
                                          "and the command stopped; run it again (--workers 0 reads the files in the "
                                          "command's own process)\n"),
                                (stopped, 130, "interrupted")):
        monkeypatch.setitem(cli.COMMANDS, "anomaly", command)
        assert main(["anomaly", "score", str(model), str(tmp_path), "--out", str(tmp_path / "o")]) == code
        err = capsys.readouterr().err
        assert err.startswith(said) and "Traceback" not in err, err
    from latentbridge.errors import _worker_death

    assert "died of signal Killed (killed from outside, or by the system for want of memory)" in _worker_death(
        RuntimeError("DataLoader worker (pid 4362) is killed by signal: Killed. "))
    assert "died of signal Bus error (out of shared memory (/dev/shm)" in _worker_death(
        RuntimeError("DataLoader worker (pid 13) is killed by signal: Bus error. It is possible that dataloader's"))
    assert _worker_death(RuntimeError("a bug of the program's own")) is None


def test_data_moved_with_its_project_is_the_same_data(tmp_path):
    """A project folder moved (or copied) with its data: every file was 'gone' and 'added', so evaluate warned that
    the data changed and a resume was refused, of the same files."""
    from latentbridge.data.run_record import data_changes, record_data

    (tmp_path / "A" / "data" / "sub").mkdir(parents=True)
    files = [tmp_path / "A" / "data" / "a.csv", tmp_path / "A" / "data" / "sub" / "b.csv"]
    for f, text in zip(files, ("x", "yy")):
        f.write_text(text)
    run = tmp_path / "run"
    run.mkdir()
    record_data(run, files)
    (tmp_path / "A").rename(tmp_path / "B")
    moved = [tmp_path / "B" / "data" / "a.csv", tmp_path / "B" / "data" / "sub" / "b.csv"]
    assert data_changes(run, moved) == ""
    moved[1].write_text("yyy")
    (tmp_path / "B" / "data" / "c.csv").write_text("z")
    assert data_changes(run, [*moved, tmp_path / "B" / "data" / "c.csv"]) == \
        f"1 added (c.csv); 1 of another size (sub/b.csv), under {tmp_path / 'B' / 'data'}"


def test_a_distributed_process_that_died_is_said_before_lightning_stops_the_run(caplog, monkeypatch):
    """kill -9 of one DDP process: Lightning's observer noted it at INFO, which the CLI keeps quiet, then killed every
    process: exit 137 and not a word."""
    from types import SimpleNamespace

    from lightning.fabric.strategies.launchers.subprocess_script import _ChildProcessObserver

    from latentbridge import utils

    monkeypatch.setattr(utils, "LIGHTNING_INFO", False)
    utils.quiet_lightning()
    killed = []
    child = SimpleNamespace(pid=4242, returncode=-9, poll=lambda: None)
    observer = _ChildProcessObserver(main_pid=os.getpid(), child_processes=[child])
    monkeypatch.setattr(observer, "_terminate_all", lambda: killed.append(True))
    with caplog.at_level(logging.WARNING):
        assert observer._run() is True
    assert killed and "a process of this distributed run (pid 4242) died (killed by signal 9): every process is " \
                      "stopped now, the command with it (exit 137)" in caplog.text, caplog.text
    assert not [r for r in caplog.records if r.levelno < logging.WARNING]


def test_the_training_bar_in_a_log_is_drawn_seldom(machine_data, feature_cache, tmp_path, monkeypatch, capsys):
    """Lightning's bar redrew twice a step into a log (stdout a file): a log of 125 steps held 253 bar lines; redrawn
    less, its carriage returns and cursor moves came before the log's next line. Plain lines now."""
    env = _env(LATENTBRIDGE_CACHE=str(feature_cache))
    args = _train_args(machine_data, tmp_path / "run", ["train.max_epochs=2", "train.batch_size=2",
                                                        "train.progress_bar=true"])
    proc = subprocess.Popen([sys.executable, "-m", "latentbridge", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    # (meanwhile, in this process) within a long epoch, a line every LOG_PROGRESS_S (here every step)
    monkeypatch.setattr("latentbridge.utils.LOG_PROGRESS_S", 0.0)
    assert main(_train_args(machine_data, tmp_path / "run2", ["train.max_epochs=1", "train.batch_size=2",
                                                              "train.progress_bar=true"])) == 0
    out = capsys.readouterr().out
    assert re.search(r"^epoch 1/1, step 1/\d+: train/loss_step [\d.]+$", out, flags=re.M), out
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    lines = [line for line in stdout.splitlines() if not line.startswith("chosen from the data")]
    assert [line.split(":")[0] for line in lines[:2]] == ["epoch 1/2", "epoch 2/2"], stdout  # (64 bars and more)
    assert "val/loss " in lines[0] and "train/loss_epoch " in lines[0] and "\r" not in stdout
    assert "\x1b" not in stdout and lines[2].startswith("trained "), stdout


def test_a_failed_command_leaves_no_parent_folders_it_made(fitted_model, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.wav").write_bytes(b"")
    assert main(["anomaly", "score", str(fitted_model), str(bad), "--out", str(tmp_path / "new" / "x" / "y")]) == 2
    assert "empty.wav" in capsys.readouterr().err and not (tmp_path / "new").exists()  # (an empty new/x was left)


def test_a_recording_short_once_trimmed_is_said_so(tmp_path, caplog):
    """3-s recordings of one short burst, their silence trimmed (the survey's audio.trim_db for event sound), were
    "shorter than one 2-s window" with no word of the trimming."""
    import soundfile as sf

    from latentbridge.config import load_config, transform_spec
    from latentbridge.data.audio import FeatureExtractor

    rng = np.random.default_rng(0)
    x = np.zeros(16000 * 3, np.float32)
    x[16000:16000 + 12000] = rng.normal(0, 0.3, 12000)  # 0.75 s of sound in 3 s
    sf.write(tmp_path / "burst.wav", x, 16000)
    spec = transform_spec(load_config(None, ["audio.auto=false", "audio.trim_db=40"], sets={"task": "anomaly"}))
    with caplog.at_level(logging.WARNING):
        FeatureExtractor.from_spec(spec, use_cache=False, num_workers=0).extract(tmp_path)
    assert "1 of 1 recordings are shorter than one 2-s window once trimmed of silence (audio.trim_db) and were " \
           "padded" in caplog.text, caplog.text
