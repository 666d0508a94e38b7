"""The commands behind the CLI: each owns its output folder (:func:`latentbridge.outputs.output_folder`),
calls a task (compute) and a report step (write), and returns what the CLI prints. The server calls
the same task and report functions."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, is_dataclass
from pathlib import Path
from typing import Any, Callable

from latentbridge.errors import ConfigError, DataError, LatentbridgeError
from latentbridge.outputs import FolderLock, check_target, output_folder
from latentbridge.sampling_args import check_sampler_flags
from latentbridge.report.runs import anomaly as anomaly_report
from latentbridge.report.runs import autoencode as autoencode_report
from latentbridge.report.runs import diffusion as diffusion_report
from latentbridge.report.runs import digits as digits_report
from latentbridge.report.runs import mld as mld_report
from latentbridge.report.runs import multimodal as multimodal_report
from latentbridge.report.runs import spatial as spatial_report
from latentbridge.report.runs import training as training_report
from latentbridge.tasks import analyze as analyze_task
from latentbridge.tasks import (anomaly, autoencode, avdigits, classify, diffusion, generate, mld, mld_eval, multimodal,
                               spatial)
from latentbridge.tasks import reconstruct as reconstruct_task
from latentbridge.sampling_args import guidance_problem
from latentbridge.utils import check_seed


@dataclass(frozen=True)
class TaskEntry:
    """A workflow's training entry point, its evaluation (compute) and the report step of that."""

    fit: Callable
    evaluate: Callable
    write_evaluation: Callable


def _fit_classifier(cfg, out_dir, *, resume: bool = False, force: bool = False, notify=None):
    if resume:
        raise LatentbridgeError("classifiers train in one go: --resume is not supported for them")
    return classify.train_classifier(cfg, out_dir, force=force)


def _fit_diffusion(cfg, out_dir, *, resume: bool = False, force: bool = False, notify=None):
    return diffusion.fit(cfg, out_dir, resume=resume, force=force, report=diffusion_report.write_training)


def _no_evaluation(run_dir, data=None):
    raise LatentbridgeError(f"{run_dir}: a classifier's test accuracy is in its metrics.json (written by training)")


#: every workflow, by its ``task`` name
TASKS: dict[str, TaskEntry] = {
    "anomaly": TaskEntry(anomaly.fit, anomaly.evaluate, anomaly_report.write_scores),
    "audio_ae": TaskEntry(autoencode.fit, autoencode.evaluate, autoencode_report.write_evaluation),
    "image_ae": TaskEntry(autoencode.fit, autoencode.evaluate, autoencode_report.write_evaluation),
    "multimodal": TaskEntry(multimodal.fit, multimodal.evaluate, multimodal_report.write_evaluation),
    "avdigits": TaskEntry(avdigits.fit, avdigits.evaluate, digits_report.write_evaluation),
    "classifier": TaskEntry(_fit_classifier, _no_evaluation, lambda res, folder: None),
    "diffusion": TaskEntry(_fit_diffusion, lambda run_dir, data=None: generate.evaluate(run_dir, data, progress=True),
                           diffusion_report.write_evaluation),
    "mld": TaskEntry(mld.fit, mld_eval.evaluate, mld_report.write_evaluation),
    "spatial": TaskEntry(spatial.fit, lambda run_dir, data=None: spatial.evaluate(run_dir, data, progress=True),
                         spatial_report.write_evaluation),
}


def summary_of(res: Any) -> dict:
    """The printable (scalar) entries of a result: a dataclass, a dict, or an object with ``metrics``."""
    import dataclasses

    if res is None:
        return {}
    if hasattr(res, "metrics") and isinstance(getattr(res, "metrics"), dict):
        d = res.metrics
    elif is_dataclass(res):
        d = {f.name: getattr(res, f.name) for f in dataclasses.fields(res)}
    else:
        d = dict(res)
    out = {}
    for k, v in d.items():
        if isinstance(v, bool) or isinstance(v, (int, float)) or (isinstance(v, str) and len(v) <= 80):
            out[k] = v
        elif isinstance(v, Path):
            out[k] = str(v)
    return out


