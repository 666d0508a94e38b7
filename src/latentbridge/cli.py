"""Command line: ``latentbridge <command>``. Parses arguments and calls the Python API, nothing more."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

from latentbridge import __version__
from latentbridge.errors import LatentbridgeError


def _add_config_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument("--config", required=required, help="YAML config (see configs/)")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. -o train.max_epochs=5 (repeatable)")


def _add_trainer_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training hardware (passed to Lightning)")
    g.add_argument("--accelerator", help="cpu, gpu, auto, ...")
    g.add_argument("--devices", help="number of devices, e.g. 2 (with --strategy ddp for DDP)")
    g.add_argument("--strategy", help="auto, ddp, ddp_spawn, ...")
    g.add_argument("--precision", help="32-true, bf16-mixed, 16-mixed, ...")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.ckpt")
    p.add_argument("--force", action="store_true", help="replace an existing non-empty output folder")


def _trainer_overrides(args) -> list[str]:
    out = []
    for key in ("accelerator", "devices", "strategy", "precision"):
        v = getattr(args, key, None)
        if v is not None:
            out.append(f"train.{key}={v}")
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="latentbridge", description="Latent generative models of signals and images.")
    p.add_argument("--version", action="version", version=f"latentbridge {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="more log output")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model preset into a run folder")
    _add_config_args(t, required=True)
    t.add_argument("--out", required=True, help="run folder (becomes a model folder when training ends)")
    _add_trainer_args(t)

    e = sub.add_parser("evaluate", help="evaluate a trained run: metrics.json and plots")
    e.add_argument("run_dir")
    e.add_argument("--out", required=True)
    e.add_argument("--data", help="test data folder (default: the config's data.test_dir)")

    an = sub.add_parser("analyze", help="clusters, cross-modal relationships and latent plots of an avdigits run")
    an.add_argument("run_dir")
    an.add_argument("--out", required=True)
    an.add_argument("--clusters", type=int, default=10)

    c = sub.add_parser("config", help="print the resolved config (defaults + file + overrides) as YAML")
    _add_config_args(c)

    a = sub.add_parser("anomaly", help="acoustic anomaly detection").add_subparsers(dest="anomaly_cmd", required=True)
    af = a.add_parser("fit", help="train on normal recordings and calibrate the threshold")
    af.add_argument("normal_dir", help="folder (or file) of normal recordings")
    af.add_argument("--out", required=True, help="model folder to write")
    _add_config_args(af)
    _add_trainer_args(af)

    asc = a.add_parser("score", help="score recordings; with labels, also AUC/pAUC and plots")
    asc.add_argument("model_dir")
    asc.add_argument("paths", nargs="+", help="audio files or folders")
    asc.add_argument("--out", required=True)
    asc.add_argument("--labels", help="'auto' (folder named normal/anomalous) or a CSV with columns path,label")
    asc.add_argument("--aggregate", choices=["mean", "max"], help="per-file aggregate of window scores")
    asc.add_argument("--skip-bad", action="store_true", help="skip unreadable files with a warning")

    al = a.add_parser("listen", help="score a live microphone (or a replayed file) window by window")
    al.add_argument("model_dir")
    al.add_argument("--device", help="input device id or name (default: the system's default input)")
    al.add_argument("--source", help="replay this recording through the streaming code instead of a microphone")
    al.add_argument("--duration", type=float, help="stop after this many seconds")
    al.add_argument("--events", help="log every window to FILE (.sqlite/.db → SQLite, .csv → CSV)")
    al.add_argument("--hop", type=float, help="seconds between window starts (default: the model's hop)")
    al.add_argument("--sample-rate", type=int, help="capture rate (default: the model's rate)")
    al.add_argument("--blocksize", type=int, default=1024)
    al.add_argument("--realtime", action="store_true", help="with --source, pace the replay in real time")
    al.add_argument("--list-devices", action="store_true", help="list input devices and exit")

    au = sub.add_parser("audio", help="audio autoencoders").add_subparsers(dest="audio_cmd", required=True)
    ar = au.add_parser("reconstruct", help="encode/decode audio files and write them back as audio")
    ar.add_argument("model_dir", help="an audio_ae model folder")
    ar.add_argument("files", nargs="+", help="audio files or folders")
    ar.add_argument("--out", required=True, help="folder for <name>_reconstructed.wav and plots")
    ar.add_argument("--n-iter", type=int, default=64, help="Griffin-Lim iterations (mel features keep no phase)")

    x = sub.add_parser("export", help="export a model for small devices")
    x.add_argument("model_dir")
    x.add_argument("--format", choices=["onnx"], default="onnx")
    x.add_argument("--out", required=True, help="output .onnx file")

    k = sub.add_parser("classifier", help="digit classifiers that judge generated samples (coherence)")
    kt = k.add_subparsers(dest="classifier_cmd", required=True).add_parser(
        "train", help="train the MNIST or FSDD digit classifier and print its test accuracy")
    kt.add_argument("kind", choices=["mnist", "fsdd"])
    kt.add_argument("--out", help="model folder (default: the cache folder load_classifier uses)")
    kt.add_argument("--data", help="data root (MNIST idx files / FSDD folder holding recordings/)")
    kt.add_argument("--epochs", type=int, help="training epochs (default: per kind)")
    kt.add_argument("--seed", type=int, default=0)
    kt.add_argument("--force", action="store_true", help="replace an existing model folder")
    kt.add_argument("--n-train", type=int, help=argparse.SUPPRESS)  # test-only: seeded subsets
    kt.add_argument("--n-test", type=int, help=argparse.SUPPRESS)
    kt.add_argument("--batch-size", type=int, default=128, help=argparse.SUPPRESS)

    d = sub.add_parser("data", help="built-in data sets").add_subparsers(dest="data_cmd", required=True)
    ds = d.add_parser("synth", help="generate synthetic data").add_subparsers(dest="synth_kind", required=True)
    sm = ds.add_parser("machine", help="rotating-machine recordings: train/normal, test/normal, test/anomalous")
    sm.add_argument("--out", required=True)
    sm.add_argument("--seed", type=int, default=0)
    sm.add_argument("--sample-rate", type=int)
    sm.add_argument("--duration", type=float, help="seconds per recording")
    sm.add_argument("--n-train", type=int)
    sm.add_argument("--n-test-normal", type=int)
    sm.add_argument("--n-test-anomalous", type=int)
    sm.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    sb = ds.add_parser("bridge", help="simulated beam (finite elements): Data/Test_XX/*.csv + Labels/Test_XX/mask.png")
    sb.add_argument("--out", required=True)
    sb.add_argument("--states", type=int, help="number of damage states (tests)")
    sb.add_argument("--seed", type=int, default=0)
    sb.add_argument("--sample-rate", type=float)
    sb.add_argument("--duration", type=float, help="seconds per recording")
    sb.add_argument("--sensors", type=int, help="accelerometers along the span")
    sb.add_argument("--noise-snr", type=float, help="sensor noise SNR in dB")
    sb.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    return p


def _task_module(task: str):
    """Each task module offers ``fit(cfg, out_dir, resume=, force=)`` and ``evaluate(run_dir, out_dir, data)``."""
    import importlib

    modules = {"anomaly": "anomaly", "multimodal": "multimodal", "avdigits": "avdigits",
               "audio_ae": "autoencode", "image_ae": "autoencode"}
    if task not in modules:
        raise LatentbridgeError(f"task '{task}' has no training entry point; known: {sorted(modules)}")
    return importlib.import_module(f"latentbridge.tasks.{modules[task]}")


def _cmd_train(args) -> int:
    from latentbridge.config import load_config

    cfg = load_config(args.config, args.override + _trainer_overrides(args))
    res = _task_module(cfg.task).fit(cfg, args.out, resume=args.resume, force=args.force)
    if res is not None:
        print(f"trained {cfg.model.name} ({cfg.task}) → {args.out}: " + ", ".join(
            f"{k}={v if not isinstance(v, float) else round(v, 4)}" for k, v in _summary(res).items()))
    return 0


def _summary(res) -> dict:
    import dataclasses

    d = dataclasses.asdict(res) if dataclasses.is_dataclass(res) else dict(res)
    return {k: v for k, v in d.items() if isinstance(v, (int, float, str)) and k != "out_dir"}


def _cmd_evaluate(args) -> int:
    from latentbridge.models.hub import read_info

    task = read_info(args.run_dir)["config"].get("task", "anomaly")
    metrics = _task_module(task).evaluate(args.run_dir, args.out, args.data)
    _print_metrics(metrics, args.out)
    return 0


def _print_metrics(metrics: dict, out) -> None:
    keys = ("auc", "pauc", "threshold", "precision", "recall", "f1", "n_normal", "n_anomalous", "mask_iou",
            "mask_dice", "damage_extent_mae", "waveform_si_sdr_db", "log_spectral_distance_db",
            "mel_mse", "pesq", "stoi", "oracle_pesq", "oracle_stoi", "test_mse", "test_bce")
    print("  ".join(f"{k}={metrics[k]:.4g}" if isinstance(metrics.get(k), float) else f"{k}={metrics.get(k)}"
                    for k in keys if k in metrics))
    print(f"wrote {Path(out) / 'metrics.json'}")


def _cmd_analyze(args) -> int:
    from latentbridge.tasks.analyze import analyze

    m = analyze(args.run_dir, args.out, n_clusters=args.clusters)
    print("  ".join(f"{k}={v:.3g}" for k, v in m.items() if isinstance(v, float) and k.startswith(
        ("z_joint_kmeans", "one_to_one", "convergence", "retrieval", "association_generation"))))
    print(f"wrote {Path(args.out) / 'metrics.json'}")
    return 0


def _cmd_config(args) -> int:
    from latentbridge.config import dump_yaml, load_config

    print(dump_yaml(load_config(args.config, args.override)), end="")
    return 0


def _cmd_anomaly(args) -> int:
    from latentbridge.tasks import anomaly

    if args.anomaly_cmd == "fit":
        from latentbridge.config import load_config

        cfg = load_config(args.config, [f"data.train_dir={args.normal_dir}", *args.override,
                                        *_trainer_overrides(args)])
        res = anomaly.fit(cfg, args.out, resume=args.resume, force=args.force)
        if res is not None:
            print(f"model → {res.out_dir}  threshold {res.threshold:.6g}  "
                  f"({res.n_train_windows} training windows, {res.n_val_windows} calibration windows, "
                  f"{res.seconds:.1f} s)")
        return 0
    if args.anomaly_cmd == "score":
        res = anomaly.score_paths(args.model_dir, args.paths, args.out, labels=args.labels,
                                  aggregate=args.aggregate, skip_bad=args.skip_bad)
        if "auc" in res:
            _print_metrics(res, args.out)
        else:
            print(f"scored {res['n_files']} files / {res['n_windows']} windows; "
                  f"{res['n_anomalous_files_flagged']} files above the threshold {res['threshold']:.6g}")
        print(f"wrote {Path(args.out) / 'scores.csv'}")
        return 0
    if args.anomaly_cmd == "listen":
        from latentbridge.tasks import listen as live

        if args.list_devices:
            from latentbridge.io.capture import list_input_devices

            for dev in list_input_devices():
                print(json.dumps(dev))
            return 0
        live.listen_model(args.model_dir, device=args.device, source=args.source, duration_s=args.duration,
                          events=args.events, hop_s=args.hop, sample_rate=args.sample_rate,
                          blocksize=args.blocksize, realtime=args.realtime)
        return 0
    raise AssertionError(args.anomaly_cmd)


def _cmd_audio(args) -> int:
    if args.audio_cmd == "reconstruct":
        from latentbridge.tasks.autoencode import reconstruct

        res = reconstruct(args.model_dir, args.files, args.out, n_iter=args.n_iter)
        for r in res["files"]:
            extra = "".join(f"  {k}={r[k]:.3g}" for k in ("pesq", "stoi", "lsd") if isinstance(r.get(k), float))
            print(f"{r['output']}{extra}")
        print(f"wrote {len(res['files'])} files to {args.out} ({res['phase']})")
        return 0
    raise AssertionError(args.audio_cmd)


def _cmd_export(args) -> int:
    from latentbridge.export import export_onnx

    res = export_onnx(args.model_dir, args.out)
    print(f"wrote {res['path']}  (max abs difference vs PyTorch: {res['max_abs_diff']:.3g} on "
          f"{res['n_parity_windows']} windows)")
    return 0


def _cmd_data(args) -> int:
    if args.data_cmd == "synth" and args.synth_kind == "machine":
        from latentbridge.data.synth.machine import synth_machine

        kw = {k: v for k, v in dict(sample_rate=args.sample_rate, duration_s=args.duration, n_train=args.n_train,
                                    n_test_normal=args.n_test_normal,
                                    n_test_anomalous=args.n_test_anomalous).items() if v is not None}
        manifest = synth_machine(args.out, seed=args.seed, overwrite=args.force, **kw)
        n = len(manifest.get("files", []))
        print(f"wrote {n} recordings to {args.out} (train/normal, test/normal, test/anomalous)")
        return 0
    if args.data_cmd == "synth" and args.synth_kind == "bridge":
        from latentbridge.data.synth.bridge import synth_bridge

        kw = {k: v for k, v in dict(states=args.states, sample_rate=args.sample_rate, duration_s=args.duration,
                                    n_sensors=args.sensors, noise_snr_db=args.noise_snr).items() if v is not None}
        manifest = synth_bridge(args.out, seed=args.seed, overwrite=args.force, **kw)
        print(f"wrote {len(manifest.get('states', []))} damage states to {args.out} (Data/, Labels/)")
        return 0
    raise AssertionError(args)


def _cmd_classifier(args) -> int:
    from latentbridge.tasks.classify import classifier_dir, train_classifier

    out = args.out or classifier_dir(args.kind)
    m = train_classifier(args.kind, out, data_root=args.data, epochs=args.epochs, seed=args.seed,
                         batch_size=args.batch_size, force=args.force, n_train=args.n_train, n_test=args.n_test)
    split = " (offline split of the t10k images)" if m["offline_split"] else ""
    print(f"{args.kind} classifier → {out}: test accuracy {m['test_accuracy']:.4f} on {m['n_test']} "
          f"{'images' if args.kind == 'mnist' else 'clips'}{split}, trained on {m['n_train']} in {m['seconds']:.0f} s")
    return 0


COMMANDS = {"train": _cmd_train, "evaluate": _cmd_evaluate, "analyze": _cmd_analyze, "config": _cmd_config,
            "anomaly": _cmd_anomaly, "export": _cmd_export, "data": _cmd_data, "classifier": _cmd_classifier,
            "audio": _cmd_audio}


def _default_threads() -> None:
    """Leave one core free unless the user chose: on a 2-core machine, torch's default of 2 intra-op
    threads made training and feature extraction 2-5x slower than 1 thread (benchmarks/README.md)."""
    import os

    if "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 2) - 1))


def main(argv: list[str] | None = None) -> int:
    _default_threads()
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
            logging.getLogger(name).setLevel(logging.WARNING)
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    try:
        return COMMANDS[args.command](args)
    except LatentbridgeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
