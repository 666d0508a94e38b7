"""Command line: ``latentbridge <command>``. Parses arguments and calls :mod:`latentbridge.commands`
(and through it the tasks and report steps), nothing more.

Paths on the command line are strings, never YAML: a folder named ``2024``, ``yes``, ``null`` or ``[x]`` is that folder.
User errors (bad input or config, busy or unwritable output folders) print one line ``error: ...`` and exit with 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from pathlib import Path

from latentbridge import __version__, utils
from latentbridge.arguments import TOP_COMMANDS, ArgumentParser
from latentbridge.errors import ConfigError, LatentbridgeError, interrupted_in, stdout_gone, user_error_text
from latentbridge.interrupts import Terminated, on_sigterm, stopped
from latentbridge.report.common import figure_options


def _add_config_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument("--config", required=required, help="YAML config, or a preset by its name (configs/)")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. -o train.max_epochs=5 (repeatable)")


def _add_trainer_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training hardware (passed to Lightning)")
    g.add_argument("--accelerator", help="cpu, gpu, auto, ...")
    g.add_argument("--devices", help="number of devices, e.g. 2 (with --strategy ddp for DDP)")
    g.add_argument("--strategy", help="auto, ddp, fsdp, ... (not ddp_spawn: its model never comes back)")
    g.add_argument("--precision", help="32-true, bf16-mixed, 16-mixed, ...")
    g.add_argument("--workers", type=int, help="recordings decoded at once (default: one per core, at most 4; 0: one "
                   "at a time): each is held whole, so fewer need less memory")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.ckpt")
    p.add_argument("--force", action="store_true", help="replace an existing non-empty output folder")


def _hardware(args) -> dict:
    from latentbridge.commands import device_count, worker_count
    from latentbridge.config.sections import spawned_strategy
    from latentbridge.training.fit import check_hardware

    out = {f"train.{k}": v for k in ("accelerator", "strategy", "precision") if (v := getattr(args, k)) is not None}
    if problem := spawned_strategy(args.strategy):  # (named as --strategy: as train.strategy, of a config file the
        raise ConfigError(f"--strategy {args.strategy}: {problem}")  # user may not have written)
    if args.devices is not None:
        out["train.devices"] = device_count(args.devices, choices=True)
    check_hardware(**{k.split(".")[1]: v for k, v in out.items()})  # before any work (a traceback, or no word)
    if args.workers is not None:
        out["train.decode_workers"] = worker_count(args.workers)
    return out


def _synth_parser(kinds, name: str, text: str) -> argparse.ArgumentParser:
    """``data synth NAME``'s parser with the options every generator takes (its defaults are the generator's
    ``DEFAULTS``, written in the help: the modules are not imported to parse a command line)."""
    q = kinds.add_parser(name, help=text)
    q.add_argument("--out", required=True, help="folder to write")
    q.add_argument("--seed", type=int, default=0, help="same seed, same data (default: 0)")
    q.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    return q


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="latentbridge", description="Latent generative models of signals and images.")
    p.add_argument("--version", action="version", version=f"latentbridge {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="more log output")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model preset into a run folder")
    _add_config_args(t, required=True)
    t.add_argument("--out", required=True, help="run folder (becomes a model folder when training ends)")
    _add_trainer_args(t)

    e = sub.add_parser("evaluate", help="evaluate a trained run: metrics.json and plots")
    e.add_argument("run_dir")
    e.add_argument("--out", required=True, help="folder for metrics.json, plots and report.html")
    e.add_argument("--data", help="test data folder (default: the config's test data; spatial maps: a section given "
                                  "both as imzML and as an array is read as the kind the model was trained on)")
    e.add_argument("--sample-rate", type=float, help="Hz of vibration CSVs without a time column (bridge and "
                   "anomaly runs; default: the run's vibration.sample_rate or audio.csv_rate)")
    e.add_argument("--force", action="store_true", help="replace a non-empty output folder")

    sm_ = sub.add_parser("sample", help="draw samples from a diffusion model folder (PNGs, a grid, an .npz), a "
                                        "multimodal latent diffusion run (masks, spectrograms, audio) or an "
                                        "audio-visual digits run (images, log-mels, audio)")
    sm_.add_argument("run_dir")
    sm_.add_argument("--num-samples", type=int, default=16, help="samples to draw (default: 16)")
    sm_.add_argument("--class", dest="label", help="class of every sample (name or index; default: classes in turn)")
    sm_.add_argument("--guidance", help="classifier-free guidance: 0 unconditional, 1 conditional, >1 stronger "
                     "(default: the run's); multimodal latent diffusion: also one per generated modality, "
                     "e.g. audio=8,image=4")
    sm_.add_argument("--steps", type=int, help="sampling steps (default: the run's)")
    sm_.add_argument("--scheduler", choices=["ddpm", "ddim", "dpm"], help="default: the run's")
    sm_.add_argument("--seed", type=int, help="same seed, same samples (default: the run's)")
    sm_.add_argument("--eta", type=float, help="DDIM only: 0 deterministic, 1 DDPM-like noise")
    sm_.add_argument("--condition", action="append", help="diffusion: a continuous condition value (repeat for "
                     "several); multimodal latent diffusion and audio-visual digits: a condition file (a wav or PNG "
                     "digit; a vibration recording (CSV, .mat, audio) or mask PNG), repeatable; none: joint samples")
    sm_.add_argument("--batch-size", type=int, help="samples per batch (fewer where they would not fit in memory)")
    sm_.add_argument("--sample-rate", type=float, help="Hz of condition CSVs without a time column (bridge runs; "
                     "default: the run's vibration.sample_rate)")
    sm_.add_argument("--out", required=True)
    sm_.add_argument("--force", action="store_true", help="replace a non-empty output folder")

    en = sub.add_parser("enhance", help="enhance spatial maps (an imzML file or an array) with a spatial model")
    en.add_argument("run_dir", help="a spatial model folder (latentbridge train --config configs/cvae_tissue.yaml)")
    en.add_argument("input", help=".imzML, .npy, .npz, .tif or a folder of PNG channels")
    en.add_argument("--task", required=True, choices=["denoise", "inpaint", "upscale"],
                    help="denoise the valid pixels; inpaint: also fill the holes of the section; upscale: 2x")
    en.add_argument("--out", required=True, help="folder for enhanced.npy, uncertainty.npy, latent.npy, panels.png")
    en.add_argument("--mz", help="comma-separated m/z of the channels to show in the panels (default: the first 4)")
    en.add_argument("--mask", help="mask of valid pixels for an array input (.npy or .png; default: NAME.mask.*)")
    en.add_argument("--truth", help="clean maps (.npy, the output's shape): metrics and a truth column")
    en.add_argument("--samples", type=int, help="latent samples per tile for the uncertainty (default: the model's)")
    en.add_argument("--seed", type=int, default=0)
    en.add_argument("--force", action="store_true", help="replace a non-empty output folder")

    an = sub.add_parser("analyze", help="clusters, cross-modal relationships and latent plots of an avdigits run")
    an.add_argument("run_dir")
    an.add_argument("--out", required=True, help="folder for the analysis (clusters, relations, plots, report)")
    an.add_argument("--clusters", type=int, default=10, help="k-means clusters of each latent space (default: 10)")
    an.add_argument("--force", action="store_true", help="replace a non-empty output folder")

    c = sub.add_parser("config", help="print the resolved config (defaults + file + overrides) as YAML")
    _add_config_args(c)

    a = sub.add_parser("anomaly", help="acoustic anomaly detection").add_subparsers(dest="anomaly_cmd", required=True)
    af = a.add_parser("fit", help="train on normal recordings and calibrate the threshold")
    af.add_argument("normal_dirs", nargs="+", help="folders (or files) of normal recordings")
    af.add_argument("--out", required=True, help="model folder to write")
    af.add_argument("--skip-bad", action="store_true", help="skip unusable recordings with a warning")
    _add_config_args(af)
    _add_trainer_args(af)

    asc = a.add_parser("score", help="score recordings; with labels, also AUC/pAUC and plots")
    asc.add_argument("model_dir")
    asc.add_argument("paths", nargs="+", help="audio files or folders")
    asc.add_argument("--out", required=True, help="folder for scores.csv, score histograms, example windows, "
                                                  "report.html and summary.json (with labels also metrics.json, ROC)")
    asc.add_argument("--labels", help="'auto' (normal/anomalous folders or name words) or a CSV with columns path,label")
    asc.add_argument("--aggregate", choices=["mean", "max"], help="per-file aggregate of window scores")
    asc.add_argument("--score", help="another of the model's scores (e.g. combined, latent_knn), with the "
                                     "threshold calibrated for it at fit time; default: the model's score")
    asc.add_argument("--skip-bad", action="store_true", help="skip unusable recordings with a warning")
    asc.add_argument("--sample-rate", type=float, help="Hz of vibration CSVs and .mat files that give no rate "
                     "(default: the model's audio.csv_rate; a file that gives its own is read at it)")
    asc.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    asc.add_argument("--workers", type=int, help="processes decoding and featurising files (default: one per core, at most 4; "
                                                "0: in this process)")
    g = asc.add_argument_group("scoring hardware (Lightning's predict loop)")
    g.add_argument("--accelerator", help="cpu, gpu, auto, ...")
    g.add_argument("--devices", help="number of devices/processes, e.g. 2 (with --strategy ddp)")
    g.add_argument("--strategy", help="auto, ddp, ...")

    ac = a.add_parser("calibrate", help="set a model's threshold from new normal recordings, or to a value")
    ac.add_argument("model_dir")
    ac.add_argument("normal_paths", nargs="*", help="recordings of normal operation (files or folders)")
    ac.add_argument("--threshold", type=float, help="set this threshold instead")
    ac.add_argument("--method", choices=["mean_std", "quantile"], help="default: the model's")
    ac.add_argument("--score", help="calibrate this score of the model and make it the model's score")
    ac.add_argument("--k", type=float, help="mean_std: mean + k·σ")
    ac.add_argument("--false-alarm-rate", type=float, help="quantile: target false-alarm rate")
    ac.add_argument("--skip-bad", action="store_true", help="skip unusable recordings with a warning")
    ac.add_argument("--sample-rate", type=float, help="Hz of vibration CSVs and .mat files that give no rate "
                    "(default: the model's audio.csv_rate)")

    al = a.add_parser("listen", help="score a live microphone (or a replayed file) window by window")
    al.add_argument("model_dir")
    al.add_argument("--device", help="input device id or name (default: the system's default input)")
    al.add_argument("--source", help="replay this recording through the streaming code instead of a microphone")
    al.add_argument("--duration", type=float, help="stop after this many seconds")
    al.add_argument("--events", help="log every window to FILE (.sqlite/.db → SQLite, .csv → CSV)")
    al.add_argument("--hop", type=float, help="seconds between window starts (default: the model's hop)")
    al.add_argument("--sample-rate", type=int, help="the device's capture rate (default: the model's rate); with "
                    "--source, the rate of a vibration CSV or .mat file that gives none (others give their own)")
    al.add_argument("--blocksize", type=int, default=1024, help="frames read from the device at a time (default: 1024)")
    al.add_argument("--realtime", action="store_true", help="with --source, pace the replay in real time")
    al.add_argument("--list-devices", action="store_true", help="list input devices and exit")

    au = sub.add_parser("audio", help="audio autoencoders").add_subparsers(dest="audio_cmd", required=True)
    ar = au.add_parser("reconstruct", help="encode/decode audio files and write them back as audio")
    ar.add_argument("model_dir", help="an audio_ae model folder")
    ar.add_argument("files", nargs="+", help="audio files or folders")
    ar.add_argument("--out", required=True, help="folder for <name>_reconstructed.wav and plots")
    ar.add_argument("--n-iter", type=int, default=64, help="Griffin-Lim iterations (mel features keep no phase)")
    ar.add_argument("--no-postfilter", action="store_true",
                    help="the decoder's raw log-mels, without the model's global-variance post-filter (MLD audio stages)")
    ar.add_argument("--force", action="store_true", help="replace a non-empty output folder")

    x = sub.add_parser("export", help="export a model for small devices (anomaly scorer, or a diffusion denoiser)")
    x.add_argument("model_dir")
    x.add_argument("--format", choices=["onnx"], default="onnx", help="the exported format (ONNX, the only one)")
    x.add_argument("--out", required=True, help="output .onnx file")
    x.add_argument("--force", action="store_true", help="replace an existing file")

    m = sub.add_parser("model", help="model folders").add_subparsers(dest="model_cmd", required=True)
    mu = m.add_parser("upgrade", help="convert a model folder saved by an earlier latentbridge")
    mu.add_argument("model_dir")

    k = sub.add_parser("classifier", help="digit classifiers that judge generated samples (coherence)")
    kt = k.add_subparsers(dest="classifier_cmd", required=True).add_parser(
        "train", help="train the MNIST or FSDD digit classifier and print its test accuracy")
    kt.add_argument("kind", choices=["mnist", "fsdd"])
    kt.add_argument("--out", help="model folder (default: the cache folder load_classifier uses)")
    kt.add_argument("--data", help="data root: MNIST's idx files / FSDD's recordings/, or digits of your own: images "
                                   "in class folders 0/ ... 9/, recordings named {digit}_{speaker}_{index} or in class "
                                   "folders 3/ or three/, train/ and test/ above them to split them (README, 'Digits "
                                   "of your own')")
    kt.add_argument("--epochs", type=int, help="training epochs (default: per kind)")
    kt.add_argument("--seed", type=int, help="training seed (default: the preset's train.seed)")
    kt.add_argument("--force", action="store_true", help="replace an existing model folder")
    kt.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                    help="override a value of the classifier config, e.g. -o train.lr=0.001")
    kt.add_argument("--n-train", type=int, help=argparse.SUPPRESS)  # test-only: seeded subsets
    kt.add_argument("--n-test", type=int, help=argparse.SUPPRESS)
    kt.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)

    sv = sub.add_parser("serve", help="serve model folders: REST + WebSocket API and a web page with a live microphone")
    sv.add_argument("model_dirs", nargs="+", metavar="MODEL_DIR", help="model folders (each served under its name)")
    sv.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; any other needs --api-key)")
    sv.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    sv.add_argument("--api-key", help="require this key on every request (default: $LATENTBRIDGE_API_KEY)")
    sv.add_argument("--max-upload-mb", type=float, default=50.0, help="largest upload (413 above it)")
    sv.add_argument("--max-duration", type=float, default=600.0, help="longest audio upload in seconds (413)")
    sv.add_argument("--max-values", type=int, default=100_000_000,
                    help="most values of an array to enhance (pixels x channels) or of audio decoded (frames x "
                         "channels): 413, read from the header (a compressed .npz or FLAC unpacks)")
    sv.add_argument("--max-batch", type=int, default=16,
                    help="most windows per model call when batching concurrent requests (1: no batching)")
    sv.add_argument("--max-wait-ms", type=float, default=2.0, help="how long a batch waits for more requests")
    sv.add_argument("--max-age-ms", type=float, default=1000.0,
                    help="shortest requests are scored first; one waiting this long goes ahead of younger ones")
    sv.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                    help="allow cross-origin requests from ORIGIN (repeatable; CORS is off by default)")
    sv.add_argument("--stream-queue-blocks", type=int, default=256,
                    help="audio messages a stream may queue before they are dropped and counted")
    sv.add_argument("--max-streams", type=int, default=32, help="most live WebSocket streams at once (503 above)")
    sv.add_argument("--shutdown-grace", type=float, default=10.0, help="seconds requests go on after SIGTERM (10)")
    sv.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"], help="server log")

    d = sub.add_parser("data", help="built-in data sets").add_subparsers(dest="data_cmd", required=True)
    ds = d.add_parser("synth", help="generate synthetic data").add_subparsers(dest="synth_kind", required=True)
    sm = _synth_parser(ds, "machine", "rotating-machine recordings: train/normal, test/normal, test/anomalous")
    sm.add_argument("--sample-rate", type=int, help="Hz (default: 16000)")
    sm.add_argument("--duration", type=float, help="seconds per recording (default: 10)")
    sm.add_argument("--n-train", type=int, help="normal training recordings (default: 60)")
    sm.add_argument("--n-test-normal", type=int, help="normal test recordings (default: 40)")
    sm.add_argument("--n-test-anomalous", type=int, help="anomalous test recordings (default: 40)")
    sb = _synth_parser(ds, "bridge", "simulated beam (finite elements): Data/Test_XX/*.csv + Labels/Test_XX/mask.png")
    sb.add_argument("--states", type=int, help="number of damage states (tests; default: 300)")
    sb.add_argument("--sample-rate", type=float, help="Hz (default: 200)")
    sb.add_argument("--duration", type=float, help="seconds per recording (default: 20)")
    sb.add_argument("--sensors", type=int, help="accelerometers along the span (default: 8)")
    sb.add_argument("--noise-snr", type=float, help="sensor noise SNR in dB (default: 30)")
    st = _synth_parser(ds, "tissue", "tissue sections for mass-spectrometry imaging: noisy and clean ion images "
                                     "(.npy), masks, imzML files")
    st.add_argument("--sections", type=int, help="sections (default: 10; the last --test-sections: the test split)")
    st.add_argument("--test-sections", type=int, help="default: 2")
    st.add_argument("--height", type=int, help="pixels (default: 80)")
    st.add_argument("--width", type=int, help="pixels (default: 96)")
    st.add_argument("--channels", type=int, help="ion images (lipid m/z values) per section (default: 20)")
    st.add_argument("--count-scale", type=float, help="expected counts x this (higher: less Poisson noise)")
    st.add_argument("--dropout", type=float, help="share of pixels missing at random")
    st.add_argument("--no-imzml", action="store_true", help="write the arrays only")
    TOP_COMMANDS.update(sub.choices)
    return p


def _print_summary(values: dict, wrote: str | Path | None = None) -> None:
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    print("  ".join(f"{k}={fmt(v)}" for k, v in values.items()))
    if wrote is not None:
        print(f"wrote {wrote}")


def _choice_line(text: str) -> None:
    print(f"chosen from the data: {text}", flush=True)


def _cmd_train(args) -> int:
    from latentbridge import commands
    from latentbridge.config import load_config

    cfg = load_config(args.config, args.override, sets=_hardware(args))
    res = commands.train(cfg, args.out, resume=args.resume, force=args.force, notify=_choice_line)
    if res is not None:
        print(f"trained {cfg.model.name} ({cfg.task}) → {args.out}")
        _print_summary({k: v for k, v in commands.summary_of(res).items() if k != "out_dir"})
    return 0


def _cmd_evaluate(args) -> int:
    from latentbridge import commands

    res = commands.evaluate(args.run_dir, args.out, args.data, force=args.force, sample_rate=args.sample_rate)
    _print_summary(commands.summary_of(res), Path(args.out) / "metrics.json")
    return 0


def _cmd_sample(args) -> int:
    from latentbridge import commands
    from latentbridge.sampling_args import guidance_text

    res = commands.sample(args.run_dir, args.out, args.num_samples, force=args.force, label=args.label,
                          guidance=args.guidance, steps=args.steps, scheduler=args.scheduler, seed=args.seed,
                          eta=args.eta, condition=args.condition, batch_size=args.batch_size,
                          sample_rate=args.sample_rate)
    if "conditions" not in res:
        what = utils.counted(res["files"], "sample")  # ("1 samples")
    elif not args.condition:
        what = f"{utils.counted(res['n_samples'], 'joint sample')}, {utils.counted(res['files'], 'file')}"
    else:
        what = f"{res['n_samples']} samples for each of {len(res['conditions'])} condition files, {res['files']} files"
    how = res.get("route") or f"{res['scheduler']}, {utils.counted(res['steps'], 'step')}" + (
        "" if res["guidance"] is None else f", guidance {guidance_text(res['guidance'])}")
    print(f"{what} ({how}, seed {res['seed']}) in {res['seconds']:.1f} s")
    if "conditions" in res:
        print(f"wrote {', '.join(str(Path(args.out) / c) for c in res['conditions'])}")
    else:
        print(f"wrote {Path(args.out) / 'grid.png'}, samples.npz, settings.json and one PNG per sample")
    return 0


def _cmd_enhance(args) -> int:
    from latentbridge import commands

    mz = None
    if args.mz is not None:  # --mz , or --mz "": refused like any list without a number
        try:
            mz = [float(v) for v in args.mz.split(",") if v.strip()]
        except ValueError:
            mz = []
        if not mz:
            raise LatentbridgeError(f"--mz: expected comma-separated numbers, got {args.mz!r}")
    res = commands.enhance(args.run_dir, args.input, args.task, args.out, mz=mz, mask=args.mask, truth=args.truth,
                           samples=args.samples, seed=args.seed, force=args.force)
    h, w, c = res.enhanced.shape
    print(f"{args.task}: {res.name} → {h} x {w} x {c} maps in {res.n_tiles} tiles, {res.seconds:.1f} s")
    if res.metrics:
        _print_summary({k: v for k, v in res.metrics.items() if isinstance(v, float)})
    print(f"wrote {Path(args.out) / 'enhanced.npy'}, uncertainty.npy, latent.npy, region.npy, panels.png, enhance.json")
    return 0


def _cmd_analyze(args) -> int:
    from latentbridge import commands

    res = commands.analyze(args.run_dir, args.out, n_clusters=args.clusters, force=args.force)
    _print_summary(commands.summary_of(res), Path(args.out) / "metrics.json")
    return 0


def _cmd_config(args) -> int:
    from latentbridge.config import dump_yaml, load_config

    print(dump_yaml(load_config(args.config, args.override), surveyed=True), end="")
    return 0


def _cmd_anomaly(args) -> int:
    from latentbridge import commands

    if args.anomaly_cmd == "fit":
        from latentbridge.config import load_config

        sets = {"task": "anomaly", "data.train_dir": args.normal_dirs, **_hardware(args),
                **({"data.skip_bad_files": True} if args.skip_bad else {})}
        cfg = load_config(args.config, args.override, sets=sets)
        res = commands.train(cfg, args.out, resume=args.resume, force=args.force, notify=_choice_line)
        if res is not None:
            print(f"model → {res.out_dir}  threshold {res.threshold:.6g}  "
                  f"({res.n_train_windows} training windows, {res.n_val_windows} calibration windows, "
                  f"{res.seconds:.1f} s)")
        return 0
    if args.anomaly_cmd == "score":
        res = commands.score(args.model_dir, args.paths, args.out, labels=args.labels, aggregate=args.aggregate,
                             skip_bad=args.skip_bad, force=args.force, devices=args.devices, strategy=args.strategy,
                             accelerator=args.accelerator, num_workers=args.workers, method=args.score,
                             sample_rate=args.sample_rate)
        if res is None:  # an extra process of a distributed run: the first one reports
            return 0
        s, t = res.summary, res.summary["top_window"] or {}
        print(f"scored {s['n_files']} files / {s['n_windows']} windows; {s['n_files_flagged']} files and "
              f"{s['n_windows_flagged']} windows above the threshold {s['threshold']:.6g}" + (
                  f" (highest {t['score']:.6g}: {t['file']} at {t['start_s']:g} s)" if t else ""))
        if res.metrics is not None:
            _print_summary(commands.summary_of(res), Path(args.out) / "metrics.json")
        print(f"wrote {Path(args.out) / 'scores.csv'}")
        return 0
    if args.anomaly_cmd == "calibrate":
        from latentbridge.tasks.anomaly import calibrate

        res = calibrate(args.model_dir, args.normal_paths or None, threshold=args.threshold, method=args.method,
                        k=args.k, false_alarm_rate=args.false_alarm_rate, skip_bad=args.skip_bad,
                        score=args.score, sample_rate=args.sample_rate)
        old = "none" if res.old_threshold is None else f"{res.old_threshold:.6g}"
        if res.old_score not in (None, res.anomaly.get("score")):  # two scores' thresholds (it read as one moving)
            old, new = f"{old} of {res.old_score}", f"{res.threshold:.6g} of {res.anomaly.get('score')}"
        else:
            new = f"{res.threshold:.6g}"
        print(f"threshold {old} → {new} ({res.anomaly.get('calibrated_on')}); "
              f"{Path(args.model_dir) / 'config.json'} rewritten")
        return 0
    if args.anomaly_cmd == "listen":
        from latentbridge.tasks import listen

        if args.list_devices:
            from latentbridge.io.capture import list_input_devices

            for dev in (devices := list_input_devices()):
                print(json.dumps(dev))
            if not devices:
                print("no audio input devices found (is a sound server such as PulseAudio running?)",
                      file=sys.stderr)
            return 0
        listen.listen_model(args.model_dir, device=args.device, source=args.source, duration_s=args.duration,
                            events=args.events, hop_s=args.hop, sample_rate=args.sample_rate,
                            blocksize=args.blocksize, realtime=args.realtime)
        return 0
    raise AssertionError(args.anomaly_cmd)


def _cmd_audio(args) -> int:
    from latentbridge import commands

    res = commands.reconstruct(args.model_dir, args.files, args.out, n_iter=args.n_iter,
                               postfilter=not args.no_postfilter, force=args.force)
    for r in res["files"]:
        extra = "".join(f"  {k}={r[k]:.3g}" for k in ("pesq", "stoi", "lsd") if isinstance(r.get(k), float))
        extra += f"  level {r['level_in_dbfs']:.1f} -> {r['level_out_dbfs']:.1f} dBFS"  # a model's "mean voice" shows
        print(f"{r['output']}{extra}")
    pf = "; log-mels post-filtered" if res["postfilter"] else ""
    print(f"wrote {utils.counted(len(res['files']), 'reconstruction')} (a wav and a spectrogram each) and "
          f"reconstruct.json to {args.out} ({res['phase']}{pf})")
    return 0


def _cmd_export(args) -> int:
    from latentbridge.export import export_onnx

    res = export_onnx(args.model_dir, args.out, force=args.force)
    what = f"{res['n_parity_windows']} windows" if "n_parity_windows" in res else f"{res['n_parity']} denoiser inputs"
    print(f"wrote {res['path']}  (max abs difference vs PyTorch: {res['max_abs_diff']:.3g} on {what})")
    if res.get("score") != res.get("model_score", res.get("score")):  # the edge scores differ from `anomaly score`'s
        logging.getLogger("latentbridge").warning(  # beside the other warnings, not in the result's lines
            "the graph scores %s (threshold %.6g), not the model's sampled '%s' score: its scores are not those of "
            "`anomaly score`, its decisions use that threshold", res["score"], res["threshold"], res["model_score"])
    return 0


def _cmd_model(args) -> int:
    from latentbridge.models.upgrade import upgrade_folder

    res = upgrade_folder(args.model_dir)
    dropped = f"; dropped config keys: {', '.join(res['dropped_keys'])}" if res["dropped_keys"] else ""
    print(f"{args.model_dir}: format version {res['from']} → {res['to']}{dropped}")
    return 0


def _cmd_serve(args) -> int:
    try:
        from latentbridge.serve.app import OPTIONS, ServeSettings
        from latentbridge.serve.server import check_bind, check_serve_extra, serve
        check_serve_extra()
    except ImportError as e:
        raise LatentbridgeError(f"serve needs the serve extra: pip install 'latentbridge[serve]' ({e})") from None
    key = args.api_key if args.api_key is not None else os.environ.get("LATENTBRIDGE_API_KEY")  # "" refused: empty
    settings = ServeSettings(api_key=key,
                             cors_origins=tuple(args.cors_origin),
                             **{name: getattr(args, option[2:].replace("-", "_")) for name, option in OPTIONS.items()})
    check_bind(args.host, settings.api_key)  # before loading anything
    serve(args.model_dirs, host=args.host, port=args.port, settings=settings, log_level=args.log_level)
    return 0


def _cmd_data(args) -> int:
    from latentbridge import commands

    if args.synth_kind == "machine":
        kw = dict(sample_rate=args.sample_rate, duration_s=args.duration, n_train=args.n_train,
                  n_test_normal=args.n_test_normal, n_test_anomalous=args.n_test_anomalous)
        manifest = commands.synth("machine", args.out, force=args.force, seed=args.seed,
                                  **{k: v for k, v in kw.items() if v is not None})
        print(f"wrote {len(manifest.get('files', []))} recordings to {args.out} (train/normal, test/normal, "
              "test/anomalous)")
        return 0
    if args.synth_kind == "tissue":
        kw = dict(sections=args.sections, test_sections=args.test_sections, height=args.height, width=args.width,
                  channels=args.channels, count_scale=args.count_scale, dropout=args.dropout)
        if args.no_imzml:
            kw["imzml"] = False
        manifest = commands.synth("tissue", args.out, force=args.force, seed=args.seed,
                                  **{k: v for k, v in kw.items() if v is not None})
        n_test = sum(s["split"] == "test" for s in manifest["sections"])
        print(f"wrote {len(manifest['sections'])} sections ({n_test} for testing) of "
              f"{manifest['parameters']['height']} x {manifest['parameters']['width']} pixels x "
              f"{len(manifest['mz'])} m/z to {args.out}")
        return 0
    kw = dict(states=args.states, sample_rate=args.sample_rate, duration_s=args.duration, n_sensors=args.sensors,
              noise_snr_db=args.noise_snr)
    manifest = commands.synth("bridge", args.out, force=args.force, seed=args.seed,
                              **{k: v for k, v in kw.items() if v is not None})
    print(f"wrote {len(manifest.get('states', []))} damage states to {args.out} (Data/, Labels/)")
    return 0


def _cmd_classifier(args) -> int:
    from latentbridge import commands

    m = commands.train_classifier(args.kind, args.out, data=args.data, overrides=args.override, force=args.force,
                                  **{"train.max_epochs": args.epochs, "train.seed": args.seed,
                                     "train.batch_size": args.batch_size, "data.n_train": args.n_train,
                                     "data.n_test": args.n_test})
    split = " (offline split of the t10k images)" if m["offline_split"] else ""
    again = " (trained already: --force trains it again)" if m.get("cached") else ""
    print(f"{args.kind} classifier → {m['out_dir']}{again}: test accuracy {m['test_accuracy']:.4f} on {m['n_test']} "
          f"{'images' if args.kind == 'mnist' else 'clips'}{split}, trained on {m['n_train']} in {m['seconds']:.0f} s")
    return 0


#: every command, by name
COMMANDS = {"train": _cmd_train, "evaluate": _cmd_evaluate, "sample": _cmd_sample, "enhance": _cmd_enhance,
            "analyze": _cmd_analyze, "config": _cmd_config, "anomaly": _cmd_anomaly, "export": _cmd_export, "data": _cmd_data,
            "classifier": _cmd_classifier, "audio": _cmd_audio, "model": _cmd_model, "serve": _cmd_serve}


def _default_threads() -> None:
    """Leave one core free unless the user chose: on a 2-core machine, torch's default of 2 intra-op
    threads made training and feature extraction 2-5x slower than 1 thread (benchmarks/README.md)."""
    if "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 2) - 1))


def _our_warnings_as_lines() -> None:
    """The package's own Python warnings (a folder's skipped files, MNIST's offline split) as one log line each, like
    its other warnings, instead of Python's two lines with the source line that raised them."""
    shown = warnings.showwarning
    if getattr(shown, "latentbridge", False):
        return
    package = str(Path(__file__).resolve().parent)

    def show(message, category, filename, lineno, file=None, line=None):
        if str(filename).startswith(package):
            logging.getLogger("latentbridge").warning("%s", message)
        else:
            shown(message, category, filename, lineno, file, line)

    show.latentbridge = True
    warnings.showwarning = show