def train(cfg, out: str, *, resume: bool = False, force: bool = False, notify=None):
    """Train ``cfg`` into ``out``; ``notify`` receives one line per setting a workflow chooses itself."""
    from latentbridge.outputs import resumable_run

    if resume and force:  # (the run was resumed, --force ignored without a word)
        raise LatentbridgeError(f"{out}: --resume continues the training in it, --force replaces it: give one of the "
                                "two")
    if resume and not resumable_run(Path(out)):  # before any data is read
        raise LatentbridgeError(f"{out}: nothing to resume (no checkpoints/last.ckpt)")
    from latentbridge.utils import is_launched_child

    # a used folder (or a file) is refused before the data is read and surveyed (not in DDP's extra processes,
    # which find the folder the first one made)
    if not is_launched_child():
        if not resume:
            check_target(Path(out), force, training=True)
        if Path(out).parent.is_dir():  # a folder another process writes: refused now, not after minutes of reading
            FolderLock(out).acquire().release()
        _check_train_hardware(cfg)
    res = TASKS[cfg.task].fit(cfg, out, resume=resume, force=force, notify=notify)
    if res is not None and cfg.task != "diffusion":  # diffusion writes its own training figures
        training_report.write_training(getattr(res, "out_dir", None) or out)
    return res


def _check_train_hardware(cfg) -> None:
    """``train.accelerator`` / ``devices`` / ``strategy`` / ``precision`` given in a config or with -o, refused before
    the data is read (as --accelerator and the other flags are; they were refused after it). A model fitted in closed
    form names them unused instead."""
    from latentbridge.models.registry import get_model_class
    from latentbridge.training.fit import check_hardware

    t = cfg.train
    given = {k: getattr(t, k) for k in ("accelerator", "devices", "strategy", "precision")
             if getattr(t, k) != type(t).model_fields[k].default}
    model = getattr(cfg, "model", None)
    if given and (model is None or getattr(get_model_class(model.name), "trainable", True)):
        check_hardware(**given)


def _reads_vibration(run_dir: str, config: dict, sample_rate: float | None) -> dict:
    """``{"sample_rate": ...}`` for a task call when given (``--sample-rate``: the rate of vibration CSVs
    without a time column, for anomaly detectors and the bridge's multimodal and latent diffusion runs only)."""
    if sample_rate is None:
        return {}
    task, kind = config.get("task"), (config.get("data") or {}).get("kind")
    if task not in ("multimodal", "anomaly") and not (task == "mld" and kind == "bridge"):
        raise LatentbridgeError(f"--sample-rate is the rate of vibration CSVs without a time column; {run_dir} is a "
                                f"{task!r} run{' on ' + kind if kind else ''}, which reads none")
    from latentbridge.io.vibration import given_rate

    return {"sample_rate": given_rate(sample_rate)}


def evaluate(run_dir: str, out: str, data: str | None = None, force: bool = False, sample_rate: float | None = None):
    from latentbridge.models.hub import read_info

    info = read_info(run_dir)
    config = info["config"]
    entry = TASKS[config.get("task", "anomaly")]
    # digits runs read their config's test pairs: no --data to give them
    digits = config.get("task") == "avdigits" or (config.get("data") or {}).get("kind") == "digits"
    hint = "evaluate from there" + ("" if digits else ", or give the data with --data DIR")
    if data is None:
        _refuse_other_data_here(info, hint)
    with output_folder(out, force=force) as tmp:  # owned from before the work: a used folder refused at once
        try:
            res = entry.evaluate(run_dir, data, **_reads_vibration(run_dir, config, sample_rate))
        except DataError as e:
            if data is None:
                _raise_if_relative_to_training(e, info, hint)
            raise
        entry.write_evaluation(res, tmp)
    return res


def _refuse_other_data_here(info: dict, hint: str) -> None:
    """A run's relative data path (``data.root: data/bridge``, as `train` was given it) that names another existing
    folder here than in the folder `train` ran in: evaluated from another folder, the run read that folder's data as
    its own held-out states, without a word."""
    from latentbridge.training.fit import relative_data_paths

    trained_in = info.get("trained_in")
    if not trained_in or Path(trained_in).resolve() == Path.cwd().resolve():
        return
    for key, stored in relative_data_paths(info["config"]).items():
        there, here = Path(trained_in) / stored, Path.cwd() / stored
        if there.exists() and here.exists() and there.resolve() != here.resolve():
            raise DataError(stored, f"the run's {key}, relative to the folder `train` ran in ({trained_in}), where it "
                                    f"is {there.resolve()}; here it names another folder, {here.resolve()}: {hint}")


def _raise_if_relative_to_training(e: DataError, info: dict, hint: str) -> None:
    """``e`` again, saying why, where the missing path is the run's own data stored as the relative path `train`
    was given (``data.root``, ``digits.fsdd_root``, ...): read from another folder than the training's (named), or,
    from that folder, data moved or deleted since (it was sent to evaluate "from there", the folder it ran in)."""
    from latentbridge.training.fit import relative_data_paths

    if Path(e.path).exists():
        return
    missing = Path.cwd() / e.path  # an absolute e.path stays itself
    trained_in = info.get("trained_in")
    problem = "does not exist" if e.problem.startswith("does not exist") else e.problem  # (not the option to set)
    for key, stored in relative_data_paths(info["config"]).items():
        here = Path.cwd() / stored
        # readers name the folder or a file in it, as given or resolved under this folder first (the bridge's)
        if not here.exists() and any(t == m or t in m.parents for t in (here, here.resolve())
                                     for m in (missing, missing.resolve())):
            if trained_in and Path(trained_in).resolve() == Path.cwd().resolve():
                also = (" to evaluate its held-out states; --data DIR evaluates every state of another folder, the "
                        "states trained on among them if it is this data moved") if "--data" in hint else ""
                raise DataError(stored, f"{problem} (the run's {key}, read from this folder, where `train` ran: "
                                        f"moved or deleted since? Put it back{also})") from None
            where = f" ({trained_in})" if trained_in else ""
            raise DataError(stored, f"{problem} (the run's {key}, relative to the folder `train` ran in{where}, "
                                    f"not to {Path.cwd()}: {hint})") from None


def analyze(run_dir: str, out: str, n_clusters: int = 10, force: bool = False):
    from latentbridge.models.hub import read_info

    check_target(Path(out), force)
    analyze_task.check_clusters(n_clusters)  # before the run is read
    _refuse_other_data_here(read_info(run_dir), "analyze from there")
    try:
        res = analyze_task.analyze(run_dir, n_clusters=n_clusters)
    except DataError as e:
        _raise_if_relative_to_training(e, read_info(run_dir), "analyze from there")
        raise
    with output_folder(out, force=force) as tmp:
        digits_report.write_analysis(res, tmp)
    return res


#: what a model that ``sample`` does not take offers instead
_SAMPLE_INSTEAD = {
    "multimodal": "; its masks from vibration: `latentbridge evaluate RUN --data DIR` or `latentbridge serve RUN` "
                  "(POST /api/models/NAME/predict)",
    "audio_ae": "; it rebuilds recordings: `latentbridge audio reconstruct RUN FILES --out DIR`",
}


def sample(run_dir: str, out: str, n: int, *, force: bool = False, condition: list[str] | None = None,
           sample_rate: float | None = None, **settings) -> dict:
    """``latentbridge sample``: images of a diffusion model folder (:func:`latentbridge.tasks.generate.sample`;
    ``condition``: continuous condition values), or samples of a multimodal latent diffusion run
    (:func:`latentbridge.tasks.mld.sample`) or of an audio-visual digits run (:func:`latentbridge.tasks.avdigits.sample`;
    ``condition``: condition files)."""
    from latentbridge.models.hub import read_info

    config = read_info(run_dir)["config"]
    task = config.get("task")
    if task not in ("mld", "diffusion", "avdigits"):  # before reading its flags as a diffusion model's
        article = "an" if (task or "x")[:1] in "aeiou" else "a"
        raise LatentbridgeError(f"{run_dir}: {article} {task!r} model, not a generative one"
                                + _SAMPLE_INSTEAD.get(task, ""))
    check_sampler_flags(**settings)
    if task == "avdigits" and (given := [f for f, v in settings.items() if v is not None and f != "seed"]):
        flags = {"label": "--class", "batch_size": "--batch-size"}
        raise LatentbridgeError(f"{', '.join(flags.get(f, '--' + f) for f in given)}: an audio-visual VAE samples "
                                "its latents at once (no sampler steps or guidance); it takes --condition FILE, "
                                "--num-samples and --seed")
    check_target(Path(out), force)  # before the sampling: a used folder was refused after minutes of it
    rate = _reads_vibration(run_dir, config, sample_rate)
    if task == "avdigits":
        res = avdigits.sample(run_dir, n, condition, seed=settings.get("seed") or 0)
        write = mld_report.write_samples
    elif task == "mld":
        if settings.pop("label", None) is not None:
            raise LatentbridgeError("--class: a multimodal latent diffusion model is conditioned by --condition FILE")
        res = mld.sample(run_dir, n, condition, progress=True, **rate, **settings)
        write = mld_report.write_samples
    else:
        values = None
        if settings.get("guidance") is not None:
            try:
                settings["guidance"] = float(settings["guidance"])
            except ValueError:
                raise LatentbridgeError(f"--guidance: a diffusion model takes one number, got {settings['guidance']!r}"
                                        ) from None
            if problem := guidance_problem(settings["guidance"]):
                raise LatentbridgeError(f"--guidance: {problem}")
        if condition is not None:
            try:
                values = [float(c) for c in condition]
            except ValueError:
                raise LatentbridgeError(f"--condition: a diffusion model takes numbers, got {condition}") from None
        res = generate.sample(run_dir, n, progress=True, condition=values, **settings)
        write = diffusion_report.write_samples
    with output_folder(out, force=force) as tmp:
        summary = write(res, tmp)
    return summary