def main(argv: list[str] | None = None) -> int:
    _default_threads()
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    utils.tolerant_stdout()  # a file name that is not UTF-8, printed
    utils.end_with_launcher()  # an extra DDP process outlived a killed first one
    if utils.is_launched_child():  # it runs the command again: what it would say, the first process says (twice)
        logging.getLogger("latentbridge").setLevel(logging.ERROR)
    utils.LIGHTNING_INFO = bool(args.verbose)
    utils.quiet_lightning()
    if not args.verbose:
        warnings.filterwarnings("ignore", message=".*(does not have many workers|LeafSpec).*")
        # Lightning's advice about its own bookkeeping (batch indices, the logging interval of a short epoch, no
        # validation data, a resumed run's checkpoint folder): nothing the user can act on (the run says what it does)
        warnings.filterwarnings("ignore", message=".*(infer the batch indices|smaller than the logging interval|"
                                                  "no `val_dataloader`|exists and is not empty).*")
    on_sigterm()
    _our_warnings_as_lines()
    from latentbridge.outputs import protect_arguments

    try:
        protect_arguments(args)  # what the command reads is never replaced by its --force
        figure_options()  # $LATENTBRIDGE_FIGURES checked before the work, not at its first figure
        return COMMANDS[args.command](args)
    except Exception as e:  # bad input, config or output; the user's environment (a full disk, too little memory)
        if (stop := interrupted_in(e)) is not None:  # an error the interrupt raised on its way: the interrupt
            return stopped(stop, args)
        if stdout_gone(e):  # the reader of the output went away (| head): quiet, as shell tools end
            return 141
        if (text := user_error_text(e, args)) is None:
            raise
        utils.close_progress_bars()  # the line starts on a line of its own, not after a bar cut short
        print(f"error: {text}", file=sys.stderr)
        return 2
    except (Terminated, KeyboardInterrupt) as e:
        return stopped(e, args)


if __name__ == "__main__":
    raise SystemExit(main())