def device_count(value, choices: bool = False):
    """``--devices`` (training and scoring): a number of devices, each a process, 1 or more; None when not given
    (0 reached Lightning, or a slice of step 0 in the scoring, as a traceback). With ``choices`` (training), also
    Lightning's ``auto`` and a list of GPU indices (``0,1``), passed on as given."""
    from latentbridge.config.sections import MAX_DEVICES, devices_value

    if value is None:
        return None
    if (out := devices_value(value, choices)) is None:
        raise LatentbridgeError(f"--devices: expected a number of devices, 1 to {MAX_DEVICES} (e.g. --devices 2)"
                                + (", auto or GPU indices (0,1)" if choices else "") + f", got {value}")
    return out


def worker_count(value: int | None) -> int | None:
    """``--workers`` (scoring, training): recordings decoded at once, 0 or more; None when not given."""
    if value is not None and value < 0:
        raise LatentbridgeError(f"--workers: expected 0 (decode in this process) or more workers, got {value}")
    return value


def score(model_dir: str, paths: list[str], out: str, *, labels: str | None = None, aggregate: str | None = None,
          skip_bad: bool = False, force: bool = False, method: str | None = None, sample_rate: float | None = None,
          **hardware):
    """``anomaly score`` (with the model's score, or ``method``, another it offers; ``sample_rate``: the rate of
    vibration files that give none, default the model's); ``hardware``:
    devices, strategy, accelerator, num_workers. None in the extra processes of a distributed run
    (the first one writes the folder)."""
    from latentbridge.training.fit import check_hardware
    from latentbridge.utils import is_launched_child

    worker_count(hardware.get("num_workers"))
    hardware["devices"] = device_count(hardware.get("devices"))
    check_hardware(accelerator=hardware.get("accelerator"), devices=hardware["devices"],
                   strategy=hardware.get("strategy"))

    def work():
        return anomaly.score(model_dir, paths, labels=labels, aggregate=aggregate, skip_bad=skip_bad, method=method,
                             sample_rate=sample_rate, progress=True, **hardware)

    if is_launched_child():  # an extra process scores its share; the first one owns and writes the folder
        return work()
    # owned (locked, checked) for the whole work: a second writer was let in while a distributed run scored, and
    # each found the other's folder at its end ('exists and is not empty', then a rank killed)
    with output_folder(out, force=force) as tmp:
        res = work()
        anomaly_report.write_scores(res, tmp)
    return res


#: the most Griffin-Lim iterations `audio reconstruct` runs (it converges within a few hundred)
MAX_GRIFFIN_LIM = 10_000


def reconstruct(model_dir: str, files: list[str], out: str, n_iter: int = 64, postfilter: bool = True,
                force: bool = False) -> dict:
    if not 1 <= n_iter <= MAX_GRIFFIN_LIM:  # (10**12 ran until it was killed)
        raise LatentbridgeError(f"--n-iter must be from 1 to {MAX_GRIFFIN_LIM} (Griffin-Lim iterations), got {n_iter}")
    with output_folder(out, force=force) as tmp:  # checked before the work (it decoded every file, then refused)
        res = reconstruct_task.reconstruct(model_dir, files, n_iter=n_iter, postfilter=postfilter)
        summary = autoencode_report.write_reconstructions(res, tmp)
    for f in summary["files"]:  # reconstruct.json names them inside the folder; the command prints where they are
        f["output"] = str(Path(out) / f["output"])
        f["plot"] = str(Path(out) / f["plot"])
    return summary


def enhance(run_dir: str, input_path: str, task: str, out: str, *, mz: list[float] | None = None,
            mask: str | None = None, truth: str | None = None, samples: int | None = None, seed: int = 0,
            force: bool = False):
    """Enhance one section; the maps are written into the output folder as they are computed
    (memory-mapped ``.npy``), so a large section never sits in memory whole."""
    with output_folder(out, force=force) as tmp:
        res = spatial.enhance(run_dir, input_path, task, mz=mz, mask=mask, truth=truth, n_samples=samples, seed=seed,
                              allocate=spatial_report.memmap_allocator(tmp), progress=True)
        spatial_report.write_enhanced(res, tmp)
    return res


def synth(kind: str, out: str, force: bool = False, **kw) -> dict:
    if kind == "machine":
        from latentbridge.data.synth.machine import synth_machine as fn
    elif kind == "bridge":
        from latentbridge.data.synth.bridge import synth_bridge as fn
    elif kind == "tissue":
        from latentbridge.data.synth.tissue import synth_tissue as fn
    else:
        raise LatentbridgeError(f"unknown synthetic data set {kind!r}")
    if kw.get("seed") is not None:
        check_seed(kw["seed"])
    check_target(Path(out), force)
    with output_folder(out, force=force) as tmp:
        try:
            return fn(tmp, overwrite=True, **kw)
        except (ValueError, ConfigError) as e:  # a generator's own check of an option: said with the option's name
            names = "|".join(sorted(_SYNTH_OPTIONS, key=len, reverse=True))
            text = re.sub(rf"(?<![\w-])({names})\b", lambda m: _SYNTH_OPTIONS[m.group(1)], str(e))
            raise LatentbridgeError(f"data synth {kind}: {text}") from None


#: the generators' argument names as `data synth` spells its options
_SYNTH_OPTIONS = {"n_sensors": "--sensors", "noise_snr_db": "--noise-snr", "duration_s": "--duration",
                  "sample_rate": "--sample-rate", "n_train": "--n-train", "n_test_normal": "--n-test-normal",
                  "n_test_anomalous": "--n-test-anomalous", "test_sections": "--test-sections",
                  "count_scale": "--count-scale", "read_noise": "the read noise", "sections": "--sections",
                  "height": "--height", "width": "--width", "channels": "--channels", "dropout": "--dropout",
                  "states": "--states"}


#: the config keys `classifier train` sets from its options, and those options
_CLASSIFIER_OPTIONS = {"train.max_epochs": "--epochs", "train.seed": "--seed", "train.batch_size": "--batch-size",
                       "data.n_train": "--n-train", "data.n_test": "--n-test"}


def train_classifier(kind: str, out: str | None, *, data: str | None = None, overrides: list[str] | None = None,
                     force: bool = False, **sets) -> dict:
    try:
        cfg = classify.classifier_config(kind, data, overrides, **sets)
    except ConfigError as e:  # a value an option gave: said with the option's name
        given = {k: flag for k, flag in _CLASSIFIER_OPTIONS.items() if sets.get(k) is not None}
        text = e.problems or ""
        if any(f"'{k}'" in text for k in given):
            for k, flag in given.items():
                text = text.replace(f"'{k}'", flag)
            raise LatentbridgeError(f"classifier train {kind}: {text}") from None
        raise
    folder = out or classify.classifier_dir(kind)
    if out is None and not force and not overrides and all(v is None for v in sets.values()):
        try:  # the judge trained already, on this data, with the defaults (a README's step after its first use: exit 2)
            _, info = classify.load_classifier(kind, data_root=cfg.data.root, train_if_missing=False)
            return {**json.loads((Path(info["path"]) / "metrics.json").read_text()), "out_dir": info["path"],
                    "cached": True}
        except (LatentbridgeError, OSError, ValueError, KeyError):
            pass  # (none usable: trained below, or refused as the folder it would replace)
    return classify.train_classifier(cfg, folder, force=force)
